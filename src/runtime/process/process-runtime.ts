/**
 * The `process` runtime: one child process per attempt, in its own process group.
 *
 * The task JSON goes to stdin; stdout lines are NDJSON events or plain text (see
 * {@link parseAgentLine}); stderr lines are logs. Output is kept up to the agent's
 * `outputLimitBytes` per stream and counted past it, so memory stays bounded whatever the agent
 * prints. Cancel, timeout and the leader's exit end the whole process group.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';

import { NonRetryableError, SmithError } from '../../core/errors.js';
import type { AgentSpec } from '../../core/types.js';
import type { AgentRuntime, AttemptContext, AttemptHandle, AttemptOutcome, RuntimeEvent } from '../types.js';
import { mayBeJsonObject, parseAgentLine, sanitizeLine } from './agent-line.js';
import { buildArgv, resolveExecutable } from './command.js';
import { DEFAULT_OUTPUT_LIMIT_BYTES, OutputCapture, TailBuffer } from './output-capture.js';
import type { CapturedLine } from './output-capture.js';
import {
  findProcessesByEnv,
  groupExists,
  reapEscapees,
  signalGroup,
  signalProcess,
  waitUntilGone,
} from './process-group.js';

/** Default ms between SIGTERM and SIGKILL (`kill_grace`), as documented on `AgentSpec.killGraceMs`. */
export { DEFAULT_KILL_GRACE_MS } from '../../core/schema/config-schema.js';
import { DEFAULT_KILL_GRACE_MS } from '../../core/schema/config-schema.js';

/**
 * After the leader exited and its group was killed, ms to wait for stdout and stderr to close
 * before ending processes that escaped the group (by their `SMITH_ATTEMPT_ID`), and as long again
 * before giving up on the pipes.
 */
const DRAIN_MS = 1000;
/** Longest wait, in ms, for the SIGKILLed rest of an attempt's processes to vanish before `done` resolves. */
const GONE_WAIT_MS = 2000;
/** ms between checks while waiting for them. */
const GONE_POLL_MS = 10;
/** Longest delay setTimeout honours (2^31-1 ms, about 24.8 days); longer waits are made in steps. */
export const MAX_TIMER_MS = 2_147_483_647;
/** Longest stderr line quoted in an error message, in characters. */
const ERROR_LINE_CHARS = 500;
/** Bytes of a stderr line decoded to find the last non-empty one. */
const ERROR_LINE_SCAN_BYTES = 4 * ERROR_LINE_CHARS;

/**
 * Runs agents whose `runtime` is `process`: any command, one process per attempt.
 *
 * @example
 * const runtime = new ProcessRuntime();
 * await runtime.check(agent); // throws RUNTIME_NOT_FOUND when the command is not installed
 * const handle = runtime.start(ctx);
 * const outcome = await handle.done; // never rejects
 */
export class ProcessRuntime implements AgentRuntime {
  /** The `runtime:` name this adapter serves. */
  readonly kind = 'process';

  /**
   * Check that the agent's executable (`command[0]`) exists and may be executed: a path (with a
   * `/`, relative ones resolved against the current directory) is checked directly; a bare name
   * is searched on `PATH` (the agent's `env.PATH`, else this process's).
   *
   * @param agent - the agent to check
   * @throws NonRetryableError `CONFIG_INVALID` when the agent has no `command`
   * @throws SmithError `RUNTIME_NOT_FOUND` when the executable is missing or not executable
   */
  async check(agent: AgentSpec): Promise<void> {
    const command = commandOf(agent);
    if (command === null) throw noCommandError(agent);
    const found = await resolveExecutable(command, agent.env?.PATH ?? process.env.PATH);
    if (found.ok) return;
    const context = { agent: agent.name, command };
    const isPath = command.includes('/');
    let message: string;
    if (found.problem === 'not_executable') {
      message = isPath
        ? `agent "${agent.name}": command "${command}" is not executable; run "chmod +x ${command}" or fix "command" in smith.yaml`
        : `agent "${agent.name}": command "${command}" is on PATH but not executable; fix its permissions or fix "command" in smith.yaml`;
    } else {
      message = isPath
        ? `agent "${agent.name}": command "${command}" not found; install it or fix "command" in smith.yaml`
        : `agent "${agent.name}": command "${command}" not found on PATH; install it or fix "command" in smith.yaml`;
    }
    throw new SmithError('RUNTIME_NOT_FOUND', message, { context });
  }

