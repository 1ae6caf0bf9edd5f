/**
 * The demo's `placeholders` agent: finds marks of unfinished work in a repository's tracked text
 * files: marker words in comments, "not implemented" throws, stubs and skipped tests.
 *
 * Run as `node dist/demo/agents/placeholders.js` with cwd = the repository. Result output:
 * `{ files_scanned, findings, by_kind, samples: [{ path, line, kind, text }] }` (at most
 * {@link MAX_SAMPLES} samples). It reports and does not judge: it exits 0 whatever it finds.
 *
 * The patterns below are assembled from pieces, so this file's own source holds none of the marks
 * it looks for; its paths are excluded as well (see {@link isScannerSource}).
 */
import { basename, extname } from 'node:path';
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

/** Samples kept in the result. */
export const MAX_SAMPLES = 20;

/** Lines longer than this are taken for generated or minified code and not scanned. */
export const MAX_SCANNED_LINE_CHARS = 1000;

/** Characters of a finding's line kept in a sample. */
const SAMPLE_TEXT_CHARS = 200;

/** Marker words, found inside comments only. */
const MARKER_WORDS = ['TO' + 'DO', 'FIX' + 'ME', 'X' + 'XX', 'HA' + 'CK', 'PLACE' + 'HOLDER'] as const;

/**
 * The kinds of finding: one per marker word in a comment, plus `not-implemented` (a "not implemented"
 * throw, Python's not-implemented error, Rust's unimplemented/to-do macros), `stub` (`pass` with a
 * stub comment) and `skipped-test` (skipped `it`/`test`/`describe`, `xit`, `xdescribe`, pytest's skip
 * mark).
 */
export const FINDING_KINDS: readonly string[] = [...MARKER_WORDS, 'not-implemented', 'stub', 'skipped-test'];

const MARKER = new RegExp(`\\b(${MARKER_WORDS.join('|')})\\b`);

/** Code patterns, with the kind each one reports. */
const CODE_PATTERNS: readonly { kind: string; re: RegExp }[] = [
  {
    kind: 'not-implemented',
    re: new RegExp(`throw\\s+new\\s+Error\\(\\s*['"\`]${'not ' + 'implemented'}`, 'i'),
  },
  { kind: 'not-implemented', re: new RegExp(`\\b${'NotImplemented' + 'Error'}\\b`) },
  { kind: 'not-implemented', re: new RegExp(`\\b(${'unimplemented' + '|' + 'to' + 'do'})!\\s*\\(`) },
  { kind: 'stub', re: new RegExp(`\\bpass\\s*#\\s*${'st' + 'ub'}\\b`, 'i') },
  { kind: 'skipped-test', re: new RegExp(`\\b(it|test|describe)\\.${'sk' + 'ip'}\\s*\\(`) },
  { kind: 'skipped-test', re: new RegExp(`\\b${'x'}(it|describe)\\s*\\(`) },
  { kind: 'skipped-test', re: new RegExp(`@pytest\\.mark\\.${'sk' + 'ip'}\\b`) },
];

/** How a file's comments start. `none`: no comments (JSON); `generic`: unknown, any common token. */
type CommentStyle = 'c' | 'hash' | 'html' | 'dash' | 'c+html' | 'none' | 'generic';

const STYLE_BY_EXT: Record<string, CommentStyle> = {};
const setStyle = (style: CommentStyle, exts: string): void => {
  for (const ext of exts.split(' ')) STYLE_BY_EXT[`.${ext}`] = style;
};
setStyle(
  'c',
  'ts tsx mts cts js jsx mjs cjs go rs c h cc cpp cxx hh hpp hxx java kt kts scala swift cs php css scss less dart groovy gradle proto zig',
);
setStyle('hash', 'py pyi sh bash zsh fish rb pl pm r yml yaml toml cfg ini conf mk cmake ps1 tf nix');
setStyle('html', 'html htm xml md markdown mdx svg');
setStyle('c+html', 'vue svelte astro');
setStyle('dash', 'sql lua hs elm');
setStyle('none', 'json jsonc txt csv tsv');

const HASH_NAMES = new Set([
  'Makefile',
  'makefile',
  'GNUmakefile',
  'Dockerfile',
  'Containerfile',
  '.gitignore',
]);

/** Styles whose files are code, where the code patterns apply. */
const CODE_STYLES = new Set<CommentStyle>(['c', 'hash', 'dash', 'c+html']);

const COMMENT_START: Readonly<Record<CommentStyle, RegExp | null>> = {
  // `//` not in a URL (`https://`), `/*`, or a line inside a block comment (` * …`).
  c: /(^|[^:])\/\/|\/\*|^\s*\*/,
  hash: /#/,
  html: /<!--/,
  dash: /--/,
  'c+html': /(^|[^:])\/\/|\/\*|^\s*\*|<!--/,
  none: null,
  generic: /(^|[^:])\/\/|\/\*|^\s*\*|<!--|#/,
};

function styleOf(path: string): CommentStyle {
  const name = basename(path);
  if (HASH_NAMES.has(name)) return 'hash';
  return STYLE_BY_EXT[extname(name).toLowerCase()] ?? 'generic';
}

const SKIPPED_DIRS = new Set([
  'node_modules',
  'dist',
  'vendor',
  'vendored',
  'third_party',
  'third-party',
  'bower_components',
  '.yarn',
  'coverage',
]);

