import { describe, expect, it } from 'vitest';

import { OutputCapture, TailBuffer, lineCapFor } from './output-capture.js';
import type { CapturedLine } from './output-capture.js';

interface Seen {
  text: string;
  truncatedBytes: number;
  kept: string;
}

function capture(limitBytes: number, maxLineBytes?: number): { out: OutputCapture; lines: Seen[] } {
  const lines: Seen[] = [];
  const onLine = (l: CapturedLine): void => {
    lines.push({
      text: l.bytes.toString('utf8'),
      truncatedBytes: l.truncatedBytes,
      kept: l.bytes.subarray(0, l.keptLength).toString('utf8'),
    });
  };
  const out = new OutputCapture(
    maxLineBytes === undefined ? { limitBytes, onLine } : { limitBytes, maxLineBytes, onLine },
  );
  return { out, lines };
}

describe('OutputCapture', () => {
  it('splits on LF and CRLF, across chunk boundaries, and hands over a last line without newline at end', () => {
    const { out, lines } = capture(1000);
    for (const chunk of ['one\r', '\ntw', 'o\n\nthr', 'ee\r\nfour']) out.write(Buffer.from(chunk));
    expect(lines.map((l) => l.text)).toEqual(['one', 'two', '', 'three']);
    out.end();
    out.end();
    expect(lines.map((l) => l.text)).toEqual(['one', 'two', '', 'three', 'four']);
    expect(out.keptText()).toBe('one\r\ntwo\n\nthree\r\nfour');
    expect(out.totalBytes).toBe(21);
    expect(out.droppedBytes).toBe(0);
  });

  it('keeps only the first limitBytes and says which part of each line is within them', () => {
    const { out, lines } = capture(8);
    out.write(Buffer.from('abc\ndefgh\nij'));
    out.write(Buffer.from('kl\n'));
    out.end();
    expect(out.keptText()).toBe('abc\ndefg');
    expect(out.keptBytes).toBe(8);
    expect(out.droppedBytes).toBe(7);
    expect(lines).toEqual([
      { text: 'abc', truncatedBytes: 0, kept: 'abc' },
      { text: 'defgh', truncatedBytes: 0, kept: 'defg' },
      { text: 'ijkl', truncatedBytes: 0, kept: '' },
    ]);
  });

  it('caps a line without newline at maxLineBytes, counts the rest, and hands it over once', () => {
    const { out, lines } = capture(4, 10);
    for (let i = 0; i < 100; i++) out.write(Buffer.alloc(1000, 0x61));
    expect(lines).toHaveLength(0);
    out.write(Buffer.from('\nnext'));
    out.end();
    expect(lines).toEqual([
      { text: 'a'.repeat(10), truncatedBytes: 100_000 - 10, kept: 'aaaa' },
      { text: 'next', truncatedBytes: 0, kept: '' },
    ]);
    expect(out.lineTruncatedBytes).toBe(100_000 - 10);
    expect(out.droppedBytes).toBe(100_005 - 4);
  });

  it('caps a long line that arrives whole in one chunk', () => {
    const { out, lines } = capture(100, 5);
    out.write(Buffer.from('0123456789\nok\n'));
    expect(lines.map((l) => [l.text, l.truncatedBytes])).toEqual([
      ['01234', 5],
      ['ok', 0],
    ]);
  });

  it('uses a line cap of 64 KiB .. 16 MiB', () => {
    expect(lineCapFor(10)).toBe(64 * 1024);
    expect(lineCapFor(1_048_576)).toBe(1_048_576);
    expect(lineCapFor(1e12)).toBe(16 * 1024 * 1024);
  });
});

describe('TailBuffer', () => {
  it('keeps the last bytes', () => {
    const tail = new TailBuffer(5);
    tail.write(Buffer.from('abc'));
    expect(tail.text()).toBe('abc');
    tail.write(Buffer.from('defg'));
    expect(tail.text()).toBe('cdefg');
    tail.write(Buffer.from('0123456789'));
    expect(tail.text()).toBe('56789');
  });
});
