/**
 * The `gemini` runtime against the real Gemini CLI (`node_modules/.bin/gemini`), talking to a
 * local fake of the Gemini API (test/fixtures/fake-gemini-api.ts), and against small stand-in
 * scripts for misbehaviour the real CLI cannot be made to show.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { isSmithError } from '../src/core/errors.js';
import type { AgentSpec } from '../src/core/types.js';
import { GeminiRuntime } from '../src/runtime/gemini/index.js';
import type { GeminiRuntimeOptions } from '../src/runtime/gemini/index.js';
import { findProcessesByEnv, groupAlive } from '../src/runtime/process/process-group.js';
import type {
  AttemptContext,
  AttemptHandle,
  AttemptOutcome,
  RuntimeEvent,
  TaskInput,
} from '../src/runtime/types.js';
import { startFakeGeminiApi } from './fixtures/fake-gemini-api.js';
import type { FakeGeminiApi, FakeGeminiTurn } from './fixtures/fake-gemini-api.js';

const GEMINI = fileURLToPath(new URL('../node_modules/.bin/gemini', import.meta.url));
const KEY = 'test-gemini-key';

let dir: string;
let workdir: string;
let homeRoot: string;
let api: FakeGeminiApi | null = null;
const started: AttemptHandle[] = [];

beforeEach(() => {
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'smith-gemini-test-')));
  workdir = path.join(dir, 'repo');
  homeRoot = path.join(dir, 'homes');
  mkdirSync(workdir);
});

afterEach(async () => {
  for (const handle of started.splice(0)) {
    handle.cancel('test cleanup');
    await handle.done;
  }
  await api?.close();
  api = null;
  rmSync(dir, { recursive: true, force: true });
});

/** A git repository with one committed file. */
function gitRepo(): void {
  const git = (...args: string[]): void => {
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
      cwd: workdir,
      stdio: 'ignore',
    });
  };
  git('init', '-q', '.');
  writeFileSync(path.join(workdir, 'README.md'), '# demo\n');
  git('add', '.');
  git('commit', '-q', '-m', 'init');
}

interface Run {
  handle: AttemptHandle;
  events: RuntimeEvent[];
  ctx: AttemptContext;
  outcome: () => Promise<AttemptOutcome>;
}

interface RunOptions {
  agent?: Partial<AgentSpec>;
  input?: Partial<TaskInput>;
  env?: Record<string, string>;
  resumeSessionId?: string;
  mode?: AttemptContext['mode'];
  runtime?: GeminiRuntimeOptions;
  onEvent?: (event: RuntimeEvent, handle: () => AttemptHandle) => void;
}

function run(options: RunOptions = {}): Run {
  const events: RuntimeEvent[] = [];
  const agent: AgentSpec = {
    name: 'gem',
    runtime: 'gemini',
    command: [GEMINI],
    capabilities: [],
    concurrency: 1,
    model: 'gemini-2.5-pro',
    killGraceMs: 2000,
    ...options.agent,
  };
  const attemptId = randomUUID();
  let handle: AttemptHandle | null = null;
  const ctx: AttemptContext = {
    input: {
      id: 'task-1',
      key: 'task',
      workflow_id: null,
      prompt: 'do it',
      attempt: 1,
      needs: {},
      ...options.input,
    },
    attemptId,
    epoch: 1,
    agent,
    instance: 0,
    workdir,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      GEMINI_API_KEY: KEY,
      SMITH_ATTEMPT_ID: attemptId,
      ...(api !== null ? { GOOGLE_GEMINI_BASE_URL: api.url } : {}),
      ...options.env,
    },
    timeoutMs: null,
    onEvent: (event) => {
      events.push(event);
      if (handle !== null) options.onEvent?.(event, () => handle as AttemptHandle);
    },
  };
  if (options.resumeSessionId !== undefined) ctx.resumeSessionId = options.resumeSessionId;
  if (options.mode !== undefined) ctx.mode = options.mode;
  const runtime = new GeminiRuntime({
    homeRoot,
    settings: { general: { maxAttempts: 1 } },
    ...options.runtime,
  });
  handle = runtime.start(ctx);
  started.push(handle);
  const h = handle;
  return {
    handle: h,
    events,
    ctx,
    outcome: async () => {
      const outcome = await h.done;
      started.splice(started.indexOf(h), 1);
      return outcome;
    },
  };
}

