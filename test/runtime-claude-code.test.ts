/**
 * The `claude-code` runtime end to end: the real Claude Code CLI (node_modules/.bin/claude) against
 * a local stand-in for the Anthropic Messages API (test/fixtures/fake-anthropic.ts), and small
 * scripts standing in for the CLI where a misbehaviour cannot be provoked from the real one.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { isSmithError } from '../src/core/errors.js';
import type { AgentSpec } from '../src/core/types.js';
import { ClaudeCodeRuntime, buildClaudeArgv } from '../src/runtime/claude-code/index.js';
import { findProcessesByEnv, groupAlive, readProcStat } from '../src/runtime/process/process-group.js';
import type { AttemptContext, AttemptHandle, AttemptOutcome, RuntimeEvent } from '../src/runtime/types.js';
import { FakeAnthropic } from './fixtures/fake-anthropic.js';
import type { FakeAnthropicOptions, FakeUsage } from './fixtures/fake-anthropic.js';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const CLAUDE = path.join(ROOT, 'node_modules', '.bin', 'claude');
const NODE = process.execPath;
const MODEL = 'claude-sonnet-4-5';
/** Claude Sonnet 4.5 prices, USD per token (https://www.anthropic.com/pricing#api). */
const PRICE = { input: 3e-6, output: 15e-6, cacheWrite: 3.75e-6, cacheRead: 0.3e-6 };

let workdir: string;
let home: string;
let scratch: string;
const handles: AttemptHandle[] = [];
const fakes: FakeAnthropic[] = [];

beforeEach(() => {
  workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'smith-claude-work-')));
  home = mkdtempSync(path.join(tmpdir(), 'smith-claude-home-'));
  scratch = mkdtempSync(path.join(tmpdir(), 'smith-claude-scripts-'));
});

afterEach(async () => {
  for (const handle of handles.splice(0)) {
    handle.cancel('test cleanup');
    await handle.done;
  }
  for (const fake of fakes.splice(0)) await fake.close();
  for (const dir of [workdir, home, scratch]) rmSync(dir, { recursive: true, force: true });
});

async function fakeApi(options: FakeAnthropicOptions): Promise<{ fake: FakeAnthropic; url: string }> {
  const fake = new FakeAnthropic(options);
  fakes.push(fake);
  return { fake, url: await fake.start() };
}

interface RunOptions {
  agent?: Partial<AgentSpec>;
  prompt?: string;
  env?: Record<string, string>;
  resumeSessionId?: string;
  mode?: AttemptContext['mode'];
  budget?: AttemptContext['budget'];
  lingerMs?: number;
}

interface Run {
  ctx: AttemptContext;
  handle: AttemptHandle;
  events: RuntimeEvent[];
}

function context(options: RunOptions = {}): { ctx: AttemptContext; events: RuntimeEvent[] } {
  const events: RuntimeEvent[] = [];
  const agent: AgentSpec = {
    name: 'coder',
    runtime: 'claude-code',
    command: [CLAUDE],
    capabilities: [],
    concurrency: 1,
    model: MODEL,
    permissionMode: 'bypassPermissions',
    killGraceMs: 2000,
    ...options.agent,
  };
  const attemptId = randomUUID();
  const ctx: AttemptContext = {
    input: {
      id: 'task-1',
      key: 'task',
      workflow_id: null,
      prompt: options.prompt ?? 'do it',
      attempt: 1,
      needs: {},
    },
    attemptId,
    epoch: 1,
    agent,
    instance: 0,
    workdir,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      ANTHROPIC_API_KEY: 'test-key',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      DISABLE_AUTOUPDATER: '1',
      CLAUDE_CODE_MAX_RETRIES: '0',
      SMITH_ATTEMPT_ID: attemptId,
      ...options.env,
    },
    timeoutMs: null,
    onEvent: (event) => events.push(event),
  };
  if (options.resumeSessionId !== undefined) ctx.resumeSessionId = options.resumeSessionId;
  if (options.mode !== undefined) ctx.mode = options.mode;
  if (options.budget !== undefined) ctx.budget = options.budget;
  return { ctx, events };
}

function run(options: RunOptions = {}): Run {
  const { ctx, events } = context(options);
  const runtime = new ClaudeCodeRuntime(options.lingerMs !== undefined ? { lingerMs: options.lingerMs } : {});
  const handle = runtime.start(ctx);
  handles.push(handle);
  return { ctx, handle, events };
}

/**
 * Nothing of the attempt is left: no live process in its group (zombies, dead but not yet reaped
 * by an init that reaps late, do not count) and no process carrying its attempt id.
 */
