/**
 * The `llm` runtime through the real AI SDK against a local server that speaks the OpenAI chat
 * completions wire protocol (test/fixtures/fake-openai-chat.ts): streaming, usage, structured
 * output, error reasons, the SDK's retries, timeout and cancel.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { isSmithError } from '../src/core/errors.js';
import type { AgentSpec, Json } from '../src/core/types.js';
import { LlmRuntime, runModel } from '../src/runtime/llm/index.js';
import type { AttemptContext, AttemptHandle, RuntimeEvent, TaskInput } from '../src/runtime/types.js';
import { startFakeOpenAiChat } from './fixtures/fake-openai-chat.js';
import type { FakeChatOptions, FakeOpenAiChat } from './fixtures/fake-openai-chat.js';

const KEY = 'sk-test-0123';
let workdir: string;
let server: FakeOpenAiChat | undefined;
const started: AttemptHandle[] = [];

beforeEach(() => {
  workdir = mkdtempSync(path.join(tmpdir(), 'smith-llm-'));
});

afterEach(async () => {
  for (const handle of started.splice(0)) {
    handle.cancel('test cleanup');
    await handle.done;
  }
  await server?.close();
  server = undefined;
  rmSync(workdir, { recursive: true, force: true });
});

async function startServer(options: FakeChatOptions = {}): Promise<FakeOpenAiChat> {
  server = await startFakeOpenAiChat({ apiKey: KEY, ...options });
  return server;
}

function run(
  agent: Partial<AgentSpec>,
  options: { env?: Record<string, string>; timeoutMs?: number | null; input?: Partial<TaskInput> } = {},
): { handle: AttemptHandle; events: RuntimeEvent[] } {
  const events: RuntimeEvent[] = [];
  const ctx: AttemptContext = {
    input: {
      id: 't_1',
      key: 'summary',
      workflow_id: null,
      prompt: 'Summarize the change.',
      attempt: 1,
      needs: {},
      ...options.input,
    },
    attemptId: randomUUID(),
    epoch: 1,
    agent: { name: 'writer', runtime: 'llm', model: 'gpt-test', capabilities: [], concurrency: 1, ...agent },
    instance: 0,
    workdir,
    env: options.env ?? { OPENAI_API_KEY: KEY },
    timeoutMs: options.timeoutMs ?? null,
    onEvent: (event) => events.push(event),
  };
  const handle = new LlmRuntime().start(ctx);
  started.push(handle);
  return { handle, events };
}

describe('llm runtime: answers', () => {
  it('streams the answer as text events and reports the output, tokens and a usage event with the model', async () => {
    const content = 'The change renames the queue.\nIt also adds a test.\nNothing else.';
    const s = await startServer({
      answer: () => ({ content, usage: { prompt_tokens: 40, completion_tokens: 17, cached_tokens: 8 } }),
      servedModel: 'gpt-test-2025-01-01',
    });
    const { handle, events } = run(
      { baseUrl: s.baseUrl, systemPrompt: 'You are terse.', headers: { 'x-team': 'smith' } },
      { input: { needs: { diff: { id: 't_0', output: '--- a/queue.ts\n+++ b/queue.ts' } } } },
    );
    const outcome = await handle.done;

    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe(content);
    expect(outcome.tokens).toEqual({ input: 32, output: 17, cacheRead: 8, cacheWrite: 0 });
    expect(handle.pid).toBeNull();

    const texts = events.filter((e): e is Extract<RuntimeEvent, { type: 'text' }> => e.type === 'text');
    expect(texts.map((e) => e.text).join('')).toBe(content);
    // coalesced per line, not one event per streamed chunk (the server sent 4 characters a chunk)
    expect(texts.length).toBeLessThanOrEqual(3);
    expect(texts[0]!.text).toBe('The change renames the queue.\n');
    expect(events.at(-1)).toEqual({
      type: 'usage',
      model: 'gpt-test',
      tokens: { input: 32, output: 17, cacheRead: 8, cacheWrite: 0 },
    });

    // what went over the wire: the OpenAI chat request with the key from the attempt's env
    expect(s.requests).toHaveLength(1);
    const req = s.requests[0]!;
    expect(req.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(req.headers['x-team']).toBe('smith');
    expect(req.body).toMatchObject({
      model: 'gpt-test',
      stream: true,
      stream_options: { include_usage: true },
    });
    const messages = req.body.messages as { role: string; content: string }[];
    expect(messages[0]).toEqual({ role: 'system', content: 'You are terse.' });
    expect(messages[1]!.role).toBe('user');
    expect(messages[1]!.content).toContain('Summarize the change.');
    expect(messages[1]!.content).toContain('## diff\n--- a/queue.ts');
  });

  it('returns valid JSON matching output_schema (structured output) and sends the schema', async () => {
    const schema = {
      type: 'object',
      properties: {
        verdict: { type: 'string', enum: ['approve', 'reject'] },
        score: { type: 'integer', minimum: 0, maximum: 10 },
        reasons: { type: 'array', items: { type: 'string' } },
      },
      required: ['verdict', 'score', 'reasons'],
      additionalProperties: false,
    } satisfies Json;
    const s = await startServer({
      answer: () => ({ content: '{"verdict":"approve","score":8,"reasons":["tests pass","small diff"]}' }),
    });
    const outcome = await run({ baseUrl: s.baseUrl, outputSchema: schema }).handle.done;

    expect(outcome.status).toBe('succeeded');
    expect(JSON.parse(outcome.output)).toEqual({
      verdict: 'approve',
      score: 8,
      reasons: ['tests pass', 'small diff'],
    });
    const format = s.requests[0]!.body.response_format as { type: string; json_schema: { schema: unknown } };
    expect(format.type).toBe('json_schema');
    expect(format.json_schema.schema).toEqual(schema);
  });

  it('fails with bad_response when the answer does not match output_schema', async () => {
    const s = await startServer({ answer: () => ({ content: '{"verdict":"maybe","score":"high"}' }) });
    const outcome = await run({
      baseUrl: s.baseUrl,
      outputSchema: {
        type: 'object',
        properties: { verdict: { type: 'string', enum: ['approve', 'reject'] }, score: { type: 'integer' } },
        required: ['verdict', 'score'],
      },
    }).handle.done;

    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('bad_response');
    expect(outcome.error).toContain('does not match output_schema');
    expect(outcome.error).toContain('verdict');
    // the model answered, so its tokens were spent and are reported
    expect(outcome.tokens).toEqual({ input: 11, output: 9, cacheRead: 0, cacheWrite: 0 });
  });

  it('runModel gives a judge the same provider config: a parsed object and its tokens', async () => {
    const s = await startServer({
      answer: () => ({ content: '{"ok":true}', usage: { prompt_tokens: 5, completion_tokens: 2 } }),
    });
    const answer = await runModel({ name: 'judge', model: 'gpt-test', baseUrl: s.baseUrl }, 'Is this fine?', {
      env: { OPENAI_API_KEY: KEY },
      schema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] },
    });
    expect(answer.object).toEqual({ ok: true });
    expect(answer.tokens).toEqual({ input: 5, output: 2, cacheRead: 0, cacheWrite: 0 });
  });
});

describe('llm runtime: failures', () => {
  it('fails with reason auth, not retryable, when the provider answers 401 (no retries)', async () => {
    const s = await startServer();
    const outcome = await run({ baseUrl: s.baseUrl }, { env: { OPENAI_API_KEY: 'sk-wrong' } }).handle.done;

    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('auth');
    expect(outcome.retryable).toBe(false);
    expect(outcome.error).toContain('HTTP 401');
    expect(outcome.error).toContain('Incorrect API key provided');
    expect(s.requests).toHaveLength(1);
  });

  it('fails with reason auth before any request when the named key variable is not set', async () => {
    const s = await startServer();
    const outcome = await run({ baseUrl: s.baseUrl, apiKeyEnv: 'MY_LLM_KEY' }, { env: {} }).handle.done;

    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('auth');
    expect(outcome.retryable).toBe(false);
    expect(outcome.error).toContain('MY_LLM_KEY is not set');
    expect(s.requests).toHaveLength(0);
  });

  it("fails with reason provider after the SDK's 2 retries when the provider answers 500", async () => {
    const s = await startServer({ mode: '500' });
    const outcome = await run({ baseUrl: s.baseUrl }).handle.done;

    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('provider');
    expect(outcome.error).toContain('HTTP 500 after 3 tries');
    expect(outcome.error).toContain('The server had an error');
    expect(s.requests).toHaveLength(3);
  });

  it('fails with reason rate_limited when the provider keeps answering 429', async () => {
    const s = await startServer({ mode: '429' });
    const outcome = await run({ baseUrl: s.baseUrl }).handle.done;

    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('rate_limited');
    expect(s.requests).toHaveLength(3);
  });

  it('cancel aborts the request: the server sees the connection close', async () => {
    const s = await startServer({ mode: 'hang' });
    const { handle } = run({ baseUrl: s.baseUrl });
    await s.waitForRequests(1);
    handle.cancel('canceled by the user');
    const outcome = await handle.done;

    expect(outcome.status).toBe('canceled');
    expect(outcome.error).toBe('canceled by the user');
    const closed = await s.waitForEarlyClose();
    expect(closed.closedEarly).toBe(true);
  });

  it('times out: the request is aborted and the attempt ends timed_out', async () => {
    const s = await startServer({ mode: 'hang' });
    const outcome = await run({ baseUrl: s.baseUrl }, { timeoutMs: 300 }).handle.done;

    expect(outcome.status).toBe('timed_out');
    expect(outcome.error).toBe('timed out after 300 ms');
    await s.waitForEarlyClose();
  });
});

describe('llm runtime: check', () => {
  const agent = (fields: Partial<AgentSpec>): AgentSpec => ({
    name: 'writer',
    runtime: 'llm',
    capabilities: [],
    concurrency: 1,
    ...fields,
  });

  it('accepts a model with a known provider', async () => {
    const runtime = new LlmRuntime();
    await expect(runtime.check(agent({ model: 'llama3.1', provider: 'ollama' }))).resolves.toBeUndefined();
    await expect(
      runtime.check(agent({ model: 'claude-sonnet-4-5', provider: 'anthropic' })),
    ).resolves.toBeUndefined();
  });

  it('rejects a missing model, an unknown provider and a bad base_url, naming the agent', async () => {
    const runtime = new LlmRuntime();
    for (const fields of [
      {},
      { model: 'm', provider: 'openai-responses' },
      { model: 'm', baseUrl: 'localhost:11434' },
    ] satisfies Partial<AgentSpec>[]) {
      const err: unknown = await runtime.check(agent(fields)).catch((e: unknown) => e);
      expect(isSmithError(err, 'CONFIG_INVALID')).toBe(true);
      expect((err as Error).message).toContain('agent "writer" (runtime llm)');
    }
  });
});
