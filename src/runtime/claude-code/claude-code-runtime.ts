/**
 * The `claude-code` runtime: each attempt runs Claude Code headless,
 * `claude -p --output-format stream-json --verbose … -- <prompt>`, in its own process group (through
 * {@link spawnAttempt}), and reads its stream-json events (see {@link StreamJsonParser}).
 *
 * Sources: https://docs.claude.com/en/docs/claude-code/headless and
 * https://docs.claude.com/en/docs/claude-code/cli-reference (flags, checked against
 * `claude --help` of Claude Code 2.1.197).
 */
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { SmithError } from '../../core/errors.js';
import type { AgentSpec } from '../../core/types.js';
import { resolveExecutable } from '../process/command.js';
import { DEFAULT_OUTPUT_LIMIT_BYTES } from '../process/output-capture.js';
import { spawnAttempt } from '../process/process-runtime.js';
import type { EndedBy, StdoutProtocol } from '../process/process-runtime.js';
import { promptWithGuidance } from '../types.js';
import type { AgentRuntime, AttemptContext, AttemptHandle, AttemptOutcome, RuntimeEvent } from '../types.js';
import { failedBeforeStart } from '../failed-attempt.js';
import { StreamJsonParser, classifyFailure } from './stream-json.js';

/** The executable run when the agent sets no `command`, looked up on `PATH`. */
export const DEFAULT_CLAUDE_COMMAND = 'claude';
/** Idle watchdog of a claude-code attempt when the agent sets no `idleTimeoutMs`: 5 minutes (ms). */
export const DEFAULT_CLAUDE_IDLE_TIMEOUT_MS = 300_000;
/** How to install the CLI, for error messages. */
export const CLAUDE_INSTALL_HINT =
  'install Claude Code with "npm install -g @anthropic-ai/claude-code", or set "command" in smith.yaml to its path';

/**
 * Variables a Claude Code session sets for the processes it starts. They are removed so that an
 * agent started from inside a Claude Code session (smith run by Claude Code) does not believe it is
 * nested in it.
 */
export const NESTED_SESSION_ENV = ['CLAUDECODE', 'CLAUDE_CODE_ENTRYPOINT', 'CLAUDE_CODE_SSE_PORT'] as const;

/** Arguments that would lift the read-only `plan` mode of a dry-run: dropped from `args` then. */
const BYPASS_FLAGS = new Set(['--dangerously-skip-permissions', '--allow-dangerously-skip-permissions']);

/** Options of {@link ClaudeCodeRuntime}. */
export interface ClaudeCodeRuntimeOptions {
  /** ms the CLI may linger after its `result` line before its group is ended. Default 5000. */
  lingerMs?: number;
}

/**
 * Runs agents whose `runtime` is `claude-code` with the Claude Code CLI.
 *
 * Agent settings used: `command` (the executable and arguments put before smith's; default
 * `claude` on `PATH`), `model`, `allowedTools`, `disallowedTools`, `permissionMode`, `maxTurns`,
 * `maxBudgetUsd`, `mcpConfig`, `appendSystemPrompt`, `systemPrompt`, `args` (appended), `baseUrl`
 * (`ANTHROPIC_BASE_URL`), `idleTimeoutMs` (default 5 minutes), `isolateHome` (default false),
 * `timeoutMs`, `killGraceMs`, `outputLimitBytes`.
 *
 * @example
 * const runtime = new ClaudeCodeRuntime();
 * await runtime.check(agent); // throws RUNTIME_NOT_FOUND when claude is not installed
 * const outcome = await runtime.start(ctx).done; // never rejects
 * outcome.sessionId; // resume it with ctx.resumeSessionId on the next attempt
 */
export class ClaudeCodeRuntime implements AgentRuntime {
  /** The `runtime:` name this adapter serves. */
  readonly kind = 'claude-code';
  private readonly lingerMs: number | undefined;

  /** @param options - linger after the result (tests shorten it) */
  constructor(options: ClaudeCodeRuntimeOptions = {}) {
    this.lingerMs = options.lingerMs;
  }

  /**
   * Check that the Claude Code executable exists and may be executed: `agent.command[0]` when set
   * (a path, or a name searched on `PATH`), else `claude` on `PATH` (the agent's `env.PATH`, else
   * this process's).
   *
   * @param agent - the agent to check
   * @throws SmithError `RUNTIME_NOT_FOUND` naming the command and how to install Claude Code
   */
  async check(agent: AgentSpec): Promise<void> {
    const command = claudeCommand(agent)[0] ?? DEFAULT_CLAUDE_COMMAND;
    const found = await resolveExecutable(command, agent.env?.PATH ?? process.env.PATH);
    if (found.ok) return;
    const where = command.includes('/') ? `"${command}"` : `"${command}" on PATH`;
    const problem = found.problem === 'not_executable' ? 'is not executable' : 'was not found';
    throw new SmithError(
      'RUNTIME_NOT_FOUND',
      `agent "${agent.name}": the Claude Code CLI ${where} ${problem}; ${CLAUDE_INSTALL_HINT}`,
      { context: { agent: agent.name, command } },
    );
  }

