/**
 * The `tmux` runtime: interactive CLI agents hosted in tmux panes.
 *
 * One tmux server per smith home, on its own socket; one session per agent (`smith-<agent>`); one
 * window per instance (index = instance). Each attempt types its prompt into the instance's pane
 * and detects completion:
 *
 * - shell mode (the agent's program is a POSIX-like shell: `bash`, `sh`, `zsh`, …): by the
 *   sentinel of {@link typedText} (markers printed by files smith writes, never typed; the exit
 *   status comes back through a file and `tmux wait-for`);
 * - quiet mode (any other program, `python3 -i`, `claude`): the run ends `succeeded` once the pane
 *   has printed nothing for `agent.idleTimeoutMs` (default {@link DEFAULT_QUIET_MS}).
 *
 * Pane output is copied with `pipe-pane` to a per-attempt file, read every 100 ms, and reported
 * as `log` events; see docs/runtimes/tmux.md.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

import { NonRetryableError, SmithError } from '../../core/errors.js';
import type { AgentSpec } from '../../core/types.js';
import { resolveExecutable } from '../process/command.js';
import { DEFAULT_OUTPUT_LIMIT_BYTES } from '../process/output-capture.js';
import { findProcessesByEnv } from '../process/process-group.js';
import { DEFAULT_KILL_GRACE_MS, MAX_TIMER_MS } from '../process/process-runtime.js';
import type { AgentRuntime, AttemptContext, AttemptHandle, AttemptOutcome, FailureReason } from '../types.js';
import { TerminalLineDecoder } from './pane-output.js';
import { paneForegroundGroup, paneForegroundIsIdle, paneSessionMembers, signalAll } from './pane-process.js';
import {
  isShellCommand,
  makeSentinel,
  matchEnd,
  postScript,
  preScript,
  promptGroup,
  shellQuote,
  typedText,
} from './sentinel.js';
import type { Sentinel } from './sentinel.js';
import { Tmux, TmuxCommandError } from './tmux.js';
import type { PaneProgram } from './tmux.js';

/** Default ms of pane silence that ends a quiet-mode run (a program that is not a shell). */
export const DEFAULT_QUIET_MS = 5000;
/** ms between checks that the tmux server and the pane are alive. */
const HEALTH_POLL_MS = 1000;
/** ms between reads of the pane's output file. */
const TAIL_POLL_MS = 100;
/** ms a command has to return to the prompt after `C-c` before its process group is signalled. */
const INTERRUPT_WAIT_MS = 1000;
/** Longest wait, in ms, for tmux to record a dead pane's exit status. */
const DEAD_STATUS_WAIT_MS = 1000;
/** Bytes read from the output file at a time. */
const READ_CHUNK_BYTES = 64 * 1024;
/** ms to wait, once the exit status is known, for the end marker to reach the output file. */
const END_MARKER_WAIT_MS = 2000;
/** ms to wait for a new pane's program to print something before typing into it. */
const READY_WAIT_MS = 5000;
/** ms a new pane's screen must stay unchanged before it counts as ready. */
const READY_QUIET_MS = 200;
/** Longest output line quoted in an error message, in characters. */
const ERROR_LINE_CHARS = 500;
/** The window user option that records the working directory a pane's program started in. */
const WORKDIR_OPTION = '@smith_workdir';
/** Variables of `ctx.env` that are per attempt and so not given to a long-lived pane program. */
const PER_ATTEMPT_ENV = ['SMITH_ATTEMPT_ID'];
/** Variables tmux sets for a pane's program (tmux(1), "ENVIRONMENT"), kept from tmux rather than `ctx.env`. */
const PANE_OWN_ENV = ['TERM', 'TMUX', 'TMUX_PANE'];
/** Runs the pane's program with exactly the given environment plus tmux's own variables. */
const PANE_WRAPPER = 'exec env -i TERM="$TERM" TMUX="$TMUX" TMUX_PANE="$TMUX_PANE" "$@"';

/** Options of {@link TmuxRuntime}. */
export interface TmuxRuntimeOptions {
  /**
   * The tmux server's socket name (`tmux -L <name>`). Default: derived from `SMITH_HOME` in each
   * attempt's environment by {@link socketNameFor}.
   */
  socketName?: string;
  /** The tmux program. Default `tmux` (searched on this process's PATH). */
  tmuxPath?: string;
}

/**
 * The socket name of the tmux server of a smith home: `smith-` and the first 12 hex digits of the
 * SHA-256 of the home's absolute path, or `smith` when no home is set.
 *
 * @param home - the home folder (`SMITH_HOME`), or undefined
 * @returns a socket name for `tmux -L`
 */
export function socketNameFor(home: string | undefined): string {
  if (home === undefined || home === '') return 'smith';
  return `smith-${createHash('sha256').update(path.resolve(home)).digest('hex').slice(0, 12)}`;
}

/**
 * The tmux session name of an agent: `smith-<agent>`, with `.` and `:` (which tmux does not
 * allow in session names) replaced by `_`.
 *
 * @param agentName - the agent's name
 * @returns the session name
 */
export function sessionNameFor(agentName: string): string {
  return `smith-${agentName.replace(/[.:]/g, '_')}`;
}

