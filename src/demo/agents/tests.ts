/**
 * The demo's `tests` agent: runs the repository's own test command and exits with its exit code.
 *
 * Run as `node dist/demo/agents/tests.js` with cwd = the repository. The command comes from
 * {@link detectTestCommand}; it runs with `SMITH_DEMO_ACTIVE=1` so that a test suite which starts
 * `smith demo` cannot recurse. Output lines are forwarded as log events (at most
 * {@link MAX_FORWARDED_LINES}); the result output is `{ command, exit_code, passed?, failed?, tail }`,
 * or the text `no test command found in …` (exit 0) when the repository declares none.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { detectTestCommand, TEST_MANIFESTS } from '../detect-tests.js';
import { emit, isMain, log, progress, result, runAgent, workDir } from './protocol.js';

/** Output lines forwarded as log events; later lines are only kept in the tail. */
export const MAX_FORWARDED_LINES = 2000;

/** Lines kept for the result's `tail`. */
export const TAIL_LINES = 200;

/** Characters kept of one output line. */
export const MAX_LINE_CHARS = 2000;

/** Milliseconds between progress heartbeats while the tests run. */
export const HEARTBEAT_MS = 5000;

/** Test counts read from a runner's summary lines. */
export interface TestCounts {
  passed?: number;
  failed?: number;
}

/** Reads test counts from output lines as they stream by. */
export interface SummaryParser {
  /** Look at one output line (ANSI colours already removed). */
  feed(line: string): void;
  /** The counts seen so far (empty when no summary was recognised). */
  counts(): TestCounts;
}

function countOf(text: string, word: string): number | undefined {
  const m = new RegExp(`(\\d+) ${word}\\b`).exec(text);
  return m === null ? undefined : Number(m[1]);
}

/**
 * A parser for the summaries of common test runners: vitest (`Tests  1 failed | 11 passed (12)`),
 * jest (`Tests:  1 failed, 11 passed, 12 total`), node:test (`# pass 3` / `ℹ fail 0`), pytest
 * (`3 passed, 1 failed in 0.12s`), cargo (`test result: ok. 5 passed; 0 failed`, summed over test
 * binaries) and go (`ok  pkg` / `FAIL  pkg` lines: counts of packages, not of tests).
 *
 * @returns a new parser
 */
