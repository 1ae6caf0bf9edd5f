#!/usr/bin/env node
/**
 * Fan-out of the event stream of `smith serve` (not a test: nothing here passes or fails).
 * Prints one JSON line per figure. Run: npm run build && node bench/sse.js [--quick]
 *
 * - sse_fanout: 1,000 SSE clients (200 with --quick) on GET /api/v1/events while tasks run on a
 *   process agent; delivery lag (the event's recorded time -> received and parsed by a client)
 *   p50/p99/max in ms, and the events each client got (every client must get every event, once).
 *
 * The server runs as its own process (the real `smith serve`, synchronous=FULL unless
 * --synchronous=NORMAL); the clients (node's http) are spread over --procs=N other processes
 * (default 2), since one process reading a thousand sockets becomes the bottleneck itself. The
 * lag includes the clients' own reading and parsing, on the same machine as the server.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from './serve.js';

const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const quick = process.argv.includes('--quick');
const CLIENTS = Number(arg('clients') ?? (quick ? 200 : 1000));
const TASKS = Number(arg('tasks') ?? (quick ? 50 : 200));
const PROCS = Number(arg('procs') ?? 2);
/** Tasks submitted per second (a steady load, not one burst). */
const RATE = Number(arg('rate') ?? 20);
/** `--synchronous=NORMAL` trades power-loss durability for shorter commits (default FULL). */
const SYNCHRONOUS = arg('synchronous') ?? 'FULL';
/** Lags are counted in 1 ms buckets up to this many ms (the last bucket holds the rest). */
const MAX_LAG_MS = 60_000;
const SELF = fileURLToPath(import.meta.url);

function emit(obj) {
  process.stdout.write(JSON.stringify({ ...obj, node: process.version }) + '\n');
}

/** The p-th percentile (nearest rank) of a histogram of 1 ms buckets. */
function histPct(hist, total, p) {
  const rank = Math.max(1, Math.ceil((p / 100) * total));
  let seen = 0;
  for (let ms = 0; ms < hist.length; ms++) {
    seen += hist[ms];
    if (seen >= rank) return ms;
  }
  return hist.length - 1;
}

/** A request with the key; resolves with the status and the body text. */
function call(url, token, method, body) {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.end(body !== undefined ? JSON.stringify(body) : undefined);
  });
}

/**
 * The p-th percentile of a Prometheus histogram as the upper bound of its bucket, in ms.
 * @returns the bound, or null when the series is missing
 */
function promPct(text, name, p) {
  const buckets = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}_bucket{le="`)) continue;
    const le = line.slice(line.indexOf('"') + 1, line.lastIndexOf('"'));
    buckets.push([le === '+Inf' ? Infinity : Number(le), Number(line.slice(line.lastIndexOf(' ') + 1))]);
  }
  const total = buckets.find(([le]) => le === Infinity)?.[1];
  if (!total) return null;
  const rank = Math.ceil((p / 100) * total);
  const hit = buckets.find(([, n]) => n >= rank);
  return hit[0] === Infinity ? null : Math.round(hit[0] * 1000);
}

// ------------------------------------------------------------------------- client processes

/**
 * A client process: `n` SSE clients. Tells the parent when they are connected; counts the lag of
 * every task event in a histogram; reports once every client saw every task the parent names
 * complete (or the parent asks for the report).
 */
async function clientProcess(url, token, n) {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const hist = new Uint32Array(MAX_LAG_MS + 1);
  const clients = [];
  let expected;
  const maybeDone = () => {
    if (!expected) return;
    for (const c of clients) if (!c.ended && c.done < expected.size) return;
    report();
  };
  const report = () => {
    process.send({
      hist: Array.from(hist),
      counts: clients.map((c) => c.seqs.size),
      duplicates: clients.reduce((x, c) => x + (c.events - c.seqs.size), 0),
      disconnected: clients.filter((c) => c.ended).length,
      completedByAll: expected
        ? [...expected].filter((id) => clients.every((c) => c.completed.has(id))).length
        : 0,
    });
    expected = undefined;
  };
  const connect = () =>
    new Promise((resolve, reject) => {
      const req = request(`${url}/api/v1/events`, {
        agent,
        headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        if (res.statusCode !== 200) return reject(new Error(`GET /api/v1/events answered ${res.statusCode}`));
        const c = { events: 0, seqs: new Set(), completed: new Set(), done: 0, ended: false, res };
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          const now = Date.now();
          buf += chunk;
          let end;
          while ((end = buf.indexOf('\n\n')) !== -1) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            const at = block.indexOf('\nevent: task\ndata: ');
            if (at === -1) continue;
            // the fields are read without parsing the whole JSON: this process must keep up with 500 sockets
            const seq = Number(block.slice(block.indexOf('"seq":') + 6, block.indexOf(',"task_id"')));
            const t = block.indexOf('"time":"');
            const lag = now - Date.parse(block.slice(t + 8, t + 32));
            hist[Math.min(MAX_LAG_MS, Math.max(0, lag))]++;
            c.events++;
            c.seqs.add(seq);
            if (block.includes('"type":"state"') && block.includes('"to":"completed"')) {
              const i = block.indexOf('"task_id":"') + 11;
              const id = block.slice(i, block.indexOf('"', i));
              if (!c.completed.has(id)) {
                c.completed.add(id);
                if (expected?.has(id)) c.done++;
                maybeDone();
              }
            }
          }
        });
        res.on('close', () => {
          c.ended = true;
          maybeDone();
        });
        clients.push(c);
        resolve();
      });
      req.end();
    });
  for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: Math.min(50, n - i) }, connect));
  process.on('message', (m) => {
    if (m.expect) {
      expected = new Set(m.expect);
      for (const c of clients) c.done = m.expect.filter((id) => c.completed.has(id)).length;
      maybeDone();
    } else if (m.report) report();
    else if (m.exit) {
      for (const c of clients) c.res.destroy();
      process.exit(0);
    }
  });
  process.send({ ready: true });
}

