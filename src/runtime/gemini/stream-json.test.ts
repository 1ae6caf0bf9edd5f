import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { RuntimeEvent } from '../types.js';
import { GeminiStreamParser, TOOL_OUTPUT_CHARS, tokensOfStats } from './stream-json.js';

let workdir: string;
let events: RuntimeEvent[];
const emit = (e: RuntimeEvent): void => {
  events.push(e);
};

beforeEach(() => {
  workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'smith-gemini-parser-')));
  events = [];
});

afterEach(() => {
  rmSync(workdir, { recursive: true, force: true });
});

/** Lines recorded from Gemini CLI 0.61 (`-o stream-json`) writing a file against a fake API. */
const RECORDED = [
  '{"type":"init","timestamp":"2026-11-23T15:31:45.487Z","session_id":"4abacf99-ef0a-4236-bbb3-d6c99de417bd","model":"gemini-2.5-pro"}',
  '{"type":"message","timestamp":"2026-11-23T15:31:45.490Z","role":"user","content":"write hello"}',
  '{"type":"message","timestamp":"2026-11-23T15:31:45.577Z","role":"assistant","content":"I will write ","delta":true}',
  '{"type":"message","timestamp":"2026-11-23T15:31:45.578Z","role":"assistant","content":"the file.","delta":true}',
  '{"type":"tool_use","timestamp":"2026-11-23T15:31:45.708Z","tool_name":"write_file","tool_id":"write_file__write_file_1795447905581_0","parameters":{"file_path":"hello.txt","content":"hi from gemini\\n"}}',
  '{"type":"tool_result","timestamp":"2026-11-23T15:31:45.829Z","tool_id":"write_file__write_file_1795447905581_0","status":"success"}',
  '{"type":"message","timestamp":"2026-11-23T15:31:45.862Z","role":"assistant","content":"All done: wrote hello.txt","delta":true}',
  '{"type":"result","timestamp":"2026-11-23T15:31:45.864Z","status":"success","stats":{"total_tokens":220,"input_tokens":200,"output_tokens":20,"cached":0,"input":200,"duration_ms":377,"tool_calls":1,"models":{"gemini-2.5-pro":{"total_tokens":220,"input_tokens":200,"output_tokens":20,"cached":0,"input":200}}}}',
];

