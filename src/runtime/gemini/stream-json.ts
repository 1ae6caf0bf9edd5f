/**
 * Reads Gemini CLI's `--output-format stream-json` (one JSON object a line) into smith's
 * {@link RuntimeEvent}s.
 *
 * The line types and their fields are those the CLI writes (Gemini CLI 0.61,
 * `packages/cli/src/nonInteractiveCli.ts` and `packages/core/src/output/stream-json-formatter.ts`
 * in https://github.com/google-gemini/gemini-cli; summarised in its docs, `docs/cli/headless.md`):
 *
 * - `{"type":"init","session_id","model"}` first;
 * - `{"type":"message","role":"user"|"assistant","content","delta":true}` (assistant text arrives
 *   in chunks);
 * - `{"type":"tool_use","tool_name","tool_id","parameters"}`;
 * - `{"type":"tool_result","tool_id","status":"success"|"error","output"?,"error"?:{type,message}}`;
 * - `{"type":"error","severity":"warning"|"error","message"}` (non-fatal);
 * - `{"type":"result","status":"success"|"error","error"?:{type,message},"stats":{total_tokens,
 *   input_tokens,output_tokens,cached,input,duration_ms,tool_calls,models:{<model>:{…}}}}` last.
 *
 * The result carries no answer text: the answer is the assistant text after the last tool call,
 * as the CLI's own `--output-format json` computes its `response`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

import type { Json } from '../../core/types.js';
import type { RuntimeEvent, TokenUsage } from '../types.js';

/** Token counts of one model in a `result` line's `stats.models` (all token counts). */
export interface GeminiModelStats {
  /** Prompt + candidates + thinking (+ tool-use prompt) tokens, as the API's `totalTokenCount`. */
  total_tokens: number;
  /** Prompt tokens, cached ones included (`promptTokenCount`). */
  input_tokens: number;
  /** Candidate tokens (`candidatesTokenCount`), thinking excluded. */
  output_tokens: number;
  /** Prompt tokens read from the context cache (`cachedContentTokenCount`). */
  cached: number;
  /** Prompt tokens not from the cache (`input_tokens - cached`). */
  input: number;
}

/** The `stats` of a `result` line. */
export interface GeminiResultStats extends GeminiModelStats {
  /** Wall time of the run in ms. */
  duration_ms: number;
  /** Tool calls made. */
  tool_calls: number;
  /** The same counts per model (the main model and any utility model: router, loop check …). */
  models: Record<string, GeminiModelStats>;
}

/** The final `result` line. */
export interface GeminiResultLine {
  status: 'success' | 'error';
  /** Set when `status` is `error`: the error's class name (or `unknown`) and its message. */
  error?: { type: string; message: string };
  stats?: GeminiResultStats;
}

/** Options of {@link GeminiStreamParser}. */
export interface GeminiStreamParserOptions {
  /** The attempt's working directory: file paths inside it are reported relative to it. */
  workdir: string;
  /**
   * Bytes (UTF-16 code units, roughly) of assistant text kept for the output, and separately of
   * `log` / unknown `message` events reported; the rest is counted and dropped so that a flood
   * cannot exhaust memory. Default 1 MiB.
   */
  limitBytes?: number;
}

/** Longest tool output reported in a `tool_result` event, in characters. */
export const TOOL_OUTPUT_CHARS = 4096;
/** Assistant text is reported as one `text` event per message, or every this many characters. */
const TEXT_EVENT_CHARS = 64 * 1024;
/** Longest piece of an unreadable line quoted in a `log` event, in characters. */
const QUOTE_CHARS = 200;
const DEFAULT_LIMIT = 1_048_576;
/** Tools whose `file_path` parameter names a file they write (Gemini CLI's built-in tools). */
const FILE_WRITING_TOOLS = new Set(['write_file', 'replace', 'edit']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}

