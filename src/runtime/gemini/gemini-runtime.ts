/**
 * The `gemini` runtime: Google's Gemini CLI in headless mode (`gemini --prompt=… --output-format
 * stream-json`), one CLI process per attempt, on the `process` runtime's process handling
 * ({@link spawnAttempt}: own process group, timeout, pause/resume, cancel, output caps, idle
 * watchdog).
 *
 * Flags and settings are those of Gemini CLI 0.61 (`gemini --help`; docs bundled with the package
 * under `bundle/docs/`: `cli/headless.md`, `cli/trusted-folders.md`, `cli/session-management.md`,
 * `reference/configuration.md`, `resources/troubleshooting.md`; online at https://geminicli.com/docs/).
 */
import { tmpdir } from 'node:os';
import path from 'node:path';

import { NonRetryableError, SmithError } from '../../core/errors.js';
import type { AgentSpec, Json } from '../../core/types.js';
import { resolveExecutable } from '../process/command.js';
import { DEFAULT_OUTPUT_LIMIT_BYTES } from '../process/output-capture.js';
import { spawnAttempt } from '../process/process-runtime.js';
import type { EndedBy, StdoutProtocol } from '../process/process-runtime.js';
import { promptWithGuidance } from '../types.js';
import type { AgentRuntime, AttemptContext, AttemptHandle, AttemptOutcome, RuntimeEvent } from '../types.js';
import { classifyFailure } from './failure.js';
import {
  DEFAULT_GEMINI_SETTINGS,
  findSessionFile,
  homeNameFor,
  mergeSettings,
  prepareHome,
  pruneHomes,
} from './home.js';
import { GeminiStreamParser } from './stream-json.js';

/** Default idle watchdog of a gemini attempt, in ms (5 minutes without a stdout line). */
export const DEFAULT_GEMINI_IDLE_TIMEOUT_MS = 300_000;
/** The command that installs Gemini CLI. */
export const GEMINI_INSTALL_HINT = 'npm install -g @google/gemini-cli';
/** The approval modes of `--approval-mode` (Gemini CLI 0.61 `gemini --help`). */
export const GEMINI_APPROVAL_MODES: readonly string[] = ['default', 'auto_edit', 'yolo', 'plan'];
/** Default ms a task home may stay unused before it is removed: 30 days, the CLI's own session retention. */
export const DEFAULT_HOME_RETENTION_MS = 30 * 24 * 3_600_000;

/** Options of {@link GeminiRuntime}. */
export interface GeminiRuntimeOptions {
  /** The folder holding one home per task. Default `<os tmp>/smith-gemini`. */
  homeRoot?: string;
  /**
   * Gemini CLI settings merged over {@link DEFAULT_GEMINI_SETTINGS} in the `settings.json` of
   * isolated homes (objects merge key by key), for example `{ general: { maxAttempts: 1 } }`.
   */
  settings?: { [key: string]: Json };
  /** Task homes unused for this many ms are removed when the runtime first starts an attempt; 0 = never. Default 30 days. */
  homeRetentionMs?: number;
}

/** What {@link planGeminiAttempt} decided for one attempt. */
export interface GeminiAttemptPlan {
  /** The full argv. */
  argv: string[];
  /** The environment of the CLI. */
  env: Record<string, string>;
  /** The home it runs with (its `.gemini` holds settings and sessions), or null for the user's. */
  home: string | null;
  /** The session it resumes, when it resumes one. */
  resume: string | null;
  /** Things the user should know (a session that could not be resumed …), reported as `log` events. */
  notes: string[];
  /** Idle watchdog in ms. */
  idleTimeoutMs: number;
}

/** Why an attempt cannot start, before anything runs. */
export class GeminiPlanError extends Error {
  /**
   * @param message - what and what to do
   * @param reason - the failure code of the attempt
   */
  constructor(
    message: string,
    readonly reason: 'auth' | 'crashed',
  ) {
    super(message);
    this.name = 'GeminiPlanError';
  }
}

function executableOf(agent: AgentSpec): string[] {
  const command = agent.command;
  return command !== undefined && command.length > 0 && command[0] !== '' ? [...command] : ['gemini'];
}

