import { describe, expect, it } from 'vitest';

import { TerminalLineDecoder } from './pane-output.js';

function decode(chunks: (string | Buffer)[], maxLineChars?: number): { lines: string[]; partial: string } {
  const lines: string[] = [];
  const decoder = new TerminalLineDecoder((line) => lines.push(line), maxLineChars);
  for (const chunk of chunks) decoder.write(chunk);
  decoder.end();
  return { lines, partial: decoder.partial() };
}

describe('TerminalLineDecoder', () => {
  it('splits on \\r\\n and \\n and keeps the unfinished line apart', () => {
    expect(decode(['one\r\ntwo\nthree'])).toEqual({ lines: ['one', 'two'], partial: 'three' });
  });

  it('drops colours, cursor moves, titles and bracketed-paste switches', () => {
    const text = '\x1b[?2004h\x1b]0;user@host: ~\x07\x1b[01;32mgreen\x1b[0m \x1b[2K\x1b[1Gplain\r\n';
    expect(decode([text]).lines).toEqual(['green plain']);
  });

  it('drops DCS and APC strings ended by ESC \\, and charset selections', () => {
    expect(decode(['a\x1bPq#0;2;0;0;0\x1b\\b\x1b_app\x1b\\c\x1b(Bd\n']).lines).toEqual(['abcd']);
  });

  it('lets text after a lone \\r overwrite the line, like a progress bar on screen', () => {
    expect(decode(['10%\r50%\r100%\r\n']).lines).toEqual(['100%']);
  });

  it('removes the character before a backspace and drops other control characters', () => {
    expect(decode(['abx\bc\x07\x00d\n']).lines).toEqual(['abcd']);
  });

  it('keeps tabs', () => {
    expect(decode(['a\tb\n']).lines).toEqual(['a\tb']);
  });

  it('reads escape sequences, \\r\\n and UTF-8 characters split across chunks', () => {
    const euro = Buffer.from('€');
    const chunks = [
      Buffer.from('x\x1b'),
      Buffer.from('[3'),
      Buffer.from('1mred '),
      euro.subarray(0, 1),
      euro.subarray(1),
      Buffer.from('\r'),
      Buffer.from('\nnext\n'),
    ];
    expect(decode(chunks).lines).toEqual(['xred €', 'next']);
  });

  it('cuts a line longer than the cap into pieces', () => {
    expect(decode(['abcdefgh\n'], 3).lines).toEqual(['abc', 'def', 'gh']);
  });
});