function nothingLeft(r: Run): boolean {
  const pid = r.handle.pid;
  if (pid !== null && groupAlive(pid)) return false;
  return findProcessesByEnv('SMITH_ATTEMPT_ID', r.ctx.attemptId).every((p) => readProcStat(p)?.state === 'Z');
}

function ofType<T extends RuntimeEvent['type']>(
  events: RuntimeEvent[],
  type: T,
): Extract<RuntimeEvent, { type: T }>[] {
  return events.filter((e): e is Extract<RuntimeEvent, { type: T }> => e.type === type);
}

function resultMessage(events: RuntimeEvent[]): Record<string, unknown> | undefined {
  return ofType(events, 'message')
    .map((e) => e.data as Record<string, unknown>)
    .find((d) => d.type === 'result');
}

function price(usage: FakeUsage[]): number {
  return usage.reduce(
    (sum, u) =>
      sum +
      u.input_tokens * PRICE.input +
      u.output_tokens * PRICE.output +
      u.cache_creation_input_tokens * PRICE.cacheWrite +
      u.cache_read_input_tokens * PRICE.cacheRead,
    0,
  );
}

async function waitFor(predicate: () => boolean, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (predicate()) return true;
    await sleep(25);
  }
  return predicate();
}

/** A Node script standing in for the CLI (`command: [node, script]`). */
function standIn(name: string, source: string): string[] {
  const file = path.join(scratch, `${name}.mjs`);
  writeFileSync(file, source);
  return [NODE, file];
}

const INIT_LINE = `console.log(JSON.stringify({type:'system',subtype:'init',session_id:'11111111-2222-3333-4444-555555555555',model:'claude-sonnet-4-5',tools:['Write'],cwd:process.cwd()}));`;
const RESULT_LINE = (text: string): string =>
  `console.log(JSON.stringify({type:'result',subtype:'success',is_error:false,num_turns:1,result:${text},session_id:'11111111-2222-3333-4444-555555555555',total_cost_usd:0.25,usage:{input_tokens:10,output_tokens:5,cache_read_input_tokens:0,cache_creation_input_tokens:0}}));`;

