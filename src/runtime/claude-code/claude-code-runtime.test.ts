import { describe, expect, it } from 'vitest';

import type { AgentSpec } from '../../core/types.js';
import type { AttemptContext } from '../types.js';
import { buildClaudeArgv, buildClaudeEnv, claudeBudgetUsd } from './claude-code-runtime.js';

function ctx(agent: Partial<AgentSpec> = {}, extra: Partial<AttemptContext> = {}): AttemptContext {
  return {
    input: { id: 't1', key: 'task', workflow_id: null, prompt: 'fix the bug', attempt: 1, needs: {} },
    attemptId: 'a1',
    epoch: 1,
    agent: { name: 'coder', runtime: 'claude-code', capabilities: [], concurrency: 1, ...agent },
    instance: 0,
    workdir: '/work/repo',
    env: { PATH: '/usr/bin', ANTHROPIC_API_KEY: 'k', CLAUDECODE: '1', CLAUDE_CODE_ENTRYPOINT: 'cli' },
    timeoutMs: null,
    onEvent: () => undefined,
    ...extra,
  };
}

const asRoot = process.getuid?.() === 0;

describe('buildClaudeArgv', () => {
  it('runs claude from PATH with the minimal flags and the prompt after --', () => {
    expect(buildClaudeArgv(ctx())).toEqual([
      'claude',
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--',
      'fix the bug',
    ]);
  });

  it('adds the attempt guidance to the prompt', () => {
    const input = {
      id: 't1',
      key: 'task',
      workflow_id: null,
      prompt: 'fix the bug',
      attempt: 2,
      needs: {},
      guidance: [{ from: 'council', text: 'add a test' }],
    };
    const prompt = buildClaudeArgv(ctx({}, { input })).at(-1);
    expect(prompt).toMatch(/^fix the bug\n\n.*\n- \(council\) add a test$/);
  });

  it('skips --max-budget-usd when no budget is set, and takes the smaller cap', () => {
    expect(claudeBudgetUsd(ctx())).toBeUndefined();
    expect(claudeBudgetUsd(ctx({ maxBudgetUsd: 1 }))).toBe(1);
    expect(claudeBudgetUsd(ctx({ maxBudgetUsd: 1 }, { budget: { usd: 3 } }))).toBe(1);
    expect(claudeBudgetUsd(ctx({}, { budget: { usd: 0.25, tokens: 10 } }))).toBe(0.25);
    expect(claudeBudgetUsd(ctx({}, { budget: { tokens: 10 } }))).toBeUndefined();
  });
});

describe('buildClaudeEnv', () => {
  it('drops the nested-session markers and keeps the rest', () => {
    const env = buildClaudeEnv(ctx({ baseUrl: 'http://127.0.0.1:1' }));
    expect(env).toEqual({
      PATH: '/usr/bin',
      ANTHROPIC_API_KEY: 'k',
      ANTHROPIC_BASE_URL: 'http://127.0.0.1:1',
    });
  });

  it('sets IS_SANDBOX=1 only as root with permissions bypassed (over a value the CLI would not honour)', () => {
    expect(buildClaudeEnv(ctx({ permissionMode: 'bypassPermissions' })).IS_SANDBOX).toBe(
      asRoot ? '1' : undefined,
    );
    expect(buildClaudeEnv(ctx({ args: ['--dangerously-skip-permissions'] })).IS_SANDBOX).toBe(
      asRoot ? '1' : undefined,
    );
    expect(buildClaudeEnv(ctx({ permissionMode: 'acceptEdits' })).IS_SANDBOX).toBeUndefined();
    expect(
      buildClaudeEnv(ctx({ permissionMode: 'bypassPermissions' }, { mode: 'dry-run' })).IS_SANDBOX,
    ).toBeUndefined();
    // Claude Code honours only "1": as root, bypass asked for, another value would make the CLI refuse
    const own = ctx({ permissionMode: 'bypassPermissions' });
    own.env.IS_SANDBOX = 'yes';
    expect(buildClaudeEnv(own).IS_SANDBOX).toBe(asRoot ? '1' : 'yes');
    const notAsked = ctx({ permissionMode: 'acceptEdits' });
    notAsked.env.IS_SANDBOX = 'yes';
    expect(buildClaudeEnv(notAsked).IS_SANDBOX).toBe('yes');
  });
});
