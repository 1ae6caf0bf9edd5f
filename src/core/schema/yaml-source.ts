/**
 * YAML text with positions: parse it, find where a field path is written, and turn zod issues into
 * problem lines `file:line:col: path: expected …, found …`. Shared by the config and workflow
 * loaders; not part of the public API.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node, Pair } from 'yaml';
import type { z } from 'zod';
import { describeFound } from './index.js';
import { ConfigError } from '../errors.js';

/** One step of a field path: a map key or a list index. */
export type PathSegment = string | number;

/** A 1-based line and column. */
export interface Position {
  line: number;
  col: number;
}

/** Finds where a field path is written; `at: 'key'` prefers the key over its value. */
export type Locate = (path: readonly PathSegment[], at: 'key' | 'value') => Position;

/** A parsed YAML file. */
export interface YamlSource {
  /** The document as plain data (`null` for an empty file). */
  data: unknown;
  /** Where a path is written; falls back to the nearest written parent. */
  locate: Locate;
  /** The keys of the map at `path` in file order (JS objects put integer-like keys first). */
  keysAt(path: readonly PathSegment[]): string[] | undefined;
}

/** Where problems are: the file as the user named it, and a way to find lines, when there is one. */
export interface ProblemPlace {
  /** The file (or source label) as shown to the user; omitted for anonymous input. */
  display?: string;
  /** Positions, when the input came from YAML text. */
  locate?: Locate;
}

/** A problem found in the input: its field path, its message, and whether it is about a key. */
export interface Problem {
  path: PathSegment[];
  message: string;
  at: 'key' | 'value';
}

/**
 * Parses YAML text.
 *
 * @param text - the file's contents
 * @param display - the file as the user named it, for messages
 * @param kind - what the file is, for messages (`config file`, `workflow file`)
 * @param absFile - the absolute path, for the error's context
 * @returns the data and a locator
 * @throws ConfigError (context `{ file, problems }`) listing every YAML syntax error with its line
 *   and column
 */
export function parseYaml(text: string, display: string, kind: string, absFile: string): YamlSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true, uniqueKeys: true });
  const lines = text.split(/\r?\n/);
  const pos = (offset: number): Position => {
    const lp = lineCounter.linePos(offset);
    return { line: lp.line, col: lp.col };
  };
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((e) => {
      const p = pos(e.pos[0]);
      const src = (lines[p.line - 1] ?? '').trim();
      const near = src === '' ? '' : ` (line ${p.line}: ${src.length > 60 ? `${src.slice(0, 57)}...` : src})`;
      return `${display}:${p.line}:${p.col}: YAML syntax error: ${firstLine(e.message)}${near}`;
    });
    throw invalidFileError(
      display,
      kind,
      absFile,
      problems,
      'check the indentation (spaces, not tabs) and the quoting near that line',
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(`${display}: cannot read the YAML: ${(err as Error).message}`, {
      cause: err,
      context: { file: absFile, problems: [(err as Error).message] },
    });
  }
  return {
    data,
    locate: (path, at) => locateIn(doc, path, at, pos),
    keysAt: (path) => {
      const node = walk(doc, path).node;
      return isMap(node) ? node.items.map((p) => keyText(p)) : undefined;
    },
  };
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

/**
 * The one error for a file whose content is invalid: a header line naming the file, then one
 * problem per line, indented.
 *
 * @param display - the file as the user named it
 * @param kind - `config file`, `workflow file`, `workflow`
 * @param absFile - for `context.file`; undefined for anonymous input
 * @param problems - one line each
 * @param hint - what to do, after the problems (default: fix them and run again)
 */
export function invalidFileError(
  display: string,
  kind: string,
  absFile: string | undefined,
  problems: string[],
  hint = 'fix these and run again',
): ConfigError {
  const n = problems.length;
  const header = `${display} is not a valid ${kind} (${n} problem${n === 1 ? '' : 's'}):`;
  return new ConfigError(`${header}\n${problems.map((p) => `  ${p}`).join('\n')}\n${hint}`, {
    context: { file: absFile, problems },
  });
}

function keyText(pair: Pair): string {
  const k = pair.key;
  if (isScalar(k)) return String(k.value);
  return String(k);
}

interface Walked {
  /** The node at the deepest segment found. */
  node: unknown;
  /** The key node of that segment, if it is a map entry. */
  key: unknown;
  /** Whether every segment was found. */
  complete: boolean;
}

function walk(doc: Document, path: readonly PathSegment[]): Walked {
  let node: unknown = doc.contents;
  let key: unknown = undefined;
  for (const seg of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (pair === undefined) return { node, key, complete: false };
      key = pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
      key = undefined;
      node = node.items[seg];
    } else {
      return { node, key, complete: false };
    }
  }
  return { node, key, complete: true };
}

