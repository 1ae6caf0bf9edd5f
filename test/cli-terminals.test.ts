/**
 * End-to-end tests of the `smith` command: real `node bin/smith.js` processes, real agent processes,
 * a real SQLite file per test. Each test has its own temp dir (its cwd) and `--home`, and checks
 * that no agent process of its home is left behind.
 *
 * The CLI runs from dist/: run `npx tsc -p tsconfig.build.json` (or `npm test`, which builds) first.
 *
 * Part: several processes on one home, retries and interrupts.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { groupAlive, isAlive, readProcStat } from '../src/runtime/process/index.js';
import {
  lastJson,
  Sandbox,
  waitFor,
  type RunSummaryJson,
  type TaskRowJson,
  shAgent,
  byKey,
  taskDetail,
  tasksJson,
} from './fixtures/smith-cli.js';

let box: Sandbox;
beforeEach(() => {
  box = new Sandbox();
});
afterEach(async () => {
  const left = box.processes();
  await box.cleanup();
  expect(left, 'agent processes left behind').toEqual([]);
});

/** Start `smith run` on a workflow whose one task (`long`) sleeps 30 s; resolve once it runs. */
async function startHolder(
  args: string[] = [],
): Promise<{ first: ReturnType<Sandbox['start']>; long: TaskRowJson }> {
  box.write(
    'wf.yaml',
    [
      'name: holder',
      'agents:',
      ...shAgent('sh'),
      'tasks:',
      '  long:',
      '    agent: sh',
      '    prompt: sleep 30',
      '',
    ].join('\n'),
  );
  const first = box.start(['run', 'wf.yaml', ...args]);
  const long = await waitFor('the long task running', async () => {
    if (!existsSync(join(box.home, 'smith.db'))) return undefined;
    const r = await box.run(['tasks', '--json']);
    if (r.code !== 0) return undefined;
    return (JSON.parse(r.stdout) as TaskRowJson[]).find((t) => t.key === 'long' && t.state === 'running');
  });
  return { first, long };
}

