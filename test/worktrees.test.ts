/**
 * Git worktree workspaces against REAL git repositories in temp dirs: creation from a base, env
 * files, setup commands, leases, commits with trailers, safe release (snapshots, kept branches),
 * git failing midway, rollback, list and prune.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { WorkspaceError, WorktreeManager, findRepoRoot } from '../src/runtime/workspace/index.js';

/** Identity and config isolation, so the tests pass on a machine without (or with odd) git config. */
const GIT_ENV = {
  GIT_AUTHOR_NAME: 'Test Author',
  GIT_AUTHOR_EMAIL: 'author@example.test',
  GIT_COMMITTER_NAME: 'Test Committer',
  GIT_COMMITTER_EMAIL: 'committer@example.test',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
};

let dir: string;
let repo: string;
let root: string;

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    env: { ...process.env, ...GIT_ENV },
    encoding: 'utf8',
    stdio: 'pipe',
  }).trim();
}

function gitOk(cwd: string, ...args: string[]): boolean {
  try {
    git(cwd, ...args);
    return true;
  } catch {
    return false;
  }
}

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

function read(file: string): string {
  return fs.readFileSync(file, 'utf8');
}

function manager(extra: { git?: string; env?: Record<string, string> } = {}): WorktreeManager {
  return new WorktreeManager({
    root,
    ...(extra.git ? { git: extra.git } : {}),
    env: { ...GIT_ENV, ...(extra.env ?? {}) },
  });
}

/** A repository on `main` with two commits; returns their shas. */
function makeRepo(): { first: string; second: string } {
  fs.mkdirSync(repo);
  git(repo, 'init', '-q', '-b', 'main');
  write(path.join(repo, '.gitignore'), 'node_modules/\n*.log\n');
  write(path.join(repo, 'README.md'), 'hello\n');
  write(path.join(repo, 'src/a.txt'), 'a v1\n');
  write(path.join(repo, 'src/b.txt'), 'b v1\n');
  git(repo, 'add', '-A');
  git(repo, 'commit', '-q', '-m', 'first');
  const first = git(repo, 'rev-parse', 'HEAD');
  write(path.join(repo, 'src/a.txt'), 'a v2\n');
  git(repo, 'commit', '-q', '-am', 'second');
  const second = git(repo, 'rev-parse', 'HEAD');
  // Local configuration, not in git and not ignored: it must never be committed from a worktree.
  write(path.join(repo, '.env'), 'SECRET=s3cr3t\n');
  return { first, second };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed process whose new parent has not reaped it yet is a zombie: it runs no more.
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  return !/^\S+ \(.*\) [ZX]/s.test(stat);
}

/** Wait (up to 10 s) until the kernel has ended `pid`; SIGKILL is delivered asynchronously. */
async function endedSoon(pid: number): Promise<boolean> {
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  return !alive(pid);
}

async function expectWorkspaceError(promise: Promise<unknown>): Promise<WorkspaceError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(WorkspaceError);
    return error as WorkspaceError;
  }
  throw new Error('expected a WorkspaceError');
}

