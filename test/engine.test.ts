import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { Engine } from '../src/engine/engine.js';
import { FunctionRuntime } from '../src/runtime/function/function-runtime.js';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { AgentSpec, WorkflowSpec } from '../src/core/types.js';
import { verifyAuditChain } from '../src/provenance/verify.js';
import { tempDir } from './helpers.js';

let tmp: { dir: string; cleanup: () => void };
let store: SqliteStore;

beforeEach(async () => {
  tmp = tempDir();
  store = await openSqliteStore(join(tmp.dir, 'smith.db'));
});
afterEach(async () => {
  await store.close();
  tmp.cleanup();
});

function agent(name: string, capabilities: string[], concurrency = 2): AgentSpec {
  return { name, runtime: 'function', capabilities, concurrency };
}

describe('engine (function runtime, real SQLite file)', () => {
  it('runs a DAG in dependency order, passes outputs, and audits every transition', async () => {
    const order: string[] = [];
    const fr = new FunctionRuntime({
      echo: (input) => {
        order.push(input.key);
        return `${input.key}:${Object.keys(input.needs).sort().join('+')}|${input.prompt}`;
      },
    });
    const engine = new Engine({ store, runtimes: [fr], agents: [agent('echo', ['x'])], home: tmp.dir });
    await engine.start();
    const spec: WorkflowSpec = {
      name: 'dag',
      dir: tmp.dir,
      agents: {},
      tasks: [
        { key: 'a', agent: 'echo', prompt: 'A', needs: [], retries: 0, priority: 5 },
        {
          key: 'b',
          capabilities: ['x'],
          prompt: 'B {needs.a.output}',
          needs: ['a'],
          retries: 0,
          priority: 5,
        },
        { key: 'c', agent: 'echo', prompt: 'C', needs: ['a'], retries: 0, priority: 5 },
        { key: 'd', agent: 'echo', prompt: 'D', needs: ['b', 'c'], retries: 0, priority: 5 },
      ],
    };
    const wf = await engine.submitWorkflow(spec);
    const done = await engine.waitWorkflow(wf.id);
    await engine.close();
    expect(done.state).toBe('completed');
    expect(order[0]).toBe('a');
    expect(order[3]).toBe('d');
    const tasks = await store.listTasks({ workflowId: wf.id });
    const b = tasks.find((t) => t.key === 'b')!;
    expect(b.output).toBe('b:a|B a:|A');
    expect(tasks.find((t) => t.key === 'd')!.output).toBe('d:b+c|D');
    expect(tasks.every((t) => t.state === 'completed' && t.attempts === 1)).toBe(true);
    const audit = await store.auditFor(b.id);
    expect(audit.map((r) => r.action)).toEqual([
      'task.created',
      'task.queued',
      'task.running',
      'task.completed',
    ]);
    const v = await verifyAuditChain(store);
    expect(v.ok).toBe(true);
  });

  it('retries with backoff, then fails; dependents are canceled and the workflow fails', async () => {
    let calls = 0;
    const fr = new FunctionRuntime({
      flaky: () => {
        calls++;
        throw new Error('boom');
      },
      ok: () => 'fine',
    });
    const engine = new Engine({
      store,
      runtimes: [fr],
      agents: [agent('flaky', []), agent('ok', [])],
      home: tmp.dir,
      retryBackoff: { baseMs: 1, maxMs: 5 },
    });
    await engine.start();
    const wf = await engine.submitWorkflow({
      name: 'f',
      dir: tmp.dir,
      agents: {},
      tasks: [
        { key: 'bad', agent: 'flaky', prompt: '', needs: [], retries: 2, priority: 5 },
        { key: 'after', agent: 'ok', prompt: '', needs: ['bad'], retries: 0, priority: 5 },
        { key: 'other', agent: 'ok', prompt: '', needs: [], retries: 0, priority: 5 },
      ],
    });
    const done = await engine.waitWorkflow(wf.id);
    await engine.close();
    expect(done.state).toBe('failed');
    expect(calls).toBe(3);
    const tasks = await store.listTasks({ workflowId: wf.id });
    const byKey = Object.fromEntries(tasks.map((t) => [t.key, t]));
    expect(byKey.bad!.state).toBe('failed');
    expect(byKey.bad!.attempts).toBe(3);
    expect(byKey.bad!.reason).toContain('boom');
    expect(byKey.after!.state).toBe('canceled');
    expect(byKey.after!.reason).toContain('dependency_failed');
    expect(byKey.other!.state).toBe('completed');
    expect((await store.getAttempts(byKey.bad!.id)).map((a) => a.state)).toEqual([
      'failed',
      'failed',
      'failed',
    ]);
  });

  it('honours priorities, per-agent concurrency and the global limit', async () => {
    let active = 0;
    let peak = 0;
    const started: string[] = [];
    const fr = new FunctionRuntime({
      w: async (input) => {
        started.push(input.key);
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 5));
        active--;
        return '';
      },
    });
    const engine = new Engine({
      store,
      runtimes: [fr],
      agents: [agent('w', [], 3)],
      home: tmp.dir,
      concurrency: 2,
    });
    await engine.start();
    const tasks = Array.from({ length: 12 }, (_, i) => ({
      key: `k${i}`,
      agent: 'w',
      prompt: '',
      needs: [],
      retries: 0,
      priority: i === 11 ? 1 : 5,
    }));
    const wf = await engine.submitWorkflow({ name: 'p', dir: tmp.dir, agents: {}, tasks });
    await engine.waitWorkflow(wf.id);
    await engine.close();
    expect(peak).toBe(2);
    expect(started[0]).toBe('k11');
    expect(started.slice(1)).toEqual(Array.from({ length: 11 }, (_, i) => `k${i}`));
  });

  it('a stale attempt cannot complete its task', async () => {
    let release: (() => void) | undefined;
    const fr = new FunctionRuntime({
      slow: () => new Promise<string>((r) => (release = () => r('late'))),
    });
    const engine = new Engine({ store, runtimes: [fr], agents: [agent('slow', [])], home: tmp.dir });
    await engine.start();
    const { taskId, workflow } = await engine.submitTask({ agent: 'slow', prompt: '', workdir: tmp.dir });
    while (!release) await new Promise((r) => setTimeout(r, 5));
    // another process moves the task on (bumps its epoch) while the attempt runs
    await store.commit([{ op: 'updateTask', id: taskId, set: { epoch: 99 } }]);
    release();
    await engine.close({ timeoutMs: 1000 });
    const t = await store.getTask(taskId);
    expect(t!.state).not.toBe('completed');
    const audits = await store.auditFor(taskId);
    expect(audits.some((a) => a.action === 'task.completed')).toBe(false);
    // the late result is kept on its attempt, marked stale, and the workflow did not end on it
    const [attempt] = await store.getAttempts(taskId);
    expect(attempt!.state).toBe('stale');
    expect(attempt!.output).toBe('late');
    expect((await store.getWorkflow(workflow.id))!.state).toBe('running');
  });

  it("a person's retry gives the task its whole attempt budget again and revives the tasks its failure canceled", async () => {
    let calls = 0;
    const fr = new FunctionRuntime({
      flaky: () => {
        calls++;
        throw new Error('still broken');
      },
      ok: () => 'fine',
    });
    const engine = new Engine({
      store,
      runtimes: [fr],
      agents: [agent('flaky', []), agent('ok', [])],
      home: tmp.dir,
      retryBackoff: { baseMs: 1, maxMs: 2 },
    });
    await engine.start();
    const wf = await engine.submitWorkflow({
      name: 'r',
      dir: tmp.dir,
      agents: {},
      tasks: [
        { key: 'bad', agent: 'flaky', prompt: '', needs: [], retries: 1, priority: 5 },
        { key: 'after', agent: 'ok', prompt: '', needs: ['bad'], retries: 0, priority: 5 },
      ],
    });
    expect((await engine.waitWorkflow(wf.id)).state).toBe('failed');
    expect(calls).toBe(2);
    const bad = (await store.listTasks({ workflowId: wf.id })).find((t) => t.key === 'bad')!;
    await engine.retry(bad.id, 'user:test');
    const again = await engine.waitWorkflow(wf.id);
    await engine.close();
    expect(again.state).toBe('failed');
    expect(calls).toBe(4);
    const after = await store.listTasks({ workflowId: wf.id });
    expect(after.find((t) => t.key === 'bad')!.attempts).toBe(4);
    // the dependent was revived (pending) and canceled again by the second failure
    const audits = await store.auditFor(after.find((t) => t.key === 'after')!.id);
    expect(audits.map((a) => a.action)).toEqual([
      'task.created',
      'task.canceled',
      'task.pending',
      'task.canceled',
    ]);
  });

  it('a paused task whose need fails is canceled, not left waiting forever', async () => {
    let release: (() => void) | undefined;
    const fr = new FunctionRuntime({
      gate: () =>
        new Promise<string>((_, reject) => {
          release = () => reject(new Error('need failed'));
        }),
      ok: () => 'fine',
    });
    const engine = new Engine({
      store,
      runtimes: [fr],
      agents: [agent('gate', []), agent('ok', [])],
      home: tmp.dir,
    });
    await engine.start();
    const wf = await engine.submitWorkflow({
      name: 'p',
      dir: tmp.dir,
      agents: {},
      tasks: [
        { key: 'need', agent: 'gate', prompt: '', needs: [], retries: 0, priority: 5 },
        { key: 'later', agent: 'ok', prompt: '', needs: ['need'], retries: 0, priority: 5 },
      ],
    });
    const later = (await store.listTasks({ workflowId: wf.id })).find((t) => t.key === 'later')!;
    await engine.pause(later.id, 'user:test');
    while (!release) await new Promise((r) => setTimeout(r, 5));
    release();
    const done = await engine.waitWorkflow(wf.id);
    await engine.close();
    expect(done.state).toBe('failed');
    const t = await store.getTask(later.id);
    expect(t!.state).toBe('canceled');
    expect(t!.reason).toContain('dependency_failed');
  });

  it('tasks already queued still run after a later workflow brings a new agent', async () => {
    let release: (() => void) | undefined;
    const fr = new FunctionRuntime({
      busy: (input) =>
        input.key === 'first' ? new Promise<string>((r) => (release = () => r('first'))) : input.key,
      fresh: () => 'fresh',
    });
    const engine = new Engine({ store, runtimes: [fr], agents: [agent('busy', ['x'], 1)], home: tmp.dir });
    await engine.start();
    const a = await engine.submitWorkflow({
      name: 'a',
      dir: tmp.dir,
      agents: {},
      tasks: [
        { key: 'first', agent: 'busy', prompt: '', needs: [], retries: 0, priority: 5 },
        { key: 'second', capabilities: ['x'], prompt: '', needs: [], retries: 0, priority: 5 },
      ],
    });
    while (!release) await new Promise((r) => setTimeout(r, 5));
    // 'second' waits in the queue for the busy agent; now a workflow with an agent of its own arrives
    const b = await engine.submitWorkflow({
      name: 'b',
      dir: tmp.dir,
      agents: { fresh: agent('fresh', []) },
      tasks: [{ key: 'other', agent: 'fresh', prompt: '', needs: [], retries: 0, priority: 5 }],
    });
    expect((await engine.waitWorkflow(b.id)).state).toBe('completed');
    release();
    const done = await engine.waitWorkflow(a.id);
    await engine.close();
    expect(done.state).toBe('completed');
    const second = (await store.listTasks({ workflowId: a.id })).find((t) => t.key === 'second')!;
    expect(second.output).toBe('second');
  });
});

