/**
 * The event stream (SSE) and the metrics of `smith serve`: task events with ids, reconnection with
 * Last-Event-ID (exactly what was missed, then live), filters, many clients, alerts from audit
 * records, the KPI stream, and the Prometheus metrics. Real home, real engine, real agent
 * processes, real HTTP on loopback.
 */
import { execFileSync } from 'node:child_process';
import { request, type IncomingMessage } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openServer, type TestServer } from './fixtures/smith-server.js';
import { Sandbox, shAgent, waitFor } from './fixtures/smith-cli.js';

/** `sh` with 4 instances; `loud` keeps up to 64 MiB of output (the default is 1 MiB). */
const AGENTS =
  [
    'agents:',
    ...shAgent('sh', ['shell'], 4),
    ...shAgent('loud', ['loud'], 1),
    '    output_limit: 67108864',
  ].join('\n') + '\n';

/** One SSE message as a client sees it. */
interface Ev {
  id: string | undefined;
  event: string;
  data: Record<string, unknown>;
}

interface TaskData {
  seq: number;
  task_id: string;
  workflow_id: string | null;
  type: string;
  time: string;
  data: { from?: string | null; to?: string };
}

/** A client of an event stream (node's http, parsing the stream as the WHATWG standard says). */
class SseClient {
  readonly events: Ev[] = [];
  /** The id a reconnecting EventSource would send (set by any `id:` line, with or without data). */
  lastId: string | undefined;
  ended = false;
  private buf = '';

  constructor(private readonly res: IncomingMessage) {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => this.feed(chunk));
    res.on('end', () => (this.ended = true));
    res.on('close', () => (this.ended = true));
    // a connection cut by the server ends the response with an error
    res.on('error', () => (this.ended = true));
  }

  /** Task events (data parsed). */
  tasks(): TaskData[] {
    return this.events.filter((e) => e.event === 'task').map((e) => e.data as unknown as TaskData);
  }

  /** Wait until `pred` holds for some event; @returns that event */
  async until(what: string, pred: (e: Ev) => boolean, timeoutMs = 30_000): Promise<Ev> {
    return waitFor(what, () => this.events.find(pred), timeoutMs, 20);
  }

  /** Stop reading (the server's buffer for this client grows). */
  pause(): void {
    this.res.pause();
  }

  resume(): void {
    this.res.resume();
  }

  close(): void {
    this.res.destroy();
  }

  private feed(chunk: string): void {
    this.buf += chunk;
    for (;;) {
      const end = this.buf.indexOf('\n\n');
      if (end === -1) return;
      const block = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      let id: string | undefined;
      let event = 'message';
      let data: string | undefined;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const at = line.indexOf(':');
        const field = at === -1 ? line : line.slice(0, at);
        const value = at === -1 ? '' : line.slice(at + 1).replace(/^ /, '');
        if (field === 'id') id = value;
        else if (field === 'event') event = value;
        else if (field === 'data') data = data === undefined ? value : `${data}\n${value}`;
      }
      if (id !== undefined) this.lastId = id;
      if (data !== undefined)
        this.events.push({ id: this.lastId, event, data: JSON.parse(data) as Record<string, unknown> });
    }
  }
}

let box: Sandbox;
let srv: TestServer;
const open: SseClient[] = [];

beforeEach(async () => {
  box = new Sandbox('smith-events-');
  srv = await openServer(box, AGENTS);
});
afterEach(async () => {
  for (const c of open.splice(0)) c.close();
  await srv?.close();
  await box.cleanup();
});