function apiKeyEnvOf(agent: AgentSpec): string {
  return agent.apiKeyEnv ?? 'GEMINI_API_KEY';
}

/**
 * Decide the argv, environment and home of one attempt (and create the home). Exported for tests
 * and for tools that show what would run.
 *
 * argv: `agent.command` (default `["gemini"]`), then `--prompt=<prompt>` (the task's prompt with
 * the attempt's guidance, see {@link promptWithGuidance}; one argument, so a prompt starting with
 * `-` stays a prompt), `--output-format stream-json`, `--skip-trust` (the folder is
 * trusted for this run: no prompt, see `docs/cli/trusted-folders.md`), `--approval-mode <mode>`
 * (`plan`, read-only, for dry-run tasks; else `permissionMode`, default `yolo`: nobody is there to
 * approve), `--model <model>` when set, `--resume <id>` when `ctx.resumeSessionId` names a session
 * the home holds for this working directory, then `agent.args`.
 *
 * Environment: `ctx.env`, plus `GEMINI_API_KEY` from `ctx.env[agent.apiKeyEnv]` (default
 * `GEMINI_API_KEY`), `GOOGLE_GEMINI_BASE_URL` from `agent.baseUrl`, `GEMINI_CLI_NO_RELAUNCH=true`
 * unless set (the CLI's launcher otherwise starts a second Node process only to raise its heap to
 * half the machine's memory: `bundle/gemini.js`), and for an isolated home
 * (`agent.isolateHome` not false) `HOME`, `GEMINI_CLI_HOME` and `TMPDIR` in the task's home
 * `<homeRoot>/<task id>`, whose `.gemini/settings.json` is (re)written from the settings
 * (`agent.maxTurns` → `model.maxSessionTurns`).
 *
 * @param ctx - the attempt
 * @param options - the runtime's options
 * @returns the plan
 * @throws GeminiPlanError when the API key is missing (isolated home) or the home cannot be made
 */
export function planGeminiAttempt(
  ctx: AttemptContext,
  options: GeminiRuntimeOptions = {},
): GeminiAttemptPlan {
  const agent = ctx.agent;
  const isolate = agent.isolateHome !== false;
  const notes: string[] = [];
  const env: Record<string, string> = { ...ctx.env };

  const keyEnv = apiKeyEnvOf(agent);
  const key = ctx.env[keyEnv];
  if (key !== undefined && key !== '') env.GEMINI_API_KEY = key;
  else if (isolate || agent.apiKeyEnv !== undefined) {
    throw new GeminiPlanError(
      `agent "${agent.name}": the Gemini API key is missing: environment variable ${keyEnv} is not set; set it (or name another variable with "api_key_env" in smith.yaml)`,
      'auth',
    );
  }
  if (agent.baseUrl !== undefined && agent.baseUrl !== '') env.GOOGLE_GEMINI_BASE_URL = agent.baseUrl;
  // One process, not a launcher plus a relaunched CLI with half the machine's memory as heap.
  if (env.GEMINI_CLI_NO_RELAUNCH === undefined) env.GEMINI_CLI_NO_RELAUNCH = 'true';

  let home: string | null = null;
  if (isolate) {
    home = path.join(options.homeRoot ?? path.join(tmpdir(), 'smith-gemini'), homeNameFor(ctx.input.id));
    const extra: { [key: string]: Json } = {};
    if (agent.maxTurns !== undefined) extra.model = { maxSessionTurns: agent.maxTurns };
    try {
      env.TMPDIR = prepareHome(home, mergeSettings(DEFAULT_GEMINI_SETTINGS, options.settings, extra));
    } catch (err) {
      throw new GeminiPlanError(
        `agent "${agent.name}": cannot prepare the Gemini CLI home "${home}": ${err instanceof Error ? err.message : String(err)}; check that the folder is writable (or set "isolate_home: false")`,
        'crashed',
      );
    }
    env.HOME = home;
    env.GEMINI_CLI_HOME = home;
  } else if (agent.maxTurns !== undefined) {
    notes.push(
      `max_turns ${agent.maxTurns} is not applied: with isolate_home false the CLI's own settings.json (model.maxSessionTurns) decides`,
    );
  }

  let resume: string | null = null;
  const wanted = ctx.resumeSessionId;
  if (wanted !== undefined && wanted !== '') {
    const geminiHome = home ?? env.GEMINI_CLI_HOME ?? env.HOME ?? '';
    if (geminiHome !== '' && findSessionFile(geminiHome, ctx.workdir, wanted) !== null) resume = wanted;
    else
      notes.push(
        `session ${wanted} is not in ${path.join(geminiHome, '.gemini', 'tmp')} for ${ctx.workdir}: starting a new session`,
      );
  }

  const mode = ctx.mode === 'dry-run' ? 'plan' : (agent.permissionMode ?? 'yolo');
  const argv = [
    ...executableOf(agent),
    `--prompt=${promptWithGuidance(ctx.input)}`,
    '--output-format',
    'stream-json',
    '--skip-trust',
    '--approval-mode',
    mode,
  ];
  if (agent.model !== undefined && agent.model !== '') argv.push('--model', agent.model);
  if (resume !== null) argv.push('--resume', resume);
  if (agent.args !== undefined) argv.push(...agent.args);
  return {
    argv,
    env,
    home,
    resume,
    notes,
    idleTimeoutMs: agent.idleTimeoutMs ?? DEFAULT_GEMINI_IDLE_TIMEOUT_MS,
  };
}