  /**
   * Start one attempt: spawn `agent.command` (placeholders substituted, no shell) in its own
   * process group, with `cwd = ctx.workdir` and `env = ctx.env` exactly, and write the task JSON
   * and a newline to its stdin.
   *
   * Events: each stdout line that is an NDJSON event (see {@link parseAgentLine}) is reported as
   * is; every other stdout line, and every stderr line, is a `log` event (sanitized text). Log
   * events stop once a stream's first `outputLimitBytes` (default 1 MiB) are used, and one last
   * `output truncated: N bytes dropped` log event says so; `progress`, `artifact` and `message`
   * events and the `result` line are honoured wherever they come.
   *
   * Outcome: with a `result` line, `succeeded` unless it said `status: "failed"` or the exit code
   * is not 0, and its output is the output; without one, exit code 0 is `succeeded` and the kept
   * stdout (less one trailing newline) is the output. A non-zero exit fails with
   * `exit code N: <last non-empty stderr line>`, a signal with `killed by SIG…`, the timeout with
   * `timed_out` and `timed out after N ms`, cancel with `canceled` and the reason.
   *
   * When the leader exits, the rest of its group is SIGKILLed (and, on Linux, any process that
   * left the group but carries this attempt's `SMITH_ATTEMPT_ID`); `done` resolves once they are
   * gone and stdout and stderr have closed.
   *
   * Never throws: a missing command or a spawn error (ENOENT, EACCES, missing workdir) ends
   * `done` as `failed` with an error naming the command and the errno.
   *
   * @param ctx - the attempt to run
   * @returns the running attempt; its `pid` is also its process group id (null if it did not start)
   */
  start(ctx: AttemptContext): AttemptHandle {
    const attempt = new ProcessAttempt(ctx);
    return {
      pid: attempt.pid,
      done: attempt.done,
      cancel: (reason: string) => attempt.cancel(reason),
      pause: () => attempt.pause(),
      resume: () => attempt.resume(),
    };
  }
}

/**
 * How a CLI runtime reads its program's stdout instead of the `process` runtime's NDJSON agent
 * lines (for example Claude Code's stream-json).
 */
export interface StdoutProtocol {
  /**
   * Called for each stdout line, in order (text sanitized, without its newline; a line longer
   * than the line cap arrives cut, with `truncated` true). Report events with `emit`. Return true
   * when this line was the final result: the program then has `lingerMs` to exit before its
   * group is ended (and that ending is not a failure).
   */
  line(text: string, truncated: boolean, emit: (event: RuntimeEvent) => void): boolean | void;
  /**
   * Decide the outcome once every process of the attempt is gone. `base` is what the `process`
   * runtime would say from the exit code, signal and endings (its `output` is the plain stdout,
   * usually empty or useless for a JSON protocol); `ended` says how smith ended it, if it did.
   */
  finish(base: AttemptOutcome, ended: EndedBy): AttemptOutcome;
}

/** How smith ended an attempt's process, if it did: for {@link StdoutProtocol.finish}. */
export type EndedBy = 'timeout' | 'cancel' | 'idle' | 'after_result' | null;

