/**
 * Bounded capture of one output stream of an agent process: counts every byte, keeps the first
 * `limitBytes` of them, and splits the stream into lines with a capped partial-line buffer, so an
 * agent printing 100 MB (with or without newlines) costs at most about `limitBytes + maxLineBytes`
 * of memory.
 */

/** Default bytes kept per stream: 1 MiB, as documented on `AgentSpec.outputLimitBytes`. */
export const DEFAULT_OUTPUT_LIMIT_BYTES = 1_048_576;

/** Smallest partial-line cap: 64 KiB (so small output limits still let NDJSON events through). */
const MIN_LINE_BYTES = 64 * 1024;
/** Largest partial-line cap: 16 MiB, whatever the output limit. */
const MAX_LINE_BYTES = 16 * 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;

/**
 * The partial-line cap that goes with an output limit: `limitBytes` clamped to 64 KiB .. 16 MiB.
 *
 * @param limitBytes - bytes kept per stream
 * @returns the longest line, in bytes, held whole; longer lines are cut there
 */
export function lineCapFor(limitBytes: number): number {
  return Math.min(MAX_LINE_BYTES, Math.max(MIN_LINE_BYTES, limitBytes));
}

/** One line of a stream, as handed to {@link OutputCaptureOptions.onLine}. */
export interface CapturedLine {
  /**
   * The line's first bytes (at most `maxLineBytes`), without its terminator (`\n` or `\r\n`).
   * May be a view of the stream's chunk: copy it to keep it past the callback.
   */
  bytes: Buffer;
  /** Bytes of this line dropped because it was longer than `maxLineBytes` (0 for most lines). */
  truncatedBytes: number;
  /**
   * How many of `bytes` lie within the stream's kept budget (the first `limitBytes` bytes of the
   * stream): `bytes.length` for a line wholly kept, 0 for a line that starts past the budget.
   */
  keptLength: number;
}

/** Options of {@link OutputCapture}. */
export interface OutputCaptureOptions {
  /** Bytes of the stream kept (see {@link OutputCapture.keptText}); the rest is counted and dropped. */
  limitBytes: number;
  /** Longest line held, in bytes; default {@link lineCapFor}(limitBytes). */
  maxLineBytes?: number;
  /** Called for every line, in order, synchronously from {@link OutputCapture.write} / {@link OutputCapture.end}. */
  onLine: (line: CapturedLine) => void;
}

/**
 * Counts, keeps (up to a budget) and splits into lines one byte stream.
 *
 * @example
 * const out = new OutputCapture({ limitBytes: 1024, onLine: (l) => console.log(l.bytes.toString()) });
 * child.stdout.on('data', (c: Buffer) => out.write(c));
 * child.stdout.on('end', () => out.end());
 */
export class OutputCapture {
  /** Bytes seen. */
  totalBytes = 0;
  /** Bytes kept (at most `limitBytes`). */
  keptBytes = 0;
  /** Bytes seen past the kept budget, dropped. */
  droppedBytes = 0;
  /** Bytes of over-long lines dropped from the line buffer (they may still be within the kept bytes). */
  lineTruncatedBytes = 0;

  private readonly limitBytes: number;
  private readonly maxLineBytes: number;
  private readonly onLine: (line: CapturedLine) => void;
  private readonly kept: Buffer[] = [];
  private partial: Buffer[] = [];
  private partialLength = 0;
  private partialTruncated = 0;
  /** Stream offset of the first byte of the line being assembled. */
  private lineStart = 0;
  private ended = false;

  /**
   * @param options - the kept budget, the line cap and the line callback
   */
  constructor(options: OutputCaptureOptions) {
    this.limitBytes = Math.max(0, Math.floor(options.limitBytes));
    this.maxLineBytes = Math.max(1, Math.floor(options.maxLineBytes ?? lineCapFor(this.limitBytes)));
    this.onLine = options.onLine;
  }

