/**
 * The `smith` CLI with SMITH_URL and SMITH_API_KEY set talks to a real `smith serve` (a child
 * process on a loopback port, with real agent processes) and prints what it prints embedded. The
 * client runs in its own directory with no home of its own, so nothing embedded is touched.
 */
import { createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServe, type ServeProcess } from './fixtures/smith-server.js';
import {
  byKey,
  expectCleanError,
  lastJson,
  Sandbox,
  shAgent,
  waitFor,
  type RunSummaryJson,
  type SmithResult,
  type TaskDetailJson,
  type TaskRowJson,
} from './fixtures/smith-cli.js';

let box: Sandbox;
let client: Sandbox;
let srv: ServeProcess;

beforeAll(async () => {
  box = new Sandbox('smith-remote-srv-');
  client = new Sandbox('smith-remote-cli-');
  box.write('smith.yaml', ['agents:', ...shAgent('sh', ['shell'], 4)].join('\n') + '\n');
  srv = await startServe(box);
});
afterAll(async () => {
  await srv?.stop();
  await client?.cleanup();
  await box?.cleanup();
});

/** `smith ARGS` in the client's directory, talking to the server. */
function remote(args: string[], env: Record<string, string> = {}): Promise<SmithResult> {
  return client.run(args, {
    home: null,
    env: { SMITH_URL: srv.url, SMITH_API_KEY: srv.token, ...env },
  });
}

/** `smith ARGS --json` remotely; expects exit `code` (default 0) and parses the last line. */
async function remoteJson<T>(args: string[], code = 0): Promise<T> {
  const r = await remote([...args, '--json']);
  expect(r.code, r.stderr).toBe(code);
  return lastJson<T>(r);
}

