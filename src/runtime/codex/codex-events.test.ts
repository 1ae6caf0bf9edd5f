import { describe, expect, it } from 'vitest';

import type { RuntimeEvent } from '../types.js';
import { CodexEventParser, TOOL_OUTPUT_CHARS, classifyCodexError, toTokenUsage } from './codex-events.js';
import type { CodexEventParserOptions } from './codex-events.js';

function feed(lines: unknown[], options: Partial<CodexEventParserOptions> = {}) {
  const parser = new CodexEventParser({ workdir: '/work/repo', ...options });
  const events: RuntimeEvent[] = [];
  const finals: boolean[] = [];
  for (const line of lines) {
    const text = typeof line === 'string' ? line : JSON.stringify(line);
    finals.push(parser.line(text, false, (e) => events.push(e)));
  }
  return { parser, events, finals };
}

const item = (phase: string, it: Record<string, unknown>) => ({ type: `item.${phase}`, item: it });

describe('CodexEventParser', () => {
  it('reports the thread id as the session and the agent messages as text', () => {
    const { parser, events, finals } = feed([
      { type: 'thread.started', thread_id: 't-1' },
      { type: 'turn.started' },
      item('completed', { id: 'item_0', type: 'reasoning', text: 'thinking' }),
      item('completed', { id: 'item_1', type: 'agent_message', text: 'first' }),
      item('completed', { id: 'item_2', type: 'agent_message', text: 'final answer' }),
      { type: 'turn.completed', usage: { input_tokens: 10, cached_input_tokens: 0, output_tokens: 2 } },
    ]);
    expect(parser.sessionId).toBe('t-1');
    expect(parser.lastMessage).toBe('final answer');
    expect(parser.result).toEqual({ kind: 'completed' });
    expect(finals).toEqual([false, false, false, false, false, true]);
    expect(events).toEqual([
      { type: 'session', id: 't-1' },
      { type: 'message', data: { type: 'reasoning', text: 'thinking' } },
      { type: 'text', text: 'first' },
      { type: 'text', text: 'final answer' },
      { type: 'usage', tokens: { input: 10, output: 2, cacheRead: 0, cacheWrite: 0 } },
    ]);
  });

  it('pairs command executions into tool_use and tool_result, with exit codes and cut output', () => {
    const long = 'z'.repeat(TOOL_OUTPUT_CHARS + 100);
    const cmd = {
      id: 'item_3',
      type: 'command_execution',
      command: 'bash -lc "make"',
      aggregated_output: '',
    };
    const { events } = feed([
      item('started', { ...cmd, exit_code: null, status: 'in_progress' }),
      item('completed', { ...cmd, aggregated_output: 'ok\n', exit_code: 0, status: 'completed' }),
      item('started', { ...cmd, id: 'item_4', exit_code: null, status: 'in_progress' }),
      item('completed', { ...cmd, id: 'item_4', aggregated_output: long, exit_code: 2, status: 'failed' }),
      // completed without a started: still reported as a pair
      item('completed', { ...cmd, id: 'item_5', exit_code: null, status: 'declined' }),
    ]);
    expect(events[0]).toEqual({
      type: 'tool_use',
      id: 'item_3',
      name: 'shell',
      input: { command: 'bash -lc "make"' },
    });
    expect(events[1]).toEqual({ type: 'tool_result', id: 'item_3', isError: false, output: 'ok\n' });
    expect(events[3]).toMatchObject({ type: 'tool_result', id: 'item_4', isError: true });
    const cut = events[3]?.type === 'tool_result' ? (events[3].output ?? '') : '';
    expect(cut.startsWith('exit code 2\n')).toBe(true);
    expect(cut.length).toBeLessThan(TOOL_OUTPUT_CHARS + 100);
    expect(events.slice(4)).toEqual([
      { type: 'tool_use', id: 'item_5', name: 'shell', input: { command: 'bash -lc "make"' } },
      { type: 'tool_result', id: 'item_5', isError: true, output: 'declined' },
    ]);
  });

  it('reports file changes relative to the working directory (or its real path), once completed', () => {
    const changes = [
      { path: '/work/repo/src/a.ts', kind: 'update' },
      { path: '/real/repo/new.md', kind: 'add' },
      { path: '/elsewhere/x', kind: 'delete' },
    ];
    const parser = new CodexEventParser({ workdir: '/work/repo' });
    parser.addWorkdirAlias('/real/repo');
    const events: RuntimeEvent[] = [];
    for (const line of [
      item('started', { id: 'item_1', type: 'file_change', changes, status: 'in_progress' }),
      item('updated', { id: 'item_1', type: 'file_change', changes, status: 'in_progress' }),
      item('completed', { id: 'item_1', type: 'file_change', changes, status: 'completed' }),
      item('completed', { id: 'item_2', type: 'file_change', changes: [changes[0]], status: 'failed' }),
    ]) {
      parser.line(JSON.stringify(line), false, (e) => events.push(e));
    }
    expect(events.filter((e) => e.type === 'file_change')).toEqual([
      { type: 'file_change', path: 'src/a.ts', kind: 'update' },
      { type: 'file_change', path: 'new.md', kind: 'add' },
      { type: 'file_change', path: '/elsewhere/x', kind: 'delete' },
    ]);
    expect(events.filter((e) => e.type === 'tool_use')).toHaveLength(2);
    expect(events.filter((e) => e.type === 'tool_result')).toEqual([
      { type: 'tool_result', id: 'item_1', isError: false, output: 'src/a.ts\nnew.md\n/elsewhere/x' },
      { type: 'tool_result', id: 'item_2', isError: true, output: 'patch failed: src/a.ts' },
    ]);
  });

  it('maps MCP calls, web searches and the to-do list', () => {
    const { events } = feed([
      item('started', {
        id: 'i1',
        type: 'mcp_tool_call',
        server: 'docs',
        tool: 'search',
        arguments: { q: 'x' },
        status: 'in_progress',
      }),
      item('completed', {
        id: 'i1',
        type: 'mcp_tool_call',
        server: 'docs',
        tool: 'search',
        arguments: { q: 'x' },
        result: { content: [{ type: 'text', text: 'found' }], structured_content: null },
        error: null,
        status: 'completed',
      }),
      item('completed', {
        id: 'i2',
        type: 'mcp_tool_call',
        server: 'db',
        tool: 'q',
        error: { message: 'denied' },
        status: 'failed',
      }),
      item('completed', { id: 'i3', type: 'web_search', id_: 'ws', query: 'codex docs' }),
      item('started', {
        id: 'i4',
        type: 'todo_list',
        items: [
          { text: 'read', completed: true },
          { text: 'write', completed: false },
        ],
      }),
    ]);
    expect(events).toEqual([
      { type: 'tool_use', id: 'i1', name: 'mcp__docs__search', input: { q: 'x' } },
      { type: 'tool_result', id: 'i1', isError: false, output: 'found' },
      { type: 'tool_use', id: 'i2', name: 'mcp__db__q', input: null },
      { type: 'tool_result', id: 'i2', isError: true, output: 'denied' },
      { type: 'tool_use', id: 'i3', name: 'web_search', input: { query: 'codex docs' } },
      { type: 'tool_result', id: 'i3', isError: false, output: '' },
      { type: 'progress', pct: 50, message: '1/2 steps done: write' },
    ]);
  });

  it('reports usage as deltas from the base, and totals for the attempt', () => {
    const base = { inputTokens: 600, cachedInputTokens: 60, cacheWriteInputTokens: 0, outputTokens: 30 };
    const { parser, events } = feed(
      [
        {
          type: 'turn.completed',
          usage: { input_tokens: 1000, cached_input_tokens: 160, output_tokens: 50 },
        },
      ],
      { baseUsage: base, model: 'gpt-5-codex' },
    );
    expect(events).toEqual([
      {
        type: 'usage',
        model: 'gpt-5-codex',
        tokens: { input: 300, cacheRead: 100, output: 20, cacheWrite: 0 },
      },
    ]);
    expect(parser.tokens()).toEqual({ input: 300, cacheRead: 100, output: 20, cacheWrite: 0 });
    const more: RuntimeEvent[] = [];
    parser.observeTotals(
      { inputTokens: 1100, cachedInputTokens: 160, cacheWriteInputTokens: 0, outputTokens: 55 },
      (e) => more.push(e),
    );
    expect(more).toEqual([
      { type: 'usage', model: 'gpt-5-codex', tokens: { input: 100, cacheRead: 0, output: 5, cacheWrite: 0 } },
    ]);
    expect(parser.tokens()).toEqual({ input: 400, cacheRead: 100, output: 25, cacheWrite: 0 });
    // the same totals again report nothing
    parser.observeTotals(
      { inputTokens: 1100, cachedInputTokens: 160, cacheWriteInputTokens: 0, outputTokens: 55 },
      (e) => more.push(e),
    );
    expect(more).toHaveLength(1);
  });

  it('remembers a failed turn and stream errors, and knows when codex waits for the network', () => {
    const { parser, events, finals } = feed([
      { type: 'thread.started', thread_id: 't' },
      { type: 'error', message: 'Reconnecting... waiting for network (Connection failed)' },
    ]);
    expect(parser.reconnecting).toBe(true);
    expect(events[1]).toEqual({
      type: 'log',
      stream: 'stdout',
      line: 'codex error: Reconnecting... waiting for network (Connection failed)',
    });
    parser.line(
      JSON.stringify({ type: 'error', message: 'unexpected status 401 Unauthorized: bad key' }),
      false,
      () => undefined,
    );
    expect(parser.reconnecting).toBe(false);
    expect(
      parser.line(
        JSON.stringify({
          type: 'turn.failed',
          error: { message: 'unexpected status 401 Unauthorized: bad key' },
        }),
        false,
        () => undefined,
      ),
    ).toBe(true);
    expect(parser.result).toEqual({ kind: 'failed', message: 'unexpected status 401 Unauthorized: bad key' });
    expect(finals).toEqual([false, false]);
    expect(parser.tokens()).toBeNull();
  });

  it('never throws: bad lines become log or message events, logs stop at the budget', () => {
    const { events } = feed(
      [
        'not json at all',
        '{broken',
        '[1,2]',
        '{"no_type":1}',
        '{"type":"item.completed"}',
        '{"type":"item.completed","item":{"id":"x","type":"brand_new"}}',
        '{"type":"some.future.event","a":1}',
        '{"type":"thread.started"}',
        '   ',
        'x'.repeat(300),
        'y'.repeat(300),
      ],
      { logLimitBytes: 300 },
    );
    expect(events).toEqual([
      { type: 'log', stream: 'stdout', line: 'not json at all' },
      { type: 'log', stream: 'stdout', line: '{broken' },
      { type: 'log', stream: 'stdout', line: '[1,2]' },
      { type: 'message', data: { no_type: 1 } },
      { type: 'message', data: { type: 'item.completed' } },
      { type: 'message', data: { type: 'item.completed', item: { id: 'x', type: 'brand_new' } } },
      { type: 'message', data: { type: 'some.future.event', a: 1 } },
      { type: 'message', data: { type: 'thread.started' } },
      { type: 'log', stream: 'stdout', line: 'x'.repeat(300) },
    ]);
    const parser = new CodexEventParser({ workdir: '/w' });
    const cut: RuntimeEvent[] = [];
    parser.line('{"type":"item.completed","item":{"text":"aaaa', true, (e) => cut.push(e));
    expect(cut[0]).toMatchObject({ type: 'log', line: expect.stringContaining('[line cut') as unknown });
  });
});