/**
 * The argv a person runs to open an agent's tmux session (its windows are its instances), for a
 * `smith attach AGENT` command.
 *
 * @param agentName - the agent's name
 * @param opts - `socketName` (wins), else `home` (the smith home, see {@link socketNameFor});
 *   `tmuxPath` default `tmux`
 * @returns `['tmux', '-L', <socket>, 'attach-session', '-t', 'smith-<agent>']`
 */
export function attachCommand(
  agentName: string,
  opts: { socketName?: string; home?: string; tmuxPath?: string } = {},
): string[] {
  const socket = opts.socketName ?? socketNameFor(opts.home);
  return [opts.tmuxPath ?? 'tmux', '-L', socket, 'attach-session', '-t', sessionNameFor(agentName)];
}

/**
 * Runs agents whose `runtime` is `tmux`: an interactive program (`command`, such as `["bash"]`)
 * in a tmux pane per instance, with prompts typed into it.
 *
 * @example
 * const runtime = new TmuxRuntime({ socketName: 'smith-test' });
 * await runtime.check(agent); // RUNTIME_NOT_FOUND when tmux or the command is missing
 * const outcome = await runtime.start(ctx).done;
 * await runtime.close(); // kills the tmux server
 */
export class TmuxRuntime implements AgentRuntime {
  /** The `runtime:` name this adapter serves. */
  readonly kind = 'tmux';

  private readonly options: TmuxRuntimeOptions;
  private readonly servers = new Map<string, Tmux>();
  private readonly locks = new Map<string, Promise<void>>();
  private readonly attempts = new Set<TmuxAttempt>();
  private stateDir: string | null = null;
  private tmuxAbsolute: Promise<string | null> | null = null;
  private closed = false;

  /** @param options - socket name and tmux program */
  constructor(options: TmuxRuntimeOptions = {}) {
    this.options = { ...options };
  }

  /**
   * The socket name used for an attempt environment: the constructor's `socketName`, else
   * {@link socketNameFor}(`env.SMITH_HOME`).
   *
   * @param env - the attempt's environment
   * @returns the socket name
   */
  socketFor(env: Record<string, string | undefined>): string {
    return this.options.socketName ?? socketNameFor(env.SMITH_HOME);
  }

  /**
   * The argv that opens an agent's session on this runtime's server (see {@link attachCommand}).
   *
   * @param agentName - the agent's name
   * @param env - used for `SMITH_HOME` when the runtime has no fixed socket name; default this process's
   * @returns the argv
   */
  attachCommand(agentName: string, env: Record<string, string | undefined> = process.env): string[] {
    return attachCommand(agentName, { socketName: this.socketFor(env), tmuxPath: this.options.tmuxPath });
  }

  /**
   * Check that tmux is installed (3.0 or later) and that the agent has a `command` whose program
   * exists (on the agent's `env.PATH`, else this process's).
   *
   * @param agent - the agent
   * @throws NonRetryableError `CONFIG_INVALID` when the agent has no `command`
   * @throws SmithError `RUNTIME_NOT_FOUND` when tmux or the program is missing, or tmux is older than 3.0
   */
  async check(agent: AgentSpec): Promise<void> {
    const tmuxPath = this.options.tmuxPath ?? 'tmux';
    const found = await resolveExecutable(tmuxPath, process.env.PATH);
    if (!found.ok) {
      throw new SmithError(
        'RUNTIME_NOT_FOUND',
        `agent "${agent.name}": runtime "tmux" needs tmux, and "${tmuxPath}" was not found on PATH; install it (apt-get install tmux, dnf install tmux or brew install tmux)`,
        { context: { agent: agent.name, command: tmuxPath } },
      );
    }
    const version = await tmuxVersion(found.path);
    if (version !== null && version.major < 3) {
      throw new SmithError(
        'RUNTIME_NOT_FOUND',
        `agent "${agent.name}": runtime "tmux" needs tmux 3.0 or later, and ${found.path} is ${version.text}; upgrade tmux`,
        { context: { agent: agent.name, command: found.path } },
      );
    }
    const program = agent.command?.[0];
    if (program === undefined || program === '') throw noCommandError(agent);
    const resolved = await resolveExecutable(program, agent.env?.PATH ?? process.env.PATH);
    if (!resolved.ok) {
      throw new SmithError(
        'RUNTIME_NOT_FOUND',
        `agent "${agent.name}": command "${program}" ${resolved.problem === 'not_executable' ? 'is not executable' : 'not found'}; install it or fix "command" in smith.yaml`,
        { context: { agent: agent.name, command: program } },
      );
    }
  }

  /**
   * Start one attempt: make sure the agent's session and the instance's window exist (creating
   * or respawning them with `command`, in `ctx.workdir`, with exactly `ctx.env` through
   * `env -i`), type the prompt, and wait for completion (see the module summary).
   *
   * Outcome: shell mode: exit status 0 is `succeeded`; another is `failed` with
   * `exit code N: <last output line>` and reason `crashed`; quiet mode: `succeeded` after the
   * silence. `output` is what the command printed (the pane's text between the begin and end
   * markers, escape sequences removed), kept up to `agent.outputLimitBytes` (default 1 MiB).
   * Timeout and cancel send `C-c`, then SIGTERM and (after `killGraceMs`) SIGKILL to the
   * foreground process group if it stays; they end `timed_out` / `canceled` and the pane stays
   * usable. A dead tmux server or pane ends the attempt `failed` with reason `crashed` within
   * about a second; the next attempt creates it again. A prompt that is not valid shell syntax
   * (`sh -n`) fails at once with reason `malformed`, without being typed.
   *
   * Never throws.
   *
   * @param ctx - the attempt
   * @returns the running attempt; `pid` is the pane program's pid once the pane is ready (null before)
   */
  start(ctx: AttemptContext): AttemptHandle {
    const attempt = new TmuxAttempt(this, ctx);
    this.attempts.add(attempt);
    void attempt.done.then(() => this.attempts.delete(attempt));
    return {
      get pid() {
        return attempt.panePid;
      },
      done: attempt.done,
      cancel: (reason: string) => attempt.stop({ status: 'canceled', error: reason }),
      pause: () => attempt.pause(),
      resume: () => attempt.resume(),
    };
  }

