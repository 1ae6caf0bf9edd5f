/**
 * The database explorer of `smith serve`: read-only SQL over the home's database, saved queries,
 * the schema, the time limit, roles and the audit trail. Real home, real engine, real agent
 * processes, real query processes, real HTTP on loopback.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { storeFile } from '../src/engine/home.js';
import { openServer, startServe, type TestServer } from './fixtures/smith-server.js';
import { Sandbox, shAgent, waitFor } from './fixtures/smith-cli.js';

const AGENTS = ['agents:', ...shAgent('sh', ['shell'], 4)].join('\n') + '\n';
const RUNAWAY = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c';

interface ErrorJson {
  code: string;
  message: string;
}
interface ResultJson {
  columns: string[];
  rows: unknown[][];
  truncated: boolean;
  elapsed_ms: number;
}
interface SavedJson {
  id: string;
  name: string;
  sql: string;
  description: string;
  created_by: string;
}
interface AuditJson {
  records: { actor: string; action: string; subject: string; data: Record<string, unknown> }[];
}

let box: Sandbox;
let srv: TestServer;

beforeEach(async () => {
  box = new Sandbox('smith-api-queries-');
  srv = await openServer(box, AGENTS);
});
afterEach(async () => {
  await srv?.close();
  await box.cleanup();
});

async function body<T>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

function run(sql: string, extra: Record<string, unknown> = {}, token?: string): Promise<Response> {
  return srv.fetch('/api/v1/queries/run', {
    method: 'POST',
    json: { sql, ...extra },
    ...(token !== undefined ? { token } : {}),
  });
}

async function rows(sql: string): Promise<unknown[][]> {
  const res = await run(sql);
  expect(res.status, await res.clone().text()).toBe(200);
  return (await body<ResultJson>(res)).rows;
}

/** Run three tasks to their end; @returns their ids. */
async function runTasks(): Promise<string[]> {
  const ids: string[] = [];
  for (const key of ['one', 'two', 'three']) {
    const res = await srv.fetch('/api/v1/tasks', {
      method: 'POST',
      json: { agent: 'sh', prompt: `echo out-${key}`, key },
    });
    expect(res.status).toBe(201);
    ids.push((await body<{ id: string }>(res)).id);
  }
  for (const id of ids)
    await waitFor(`task ${id} to complete`, async () => {
      const t = await body<{ state: string }>(await srv.fetch(`/api/v1/tasks/${id}`));
      return t.state === 'completed';
    });
  return ids;
}

/** Pids of query processes reading the database of `home`. */
function queryProcesses(home: string): number[] {
  const file = storeFile(home);
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv.includes('smith-read-only-query') && argv.includes(file)) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

