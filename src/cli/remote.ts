/**
 * The CLI's client of `smith serve`. When `SMITH_URL` is set, every command talks to that server
 * (REST v1, JSON in and out, the key in `SMITH_API_KEY` sent as `Authorization: Bearer`) instead
 * of opening a home on this machine. Answers that are errors become {@link SmithError}s with the
 * server's code and message, so a command exits with the same code as it would embedded. See
 * docs/remote-cli.md.
 */
import type { Command } from 'commander';
import { SmithError, type ErrorCode } from '../core/errors.js';
import type { TaskView } from '../core/views.js';
import { EXIT, exitCodeFor } from './context.js';

/** The environment variable naming the server: `http://host:port` as `smith serve` prints it. */
export const URL_ENV = 'SMITH_URL';
/** The environment variable holding the API key (`smk_<id>_<secret>`). */
export const KEY_ENV = 'SMITH_API_KEY';

/** Time a request may take before the command gives up on the server, ms. */
export const REQUEST_TIMEOUT_MS = 120_000;

/** How often a command that follows a workflow asks the server about it, ms. */
export const POLL_INTERVAL_MS = 500;

/**
 * Times a request refused for the rate limit (HTTP 429) is sent again, after the wait the server
 * names in `Retry-After` (at most {@link MAX_RETRY_AFTER_MS}).
 */
const RATE_LIMIT_RETRIES = 3;
/** The longest `Retry-After` wait honoured, ms; a longer one fails the command at once. */
const MAX_RETRY_AFTER_MS = 10_000;

/** Where the server is and the key to use. */
export interface RemoteTarget {
  /** The server's base URL without a trailing slash (`http://127.0.0.1:7700`). */
  url: string;
  /** The API key. */
  key: string;
}

/** A workflow as the API shows it. */
export interface WorkflowView {
  id: string;
  name: string;
  state: string;
  file: string | null;
  dir: string;
  created_at: string;
  ended_at: string | null;
}

/** A task as `GET /api/v1/tasks?include=output` lists it: the task view and its output. */
export type ListedTaskView = TaskView & { output?: string | null };

/**
 * The server named by the environment, or undefined when `SMITH_URL` is unset or empty (the
 * command runs embedded).
 *
 * @param env - the environment (default `process.env`)
 * @returns the base URL and key
 * @throws SmithError `INVALID_ARGUMENT` when `SMITH_URL` is not an http(s) URL, or when
 *   `SMITH_API_KEY` is missing
 */