  /**
   * Shut down: running attempts end `canceled`, every tmux server this runtime used (and the one
   * named by `socketName`) is killed, and its temporary files are removed. May be called twice.
   *
   * @returns once the attempts have ended
   */
  async close(): Promise<void> {
    this.closed = true;
    const running = [...this.attempts];
    for (const attempt of running) attempt.stop({ status: 'canceled', error: 'the tmux runtime was closed' });
    const sockets = new Set(this.servers.keys());
    if (this.options.socketName !== undefined) sockets.add(this.options.socketName);
    await Promise.all([...sockets].map((s) => this.server(s).killServer()));
    await Promise.all(running.map((a) => a.done));
    if (this.stateDir !== null) {
      const dir = this.stateDir;
      this.stateDir = null;
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** @internal Whether {@link close} was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** @internal The wrapper of the server on `socket`. */
  server(socket: string): Tmux {
    let tmux = this.servers.get(socket);
    if (tmux === undefined) {
      tmux = new Tmux(socket, this.options.tmuxPath ?? 'tmux');
      this.servers.set(socket, tmux);
    }
    return tmux;
  }

  /** @internal The absolute path of tmux (for the `post` file), or null when it is not found. */
  tmuxExecutable(): Promise<string | null> {
    this.tmuxAbsolute ??= resolveExecutable(this.options.tmuxPath ?? 'tmux', process.env.PATH).then((r) =>
      r.ok ? r.path : null,
    );
    return this.tmuxAbsolute;
  }

  /** @internal The runtime's private directory for attempt files (mode 0700). */
  async directory(): Promise<string> {
    if (this.stateDir === null) this.stateDir = mkdtempSync(path.join(tmpdir(), 'smith-tmux-'));
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    return this.stateDir;
  }

  /**
   * @internal Run `fn` alone among the callers with the same key (FIFO); returns a release
   * function once it is this caller's turn.
   */
  async acquire(key: string): Promise<() => void> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    let release: () => void = () => undefined;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const chained = previous.then(() => mine);
    this.locks.set(key, chained);
    await previous;
    return () => {
      release();
      if (this.locks.get(key) === chained) this.locks.delete(key);
    };
  }
}

function noCommandError(agent: AgentSpec): NonRetryableError {
  return new NonRetryableError(
    'CONFIG_INVALID',
    `agent "${agent.name}": runtime "tmux" needs a "command" (the interactive program to host, such as ["bash"]); add it in smith.yaml`,
    { context: { agent: agent.name } },
  );
}

async function tmuxVersion(tmuxPath: string): Promise<{ major: number; text: string } | null> {
  return new Promise((resolve) => {
    execFile(tmuxPath, ['-V'], { timeout: 5000 }, (err, stdout) => {
      const text = String(stdout).trim();
      const m = /(\d+)\.(\d+)/.exec(text);
      if (err !== null || m === null) resolve(null);
      else resolve({ major: Number(m[1]), text });
    });
  });
}

/** Run `<shell> -n -c <text>`: null when the syntax is valid (or cannot be checked), else its message. */
async function syntaxError(shell: string, text: string, env: Record<string, string>): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(shell, ['-n', '-c', text], { env, timeout: 5000, encoding: 'utf8' }, (err, _stdout, stderr) => {
      if (err === null) resolve(null);
      else if (typeof (err as NodeJS.ErrnoException).code === 'string' || err.killed) resolve(null);
      else resolve(String(stderr).trim().split('\n').filter(Boolean).pop() ?? 'syntax error');
    });
  });
}

type Ending = { status: 'timed_out' | 'canceled' | 'failed'; error: string; reason?: FailureReason };

/** Why the wait for the attempt's end stopped. */
type Stop =
  | { kind: 'completed'; status: number }
  | { kind: 'crashed'; error: string }
  | { kind: 'ended' }
  | { kind: 'quiet' }
  | {
      kind: 'setup_failed';
      error: string;
      reason?: FailureReason;
      runtimeError?: boolean;
      retryable?: boolean;
    };

/** One attempt in one pane. */
class TmuxAttempt {
  readonly done: Promise<AttemptOutcome>;
  panePid: number | null = null;

  private readonly runtime: TmuxRuntime;
  private readonly ctx: AttemptContext;
  private readonly shell: boolean;
  private readonly limit: number;
  private readonly graceMs: number;
  private readonly quietMs: number | null;
  private readonly session: string;
  private readonly target: string;
  private tmux: Tmux | null = null;
  private readonly sentinel: Sentinel = makeSentinel();
  private files: { pre: string; post: string; out: string; status: string } | null = null;

