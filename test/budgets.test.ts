import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Engine } from '../src/engine/engine.js';
import { FunctionRuntime, type FunctionAgent } from '../src/runtime/function/function-runtime.js';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { AgentSpec, Budget, TokenUsage } from '../src/core/types.js';
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

function tokens(input: number, output: number): TokenUsage {
  return { input, output, cacheRead: 0, cacheWrite: 0 };
}

function agent(name: string, over: Partial<AgentSpec> = {}): AgentSpec {
  return { name, runtime: 'function', capabilities: ['x'], concurrency: 1, ...over };
}

/** An agent that spends `usd` per step, `steps` times, then answers; it stops when aborted. */
function spender(usd: number, steps: number): FunctionAgent {
  return async (_input, { report, signal }) => {
    for (let i = 0; i < steps; i++) {
      if (signal.aborted) throw new Error('aborted');
      report({ type: 'usage', model: 'm', tokens: tokens(100, 10), costUsd: usd });
      await new Promise((r) => setTimeout(r, 5));
    }
    return 'done';
  };
}

async function runOne(engine: Engine, a: string, budget?: Budget, retries = 0) {
  const { workflow, taskId } = await engine.submitTask({
    agent: a,
    prompt: 'go',
    workdir: tmp.dir,
    retries,
    ...(budget ? { budget } : {}),
  });
  await engine.waitWorkflow(workflow.id);
  return (await store.getTask(taskId))!;
}