/** `smith --home <server's home> ARGS` embedded (read-only commands run beside the server). */
function embedded(args: string[]): Promise<SmithResult> {
  return box.run(args);
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const WORKFLOW = [
  'name: greet',
  'tasks:',
  '  hello:',
  '    agent: sh',
  '    prompt: echo hello-remote',
  '  shout:',
  '    agent: sh',
  '    needs: [hello]',
  '    prompt: echo SHOUT; echo second line',
  '',
].join('\n');

describe('smith run against a server', () => {
  it('runs a workflow file on the server and prints the RunSummary; exit 0 when it completed', async () => {
    client.write('wf.yaml', WORKFLOW);
    const summary = await remoteJson<RunSummaryJson>(['run', 'wf.yaml']);
    expect(summary.workflow).toMatchObject({ name: 'greet', state: 'completed' });
    const tasks = byKey(summary);
    expect(tasks.hello).toMatchObject({ state: 'completed', attempts: 1, exit_code: 0, agent: 'sh' });
    expect(tasks.hello!.output).toBe('hello-remote');
    expect(tasks.shout!.output).toBe('SHOUT\nsecond line');
    // the client has no home: the work was done by the server's
    expect(existsSync(join(client.dir, '.smith'))).toBe(false);
  });

  it('exits 1 with the failed workflow summary when a task fails', async () => {
    client.write(
      'fail.yaml',
      ['name: breaks', 'tasks:', '  boom:', '    agent: sh', '    prompt: echo oops; exit 3', ''].join('\n'),
    );
    const summary = await remoteJson<RunSummaryJson>(['run', 'fail.yaml'], 1);
    expect(summary.workflow.state).toBe('failed');
    expect(byKey(summary).boom).toMatchObject({ state: 'failed', exit_code: 3 });
    const human = await remote(['run', 'fail.yaml']);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/workflow breaks \(w_[0-9A-Z]+\): failed/);
    expect(human.stderr).toMatch(/boom failed/);
  });

  it('runs one task with --agent and names the file of a workflow that cannot run', async () => {
    const summary = await remoteJson<RunSummaryJson>(['run', '--agent', 'sh', 'echo hi']);
    expect(summary.workflow).toMatchObject({ name: 'sh', state: 'completed' });
    expect(summary.tasks).toHaveLength(1);
    expect(summary.tasks[0]).toMatchObject({ key: 'sh', state: 'completed', output: 'hi' });

    const ghost = await remote(['run', '--agent', 'ghost', 'echo hi']);
    expect(ghost.code).toBe(2);
    expect(ghost.stderr).toMatch(/no agent named "ghost".*known agents: sh/);

    const bad = client.write(
      'bad.yaml',
      ['name: bad', 'tasks:', '  a:', '    agent: nobody', '    prompt: x', ''].join('\n'),
    );
    const r = await remote(['run', 'bad.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}:4:12: tasks.a.agent`);
    expectCleanError(r);
  });
});

describe('reading the server', () => {
  it('prints the same tasks and task as the embedded commands reading the same home', async () => {
    await remoteJson<RunSummaryJson>(['run', 'wf.yaml']);
    const remoteTasks = await remoteJson<TaskRowJson[]>(['tasks']);
    const local = await embedded(['tasks', '--json']);
    expect(local.code, local.stderr).toBe(0);
    expect(remoteTasks).toEqual(lastJson(local));
    expect(remoteTasks.length).toBeGreaterThanOrEqual(4);

    const newest = await remoteJson<TaskRowJson[]>(['tasks', '--limit', '2', '--state', 'completed']);
    expect(newest).toEqual(
      lastJson(await embedded(['tasks', '--limit', '2', '--state', 'completed', '--json'])),
    );

    // by key (the newest run of it), as embedded
    const detail = await remoteJson<TaskDetailJson>(['task', 'shout']);
    expect(detail).toEqual(lastJson(await embedded(['task', 'shout', '--json'])));
    expect(detail.output).toBe('SHOUT\nsecond line');
    expect(detail.attempts_detail[0]).toMatchObject({ state: 'succeeded', exit_code: 0 });

    // the tables too, byte for byte
    const [rt, et] = await Promise.all([remote(['tasks']), embedded(['tasks'])]);
    expect(rt.stdout).toBe(et.stdout);
    expect(rt.stdout).toMatch(/shout\s+completed\s+sh\s+1/);
    const [rd, ed] = await Promise.all([remote(['task', detail.id]), embedded(['task', detail.id])]);
    expect(rd.stdout).toBe(ed.stdout);

    const agents = await remoteJson<{ name: string; instances: unknown[] }[]>(['agents']);
    expect(agents.map((a) => a.name)).toEqual(['sh']);
    expect(agents).toEqual(lastJson(await embedded(['agents', '--json'])));
  });

  it('verifies the audit chain on the server', async () => {
    const r = await remote(['audit', 'verify']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^audit chain verified: \d+ records/);
  });

  it('says there is nothing to resume when every workflow on the server has ended', async () => {
    const r = await remote(['resume']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/nothing to resume/);
  });
});

describe('interventions over the server', () => {
  it('cancels a running task; the run following it ends with the workflow canceled', async () => {
    const run = client.start(['run', '--agent', 'sh', 'sleep 30', '--json'], {
      home: null,
      env: { SMITH_URL: srv.url, SMITH_API_KEY: srv.token },
    });
    const running = await waitFor('the task to run on the server', async () => {
      const r = await remote(['tasks', '--state', 'running', '--json']);
      return r.code === 0 ? lastJson<TaskRowJson[]>(r)[0] : undefined;
    });
    const c = await remote(['cancel', running.id]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain(`task ${running.id} (sh): running -> canceled`);
    const done = await run.done;
    expect(done.code).toBe(1);
    const summary = lastJson<RunSummaryJson>(done);
    expect(summary.workflow.state).toBe('canceled');
    expect(summary.tasks[0]!.state).toBe('canceled');
    // a second cancel is refused as embedded: the task has ended
    const again = await remote(['cancel', running.id]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/nothing to cancel/);
  });

  it('exits 2 with the server message for an unknown task', async () => {
    const r = await remote(['task', 'no-such-task']);
    expect(r.code).toBe(2);
    const res = await fetch(`${srv.url}/api/v1/tasks?match=no-such-task`, {
      headers: { authorization: `Bearer ${srv.token}` },
    });
    expect(res.status).toBe(404);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe('TASK_NOT_FOUND');
    expect(r.stderr).toBe(`smith: ${body.message}\n`);
    const j = await remote(['retry', 'no-such-task', '--json']);
    expect(j.code).toBe(2);
    expect(lastJson(j)).toEqual({ error: { code: 'TASK_NOT_FOUND', message: body.message } });
  });
});

describe('keys and roles', () => {
  it('exits 2 naming SMITH_API_KEY for a wrong key, and names the role a key lacks', async () => {
    const wrong = await remote(['tasks'], { SMITH_API_KEY: 'smk_0123456789abcdef_' + 'A'.repeat(43) });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/SMITH_API_KEY/);
    expectCleanError(wrong);

    const viewer = (await remoteJson<{ token: string }>(['keys', 'create', '--role', 'viewer'])).token;
    const denied = await remote(['run', '--agent', 'sh', 'echo no'], { SMITH_API_KEY: viewer });
    expect(denied.code).toBe(2);
    expect(denied.stderr).toMatch(/SMITH_API_KEY.*operator role/);

    const none = await remote(['tasks'], { SMITH_API_KEY: '' });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/SMITH_API_KEY is not/);
  });

  it('exits 4 naming SMITH_URL when no server listens there', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const r = await remote(['tasks'], { SMITH_URL: url });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`SMITH_URL=${url}`);
    expect(r.stderr).toMatch(/connection refused/);
    expectCleanError(r);
  });

  it('creates, lists and revokes keys on the server; a revoked key stops working', async () => {
    const made = await remoteJson<{ id: string; role: string; name: string; token: string }>([
      'keys',
      'create',
      '--role',
      'operator',
      '--name',
      'ci',
    ]);
    expect(made).toMatchObject({ role: 'operator', name: 'ci' });
    expect(made.token).toMatch(/^smk_[0-9a-f]{16}_/);
    const ok = await remote(['tasks', '--json'], { SMITH_API_KEY: made.token });
    expect(ok.code, ok.stderr).toBe(0);

    const listed = await remoteJson<{ id: string; status: string; name: string }[]>(['keys', 'list']);
    expect(listed.find((k) => k.id === made.id)).toMatchObject({ status: 'active', name: 'ci' });
    expect(JSON.stringify(listed)).not.toContain(made.token);
    expect(listed).toEqual(lastJson(await embedded(['keys', 'list', '--json'])));

    expect(await remoteJson(['keys', 'revoke', made.id])).toEqual({
      id: made.id,
      role: 'operator',
      revoked: true,
    });
    const after = await remoteJson<{ id: string; status: string }[]>(['keys', 'list']);
    expect(after.find((k) => k.id === made.id)?.status).toBe('revoked');
    const refused = await remote(['tasks'], { SMITH_API_KEY: made.token });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/refused the key in SMITH_API_KEY.*revoked/);
  });
});