  private ending: Ending | null = null;
  private stopResult: Stop | null = null;
  private wake: () => void = () => undefined;
  private stopped: Promise<void>;
  private paused = false;
  private pausedPids: number[] = [];

  private deadline = 0;
  private remainingMs: number | null = null;
  private timeoutTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private healthTimer: NodeJS.Timeout | null = null;
  private tailTimer: NodeJS.Timeout | null = null;
  private waiter: ChildProcess | null = null;
  private checking = false;

  // output
  private readonly decoder: TerminalLineDecoder;
  private outFile: FileHandle | null = null;
  private outOffset = 0;
  private buffer: Buffer | null = null;
  private reading: Promise<void> | null = null;
  private phase: 'before' | 'inside' | 'after';
  private echoToSkip: string[] = [];
  private readonly kept: string[] = [];
  private keptBytes = 0;
  private totalBytes = 0;
  private droppedBytes = 0;
  private lastLine = '';
  private endSeen = false;

  constructor(runtime: TmuxRuntime, ctx: AttemptContext) {
    this.runtime = runtime;
    this.ctx = ctx;
    const agent = ctx.agent;
    this.shell = isShellCommand(agent.command ?? []);
    this.limit = agent.outputLimitBytes ?? DEFAULT_OUTPUT_LIMIT_BYTES;
    this.graceMs = Math.min(MAX_TIMER_MS, Math.max(0, agent.killGraceMs ?? DEFAULT_KILL_GRACE_MS));
    this.quietMs = this.shell ? null : Math.max(1, agent.idleTimeoutMs ?? DEFAULT_QUIET_MS);
    this.session = sessionNameFor(agent.name);
    this.target = `=${this.session}:${ctx.instance}`;
    this.phase = this.shell ? 'before' : 'inside';
    this.decoder = new TerminalLineDecoder((line) => this.onLine(line));
    this.stopped = new Promise<void>((resolve) => {
      this.wake = resolve;
    });
    if (ctx.timeoutMs !== null) this.startClock(ctx.timeoutMs);
    this.done = this.run().catch((err: unknown): AttemptOutcome => ({
      status: 'failed',
      exitCode: null,
      signal: null,
      output: '',
      error: `tmux runtime: ${err instanceof Error ? err.message : String(err)}`,
      stdoutBytes: 0,
      stderrBytes: 0,
      droppedBytes: 0,
      stderr: '',
      reason: 'crashed',
    }));
  }

  // ---- control -------------------------------------------------------------------------------

  /** End the attempt (cancel, timeout, idle watchdog). The first ending wins. */
  stop(ending: Ending): void {
    if (this.stopResult !== null) return;
    this.ending = ending;
    this.settle({ kind: 'ended' });
  }

  private settle(stop: Stop): void {
    if (this.stopResult !== null) return;
    this.stopResult = stop;
    this.clearTimer('timeoutTimer');
    this.clearTimer('idleTimer');
    this.wake();
  }

  /**
   * SIGSTOP the processes the pane's program started (in shell mode, the prompt's commands); a
   * prompt not yet typed waits for {@link resume}. The program itself is not stopped: tmux continues a pane's program as soon as it stops (tmux
   * server.c, `server_child_stopped`).
   */
  pause(): void {
    if (this.paused || this.stopResult !== null) return;
    this.paused = true;
    // before the prompt is typed there is nothing to stop: setup waits for resume to type it
    this.pausedPids = this.panePid === null ? [] : paneSessionMembers(this.panePid);
    signalAll(this.pausedPids, 'SIGSTOP');
    this.clearTimer('idleTimer');
    if (this.timeoutTimer !== null) {
      this.clearTimer('timeoutTimer');
      this.remainingMs = Math.max(0, this.deadline - Date.now());
    }
  }

  resume(): void {
    if (!this.paused) return;
    this.continueProcesses();
    if (this.stopResult !== null) return;
    this.armIdle();
    if (this.remainingMs !== null) {
      const remaining = this.remainingMs;
      this.remainingMs = null;
      this.startClock(remaining);
    }
  }

  private continueProcesses(): void {
    this.paused = false;
    const pane = this.panePid;
    const pids = new Set(this.pausedPids);
    if (pane !== null) for (const pid of paneSessionMembers(pane)) pids.add(pid);
    signalAll([...pids], 'SIGCONT');
    this.pausedPids = [];
  }

  private startClock(ms: number): void {
    this.deadline = Date.now() + ms;
    const arm = (): void => {
      const left = this.deadline - Date.now();
      this.timeoutTimer = setTimeout(
        () => {
          this.timeoutTimer = null;
          if (Date.now() < this.deadline) arm();
          else this.stop({ status: 'timed_out', error: `timed out after ${this.ctx.timeoutMs} ms` });
        },
        Math.min(Math.max(0, left), MAX_TIMER_MS),
      );
    };
    arm();
  }