export function remoteTarget(env: NodeJS.ProcessEnv = process.env): RemoteTarget | undefined {
  const raw = env[URL_ENV]?.trim();
  if (!raw) return undefined;
  let u: URL | undefined;
  try {
    u = new URL(raw);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
    throw new SmithError(
      'INVALID_ARGUMENT',
      `${URL_ENV}=${raw} is not an http(s) URL: set it to the address "smith serve" prints (such as http://127.0.0.1:7700), or unset it to run embedded on this machine's home`,
    );
  }
  const url = `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
  const key = env[KEY_ENV]?.trim();
  if (!key) {
    throw new SmithError(
      'INVALID_ARGUMENT',
      `${URL_ENV} is set (${url}) but ${KEY_ENV} is not: set ${KEY_ENV} to an API key of that server ("smith serve" prints an admin key on its first start; make others there with "smith keys create --role viewer|operator|admin"), or unset ${URL_ENV} to run embedded`,
    );
  }
  return { url, key };
}

/**
 * Whether commands talk to a server: `SMITH_URL` is set and not empty (its form is checked by
 * {@link remoteTarget}).
 * @param env - the environment (default `process.env`)
 * @returns true when remote
 */
export function isRemote(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env[URL_ENV]?.trim());
}

/** Options of one request. */
export interface RequestOptions {
  /** Query parameters; undefined ones are left out. */
  query?: Record<string, string | number | undefined>;
  /** A JSON body. */
  body?: unknown;
  /** Give up after this long, ms (default {@link REQUEST_TIMEOUT_MS}). */
  timeoutMs?: number;
}

/** A client of one server: JSON in and out, errors as {@link SmithError}s. */
export class RemoteClient {
  /** The server's base URL. */
  readonly url: string;
  private readonly key: string;

  /** @param target - the server and key (see {@link remoteTarget}) */
  constructor(target: RemoteTarget) {
    this.url = target.url;
    this.key = target.key;
  }

  /**
   * `GET path`.
   * @param path - from the server's root, such as `/api/v1/tasks`
   * @param query - query parameters (undefined ones are left out)
   * @returns the parsed JSON answer
   * @throws SmithError (see {@link RemoteClient.request})
   */
  get<T>(path: string, query?: RequestOptions['query']): Promise<T> {
    return this.request<T>('GET', path, query ? { query } : {});
  }

  /**
   * `POST path` with a JSON body.
   * @param path - from the server's root
   * @param body - the body (default `{}`)
   * @param options - query and timeout
   * @returns the parsed JSON answer
   * @throws SmithError (see {@link RemoteClient.request})
   */
  post<T>(path: string, body: unknown = {}, options: Omit<RequestOptions, 'body'> = {}): Promise<T> {
    return this.request<T>('POST', path, { ...options, body });
  }

  /**
   * Send a request and parse its JSON answer. A 429 is sent again after the server's
   * `Retry-After` (up to 3 times, waits up to 10 s).
   * @param method - GET or POST
   * @param path - from the server's root
   * @param options - query, body, timeout
   * @returns the parsed JSON answer
   * @throws SmithError with the server's code and message for an error answer whose code has an
   *   exit code of its own (`TASK_NOT_FOUND`, `INVALID_TRANSITION`, …); others map by status: 401
   *   and 403 to `INVALID_ARGUMENT` with a message naming SMITH_API_KEY (and the role needed), 409
   *   to `INVALID_TRANSITION`, other 4xx to `INVALID_ARGUMENT`, 429 to `STORE_LOCKED`, 5xx to
   *   `STORE_FAILED`; `STORE_FAILED` naming SMITH_URL when the server cannot be reached, does not
   *   answer in time, or answers something that is not smith's JSON
   */
  async request<T>(method: 'GET' | 'POST', path: string, options: RequestOptions = {}): Promise<T> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) qs.set(k, String(v));
    const q = qs.toString();
    const target = `${this.url}${path}${q ? `?${q}` : ''}`;
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.key}`,
      accept: 'application/json',
    };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(target, {
          method,
          headers,
          ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        throw this.unreachable(err, method, path, timeoutMs);
      }
      const text = await res.text().catch(() => '');
      if (res.status === 429 && attempt < RATE_LIMIT_RETRIES) {
        const wait = retryAfterMs(res.headers.get('retry-after'));
        if (wait !== undefined && wait <= MAX_RETRY_AFTER_MS) {
          await new Promise((r) => setTimeout(r, wait));
          continue;
        }
      }
      let parsed: unknown;
      try {
        parsed = text === '' ? undefined : JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      if (res.ok && parsed !== undefined) return parsed as T;
      throw this.answerError(res.status, parsed, method, path);
    }
  }

  /** The error for a request that got no answer. */
  private unreachable(err: unknown, method: string, path: string, timeoutMs: number): SmithError {
    const name = (err as { name?: string }).name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      return new SmithError(
        'STORE_FAILED',
        `the smith server at ${URL_ENV}=${this.url} did not answer ${method} ${path} within ${Math.round(timeoutMs / 1000)} s; check that it is running and reachable, or unset ${URL_ENV} to run embedded`,
        { cause: err },
      );
    }
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why =
      cause?.code === 'ECONNREFUSED'
        ? 'connection refused (nothing listens there)'
        : cause?.code === 'ENOTFOUND' || cause?.code === 'EAI_AGAIN'
          ? 'its host name does not resolve'
          : (cause?.message ?? (err instanceof Error ? err.message : String(err)));
    return new SmithError(
      'STORE_FAILED',
      `cannot reach the smith server at ${URL_ENV}=${this.url}: ${why}. Start "smith serve" there, correct ${URL_ENV}, or unset ${URL_ENV} to run embedded on this machine's home`,
      { cause: err, context: { url: this.url } },
    );
  }

  /** The error for an answer that is not a success. */
  private answerError(status: number, body: unknown, method: string, path: string): SmithError {
    const b = body as { code?: unknown; message?: unknown } | undefined;
    const context = { url: this.url, status };
    if (typeof b?.code !== 'string' || typeof b.message !== 'string') {
      return new SmithError(
        'STORE_FAILED',
        `the server at ${URL_ENV}=${this.url} answered ${method} ${path} with HTTP ${status} and no smith error body; is ${URL_ENV} the address of "smith serve"?`,
        { context },
      );
    }
    const { code, message } = b as { code: string; message: string };
    if (status === 401) {
      return new SmithError(
        'INVALID_ARGUMENT',
        `the server at ${this.url} refused the key in ${KEY_ENV}: ${message}. Set ${KEY_ENV} to a key of that server (make one there with "smith keys create --role viewer|operator|admin")`,
        { context: { ...context, code } },
      );
    }
    if (status === 403) {
      const role = /needs the (\w+) role/.exec(message)?.[1];
      return new SmithError(
        'INVALID_ARGUMENT',
        `the key in ${KEY_ENV} may not do this: ${message}. ${role ? `Use a key with the ${role} role or higher (make one on the server with "smith keys create --role ${role}")` : 'Use a key with a higher role'}`,
        { context: { ...context, code } },
      );
    }
    if (status === 404 && code === 'NOT_FOUND') {
      return new SmithError(
        'STORE_FAILED',
        `the server at ${URL_ENV}=${this.url} has no route ${method} ${path}: is it a "smith serve" of this version?`,
        { context: { ...context, code } },
      );
    }
    if (status === 429) {
      return new SmithError(
        'STORE_LOCKED',
        `the server at ${this.url} is rate limiting this key: ${message}`,
        {
          context: { ...context, code },
        },
      );
    }
    // a code the CLI gives its own exit code to passes through: the exit code is the embedded one
    const same = new SmithError(code as ErrorCode, message, { context });
    if (exitCodeFor(same) !== EXIT.failed) return same;
    // the API's own codes (INVALID_REQUEST, …) and failures of the server, by status
    if (status >= 500)
      return new SmithError('STORE_FAILED', `the server at ${this.url} failed: ${message}`, {
        context: { ...context, code },
      });
    if (status === 409)
      return new SmithError('INVALID_TRANSITION', message, { context: { ...context, code } });
    if (status >= 400) return new SmithError('INVALID_ARGUMENT', message, { context: { ...context, code } });
    return same;
  }
}

