/**
 * The REST API's core: authentication on every route, roles, tasks (create, list with cursors,
 * detail, interventions), workflows, keys, errors and limits. Real home, real engine, real agent
 * processes, real HTTP on loopback.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openServer, startServe, type TestServer } from './fixtures/smith-server.js';
import { Sandbox, shAgent, waitFor } from './fixtures/smith-cli.js';

const AGENTS = ['agents:', ...shAgent('sh', ['shell'], 4)].join('\n') + '\n';

interface TaskJson {
  id: string;
  key: string;
  state: string;
  attempts: number;
  output?: string | null;
}

let box: Sandbox;
let srv: TestServer;

beforeEach(async () => {
  box = new Sandbox('smith-api-');
  srv = await openServer(box, AGENTS);
});
afterEach(async () => {
  await srv?.close();
  await box.cleanup();
});

async function body<T>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

async function finished(id: string): Promise<TaskJson> {
  return waitFor(`task ${id} to end`, async () => {
    const t = await body<TaskJson>(await srv.fetch(`/api/v1/tasks/${id}`));
    return ['completed', 'failed', 'canceled'].includes(t.state) ? t : undefined;
  });
}

describe('authentication', () => {
  it('answers 401 with a JSON body on every route but /health when no key or a wrong key is sent, whatever the request carries', async () => {
    const routes = srv.app.routeTable.filter((r) => r.url !== '/health');
    expect(routes.length).toBeGreaterThan(15);
    const wrong = 'smk_0123456789abcdef_' + 'A'.repeat(43);
    for (const r of routes) {
      const url = r.url.replace(/:[A-Za-z]+/g, 'x').replace('*', 'x');
      for (const token of ['', wrong, 'not-a-key']) {
        const res = await srv.fetch(url, {
          method: r.method,
          token,
          // a body the route would reject, larger than the body limit: auth comes first
          ...(r.method === 'GET'
            ? {}
            : { body: 'x'.repeat(2 * 1024 * 1024), headers: { 'content-type': 'application/json' } }),
        });
        expect(res.status, `${r.method} ${r.url} with token "${token.slice(0, 8)}"`).toBe(401);
        const b = await body<{ code: string; message: string }>(res);
        expect(b.code).toBe('UNAUTHENTICATED');
        expect(b.message.length).toBeGreaterThan(10);
      }
    }
    const health = await srv.fetch('/health', { token: '' });
    expect(health.status).toBe(200);
  });

  it("refuses a role below the route's with 403 and lets the right role through", async () => {
    const viewer = await srv.key('viewer');
    const operator = await srv.key('operator');
    const denied = await srv.fetch('/api/v1/tasks', {
      method: 'POST',
      token: viewer,
      json: { agent: 'sh', prompt: 'true' },
    });
    expect(denied.status).toBe(403);
    expect((await body<{ code: string; message: string }>(denied)).message).toMatch(/operator role/);
    expect((await srv.fetch('/api/v1/tasks', { token: viewer })).status).toBe(200);
    expect((await srv.fetch('/api/v1/keys', { token: operator })).status).toBe(403);
    const made = await srv.fetch('/api/v1/tasks', {
      method: 'POST',
      token: operator,
      json: { agent: 'sh', prompt: 'true' },
    });
    expect(made.status).toBe(201);
  });

  it('makes keys through the API, shows the token once, and refuses a revoked key at once', async () => {
    const res = await srv.fetch('/api/v1/keys', { method: 'POST', json: { role: 'viewer', name: 'dash' } });
    expect(res.status).toBe(201);
    const k = await body<{ id: string; token: string; role: string }>(res);
    expect(k.token).toMatch(/^smk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect((await srv.fetch('/api/v1/tasks', { token: k.token })).status).toBe(200);
    const list = await body<{ keys: Record<string, unknown>[] }>(await srv.fetch('/api/v1/keys'));
    expect(list.keys.map((x) => x.id)).toContain(k.id);
    expect(JSON.stringify(list)).not.toContain(k.token.split('_')[2]);
    expect((await srv.fetch(`/api/v1/keys/${k.id}/revoke`, { method: 'POST' })).status).toBe(200);
    const after = await srv.fetch('/api/v1/tasks', { token: k.token });
    expect(after.status).toBe(401);
    expect((await body<{ message: string }>(after)).message).toMatch(/revoked/);
  });
});

describe('tasks', () => {
  it('creates a task that runs, and shows its attempts, events and output', async () => {
    const res = await srv.fetch('/api/v1/tasks', {
      method: 'POST',
      json: { agent: 'sh', prompt: 'echo hello-api', key: 'greet' },
    });
    expect(res.status).toBe(201);
    const t = await body<TaskJson>(res);
    expect(t.key).toBe('greet');
    expect(['queued', 'running', 'completed']).toContain(t.state);
    const done = await finished(t.id);
    expect(done.state).toBe('completed');
    const detail = await body<{
      output: string;
      attempts_detail: { state: string }[];
      events: { type: string }[];
      verdicts: unknown[];
    }>(await srv.fetch(`/api/v1/tasks/${t.id}`));
    expect(detail.output).toContain('hello-api');
    expect(detail.attempts_detail.map((a) => a.state)).toEqual(['succeeded']);
    expect(detail.events.some((e) => e.type === 'state')).toBe(true);
    expect(detail.verdicts).toEqual([]);
  });

  it('routes by capabilities and rejects a task no agent can take, naming what is missing', async () => {
    const ok = await srv.fetch('/api/v1/tasks', {
      method: 'POST',
      json: { capabilities: ['shell'], prompt: 'true' },
    });
    expect(ok.status).toBe(201);
    const bad = await srv.fetch('/api/v1/tasks', {
      method: 'POST',
      json: { capabilities: ['gpu'], prompt: 'true' },
    });
    expect(bad.status).toBe(422);
    expect((await body<{ message: string }>(bad)).message).toMatch(/gpu/);
    const noAgent = await srv.fetch('/api/v1/tasks', {
      method: 'POST',
      json: { agent: 'nobody', prompt: 'true' },
    });
    expect([404, 422]).toContain(noAgent.status);
    expect((await body<{ message: string }>(noAgent)).message).toMatch(/nobody/);
  });

  it('pages through tasks with a cursor, each task exactly once, newest first', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const t = await body<TaskJson>(
        await srv.fetch('/api/v1/tasks', {
          method: 'POST',
          json: { agent: 'sh', prompt: 'true', key: `k${i}` },
        }),
      );
      ids.push(t.id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = cursor ? `&cursor=${cursor}` : '';
      const page: { tasks: TaskJson[]; next_cursor: string | null } = await body(
        await srv.fetch(`/api/v1/tasks?limit=3${q}`),
      );
      seen.push(...page.tasks.map((t) => t.id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());
    const bad = await srv.fetch('/api/v1/tasks?cursor=garbage');
    expect(bad.status).toBe(400);
    expect((await body<{ code: string }>(bad)).code).toBe('INVALID_CURSOR');
  });

  it('filters by state and agent', async () => {
    const t = await body<TaskJson>(
      await srv.fetch('/api/v1/tasks', { method: 'POST', json: { agent: 'sh', prompt: 'exit 3' } }),
    );
    await finished(t.id);
    const failed = await body<{ tasks: TaskJson[] }>(await srv.fetch('/api/v1/tasks?state=failed&agent=sh'));
    expect(failed.tasks.map((x) => x.id)).toEqual([t.id]);
    const none = await body<{ tasks: TaskJson[] }>(await srv.fetch('/api/v1/tasks?state=completed'));
    expect(none.tasks).toEqual([]);
    const bad = await srv.fetch('/api/v1/tasks?state=sleeping');
    expect(bad.status).toBe(400);
    expect((await body<{ message: string }>(bad)).message).toMatch(/sleeping is not a task state/);
  });

  it('cancels a running task (its process ends), retries it, and refuses what the state machine forbids with 409', async () => {
    const t = await body<TaskJson>(
      await srv.fetch('/api/v1/tasks', { method: 'POST', json: { agent: 'sh', prompt: 'sleep 30' } }),
    );
    await waitFor(
      'running',
      async () => (await body<TaskJson>(await srv.fetch(`/api/v1/tasks/${t.id}`))).state === 'running',
    );
    const c = await srv.fetch(`/api/v1/tasks/${t.id}/cancel`, {
      method: 'POST',
      json: { reason: 'not needed' },
    });
    expect(c.status).toBe(200);
    const after = await body<TaskJson & { before: string }>(c);
    expect(after.state).toBe('canceled');
    expect(after.before).toBe('running');
    expect(box.processes()).toEqual([]);
    const again = await srv.fetch(`/api/v1/tasks/${t.id}/cancel`, { method: 'POST' });
    expect(again.status).toBe(409);
    expect((await body<{ code: string; message: string }>(again)).message).toMatch(/nothing to cancel/);
    const approve = await srv.fetch(`/api/v1/tasks/${t.id}/approve`, { method: 'POST' });
    expect(approve.status).toBe(409);
    const retry = await srv.fetch(`/api/v1/tasks/${t.id}/retry`, { method: 'POST' });
    expect(retry.status).toBe(200);
    expect(['queued', 'running']).toContain((await body<TaskJson>(retry)).state);
    await srv.fetch(`/api/v1/tasks/${t.id}/cancel`, { method: 'POST' });
  });

  it('records guidance that the next attempt reads', async () => {
    const t = await body<TaskJson>(
      await srv.fetch('/api/v1/tasks', {
        method: 'POST',
        json: { agent: 'sh', prompt: 'cat; exit 1', retries: 1 },
      }),
    );
    const g = await srv.fetch(`/api/v1/tasks/${t.id}/guide`, {
      method: 'POST',
      json: { text: 'use the other file' },
    });
    expect(g.status).toBe(200);
    await finished(t.id);
    const d = await body<{ events: { type: string; data: { text?: string } }[] }>(
      await srv.fetch(`/api/v1/tasks/${t.id}`),
    );
    expect(d.events.find((e) => e.type === 'guidance')?.data.text).toBe('use the other file');
    const missing = await srv.fetch(`/api/v1/tasks/${t.id}/guide`, { method: 'POST', json: {} });
    expect(missing.status).toBe(400);
  });

  it('answers 404 with code and message for an unknown task', async () => {
    const res = await srv.fetch('/api/v1/tasks/t_nope');
    expect(res.status).toBe(404);
    expect(await body(res)).toMatchObject({ code: 'TASK_NOT_FOUND' });
  });
});

describe('workflows', () => {
  it('runs a workflow posted as YAML and reports its status with its tasks', async () => {
    const yaml = [
      'name: pair',
      'tasks:',
      '  a:',
      '    agent: sh',
      '    prompt: echo one',
      '  b:',
      '    needs: [a]',
      '    agent: sh',
      '    prompt: echo two',
      '',
    ].join('\n');
    const res = await srv.fetch('/api/v1/workflows', {
      method: 'POST',
      body: yaml,
      headers: { 'content-type': 'application/yaml' },
    });
    expect(res.status).toBe(201);
    const made = await body<{ workflow: { id: string; state: string }; tasks: TaskJson[] }>(res);
    expect(made.tasks.map((t) => t.key)).toEqual(['a', 'b']);
    const done = await waitFor('workflow to end', async () => {
      const w = await body<{ workflow: { state: string }; counts: Record<string, number> }>(
        await srv.fetch(`/api/v1/workflows/${made.workflow.id}`),
      );
      return w.workflow.state !== 'running' ? w : undefined;
    });
    expect(done.workflow.state).toBe('completed');
    expect(done.counts).toEqual({ completed: 2 });
  });

  it('takes a workflow as JSON and rejects a cycle with 422 naming the tasks', async () => {
    const ok = await srv.fetch('/api/v1/workflows', {
      method: 'POST',
      json: { workflow: { name: 'j', tasks: { only: { agent: 'sh', prompt: 'true' } } } },
    });
    expect(ok.status).toBe(201);
    const cyc = await srv.fetch('/api/v1/workflows', {
      method: 'POST',
      json: {
        workflow: {
          name: 'c',
          tasks: {
            x: { agent: 'sh', prompt: 'true', needs: ['y'] },
            y: { agent: 'sh', prompt: 'true', needs: ['x'] },
          },
        },
      },
    });
    expect(cyc.status).toBe(422);
    const b = await body<{ code: string; message: string }>(cyc);
    expect(b.code).toBe('WORKFLOW_INVALID');
    expect(b.message).toMatch(/x/);
    expect(b.message).toMatch(/cycle/i);
    const bad = await srv.fetch('/api/v1/workflows', {
      method: 'POST',
      body: 'tasks: [',
      headers: { 'content-type': 'text/yaml' },
    });
    expect(bad.status).toBe(400);
    expect((await body<{ message: string }>(bad)).message).toMatch(/line/);
  });
});

describe('bad input', () => {
  it('rejects unknown fields, wrong types, oversized bodies and bad JSON with JSON errors', async () => {
    const unknown = await srv.fetch('/api/v1/tasks', {
      method: 'POST',
      json: { agent: 'sh', prompt: 'x', colour: 'red' },
    });
    expect(unknown.status).toBe(400);
    expect((await body<{ code: string; message: string }>(unknown)).message).toMatch(/colour/);
    const type = await srv.fetch('/api/v1/tasks', {
      method: 'POST',
      json: { agent: 'sh', prompt: 'x', priority: 'high' },
    });
    expect(type.status).toBe(400);
    expect((await body<{ message: string }>(type)).message).toMatch(/priority/);
    const big = await srv.fetch('/api/v1/tasks', {
      method: 'POST',
      json: { agent: 'sh', prompt: 'x'.repeat(2 * 1024 * 1024) },
    });
    expect(big.status).toBe(413);
    expect(await body(big)).toMatchObject({ code: 'BODY_TOO_LARGE' });
    const junk = await srv.fetch('/api/v1/tasks', {
      method: 'POST',
      body: '{"agent":',
      headers: { 'content-type': 'application/json' },
    });
    expect(junk.status).toBe(400);
    expect(await body(junk)).toMatchObject({ code: 'INVALID_BODY' });
    const route = await srv.fetch('/api/v1/nothing-here');
    expect(route.status).toBe(404);
    expect(await body(route)).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('describes every route in an OpenAPI 3.1 document and serves a docs page', async () => {
    const doc = await body<{ openapi: string; paths: Record<string, Record<string, unknown>> }>(
      await srv.fetch('/api/v1/openapi.json'),
    );
    expect(doc.openapi).toBe('3.1.0');
    for (const p of [
      '/api/v1/tasks',
      '/api/v1/tasks/{id}',
      '/api/v1/tasks/{id}/cancel',
      '/api/v1/workflows',
      '/api/v1/keys',
      '/api/v1/audit',
    ])
      expect(Object.keys(doc.paths)).toContain(p);
    expect(Object.keys(doc.paths['/api/v1/tasks']!)).toEqual(expect.arrayContaining(['get', 'post']));
    const page = await srv.fetch('/api/v1/docs/');
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/swagger/i);
  });
});

describe('audit and agents', () => {
  it('pages the audit trail and verifies it', async () => {
    const t = await body<TaskJson>(
      await srv.fetch('/api/v1/tasks', { method: 'POST', json: { agent: 'sh', prompt: 'true' } }),
    );
    await finished(t.id);
    const page = await body<{ records: { seq: number; action: string }[]; next_from: number | null }>(
      await srv.fetch('/api/v1/audit?limit=2'),
    );
    expect(page.records.map((r) => r.seq)).toEqual([1, 2]);
    expect(page.next_from).toBe(3);
    const v = await body<{ ok: boolean; checked: number }>(
      await srv.fetch('/api/v1/audit/verify', { method: 'POST' }),
    );
    expect(v.ok).toBe(true);
    expect(v.checked).toBeGreaterThan(3);
  });

  it('lists agents with their instances', async () => {
    const a = await body<{ agents: { name: string; runtime: string; instances: unknown[] }[] }>(
      await srv.fetch('/api/v1/agents'),
    );
    expect(a.agents.map((x) => x.name)).toEqual(['sh']);
    const one = await srv.fetch('/api/v1/agents/sh');
    expect(one.status).toBe(200);
    expect((await srv.fetch('/api/v1/agents/ghost')).status).toBe(404);
  });
});

describe('rate limits', () => {
  it('answers 429 with Retry-After past the per-key limit, and other keys go on', async () => {
    await srv.close();
    srv = await openServer(box, AGENTS + 'server:\n  rate_limit: 5\n  rate_window: 1m\n');
    for (let i = 0; i < 5; i++) expect((await srv.fetch('/api/v1/tasks')).status).toBe(200);
    const limited = await srv.fetch('/api/v1/tasks');
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await body(limited)).toMatchObject({ code: 'RATE_LIMITED' });
    const other = await srv.key('viewer');
    expect((await srv.fetch('/api/v1/tasks', { token: other })).status).toBe(200);
  });
});

describe('smith serve', () => {
  it('prints an admin key once on the first start, serves, takes CLI-made keys and revocations at once, and stops on SIGTERM', async () => {
    await srv.close();
    srv = undefined as unknown as TestServer;
    const b2 = new Sandbox('smith-serve-');
    try {
      b2.write('smith.yaml', AGENTS);
      const s = await startServe(b2);
      const health = await fetch(`${s.url}/health`);
      expect(health.status).toBe(200);
      const made = await fetch(`${s.url}/api/v1/tasks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ agent: 'sh', prompt: 'echo served' }),
      });
      expect(made.status).toBe(201);
      // a key made by the CLI in another process works on the running server
      const k = await b2.json<{ token: string; id: string }>(['keys', 'create', '--role', 'viewer']);
      expect(k.r.code).toBe(0);
      const get = (token: string): Promise<Response> =>
        fetch(`${s.url}/api/v1/tasks`, { headers: { authorization: `Bearer ${token}` } });
      expect((await get(k.value.token)).status).toBe(200);
      const rev = await b2.run(['keys', 'revoke', k.value.id]);
      expect(rev.code).toBe(0);
      await waitFor(
        'the revoked key to be refused',
        async () => (await get(k.value.token)).status === 401,
        5000,
      );
      const listed = await b2.json<{ id: string; status: string }[]>(['keys', 'list']);
      expect(listed.value.find((x) => x.id === k.value.id)?.status).toBe('revoked');
      expect(await s.stop()).toBe(0);
      // a second start makes no new key
      const again = await startServe(b2, { token: s.token });
      expect(again.proc.out.stderr).not.toMatch(/smk_/);
      const first = await fetch(`${again.url}/api/v1/tasks`, {
        headers: { authorization: `Bearer ${s.token}` },
      });
      expect(first.status).toBe(200);
      expect(await again.stop()).toBe(0);
    } finally {
      await b2.cleanup();
    }
  });
});

describe('task detail freshness', () => {
  it('shows every change of a task: state changes through the API and guidance written by another process', async () => {
    const t = await body<TaskJson>(
      await srv.fetch('/api/v1/tasks', { method: 'POST', json: { agent: 'sh', prompt: 'exit 4' } }),
    );
    await finished(t.id);
    const read = async (): Promise<{ state: string; events: { type: string; data: { text?: string } }[] }> =>
      body(await srv.fetch(`/api/v1/tasks/${t.id}`));
    const first = await read();
    expect(first.state).toBe('failed');
    expect(await read()).toEqual(first);
    // another process (the CLI) records guidance in the same home
    const g = await box.run(['guide', t.id, 'try exit 0']);
    expect(g.code, g.stderr).toBe(0);
    const guided = await read();
    expect(guided.events.find((e) => e.type === 'guidance')?.data.text).toBe('try exit 0');
    // a change through the API shows at once
    expect((await srv.fetch(`/api/v1/tasks/${t.id}/retry`, { method: 'POST' })).status).toBe(200);
    const retried = await read();
    expect(retried.state).not.toBe('failed');
    await finished(t.id);
    expect((await read()).state).toBe('failed');
  });
});