/** A git wrapper that fails the subcommand named in $FAIL_FILE (when that file exists). */
function failingGit(): {
  program: string;
  failOn: (subcommand: string) => void;
  env: Record<string, string>;
} {
  const program = path.join(dir, 'git-wrapper.sh');
  const failFile = path.join(dir, 'fail-on');
  fs.writeFileSync(
    program,
    [
      '#!/bin/sh',
      'fail=$(cat "$FAIL_FILE" 2>/dev/null)',
      'if [ -n "$fail" ] && [ "$1" = "$fail" ]; then',
      '  echo "fatal: simulated failure of git $1" >&2',
      '  exit 128',
      'fi',
      'exec git "$@"',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return { program, failOn: (sub) => fs.writeFileSync(failFile, sub), env: { FAIL_FILE: failFile } };
}

beforeEach(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'smith-worktrees-')));
  repo = path.join(dir, 'repo');
  root = path.join(dir, 'home', 'worktrees');
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('acquire', () => {
  it('creates the worktree on smith/<task> from the base, copies env files and runs setup', async () => {
    const { first, second } = makeRepo();
    const wt = await manager().acquire({
      repo: path.join(repo, 'src'), // any directory inside the repository
      taskId: 't_one',
      base: first,
      envFiles: ['.env', 'config/missing.env'],
      setup: ['mkdir -p node_modules && echo "$SMITH_TASK_ID" > node_modules/marker'],
    });
    expect(wt.path).toBe(path.join(root, 't_one'));
    expect(wt.branch).toBe('smith/t_one');
    expect(wt.base).toBe(first);
    expect(wt.taskId).toBe('t_one');
    expect(git(wt.path, 'symbolic-ref', 'HEAD')).toBe('refs/heads/smith/t_one');
    expect(await wt.head()).toBe(first);
    expect(read(path.join(wt.path, 'src/a.txt'))).toBe('a v1\n');
    expect(read(path.join(wt.path, '.env'))).toBe('SECRET=s3cr3t\n');
    expect(fs.existsSync(path.join(wt.path, 'config/missing.env'))).toBe(false);
    expect(read(path.join(wt.path, 'node_modules/marker'))).toBe('t_one\n');
    expect(git(repo, 'rev-parse', 'refs/smith/bases/t_one')).toBe(first);
    // The repository's own checkout is untouched.
    expect(git(repo, 'rev-parse', 'HEAD')).toBe(second);
    expect(git(repo, 'symbolic-ref', '--short', 'HEAD')).toBe('main');
    // The copied env file is not work.
    expect(await wt.isDirty()).toBe(false);

    const byDefault = await manager().acquire({ repo, taskId: 't_two' });
    expect(byDefault.base).toBe(second);
    expect(read(path.join(byDefault.path, 'src/a.txt'))).toBe('a v2\n');
    expect(await findRepoRoot(path.join(repo, 'src'))).toBe(repo);
  });

  it('reports a failing setup command with its output tail, and runs the setup again next time', async () => {
    makeRepo();
    const failing = 'echo preparing; echo "npm ERR! missing package-lock.json" >&2; exit 3';
    const error = await expectWorkspaceError(
      manager().acquire({ repo, taskId: 't_setup', setup: ['true', failing] }),
    );
    expect(error.code).toBe('SPAWN_FAILED');
    expect(error.kind).toBe('setup-failed');
    expect(error.message).toContain(`setup command "${failing}" failed`);
    expect(error.message).toContain('exit code 3');
    expect(error.message).toContain('npm ERR! missing package-lock.json');
    expect(error.message).toContain(path.join(root, 't_setup'));
    // The lease went with the failure; the worktree stayed, and the setup runs again.
    expect(fs.existsSync(path.join(root, '.leases', 't_setup.json'))).toBe(false);
    const wt = await manager().acquire({
      repo,
      taskId: 't_setup',
      setup: ['mkdir -p node_modules && touch node_modules/ok'],
    });
    expect(fs.existsSync(path.join(wt.path, 'node_modules/ok'))).toBe(true);
  });

  it('leaves no process of a setup command behind', async () => {
    makeRepo();
    const wt = await manager().acquire({
      repo,
      taskId: 't_bg',
      setup: ['mkdir -p node_modules; sleep 30 & echo $! > node_modules/bg.pid'],
    });
    const pid = Number(read(path.join(wt.path, 'node_modules/bg.pid')));
    expect(pid).toBeGreaterThan(0);
    expect(await endedSoon(pid)).toBe(true);
  });

  it('says clearly when the repository or the base is wrong', async () => {
    makeRepo();
    const notRepo = path.join(dir, 'plain');
    fs.mkdirSync(notRepo);
    const error = await expectWorkspaceError(manager().acquire({ repo: notRepo, taskId: 't_x' }));
    expect(error.kind).toBe('not-a-repo');
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toContain(notRepo);
    const badBase = await expectWorkspaceError(
      manager().acquire({ repo, taskId: 't_x', base: 'no-such-branch' }),
    );
    expect(badBase.kind).toBe('bad-base');
    expect(badBase.message).toContain('no-such-branch');
    const badName = await expectWorkspaceError(manager().acquire({ repo, taskId: '../escape' }));
    expect(badName.kind).toBe('bad-name');
    expect(fs.existsSync(path.join(root, 't_x'))).toBe(false);
    // Something else at the worktree path is never touched.
    write(path.join(root, 't_y', 'precious.txt'), 'mine\n');
    const conflict = await expectWorkspaceError(manager().acquire({ repo, taskId: 't_y' }));
    expect(conflict.kind).toBe('path-conflict');
    expect(read(path.join(root, 't_y', 'precious.txt'))).toBe('mine\n');
  });
});

