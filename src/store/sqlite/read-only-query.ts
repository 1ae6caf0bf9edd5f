/**
 * Read-only SQL over a home's SQLite file: the database explorer of `smith serve`.
 *
 * A query passes two checks. First {@link checkReadOnlySql} reads its tokens (comments stripped,
 * quotes respected, as SQLite's own tokenizer does): one statement only; it must start with
 * SELECT, WITH, VALUES, EXPLAIN or a reading PRAGMA; no INSERT, UPDATE, DELETE or REPLACE INTO
 * anywhere; no `load_extension`. Then a query process prepares it on its own connection, opened
 * `readonly` with `PRAGMA query_only = ON`, and runs it only when SQLite says the statement is
 * read-only (`sqlite3_stmt_readonly`) and returns rows. SQLite counts ATTACH, DETACH, BEGIN and
 * `PRAGMA x = y` on some pragmas as read-only; the first check is what keeps them out.
 *
 * Queries run in child processes, not worker threads: `Worker.terminate()` cannot stop a
 * statement that runs inside SQLite's C code (a recursive CTE under `count(*)` never returns to
 * JavaScript), and better-sqlite3 exposes neither `sqlite3_interrupt` nor a progress handler
 * (WiseLibs/better-sqlite3#568, #707). A process that runs past the time limit is killed with
 * SIGKILL, and the next query starts a fresh one. A watchdog thread inside each query process
 * kills it when its parent is gone or when a query runs well past its limit, so no process is
 * left behind if the server itself is killed.
 */
import type Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { SmithError } from '../../core/errors.js';
import type { QueryOptions, QueryResult, SchemaTable } from '../store.js';

// ------------------------------------------------------------------ statement checks

/** Kinds of {@link SqlToken}. */
export type SqlTokenKind = 'word' | 'identifier' | 'string' | 'number' | 'punct';

/** One token of SQL text. Comments and whitespace make no tokens. */
export interface SqlToken {
  kind: SqlTokenKind;
  /** The text as written. */
  text: string;
  /**
   * `word`: the word in upper case; `identifier` (a quoted name: `"x"`, `` `x` ``, `[x]`): the
   * name unquoted; otherwise the text.
   */
  value: string;
  /** Offset of the first character in the SQL (0-based). */
  start: number;
}

const WORD_START = /[A-Za-z_\u0080-\uffff]/;
const WORD_PART = /[A-Za-z0-9_$\u0080-\uffff]/;
const DIGIT = /[0-9]/;

function rejected(message: string, context: Record<string, unknown> = {}): SmithError {
  return new SmithError('QUERY_REJECTED', message, { context });
}

/**
 * Split SQL into tokens the way SQLite's tokenizer does (sqlite.org/lang_expr.html): `--` and
 * `/* *\/` comments are skipped, `'…'` is a string (`''` inside), `"…"`, `` `…` `` and `[…]` are
 * quoted names (`""`, ` `` ` inside), `x'…'` is a blob.
 * @param sql - the SQL text
 * @returns its tokens in order
 * @throws SmithError QUERY_REJECTED for an unterminated string or quoted name
 */
