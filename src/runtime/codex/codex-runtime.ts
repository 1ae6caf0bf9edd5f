/**
 * The `codex` runtime: OpenAI's Codex CLI run as `codex exec --json … <prompt>`, one process per
 * attempt, supervised like the `process` runtime (own process group, timeout, pause/resume, cancel,
 * no orphans), its JSONL events read by {@link CodexEventParser}.
 *
 * Sources: `codex exec --help` and `codex exec resume --help` of codex-cli 0.169; the config keys
 * (`model_providers.<id>.base_url`, `wire_api`, `env_key`, `request_max_retries`,
 * `stream_max_retries`, `model_provider`, `approval_policy`) from
 * https://github.com/openai/codex/blob/main/docs/config.md; the event schema from
 * `codex-rs/exec/src/exec_events.rs`.
 */
import { existsSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { NonRetryableError, SmithError } from '../../core/errors.js';
import type { AgentSpec } from '../../core/types.js';
import { resolveExecutable } from '../process/command.js';
import { DEFAULT_OUTPUT_LIMIT_BYTES } from '../process/output-capture.js';
import { spawnAttempt } from '../process/process-runtime.js';
import type { EndedBy, StdoutProtocol } from '../process/process-runtime.js';
import type { AgentRuntime, AttemptContext, AttemptHandle, AttemptOutcome, RuntimeEvent } from '../types.js';
import { failedBeforeStart } from '../failed-attempt.js';
import { CodexEventParser, classifyCodexError } from './codex-events.js';
import type { CodexUsageTotals } from './codex-events.js';
import {
  DEFAULT_SESSION_KEEP_MS,
  defaultCodexHomeRoot,
  findRollout,
  prepareAttemptHomes,
  pruneCodexHomes,
  readRolloutUsage,
  releaseAttemptHomes,
} from './codex-home.js';
import type { AttemptHomes } from './codex-home.js';

/** How to install the Codex CLI, quoted in error messages. */
export const CODEX_INSTALL_HINT = 'npm install -g @openai/codex';

/** Default idle watchdog of a codex attempt, in ms (5 minutes), as documented on `AgentSpec.idleTimeoutMs`. */
export const DEFAULT_CODEX_IDLE_TIMEOUT_MS = 300_000;

/** The provider id smith configures for `base_url` when the agent names none. */
export const DEFAULT_CODEX_PROVIDER = 'smith';

/** The environment variable holding the API key of a `base_url` provider when the agent names none. */
export const DEFAULT_CODEX_API_KEY_ENV = 'OPENAI_API_KEY';

/** Codex sandbox modes (`codex exec --sandbox`), the values `permission_mode` takes for codex. */
export const CODEX_SANDBOX_MODES = ['read-only', 'workspace-write', 'danger-full-access'] as const;

/** A codex sandbox mode. */
export type CodexSandboxMode = (typeof CODEX_SANDBOX_MODES)[number];

/**
 * The sandbox used when the agent sets no `permission_mode`: `workspace-write` (the agent edits its
 * own working directory, as a coding agent in its worktree must). Codex's own default is `read-only`.
 */
export const DEFAULT_CODEX_SANDBOX: CodexSandboxMode = 'workspace-write';

/** Minimum ms between two prunings of old task homes by one runtime. */
const PRUNE_INTERVAL_MS = 10 * 60 * 1000;

/** Options of {@link CodexRuntime}. */
export interface CodexRuntimeOptions {
  /**
   * The directory of per-task codex homes (each task's `CODEX_HOME`, kept so later attempts can
   * resume its thread). Default `<os temp dir>/smith-codex`.
   */
  homeRoot?: string;
  /** ms after which a task's codex home, unused, is removed. Default 7 days. */
  sessionKeepMs?: number;
}

/** What {@link buildCodexArgv} needs. */
export interface CodexArgvInput {
  agent: AgentSpec;
  /** The prompt (the task's). */
  prompt: string;
  /** Absolute working directory (`--cd`). */
  workdir: string;
  /** The task's execution mode; `dry-run` forces the `read-only` sandbox. */
  mode?: 'strict' | 'auto' | 'dry-run';
  /** The thread to continue (`codex exec resume <id>`), if any. */
  resumeSessionId?: string | null;
  /** Pass `--skip-git-repo-check` (the working directory is not inside a git repository). */
  skipGitRepoCheck?: boolean;
}

/**
 * The argv of one codex attempt:
 *
 * `[...command | codex] exec --json --cd <workdir> --sandbox <mode> -c approval_policy="never"
 * [--skip-git-repo-check] [-m <model>] [provider -c …] [...args] [resume <id>] -- <prompt>`
 *
 * The provider, when `agent.baseUrl` is set: `-c model_providers.<id>.name="<id>"`,
 * `…base_url="<baseUrl>"`, `…wire_api="responses"`, `…env_key="<apiKeyEnv | OPENAI_API_KEY>"`,
 * `-c model_provider="<id>"` with `<id>` = `agent.provider` or `smith`, and `agent.headers` as the
 * provider's `http_headers` (a TOML inline table); without a base URL,
 * `agent.provider` alone selects a provider codex knows (`-c model_provider="<id>"`). Values are
 * TOML strings (`-c` parses its value as TOML). Exec options go before `resume`, which accepts
 * fewer of its own (codex-cli 0.169); `--` keeps a prompt that starts with `-` a prompt.
 *
 * @param input - the agent, prompt, working directory, mode and session
 * @returns the argv, executable first
 * @throws NonRetryableError `CONFIG_INVALID` for a `permission_mode`, `provider` or `api_key_env`
 *   codex cannot take (see {@link codexConfigProblem})
 */
export function buildCodexArgv(input: CodexArgvInput): string[] {
  const { agent } = input;
  const problem = codexConfigProblem(agent);
  if (problem !== null) throw configError(agent, problem);
  const command = agent.command !== undefined && agent.command.length > 0 ? [...agent.command] : ['codex'];
  const sandbox: CodexSandboxMode =
    input.mode === 'dry-run'
      ? 'read-only'
      : ((agent.permissionMode as CodexSandboxMode | undefined) ?? DEFAULT_CODEX_SANDBOX);
  const argv = [...command, 'exec', '--json', '--cd', input.workdir, '--sandbox', sandbox];
  argv.push('-c', `approval_policy=${toml('never')}`);
  if (input.skipGitRepoCheck === true) argv.push('--skip-git-repo-check');
  if (agent.model !== undefined && agent.model !== '') argv.push('-m', agent.model);
  if (agent.baseUrl !== undefined && agent.baseUrl !== '') {
    const id = agent.provider ?? DEFAULT_CODEX_PROVIDER;
    const key = `model_providers.${id}`;
    argv.push(
      '-c',
      `${key}.name=${toml(id)}`,
      '-c',
      `${key}.base_url=${toml(agent.baseUrl)}`,
      '-c',
      `${key}.wire_api=${toml('responses')}`,
      '-c',
      `${key}.env_key=${toml(agent.apiKeyEnv ?? DEFAULT_CODEX_API_KEY_ENV)}`,
      '-c',
      `model_provider=${toml(id)}`,
    );
    const headers = Object.entries(agent.headers ?? {});
    if (headers.length > 0) {
      const table = headers.map(([name, value]) => `${toml(name)} = ${toml(value)}`).join(', ');
      argv.push('-c', `${key}.http_headers={ ${table} }`);
    }
  } else if (agent.provider !== undefined && agent.provider !== '') {
    argv.push('-c', `model_provider=${toml(agent.provider)}`);
  }
  if (agent.args !== undefined) argv.push(...agent.args);
  if (input.resumeSessionId !== undefined && input.resumeSessionId !== null && input.resumeSessionId !== '') {
    argv.push('resume', input.resumeSessionId);
  }
  argv.push('--', input.prompt);
  return argv;
}

/**
 * What in an agent's config codex cannot take, in words, or null when all is well: a
 * `permission_mode` that is not a codex sandbox mode, a `provider` that is not a bare TOML key
 * (letters, digits, `_`, `-`), an `api_key_env` that is not an environment variable name.
 *
 * @param agent - the agent
 * @returns the problem, or null
 */
export function codexConfigProblem(agent: AgentSpec): string | null {
  if (
    agent.permissionMode !== undefined &&
    !(CODEX_SANDBOX_MODES as readonly string[]).includes(agent.permissionMode)
  ) {
    return `permission_mode "${agent.permissionMode}" is not a codex sandbox mode; use one of ${CODEX_SANDBOX_MODES.join(', ')}`;
  }
  if (agent.provider !== undefined && !/^[A-Za-z0-9_-]+$/.test(agent.provider)) {
    return `provider "${agent.provider}" is not a codex provider id; use letters, digits, "_" and "-" only`;
  }
  if (agent.apiKeyEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(agent.apiKeyEnv)) {
    return `api_key_env "${agent.apiKeyEnv}" is not an environment variable name`;
  }
  return null;
}

/**
 * Runs agents whose `runtime` is `codex`: the Codex CLI in its non-interactive JSON mode.
 *
 * Per attempt: `codex exec --json` (see {@link buildCodexArgv}) in `ctx.workdir`, stdin
 * `/dev/null`, environment `ctx.env` plus, unless `agent.isolateHome === false`, a `CODEX_HOME`
 * kept per task under {@link CodexRuntimeOptions.homeRoot} (`<root>/<task id>/codex-home`, of
 * which only `sessions/` outlives an attempt, so that a later attempt can resume the thread) and a
 * throwaway `HOME` (`<root>/<task id>/home-XXXXXX`, removed after the attempt). Task homes unused
 * for {@link CodexRuntimeOptions.sessionKeepMs} are removed.
 *
 * With an isolated home, codex has no login of its own: give it a key, through a `base_url`
 * provider's `api_key_env` (default `OPENAI_API_KEY`), or `CODEX_API_KEY` for OpenAI itself
 * (`api_key_env` without `base_url` is copied to `CODEX_API_KEY`). Set `isolate_home: false` to use
 * the user's `~/.codex` (its login and config) instead.
 *
 * @example
 * const runtime = new CodexRuntime();
 * await runtime.check(agent); // RUNTIME_NOT_FOUND with the install hint when codex is missing
 * const outcome = await runtime.start(ctx).done; // never rejects
 */
export class CodexRuntime implements AgentRuntime {
  /** The `runtime:` name this adapter serves. */
  readonly kind = 'codex';

  private readonly homeRoot: string;
  private readonly sessionKeepMs: number;
  private lastPrune = 0;

  /** @param options - where task homes live and how long they are kept */
  constructor(options: CodexRuntimeOptions = {}) {
    this.homeRoot = options.homeRoot ?? defaultCodexHomeRoot();
    this.sessionKeepMs = options.sessionKeepMs ?? DEFAULT_SESSION_KEEP_MS;
  }

  /**
   * Check that codex can run for this agent: its config is one codex takes, and its executable
   * (`command[0]`, else `codex`) is found (a path directly, a bare name on the agent's `env.PATH`,
   * else this process's `PATH`) and executable.
   *
   * @param agent - the agent to check
   * @throws NonRetryableError `CONFIG_INVALID` for a config codex cannot take (see {@link codexConfigProblem})
   * @throws SmithError `RUNTIME_NOT_FOUND` naming the command and the install hint when it is missing
   */
  async check(agent: AgentSpec): Promise<void> {
    const problem = codexConfigProblem(agent);
    if (problem !== null) throw configError(agent, problem);
    const command = agent.command?.[0] ?? 'codex';
    const found = await resolveExecutable(command, agent.env?.PATH ?? process.env.PATH);
    if (found.ok) return;
    const where = command.includes('/') ? '' : ' on PATH';
    const what = found.problem === 'not_executable' ? 'is not executable' : `not found${where}`;
    throw new SmithError(
      'RUNTIME_NOT_FOUND',
      `agent "${agent.name}": codex command "${command}" ${what}; install the Codex CLI with "${CODEX_INSTALL_HINT}" or set "command" in smith.yaml`,
      { context: { agent: agent.name, command } },
    );
  }

  /**
   * Start one attempt (see the class summary for the command and homes).
   *
   * Events: `session` (the thread id), `text` (each agent message), `tool_use` / `tool_result`
   * (commands, patches, MCP and web-search calls), `file_change` (per changed path, relative to the
   * working directory), `progress` (the agent's to-do list), `usage` (the tokens since the last
   * `usage` event, with `agent.model`; no cost: the engine prices tokens), `log` (codex's errors and
   * warnings, non-JSON lines) and `message` (anything else).
   *
   * Outcome: `succeeded` with the last agent message as output once `turn.completed` arrives;
   * `turn.failed` fails with its message and a reason from {@link classifyCodexError} (`auth` and
   * not retryable for 401/403 or a missing key, `rate_limited` for 429, `provider` for 5xx); no
   * result and a non-zero exit or a signal is `crashed`; an exit 0 without result is `malformed`;
   * the idle watchdog (`agent.idleTimeoutMs`, default 5 minutes without a stdout line) is `idle`,
   * and codex waiting for an unreachable provider that long is `provider`; a missing executable is
   * `not_installed`, not retryable. `sessionId` and `tokens` (this attempt's, a resumed thread's
   * earlier turns excluded) are set whenever codex reported them; when the turn did not complete,
   * the tokens it spent are read from the thread's rollout file (and reported as a last `usage`
   * event), so failed attempts are charged too.
   *
   * A `resumeSessionId` whose thread is not in the codex home starts a new thread (a `log` event
   * says so). Never throws.
   *
   * @param ctx - the attempt to run
   * @returns the running attempt; its `pid` is also its process group id (null if it did not start)
   */
  start(ctx: AttemptContext): AttemptHandle {
    const { agent } = ctx;
    const problem = codexConfigProblem(agent);
    if (problem !== null) return failedAttemptOf(configError(agent, problem).message, false);

    const emit = (event: RuntimeEvent): void => {
      try {
        ctx.onEvent(event);
      } catch {
        // the engine's handler failing must not break the attempt
      }
    };
    const env: Record<string, string> = { ...ctx.env };
    let homes: AttemptHomes | null = null;
    let codexHome: string;
    if (agent.isolateHome !== false) {
      try {
        homes = prepareAttemptHomes(this.homeRoot, ctx.input.id);
      } catch (err) {
        return failedAttemptOf(
          `agent "${agent.name}": could not make a codex home under "${this.homeRoot}": ${String(err)}; free the disk or set isolate_home: false`,
          true,
        );
      }
      this.prune(homes.taskDir);
      codexHome = homes.codexHome;
      env.CODEX_HOME = homes.codexHome;
      env.HOME = homes.home;
    } else {
      codexHome = env.CODEX_HOME ?? path.join(env.HOME ?? os.homedir(), '.codex');
    }
    if ((agent.baseUrl === undefined || agent.baseUrl === '') && agent.apiKeyEnv !== undefined) {
      const key = env[agent.apiKeyEnv];
      if (key !== undefined && key !== '' && env.CODEX_API_KEY === undefined) env.CODEX_API_KEY = key;
    }

    let resumeId = ctx.resumeSessionId ?? null;
    let baseUsage: CodexUsageTotals | undefined;
    if (resumeId !== null && resumeId !== '') {
      const rollout = findRollout(codexHome, resumeId);
      if (rollout === null) {
        emit({
          type: 'log',
          stream: 'stderr',
          line: `codex session ${resumeId} not found under ${path.join(codexHome, 'sessions')}: starting a new session`,
        });
        resumeId = null;
      } else {
        baseUsage = readRolloutUsage(rollout) ?? undefined;
      }
    }

    const idleMs = agent.idleTimeoutMs ?? DEFAULT_CODEX_IDLE_TIMEOUT_MS;
    const parser = new CodexEventParser({
      workdir: ctx.workdir,
      ...(agent.model !== undefined ? { model: agent.model } : {}),
      ...(baseUsage !== undefined ? { baseUsage } : {}),
      logLimitBytes: agent.outputLimitBytes ?? DEFAULT_OUTPUT_LIMIT_BYTES,
    });
    try {
      parser.addWorkdirAlias(realpathSync(ctx.workdir));
    } catch {
      // a missing working directory fails the spawn, which says so
    }

    const argv = buildCodexArgv({
      agent,
      prompt: ctx.input.prompt,
      workdir: ctx.workdir,
      ...(ctx.mode !== undefined ? { mode: ctx.mode } : {}),
      resumeSessionId: resumeId,
      skipGitRepoCheck: !insideGitRepo(ctx.workdir),
    });

    // Codex retries an unreachable provider forever ("Reconnecting... waiting for network"), each
    // retry a stdout line that keeps the idle watchdog quiet: end it after idleMs of only that.
    const unreachable = new UnreachableWatch(idleMs);
    let handle: AttemptHandle | null = null;

    const protocol: StdoutProtocol = {
      line: (text, truncated, report) => {
        const final = parser.line(text, truncated, report);
        if (parser.reconnecting && !final) {
          unreachable.arm(() =>
            handle?.cancel(`codex could not reach the provider for ${idleMs} ms: ${parser.lastError ?? ''}`),
          );
        } else unreachable.disarm();
        return final;
      },
      finish: (base, ended) => {
        // A turn that did not complete spent tokens too: codex recorded them in the rollout.
        if (parser.result.kind !== 'completed' && parser.sessionId !== null) {
          const rollout = findRollout(codexHome, parser.sessionId);
          const totals = rollout !== null ? readRolloutUsage(rollout) : null;
          if (totals !== null) parser.observeTotals(totals, emit);
        }
        if (parser.droppedLogBytes > 0) {
          emit({
            type: 'log',
            stream: 'stdout',
            line: `non-JSON output not logged: ${parser.droppedLogBytes} bytes past the output limit`,
          });
        }
        return finishOutcome(base, ended, parser, unreachable.fired, idleMs);
      },
    };

    handle = spawnAttempt(ctx, {
      argv,
      env,
      cwd: ctx.workdir,
      stdin: null,
      protocol,
      idleTimeoutMs: idleMs,
      notFoundHint: `install the Codex CLI with "${CODEX_INSTALL_HINT}" or set "command" in smith.yaml`,
    });
    const inner = handle;
    const done = inner.done.then((outcome) => {
      unreachable.disarm();
      if (homes !== null) releaseAttemptHomes(homes);
      return outcome;
    });
    return {
      pid: inner.pid,
      done,
      cancel: (reason: string) => inner.cancel(reason),
      pause: () => {
        unreachable.pause();
        inner.pause();
      },
      resume: () => {
        inner.resume();
        unreachable.resume();
      },
    };
  }

  private prune(keep: string): void {
    const now = Date.now();
    if (now - this.lastPrune < PRUNE_INTERVAL_MS) return;
    this.lastPrune = now;
    pruneCodexHomes(this.homeRoot, this.sessionKeepMs, keep, now);
  }
}

/** The final outcome from the base one and what the parser saw. */
function finishOutcome(
  base: AttemptOutcome,
  ended: EndedBy,
  parser: CodexEventParser,
  unreachable: boolean,
  idleMs: number,
): AttemptOutcome {
  const out: AttemptOutcome = { ...base, output: parser.lastMessage ?? '' };
  if (parser.sessionId !== null) out.sessionId = parser.sessionId;
  const tokens = parser.tokens();
  if (tokens !== null) out.tokens = tokens;
  const fail = (error: string, reason: AttemptOutcome['reason'], retryable = true): AttemptOutcome => {
    const failed: AttemptOutcome = { ...out, status: 'failed', error };
    if (reason !== undefined) failed.reason = reason;
    else delete failed.reason;
    if (retryable) delete failed.retryable;
    else failed.retryable = false;
    return failed;
  };

  // could not spawn: the CLI is missing or not executable
  if (
    base.exitCode === null &&
    base.signal === null &&
    /^spawn (ENOENT: command|EACCES)/.test(base.error ?? '')
  ) {
    return fail(base.error ?? 'codex could not be started', 'not_installed', false);
  }
  if ((ended === 'cancel' && unreachable) || (ended === 'idle' && parser.reconnecting)) {
    return fail(
      `codex could not reach the provider for ${idleMs} ms and was ended: ${parser.lastError ?? 'no answer'}`,
      'provider',
    );
  }
  if (ended === 'cancel' || ended === 'timeout') return out;
  if (ended === 'idle') {
    const last = parser.lastError !== null ? ` (last codex error: ${parser.lastError})` : '';
    return fail(`${base.error ?? `no event for ${idleMs} ms`}${last}`, 'idle');
  }
  if (parser.result.kind === 'completed') {
    const ok: AttemptOutcome = { ...out, status: 'succeeded' };
    delete ok.error;
    delete ok.reason;
    delete ok.retryable;
    return ok;
  }
  if (parser.result.kind === 'failed') {
    const { reason, retryable } = classifyCodexError(parser.result.message);
    return fail(`codex turn failed: ${parser.result.message}`, reason, retryable);
  }
  // could not spawn for another reason (a missing working directory): the base says it
  if (base.exitCode === null && base.signal === null && (base.error ?? '').startsWith('spawn ')) return out;
  if (base.signal !== null || (base.exitCode !== null && base.exitCode !== 0)) {
    const how = base.signal !== null ? `killed by ${base.signal}` : `exit code ${base.exitCode}`;
    const said = lastErrorLine(base.stderr) ?? parser.lastError;
    return fail(`codex ended without a result: ${how}${said !== null ? `: ${said}` : ''}`, 'crashed');
  }
  return fail(
    'codex exited 0 without finishing its turn (no turn.completed or turn.failed event on stdout)',
    'malformed',
  );
}

/** The last `Error: …` line codex printed on stderr (before its backtrace), if any. */
function lastErrorLine(stderr: string): string | null {
  const lines = stderr.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]?.trim();
    if (line !== undefined && /^Error:/.test(line)) return line.slice(0, 500);
  }
  return null;
}

