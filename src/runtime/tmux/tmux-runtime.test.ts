import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { isSmithError } from '../../core/errors.js';
import type { AgentSpec } from '../../core/types.js';
import { TmuxRuntime, attachCommand, sessionNameFor, socketNameFor } from './tmux-runtime.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'smith-tmuxrt-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function agent(fields: Partial<AgentSpec> = {}): AgentSpec {
  return { name: 'sh', runtime: 'tmux', command: ['bash'], capabilities: [], concurrency: 1, ...fields };
}

async function checkError(runtime: TmuxRuntime, spec: AgentSpec): Promise<unknown> {
  try {
    await runtime.check(spec);
  } catch (err) {
    return err;
  }
  return null;
}

describe('names', () => {
  it('derives one socket per smith home, stable for the same path', () => {
    const a = socketNameFor('/home/me/project/.smith');
    expect(a).toMatch(/^smith-[0-9a-f]{12}$/);
    expect(socketNameFor('/home/me/project/.smith/')).toBe(a);
    expect(socketNameFor('/home/me/other/.smith')).not.toBe(a);
    expect(socketNameFor(undefined)).toBe('smith');
  });

  it('names the session after the agent, without the characters tmux refuses', () => {
    expect(sessionNameFor('coder')).toBe('smith-coder');
    expect(sessionNameFor('a.b:c')).toBe('smith-a_b_c');
  });

  it('builds the attach argv from a socket name or a home', () => {
    expect(attachCommand('coder', { socketName: 'sock' })).toEqual([
      'tmux',
      '-L',
      'sock',
      'attach-session',
      '-t',
      'smith-coder',
    ]);
    expect(attachCommand('coder', { home: '/x/.smith' })[2]).toBe(socketNameFor('/x/.smith'));
    const runtime = new TmuxRuntime();
    expect(runtime.attachCommand('coder', { SMITH_HOME: '/x/.smith' })).toEqual(
      attachCommand('coder', { home: '/x/.smith' }),
    );
    expect(new TmuxRuntime({ socketName: 'fixed' }).socketFor({ SMITH_HOME: '/x/.smith' })).toBe('fixed');
  });
});

describe('TmuxRuntime.check', () => {
  it('accepts an agent whose program is installed', async () => {
    await expect(new TmuxRuntime().check(agent())).resolves.toBeUndefined();
  });

  it('says how to install tmux when it is missing', async () => {
    const err = await checkError(new TmuxRuntime({ tmuxPath: path.join(dir, 'no-tmux') }), agent());
    expect(isSmithError(err, 'RUNTIME_NOT_FOUND')).toBe(true);
    expect((err as Error).message).toContain('apt-get install tmux');
    expect((err as Error).message).toContain('agent "sh"');
  });

  it('refuses an agent without a command', async () => {
    const err = await checkError(new TmuxRuntime(), agent({ command: undefined }));
    expect(isSmithError(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toMatch(/runtime "tmux" needs a "command"/);
  });

  it('names a program that is not installed', async () => {
    const err = await checkError(new TmuxRuntime(), agent({ command: ['no-such-agent-cli-xyz'] }));
    expect(isSmithError(err, 'RUNTIME_NOT_FOUND')).toBe(true);
    expect((err as Error).message).toBe(
      'agent "sh": command "no-such-agent-cli-xyz" not found; install it or fix "command" in smith.yaml',
    );
  });
});

describe('TmuxRuntime.close', () => {
  it('may be called twice, and an attempt started after it ends canceled', async () => {
    const runtime = new TmuxRuntime({ socketName: `smith-unit-${process.pid}` });
    await runtime.close();
    await runtime.close();
    const outcome = await runtime.start({
      input: { id: 't', key: 't', workflow_id: null, prompt: 'true', attempt: 1, needs: {} },
      attemptId: 'a',
      epoch: 1,
      agent: agent(),
      instance: 0,
      workdir: dir,
      env: {},
      timeoutMs: null,
      onEvent: () => undefined,
    }).done;
    expect(outcome.status).toBe('canceled');
    expect(outcome.error).toBe('the tmux runtime was closed');
  });
});