/** GET a stream; @returns the client when the answer is 200, else the status and JSON body */
async function stream(
  path: string,
  opts: { token?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; client?: SseClient; body?: { code: string; message: string } }> {
  const url = new URL(srv.url + path);
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(url, {
      headers: {
        ...(opts.token === '' ? {} : { authorization: `Bearer ${opts.token ?? srv.token}` }),
        accept: 'text/event-stream',
        ...opts.headers,
      },
    });
    req.on('response', resolve);
    req.on('error', reject);
    req.end();
  });
  if (res.statusCode !== 200) {
    let text = '';
    res.setEncoding('utf8');
    for await (const chunk of res) text += chunk as string;
    return { status: res.statusCode ?? 0, body: JSON.parse(text) as { code: string; message: string } };
  }
  expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
  const client = new SseClient(res);
  open.push(client);
  return { status: 200, client };
}

async function sse(path: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const r = await stream(path, { headers });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.client!;
}

async function submit(prompt: string, agent = 'sh'): Promise<{ id: string; workflow_id: string }> {
  const res = await srv.fetch('/api/v1/tasks', { method: 'POST', json: { agent, prompt } });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; workflow_id: string };
}

function completed(taskId: string) {
  return (e: Ev): boolean => {
    const d = e.data as unknown as TaskData;
    return e.event === 'task' && d.task_id === taskId && d.type === 'state' && d.data.to === 'completed';
  };
}

async function taskEnded(id: string): Promise<void> {
  await waitFor(`task ${id} to complete`, async () => {
    const t = (await (await srv.fetch(`/api/v1/tasks/${id}`)).json()) as { state: string };
    return t.state === 'completed';
  });
}

function taskSeq(id: string | undefined): number {
  return Number((id ?? '0.0').split('.')[0]);
}

