/**
 * Shared helpers for the demo agents: read the task JSON from stdin, write NDJSON events on stdout
 * (the `process` runtime's protocol, see DESIGN.md "Agent runtimes"), list a repository's tracked
 * files and read them within limits.
 */
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Json } from '../../core/types.js';
import type { TaskInput } from '../../runtime/types.js';

/** An event an agent writes on stdout, one JSON object per line. */
export type AgentEvent =
  | { type: 'progress'; pct?: number; message?: string }
  | { type: 'log'; message: string }
  | { type: 'artifact'; path: string }
  | { type: 'result'; output: Json };

/** Bytes read from a file to decide whether it is binary (a NUL byte in them), as git does: 8 KiB. */
export const BINARY_SNIFF_BYTES = 8 * 1024;

/** Files larger than this are not read (no line counts, no scan): 5 MiB. */
export const MAX_TEXT_FILE_BYTES = 5 * 1024 * 1024;

/** The most bytes of task JSON accepted on stdin: 64 MiB. */
export const MAX_INPUT_BYTES = 64 * 1024 * 1024;

/**
 * Write one event as one NDJSON line on stdout.
 *
 * @param event - the event
 */
export function emit(event: AgentEvent): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/**
 * Report progress.
 *
 * @param pct - percent done, 0..100 (rounded); undefined for a heartbeat without a known fraction
 * @param message - what is happening
 */
export function progress(pct: number | undefined, message: string): void {
  emit(
    pct === undefined ? { type: 'progress', message } : { type: 'progress', pct: Math.round(pct), message },
  );
}

/**
 * Write a log line as a `log` event (so that a line that looks like JSON is never taken for an event).
 *
 * @param message - the line
 */
export function log(message: string): void {
  emit({ type: 'log', message });
}

/**
 * Announce a file the agent produced.
 *
 * @param path - the file's path (absolute)
 */
export function artifact(path: string): void {
  emit({ type: 'artifact', path });
}

/**
 * Write the one final `result` event.
 *
 * @param output - a string or any JSON value
 */
export function result(output: Json): void {
  emit({ type: 'result', output });
}

/**
 * The directory the agent works in: `SMITH_WORKDIR` when set, else the current directory.
 *
 * @returns an absolute path
 */
export function workDir(): string {
  const fromEnv = process.env['SMITH_WORKDIR'];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : process.cwd();
}

/**
 * Parse one line of task JSON into a {@link TaskInput}, filling defaults for missing fields.
 *
 * @param text - the JSON text; empty means "no input" and gives a local default input
 * @param fallbackKey - the key used when the input does not name one
 * @returns the task input
 * @throws Error when the text is not a JSON object
 */
export function parseTaskInput(text: string, fallbackKey: string): TaskInput {
  const trimmed = text.trim();
  if (trimmed === '') {
    return { id: 'local', key: fallbackKey, workflow_id: null, prompt: '', attempt: 1, needs: {} };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch (err) {
    throw new Error(`the task JSON on stdin does not parse: ${(err as Error).message}`, { cause: err });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error('the task JSON on stdin is not an object: expected {"id","key","prompt","needs",…}');
  }
  const o = parsed as Record<string, unknown>;
  const needs: TaskInput['needs'] = {};
  if (o['needs'] !== null && typeof o['needs'] === 'object' && !Array.isArray(o['needs'])) {
    for (const [key, value] of Object.entries(o['needs'] as Record<string, unknown>)) {
      if (value === null || typeof value !== 'object') continue;
      const v = value as Record<string, unknown>;
      const output = v['output'];
      needs[key] = {
        id: typeof v['id'] === 'string' ? v['id'] : '',
        // Tolerate an output given as JSON rather than as a string.
        output:
          typeof output === 'string'
            ? output
            : output === undefined || output === null
              ? null
              : JSON.stringify(output),
      };
    }
  }
  return {
    id: typeof o['id'] === 'string' ? o['id'] : 'local',
    key: typeof o['key'] === 'string' ? o['key'] : fallbackKey,
    workflow_id: typeof o['workflow_id'] === 'string' ? o['workflow_id'] : null,
    prompt: typeof o['prompt'] === 'string' ? o['prompt'] : '',
    attempt: typeof o['attempt'] === 'number' ? o['attempt'] : 1,
    needs,
  };
}

/**
 * Read the task JSON: the first line of stdin (the runtime may keep stdin open after it). A terminal
 * or an empty stdin gives a local default input, so an agent can be tried by hand.
 *
 * @param fallbackKey - the key used when the input does not name one
 * @param stream - where to read; default `process.stdin`
 * @returns the task input
 * @throws Error when the input does not parse or exceeds {@link MAX_INPUT_BYTES}
 */
export function readTaskInput(
  fallbackKey: string,
  stream: NodeJS.ReadableStream & { isTTY?: boolean; destroy?: () => void } = process.stdin,
): Promise<TaskInput> {
  if (stream.isTTY === true) return Promise.resolve(parseTaskInput('', fallbackKey));
  return new Promise<TaskInput>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (err: Error | null, text: string): void => {
      if (settled) return;
      settled = true;
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      stream.removeListener('error', onError);
      stream.pause();
      stream.destroy?.();
      if (err !== null) {
        reject(err);
        return;
      }
      try {
        resolve(parseTaskInput(text, fallbackKey));
      } catch (parseErr) {
        reject(parseErr as Error);
      }
    };
    const onData = (chunk: Buffer | string): void => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const nl = buf.indexOf(10);
      if (nl >= 0) {
        chunks.push(buf.subarray(0, nl));
        finish(null, Buffer.concat(chunks).toString('utf8'));
        return;
      }
      chunks.push(buf);
      size += buf.length;
      if (size > MAX_INPUT_BYTES) {
        finish(new Error(`the task JSON on stdin exceeds ${MAX_INPUT_BYTES} bytes`), '');
      }
    };
    const onEnd = (): void => finish(null, Buffer.concat(chunks).toString('utf8'));
    const onError = (err: Error): void => finish(err, '');
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.resume();
  });
}

