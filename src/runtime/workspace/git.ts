/**
 * A small wrapper around the `git` program: run it with arguments, a working directory, extra
 * environment and a time limit, and get its exit code and output back. It never throws for a
 * non-zero exit, a missing program or a timeout: callers decide what a failure means (for
 * worktrees, "keep": see `docs/worktrees.md`).
 */
import { execFile } from 'node:child_process';

/** What one git command did. */
export interface GitResult {
  /**
   * The exit code; `-1` when git could not be run at all (program not found, killed by the time
   * limit or a signal, output over `maxBuffer`). `stderr` then ends with the reason.
   */
  code: number;
  /** Standard output, UTF-8. */
  stdout: string;
  /** Standard error, UTF-8 (plus the reason git could not run, when `code` is `-1`). */
  stderr: string;
}

/** How to run one git command. */
export interface GitOptions {
  /** The directory git runs in. */
  cwd: string;
  /** The git program (default `git`, looked up on `PATH`). */
  git?: string;
  /**
   * Extra environment over `process.env`; a value of `undefined` removes the variable. The
   * variables that would point git at another repository or index (`GIT_DIR`, `GIT_WORK_TREE`,
   * `GIT_INDEX_FILE`, `GIT_COMMON_DIR`, …) are removed from the inherited environment first, so
   * only `env` can set them.
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** Time limit in ms (default 600 000 = 10 min); on expiry git gets SIGKILL and `code` is `-1`. */
  timeoutMs?: number;
  /** Text written to git's standard input (default: none, stdin is closed at once). */
  input?: string;
  /** Largest stdout or stderr kept, in bytes (default 256 MiB); past it git is killed, `code` `-1`. */
  maxBuffer?: number;
}

/** Default time limit of one git command, ms. */
export const DEFAULT_GIT_TIMEOUT_MS = 600_000;

/**
 * Inherited variables that redirect git to another repository, work tree or index. A caller
 * running smith from inside a git hook would otherwise make every command act on the wrong
 * repository. See "ENVIRONMENT VARIABLES" in https://git-scm.com/docs/git.
 */
const REDIRECTING_VARS = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_COMMON_DIR',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_NAMESPACE',
  'GIT_PREFIX',
];

/**
 * Run `git <args>` and collect its result. Never throws.
 *
 * The environment is `process.env` without the variables that redirect git, plus
 * `LC_ALL=C` (stable English messages), `GIT_TERMINAL_PROMPT=0` (never wait for a password) and
 * `GIT_EDITOR=true` (never wait for an editor), then `options.env`.
 *
 * @param args - the arguments after `git`
 * @param options - working directory, program, environment, time limit, stdin
 * @returns the exit code, stdout and stderr; `code` is `-1` when git could not run or was killed
 * @example
 * const r = await runGit(['rev-parse', 'HEAD'], { cwd: repo });
 * if (r.code === 0) console.log(r.stdout.trim());
 */
export function runGit(args: readonly string[], options: GitOptions): Promise<GitResult> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const name of REDIRECTING_VARS) delete env[name];
  env.LC_ALL = 'C';
  env.GIT_TERMINAL_PROMPT = '0';
  env.GIT_EDITOR = 'true';
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return new Promise((resolve) => {
    let child;
    try {
      child = execFile(
        options.git ?? 'git',
        [...args],
        {
          cwd: options.cwd,
          env,
          encoding: 'utf8',
          timeout: options.timeoutMs ?? DEFAULT_GIT_TIMEOUT_MS,
          killSignal: 'SIGKILL',
          maxBuffer: options.maxBuffer ?? 256 * 1024 * 1024,
          windowsHide: true,
        },
        (error, stdout, stderr) => {
          if (!error) {
            resolve({ code: 0, stdout, stderr });
            return;
          }
          const err = error as NodeJS.ErrnoException & { code?: unknown; killed?: boolean; signal?: string };
          if (typeof err.code === 'number' && !err.killed) {
            resolve({ code: err.code, stdout, stderr });
            return;
          }
          const why = err.killed
            ? `git was killed (${err.signal ?? 'signal'}), time limit ${options.timeoutMs ?? DEFAULT_GIT_TIMEOUT_MS} ms or output limit`
            : err.signal
              ? `git was killed by ${err.signal}`
              : `git could not run: ${err.message}`;
          resolve({ code: -1, stdout, stderr: stderr ? `${stderr.trimEnd()}\n${why}` : why });
        },
      );
    } catch (error) {
      // execFile throws synchronously for invalid arguments (for example a NUL byte in an argument).
      resolve({ code: -1, stdout: '', stderr: `git could not run: ${(error as Error).message}` });
      return;
    }
    child.stdin?.on('error', () => {
      // git may exit before reading all of stdin (EPIPE); its exit code tells what happened.
    });
    child.stdin?.end(options.input ?? '');
  });
}

/**
 * One line saying which git command failed and how, for error messages and `kept` reasons:
 * `git worktree remove /w/t1 failed (exit 128): fatal: … `.
 *
 * @param args - the arguments after `git`
 * @param result - what {@link runGit} returned
 * @param maxChars - longest stderr excerpt kept (its end), default 400 characters
 * @returns the description, without a trailing newline
 */
export function describeGitFailure(args: readonly string[], result: GitResult, maxChars = 400): string {
  const detail = (result.stderr.trim() || result.stdout.trim() || 'no output').replace(/\s*\n\s*/g, ' | ');
  const excerpt = detail.length > maxChars ? `…${detail.slice(detail.length - maxChars)}` : detail;
  const exit = result.code === -1 ? 'could not run' : `exit ${result.code}`;
  return `git ${args.join(' ')} failed (${exit}): ${excerpt}`;
}
