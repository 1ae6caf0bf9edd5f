import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logging.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  return {
    stream,
    text: () => text,
    lines: () =>
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('createLogger', () => {
  it('writes JSON lines with secrets redacted: keys in headers, tokens, secrets, passwords, env', () => {
    const out = capture();
    const log = createLogger('info', out.stream);
    const key = 'smk_0123456789abcdef_' + 'S'.repeat(43);
    log.info(
      {
        req: {
          method: 'GET',
          url: '/api/v1/tasks',
          headers: {
            authorization: `Bearer ${key}`,
            'x-api-key': key,
            'sec-websocket-protocol': `smith.bearer.${key}`,
            cookie: 'session=abc',
          },
        },
        token: key,
        webhook: { secret: 'hunter2', url: 'https://example.com' },
        agent: { env: { OPENAI_API_KEY: 'sk-live-123' } },
        password: 'pw',
      },
      'request',
    );
    const text = out.text();
    for (const secret of [key, 'hunter2', 'sk-live-123', 'session=abc', '"pw"'])
      expect(text).not.toContain(secret);
    const [line] = out.lines();
    expect(line).toMatchObject({
      level: 30,
      msg: 'request',
      service: 'smith',
      req: { method: 'GET', url: '/api/v1/tasks', headers: { authorization: '[redacted]' } },
      webhook: { url: 'https://example.com', secret: '[redacted]' },
    });
  });

  it('leaves out lines below its level', () => {
    const out = capture();
    const log = createLogger('warn', out.stream);
    log.info('not shown');
    log.warn('shown');
    expect(out.lines().map((l) => l.msg)).toEqual(['shown']);
  });
});
