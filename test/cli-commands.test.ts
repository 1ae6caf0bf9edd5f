/**
 * End-to-end tests of the `smith` command: real `node bin/smith.js` processes, real agent processes,
 * a real SQLite file per test. Each test has its own temp dir (its cwd) and `--home`, and checks
 * that no agent process of its home is left behind.
 *
 * The CLI runs from dist/: run `npx tsc -p tsconfig.build.json` (or `npm test`, which builds) first.
 *
 * Part: the commands one at a time.
 */
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { groupAlive, isAlive } from '../src/runtime/process/index.js';
import {
  ECHO_AGENT,
  lastJson,
  Sandbox,
  yamlArgv,
  type RunSummaryJson,
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

/** The agent that echoes what it got (test/fixtures/echo-agent.mjs). */
function echoAgent(name: string, capabilities: string[]): string[] {
  return [
    `  ${name}:`,
    '    runtime: process',
    `    command: ${yamlArgv([process.execPath, ECHO_AGENT, '{prompt}'])}`,
    `    capabilities: [${capabilities.join(', ')}]`,
    '    concurrency: 2',
  ];
}

interface EchoReport {
  stdin: {
    id: string;
    key: string;
    prompt: string;
    attempt: number;
    needs: Record<string, { id: string; output: string | null }>;
  };
  env: { SMITH_TASK_ID: string; SMITH_ATTEMPT: string; SMITH_WORKDIR: string };
  cwd: string;
  argv: string[];
}

describe('smith init', () => {
  it('writes a commented starter smith.yaml that validates, and the store; a second init leaves smith.yaml as it is', async () => {
    const first = await box.run(['init']);
    expect(first.code, first.stderr).toBe(0);
    const configPath = join(box.dir, 'smith.yaml');
    const starter = readFileSync(configPath, 'utf8');
    expect(starter).toMatch(/^#/m);
    expect(starter).toMatch(/agents:/);
    expect(existsSync(join(box.home, 'smith.db'))).toBe(true);

    // the starter validates: a command that loads it works, and its "sh" agent runs
    const run = await box.run(['run', '--agent', 'sh', 'echo from-starter', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(lastJson<RunSummaryJson>(run).tasks[0]!.output?.trim()).toBe('from-starter');

    const edited = starter + '\n# my own note\n';
    writeFileSync(configPath, edited);
    const second = await box.run(['init']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/already exists/);
    expect(readFileSync(configPath, 'utf8')).toBe(edited);
    // the store and what it recorded are still there
    expect(await tasksJson(box)).toHaveLength(1);
  });
});

describe('smith run WORKFLOW.yaml', () => {
  it('runs a fan-out / fan-in DAG: routing, needs outputs, task JSON on stdin, env, working directories', async () => {
    const flows = join(box.dir, 'flows');
    mkdirSync(join(flows, 'sub'), { recursive: true });
    box.write(
      'flows/wf.yaml',
      [
        'name: dag',
        'agents:',
        ...shAgent('sh', ['shell']),
        ...echoAgent('echo', ['echo']),
        'tasks:',
        '  root:',
        '    agent: sh',
        '    prompt: printf root-out',
        '  left:',
        '    needs: [root]',
        '    capabilities: [shell]',
        `    prompt: "printf 'left got %s in %s' '{needs.root.output}' \\"$(pwd)\\""`,
        '  right:',
        '    needs: [root]',
        '    capabilities: [echo]',
        '    prompt: "right {needs.root.output}"',
        '  join:',
        '    needs: [left, right]',
        '    capabilities: [echo]',
        '    prompt: "join {needs.left.output}"',
        '    workdir: sub',
        '',
      ].join('\n'),
    );
    // run from the sandbox: tasks must run in the workflow file's folder (flows/), not the cwd
    const r = await box.run(['run', 'flows/wf.yaml', '--json']);
    expect(r.code, r.stderr).toBe(0);

    // stdout is exactly one JSON object: the summary
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const summary = JSON.parse(lines[0]!) as RunSummaryJson;
    expect(Object.keys(summary).sort()).toEqual(['tasks', 'workflow']);
    expect(summary.workflow).toEqual({ id: expect.any(String), name: 'dag', state: 'completed' });
    expect(summary.tasks.map((t) => t.key).sort()).toEqual(['join', 'left', 'right', 'root']);
    for (const t of summary.tasks) {
      expect(t).toMatchObject({ id: expect.any(String), state: 'completed', attempts: 1, exit_code: 0 });
      expect(typeof t.output).toBe('string');
    }
    const tasks = byKey(summary);
    const dir = realpathSync(flows);

    expect(tasks.root!.output).toBe('root-out');
    expect(tasks.left!.output).toBe(`left got root-out in ${dir}`);

    // capabilities routing: [shell] went to sh, [echo] to echo
    const rows = await tasksJson(box, ['--workflow', summary.workflow.id]);
    const agentOf = Object.fromEntries(rows.map((t) => [t.key, t.agent]));
    expect(agentOf).toEqual({ root: 'sh', left: 'sh', right: 'echo', join: 'echo' });

    const right = JSON.parse(tasks.right!.output!) as EchoReport;
    expect(right.stdin).toMatchObject({
      id: tasks.right!.id,
      key: 'right',
      prompt: 'right root-out',
      attempt: 1,
      needs: { root: { id: tasks.root!.id, output: 'root-out' } },
    });
    expect(right.env).toEqual({ SMITH_TASK_ID: tasks.right!.id, SMITH_ATTEMPT: '1', SMITH_WORKDIR: dir });
    expect(realpathSync(right.cwd)).toBe(dir);
    expect(right.argv).toEqual(['right root-out']); // {prompt} is one argument

    const join_ = JSON.parse(tasks.join!.output!) as EchoReport;
    expect(join_.stdin).toMatchObject({
      id: tasks.join!.id,
      key: 'join',
      prompt: `join left got root-out in ${dir}`,
      attempt: 1,
      needs: {
        left: { id: tasks.left!.id, output: tasks.left!.output },
        right: { id: tasks.right!.id, output: tasks.right!.output },
      },
    });
    // workdir: resolved against the workflow file's folder
    expect(join_.env.SMITH_WORKDIR).toBe(join(dir, 'sub'));
    expect(realpathSync(join_.cwd)).toBe(join(dir, 'sub'));
  });

  it('exits non-zero when a task fails: dependents canceled, independent tasks completed; retries count attempts', async () => {
    box.write(
      'wf.yaml',
      [
        'name: mixed',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  bad:',
        '    agent: sh',
        '    prompt: "echo about to fail; exit 3"',
        '  after_bad:',
        '    agent: sh',
        '    needs: [bad]',
        '    prompt: echo never',
        '  after_after:',
        '    agent: sh',
        '    needs: [after_bad]',
        '    prompt: echo never either',
        '  independent:',
        '    agent: sh',
        '    prompt: echo fine',
        '  flaky:',
        '    agent: sh',
        '    retries: 2',
        // fails on its first two attempts, succeeds on the third (a counter file in the workdir)
        '    prompt: "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; if [ $n -ge 3 ]; then echo third-time; else exit 1; fi"',
        '',
      ].join('\n'),
    );
    const r = await box.run(['run', 'wf.yaml', '--json']);
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.code).not.toBeNull();
    const summary = lastJson<RunSummaryJson>(r);
    expect(summary.workflow.state).toBe('failed');
    const t = byKey(summary);
    expect(t.bad).toMatchObject({ state: 'failed', exit_code: 3, attempts: 1 });
    expect(t.after_bad).toMatchObject({ state: 'canceled', attempts: 0 });
    expect(t.after_after).toMatchObject({ state: 'canceled', attempts: 0 });
    expect(t.independent).toMatchObject({ state: 'completed', exit_code: 0 });
    expect(t.independent!.output?.trim()).toBe('fine');
    expect(t.flaky).toMatchObject({ state: 'completed', attempts: 3, exit_code: 0 });
    expect(t.flaky!.output?.trim()).toBe('third-time');
    expect(readFileSync(join(box.dir, 'count'), 'utf8').trim()).toBe('3');

    // the human summary says the same
    const detail = await taskDetail(box, t.flaky!.id);
    expect(detail.attempts_detail.map((a) => a.state)).toEqual(['failed', 'failed', 'succeeded']);
    expect(detail.attempts_detail.map((a) => a.exit_code)).toEqual([1, 1, 0]);
  });

  it('a task that outlives its timeout fails with the reason, and its process is gone', async () => {
    box.write(
      'wf.yaml',
      [
        'name: slow',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  sleepy:',
        '    agent: sh',
        '    prompt: sleep 100',
        '    timeout: 1s',
        '',
      ].join('\n'),
    );
    const r = await box.run(['run', 'wf.yaml', '--json']);
    expect(r.code, r.stderr).not.toBe(0);
    const summary = lastJson<RunSummaryJson>(r);
    expect(summary.workflow.state).toBe('failed');
    const sleepy = summary.tasks[0]!;
    expect(sleepy.state).toBe('failed');
    const detail = await taskDetail(box, sleepy.id);
    expect(detail.reason).toMatch(/timed out/);
    const pid = detail.attempts_detail[0]!.pid;
    expect(pid).toEqual(expect.any(Number));
    expect(isAlive(pid!)).toBe(false);
    expect(groupAlive(pid!)).toBe(false);

    // the human table names the reason too
    const human = await box.run(['task', sleepy.id]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/timed out/);
  });
});

describe('smith run --agent NAME "prompt"', () => {
  it('runs one task on an agent of smith.yaml and prints the summary; an unknown agent exits 2 naming the known ones', async () => {
    box.write('smith.yaml', ['agents:', ...shAgent('sh'), ...shAgent('other', ['other'])].join('\n') + '\n');
    const r = await box.run(['run', '--agent', 'sh', 'echo hi']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/completed/);
    expect(r.stdout).toMatch(/\bhi\b/);
    const rows = await tasksJson(box);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ agent: 'sh', state: 'completed', attempts: 1 });

    const unknown = await box.run(['run', '--agent', 'nobody', 'echo hi']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/nobody/);
    expect(unknown.stderr).toMatch(/\bsh\b/);
    expect(unknown.stderr).toMatch(/\bother\b/);
    expect(await tasksJson(box)).toHaveLength(1); // nothing new was recorded
  });
});

describe('smith tasks, smith task, smith agents', () => {
  it('lists and filters tasks, shows one task with attempts and events, and lists agents', async () => {
    box.write(
      'alpha.yaml',
      [
        'name: alpha',
        'agents:',
        ...shAgent('sh'),
        ...shAgent('sh2', ['other']),
        'tasks:',
        '  reporter:',
        '    agent: sh',
        '    prompt: |',
        `      echo '{"type":"progress","pct":50,"message":"half"}'`,
        '      echo a plain log line',
        `      echo '{"type":"result","output":"all done"}'`,
        '  breaker:',
        '    agent: sh2',
        '    needs: [reporter]',
        '    prompt: exit 3',
        '',
      ].join('\n'),
    );
    box.write(
      'beta.yaml',
      [
        'name: beta',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  lone:',
        '    agent: sh',
        '    prompt: echo beta',
        '',
      ].join('\n'),
    );
    const alpha = await box.run(['run', 'alpha.yaml', '--json']);
    expect(alpha.code).toBe(1);
    const alphaSum = lastJson<RunSummaryJson>(alpha);
    const beta = await box.run(['run', 'beta.yaml', '--json']);
    expect(beta.code, beta.stderr).toBe(0);
    const betaSum = lastJson<RunSummaryJson>(beta);

    const all = await tasksJson(box);
    expect(all).toHaveLength(3);
    for (const t of all) {
      expect(t).toMatchObject({
        id: expect.any(String),
        key: expect.any(String),
        workflow_id: expect.any(String),
        agent: expect.any(String),
        state: expect.any(String),
        attempts: expect.any(Number),
      });
    }
    const reporter = all.find((t) => t.key === 'reporter')!;
    expect(reporter).toMatchObject({
      workflow_id: alphaSum.workflow.id,
      agent: 'sh',
      state: 'completed',
      attempts: 1,
    });

    const failed = await tasksJson(box, ['--state', 'failed']);
    expect(failed.map((t) => t.key)).toEqual(['breaker']);
    expect(failed[0]).toMatchObject({ state: 'failed', exit_code: 3, agent: 'sh2' });
    expect((await tasksJson(box, ['--state', 'failed,completed'])).map((t) => t.key).sort()).toEqual([
      'breaker',
      'lone',
      'reporter',
    ]);
    expect((await tasksJson(box, ['--agent', 'sh2'])).map((t) => t.key)).toEqual(['breaker']);
    expect((await tasksJson(box, ['--agent', 'sh'])).map((t) => t.key).sort()).toEqual(['lone', 'reporter']);
    expect((await tasksJson(box, ['--workflow', betaSum.workflow.id])).map((t) => t.key)).toEqual(['lone']);
    expect((await tasksJson(box, ['--workflow', 'alpha'])).map((t) => t.key).sort()).toEqual([
      'breaker',
      'reporter',
    ]);

    // one task: attempts and events, state events in order, the progress event
    const d = await taskDetail(box, reporter.id);
    expect(d.output).toBe('all done');
    expect(d.attempts_detail).toHaveLength(1);
    expect(d.attempts_detail[0]).toMatchObject({ number: 1, state: 'succeeded', exit_code: 0 });
    const states = d.events.filter((e) => e.type === 'state').map((e) => e.data.to);
    expect(states).toEqual(['queued', 'running', 'completed']);
    const seqs = d.events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    const progress = d.events.filter((e) => e.type === 'progress');
    expect(progress).toHaveLength(1);
    expect(progress[0]!.data).toMatchObject({ pct: 50, message: 'half' });
    const logs = d.events.filter((e) => e.type === 'log').map((e) => e.data.line);
    expect(logs).toContain('a plain log line');
    // a task whose need was recorded first starts pending
    const breaker = await taskDetail(box, failed[0]!.id);
    expect(breaker.events.filter((e) => e.type === 'state').map((e) => e.data.to)).toEqual([
      'pending',
      'queued',
      'running',
      'failed',
    ]);

    // by key, in human form
    const byKeyOut = await box.run(['task', 'reporter']);
    expect(byKeyOut.code, byKeyOut.stderr).toBe(0);
    expect(byKeyOut.stdout).toContain(reporter.id);
    expect(byKeyOut.stdout).toMatch(/completed/);
    expect(byKeyOut.stdout).toMatch(/50% half/);
    expect(byKeyOut.stdout).toMatch(/all done/);
    const byKeyJson = await taskDetail(box, 'reporter');
    expect(byKeyJson.id).toBe(reporter.id);

    // the human list
    const list = await box.run(['tasks']);
    expect(list.code, list.stderr).toBe(0);
    for (const t of all) expect(list.stdout).toContain(t.id);

    // agents with the states of their instances (nobody owns the home now: terminated)
    const { r: ar, value: agents } = await box.json<
      {
        name: string;
        runtime: string;
        capabilities: string[];
        instances: { index: number; state: string }[];
      }[]
    >(['agents']);
    expect(ar.code, ar.stderr).toBe(0);
    expect(agents.map((a) => a.name).sort()).toEqual(['sh', 'sh2']);
    const sh = agents.find((a) => a.name === 'sh')!;
    expect(sh).toMatchObject({ runtime: 'process', capabilities: ['shell'] });
    expect(sh.instances).toHaveLength(4);
    for (const i of sh.instances) expect(i.state).toBe('terminated');
    const agentsHuman = await box.run(['agents']);
    expect(agentsHuman.code, agentsHuman.stderr).toBe(0);
    expect(agentsHuman.stdout).toMatch(/sh2/);
  });
});

describe('smith audit verify', () => {
  it('passes after runs, and names the record that was changed or deleted in the SQLite file', async () => {
    box.write(
      'wf.yaml',
      [
        'name: audited',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  a:',
        '    agent: sh',
        '    prompt: echo a',
        '  b:',
        '    agent: sh',
        '    needs: [a]',
        '    prompt: echo b',
        '',
      ].join('\n'),
    );
    expect((await box.run(['run', 'wf.yaml'])).code).toBe(0);
    expect((await box.run(['run', 'wf.yaml'])).code).toBe(0);
    const ok = await box.run(['audit', 'verify']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/verified/);

    const dbFile = join(box.home, 'smith.db');
    const db = new Database(dbFile);
    const original = (db.prepare('SELECT data FROM audit_records WHERE seq = 3').get() as { data: string })
      .data;
    db.prepare(`UPDATE audit_records SET data = '{"x":1}' WHERE seq = 3`).run();
    db.close();

    const changed = await box.run(['audit', 'verify']);
    expect(changed.code).toBe(1);
    expect(changed.stdout).toMatch(/record 3\b/);
    const changedJson = await box.json<{ ok: boolean; broken: { seq: number; reason: string } }>([
      'audit',
      'verify',
    ]);
    expect(changedJson.r.code).toBe(1);
    expect(changedJson.value).toMatchObject({ ok: false, broken: { seq: 3 } });

    // put it back: the chain verifies again
    const db2 = new Database(dbFile);
    db2.prepare('UPDATE audit_records SET data = ? WHERE seq = 3').run(original);
    expect((await box.run(['audit', 'verify'])).code).toBe(0);

    db2.prepare('DELETE FROM audit_records WHERE seq = 5').run();
    db2.close();
    const deleted = await box.run(['audit', 'verify']);
    expect(deleted.code).toBe(1);
    expect(deleted.stdout).toMatch(/BROKEN/);
    expect(deleted.stdout).toMatch(/missing/);
    // the record that is gone is the one named: 5, not its intact successor
    expect(deleted.stdout).toMatch(/record 5\b/);
    const deletedJson = await box.json<{ ok: boolean; broken: { seq: number } }>(['audit', 'verify']);
    expect(deletedJson.value).toMatchObject({ ok: false, broken: { seq: 5 } });
  });
});
