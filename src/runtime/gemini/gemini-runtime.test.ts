import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { isSmithError } from '../../core/errors.js';
import type { AgentSpec } from '../../core/types.js';
import type { AttemptContext } from '../types.js';
import { GeminiPlanError, GeminiRuntime, planGeminiAttempt } from './gemini-runtime.js';
import { findSessionFile, homeNameFor, mergeSettings, pruneHomes } from './home.js';

let dir: string;
let workdir: string;
let homeRoot: string;

beforeEach(() => {
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'smith-gemini-unit-')));
  workdir = path.join(dir, 'work');
  homeRoot = path.join(dir, 'homes');
  mkdirSync(workdir);
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function ctxWith(agent: Partial<AgentSpec> = {}, extra: Partial<AttemptContext> = {}): AttemptContext {
  return {
    input: { id: 'task/1', key: 't', workflow_id: null, prompt: 'do it', attempt: 1, needs: {} },
    attemptId: 'a1',
    epoch: 1,
    agent: { name: 'gem', runtime: 'gemini', capabilities: [], concurrency: 1, ...agent },
    instance: 0,
    workdir,
    env: { PATH: '/usr/bin:/bin', GEMINI_API_KEY: 'k' },
    timeoutMs: null,
    onEvent: () => undefined,
    ...extra,
  };
}

/** Write a session file the way Gemini CLI 0.61 does. */
function writeSession(home: string, project: string, root: string, id: string): string {
  const chats = path.join(home, '.gemini', 'tmp', project, 'chats');
  mkdirSync(chats, { recursive: true });
  writeFileSync(path.join(home, '.gemini', 'tmp', project, '.project_root'), root);
  const file = path.join(chats, `session-2026-11-23T15-31-${id.slice(0, 8)}.jsonl`);
  writeFileSync(
    file,
    JSON.stringify({ sessionId: id, projectHash: 'h', startTime: 'x', lastUpdated: 'x', kind: 'main' }) +
      '\n',
  );
  return file;
}