  /** (Re)start the silence clock: the idle watchdog in shell mode, the completion clock in quiet mode. */
  private armIdle(): void {
    const ms = this.shell ? this.ctx.agent.idleTimeoutMs : this.quietMs;
    if (ms === undefined || ms === null || this.paused || this.stopResult !== null || this.files === null)
      return;
    this.clearTimer('idleTimer');
    this.idleTimer = setTimeout(
      () => {
        this.idleTimer = null;
        if (this.shell) {
          this.stop({ status: 'failed', error: `no output for ${ms} ms (idle timeout)`, reason: 'idle' });
        } else {
          this.settle({ kind: 'quiet' });
        }
      },
      Math.min(ms, MAX_TIMER_MS),
    );
  }

  private clearTimer(name: 'timeoutTimer' | 'idleTimer' | 'healthTimer' | 'tailTimer'): void {
    const timer = this[name];
    if (timer !== null) {
      clearTimeout(timer);
      clearInterval(timer);
    }
    this[name] = null;
  }

  // ---- the run -------------------------------------------------------------------------------

  private async run(): Promise<AttemptOutcome> {
    const key = `${this.runtime.socketFor(this.ctx.env)}\0${this.session}\0${this.ctx.instance}`;
    const release = await this.runtime.acquire(key);
    try {
      await this.setup();
      if (this.stopResult === null) await this.stopped;
      return await this.conclude();
    } finally {
      await this.cleanup();
      release();
    }
  }

  /** Prepare the pane and type the prompt; failures settle the attempt. */
  private async setup(): Promise<void> {
    const { ctx } = this;
    const agent = ctx.agent;
    if (this.stopResult !== null) return;
    if (this.runtime.isClosed) {
      this.stop({ status: 'canceled', error: 'the tmux runtime was closed' });
      return;
    }
    const command = agent.command ?? [];
    if (command.length === 0 || command[0] === '') {
      this.settle({
        kind: 'setup_failed',
        error: noCommandError(agent).message,
        runtimeError: true,
        retryable: false,
      });
      return;
    }
    try {
      if (!(await stat(ctx.workdir)).isDirectory()) throw new Error('not a directory');
    } catch {
      this.settle({
        kind: 'setup_failed',
        error: `working directory "${ctx.workdir}" does not exist or is not a directory`,
      });
      return;
    }
    if (this.shell) {
      const problem = await syntaxError(command[0] ?? 'sh', promptGroup(ctx.input.prompt), ctx.env);
      if (problem !== null) {
        this.settle({
          kind: 'setup_failed',
          error: `the prompt is not valid ${path.basename(command[0] ?? 'sh')} syntax (${problem}); it was not typed into the pane`,
          reason: 'malformed',
          retryable: false,
        });
        return;
      }
    }
    const tmuxAbsolute = await this.runtime.tmuxExecutable();
    if (tmuxAbsolute === null) {
      this.settle({
        kind: 'setup_failed',
        error: `tmux not found on PATH; install it (apt-get install tmux, dnf install tmux or brew install tmux)`,
        reason: 'not_installed',
        runtimeError: true,
        retryable: false,
      });
      return;
    }
    if (this.stopResult !== null) return;

    const socket = this.runtime.socketFor(ctx.env);
    const tmux = this.runtime.server(socket);
    this.tmux = tmux;
    let fresh: boolean;
    try {
      fresh = await this.ensurePane(tmux, command);
    } catch (err) {
      this.settle({
        kind: 'setup_failed',
        error: `could not open tmux window ${this.session}:${ctx.instance} on socket "${socket}" for agent "${agent.name}": ${err instanceof Error ? err.message : String(err)}`,
        reason: 'crashed',
        runtimeError: true,
      });
      return;
    }
    if (this.stopResult !== null) return;

    const dir = await this.runtime.directory();
    const id = this.sentinel.id;
    const files = {
      pre: path.join(dir, `${id}.pre`),
      post: path.join(dir, `${id}.post`),
      out: path.join(dir, `${id}.out`),
      status: path.join(dir, `${id}.status`),
    };
    this.files = files;
    await writeFile(files.out, '', { mode: 0o600 });
    this.outFile = await open(files.out, 'r');
    try {
      if (this.shell) {
        const socketPath = await tmux.socketPath();
        await writeFile(files.pre, preScript(this.sentinel, ctx.env, ctx.workdir), { mode: 0o600 });
        await writeFile(files.post, postScript(this.sentinel, files.status, tmuxAbsolute, socketPath), {
          mode: 0o600,
        });
      }
      // a new program's banner is not the attempt's output: start copying once it is quiet
      if (fresh) await this.waitReady(tmux);
      if (this.stopResult !== null) return;
      await tmux.pipePane(this.target, `exec cat >> ${shellQuote(files.out)}`);
      if (this.shell) this.startWaiter(tmux);
      this.tailTimer = setInterval(() => void this.readOutput(), TAIL_POLL_MS);
      this.healthTimer = setInterval(() => void this.checkHealth(), HEALTH_POLL_MS);
      while (this.paused && this.stopResult === null) await sleep(50);
      if (this.stopResult !== null) return;
      const text = this.shell ? typedText(ctx.input.prompt, files.pre, files.post) : ctx.input.prompt;
      if (!this.shell) this.echoToSkip = text.replace(/\r\n?/g, '\n').split('\n');
      await tmux.sendText(this.target, text, this.shell);
      await tmux.sendKeys(this.target, 'Enter');
      this.armIdle();
    } catch (err) {
      if (this.stopResult !== null) return;
      const crash = await this.diagnose();
      this.settle(
        crash ?? {
          kind: 'setup_failed',
          error: `could not type the prompt into tmux window ${this.session}:${ctx.instance}: ${err instanceof Error ? err.message : String(err)}`,
          reason: 'crashed',
        },
      );
    }
  }

