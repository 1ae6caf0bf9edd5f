import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { WorkspaceError } from './errors.js';
import { WorktreeManager } from './worktree.js';

/** No identity anywhere: the fallback identity must be used. */
const NO_IDENTITY = {
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: undefined,
  GIT_AUTHOR_EMAIL: undefined,
  GIT_COMMITTER_NAME: undefined,
  GIT_COMMITTER_EMAIL: undefined,
  EMAIL: undefined,
  // As on a fresh machine: no identity, and no guessing one from the user and host names.
  GIT_CONFIG_COUNT: '1',
  GIT_CONFIG_KEY_0: 'user.useConfigOnly',
  GIT_CONFIG_VALUE_0: 'true',
};
const IDENTITY = {
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'T',
  GIT_AUTHOR_EMAIL: 't@example.test',
  GIT_COMMITTER_NAME: 'T',
  GIT_COMMITTER_EMAIL: 't@example.test',
};

let dir: string;
let repo: string;
let root: string;

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    env: { ...process.env, ...IDENTITY },
    encoding: 'utf8',
    stdio: 'pipe',
  }).trim();
}

beforeEach(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'smith-wt-unit-')));
  repo = path.join(dir, 'repo');
  root = path.join(dir, 'worktrees');
  fs.mkdirSync(repo);
  git(repo, 'init', '-q', '-b', 'main');
  fs.writeFileSync(path.join(repo, 'a.txt'), 'a\n');
  git(repo, 'add', '-A');
  git(repo, 'commit', '-q', '-m', 'init');
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('Worktree', () => {
  it('commits and snapshots with the fallback identity when git has none', async () => {
    const manager = new WorktreeManager({
      root,
      env: NO_IDENTITY,
      identity: { name: 'Smith Bot', email: 'bot@smith.test' },
    });
    const wt = await manager.acquire({ repo, taskId: 't_id' });
    fs.writeFileSync(path.join(wt.path, 'b.txt'), 'b\n');
    const sha = await wt.commitAll('add b');
    expect(git(repo, 'log', '-1', '--format=%an <%ae> / %cn <%ce>', sha!)).toBe(
      'Smith Bot <bot@smith.test> / Smith Bot <bot@smith.test>',
    );
    const snap = await wt.snapshot();
    expect(git(repo, 'log', '-1', '--format=%cn', snap)).toBe('Smith Bot');
  });

  it('refuses bad trailers, an empty message and env files outside the repository', async () => {
    const manager = new WorktreeManager({ root, env: IDENTITY });
    const wt = await manager.acquire({ repo, taskId: 't_bad' });
    await expect(wt.commitAll('x', { trailers: { 'Bad Key': 'v' } })).rejects.toBeInstanceOf(WorkspaceError);
    await expect(wt.commitAll('x', { trailers: { Key: 'two\nlines' } })).rejects.toThrow(/not valid/);
    await expect(wt.commitAll('  ')).rejects.toThrow(/empty/);
    await expect(manager.acquire({ repo, taskId: 't_env', envFiles: ['../outside.env'] })).rejects.toThrow(
      /inside the repository/,
    );
  });

  it('re-creates a worktree whose directory was deleted by hand, on its kept branch', async () => {
    const manager = new WorktreeManager({ root, env: IDENTITY });
    const wt = await manager.acquire({ repo, taskId: 't_gone' });
    fs.writeFileSync(path.join(wt.path, 'c.txt'), 'c\n');
    const sha = await wt.commitAll('add c');
    await wt.release();
    fs.rmSync(wt.path, { recursive: true, force: true }); // still registered in .git/worktrees
    const again = await manager.acquire({ repo, taskId: 't_gone' });
    expect(await again.head()).toBe(sha);
    expect(again.base).toBe(wt.base);
    expect(fs.readFileSync(path.join(again.path, 'c.txt'), 'utf8')).toBe('c\n');
  });

  it('releases a worktree whose directory is gone by the branch rules, and keeps unmerged commits', async () => {
    const manager = new WorktreeManager({ root, env: IDENTITY });
    const wt = await manager.acquire({ repo, taskId: 't_rm' });
    fs.writeFileSync(path.join(wt.path, 'd.txt'), 'd\n');
    const sha = await wt.commitAll('add d');
    fs.rmSync(wt.path, { recursive: true, force: true });
    const result = await wt.release({ remove: true });
    expect(result).toMatchObject({ removed: true, branch: 'kept' });
    expect(git(repo, 'rev-parse', 'smith/t_rm')).toBe(sha);
    expect(git(repo, 'worktree', 'list')).not.toContain(wt.path);
  });

  it('snapshots commits made on a detached HEAD before removing the worktree', async () => {
    const manager = new WorktreeManager({ root, env: IDENTITY });
    const wt = await manager.acquire({ repo, taskId: 't_detached' });
    git(wt.path, 'checkout', '-q', '--detach');
    fs.writeFileSync(path.join(wt.path, 'e.txt'), 'e\n');
    git(wt.path, 'add', 'e.txt');
    git(wt.path, 'commit', '-q', '-m', 'detached work');
    const detached = git(wt.path, 'rev-parse', 'HEAD');
    const result = await wt.release({ remove: true });
    expect(result).toMatchObject({ removed: true, branch: 'deleted' });
    expect(git(repo, 'rev-parse', `${result.snapshot}^1`)).toBe(detached);
    expect(git(repo, 'show', `${result.snapshot}:e.txt`)).toBe('e');
  });

  it('works with a bare repository', async () => {
    const bare = path.join(dir, 'bare.git');
    git(dir, 'clone', '-q', '--bare', repo, bare);
    const manager = new WorktreeManager({ root, env: IDENTITY });
    const wt = await manager.acquire({ repo: bare, taskId: 't_bare' });
    expect(fs.readFileSync(path.join(wt.path, 'a.txt'), 'utf8')).toBe('a\n');
    expect(await wt.release({ remove: true })).toEqual({ removed: true, branch: 'deleted' });
  });
});