describe('planGeminiAttempt', () => {
  it('builds the headless argv with defaults: gemini on PATH, yolo, no model', () => {
    const plan = planGeminiAttempt(ctxWith(), { homeRoot });
    expect(plan.argv).toEqual([
      'gemini',
      '--prompt=do it',
      '--output-format',
      'stream-json',
      '--skip-trust',
      '--approval-mode',
      'yolo',
    ]);
    expect(plan.idleTimeoutMs).toBe(300_000);
    expect(plan.resume).toBeNull();
  });

  it('runs dry-run tasks in plan mode whatever the permission mode', () => {
    const plan = planGeminiAttempt(ctxWith({ permissionMode: 'yolo' }, { mode: 'dry-run' }), { homeRoot });
    expect(plan.argv.slice(-2)).toEqual(['--approval-mode', 'plan']);
  });

  it('isolates the home per task, writes its settings with max turns, and points HOME, GEMINI_CLI_HOME and TMPDIR there', () => {
    const plan = planGeminiAttempt(ctxWith({ maxTurns: 7 }), {
      homeRoot,
      settings: { general: { maxAttempts: 1 } },
    });
    const home = path.join(homeRoot, homeNameFor('task/1'));
    expect(plan.home).toBe(home);
    expect(plan.env).toMatchObject({
      HOME: home,
      GEMINI_CLI_HOME: home,
      TMPDIR: path.join(home, 'tmp'),
      GEMINI_API_KEY: 'k',
    });
    expect(plan.env.GEMINI_CLI_NO_RELAUNCH).toBe('true');
    const settings = JSON.parse(readFileSync(path.join(home, '.gemini', 'settings.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(settings).toMatchObject({
      security: { auth: { selectedType: 'gemini-api-key' }, folderTrust: { enabled: false } },
      general: { enableAutoUpdate: false, enableAutoUpdateNotification: false, maxAttempts: 1 },
      privacy: { usageStatisticsEnabled: false },
      telemetry: { enabled: false },
      model: { maxSessionTurns: 7 },
    });
  });

  it("uses the user's home with isolateHome false, and then needs no key", () => {
    const plan = planGeminiAttempt(
      ctxWith({ isolateHome: false, maxTurns: 3 }, { env: { HOME: '/home/u' } }),
      { homeRoot },
    );
    expect(plan.home).toBeNull();
    expect(plan.env.HOME).toBe('/home/u');
    expect(plan.env.GEMINI_API_KEY).toBeUndefined();
    expect(plan.notes).toEqual([expect.stringContaining('max_turns 3 is not applied')]);
    expect(existsSync(homeRoot)).toBe(false);
  });

  it('fails with reason auth when the key variable is empty', () => {
    const err = (() => {
      try {
        planGeminiAttempt(ctxWith({ apiKeyEnv: 'K2' }, { env: { K2: '' } }), { homeRoot });
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(GeminiPlanError);
    expect((err as GeminiPlanError).reason).toBe('auth');
    expect((err as Error).message).toContain('K2');
  });

  it('resumes a session the home holds for this working directory, and only then', () => {
    const home = path.join(homeRoot, homeNameFor('task/1'));
    const id = '4abacf99-ef0a-4236-bbb3-d6c99de417bd';
    writeSession(home, 'work', workdir, id);
    const plan = planGeminiAttempt(ctxWith({}, { resumeSessionId: id }), { homeRoot });
    expect(plan.resume).toBe(id);
    expect(plan.argv.slice(-2)).toEqual(['--resume', id]);

    const other = '99999999-ef0a-4236-bbb3-d6c99de417bd';
    writeSession(home, 'elsewhere', path.join(dir, 'elsewhere'), other);
    const fresh = planGeminiAttempt(ctxWith({}, { resumeSessionId: other }), { homeRoot });
    expect(fresh.resume).toBeNull();
    expect(fresh.argv).not.toContain('--resume');
    expect(fresh.notes).toEqual([expect.stringContaining(`session ${other} is not in`)]);
  });
});

describe('GeminiRuntime.check', () => {
  it('rejects an unknown permission mode and a missing key', async () => {
    const runtime = new GeminiRuntime({ homeRoot });
    const agent: AgentSpec = {
      name: 'gem',
      runtime: 'gemini',
      command: [process.execPath],
      capabilities: [],
      concurrency: 1,
      env: { GEMINI_API_KEY: 'k' },
    };
    await expect(runtime.check(agent)).resolves.toBeUndefined();
    const badMode: unknown = await runtime
      .check({ ...agent, permissionMode: 'bypassPermissions' })
      .catch((e: unknown) => e);
    expect(isSmithError(badMode) && badMode.code).toBe('CONFIG_INVALID');
    expect((badMode as Error).message).toContain('default, auto_edit, yolo, plan');
    const noKey: unknown = await runtime
      .check({ ...agent, apiKeyEnv: 'SMITH_TEST_NO_SUCH_KEY' })
      .catch((e: unknown) => e);
    expect(isSmithError(noKey) && noKey.code).toBe('CONFIG_INVALID');
    expect((noKey as Error).message).toContain('SMITH_TEST_NO_SUCH_KEY');
  });
});

describe('home helpers', () => {
  it('names homes safely', () => {
    expect(homeNameFor('01J/abc def')).toBe('01J_abc_def');
    expect(homeNameFor('..')).toBe('task_..');
    expect(homeNameFor('')).toBe('task_');
  });

  it('merges settings key by key', () => {
    expect(mergeSettings({ a: { b: 1, c: 2 }, d: [1] }, { a: { c: 3 } }, undefined, { d: [2] })).toEqual({
      a: { b: 1, c: 3 },
      d: [2],
    });
  });

  it('finds a session file only under the matching project root', () => {
    const home = path.join(dir, 'h');
    const id = '12345678-aaaa-4bbb-8ccc-dddddddddddd';
    const file = writeSession(home, 'work', workdir, id);
    expect(findSessionFile(home, workdir, id)).toBe(file);
    expect(findSessionFile(home, path.join(dir, 'other'), id)).toBeNull();
    expect(findSessionFile(home, workdir, '12345678-0000-4000-8000-000000000000')).toBeNull();
    expect(findSessionFile(path.join(dir, 'nope'), workdir, id)).toBeNull();
  });

  it('prunes homes unused for longer than the retention', () => {
    const old = path.join(homeRoot, 'old');
    const fresh = path.join(homeRoot, 'fresh');
    mkdirSync(old, { recursive: true });
    mkdirSync(fresh, { recursive: true });
    const longAgo = new Date(Date.now() - 40 * 24 * 3_600_000);
    utimesSync(old, longAgo, longAgo);
    expect(pruneHomes(homeRoot, 30 * 24 * 3_600_000)).toEqual([old]);
    expect(existsSync(fresh)).toBe(true);
    expect(pruneHomes(path.join(dir, 'missing'), 1)).toEqual([]);
  });
});

describe('GeminiRuntime.start before running anything', () => {
  it('puts the guidance into the prompt', () => {
    const ctx = ctxWith();
    ctx.input.guidance = [{ from: 'council', text: 'add a test' }];
    const prompt = planGeminiAttempt(ctx, { homeRoot }).argv[1];
    expect(prompt).toMatch(/^--prompt=do it\n/);
    expect(prompt).toContain('(council) add a test');
  });

  it('fails with budget_exceeded when no budget is left', async () => {
    const runtime = new GeminiRuntime({ homeRoot });
    const outcome = await runtime.start(ctxWith({}, { budget: { usd: 0 } })).done;
    expect(outcome).toMatchObject({ status: 'failed', reason: 'budget_exceeded', retryable: false });
    expect(outcome.error).toContain('no budget left');
    const tokens = await runtime.start(ctxWith({}, { budget: { tokens: 0 } })).done;
    expect(tokens.reason).toBe('budget_exceeded');
    expect(existsSync(homeRoot)).toBe(false);
  });
});