/** Nothing of the attempt is left: its process group and any process carrying its id. */
function expectNothingLeft(r: Run): void {
  if (r.handle.pid !== null) expect(groupAlive(r.handle.pid)).toBe(false);
  expect(findProcessesByEnv('SMITH_ATTEMPT_ID', r.ctx.attemptId)).toEqual([]);
}

function ofType<T extends RuntimeEvent['type']>(
  events: RuntimeEvent[],
  type: T,
): Extract<RuntimeEvent, { type: T }>[] {
  return events.filter((e): e is Extract<RuntimeEvent, { type: T }> => e.type === type);
}

async function fakeApi(turns: FakeGeminiTurn[]): Promise<FakeGeminiApi> {
  api = await startFakeGeminiApi(turns, { apiKey: KEY });
  return api;
}

/** The text of every part of every content of a request body. */
function textsOf(body: unknown): string {
  return JSON.stringify((body as { contents?: unknown }).contents ?? []);
}

describe('gemini runtime with the real CLI', () => {
  it('edits a file in a git repo and reports session, text, tools, file change, usage and the answer', async () => {
    gitRepo();
    await fakeApi([
      {
        text: 'I will create the greeting file.',
        calls: [{ name: 'write_file', args: { file_path: 'hello.txt', content: 'hello from gemini\n' } }],
        usage: { prompt: 120, candidates: 15, thoughts: 5 },
      },
      { text: 'Done: hello.txt now greets.', usage: { prompt: 200, candidates: 8 } },
    ]);
    const r = run({ input: { prompt: 'Create hello.txt with a greeting.' } });
    const outcome = await r.outcome();

    expect(outcome.status).toBe('succeeded');
    expect(readFileSync(path.join(workdir, 'hello.txt'), 'utf8')).toBe('hello from gemini\n');
    expect(execFileSync('git', ['status', '--porcelain'], { cwd: workdir, encoding: 'utf8' })).toContain(
      'hello.txt',
    );
    expect(outcome.output).toBe('Done: hello.txt now greets.');

    const session = ofType(r.events, 'session');
    expect(session).toHaveLength(1);
    expect(outcome.sessionId).toBe(session[0]?.id);
    expect(outcome.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(ofType(r.events, 'text').map((e) => e.text)).toEqual([
      'I will create the greeting file.',
      'Done: hello.txt now greets.',
    ]);
    const toolUse = ofType(r.events, 'tool_use');
    expect(toolUse).toHaveLength(1);
    expect(toolUse[0]).toMatchObject({ name: 'write_file', input: { file_path: 'hello.txt' } });
    const toolResult = ofType(r.events, 'tool_result');
    expect(toolResult).toEqual([expect.objectContaining({ id: toolUse[0]?.id, isError: false })]);
    expect(ofType(r.events, 'file_change')).toEqual([
      { type: 'file_change', path: 'hello.txt', kind: 'add' },
    ]);
    // the result's stats: both turns of the main model; output counts thinking tokens too
    const usage = ofType(r.events, 'usage');
    expect(usage).toEqual([
      {
        type: 'usage',
        model: 'gemini-2.5-pro',
        tokens: { input: 320, output: 28, cacheRead: 0, cacheWrite: 0 },
      },
    ]);
    expect(outcome.tokens).toEqual({ input: 320, output: 28, cacheRead: 0, cacheWrite: 0 });
    // the CLI sent the key and the prompt to the fake API, and the settings kept it off the network
    const chat = api?.requests.filter((q) => q.chat) ?? [];
    expect(chat).toHaveLength(2);
    expect(chat[0]?.headers['x-goog-api-key']).toBe(KEY);
    expect(textsOf(chat[0]?.body)).toContain('Create hello.txt with a greeting.');
    expect(api?.unknown).toEqual([]);
    expectNothingLeft(r);
  });

  it('resumes the session of an earlier attempt: the API sees the earlier conversation', async () => {
    await fakeApi([{ text: 'The secret word is PAPAYA.' }, { text: 'You asked me about PAPAYA before.' }]);
    const first = await run({ input: { prompt: 'Remember the secret word.' } }).outcome();
    expect(first.status).toBe('succeeded');
    expect(first.sessionId).toBeDefined();

    const second = run({
      input: { prompt: 'What did I ask before?', attempt: 2 },
      resumeSessionId: first.sessionId,
    });
    const outcome = await second.outcome();
    expect(outcome.status).toBe('succeeded');
    expect(outcome.sessionId).toBe(first.sessionId);
    expect(outcome.output).toBe('You asked me about PAPAYA before.');
    const bodies = api?.chatBodies() ?? [];
    expect(bodies).toHaveLength(2);
    const resumed = textsOf(bodies[1]);
    expect(resumed).toContain('Remember the secret word.');
    expect(resumed).toContain('The secret word is PAPAYA.');
    expect(resumed).toContain('What did I ask before?');
    // the usage is this attempt's only, not the session's
    expect(ofType(second.events, 'usage')).toEqual([
      {
        type: 'usage',
        model: 'gemini-2.5-pro',
        tokens: { input: 100, output: 10, cacheRead: 0, cacheWrite: 0 },
      },
    ]);
  });

  it('ends a CLI whose API stalls with the idle watchdog: reason idle, nothing left behind', async () => {
    await fakeApi([{ stall: true }]);
    const r = run({ agent: { idleTimeoutMs: 10_000 } });
    const outcome = await r.outcome();
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('idle');
    expect(outcome.error).toContain('idle watchdog');
    expectNothingLeft(r);
  });

  it('maps a refused API key to reason auth, not retryable', async () => {
    await fakeApi([]);
    const r = run({ env: { GEMINI_API_KEY: 'wrong-key' } });
    const outcome = await r.outcome();
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('auth');
    expect(outcome.retryable).toBe(false);
    expect(outcome.error).toContain('API key not valid');
    expect(outcome.error).toContain('GEMINI_API_KEY');
    expectNothingLeft(r);
  });

  it('maps an overloaded API (HTTP 503) to reason provider, retryable', async () => {
    await fakeApi([{ httpStatus: 503 }]);
    const r = run();
    const outcome = await r.outcome();
    // the CLI exits with the HTTP status, modulo 256
    expect(outcome).toMatchObject({ status: 'failed', reason: 'provider', exitCode: 503 & 0xff });
    expect(outcome.retryable).not.toBe(false);
    expect(outcome.error).toContain('overloaded');
    expectNothingLeft(r);
  });

  it('reports exit code 42 (input error) for an empty prompt and 53 for the turn limit', async () => {
    await fakeApi([
      { calls: [{ name: 'write_file', args: { file_path: 'a.txt', content: 'a\n' } }] },
      { text: 'never reached' },
    ]);
    const empty = await run({ input: { prompt: '' } }).outcome();
    expect(empty).toMatchObject({ status: 'failed', exitCode: 42, reason: 'crashed', retryable: false });
    expect(empty.error).toContain('input error');
    expect(empty.error).toContain('No input provided');

    const limited = await run({ agent: { maxTurns: 1 } }).outcome();
    expect(limited).toMatchObject({ status: 'failed', exitCode: 53, reason: 'crashed' });
    expect(limited.error).toContain('turn limit exceeded');
  });

  it('runs dry-run tasks in plan mode: the write is refused and the file is not created', async () => {
    await fakeApi([
      { calls: [{ name: 'write_file', args: { file_path: 'plan.txt', content: 'x\n' } }] },
      { text: 'I could not write in plan mode.' },
    ]);
    const r = run({ mode: 'dry-run' });
    const outcome = await r.outcome();
    expect(outcome.status).toBe('succeeded');
    expect(existsSync(path.join(workdir, 'plan.txt'))).toBe(false);
    expect(ofType(r.events, 'tool_result')[0]?.isError).toBe(true);
    expect(ofType(r.events, 'file_change')).toEqual([]);
  });
});

describe('gemini runtime when the CLI is missing', () => {
  const agent = (command: string[]): AgentSpec => ({
    name: 'gem',
    runtime: 'gemini',
    command,
    capabilities: [],
    concurrency: 1,
    env: { GEMINI_API_KEY: KEY },
  });

  it('check() rejects with RUNTIME_NOT_FOUND and the install hint', async () => {
    const runtime = new GeminiRuntime({ homeRoot });
    const err: unknown = await runtime.check(agent(['no-such-gemini-cli'])).catch((e: unknown) => e);
    expect(isSmithError(err) && err.code).toBe('RUNTIME_NOT_FOUND');
    expect((err as Error).message).toContain('no-such-gemini-cli');
    expect((err as Error).message).toContain('npm install -g @google/gemini-cli');
    await expect(runtime.check(agent([GEMINI]))).resolves.toBeUndefined();
  });

  it('start() fails with not_installed, not retryable', async () => {
    const r = run({ agent: { command: [path.join(dir, 'missing', 'gemini')] } });
    const outcome = await r.outcome();
    expect(outcome).toMatchObject({ status: 'failed', reason: 'not_installed', retryable: false });
    expect(outcome.error).toContain('npm install -g @google/gemini-cli');
  });

  it('start() without the API key fails with auth before running anything', async () => {
    const r = run({ agent: { command: [path.join(dir, 'missing', 'gemini')], apiKeyEnv: 'MY_GEMINI_KEY' } });
    const outcome = await r.outcome();
    expect(outcome).toMatchObject({ status: 'failed', reason: 'auth', retryable: false });
    expect(outcome.error).toContain('MY_GEMINI_KEY');
  });
});

describe('gemini runtime with a stand-in CLI', () => {
  /** A node script standing in for gemini; it gets the same argv. */
  function standIn(body: string): string[] {
    const file = path.join(dir, `fake-gemini-${randomUUID()}.mjs`);
    writeFileSync(file, body);
    return [process.execPath, file];
  }

  const init = '{"type":"init","session_id":"11111111-2222-4333-8444-555555555555","model":"gemini-2.5-pro"}';
  const result =
    '{"type":"result","status":"success","stats":{"total_tokens":30,"input_tokens":20,"output_tokens":10,"cached":5,"input":15,"duration_ms":1,"tool_calls":0,"models":{"gemini-2.5-pro":{"total_tokens":30,"input_tokens":20,"output_tokens":10,"cached":5,"input":15}}}}';

  it('survives malformed lines and a 20 MB flood, and still reads the result', async () => {
    const command = standIn(`
      const out = (s) => process.stdout.write(s + '\\n');
      out(${JSON.stringify(init)});
      out('{"type":"message","role":"assistant","content":"hel');
      out('not json at all');
      out('{"type":"surprise","x":1}');
      out('[1,2,3]');
      const line = 'x'.repeat(1024 * 1024);
      for (let i = 0; i < 10; i++) out(line);
      out('{"type":"message","role":"assistant","content":"' + 'y'.repeat(10 * 1024 * 1024) + '"}');
      out('{"type":"message","role":"assistant","content":"answer","delta":true}');
      out(${JSON.stringify(result)});
    `);
    const r = run({ agent: { command } });
    const outcome = await r.outcome();
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('answer');
    expect(outcome.sessionId).toBe('11111111-2222-4333-8444-555555555555');
    expect(outcome.tokens).toEqual({ input: 15, output: 10, cacheRead: 5, cacheWrite: 0 });
    expect(outcome.stdoutBytes).toBeGreaterThan(20 * 1024 * 1024);
    const logs = ofType(r.events, 'log').map((e) => e.line);
    expect(logs).toContain('not json at all');
    expect(logs.some((l) => l.startsWith('unreadable stdout line'))).toBe(true);
    expect(ofType(r.events, 'message').map((e) => e.data)).toContainEqual({ type: 'surprise', x: 1 });
    // reports stay bounded whatever the flood
    const reported = r.events.reduce((n, e) => n + JSON.stringify(e).length, 0);
    expect(reported).toBeLessThan(4 * 1024 * 1024);
    expectNothingLeft(r);
  });

  it('a crash without a result is crashed, with the last stderr line', async () => {
    const command = standIn(`
      process.stdout.write(${JSON.stringify(init + '\n')});
      process.stderr.write('FATAL: segfault in the model loop\\n');
      process.exit(3);
    `);
    const r = run({ agent: { command } });
    const outcome = await r.outcome();
    expect(outcome).toMatchObject({ status: 'failed', reason: 'crashed', exitCode: 3 });
    expect(outcome.error).toContain('segfault in the model loop');
    expect(outcome.sessionId).toBe('11111111-2222-4333-8444-555555555555');
  });

  it('cancel mid-run ends the CLI and its children: nothing left behind', async () => {
    const command = standIn(`
      import { spawn } from 'node:child_process';
      process.on('SIGTERM', () => {}); // ignore it, as gemini's launcher does
      spawn(process.execPath, ['-e', 'process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      process.stdout.write(${JSON.stringify(init + '\n')});
      setInterval(() => {}, 1000);
    `);
    const r = run({
      agent: { command, killGraceMs: 500 },
      onEvent: (event, handle) => {
        if (event.type === 'session') handle().cancel('stop it');
      },
    });
    const outcome = await r.outcome();
    expect(outcome.status).toBe('canceled');
    expect(outcome.error).toBe('stop it');
    expect(outcome.sessionId).toBe('11111111-2222-4333-8444-555555555555');
    expectNothingLeft(r);
  });

  it('starts a new session (and says so) when the session to resume is not in the home', async () => {
    const seen = path.join(dir, 'argv.json');
    const command = standIn(`
      import { writeFileSync } from 'node:fs';
      writeFileSync(process.env.SEEN, JSON.stringify(process.argv.slice(2)));
      process.stdout.write(${JSON.stringify(init + '\n' + result + '\n')});
    `);
    const r = run({
      agent: { command },
      env: { SEEN: seen },
      resumeSessionId: '0badcafe-0000-4000-8000-000000000000',
    });
    const outcome = await r.outcome();
    expect(outcome.status).toBe('succeeded');
    expect(JSON.parse(readFileSync(seen, 'utf8'))).not.toContain('--resume');
    expect(ofType(r.events, 'log').map((e) => e.line)).toContainEqual(
      expect.stringContaining('session 0badcafe-0000-4000-8000-000000000000 is not in'),
    );
  });

  it('passes the flags, key, base URL and an isolated home to the CLI', async () => {
    const command = standIn(`
      import { writeFileSync, readFileSync } from 'node:fs';
      writeFileSync(process.env.SEEN, JSON.stringify({
        argv: process.argv.slice(2),
        key: process.env.GEMINI_API_KEY,
        base: process.env.GOOGLE_GEMINI_BASE_URL,
        home: process.env.HOME,
        cliHome: process.env.GEMINI_CLI_HOME,
        settings: JSON.parse(readFileSync(process.env.HOME + '/.gemini/settings.json', 'utf8')),
      }));
      process.stdout.write(${JSON.stringify(init + '\n' + result + '\n')});
    `);
    const seen = path.join(dir, 'seen.json');
    const r = run({
      agent: {
        command,
        apiKeyEnv: 'MY_GEMINI_KEY',
        baseUrl: 'http://127.0.0.1:9',
        permissionMode: 'auto_edit',
        args: ['--include-directories', '/tmp'],
      },
      input: { prompt: '-starts with a dash' },
      env: { MY_GEMINI_KEY: 'k-123', SEEN: seen },
    });
    const outcome = await r.outcome();
    expect(outcome.status).toBe('succeeded');
    const got = JSON.parse(readFileSync(seen, 'utf8')) as Record<string, unknown>;
    expect(got.argv).toEqual([
      '--prompt=-starts with a dash',
      '--output-format',
      'stream-json',
      '--skip-trust',
      '--approval-mode',
      'auto_edit',
      '--model',
      'gemini-2.5-pro',
      '--include-directories',
      '/tmp',
    ]);
    expect(got).toMatchObject({ key: 'k-123', base: 'http://127.0.0.1:9' });
    expect(got.home).toBe(path.join(homeRoot, 'task-1'));
    expect(got.cliHome).toBe(got.home);
    expect(got.settings).toMatchObject({
      security: { auth: { selectedType: 'gemini-api-key' } },
      general: { enableAutoUpdate: false, maxAttempts: 1 },
      privacy: { usageStatisticsEnabled: false },
      telemetry: { enabled: false },
    });
  });
});
