/**
 * The demo's `inventory` agent: counts a repository's tracked files and their lines per language.
 *
 * Run as `node dist/demo/agents/inventory.js` with cwd = the repository. Result output:
 * `{ files, lines, languages: [{ language, files, lines }] }`, languages sorted by lines, most first.
 * Binary files (a NUL byte in the first 8 KiB) and files over 5 MiB count as files with 0 lines.
 */
import { extname, basename } from 'node:path';
import {
  decileReporter,
  isMain,
  listTrackedFiles,
  log,
  mapLimit,
  progress,
  readTrackedFile,
  result,
  runAgent,
  workDir,
} from './protocol.js';

/** The languages the inventory names; anything else is `other`. */
export type Language =
  | 'TypeScript'
  | 'JavaScript'
  | 'JSON'
  | 'YAML'
  | 'Markdown'
  | 'Python'
  | 'Go'
  | 'Rust'
  | 'Shell'
  | 'C'
  | 'C++'
  | 'Java'
  | 'CSS'
  | 'HTML'
  | 'other';

const EXTENSIONS: Readonly<Record<string, Language>> = {
  '.ts': 'TypeScript',
  '.tsx': 'TypeScript',
  '.mts': 'TypeScript',
  '.cts': 'TypeScript',
  '.js': 'JavaScript',
  '.jsx': 'JavaScript',
  '.mjs': 'JavaScript',
  '.cjs': 'JavaScript',
  '.json': 'JSON',
  '.jsonc': 'JSON',
  '.yml': 'YAML',
  '.yaml': 'YAML',
  '.md': 'Markdown',
  '.markdown': 'Markdown',
  '.mdx': 'Markdown',
  '.py': 'Python',
  '.pyi': 'Python',
  '.go': 'Go',
  '.rs': 'Rust',
  '.sh': 'Shell',
  '.bash': 'Shell',
  '.zsh': 'Shell',
  '.c': 'C',
  '.h': 'C',
  '.cc': 'C++',
  '.cpp': 'C++',
  '.cxx': 'C++',
  '.hh': 'C++',
  '.hpp': 'C++',
  '.hxx': 'C++',
  '.java': 'Java',
  '.css': 'CSS',
  '.scss': 'CSS',
  '.less': 'CSS',
  '.html': 'HTML',
  '.htm': 'HTML',
};

/**
 * The language of a file, by its extension (case-insensitive).
 *
 * @param path - a file path
 * @returns the language, or `other`
 */
export function languageOf(path: string): Language {
  const ext = extname(basename(path)).toLowerCase();
  return EXTENSIONS[ext] ?? 'other';
}

/**
 * The number of lines in text: newline characters, plus one for a last line without a newline.
 *
 * @param content - the text's bytes
 * @returns the line count (0 for empty content)
 */
export function countLines(content: Buffer): number {
  if (content.length === 0) return 0;
  let lines = 0;
  let pos = content.indexOf(10);
  while (pos >= 0) {
    lines++;
    pos = content.indexOf(10, pos + 1);
  }
  return content[content.length - 1] === 10 ? lines : lines + 1;
}

/** Files and lines of one language. */
export interface LanguageCount {
  language: Language;
  files: number;
  lines: number;
}

/** The inventory agent's result output. */
export interface Inventory {
  /** Tracked regular files and symbolic links present in the work tree. */
  files: number;
  /** Lines of the text files among them. */
  lines: number;
  /** Sorted by lines, most first (then files, then name). */
  languages: LanguageCount[];
  /** Files counted without lines: binary, larger than 5 MiB, or symbolic links. */
  skipped: number;
}

/**
 * Count the tracked files and lines of a repository.
 *
 * @param repo - the repository's directory
 * @param onProgress - called each time another tenth of the files is done
 * @returns the inventory
 * @throws Error when `git ls-files` fails
 */
export async function takeInventory(
  repo: string,
  onProgress: (pct: number, done: number, total: number) => void = () => {},
): Promise<Inventory> {
  const paths = await listTrackedFiles(repo);
  const tick = decileReporter(paths.length, (pct, done) => onProgress(pct, done, paths.length));
  const byLanguage = new Map<Language, LanguageCount>();
  let files = 0;
  let lines = 0;
  let skipped = 0;
  await mapLimit(paths, 16, async (path) => {
    const read = await readTrackedFile(repo, path);
    tick();
    // Gone from the work tree, or a submodule (a directory): not a file of this repository.
    if (read.kind === 'missing' || read.kind === 'not-a-file') return;
    const language = languageOf(path);
    const entry = byLanguage.get(language) ?? { language, files: 0, lines: 0 };
    byLanguage.set(language, entry);
    entry.files++;
    files++;
    if (read.kind === 'text') {
      const n = countLines(read.content);
      entry.lines += n;
      lines += n;
    } else {
      skipped++;
    }
  });
  const languages = [...byLanguage.values()].sort(
    (a, b) => b.lines - a.lines || b.files - a.files || a.language.localeCompare(b.language),
  );
  return { files, lines, languages, skipped };
}

if (isMain(import.meta.url)) {
  void runAgent('inventory', async () => {
    const repo = workDir();
    progress(0, `listing tracked files in ${repo}`);
    const inventory = await takeInventory(repo, (pct, done, total) =>
      progress(pct, `read ${done} of ${total} files`),
    );
    const top = inventory.languages
      .slice(0, 5)
      .map((l) => `${l.language} ${l.lines}`)
      .join(', ');
    log(`${inventory.files} files, ${inventory.lines} lines${top === '' ? '' : ` (${top})`}`);
    progress(100, 'inventory done');
    result({
      files: inventory.files,
      lines: inventory.lines,
      skipped: inventory.skipped,
      languages: inventory.languages.map((l) => ({ language: l.language, files: l.files, lines: l.lines })),
    });
    return 0;
  });
}
