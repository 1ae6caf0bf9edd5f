/**
 * An agent's command line: placeholder substitution and finding the executable.
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';

/** Values substituted into an agent's `command`. */
export interface CommandValues {
  /** Replaces `{prompt}`. */
  prompt: string;
  /** Replaces `{task_id}`. */
  task_id: string;
  /** Replaces `{workdir}`. */
  workdir: string;
}

const PLACEHOLDER = /\{(prompt|task_id|workdir)\}/g;

/**
 * Substitute `{prompt}`, `{task_id}` and `{workdir}` inside each element of a command. Each value
 * stays within the one argument it was written in (no shell, no word splitting), and a value that
 * itself contains a placeholder is not substituted again.
 *
 * @param command - argv template, e.g. `["claude", "-p", "{prompt}"]`
 * @param values - the values to substitute
 * @returns the argv to spawn
 * @example
 * buildArgv(['echo', 'task {task_id}: {prompt}'], { prompt: "it's a \"test\"", task_id: 't1', workdir: '/w' });
 * // => ['echo', 'task t1: it\'s a "test"']
 */
export function buildArgv(command: readonly string[], values: CommandValues): string[] {
  return command.map((arg) => arg.replace(PLACEHOLDER, (_m, key: keyof CommandValues) => values[key]));
}

/** Why an executable could not be used. */
export type ExecutableProblem = 'not_found' | 'not_executable';

/** The outcome of {@link resolveExecutable}. */
export type ExecutableResolution = { ok: true; path: string } | { ok: false; problem: ExecutableProblem };

async function executableFile(file: string): Promise<ExecutableResolution> {
  try {
    const s = await stat(file);
    if (!s.isFile()) return { ok: false, problem: s.isDirectory() ? 'not_executable' : 'not_found' };
  } catch {
    return { ok: false, problem: 'not_found' };
  }
  try {
    await access(file, constants.X_OK);
    return { ok: true, path: file };
  } catch {
    return { ok: false, problem: 'not_executable' };
  }
}

/**
 * Find the executable a command names, as `execvp(3)` would: a name with a `/` is a path
 * (relative ones resolve against `cwd`); a bare name is searched in each directory of `pathEnv`
 * (an empty entry means `cwd`).
 *
 * @param command - argv[0]
 * @param pathEnv - the `PATH` to search (colon-separated); undefined = none
 * @param cwd - directory relative paths resolve against; default `process.cwd()`
 * @returns the absolute path of an existing file with execute permission, or why there is none
 *   (`not_executable` when only non-executable matches exist)
 */
export async function resolveExecutable(
  command: string,
  pathEnv: string | undefined,
  cwd: string = process.cwd(),
): Promise<ExecutableResolution> {
  if (command === '') return { ok: false, problem: 'not_found' };
  if (command.includes('/')) return executableFile(path.resolve(cwd, command));
  let problem: ExecutableProblem = 'not_found';
  for (const dir of (pathEnv ?? '').split(path.delimiter)) {
    if (pathEnv === undefined || pathEnv === '') break;
    const found = await executableFile(path.resolve(cwd, dir === '' ? '.' : dir, command));
    if (found.ok) return found;
    if (found.problem === 'not_executable') problem = 'not_executable';
  }
  return { ok: false, problem };
}
