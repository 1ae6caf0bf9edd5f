/**
 * The quality judge: no placeholders or stubs in the change, no tests skipped or removed, the
 * change budget of the risk tier kept, the acceptance criteria hold.
 *
 * Only added lines are read (a TODO that was already there is not the agent's). Critical: placeholder
 * markers in comments, "not implemented" throws and their kin, empty TS/JS functions with
 * non-trivial names, newly skipped or focused tests, deleted test files and removed test cases,
 * going over the tier's budget. Major: an acceptance criterion whose command fails. Deleted or
 * removed tests make the decision `reject`; anything else `revise`.
 */
import path from 'node:path';
import type { Json } from '../../core/types.js';
import { branchDiff } from '../git.js';
import type { ChangedFile, DiffLine } from '../git.js';
import { globMatcher } from '../globs.js';
import { makeVerdict } from '../judge.js';
import type { Judge, JudgeContext, Verdict, Violation } from '../judge.js';
import { commandEvidence, describeFailure, lastLines, runCommand } from '../run-command.js';

/** Something found in an added line. */
export interface Finding {
  /** The violation rule (`placeholder.marker`, `placeholder.not_implemented`, `stub.empty_function`, `test.skipped`). */
  rule: string;
  /** 1-based line in the new file. */
  line: number;
  /** What it is, in words (`TODO comment`, `empty function "save"`). */
  what: string;
}

const DOC_EXT = new Set([
  '.md',
  '.mdx',
  '.markdown',
  '.txt',
  '.rst',
  '.adoc',
  '.org',
  '.json',
  '.lock',
  '.csv',
  '.tsv',
  '.svg',
  '.snap',
]);

const JS_EXT = new Set(['.ts', '.tsx', '.js', '.jsx', '.mjs', '.cjs', '.mts', '.cts']);
const SLASH_COMMENT_EXT = new Set([
  ...JS_EXT,
  '.go',
  '.rs',
  '.java',
  '.kt',
  '.kts',
  '.scala',
  '.swift',
  '.c',
  '.h',
  '.cc',
  '.cpp',
  '.cxx',
  '.hpp',
  '.cs',
  '.php',
  '.dart',
  '.css',
  '.scss',
  '.less',
  '.vue',
  '.svelte',
  '.proto',
  '.zig',
]);
const HASH_COMMENT_EXT = new Set([
  '.py',
  '.rb',
  '.sh',
  '.bash',
  '.zsh',
  '.fish',
  '.yaml',
  '.yml',
  '.toml',
  '.r',
  '.pl',
  '.pm',
  '.ex',
  '.exs',
  '.cfg',
  '.ini',
  '.conf',
  '.tf',
  '.php',
  '.nix',
  '.cmake',
  '.mk',
  '.ps1',
]);
const DASH_COMMENT_EXT = new Set(['.sql', '.lua', '.hs', '.elm']);
const HTML_COMMENT_EXT = new Set(['.html', '.htm', '.xml', '.vue', '.svelte']);

/** Whether the placeholder checks read a file (code and config; not prose or data). */
function isCodeFile(p: string): boolean {
  return !DOC_EXT.has(path.posix.extname(p).toLowerCase());
}

/** The comment part of a line, or undefined. Strings (`'…'`, `"…"`, `` `…` ``) are skipped. */
export function commentOf(line: string, file: string): string | undefined {
  const ext = path.posix.extname(file).toLowerCase();
  const known =
    SLASH_COMMENT_EXT.has(ext) ||
    HASH_COMMENT_EXT.has(ext) ||
    DASH_COMMENT_EXT.has(ext) ||
    HTML_COMMENT_EXT.has(ext);
  const slash = SLASH_COMMENT_EXT.has(ext) || !known;
  const hash = HASH_COMMENT_EXT.has(ext) || !known;
  const dash = DASH_COMMENT_EXT.has(ext);
  const html = HTML_COMMENT_EXT.has(ext) || ext === '';
  const trimmed = line.trimStart();
  // A continuation line of a block comment (` * TODO: …`).
  if (slash && /^\*(?:\s|$)/.test(trimmed)) return trimmed.slice(1);
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== undefined) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      // An apostrophe inside a word (`don't`) does not open a string in the languages that use '#'.
      if (c === "'" && hash && !slash && /\w/.test(line[i - 1] ?? '')) continue;
      quote = c;
      continue;
    }
    const rest = line.slice(i);
    if (slash && (rest.startsWith('//') || rest.startsWith('/*'))) return rest.slice(2);
    if (hash && c === '#' && (i === 0 || /[\s;]/.test(line[i - 1] ?? ''))) return rest.slice(1);
    if (dash && rest.startsWith('--')) return rest.slice(2);
    if (html && rest.startsWith('<!--')) return rest.slice(4);
  }
  return undefined;
}

