/**
 * SLOs, burn-rate alerts and webhooks through the real server: a real home and engine running
 * real agent processes, real HTTP on loopback, real webhook receivers (HTTP servers on loopback),
 * and the real `smith` CLI beside the server.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyWebhookSignature } from '../src/observability/webhooks.js';
import { lastJson, Sandbox, shAgent, waitFor } from './fixtures/smith-cli.js';
import { openServer, startServe, type TestServer } from './fixtures/smith-server.js';

/** One request a receiver got. */
interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}

/** A webhook receiver on loopback: records every request and answers what `answer` says. */
interface Receiver {
  url: string;
  got: Received[];
  close(): Promise<void>;
}

/**
 * @param answer - the status for the last request of `got` (every request so far); null never answers
 */
async function receiver(answer: (got: Received[]) => number | null = () => 200): Promise<Receiver> {
  const got: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), status: 0 };
      got.push(r);
      const status = answer(got);
      r.status = status ?? 0;
      if (status !== null) res.writeHead(status, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    got,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Payload {
  id: string;
  event: string;
  time: string;
  data: Record<string, unknown>;
}

interface AlertJson {
  id: string;
  slo: string;
  state: string;
  severity: string;
  summary: string;
  acked_by: string | null;
  resolved_at: string | null;
}

const payloads = (r: Receiver): Payload[] => r.got.map((g) => JSON.parse(g.body) as Payload);

// the tests poll the API often; the rate limit is not what they are about
const AGENTS = ['agents:', ...shAgent('sh', ['shell'], 4), 'server:', '  rate_limit: 1000000'].join('\n');

let box: Sandbox;
let srv: TestServer | undefined;
const receivers: Receiver[] = [];

beforeEach(() => {
  box = new Sandbox('smith-alerts-');
});
afterEach(async () => {
  await srv?.close();
  srv = undefined;
  for (const r of receivers.splice(0)) await r.close();
  await box.cleanup();
});

async function body<T>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

async function submit(s: TestServer, prompt: string): Promise<string> {
  const res = await s.fetch('/api/v1/tasks', { method: 'POST', json: { agent: 'sh', prompt } });
  expect(res.status).toBe(201);
  return (await body<{ id: string }>(res)).id;
}

async function finished(s: TestServer, id: string): Promise<{ id: string; state: string }> {
  return waitFor(
    `task ${id} to end`,
    async () => {
      const t = await body<{ id: string; state: string }>(await s.fetch(`/api/v1/tasks/${id}`));
      return ['completed', 'failed', 'canceled', 'rejected'].includes(t.state) ? t : undefined;
    },
    30_000,
    25,
  );
}

/** Keep tasks with `prompt` running, four at a time (the agent's concurrency), until stopped. */
function keepRunning(s: TestServer, prompt: string): { stop(): Promise<void> } {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const ids = await Promise.all([1, 2, 3, 4].map(() => submit(s, prompt)));
      await Promise.all(ids.map((id) => finished(s, id)));
    }
  })();
  loop.catch(() => undefined);
  return {
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

async function alerts(s: TestServer, query = ''): Promise<AlertJson[]> {
  const res = await s.fetch(`/api/v1/alerts${query}`);
  expect(res.status).toBe(200);
  return (await body<{ alerts: AlertJson[] }>(res)).alerts;
}

describe('SLO alerts', () => {
  it('fires page and ticket alerts on failing tasks, signs the webhooks, takes acks from the API and the CLI, and resolves once tasks succeed', async () => {
    const secret = 'whsec-test-' + Math.random().toString(36).slice(2);
    const secretEnv = `SMITH_TEST_WEBHOOK_SECRET_${process.pid}`;
    process.env[secretEnv] = secret;
    const hook = await receiver();
    receivers.push(hook);
    // a 10-minute SLO: pages on 833 ms / 69 ms and 5 s / 417 ms, tickets on 60 s / 5 s
    srv = await openServer(
      box,
      [
        AGENTS,
        'slos:',
        '  - name: success',
        '    objective: 99%',
        '    sli: success_rate',
        '    window: 10m',
        'alerting:',
        '  evaluate_every: 200ms',
        'webhooks:',
        `  - url: ${hook.url}`,
        '    events: [alert.fired, alert.acknowledged, alert.resolved, task.completed]',
        `    secret_env: ${secretEnv}`,
      ].join('\n') + '\n',
    );
    const s = srv;
    const viewer = await s.key('viewer');
    const operator = await s.key('operator');

    // no task has ended: nothing fires, the whole budget is left
    const before = await body<{ slos: Record<string, unknown>[] }>(
      await s.fetch('/api/v1/slos', { token: viewer }),
    );
    expect(before.slos).toEqual([
      expect.objectContaining({
        name: 'success',
        objective: 0.99,
        sli: 'success_rate',
        window_ms: 600_000,
        sli_value: null,
        total_events: 0,
        error_budget_remaining: 1,
        open_alerts: [],
      }),
    ]);
    expect(await alerts(s)).toEqual([]);

    // failing tasks burn the budget
    const failing = keepRunning(s, 'exit 1');
    let page: AlertJson;
    let ticket: AlertJson;
    try {
      [page, ticket] = await waitFor('a page and a ticket alert to fire', async () => {
        const open = await alerts(s, '?state=firing');
        const p = open.find((a) => a.severity === 'page');
        const t = open.find((a) => a.severity === 'ticket');
        return p && t ? ([p, t] as const) : undefined;
      });
      expect(page).toMatchObject({ slo: 'success', state: 'firing', acked_by: null });
      expect(page.id).toMatch(/^AL-\d{4}$/);
      expect(page.summary).toMatch(
        /^SLO "success" \(99% success_rate over 10m\): error budget burning 100x over/,
      );

      // acknowledged through the API (operator); a viewer may not
      expect((await s.fetch(`/api/v1/alerts/${page.id}/ack`, { method: 'POST', token: viewer })).status).toBe(
        403,
      );
      const acked = await s.fetch(`/api/v1/alerts/${page.id}/ack`, { method: 'POST', token: operator });
      expect(acked.status).toBe(200);
      expect(await body<AlertJson>(acked)).toMatchObject({ id: page.id, state: 'acknowledged' });
      const missing = await s.fetch('/api/v1/alerts/AL-9999/ack', { method: 'POST', token: operator });
      expect(missing.status).toBe(404);
      expect(await body<{ code: string; message: string }>(missing)).toEqual({
        code: 'ALERT_NOT_FOUND',
        message: 'no alert has the id AL-9999; list alerts with GET /api/v1/alerts',
      });

      // and through the CLI beside the server
      const cli = await box.run(['alerts', 'ack', ticket.id, '--json']);
      expect(cli.code, cli.stderr).toBe(0);
      expect(lastJson<AlertJson>(cli)).toMatchObject({ id: ticket.id, state: 'acknowledged' });
      expect(lastJson<AlertJson>(cli).acked_by).toMatch(/^user:/);
      const listed = await box.run(['alerts', '--state', 'acknowledged', '--json']);
      expect(listed.code, listed.stderr).toBe(0);
      expect(lastJson<AlertJson[]>(listed).map((a) => a.id)).toContain(ticket.id);
      // the page's windows are under a second long: it may already have resolved, but keeps who took it
      const one = await body<AlertJson>(await s.fetch(`/api/v1/alerts/${page.id}`, { token: viewer }));
      expect(one.acked_by).toMatch(/^key:/);

      const slos = await body<{
        slos: { open_alerts: string[]; error_budget_remaining: number; windows: { firing: boolean }[] }[];
      }>(await s.fetch('/api/v1/slos', { token: viewer }));
      expect(slos.slos[0]!.open_alerts).toContain(ticket.id);
      expect(slos.slos[0]!.error_budget_remaining).toBeLessThan(0);
      expect(slos.slos[0]!.windows).toHaveLength(3);
    } finally {
      await failing.stop();
    }

    // successful tasks: the short windows recover and both alerts resolve
    const succeeding = keepRunning(s, 'true');
    try {
      await waitFor(
        'both alerts to resolve',
        async () => {
          const resolved = await alerts(s, '?state=resolved');
          return [page.id, ticket.id].every((id) => resolved.some((a) => a.id === id));
        },
        60_000,
      );
    } finally {
      await succeeding.stop();
    }
    const done = await body<AlertJson>(await s.fetch(`/api/v1/alerts/${page.id}`));
    expect(done).toMatchObject({ state: 'resolved', resolved_at: expect.any(String) });
    expect(done.acked_by).toMatch(/^key:/);

    // a resolved alert cannot be acknowledged, through the API or the CLI
    const late = await s.fetch(`/api/v1/alerts/${page.id}/ack`, { method: 'POST', token: operator });
    expect(late.status).toBe(409);
    expect((await body<{ code: string }>(late)).code).toBe('INVALID_TRANSITION');
    const lateCli = await box.run(['alerts', 'ack', ticket.id]);
    expect(lateCli.code).toBe(2);
    expect(lateCli.stderr).toMatch(
      new RegExp(`alert ${ticket.id} resolved at .*only a firing alert can be acknowledged`),
    );
    const bad = await box.run(['alerts', '--state', 'open']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--state open is not an alert state; use firing, acknowledged, resolved/);

    // the receiver got every step of both alerts, each signed, and the completed tasks
    const alertSteps = (id: string): string[] =>
      payloads(hook)
        .filter((p) => p.event.startsWith('alert.') && p.data.id === id)
        .map((p) => p.event);
    await waitFor('the webhook to get every alert step', () =>
      [page.id, ticket.id].every((id) => alertSteps(id).length === 3),
    );
    for (const id of [page.id, ticket.id])
      expect(alertSteps(id)).toEqual(['alert.fired', 'alert.acknowledged', 'alert.resolved']);
    for (const g of hook.got) {
      const p = JSON.parse(g.body) as Payload;
      expect(g.headers['content-type']).toBe('application/json');
      expect(g.headers['x-smith-event']).toBe(p.event);
      expect(g.headers['x-smith-delivery']).toBe(p.id);
      expect(p.id).toMatch(/^ev_[0-9A-Z]{26}$/);
      const ts = g.headers['x-smith-timestamp'] as string;
      expect(Math.abs(Number(ts) - Date.now() / 1000)).toBeLessThan(300);
      // what a receiver computes: HMAC-SHA256(secret, timestamp + "." + raw body), hex
      const mac = createHmac('sha256', secret).update(`${ts}.${g.body}`).digest('hex');
      expect(g.headers['x-smith-signature']).toBe(`sha256=${mac}`);
      expect(
        verifyWebhookSignature(secret, {
          body: g.body,
          timestamp: ts,
          signature: g.headers['x-smith-signature'],
        }),
      ).toBe(true);
      expect(
        verifyWebhookSignature('wrong', {
          body: g.body,
          timestamp: ts,
          signature: g.headers['x-smith-signature'],
        }),
      ).toBe(false);
      expect(
        verifyWebhookSignature(secret, {
          body: g.body.replace('"', ' "'),
          timestamp: ts,
          signature: g.headers['x-smith-signature'],
        }),
      ).toBe(false);
    }
    const fired = payloads(hook).find((p) => p.event === 'alert.fired' && p.data.id === page.id)!;
    expect(fired.data).toMatchObject({ id: page.id, state: 'firing', severity: 'page', slo: 'success' });
    const completed = payloads(hook).filter((p) => p.event === 'task.completed');
    expect(completed.length).toBeGreaterThan(0);
    expect(completed[0]!.data).toMatchObject({
      state: 'completed',
      agent: 'sh',
      id: expect.stringMatching(/^t_/),
    });
    // task.failed was not subscribed to
    expect(payloads(hook).some((p) => p.event === 'task.failed')).toBe(false);

    // the audit trail holds every step, with who took it
    const audit = await s.session.store.auditFor(`alert:${ticket.id}`);
    expect(audit.map((r) => [r.action, r.actor.replace(/:.*/, '')])).toEqual([
      ['alert.fired', 'alerting'],
      ['alert.acknowledged', 'user'],
      ['alert.resolved', 'alerting'],
    ]);
    delete process.env[secretEnv];
  }, 120_000);
});

describe('webhook delivery', () => {
  it('retries a receiver that answers 500 twice, and a receiver that never answers holds up neither tasks nor the API', async () => {
    // 500 to the first two tries of each event, then 200
    const flaky = await receiver((got) => {
      const id = got[got.length - 1]!.headers['x-smith-delivery'];
      return got.filter((g) => g.headers['x-smith-delivery'] === id).length <= 2 ? 500 : 200;
    });
    const silent = await receiver(() => null);
    receivers.push(flaky, silent);
    srv = await openServer(
      box,
      [
        AGENTS,
        'webhooks:',
        `  - url: ${flaky.url}`,
        '    events: [task.completed]',
        `  - url: ${silent.url}`,
        '    timeout: 30s',
      ].join('\n') + '\n',
    );
    const s = srv;
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await submit(s, `echo run-${i}`));
    for (const id of ids) expect((await finished(s, id)).state).toBe('completed');
    // the API answers while every delivery to the silent receiver is still waiting
    await waitFor('the silent receiver to get requests', () => silent.got.length >= 4);
    expect((await s.fetch('/api/v1/tasks?limit=5')).status).toBe(200);
    expect(silent.got.every((g) => g.status === 0)).toBe(true);

    // every completed task reaches the flaky receiver; the first one after two 500s
    await waitFor('the flaky receiver to get every task', () => {
      const ok = flaky.got
        .filter((g) => g.status === 200)
        .map((g) => (JSON.parse(g.body) as Payload).data.id);
      return ids.every((id) => ok.includes(id));
    });
    const first = flaky.got[0]!;
    for (const id of new Set(flaky.got.map((g) => g.headers['x-smith-delivery']))) {
      const tries = flaky.got.filter((g) => g.headers['x-smith-delivery'] === id);
      expect(tries.map((g) => g.status)).toEqual([500, 500, 200]);
      expect(new Set(tries.map((g) => g.body)).size).toBe(1);
    }
    // unsigned: no secret_env
    expect(first.headers['x-smith-signature']).toBeUndefined();
    expect(first.headers['x-smith-event']).toBe('task.completed');
  }, 120_000);

  it('refuses to start a server whose webhook secret_env is not set, naming it', async () => {
    box.write(
      'smith.yaml',
      [
        AGENTS,
        'webhooks:',
        '  - url: https://hooks.example.com/smith',
        '    secret_env: SMITH_TEST_UNSET_SECRET',
      ].join('\n') + '\n',
    );
    await expect(startServe(box)).rejects.toThrow(
      /secret_env names SMITH_TEST_UNSET_SECRET, which is not set; set it to the signing secret, or remove secret_env/,
    );
  }, 60_000);
});