  /**
   * Take the next chunk of the stream. Ignored after {@link OutputCapture.end}.
   *
   * @param chunk - raw bytes as read from the pipe
   */
  write(chunk: Buffer): void {
    if (this.ended || chunk.length === 0) return;
    const chunkStart = this.totalBytes;
    this.totalBytes += chunk.length;

    const room = this.limitBytes - this.keptBytes;
    if (room > 0) {
      const take = Math.min(room, chunk.length);
      // Copy a partly kept chunk so the kept list never pins the dropped rest of it.
      this.kept.push(take === chunk.length ? chunk : Buffer.from(chunk.subarray(0, take)));
      this.keptBytes += take;
      this.droppedBytes += chunk.length - take;
    } else {
      this.droppedBytes += chunk.length;
    }

    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(LF, pos);
      if (nl === -1) {
        this.appendPartial(chunk.subarray(pos));
        break;
      }
      const segment = chunk.subarray(pos, nl);
      if (this.partialLength === 0 && this.partialTruncated === 0) {
        const held = segment.length > this.maxLineBytes ? segment.subarray(0, this.maxLineBytes) : segment;
        this.lineTruncatedBytes += segment.length - held.length;
        this.emit(held, segment.length - held.length);
      } else {
        this.appendPartial(segment);
        this.emit(Buffer.concat(this.partial, this.partialLength), this.partialTruncated);
      }
      this.partial = [];
      this.partialLength = 0;
      this.partialTruncated = 0;
      this.lineStart = chunkStart + nl + 1;
      pos = nl + 1;
    }
  }

  /** The stream has ended: hand over its last line if it had no newline. Idempotent. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.partialLength > 0 || this.partialTruncated > 0) {
      this.emit(Buffer.concat(this.partial, this.partialLength), this.partialTruncated);
      this.partial = [];
      this.partialLength = 0;
      this.partialTruncated = 0;
    }
  }

  /** The kept bytes (the stream's first `limitBytes`), concatenated. */
  keptBuffer(): Buffer {
    return Buffer.concat(this.kept, this.keptBytes);
  }

  /** The kept bytes decoded as UTF-8 (invalid sequences become U+FFFD). */
  keptText(): string {
    return this.keptBuffer().toString('utf8');
  }

  private appendPartial(segment: Buffer): void {
    if (segment.length === 0) return;
    const room = this.maxLineBytes - this.partialLength;
    if (room <= 0) {
      this.partialTruncated += segment.length;
      this.lineTruncatedBytes += segment.length;
      return;
    }
    const take = Math.min(room, segment.length);
    // Copy: a view would pin the whole chunk for as long as the line is assembled.
    this.partial.push(Buffer.from(segment.subarray(0, take)));
    this.partialLength += take;
    if (take < segment.length) {
      this.partialTruncated += segment.length - take;
      this.lineTruncatedBytes += segment.length - take;
    }
  }

  private emit(held: Buffer, truncatedBytes: number): void {
    let bytes = held;
    if (truncatedBytes === 0 && bytes.length > 0 && bytes[bytes.length - 1] === CR) {
      bytes = bytes.subarray(0, bytes.length - 1);
    }
    const keptLength = Math.max(0, Math.min(bytes.length, this.limitBytes - this.lineStart));
    this.onLine({ bytes, truncatedBytes, keptLength });
  }
}

/**
 * Keeps the last `limitBytes` bytes of a stream (its tail), e.g. stderr for error messages.
 */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private readonly limitBytes: number;

  /**
   * @param limitBytes - bytes of the tail kept
   */
  constructor(limitBytes: number) {
    this.limitBytes = Math.max(0, Math.floor(limitBytes));
  }

  /**
   * Append bytes; the oldest beyond the limit are forgotten.
   *
   * @param chunk - raw bytes
   */
  write(chunk: Buffer): void {
    if (this.limitBytes === 0 || chunk.length === 0) return;
    const piece = chunk.length > this.limitBytes ? chunk.subarray(chunk.length - this.limitBytes) : chunk;
    this.chunks.push(Buffer.from(piece));
    this.size += piece.length;
    while (this.chunks.length > 1) {
      const first = this.chunks[0];
      if (first === undefined || this.size - first.length < this.limitBytes) break;
      this.chunks.shift();
      this.size -= first.length;
    }
  }

  /** The tail: at most `limitBytes` bytes, decoded as UTF-8 (invalid sequences become U+FFFD). */
  text(): string {
    const all = Buffer.concat(this.chunks, this.size);
    return all.subarray(Math.max(0, all.length - this.limitBytes)).toString('utf8');
  }
}