describe('budgets', () => {
  it('stops a task that goes over its budget, fails it with budget_exceeded and does not retry', async () => {
    const engine = new Engine({
      store,
      runtimes: [new FunctionRuntime({ big: spender(0.04, 50) })],
      agents: [agent('big')],
      home: tmp.dir,
    });
    await engine.start();
    const t = await runOne(engine, 'big', { usd: 0.1 }, 3);
    await engine.close();
    expect(t.state).toBe('failed');
    expect(t.attempts).toBe(1);
    expect(t.reason).toMatch(/^budget_exceeded: task budget \$0\.1 reached \(\$0\.1200 spent\)/);
    expect(t.costUsd).toBeCloseTo(0.12, 6);
    expect(t.tokens).toBe(330);
    const [a] = await store.getAttempts(t.id);
    expect(a!.state).toBe('failed');
    expect(a!.costUsd).toBeCloseTo(0.12, 6);
    expect(a!.usage).toEqual(tokens(300, 30));
    const audit = await store.auditFor(t.id);
    const failed = audit.find((r) => r.action === 'task.failed')!;
    expect(failed.data).toMatchObject({ cost_usd: 0.12, tokens: 330, task_cost_usd: 0.12 });
    expect((await verifyAuditChain(store)).ok).toBe(true);
  });

  it('prices usage that comes without a cost from the price table, by model prefix', async () => {
    const engine = new Engine({
      store,
      runtimes: [
        new FunctionRuntime({
          llm: (_i, { report }) => {
            report({ type: 'usage', model: 'gpt-x-2025', tokens: tokens(1_000_000, 100_000) });
            return 'ok';
          },
        }),
      ],
      agents: [agent('llm')],
      home: tmp.dir,
      prices: { 'gpt-x': { inputPerMTok: 2, outputPerMTok: 8, cacheReadPerMTok: 2, cacheWritePerMTok: 2 } },
    });
    await engine.start();
    const t = await runOne(engine, 'llm');
    await engine.close();
    expect(t.state).toBe('completed');
    expect(t.costUsd).toBeCloseTo(2.8, 6);
    expect(t.tokens).toBe(1_100_000);
  });

  it("an agent's budget counts across tasks and engines: a task after it is spent fails without running", async () => {
    let runs = 0;
    const fr = new FunctionRuntime({
      a: (_i, { report }) => {
        runs++;
        report({ type: 'usage', tokens: tokens(600, 0), costUsd: 0 });
        return 'ok';
      },
    });
    const spec = agent('a', { budget: { tokens: 1000 } });
    let engine = new Engine({ store, runtimes: [fr], agents: [spec], home: tmp.dir });
    await engine.start();
    expect((await runOne(engine, 'a')).state).toBe('completed');
    // the second run starts with room left and reaches the cap while it runs: it is stopped
    const second = await runOne(engine, 'a');
    expect(second.state).toBe('failed');
    expect(second.attempts).toBe(1);
    expect(second.reason).toMatch(/^budget_exceeded: agent "a"/);
    await engine.close();
    // a new engine on the same home starts from the recorded spend
    engine = new Engine({ store, runtimes: [fr], agents: [spec], home: tmp.dir });
    await engine.start();
    const third = await runOne(engine, 'a');
    await engine.close();
    expect(runs).toBe(2);
    expect(third.state).toBe('failed');
    expect(third.attempts).toBe(0);
    expect(third.reason).toMatch(/^budget_exceeded: agent "a" budget of 1000 tokens reached \(1200 used\)/);
  });

  it('a workflow budget and the home budget stop their tasks', async () => {
    const fr = new FunctionRuntime({ s: spender(0.5, 1) });
    const engine = new Engine({
      store,
      runtimes: [fr],
      agents: [agent('s')],
      home: tmp.dir,
      budget: { usd: 1.7 },
    });
    await engine.start();
    const wf = await engine.submitWorkflow({
      name: 'w',
      dir: tmp.dir,
      agents: {},
      budget: { usd: 0.9 },
      tasks: ['a', 'b', 'c'].map((key) => ({
        key,
        agent: 's',
        prompt: key,
        needs: [],
        retries: 0,
        priority: 5,
      })),
    });
    await engine.waitWorkflow(wf.id);
    const states = (await store.listTasks({ workflowId: wf.id })).map((t) => [t.key, t.state, t.reason]);
    // a spends $0.50; b reaches the workflow's $0.90 while it runs and is stopped; c never starts
    expect(states[0]).toEqual(['a', 'completed', null]);
    expect(states[1]![1]).toBe('failed');
    expect(states[1]![2]).toMatch(/^budget_exceeded: workflow budget \$0\.9 reached \(\$1\.0000 spent\)/);
    expect(states[2]![1]).toBe('failed');
    const c = (await store.listTasks({ workflowId: wf.id }))[2]!;
    expect(c.attempts).toBe(0);
    // the home has $1.00 spent of $1.70: the next task runs, the one after reaches the cap
    expect((await runOne(engine, 's')).state).toBe('completed');
    const stopped = await runOne(engine, 's');
    const never = await runOne(engine, 's');
    await engine.close();
    expect(stopped.state).toBe('failed');
    expect(stopped.attempts).toBe(1);
    expect(never.attempts).toBe(0);
    expect(never.reason).toMatch(/^budget_exceeded: the home budget \$1\.7 reached \(\$2\.0000 spent\)/);
  });

  it('hands the remaining budget and the previous session to the next attempt', async () => {
    const seen: { session?: string; budget?: Budget }[] = [];
    let n = 0;
    const fr = new FunctionRuntime({
      s: (_i, tools) => {
        seen.push({
          ...(tools.resumeSessionId ? { session: tools.resumeSessionId } : {}),
          ...(tools.budget ? { budget: tools.budget } : {}),
        });
        n++;
        tools.report({ type: 'session', id: `sess-${n}` });
        tools.report({ type: 'usage', tokens: tokens(10, 0), costUsd: 0.25 });
        if (n < 2) throw new Error('crashed');
        return 'ok';
      },
    });
    const engine = new Engine({
      store,
      runtimes: [fr],
      agents: [agent('s')],
      home: tmp.dir,
      retryBackoff: { baseMs: 1, maxMs: 1, jitter: 'none' },
    });
    await engine.start();
    const t = await runOne(engine, 's', { usd: 1 }, 1);
    await engine.close();
    expect(t.state).toBe('completed');
    expect(seen).toEqual([{ budget: { usd: 1 } }, { session: 'sess-1', budget: { usd: 0.75 } }]);
    expect(t.sessionId).toBe('sess-2');
    expect(t.costUsd).toBeCloseTo(0.5, 6);
    const attempts = await store.getAttempts(t.id);
    expect(attempts.map((a) => a.sessionId)).toEqual(['sess-1', 'sess-2']);
  });

  it('caps attempts at once per runtime kind', async () => {
    let running = 0;
    let peak = 0;
    const slow: FunctionAgent = async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      return 'ok';
    };
    const engine = new Engine({
      store,
      runtimes: [new FunctionRuntime({ a: slow, b: slow })],
      agents: [agent('a', { concurrency: 3 }), agent('b', { concurrency: 3 })],
      home: tmp.dir,
      runtimeConcurrency: { function: 2 },
    });
    await engine.start();
    const wf = await engine.submitBatch(
      'many',
      tmp.dir,
      Array.from({ length: 12 }, (_, i) => ({ capabilities: ['x'], prompt: String(i) })),
    );
    const done = await engine.waitWorkflow(wf.id);
    await engine.close();
    expect(done.state).toBe('completed');
    expect(peak).toBe(2);
  });
});
