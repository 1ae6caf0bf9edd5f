/**
 * Runs a judge's command (a verify command, an acceptance check, a command judge) in its own
 * process group, with a timeout that ends the whole group, and keeps the tail of its output.
 * Not part of the public API.
 */
import { spawn } from 'node:child_process';

/** Bytes of combined stdout and stderr kept as evidence: 4 KiB. */
export const OUTPUT_TAIL_BYTES = 4096;

/** Grace in ms between SIGTERM and SIGKILL of a timed-out command's group. */
export const KILL_GRACE_MS = 2000;

/** Longest wait in ms for pipes held by processes that left the group, after the leader exited. */
const DRAIN_MS = 2000;

/** Longest wait in ms for a SIGKILLed group to vanish. */
const GONE_WAIT_MS = 2000;

/** Options of {@link runCommand}. */
export interface RunOptions {
  /** Working directory. */
  cwd: string;
  /** Timeout in ms; the group is ended (SIGTERM, then SIGKILL after {@link KILL_GRACE_MS}). */
  timeoutMs: number;
  /** Environment; default the process's. */
  env?: NodeJS.ProcessEnv;
  /** Ends the group like a timeout. */
  signal?: AbortSignal;
  /** Written to stdin, then stdin is closed; default /dev/null. */
  stdin?: string;
  /** Keep stdout whole up to this many bytes (in `stdout`); default 0 (not kept). */
  stdoutLimitBytes?: number;
}

/** The result of a command. */
export interface CommandRun {
  /** The command as given (shell text or argv joined with spaces). */
  command: string;
  /** The process group id (= the leader's pid), when it started. */
  pid?: number;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  aborted: boolean;
  /** Wall time in ms. */
  durationMs: number;
  /** The last {@link OUTPUT_TAIL_BYTES} of stdout and stderr, interleaved as they arrived. */
  outputTail: string;
  /** Stdout up to `stdoutLimitBytes` (when asked). */
  stdout: string;
  /** Why it could not start (`spawn sh ENOENT`, a missing working directory). */
  spawnError?: string;
  /** Exit code 0, no timeout, no abort, started. */
  passed: boolean;
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}