/** What to spawn for one attempt, for runtimes built on this one (claude-code, codex, gemini, tmux). */
export interface SpawnPlan {
  /** The full argv: `[executable, ...args]`. No shell, no placeholders. */
  argv: string[];
  /** The environment, exactly. Default `ctx.env`. */
  env?: Record<string, string>;
  /** The working directory. Default `ctx.workdir`. */
  cwd?: string;
  /** Written to stdin, which is then closed; null = stdin is `/dev/null`. */
  stdin: string | null;
  /** Reads stdout; default the NDJSON agent-line protocol of the `process` runtime. */
  protocol?: StdoutProtocol;
  /**
   * Idle watchdog in ms: when no stdout line arrives for this long (a paused attempt's clock
   * stops), the group is ended and the attempt fails with reason `idle`. Default none.
   */
  idleTimeoutMs?: number;
  /** ms a program may linger after its final result line before its group is ended. Default 5000. */
  lingerMs?: number;
  /** What the program is, for spawn error messages (`claude`; install hint included). */
  notFoundHint?: string;
  /**
   * Longest stdout line held whole, in bytes (a JSON protocol line carrying a big file edit or
   * result). Default: the output limit clamped to 64 KiB .. 16 MiB (see `lineCapFor`).
   */
  maxLineBytes?: number;
}

/** Default ms a CLI may linger after its result line before its group is ended. */
export const DEFAULT_LINGER_MS = 5000;

/**
 * Start one attempt of a program as the `process` runtime does (own process group, capped output,
 * timeout, pause/resume, cancel with SIGTERM then SIGKILL, no orphans), but with the argv, stdin
 * and stdout protocol of `plan`. For runtimes that drive a CLI.
 *
 * @param ctx - the attempt (timeout, kill grace and output limit come from it and its agent)
 * @param plan - what to spawn and how to read it
 * @returns the running attempt; never throws (a spawn failure ends `done` as failed)
 */
export function spawnAttempt(ctx: AttemptContext, plan: SpawnPlan): AttemptHandle {
  const attempt = new ProcessAttempt(ctx, plan);
  return {
    pid: attempt.pid,
    done: attempt.done,
    cancel: (reason: string) => attempt.cancel(reason),
    pause: () => attempt.pause(),
    resume: () => attempt.resume(),
  };
}

function commandOf(agent: AgentSpec): string | null {
  const first = agent.command?.[0];
  return first === undefined || first === '' ? null : first;
}

function noCommandError(agent: AgentSpec): NonRetryableError {
  return new NonRetryableError(
    'CONFIG_INVALID',
    `agent "${agent.name}": runtime "process" needs a "command" (an argv list such as ["my-agent", "{prompt}"]); add it in smith.yaml`,
    { context: { agent: agent.name } },
  );
}

function describeSpawnError(err: unknown, command: string, cwd: string, notFoundHint?: string): string {
  const code = (err as NodeJS.ErrnoException | null)?.code ?? 'UNKNOWN';
  let cwdIsDir = false;
  try {
    cwdIsDir = statSync(cwd).isDirectory();
  } catch {
    cwdIsDir = false;
  }
  if (!cwdIsDir) return `spawn ${code}: working directory "${cwd}" does not exist or is not a directory`;
  if (code === 'ENOENT') {
    return `spawn ENOENT: command "${command}" not found; ${notFoundHint ?? 'install it or fix "command" in smith.yaml'}`;
  }
  if (code === 'EACCES') return `spawn EACCES: command "${command}" is not executable (permission denied)`;
  const detail = err instanceof Error ? err.message : String(err);
  return `spawn ${code}: command "${command}": ${detail}`;
}

/** Remove NUL characters (which PostgreSQL text cannot hold) and one trailing newline. */
function cleanOutput(text: string, trimNewline: boolean): string {
  let out = text.includes('\0') ? text.replaceAll('\0', '') : text;
  if (trimNewline) {
    if (out.endsWith('\r\n')) out = out.slice(0, -2);
    else if (out.endsWith('\n')) out = out.slice(0, -1);
  }
  return out;
}

type Ending = { status: 'timed_out' | 'canceled' | 'failed'; error: string; by: EndedBy };
type Result = { output: string; failed: boolean; error: string | null };

/** One attempt of one process. */
class ProcessAttempt {
  readonly pid: number | null;
  readonly done: Promise<AttemptOutcome>;

  private readonly ctx: AttemptContext;
  private readonly plan: SpawnPlan | undefined;
  private readonly graceMs: number;
  private readonly stdout: OutputCapture;
  private readonly stderr: OutputCapture;
  private readonly stderrTail: TailBuffer;
  private child: ChildProcess | null = null;
  private resolveDone: (outcome: AttemptOutcome) => void = () => undefined;

