import { describe, expect, it } from 'vitest';

import { mayBeJsonObject, parseAgentLine, sanitizeLine } from './agent-line.js';

describe('parseAgentLine', () => {
  it('reads usage and session lines, and leaves malformed ones as text', () => {
    expect(
      parseAgentLine(
        '{"type":"usage","tokens":{"input":10,"output":2,"cache_read":5},"cost_usd":0.01,"model":"m"}',
      ),
    ).toEqual({
      kind: 'event',
      event: {
        type: 'usage',
        tokens: { input: 10, output: 2, cacheRead: 5, cacheWrite: 0 },
        costUsd: 0.01,
        model: 'm',
      },
    });
    expect(parseAgentLine('{"type":"session","id":"s-1"}')).toEqual({
      kind: 'event',
      event: { type: 'session', id: 's-1' },
    });
    expect(parseAgentLine('{"type":"usage","tokens":{"input":-1}}')).toEqual({ kind: 'text' });
    expect(parseAgentLine('{"type":"usage","tokens":{"input":1},"cost_usd":"free"}')).toEqual({
      kind: 'text',
    });
    expect(parseAgentLine('{"type":"usage"}')).toEqual({ kind: 'text' });
    expect(parseAgentLine('{"type":"session","id":""}')).toEqual({ kind: 'text' });
  });

  it('reads the five line types', () => {
    expect(parseAgentLine('{"type":"progress","pct":42.5,"message":"half"}')).toEqual({
      kind: 'event',
      event: { type: 'progress', pct: 42.5, message: 'half' },
    });
    expect(parseAgentLine('{"type":"progress","pct":-3}')).toEqual({
      kind: 'event',
      event: { type: 'progress', pct: 0 },
    });
    expect(parseAgentLine('{"type":"log","line":"x\\u0000y"}')).toEqual({
      kind: 'event',
      event: { type: 'log', stream: 'stdout', line: 'xy' },
    });
    expect(parseAgentLine('{"type":"artifact","path":"a/b.txt"}')).toEqual({
      kind: 'event',
      event: { type: 'artifact', path: 'a/b.txt' },
    });
    expect(parseAgentLine('{"type":"message","data":[1,"two"]}')).toEqual({
      kind: 'event',
      event: { type: 'message', data: [1, 'two'] },
    });
    expect(parseAgentLine('{"type":"message","to":"bob","text":"hi"}')).toEqual({
      kind: 'event',
      event: { type: 'message', data: { to: 'bob', text: 'hi' } },
    });
    expect(parseAgentLine('{"type":"result","output":"done"}')).toEqual({
      kind: 'result',
      output: 'done',
      failed: false,
      error: null,
    });
    expect(parseAgentLine('{"type":"result","output":{"a":1}}')).toEqual({
      kind: 'result',
      output: '{"a":1}',
      failed: false,
      error: null,
    });
    expect(parseAgentLine('{"type":"result","status":"failed"}')).toEqual({
      kind: 'result',
      output: '',
      failed: true,
      error: 'agent reported failure',
    });
  });

  it('treats anything else as text', () => {
    for (const line of [
      '',
      'hello',
      '42',
      '"str"',
      '[{"type":"log"}]',
      'null',
      '{"type":5}',
      '{"type":"nope"}',
      '{"type":"progress","pct":"50"}',
      '{"type":"progress","message":3}',
      '{"type":"log"}',
      '{"type":"artifact","path":""}',
      '{"type":"result","status":"maybe"}',
      '{"type":"result"',
    ]) {
      expect(parseAgentLine(line), line).toEqual({ kind: 'text' });
    }
  });
});

describe('mayBeJsonObject', () => {
  it('looks at the first non-blank byte', () => {
    expect(mayBeJsonObject(Buffer.from('  \t{"a":1}'))).toBe(true);
    expect(mayBeJsonObject(Buffer.from('x{'))).toBe(false);
    expect(mayBeJsonObject(Buffer.from('   '))).toBe(false);
  });
});

describe('sanitizeLine', () => {
  it('keeps tabs and text, removes control characters and ANSI sequences', () => {
    expect(sanitizeLine('plain\ttext é ✓')).toBe('plain\ttext é ✓');
    expect(sanitizeLine('a\u0000b\u0007c\rd\u007fe\u0085f')).toBe('abcdef');
    expect(sanitizeLine('\u001b[1;31mred\u001b[0m and \u001b]0;title\u0007ok')).toBe('red and ok');
    expect(sanitizeLine('\u001b]8;;http://x\u001b\\link\u001b]8;;\u001b\\')).toBe('link');
    expect(sanitizeLine('dangling \u001b')).toBe('dangling ');
  });
});
