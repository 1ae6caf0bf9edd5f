/**
 * The `codex` runtime against the real Codex CLI (`node_modules/.bin/codex`), with a local fake of
 * the OpenAI Responses API standing in for the model, and against small stand-in scripts where a
 * misbehaviour cannot be provoked from the real CLI.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { isSmithError } from '../src/core/errors.js';
import type { AgentSpec } from '../src/core/types.js';
import { CodexRuntime } from '../src/runtime/codex/index.js';
import { findProcessesByEnv, groupAlive, isAlive } from '../src/runtime/process/process-group.js';
import type {
  AttemptContext,
  AttemptHandle,
  AttemptOutcome,
  RuntimeEvent,
  TokenUsage,
} from '../src/runtime/types.js';
import { inputKinds, inputText, startFakeResponsesServer } from './fixtures/fake-openai-responses.js';
import type { FakeResponsesServer, FakeTurn } from './fixtures/fake-openai-responses.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CODEX = path.join(ROOT, 'node_modules', '.bin', 'codex');
const NODE = process.execPath;
const MODEL = 'gpt-test';
/** Keep codex's own retries out of the way: one request per failure. */
const NO_RETRIES = [
  '-c',
  'model_providers.smith.request_max_retries=0',
  '-c',
  'model_providers.smith.stream_max_retries=0',
];

let dir: string;
let workdir: string;
let homeRoot: string;
let server: FakeResponsesServer | null = null;
const started: AttemptHandle[] = [];

beforeEach(() => {
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'smith-codex-test-')));
  workdir = path.join(dir, 'repo');
  homeRoot = path.join(dir, 'homes');
  mkdirSync(workdir);
  execFileSync('git', ['init', '-q'], { cwd: workdir });
  writeFileSync(path.join(workdir, 'hello.txt'), 'one\n');
});

afterEach(async () => {
  for (const handle of started.splice(0)) {
    handle.cancel('test cleanup');
    await handle.done;
  }
  await server?.close();
  server = null;
  rmSync(dir, { recursive: true, force: true });
});

interface RunOptions {
  agent?: Partial<AgentSpec>;
  prompt?: string;
  taskId?: string;
  resumeSessionId?: string;
  mode?: AttemptContext['mode'];
  env?: Record<string, string>;
  runtime?: CodexRuntime;
}

interface Run {
  handle: AttemptHandle;
  events: RuntimeEvent[];
  ctx: AttemptContext;
}

function run(options: RunOptions = {}): Run {
  const events: RuntimeEvent[] = [];
  const agent: AgentSpec = {
    name: 'coder',
    runtime: 'codex',
    command: [CODEX],
    capabilities: [],
    concurrency: 1,
    model: MODEL,
    idleTimeoutMs: 45_000,
    killGraceMs: 2000,
    ...(server !== null ? { baseUrl: server.baseUrl } : {}),
    args: NO_RETRIES,
    ...options.agent,
  };
  const attemptId = randomUUID();
  const ctx: AttemptContext = {
    input: {
      id: options.taskId ?? `task-${randomUUID()}`,
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
      OPENAI_API_KEY: 'test-key',
      SMITH_ATTEMPT_ID: attemptId,
      ...options.env,
    },
    timeoutMs: 50_000,
    onEvent: (event) => events.push(event),
    ...(options.resumeSessionId !== undefined ? { resumeSessionId: options.resumeSessionId } : {}),
    ...(options.mode !== undefined ? { mode: options.mode } : {}),
  };
  const handle = (options.runtime ?? new CodexRuntime({ homeRoot })).start(ctx);
  started.push(handle);
  return { handle, events, ctx };
}

async function finished(r: Run): Promise<AttemptOutcome> {
  const outcome = await r.handle.done;
  started.splice(started.indexOf(r.handle), 1);
  return outcome;
}

