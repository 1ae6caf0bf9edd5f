/**
 * The home a Gemini CLI attempt runs with: one directory per task (so that a later attempt of the
 * task can resume the CLI's session), holding a `.gemini/settings.json` written by smith.
 *
 * Gemini CLI keeps its user settings in `~/.gemini/settings.json` and its sessions in
 * `~/.gemini/tmp/<project>/chats/session-<time>-<first 8 of the id>.jsonl`, where `<project>` is a
 * directory holding a `.project_root` file with the absolute working directory
 * (`docs/cli/session-management.md`; `Storage.getProjectTempDir` in the bundle). `GEMINI_CLI_HOME`
 * replaces the home for the CLI (`docs/reference/configuration.md`).
 */
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';

import type { Json } from '../../core/types.js';

/**
 * The settings smith writes into an isolated home (Gemini CLI settings schema,
 * `docs/reference/configuration.md`): API-key auth, no folder-trust prompt, no update check or
 * notification, no usage statistics, no telemetry, no IDE connection, and at most 3 tries of each
 * model request (the CLI retries 429 and 5xx with backoff from 5 s; smith retries attempts itself).
 */
export const DEFAULT_GEMINI_SETTINGS: { readonly [key: string]: Json } = {
  security: {
    auth: { selectedType: 'gemini-api-key' },
    folderTrust: { enabled: false },
  },
  general: {
    enableAutoUpdate: false,
    enableAutoUpdateNotification: false,
    maxAttempts: 3,
  },
  privacy: { usageStatisticsEnabled: false },
  telemetry: { enabled: false },
  ide: { enabled: false },
};

function isPlainObject(value: unknown): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Merge settings objects: objects merge key by key (later wins), anything else is replaced.
 *
 * @param base - the defaults
 * @param overrides - merged over them, in order
 * @returns a new object
 */
export function mergeSettings(
  base: { readonly [key: string]: Json },
  ...overrides: ({ readonly [key: string]: Json } | undefined)[]
): { [key: string]: Json } {
  const out: { [key: string]: Json } = structuredClone(base) as { [key: string]: Json };
  for (const over of overrides) {
    if (over === undefined) continue;
    for (const [key, value] of Object.entries(over)) {
      const current = out[key];
      out[key] =
        isPlainObject(current) && isPlainObject(value)
          ? mergeSettings(current, value)
          : structuredClone(value);
    }
  }
  return out;
}

/**
 * A file-system-safe directory name for a task id (characters other than letters, digits, `.`,
 * `_` and `-` become `_`; `.` and `..` are prefixed).
 *
 * @param taskId - the task id
 * @returns the name
 */
export function homeNameFor(taskId: string): string {
  const safe = taskId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 200);
  return safe === '' || /^\.+$/.test(safe) ? `task_${safe}` : safe;
}

/**
 * Create (or reuse) a task's home and (re)write its `.gemini/settings.json`; touch it so that
 * {@link pruneHomes} keeps it.
 *
 * @param home - the home directory
 * @param settings - the settings to write
 * @returns the home's `tmp` directory (for `TMPDIR`: the CLI writes error reports there)
 */
export function prepareHome(home: string, settings: { readonly [key: string]: Json }): string {
  const geminiDir = path.join(home, '.gemini');
  mkdirSync(geminiDir, { recursive: true, mode: 0o700 });
  writeFileSync(path.join(geminiDir, 'settings.json'), JSON.stringify(settings, null, 2) + '\n', {
    mode: 0o600,
  });
  const tmp = path.join(home, 'tmp');
  mkdirSync(tmp, { recursive: true, mode: 0o700 });
  const now = new Date();
  utimesSync(home, now, now);
  return tmp;
}

function sameDir(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/**
 * Where the CLI keeps a session for a working directory, if it does: the session file
 * `session-*-<id[0..8]>.json(l)` in the chats folder of the project whose `.project_root` is
 * `workdir`, and that holds `sessionId`.
 *
 * @param geminiHome - the home the CLI runs with (its `.gemini` is looked into)
 * @param workdir - the attempt's working directory
 * @param sessionId - the session id (a UUID)
 * @returns the file's path, or null when the CLI could not resume it from `workdir`
 */
export function findSessionFile(geminiHome: string, workdir: string, sessionId: string): string | null {
  const tmp = path.join(geminiHome, '.gemini', 'tmp');
  const short = sessionId.slice(0, 8);
  let projects: string[];
  try {
    projects = readdirSync(tmp);
  } catch {
    return null;
  }
  for (const project of projects) {
    let root: string;
    try {
      root = readFileSync(path.join(tmp, project, '.project_root'), 'utf8').trim();
    } catch {
      continue;
    }
    if (!sameDir(root, workdir)) continue;
    const chats = path.join(tmp, project, 'chats');
    let files: string[];
    try {
      files = readdirSync(chats);
    } catch {
      continue;
    }
    for (const file of files) {
      if (!file.startsWith('session-')) continue;
      if (!file.endsWith(`-${short}.jsonl`) && !file.endsWith(`-${short}.json`)) continue;
      const full = path.join(chats, file);
      try {
        // the first line (JSONL) or the object (JSON) names the session
        if (readFileSync(full, 'utf8').slice(0, 4096).includes(`"${sessionId}"`)) return full;
      } catch {
        continue;
      }
    }
  }
  return null;
}

/**
 * Remove task homes under `root` not used for `maxAgeMs` (best effort; errors are ignored).
 *
 * @param root - the folder of task homes
 * @param maxAgeMs - age in ms past which a home goes
 * @param now - the current time in ms since the epoch
 * @returns the homes removed
 */
export function pruneHomes(root: string, maxAgeMs: number, now: number = Date.now()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return removed;
  }
  for (const name of names) {
    const dir = path.join(root, name);
    try {
      const s = statSync(dir);
      if (!s.isDirectory() || now - s.mtimeMs <= maxAgeMs) continue;
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      continue;
    }
  }
  return removed;
}
