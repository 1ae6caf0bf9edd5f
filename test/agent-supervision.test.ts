/**
 * Agent instances are supervised (OTP one_for_one): an instance whose runtime fails is restarted;
 * past the intensity the agent is in error, and its tasks fail with that reason instead of hanging.
 */
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Engine } from '../src/engine/engine.js';
import { ProcessRuntime } from '../src/runtime/process/index.js';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite/sqlite-store.js';
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

describe('agent supervision', () => {
  it('restarts an instance whose command vanished, then gives the agent up and fails its tasks with the reason', async () => {
    const script = join(tmp.dir, 'agent.sh');
    writeFileSync(script, '#!/bin/sh\necho ok\n');
    chmodSync(script, 0o755);
    const engine = new Engine({
      store,
      runtimes: [new ProcessRuntime()],
      agents: [{ name: 'fragile', runtime: 'process', command: [script], capabilities: [], concurrency: 1 }],
      home: tmp.dir,
      retryBackoff: { baseMs: 1, maxMs: 2 },
    });
    const restarts: number[] = [];
    await engine.start();
    // the first task runs while the command exists
    const first = await engine.submitTask({ agent: 'fragile', prompt: '', workdir: tmp.dir });
    expect((await engine.waitWorkflow(first.workflow.id)).state).toBe('completed');

    engine.on('agent:instance', (e) => {
      if (e.state === 'initializing') restarts.push(e.index);
    });
    rmSync(script);
    const second = await engine.submitTask({ agent: 'fragile', prompt: '', workdir: tmp.dir, retries: 5 });
    const done = await engine.waitWorkflow(second.workflow.id);
    await engine.close();
    expect(done.state).toBe('failed');
    const t = await store.getTask(second.taskId);
    expect(t!.state).toBe('failed');
    // the instance was restarted at least once before the agent was given up
    expect(restarts.length).toBeGreaterThan(0);
    expect(engine.agentErrors().fragile).toMatch(/not found|ENOENT/);
    const agents = await store.listAgents();
    expect(agents.find((a) => a.name === 'fragile')!.instances[0]!.state).toBe('terminated');
  });
});