/** Poll until `predicate` holds; false if it never did within `ms` (a bound, not an assertion). */
async function waitFor(predicate: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (predicate()) return true;
    await sleep(25);
  }
  return predicate();
}

/** Nothing of the attempt runs any more: not its process group, not a process carrying its id. */
async function expectNothingLeft(r: Run): Promise<void> {
  // zombies do not count: an init that does not reap (as in some containers) keeps them forever
  if (r.handle.pid !== null) expect(groupAlive(r.handle.pid)).toBe(false);
  const gone = await waitFor(
    () => findProcessesByEnv('SMITH_ATTEMPT_ID', r.ctx.attemptId).length === 0,
    5000,
  );
  expect(findProcessesByEnv('SMITH_ATTEMPT_ID', r.ctx.attemptId)).toEqual([]);
  expect(gone).toBe(true);
}

function sumUsage(events: RuntimeEvent[]): TokenUsage {
  const total: TokenUsage = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
  for (const e of events) {
    if (e.type !== 'usage') continue;
    total.input += e.tokens.input;
    total.output += e.tokens.output;
    total.cacheRead += e.tokens.cacheRead;
    total.cacheWrite += e.tokens.cacheWrite;
  }
  return total;
}

async function fake(turns: FakeTurn[], apiKey?: string): Promise<FakeResponsesServer> {
  server = await startFakeResponsesServer({ turns, ...(apiKey !== undefined ? { apiKey } : {}) });
  return server;
}