  /**
   * Make sure the instance's window exists with a live program; returns true when the program was
   * just started. A dead pane is respawned; in quiet mode, so is a pane started in another
   * working directory (a shell changes directory itself).
   */
  private async ensurePane(tmux: Tmux, command: readonly string[]): Promise<boolean> {
    const { ctx } = this;
    const program = this.program(command);
    const release = await this.runtime.acquire(`${tmux.socketName}\0${this.session}`);
    try {
      let fresh = false;
      let info: string[] | null = null;
      try {
        info = await tmux.paneInfo(this.target, ['#{pane_dead}', `#{${WORKDIR_OPTION}}`]);
      } catch (err) {
        if (!(err instanceof TmuxCommandError) || err.errno !== undefined) throw err;
      }
      if (info === null) {
        if (await tmux.hasSession(this.session)) {
          await tmux.newWindow(this.session, ctx.instance, program);
        } else {
          try {
            await tmux.newSession(this.session, String(ctx.instance), program);
          } catch (err) {
            // another smith process on the same server made it first
            if (!(err instanceof TmuxCommandError) || !/duplicate session/.test(err.stderr)) throw err;
            await tmux.newWindow(this.session, ctx.instance, program);
          }
          if (ctx.instance !== 0) await tmux.moveWindow(this.session, 0, ctx.instance);
        }
        fresh = true;
      } else if (info[0] === '1' || (!this.shell && info[1] !== ctx.workdir)) {
        await tmux.respawnPane(this.target, program);
        fresh = true;
      }
      if (fresh) {
        await tmux.setWindowOption(this.target, 'remain-on-exit', 'on');
        await tmux.setWindowOption(this.target, WORKDIR_OPTION, ctx.workdir);
      }
      const [pid] = await tmux.paneInfo(this.target, ['#{pane_pid}']);
      this.panePid = Number(pid) > 0 ? Number(pid) : null;
      return fresh;
    } finally {
      release();
    }
  }

  /**
   * The argv of a new pane: `/bin/sh -c 'exec env -i TERM="$TERM" TMUX="$TMUX" TMUX_PANE="$TMUX_PANE" "$@"'`
   * with `ctx.env` (less its per-attempt and terminal variables) and the command: the program gets
   * exactly `ctx.env` plus the three variables tmux sets for its panes.
   */
  private program(command: readonly string[]): PaneProgram {
    const env = Object.entries(this.ctx.env)
      .filter(
        ([k]) => k !== '' && !k.includes('=') && !PANE_OWN_ENV.includes(k) && !PER_ATTEMPT_ENV.includes(k),
      )
      .map(([k, v]) => `${k}=${v}`);
    return { cwd: this.ctx.workdir, argv: ['/bin/sh', '-c', PANE_WRAPPER, 'smith-pane', ...env, ...command] };
  }

  /**
   * Wait (bounded by {@link READY_WAIT_MS}) until a new pane's program has printed something and
   * then nothing more for {@link READY_QUIET_MS}, so typing is not lost and its banner is not output.
   */
  private async waitReady(tmux: Tmux): Promise<void> {
    const deadline = Date.now() + READY_WAIT_MS;
    let last = '';
    let since = Date.now();
    while (Date.now() < deadline && this.stopResult === null) {
      let screen: string;
      try {
        screen = (await tmux.capturePane(this.target)).trimEnd();
      } catch {
        return;
      }
      if (screen !== last) {
        last = screen;
        since = Date.now();
      } else if (screen !== '' && Date.now() - since >= READY_QUIET_MS) {
        return;
      }
      await sleep(50);
    }
  }

  /** Wait on the attempt's channel: the `post` file wakes it after writing the status file. */
  private startWaiter(tmux: Tmux, restarts = 0): void {
    const { child, exited } = tmux.waitFor(this.sentinel.channel);
    this.waiter = child;
    void exited.then(async () => {
      if (this.waiter === child) this.waiter = null;
      if (this.stopResult !== null) return;
      const status = await this.readStatus();
      if (status !== null) {
        this.settle({ kind: 'completed', status });
        return;
      }
      const crash = await this.diagnose();
      if (crash !== null) this.settle(crash);
      else if (this.stopResult === null && restarts < 3) this.startWaiter(tmux, restarts + 1);
    });
  }

  private async readStatus(): Promise<number | null> {
    if (this.files === null) return null;
    try {
      const text = (await readFile(this.files.status, 'utf8')).trim();
      return /^\d+$/.test(text) ? Number(text) : null;
    } catch {
      return null;
    }
  }

  private async checkHealth(): Promise<void> {
    // one check at a time: a slow server must not pile up tmux clients
    if (this.stopResult !== null || this.checking) return;
    this.checking = true;
    try {
      const crash = await this.diagnose();
      if (crash !== null) this.settle(crash);
    } finally {
      this.checking = false;
    }
  }