export function tokenizeSql(sql: string): SqlToken[] {
  const out: SqlToken[] = [];
  const n = sql.length;
  let i = 0;
  const quoted = (open: number, close: string, doubled: boolean, what: string): number => {
    let j = open + 1;
    for (;;) {
      const k = sql.indexOf(close, j);
      if (k < 0)
        throw rejected(
          `the query has an unterminated ${what} starting at character ${open + 1}; close it with ${close}`,
          { at: open + 1 },
        );
      if (doubled && sql[k + 1] === close) {
        j = k + 2;
        continue;
      }
      return k + 1;
    }
  };
  while (i < n) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '-' && sql[i + 1] === '-') {
      const k = sql.indexOf('\n', i);
      i = k < 0 ? n : k + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      // an unterminated block comment runs to the end, as in SQLite
      const k = sql.indexOf('*/', i + 2);
      i = k < 0 ? n : k + 2;
    } else if (c === "'") {
      const end = quoted(i, "'", true, 'string');
      out.push({ kind: 'string', text: sql.slice(i, end), value: sql.slice(i, end), start: i });
      i = end;
    } else if (c === '"' || c === '`') {
      const end = quoted(i, c, true, 'quoted name');
      const text = sql.slice(i, end);
      out.push({
        kind: 'identifier',
        text,
        value: text
          .slice(1, -1)
          .split(c + c)
          .join(c),
        start: i,
      });
      i = end;
    } else if (c === '[') {
      const end = quoted(i, ']', false, 'quoted name');
      const text = sql.slice(i, end);
      out.push({ kind: 'identifier', text, value: text.slice(1, -1), start: i });
      i = end;
    } else if ((c === 'x' || c === 'X') && sql[i + 1] === "'") {
      const end = quoted(i + 1, "'", false, 'blob');
      out.push({ kind: 'string', text: sql.slice(i, end), value: sql.slice(i, end), start: i });
      i = end;
    } else if (WORD_START.test(c)) {
      let j = i + 1;
      while (j < n && WORD_PART.test(sql[j]!)) j++;
      const text = sql.slice(i, j);
      out.push({ kind: 'word', text, value: text.toUpperCase(), start: i });
      i = j;
    } else if (DIGIT.test(c) || (c === '.' && DIGIT.test(sql[i + 1] ?? ''))) {
      let j = i + 1;
      while (j < n) {
        const d = sql[j]!;
        if (/[0-9A-Za-z_.]/.test(d)) j++;
        else if ((d === '+' || d === '-') && /[eE]/.test(sql[j - 1]!) && !/^0[xX]/.test(sql.slice(i, j))) j++;
        else break;
      }
      const text = sql.slice(i, j);
      out.push({ kind: 'number', text, value: text, start: i });
      i = j;
    } else {
      out.push({ kind: 'punct', text: c, value: c, start: i });
      i++;
    }
  }
  return out;
}

/** Statements that write to the database (or its schema). */
const WRITE_KINDS = new Set([
  'INSERT',
  'UPDATE',
  'DELETE',
  'REPLACE',
  'CREATE',
  'DROP',
  'ALTER',
  'REINDEX',
  'ANALYZE',
]);
const TRANSACTION_KINDS = new Set(['BEGIN', 'COMMIT', 'END', 'ROLLBACK', 'SAVEPOINT', 'RELEASE']);
/** Words that can only start a write wherever they appear (SQLite does not take them as names). */
const WRITE_WORDS = new Set(['INSERT', 'UPDATE', 'DELETE']);

/**
 * Pragmas that only read, run bare (`PRAGMA table_list`). Any other pragma, and `=` on any
 * pragma, is refused: bare `wal_checkpoint`, `optimize`, `incremental_vacuum` and
 * `shrink_memory` act, and `journal_mode(…)` sets (sqlite.org/pragma.html).
 */
export const READING_PRAGMAS: ReadonlySet<string> = new Set([
  'application_id',
  'auto_vacuum',
  'busy_timeout',
  'cache_size',
  'collation_list',
  'compile_options',
  'data_version',
  'database_list',
  'encoding',
  'foreign_key_check',
  'foreign_keys',
  'freelist_count',
  'function_list',
  'integrity_check',
  'journal_mode',
  'module_list',
  'page_count',
  'page_size',
  'pragma_list',
  'query_only',
  'quick_check',
  'schema_version',
  'synchronous',
  'table_list',
  'user_version',
]);

/**
 * Pragmas that only read when called with an argument (a table or index name, or a row limit):
 * `PRAGMA table_info(tasks)`.
 */
export const READING_PRAGMAS_WITH_ARGUMENT: ReadonlySet<string> = new Set([
  'foreign_key_check',
  'foreign_key_list',
  'index_info',
  'index_list',
  'index_xinfo',
  'integrity_check',
  'quick_check',
  'table_info',
  'table_list',
  'table_xinfo',
]);

