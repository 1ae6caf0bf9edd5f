import { describe, expect, it } from 'vitest';

import { toRuntimeEvent } from './http-runtime.js';

describe('toRuntimeEvent', () => {
  it('reads the process runtime events through its parser', () => {
    expect(toRuntimeEvent({ type: 'progress', pct: 140, message: 'x' })).toEqual({
      type: 'progress',
      pct: 100,
      message: 'x',
    });
    expect(toRuntimeEvent({ type: 'log', message: 'a\u001b[31mred' })).toEqual({
      type: 'log',
      stream: 'stdout',
      line: 'ared',
    });
    expect(toRuntimeEvent({ type: 'artifact', path: 'out.txt' })).toEqual({
      type: 'artifact',
      path: 'out.txt',
    });
    expect(toRuntimeEvent({ type: 'message', data: { a: 1 } })).toEqual({ type: 'message', data: { a: 1 } });
  });

  it('reads the model events a worker may send', () => {
    expect(toRuntimeEvent({ type: 'text', text: 'hi' })).toEqual({ type: 'text', text: 'hi' });
    expect(toRuntimeEvent({ type: 'session', id: 's1' })).toEqual({ type: 'session', id: 's1' });
    expect(
      toRuntimeEvent({
        type: 'usage',
        input_tokens: 3,
        output_tokens: 4,
        cache_read_tokens: 5,
        cache_write_tokens: 6,
        model: 'm',
        cost_usd: 0.5,
      }),
    ).toEqual({
      type: 'usage',
      model: 'm',
      tokens: { input: 3, output: 4, cacheRead: 5, cacheWrite: 6 },
      costUsd: 0.5,
    });
    expect(toRuntimeEvent({ type: 'tool_use', name: 'Bash', id: 't1', input: { command: 'ls' } })).toEqual({
      type: 'tool_use',
      name: 'Bash',
      id: 't1',
      input: { command: 'ls' },
    });
    expect(toRuntimeEvent({ type: 'tool_result', id: 't1', is_error: true, output: 'boom' })).toEqual({
      type: 'tool_result',
      id: 't1',
      isError: true,
      output: 'boom',
    });
    expect(toRuntimeEvent({ type: 'file_change', path: 'a.ts', kind: 'update' })).toEqual({
      type: 'file_change',
      path: 'a.ts',
      kind: 'update',
    });
  });

  it('returns null for what is not an event', () => {
    expect(toRuntimeEvent('text')).toBeNull();
    expect(toRuntimeEvent({ type: 'result', output: 'x' })).toBeNull();
    expect(toRuntimeEvent({ type: 'text', text: 3 })).toBeNull();
    expect(toRuntimeEvent({ type: 'file_change', path: 'a', kind: 'rename' })).toBeNull();
    expect(toRuntimeEvent({ type: 'progress', pct: 'half' })).toBeNull();
    expect(toRuntimeEvent({ type: 'unknown' })).toBeNull();
  });
});