/**
 * Whether the module with this `import.meta.url` is the program node was asked to run (and not
 * imported, e.g. by a test).
 *
 * @param importMetaUrl - the module's `import.meta.url`
 * @returns true when it is the entry point
 */
export function isMain(importMetaUrl: string): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(importMetaUrl));
  } catch {
    return false;
  }
}

/**
 * Run an agent's main function: read the task JSON, call `main`, and set the exit code it returns.
 * An error is reported on stderr and as a log event, and the exit code is 1. The process is left to
 * exit by itself, so that everything written to stdout is flushed.
 *
 * @param name - the agent's name (the fallback task key, and the prefix of error messages)
 * @param main - does the work; returns the exit code
 */
export async function runAgent(name: string, main: (input: TaskInput) => Promise<number>): Promise<void> {
  try {
    const input = await readTaskInput(name);
    process.exitCode = await main(input);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log(`${name} agent failed: ${message}`);
    process.stderr.write(`${name} agent failed: ${message}\n`);
    process.exitCode = 1;
  }
}

/**
 * List the files git tracks in a repository (`git ls-files -z`), reading git's output as a stream.
 *
 * @param dir - a directory inside the work tree
 * @returns repository-relative paths, in git's order
 * @throws Error when git cannot run or `dir` is not in a git work tree (git's message included)
 */
export function listTrackedFiles(dir: string): Promise<string[]> {
  return new Promise<string[]>((resolve, reject) => {
    const child = spawn('git', ['ls-files', '-z'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const paths: string[] = [];
    let pending: Buffer = Buffer.alloc(0);
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      let buf = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
      let nul = buf.indexOf(0);
      while (nul >= 0) {
        if (nul > 0) paths.push(buf.subarray(0, nul).toString('utf8'));
        buf = buf.subarray(nul + 1);
        nul = buf.indexOf(0);
      }
      pending = Buffer.from(buf);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString('utf8');
    });
    child.on('error', (err) => reject(new Error(`cannot run git ls-files in ${dir}: ${err.message}`)));
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`git ls-files failed in ${dir} (exit ${code}): ${stderr.trim()}`));
        return;
      }
      if (pending.length > 0) paths.push(pending.toString('utf8'));
      resolve(paths);
    });
  });
}

/** What {@link readTrackedFile} found. */
export type FileRead =
  | { kind: 'text'; content: Buffer }
  | { kind: 'binary' }
  | { kind: 'too-large'; size: number }
  /** A symbolic link (not followed). */
  | { kind: 'symlink' }
  /** A submodule (a directory) or another entry that is not a regular file. */
  | { kind: 'not-a-file' }
  /** Tracked but gone from the work tree (or unreadable). */
  | { kind: 'missing' };

/**
 * Whether bytes look binary: a NUL byte within the first {@link BINARY_SNIFF_BYTES}.
 *
 * @param content - the file's first bytes (or all of them)
 * @returns true when binary
 */
export function looksBinary(content: Buffer): boolean {
  return content.subarray(0, BINARY_SNIFF_BYTES).includes(0);
}

/**
 * Read a tracked file when it is a regular text file of at most `maxBytes`.
 *
 * @param repo - the repository's directory
 * @param path - the repository-relative path
 * @param maxBytes - larger files are not read; default {@link MAX_TEXT_FILE_BYTES}
 * @returns the content, or why it was not read
 */
export async function readTrackedFile(
  repo: string,
  path: string,
  maxBytes: number = MAX_TEXT_FILE_BYTES,
): Promise<FileRead> {
  const abs = join(repo, path);
  try {
    const st = await lstat(abs);
    if (st.isSymbolicLink()) return { kind: 'symlink' };
    if (!st.isFile()) return { kind: 'not-a-file' };
    if (st.size > maxBytes) return { kind: 'too-large', size: st.size };
    const content = await readFile(abs);
    // The file may have grown since lstat.
    if (content.length > maxBytes) return { kind: 'too-large', size: content.length };
    return looksBinary(content) ? { kind: 'binary' } : { kind: 'text', content };
  } catch {
    return { kind: 'missing' };
  }
}

/**
 * Run `fn` over `items` with at most `limit` calls in flight, keeping the items' order in the result.
 *
 * @param items - the inputs
 * @param limit - the most calls at once (at least 1)
 * @param fn - the work for one item; its index is passed too
 * @returns the results, in the items' order
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

/**
 * Calls `report(pct, done)` each time another tenth of `total` items is done.
 *
 * @param total - how many items there are
 * @param report - called with the percent done and the count done
 * @returns a function to call once per finished item
 */
export function decileReporter(total: number, report: (pct: number, done: number) => void): () => void {
  let done = 0;
  let nextDecile = 1;
  return () => {
    done++;
    const pct = total === 0 ? 100 : (done * 100) / total;
    if (pct >= nextDecile * 10) {
      while (pct >= nextDecile * 10) nextDecile++;
      report(pct, done);
    }
  };
}