describe('running queries', () => {
  it('answers a SELECT over the tasks that ran, and the schema lists the tables and columns', async () => {
    const ids = await runTasks();
    const res = await run('SELECT key, state, output FROM tasks ORDER BY key; -- the three tasks');
    expect(res.status).toBe(200);
    const r = await body<ResultJson>(res);
    expect(r.columns).toEqual(['key', 'state', 'output']);
    expect(r.rows.map((x) => x.slice(0, 2))).toEqual([
      ['one', 'completed'],
      ['three', 'completed'],
      ['two', 'completed'],
    ]);
    expect(String(r.rows[0]![2])).toContain('out-one');
    expect(r.truncated).toBe(false);
    expect(typeof r.elapsed_ms).toBe('number');

    const joined = await rows(
      `SELECT count(*) FROM attempts WHERE task_id IN (${ids.map((i) => `'${i}'`).join(', ')})`,
    );
    expect(joined).toEqual([[3]]);

    const schema = await body<{ tables: { table: string; columns: { name: string }[] }[] }>(
      await srv.fetch('/api/v1/queries/schema'),
    );
    const tasks = schema.tables.find((t) => t.table === 'tasks');
    expect(tasks?.columns.map((c) => c.name)).toEqual(
      expect.arrayContaining(['id', 'key', 'state', 'output']),
    );
    expect(schema.tables.map((t) => t.table)).toEqual(
      expect.arrayContaining(['attempts', 'audit_records', 'saved_queries']),
    );
  });

  it('stops at the row limit and says the answer was truncated; limits beyond the maximum are refused', async () => {
    await runTasks();
    const res = await run('SELECT id FROM tasks', { max_rows: 2 });
    const r = await body<ResultJson>(res);
    expect(r.rows).toHaveLength(2);
    expect(r.truncated).toBe(true);
    const all = await body<ResultJson>(await run('SELECT id FROM tasks', { max_rows: 3 }));
    expect(all.truncated).toBe(false);

    for (const extra of [{ max_rows: 10_001 }, { max_rows: 0 }, { timeout_ms: 60_001 }, { rows: 3 }]) {
      const bad = await run('SELECT 1', extra);
      expect(bad.status, JSON.stringify(extra)).toBe(400);
      expect((await body<ErrorJson>(bad)).code).toBe('INVALID_REQUEST');
    }
  });

  it('stops a runaway query at its time limit with QUERY_TIMEOUT, answering other requests meanwhile and after', async () => {
    let ended = false;
    const runaway = run(RUNAWAY, { timeout_ms: 8000 }).then((res) => {
      ended = true;
      return res;
    });
    // the server answers while the runaway query runs
    await waitFor('a query process to run the runaway query', () => queryProcesses(box.home).length > 0);
    expect((await srv.fetch('/health', { token: '' })).status).toBe(200);
    expect((await srv.fetch('/api/v1/tasks')).status).toBe(200);
    expect(await rows('SELECT 40 + 2')).toEqual([[42]]);
    expect(ended).toBe(false);

    const res = await runaway;
    expect(res.status).toBe(422);
    const e = await body<ErrorJson>(res);
    expect(e.code).toBe('QUERY_TIMEOUT');
    expect(e.message).toBe(
      'the query ran past its time limit of 8000 ms and was stopped; add a LIMIT or a WHERE',
    );

    expect(await rows('SELECT 1')).toEqual([[1]]);
    expect((await srv.fetch('/api/v1/tasks')).status).toBe(200);
  });

  it('refuses writes and tricks with 400 QUERY_REJECTED, and the data stays as it was', async () => {
    await runTasks();
    const before = await rows('SELECT id, state, output FROM tasks ORDER BY id');
    const cases: [string, RegExp][] = [
      ['DELETE FROM tasks', /^writes are not allowed: DELETE/],
      ["UPDATE tasks SET state = 'failed'", /^writes are not allowed: UPDATE/],
      ["INSERT INTO saved_queries (id) VALUES ('x')", /^writes are not allowed: INSERT/],
      ['DROP TABLE tasks', /^writes are not allowed: DROP/],
      ["ATTACH DATABASE 'other.db' AS o", /^ATTACH is not allowed/],
      ['PRAGMA query_only = OFF', /^a PRAGMA that sets a value is not allowed/],
      ["VACUUM INTO 'copy.db'", /^writes are not allowed: VACUUM/],
      ['SELECT 1; DELETE FROM tasks', /^only one statement per query: found a second one at character 11$/],
      ["SELECT '; DELETE FROM tasks' /* ; */; DROP TABLE tasks", /^only one statement per query/],
      ["SELECT load_extension('x')", /^load_extension is not allowed/],
      ['WITH t AS (SELECT 1) DELETE FROM tasks', /^writes are not allowed: DELETE/],
      ['SELECT * FROM no_such_table', /^the query does not compile: no such table: no_such_table/],
    ];
    for (const [sql, message] of cases) {
      const res = await run(sql);
      expect(res.status, sql).toBe(400);
      const e = await body<ErrorJson>(res);
      expect(e.code, sql).toBe('QUERY_REJECTED');
      expect(e.message, sql).toMatch(message);
    }
    expect(await rows('SELECT id, state, output FROM tasks ORDER BY id')).toEqual(before);
    expect(readdirSync(box.dir)).not.toContain('copy.db');
    const listed = await body<{ tasks: { state: string }[] }>(await srv.fetch('/api/v1/tasks'));
    expect(listed.tasks.map((t) => t.state)).toEqual(['completed', 'completed', 'completed']);
  });
});