// ------------------------------------------------------------------------------- the bench

async function sseFanout() {
  const dir = mkdtempSync(join(tmpdir(), 'smith-bench-sse-'));
  const server = await serve(dir, [
    'agents:',
    '  sh:',
    '    runtime: process',
    '    command: ["sh", "-c", "{prompt}"]',
    '    capabilities: [shell]',
    '    concurrency: 4',
    'store:',
    `  synchronous: ${SYNCHRONOUS}`,
  ]);
  const procs = [];
  try {
    const t0 = performance.now();
    for (let p = 0; p < PROCS; p++) {
      const n = Math.floor(CLIENTS / PROCS) + (p < CLIENTS % PROCS ? 1 : 0);
      const child = fork(SELF, ['--client', server.url, server.token, String(n)], { stdio: 'inherit' });
      procs.push(child);
    }
    await Promise.all(procs.map((c) => new Promise((r) => c.once('message', r))));
    const connectMs = performance.now() - t0;

    const ids = [];
    const submitStart = performance.now();
    for (let i = 0; i < TASKS; i++) {
      const due = submitStart + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const res = await call(`${server.url}/api/v1/tasks`, server.token, 'POST', {
        agent: 'sh',
        prompt: `echo task ${i}`,
      });
      if (res.status !== 201) throw new Error(`POST /api/v1/tasks answered ${res.status}: ${res.text}`);
      ids.push(JSON.parse(res.text).id);
    }
    const reports = await Promise.all(
      procs.map(
        (c) =>
          new Promise((resolve) => {
            const timer = setTimeout(() => c.send({ report: true }), 120_000);
            c.once('message', (m) => {
              clearTimeout(timer);
              resolve(m);
            });
            c.send({ expect: ids });
          }),
      ),
    );
    const hist = new Array(MAX_LAG_MS + 1).fill(0);
    for (const r of reports) for (let i = 0; i < hist.length; i++) hist[i] += r.hist[i];
    const total = hist.reduce((a, b) => a + b, 0);
    let max = 0;
    for (let i = hist.length - 1; i >= 0; i--)
      if (hist[i] > 0) {
        max = i;
        break;
      }
    const counts = reports.flatMap((r) => r.counts);
    const metrics = (await call(`${server.url}/metrics`, server.token, 'GET')).text;
    emit({
      bench: 'sse_fanout',
      clients: CLIENTS,
      client_procs: PROCS,
      tasks: TASKS,
      tasks_per_s: RATE,
      synchronous: SYNCHRONOUS,
      connect_ms: Math.round(connectMs),
      deliveries: total,
      events_per_client_min: Math.min(...counts),
      events_per_client_max: Math.max(...counts),
      duplicates: reports.reduce((n, r) => n + r.duplicates, 0),
      disconnected: reports.reduce((n, r) => n + r.disconnected, 0),
      tasks_seen_completed_by_all: Math.min(...reports.map((r) => r.completedByAll)),
      lag_p50_ms: histPct(hist, total, 50),
      lag_p99_ms: histPct(hist, total, 99),
      lag_max_ms: max,
      // the server's own view: recorded -> written to every client (upper bounds of histogram buckets)
      server_lag_p50_le_ms: promPct(metrics, 'smith_sse_delivery_lag_seconds', 50),
      server_lag_p99_le_ms: promPct(metrics, 'smith_sse_delivery_lag_seconds', 99),
    });
  } finally {
    for (const c of procs) c.send({ exit: true });
    await Promise.all(procs.map((c) => new Promise((r) => (c.exitCode !== null ? r() : c.once('exit', r)))));
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--client')
  await clientProcess(process.argv[3], process.argv[4], Number(process.argv[5]));
else await sseFanout();
