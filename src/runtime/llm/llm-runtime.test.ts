import { APICallError, NoObjectGeneratedError, RetryError, TypeValidationError } from 'ai';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { TextCoalescer, classifyModelError, promptOf, tokensOf } from './llm-runtime.js';

function apiError(statusCode: number | undefined, body?: string): APICallError {
  return new APICallError({
    message: statusCode === undefined ? 'Cannot connect to API: ECONNREFUSED' : `status ${statusCode}`,
    url: 'http://127.0.0.1/v1/chat/completions',
    requestBodyValues: {},
    ...(statusCode === undefined ? {} : { statusCode }),
    ...(body === undefined ? {} : { responseBody: body }),
  });
}

describe('TextCoalescer', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('reports whole lines at once and holds a partial line', () => {
    const out: string[] = [];
    const c = new TextCoalescer((t) => out.push(t));
    for (const piece of ['Hel', 'lo\nWor', 'ld\nand ', 'more']) c.push(piece);
    expect(out).toEqual(['Hello\n', 'World\n']);
    c.flush();
    expect(out).toEqual(['Hello\n', 'World\n', 'and more']);
  });

  it('reports a partial line after 200 ms', () => {
    vi.useFakeTimers();
    const out: string[] = [];
    const c = new TextCoalescer((t) => out.push(t));
    c.push('thinking');
    c.push(' hard');
    vi.advanceTimersByTime(199);
    expect(out).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(out).toEqual(['thinking hard']);
    c.flush();
    expect(out).toEqual(['thinking hard']);
  });
});

describe('tokensOf', () => {
  it('splits cached input from input', () => {
    expect(
      tokensOf({
        inputTokens: 100,
        inputTokenDetails: { noCacheTokens: 60, cacheReadTokens: 30, cacheWriteTokens: 10 },
        outputTokens: 7,
        outputTokenDetails: { textTokens: 7, reasoningTokens: undefined },
        totalTokens: 107,
      }),
    ).toEqual({ input: 60, output: 7, cacheRead: 30, cacheWrite: 10 });
  });

  it('derives input when the provider does not report the non-cached part, and 0 when absent', () => {
    expect(
      tokensOf({
        inputTokens: 50,
        inputTokenDetails: { noCacheTokens: undefined, cacheReadTokens: 20, cacheWriteTokens: undefined },
        outputTokens: undefined,
        outputTokenDetails: { textTokens: undefined, reasoningTokens: undefined },
        totalTokens: undefined,
      }),
    ).toEqual({ input: 30, output: 0, cacheRead: 20, cacheWrite: 0 });
    expect(tokensOf(undefined)).toEqual({ input: 0, output: 0, cacheRead: 0, cacheWrite: 0 });
  });
});

describe('classifyModelError', () => {
  const label = 'openai-compatible model "m" at http://127.0.0.1/v1';

  it('maps statuses to reasons', () => {
    const auth = classifyModelError(apiError(401, '{"error":{"message":"bad key"}}'), label);
    expect(auth.reason).toBe('auth');
    expect(auth.retryable).toBe(false);
    expect(auth.message).toContain('HTTP 401: bad key');
    expect(classifyModelError(apiError(403), label).reason).toBe('auth');
    expect(classifyModelError(apiError(429), label).reason).toBe('rate_limited');
    expect(classifyModelError(apiError(503), label).reason).toBe('provider');
    const notFound = classifyModelError(apiError(404, '{"error":{"message":"model not found"}}'), label);
    expect(notFound.reason).toBe('provider');
    expect(notFound.retryable).toBe(false);
    expect(classifyModelError(apiError(undefined), label).message).toContain('cannot reach the API');
  });

  it('unwraps the SDK retries and says how many tries were made', () => {
    const retry = new RetryError({
      message: 'Failed after 3 attempts',
      reason: 'maxRetriesExceeded',
      errors: [apiError(500), apiError(500), apiError(500, '{"error":{"message":"overloaded"}}')],
    });
    const e = classifyModelError(retry, label);
    expect(e.reason).toBe('provider');
    expect(e.message).toBe(`${label}: HTTP 500 after 3 tries: overloaded`);
  });

  it("says bad_response with the validator's words for an answer that does not match the schema", () => {
    const err = new NoObjectGeneratedError({
      message: 'No object generated: response did not match schema.',
      text: '{"a":1}',
      cause: new TypeValidationError({ value: { a: 1 }, cause: new Error('expected string at a') }),
      response: { id: 'r', timestamp: new Date(), modelId: 'm' },
      usage: {
        inputTokens: 1,
        inputTokenDetails: { noCacheTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0 },
        outputTokens: 1,
        outputTokenDetails: { textTokens: 1, reasoningTokens: 0 },
        totalTokens: 2,
      },
      finishReason: 'stop',
    });
    const e = classifyModelError(err, label);
    expect(e.reason).toBe('bad_response');
    expect(e.message).toBe(
      `${label}: the answer does not match output_schema: expected string at a; the model wrote: {"a":1}`,
    );
  });
});

describe('promptOf', () => {
  it('is the prompt alone without needs, and lists the needs outputs otherwise', () => {
    const input = { id: 't', key: 'k', workflow_id: null, prompt: 'Do it.', attempt: 1, needs: {} };
    expect(promptOf(input)).toBe('Do it.');
    expect(
      promptOf({ ...input, needs: { plan: { id: 'a', output: 'step 1' }, lint: { id: 'b', output: null } } }),
    ).toBe('Do it.\n\n# Outputs of the tasks this one needs\n\n## plan\nstep 1\n\n## lint\n(no output)');
  });

  it('ends with the guidance for this attempt', () => {
    const input = {
      id: 't',
      key: 'k',
      workflow_id: null,
      prompt: 'Do it.',
      attempt: 2,
      needs: { plan: { id: 'a', output: 'step 1' } },
      guidance: [{ from: 'council', text: 'add a test' }],
    };
    const prompt = promptOf(input);
    expect(prompt.startsWith('Do it.\n\n# Outputs of the tasks this one needs\n\n## plan\nstep 1')).toBe(
      true,
    );
    expect(prompt).toMatch(/add a test$/);
  });
});
