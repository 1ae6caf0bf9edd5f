/**
 * Read-only queries on a real SQLite file, run in real query processes: every kind of write and
 * the tricks that hide one are refused with a message naming it, reads run, values come back
 * JSON-safe, a runaway query stops at its time limit, and the file is unchanged at the end.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSmithError, type SmithError } from '../../core/errors.js';
import { checkReadOnlySql, ReadOnlyQueries, tokenizeSql } from './read-only-query.js';
import { openSqliteStore } from './sqlite-store.js';

let dir: string;
let file: string;
let before: string;
let queries: ReadOnlyQueries;

const BIG = 2n ** 60n;

function digest(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Pids of live query processes reading `path`. */
function queryProcesses(path: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv.includes('smith-read-only-query') && argv.includes(path)) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function refusal(sql: string, opts = { maxRows: 100, timeoutMs: 10_000 }): Promise<SmithError> {
  try {
    await queries.run(sql, opts);
  } catch (err) {
    if (isSmithError(err)) return err;
    throw err;
  }
  throw new Error(`the query ran: ${sql}`);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'smith-roq-'));
  file = join(dir, 'data.db');
  const db = new Database(file);
  db.exec(`
    CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, big INTEGER, data BLOB, r REAL);
    CREATE INDEX t_name ON t (name);
  `);
  const ins = db.prepare('INSERT INTO t (name, big, data, r) VALUES (?, ?, ?, ?)');
  ins.safeIntegers(true);
  ins.run('alpha', BIG, Buffer.from([1, 2, 3]), 1.5);
  ins.run("it's; -- not a comment", 42n, null, null);
  for (let i = 0; i < 50; i++) ins.run(`row${i}`, BigInt(i), null, i / 2);
  db.close();
  before = digest(file);
  queries = new ReadOnlyQueries(file);
});

