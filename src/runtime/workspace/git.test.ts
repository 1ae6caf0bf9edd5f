import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { describeGitFailure, runGit } from './git.js';

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smith-git-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('runGit', () => {
  it('returns the output of a successful command', async () => {
    const result = await runGit(['init', '-q', '-b', 'main', dir], { cwd: dir });
    expect(result.code).toBe(0);
    const top = await runGit(['rev-parse', '--show-toplevel'], { cwd: dir });
    expect(top).toMatchObject({ code: 0 });
    expect(fs.realpathSync(top.stdout.trim())).toBe(fs.realpathSync(dir));
  });

  it('returns a non-zero exit without throwing, with stderr and English messages', async () => {
    const result = await runGit(['rev-parse', '--show-toplevel'], {
      cwd: dir,
      env: { LANG: 'de_DE.UTF-8', GIT_CEILING_DIRECTORIES: path.dirname(dir) },
    });
    expect(result.code).toBe(128);
    expect(result.stderr).toContain('not a git repository');
    expect(describeGitFailure(['rev-parse', '--show-toplevel'], result)).toMatch(
      /^git rev-parse --show-toplevel failed \(exit 128\): fatal: not a git repository/,
    );
  });

  it('ignores inherited variables that point git elsewhere, unless passed in env', async () => {
    await runGit(['init', '-q', dir], { cwd: dir });
    const saved = process.env.GIT_DIR;
    process.env.GIT_DIR = path.join(os.tmpdir(), 'no-such-git-dir');
    try {
      expect((await runGit(['rev-parse', '--git-dir'], { cwd: dir })).stdout.trim()).toBe('.git');
      const redirected = await runGit(['rev-parse', '--git-dir'], { cwd: dir, env: { GIT_DIR: '/nowhere' } });
      expect(redirected.code).not.toBe(0);
    } finally {
      if (saved === undefined) delete process.env.GIT_DIR;
      else process.env.GIT_DIR = saved;
    }
  });

  it('feeds input on stdin', async () => {
    await runGit(['init', '-q', dir], { cwd: dir });
    const result = await runGit(['hash-object', '--stdin'], { cwd: dir, input: 'hello\n' });
    expect(result.stdout.trim()).toBe('ce013625030ba8dba906f756967f9e9ca394464a');
  });

  it('reports a missing program and a time limit as code -1', async () => {
    const missing = await runGit(['status'], { cwd: dir, git: path.join(dir, 'no-such-git') });
    expect(missing.code).toBe(-1);
    expect(missing.stderr).toContain('git could not run');
    const slow = path.join(dir, 'slow-git.sh');
    fs.writeFileSync(slow, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
    const killed = await runGit(['status'], { cwd: dir, git: slow, timeoutMs: 200 });
    expect(killed.code).toBe(-1);
    expect(killed.stderr).toContain('killed');
    expect(describeGitFailure(['status'], killed)).toContain('could not run');
  });
});