function startOf(n: unknown): number | undefined {
  const range = (n as Node | null | undefined)?.range;
  return Array.isArray(range) ? range[0] : undefined;
}

function locateIn(
  doc: Document,
  path: readonly PathSegment[],
  at: 'key' | 'value',
  pos: (offset: number) => Position,
): Position {
  const w = walk(doc, path);
  // An empty value has no text of its own, and a block map or list starts at its first entry: point
  // at the key instead.
  const isEmpty = isScalar(w.node) && w.node.value === null;
  const isBlock = (isMap(w.node) || isSeq(w.node)) && !w.node.flow;
  const keyStart = startOf(w.key);
  const nodeStart = startOf(w.node);
  let offset: number | undefined;
  if (!w.complete) offset = keyStart ?? nodeStart;
  else if (at === 'key' || isEmpty || isBlock) offset = keyStart ?? nodeStart;
  else offset = nodeStart ?? keyStart;
  return offset === undefined ? { line: 1, col: 1 } : pos(offset);
}

/**
 * A field path as people write it: `tasks.test.retries`, `tasks[0].needs[1]`,
 * `tasks["build.linux"].prompt` for keys with dots.
 *
 * @param path - the segments
 * @returns the path, or `(top level)` for an empty one
 */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out === '' ? '(top level)' : out;
}

/** What is at `path` in `data`: the value, whether the path ends at a missing map key, or the last value reached. */
function valueAt(data: unknown, path: readonly PathSegment[]): { value: unknown; missing: boolean } {
  let cur = data;
  for (const seg of path) {
    if (Array.isArray(cur) && typeof seg === 'number') {
      if (seg >= cur.length) return { value: undefined, missing: true };
      cur = cur[seg];
    } else if (typeof cur === 'object' && cur !== null && !Array.isArray(cur)) {
      if (!Object.prototype.hasOwnProperty.call(cur, seg)) return { value: undefined, missing: true };
      cur = (cur as Record<string, unknown>)[String(seg)];
    } else {
      // A scalar where a container was expected (`needs: x` read as `[x]`): report the scalar.
      return { value: cur, missing: false };
    }
  }
  return { value: cur, missing: false };
}

/**
 * Turns zod issues into problems: one per issue, one per key for unknown fields, each message
 * ending with what was found in `data` (or saying the field is missing).
 *
 * @param issues - every issue of a failed parse
 * @param data - the input that was parsed
 * @returns the problems in issue order
 */
export function issuesToProblems(issues: readonly z.core.$ZodIssue[], data: unknown): Problem[] {
  const out: Problem[] = [];
  for (const iss of issues) {
    const path = iss.path.filter((s): s is PathSegment => typeof s !== 'symbol');
    if (iss.code === 'unrecognized_keys') {
      const lines = iss.message.split('\n');
      iss.keys.forEach((k, i) => {
        out.push({ path: [...path, k], message: lines[i] ?? `unknown field "${k}"`, at: 'key' });
      });
      continue;
    }
    if (iss.code === 'invalid_key') {
      const key = path[path.length - 1];
      out.push({ path, message: `${iss.message}, found ${describeFound(String(key))}`, at: 'key' });
      continue;
    }
    if (iss.code === 'custom' && iss.params?.['showFound'] !== true) {
      out.push({ path, message: iss.message, at: 'value' });
      continue;
    }
    const { value, missing } = valueAt(data, path);
    const message = missing
      ? `required field missing; ${iss.message}`
      : `${iss.message}, found ${describeFound(value)}`;
    out.push({ path, message, at: 'value' });
  }
  return out;
}

/**
 * Problem lines `file:line:col: path: message` (the position only when known, the file only when
 * named), in file order when positions are known (else in the given order).
 *
 * @param place - where the input came from
 * @param problems - the problems
 * @returns one line per problem
 */
export function problemLines(place: ProblemPlace, problems: readonly Problem[]): string[] {
  const rows = problems.map((problem, i) => {
    const pos = place.locate?.(problem.path, problem.at);
    const where: string[] = [];
    if (place.display !== undefined) {
      where.push(pos === undefined ? place.display : `${place.display}:${pos.line}:${pos.col}`);
    }
    where.push(formatPath(problem.path));
    return { line: `${where.join(': ')}: ${problem.message}`, pos, i };
  });
  rows.sort(
    (a, b) => (a.pos?.line ?? 0) - (b.pos?.line ?? 0) || (a.pos?.col ?? 0) - (b.pos?.col ?? 0) || a.i - b.i,
  );
  return rows.map((r) => r.line);
}
