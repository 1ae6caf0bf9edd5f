/**
 * Bad input, end to end: malformed config and workflows, agents that are not installed, that print
 * binary garbage or 100 MB or never exit, stores that cannot be written, are not databases or are
 * locked, and bad arguments. Each must get a clear error (what, where, what to do), and nothing
 * already recorded may be lost.
 *
 * Real `node bin/smith.js` processes (the CLI runs from dist/: build first), one temp dir and home
 * per test.
 *
 * Part: unusable stores, bad arguments, nothing recorded is lost.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  lastJson,
  Sandbox,
  waitFor,
  type RunSummaryJson,
  type TaskDetailJson,
  type TaskRowJson,
  SH_AGENT,
  workflow,
  expectCleanError,
} from './fixtures/smith-cli.js';

let box: Sandbox;
beforeEach(() => {
  box = new Sandbox('smith-bad-');
});
afterEach(async () => {
  const left = box.processes();
  await box.cleanup();
  expect(left, 'agent processes left behind').toEqual([]);
});

describe('stores that cannot be used', () => {
  it('a home under a regular file: non-zero exit naming the path and what to do; nothing runs', async () => {
    writeFileSync(join(box.dir, 'afile'), 'just a file\n');
    box.write('wf.yaml', workflow('w', ['  a:', '    agent: sh', '    prompt: touch ran']));
    const home = join(box.dir, 'afile', 'home');
    const r = await box.run(['run', 'wf.yaml'], { home });
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expectCleanError(r);
    expect(r.stderr).toContain(home);
    expect(r.stderr).toMatch(/--home|SMITH_HOME/);
    expect(existsSync(join(box.dir, 'ran'))).toBe(false);
    expect(readFileSync(join(box.dir, 'afile'), 'utf8')).toBe('just a file\n');

    const ro = await box.run(['tasks'], { home });
    expect(ro.code).not.toBe(0);
    expectCleanError(ro);
    expect(ro.stderr).toContain(home);
  });

  it('a store file that is not a database: a clear message, and the file is left as it was', async () => {
    mkdirSync(box.home, { recursive: true });
    const garbage = Buffer.alloc(8192);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) % 256;
    const dbFile = join(box.home, 'smith.db');
    writeFileSync(dbFile, garbage);
    box.write('wf.yaml', workflow('w', ['  a:', '    agent: sh', '    prompt: touch ran']));

    for (const args of [['run', 'wf.yaml'], ['tasks'], ['audit', 'verify'], ['init']]) {
      const r = await box.run(args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.code).not.toBeNull();
      expectCleanError(r);
      expect(r.stderr).toContain(dbFile);
      expect(r.stderr).toMatch(/not a .*(store|database)/i);
      expect(r.stderr).toMatch(/move it away|another --home/);
    }
    expect(existsSync(join(box.dir, 'ran'))).toBe(false);
    expect(readFileSync(dbFile).equals(garbage)).toBe(true);
  });

  it('a store locked by another process: smith run exits 3 with a message, writes nothing; readers still read', async () => {
    box.write('wf.yaml', workflow('w', ['  a:', '    agent: sh', '    prompt: echo first']));
    expect((await box.run(['run', 'wf.yaml'])).code).toBe(0);
    const db = new Database(join(box.home, 'smith.db'));
    db.exec('BEGIN EXCLUSIVE');
    try {
      box.write('wf2.yaml', workflow('w2', ['  b:', '    agent: sh', '    prompt: touch ran']));
      const r = await box.run(['run', 'wf2.yaml']);
      expect(r.code).toBe(3);
      expectCleanError(r);
      expect(r.stderr).toContain(join(box.home, 'smith.db'));
      expect(r.stderr).toMatch(/locked/);
      expect(existsSync(join(box.dir, 'ran'))).toBe(false);
    } finally {
      db.exec('ROLLBACK');
      db.close();
    }
    const rows = (await box.json<TaskRowJson[]>(['tasks'])).value;
    expect(rows.map((t) => [t.key, t.state])).toEqual([['a', 'completed']]);
    expect((await box.run(['audit', 'verify'])).code).toBe(0);
  });
});

describe('bad arguments', () => {
  it('smith task NOPE exits 2 "not found"; smith tasks --state bogus exits 2 listing the states', async () => {
    box.write('wf.yaml', workflow('w', ['  a:', '    agent: sh', '    prompt: echo a']));
    expect((await box.run(['run', 'wf.yaml'])).code).toBe(0);

    const nope = await box.run(['task', 'NOPE']);
    expect(nope.code).toBe(2);
    expectCleanError(nope);
    expect(nope.stderr).toMatch(/not found/);
    expect(nope.stderr).toContain('NOPE');
    const nopeJson = await box.run(['task', 'NOPE', '--json']);
    expect(nopeJson.code).toBe(2);
    expect(lastJson<{ error: { code: string; message: string } }>(nopeJson).error.code).toBe(
      'TASK_NOT_FOUND',
    );

    const bogus = await box.run(['tasks', '--state', 'bogus']);
    expect(bogus.code).toBe(2);
    expectCleanError(bogus);
    expect(bogus.stderr).toContain('bogus');
    for (const s of ['pending', 'queued', 'running', 'paused', 'completed', 'failed', 'canceled']) {
      expect(bogus.stderr).toContain(s);
    }

    for (const verb of ['cancel', 'pause', 'resume-task', 'retry']) {
      const r = await box.run([verb, 'NOPE']);
      expect(r.code, verb).toBe(2);
      expect(r.stderr).toMatch(/not found/);
    }
    // numeric options are checked before anything runs
    box.write('smith.yaml', ['agents:', ...SH_AGENT, ''].join('\n'));
    for (const [args, option] of [
      [['run', '--agent', 'sh', '--retries', 'abc', 'touch ran'], '--retries'],
      [['run', '--agent', 'sh', '--priority', '99', 'touch ran'], '--priority'],
      [['run', '--agent', 'sh', '--concurrency', '0', 'touch ran'], '--concurrency'],
      [['run', '--agent', 'sh', '--timeout', 'soon', 'touch ran'], '--timeout'],
      [['tasks', '--limit', 'abc'], '--limit'],
    ] as const) {
      const r = await box.run([...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(option);
      expect(r.stderr).toMatch(/expected/);
    }
    expect(existsSync(join(box.dir, 'ran'))).toBe(false);
    expect((await box.json<TaskRowJson[]>(['tasks'])).value).toHaveLength(1);

    const unknownCommand = await box.run(['frobnicate']);
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toMatch(/unknown command/);
  });
});

describe('nothing already recorded is lost', () => {
  it('after failed and rejected runs, the earlier runs are intact and the audit chain verifies', async () => {
    box.write(
      'good.yaml',
      workflow('good', [
        '  one:',
        '    agent: sh',
        '    prompt: echo one',
        '  two:',
        '    agent: sh',
        '    needs: [one]',
        '    prompt: echo two',
      ]),
    );
    const good = await box.run(['run', 'good.yaml', '--json']);
    expect(good.code, good.stderr).toBe(0);
    const goodSum = lastJson<RunSummaryJson>(good);
    const before = (await box.json<TaskRowJson[]>(['tasks'])).value;

    // a run whose task fails, one whose agent never exits, a malformed one, an unknown agent
    box.write('fails.yaml', workflow('fails', ['  boom:', '    agent: sh', '    prompt: exit 7']));
    expect((await box.run(['run', 'fails.yaml'])).code).toBe(1);
    box.write(
      'stuck.yaml',
      workflow('stuck', ['  hang:', '    agent: sh', '    prompt: sleep 100', '    timeout: 500ms']),
    );
    expect((await box.run(['run', 'stuck.yaml'])).code).toBe(1);
    box.write('broken.yaml', 'name: broken\ntasks:\n  x: [\n');
    expect((await box.run(['run', 'broken.yaml'])).code).toBe(2);
    expect((await box.run(['run', '--agent', 'ghost', 'echo'])).code).toBe(2);
    // a smith.yaml broken after the fact: commands that need it fail clearly, read-only ones still
    // show what was recorded, and the store is untouched
    box.write('smith.yaml', 'agents: [\n');
    const refused = await box.run(['run', 'stuck.yaml']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/smith\.yaml/);
    expect((await box.run(['tasks'])).code).toBe(0);
    box.write('smith.yaml', '# fixed\n');

    const after = (await box.json<TaskRowJson[]>(['tasks'])).value;
    expect(after).toHaveLength(before.length + 2);
    for (const t of before) expect(after.find((a) => a.id === t.id)).toEqual(t);
    const goodTasks = (await box.json<TaskRowJson[]>(['tasks', '--workflow', goodSum.workflow.id])).value;
    expect(goodTasks.map((t) => [t.key, t.state])).toEqual([
      ['one', 'completed'],
      ['two', 'completed'],
    ]);
    const two = (await box.json<TaskDetailJson>(['task', goodSum.tasks.find((t) => t.key === 'two')!.id]))
      .value;
    expect(two.output?.trim()).toBe('two');
    expect(
      (await box.json<TaskRowJson[]>(['tasks', '--state', 'failed'])).value.map((t) => t.key).sort(),
    ).toEqual(['boom', 'hang']);

    const verify = await box.run(['audit', 'verify']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    await waitFor('no process of this home', () => box.processes().length === 0, 10_000);
  });
});