describe('claude-code runtime with the real CLI', () => {
  it('edits a file in a git repository and reports session, tools, usage and cost', async () => {
    execFileSync('git', ['init', '-q'], { cwd: workdir });
    const target = path.join(workdir, 'hello.txt');
    const { fake, url } = await fakeApi({
      turns: [
        {
          content: [
            { type: 'text', text: "I'll create hello.txt." },
            { type: 'tool_use', name: 'Write', input: { file_path: target, content: 'hello from claude\n' } },
          ],
          usage: {
            input_tokens: 200,
            output_tokens: 30,
            cache_creation_input_tokens: 50,
            cache_read_input_tokens: 10,
          },
        },
        { content: [{ type: 'text', text: 'Created hello.txt.' }] },
      ],
    });
    const r = run({ agent: { baseUrl: url }, prompt: 'Create hello.txt saying hello' });
    const outcome = await r.handle.done;

    expect(outcome.status).toBe('succeeded');
    expect(readFileSync(target, 'utf8')).toBe('hello from claude\n');
    expect(execFileSync('git', ['status', '--porcelain'], { cwd: workdir, encoding: 'utf8' })).toContain(
      '?? hello.txt',
    );
    expect(outcome.output).toBe('Created hello.txt.');

    const sessions = ofType(r.events, 'session');
    expect(sessions).toHaveLength(1);
    expect(outcome.sessionId).toBe(sessions[0]?.id);
    expect(r.events[0]?.type).toBe('session'); // reported at once
    expect(ofType(r.events, 'text').map((e) => e.text)).toEqual([
      "I'll create hello.txt.",
      'Created hello.txt.',
    ]);
    const use = ofType(r.events, 'tool_use');
    expect(use).toHaveLength(1);
    expect(use[0]).toMatchObject({ name: 'Write', input: { file_path: target } });
    expect(ofType(r.events, 'tool_result')).toMatchObject([{ id: use[0]?.id, isError: false }]);
    expect(ofType(r.events, 'file_change')).toEqual([
      { type: 'file_change', path: 'hello.txt', kind: 'add' },
    ]);
    const usage = ofType(r.events, 'usage');
    expect(usage.length).toBeGreaterThan(0);
    expect(usage.every((u) => u.model === MODEL && u.costUsd === undefined)).toBe(true);

    // the cost is the CLI's own total_cost_usd, which prices what the API served
    const reported = resultMessage(r.events)?.total_cost_usd;
    expect(outcome.costUsd).toBeGreaterThan(0);
    expect(outcome.costUsd).toBe(reported);
    expect(outcome.costUsd).toBeCloseTo(price(fake.servedUsage), 9);
    expect(outcome.tokens).toEqual({ input: 320, output: 70, cacheRead: 10, cacheWrite: 50 });
    // the usage deltas add up to the result's totals
    const summed = usage.reduce(
      (s, u) => s + u.tokens.input + u.tokens.output + u.tokens.cacheRead + u.tokens.cacheWrite,
      0,
    );
    expect(summed).toBe(320 + 70 + 10 + 50);
    expect(fake.unknownPaths).toEqual([]);
    expect(nothingLeft(r)).toBe(true);
  });

  it('resumes the session: the second attempt passes --resume and the API sees the first conversation', async () => {
    const { fake, url } = await fakeApi({
      turns: [
        { content: [{ type: 'text', text: 'The answer is 42.' }] },
        { content: [{ type: 'text', text: 'I said 42.' }] },
      ],
    });
    const first = run({ agent: { baseUrl: url }, prompt: 'What is the answer?' });
    const one = await first.handle.done;
    expect(one.status).toBe('succeeded');
    expect(one.sessionId).toMatch(/^[0-9a-f-]{36}$/);

    const second = run({
      agent: { baseUrl: url },
      prompt: 'What did you say?',
      resumeSessionId: one.sessionId,
    });
    const argv = buildClaudeArgv(second.ctx);
    expect(argv.slice(argv.indexOf('--resume'), argv.indexOf('--resume') + 2)).toEqual([
      '--resume',
      one.sessionId,
    ]);
    const two = await second.handle.done;
    expect(two.status).toBe('succeeded');
    expect(two.output).toBe('I said 42.');
    expect(two.sessionId).toBe(one.sessionId);

    const request = JSON.stringify(fake.mainRequests[1]?.body?.messages);
    expect(request).toContain('What is the answer?');
    expect(request).toContain('The answer is 42.');
    expect(request).toContain('What did you say?');
  });

  it('ends a CLI that goes silent with the idle watchdog, leaving no process', async () => {
    const { url } = await fakeApi({ stall: true });
    const r = run({ agent: { baseUrl: url, idleTimeoutMs: 3000 } });
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('idle');
    expect(outcome.error).toMatch(/no event for 3000 ms/);
    expect(outcome.sessionId).toBe(ofType(r.events, 'session')[0]?.id);
    expect(nothingLeft(r)).toBe(true);
  });

  it('fails with reason auth, not retryable, when the API refuses the key (401)', async () => {
    const { url } = await fakeApi({
      fail: { status: 401, type: 'authentication_error', message: 'invalid x-api-key' },
    });
    const outcome = await run({ agent: { baseUrl: url } }).handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('auth');
    expect(outcome.retryable).toBe(false);
    expect(outcome.error).toMatch(/agent "coder".*HTTP 401.*Invalid API key.*ANTHROPIC_API_KEY/);
  });

  it.each([
    [500, 'api_error', 'Internal server error', 'provider'],
    [529, 'overloaded_error', 'Overloaded', 'provider'],
    [
      429,
      'rate_limit_error',
      'Number of request tokens has exceeded your per-minute rate limit',
      'rate_limited',
    ],
  ] as const)('fails with the reason of an API %i', async (status, type, message, reason) => {
    const { url } = await fakeApi({ fail: { status, type, message } });
    const outcome = await run({ agent: { baseUrl: url } }).handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe(reason);
    expect(outcome.retryable).toBe(true);
    expect(outcome.error).toContain(`HTTP ${status}`);
  });

  it('stops at --max-budget-usd: reason budget_exceeded', async () => {
    const { url } = await fakeApi({
      turns: [
        {
          content: [{ type: 'tool_use', name: 'Bash', input: { command: 'echo one', description: 'echo' } }],
        },
        { content: [{ type: 'text', text: 'done' }] },
      ],
    });
    const r = run({ agent: { baseUrl: url, maxBudgetUsd: 5 }, budget: { usd: 0.0001 } });
    expect(buildClaudeArgv(r.ctx)).toContain('0.0001');
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('budget_exceeded');
    expect(outcome.retryable).toBe(false);
    expect(outcome.costUsd).toBeGreaterThan(0.0001);
    expect(outcome.error).toMatch(/error_max_budget_usd/);
  });

  it('cancel mid-run ends the whole process group', async () => {
    const { fake, url } = await fakeApi({ stall: true });
    const r = run({ agent: { baseUrl: url } });
    expect(await waitFor(() => fake.mainRequests.length > 0)).toBe(true);
    r.handle.cancel('operator canceled');
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('canceled');
    expect(outcome.error).toBe('operator canceled');
    expect(nothingLeft(r)).toBe(true);
  });
});