describe('CodexRuntime with the real codex CLI', () => {
  it('edits files in a git repository and reports session, text, tools, file changes and usage', async () => {
    const srv = await fake([
      {
        kind: 'reply',
        output: [
          { type: 'message', text: 'I will add notes.txt and update hello.txt.' },
          { type: 'shell', command: "printf 'note\\n' > notes.txt && echo wrote-notes" },
        ],
        usage: { input: 1000, cached: 200, output: 50 },
      },
      {
        kind: 'reply',
        output: [
          {
            type: 'apply_patch',
            patch: '*** Begin Patch\n*** Update File: hello.txt\n@@\n-one\n+two\n*** End Patch',
          },
        ],
        usage: { input: 1300, cached: 1000, output: 40 },
      },
      {
        kind: 'reply',
        output: [{ type: 'message', text: 'Updated hello.txt to say two and added notes.txt.' }],
        usage: { input: 1500, cached: 1200, output: 30 },
      },
    ]);
    const r = run({
      prompt: 'Change hello.txt to say two and write a note.',
      taskId: 'edit-task',
      agent: { headers: { 'X-Smith-Team': 'blue' } },
    });
    const outcome = await finished(r);

    expect(outcome.error).toBeUndefined();
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('Updated hello.txt to say two and added notes.txt.');
    expect(readFileSync(path.join(workdir, 'hello.txt'), 'utf8')).toBe('two\n');
    expect(readFileSync(path.join(workdir, 'notes.txt'), 'utf8')).toBe('note\n');

    // the session id recorded is the thread id codex used with the provider
    const sessions = r.events.filter((e) => e.type === 'session');
    expect(sessions).toHaveLength(1);
    expect(outcome.sessionId).toBe(sessions[0]?.type === 'session' ? sessions[0].id : undefined);
    expect(srv.requests[0]?.headers['session-id']).toBe(outcome.sessionId);

    expect(r.events).toContainEqual({ type: 'text', text: 'I will add notes.txt and update hello.txt.' });
    const shellUse = r.events.find((e) => e.type === 'tool_use' && e.name === 'shell');
    expect(shellUse?.type === 'tool_use' && JSON.stringify(shellUse.input)).toContain('notes.txt');
    const shellResult = r.events.find(
      (e) => e.type === 'tool_result' && shellUse?.type === 'tool_use' && e.id === shellUse.id,
    );
    expect(shellResult).toMatchObject({ type: 'tool_result', isError: false });
    expect(shellResult?.type === 'tool_result' && shellResult.output).toContain('wrote-notes');
    expect(r.events).toContainEqual({ type: 'file_change', path: 'hello.txt', kind: 'update' });

    // tokens: this attempt's, equal to what the provider reported, input less cached
    const expected: TokenUsage = {
      input: srv.usageTotals.input - srv.usageTotals.cached,
      cacheRead: srv.usageTotals.cached,
      output: srv.usageTotals.output,
      cacheWrite: 0,
    };
    expect(outcome.tokens).toEqual(expected);
    expect(sumUsage(r.events)).toEqual(expected);
    expect(
      r.events.filter((e) => e.type === 'usage').every((e) => e.type === 'usage' && e.model === MODEL),
    ).toBe(true);
    expect(outcome.costUsd).toBeUndefined();

    // what reached the provider
    expect(srv.requests).toHaveLength(3);
    expect(srv.requests[0]?.headers.authorization).toBe('Bearer test-key');
    expect(srv.requests[0]?.headers['x-smith-team']).toBe('blue');
    expect(srv.requests[0]?.body?.model).toBe(MODEL);
    expect(inputText(srv.requests[0]!)).toContain('Change hello.txt to say two and write a note.');
    expect(srv.unknown).toEqual([]);

    await expectNothingLeft(r);
    // the attempt's HOME is gone; only the sessions stay in the task's CODEX_HOME
    const taskDir = path.join(homeRoot, 'edit-task');
    expect(readdirSync(taskDir)).toEqual(['codex-home']);
    expect(readdirSync(path.join(taskDir, 'codex-home'))).toEqual(['sessions']);
  });

  it('resumes the thread: the provider sees the earlier conversation, tokens count the new turn only', async () => {
    const srv = await fake([
      {
        kind: 'reply',
        output: [{ type: 'message', text: 'Noted: the number is 42.' }],
        usage: { input: 500, output: 10 },
      },
      {
        kind: 'reply',
        output: [{ type: 'message', text: 'The number was 42.' }],
        usage: { input: 800, cached: 400, output: 12 },
      },
    ]);
    const runtime = new CodexRuntime({ homeRoot });
    const first = await finished(run({ runtime, taskId: 'resume-task', prompt: 'Remember the number 42.' }));
    expect(first.status).toBe('succeeded');
    expect(first.sessionId).toMatch(/^[0-9a-f-]{36}$/);

    const r = run({
      runtime,
      taskId: 'resume-task',
      prompt: 'What was the number?',
      resumeSessionId: first.sessionId!,
      mode: 'dry-run',
    });
    const second = await finished(r);
    expect(second.status).toBe('succeeded');
    expect(second.output).toBe('The number was 42.');
    expect(second.sessionId).toBe(first.sessionId);
    expect(r.events).toContainEqual({ type: 'session', id: first.sessionId });

    const resumed = srv.requests[1]!;
    const seen = inputText(resumed);
    expect(seen).toContain('Remember the number 42.');
    expect(seen).toContain('Noted: the number is 42.');
    expect(seen).toContain('What was the number?');
    expect(inputKinds(resumed)).toContain('assistant:message');
    expect(resumed.headers['session-id']).toBe(first.sessionId);
    // codex reports the thread's running total; the attempt is charged for its own turn only
    expect(second.tokens).toEqual({ input: 400, cacheRead: 400, output: 12, cacheWrite: 0 });
    expect(sumUsage(r.events)).toEqual(second.tokens);
    // dry-run: codex ran with the read-only sandbox
    const meta = JSON.parse(String(resumed.headers['x-codex-turn-metadata'])) as { sandbox_mode?: string };
    expect(meta.sandbox_mode).toBe('read-only');
    await expectNothingLeft(r);
  });

  it('starts a new thread when the session to resume is unknown, and says so', async () => {
    await fake([{ kind: 'reply', output: [{ type: 'message', text: 'fresh start' }] }]);
    const bogus = '01a20907-0000-7000-8000-000000000000';
    const r = run({ resumeSessionId: bogus });
    const outcome = await finished(r);
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('fresh start');
    expect(outcome.sessionId).not.toBe(bogus);
    expect(
      r.events.some((e) => e.type === 'log' && e.line.includes(`codex session ${bogus} not found`)),
    ).toBe(true);
  });

  it('ends a codex whose provider stalls with the idle watchdog (reason idle), leaving no process', async () => {
    const srv = await fake([{ kind: 'stall' }]);
    const r = run({ agent: { idleTimeoutMs: 1500 } });
    const outcome = await finished(r);
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('idle');
    expect(outcome.error).toContain('idle watchdog');
    expect(outcome.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(srv.requests).toHaveLength(1);
    await expectNothingLeft(r);
  });

  it('fails with reason provider when codex keeps reconnecting to an unreachable provider', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const r = run({ agent: { baseUrl: `http://127.0.0.1:${port}/v1`, idleTimeoutMs: 1500 } });
    const outcome = await finished(r);
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('provider');
    expect(outcome.error).toContain('could not reach the provider');
    await expectNothingLeft(r);
  });

  it('maps 401 to auth (not retryable), 500 and 503 to provider, 429 to rate_limited', async () => {
    await fake([], 'the-right-key');
    const denied = await finished(run());
    expect(denied.status).toBe('failed');
    expect(denied.reason).toBe('auth');
    expect(denied.retryable).toBe(false);
    expect(denied.error).toContain('401');
    await server!.close();

    for (const [status, reason] of [
      [500, 'provider'],
      [503, 'provider'],
      [429, 'rate_limited'],
    ] as const) {
      server = await startFakeResponsesServer({ turns: [{ kind: 'http_error', status }] });
      const r = run();
      const outcome = await finished(r);
      expect(outcome.status, `HTTP ${status}`).toBe('failed');
      expect(outcome.reason, `HTTP ${status}: ${outcome.error}`).toBe(reason);
      expect(outcome.retryable, `HTTP ${status}`).toBeUndefined();
      expect(outcome.error).toMatch(/^codex turn failed: /);
      expect(server.requests).toHaveLength(1);
      await expectNothingLeft(r);
      await server.close();
      server = null;
    }
  });

  it('charges the tokens of a turn that failed after some requests', async () => {
    await fake([
      {
        kind: 'reply',
        output: [{ type: 'shell', command: 'echo step-one' }],
        usage: { input: 700, cached: 100, output: 25 },
      },
      { kind: 'http_error', status: 500, message: 'The server had an error.' },
    ]);
    const r = run();
    const outcome = await finished(r);
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('provider');
    expect(outcome.tokens).toEqual({ input: 600, cacheRead: 100, output: 25, cacheWrite: 0 });
    expect(sumUsage(r.events)).toEqual(outcome.tokens);
  });

  it('fails with auth when the API key variable is not set', async () => {
    const srv = await fake([]);
    const outcome = await finished(run({ agent: { apiKeyEnv: 'SMITH_CODEX_TEST_NO_SUCH_KEY' } }));
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('auth');
    expect(outcome.retryable).toBe(false);
    expect(outcome.error).toContain('SMITH_CODEX_TEST_NO_SUCH_KEY');
    expect(srv.requests).toHaveLength(0);
  });
});