  private result: Result | null = null;
  private lastStderrLine = '';
  private spawnError: string | null = null;
  private ending: Ending | null = null;
  private leaderExited = false;
  private exitCode: number | null = null;
  private signal: string | null = null;
  private stdoutClosed = false;
  private stderrClosed = false;
  private paused = false;
  private settled = false;

  private timeoutTimer: NodeJS.Timeout | null = null;
  private deadline = 0;
  private remainingMs: number | null = null;
  private killTimer: NodeJS.Timeout | null = null;
  private drainTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private lingerTimer: NodeJS.Timeout | null = null;
  private resultSeen = false;

  constructor(ctx: AttemptContext, plan?: SpawnPlan) {
    this.ctx = ctx;
    this.plan = plan;
    this.done = new Promise<AttemptOutcome>((resolve) => {
      this.resolveDone = resolve;
    });
    const agent = ctx.agent;
    const limit = agent.outputLimitBytes ?? DEFAULT_OUTPUT_LIMIT_BYTES;
    this.graceMs = Math.min(MAX_TIMER_MS, Math.max(0, agent.killGraceMs ?? DEFAULT_KILL_GRACE_MS));
    this.stdout = new OutputCapture({
      limitBytes: limit,
      onLine: (line) => this.onStdoutLine(line),
      ...(plan?.maxLineBytes !== undefined ? { maxLineBytes: plan.maxLineBytes } : {}),
    });
    this.stderr = new OutputCapture({ limitBytes: limit, onLine: (line) => this.onStderrLine(line) });
    this.stderrTail = new TailBuffer(limit);
    this.pid = this.spawn();
  }