function modelStats(value: unknown): GeminiModelStats {
  const v = isRecord(value) ? value : {};
  const input_tokens = count(v.input_tokens);
  const cached = count(v.cached);
  return {
    total_tokens: count(v.total_tokens),
    input_tokens,
    output_tokens: count(v.output_tokens),
    cached,
    input: v.input === undefined ? Math.max(0, input_tokens - cached) : count(v.input),
  };
}

/**
 * smith's {@link TokenUsage} for one model's stats: `input` is the prompt less the cached part,
 * `cacheRead` the cached part, and `output` everything that is not prompt (`total - input_tokens`:
 * candidates plus thinking tokens, which Gemini bills as output; the stream's `output_tokens`
 * leaves thinking out).
 *
 * @param stats - one model's stats (or the totals) of a `result` line
 * @returns the token counts
 */
export function tokensOfStats(stats: GeminiModelStats): TokenUsage {
  return {
    input: stats.input,
    output: Math.max(stats.output_tokens, stats.total_tokens - stats.input_tokens),
    cacheRead: stats.cached,
    cacheWrite: 0,
  };
}

function parseResult(obj: Record<string, unknown>): GeminiResultLine {
  const result: GeminiResultLine = { status: obj.status === 'success' ? 'success' : 'error' };
  if (isRecord(obj.error)) {
    result.error = {
      type: str(obj.error.type) ?? 'unknown',
      message: str(obj.error.message) ?? JSON.stringify(obj.error),
    };
  } else if (result.status === 'error') {
    result.error = { type: 'unknown', message: `result status "${String(obj.status)}"` };
  }
  if (isRecord(obj.stats)) {
    const s = obj.stats;
    const models: Record<string, GeminiModelStats> = {};
    if (isRecord(s.models)) {
      for (const [name, m] of Object.entries(s.models)) models[name] = modelStats(m);
    }
    result.stats = {
      ...modelStats(s),
      duration_ms: count(s.duration_ms),
      tool_calls: count(s.tool_calls),
      models,
    };
  }
  return result;
}

/** Keeps at most `limit` characters of reports, then says once that the rest was dropped. */
class Budget {
  private used = 0;
  private noted = false;
  dropped = 0;
  constructor(private readonly limit: number) {}
  /** True when `size` more characters may be reported. */
  take(size: number): boolean {
    if (this.used + size <= this.limit) {
      this.used += size;
      return true;
    }
    this.dropped += size;
    return false;
  }
  /** True the first time something was dropped. */
  noteOnce(): boolean {
    if (this.noted) return false;
    this.noted = true;
    return true;
  }
}

/**
 * Turns Gemini CLI stream-json lines into events and remembers what the outcome needs (session id,
 * answer text, result, errors). Never throws on bad input: a line that is not JSON is a `log`
 * event, a JSON line of an unknown type a `message` event.
 *
 * Events: `init` → `session`; assistant `message` chunks → `text` (joined: one event per message,
 * reported when the next line of another kind arrives or at {@link flush}); `tool_use` →
 * `tool_use`; `tool_result` → `tool_result` (output cut to {@link TOOL_OUTPUT_CHARS}), and, when a
 * `write_file` / `replace` call succeeded, `file_change` (`add` when the file did not exist at the
 * call, else `update`); `error` → `message` with the line; `result` → one `usage` event per model
 * with tokens (the result's stats cover this run only, so they are the attempt's delta).
 *
 * @example
 * const parser = new GeminiStreamParser({ workdir });
 * const final = parser.line('{"type":"init","session_id":"s1","model":"gemini-2.5-pro"}', false, emit);
 * parser.sessionId; // 's1'
 */
export class GeminiStreamParser {
  /** The session id of the `init` line (null until it arrives). */
  sessionId: string | null = null;
  /** The model the `init` line named (`auto` when the CLI routes between models). */
  model: string | null = null;
  /** The `result` line, once it arrived. */
  result: GeminiResultLine | null = null;
  /** Messages of `error` lines of severity `error`, and of failed tool calls' fatal errors (last few). */
  readonly errors: string[] = [];