describe('leases', () => {
  it('refuses another task while the owner lives, takes over after it died, and re-opens for the same task', async () => {
    makeRepo();
    const owner = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const ownerPid = owner.pid!;
    const exited = new Promise((resolve) => owner.once('exit', resolve));
    try {
      const first = await manager().acquire({ repo, taskId: 't_a', name: 'shared', owner: ownerPid });
      write(path.join(first.path, 'work.txt'), 'by t_a\n');

      const held = await expectWorkspaceError(manager().acquire({ repo, taskId: 't_b', name: 'shared' }));
      expect(held.code).toBe('LEASE_HELD');
      expect(held.message).toContain('leased to task t_a');
      expect(held.message).toContain(`pid ${ownerPid}`);
      expect(held.message).toContain(path.join(root, 'shared'));
    } finally {
      owner.kill('SIGKILL');
      await exited;
    }
    const taken = await manager().acquire({ repo, taskId: 't_b', name: 'shared' });
    expect(taken.path).toBe(path.join(root, 'shared'));
    expect(read(path.join(taken.path, 'work.txt'))).toBe('by t_a\n');
    const lease = JSON.parse(read(path.join(root, '.leases', 'shared.json'))) as {
      taskId: string;
      pid: number;
    };
    expect(lease).toMatchObject({ taskId: 't_b', pid: process.pid });

    // The same task re-opens its worktree, files and base as they were (a retry, a revise round).
    const again = await manager().acquire({ repo, taskId: 't_b', name: 'shared' });
    expect(again.path).toBe(taken.path);
    expect(again.base).toBe(taken.base);
    expect(read(path.join(again.path, 'work.txt'))).toBe('by t_a\n');

    // After a release without remove, the worktree stays with its files and re-opens.
    expect(await again.release({ remove: false })).toMatchObject({ removed: false });
    expect(fs.existsSync(path.join(root, '.leases', 'shared.json'))).toBe(false);
    const reopened = await manager().acquire({ repo, taskId: 't_c', name: 'shared' });
    expect(read(path.join(reopened.path, 'work.txt'))).toBe('by t_a\n');
  });
});

describe('commitAll', () => {
  it('commits modified, new and deleted files with trailers, and returns null when there is nothing', async () => {
    const { second } = makeRepo();
    const wt = await manager().acquire({ repo, taskId: 't_commit', envFiles: ['.env'] });
    write(path.join(wt.path, 'src/a.txt'), 'a v3\n');
    write(path.join(wt.path, 'src/new.txt'), 'new\n');
    fs.rmSync(path.join(wt.path, 'src/b.txt'));
    write(path.join(wt.path, 'debug.log'), 'ignored\n');
    expect(await wt.isDirty()).toBe(true);

    const sha = await wt.commitAll('agent: change the sources', {
      author: { name: 'Coder Agent', email: 'coder@agents.test' },
      trailers: { 'Smith-Task': 't_commit', 'Smith-Agent': 'coder' },
    });
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    expect(git(wt.path, 'rev-parse', 'smith/t_commit')).toBe(sha);
    expect(git(wt.path, 'rev-parse', `${sha}^`)).toBe(second);
    const body = git(wt.path, 'log', '-1', '--format=%B');
    expect(body).toBe('agent: change the sources\n\nSmith-Task: t_commit\nSmith-Agent: coder');
    const parsed = execFileSync('git', ['interpret-trailers', '--parse'], {
      cwd: wt.path,
      input: `${body}\n`,
      encoding: 'utf8',
    });
    expect(parsed).toBe('Smith-Task: t_commit\nSmith-Agent: coder\n');
    expect(git(wt.path, 'log', '-1', '--format=%an <%ae>')).toBe('Coder Agent <coder@agents.test>');
    const files = git(wt.path, 'show', '--name-status', '--format=', 'HEAD').split('\n').sort();
    expect(files).toEqual(['A\tsrc/new.txt', 'D\tsrc/b.txt', 'M\tsrc/a.txt']);
    expect(await wt.changedFiles()).toEqual(
      expect.arrayContaining([
        { status: 'A', path: 'src/new.txt' },
        { status: 'D', path: 'src/b.txt' },
        { status: 'M', path: 'src/a.txt' },
      ]),
    );
    expect(await wt.changedFiles()).toHaveLength(3);
    // The env file and the ignored file stay out of git, and the worktree counts as clean.
    expect(gitOk(wt.path, 'cat-file', '-e', `${sha}:.env`)).toBe(false);
    expect(gitOk(wt.path, 'cat-file', '-e', `${sha}:debug.log`)).toBe(false);
    expect(await wt.isDirty()).toBe(false);

    expect(await wt.commitAll('nothing')).toBeNull();
    expect(await wt.head()).toBe(sha);
  });
});