export function createSummaryParser(): SummaryParser {
  // The last summary of each single-summary runner wins; cargo and go add up.
  let last: TestCounts | undefined;
  const cargo = { seen: false, passed: 0, failed: 0 };
  const go = { seen: false, passed: 0, failed: 0 };
  const node: TestCounts = {};
  return {
    feed(line: string): void {
      let m: RegExpExecArray | null;
      if (/^\s*Tests:?\s+\d+ /.test(line)) {
        // vitest / jest
        last = { passed: countOf(line, 'passed') ?? 0, failed: countOf(line, 'failed') ?? 0 };
      } else if ((m = /^\s*[#ℹ]\s*(pass|fail)\s+(\d+)\s*$/.exec(line)) !== null) {
        if (m[1] === 'pass') node.passed = Number(m[2]);
        else node.failed = Number(m[2]);
      } else if (/test result: (ok|FAILED)\. \d+ passed; \d+ failed/.test(line)) {
        cargo.seen = true;
        cargo.passed += countOf(line, 'passed') ?? 0;
        cargo.failed += countOf(line, 'failed') ?? 0;
      } else if (
        /^\s*=*\s*\d+ (passed|failed)\b.* in [\d.]+m?s\b/.test(line) ||
        /^=+ .*\d+ (passed|failed)/.test(line)
      ) {
        // pytest: `3 passed, 1 failed in 0.12s` or `==== 3 passed in 0.12s ====`
        last = {
          passed: countOf(line, 'passed') ?? 0,
          failed: (countOf(line, 'failed') ?? 0) + (countOf(line, 'errors?') ?? 0),
        };
      } else if (/^ok\s+\S+\s+(\(cached\)|[\d.]+s\b)/.test(line)) {
        go.seen = true;
        go.passed++;
      } else if (/^FAIL\s+\S+(\s+[\d.]+s\b|\s+\[(build|setup) failed\])/.test(line)) {
        go.seen = true;
        go.failed++;
      }
    },
    counts(): TestCounts {
      if (last !== undefined) return last;
      if (node.passed !== undefined || node.failed !== undefined) return { ...node };
      if (cargo.seen) return { passed: cargo.passed, failed: cargo.failed };
      if (go.seen) return { passed: go.passed, failed: go.failed };
      return {};
    },
  };
}

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[ -/]*[@-~]`, 'g');

/**
 * Remove ANSI escape sequences (colours, cursor moves) from a line.
 *
 * @param line - the line
 * @returns the plain text
 */
export function stripAnsi(line: string): string {
  return line.replace(ANSI, '');
}

/** Splits a byte stream into lines, cutting lines longer than {@link MAX_LINE_CHARS}. */
function lineSplitter(onLine: (line: string) => void): { push(chunk: Buffer): void; end(): void } {
  let pending = '';
  return {
    push(chunk: Buffer): void {
      pending += chunk.toString('utf8');
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        onLine(pending.slice(0, nl).replace(/\r$/, ''));
        pending = pending.slice(nl + 1);
        nl = pending.indexOf('\n');
      }
      // A line without an end is cut, so memory stays bounded.
      while (pending.length > MAX_LINE_CHARS * 4) {
        onLine(pending.slice(0, MAX_LINE_CHARS));
        pending = pending.slice(MAX_LINE_CHARS * 4);
      }
    },
    end(): void {
      if (pending !== '') onLine(pending);
      pending = '';
    },
  };
}

/** What one run of the test command gave. */
export interface TestRun {
  /** The command as one string (`npm test`). */
  command: string;
  /** The command's exit code; 128 + signal number when a signal ended it; 127 when it could not start. */
  exit_code: number;
  passed?: number;
  failed?: number;
  /** The last {@link TAIL_LINES} lines of output (stdout and stderr, interleaved as they came). */
  tail: string[];
}

/**
 * Run a test command with cwd = `repo`, streaming its output lines to `onLine`.
 *
 * @param repo - the repository's directory
 * @param argv - the command
 * @param onLine - called with every output line (ANSI colours removed)
 * @returns the run's summary
 */
export function runTestCommand(
  repo: string,
  argv: string[],
  onLine: (line: string) => void,
): Promise<TestRun> {
  const command = argv.join(' ');
  const tail: string[] = [];
  const parser = createSummaryParser();
  const handle = (raw: string): void => {
    const line = stripAnsi(raw).slice(0, MAX_LINE_CHARS);
    parser.feed(line);
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    onLine(line);
  };
  return new Promise<TestRun>((resolve) => {
    const [file, ...args] = argv;
    const child = spawn(file ?? 'false', args, {
      cwd: repo,
      // stdin is not a terminal, so runners such as vitest run once instead of watching.
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SMITH_DEMO_ACTIVE: '1', NO_COLOR: '1', FORCE_COLOR: '0' },
    });
    const out = lineSplitter(handle);
    const err = lineSplitter(handle);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const forward = (signal: NodeJS.Signals): void => {
      child.kill(signal);
    };
    process.on('SIGTERM', forward);
    process.on('SIGINT', forward);
    let spawnError: Error | null = null;
    child.on('error', (e) => {
      spawnError = e;
    });
    child.on('close', (code, signal) => {
      process.removeListener('SIGTERM', forward);
      process.removeListener('SIGINT', forward);
      out.end();
      err.end();
      let exitCode: number;
      if (spawnError !== null) {
        handle(`cannot start ${command}: ${(spawnError as Error).message}`);
        exitCode = 127;
      } else if (code !== null) {
        exitCode = code;
      } else {
        exitCode = 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
      }
      resolve({ command, exit_code: exitCode, ...parser.counts(), tail });
    });
  });
}

if (isMain(import.meta.url)) {
  void runAgent('tests', async () => {
    const repo = workDir();
    const detected = detectTestCommand(repo);
    if (detected === null) {
      const message = `no test command found in ${TEST_MANIFESTS.join(', ')}`;
      log(message);
      result(message);
      return 0;
    }
    const command = detected.argv.join(' ');
    log(`running ${command} (from ${detected.manifest}) in ${repo}`);
    progress(0, `running ${command}`);
    const started = Date.now();
    let lines = 0;
    const heartbeat = setInterval(() => {
      progress(
        undefined,
        `${command}: running for ${Math.round((Date.now() - started) / 1000)} s, ${lines} lines`,
      );
    }, HEARTBEAT_MS);
    let run: TestRun;
    try {
      run = await runTestCommand(repo, detected.argv, (line) => {
        lines++;
        if (lines <= MAX_FORWARDED_LINES) emit({ type: 'log', message: line });
        else if (lines === MAX_FORWARDED_LINES + 1) {
          log(
            `(further output of ${command} is not forwarded; the last ${TAIL_LINES} lines are in the result)`,
          );
        }
      });
    } finally {
      clearInterval(heartbeat);
    }
    const counts =
      run.passed !== undefined || run.failed !== undefined
        ? ` (${run.passed ?? 0} passed, ${run.failed ?? 0} failed)`
        : '';
    progress(100, `${command} exited ${run.exit_code}${counts}`);
    result({ ...run });
    return run.exit_code;
  });
}