const MARKER = /(?:^|[^\w@])(TODO|FIXME|XXX|PLACEHOLDER|HACK)(?![\w])|@todo\b/;

const NOT_IMPLEMENTED: readonly { re: RegExp; what: string }[] = [
  {
    re: /\bthrow\s+(?:new\s+)?[\w$.]*\s*\(\s*["'`](?:[^"'`]*\b(?:not\s+(?:yet\s+)?implemented|unimplemented|implement\s+me)\b|\s*todo\b)/i,
    what: '"not implemented" throw',
  },
  { re: /\bthrow\s+(["'`])\s*(?:not\s+(?:yet\s+)?implemented|todo\b)/i, what: '"not implemented" throw' },
  { re: /\bthrow\s+new\s+NotImplemented(?:Error|Exception)\b/, what: 'NotImplemented throw' },
  { re: /\braise\s+NotImplementedError\b/, what: 'raise NotImplementedError' },
  { re: /\b(?:unimplemented|todo)!\s*\(/, what: 'unimplemented!()/todo!() macro' },
  {
    re: /\bpanic\(\s*"(?:not\s+(?:yet\s+)?implemented|unimplemented|todo)\b/i,
    what: '"not implemented" panic',
  },
];

/** Names an empty function may have on purpose. */
const TRIVIAL_NAMES =
  /^(?:_.*|noop|nop|noOp|doNothing|ignore|empty|emptyFn|emptyFunction|constructor|dispose|close|destroy|cleanup|teardown|unsubscribe)$/;

/** Words that look like a method name before `(…) {}` but are not. */
const NOT_A_NAME = new Set([
  'if',
  'for',
  'while',
  'switch',
  'catch',
  'function',
  'with',
  'return',
  'super',
  'this',
  'do',
]);

const EMPTY_FUNCTIONS: readonly RegExp[] = [
  // function save(a, b): void {}
  /\bfunction\s*\*?\s*([A-Za-z_$][\w$]*)\s*(?:<[^>]*>)?\s*\([^()]*\)\s*(?::\s*[^{};=]+?)?\s*\{\s*\}/g,
  // const save = (a) => {}; const save = async function (a) {}
  /\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*(?::[^=;]+)?=\s*(?:async\s+)?(?:function\b\s*\*?\s*[\w$]*\s*)?(?:<[^>]*>)?\([^()]*\)\s*(?::\s*[^=;{}]+?)?\s*(?:=>)?\s*\{\s*\}/g,
  // const save = a => {}
  /\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*(?:async\s+)?[A-Za-z_$][\w$]*\s*=>\s*\{\s*\}/g,
  // class methods: save(a: A): void {}
  /^[ \t]*(?:(?:public|private|protected|static|async|override|get|set)\s+)*([A-Za-z_$][\w$]*)\s*(?:<[^>]*>)?\s*\([^()]*\)\s*(?::\s*[^{};=()]+?)?\s*\{\s*\}/gm,
];

/**
 * Finds placeholders in a file's added lines: markers (`TODO`, `FIXME`, `XXX`, `PLACEHOLDER`,
 * `HACK` as whole upper-case words, `@todo`) in comments, and "not implemented" code (throws in
 * TS/JS/Java/C#, `raise NotImplementedError` outside `@abstractmethod`s, Rust `unimplemented!()` /
 * `todo!()`, Go `panic("not implemented")`). Prose and data files (`.md`, `.txt`, `.json`, …) are
 * skipped.
 *
 * @param file - the path, for its language
 * @param added - its added lines
 * @returns the findings in line order
 */
export function findPlaceholders(file: string, added: readonly DiffLine[]): Finding[] {
  if (!isCodeFile(file)) return [];
  const out: Finding[] = [];
  added.forEach((l, i) => {
    const comment = commentOf(l.text, file);
    const m = comment === undefined ? null : MARKER.exec(comment);
    if (m !== null)
      out.push({ rule: 'placeholder.marker', line: l.line, what: `${m[1] ?? '@todo'} comment` });
    for (const n of NOT_IMPLEMENTED) {
      if (!n.re.test(l.text)) continue;
      if (n.what.startsWith('raise') && abstractAbove(added, i)) continue;
      out.push({ rule: 'placeholder.not_implemented', line: l.line, what: n.what });
      break;
    }
  });
  return out;
}

/** An `@abstractmethod` decorator on one of the 5 added lines above. */
function abstractAbove(added: readonly DiffLine[], i: number): boolean {
  for (let j = Math.max(0, i - 5); j < i; j++) {
    if (/@(?:abc\.)?abstractmethod\b/.test(added[j]?.text ?? '')) return true;
  }
  return false;
}

/** Consecutive added lines, joined, with the line number of the first. */
function blocks(added: readonly DiffLine[]): { start: number; text: string }[] {
  const out: { start: number; text: string; last: number }[] = [];
  for (const l of added) {
    const cur = out[out.length - 1];
    if (cur !== undefined && l.line === cur.last + 1) {
      cur.text += `\n${l.text}`;
      cur.last = l.line;
    } else {
      out.push({ start: l.line, text: l.text, last: l.line });
    }
  }
  return out;
}

/**
 * Finds empty functions with non-trivial names in a TS/JS file's added lines: `function f() {}`,
 * `const f = () => {}`, `const f = function () {}`, methods `f() {}`, also when the braces are on
 * two lines. Not flagged: anonymous functions (callbacks such as `.catch(() => {})`), names that are
 * empty on purpose (`noop`, `_x`, `constructor`, `dispose`, `close`, …), test files, `.d.ts`.
 *
 * @param file - the path
 * @param added - its added lines
 * @returns the findings in line order
 */
export function findEmptyFunctions(file: string, added: readonly DiffLine[]): Finding[] {
  const ext = path.posix.extname(file).toLowerCase();
  if (!JS_EXT.has(ext) || file.endsWith('.d.ts') || isTestFile(file)) return [];
  const out: Finding[] = [];
  const seen = new Set<number>();
  for (const b of blocks(added)) {
    for (const re of EMPTY_FUNCTIONS) {
      re.lastIndex = 0;
      for (const m of b.text.matchAll(re)) {
        const name = m[1] ?? '';
        if (TRIVIAL_NAMES.test(name) || NOT_A_NAME.has(name)) continue;
        const lead = m[0].length - m[0].trimStart().length;
        const line = b.start + countNewlines(b.text.slice(0, (m.index ?? 0) + lead));
        if (seen.has(line)) continue;
        seen.add(line);
        out.push({ rule: 'stub.empty_function', line, what: `empty function "${name}"` });
      }
    }
  }
  return out.sort((a, b) => a.line - b.line);
}

function countNewlines(s: string): number {
  let n = 0;
  for (const c of s) if (c === '\n') n++;
  return n;
}

const SKIPS: readonly { re: RegExp; what: string }[] = [
  { re: /\b(?:it|test|describe|context|suite|specify|bench)\.(?:skip|todo)\s*\(/, what: 'skipped test' },
  {
    re: /\b(?:it|test|describe|context|suite|specify)\.only\s*\(/,
    what: 'focused test (.only skips every other test)',
  },
  { re: /(?:^|[^\w.$])x(?:it|describe|test|context|specify)\s*\(/, what: 'skipped test' },
  { re: /@pytest\.mark\.skip(?![A-Za-z_])/, what: 'skipped test (@pytest.mark.skip)' },
  { re: /@unittest\.skip(?![A-Za-z_])/, what: 'skipped test (@unittest.skip)' },
  { re: /\bt\.Skip(?:f|Now)?\(/, what: 'skipped test (t.Skip)' },
  { re: /#\[ignore(?:\s*=[^\]]*)?\]/, what: 'ignored test (#[ignore])' },
  { re: /@(?:Disabled|Ignore)\b/, what: 'disabled test' },
];

/**
 * Finds tests skipped (or focused with `.only`) in a file's added lines: `it.skip(`,
 * `describe.skip(`, `test.skip(`, `it.todo(`, `xit(`, `xdescribe(`, `@pytest.mark.skip`,
 * `@unittest.skip`, Go `t.Skip(`, Rust `#[ignore]`, JUnit `@Disabled`/`@Ignore`. Conditional skips
 * (`it.skipIf`, `@pytest.mark.skipif`) are allowed.
 *
 * @param file - the path
 * @param added - its added lines
 * @returns the findings in line order
 */
export function findSkippedTests(file: string, added: readonly DiffLine[]): Finding[] {
  if (!isCodeFile(file)) return [];
  const out: Finding[] = [];
  for (const l of added) {
    const hit = SKIPS.find((s) => s.re.test(l.text));
    if (hit !== undefined) out.push({ rule: 'test.skipped', line: l.line, what: hit.what });
  }
  return out;
}

/**
 * Whether a path is a test file: `*.test.*`, `*.spec.*`, `test_*.py`, `*_test.py`, `*_test.go`,
 * `*Test.java`/`*Tests.cs`/…, `*_spec.rb`, files under `__tests__/`, and Rust `tests/*.rs`.
 *
 * @param p - a repository-relative path
 * @returns true for a test file
 */
export function isTestFile(p: string): boolean {
  const base = path.posix.basename(p);
  return (
    /\.(?:test|spec)\.[A-Za-z0-9]+$/.test(base) ||
    /^test_.+\.py$/.test(base) ||
    /_test\.(?:py|go)$/.test(base) ||
    /(?:Test|Tests|IT)\.(?:java|kt|cs|scala)$/.test(base) ||
    /_spec\.rb$/.test(base) ||
    /(?:^|\/)__tests__\//.test(p) ||
    /(?:^|\/)tests\/[^/]+\.rs$/.test(p)
  );
}

const TEST_CASE = [
  // A skipped test still counts as a test case here (it is flagged as skipped on its own).
  /^\s*x?(?:it|test|specify)(?:\.(?:each|concurrent|only|fails|skip|todo)(?:\([^)]*\)|`[^`]*`)?)?\s*\(/,
  /^\s*(?:async\s+)?def\s+test_?\w*\s*\(/,
  /^\s*func\s+Test\w*\s*\(/,
  /^\s*#\[(?:tokio::)?test\]/,
  /^\s*@Test\b/,
];

/**
 * The test cases a change removes from a test file: removed lines that start a test (`it(`,
 * `test(`, `def test_…`, `func Test…`, `#[test]`, `@Test`), beyond those the change adds back (a
 * renamed or rewritten test is not a removal).
 *
 * @param file - a changed test file
 * @returns the removed test lines (line numbers in the base version), at most the net loss
 */
export function removedTestCases(file: Pick<ChangedFile, 'addedLines' | 'removedLines'>): DiffLine[] {
  const isCase = (t: string): boolean => TEST_CASE.some((re) => re.test(t));
  const removed = file.removedLines.filter((l) => isCase(l.text));
  const added = file.addedLines.filter((l) => isCase(l.text));
  const net = removed.length - added.length;
  if (net <= 0) return [];
  const addedText = new Set(added.map((l) => l.text.trim()));
  const gone = removed.filter((l) => !addedText.has(l.text.trim()));
  return (gone.length >= net ? gone : removed).slice(0, net);
}

/** Options of {@link qualityJudge}. */
export interface QualityJudgeOptions {
  /** Environment of acceptance commands; default the process's, plus `CI=true`. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Builds the quality judge.
 *
 * @param opts - the acceptance commands' environment
 * @returns a judge named `quality`
 */
export function qualityJudge(opts: QualityJudgeOptions = {}): Judge {
  return { name: 'quality', evaluate: (ctx) => evaluateQuality(ctx, opts) };
}

/** Most findings reported per file before the rest are only counted. */
const MAX_PER_FILE = 50;

async function evaluateQuality(ctx: JudgeContext, opts: QualityJudgeOptions): Promise<Verdict> {
  const diff = await branchDiff(ctx.repo, ctx.base, ctx.head, ctx.signal);
  const violations: Violation[] = [];
  const reasons: string[] = [];
  const evidence: Json[] = [];

  for (const f of diff.files) {
    if (f.status === 'deleted' && isTestFile(f.path)) {
      violations.push({
        rule: 'test.deleted_file',
        severity: 'critical',
        location: f.path,
        suggestion: `restore ${f.path}: tests are not deleted to make a change pass`,
      });
      reasons.push(`deleted test file ${f.path}`);
      continue;
    }
    if (f.oldPath !== undefined && f.status === 'renamed' && isTestFile(f.oldPath) && !isTestFile(f.path)) {
      violations.push({
        rule: 'test.deleted_file',
        severity: 'critical',
        location: f.oldPath,
        suggestion: `keep ${f.oldPath} a test file`,
      });
      reasons.push(`test file ${f.oldPath} was renamed to ${f.path}, which is not a test file`);
    }
    const findings = [
      ...findPlaceholders(f.path, f.addedLines),
      ...findEmptyFunctions(f.path, f.addedLines),
      ...findSkippedTests(f.path, f.addedLines),
    ].sort((a, b) => a.line - b.line);
    for (const x of findings.slice(0, MAX_PER_FILE)) {
      violations.push({
        rule: x.rule,
        severity: 'critical',
        location: `${f.path}:${x.line}`,
        suggestion:
          x.rule === 'test.skipped'
            ? 'run the test (fix it rather than skip it)'
            : 'finish the implementation: no placeholders or stubs',
      });
      reasons.push(`${f.path}:${x.line}: ${x.what}`);
    }
    if (findings.length > MAX_PER_FILE)
      reasons.push(`${f.path}: … and ${findings.length - MAX_PER_FILE} more`);
    if (isTestFile(f.path) || (f.oldPath !== undefined && isTestFile(f.oldPath))) {
      for (const l of removedTestCases(f)) {
        const where = `${f.oldPath ?? f.path}:${l.line}`;
        violations.push({
          rule: 'test.removed_case',
          severity: 'critical',
          location: where,
          suggestion: 'restore the test case',
        });
        reasons.push(`${where}: removed test case ${l.text.trim().slice(0, 120)}`);
      }
    }
  }

  // The change budget of the tier.
  const tier = ctx.spec.riskTier;
  const budget = ctx.policy.budgets[tier];
  const ignored = globMatcher(ctx.policy.budgetIgnore);
  const counted = diff.files.filter((f) => !ignored(f.path));
  const files = counted.length;
  const lines = counted.reduce((s, f) => s + f.added + f.deleted, 0);
  evidence.push({
    kind: 'budget',
    tier,
    files,
    lines,
    maxFiles: budget.maxFiles,
    maxLines: budget.maxLines,
    ignoredFiles: diff.files.length - files,
  });
  if (files > budget.maxFiles) {
    violations.push({
      rule: 'budget.files',
      severity: 'critical',
      location: `${files} files`,
      suggestion: `change at most ${budget.maxFiles} files (risk tier ${tier}): split the task, or ask for a waiver with gate "budget"`,
    });
    reasons.push(`${files} files changed, over the tier ${tier} budget of ${budget.maxFiles}`);
  }
  if (lines > budget.maxLines) {
    violations.push({
      rule: 'budget.lines',
      severity: 'critical',
      location: `${lines} lines`,
      suggestion: `change at most ${budget.maxLines} lines (risk tier ${tier}): split the task, or ask for a waiver with gate "budget"`,
    });
    reasons.push(
      `${lines} lines changed (added + deleted), over the tier ${tier} budget of ${budget.maxLines}`,
    );
  }

  // Acceptance criteria with a command.
  const env = opts.env ?? { ...process.env, CI: 'true' };
  let checked = 0;
  for (const [i, a] of ctx.spec.acceptance.entries()) {
    if (a.command === undefined) continue;
    const timeoutMs = a.timeoutMs ?? ctx.policy.verifyTimeoutMs;
    const run = await runCommand(a.command, {
      cwd: ctx.repo,
      timeoutMs,
      env,
      ...(ctx.signal === undefined ? {} : { signal: ctx.signal }),
    });
    evidence.push(commandEvidence('acceptance', a.id, run));
    if (run.aborted) {
      return makeVerdict('quality', 'abstain', { reasons: ['quality was canceled'], evidence });
    }
    checked++;
    if (run.passed) continue;
    const tail = lastLines(run.outputTail);
    violations.push({
      rule: 'acceptance.failed',
      severity: 'major',
      location: `acceptance[${i}] (${a.id})`,
      suggestion: `make it hold: given ${a.given}, when ${a.when}, then ${a.then}`,
    });
    reasons.push(
      `acceptance ${a.id} does not hold: "${a.command}" ${describeFailure(run, timeoutMs)}${tail === '' ? '' : `: ${tail}`}`,
    );
  }

  if (violations.length === 0) {
    return makeVerdict('quality', 'approve', {
      reasons: [
        `no placeholders, stubs or skipped tests in ${diff.files.length} changed file(s); ${files} file(s) and ${lines} line(s) within the tier ${tier} budget${checked > 0 ? `; ${checked} acceptance check(s) passed` : ''}`,
      ],
      evidence,
    });
  }
  const lost = violations.some((v) => v.rule.startsWith('test.deleted') || v.rule.startsWith('test.removed'));
  return makeVerdict('quality', lost ? 'reject' : 'revise', { reasons, violations, evidence });
}