describe('toTokenUsage', () => {
  it('counts input without cached tokens and never goes negative', () => {
    expect(
      toTokenUsage(
        { inputTokens: 100, cachedInputTokens: 30, cacheWriteInputTokens: 10, outputTokens: 5 },
        { inputTokens: 0, cachedInputTokens: 0, cacheWriteInputTokens: 0, outputTokens: 0 },
      ),
    ).toEqual({ input: 60, cacheRead: 30, cacheWrite: 10, output: 5 });
    expect(
      toTokenUsage(
        { inputTokens: 10, cachedInputTokens: 0, cacheWriteInputTokens: 0, outputTokens: 1 },
        { inputTokens: 50, cachedInputTokens: 5, cacheWriteInputTokens: 0, outputTokens: 9 },
      ),
    ).toEqual({ input: 0, cacheRead: 0, cacheWrite: 0, output: 0 });
  });
});

describe('classifyCodexError', () => {
  it.each([
    [
      'unexpected status 401 Unauthorized: Incorrect API key provided, url: http://x/v1/responses',
      'auth',
      false,
    ],
    ['unexpected status 403 Forbidden: nope', 'auth', false],
    ['Missing environment variable: `OPENAI_API_KEY`.', 'auth', false],
    ['exceeded retry limit, last status: 429 Too Many Requests', 'rate_limited', true],
    ["You've hit your usage limit. Upgrade to Plus", 'rate_limited', true],
    ['unexpected status 503 Service Unavailable: busy', 'provider', true],
    ['exceeded retry limit, last status: 500 Internal Server Error', 'provider', true],
    ['We’re currently experiencing high demand, which may cause temporary errors.', 'provider', true],
    ['stream disconnected before completion: The model failed.', 'provider', true],
    ['unexpected status 400 Bad Request: bad tool schema', 'provider', false],
    ['{"error":{"message":"x","type":"invalid_request_error","param":null,"code":null}}', 'provider', false],
    ['turn failed', 'provider', true],
  ] as const)('%s → %s', (message, reason, retryable) => {
    expect(classifyCodexError(message)).toEqual({ reason, retryable });
  });
});