describe('another terminal while a run goes on', () => {
  it('reads without recovering, pauses and resumes a running task, and cancels one from another process', async () => {
    box.write(
      'wf.yaml',
      [
        'name: live',
        'agents:',
        ...shAgent('sh', ['shell'], 4),
        'tasks:',
        '  long:',
        '    agent: sh',
        '    prompt: sleep 30',
        '  after_long:',
        '    agent: sh',
        '    needs: [long]',
        '    prompt: echo never',
        '  ticker:',
        '    agent: sh',
        '    prompt: "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 0.5; echo $i; done"',
        '  quick1:',
        '    agent: sh',
        '    prompt: echo q1',
        '  quick2:',
        '    agent: sh',
        '    prompt: echo q2',
        '',
      ].join('\n'),
    );
    const run = box.start(['run', 'wf.yaml', '--json']);
    const find = (rows: TaskRowJson[], key: string): TaskRowJson => rows.find((t) => t.key === key)!;

    // another process reads while the run goes on
    const rows = await waitFor('long and ticker running', async () => {
      if (!existsSync(join(box.home, 'smith.db'))) return undefined;
      const r = await box.run(['tasks', '--json']);
      if (r.code !== 0) return undefined;
      const ts = JSON.parse(r.stdout) as TaskRowJson[];
      return ts.length === 5 && find(ts, 'long').state === 'running' && find(ts, 'ticker').state === 'running'
        ? ts
        : undefined;
    });
    expect(run.child.exitCode).toBeNull();
    const long = find(rows, 'long');
    const ticker = find(rows, 'ticker');

    // pause the ticker from here at once (it runs for a few seconds only): its process stops (T)
    const paused = await box.run(['pause', ticker.id]);
    expect(paused.code, paused.stdout + paused.stderr).toBe(0);
    expect(paused.stdout).toMatch(/running -> paused/);
    const tickerNow = await taskDetail(box, ticker.id);
    expect(tickerNow.state).toBe('paused');
    const tickerPid = tickerNow.attempts_detail[0]!.pid!;
    await waitFor('the ticker process stopped', () => readProcStat(tickerPid)?.state === 'T', 10_000, 50);

    // meanwhile, read-only commands work beside the owner and recover nothing
    const agents = await box.json<{ name: string; instances: { state: string }[] }[]>(['agents']);
    expect(agents.r.code, agents.r.stderr).toBe(0);
    expect(agents.r.stderr).not.toMatch(/recover/);
    const shStates = agents.value.find((a) => a.name === 'sh')!.instances.map((i) => i.state);
    expect(shStates).toContain('busy');
    expect(shStates).toContain('paused');
    const verify = await box.run(['audit', 'verify']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stderr).not.toMatch(/recover/);
    const longNow = await taskDetail(box, long.id);
    expect(longNow.state).toBe('running');
    expect(longNow.attempts_detail).toHaveLength(1);
    expect(longNow.attempts_detail[0]!.state).toBe('running');
    const longPid = longNow.attempts_detail[0]!.pid!;
    expect(isAlive(longPid)).toBe(true);
    // still stopped: nothing above touched it
    expect(readProcStat(tickerPid)?.state).toBe('T');
    expect(run.child.exitCode).toBeNull();

    // resume it: it runs again and completes
    const resumed = await box.run(['resume-task', ticker.id]);
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/running/);
    await waitFor(
      'the ticker process running again',
      () => readProcStat(tickerPid)?.state !== 'T',
      10_000,
      50,
    );
    await waitFor(
      'the ticker completed',
      async () => (await taskDetail(box, ticker.id)).state === 'completed',
      30_000,
      200,
    );

    // cancel the long task from here: it ends canceled, its process group is gone, the run ends
    const cancel = await box.run(['cancel', long.id]);
    expect(cancel.code, cancel.stdout + cancel.stderr).toBe(0);
    expect(cancel.stdout).toMatch(/canceled/);
    const res = await run.done;
    expect(res.code, res.stderr).not.toBe(0);
    expect(res.code).not.toBeNull();
    expect(res.stderr).not.toMatch(/recovered/);
    const summary = lastJson<RunSummaryJson>(res);
    expect(['canceled', 'failed']).toContain(summary.workflow.state);
    const t = byKey(summary);
    expect(t.long!.state).toBe('canceled');
    expect(t.after_long!.state).toBe('canceled');
    expect(t.ticker).toMatchObject({ state: 'completed', attempts: 1 });
    expect(t.ticker!.output?.trim().split('\n')).toEqual([
      '1',
      '2',
      '3',
      '4',
      '5',
      '6',
      '7',
      '8',
      '9',
      '10',
      '11',
      '12',
    ]);
    expect(t.quick1).toMatchObject({ state: 'completed' });
    expect(t.quick1!.output?.trim()).toBe('q1');
    expect(t.quick2).toMatchObject({ state: 'completed' });
    expect(t.quick2!.output?.trim()).toBe('q2');
    expect(groupAlive(longPid)).toBe(false);
    expect(isAlive(longPid)).toBe(false);

    const detail = await taskDetail(box, long.id);
    expect(detail.state).toBe('canceled');
    expect(detail.attempts_detail[0]!.state).toBe('canceled');
    const tickerStates = (await taskDetail(box, ticker.id)).events
      .filter((e) => e.type === 'state')
      .map((e) => e.data.to);
    expect(tickerStates).toEqual(['queued', 'running', 'paused', 'running', 'completed']);
  });

  it('while a run owns the home, a request its task cannot take exits 2 with the reason', async () => {
    box.write(
      'wf.yaml',
      [
        'name: owned',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  long:',
        '    agent: sh',
        '    prompt: sleep 30',
        '  quick:',
        '    agent: sh',
        '    prompt: echo quick',
        '',
      ].join('\n'),
    );
    const run = box.start(['run', 'wf.yaml', '--json']);
    const rows = await waitFor('long running and quick completed', async () => {
      if (!existsSync(join(box.home, 'smith.db'))) return undefined;
      const r = await box.run(['tasks', '--json']);
      if (r.code !== 0) return undefined;
      const ts = JSON.parse(r.stdout) as TaskRowJson[];
      const state = (k: string): string | undefined => ts.find((t) => t.key === k)?.state;
      return state('long') === 'running' && state('quick') === 'completed' ? ts : undefined;
    });
    const long = rows.find((t) => t.key === 'long')!;
    const quick = rows.find((t) => t.key === 'quick')!;

    const retry = await box.run(['retry', quick.id]);
    expect(retry.code, retry.stdout + retry.stderr).toBe(2);
    expect(retry.stderr).toMatch(/never runs again/);
    const cancelDone = await box.run(['cancel', quick.id, '--json']);
    expect(cancelDone.code).toBe(2);
    expect(lastJson<{ error: { code: string; message: string } }>(cancelDone).error.message).toMatch(
      /completed/,
    );
    const resumeRunning = await box.run(['resume-task', long.id]);
    expect(resumeRunning.code).toBe(2);
    expect(resumeRunning.stderr).toMatch(/not paused/);
    // nothing changed
    expect((await taskDetail(box, quick.id)).state).toBe('completed');
    expect((await taskDetail(box, long.id)).state).toBe('running');

    expect((await box.run(['cancel', long.id])).code).toBe(0);
    const res = await run.done;
    expect(res.code).toBe(1);
    const t = byKey(lastJson<RunSummaryJson>(res));
    expect(t.long!.state).toBe('canceled');
    expect(t.quick).toMatchObject({ state: 'completed', attempts: 1 });
  });

  it('a second smith run in the same home hands its workflow to the running one and follows it to the end', async () => {
    box.write(
      'other.yaml',
      [
        'name: other',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  quick:',
        '    agent: sh',
        '    prompt: echo quick',
        '',
      ].join('\n'),
    );
    const { first, long } = await startHolder(['--json']);

    const second = await box.run(['run', 'other.yaml', '--json']);
    // the owner ran it: the second process names it, waits, and reports the same summary as a run
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain(String(first.child.pid));
    const otherSummary = lastJson<RunSummaryJson>(second);
    expect(otherSummary.workflow.name).toBe('other');
    expect(otherSummary.workflow.state).toBe('completed');
    expect(otherSummary.tasks.map((t) => [t.key, t.state, t.output])).toEqual([
      ['quick', 'completed', 'quick'],
    ]);
    // the first run goes on with its own task
    const rows = await tasksJson(box);
    expect(rows.find((t) => t.key === 'long')!.state).toBe('running');
    expect(first.child.exitCode).toBeNull();

    expect((await box.run(['cancel', long.id])).code).toBe(0);
    const res = await first.done;
    expect(res.code).toBe(1);
    expect(lastJson<RunSummaryJson>(res).workflow.state).toBe('canceled');
  });

  it('when the owner dies while it runs a handed-over workflow, the follower takes the home over and finishes it', async () => {
    box.write(
      'other.yaml',
      [
        'name: other',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  slow:',
        '    agent: sh',
        // long enough to be seen running by a `smith tasks` poll on a loaded machine
        '    prompt: sleep 8; echo slow',
        '',
      ].join('\n'),
    );
    const { first } = await startHolder();
    const second = box.start(['run', 'other.yaml', '--json']);
    await waitFor('the owner running the handed-over task', async () => {
      const r = await box.run(['tasks', '--json']);
      return (JSON.parse(r.stdout) as TaskRowJson[]).find((t) => t.key === 'slow' && t.state === 'running');
    });
    first.child.kill('SIGKILL');
    const res = await second.done;
    expect(res.code, res.stderr).toBe(0);
    const summary = lastJson<RunSummaryJson>(res);
    expect(summary.workflow.state).toBe('completed');
    expect(summary.tasks[0]!.output).toBe('slow');
    // the dead owner's own task was recovered (requeued), never left running
    const long = (await tasksJson(box)).find((t) => t.key === 'long')!;
    expect(long.state).toBe('queued');
    await box.run(['cancel', long.id]);
  });
});

