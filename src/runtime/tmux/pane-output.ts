/**
 * Turns the raw bytes a tmux pane's program writes to its terminal (as `pipe-pane` copies them)
 * into plain text lines: escape sequences (CSI, OSC, DCS and the other string sequences, charset
 * selections) are dropped, `\r\n` ends a line, a lone `\r` lets the text after it overwrite the
 * line (as a progress bar does on screen), backspace removes the character before it, and the
 * other control characters are dropped. Escape sequences are the ECMA-48 / xterm ones
 * (https://invisible-island.net/xterm/ctlseqs/ctlseqs.html).
 */
import { StringDecoder } from 'node:string_decoder';

/** Longest line held whole, in UTF-16 code units; a longer one is cut into lines of this length. */
export const DEFAULT_MAX_LINE_CHARS = 64 * 1024;

type State = 'text' | 'esc' | 'csi' | 'string' | 'string-esc' | 'charset';

const ESC = 0x1b;
const BEL = 0x07;
const BS = 0x08;
const LF = 0x0a;
const CR = 0x0d;
const TAB = 0x09;

function isPrintable(code: number): boolean {
  return (code >= 0x20 && code !== 0x7f && !(code >= 0x80 && code <= 0x9f)) || code === TAB;
}

/**
 * A streaming decoder of terminal output into plain lines. Escape sequences and UTF-8 characters
 * may be split across chunks.
 *
 * @example
 * const decoder = new TerminalLineDecoder((line) => console.log(line));
 * decoder.write(Buffer.from('\x1b[1mhello\x1b[0m\r\n50%\r100%\r\n'));
 * // logs "hello" then "100%"
 */
export class TerminalLineDecoder {
  private readonly utf8 = new StringDecoder('utf8');
  private readonly onLine: (line: string) => void;
  private readonly maxLineChars: number;
  private state: State = 'text';
  private line = '';
  private pendingCr = false;

  /**
   * @param onLine - called for every complete line, in order, without its terminator
   * @param maxLineChars - longest line held whole (default {@link DEFAULT_MAX_LINE_CHARS})
   */
  constructor(onLine: (line: string) => void, maxLineChars: number = DEFAULT_MAX_LINE_CHARS) {
    this.onLine = onLine;
    this.maxLineChars = Math.max(1, maxLineChars);
  }

  /**
   * Feed bytes (or already decoded text).
   *
   * @param chunk - the next bytes of the stream
   */
  write(chunk: Buffer | string): void {
    const text = typeof chunk === 'string' ? chunk : this.utf8.write(chunk);
    let i = 0;
    while (i < text.length) {
      const code = text.charCodeAt(i);
      switch (this.state) {
        case 'text': {
          if (isPrintable(code)) {
            let j = i + 1;
            while (j < text.length && isPrintable(text.charCodeAt(j))) j++;
            this.append(text.slice(i, j));
            i = j;
            continue;
          }
          if (code === LF) this.endLine();
          else if (code === CR) this.pendingCr = true;
          else if (code === BS) this.line = this.line.slice(0, -1);
          else if (code === ESC) this.state = 'esc';
          else if (code === 0x9b) this.state = 'csi';
          else if (code === 0x9d || code === 0x90) this.state = 'string';
          break;
        }
        case 'esc': {
          if (code === 0x5b /* [ */) this.state = 'csi';
          else if (code === 0x5d /* ] */ || code === 0x50 /* P */ || code === 0x58 /* X */)
            this.state = 'string';
          else if (code === 0x5e /* ^ */ || code === 0x5f /* _ */) this.state = 'string';
          else if (code >= 0x20 && code <= 0x2f) this.state = 'charset';
          else this.state = 'text';
          break;
        }
        case 'csi': {
          if (code >= 0x40 && code <= 0x7e) this.state = 'text';
          else if (code < 0x20 || code > 0x3f) {
            // not a parameter or intermediate byte: a malformed sequence ends here
            this.state = 'text';
            continue;
          }
          break;
        }
        case 'string': {
          if (code === BEL || code === 0x9c) this.state = 'text';
          else if (code === ESC) this.state = 'string-esc';
          break;
        }
        case 'string-esc': {
          this.state = code === 0x5c /* \ */ ? 'text' : 'string';
          break;
        }
        case 'charset': {
          if (code < 0x20 || code > 0x2f) this.state = 'text';
          break;
        }
      }
      i++;
    }
  }

  /** The text of the line not yet ended by a newline (a program's prompt, for instance). */
  partial(): string {
    return this.line;
  }

  /** End the stream: a partial line is NOT reported (see {@link partial}). */
  end(): void {
    const rest = this.utf8.end();
    if (rest !== '') this.write(rest);
  }

  private append(text: string): void {
    if (this.pendingCr) {
      this.pendingCr = false;
      this.line = '';
    }
    this.line += text;
    while (this.line.length > this.maxLineChars) {
      const head = this.line.slice(0, this.maxLineChars);
      this.line = this.line.slice(this.maxLineChars);
      this.onLine(head);
    }
  }

  private endLine(): void {
    const line = this.line;
    this.line = '';
    this.pendingCr = false;
    this.onLine(line);
  }
}