/** A handle for an attempt that failed before anything ran. */
function failedHandle(outcome: AttemptOutcome): AttemptHandle {
  return {
    pid: null,
    done: Promise.resolve(outcome),
    cancel: () => undefined,
    pause: () => undefined,
    resume: () => undefined,
  };
}

/** Longest message detail quoted in an error, in characters. */
const DETAIL_CHARS = 500;

function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i];
    if (line !== undefined && line !== '' && !line.startsWith('at ')) return line;
  }
  return '';
}

/**
 * The stdout protocol of one attempt: the stream-json parser, and the outcome from its result,
 * the exit code and the messages.
 */
function geminiProtocol(ctx: AttemptContext, parser: GeminiStreamParser): StdoutProtocol {
  const name = ctx.agent.name;
  const emitSafe = (event: RuntimeEvent): void => {
    try {
      ctx.onEvent(event);
    } catch {
      // the engine's handler failing must not change the outcome
    }
  };
  return {
    line: (text, truncated, emit) => parser.line(text, truncated, emit),
    finish: (base: AttemptOutcome, ended: EndedBy): AttemptOutcome => {
      parser.flush(emitSafe);
      const out: AttemptOutcome = { ...base, output: parser.output };
      delete out.reason;
      delete out.retryable;
      if (parser.sessionId !== null) out.sessionId = parser.sessionId;
      const tokens = parser.totalTokens();
      if (tokens !== undefined) out.tokens = tokens;
      const fail = (reason: AttemptOutcome['reason'], retryable: boolean, error: string): AttemptOutcome => {
        out.status = 'failed';
        out.reason = reason;
        if (!retryable) out.retryable = false;
        out.error = error;
        return out;
      };

      if (ended === 'cancel' || ended === 'timeout') return out;
      if (ended === 'idle')
        return fail(
          'idle',
          true,
          `agent "${name}": gemini went silent: ${base.error ?? 'no event'}; raise "idle_timeout" of the agent if its model is slow, or check the API it calls`,
        );
      if (base.exitCode === null && base.signal === null && base.error?.startsWith('spawn ') === true) {
        const missing = base.error.startsWith('spawn ENOENT') || base.error.startsWith('spawn EACCES');
        if (missing) return fail('not_installed', false, `agent "${name}": ${base.error}`);
        return fail('crashed', true, `agent "${name}": ${base.error}`);
      }

      const result = parser.result;
      const exitOk = base.exitCode === 0 || ended === 'after_result';
      if (result !== null && result.status === 'success' && exitOk) {
        out.status = 'succeeded';
        delete out.error;
        return out;
      }

      const messages = [result?.error?.message ?? '', ...parser.errors, base.stderr.slice(-4096)].join('\n');
      if (result === null && base.signal !== null && ended !== 'after_result')
        return fail(
          'crashed',
          true,
          `agent "${name}": gemini was killed by ${base.signal} before its result`,
        );
      if (result === null && base.exitCode === 0)
        return fail(
          'crashed',
          true,
          `agent "${name}": gemini exited (exit code 0) without a result line; it does so when something sends it SIGTERM`,
        );
      const code = ended === 'after_result' ? null : base.exitCode;
      const failure = classifyFailure(code, messages);
      const detail = (result?.error?.message ?? parser.errors.at(-1) ?? lastLine(base.stderr)).slice(
        0,
        DETAIL_CHARS,
      );
      const codeText = code !== null && code !== 0 ? ` (exit code ${code})` : '';
      return fail(
        failure.reason,
        failure.retryable,
        `agent "${name}": gemini ${failure.what}${codeText}${detail !== '' ? `: ${detail}` : ''}; ${failure.hint}`,
      );
    },
  };
}

