import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { isSmithError } from '../../core/errors.js';
import type { AgentSpec } from '../../core/types.js';
import type { AttemptContext } from '../types.js';
import { CodexRuntime, buildCodexArgv, codexConfigProblem } from './codex-runtime.js';

const agent = (over: Partial<AgentSpec> = {}): AgentSpec => ({
  name: 'coder',
  runtime: 'codex',
  capabilities: [],
  concurrency: 1,
  ...over,
});

describe('buildCodexArgv', () => {
  it('runs codex exec in JSON mode in the workdir, workspace-write, never asking, prompt after --', () => {
    expect(buildCodexArgv({ agent: agent(), prompt: 'fix it', workdir: '/w' })).toEqual([
      'codex',
      'exec',
      '--json',
      '--cd',
      '/w',
      '--sandbox',
      'workspace-write',
      '-c',
      'approval_policy="never"',
      '--',
      'fix it',
    ]);
  });

  it('configures a base_url provider, the model, extra args, and resume after the exec options', () => {
    const argv = buildCodexArgv({
      agent: agent({
        command: ['npx', '-y', '@openai/codex'],
        model: 'gpt-5-codex',
        baseUrl: 'http://127.0.0.1:9/v1',
        provider: 'local-proxy',
        apiKeyEnv: 'PROXY_KEY',
        permissionMode: 'danger-full-access',
        args: ['-c', 'model_reasoning_effort="high"'],
        headers: { 'X-Team': 'a "b"' },
      }),
      prompt: '-p looks like a flag',
      workdir: '/w',
      resumeSessionId: 'abc-123',
      skipGitRepoCheck: true,
    });
    expect(argv.slice(0, 4)).toEqual(['npx', '-y', '@openai/codex', 'exec']);
    expect(argv).toContain('--skip-git-repo-check');
    expect(argv[argv.indexOf('--sandbox') + 1]).toBe('danger-full-access');
    expect(argv[argv.indexOf('-m') + 1]).toBe('gpt-5-codex');
    const configs = argv.flatMap((a, i) => (argv[i - 1] === '-c' ? [a] : []));
    expect(configs).toEqual([
      'approval_policy="never"',
      'model_providers.local-proxy.name="local-proxy"',
      'model_providers.local-proxy.base_url="http://127.0.0.1:9/v1"',
      'model_providers.local-proxy.wire_api="responses"',
      'model_providers.local-proxy.env_key="PROXY_KEY"',
      'model_provider="local-proxy"',
      'model_providers.local-proxy.http_headers={ "X-Team" = "a \\"b\\"" }',
      'model_reasoning_effort="high"',
    ]);
    expect(argv.slice(-5)).toEqual([
      'model_reasoning_effort="high"',
      'resume',
      'abc-123',
      '--',
      '-p looks like a flag',
    ]);
  });

  it('defaults the provider id to smith and its key to OPENAI_API_KEY; a provider alone selects it', () => {
    const withUrl = buildCodexArgv({
      agent: agent({ baseUrl: 'https://example.test/v1' }),
      prompt: 'p',
      workdir: '/w',
    });
    expect(withUrl).toContain('model_providers.smith.env_key="OPENAI_API_KEY"');
    expect(withUrl).toContain('model_provider="smith"');
    const named = buildCodexArgv({ agent: agent({ provider: 'ollama' }), prompt: 'p', workdir: '/w' });
    expect(named).toContain('model_provider="ollama"');
    expect(named.some((a) => a.startsWith('model_providers.'))).toBe(false);
  });

  it('forces the read-only sandbox for dry-run tasks whatever permission_mode says', () => {
    const argv = buildCodexArgv({
      agent: agent({ permissionMode: 'danger-full-access' }),
      prompt: 'p',
      workdir: '/w',
      mode: 'dry-run',
    });
    expect(argv[argv.indexOf('--sandbox') + 1]).toBe('read-only');
  });

  it('rejects settings codex cannot take', () => {
    expect(codexConfigProblem(agent({ permissionMode: 'bypassPermissions' }))).toContain(
      'read-only, workspace-write',
    );
    expect(codexConfigProblem(agent({ provider: 'a.b' }))).toContain('provider "a.b"');
    expect(codexConfigProblem(agent({ apiKeyEnv: 'MY-KEY' }))).toContain('api_key_env');
    expect(
      codexConfigProblem(agent({ permissionMode: 'read-only', provider: 'x_1', apiKeyEnv: 'K_1' })),
    ).toBeNull();
    let thrown: unknown;
    try {
      buildCodexArgv({ agent: agent({ permissionMode: 'plan' }), prompt: 'p', workdir: '/w' });
    } catch (err) {
      thrown = err;
    }
    expect(isSmithError(thrown, 'CONFIG_INVALID')).toBe(true);
    expect((thrown as Error).message).toContain('agent "coder"');
  });
});

describe('CodexRuntime.start with a config codex cannot take', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'smith-codex-unit-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails the attempt at once, not retryable, and starts nothing', async () => {
    const ctx: AttemptContext = {
      input: { id: 't1', key: 'k', workflow_id: null, prompt: 'p', attempt: 1, needs: {} },
      attemptId: randomUUID(),
      epoch: 1,
      agent: agent({ permissionMode: 'acceptEdits' }),
      instance: 0,
      workdir: dir,
      env: { PATH: process.env.PATH ?? '' },
      timeoutMs: null,
      onEvent: () => undefined,
    };
    const handle = new CodexRuntime({ homeRoot: path.join(dir, 'homes') }).start(ctx);
    expect(handle.pid).toBeNull();
    const outcome = await handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.retryable).toBe(false);
    expect(outcome.error).toContain('permission_mode "acceptEdits"');
  });
});
