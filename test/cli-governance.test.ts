/**
 * End-to-end: governance through the `smith` command on real git repositories: a task works in
 * its own worktree, the four judges judge its branch, and the change is applied (auto), waits for
 * a person (strict), or is never applied (dry-run); a change out of scope is rejected; a change
 * with a placeholder is sent back and rejected when the rounds run out. Trailers, the signed
 * verdict in a git note, and the audit trail are checked.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Sandbox, byKey, lastJson, tasksJson, waitFor, type RunSummaryJson } from './fixtures/smith-cli.js';

const GIT_ENV = {
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@localhost',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@localhost',
};

let box: Sandbox;
let repo: string;

function git(...args: string[]): string {
  return execFileSync('git', args, {
    cwd: repo,
    env: { ...process.env, ...GIT_ENV },
    encoding: 'utf8',
  }).trim();
}

beforeEach(async () => {
  box = new Sandbox();
  repo = join(box.dir, 'repo');
  mkdirSync(repo);
  git('init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'README.md'), '# demo\n');
  git('add', '-A');
  git('commit', '-q', '-m', 'initial');
  expect((await box.run(['init'])).code).toBe(0);
});
afterEach(async () => {
  const left = box.processes();
  await box.cleanup();
  expect(left, 'agent processes left behind').toEqual([]);
});

/** A workflow file in the repository with one `sh` task in a worktree. */
function workflow(prompt: string[], extra: string[] = [], agentExtra: string[] = []): string {
  const file = join(repo, 'wf.yaml');
  writeFileSync(
    file,
    [
      'name: governed',
      'agents:',
      '  sh:',
      '    runtime: process',
      '    command: ["sh", "-c", "{prompt}"]',
      '    kill_grace: 1s',
      ...agentExtra,
      'tasks:',
      '  change:',
      '    agent: sh',
      '    workspace: worktree',
      '    spec: {id: GREET-1, title: a greeting, risk_tier: 2, scope: {in: ["greeting.txt", "src/**"]}}',
      ...extra,
      '    prompt: |',
      ...prompt.map((l) => `      ${l}`),
      '',
    ].join('\n'),
  );
  return file;
}