const ALLOWED_START = 'SELECT, WITH, VALUES, EXPLAIN or a reading PRAGMA';

/** The name a word or quoted-name token stands for (lower case), else undefined. */
function nameOf(t: SqlToken | undefined): string | undefined {
  if (!t) return undefined;
  if (t.kind === 'word' || t.kind === 'identifier') return t.value.toLowerCase();
  return undefined;
}

/** Check `PRAGMA [schema.]name [(argument)]`: only reading pragmas. */
function checkPragma(tokens: SqlToken[], at: number): void {
  let i = at + 1;
  let name = nameOf(tokens[i]);
  if (name !== undefined && tokens[i + 1]?.value === '.') {
    i += 2;
    name = nameOf(tokens[i]);
  }
  if (name === undefined)
    throw rejected(`PRAGMA needs a name, at character ${(tokens[i] ?? tokens[at]!).start + 1}`);
  const next = tokens[i + 1];
  if (next === undefined) {
    if (!READING_PRAGMAS.has(name))
      throw rejected(
        `PRAGMA ${name} is not allowed: only pragmas that read run here (${[...READING_PRAGMAS].join(', ')})`,
        { pragma: name },
      );
    return;
  }
  if (next.value === '=')
    throw rejected(`a PRAGMA that sets a value is not allowed: PRAGMA ${name} = …; a query may only read`, {
      pragma: name,
    });
  let bad = next;
  if (next.value === '(') {
    if (!READING_PRAGMAS_WITH_ARGUMENT.has(name))
      throw rejected(
        `PRAGMA ${name}(…) is not allowed: with an argument it may set a value; only ` +
          `${[...READING_PRAGMAS_WITH_ARGUMENT].join(', ')} take one here`,
        { pragma: name },
      );
    let j = i + 2;
    if (tokens[j]?.value === '-' || tokens[j]?.value === '+') j++;
    const arg = tokens[j];
    const close = tokens[j + 1];
    const extra = tokens[j + 2];
    if (arg && arg.kind !== 'punct' && close?.value === ')' && extra === undefined) return;
    bad = !arg || arg.kind === 'punct' ? (arg ?? next) : close?.value !== ')' ? (close ?? arg) : extra!;
  }
  throw rejected(
    `PRAGMA ${name}: unexpected "${bad.text}" at character ${bad.start + 1}; write PRAGMA ${name} or PRAGMA ${name}(name)`,
    { pragma: name, at: bad.start + 1 },
  );
}

/**
 * Check that `sql` is one statement that only reads.
 * @param sql - the query as written
 * @returns the statement to prepare: `sql` up to its first top-level `;`
 * @throws SmithError QUERY_REJECTED naming what was refused and why
 */