describe('CodexRuntime: codex not installed', () => {
  it('check() passes for the installed CLI and rejects a missing one with the install hint', async () => {
    const runtime = new CodexRuntime({ homeRoot });
    const base: AgentSpec = { name: 'coder', runtime: 'codex', capabilities: [], concurrency: 1 };
    await expect(runtime.check({ ...base, command: [CODEX] })).resolves.toBeUndefined();

    const missing = path.join(dir, 'no-such-codex');
    const err = await runtime.check({ ...base, command: [missing] }).catch((e: unknown) => e);
    expect(isSmithError(err, 'RUNTIME_NOT_FOUND')).toBe(true);
    expect((err as Error).message).toContain(missing);
    expect((err as Error).message).toContain('npm install -g @openai/codex');

    const onPath = await runtime
      .check({ ...base, env: { PATH: path.join(dir, 'empty-bin') } })
      .catch((e: unknown) => e);
    expect(isSmithError(onPath, 'RUNTIME_NOT_FOUND')).toBe(true);
    expect((onPath as Error).message).toContain('"codex" not found on PATH');
    expect((onPath as Error).message).toContain('npm install -g @openai/codex');

    const bad = await runtime
      .check({ ...base, command: [CODEX], permissionMode: 'yolo' })
      .catch((e: unknown) => e);
    expect(isSmithError(bad, 'CONFIG_INVALID')).toBe(true);
    expect((bad as Error).message).toContain('workspace-write');
  });

  it('start() fails with not_installed, not retryable, naming the command and the hint', async () => {
    const missing = path.join(dir, 'no-such-codex');
    const r = run({ agent: { command: [missing] } });
    const outcome = await finished(r);
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('not_installed');
    expect(outcome.retryable).toBe(false);
    expect(outcome.error).toContain(missing);
    expect(outcome.error).toContain('npm install -g @openai/codex');
    expect(r.handle.pid).toBeNull();
  });
});

