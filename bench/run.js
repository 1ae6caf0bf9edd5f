#!/usr/bin/env node
/**
 * Benchmarks of the engine on the embedded default (not tests: nothing here passes or fails).
 * Prints one JSON line per figure. Run: npm run bench  (or: node bench/run.js [--quick])
 *
 * - noop_throughput: no-op tasks end to end (submit -> dispatch -> in-process no-op agent ->
 *   completed, durable and audited), tasks/s, with synchronous=NORMAL and FULL
 * - submit_to_start: latency from submit to the agent starting, p50/p99 (ms)
 * - process_overhead: per-task overhead of the process runtime over spawning /bin/true directly
 * - fan_out_in: a 1,000-task fan-out / fan-in workflow
 * - queued_rss: peak RSS with 100,000 tasks queued
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, FunctionRuntime, ProcessRuntime, openSqliteStore } from '../dist/index.js';

const quick = process.argv.includes('--quick');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);

function emit(obj) {
  process.stdout.write(JSON.stringify({ ...obj, node: process.version }) + '\n');
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function withEngine(opts, fn) {
  const dir = mkdtempSync(join(tmpdir(), 'smith-bench-'));
  const store = await openSqliteStore(join(dir, 'smith.db'), { synchronous: opts.synchronous ?? 'FULL' });
  const fr = new FunctionRuntime(opts.functions ?? {});
  const engine = new Engine({
    store,
    runtimes: [fr, new ProcessRuntime()],
    agents: opts.agents,
    home: dir,
    concurrency: opts.concurrency ?? 256,
    retryBackoff: { baseMs: 1, maxMs: 1 },
  });
  await engine.start();
  try {
    return await fn(engine, store, dir);
  } finally {
    await engine.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function noopThroughput(n, synchronous) {
  const agents = [{ name: 'noop', runtime: 'function', capabilities: [], concurrency: 256 }];
  return withEngine({ synchronous, agents, functions: { noop: () => '' } }, async (engine, store, dir) => {
    const t0 = performance.now();
    const wf = await engine.submitBatch(
      'bench',
      dir,
      Array.from({ length: n }, () => ({ agent: 'noop', prompt: '' })),
    );
    const done = await engine.waitWorkflow(wf.id);
    const ms = performance.now() - t0;
    const head = await store.auditHead();
    if (done.state !== 'completed') throw new Error(`bench workflow ended ${done.state}`);
    return { ms, tasksPerS: n / (ms / 1000), auditRecords: head?.seq ?? 0 };
  });
}

async function submitToStart(n) {
  const starts = new Map();
  const agents = [{ name: 'noop', runtime: 'function', capabilities: [], concurrency: 64 }];
  const functions = { noop: (input) => void starts.set(input.key, performance.now()) };
  return withEngine({ synchronous: 'FULL', agents, functions }, async (engine, _store, dir) => {
    const submitted = new Map();
    const waits = [];
    for (let i = 0; i < n; i++) {
      const key = `k${i}`;
      submitted.set(key, performance.now());
      waits.push(
        engine
          .submitTask({ agent: 'noop', prompt: '', key, workdir: dir })
          .then((r) => engine.waitWorkflow(r.workflow.id)),
      );
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5)); // ~2,000 submissions/s, in bursts of 10
    }
    await Promise.all(waits);
    const lat = [...submitted].map(([k, t]) => starts.get(k) - t);
    return { p50: pct(lat, 50), p99: pct(lat, 99), n };
  });
}

async function bareSpawns(n, parallel) {
  const t0 = performance.now();
  let next = 0;
  async function worker() {
    while (next < n) {
      next++;
      await new Promise((resolve, reject) => {
        const c = spawn('/bin/true', [], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
        c.stdin.on('error', () => {});
        c.stdin.end('{}\n');
        c.stdout.resume();
        c.stderr.resume();
        c.on('error', reject);
        c.on('close', resolve);
      });
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker));
  return performance.now() - t0;
}

async function processOverhead(n, parallel, synchronous) {
  const agents = [
    { name: 'true', runtime: 'process', command: ['/bin/true'], capabilities: [], concurrency: parallel },
  ];
  const bare = [];
  const viaSmith = [];
  for (let round = 0; round < 3; round++) {
    bare.push(await bareSpawns(n, parallel));
    viaSmith.push(
      await withEngine({ synchronous, agents, concurrency: parallel }, async (engine, _s, dir) => {
        const t0 = performance.now();
        const wf = await engine.submitBatch(
          'spawn',
          dir,
          Array.from({ length: n }, () => ({ agent: 'true', prompt: '' })),
        );
        const done = await engine.waitWorkflow(wf.id);
        if (done.state !== 'completed') throw new Error(`process bench ended ${done.state}`);
        return performance.now() - t0;
      }),
    );
  }
  const b = median(bare);
  const s = median(viaSmith);
  return { bareMsPerTask: b / n, smithMsPerTask: s / n, overheadMsPerTask: (s - b) / n, ratio: s / b };
}

async function fanOutIn(width) {
  const agents = [{ name: 'noop', runtime: 'function', capabilities: [], concurrency: 256 }];
  return withEngine(
    { synchronous: 'FULL', agents, functions: { noop: (i) => `${Object.keys(i.needs).length}` } },
    async (engine, store, dir) => {
      const tasks = [{ key: 'root', agent: 'noop', prompt: '', needs: [], retries: 0, priority: 5 }];
      for (let i = 0; i < width; i++)
        tasks.push({ key: `m${i}`, agent: 'noop', prompt: '', needs: ['root'], retries: 0, priority: 5 });
      tasks.push({
        key: 'sink',
        agent: 'noop',
        prompt: '',
        needs: tasks.slice(1).map((t) => t.key),
        retries: 0,
        priority: 5,
      });
      const t0 = performance.now();
      const wf = await engine.submitWorkflow({ name: 'fan', dir, agents: {}, tasks });
      const done = await engine.waitWorkflow(wf.id);
      const ms = performance.now() - t0;
      const sink = (await store.listTasks({ workflowId: wf.id })).find((t) => t.key === 'sink');
      if (done.state !== 'completed' || sink.output !== String(width))
        throw new Error('fan-out/in did not complete');
      return { ms, tasks: width + 2 };
    },
  );
}

function peakRssMb() {
  const status = readFileSync('/proc/self/status', 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : process.memoryUsage().rss / 1048576;
}

async function queuedRss(n) {
  let release;
  const gate = new Promise((r) => (release = r));
  const agents = [{ name: 'blocked', runtime: 'function', capabilities: [], concurrency: 1 }];
  return withEngine(
    { synchronous: 'NORMAL', agents, functions: { blocked: () => gate } },
    async (engine, store, dir) => {
      const before = process.memoryUsage().rss / 1048576;
      const wf = await engine.submitBatch(
        'queued',
        dir,
        Array.from({ length: n }, () => ({ agent: 'blocked', prompt: '' })),
      );
      await store.flush();
      global.gc?.();
      const rss = process.memoryUsage().rss / 1048576;
      const peak = peakRssMb();
      release('');
      await engine.waitWorkflow(wf.id);
      return { rssMb: rss, peakMb: peak, baselineMb: before };
    },
  );
}

const sizes = quick ? [1000, 10000] : [1000, 10000, 100000];
if (!only || only === 'noop') {
  await noopThroughput(2000, 'NORMAL'); // warm-up (JIT), not reported
  for (const synchronous of ['NORMAL', 'FULL']) {
    for (const n of sizes) {
      const runs = [];
      for (let i = 0; i < (n >= 100000 ? 1 : 3); i++) runs.push(await noopThroughput(n, synchronous));
      const tps = runs.map((r) => r.tasksPerS);
      emit({
        bench: 'noop_throughput',
        synchronous,
        tasks: n,
        runs: runs.length,
        tasks_per_s_median: Math.round(median(tps)),
        tasks_per_s: tps.map(Math.round),
        audit_records: runs[0].auditRecords,
      });
    }
  }
}
if (!only || only === 'latency') {
  const r = await submitToStart(quick ? 500 : 2000);
  emit({
    bench: 'submit_to_start',
    synchronous: 'FULL',
    tasks: r.n,
    p50_ms: +r.p50.toFixed(2),
    p99_ms: +r.p99.toFixed(2),
  });
}
if (!only || only === 'process') {
  for (const parallel of [1, 4]) {
    const r = await processOverhead(quick ? 100 : 300, parallel, process.env.SYNC ?? 'FULL');
    emit({
      bench: 'process_overhead',
      synchronous: process.env.SYNC ?? 'FULL',
      parallel,
      tasks: quick ? 100 : 300,
      bare_spawn_ms_per_task: +r.bareMsPerTask.toFixed(3),
      smith_ms_per_task: +r.smithMsPerTask.toFixed(3),
      overhead_ms_per_task: +r.overheadMsPerTask.toFixed(3),
      ratio: +r.ratio.toFixed(2),
    });
  }
}
if (!only || only === 'fan') {
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await fanOutIn(1000));
  emit({
    bench: 'fan_out_in',
    synchronous: 'FULL',
    tasks: runs[0].tasks,
    ms_median: Math.round(median(runs.map((r) => r.ms))),
  });
}
if (only === 'rss') {
  const r = await queuedRss(quick ? 10000 : 100000);
  emit({
    bench: 'queued_rss',
    tasks_queued: quick ? 10000 : 100000,
    rss_mb: Math.round(r.rssMb),
    peak_rss_mb: Math.round(r.peakMb),
    baseline_rss_mb: Math.round(r.baselineMb),
  });
} else if (!only) {
  // in a fresh process, so earlier figures' heaps do not count
  const args = ['--expose-gc', fileURLToPath(import.meta.url), '--only=rss', ...(quick ? ['--quick'] : [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  await new Promise((r) => child.on('close', r));
}
