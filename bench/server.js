#!/usr/bin/env node
/**
 * Load on `smith serve` over loopback with autocannon (not a test: nothing here passes or fails).
 * Prints one JSON line per figure. Run: npm run build && node bench/server.js [--quick]
 *
 * - api_get_task: authenticated GET /api/v1/tasks/:id of a completed task, requests/s and latency
 *   p50/p99 (ms); api_get_task_running: the same for a running task (its detail is never cached,
 *   since its duration grows with the clock)
 * - api_post_task: POST /api/v1/tasks (each answer comes after the task is committed with
 *   synchronous=FULL), requests/s and latency p50/p99 (ms); the agent runs one task at a time and
 *   sleeps, so the tasks queue up and the figure is the API's and the commit's
 * - api_health: GET /health (no key, no store), the ceiling of this machine and this client
 *
 * The server runs as its own process (the real `smith serve`); autocannon runs in this one.
 */
import autocannon from 'autocannon';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from './serve.js';

const quick = process.argv.includes('--quick');
const seconds = quick ? 3 : 10;

function emit(obj) {
  process.stdout.write(JSON.stringify({ ...obj, node: process.version }) + '\n');
}

async function load(name, opts) {
  const r = await autocannon({ connections: 50, pipelining: 1, duration: seconds, ...opts });
  emit({
    bench: name,
    requests_per_s: Math.round(r.requests.average),
    latency_p50_ms: r.latency.p50,
    latency_p99_ms: r.latency.p99,
    requests: r.requests.total,
    non_2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    connections: opts.connections ?? 50,
    seconds,
  });
}

const dir = mkdtempSync(join(tmpdir(), 'smith-bench-serve-'));
const s = await serve(dir, [
  'agents:',
  '  done:',
  '    runtime: process',
  '    command: ["true"]',
  // one attempt at a time, and it sleeps: the posted tasks queue up, so the figures are the
  // API's and the durable commit's, not the cost of spawning thousands of processes
  '  sh:',
  '    runtime: process',
  '    command: ["sleep", "3600"]',
  '    capabilities: [shell]',
  '    concurrency: 1',
]);
try {
  const headers = { authorization: `Bearer ${s.token}`, 'content-type': 'application/json' };
  const post = async (agent) =>
    (
      await fetch(`${s.url}/api/v1/tasks`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ agent, prompt: 'x' }),
      })
    ).json();
  const done = await post('done');
  const running = await post('sh');
  for (;;) {
    const t = await (await fetch(`${s.url}/api/v1/tasks/${done.id}`, { headers })).json();
    if (t.state === 'completed') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // warm up (JIT, statement cache)
  await autocannon({ url: `${s.url}/api/v1/tasks/${done.id}`, headers, connections: 10, amount: 2000 });
  await load('api_health', { url: `${s.url}/health` });
  await load('api_get_task', { url: `${s.url}/api/v1/tasks/${done.id}`, headers });
  await load('api_get_task_running', { url: `${s.url}/api/v1/tasks/${running.id}`, headers });
  await load('api_post_task', {
    url: `${s.url}/api/v1/tasks`,
    method: 'POST',
    headers,
    body: JSON.stringify({ agent: 'sh', prompt: 'x' }),
  });
} finally {
  await s.stop();
  rmSync(dir, { recursive: true, force: true });
}