function groupExists(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitGone(pid: number, maxMs: number): Promise<void> {
  const until = Date.now() + maxMs;
  while (groupExists(pid) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Runs a command in its own process group and waits for it and its whole group to end.
 * Never rejects: a spawn failure is a result with `spawnError`.
 *
 * @param command - shell text (run with `sh -c`) or an argv
 * @param opts - working directory, timeout (ms), environment, abort signal, stdin
 * @returns exit code or signal, timeout and abort flags, duration (ms), output tail
 */
export function runCommand(command: string | readonly string[], opts: RunOptions): Promise<CommandRun> {
  const argv = typeof command === 'string' ? ['sh', '-c', command] : [...command];
  const shown = typeof command === 'string' ? command : command.join(' ');
  const started = Date.now();
  return new Promise((resolve) => {
    const tail: Buffer[] = [];
    let tailBytes = 0;
    const out: Buffer[] = [];
    let outBytes = 0;
    const outLimit = opts.stdoutLimitBytes ?? 0;
    let timedOut = false;
    let aborted = false;
    let exitCode: number | null = null;
    let exitSignal: string | null = null;
    let spawnError: string | undefined;
    let settled = false;
    const timers: NodeJS.Timeout[] = [];

    const keepTail = (chunk: Buffer): void => {
      tail.push(chunk);
      tailBytes += chunk.length;
      while (tail.length > 1 && tailBytes - (tail[0]?.length ?? 0) >= OUTPUT_TAIL_BYTES) {
        tailBytes -= tail.shift()?.length ?? 0;
      }
    };

    const [file = 'sh', ...args] = argv;
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      detached: true,
      stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const pid = child.pid;

    const end = (why: 'timeout' | 'abort'): void => {
      if (pid === undefined || exitCode !== null || exitSignal !== null) return;
      if (why === 'timeout') timedOut = true;
      else aborted = true;
      signalGroup(pid, 'SIGTERM');
      signalGroup(pid, 'SIGCONT');
      timers.push(setTimeout(() => signalGroup(pid, 'SIGKILL'), KILL_GRACE_MS));
    };

    const onAbort = (): void => end('abort');
    if (opts.signal !== undefined) {
      if (opts.signal.aborted) queueMicrotask(onAbort);
      else opts.signal.addEventListener('abort', onAbort, { once: true });
    }
    timers.push(setTimeout(() => end('timeout'), Math.max(1, Math.min(opts.timeoutMs, 2_147_483_647))));

    const finish = (): void => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      opts.signal?.removeEventListener('abort', onAbort);
      const done = (): void => {
        let text = Buffer.concat(tail).subarray(-OUTPUT_TAIL_BYTES).toString('utf8');
        text = text.replace(/^\uFFFD+/, '');
        const run: CommandRun = {
          command: shown,
          exitCode,
          signal: exitSignal,
          timedOut,
          aborted,
          durationMs: Date.now() - started,
          outputTail: text,
          stdout: Buffer.concat(out).toString('utf8'),
          passed: spawnError === undefined && !timedOut && !aborted && exitCode === 0,
        };
        if (pid !== undefined) run.pid = pid;
        if (spawnError !== undefined) run.spawnError = spawnError;
        resolve(run);
      };
      if (pid === undefined || !groupExists(pid)) {
        done();
        return;
      }
      signalGroup(pid, 'SIGKILL');
      void waitGone(pid, GONE_WAIT_MS).then(done, done);
    };

    child.stdout?.on('data', (chunk: Buffer) => {
      keepTail(chunk);
      if (outBytes < outLimit) {
        const part = chunk.subarray(0, outLimit - outBytes);
        out.push(part);
        outBytes += part.length;
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => keepTail(chunk));
    if (opts.stdin !== undefined && child.stdin !== null) {
      child.stdin.on('error', () => {
        // EPIPE: the program did not read its stdin; its verdict decides.
      });
      child.stdin.end(opts.stdin);
    }
    child.on('error', (err) => {
      spawnError = `cannot run ${shown} in ${opts.cwd}: ${err.message}`;
      if (pid === undefined) finish();
    });
    child.on('exit', (code, sig) => {
      exitCode = code;
      exitSignal = sig;
      // No orphans: whatever is left of the group goes with its leader.
      if (pid !== undefined) signalGroup(pid, 'SIGKILL');
      timers.push(
        setTimeout(() => {
          // Something outside the group still holds the pipes: stop reading.
          child.stdout?.destroy();
          child.stderr?.destroy();
          finish();
        }, DRAIN_MS),
      );
    });
    child.on('close', () => finish());
  });
}

/**
 * The evidence of a command, as JSON.
 *
 * @param kind - what it was (`verify`, `acceptance`, `command-judge`)
 * @param name - its name
 * @param run - its result
 * @returns `{kind, name, command, exitCode, signal, timedOut, durationMs, outputTail, spawnError?}`
 */
export function commandEvidence(
  kind: string,
  name: string,
  run: CommandRun,
): { [key: string]: string | number | boolean | null } {
  const e: { [key: string]: string | number | boolean | null } = {
    kind,
    name,
    command: run.command,
    exitCode: run.exitCode,
    signal: run.signal,
    timedOut: run.timedOut,
    durationMs: run.durationMs,
    outputTail: run.outputTail,
  };
  if (run.aborted) e['aborted'] = true;
  if (run.spawnError !== undefined) e['spawnError'] = run.spawnError;
  return e;
}

/**
 * One sentence on how a command failed.
 *
 * @param run - a result that did not pass
 * @param timeoutMs - its timeout, for the message
 * @returns `exited with code 1`, `timed out after 600000 ms (its process group was killed)`, …
 */
export function describeFailure(run: CommandRun, timeoutMs: number): string {
  if (run.spawnError !== undefined) return run.spawnError;
  if (run.timedOut) return `timed out after ${timeoutMs} ms (its process group was killed)`;
  if (run.aborted) return 'was canceled';
  if (run.signal !== null) return `was killed by ${run.signal}`;
  return `exited with code ${String(run.exitCode)}`;
}

/**
 * The last non-empty lines of an output tail, for a reason or suggestion.
 *
 * @param tail - the output tail
 * @param lines - how many lines (default 3)
 * @returns the lines joined with ` | `, at most 300 characters
 */
export function lastLines(tail: string, lines = 3): string {
  const kept = tail
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .slice(-lines)
    .join(' | ');
  return kept.length > 300 ? `…${kept.slice(-299)}` : kept;
}