  /**
   * Start one attempt: spawn the CLI (argv from {@link buildClaudeArgv}, environment from
   * {@link buildClaudeEnv}, stdin `/dev/null`, cwd `ctx.workdir`) and read its stream-json.
   *
   * Outcome: `succeeded` only when a `result` with `subtype: "success"` and `is_error: false`
   * arrived (a CLI that lingers after it is ended, which is not a failure); `output` is the result
   * text, `costUsd` its `total_cost_usd`, `tokens` its `usage`, `sessionId` the session's id.
   * Failures carry a `reason`: `not_installed` (the CLI could not be spawned), `auth`, `provider`,
   * `rate_limited` (from the API error the CLI reports), `budget_exceeded` (`--max-budget-usd` or
   * `--max-turns` reached, or no budget left for the attempt), `idle` (no stdout line for
   * `idleTimeoutMs`), `malformed` (exited 0 without a result, or a result line too long to read),
   * `crashed` (non-zero exit or a signal without a result). Timeout and cancel give `timed_out` and
   * `canceled`.
   *
   * Never throws.
   *
   * @param ctx - the attempt to run
   * @returns the running attempt; its `pid` is also its process group id (null if it did not start)
   */
  start(ctx: AttemptContext): AttemptHandle {
    const budget = claudeBudgetUsd(ctx);
    if (budget !== undefined && !(budget > 0)) {
      const error = `agent "${ctx.agent.name}": no budget left for this attempt (${budget} USD); raise the task's or the agent's budget`;
      return failedBeforeStart(error, { reason: 'budget_exceeded', retryable: false });
    }

    let home: string | null = null;
    const env = buildClaudeEnv(ctx);
    if (ctx.agent.isolateHome === true) {
      try {
        home = mkdtempSync(path.join(tmpdir(), 'smith-claude-home-'));
      } catch (err) {
        const error = `agent "${ctx.agent.name}": could not make a HOME for isolate_home in ${tmpdir()}: ${String(err)}`;
        return failedBeforeStart(error, { reason: 'crashed', retryable: false });
      }
      env.HOME = home;
    }
    const parser = new StreamJsonParser({
      workdir: ctx.workdir,
      workdirAliases: realPathOr(ctx.workdir),
      maxLogBytes: ctx.agent.outputLimitBytes ?? DEFAULT_OUTPUT_LIMIT_BYTES,
    });
    const protocol: StdoutProtocol = {
      line(text: string, truncated: boolean, emit: (event: RuntimeEvent) => void): boolean {
        const step = parser.push(text, truncated);
        for (const event of step.events) emit(event);
        return step.final;
      },
      finish: (base: AttemptOutcome, ended: EndedBy): AttemptOutcome => {
        for (const event of parser.end()) {
          try {
            ctx.onEvent(event);
          } catch {
            // the engine's handler failing must not lose the outcome
          }
        }
        return claudeOutcome(ctx, parser, base, ended);
      },
    };
    const argv = buildClaudeArgv(ctx);
    const handle = spawnAttempt(ctx, {
      argv,
      env,
      stdin: null,
      protocol,
      idleTimeoutMs: ctx.agent.idleTimeoutMs ?? DEFAULT_CLAUDE_IDLE_TIMEOUT_MS,
      ...(this.lingerMs !== undefined ? { lingerMs: this.lingerMs } : {}),
      notFoundHint: CLAUDE_INSTALL_HINT,
    });
    if (home === null) return handle;
    const dir = home;
    return {
      pid: handle.pid,
      done: handle.done.then((outcome) => {
        try {
          rmSync(dir, { recursive: true, force: true });
        } catch {
          // a HOME left in the temp directory is not worth failing the attempt for
        }
        return outcome;
      }),
      cancel: (reason: string) => handle.cancel(reason),
      pause: () => handle.pause(),
      resume: () => handle.resume(),
    };
  }
}

/** The agent's `command` (without empty elements), or `["claude"]`. */
function claudeCommand(agent: AgentSpec): string[] {
  const command = agent.command?.filter((c) => c !== '') ?? [];
  return command.length > 0 ? command : [DEFAULT_CLAUDE_COMMAND];
}