/** `Retry-After` (seconds, or an HTTP date) in ms; undefined when absent or unreadable. */
function retryAfterMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  const s = Number(value);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

/**
 * The client of the server the environment names, or undefined when the command runs embedded.
 * @param env - the environment (default `process.env`)
 * @throws SmithError `INVALID_ARGUMENT` (see {@link remoteTarget})
 */
export function remoteClient(env: NodeJS.ProcessEnv = process.env): RemoteClient | undefined {
  const target = remoteTarget(env);
  return target ? new RemoteClient(target) : undefined;
}

/** Commands that work on this machine only, and why. */
const EMBEDDED_ONLY: Readonly<Record<string, string>> = {
  init: "it writes smith.yaml and a home on this machine; run it where the server's home is",
  demo: "it runs the demo on this machine's checkout with its own engine",
  serve: 'it starts a server itself',
  attach: "it opens a tmux session, which lives on the server's machine",
  worktrees: "task worktrees live on the server's disk",
  'worktrees prune': "task worktrees live on the server's disk",
};

/**
 * A command's path below the program, as a person types it.
 * @param cmd - a commander command
 * @returns `worktrees prune` for the `prune` subcommand of `worktrees`, `tasks` for `tasks`
 */
export function commandPath(cmd: Pick<Command, 'name' | 'parent'>): string {
  const names: string[] = [];
  for (let c: Pick<Command, 'name' | 'parent'> | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Refuse a command that runs embedded only while `SMITH_URL` is set.
 * @param path - the command's path (`init`, `worktrees prune`)
 * @param env - the environment (default `process.env`)
 * @throws SmithError `INVALID_ARGUMENT` (exit 2) saying the command runs embedded and to unset SMITH_URL
 */
export function refuseEmbeddedOnly(path: string, env: NodeJS.ProcessEnv = process.env): void {
  const why = EMBEDDED_ONLY[path];
  if (why === undefined || !isRemote(env)) return;
  throw new SmithError(
    'INVALID_ARGUMENT',
    `smith ${path} runs embedded only (${why}), and ${URL_ENV} is set (${env[URL_ENV]!.trim()}): unset ${URL_ENV} to run it on this machine's home`,
  );
}

/**
 * The one task a name means, resolved by the server as the CLI does embedded (id, id prefix, or
 * key: a key names its newest task).
 * @param api - the server
 * @param idOrKey - what the person typed
 * @returns the task
 * @throws SmithError `TASK_NOT_FOUND` (exit 2) with the server's message; `INVALID_ARGUMENT` when
 *   ambiguous
 */
export async function resolveTask(api: RemoteClient, idOrKey: string): Promise<TaskView> {
  const page = await api.get<{ tasks: TaskView[] }>('/api/v1/tasks', { match: idOrKey });
  const t = page.tasks[0];
  if (!t) throw new SmithError('TASK_NOT_FOUND', `task ${idOrKey} not found: list tasks with "smith tasks"`);
  return t;
}

/** Filters of {@link listTasks}. */
export interface RemoteTaskFilter {
  /** Comma-separated states. */
  state?: string;
  agent?: string;
  /** A workflow id (exact). */
  workflow?: string;
}

/**
 * Tasks newest first, following `next_cursor` pages.
 * @param api - the server
 * @param filter - states, agent, workflow id
 * @param options - `limit`: at most this many (default all); `output`: with each task's output
 * @returns the tasks, newest first
 */
export async function listTasks(
  api: RemoteClient,
  filter: RemoteTaskFilter,
  options: { limit?: number; output?: boolean } = {},
): Promise<ListedTaskView[]> {
  const out: ListedTaskView[] = [];
  // outputs can be long: smaller pages when they come along
  const pageSize = options.output ? 200 : 1000;
  let cursor: string | undefined;
  for (;;) {
    const want = options.limit === undefined ? pageSize : Math.min(pageSize, options.limit - out.length);
    const page = await api.get<{ tasks: ListedTaskView[]; next_cursor: string | null }>('/api/v1/tasks', {
      ...filter,
      limit: want,
      cursor,
      include: options.output ? 'output' : undefined,
    });
    out.push(...page.tasks);
    if (page.next_cursor === null || (options.limit !== undefined && out.length >= options.limit)) return out;
    cursor = page.next_cursor;
  }
}

/**
 * The workflow an id, id prefix or name means (the newest when several match), as the CLI finds
 * one embedded.
 * @param api - the server
 * @param idOrName - what the person typed
 * @returns the workflow
 * @throws SmithError `WORKFLOW_NOT_FOUND` when none matches
 */
export async function resolveWorkflow(api: RemoteClient, idOrName: string): Promise<WorkflowView> {
  const { workflows } = await api.get<{ workflows: WorkflowView[] }>('/api/v1/workflows');
  const found = workflows.filter((w) => w.id.startsWith(idOrName) || w.name === idOrName);
  const exact = found.find((w) => w.id === idOrName);
  const newest = found[found.length - 1];
  const w = exact ?? newest;
  if (!w) throw new SmithError('WORKFLOW_NOT_FOUND', `no workflow matches "${idOrName}"`);
  return w;
}
