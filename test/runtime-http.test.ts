/**
 * The `http` runtime against a real local worker (test/fixtures/http-worker.ts): the worker
 * protocol, retries with one idempotency key, the circuit breaker, timeout and cancel.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { isSmithError } from '../src/core/errors.js';
import type { AgentSpec } from '../src/core/types.js';
import { HttpRuntime } from '../src/runtime/http/index.js';
import type { AttemptContext, AttemptHandle, RuntimeEvent } from '../src/runtime/types.js';
import { startHttpWorker } from './fixtures/http-worker.js';
import type { HttpWorker, HttpWorkerMode } from './fixtures/http-worker.js';

let workdir: string;
let worker: HttpWorker | undefined;
const started: AttemptHandle[] = [];

beforeEach(() => {
  workdir = mkdtempSync(path.join(tmpdir(), 'smith-http-'));
});

afterEach(async () => {
  for (const handle of started.splice(0)) {
    handle.cancel('test cleanup');
    await handle.done;
  }
  await worker?.close();
  worker = undefined;
  rmSync(workdir, { recursive: true, force: true });
});

async function startWorker(mode: HttpWorkerMode): Promise<HttpWorker> {
  worker = await startHttpWorker(mode);
  return worker;
}

interface Run {
  handle: AttemptHandle;
  events: RuntimeEvent[];
  ctx: AttemptContext;
}

function run(
  runtime: HttpRuntime,
  url: string,
  options: {
    agent?: Partial<AgentSpec>;
    timeoutMs?: number | null;
    onEvent?: (event: RuntimeEvent) => void;
  } = {},
): Run {
  const events: RuntimeEvent[] = [];
  const ctx: AttemptContext = {
    input: { id: 't_1', key: 'review', workflow_id: null, prompt: 'review the diff', attempt: 1, needs: {} },
    attemptId: randomUUID(),
    epoch: 1,
    agent: { name: 'remote', runtime: 'http', url, capabilities: [], concurrency: 1, ...options.agent },
    instance: 0,
    workdir,
    env: {},
    timeoutMs: options.timeoutMs ?? null,
    onEvent: (event) => {
      events.push(event);
      options.onEvent?.(event);
    },
  };
  const handle = runtime.start(ctx);
  started.push(handle);
  return { handle, events, ctx };
}

describe('http runtime: the worker protocol', () => {
  it('posts the task and reports the JSON answer: output, events in order, usage, cost and session', async () => {
    const w = await startWorker({
      kind: 'json',
      answer: (task) => ({
        output: `reviewed: ${String(task.prompt)}`,
        events: [
          { type: 'progress', pct: 50, message: 'reading' },
          { type: 'text', text: 'looks fine' },
          { type: 'artifact', path: 'report.md' },
        ],
        usage: { input_tokens: 120, output_tokens: 30, model: 'worker-model' },
        cost_usd: 0.0042,
        session_id: 'sess-42',
      }),
    });
    const r = run(new HttpRuntime(), w.url, { agent: { headers: { Authorization: 'Bearer worker-token' } } });
    const outcome = await r.handle.done;

    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('reviewed: review the diff');
    expect(outcome.sessionId).toBe('sess-42');
    expect(outcome.costUsd).toBe(0.0042);
    expect(outcome.tokens).toEqual({ input: 120, output: 30, cacheRead: 0, cacheWrite: 0 });
    expect(r.handle.pid).toBeNull();
    expect(r.events).toEqual([
      { type: 'progress', pct: 50, message: 'reading' },
      { type: 'text', text: 'looks fine' },
      { type: 'artifact', path: 'report.md' },
      { type: 'session', id: 'sess-42' },
      {
        type: 'usage',
        model: 'worker-model',
        tokens: { input: 120, output: 30, cacheRead: 0, cacheWrite: 0 },
        costUsd: 0.0042,
      },
    ]);

    expect(w.requests).toHaveLength(1);
    const req = w.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.idempotencyKey).toBe(r.ctx.attemptId);
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers.authorization).toBe('Bearer worker-token');
    expect(req.body).toMatchObject({
      id: 't_1',
      key: 'review',
      prompt: 'review the diff',
      attempt_id: r.ctx.attemptId,
    });
  });

  it('reports NDJSON events as they arrive, in order, and takes the result line as the output', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const w = await startWorker({
      kind: 'ndjson',
      gate,
      lines: [
        { type: 'progress', pct: 10, message: 'cloning' },
        { type: 'text', text: 'found 2 issues' },
        { type: 'log', message: 'lint ok' },
        { type: 'usage', input_tokens: 10, output_tokens: 5, cost_usd: 0.001 },
        { type: 'result', output: 'two issues', session_id: 'stream-1' },
      ],
    });
    // The worker holds back its result line until the first events have been reported here: the
    // attempt can only end if the runtime reads the stream as it arrives.
    const r = run(new HttpRuntime(), w.url, {
      onEvent: (event) => {
        if (event.type === 'usage') open();
      },
    });
    const outcome = await r.handle.done;

    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('two issues');
    expect(outcome.sessionId).toBe('stream-1');
    expect(r.events).toEqual([
      { type: 'progress', pct: 10, message: 'cloning' },
      { type: 'text', text: 'found 2 issues' },
      { type: 'log', stream: 'stdout', line: 'lint ok' },
      { type: 'usage', tokens: { input: 10, output: 5, cacheRead: 0, cacheWrite: 0 }, costUsd: 0.001 },
      { type: 'session', id: 'stream-1' },
    ]);
  });

  it('fails with the worker\'s error when it answers status "failed"', async () => {
    const w = await startWorker({
      kind: 'json',
      answer: () => ({ status: 'failed', error: 'tests do not pass', output: '3 failures' }),
    });
    const outcome = await run(new HttpRuntime(), w.url).handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toBe('tests do not pass');
    expect(outcome.output).toBe('3 failures');
    expect(w.requests).toHaveLength(1);
  });

  it('fails with bad_response when an NDJSON stream ends without a result line', async () => {
    const w = await startWorker({ kind: 'ndjson', lines: [{ type: 'progress', pct: 5 }] });
    const r = run(new HttpRuntime(), w.url);
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('bad_response');
    expect(outcome.error).toContain('without a {"type":"result"} line');
    expect(r.events).toEqual([{ type: 'progress', pct: 5 }]);
  });
});

describe('http runtime: failures and retries', () => {
  it('retries 503 with the same Idempotency-Key and succeeds on the third try', async () => {
    const w = await startWorker({ kind: 'fail-then-succeed', failures: 2, status: 503 });
    const r = run(new HttpRuntime(), w.url);
    const outcome = await r.handle.done;

    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('done: review the diff');
    expect(w.requests).toHaveLength(3);
    expect(w.requests.map((q) => q.idempotencyKey)).toEqual([
      r.ctx.attemptId,
      r.ctx.attemptId,
      r.ctx.attemptId,
    ]);
    const retries = r.events.filter((e) => e.type === 'log' && e.line.includes('HTTP 503'));
    expect(retries).toHaveLength(2);
  });

  it('fails with reason provider after its retries when the worker always answers 500', async () => {
    const w = await startWorker({ kind: 'status', status: 500, body: '{"error":"database is down"}' });
    const outcome = await run(new HttpRuntime(), w.url).handle.done;

    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('provider');
    expect(outcome.error).toMatch(/^HTTP 500: \{"error":"database is down"\}/);
    expect(outcome.error).toContain(w.url);
    expect(outcome.error).toContain('4 tries');
    expect(w.requests).toHaveLength(4); // the first try and 3 retries
  });

  it('fails with reason auth, not retryable, on 401 without retrying', async () => {
    const w = await startWorker({ kind: 'status', status: 401 });
    const outcome = await run(new HttpRuntime(), w.url).handle.done;

    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('auth');
    expect(outcome.retryable).toBe(false);
    expect(outcome.error).toMatch(/^HTTP 401: /);
    expect(w.requests).toHaveLength(1);
  });

  it('fails with bad_response on a 2xx body that is not JSON, without retrying', async () => {
    const w = await startWorker({ kind: 'invalid-json' });
    const outcome = await run(new HttpRuntime(), w.url).handle.done;

    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('bad_response');
    expect(outcome.error).toContain('not JSON');
    expect(w.requests).toHaveLength(1);
  });

  it('fails with reason provider when no worker listens at the URL', async () => {
    const w = await startWorker({ kind: 'json' });
    const url = w.url;
    await w.close();
    worker = undefined;
    const outcome = await run(new HttpRuntime({ retries: 1 }), url).handle.done;

    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('provider');
    expect(outcome.error).toContain('cannot reach the worker');
    expect(outcome.error).toContain('ECONNREFUSED');
  });

  it('times out: the request is aborted and the worker sees its connection close', async () => {
    const w = await startWorker({ kind: 'hang' });
    const r = run(new HttpRuntime(), w.url, { timeoutMs: 300 });
    const outcome = await r.handle.done;

    expect(outcome.status).toBe('timed_out');
    expect(outcome.error).toContain('timed out after 300 ms');
    const closed = await w.waitForEarlyClose();
    expect(closed.idempotencyKey).toBe(r.ctx.attemptId);
  });

  it('cancels: the request is aborted and the worker sees its connection close', async () => {
    const w = await startWorker({ kind: 'hang' });
    const r = run(new HttpRuntime(), w.url);
    await w.waitForRequests(1);
    r.handle.cancel('canceled by the user');
    const outcome = await r.handle.done;

    expect(outcome.status).toBe('canceled');
    expect(outcome.error).toBe('canceled by the user');
    await w.waitForEarlyClose();
    // pause and resume are not supported for a remote worker: they do nothing
    r.handle.pause();
    r.handle.resume();
  });
});

describe('http runtime: circuit breaker', () => {
  it('opens after 5 consecutive failed attempts; the next fails at once with circuit_open', async () => {
    const w = await startWorker({ kind: 'status', status: 500 });
    const runtime = new HttpRuntime();
    for (let i = 0; i < 5; i++) {
      const outcome = await run(runtime, w.url).handle.done;
      expect(outcome.reason).toBe('provider');
    }
    const requestsBefore = w.requests.length;
    expect(requestsBefore).toBe(20); // 5 attempts of 4 tries

    const outcome = await run(runtime, w.url).handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('circuit_open');
    expect(outcome.error).toContain(
      `circuit breaker for ${w.url} is open after 5 consecutive failed attempts`,
    );
    expect(outcome.error).toContain('HTTP 500');
    expect(outcome.error).toMatch(/lets one trial attempt through at \S+ \(in \d+ s\)/);
    expect(w.requests.length).toBe(requestsBefore); // never reached the worker
  });

  it('lets a trial attempt through once half-open and closes again when it succeeds', async () => {
    const w = await startWorker({ kind: 'status', status: 503 });
    const runtime = new HttpRuntime({ retries: 0, halfOpenAfterMs: 200 });
    for (let i = 0; i < 5; i++) await run(runtime, w.url).handle.done;
    expect((await run(runtime, w.url).handle.done).reason).toBe('circuit_open');

    w.setMode({ kind: 'json' });
    await sleep(250);
    const trial = await run(runtime, w.url).handle.done;
    expect(trial.status).toBe('succeeded');
    expect((await run(runtime, w.url).handle.done).status).toBe('succeeded');
    expect(w.requests).toHaveLength(7);
  });

  it('does not count canceled attempts as failures', async () => {
    const w = await startWorker({ kind: 'hang' });
    const runtime = new HttpRuntime({ retries: 0 });
    for (let i = 0; i < 6; i++) {
      const r = run(runtime, w.url);
      await w.waitForRequests(i + 1);
      r.handle.cancel('stop');
      expect((await r.handle.done).status).toBe('canceled');
    }
    w.setMode({ kind: 'json' });
    expect((await run(runtime, w.url).handle.done).status).toBe('succeeded');
  });
});

describe('http runtime: check', () => {
  const agent = (url: string | undefined): AgentSpec => ({
    name: 'remote',
    runtime: 'http',
    capabilities: [],
    concurrency: 1,
    ...(url === undefined ? {} : { url }),
  });

  it('accepts an http(s) URL', async () => {
    await expect(new HttpRuntime().check(agent('https://workers.example/run'))).resolves.toBeUndefined();
  });

  it('rejects a missing or non-http URL, naming the agent and the field', async () => {
    for (const url of [undefined, 'ftp://example/run', 'not a url']) {
      const err: unknown = await new HttpRuntime().check(agent(url)).catch((e: unknown) => e);
      expect(isSmithError(err, 'CONFIG_INVALID')).toBe(true);
      expect((err as Error).message).toContain('agent "remote" (runtime http)');
      expect((err as Error).message).toContain('url');
    }
  });
});