  private readonly workdir: string;
  private readonly textBudget: Budget;
  private readonly noiseBudget: Budget;
  /** Assistant text of the current message, not yet reported. */
  private pendingText = '';
  /** Assistant text since the last tool call. */
  private current = '';
  /** The last non-empty assistant text before a tool call. */
  private beforeTools = '';
  private readonly pendingFiles = new Map<string, { path: string; kind: 'add' | 'update' }>();

  /** @param options - the working directory and the size limit */
  constructor(options: GeminiStreamParserOptions) {
    this.workdir = options.workdir;
    const limit = options.limitBytes ?? DEFAULT_LIMIT;
    this.textBudget = new Budget(limit);
    this.noiseBudget = new Budget(limit);
  }

  /**
   * The answer: the assistant text after the last tool call, else the text before it (as the
   * CLI's `--output-format json` `response`). Bounded by `limitBytes`.
   */
  get output(): string {
    return this.current !== '' ? this.current : this.beforeTools;
  }

  /**
   * Read one stdout line.
   *
   * @param text - the line, without its newline
   * @param truncated - true when the line was cut at the line cap (it cannot be parsed)
   * @param emit - reports an event
   * @returns true when the line was the final `result`
   */
  line(text: string, truncated: boolean, emit: (event: RuntimeEvent) => void): boolean {
    const trimmed = text.trim();
    if (trimmed === '') return false;
    if (truncated) {
      this.flush(emit);
      this.noise(
        emit,
        `unreadable stdout line (longer than the line cap, cut): ${trimmed.slice(0, QUOTE_CHARS)}`,
      );
      return false;
    }
    let obj: unknown = undefined;
    if (trimmed.startsWith('{')) {
      try {
        obj = JSON.parse(trimmed);
      } catch {
        obj = undefined;
      }
    }
    if (!isRecord(obj)) {
      this.flush(emit);
      this.noise(emit, trimmed);
      return false;
    }
    const type = obj.type;
    if (type === 'message' && obj.role === 'assistant') {
      this.onAssistantText(str(obj.content) ?? '', emit);
      return false;
    }
    this.flush(emit);
    switch (type) {
      case 'init':
        this.onInit(obj, emit);
        return false;
      case 'message':
        // the user's prompt echoed back: nothing new
        return false;
      case 'tool_use':
        this.onToolUse(obj, emit);
        return false;
      case 'tool_result':
        this.onToolResult(obj, emit);
        return false;
      case 'error':
        this.onError(obj, emit);
        return false;
      case 'result':
        this.onResult(obj, emit);
        return true;
      default:
        this.noise(emit, trimmed, obj as Json);
        return false;
    }
  }

  /**
   * Report the assistant text not yet reported, as one `text` event; call it at the end of the
   * stream (a crash may leave text without a following line).
   *
   * @param emit - reports an event
   */
  flush(emit: (event: RuntimeEvent) => void): void {
    if (this.pendingText === '') return;
    const text = this.pendingText;
    this.pendingText = '';
    emit({ type: 'text', text });
  }

  private onAssistantText(chunk: string, emit: (event: RuntimeEvent) => void): void {
    if (chunk === '') return;
    if (this.textBudget.take(chunk.length)) {
      this.current += chunk;
      this.pendingText += chunk;
      if (this.pendingText.length >= TEXT_EVENT_CHARS) this.flush(emit);
    } else if (this.textBudget.noteOnce()) {
      this.flush(emit);
      emit({
        type: 'log',
        stream: 'stdout',
        line: 'assistant text past the output limit: the rest is dropped',
      });
    }
  }

  private onInit(obj: Record<string, unknown>, emit: (event: RuntimeEvent) => void): void {
    const id = str(obj.session_id);
    this.model = str(obj.model) ?? this.model;
    if (id !== undefined && id !== '' && id !== this.sessionId) {
      this.sessionId = id;
      emit({ type: 'session', id });
    }
  }