export function checkReadOnlySql(sql: string): string {
  const tokens = tokenizeSql(sql);
  const semi = tokens.findIndex((t) => t.kind === 'punct' && t.value === ';');
  const first = semi < 0 ? tokens : tokens.slice(0, semi);
  if (first.length === 0)
    throw rejected(`the query is empty; write one statement that starts with ${ALLOWED_START}`);

  let k = 0;
  if (first[0]!.value === 'EXPLAIN' && first[0]!.kind === 'word') {
    k = 1;
    if (first[1]?.value === 'QUERY' && first[2]?.value === 'PLAN') k = 3;
  }
  const lead = first[k];
  if (lead === undefined)
    throw rejected(`EXPLAIN needs a statement to explain, e.g. EXPLAIN QUERY PLAN SELECT …`);
  const kind = lead.kind === 'word' ? lead.value : '';
  if (WRITE_KINDS.has(kind))
    throw rejected(`writes are not allowed: ${kind}; a query may only read (${ALLOWED_START})`, { kind });
  if (kind === 'VACUUM')
    throw rejected('writes are not allowed: VACUUM (VACUUM INTO writes a new database file)', { kind });
  if (kind === 'ATTACH' || kind === 'DETACH')
    throw rejected(`${kind} is not allowed: a query reads only this home's database`, { kind });
  if (TRANSACTION_KINDS.has(kind))
    throw rejected(
      `transaction control is not allowed: ${kind}; every query runs in a read transaction of its own`,
      { kind },
    );
  if (kind === 'PRAGMA' && k > 0)
    throw rejected('EXPLAIN PRAGMA is not allowed; run the PRAGMA itself', { kind });
  if (!['SELECT', 'WITH', 'VALUES', 'PRAGMA'].includes(kind))
    throw rejected(`a query must start with ${ALLOWED_START}; this one starts with "${lead.text}"`, {
      kind: lead.text,
    });

  const second =
    semi < 0 ? undefined : tokens.slice(semi + 1).find((t) => t.value !== ';' || t.kind !== 'punct');
  if (second)
    throw rejected(`only one statement per query: found a second one at character ${second.start + 1}`, {
      at: second.start + 1,
    });

  if (kind === 'PRAGMA') checkPragma(first, k);
  for (let i = k; i < first.length; i++) {
    const t = first[i]!;
    if (t.kind === 'word' && WRITE_WORDS.has(t.value))
      throw rejected(`writes are not allowed: ${t.value} at character ${t.start + 1}`, {
        kind: t.value,
        at: t.start + 1,
      });
    if (t.kind === 'word' && t.value === 'REPLACE' && first[i + 1]?.value === 'INTO')
      throw rejected(`writes are not allowed: REPLACE INTO at character ${t.start + 1}`, {
        kind: 'REPLACE',
        at: t.start + 1,
      });
    if (nameOf(t) === 'load_extension')
      throw rejected(
        `load_extension is not allowed (character ${t.start + 1}): a query may not load code into the database`,
        { at: t.start + 1 },
      );
  }
  return semi < 0 ? sql : sql.slice(0, tokens[semi]!.start);
}

// ------------------------------------------------------------------ schema

/**
 * The tables and views of a database and their columns, by name. `sqlite_` tables are left out.
 * @param db - an open connection
 * @returns one entry per table or view
 */