describe('release', () => {
  it('snapshots uncommitted and untracked files before removing the worktree', async () => {
    const { second } = makeRepo();
    const wt = await manager().acquire({ repo, taskId: 't_dirty', envFiles: ['.env'] });
    write(path.join(wt.path, 'src/a.txt'), 'a edited, not committed\n');
    write(path.join(wt.path, 'notes/todo.md'), 'untracked notes\n');
    fs.rmSync(path.join(wt.path, 'src/b.txt'));
    git(wt.path, 'add', 'src/a.txt'); // one change staged, the rest not

    const result = await wt.release({ remove: true });
    expect(result).toMatchObject({ removed: true, branch: 'deleted' });
    expect(result.kept).toBeUndefined();
    const ref = 'refs/smith/snapshots/t_dirty';
    expect(result.snapshot).toBe(git(repo, 'rev-parse', ref));
    expect(git(repo, 'show', `${ref}:src/a.txt`)).toBe('a edited, not committed');
    expect(git(repo, 'show', `${ref}:notes/todo.md`)).toBe('untracked notes');
    expect(gitOk(repo, 'cat-file', '-e', `${ref}:src/b.txt`)).toBe(false);
    expect(gitOk(repo, 'cat-file', '-e', `${ref}:.env`)).toBe(false);
    expect(git(repo, 'rev-parse', `${ref}^1`)).toBe(second);
    expect(fs.existsSync(wt.path)).toBe(false);
    expect(gitOk(repo, 'rev-parse', '--verify', 'refs/heads/smith/t_dirty')).toBe(false);
    expect(git(repo, 'worktree', 'list', '--porcelain')).not.toContain(wt.path);
  });

  it('keeps a branch with unmerged commits and deletes a merged one', async () => {
    makeRepo();
    const wt = await manager().acquire({ repo, taskId: 't_work' });
    write(path.join(wt.path, 'feature.txt'), 'feature\n');
    const sha = await wt.commitAll('add feature');
    const result = await wt.release({ remove: true });
    expect(result).toMatchObject({ removed: true, branch: 'kept' });
    expect(result.kept).toContain('branch smith/t_work kept');
    expect(result.snapshot).toBeUndefined();
    expect(fs.existsSync(wt.path)).toBe(false);
    expect(git(repo, 'rev-parse', 'refs/heads/smith/t_work')).toBe(sha);
    expect(git(repo, 'show', 'smith/t_work:feature.txt')).toBe('feature');

    // A revise round re-opens the kept branch with its base; once merged, the branch goes.
    const round2 = await manager().acquire({ repo, taskId: 't_work' });
    expect(await round2.head()).toBe(sha);
    expect(read(path.join(round2.path, 'feature.txt'))).toBe('feature\n');
    git(repo, 'merge', '-q', '--ff-only', 'smith/t_work');
    expect(await round2.release({ remove: true })).toEqual({ removed: true, branch: 'deleted' });
    expect(gitOk(repo, 'rev-parse', '--verify', 'refs/heads/smith/t_work')).toBe(false);
    expect(git(repo, 'rev-parse', 'main')).toBe(sha);
  });

  it('removes a clean worktree whose branch has no new commits entirely', async () => {
    makeRepo();
    const m = manager();
    const wt = await m.acquire({
      repo,
      taskId: 't_clean',
      setup: ['mkdir -p node_modules && touch node_modules/x'],
    });
    expect(await wt.release({ remove: true })).toEqual({ removed: true, branch: 'deleted' });
    expect(fs.existsSync(wt.path)).toBe(false);
    expect(gitOk(repo, 'rev-parse', '--verify', 'refs/heads/smith/t_clean')).toBe(false);
    expect(gitOk(repo, 'rev-parse', '--verify', 'refs/smith/bases/t_clean')).toBe(false);
    expect(gitOk(repo, 'rev-parse', '--verify', 'refs/smith/snapshots/t_clean')).toBe(false);
    expect(git(repo, 'worktree', 'list', '--porcelain')).not.toContain(wt.path);
    expect(await m.list()).toEqual([]);
  });

  it('removes nothing when a release finds the lease taken over', async () => {
    makeRepo();
    const stale = await manager().acquire({ repo, taskId: 't_same' });
    write(path.join(stale.path, 'f.txt'), 'x\n');
    const fresh = await manager().acquire({ repo, taskId: 't_same' }); // a retry took the lease over
    const result = await stale.release({ remove: true });
    expect(result.removed).toBe(false);
    expect(result.kept).toContain('lease');
    expect(read(path.join(fresh.path, 'f.txt'))).toBe('x\n');
    expect(fs.existsSync(path.join(root, '.leases', 't_same.json'))).toBe(true);
  });
});