describe('GeminiStreamParser', () => {
  it('turns a recorded run into session, text, tool, file change and usage events', () => {
    const parser = new GeminiStreamParser({ workdir });
    const finals = RECORDED.map((line) => parser.line(line, false, emit));
    expect(finals).toEqual([false, false, false, false, false, false, false, true]);
    expect(events).toEqual([
      { type: 'session', id: '4abacf99-ef0a-4236-bbb3-d6c99de417bd' },
      { type: 'text', text: 'I will write the file.' },
      {
        type: 'tool_use',
        id: 'write_file__write_file_1795447905581_0',
        name: 'write_file',
        input: { file_path: 'hello.txt', content: 'hi from gemini\n' },
      },
      { type: 'tool_result', id: 'write_file__write_file_1795447905581_0', isError: false },
      { type: 'file_change', path: 'hello.txt', kind: 'add' },
      { type: 'text', text: 'All done: wrote hello.txt' },
      {
        type: 'usage',
        model: 'gemini-2.5-pro',
        tokens: { input: 200, output: 20, cacheRead: 0, cacheWrite: 0 },
      },
    ]);
    expect(parser.sessionId).toBe('4abacf99-ef0a-4236-bbb3-d6c99de417bd');
    expect(parser.model).toBe('gemini-2.5-pro');
    expect(parser.output).toBe('All done: wrote hello.txt');
    expect(parser.result?.status).toBe('success');
    expect(parser.totalTokens()).toEqual({ input: 200, output: 20, cacheRead: 0, cacheWrite: 0 });
  });

  it('says update for a file that existed, keeps absolute paths outside the workdir, and skips failed writes', () => {
    writeFileSync(path.join(workdir, 'old.txt'), 'x');
    const parser = new GeminiStreamParser({ workdir });
    const use = (id: string, name: string, file: string): void => {
      parser.line(
        JSON.stringify({ type: 'tool_use', tool_name: name, tool_id: id, parameters: { file_path: file } }),
        false,
        emit,
      );
    };
    const done = (id: string, status: string): void => {
      parser.line(JSON.stringify({ type: 'tool_result', tool_id: id, status }), false, emit);
    };
    use('a', 'replace', path.join(workdir, 'old.txt'));
    done('a', 'success');
    use('b', 'write_file', '/elsewhere/out.txt');
    done('b', 'success');
    use('c', 'write_file', 'denied.txt');
    done('c', 'error');
    use('d', 'read_file', 'old.txt');
    done('d', 'success');
    expect(events.filter((e) => e.type === 'file_change')).toEqual([
      { type: 'file_change', path: 'old.txt', kind: 'update' },
      { type: 'file_change', path: '/elsewhere/out.txt', kind: 'add' },
    ]);
  });

  it('answers with the text before the tools when nothing follows them', () => {
    const parser = new GeminiStreamParser({ workdir });
    parser.line('{"type":"message","role":"assistant","content":"plan: run ls","delta":true}', false, emit);
    parser.line(
      '{"type":"tool_use","tool_name":"run_shell_command","tool_id":"t1","parameters":{"command":"ls"}}',
      false,
      emit,
    );
    parser.line('{"type":"tool_result","tool_id":"t1","status":"success","output":"a\\nb"}', false, emit);
    parser.line('{"type":"result","status":"success","stats":{}}', false, emit);
    expect(parser.output).toBe('plan: run ls');
    expect(events).toContainEqual({ type: 'tool_result', id: 't1', isError: false, output: 'a\nb' });
  });

  it('cuts long tool output and reports a failed tool with its error message', () => {
    const parser = new GeminiStreamParser({ workdir });
    parser.line(
      JSON.stringify({ type: 'tool_result', tool_id: 't', status: 'success', output: 'z'.repeat(10_000) }),
      false,
      emit,
    );
    parser.line(
      JSON.stringify({
        type: 'tool_result',
        tool_id: 'u',
        status: 'error',
        error: { type: 'x', message: 'denied by policy' },
      }),
      false,
      emit,
    );
    const [long, failed] = events as [Extract<RuntimeEvent, { type: 'tool_result' }>, RuntimeEvent];
    expect(long.output?.length).toBeLessThan(TOOL_OUTPUT_CHARS + 100);
    expect(long.output).toContain('more characters');
    expect(failed).toEqual({ type: 'tool_result', id: 'u', isError: true, output: 'denied by policy' });
  });

  it('keeps error lines, reports them as messages, and reads a failed result', () => {
    const parser = new GeminiStreamParser({ workdir });
    parser.line('{"type":"error","severity":"warning","message":"slow down"}', false, emit);
    parser.line(
      '{"type":"error","severity":"error","message":"Model stream ended with an invalid chunk"}',
      false,
      emit,
    );
    const final = parser.line(
      '{"type":"result","status":"error","error":{"type":"unknown","message":"[API Error: boom]"},"stats":{"total_tokens":0,"input_tokens":0,"output_tokens":0,"cached":0,"input":0,"duration_ms":0,"tool_calls":0,"models":{"gemini-2.5-pro":{"total_tokens":0,"input_tokens":0,"output_tokens":0,"cached":0,"input":0}}}}',
      false,
      emit,
    );
    expect(final).toBe(true);
    expect(parser.errors).toEqual(['Model stream ended with an invalid chunk']);
    expect(parser.result?.error).toEqual({ type: 'unknown', message: '[API Error: boom]' });
    expect(events.filter((e) => e.type === 'message')).toHaveLength(2);
    // zero tokens: no usage event
    expect(events.filter((e) => e.type === 'usage')).toEqual([]);
  });

  it('reports one usage event per model, with thinking and cache counted', () => {
    const parser = new GeminiStreamParser({ workdir });
    parser.line(
      JSON.stringify({
        type: 'result',
        status: 'success',
        stats: {
          total_tokens: 1306,
          input_tokens: 1005,
          output_tokens: 101,
          cached: 400,
          input: 605,
          models: {
            'gemini-2.5-pro': {
              total_tokens: 1300,
              input_tokens: 1000,
              output_tokens: 100,
              cached: 400,
              input: 600,
            },
            'gemini-2.5-flash-lite': {
              total_tokens: 6,
              input_tokens: 5,
              output_tokens: 1,
              cached: 0,
              input: 5,
            },
          },
        },
      }),
      false,
      emit,
    );
    expect(events).toEqual([
      {
        type: 'usage',
        model: 'gemini-2.5-pro',
        tokens: { input: 600, output: 300, cacheRead: 400, cacheWrite: 0 },
      },
      {
        type: 'usage',
        model: 'gemini-2.5-flash-lite',
        tokens: { input: 5, output: 1, cacheRead: 0, cacheWrite: 0 },
      },
    ]);
    expect(parser.totalTokens()).toEqual({ input: 605, output: 301, cacheRead: 400, cacheWrite: 0 });
    expect(
      tokensOfStats({ total_tokens: 0, input_tokens: 0, output_tokens: 0, cached: 0, input: 0 }),
    ).toEqual({
      input: 0,
      output: 0,
      cacheRead: 0,
      cacheWrite: 0,
    });
  });

  it('never throws: non-JSON is a log, unknown JSON a message, a cut line a note, odd fields are ignored', () => {
    const parser = new GeminiStreamParser({ workdir });
    const lines = [
      'plain text',
      '{"type":"message","role":"assistant","content":"unterminated',
      '[1,2]',
      '{"type":"brand_new","n":1}',
      '{"type":"init","session_id":42}',
      '{"type":"tool_use"}',
      '{"type":"tool_result"}',
      '{"type":"result","status":"weird","stats":"nope"}',
      '',
    ];
    for (const line of lines) expect(() => parser.line(line, false, emit)).not.toThrow();
    parser.line('{"type":"message","role":"assistant","content":"cut', true, emit);
    expect(events.filter((e) => e.type === 'log').map((e) => (e as { line: string }).line)).toEqual([
      'plain text',
      '{"type":"message","role":"assistant","content":"unterminated',
      '[1,2]',
      'unreadable stdout line (longer than the line cap, cut): {"type":"message","role":"assistant","content":"cut',
    ]);
    expect(events).toContainEqual({ type: 'message', data: { type: 'brand_new', n: 1 } });
    expect(events).toContainEqual({ type: 'tool_use', name: 'unknown' });
    expect(parser.sessionId).toBeNull();
    expect(parser.result).toEqual({
      status: 'error',
      error: { type: 'unknown', message: 'result status "weird"' },
    });
  });

  it('bounds what it keeps and reports under a flood', () => {
    const parser = new GeminiStreamParser({ workdir, limitBytes: 1000 });
    for (let i = 0; i < 100; i++) parser.line(`noise ${'n'.repeat(100)}`, false, emit);
    for (let i = 0; i < 100; i++)
      parser.line(
        JSON.stringify({ type: 'message', role: 'assistant', content: 't'.repeat(100) }),
        false,
        emit,
      );
    parser.flush(emit);
    const logs = events.filter((e) => e.type === 'log');
    expect(logs.length).toBeLessThan(15);
    expect(logs.at(-1)).toMatchObject({ line: expect.stringContaining('past the output limit') });
    expect(parser.output.length).toBeLessThanOrEqual(1000);
    const text = events
      .filter((e) => e.type === 'text')
      .reduce((n, e) => n + (e as { text: string }).text.length, 0);
    expect(text).toBeLessThanOrEqual(1000);
  });
});