export function describeSqliteSchema(db: Database.Database): SchemaTable[] {
  const names = db
    .prepare(
      "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .pluck()
    .all() as string[];
  const columns = db.prepare('SELECT name, type FROM pragma_table_info(?) ORDER BY cid');
  return names.map((table) => ({
    table,
    columns: (columns.all(table) as { name: string; type: string }[]).map((c) => ({
      name: c.name,
      type: c.type,
    })),
  }));
}

// ------------------------------------------------------------------ query processes

/** Size of a query answer beyond which rows are left out (`truncated`), in bytes (about). */
export const RESULT_BYTES_LIMIT = 16 * 1024 * 1024;
/** SQLite memory a query process may use (`PRAGMA hard_heap_limit`), in bytes: 256 MiB. */
export const QUERY_HEAP_LIMIT = 256 * 1024 * 1024;
/** How long a query process may take to open the database, in ms. */
const START_TIMEOUT_MS = 15_000;
/** Past its time limit plus this (ms), a query process kills itself (its parent did not). */
const WATCHDOG_GRACE_MS = 2_000;
/** How long a graceful stop waits before SIGKILL, in ms. */
const STOP_GRACE_MS = 2_000;
/** How long the messages and output of an exited process may take to arrive, in ms. */
const DRAIN_MS = 1_000;

/**
 * The watchdog thread of a query process: it kills the process when its parent is gone (the
 * process was re-parented) or when a query runs past its deadline (`deadline[0]`, ms since the
 * epoch; 0 when idle).
 */
const WATCHDOG_SOURCE = `
const { workerData } = require('node:worker_threads');
const { ppid, deadline } = workerData;
setInterval(() => {
  const d = Number(Atomics.load(deadline, 0));
  if (process.ppid !== ppid || (d > 0 && Date.now() > d)) process.kill(process.pid, 'SIGKILL');
}, 250);
`;

/**
 * The program of a query process (CommonJS, read from stdin by `node -`). argv: tag, database
 * file, better-sqlite3's entry file, heap limit (bytes), watchdog grace (ms). Messages in:
 * `{id, sql, maxRows, maxBytes, timeoutMs}`; out: `{type: 'ready'}`, `{type: 'fatal', message}`,
 * `{type: 'result', id, columns, rows, truncated, elapsedMs}`,
 * `{type: 'error', id, kind: 'rejected' | 'failed', message}`.
 */
const QUERY_PROCESS_SOURCE = `
'use strict';
const { Worker } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
const [file, driver, heapLimit, grace] = process.argv.slice(3);
const deadline = new BigInt64Array(new SharedArrayBuffer(8));
new Worker(${JSON.stringify(WATCHDOG_SOURCE)}, { eval: true, workerData: { ppid: process.ppid, deadline } }).unref();
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const heapMiB = Math.round(Number(heapLimit) / 1048576);

function cell(v) {
  if (typeof v === 'bigint') return v > MAX_SAFE || v < -MAX_SAFE ? v.toString() : Number(v);
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (Buffer.isBuffer(v)) return v.toString('base64');
  return v;
}
function size(v) {
  return typeof v === 'string' ? v.length + 3 : 8;
}
function describe(err, during) {
  const code = err && typeof err.code === 'string' ? err.code : '';
  const message = err && err.message ? err.message : String(err);
  if (code === 'SQLITE_NOMEM')
    return { kind: 'rejected', message: 'the query needs more than the ' + heapMiB + ' MiB of memory a query may use; add a LIMIT or a WHERE, or aggregate' };
  if (/^SQLITE_(BUSY|LOCKED|IOERR|CORRUPT|CANTOPEN|NOTADB|FULL)/.test(code))
    return { kind: 'failed', message: 'the database could not be read (' + code + '): ' + message };
  if (/more than one statement/i.test(message))
    return { kind: 'rejected', message: 'only one statement per query: ' + message };
  if (/parameter/i.test(message))
    return { kind: 'rejected', message: 'the query has parameters (?, :name, @name, $name); a query runs without bindings: write the values into it (' + message + ')' };
  if (code.startsWith('SQLITE_') || err instanceof RangeError || err instanceof TypeError)
    return { kind: 'rejected', message: (during === 'prepare' ? 'the query does not compile: ' : 'the query failed while running: ') + message };
  return { kind: 'failed', message: 'the query process failed: ' + message };
}

let db;
try {
  const Database = require(driver);
  db = new Database(file, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  db.pragma('hard_heap_limit = ' + Number(heapLimit));
  db.pragma('temp_store = MEMORY');
  db.pragma('query_only = ON');
  db.pragma('schema_version');
} catch (err) {
  db = undefined;
  process.send({ type: 'fatal', message: err && err.message ? err.message : String(err) }, () => process.exit(1));
}

function run(m) {
  const t0 = performance.now();
  Atomics.store(deadline, 0, BigInt(Date.now() + m.timeoutMs + Number(grace)));
  try {
    let stmt;
    try {
      stmt = db.prepare(m.sql);
    } catch (err) {
      return Object.assign({ type: 'error', id: m.id }, describe(err, 'prepare'));
    }
    if (!stmt.readonly)
      return { type: 'error', id: m.id, kind: 'rejected', message: 'writes are not allowed: SQLite says the statement would change the database' };
    if (!stmt.reader)
      return { type: 'error', id: m.id, kind: 'rejected', message: 'the statement returns no rows; a query must read rows (SELECT, WITH, VALUES, EXPLAIN, a reading PRAGMA)' };
    stmt.raw(true);
    stmt.safeIntegers(true);
    const columns = stmt.columns().map((c) => c.name);
    const rows = [];
    let bytes = 0;
    let truncated = false;
    try {
      for (const row of stmt.iterate()) {
        if (rows.length >= m.maxRows) { truncated = true; break; }
        const out = row.map(cell);
        let n = 0;
        for (const v of out) n += size(v);
        if (rows.length > 0 && bytes + n > m.maxBytes) { truncated = true; break; }
        bytes += n;
        rows.push(out);
      }
    } catch (err) {
      return Object.assign({ type: 'error', id: m.id }, describe(err, 'run'));
    }
    const elapsedMs = Math.round((performance.now() - t0) * 1000) / 1000;
    return { type: 'result', id: m.id, columns, rows, truncated, elapsedMs };
  } finally {
    Atomics.store(deadline, 0, 0n);
  }
}

if (db) {
  process.on('message', (m) => process.send(run(m)));
  process.on('disconnect', () => {
    db.close();
    process.exit(0);
  });
  process.send({ type: 'ready' });
}
`;

type QueryProcessMessage =
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | {
      type: 'result';
      id: number;
      columns: string[];
      rows: unknown[][];
      truncated: boolean;
      elapsedMs: number;
    }
  | { type: 'error'; id: number; kind: 'rejected' | 'failed'; message: string };

interface PendingQuery {
  id: number;
  resolve: (r: QueryResult) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout;
}

/** One query process: a child `node` with a read-only connection, one query at a time. */
class QueryProcess {
  private readonly child: ChildProcess;
  /** Resolves once the database is open; rejects when the process cannot open it. */
  readonly ready: Promise<void>;
  private pending: PendingQuery | undefined;
  private nextId = 1;
  private stderr = '';
  private fatal: string | undefined;
  private exitedFlag = false;
  private killedFlag = false;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  /** Timer that stops the process after it stayed idle (set by the pool). */
  idleTimer: NodeJS.Timeout | undefined;

  /**
   * Start the process (it opens `file` on its own; see {@link ready}).
   * @param file - the database file
   * @param driver - the entry file of better-sqlite3
   */
  constructor(file: string, driver: string) {
    this.child = spawn(
      process.execPath,
      ['-', 'smith-read-only-query', file, driver, String(QUERY_HEAP_LIMIT), String(WATCHDOG_GRACE_MS)],
      { stdio: ['pipe', 'ignore', 'pipe', 'ipc'], serialization: 'json' },
    );
    // the server's event loop need not wait for an idle query process; a running query's timer does
    this.child.unref();
    this.child.channel?.unref();
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-2000);
    });
    (this.child.stderr as { unref?: () => void } | null)?.unref?.();
    this.child.stdin?.on('error', () => undefined);
    this.child.stdin?.end(QUERY_PROCESS_SOURCE);
    let readyResolve: () => void = () => undefined;
    let readyReject: (e: unknown) => void = () => undefined;
    this.ready = new Promise<void>((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    const startTimer = setTimeout(() => {
      readyReject(
        new SmithError(
          'STORE_FAILED',
          `the query process did not open ${file} within ${START_TIMEOUT_MS} ms; try again`,
        ),
      );
      this.kill();
    }, START_TIMEOUT_MS);
    void this.ready.then(
      () => clearTimeout(startTimer),
      () => clearTimeout(startTimer),
    );
    // the end of a process: it exited, its IPC channel closed (so every message it sent has come)
    // and its stderr closed (so has its last output). 'close' would wait for the channel forever
    // when this side disconnected first.
    const disconnected = new Promise<void>((res) => this.child.once('disconnect', () => res()));
    const stderrClosed = new Promise<void>((res) => {
      if (this.child.stderr) this.child.stderr.once('close', () => res());
      else res();
    });
    const exit = new Promise<[number | null, NodeJS.Signals | null]>((res) => {
      this.child.once('exit', (code, signal) => res([code, signal]));
      this.child.once('error', (err) => {
        this.stderr += err.message;
        res([null, null]);
      });
    });
    this.exited = exit.then(async ([code, signal]) => {
      let drainTimer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all([disconnected, stderrClosed]),
        new Promise<void>((res) => (drainTimer = setTimeout(res, DRAIN_MS))),
      ]);
      clearTimeout(drainTimer);
      this.exitedFlag = true;
      const why = this.fatal ?? (this.stderr.trim() || `exit code ${code}, signal ${signal}`);
      readyReject(
        new SmithError('STORE_FAILED', `cannot open ${file} read-only for queries: ${why}`, {
          context: { file },
        }),
      );
      this.settle((p) =>
        p.reject(
          new SmithError(
            'STORE_FAILED',
            `the query process ended while running the query (${signal ?? `exit code ${code}`}): ${this.stderr.trim() || 'no message'}; run it again`,
          ),
        ),
      );
    });
    this.child.on('message', (m: QueryProcessMessage) => {
      switch (m.type) {
        case 'ready':
          readyResolve();
          break;
        case 'fatal':
          this.fatal = m.message;
          break;
        case 'result':
          if (this.pending?.id === m.id)
            this.settle((p) =>
              p.resolve({ columns: m.columns, rows: m.rows, truncated: m.truncated, elapsedMs: m.elapsedMs }),
            );
          break;
        case 'error':
          if (this.pending?.id === m.id)
            this.settle((p) =>
              p.reject(
                m.kind === 'rejected'
                  ? new SmithError('QUERY_REJECTED', m.message)
                  : new SmithError('STORE_FAILED', m.message, { context: { file } }),
              ),
            );
          break;
      }
    });
  }

  /** Whether it can take another query. */
  get usable(): boolean {
    return !this.exitedFlag && !this.killedFlag;
  }

  private settle(f: (p: PendingQuery) => void): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    f(p);
  }

  /**
   * Run one checked statement.
   * @throws SmithError QUERY_TIMEOUT (the process is killed), QUERY_REJECTED, STORE_FAILED
   */
  query(sql: string, opts: QueryOptions): Promise<QueryResult> {
    return new Promise<QueryResult>((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.settle((p) =>
          p.reject(
            new SmithError(
              'QUERY_TIMEOUT',
              `the query ran past its time limit of ${opts.timeoutMs} ms and was stopped; add a LIMIT or a WHERE`,
              { context: { timeoutMs: opts.timeoutMs } },
            ),
          ),
        );
        this.kill();
      }, opts.timeoutMs);
      this.pending = { id, resolve, reject, timer };
      this.child.send(
        { id, sql, maxRows: opts.maxRows, maxBytes: RESULT_BYTES_LIMIT, timeoutMs: opts.timeoutMs },
        (err) => {
          if (err)
            this.settle((p) =>
              p.reject(
                new SmithError('STORE_FAILED', `cannot send the query to its process: ${err.message}`, {
                  cause: err,
                }),
              ),
            );
        },
      );
    });
  }

  /** SIGKILL now (a running query ends with it). */
  kill(): void {
    this.killedFlag = true;
    if (!this.exitedFlag) this.child.kill('SIGKILL');
  }

  /**
   * Stop: a query still running is failed with `reason`; an idle process closes its connection
   * and exits, and is killed when it has not within {@link STOP_GRACE_MS}.
   */
  async stop(reason: SmithError): Promise<void> {
    if (this.pending) {
      this.settle((p) => p.reject(reason));
      this.kill();
    } else if (!this.exitedFlag) {
      this.killedFlag = true;
      if (this.child.connected) this.child.disconnect();
      const t = setTimeout(() => this.child.kill('SIGKILL'), STOP_GRACE_MS);
      await this.exited;
      clearTimeout(t);
    }
    await this.exited;
  }
}

