/**
 * The demo's `tidy` agent: a codemod that makes a real change in its worktree. It strips trailing
 * whitespace from the tracked source files (and gives them a final newline), and writes
 * `SMITH_HEALTH.md`, a summary of the inventory, the test run and the placeholder scan it needs.
 * The council judges the change and, in auto mode, smith applies it (to a scratch clone: never to
 * the user's own branch).
 *
 * Run as `node dist/demo/agents/tidy.js` with its working directory in the worktree.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { TaskInput } from '../../runtime/types.js';
import {
  isMain,
  listTrackedFiles,
  log,
  looksBinary,
  progress,
  result,
  runAgent,
  workDir,
} from './protocol.js';

/** Extensions of the files the codemod tidies (Markdown is left alone: trailing spaces are line breaks there). */
export const TIDY_EXTENSIONS = new Set([
  '.ts',
  '.tsx',
  '.js',
  '.mjs',
  '.cjs',
  '.json',
  '.yaml',
  '.yml',
  '.py',
  '.go',
  '.rs',
  '.sh',
  '.css',
  '.html',
  '.txt',
  '.toml',
]);

/** The most files one run changes (the council's change budget for the demo's risk tier is far above it). */
export const TIDY_MAX_FILES = 200;

/** Files larger than this are left alone (bytes). */
const TIDY_MAX_BYTES = 1024 * 1024;

/** The file the agent writes at the top of the repository. */
export const HEALTH_FILE = 'SMITH_HEALTH.md';

/**
 * Tidy one file's text: no trailing spaces or tabs on any line, and one final newline when the file
 * is not empty.
 *
 * @param text - the file's text
 * @returns the tidied text (the same string when nothing changes)
 */
export function tidyText(text: string): string {
  let out = text.replace(/[ \t]+(?=\r?\n|$)/g, '');
  if (out.length > 0 && !out.endsWith('\n')) out += '\n';
  return out;
}

type Obj = Record<string, unknown>;

function needObject(input: TaskInput, key: string): Obj | undefined {
  const out = input.needs[key]?.output;
  if (!out) return undefined;
  try {
    const v: unknown = JSON.parse(out);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The health summary: counts only (no quoted lines, so nothing in it looks like a placeholder).
 *
 * @param input - the task JSON (its needs: `inventory`, `tests`, `placeholders`)
 * @returns Markdown text
 */
export function healthText(input: TaskInput): string {
  const lines = ['# Repository health', '', 'Written by the `tidy` agent of `smith demo`.', ''];
  const inv = needObject(input, 'inventory');
  if (inv) lines.push(`- tracked files: ${String(inv.files ?? '?')}, lines: ${String(inv.lines ?? '?')}`);
  const tests = needObject(input, 'tests');
  if (tests) {
    const ok = tests.exit_code === 0;
    lines.push(
      `- tests: ${ok ? 'passed' : 'did not pass'}${tests.command ? ` (${String(tests.command)})` : ''}`,
    );
  }
  const scan = needObject(input, 'placeholders');
  if (scan) lines.push(`- unfinished-work markers found: ${String(scan.findings ?? '?')}`);
  lines.push('');
  return lines.join('\n');
}

if (isMain(import.meta.url)) {
  void runAgent('tidy', async (input) => {
    const dir = workDir();
    const tracked = (await listTrackedFiles(dir)).filter((f) =>
      TIDY_EXTENSIONS.has(extname(f).toLowerCase()),
    );
    const changed: string[] = [];
    let seen = 0;
    for (const file of tracked) {
      if (changed.length >= TIDY_MAX_FILES) break;
      seen++;
      if (seen % 200 === 0) progress(Math.round((100 * seen) / tracked.length), `looked at ${seen} files`);
      const path = join(dir, file);
      let buf: Buffer;
      try {
        buf = await readFile(path);
      } catch {
        continue;
      }
      if (buf.length > TIDY_MAX_BYTES || looksBinary(buf)) continue;
      const text = buf.toString('utf8');
      const tidy = tidyText(text);
      if (tidy !== text) {
        await writeFile(path, tidy);
        changed.push(file);
      }
    }
    await writeFile(join(dir, HEALTH_FILE), healthText(input));
    log(`tidied ${changed.length} file(s); wrote ${HEALTH_FILE}`);
    result({ tidied: changed.length, files: changed.slice(0, 20), wrote: HEALTH_FILE });
    return 0;
  });
}