/**
 * Runs agents whose `runtime` is `gemini`: Gemini CLI in headless mode, one process per attempt.
 *
 * Outcome: `succeeded` with the final answer as output when the CLI's `result` line says
 * `success` and it exits 0; the session id of its `init` line (`sessionId`, and a `session`
 * event); the result's tokens (`tokens`, and one `usage` event per model). Failures carry a
 * `reason`: `not_installed` (no CLI), `auth` (no key, 401/403, invalid key, exit 41), `rate_limited`
 * (429), `provider` (5xx and other API errors), `idle` (no stdout line for `idleTimeoutMs`,
 * default 5 minutes), `crashed` (other exit codes: 42 input error, 52 config error, 53 turn limit
 * exceeded, 54 fatal tool error, 55 untrusted folder, 130 canceled; a signal; no result line).
 *
 * Sessions: each task gets a home `<homeRoot>/<task id>` (unless `isolateHome` is false) that
 * persists across its attempts, so a later attempt with `resumeSessionId` continues the session
 * (`--resume <id>`); homes unused for `homeRetentionMs` are removed.
 *
 * @example
 * const runtime = new GeminiRuntime();
 * await runtime.check(agent); // throws RUNTIME_NOT_FOUND when gemini is not installed
 * const outcome = await runtime.start(ctx).done; // never rejects
 */
export class GeminiRuntime implements AgentRuntime {
  /** The `runtime:` name this adapter serves. */
  readonly kind = 'gemini';
  private readonly options: GeminiRuntimeOptions;
  private pruned = false;

  /** @param options - where task homes live, extra CLI settings, home retention */
  constructor(options: GeminiRuntimeOptions = {}) {
    this.options = options;
  }

  /**
   * Check that the agent can run: its executable (`command[0]`, default `gemini`) exists and is
   * executable (on the agent's `env.PATH`, else this process's), its `permissionMode` is one of
   * {@link GEMINI_APPROVAL_MODES}, and, with an isolated home, its API key variable is set (in
   * the agent's `env` or this process's).
   *
   * @param agent - the agent to check
   * @throws SmithError `RUNTIME_NOT_FOUND` when the CLI is missing, naming it and
   *   `npm install -g @google/gemini-cli`
   * @throws NonRetryableError `CONFIG_INVALID` for an unknown permission mode or a missing API key
   */
  async check(agent: AgentSpec): Promise<void> {
    const command = executableOf(agent)[0] ?? 'gemini';
    const found = await resolveExecutable(command, agent.env?.PATH ?? process.env.PATH);
    if (!found.ok) {
      const where = command.includes('/') ? '' : ' on PATH';
      const problem = found.problem === 'not_executable' ? 'is not executable' : `not found${where}`;
      throw new SmithError(
        'RUNTIME_NOT_FOUND',
        `agent "${agent.name}": Gemini CLI "${command}" ${problem}; install it with "${GEMINI_INSTALL_HINT}" or set "command" in smith.yaml`,
        { context: { agent: agent.name, command } },
      );
    }
    if (agent.permissionMode !== undefined && !GEMINI_APPROVAL_MODES.includes(agent.permissionMode)) {
      throw new NonRetryableError(
        'CONFIG_INVALID',
        `agent "${agent.name}": permission_mode "${agent.permissionMode}" is not a Gemini CLI approval mode; use one of ${GEMINI_APPROVAL_MODES.join(', ')}`,
        { context: { agent: agent.name, field: 'permission_mode' } },
      );
    }
    if (agent.isolateHome !== false || agent.apiKeyEnv !== undefined) {
      const keyEnv = apiKeyEnvOf(agent);
      const key = agent.env?.[keyEnv] ?? process.env[keyEnv];
      if (key === undefined || key === '') {
        throw new NonRetryableError(
          'CONFIG_INVALID',
          `agent "${agent.name}": the Gemini API key is missing: environment variable ${keyEnv} is not set; set it (or name another variable with "api_key_env" in smith.yaml)`,
          { context: { agent: agent.name, field: 'api_key_env' } },
        );
      }
    }
  }

