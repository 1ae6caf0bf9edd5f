/**
 * The stream-json parser on lines captured from the real Claude Code 2.1.197 CLI (run with
 * `-p --output-format stream-json --verbose` against test/fixtures/fake-anthropic.ts; temp paths
 * replaced by `/work/repo` and `/home/dev`), and on hand-written edge cases.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import type { RuntimeEvent, TokenUsage } from '../types.js';
import { StreamJsonParser, TOOL_OUTPUT_CHARS, classifyFailure, parseStreamJsonLine } from './stream-json.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

function lines(name: string): string[] {
  return readFileSync(path.join(FIXTURES, `${name}.jsonl`), 'utf8')
    .split('\n')
    .filter((l) => l !== '');
}

function feed(name: string, parser = new StreamJsonParser({ workdir: '/work/repo' })) {
  const events: RuntimeEvent[] = [];
  let finals = 0;
  for (const line of lines(name)) {
    const step = parser.push(line);
    events.push(...step.events);
    if (step.final) finals++;
  }
  return { parser, events, finals };
}

function sumUsage(events: RuntimeEvent[]): TokenUsage {
  const total = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
  for (const e of events) {
    if (e.type !== 'usage') continue;
    total.input += e.tokens.input;
    total.output += e.tokens.output;
    total.cacheRead += e.tokens.cacheRead;
    total.cacheWrite += e.tokens.cacheWrite;
  }
  return total;
}

describe('parseStreamJsonLine', () => {
  it('reads the type and subtype of an SDK message', () => {
    const parsed = parseStreamJsonLine(lines('write-file')[0] ?? '');
    expect(parsed.kind).toBe('message');
    if (parsed.kind !== 'message') return;
    expect(parsed.type).toBe('system');
    expect(parsed.subtype).toBe('init');
    expect(parsed.message.session_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('says why a line is not stream-json, and never throws', () => {
    expect(parseStreamJsonLine('Loading…')).toEqual({ kind: 'invalid', problem: 'not JSON' });
    expect(parseStreamJsonLine('{"type":"result",')).toEqual({ kind: 'invalid', problem: 'not JSON' });
    expect(parseStreamJsonLine('[1,2]')).toEqual({ kind: 'invalid', problem: 'not JSON' });
    expect(parseStreamJsonLine('{"subtype":"x"}')).toEqual({ kind: 'invalid', problem: 'no "type" field' });
    expect(parseStreamJsonLine('{"type":7}')).toEqual({ kind: 'invalid', problem: 'no "type" field' });
    expect(parseStreamJsonLine('')).toEqual({ kind: 'invalid', problem: 'not JSON' });
  });
});

describe('StreamJsonParser on captured runs', () => {
  it('a run that wrote a file: session, text, tool use and result, file change, usage adding up', () => {
    const { parser, events, finals } = feed('write-file');
    const init = JSON.parse(lines('write-file')[0] ?? '{}') as { session_id: string };
    expect(events[0]).toEqual({ type: 'session', id: init.session_id });
    expect(parser.sessionId).toBe(init.session_id);
    expect(parser.model).toBe('claude-sonnet-4-5');
    expect(finals).toBe(1);

    expect(events.filter((e) => e.type === 'text').map((e) => (e.type === 'text' ? e.text : ''))).toEqual([
      "I'll create hello.txt.",
      'Created hello.txt.',
    ]);
    const toolUse = events.find((e) => e.type === 'tool_use');
    expect(toolUse).toMatchObject({
      type: 'tool_use',
      name: 'Write',
      id: 'toolu_fake0_1',
      input: { file_path: '/work/repo/hello.txt', content: 'hi\n' },
    });
    expect(events.find((e) => e.type === 'tool_result')).toMatchObject({
      type: 'tool_result',
      id: 'toolu_fake0_1',
      isError: false,
    });
    expect(events.filter((e) => e.type === 'file_change')).toEqual([
      { type: 'file_change', path: 'hello.txt', kind: 'add' },
    ]);

    // usage: one delta per API message (not per content-block line), plus the remainder at the result
    expect(
      events.filter((e) => e.type === 'usage').every((e) => e.type === 'usage' && e.costUsd === undefined),
    ).toBe(true);
    expect(sumUsage(events)).toEqual({ input: 320, output: 70, cacheRead: 10, cacheWrite: 50 });

    expect(parser.result).toMatchObject({
      subtype: 'success',
      isError: false,
      text: 'Created hello.txt.',
      costUsd: 0.0022005,
      tokens: { input: 320, output: 70, cacheRead: 10, cacheWrite: 50 },
      numTurns: 2,
      sessionId: init.session_id,
    });
    expect(
      events.find((e) => e.type === 'message' && (e.data as { type?: string }).type === 'result'),
    ).toMatchObject({
      data: { subtype: 'success', total_cost_usd: 0.0022005, num_turns: 2 },
    });
  });

  it('an Edit after a Read is an update; a failed tool call is no file change', () => {
    const { events } = feed('edit-file');
    expect(events.filter((e) => e.type === 'file_change')).toEqual([
      { type: 'file_change', path: 'hello.txt', kind: 'update' },
    ]);
    const missing = feed('read-missing').events;
    expect(missing.find((e) => e.type === 'tool_result')).toMatchObject({ isError: true });
    expect(missing.some((e) => e.type === 'file_change')).toBe(false);
  });

  it('an API 401: the result is an error with status 401, and the CLI said authentication_failed', () => {
    const { parser } = feed('auth-401');
    expect(parser.result).toMatchObject({
      subtype: 'success',
      isError: true,
      apiErrorStatus: 401,
      costUsd: 0,
    });
    expect(parser.lastApiError).toBe('authentication_failed');
    expect(
      classifyFailure({
        subtype: parser.result?.subtype,
        apiErrorStatus: parser.result?.apiErrorStatus,
        apiError: parser.lastApiError,
        text: parser.result?.text,
      }),
    ).toMatchObject({ reason: 'auth', retryable: false });
  });

  it('an API 529: provider, retryable', () => {
    const { parser } = feed('overloaded-529');
    expect(parser.result?.apiErrorStatus).toBe(529);
    expect(parser.result?.text).toMatch(/529 Overloaded/);
    expect(classifyFailure({ apiErrorStatus: 529, apiError: parser.lastApiError })).toMatchObject({
      reason: 'provider',
      retryable: true,
    });
  });

  it('max turns: the errors become the text', () => {
    const { parser, events } = feed('max-turns');
    expect(parser.result).toMatchObject({
      subtype: 'error_max_turns',
      isError: true,
      text: 'Reached maximum number of turns (1)',
    });
    expect(classifyFailure({ subtype: 'error_max_turns' })?.reason).toBe('budget_exceeded');
    // the result's totals are still matched by the usage events
    expect(sumUsage(events)).toEqual(parser.result?.tokens);
  });
});

describe('StreamJsonParser on odd input', () => {
  it('turns non-JSON lines into logs, bounded by the log budget', () => {
    const parser = new StreamJsonParser({ maxLogBytes: 100 });
    const events: RuntimeEvent[] = [];
    for (let i = 0; i < 50; i++) events.push(...parser.push(`garbage line ${i}`).events);
    events.push(
      ...parser.push('{"type":"result","subtype":"success","is_error":false,"result":"ok"}').events,
    );
    events.push(...parser.end());
    const logs = events.filter((e) => e.type === 'log');
    expect(logs.length).toBeLessThan(10);
    expect(logs.at(-1)).toMatchObject({
      line: expect.stringMatching(/more non-JSON stdout lines dropped/) as unknown,
    });
    expect(parser.result?.text).toBe('ok');
    expect(parser.invalidLines).toBe(50);
  });

  it('a cut line is ignored; a cut result line still ends the stream, as unreadable', () => {
    const parser = new StreamJsonParser();
    expect(
      parser.push('{"type":"assistant","message":{"content":[{"type":"text","text":"aaaa', true).final,
    ).toBe(false);
    const step = parser.push('{"type":"result","subtype":"success","result":"aaaaaaa', true);
    expect(step.final).toBe(true);
    expect(parser.resultTruncated).toBe(true);
    expect(parser.result).toBeNull();
  });

  it('unknown types become message events; stream_event partials are skipped', () => {
    const parser = new StreamJsonParser();
    expect(parser.push('{"type":"rate_limit_event","rate_limit_info":{"status":"allowed"}}').events).toEqual([
      { type: 'message', data: { type: 'rate_limit_event', rate_limit_info: { status: 'allowed' } } },
    ]);
    expect(parser.push('{"type":"system","subtype":"api_retry","attempt":1}').events).toEqual([
      { type: 'message', data: { type: 'system', subtype: 'api_retry', attempt: 1 } },
    ]);
    expect(parser.push('{"type":"stream_event","event":{"type":"content_block_delta"}}').events).toEqual([]);
  });

  it('cuts a long tool output to about 4 KiB and long strings in tool inputs', () => {
    const parser = new StreamJsonParser();
    const big = 'x'.repeat(50_000);
    const use = parser.push(
      JSON.stringify({
        type: 'assistant',
        message: {
          id: 'm1',
          model: 'claude-sonnet-4-5',
          content: [{ type: 'tool_use', id: 't1', name: 'Bash', input: { command: big } }],
        },
      }),
    ).events[0];
    expect(use?.type === 'tool_use' && JSON.stringify(use.input).length).toBeLessThan(3000);
    const result = parser.push(
      JSON.stringify({
        type: 'user',
        message: {
          role: 'user',
          content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: big }] }],
        },
      }),
    ).events[0];
    expect(result?.type).toBe('tool_result');
    if (result?.type !== 'tool_result') return;
    expect(result.output?.length).toBeLessThan(TOOL_OUTPUT_CHARS + 100);
    expect(result.output).toMatch(/\[cut: 45904 more characters\]$/);
  });

  it('a file edited outside the working directory keeps its absolute path', () => {
    const parser = new StreamJsonParser({ workdir: '/work/repo' });
    parser.push(
      JSON.stringify({
        type: 'assistant',
        message: {
          content: [
            { type: 'tool_use', id: 't1', name: 'Write', input: { file_path: '/etc/motd', content: '' } },
          ],
        },
      }),
    );
    const events = parser.push(
      JSON.stringify({
        type: 'user',
        message: { content: [{ type: 'tool_result', tool_use_id: 't1', content: 'ok' }] },
        tool_use_result: { type: 'update' },
      }),
    ).events;
    expect(events.at(-1)).toEqual({ type: 'file_change', path: '/etc/motd', kind: 'update' });
  });
});

describe('classifyFailure', () => {
  it('maps statuses, CLI error codes and words to reasons', () => {
    expect(classifyFailure({ apiErrorStatus: 429 })?.reason).toBe('rate_limited');
    expect(classifyFailure({ apiErrorStatus: 500 })?.reason).toBe('provider');
    expect(classifyFailure({ apiErrorStatus: 404 })).toMatchObject({ reason: 'provider', retryable: false });
    expect(classifyFailure({ apiError: 'rate_limit' })?.reason).toBe('rate_limited');
    expect(classifyFailure({ apiError: 'billing_error' })).toMatchObject({
      reason: 'auth',
      retryable: false,
    });
    expect(classifyFailure({ subtype: 'error_max_budget_usd' })).toMatchObject({
      reason: 'budget_exceeded',
      retryable: false,
    });
    expect(classifyFailure({ text: 'Invalid API key · Please run /login' })?.reason).toBe('auth');
    expect(classifyFailure({ text: 'API Error: 503 upstream connect error' })?.reason).toBe('provider');
    expect(classifyFailure({ text: 'segmentation fault' })).toBeNull();
  });
});
