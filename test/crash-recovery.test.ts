/**
 * The crash test: `smith run` on a few hundred short tasks, `kill -9` mid-run, `smith resume`.
 * Every task must complete exactly once in the record, the audit chain must verify, completed tasks
 * must never run again, and no agent process of the dead run may be left.
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProcessesByEnv, isAlive } from '../src/runtime/process/index.js';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { tempDir } from './helpers.js';

const BIN = resolve(__dirname, '..', 'bin', 'smith.js');
const TASKS = 300;

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = tempDir('smith-crash-');
});
afterAll(() => tmp.cleanup());

function workflowYaml(): string {
  const lines = [
    'name: crash',
    'agents:',
    '  sh:',
    '    runtime: process',
    '    command: ["sh", "-c", "{prompt}"]',
    '    capabilities: [shell]',
    '    concurrency: 8',
    'tasks:',
  ];
  for (let i = 0; i < TASKS; i++) {
    lines.push(`  t${i}:`);
    lines.push('    agent: sh');
    // every run of a task appends its key: the file shows how often each one ran
    lines.push(`    prompt: "sleep 0.0${(i % 5) + 1}; echo t${i} >> runs.log; echo done-t${i}"`);
    if (i >= 10 && i % 10 === 0) lines.push(`    needs: [t${i - 10}]`);
  }
  return lines.join('\n') + '\n';
}

async function completedCount(db: string): Promise<number> {
  const store = await openSqliteStore(db, { readonly: true });
  try {
    return (await store.listTasks({ state: ['completed'] })).length;
  } finally {
    await store.close();
  }
}

describe('crash recovery (kill -9 of smith run)', () => {
  it('resumes after kill -9: each task completes exactly once and no agent process is left', async () => {
    const home = join(tmp.dir, 'home');
    writeFileSync(join(tmp.dir, 'wf.yaml'), workflowYaml());
    const db = join(home, 'smith.db');
    const run = spawn(process.execPath, [BIN, '--home', home, 'run', 'wf.yaml', '--json'], {
      cwd: tmp.dir,
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    // let it get well under way
    for (;;) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        if ((await completedCount(db)) >= 40) break;
      } catch {
        // the store may not exist yet
      }
      expect(run.exitCode).toBeNull();
    }
    run.kill('SIGKILL');
    await new Promise((r) => run.once('exit', r));

    const store = await openSqliteStore(db, { readonly: true });
    const before = await store.listTasks({});
    await store.close();
    const completedBefore = before.filter((t) => t.state === 'completed');
    const runningBefore = before.filter((t) => t.state === 'running');
    expect(completedBefore.length).toBeGreaterThan(0);
    expect(completedBefore.length).toBeLessThan(TASKS);

    const resumed = spawnSync(process.execPath, [BIN, '--home', home, 'resume', '--json'], {
      cwd: tmp.dir,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(resumed.status, resumed.stderr).toBe(0);
    const summary = JSON.parse(resumed.stdout.trim().split('\n').pop()!) as {
      workflow: { state: string };
      tasks: { id: string; state: string }[];
    };
    expect(summary.workflow.state).toBe('completed');
    expect(summary.tasks).toHaveLength(TASKS);
    expect(summary.tasks.every((t) => t.state === 'completed')).toBe(true);

    const after = await openSqliteStore(db, { readonly: true });
    try {
      const records = await after.auditRecords(1, 1_000_000);
      const completions = new Map<string, number>();
      for (const r of records)
        if (r.action === 'task.completed') completions.set(r.subject, (completions.get(r.subject) ?? 0) + 1);
      expect(completions.size).toBe(TASKS);
      expect([...completions.values()].every((n) => n === 1)).toBe(true);
      // tasks that had completed before the crash never ran again
      for (const t of completedBefore) {
        const attempts = await after.getAttempts(t.id);
        expect(attempts.filter((a) => a.state !== 'lost')).toHaveLength(1);
      }
      // the attempts that were running when smith died are recorded as lost
      const lost = (await Promise.all(runningBefore.map((t) => after.getAttempts(t.id))))
        .flat()
        .filter((a) => a.state === 'lost');
      expect(lost.length).toBe(runningBefore.length);
      for (const a of lost) if (a.pid !== null) expect(isAlive(a.pid)).toBe(false);
    } finally {
      await after.close();
    }

    const verify = spawnSync(process.execPath, [BIN, '--home', home, 'audit', 'verify'], {
      encoding: 'utf8',
    });
    expect(verify.status, verify.stdout + verify.stderr).toBe(0);
    expect(findProcessesByEnv('SMITH_HOME', home)).toEqual([]);
  });
});