describe('CodexRuntime with a stand-in for the CLI', () => {
  function script(name: string, body: string): string {
    const file = path.join(dir, name);
    writeFileSync(file, body);
    return file;
  }
  const emit = (o: unknown): string => `process.stdout.write(${JSON.stringify(JSON.stringify(o) + '\n')});`;
  const THREAD = '0199a213-81c0-7800-8aa1-bbab2a035a53';

  it('survives malformed lines and a 20 MB flood, and still reads the result', async () => {
    const file = script(
      'flood.mjs',
      [
        `import { writeFileSync } from 'node:fs';`,
        `writeFileSync(${JSON.stringify(path.join(dir, 'argv.json'))}, JSON.stringify(process.argv.slice(2)));`,
        emit({ type: 'thread.started', thread_id: THREAD }),
        `process.stdout.write('{not json\\nplain text line\\n[1,2,3]\\n{"type":"item.completed"}\\n{"no_type":true}\\n');`,
        emit({ type: 'weird.event', detail: 1 }),
        emit({ type: 'item.completed', item: { id: 'item_9', type: 'unknown_item', x: 1 } }),
        // one 5 MiB line, then 15 MiB of short lines
        `process.stdout.write('x'.repeat(5 * 1024 * 1024) + '\\n');`,
        `const chunk = ('y'.repeat(99) + '\\n').repeat(10240);`,
        `for (let i = 0; i < 15; i++) process.stdout.write(chunk);`,
        emit({ type: 'item.completed', item: { id: 'item_1', type: 'agent_message', text: 'survived' } }),
        emit({
          type: 'turn.completed',
          usage: { input_tokens: 30, cached_input_tokens: 10, output_tokens: 5 },
        }),
      ].join('\n'),
    );
    const r = run({
      agent: { command: [NODE, file], outputLimitBytes: 256 * 1024 },
      mode: 'dry-run',
      prompt: '-starts with a dash',
    });
    const outcome = await finished(r);
    expect(outcome.error).toBeUndefined();
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('survived');
    expect(outcome.sessionId).toBe(THREAD);
    expect(outcome.tokens).toEqual({ input: 20, cacheRead: 10, output: 5, cacheWrite: 0 });
    expect(outcome.stdoutBytes).toBeGreaterThan(20_000_000);
    expect(r.events).toContainEqual({ type: 'message', data: { type: 'weird.event', detail: 1 } });
    const logs = r.events.filter((e) => e.type === 'log' && e.stream === 'stdout');
    expect(logs.some((e) => e.type === 'log' && e.line === '{not json')).toBe(true);
    expect(logs.some((e) => e.type === 'log' && e.line === 'plain text line')).toBe(true);
    expect(logs.some((e) => e.type === 'log' && e.line === '[1,2,3]')).toBe(true);
    expect(r.events).toContainEqual({ type: 'message', data: { no_type: true } });
    expect(r.events).toContainEqual({ type: 'message', data: { type: 'item.completed' } });
    // the flood is not turned into megabytes of events
    const loggedChars = logs.reduce((n, e) => n + (e.type === 'log' ? e.line.length : 0), 0);
    expect(loggedChars).toBeLessThan(2 * 1024 * 1024);

    // what the stand-in was asked to do: JSON mode, read-only for a dry run, the prompt after "--"
    const argv = JSON.parse(readFileSync(path.join(dir, 'argv.json'), 'utf8')) as string[];
    expect(argv.slice(0, 2)).toEqual(['exec', '--json']);
    expect(argv[argv.indexOf('--sandbox') + 1]).toBe('read-only');
    expect(argv[argv.indexOf('--cd') + 1]).toBe(workdir);
    expect(argv.slice(-2)).toEqual(['--', '-starts with a dash']);
    await expectNothingLeft(r);
  });

  it("a crash without a result is crashed, with codex's error and the session id kept", async () => {
    const file = script(
      'crash.mjs',
      [
        emit({ type: 'thread.started', thread_id: THREAD }),
        emit({ type: 'turn.started' }),
        `process.stderr.write('Error: the agent loop panicked\\n\\nStack backtrace:\\n   0: <unknown>\\n');`,
        `process.exit(3);`,
      ].join('\n'),
    );
    const r = run({ agent: { command: [NODE, file] } });
    const outcome = await finished(r);
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('crashed');
    expect(outcome.retryable).toBeUndefined();
    expect(outcome.exitCode).toBe(3);
    expect(outcome.error).toContain('exit code 3');
    expect(outcome.error).toContain('Error: the agent loop panicked');
    expect(outcome.sessionId).toBe(THREAD);
    await expectNothingLeft(r);
  });

  it('an exit 0 without a result is malformed', async () => {
    const file = script('quiet.mjs', emit({ type: 'thread.started', thread_id: THREAD }));
    const outcome = await finished(run({ agent: { command: [NODE, file] } }));
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('malformed');
    expect(outcome.error).toContain('without finishing its turn');
  });

  it('cancel mid-run ends codex and the commands it started', async () => {
    const pidFile = path.join(dir, 'child.pid');
    const file = script(
      'hang.mjs',
      [
        `import { spawn } from 'node:child_process';`,
        `import { writeFileSync } from 'node:fs';`,
        `const child = spawn('sleep', ['300'], { stdio: 'ignore' });`,
        `writeFileSync(${JSON.stringify(pidFile)}, String(child.pid));`,
        emit({ type: 'thread.started', thread_id: THREAD }),
        emit({
          type: 'item.started',
          item: {
            id: 'item_0',
            type: 'command_execution',
            command: 'sleep 300',
            aggregated_output: '',
            exit_code: null,
            status: 'in_progress',
          },
        }),
        `setInterval(() => {}, 1000);`,
      ].join('\n'),
    );
    const r = run({ agent: { command: [NODE, file] } });
    expect(await waitFor(() => r.events.some((e) => e.type === 'tool_use') && existsSync(pidFile))).toBe(
      true,
    );
    const childPid = Number(readFileSync(pidFile, 'utf8'));
    expect(isAlive(childPid)).toBe(true);
    r.handle.cancel('user asked');
    const outcome = await finished(r);
    expect(outcome.status).toBe('canceled');
    expect(outcome.error).toBe('user asked');
    expect(outcome.sessionId).toBe(THREAD);
    expect(isAlive(childPid)).toBe(false);
    await expectNothingLeft(r);
  });
});