  /** Is the server, the window and its program alive? A crash stop when not, else null. */
  private async diagnose(): Promise<Stop | null> {
    const tmux = this.tmux;
    if (tmux === null) return null;
    const where = `tmux window ${this.session}:${this.ctx.instance} (socket "${tmux.socketName}")`;
    try {
      const formats = ['#{pane_dead}', '#{pane_dead_status}', '#{pane_dead_signal}'];
      let [dead, status, signal] = await tmux.paneInfo(this.target, formats);
      if (dead !== '1') return null;
      // tmux marks the pane dead when its terminal closes and records the status once it reaps
      // the program: wait a little (bounded) for it
      const deadline = Date.now() + DEAD_STATUS_WAIT_MS;
      while (!status && !signal && Date.now() < deadline) {
        await sleep(100);
        [dead, status, signal] = await tmux
          .paneInfo(this.target, formats)
          .catch(() => [dead, status, signal]);
      }
      const how =
        status !== undefined && status !== ''
          ? `exited with status ${status}`
          : signal !== undefined && signal !== ''
            ? `was killed by signal ${signal}`
            : 'exited';
      return {
        kind: 'crashed',
        error: `the program in ${where} ${how} while the attempt ran; the next attempt respawns it`,
      };
    } catch (err) {
      if (this.stopResult !== null) return null;
      if (err instanceof TmuxCommandError && err.serverGone) {
        return {
          kind: 'crashed',
          error: `the tmux server on socket "${tmux.socketName}" died (killed or crashed) while the attempt ran in ${this.session}:${this.ctx.instance}; the next attempt starts a new one`,
        };
      }
      if (err instanceof TmuxCommandError && err.targetMissing) {
        return {
          kind: 'crashed',
          error: `${where} was closed while the attempt ran; the next attempt opens it again`,
        };
      }
      return null; // a slow or odd answer: check again at the next poll
    }
  }

  // ---- output --------------------------------------------------------------------------------

  private readOutput(): Promise<void> {
    this.reading ??= this.readMore().finally(() => {
      this.reading = null;
    });
    return this.reading;
  }