describe('the event stream', () => {
  it("delivers a task's state changes with ids; a reconnect with the last id gets exactly the events it missed, then live ones", async () => {
    const a = await sse('/api/v1/events');
    const t1 = await submit('echo one');
    await a.until('task 1 to complete', completed(t1.id));
    const states = a
      .tasks()
      .filter((d) => d.task_id === t1.id && d.type === 'state')
      .map((d) => d.data.to);
    expect(states).toEqual(['queued', 'running', 'completed']);
    for (const e of a.events) expect(e.id).toMatch(/^\d+\.\d+$/);
    const seqs = a.tasks().map((d) => d.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
    // the id of a task event carries its seq
    for (const e of a.events.filter((x) => x.event === 'task'))
      expect(taskSeq(e.id)).toBe((e.data as unknown as TaskData).seq);
    const lastId = a.lastId!;
    a.close();

    // events happen while no client listens
    const t2 = await submit('echo two; echo more');
    await taskEnded(t2.id);
    const missed = await srv.session.store.eventsSince(taskSeq(lastId), 10_000);
    expect(missed.length).toBeGreaterThanOrEqual(3);

    const b = await sse('/api/v1/events', { 'last-event-id': lastId });
    await b.until('the replay of task 2', completed(t2.id));
    expect(b.tasks().map((d) => d.seq)).toEqual(missed.map((e) => e.seq));
    expect(b.tasks().some((d) => d.task_id === t1.id)).toBe(false);

    // then live events follow the replay on the same stream, with no gap and no duplicate
    const t3 = await submit('echo three');
    await b.until('task 3 live', completed(t3.id));
    const all = await srv.session.store.eventsSince(taskSeq(lastId), 10_000);
    expect(b.tasks().map((d) => d.seq)).toEqual(all.map((e) => e.seq));
    expect(
      b
        .tasks()
        .filter((d) => d.task_id === t3.id)
        .map((d) => d.data.to ?? d.type),
    ).toContain('running');
  });

  it('replays thousands of missed events page by page while new ones keep coming, with no gap and no duplicate', async () => {
    const a = await sse('/api/v1/events?types=state');
    const t0 = await submit('true');
    await a.until('task 0', completed(t0.id));
    const lastId = a.lastId!;
    a.close();
    // 2 x 1,000 log events (the per-attempt limit) while nobody listens
    const many = 'i=0; while [ $i -lt 1500 ]; do echo "line $i"; i=$((i+1)); done';
    const [m1, m2] = await Promise.all([submit(many), submit(many)]);
    await taskEnded(m1.id);
    await taskEnded(m2.id);
    // a task that keeps logging while the reconnected client is replayed
    const live = await submit('i=0; while [ $i -lt 200 ]; do echo "live $i"; sleep 0.005; i=$((i+1)); done');
    const b = await sse('/api/v1/events', { 'last-event-id': lastId });
    await b.until('the live task', completed(live.id), 60_000);
    const all = await srv.session.store.eventsSince(taskSeq(lastId), 100_000);
    expect(all.length).toBeGreaterThan(2000);
    expect(b.tasks().map((d) => d.seq)).toEqual(all.map((e) => e.seq));
  });

  it('disconnects a client that stops reading; it reconnects with its last id and loses nothing', async () => {
    const lastSeq = await srv.session.store.lastEventSeq();
    const stalled = await sse('/api/v1/events');
    stalled.pause();
    // 200 log lines of 64 KiB each: far more than the server keeps for one client
    const big = await submit(
      'i=0; while [ $i -lt 200 ]; do head -c 70000 /dev/zero | tr "\\0" x; echo; i=$((i+1)); done',
      'loud',
    );
    await taskEnded(big.id);
    const all = await srv.session.store.eventsSince(lastSeq, 100_000);
    stalled.resume();
    await waitFor('the server to cut the stalled client', () => stalled.ended, 30_000);
    const got = stalled.tasks().map((d) => d.seq);
    expect(got.length).toBeLessThan(all.length);
    const again = await sse('/api/v1/events', { 'last-event-id': stalled.lastId ?? `${lastSeq}.0` });
    await again.until('the rest', completed(big.id), 60_000);
    expect([...got, ...again.tasks().map((d) => d.seq)]).toEqual(all.map((e) => e.seq));
  });

  it('takes the id from ?last_event_id= too, and answers 400 with a JSON error for a bad one', async () => {
    const a = await sse('/api/v1/events');
    const t1 = await submit('echo one');
    await a.until('task 1', completed(t1.id));
    const id = a.events.find((e) => (e.data as unknown as TaskData).data?.to === 'queued')!.id!;
    const b = await sse(`/api/v1/events?last_event_id=${encodeURIComponent(id)}`);
    await b.until('the replay', completed(t1.id));
    expect(b.tasks()[0]!.seq).toBe(taskSeq(id) + 1);

    for (const bad of ['abc', '1', '1.2.3', '-1.0', '1.x', ' ', '99999999.0', '0.99999999']) {
      for (const how of ['header', 'query'] as const) {
        const r =
          how === 'header'
            ? await stream('/api/v1/events', { headers: { 'last-event-id': bad } })
            : await stream(`/api/v1/events?last_event_id=${encodeURIComponent(bad)}`);
        expect(r.status, `${how} ${bad}`).toBe(400);
        expect(r.body!.code).toBe('INVALID_LAST_EVENT_ID');
        expect(r.body!.message).toMatch(/Last-Event-ID|last_event_id/);
      }
    }
    for (const q of ['types=states', 'events=tasks', 'colour=red', 'types=']) {
      const r = await stream(`/api/v1/events?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.body!.code).toBe('INVALID_REQUEST');
    }
    const anon = await stream('/api/v1/events', { token: '' });
    expect(anon.status).toBe(401);
    expect(anon.body!.code).toBe('UNAUTHENTICATED');
  });

  it('filters by event name, task event type, task and workflow, live and on replay', async () => {
    const all = await sse('/api/v1/events');
    const statesLive = await sse('/api/v1/events?types=state');
    const agentsLive = await sse('/api/v1/events?events=agent');
    const t1 = await submit('echo a');
    const t2 = await submit('echo b');
    await all.until('task 1', completed(t1.id));
    await all.until('task 2', completed(t2.id));
    await statesLive.until('task 2 on the state stream', completed(t2.id));
    await agentsLive.until('an instance to go busy', (e) => e.data.state === 'busy');

    expect(statesLive.tasks().length).toBeGreaterThanOrEqual(6);
    expect(statesLive.events.every((e) => e.event === 'task' && e.data.type === 'state')).toBe(true);
    expect(agentsLive.events.every((e) => e.event === 'agent' && e.data.agent === 'sh')).toBe(true);
    expect(agentsLive.events.map((e) => e.data.state)).toContain('idle');

    // replayed from the start of the home, narrowed by the filters
    const byTask = await sse(`/api/v1/events?last_event_id=0.0&task=${t1.id}`);
    const byWorkflow = await sse(`/api/v1/events?last_event_id=0.0&workflow=${t2.workflow_id}&types=state`);
    await byTask.until('task 1 replayed', completed(t1.id));
    await byWorkflow.until('task 2 replayed', completed(t2.id));
    const t1Events = await srv.session.store.getEvents(t1.id);
    expect(byTask.tasks().map((d) => d.seq)).toEqual(t1Events.map((e) => e.seq));
    expect(byWorkflow.tasks().map((d) => d.data.to)).toEqual(['queued', 'running', 'completed']);
    expect(byWorkflow.tasks().every((d) => d.task_id === t2.id)).toBe(true);
  });

  it('sends the same events with the same ids to many concurrent clients', async () => {
    const clients = await Promise.all(Array.from({ length: 40 }, () => sse('/api/v1/events')));
    const tasks = await Promise.all([submit('echo x'), submit('echo y'), submit('echo z')]);
    for (const c of clients) for (const t of tasks) await c.until(`task ${t.id}`, completed(t.id));
    const first = clients[0]!;
    const upto = (c: SseClient): Ev[] => {
      const last = Math.max(...tasks.map((t) => c.events.findIndex(completed(t.id))));
      return c.events.slice(0, last + 1).filter((e) => e.event === 'task');
    };
    const reference = upto(first);
    expect(reference.length).toBeGreaterThanOrEqual(9);
    for (const c of clients) expect(upto(c)).toEqual(reference);
  });

  it('carries alert records of the audit trail, and no stream is left open once clients leave', async () => {
    const alerts = await sse('/api/v1/events?events=alert');
    const everything = await sse('/api/v1/events');
    const alert = {
      id: 'al_1',
      slo: 'success',
      state: 'firing',
      severity: 'page',
      summary: 'too many tasks fail',
    };
    const { audit } = await srv.session.store.commit([
      { op: 'audit', actor: 'slo', action: 'alert.fired', subject: 'alert:al_1', data: alert },
      { op: 'audit', actor: 'test', action: 'key.created', subject: 'k_1', data: {} },
    ]);
    const got = await alerts.until('the alert', (e) => e.event === 'alert');
    expect(got.data).toMatchObject({
      action: 'alert.fired',
      alert_id: 'al_1',
      alert,
      audit_seq: audit[0]!.seq,
    });
    expect(got.id!.split('.')[1]).toBe(String(audit[0]!.seq));
    await everything.until('the alert', (e) => e.event === 'alert');
    // records that are not alerts or agents' are not sent
    expect(alerts.events).toHaveLength(1);
    expect(everything.events.filter((e) => e.event === 'alert')).toHaveLength(1);

    const metricsText = async (): Promise<string> => (await srv.fetch('/metrics')).text();
    expect(await metricsText()).toMatch(/^smith_sse_clients\{stream="events"\} 2$/m);
    alerts.close();
    everything.close();
    await waitFor('the streams to close', async () =>
      /^smith_sse_clients\{stream="events"\}/m.test(await metricsText()) ? undefined : true,
    );
    // streams are not API requests: they stay out of the latency histogram
    expect(await metricsText()).not.toContain('route="/api/v1/events"');
  });

  it('ends every open stream when the server closes', async () => {
    const a = await sse('/api/v1/events');
    const k = await sse('/api/v1/metrics/stream');
    await srv.close();
    await waitFor('the streams to end', () => a.ended && k.ended);
    srv = undefined as unknown as TestServer;
  });
});

describe('metrics', () => {
  it('streams a KPI snapshot with tasks by state, success rate, latency and active agents, every second', async () => {
    const t = await submit('echo kpi');
    await taskEnded(t.id);
    const k = await sse('/api/v1/metrics/stream');
    await waitFor('three snapshots', () => k.events.length >= 3);
    const snaps = k.events.map((e) => e.data);
    expect(k.events.every((e) => e.event === 'kpi')).toBe(true);
    const times = snaps.map((s) => Date.parse(s.time as string));
    expect(times).toEqual([...times].sort((x, y) => x - y));
    const last = snaps[snaps.length - 1]!;
    expect(last).toMatchObject({
      queue_depth: 0,
      window_seconds: 300,
      ended: { completed: 1, failed: 0, rejected: 0, canceled: 0 },
      success_rate: 1,
      active_agents: 0,
    });
    expect(last.tasks).toMatchObject({ completed: 1, queued: 0, running: 0, failed: 0 });
    expect(Object.keys(last.tasks as object)).toHaveLength(10);
    expect(last.instances).toMatchObject({ idle: 5, busy: 0 });
    expect(last.latency_avg_ms).toBeTypeOf('number');
    expect(last.latency_p95_ms).toBeGreaterThanOrEqual(last.latency_avg_ms as number);

    // a running task makes an agent active
    const slow = await submit('sleep 30');
    await waitFor('an active agent', () => k.events.some((e) => e.data.active_agents === 1));
    const busy = k.events.find((e) => e.data.active_agents === 1)!.data;
    expect(busy.tasks).toMatchObject({ running: 1 });
    expect(busy.instances).toMatchObject({ busy: 1, idle: 4 });
    await srv.fetch(`/api/v1/tasks/${slow.id}/cancel`, { method: 'POST', json: {} });
  });

  it('exposes Prometheus series named smith_* with sensible values after tasks ran; 401 without a key', async () => {
    const watcher = await sse('/api/v1/events');
    const ok = await submit('echo fine');
    const bad = await submit('exit 3');
    await taskEnded(ok.id);
    await waitFor('the failed task', async () => {
      const t = (await (await srv.fetch(`/api/v1/tasks/${bad.id}`)).json()) as { state: string };
      return t.state === 'failed';
    });
    await watcher.until(
      'the failed task',
      (e) => e.data.task_id === bad.id && (e.data.data as { to?: string }).to === 'failed',
    );
    await srv.fetch('/api/v1/nowhere/at/all');
    const viewer = await srv.key('viewer');
    const res = await srv.fetch('/metrics', { token: viewer });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();

    const names = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(20);
    expect(names.filter((n) => !n.startsWith('smith_'))).toEqual([]);
    const lines = [
      'smith_tasks{state="completed"} 1',
      'smith_tasks{state="failed"} 1',
      'smith_tasks{state="queued"} 0',
      'smith_queue_depth 0',
      'smith_attempts_running 0',
      'smith_task_duration_seconds_count{state="completed"} 1',
      'smith_task_duration_seconds_count{state="failed"} 1',
      'smith_attempt_duration_seconds_count{agent="sh",state="succeeded"} 1',
      'smith_attempt_duration_seconds_count{agent="sh",state="failed"} 1',
      'smith_agent_instances{agent="sh",state="idle"} 4',
      'smith_agent_instances{agent="sh",state="busy"} 0',
      'smith_agent_restarts_total{agent="sh"} 0',
    ];
    for (const l of lines) expect(text.split('\n'), l).toContain(l);
    for (const t of [
      'smith_verdicts_total counter',
      'smith_api_request_duration_seconds histogram',
      'smith_process_cpu_user_seconds_total counter',
      'smith_nodejs_eventloop_lag_seconds gauge',
      'smith_sse_clients gauge',
      'smith_sse_delivery_lag_seconds histogram',
    ])
      expect(text).toContain(`# TYPE ${t}`);
    // requests are labelled with the route pattern, never the raw URL
    expect(text).toMatch(
      /^smith_api_request_duration_seconds_count\{method="GET",route="\/api\/v1\/tasks\/:id",status="200"\} [1-9]\d*$/m,
    );
    expect(text).toMatch(
      /^smith_api_request_duration_seconds_count\{method="POST",route="\/api\/v1\/tasks",status="201"\} 2$/m,
    );
    expect(text).toMatch(/route="\(unmatched\)",status="404"/);
    // every task event the watcher got was counted once it went out
    const delivered = Number(/^smith_sse_delivery_lag_seconds_count (\d+)$/m.exec(text)?.[1]);
    expect(delivered).toBeGreaterThanOrEqual(watcher.tasks().length);
    expect(text).toMatch(/^smith_sse_clients\{stream="events"\} 1$/m);
    expect(text).not.toContain(ok.id);
    expect(text).not.toContain('/nowhere');

    // the OpenAPI document describes the streams
    const doc = (await (await srv.fetch('/api/v1/openapi.json')).json()) as {
      paths: Record<string, { get?: { responses?: Record<string, { content?: Record<string, unknown> }> } }>;
    };
    for (const path of ['/api/v1/events', '/api/v1/metrics/stream'])
      expect(Object.keys(doc.paths[path]?.get?.responses?.['200']?.content ?? {}), path).toEqual([
        'text/event-stream',
      ]);
    expect(doc.paths['/metrics']?.get).toBeDefined();

    const anon = await srv.fetch('/metrics', { token: '' });
    expect(anon.status).toBe(401);
    expect(((await anon.json()) as { code: string }).code).toBe('UNAUTHENTICATED');
  });

  it('counts council verdicts by judge and decision', async () => {
    const repo = join(box.dir, 'repo');
    mkdirSync(repo);
    const git = (...args: string[]): string =>
      execFileSync('git', args, {
        cwd: repo,
        encoding: 'utf8',
        env: {
          ...process.env,
          GIT_AUTHOR_NAME: 'Test',
          GIT_AUTHOR_EMAIL: 'test@localhost',
          GIT_COMMITTER_NAME: 'Test',
          GIT_COMMITTER_EMAIL: 'test@localhost',
        },
      });
    git('init', '-q', '-b', 'main');
    writeFileSync(join(repo, 'README.md'), '# demo\n');
    git('add', '-A');
    git('commit', '-q', '-m', 'initial');
    const yaml = [
      'name: governed',
      'tasks:',
      '  change:',
      '    agent: sh',
      '    workspace: worktree',
      '    mode: dry-run',
      '    spec: {id: GREET-1, title: a greeting, risk_tier: 2, scope: {in: ["greeting.txt"]}}',
      '    prompt: echo hello > greeting.txt',
      '',
    ].join('\n');
    const res = await srv.fetch('/api/v1/workflows', { method: 'POST', json: { yaml, dir: repo } });
    expect(res.status, await res.clone().text()).toBe(201);
    const { tasks } = (await res.json()) as { tasks: { id: string }[] };
    await taskEnded(tasks[0]!.id);
    const text = await (await srv.fetch('/metrics')).text();
    expect(text).toMatch(/^smith_verdicts_total\{judge="council",decision="approve"\} 1$/m);
    for (const judge of ['constitution', 'verification', 'quality', 'integration'])
      expect(text).toMatch(new RegExp(`^smith_verdicts_total\\{judge="${judge}",decision="\\w+"\\} 1$`, 'm'));
  });
});