describe('claude-code runtime when the CLI is missing', () => {
  it('check() names the command and how to install it; start() fails with not_installed', async () => {
    const runtime = new ClaudeCodeRuntime();
    const { ctx } = context({ agent: { command: ['/nonexistent/claude'] } });
    const err: unknown = await runtime.check(ctx.agent).catch((e: unknown) => e);
    expect(isSmithError(err, 'RUNTIME_NOT_FOUND')).toBe(true);
    expect((err as Error).message).toContain('/nonexistent/claude');
    expect((err as Error).message).toContain('npm install -g @anthropic-ai/claude-code');

    const onPath: unknown = await runtime
      .check({ ...ctx.agent, command: undefined, env: { PATH: scratch } })
      .catch((e: unknown) => e);
    expect(isSmithError(onPath, 'RUNTIME_NOT_FOUND')).toBe(true);
    expect((onPath as Error).message).toMatch(/"claude" on PATH was not found/);

    await expect(runtime.check({ ...ctx.agent, command: [CLAUDE] })).resolves.toBeUndefined();

    const handle = runtime.start(ctx);
    const outcome = await handle.done;
    expect(handle.pid).toBeNull();
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('not_installed');
    expect(outcome.retryable).toBe(false);
    expect(outcome.error).toContain('npm install -g @anthropic-ai/claude-code');
  });
});