/**
 * The `--max-budget-usd` of an attempt: the smaller of the agent's `maxBudgetUsd` and what is left
 * of the task's budget (`ctx.budget.usd`), in USD; undefined when neither is set.
 *
 * @param ctx - the attempt
 * @returns USD, or undefined for no cap
 */
export function claudeBudgetUsd(ctx: AttemptContext): number | undefined {
  const caps = [ctx.agent.maxBudgetUsd, ctx.budget?.usd].filter(
    (v): v is number => typeof v === 'number' && !Number.isNaN(v),
  );
  return caps.length === 0 ? undefined : Math.min(...caps);
}

/**
 * The argv of one attempt:
 * `[...command, "-p", "--output-format", "stream-json", "--verbose", "--model", m,
 * "--permission-mode", p, "--allowedTools", …tools, "--disallowedTools", …tools, "--max-turns", n,
 * "--max-budget-usd", usd, "--mcp-config", file, "--append-system-prompt", s, "--system-prompt", s,
 * "--resume", id, …args, "--", prompt]`, each flag only when its setting is set. The prompt is the
 * task's prompt with the attempt's guidance (see {@link promptWithGuidance}); it comes
 * after `--` so that neither a prompt starting with `-` nor a list flag (`--allowedTools` takes
 * several values) can swallow it. A dry-run (`ctx.mode === 'dry-run'`) always runs with
 * `--permission-mode plan`, and `--permission-mode` / `--dangerously-skip-permissions` in `args`
 * are dropped then.
 *
 * @param ctx - the attempt
 * @returns the argv to spawn (`argv[0]` is the executable)
 */
export function buildClaudeArgv(ctx: AttemptContext): string[] {
  const agent = ctx.agent;
  const dryRun = ctx.mode === 'dry-run';
  const argv = [...claudeCommand(agent), '-p', '--output-format', 'stream-json', '--verbose'];
  if (agent.model !== undefined && agent.model !== '') argv.push('--model', agent.model);
  const mode = dryRun ? 'plan' : agent.permissionMode;
  if (mode !== undefined && mode !== '') argv.push('--permission-mode', mode);
  if (agent.allowedTools !== undefined && agent.allowedTools.length > 0) {
    argv.push('--allowedTools', ...agent.allowedTools);
  }
  if (agent.disallowedTools !== undefined && agent.disallowedTools.length > 0) {
    argv.push('--disallowedTools', ...agent.disallowedTools);
  }
  if (agent.maxTurns !== undefined) argv.push('--max-turns', String(agent.maxTurns));
  const budget = claudeBudgetUsd(ctx);
  if (budget !== undefined && budget > 0) argv.push('--max-budget-usd', String(budget));
  if (agent.mcpConfig !== undefined && agent.mcpConfig !== '') argv.push('--mcp-config', agent.mcpConfig);
  if (agent.appendSystemPrompt !== undefined && agent.appendSystemPrompt !== '') {
    argv.push('--append-system-prompt', agent.appendSystemPrompt);
  }
  if (agent.systemPrompt !== undefined && agent.systemPrompt !== '') {
    argv.push('--system-prompt', agent.systemPrompt);
  }
  if (ctx.resumeSessionId !== undefined && ctx.resumeSessionId !== '')
    argv.push('--resume', ctx.resumeSessionId);
  argv.push(...(dryRun ? withoutPermissionArgs(agent.args ?? []) : (agent.args ?? [])));
  argv.push('--', promptWithGuidance(ctx.input));
  return argv;
}

function withoutPermissionArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (BYPASS_FLAGS.has(arg) || arg.startsWith('--permission-mode=')) continue;
    if (arg === '--permission-mode') {
      i++; // and its value
      continue;
    }
    out.push(arg);
  }
  return out;
}

/** True when the attempt runs with permission checks bypassed (and is not a dry-run). */
function bypassesPermissions(ctx: AttemptContext): boolean {
  if (ctx.mode === 'dry-run') return false;
  return (
    ctx.agent.permissionMode === 'bypassPermissions' ||
    (ctx.agent.args ?? []).some((a) => BYPASS_FLAGS.has(a))
  );
}

/**
 * The environment of one attempt: `ctx.env` without the markers of a nested Claude Code session
 * ({@link NESTED_SESSION_ENV}); `ANTHROPIC_BASE_URL` set to the agent's `baseUrl` when it has one;
 * and `IS_SANDBOX=1` when smith runs as root with permissions bypassed (Claude Code refuses
 * `bypassPermissions` as root otherwise; it honours no other value, so another one is replaced). Everything else
 * (`ANTHROPIC_API_KEY`, `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC`, …) is kept.
 *
 * @param ctx - the attempt
 * @returns a new environment object
 */