/** Whether `dir` or one of its parents holds `.git` (a repository or a worktree). */
function insideGitRepo(dir: string): boolean {
  let current = path.resolve(dir);
  for (;;) {
    if (existsSync(path.join(current, '.git'))) return true;
    const parent = path.dirname(current);
    if (parent === current) return false;
    current = parent;
  }
}

/** A TOML basic string (JSON's escapes are TOML's). */
function toml(value: string): string {
  return JSON.stringify(value);
}

function configError(agent: AgentSpec, problem: string): NonRetryableError {
  return new NonRetryableError(
    'CONFIG_INVALID',
    `agent "${agent.name}" (runtime codex): ${problem} in smith.yaml`,
    {
      context: { agent: agent.name },
    },
  );
}

function failedAttemptOf(error: string, retryable: boolean) {
  return failedBeforeStart(error, retryable ? {} : { retryable: false });
}

/** A one-shot timer that fires once codex has only been reconnecting for `ms`; stops while paused. */
class UnreachableWatch {
  fired = false;
  private timer: NodeJS.Timeout | null = null;
  private action: (() => void) | null = null;
  private paused = false;

  constructor(private readonly ms: number) {}

  arm(action: () => void): void {
    this.action = action;
    if (this.timer !== null || this.paused || this.fired || this.ms <= 0) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.fired = true;
        this.action?.();
      },
      Math.min(this.ms, 2_147_483_647),
    );
  }

  disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.action = null;
  }

  pause(): void {
    this.paused = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  resume(): void {
    this.paused = false;
    const action = this.action;
    if (action !== null) this.arm(action);
  }
}