  /** Spawn the process and wire it; returns its pid, or null when it could not be started. */
  private spawn(): number | null {
    const { ctx, plan } = this;
    let command: string | null;
    let argv: string[];
    if (plan !== undefined) {
      command = plan.argv[0] ?? null;
      argv = plan.argv;
    } else {
      command = commandOf(ctx.agent);
      if (command === null || ctx.agent.command === undefined) {
        this.spawnError = noCommandError(ctx.agent).message;
        this.finish();
        return null;
      }
      argv = buildArgv(ctx.agent.command, {
        prompt: ctx.input.prompt,
        task_id: ctx.input.id,
        workdir: ctx.workdir,
      });
    }
    if (command === null || command === '') {
      this.spawnError = `agent "${ctx.agent.name}": nothing to run (empty argv)`;
      this.finish();
      return null;
    }
    const cwd = plan?.cwd ?? ctx.workdir;
    let child: ChildProcess;
    try {
      child = spawn(command, argv.slice(1), {
        cwd,
        env: plan?.env ?? ctx.env,
        detached: true,
        stdio: [plan !== undefined && plan.stdin === null ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (err) {
      this.spawnError = describeSpawnError(err, command, cwd, plan?.notFoundHint);
      this.finish();
      return null;
    }
    this.child = child;

    child.on('error', (err) => {
      // Before a pid, an error is a failed spawn; later ones (a failed kill) change nothing.
      if (child.pid !== undefined || this.settled) return;
      this.spawnError = describeSpawnError(err, command, cwd, plan?.notFoundHint);
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.stdin?.destroy();
      this.finish();
    });
    // Keep this listener: it is what lets node reap the child (no zombie).
    child.on('exit', (code, signal) => this.onLeaderExit(code, signal));

    const { stdout, stderr, stdin } = child;
    if (stdout) {
      stdout.on('data', (chunk: Buffer) => this.stdout.write(chunk));
      stdout.on('end', () => this.stdout.end());
      stdout.on('error', () => undefined);
      stdout.on('close', () => {
        this.stdoutClosed = true;
        this.maybeFinish();
      });
    } else {
      this.stdoutClosed = true;
    }
    if (stderr) {
      stderr.on('data', (chunk: Buffer) => {
        this.stderrTail.write(chunk);
        this.stderr.write(chunk);
      });
      stderr.on('end', () => this.stderr.end());
      stderr.on('error', () => undefined);
      stderr.on('close', () => {
        this.stderrClosed = true;
        this.maybeFinish();
      });
    } else {
      this.stderrClosed = true;
    }
    if (stdin) {
      // EPIPE / ECONNRESET when the agent does not read its stdin: not a failure.
      stdin.on('error', () => undefined);
      stdin.end(plan !== undefined ? (plan.stdin ?? '') : JSON.stringify(ctx.input) + '\n');
    }

    if (child.pid === undefined) return null;
    if (ctx.timeoutMs !== null && ctx.timeoutMs > 0) this.startClock(ctx.timeoutMs);
    this.armIdle();
    return child.pid;
  }

  cancel(reason: string): void {
    this.terminate({ status: 'canceled', error: reason, by: 'cancel' });
  }

  /** (Re)start the idle watchdog, when the plan has one and the attempt is live. */
  private armIdle(): void {
    const ms = this.plan?.idleTimeoutMs;
    if (ms === undefined || ms <= 0 || this.paused || this.leaderExited || this.ending !== null) return;
    if (this.resultSeen) return;
    this.clearTimer('idleTimer');
    this.idleTimer = setTimeout(
      () => {
        this.idleTimer = null;
        this.terminate({
          status: 'failed',
          error: `no event for ${ms} ms: the idle watchdog ended it`,
          by: 'idle',
        });
      },
      Math.min(ms, MAX_TIMER_MS),
    );
  }

  pause(): void {
    if (this.pid === null || this.settled || this.leaderExited || this.ending !== null || this.paused) return;
    signalGroup(this.pid, 'SIGSTOP');
    this.paused = true;
    this.clearTimer('idleTimer');
    if (this.timeoutTimer !== null) {
      clearTimeout(this.timeoutTimer);
      this.timeoutTimer = null;
      this.remainingMs = Math.max(0, this.deadline - Date.now());
    }
  }

  resume(): void {
    if (this.pid === null || !this.paused) return;
    this.paused = false;
    signalGroup(this.pid, 'SIGCONT');
    this.armIdle();
    if (this.remainingMs !== null && !this.leaderExited && this.ending === null) {
      const remaining = this.remainingMs;
      this.remainingMs = null;
      this.startClock(remaining);
    }
  }

  private startClock(ms: number): void {
    this.deadline = Date.now() + ms;
    const arm = (): void => {
      const left = this.deadline - Date.now();
      // setTimeout fires at once for delays past 2^31-1 ms: wait in steps.
      this.timeoutTimer = setTimeout(
        () => {
          this.timeoutTimer = null;
          if (Date.now() < this.deadline) arm();
          else
            this.terminate({
              status: 'timed_out',
              error: `timed out after ${this.ctx.timeoutMs} ms`,
              by: 'timeout',
            });
        },
        Math.min(Math.max(0, left), MAX_TIMER_MS),
      );
    };
    arm();
  }

  /** SIGTERM (and SIGCONT, in case it is stopped) to the group; SIGKILL after the grace. Once. */
  private terminate(ending: Ending): void {
    if (this.settled || this.leaderExited || this.ending !== null) return;
    this.ending = ending;
    this.clearTimer('timeoutTimer');
    this.clearTimer('idleTimer');
    this.clearTimer('lingerTimer');
    this.remainingMs = null;
    const pid = this.pid;
    if (pid === null) return; // not started: the spawn error ends it
    signalGroup(pid, 'SIGTERM');
    signalGroup(pid, 'SIGCONT');
    this.paused = false;
    this.killTimer = setTimeout(() => {
      this.killTimer = null;
      signalGroup(pid, 'SIGKILL');
    }, this.graceMs);
  }

  private onLeaderExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.leaderExited = true;
    this.exitCode = code;
    this.signal = signal;
    this.paused = false;
    this.clearTimer('timeoutTimer');
    this.clearTimer('killTimer');
    this.clearTimer('idleTimer');
    this.clearTimer('lingerTimer');
    // No orphans: whatever is left of the group goes with its leader.
    if (this.pid !== null && groupExists(this.pid)) signalGroup(this.pid, 'SIGKILL');
    if (this.maybeFinish()) return;
    this.drainTimer = setTimeout(() => {
      // Something still holds the pipes: a process that left the group (setsid).
      this.killEscapees();
      this.drainTimer = setTimeout(() => {
        this.drainTimer = null;
        this.child?.stdout?.destroy();
        this.child?.stderr?.destroy();
        this.finish();
      }, DRAIN_MS);
    }, DRAIN_MS);
  }

  private maybeFinish(): boolean {
    if (this.settled) return true;
    if (!this.leaderExited || !this.stdoutClosed || !this.stderrClosed) return false;
    this.finish();
    return true;
  }

  /**
   * SIGKILL the processes of this attempt that left its process group (Linux, found by their
   * `SMITH_ATTEMPT_ID`); returns their pids.
   */
  private killEscapees(): number[] {
    const marker = this.ctx.env.SMITH_ATTEMPT_ID;
    if (marker === undefined || marker === '') return [];
    const pids = findProcessesByEnv('SMITH_ATTEMPT_ID', marker);
    for (const pid of pids) signalProcess(pid, 'SIGKILL');
    return pids;
  }

  private clearTimer(name: 'timeoutTimer' | 'killTimer' | 'drainTimer' | 'idleTimer' | 'lingerTimer'): void {
    const timer = this[name];
    if (timer !== null) clearTimeout(timer);
    this[name] = null;
  }

  private emit(event: RuntimeEvent): void {
    try {
      this.ctx.onEvent(event);
    } catch {
      // The engine's handler failing must not kill the attempt's stream handling.
    }
  }

  /** Kept stdout lines that were not events (bounded by the kept budget). */
  private readonly plainStdout: string[] = [];

  private onStdoutLine(line: CapturedLine): void {
    if (this.idleTimer !== null) this.armIdle();
    const protocol = this.plan?.protocol;
    if (protocol !== undefined) {
      const text = sanitizeLine(line.bytes.toString('utf8'));
      let final: boolean | void = false;
      try {
        final = protocol.line(text, line.truncatedBytes > 0, (e) => this.emit(e));
      } catch (err) {
        this.emit({ type: 'log', stream: 'stdout', line: `unreadable line: ${String(err)}` });
      }
      if (final === true && !this.resultSeen) this.onResult();
      return;
    }
    if (line.truncatedBytes === 0 && mayBeJsonObject(line.bytes)) {
      const parsed = parseAgentLine(line.bytes.toString('utf8'));
      if (parsed.kind === 'result') {
        this.result = { output: parsed.output, failed: parsed.failed, error: parsed.error };
        return;
      }
      if (parsed.kind === 'event') {
        // JSON log lines obey the kept budget like plain ones; other events always pass.
        if (parsed.event.type !== 'log' || line.keptLength > 0) this.emit(parsed.event);
        return;
      }
    }
    if (line.keptLength > 0) {
      const text = sanitizeLine(line.bytes.subarray(0, line.keptLength).toString('utf8'));
      // the output (without a result line) is stdout less the event lines
      this.plainStdout.push(text);
      this.emit({ type: 'log', stream: 'stdout', line: text });
    }
  }

  /** The final result arrived: give the program `lingerMs` to exit, then end its group. */
  private onResult(): void {
    this.resultSeen = true;
    this.clearTimer('idleTimer');
    if (this.leaderExited || this.ending !== null) return;
    const ms = this.plan?.lingerMs ?? DEFAULT_LINGER_MS;
    this.lingerTimer = setTimeout(
      () => {
        this.lingerTimer = null;
        this.terminate({ status: 'failed', error: 'lingered after its result', by: 'after_result' });
      },
      Math.min(ms, MAX_TIMER_MS),
    );
  }

  private onStderrLine(line: CapturedLine): void {
    const scan =
      line.bytes.length > ERROR_LINE_SCAN_BYTES ? line.bytes.subarray(0, ERROR_LINE_SCAN_BYTES) : line.bytes;
    const tail = sanitizeLine(scan.toString('utf8')).trim();
    if (tail !== '') this.lastStderrLine = tail.slice(0, ERROR_LINE_CHARS);
    if (line.keptLength > 0) {
      const text = sanitizeLine(line.bytes.subarray(0, line.keptLength).toString('utf8'));
      this.emit({ type: 'log', stream: 'stderr', line: text });
    }
  }

  /** The leader has exited (or never started): make sure its processes are gone, then resolve. */
  private finish(): void {
    if (this.settled) return;
    this.settled = true;
    this.clearTimer('timeoutTimer');
    this.clearTimer('killTimer');
    this.clearTimer('drainTimer');
    this.clearTimer('idleTimer');
    this.clearTimer('lingerTimer');
    const pid = this.child?.pid;
    if (pid === undefined) {
      this.resolveOutcome();
      return;
    }
    // Processes that left the group without holding our pipes are found in the background.
    const marker = this.ctx.env.SMITH_ATTEMPT_ID;
    if (marker) reapEscapees('SMITH_ATTEMPT_ID', marker);
    if (!groupExists(pid)) {
      // the usual case: the group ended with its leader; nothing to wait for
      this.resolveOutcome();
      return;
    }
    signalGroup(pid, 'SIGKILL');
    // A signal is delivered asynchronously: wait (bounded) until they are really gone.
    void waitUntilGone([], [pid], GONE_WAIT_MS, GONE_POLL_MS).then(
      () => this.resolveOutcome(),
      () => this.resolveOutcome(),
    );
  }

  private resolveOutcome(): void {
    this.stdout.end();
    this.stderr.end();
    for (const [stream, capture] of [
      ['stdout', this.stdout],
      ['stderr', this.stderr],
    ] as const) {
      if (capture.droppedBytes > 0) {
        this.emit({ type: 'log', stream, line: `output truncated: ${capture.droppedBytes} bytes dropped` });
      }
    }

    const output = this.result !== null ? this.result.output : cleanOutput(this.plainStdout.join('\n'), true);
    let status: AttemptOutcome['status'];
    let error: string | undefined;
    if (this.spawnError !== null) {
      status = 'failed';
      error = this.spawnError;
    } else if (this.ending !== null) {
      status = this.ending.status;
      error = this.ending.error;
    } else if (this.signal !== null) {
      status = 'failed';
      error = `killed by ${this.signal}`;
    } else if (this.result?.failed === true) {
      status = 'failed';
      error = this.result.error ?? 'agent reported failure';
      if (this.exitCode !== null && this.exitCode !== 0) error += ` (exit code ${this.exitCode})`;
    } else if (this.exitCode !== 0) {
      status = 'failed';
      error = `exit code ${this.exitCode ?? 'unknown'}`;
      if (this.lastStderrLine !== '') error += `: ${this.lastStderrLine}`;
    } else {
      status = 'succeeded';
    }

    const outcome: AttemptOutcome = {
      status,
      exitCode: this.exitCode,
      signal: this.signal,
      output,
      stdoutBytes: this.stdout.totalBytes,
      stderrBytes: this.stderr.totalBytes,
      droppedBytes: this.stdout.droppedBytes + this.stderr.droppedBytes,
      stderr: cleanOutput(this.stderrTail.text(), false),
    };
    if (error !== undefined) outcome.error = error;
    // the agent's command cannot run (not a task's bad working directory): its instance is at fault
    if (this.spawnError !== null && !this.spawnError.includes('working directory'))
      outcome.runtimeError = true;
    if (this.ending?.by === 'idle') outcome.reason = 'idle';
    const protocol = this.plan?.protocol;
    if (protocol === undefined) {
      this.resolveDone(outcome);
      return;
    }
    let final = outcome;
    try {
      final = protocol.finish(outcome, this.ending?.by ?? null);
    } catch (err) {
      final = { ...outcome, status: 'failed', error: `could not read the agent's result: ${String(err)}` };
    }
    this.resolveDone(final);
  }
}