  private onToolUse(obj: Record<string, unknown>, emit: (event: RuntimeEvent) => void): void {
    if (this.current !== '') this.beforeTools = this.current;
    this.current = '';
    const name = str(obj.tool_name) ?? 'unknown';
    const id = str(obj.tool_id);
    const event: RuntimeEvent = { type: 'tool_use', name };
    if (id !== undefined) event.id = id;
    if (obj.parameters !== undefined) event.input = obj.parameters as Json;
    emit(event);
    if (id === undefined || !FILE_WRITING_TOOLS.has(name) || !isRecord(obj.parameters)) return;
    const params = obj.parameters;
    const file = str(params.file_path) ?? str(params.absolute_path) ?? str(params.path);
    if (file === undefined || file === '') return;
    const absolute = path.resolve(this.workdir, file);
    const relative = path.relative(this.workdir, absolute);
    const inside = relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
    this.pendingFiles.set(id, {
      path: inside ? relative : absolute,
      kind: existsSync(absolute) ? 'update' : 'add',
    });
  }

  private onToolResult(obj: Record<string, unknown>, emit: (event: RuntimeEvent) => void): void {
    const id = str(obj.tool_id);
    const isError = obj.status !== 'success';
    const errorMessage = isRecord(obj.error) ? str(obj.error.message) : undefined;
    const output = str(obj.output) ?? errorMessage;
    const event: RuntimeEvent = { type: 'tool_result', isError };
    if (id !== undefined) event.id = id;
    if (output !== undefined) event.output = cut(output, TOOL_OUTPUT_CHARS);
    emit(event);
    if (id === undefined) return;
    const file = this.pendingFiles.get(id);
    this.pendingFiles.delete(id);
    if (file !== undefined && !isError) emit({ type: 'file_change', path: file.path, kind: file.kind });
  }

  private onError(obj: Record<string, unknown>, emit: (event: RuntimeEvent) => void): void {
    const message = str(obj.message) ?? JSON.stringify(obj);
    if (obj.severity !== 'warning') {
      this.errors.push(cut(message, 2000));
      if (this.errors.length > 5) this.errors.shift();
    }
    emit({ type: 'message', data: obj as Json });
  }

  private onResult(obj: Record<string, unknown>, emit: (event: RuntimeEvent) => void): void {
    const result = parseResult(obj);
    this.result = result;
    const stats = result.stats;
    if (stats === undefined) return;
    const models = Object.entries(stats.models);
    if (models.length === 0) {
      const tokens = tokensOfStats(stats);
      if (tokens.input + tokens.output + tokens.cacheRead === 0) return;
      const event: RuntimeEvent = { type: 'usage', tokens };
      if (this.model !== null && this.model !== 'auto') event.model = this.model;
      emit(event);
      return;
    }
    for (const [model, m] of models) {
      const tokens = tokensOfStats(m);
      if (tokens.input + tokens.output + tokens.cacheRead === 0) continue;
      emit({ type: 'usage', model, tokens });
    }
  }

  /** A `log` (or, for a JSON object of an unknown type, `message`) event within the budget. */
  private noise(emit: (event: RuntimeEvent) => void, line: string, data?: Json): void {
    if (this.noiseBudget.take(line.length)) {
      if (data !== undefined) emit({ type: 'message', data });
      else emit({ type: 'log', stream: 'stdout', line });
    } else if (this.noiseBudget.noteOnce()) {
      emit({
        type: 'log',
        stream: 'stdout',
        line: 'unparsed stdout past the output limit: further unparsed lines are dropped',
      });
    }
  }

  /** The attempt's total tokens (all models), from the result's stats; undefined without them. */
  totalTokens(): TokenUsage | undefined {
    const stats = this.result?.stats;
    if (stats === undefined) return undefined;
    const models = Object.values(stats.models);
    if (models.length === 0) return tokensOfStats(stats);
    const total: TokenUsage = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
    for (const m of models) {
      const t = tokensOfStats(m);
      total.input += t.input;
      total.output += t.output;
      total.cacheRead += t.cacheRead;
    }
    return total;
  }
}