/** Options of {@link ReadOnlyQueries}. */
export interface ReadOnlyQueriesOptions {
  /** Query processes at most (queries beyond wait their turn). Default 2. */
  processes?: number;
  /** An idle query process exits after this long, in ms. Default 60 000. */
  idleMs?: number;
}

/**
 * Read-only queries over one SQLite file, run in query processes that start on first use and
 * stop at {@link close}.
 */
export class ReadOnlyQueries {
  private readonly size: number;
  private readonly idleMs: number;
  private readonly driver: string;
  private readonly idle: QueryProcess[] = [];
  private readonly all = new Set<QueryProcess>();
  /** Killed processes not yet reaped. */
  private readonly dying = new Set<QueryProcess>();
  private waiters: { resolve: (p: QueryProcess) => void; reject: (e: unknown) => void }[] = [];
  private closed = false;

  /**
   * @param file - the database file (it must exist)
   * @param options - how many query processes, how long one may stay idle
   */
  constructor(
    readonly file: string,
    options: ReadOnlyQueriesOptions = {},
  ) {
    this.size = options.processes ?? 2;
    this.idleMs = options.idleMs ?? 60_000;
    this.driver = createRequire(import.meta.url).resolve('better-sqlite3');
  }

  /**
   * Check and run one read-only statement. See the module comment for the rules.
   * @param sql - one statement (a trailing `;` and comments are fine)
   * @param opts - `maxRows` (at least 1) and `timeoutMs` (ms, at least 1)
   * @returns columns, rows, whether rows were left out, the time the database took (ms)
   * @throws SmithError QUERY_REJECTED, QUERY_TIMEOUT, INVALID_ARGUMENT (limits), STORE_FAILED
   *   (the file cannot be read), SHUTTING_DOWN (closed)
   */
  async run(sql: string, opts: QueryOptions): Promise<QueryResult> {
    for (const [name, v] of [
      ['maxRows', opts.maxRows],
      ['timeoutMs', opts.timeoutMs],
    ] as const)
      if (!Number.isSafeInteger(v) || v < 1)
        throw new SmithError('INVALID_ARGUMENT', `${name} must be a whole number of at least 1, not ${v}`);
    const statement = checkReadOnlySql(sql);
    const p = await this.acquire();
    try {
      return await p.query(statement, opts);
    } finally {
      this.release(p);
    }
  }