export function buildClaudeEnv(ctx: AttemptContext): Record<string, string> {
  const env: Record<string, string> = { ...ctx.env };
  for (const name of NESTED_SESSION_ENV) delete env[name];
  if (ctx.agent.baseUrl !== undefined && ctx.agent.baseUrl !== '') env.ANTHROPIC_BASE_URL = ctx.agent.baseUrl;
  // Claude Code honours only IS_SANDBOX=1; another value (`yes`) would make the bypass fail as root
  if (process.getuid?.() === 0 && bypassesPermissions(ctx)) env.IS_SANDBOX = '1';
  return env;
}

/** The outcome of an attempt from the stream-json read and what the process runtime saw. */
function claudeOutcome(
  ctx: AttemptContext,
  parser: StreamJsonParser,
  base: AttemptOutcome,
  ended: EndedBy,
): AttemptOutcome {
  const agent = ctx.agent.name;
  const out: AttemptOutcome = { ...base };
  delete out.reason;
  delete out.retryable;
  if (parser.sessionId !== null) out.sessionId = parser.sessionId;
  const result = parser.result;
  if (result !== null) {
    out.output = result.text;
    if (result.costUsd !== null) out.costUsd = result.costUsd;
    if (result.tokens !== null) out.tokens = result.tokens;
    if (out.sessionId === undefined && result.sessionId !== null) out.sessionId = result.sessionId;
  }

  if (base.runtimeError === true) {
    const error = `agent "${agent}": ${base.error ?? 'Claude Code could not be started'}`;
    return { ...out, status: 'failed', error, reason: 'not_installed', retryable: false };
  }
  if (result !== null && result.subtype === 'success' && !result.isError) {
    // the work is done whatever happened after the result line (a linger ended by smith)
    const ok: AttemptOutcome = { ...out, status: 'succeeded' };
    delete ok.error;
    return ok;
  }
  if (ended === 'cancel' || ended === 'timeout') return out;
  if (ended === 'idle') return { ...out, status: 'failed', reason: 'idle', retryable: true };

  if (result !== null) {
    const facts = {
      subtype: result.subtype,
      apiErrorStatus: result.apiErrorStatus,
      apiError: parser.lastApiError,
      text: `${result.text}\n${base.stderr}`,
    };
    const found = classifyFailure(facts) ?? {
      reason: 'crashed' as const,
      retryable: true,
      hint: 'see the attempt log for what it did last',
    };
    const status = result.apiErrorStatus !== null ? ` (HTTP ${result.apiErrorStatus})` : '';
    const said = result.text.trim() !== '' ? `: ${firstLine(result.text)}` : '';
    return {
      ...out,
      status: 'failed',
      error: `agent "${agent}": Claude Code ended with ${result.subtype}${status}${said}; ${found.hint}`,
      reason: found.reason,
      retryable: found.retryable,
    };
  }
  if (parser.resultTruncated) {
    const limit = ctx.agent.outputLimitBytes ?? DEFAULT_OUTPUT_LIMIT_BYTES;
    return {
      ...out,
      status: 'failed',
      error: `agent "${agent}": Claude Code's result line was longer than the line cap and could not be read; raise output_limit (now ${limit} bytes)`,
      reason: 'malformed',
      retryable: true,
    };
  }
  if (base.status === 'succeeded') {
    return {
      ...out,
      status: 'failed',
      error: `agent "${agent}": Claude Code exited with code 0 but printed no stream-json result line; check that "command" runs claude (${parser.invalidLines} non-JSON lines seen)`,
      reason: 'malformed',
      retryable: true,
    };
  }
  // no result: it crashed, was killed, or refused to start (bad flags, missing credentials)
  const known = classifyFailure({
    apiError: parser.lastApiError,
    text: `${parser.lastApiErrorText ?? ''}\n${base.stderr}`,
  });
  const why = base.error ?? `exit code ${base.exitCode ?? 'unknown'}`;
  if (known !== null) {
    return {
      ...out,
      status: 'failed',
      error: `agent "${agent}": Claude Code failed without a result (${why}); ${known.hint}`,
      reason: known.reason,
      retryable: known.retryable,
    };
  }
  return {
    ...out,
    status: 'failed',
    error: `agent "${agent}": Claude Code ended without a result (${why})`,
    reason: 'crashed',
    retryable: true,
  };
}

function firstLine(text: string): string {
  const line = text.trim().split('\n')[0] ?? '';
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}

function realPathOr(dir: string): string[] {
  try {
    const real = realpathSync(dir);
    return real === dir ? [] : [real];
  } catch {
    return [];
  }
}
