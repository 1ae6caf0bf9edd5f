import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { buildArgv, resolveExecutable } from './command.js';

describe('buildArgv', () => {
  it('substitutes every placeholder inside its own argument, once', () => {
    const values = { prompt: 'say "{task_id}" & $(rm -rf /)', task_id: 'T1', workdir: '/w d' };
    expect(
      buildArgv(['agent', '-p', '{prompt}', '--id={task_id}', '{workdir}/{workdir}', '{other}'], values),
    ).toEqual(['agent', '-p', 'say "{task_id}" & $(rm -rf /)', '--id=T1', '/w d//w d', '{other}']);
  });
});

describe('resolveExecutable', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'smith-cmd-'));
    writeFileSync(path.join(dir, 'tool'), '#!/bin/sh\n');
    chmodSync(path.join(dir, 'tool'), 0o755);
    writeFileSync(path.join(dir, 'plain'), 'x');
    chmodSync(path.join(dir, 'plain'), 0o644);
    mkdirSync(path.join(dir, 'sub'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('searches PATH for a bare name', async () => {
    expect(await resolveExecutable('tool', `/nonexistent:${dir}`)).toEqual({
      ok: true,
      path: path.join(dir, 'tool'),
    });
    expect(await resolveExecutable('tool', '/nonexistent')).toEqual({ ok: false, problem: 'not_found' });
    expect(await resolveExecutable('tool', undefined)).toEqual({ ok: false, problem: 'not_found' });
    expect(await resolveExecutable('plain', dir)).toEqual({ ok: false, problem: 'not_executable' });
    expect(await resolveExecutable('sub', dir)).toEqual({ ok: false, problem: 'not_executable' });
  });

  it('checks a path directly, relative ones against cwd', async () => {
    expect(await resolveExecutable('./tool', '', dir)).toEqual({ ok: true, path: path.join(dir, 'tool') });
    expect(await resolveExecutable(path.join(dir, 'plain'), '')).toEqual({
      ok: false,
      problem: 'not_executable',
    });
    expect(await resolveExecutable(path.join(dir, 'missing'), '')).toEqual({
      ok: false,
      problem: 'not_found',
    });
  });
});