describe('governed tasks', () => {
  it('auto: judged, merged into main with trailers and a signed verdict note; verify checks the signature', async () => {
    // the agent's env file is copied into the worktree (never committed) before its setup runs
    writeFileSync(join(repo, '.env'), 'GREETING=hello\n');
    const wf = workflow(
      ['. ./.env; echo "$GREETING" > greeting.txt'],
      [],
      ['    env_files: [.env]', '    setup: ["test -f .env"]'],
    );
    const r = await box.run(['run', wf, '--json'], { env: GIT_ENV });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const t = byKey(lastJson<RunSummaryJson>(r)).change!;
    expect(t.state).toBe('completed');
    // the change is on main, in a merge commit carrying the provenance trailers
    expect(git('show', 'main:greeting.txt')).toBe('hello');
    expect(git('ls-tree', '-r', '--name-only', 'main')).not.toContain('.env');
    const message = git('log', '-1', '--format=%B', 'main');
    expect(message).toContain(`Smith-Task: ${t.id}`);
    expect(message).toContain('Smith-Agent: sh');
    expect(message).toMatch(/Smith-Verdict: approve /);
    expect(message).toMatch(/Smith-Audit: [0-9a-f]{64}/);
    expect(git('notes', '--ref', 'refs/notes/smith', 'show', 'main')).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    // the main checkout itself was not touched by the agent: it worked in its own worktree
    const detail = await box.json<{ events: { type: string; data: Record<string, unknown> }[] }>([
      'task',
      t.id,
    ]);
    expect(detail.value.events.some((e) => e.type === 'verdict' && e.data.decision === 'approve')).toBe(true);
    const v = await box.run(['audit', 'verify']);
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).toMatch(/1 verdict\(s\)/);
  });

  it('a change outside the spec scope is rejected naming the path; main is unchanged and the branch is kept', async () => {
    const wf = workflow(['echo hello > greeting.txt', 'echo oops > secret-notes.txt']);
    const r = await box.run(['run', wf, '--json'], { env: GIT_ENV });
    expect(r.code).toBe(1);
    const t = byKey(lastJson<RunSummaryJson>(r)).change!;
    expect(t.state).toBe('rejected');
    expect(t.reason).toMatch(/secret-notes\.txt/);
    expect(git('rev-list', '--count', 'main')).toBe('1');
    expect(git('show', `smith/${t.id}:secret-notes.txt`)).toBe('oops');
    // the rejected task's worktree is listed, and pruning it keeps the branch with its commits
    const list = await box.json<{ name: string; taskId: string }[]>(['worktrees']);
    expect(list.value.map((w) => w.taskId)).toEqual([t.id]);
    const prune = await box.run(['worktrees', 'prune']);
    expect(prune.code, prune.stdout + prune.stderr).toBe(0);
    expect(prune.stdout).toContain(t.id);
    expect(git('show', `smith/${t.id}:secret-notes.txt`)).toBe('oops');
  });

  it('a placeholder is sent back to the agent with the reasons, and rejected when the rounds run out', async () => {
    const wf = workflow([
      'mkdir -p src',
      'printf "export function f() {\\n  // TODO: write it\\n  return 1;\\n}\\n" > src/f.ts',
    ]);
    const r = await box.run(['run', wf, '--json'], { env: GIT_ENV });
    expect(r.code).toBe(1);
    const t = byKey(lastJson<RunSummaryJson>(r)).change!;
    expect(t.state).toBe('rejected');
    // the first attempt and two revise rounds
    expect(t.attempts).toBe(3);
    expect(t.reason).toMatch(/placeholder|TODO/i);
    const detail = await box.json<{ events: { type: string; data: Record<string, unknown> }[] }>([
      'task',
      t.id,
    ]);
    const guidance = detail.value.events.filter((e) => e.type === 'guidance');
    expect(guidance.length).toBe(2);
    expect(String(guidance[0]!.data.text)).toMatch(/council asked for changes/);
  });

  it('dry-run: judged and completed, never applied; its worktree stays where smith.yaml says', async () => {
    box.write('smith.yaml', 'worktrees: {dir: trees}\n');
    const wf = workflow(['echo hello > greeting.txt'], ['    mode: dry-run']);
    const r = await box.run(['run', wf, '--json'], { env: GIT_ENV });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const t = byKey(lastJson<RunSummaryJson>(r)).change!;
    expect(t.state).toBe('completed');
    expect(git('rev-list', '--count', 'main')).toBe('1');
    expect(existsSync(join(repo, 'greeting.txt'))).toBe(false);
    const detail = await box.json<{ governance: { applied: boolean } | null }>(['task', t.id]);
    expect(detail.value.governance?.applied).toBe(false);
    expect(readFileSync(join(box.dir, 'trees', t.id, 'greeting.txt'), 'utf8')).toBe('hello\n');
  });

  it('strict: waits in awaiting_approval until smith approve from another terminal applies it', async () => {
    const wf = workflow(['echo hello > greeting.txt'], ['    mode: strict']);
    const run = box.start(['run', wf, '--json'], { env: GIT_ENV });
    const waiting = await waitFor('the task to await approval', async () => {
      const rows = await tasksJson(box, ['--state', 'awaiting_approval']);
      return rows[0];
    });
    expect(git('rev-list', '--count', 'main')).toBe('1');
    const approve = await box.run(['approve', waiting.id], { env: GIT_ENV });
    expect(approve.code, approve.stdout + approve.stderr).toBe(0);
    const done = await run.done;
    expect(done.code, done.stdout + done.stderr).toBe(0);
    expect(done.stderr).toContain(`awaits approval: smith approve ${waiting.id}`);
    expect(git('show', 'main:greeting.txt')).toBe('hello');
    expect(git('log', '-1', '--format=%B', 'main')).toContain(`Smith-Task: ${waiting.id}`);
  });

  it('a waiver on the quality gate lifts a placeholder while active; its use is audited; revoke ends it', async () => {
    const go = join(box.dir, 'go');
    const wf = workflow([
      `while [ ! -f ${go} ]; do sleep 0.1; done`,
      'mkdir -p src',
      'printf "export function f() {\\n  // TODO: write it\\n  return 1;\\n}\\n" > src/f.ts',
    ]);
    const run = box.start(['run', wf, '--json'], { env: GIT_ENV });
    const running = await waitFor(
      'the task to run',
      async () => (await tasksJson(box, ['--state', 'running']))[0],
    );
    const bad = await box.run([
      'waiver',
      'add',
      '--task',
      running.id,
      '--gates',
      'quality',
      '--reason',
      'short',
      '--approver',
      'alice',
      '--expires',
      '1d',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/reason is too short/);
    const add = await box.run([
      'waiver',
      'add',
      '--task',
      running.id,
      '--gates',
      'quality',
      '--reason',
      'prototype: placeholders are fine until the spike ends',
      '--approver',
      'alice',
      '--expires',
      '1d',
    ]);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/^waiver WV-0001 for task/);
    writeFileSync(go, '');
    const done = await run.done;
    expect(done.code, done.stdout + done.stderr).toBe(0);
    expect(byKey(lastJson<RunSummaryJson>(done)).change!.state).toBe('completed');
    expect(git('show', 'main:src/f.ts')).toContain('TODO');
    const list = await box.json<{ id: string; effective: string }[]>(['waiver', 'list']);
    expect(list.value).toMatchObject([{ id: 'WV-0001', effective: 'active' }]);
    expect((await box.run(['waiver', 'revoke', 'WV-0001'])).code).toBe(0);
    const after = await box.json<{ id: string; effective: string }[]>(['waiver', 'list']);
    expect(after.value).toMatchObject([{ id: 'WV-0001', effective: 'revoked' }]);
    const db = (await import('better-sqlite3')).default;
    const conn = new db(join(box.home, 'smith.db'), { readonly: true });
    const actions = (conn.prepare('SELECT action FROM audit_records').all() as { action: string }[]).map(
      (r) => r.action,
    );
    conn.close();
    expect(actions).toEqual(expect.arrayContaining(['waiver.created', 'waiver.used', 'waiver.revoked']));
  });

  it('strict: a task left awaiting approval after the run was interrupted is approved later; resume finishes', async () => {
    const wf = workflow(['echo hello > greeting.txt'], ['    mode: strict']);
    const run = box.start(['run', wf], { env: GIT_ENV });
    const waiting = await waitFor('the task to await approval', async () => {
      return (await tasksJson(box, ['--state', 'awaiting_approval']))[0];
    });
    run.child.kill('SIGINT');
    expect((await run.done).code).toBe(130);
    const approve = await box.run(['approve', waiting.id], { env: GIT_ENV });
    expect(approve.code, approve.stdout + approve.stderr).toBe(0);
    expect(approve.stdout).toMatch(/awaiting_approval -> completed/);
    expect(git('show', 'main:greeting.txt')).toBe('hello');
    const resumed = await box.run(['resume', '--json'], { env: GIT_ENV });
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    expect(lastJson<RunSummaryJson>(resumed).workflow.state).toBe('completed');
  });

  it('cancel rolls the worktree back to its base after saving the work in a snapshot ref', async () => {
    const wf = workflow(['echo draft > greeting.txt', 'sleep 60']);
    const run = box.start(['run', wf, '--json'], { env: GIT_ENV });
    const running = await waitFor(
      'the task to run',
      async () => (await tasksJson(box, ['--state', 'running']))[0],
    );
    await waitFor('the draft', () => existsSync(join(box.home, 'worktrees', running.id, 'greeting.txt')));
    const cancel = await box.run(['cancel', running.id], { env: GIT_ENV });
    expect(cancel.code, cancel.stdout + cancel.stderr).toBe(0);
    const done = await run.done;
    expect(done.code).toBe(1);
    await waitFor('the snapshot', () => {
      try {
        return git('show', `refs/smith/snapshots/${running.id}:greeting.txt`) === 'draft';
      } catch {
        return false;
      }
    });
    expect(existsSync(join(box.home, 'worktrees', running.id, 'greeting.txt'))).toBe(false);
    expect(git('rev-list', '--count', 'main')).toBe('1');
  });
});