  private shuttingDown(): SmithError {
    return new SmithError('SHUTTING_DOWN', `the store ${this.file} is closed; no more queries run`);
  }

  private async start(): Promise<QueryProcess> {
    const p = new QueryProcess(this.file, this.driver);
    this.all.add(p);
    try {
      await p.ready;
      return p;
    } catch (err) {
      this.all.delete(p);
      p.kill();
      throw err;
    }
  }

  private acquire(): Promise<QueryProcess> {
    if (this.closed) return Promise.reject(this.shuttingDown());
    for (;;) {
      const p = this.idle.pop();
      if (!p) break;
      clearTimeout(p.idleTimer);
      if (p.usable) return Promise.resolve(p);
      this.all.delete(p);
    }
    if (this.all.size < this.size) return this.start();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private release(p: QueryProcess): void {
    if (!p.usable || this.closed) {
      this.all.delete(p);
      this.dying.add(p);
      void p.exited.then(() => this.dying.delete(p));
      if (this.closed) return;
      const w = this.waiters.shift();
      if (w) this.start().then(w.resolve, w.reject);
      return;
    }
    const w = this.waiters.shift();
    if (w) {
      w.resolve(p);
      return;
    }
    p.idleTimer = setTimeout(() => {
      const i = this.idle.indexOf(p);
      if (i < 0) return;
      this.idle.splice(i, 1);
      this.all.delete(p);
      void p.stop(this.shuttingDown());
    }, this.idleMs);
    p.idleTimer.unref();
    this.idle.push(p);
  }

  /** Stop every query process (running queries fail SHUTTING_DOWN). Safe to call twice. */
  async close(): Promise<void> {
    this.closed = true;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(this.shuttingDown());
    for (const p of this.idle) clearTimeout(p.idleTimer);
    this.idle.length = 0;
    const all = [...this.all];
    this.all.clear();
    await Promise.all([
      ...all.map((p) => p.stop(this.shuttingDown())),
      ...[...this.dying].map((p) => p.exited),
    ]);
  }
}
