/**
 * The demo's `report` agent: fans in the outputs of `inventory`, `tests` and `placeholders` (from the
 * task JSON's `needs`) and writes a plain-text report.
 *
 * Run as `node dist/demo/agents/report.js`. The report is printed on stdout (one log event per line), written to the file
 * named by `SMITH_DEMO_REPORT` when that is set (announced as an artifact), and is the result output.
 * A missing or unreadable input is reported as such; the report is still written.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { TaskInput } from '../../runtime/types.js';
import { artifact, isMain, log, result, runAgent, workDir } from './protocol.js';

/** Languages listed in the report. */
export const TOP_LANGUAGES = 8;

/** Placeholder samples listed in the report. */
export const REPORT_SAMPLES = 10;

/** Lines of the test output's tail listed when the tests failed. */
export const REPORT_TAIL_LINES = 15;

type Obj = Record<string, unknown>;

/** One need's output, parsed: a JSON object, a plain string, or why it is not there. */
type Parsed =
  { kind: 'object'; value: Obj } | { kind: 'text'; value: string } | { kind: 'missing'; why: string };

function parseNeed(needs: TaskInput['needs'], key: string): Parsed {
  const need = needs[key];
  if (need === undefined) return { kind: 'missing', why: `no "${key}" input` };
  if (need.output === null || need.output === '') return { kind: 'missing', why: `"${key}" gave no output` };
  try {
    const value: unknown = JSON.parse(need.output);
    if (value !== null && typeof value === 'object' && !Array.isArray(value))
      return { kind: 'object', value: value as Obj };
    if (typeof value === 'string') return { kind: 'text', value };
  } catch {
    // Not JSON: a plain text output.
  }
  return { kind: 'text', value: need.output };
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const fmt = (n: number): string => n.toLocaleString('en-US');

function inventorySection(p: Parsed): string[] {
  const out = ['Languages'];
  if (p.kind !== 'object') {
    out.push(`  not available: ${p.kind === 'missing' ? p.why : p.value.slice(0, 200)}`);
    return out;
  }
  const files = num(p.value['files']);
  const lines = num(p.value['lines']);
  out[0] = `Languages (${fmt(files ?? 0)} files, ${fmt(lines ?? 0)} lines)`;
  const langs = Array.isArray(p.value['languages']) ? (p.value['languages'] as unknown[]) : [];
  const rows = langs
    .filter((l): l is Obj => l !== null && typeof l === 'object')
    .slice(0, TOP_LANGUAGES)
    .map((l) => ({
      language: str(l['language']) ?? '?',
      files: num(l['files']) ?? 0,
      lines: num(l['lines']) ?? 0,
    }));
  if (rows.length === 0) out.push('  no tracked files');
  const width = Math.max(8, ...rows.map((r) => r.language.length));
  for (const r of rows) {
    out.push(
      `  ${r.language.padEnd(width)}  ${fmt(r.files).padStart(7)} files  ${fmt(r.lines).padStart(9)} lines`,
    );
  }
  if (langs.length > rows.length) out.push(`  … and ${langs.length - rows.length} more`);
  return out;
}

function testsSection(p: Parsed): string[] {
  const out = ['Tests'];
  if (p.kind === 'missing') {
    out.push(`  not available: ${p.why}`);
    return out;
  }
  if (p.kind === 'text') {
    out.push(`  ${p.value.slice(0, 500)}`);
    return out;
  }
  const command = str(p.value['command']) ?? '?';
  const exitCode = num(p.value['exit_code']);
  const passed = num(p.value['passed']);
  const failed = num(p.value['failed']);
  out.push(`  command: ${command}`);
  const outcome = exitCode === undefined ? 'unknown' : exitCode === 0 ? 'passed' : 'FAILED';
  const counts =
    passed !== undefined || failed !== undefined ? `, ${passed ?? 0} passed, ${failed ?? 0} failed` : '';
  out.push(`  outcome: ${outcome} (exit code ${exitCode ?? '?'}${counts})`);
  const tail = Array.isArray(p.value['tail'])
    ? (p.value['tail'] as unknown[]).filter((l) => typeof l === 'string')
    : [];
  if (exitCode !== 0 && tail.length > 0) {
    out.push('  last lines of output:');
    for (const line of tail.slice(-REPORT_TAIL_LINES)) out.push(`    ${line}`.trimEnd());
  }
  return out;
}

function placeholdersSection(p: Parsed): string[] {
  const out = ['Placeholders'];
  if (p.kind !== 'object') {
    out.push(`  not available: ${p.kind === 'missing' ? p.why : p.value.slice(0, 200)}`);
    return out;
  }
  const findings = num(p.value['findings']) ?? 0;
  const scanned = num(p.value['files_scanned']) ?? 0;
  const byKind = p.value['by_kind'];
  const kinds =
    byKind !== null && typeof byKind === 'object'
      ? Object.entries(byKind as Obj)
          .filter(([, n]) => typeof n === 'number' && n > 0)
          .map(([k, n]) => `${k} ${n as number}`)
          .join(', ')
      : '';
  out.push(`  ${fmt(findings)} findings in ${fmt(scanned)} files scanned${kinds === '' ? '' : `: ${kinds}`}`);
  const samples = Array.isArray(p.value['samples']) ? (p.value['samples'] as unknown[]) : [];
  for (const s of samples.slice(0, REPORT_SAMPLES)) {
    if (s === null || typeof s !== 'object') continue;
    const o = s as Obj;
    out.push(
      `  ${str(o['path']) ?? '?'}:${num(o['line']) ?? '?'}  [${str(o['kind']) ?? '?'}]  ${str(o['text']) ?? ''}`,
    );
  }
  if (findings > Math.min(samples.length, REPORT_SAMPLES)) {
    out.push(`  … ${fmt(findings - Math.min(samples.length, REPORT_SAMPLES))} more`);
  }
  return out;
}

/**
 * Build the report text from the needs' outputs (keys `inventory`, `tests`, `placeholders`). Missing
 * or unparseable outputs are named in the report rather than failing it.
 *
 * @param needs - the task JSON's `needs`
 * @param repo - the repository's directory, named in the title
 * @returns the report, lines separated by `\n`, ending with a newline
 */
export function formatReport(needs: TaskInput['needs'], repo: string): string {
  const title = `MisterSmith demo report: ${repo}`;
  const sections = [
    [title, '='.repeat(Math.min(title.length, 80))],
    inventorySection(parseNeed(needs, 'inventory')),
    testsSection(parseNeed(needs, 'tests')),
    placeholdersSection(parseNeed(needs, 'placeholders')),
  ];
  return `${sections.map((s) => s.join('\n')).join('\n\n')}\n`;
}

if (isMain(import.meta.url)) {
  void runAgent('report', async (input) => {
    const repo = workDir();
    const text = formatReport(input.needs, repo);
    // Each line as a log event: a line of test output may look like JSON and must not pass for an event.
    for (const line of text.trimEnd().split('\n')) log(line);
    const target = process.env['SMITH_DEMO_REPORT'];
    if (target !== undefined && target !== '') {
      const path = resolve(repo, target);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, text);
      artifact(path);
    }
    result(text);
    return 0;
  });
}