describe('git failing midway never loses work', () => {
  for (const subcommand of ['worktree', 'update-ref', 'ls-tree', 'for-each-ref', 'hash-object', 'status']) {
    it(`keeps the worktree, its files and its branch when git ${subcommand} fails`, async () => {
      makeRepo();
      const wrapper = failingGit();
      const m = manager({ git: wrapper.program, env: wrapper.env });
      const wt = await m.acquire({ repo, taskId: 't_fail' });
      write(path.join(wt.path, 'committed.txt'), 'committed\n');
      const sha = await wt.commitAll('work');
      write(path.join(wt.path, 'src/a.txt'), 'uncommitted\n');
      write(path.join(wt.path, 'untracked.txt'), 'untracked\n');

      wrapper.failOn(subcommand);
      const result = await wt.release({ remove: true });
      expect(result.removed).toBe(false);
      expect(result.kept).toContain(`worktree ${wt.path} kept`);
      expect(result.kept).toContain(`simulated failure of git ${subcommand}`);
      expect(read(path.join(wt.path, 'src/a.txt'))).toBe('uncommitted\n');
      expect(read(path.join(wt.path, 'untracked.txt'))).toBe('untracked\n');
      expect(git(repo, 'rev-parse', 'refs/heads/smith/t_fail')).toBe(sha);
      expect(git(wt.path, 'status', '--porcelain')).toContain('untracked.txt');

      // Once git works again, the same worktree is released safely.
      wrapper.failOn('');
      const again = await m.acquire({ repo, taskId: 't_fail' });
      const done = await again.release({ remove: true });
      expect(done).toMatchObject({ removed: true, branch: 'kept' });
      expect(git(repo, 'show', `${done.snapshot}:untracked.txt`)).toBe('untracked');
      expect(git(repo, 'show', `${done.snapshot}:src/a.txt`)).toBe('uncommitted');
    });
  }

  it('keeps everything when the snapshot ref cannot be written (refs/smith is a file)', async () => {
    makeRepo();
    const wt = await manager().acquire({ repo, taskId: 't_refs' });
    write(path.join(wt.path, 'src/a.txt'), 'precious\n');
    fs.rmSync(path.join(repo, '.git/refs/smith'), { recursive: true, force: true });
    fs.writeFileSync(path.join(repo, '.git/refs/smith'), 'not a directory\n');
    const result = await wt.release({ remove: true });
    expect(result.removed).toBe(false);
    expect(result.snapshot).toBeUndefined();
    expect(result.kept).toContain('could not snapshot');
    expect(result.kept).toContain('update-ref');
    expect(read(path.join(wt.path, 'src/a.txt'))).toBe('precious\n');
    expect(git(repo, 'rev-parse', '--verify', 'refs/heads/smith/t_refs')).toMatch(/^[0-9a-f]{40}$/);
  });
});