describe('saved queries', () => {
  it('creates, lists, reads by id and by name, changes, runs and deletes a saved query', async () => {
    await runTasks();
    const made = await srv.fetch('/api/v1/queries', {
      method: 'POST',
      json: {
        name: 'tasks by state',
        sql: 'SELECT state, count(*) AS n FROM tasks GROUP BY state',
        description: 'counts',
      },
    });
    expect(made.status).toBe(201);
    const q = await body<SavedJson>(made);
    expect(q.id).toMatch(/^q_[0-9A-Z]{26}$/);
    expect(q.created_by).toMatch(/^key:/);

    const dup = await srv.fetch('/api/v1/queries', {
      method: 'POST',
      json: { name: 'tasks by state', sql: 'SELECT 1' },
    });
    expect(dup.status).toBe(409);
    expect((await body<ErrorJson>(dup)).message).toMatch(
      /a saved query named "tasks by state" exists already/,
    );

    const writes = await srv.fetch('/api/v1/queries', {
      method: 'POST',
      json: { name: 'cleanup', sql: 'DELETE FROM tasks' },
    });
    expect(writes.status).toBe(400);
    expect(await body<ErrorJson>(writes)).toMatchObject({ code: 'QUERY_REJECTED' });
    const reserved = await srv.fetch('/api/v1/queries', {
      method: 'POST',
      json: { name: 'schema', sql: 'SELECT 1' },
    });
    expect(reserved.status).toBe(400);

    const list = await body<{ queries: SavedJson[] }>(await srv.fetch('/api/v1/queries'));
    expect(list.queries.map((x) => x.name)).toEqual(['tasks by state']);
    expect((await body<SavedJson>(await srv.fetch(`/api/v1/queries/${q.id}`))).sql).toBe(q.sql);
    const byName = await srv.fetch(`/api/v1/queries/${encodeURIComponent('tasks by state')}`);
    expect((await body<SavedJson>(byName)).id).toBe(q.id);

    const ran = await body<ResultJson>(await srv.fetch(`/api/v1/queries/${q.id}/run`, { method: 'POST' }));
    expect(ran.rows).toEqual([['completed', 3]]);

    const badChange = await srv.fetch(`/api/v1/queries/${q.id}`, {
      method: 'PUT',
      json: { sql: 'DROP TABLE tasks' },
    });
    expect(badChange.status).toBe(400);
    const changed = await srv.fetch(`/api/v1/queries/${q.id}`, {
      method: 'PUT',
      json: { sql: 'SELECT key FROM tasks ORDER BY key' },
    });
    expect(changed.status).toBe(200);
    expect(await body<SavedJson>(changed)).toMatchObject({ name: 'tasks by state', description: 'counts' });
    const limited = await body<ResultJson>(
      await srv.fetch(`/api/v1/queries/${encodeURIComponent('tasks by state')}/run`, {
        method: 'POST',
        json: { max_rows: 1 },
      }),
    );
    expect(limited).toMatchObject({ rows: [['one']], truncated: true });

    const deleted = await srv.fetch(`/api/v1/queries/${q.id}`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    const gone = await srv.fetch(`/api/v1/queries/${q.id}`);
    expect(gone.status).toBe(404);
    expect(await body<ErrorJson>(gone)).toMatchObject({ code: 'QUERY_NOT_FOUND' });
    expect((await srv.fetch(`/api/v1/queries/${q.id}/run`, { method: 'POST' })).status).toBe(404);
    expect((await body<{ queries: SavedJson[] }>(await srv.fetch('/api/v1/queries'))).queries).toEqual([]);
  });
});

describe('roles and the audit trail', () => {
  it('refuses operators and viewers on every query route', async () => {
    const routes = srv.app.routeTable.filter((r) => r.url.startsWith('/api/v1/queries'));
    expect(routes.length).toBe(8);
    for (const role of ['operator', 'viewer'] as const) {
      const token = await srv.key(role);
      for (const r of routes) {
        const res = await srv.fetch(r.url.replace(':id', 'x'), {
          method: r.method,
          token,
          ...(r.method === 'GET' || r.method === 'DELETE' ? {} : { json: { sql: 'SELECT 1', name: 'x' } }),
        });
        expect(res.status, `${role} ${r.method} ${r.url}`).toBe(403);
        expect((await body<ErrorJson>(res)).code).toBe('FORBIDDEN');
      }
    }
  });

  it('describes every query route in the OpenAPI document', async () => {
    const doc = await body<{ paths: Record<string, Record<string, { tags?: string[] }>> }>(
      await srv.fetch('/api/v1/openapi.json'),
    );
    for (const [path, method] of [
      ['/api/v1/queries/run', 'post'],
      ['/api/v1/queries/schema', 'get'],
      ['/api/v1/queries', 'get'],
      ['/api/v1/queries', 'post'],
      ['/api/v1/queries/{id}', 'get'],
      ['/api/v1/queries/{id}', 'put'],
      ['/api/v1/queries/{id}', 'delete'],
      ['/api/v1/queries/{id}/run', 'post'],
    ] as const)
      expect(doc.paths[path]?.[method]?.tags, `${method} ${path}`).toEqual(['queries']);
  });

  it('records every run, save and delete in the audit trail with who did it and the SQL', async () => {
    const keyId = srv.token.split('_')[1];
    expect(await rows('SELECT 7')).toEqual([[7]]);
    expect((await run('DELETE FROM tasks')).status).toBe(400);
    const saved = await body<SavedJson>(
      await srv.fetch('/api/v1/queries', { method: 'POST', json: { name: 'seven', sql: 'SELECT 7' } }),
    );
    await srv.fetch(`/api/v1/queries/seven/run`, { method: 'POST' });
    await srv.fetch(`/api/v1/queries/${saved.id}`, { method: 'DELETE' });

    const audit = await body<AuditJson>(await srv.fetch('/api/v1/audit?limit=1000'));
    const mine = audit.records.filter((r) => r.action.startsWith('query.'));
    expect(mine.map((r) => [r.action, r.subject, r.actor])).toEqual([
      ['query.run', 'query:adhoc', `key:${keyId}`],
      ['query.run', 'query:adhoc', `key:${keyId}`],
      ['query.saved', `query:${saved.id}`, `key:${keyId}`],
      ['query.run', `query:${saved.id}`, `key:${keyId}`],
      ['query.deleted', `query:${saved.id}`, `key:${keyId}`],
    ]);
    expect(mine[0]!.data).toMatchObject({ sql: 'SELECT 7', outcome: 'ok', rows: 1 });
    expect(mine[1]!.data).toMatchObject({ sql: 'DELETE FROM tasks', outcome: 'QUERY_REJECTED' });
    expect(mine[3]!.data).toMatchObject({ sql: 'SELECT 7', saved: saved.id, outcome: 'ok' });
    const verify = await body<{ ok: boolean }>(await srv.fetch('/api/v1/audit/verify', { method: 'POST' }));
    expect(verify.ok).toBe(true);
  });
});

describe('smith serve', () => {
  it('leaves no query process behind when it is killed during a runaway query', async () => {
    const other = new Sandbox('smith-api-queries-serve-');
    try {
      const serve = await startServe(other);
      const pending = fetch(`${serve.url}/api/v1/queries/run`, {
        method: 'POST',
        headers: { authorization: `Bearer ${serve.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ sql: RUNAWAY, timeout_ms: 60_000 }),
      }).catch(() => undefined);
      await waitFor('a query process to run the runaway query', () => queryProcesses(other.home).length > 0);
      serve.proc.child.kill('SIGKILL');
      await serve.proc.done;
      await pending;
      await waitFor(
        'the query process to end after smith serve was killed',
        () => queryProcesses(other.home).length === 0,
      );
    } finally {
      await other.cleanup();
    }
  });
});