describe('waivers over the server', () => {
  it('adds, lists and revokes a waiver; the list is the one embedded prints', async () => {
    const add = await remoteJson<{ id: string; task: string; gates: string[]; status: string }>([
      'waiver',
      'add',
      '--task',
      'hello',
      '--gates',
      'quality,budget',
      '--reason',
      'generated fixtures are large on purpose',
      '--approver',
      'alice',
      '--expires',
      '2d',
    ]);
    expect(add).toMatchObject({ gates: ['quality', 'budget'], status: 'active' });
    expect(add.id).toMatch(/^WV-\d{4}$/);
    const hello = await remoteJson<TaskDetailJson>(['task', 'hello']);
    expect(add.task).toBe(hello.id);

    const listed = await remoteJson<{ id: string; effective: string }[]>([
      'waiver',
      'list',
      '--task',
      'hello',
    ]);
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ id: add.id, effective: 'active' });
    expect(listed).toEqual(lastJson(await embedded(['waiver', 'list', '--task', 'hello', '--json'])));

    const human = await remote(['waiver', 'list']);
    expect(human.stdout).toMatch(new RegExp(`${add.id}\\s+${hello.id}\\s+quality,budget\\s+active`));

    const bad = await remote([
      'waiver',
      'add',
      '--task',
      'hello',
      '--gates',
      'nope',
      '--reason',
      'short',
      '--approver',
      'bob',
      '--expires',
      '1h',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/gate "nope" is unknown.*reason is too short/);

    const revoked = await remoteJson<{ id: string; status: string; revokedBy: string }>([
      'waiver',
      'revoke',
      add.id,
    ]);
    expect(revoked).toMatchObject({ id: add.id, status: 'revoked' });
    expect(revoked.revokedBy).toMatch(/^key:/);
    const after = await remoteJson<{ effective: string }[]>(['waiver', 'list']);
    expect(after.map((w) => w.effective)).toEqual(['revoked']);
    expect(after).toEqual(lastJson(await embedded(['waiver', 'list', '--json'])));
    const twice = await remote(['waiver', 'revoke', add.id]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/already revoked/);
  });
});

describe('commands that run embedded only', () => {
  it('refuse with SMITH_URL set, saying to unset it', async () => {
    for (const args of [['demo'], ['init'], ['worktrees'], ['serve']]) {
      const r = await remote(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`smith ${args[0]} runs embedded only .*unset SMITH_URL`));
      expectCleanError(r);
    }
    expect(existsSync(join(client.dir, 'smith.yaml'))).toBe(false);
  });
});