afterAll(async () => {
  await queries.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('statements that write or escape are refused', () => {
  const cases: [string, RegExp][] = [
    ["INSERT INTO t (name) VALUES ('x')", /^writes are not allowed: INSERT/],
    ["UPDATE t SET name = 'x'", /^writes are not allowed: UPDATE/],
    ['DELETE FROM t', /^writes are not allowed: DELETE/],
    ["REPLACE INTO t (id, name) VALUES (1, 'x')", /^writes are not allowed: REPLACE/],
    ['CREATE TABLE u (a)', /^writes are not allowed: CREATE/],
    ['CREATE TEMP TABLE u (a)', /^writes are not allowed: CREATE/],
    ['CREATE INDEX u ON t (r)', /^writes are not allowed: CREATE/],
    ['DROP TABLE t', /^writes are not allowed: DROP/],
    ['ALTER TABLE t ADD COLUMN z', /^writes are not allowed: ALTER/],
    ['REINDEX', /^writes are not allowed: REINDEX/],
    ['ANALYZE', /^writes are not allowed: ANALYZE/],
    ['VACUUM', /^writes are not allowed: VACUUM \(VACUUM INTO writes/],
    [`VACUUM INTO '${'/tmp'}/smith-roq-copy.db'`, /^writes are not allowed: VACUUM/],
    ["ATTACH DATABASE ':memory:' AS m", /^ATTACH is not allowed/],
    ["attach ':memory:' as m", /^ATTACH is not allowed/],
    ['DETACH m', /^DETACH is not allowed/],
    ['BEGIN', /^transaction control is not allowed: BEGIN/],
    ['SAVEPOINT s', /^transaction control is not allowed: SAVEPOINT/],
    ['COMMIT', /^transaction control is not allowed: COMMIT/],
    ['PRAGMA query_only = OFF', /^a PRAGMA that sets a value is not allowed: PRAGMA query_only/],
    ['PRAGMA user_version = 7', /^a PRAGMA that sets a value is not allowed/],
    ['PRAGMA main.user_version=7', /^a PRAGMA that sets a value is not allowed: PRAGMA user_version/],
    ['PRAGMA query_only(0)', /^PRAGMA query_only\(…\) is not allowed/],
    ['PRAGMA journal_mode(DELETE)', /^PRAGMA journal_mode\(…\) is not allowed/],
    ['PRAGMA wal_checkpoint', /^PRAGMA wal_checkpoint is not allowed/],
    ['PRAGMA optimize', /^PRAGMA optimize is not allowed/],
    ['PRAGMA "writable_schema" = 1', /^a PRAGMA that sets a value is not allowed/],
    ['PRAGMA table_info(t) x', /^PRAGMA table_info: unexpected "x" at character 22/],
    ['PRAGMA table_info(t, 1)', /^PRAGMA table_info: unexpected "," at character 20/],
    ['PRAGMA table_list x', /^PRAGMA table_list: unexpected "x"/],
    ["SELECT load_extension('/tmp/evil.so')", /^load_extension is not allowed/],
    ['SELECT "load_extension"(\'/tmp/evil.so\')', /^load_extension is not allowed/],
    ["SELECT [LOAD_EXTENSION]('/tmp/evil.so')", /^load_extension is not allowed/],
    ['WITH x AS (SELECT 1) DELETE FROM t', /^writes are not allowed: DELETE at character 22/],
    ["WITH x AS (SELECT 1) INSERT INTO t (name) SELECT 'x'", /^writes are not allowed: INSERT/],
    ['EXPLAIN DELETE FROM t', /^writes are not allowed: DELETE/],
    ['EXPLAIN QUERY PLAN UPDATE t SET r = 1', /^writes are not allowed: UPDATE/],
    ['SELECT 1; DELETE FROM t', /^only one statement per query: found a second one at character 11$/],
    ['SELECT 1;;; SELECT 2', /^only one statement per query: found a second one at character 13$/],
    ["SELECT ';' ; DROP TABLE t", /^only one statement per query: found a second one at character 14$/],
    ["SELECT 'it''s'; DROP TABLE t", /^only one statement per query/],
    ['SELECT 1 -- a comment ends at the line end\n; DELETE FROM t', /^only one statement per query/],
    ['SELECT 1 /* ; */ ; DELETE FROM t', /^only one statement per query/],
    ['SELECT "a;b"; DELETE FROM t', /^only one statement per query/],
    ['/* SELECT */ DELETE FROM t', /^writes are not allowed: DELETE/],
    ['-- SELECT\nDROP TABLE t', /^writes are not allowed: DROP/],
    ["SELECT 'unterminated", /^the query has an unterminated string starting at character 8/],
    ['SELECT "open', /^the query has an unterminated quoted name starting at character 8/],
    ['', /^the query is empty/],
    ['  -- only a comment\n', /^the query is empty/],
    [';', /^the query is empty/],
    [
      'SELEC 1',
      /^a query must start with SELECT, WITH, VALUES, EXPLAIN or a reading PRAGMA; this one starts with "SELEC"/,
    ],
    ['SELECT * FROM nowhere', /^the query does not compile: no such table: nowhere/],
    ['SELECT * FROM t WHERE id = ?', /^the query has parameters/],
    ['SELECT abs(-9223372036854775807 - 1)', /^the query failed while running: integer overflow/],
  ];
  it.each(cases)('%j', async (sql, message) => {
    const err = await refusal(sql);
    expect(err.code).toBe('QUERY_REJECTED');
    expect(err.message).toMatch(message);
  });

  it('leaves the file exactly as it was, with no file written beside it', () => {
    expect(digest(file)).toBe(before);
    expect(existsSync('/tmp/smith-roq-copy.db')).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(['data.db']);
  });
});

describe('reads run', () => {
  it('runs SELECT, WITH, VALUES, EXPLAIN QUERY PLAN and reading PRAGMAs, with comments and a trailing ;', async () => {
    const sel = await queries.run('SELECT id, name FROM t WHERE id <= 2 ORDER BY id; -- done', {
      maxRows: 10,
      timeoutMs: 10_000,
    });
    expect(sel.columns).toEqual(['id', 'name']);
    expect(sel.rows).toEqual([
      [1, 'alpha'],
      [2, "it's; -- not a comment"],
    ]);
    expect(sel.truncated).toBe(false);
    expect(sel.elapsedMs).toBeGreaterThanOrEqual(0);

    const withQ = await queries.run(
      '/* lead */ WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5) SELECT sum(x) AS s FROM c',
      { maxRows: 10, timeoutMs: 10_000 },
    );
    expect(withQ.rows).toEqual([[15]]);

    const values = await queries.run("VALUES (1, 'a'), (2, 'b');", { maxRows: 10, timeoutMs: 10_000 });
    expect(values.rows).toEqual([
      [1, 'a'],
      [2, 'b'],
    ]);

    const plan = await queries.run("EXPLAIN QUERY PLAN SELECT * FROM t WHERE name = 'alpha'", {
      maxRows: 10,
      timeoutMs: 10_000,
    });
    expect(JSON.stringify(plan.rows)).toMatch(/USING (COVERING )?INDEX t_name/);

    const info = await queries.run('PRAGMA table_info(t)', { maxRows: 10, timeoutMs: 10_000 });
    expect(info.rows.map((r) => r[1])).toEqual(['id', 'name', 'big', 'data', 'r']);
    const quoted = await queries.run('pragma main."table_info"(\'t\')', { maxRows: 10, timeoutMs: 10_000 });
    expect(quoted.rows).toHaveLength(5);
    const version = await queries.run('PRAGMA user_version', { maxRows: 10, timeoutMs: 10_000 });
    expect(version.rows).toEqual([[0]]);
  });

  it('does not take keywords inside strings, quoted names or comments for statements', async () => {
    const r = await queries.run(
      `SELECT 'DELETE FROM t; ATTACH' AS "insert", [update] FROM (SELECT 1 AS [update]) /* DROP TABLE t; */`,
      { maxRows: 10, timeoutMs: 10_000 },
    );
    expect(r.columns).toEqual(['insert', 'update']);
    expect(r.rows).toEqual([['DELETE FROM t; ATTACH', 1]]);
  });

  it('turns big integers into strings, blobs into base64 and infinite reals into strings', async () => {
    const r = await queries.run('SELECT big, data, r, 1e999, -1e999 FROM t WHERE id = 1', {
      maxRows: 10,
      timeoutMs: 10_000,
    });
    expect(r.rows).toEqual([
      [BIG.toString(), Buffer.from([1, 2, 3]).toString('base64'), 1.5, 'Infinity', '-Infinity'],
    ]);
    const small = await queries.run('SELECT big FROM t WHERE id = 2', { maxRows: 10, timeoutMs: 10_000 });
    expect(small.rows).toEqual([[42]]);
  });

  it('stops at the row limit and says so', async () => {
    const r = await queries.run('SELECT id FROM t ORDER BY id', { maxRows: 7, timeoutMs: 10_000 });
    expect(r.rows).toHaveLength(7);
    expect(r.truncated).toBe(true);
    const exact = await queries.run('SELECT id FROM t WHERE id <= 7', { maxRows: 7, timeoutMs: 10_000 });
    expect(exact.rows).toHaveLength(7);
    expect(exact.truncated).toBe(false);
  });

  it('refuses limits that are not whole positive numbers', async () => {
    for (const opts of [
      { maxRows: 0, timeoutMs: 1000 },
      { maxRows: 10, timeoutMs: -1 },
      { maxRows: 1.5, timeoutMs: 1000 },
    ]) {
      const err = await refusal('SELECT 1', opts);
      expect(err.code).toBe('INVALID_ARGUMENT');
    }
  });
});

describe('the time limit', () => {
  it('stops a runaway query with QUERY_TIMEOUT, and the next query runs', async () => {
    const err = await refusal(
      'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c',
      { maxRows: 10, timeoutMs: 500 },
    );
    expect(err.code).toBe('QUERY_TIMEOUT');
    expect(err.message).toBe(
      'the query ran past its time limit of 500 ms and was stopped; add a LIMIT or a WHERE',
    );
    const r = await queries.run('SELECT count(*) FROM t', { maxRows: 1, timeoutMs: 10_000 });
    expect(r.rows).toEqual([[52]]);
    expect(digest(file)).toBe(before);
  });

  it('lets other queries run while one runs away', async () => {
    const runaway = refusal(
      'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c',
      { maxRows: 10, timeoutMs: 3000 },
    );
    const quick = await queries.run('SELECT name FROM t WHERE id = 1', { maxRows: 1, timeoutMs: 10_000 });
    expect(quick.rows).toEqual([['alpha']]);
    expect((await runaway).code).toBe('QUERY_TIMEOUT');
  });
});

describe('the SQLite store', () => {
  it('runs queries on its file, describes its schema, and stops its query processes when it closes', async () => {
    const home = join(dir, 'home');
    const storeFile = join(home, 'smith.db');
    const store = await openSqliteStore(storeFile);
    const schema = await store.describeSchema();
    const tasks = schema.find((t) => t.table === 'tasks');
    expect(tasks?.columns.map((c) => c.name)).toEqual(expect.arrayContaining(['id', 'state', 'prompt']));
    expect(tasks?.columns.find((c) => c.name === 'id')?.type.toLowerCase()).toBe('text');
    expect(schema.map((t) => t.table)).toEqual(expect.arrayContaining(['saved_queries', 'audit_records']));
    expect(schema.some((t) => t.table.startsWith('sqlite_'))).toBe(false);

    await store.commit([{ op: 'audit', actor: 'test', action: 'test.one', subject: 's', data: {} }]);
    const r = await store.readOnlyQuery('SELECT action FROM audit_records', {
      maxRows: 10,
      timeoutMs: 10_000,
    });
    expect(r.rows).toEqual([['test.one']]);
    const err = await store
      .readOnlyQuery('DELETE FROM audit_records', { maxRows: 10, timeoutMs: 10_000 })
      .then(
        () => undefined,
        (e: unknown) => e as SmithError,
      );
    expect(err?.code).toBe('QUERY_REJECTED');
    expect((await store.auditHead())?.seq).toBe(1);

    expect(queryProcesses(storeFile).length).toBeGreaterThan(0);
    await store.close();
    expect(queryProcesses(storeFile)).toEqual([]);
    const after = await store.readOnlyQuery('SELECT 1', { maxRows: 1, timeoutMs: 1000 }).then(
      () => undefined,
      (e: unknown) => e as SmithError,
    );
    expect(after?.code).toBe('SHUTTING_DOWN');
  });
});

describe('a file that cannot be read', () => {
  it('fails with STORE_FAILED naming the file', async () => {
    const missing = join(dir, 'missing.db');
    const q = new ReadOnlyQueries(missing);
    try {
      const err = await q.run('SELECT 1', { maxRows: 1, timeoutMs: 10_000 }).then(
        () => undefined,
        (e: unknown) => e as SmithError,
      );
      expect(err?.code).toBe('STORE_FAILED');
      expect(err?.message).toBe(`cannot open ${missing} read-only for queries: unable to open database file`);
      expect(existsSync(missing)).toBe(false);
    } finally {
      await q.close();
    }
  });
});

describe('the tokenizer', () => {
  it('skips comments and keeps quoted text whole', () => {
    const t = tokenizeSql("select /* a; */ 'b;''c' -- d;\n, \"e\"\"f\", [g h], x'00', 1.5e-3;");
    expect(t.map((x) => [x.kind, x.value])).toEqual([
      ['word', 'SELECT'],
      ['string', "'b;''c'"],
      ['punct', ','],
      ['identifier', 'e"f'],
      ['punct', ','],
      ['identifier', 'g h'],
      ['punct', ','],
      ['string', "x'00'"],
      ['punct', ','],
      ['number', '1.5e-3'],
      ['punct', ';'],
    ]);
  });

  it('gives back the statement without what follows its ;', () => {
    expect(checkReadOnlySql('SELECT 1; -- bye')).toBe('SELECT 1');
    expect(checkReadOnlySql('SELECT 1 -- bye')).toBe('SELECT 1 -- bye');
  });
});