describe('smith retry after the run ended', () => {
  it('puts a failed task back in the queue for smith resume; a completed task cannot be retried', async () => {
    box.write(
      'wf.yaml',
      [
        'name: retryable',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  ok:',
        '    agent: sh',
        '    prompt: echo ok',
        '  once:',
        '    agent: sh',
        // fails the first time it runs, succeeds after
        '    prompt: "if [ -e ran-once ]; then echo second-time; else touch ran-once; exit 3; fi"',
        '',
      ].join('\n'),
    );
    const first = await box.run(['run', 'wf.yaml', '--json']);
    expect(first.code).toBe(1);
    const t = byKey(lastJson<RunSummaryJson>(first));
    expect(t.once).toMatchObject({ state: 'failed', exit_code: 3, attempts: 1 });

    const retry = await box.run(['retry', t.once!.id]);
    expect(retry.code, retry.stdout + retry.stderr).toBe(0);
    expect(retry.stdout).toMatch(/failed -> queued/);
    expect(retry.stdout).toMatch(/smith resume/);
    expect((await tasksJson(box, ['--state', 'queued'])).map((x) => x.id)).toEqual([t.once!.id]);

    const resumed = await box.run(['resume', '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const summary = lastJson<RunSummaryJson>(resumed);
    expect(summary.workflow.state).toBe('completed');
    const after = byKey(summary);
    expect(after.once).toMatchObject({ state: 'completed', attempts: 2, exit_code: 0 });
    expect(after.once!.output?.trim()).toBe('second-time');
    expect(after.ok).toMatchObject({ state: 'completed', attempts: 1 });

    const again = await box.run(['retry', t.ok!.id]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/completed/);
    expect(again.stderr).toMatch(/never runs again|cannot be retried/);
    expect((await taskDetail(box, t.ok!.id)).state).toBe('completed');

    const verify = await box.run(['audit', 'verify']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });

  it('retrying a failed task also runs the tasks that were canceled because it failed', async () => {
    box.write(
      'wf.yaml',
      [
        'name: chain',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  once:',
        '    agent: sh',
        '    prompt: "if [ -e ran-once ]; then echo second-time; else touch ran-once; exit 3; fi"',
        '  after:',
        '    agent: sh',
        '    needs: [once]',
        '    prompt: "echo after {needs.once.output}"',
        '  last:',
        '    agent: sh',
        '    needs: [after]',
        '    prompt: echo last',
        '',
      ].join('\n'),
    );
    const first = await box.run(['run', 'wf.yaml', '--json']);
    expect(first.code).toBe(1);
    const t = byKey(lastJson<RunSummaryJson>(first));
    expect(t.after!.state).toBe('canceled');
    expect(t.last!.state).toBe('canceled');

    expect((await box.run(['retry', 'once'])).code).toBe(0);
    const resumed = await box.run(['resume', '--json']);
    const summary = lastJson<RunSummaryJson>(resumed);
    const after = byKey(summary);
    expect(after.once).toMatchObject({ state: 'completed', attempts: 2 });
    // the dependents were canceled only because "once" failed: now that it completed they run
    expect(after.after).toMatchObject({ state: 'completed', attempts: 1 });
    expect(after.after!.output?.trim()).toBe('after second-time');
    expect(after.last).toMatchObject({ state: 'completed', attempts: 1 });
    expect(summary.workflow.state).toBe('completed');
    expect(resumed.code, resumed.stderr).toBe(0);
  });
});

describe('interrupting smith run', () => {
  it('SIGINT ends the running attempts and exits 130; smith resume finishes the work and loses nothing', async () => {
    box.write(
      'wf.yaml',
      [
        'name: interrupted',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  done_first:',
        '    agent: sh',
        '    prompt: echo early',
        '  slow:',
        '    agent: sh',
        // the first attempt outlasts the interrupt; the one after "smith resume" is quick
        '    prompt: "if [ $SMITH_ATTEMPT = 1 ]; then sleep 20; fi; echo slow-done"',
        '  after:',
        '    agent: sh',
        '    needs: [slow]',
        '    prompt: echo after',
        '',
      ].join('\n'),
    );
    const run = box.start(['run', 'wf.yaml', '--json']);
    const rows = await waitFor('slow running and done_first completed', async () => {
      if (!existsSync(join(box.home, 'smith.db'))) return undefined;
      const r = await box.run(['tasks', '--json']);
      if (r.code !== 0) return undefined;
      const ts = JSON.parse(r.stdout) as TaskRowJson[];
      const state = (k: string): string | undefined => ts.find((x) => x.key === k)?.state;
      return state('slow') === 'running' && state('done_first') === 'completed' ? ts : undefined;
    });
    const slowPid = (await taskDetail(box, rows.find((x) => x.key === 'slow')!.id)).attempts_detail[0]!.pid!;
    run.child.kill('SIGINT');
    const res = await run.done;
    expect(res.code).toBe(130);
    expect(res.stderr).toMatch(/smith resume/);
    expect(groupAlive(slowPid)).toBe(false);
    expect(box.processes()).toEqual([]);
    const between = Object.fromEntries((await tasksJson(box)).map((x) => [x.key, x.state]));
    expect(between).toEqual({ done_first: 'completed', slow: 'queued', after: 'pending' });

    const resumed = await box.run(['resume', '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const summary = lastJson<RunSummaryJson>(resumed);
    expect(summary.workflow.state).toBe('completed');
    const t = byKey(summary);
    expect(t.done_first).toMatchObject({ state: 'completed', attempts: 1 }); // never ran again
    expect(t.slow!.output?.trim()).toBe('slow-done');
    expect(t.after!.state).toBe('completed');
    expect((await box.run(['audit', 'verify'])).code).toBe(0);
  });
});