const LOCKFILES = new Set([
  'package-lock.json',
  'npm-shrinkwrap.json',
  'yarn.lock',
  'pnpm-lock.yaml',
  'bun.lockb',
  'Cargo.lock',
  'go.sum',
  'poetry.lock',
  'Pipfile.lock',
  'composer.lock',
  'Gemfile.lock',
  'uv.lock',
]);

/**
 * Whether a path is this scanner's own source, test or build output (`…/demo/agents/placeholders.ts`,
 * `.js`, `.d.ts`, `.test.ts`), which holds the patterns it looks for.
 *
 * @param path - a repository-relative path
 * @returns true for the scanner's own files
 */
export function isScannerSource(path: string): boolean {
  return /(^|\/)demo\/agents\/placeholders(\.test)?\.(ts|js|d\.ts|js\.map)$/.test(path);
}

/**
 * Whether a tracked file is left out of the scan: dependencies and build output (`node_modules/`,
 * `dist/`, `vendor/`, …), lockfiles, minified files and source maps, and the scanner's own files.
 *
 * @param path - a repository-relative path
 * @returns true when the file is not scanned
 */
export function isExcluded(path: string): boolean {
  const parts = path.split('/');
  const name = parts[parts.length - 1] ?? path;
  if (parts.slice(0, -1).some((p) => SKIPPED_DIRS.has(p))) return true;
  if (LOCKFILES.has(name)) return true;
  if (/\.min\.(js|css|mjs)$|\.map$/.test(name)) return true;
  return isScannerSource(path);
}

/** One mark of unfinished work. */
export interface Finding {
  /** Repository-relative path. */
  path: string;
  /** 1-based line number. */
  line: number;
  /** One of {@link FINDING_KINDS}. */
  kind: string;
  /** The line, trimmed and cut to 200 characters. */
  text: string;
}

/**
 * Find the marks of unfinished work in one file's text.
 *
 * @param path - the repository-relative path (its extension picks the comment syntax)
 * @param text - the file's content
 * @returns the findings, in line order; at most one per kind per line
 */
export function scanText(path: string, text: string): Finding[] {
  const style = styleOf(path);
  const commentStart = COMMENT_START[style];
  const code = CODE_STYLES.has(style);
  const findings: Finding[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.length > MAX_SCANNED_LINE_CHARS) continue;
    const kinds = new Set<string>();
    if (commentStart !== null) {
      const m = commentStart.exec(line);
      if (m !== null) {
        const marker = MARKER.exec(line.slice(m.index));
        if (marker !== null && marker[1] !== undefined) kinds.add(marker[1]);
      }
    }
    if (code) {
      for (const p of CODE_PATTERNS) if (p.re.test(line)) kinds.add(p.kind);
    }
    for (const kind of kinds) {
      findings.push({ path, line: i + 1, kind, text: line.trim().slice(0, SAMPLE_TEXT_CHARS) });
    }
  }
  return findings;
}

/** The placeholders agent's result output. */
export interface PlaceholderReport {
  /** Text files scanned. */
  files_scanned: number;
  /** Findings in all. */
  findings: number;
  /** Findings per kind (every kind of {@link FINDING_KINDS}, zeros included). */
  by_kind: Record<string, number>;
  /** The first findings in git's file order, at most {@link MAX_SAMPLES}. */
  samples: Finding[];
}

/**
 * Scan a repository's tracked text files for marks of unfinished work.
 *
 * @param repo - the repository's directory
 * @param onProgress - called each time another tenth of the files is done
 * @returns the report
 * @throws Error when `git ls-files` fails
 */
export async function scanRepository(
  repo: string,
  onProgress: (pct: number, done: number, total: number) => void = () => {},
): Promise<PlaceholderReport> {
  const paths = await listTrackedFiles(repo);
  const tick = decileReporter(paths.length, (pct, done) => onProgress(pct, done, paths.length));
  const perFile = await mapLimit(paths, 16, async (path): Promise<Finding[] | null> => {
    try {
      if (isExcluded(path)) return null;
      const read = await readTrackedFile(repo, path);
      if (read.kind !== 'text') return null;
      return scanText(path, read.content.toString('utf8'));
    } finally {
      tick();
    }
  });
  const byKind: Record<string, number> = Object.fromEntries(FINDING_KINDS.map((k) => [k, 0]));
  const samples: Finding[] = [];
  let filesScanned = 0;
  let findings = 0;
  for (const list of perFile) {
    if (list === null) continue;
    filesScanned++;
    for (const f of list) {
      findings++;
      byKind[f.kind] = (byKind[f.kind] ?? 0) + 1;
      if (samples.length < MAX_SAMPLES) samples.push(f);
    }
  }
  return { files_scanned: filesScanned, findings, by_kind: byKind, samples };
}

if (isMain(import.meta.url)) {
  void runAgent('placeholders', async () => {
    const repo = workDir();
    progress(0, `listing tracked files in ${repo}`);
    const report = await scanRepository(repo, (pct, done, total) =>
      progress(pct, `scanned ${done} of ${total} files`),
    );
    const kinds = Object.entries(report.by_kind)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    log(`${report.findings} findings in ${report.files_scanned} files${kinds === '' ? '' : ` (${kinds})`}`);
    progress(100, 'scan done');
    result({
      files_scanned: report.files_scanned,
      findings: report.findings,
      by_kind: report.by_kind,
      samples: report.samples.map((s) => ({ path: s.path, line: s.line, kind: s.kind, text: s.text })),
    });
    return 0;
  });
}