describe('rollback', () => {
  it('restores the base and keeps the rolled-back work in the snapshot', async () => {
    const { second } = makeRepo();
    const wt = await manager().acquire({ repo, taskId: 't_back', envFiles: ['.env'] });
    write(path.join(wt.path, 'src/a.txt'), 'committed change\n');
    const committed = (await wt.commitAll('step 1'))!;
    write(path.join(wt.path, 'src/b.txt'), 'uncommitted change\n');
    write(path.join(wt.path, 'scratch/new.txt'), 'untracked\n');
    write(path.join(wt.path, 'build.log'), 'ignored\n');

    const { snapshot, head } = await wt.rollback();
    expect(head).toBe(second);
    expect(git(repo, 'rev-parse', 'refs/heads/smith/t_back')).toBe(second);
    expect(read(path.join(wt.path, 'src/a.txt'))).toBe('a v2\n');
    expect(read(path.join(wt.path, 'src/b.txt'))).toBe('b v1\n');
    expect(fs.existsSync(path.join(wt.path, 'scratch'))).toBe(false);
    expect(fs.existsSync(path.join(wt.path, 'build.log'))).toBe(false);
    expect(read(path.join(wt.path, '.env'))).toBe('SECRET=s3cr3t\n'); // copied again
    expect(await wt.isDirty()).toBe(false);

    expect(git(repo, 'rev-parse', 'refs/smith/snapshots/t_back')).toBe(snapshot);
    expect(git(repo, 'show', `${snapshot}:src/a.txt`)).toBe('committed change');
    expect(git(repo, 'show', `${snapshot}:src/b.txt`)).toBe('uncommitted change');
    expect(git(repo, 'show', `${snapshot}:scratch/new.txt`)).toBe('untracked');
    expect(gitOk(repo, 'merge-base', '--is-ancestor', committed, snapshot)).toBe(true);

    // A later snapshot keeps the earlier one reachable.
    write(path.join(wt.path, 'later.txt'), 'later\n');
    const later = await wt.snapshot();
    expect(git(repo, 'rev-parse', `${later}^2`)).toBe(snapshot);
  });
});

describe('list and prune', () => {
  it('lists worktrees with their leases and prunes the done ones by the same rules', async () => {
    makeRepo();
    const m = manager();
    const busy = await m.acquire({ repo, taskId: 't_busy' });
    const dirty = await m.acquire({ repo, taskId: 't_dirty' });
    write(path.join(dirty.path, 'notes.txt'), 'unsaved\n');
    await dirty.release({ remove: false });
    const clean = await m.acquire({ repo, taskId: 't_clean' });
    await clean.release({ remove: false });
    const notDone = await m.acquire({ repo, taskId: 't_later' });
    await notDone.release({ remove: false });

    const infos = await m.list();
    expect(infos.map((i) => i.name)).toEqual(['t_busy', 't_clean', 't_dirty', 't_later']);
    expect(infos.find((i) => i.name === 't_busy')).toMatchObject({
      leased: true,
      taskId: 't_busy',
      dirty: false,
      ahead: 0,
    });
    expect(infos.find((i) => i.name === 't_dirty')).toMatchObject({ leased: false, dirty: true });

    const results = await m.prune({ isDone: (info) => info.taskId !== 't_later' });
    expect(results.map((r) => r.name).sort()).toEqual(['t_clean', 't_dirty']);
    expect(results.find((r) => r.name === 't_clean')).toMatchObject({ removed: true, branch: 'deleted' });
    const pruned = results.find((r) => r.name === 't_dirty')!;
    expect(pruned.removed).toBe(true);
    expect(git(repo, 'show', `${pruned.snapshot}:notes.txt`)).toBe('unsaved');
    expect(fs.existsSync(busy.path)).toBe(true);
    expect(fs.existsSync(notDone.path)).toBe(true);
    expect((await m.list()).map((i) => i.name)).toEqual(['t_busy', 't_later']);
  });
});
