/**
 * Where codex keeps its state for smith's attempts: one `CODEX_HOME` per task under a directory the
 * codex runtime owns, so that a later attempt of the task can resume the thread, and a throwaway
 * `HOME` per attempt.
 *
 * Layout (codex-cli 0.169): `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl` holds
 * each thread (its `event_msg` lines of type `token_count` carry `info.total_token_usage`); the
 * SQLite files, `skills/`, `shell_snapshots/` and the rest are caches codex rebuilds, and
 * `codex exec resume <id>` works from `sessions/` alone.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { readUsageTotals } from './codex-events.js';
import type { CodexUsageTotals } from './codex-events.js';

/** The default directory of per-task codex homes: `<os temp dir>/smith-codex`. */
export function defaultCodexHomeRoot(): string {
  return path.join(os.tmpdir(), 'smith-codex');
}

/** Default age, in ms, after which an unused task's codex home is removed: 7 days. */
export const DEFAULT_SESSION_KEEP_MS = 7 * 24 * 60 * 60 * 1000;

/** Bytes read from the end of a rollout file to find its last token totals: 16 MiB. */
const ROLLOUT_TAIL_BYTES = 16 * 1024 * 1024;

/** The name under `sessions/` kept between attempts; everything else is removed after each. */
const SESSIONS_DIR = 'sessions';

/** The homes of one attempt. */
export interface AttemptHomes {
  /** The task's directory under the root. */
  taskDir: string;
  /** `CODEX_HOME` for the attempt (kept for the task's later attempts). */
  codexHome: string;
  /** `HOME` for the attempt (removed after it). */
  home: string;
}

/**
 * The directory name of a task under the root: the id itself when it is a safe file name, else a
 * cleaned-up form with a hash of the id (so two ids never share a directory).
 *
 * @param taskId - the task id
 * @returns a single path segment
 */
export function taskDirName(taskId: string): string {
  if (/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/.test(taskId) && taskId !== '..') return taskId;
  const clean = taskId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 60);
  const hash = createHash('sha256').update(taskId).digest('hex').slice(0, 12);
  return `${clean}-${hash}`;
}

/**
 * Make (or reuse) the task's `CODEX_HOME` and a fresh `HOME` for one attempt, with mode 0700.
 * The task directory's time is refreshed so that {@link pruneCodexHomes} keeps it.
 *
 * @param root - the directory of per-task homes
 * @param taskId - the task id
 * @returns the homes
 * @throws the file system's error when the directories cannot be made
 */
export function prepareAttemptHomes(root: string, taskId: string): AttemptHomes {
  const taskDir = path.join(root, taskDirName(taskId));
  const codexHome = path.join(taskDir, 'codex-home');
  mkdirSync(codexHome, { recursive: true, mode: 0o700 });
  const now = new Date();
  try {
    utimesSync(taskDir, now, now);
  } catch {
    // only pruning looks at it
  }
  const home = mkdtempSync(path.join(taskDir, 'home-'));
  return { taskDir, codexHome, home };
}

/**
 * After an attempt: remove its `HOME`, and everything in the task's `CODEX_HOME` but `sessions/`
 * (what a resume needs). Never throws.
 *
 * @param homes - what {@link prepareAttemptHomes} returned
 */
export function releaseAttemptHomes(homes: AttemptHomes): void {
  rmSync(homes.home, { recursive: true, force: true, maxRetries: 2 });
  let entries: string[];
  try {
    entries = readdirSync(homes.codexHome);
  } catch {
    return;
  }
  for (const entry of entries) {
    if (entry === SESSIONS_DIR) continue;
    try {
      rmSync(path.join(homes.codexHome, entry), { recursive: true, force: true, maxRetries: 2 });
    } catch {
      // a file codex still holds open: the next attempt reuses or replaces it
    }
  }
}

/**
 * Remove the task directories under `root` not used for `keepMs` (by their modification time),
 * except `exceptDir`. Never throws.
 *
 * @param root - the directory of per-task homes
 * @param keepMs - age in ms after which a task's directory is removed
 * @param exceptDir - a task directory to keep whatever its age (the one in use)
 * @param now - the current time in ms since the epoch
 * @returns the directories removed
 */
export function pruneCodexHomes(
  root: string,
  keepMs: number,
  exceptDir?: string,
  now = Date.now(),
): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return removed;
  }
  for (const entry of entries) {
    const dir = path.join(root, entry);
    if (dir === exceptDir) continue;
    try {
      const s = statSync(dir);
      if (!s.isDirectory() || now - s.mtimeMs < keepMs) continue;
      rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
      removed.push(dir);
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}

/**
 * Find the rollout file of a thread under a codex home
 * (`sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl`), newest directories first.
 *
 * @param codexHome - the `CODEX_HOME`
 * @param threadId - the thread id (`thread.started.thread_id`)
 * @returns the file's path, or null when there is none
 */
export function findRollout(codexHome: string, threadId: string): string | null {
  if (threadId === '' || threadId.includes('/') || threadId.includes('\0')) return null;
  const suffix = `-${threadId}.jsonl`;
  const walk = (dir: string, depth: number): string | null => {
    let entries: { name: string; isDirectory(): boolean; isFile(): boolean }[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return null;
    }
    for (const e of entries) {
      if (e.isFile() && e.name.startsWith('rollout-') && e.name.endsWith(suffix))
        return path.join(dir, e.name);
    }
    if (depth >= 4) return null;
    const dirs = entries.filter((e) => e.isDirectory()).map((e) => e.name);
    dirs.sort().reverse();
    for (const name of dirs) {
      const found = walk(path.join(dir, name), depth + 1);
      if (found !== null) return found;
    }
    return null;
  };
  return walk(path.join(codexHome, SESSIONS_DIR), 0);
}

/**
 * The last token totals a rollout file records (its last `token_count` event's
 * `info.total_token_usage`): what `turn.completed` of a resumed run counts from.
 *
 * @param file - the rollout file
 * @returns the totals, or null when the file has none or cannot be read
 */
export function readRolloutUsage(file: string): CodexUsageTotals | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, ROLLOUT_TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    let read = 0;
    while (read < length) {
      const n = readSync(fd, buffer, read, length - read, size - length + read);
      if (n <= 0) break;
      read += n;
    }
    const lines = buffer.subarray(0, read).toString('utf8').split('\n');
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i];
      if (line === undefined || !line.includes('"token_count"') || !line.includes('total_token_usage'))
        continue;
      try {
        const value = JSON.parse(line) as { payload?: { info?: { total_token_usage?: unknown } } };
        const totals = readUsageTotals(value.payload?.info?.total_token_usage);
        if (totals !== null) return totals;
      } catch {
        // a line cut by the tail window, or a partial last line
      }
    }
    return null;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}