describe('claude-code runtime with a stand-in CLI', () => {
  it('passes settings as flags, the prompt after --, and a cleaned environment', async () => {
    const command = standIn(
      'echo-argv',
      `import { readFileSync } from 'node:fs';
${INIT_LINE}
const env = {};
for (const k of ['CLAUDECODE','CLAUDE_CODE_ENTRYPOINT','CLAUDE_CODE_SSE_PORT','ANTHROPIC_BASE_URL','IS_SANDBOX','CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC']) env[k] = process.env[k] ?? null;
const stdin = readFileSync(0, 'utf8');
${RESULT_LINE('JSON.stringify({ argv: process.argv.slice(2), env, stdin })')}`,
    );
    const r = run({
      prompt: '--not-a-flag: fix it',
      env: { CLAUDECODE: '1', CLAUDE_CODE_ENTRYPOINT: 'cli', CLAUDE_CODE_SSE_PORT: '1234' },
      agent: {
        command: [...command, '--extra-first'],
        allowedTools: ['Read', 'Bash(git diff:*)'],
        disallowedTools: ['WebFetch'],
        maxTurns: 7,
        maxBudgetUsd: 2,
        mcpConfig: '/etc/mcp.json',
        appendSystemPrompt: 'Be brief.',
        args: ['--effort', 'low'],
        baseUrl: 'http://127.0.0.1:9/anthropic',
      },
      budget: { usd: 0.5 },
      resumeSessionId: 'abc-123',
    });
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('succeeded');
    const seen = JSON.parse(outcome.output) as {
      argv: string[];
      env: Record<string, string | null>;
      stdin: string;
    };
    expect(seen.argv).toEqual([
      '--extra-first',
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--model',
      MODEL,
      '--permission-mode',
      'bypassPermissions',
      '--allowedTools',
      'Read',
      'Bash(git diff:*)',
      '--disallowedTools',
      'WebFetch',
      '--max-turns',
      '7',
      '--max-budget-usd',
      '0.5',
      '--mcp-config',
      '/etc/mcp.json',
      '--append-system-prompt',
      'Be brief.',
      '--resume',
      'abc-123',
      '--effort',
      'low',
      '--',
      '--not-a-flag: fix it',
    ]);
    expect(seen.env).toEqual({
      CLAUDECODE: null,
      CLAUDE_CODE_ENTRYPOINT: null,
      CLAUDE_CODE_SSE_PORT: null,
      ANTHROPIC_BASE_URL: 'http://127.0.0.1:9/anthropic',
      IS_SANDBOX: process.getuid?.() === 0 ? '1' : null,
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    });
    expect(seen.stdin).toBe('');
    expect(outcome.costUsd).toBe(0.25);
    expect(outcome.sessionId).toBe('11111111-2222-3333-4444-555555555555');
  });

  it('a dry-run runs in plan mode whatever the agent says; no budget left fails at once', async () => {
    const command = standIn('argv', `${INIT_LINE}\n${RESULT_LINE('JSON.stringify(process.argv.slice(2))')}`);
    const r = run({
      mode: 'dry-run',
      agent: {
        command,
        args: ['--dangerously-skip-permissions', '--permission-mode', 'acceptEdits', '--effort', 'low'],
      },
    });
    const outcome = await r.handle.done;
    const argv = JSON.parse(outcome.output) as string[];
    expect(argv.slice(argv.indexOf('--permission-mode'), argv.indexOf('--permission-mode') + 2)).toEqual([
      '--permission-mode',
      'plan',
    ]);
    expect(argv.filter((a) => a === '--permission-mode')).toHaveLength(1);
    expect(argv).not.toContain('--dangerously-skip-permissions');
    expect(argv).toContain('--effort');

    const spent = run({ agent: { command }, budget: { usd: 0 } });
    const none = await spent.handle.done;
    expect(spent.handle.pid).toBeNull();
    expect(none).toMatchObject({ status: 'failed', reason: 'budget_exceeded', retryable: false });
  });

  it('survives malformed lines and a 20 MB flood, and still reads the result after them', async () => {
    const command = standIn(
      'flood',
      `${INIT_LINE}
const out = [];
out.push('this is not JSON');
out.push('{"type":"assistant","message":{"content":[{"type":"text","text":"cut sh');
out.push('{"no_type":true}');
const line = 'x'.repeat(1023);
for (let i = 0; i < 10240; i++) out.push(line);
process.stdout.write(out.join('\\n') + '\\n');
process.stdout.write('y'.repeat(10 * 1024 * 1024) + '\\n');
${RESULT_LINE('"survived"')}`,
    );
    const r = run({ agent: { command } });
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('survived');
    expect(outcome.stdoutBytes).toBeGreaterThan(20 * 1024 * 1024);
    const logBytes = ofType(r.events, 'log').reduce((n, e) => n + e.line.length, 0);
    expect(logBytes).toBeLessThan(2 * 1024 * 1024); // bounded, not 20 MB of events
    expect(ofType(r.events, 'log').some((e) => /longer than the line cap/.test(e.line))).toBe(true);
    expect(ofType(r.events, 'log').some((e) => e.line === 'this is not JSON')).toBe(true);
  });

  it('ends a CLI that lingers after its result, and counts it as succeeded', async () => {
    const command = standIn(
      'linger',
      `import { spawn } from 'node:child_process';
spawn('sleep', ['600'], { stdio: 'ignore' });
${INIT_LINE}
${RESULT_LINE('"finished"')}
setInterval(() => {}, 1000);`,
    );
    const r = run({ agent: { command }, lingerMs: 500 });
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('finished');
    expect(outcome.error).toBeUndefined();
    expect(outcome.reason).toBeUndefined();
    expect(outcome.signal).not.toBeNull(); // smith ended it
    expect(nothingLeft(r)).toBe(true);
  });

  it('a CLI that crashes without a result fails with reason crashed', async () => {
    const command = standIn(
      'crash',
      `${INIT_LINE}
console.log(JSON.stringify({type:'assistant',message:{id:'m1',model:'claude-sonnet-4-5',content:[{type:'text',text:'working'}],usage:{input_tokens:5,output_tokens:1}}}));
console.error('fatal: the disk caught fire');
process.exitCode = 3;`,
    );
    const r = run({ agent: { command } });
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('crashed');
    expect(outcome.exitCode).toBe(3);
    expect(outcome.error).toMatch(/exit code 3: fatal: the disk caught fire/);
    expect(outcome.sessionId).toBe('11111111-2222-3333-4444-555555555555');
    expect(ofType(r.events, 'usage')).toHaveLength(1);
  });

  it('exit 0 without a result line is malformed', async () => {
    const command = standIn('quiet', `console.log('hello, I am not claude');`);
    const outcome = await run({ agent: { command } }).handle.done;
    expect(outcome).toMatchObject({ status: 'failed', reason: 'malformed' });
    expect(outcome.error).toMatch(/no stream-json result line/);
  });

  it('isolate_home runs the CLI with a throwaway HOME that is removed afterwards', async () => {
    const command = standIn('home', `${INIT_LINE}\n${RESULT_LINE('process.env.HOME')}`);
    const outcome: AttemptOutcome = await run({ agent: { command, isolateHome: true } }).handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).not.toBe(home);
    expect(outcome.output).toMatch(/smith-claude-home-/);
    expect(existsSync(outcome.output)).toBe(false);
  });
});