  /**
   * Start one attempt (see {@link planGeminiAttempt} for the argv, environment and home). stdin is
   * `/dev/null`. Gemini CLI has no spend cap of its own: an attempt whose `ctx.budget` has nothing
   * left fails at once with `budget_exceeded`; otherwise the engine enforces the budget from the
   * `usage` events. Never throws: no budget, a missing key, a home that cannot be made or a
   * missing CLI end `done` as failed with a reason.
   *
   * @param ctx - the attempt
   * @returns the running attempt
   */
  start(ctx: AttemptContext): AttemptHandle {
    const base = {
      exitCode: null,
      signal: null,
      output: '',
      stdoutBytes: 0,
      stderrBytes: 0,
      droppedBytes: 0,
      stderr: '',
    };
    const left = ctx.budget;
    if ((left?.usd !== undefined && !(left.usd > 0)) || (left?.tokens !== undefined && !(left.tokens > 0))) {
      const what = left.usd !== undefined && !(left.usd > 0) ? `${left.usd} USD` : `${left.tokens} tokens`;
      return failedHandle({
        ...base,
        status: 'failed',
        error: `agent "${ctx.agent.name}": no budget left for this attempt (${what}); raise the task's or the agent's budget`,
        reason: 'budget_exceeded',
        retryable: false,
      });
    }
    let plan: GeminiAttemptPlan;
    try {
      plan = planGeminiAttempt(ctx, this.options);
    } catch (err) {
      const reason = err instanceof GeminiPlanError ? err.reason : 'crashed';
      return failedHandle({
        ...base,
        status: 'failed',
        error: err instanceof Error ? err.message : String(err),
        reason,
        retryable: false,
      });
    }
    this.pruneOnce(plan.home);
    for (const note of plan.notes) {
      try {
        ctx.onEvent({ type: 'log', stream: 'stderr', line: `smith: ${note}` });
      } catch {
        // the engine's handler failing must not stop the attempt
      }
    }
    const parser = new GeminiStreamParser({
      workdir: ctx.workdir,
      limitBytes: ctx.agent.outputLimitBytes ?? DEFAULT_OUTPUT_LIMIT_BYTES,
    });
    return spawnAttempt(ctx, {
      argv: plan.argv,
      env: plan.env,
      cwd: ctx.workdir,
      stdin: null,
      protocol: geminiProtocol(ctx, parser),
      idleTimeoutMs: plan.idleTimeoutMs,
      notFoundHint: `install Gemini CLI with "${GEMINI_INSTALL_HINT}" or set "command" in smith.yaml`,
    });
  }

  /** Remove stale task homes once per runtime, in the background, sparing `current`. */
  private pruneOnce(current: string | null): void {
    if (this.pruned || current === null) return;
    this.pruned = true;
    const retention = this.options.homeRetentionMs ?? DEFAULT_HOME_RETENTION_MS;
    if (retention <= 0) return;
    const root = path.dirname(current);
    setImmediate(() => pruneHomes(root, retention));
  }
}