  private async readMore(): Promise<void> {
    const file = this.outFile;
    if (file === null) return;
    this.buffer ??= Buffer.allocUnsafe(READ_CHUNK_BYTES);
    const buffer = this.buffer;
    let grew = false;
    for (;;) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await file.read(buffer, 0, buffer.length, this.outOffset));
      } catch {
        return;
      }
      if (bytesRead === 0) break;
      grew = true;
      this.outOffset += bytesRead;
      this.decoder.write(buffer.subarray(0, bytesRead));
    }
    if (grew && this.idleTimer !== null) this.armIdle();
  }

  private onLine(line: string): void {
    if (this.phase === 'before') {
      if (line.endsWith(this.sentinel.begin)) this.phase = 'inside';
      return;
    }
    if (this.phase === 'after') return;
    if (this.shell) {
      const end = matchEnd(line, this.sentinel.endPrefix);
      if (end !== null) {
        this.phase = 'after';
        this.endSeen = true;
        if (end.before !== '') this.keep(end.before);
        this.settle({ kind: 'completed', status: end.status });
        return;
      }
    } else if (this.echoToSkip.length > 0) {
      const echoed = this.echoToSkip.shift() ?? '';
      if (echoed === '' ? line.trim() === '' : line.trimEnd().endsWith(echoed.trimEnd())) return;
      this.echoToSkip = [];
    }
    this.keep(line);
  }

  private keep(line: string): void {
    const bytes = Buffer.byteLength(line, 'utf8') + 1;
    this.totalBytes += bytes;
    if (line.trim() !== '') this.lastLine = line.trim().slice(0, ERROR_LINE_CHARS);
    if (this.keptBytes + bytes > this.limit) {
      this.droppedBytes += bytes;
      return;
    }
    this.keptBytes += bytes;
    this.kept.push(line);
    this.emit({ type: 'log', stream: 'stdout', line });
  }

  private emit(event: Parameters<AttemptContext['onEvent']>[0]): void {
    try {
      this.ctx.onEvent(event);
    } catch {
      // the engine's handler failing must not break the attempt
    }
  }

  // ---- the end -------------------------------------------------------------------------------

  private async conclude(): Promise<AttemptOutcome> {
    const stop = this.stopResult ?? { kind: 'ended' };
    if (this.paused) this.continueProcesses();
    let exitCode: number | null = null;
    let status: AttemptOutcome['status'] = 'succeeded';
    let error: string | undefined;
    let reason: FailureReason | undefined;
    let retryable: boolean | undefined;
    let runtimeError: boolean | undefined;

    switch (stop.kind) {
      case 'completed': {
        exitCode = stop.status;
        await this.waitForEndMarker();
        if (exitCode !== 0) {
          status = 'failed';
          error = `exit code ${exitCode}${this.lastLine !== '' ? `: ${this.lastLine}` : ''}`;
          reason = 'crashed';
        }
        await this.endLeftovers(false);
        break;
      }
      case 'quiet':
        await this.readOutput();
        break;
      case 'crashed':
        await this.readOutput();
        status = 'failed';
        error = stop.error;
        reason = 'crashed';
        await this.endLeftovers(true);
        break;
      case 'setup_failed':
        status = 'failed';
        error = stop.error;
        reason = stop.reason;
        retryable = stop.retryable;
        runtimeError = stop.runtimeError;
        break;
      case 'ended': {
        const ending = this.ending ?? { status: 'canceled', error: 'canceled' };
        status = ending.status;
        error = ending.error;
        reason = ending.reason;
        // what the command printed until now; not the `^C` the terminal echoes
        await this.readOutput();
        this.phase = 'after';
        await this.interrupt();
        break;
      }
    }

    // quiet mode: an unfinished last line is the program's prompt (`>>> `), not output
    if (this.droppedBytes > 0) {
      this.emit({
        type: 'log',
        stream: 'stdout',
        line: `output truncated: ${this.droppedBytes} bytes dropped`,
      });
    }
    const outcome: AttemptOutcome = {
      status,
      exitCode,
      signal: null,
      output: this.kept.join('\n').replaceAll('\0', ''),
      stdoutBytes: this.totalBytes,
      stderrBytes: 0,
      droppedBytes: this.droppedBytes,
      stderr: '',
    };
    if (error !== undefined) outcome.error = error;
    if (reason !== undefined) outcome.reason = reason;
    if (retryable !== undefined) outcome.retryable = retryable;
    if (runtimeError !== undefined) outcome.runtimeError = runtimeError;
    return outcome;
  }

  /** The status is known: read on (bounded) until the end marker has come through the pipe. */
  private async waitForEndMarker(): Promise<void> {
    const deadline = Date.now() + END_MARKER_WAIT_MS;
    await this.readOutput();
    while (!this.endSeen && Date.now() < deadline) {
      await sleep(20);
      await this.readOutput();
    }
  }

  /**
   * Cancel, timeout or idle: `C-c` to the pane. If the command does not end within
   * {@link INTERRUPT_WAIT_MS} (shell mode: the pane's program has no other process left; quiet
   * mode: the program has its terminal's foreground again), SIGTERM what runs, SIGKILL after the
   * grace, and respawn the pane as a last resort. Then end what the attempt left behind.
   */
  private async interrupt(): Promise<void> {
    const tmux = this.tmux;
    const pane = this.panePid;
    if (tmux === null || pane === null || this.files === null) return;
    const settled = (): boolean =>
      this.shell ? paneSessionMembers(pane).length === 0 : paneForegroundIsIdle(pane);
    const running = (): number[] => {
      if (this.shell) return paneSessionMembers(pane);
      const group = paneForegroundGroup(pane);
      return group === null ? [] : [group];
    };
    try {
      await tmux.sendKeys(this.target, 'C-c');
    } catch {
      // the server is gone: its panes' processes got SIGHUP; leftovers are ended below
    }
    if (!(await waitUntil(settled, INTERRUPT_WAIT_MS))) {
      const first = running();
      signalAll(first, 'SIGTERM');
      signalAll(first, 'SIGCONT');
      if (!(await waitUntil(settled, this.graceMs))) {
        signalAll(running(), 'SIGKILL');
        if (!(await waitUntil(settled, 1000))) await tmux.respawnPane(this.target).catch(() => undefined);
      }
    }
    await this.endLeftovers(this.shell);
  }

  /**
   * End the processes the attempt left: those that carry its `SMITH_ATTEMPT_ID` (shell mode exports
   * it), and with `wholeSession` every process of the pane but its program. SIGTERM, then SIGKILL
   * after the grace (at once when `wholeSession` is false: the command already ended).
   */
  private async endLeftovers(wholeSession: boolean): Promise<void> {
    const pane = this.panePid;
    if (pane === null) return;
    const id = this.ctx.env.SMITH_ATTEMPT_ID;
    const find = (): number[] => {
      const pids = new Set<number>();
      if (this.shell && id !== undefined && id !== '') {
        for (const pid of findProcessesByEnv('SMITH_ATTEMPT_ID', id)) if (pid !== pane) pids.add(pid);
      }
      if (wholeSession) for (const pid of paneSessionMembers(pane)) pids.add(pid);
      // the `pipe-pane` copier is the server's child, not the pane's; never signal ourselves
      pids.delete(process.pid);
      return [...pids];
    };
    let left = find();
    if (left.length === 0) return;
    if (wholeSession) {
      signalAll(left, 'SIGTERM');
      signalAll(left, 'SIGCONT');
      await waitUntil(() => find().length === 0, this.graceMs);
      left = find();
    }
    signalAll(left, 'SIGKILL');
    await waitUntil(() => find().length === 0, 1000);
  }

  /** Stop timers and the waiter, close the pipe, remove the attempt's files. */
  private async cleanup(): Promise<void> {
    this.clearTimer('timeoutTimer');
    this.clearTimer('idleTimer');
    this.clearTimer('healthTimer');
    this.clearTimer('tailTimer');
    this.waiter?.kill('SIGTERM');
    this.waiter = null;
    if (this.reading !== null) await this.reading;
    if (this.tmux !== null && this.files !== null)
      await this.tmux.pipePane(this.target, null).catch(() => undefined);
    this.decoder.end();
    await this.outFile?.close().catch(() => undefined);
    this.outFile = null;
    if (this.files !== null) {
      const files = this.files;
      await Promise.all(Object.values(files).map((f) => rm(f, { force: true })));
    }
    if (this.paused) this.continueProcesses();
  }
}

/** Poll `predicate` every 25 ms for at most `ms`; returns whether it held. */
async function waitUntil(predicate: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() >= deadline) return false;
    await sleep(Math.min(25, Math.max(1, deadline - Date.now())));
  }
  return true;
}