describe('tracing', () => {
  it('records a smith.attempt span per attempt with the task, agent and end state', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    trace.setGlobalTracerProvider(provider);
    try {
      let calls = 0;
      const fr = new FunctionRuntime({
        flaky: () => {
          calls++;
          if (calls === 1) throw new Error('first attempt fails');
          return 'ok';
        },
      });
      const engine = new Engine({
        store,
        runtimes: [fr],
        agents: [agent('flaky', [])],
        home: tmp.dir,
        retryBackoff: { baseMs: 1, maxMs: 1, jitter: 'none' },
      });
      await engine.start();
      const { workflow } = await engine.submitTask({
        agent: 'flaky',
        prompt: 'p',
        key: 'job',
        retries: 1,
        workdir: tmp.dir,
      });
      expect((await engine.waitWorkflow(workflow.id)).state).toBe('completed');
      await engine.close();
      const spans = exporter.getFinishedSpans().filter((s) => s.name === 'smith.attempt');
      expect(
        spans.map((s) => [
          s.attributes['smith.task.key'],
          s.attributes['smith.attempt'],
          s.attributes['smith.agent'],
        ]),
      ).toEqual([
        ['job', 1, 'flaky'],
        ['job', 2, 'flaky'],
      ]);
      expect(spans.map((s) => s.attributes['smith.task.state'])).toEqual(['queued', 'completed']);
    } finally {
      trace.disable();
      await provider.shutdown();
    }
  });
});
