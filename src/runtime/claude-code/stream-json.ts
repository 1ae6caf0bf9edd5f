/**
 * Claude Code's `--output-format stream-json` output, read line by line into smith's runtime events.
 *
 * Each stdout line of `claude -p --output-format stream-json --verbose` is one JSON message of the
 * Agent SDK (`SDKMessage`): `system` (subtype `init` first, with `session_id`, `model`, `tools`;
 * then others such as `api_retry`), `assistant` (an API message with `content` blocks `text`,
 * `thinking`, `tool_use`, and its `usage`; one line per content block, each repeating the message's
 * `id` and usage), `user` (tool results), `stream_event` (partial messages, only with
 * `--include-partial-messages`) and, last, `result`.
 *
 * Sources: https://docs.claude.com/en/docs/claude-code/headless (stream-json),
 * https://docs.claude.com/en/docs/claude-code/sdk/sdk-typescript (the `SDKMessage` types), and
 * the zod schemas inside the Claude Code 2.1.197 CLI itself (result subtypes `success`,
 * `error_during_execution`, `error_max_turns`, `error_max_budget_usd`,
 * `error_max_structured_output_retries`; assistant `error` codes `authentication_failed`,
 * `oauth_org_not_allowed`, `billing_error`, `rate_limit`, `overloaded`, `invalid_request`,
 * `model_not_found`, `server_error`, `unknown`, `max_output_tokens`; `api_error_status` on results).
 */
import path from 'node:path';

import type { Json } from '../../core/types.js';
import type { FailureReason, RuntimeEvent, TokenUsage } from '../types.js';

/** Characters of a tool result's output kept in a `tool_result` event (about 4 KiB). */
export const TOOL_OUTPUT_CHARS = 4096;
/** Characters kept of any one string inside a `tool_use` input or a `message` event's data. */
export const JSON_STRING_CHARS = 2048;
/** Bytes of non-JSON stdout reported as `log` events per attempt, by default (1 MiB). */
export const DEFAULT_LOG_BYTES = 1_048_576;
/** Characters of one non-JSON line reported in a `log` event. */
const LOG_LINE_CHARS = 4096;

/** Tools whose `tool_use` edits the file named by `file_path` (or `notebook_path`). */
const FILE_EDIT_TOOLS = new Set(['Write', 'Edit', 'MultiEdit', 'NotebookEdit']);

/** A JSON object. */
type Obj = Record<string, unknown>;

/** One stdout line of stream-json, parsed by {@link parseStreamJsonLine}. */
export type StreamJsonLine =
  /** A JSON object with a string `type`: one SDK message. */
  | { kind: 'message'; type: string; subtype: string | null; message: Readonly<Obj> }
  /** Anything else (not JSON, not an object, no `type`), with why. */
  | { kind: 'invalid'; problem: string };

/**
 * Parse one stdout line of `claude --output-format stream-json`. Never throws.
 *
 * @param text - the line, without its newline
 * @returns the SDK message (`type`, `subtype` when it has one, the whole object), or `invalid`
 *   with the reason (`not JSON`, `not a JSON object`, `no "type" field`)
 * @example
 * parseStreamJsonLine('{"type":"system","subtype":"init","session_id":"abc"}');
 * // => { kind: 'message', type: 'system', subtype: 'init', message: {...} }
 */
export function parseStreamJsonLine(text: string): StreamJsonLine {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) return { kind: 'invalid', problem: 'not JSON' };
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    return { kind: 'invalid', problem: 'not JSON' };
  }
  if (!isObj(value)) return { kind: 'invalid', problem: 'not a JSON object' };
  if (typeof value.type !== 'string' || value.type === '')
    return { kind: 'invalid', problem: 'no "type" field' };
  return {
    kind: 'message',
    type: value.type,
    subtype: typeof value.subtype === 'string' ? value.subtype : null,
    message: value,
  };
}

/** The `result` message, as read. */
export interface StreamJsonResult {
  /** `success`, `error_during_execution`, `error_max_turns`, `error_max_budget_usd`, … */
  subtype: string;
  /** True when the run failed (also with subtype `success`, for API errors). */
  isError: boolean;
  /** The `result` text (success subtype), else the `errors` joined by newlines. */
  text: string;
  /** The HTTP status of the API error that ended the run, when there was one (`api_error_status`). */
  apiErrorStatus: number | null;
  /** Turns the run took (`num_turns`). */
  numTurns: number | null;
  /** The run's spend in USD (`total_cost_usd`), as the CLI prices it. */
  costUsd: number | null;
  /** The run's token totals (`usage`). */
  tokens: TokenUsage | null;
  /** The session id the result names (`session_id`). */
  sessionId: string | null;
  /** Tool calls that were denied (`permission_denials`). */
  permissionDenials: number;
}

/** Options of {@link StreamJsonParser}. */
export interface StreamJsonParserOptions {
  /**
   * The attempt's working directory: `file_change` paths inside it are made relative to it. Give
   * the real path too if it differs (symlinks), in `workdirAliases`.
   */
  workdir?: string;
  /** Other spellings of `workdir` (its real path). */
  workdirAliases?: string[];
  /** Bytes of non-JSON lines reported as `log` events before the rest are dropped. Default 1 MiB. */
  maxLogBytes?: number;
}

/** What one line gave: events to report, and whether it was the final `result`. */
export interface StreamJsonStep {
  events: RuntimeEvent[];
  /** True for the `result` line (also a `result` line cut by the line cap). */
  final: boolean;
}

/**
 * Reads a stream of stream-json lines into {@link RuntimeEvent}s, keeping what the outcome needs
 * (session id, the result, the last API error code). Memory stays bounded: one entry per API
 * message id (for usage deltas) and per pending file-edit tool call; nothing per line.
 *
 * Events:
 * - `system`/`init` → `session` (at once) and a `message` with `model`, `tools`, `cwd`,
 *   `permissionMode`, `claude_code_version`, `mcp_servers`;
 * - `assistant` → `text` per text block, `tool_use` per tool call (`id`, `name`, `input` with
 *   strings cut to 2 KiB), and a `usage` event with the tokens this API message added since its
 *   previous line (input, output, cache read, cache write; `model`; no `costUsd`, the engine
 *   prices tokens); thinking blocks are ignored;
 * - `user` → `tool_result` per tool result (`isError`, output cut to 4 KiB), and a `file_change`
 *   for each successful `Write`/`Edit`/`MultiEdit`/`NotebookEdit` (`add` when `Write` created the
 *   file, else `update`);
 * - `result` → a `message` with its summary, then `usage` events for the tokens the result counts
 *   that no assistant line reported (output tokens arrive only at the end of each API message, and
 *   side requests never appear), so the `usage` events add up to the result's totals;
 * - `stream_event` (partial messages) → nothing; any other type → a `message` with its data
 *   (strings cut to 2 KiB);
 * - a line that is not JSON → a `log` event (until `maxLogBytes` of them; one last log says so).
 */
export class StreamJsonParser {
  /** The session id (`session_id` of `init`, else of any later message). */
  sessionId: string | null = null;
  /** The model the session runs (`init`'s `model`). */
  model: string | null = null;
  /** The `result` message, once read. */
  result: StreamJsonResult | null = null;
  /** True when the `result` line was longer than the line cap and could not be read. */
  resultTruncated = false;
  /** The `error` code of the last assistant message that carried one (`authentication_failed`, …). */
  lastApiError: string | null = null;
  /** The text of that message (the CLI's words for the error). */
  lastApiErrorText: string | null = null;
  /** Lines that were not stream-json. */
  invalidLines = 0;

  private readonly workdirs: string[];
  private readonly maxLogBytes: number;
  private logBytes = 0;
  private logsDropped = 0;
  /** Usage already reported per API message id. */
  private readonly usageById = new Map<string, TokenUsage>();
  /** Usage reported per model (for the remainder at the result). */
  private readonly usageByModel = new Map<string, TokenUsage>();
  /** File-edit tool calls awaiting their result, by tool_use id. */
  private readonly pendingEdits = new Map<string, { tool: string; file: string }>();

  /** @param options - working directory and log budget */
  constructor(options: StreamJsonParserOptions = {}) {
    this.workdirs = [options.workdir, ...(options.workdirAliases ?? [])].filter(
      (d): d is string => d !== undefined && d !== '',
    );
    this.maxLogBytes = options.maxLogBytes ?? DEFAULT_LOG_BYTES;
  }

  /**
   * Read one stdout line.
   *
   * @param text - the line without its newline
   * @param truncated - true when the line was cut at the line cap (it cannot be JSON then)
   * @returns the events it gives and whether it was the final `result`
   */
  push(text: string, truncated = false): StreamJsonStep {
    const events: RuntimeEvent[] = [];
    if (truncated) return this.truncatedLine(text, events);
    const parsed = parseStreamJsonLine(text);
    if (parsed.kind === 'invalid') {
      if (text.trim() !== '') {
        this.invalidLines++;
        this.log(text, events);
      }
      return { events, final: false };
    }
    const msg = parsed.message;
    this.noteSession(msg, events);
    switch (parsed.type) {
      case 'system':
        this.system(parsed.subtype, msg, events);
        break;
      case 'assistant':
        this.assistant(msg, events);
        break;
      case 'user':
        this.user(msg, events);
        break;
      case 'result':
        this.readResult(msg, events);
        return { events, final: true };
      case 'stream_event':
        break;
      default:
        events.push({ type: 'message', data: cutJson(msg) });
    }
    return { events, final: false };
  }

  /**
   * The last events of the stream, once stdout has ended: a `log` saying how many non-JSON lines
   * were dropped past the log budget, if any.
   */
  end(): RuntimeEvent[] {
    if (this.logsDropped === 0) return [];
    const n = this.logsDropped;
    this.logsDropped = 0;
    return [
      { type: 'log', stream: 'stdout', line: `${n} more non-JSON stdout lines dropped (log budget used)` },
    ];
  }

  private truncatedLine(text: string, events: RuntimeEvent[]): StreamJsonStep {
    const type = /^\s*\{\s*"type"\s*:\s*"([A-Za-z_]+)"/.exec(text)?.[1];
    this.invalidLines++;
    const what = type === undefined ? 'a stdout line' : `a stream-json "${type}" line`;
    this.log(`${what} was longer than the line cap and was cut; ignored`, events, true);
    if (type === 'result') {
      this.resultTruncated = true;
      return { events, final: true };
    }
    return { events, final: false };
  }

  private log(text: string, events: RuntimeEvent[], always = false): void {
    const line = text.length > LOG_LINE_CHARS ? `${text.slice(0, LOG_LINE_CHARS)}… [cut]` : text;
    const bytes = Buffer.byteLength(line);
    if (!always && this.logBytes + bytes > this.maxLogBytes) {
      this.logsDropped++;
      return;
    }
    this.logBytes += bytes;
    events.push({ type: 'log', stream: 'stdout', line });
  }

  private noteSession(msg: Readonly<Obj>, events: RuntimeEvent[]): void {
    const id = msg.session_id;
    if (typeof id !== 'string' || id === '' || id === this.sessionId) return;
    this.sessionId = id;
    events.push({ type: 'session', id });
  }

  private system(subtype: string | null, msg: Readonly<Obj>, events: RuntimeEvent[]): void {
    if (subtype !== 'init') {
      events.push({ type: 'message', data: cutJson(msg) });
      return;
    }
    if (typeof msg.model === 'string') this.model = msg.model;
    const data: { [key: string]: Json } = { type: 'system', subtype: 'init' };
    for (const key of ['model', 'cwd', 'permissionMode', 'claude_code_version', 'tools', 'mcp_servers']) {
      if (msg[key] !== undefined) data[key] = cutJson(msg[key]);
    }
    events.push({ type: 'message', data });
  }

  private assistant(msg: Readonly<Obj>, events: RuntimeEvent[]): void {
    const message = isObj(msg.message) ? msg.message : {};
    if (typeof msg.error === 'string') {
      this.lastApiError = msg.error;
      this.lastApiErrorText = textOf(message.content);
    }
    for (const block of Array.isArray(message.content) ? message.content : []) {
      if (!isObj(block)) continue;
      if (block.type === 'text' && typeof block.text === 'string') {
        if (block.text !== '') events.push({ type: 'text', text: block.text });
      } else if (block.type === 'tool_use' && typeof block.name === 'string') {
        const event: RuntimeEvent & { type: 'tool_use' } = { type: 'tool_use', name: block.name };
        if (typeof block.id === 'string') event.id = block.id;
        if (block.input !== undefined) event.input = cutJson(block.input);
        events.push(event);
        this.noteEdit(block);
      } else if (block.type !== 'thinking' && block.type !== 'redacted_thinking') {
        // server tools (web search …) and blocks this version does not know
        events.push({ type: 'message', data: cutJson(block) });
      }
    }
    this.usage(message, events);
  }

  /** A `usage` event with what this API message added since its previous line. */
  private usage(message: Readonly<Obj>, events: RuntimeEvent[]): void {
    const model = typeof message.model === 'string' ? message.model : undefined;
    if (model === '<synthetic>') return; // the CLI's own messages (errors): no API call
    const total = tokensOf(message.usage);
    if (total === null) return;
    const id = typeof message.id === 'string' ? message.id : null;
    const before = id === null ? undefined : this.usageById.get(id);
    const delta = before === undefined ? total : subtract(total, before);
    if (id !== null) this.usageById.set(id, before === undefined ? total : maxTokens(before, total));
    if (isZero(delta)) return;
    const key = model ?? this.model ?? '';
    this.usageByModel.set(key, add(this.usageByModel.get(key) ?? zeroTokens(), delta));
    const event: RuntimeEvent & { type: 'usage' } = { type: 'usage', tokens: delta };
    if (model !== undefined) event.model = model;
    events.push(event);
  }

  private noteEdit(block: Readonly<Obj>): void {
    if (typeof block.name !== 'string' || !FILE_EDIT_TOOLS.has(block.name)) return;
    if (typeof block.id !== 'string' || !isObj(block.input)) return;
    const file = block.input.file_path ?? block.input.notebook_path;
    if (typeof file !== 'string' || file === '') return;
    this.pendingEdits.set(block.id, { tool: block.name, file });
  }

  private user(msg: Readonly<Obj>, events: RuntimeEvent[]): void {
    const message = isObj(msg.message) ? msg.message : {};
    if (!Array.isArray(message.content)) return; // a plain prompt: nothing to report
    const toolResult = isObj(msg.tool_use_result) ? msg.tool_use_result : null;
    for (const block of message.content) {
      if (!isObj(block) || block.type !== 'tool_result') continue;
      const id = typeof block.tool_use_id === 'string' ? block.tool_use_id : undefined;
      const isError = block.is_error === true;
      const event: RuntimeEvent & { type: 'tool_result' } = { type: 'tool_result', isError };
      if (id !== undefined) event.id = id;
      const output = cutText(textOf(block.content), TOOL_OUTPUT_CHARS);
      if (output !== '') event.output = output;
      events.push(event);
      if (id === undefined) continue;
      const edit = this.pendingEdits.get(id);
      if (edit === undefined) continue;
      this.pendingEdits.delete(id);
      if (isError) continue;
      const created = edit.tool === 'Write' && toolResult?.type === 'create';
      events.push({ type: 'file_change', path: this.relative(edit.file), kind: created ? 'add' : 'update' });
    }
  }

  private relative(file: string): string {
    if (!path.isAbsolute(file)) return file;
    for (const dir of this.workdirs) {
      const rel = path.relative(dir, file);
      if (rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel)) return rel;
    }
    return file;
  }

  private readResult(msg: Readonly<Obj>, events: RuntimeEvent[]): void {
    const subtype = typeof msg.subtype === 'string' ? msg.subtype : 'unknown';
    const errors = Array.isArray(msg.errors)
      ? msg.errors.filter((e): e is string => typeof e === 'string')
      : [];
    const text = typeof msg.result === 'string' ? msg.result : errors.join('\n');
    const tokens = tokensOf(msg.usage);
    this.result = {
      subtype,
      // a result without is_error is read as failed unless its subtype says success
      isError: typeof msg.is_error === 'boolean' ? msg.is_error : subtype !== 'success',
      text,
      apiErrorStatus: typeof msg.api_error_status === 'number' ? msg.api_error_status : null,
      numTurns: typeof msg.num_turns === 'number' ? msg.num_turns : null,
      costUsd:
        typeof msg.total_cost_usd === 'number' && Number.isFinite(msg.total_cost_usd)
          ? msg.total_cost_usd
          : null,
      tokens,
      sessionId: typeof msg.session_id === 'string' ? msg.session_id : null,
      permissionDenials: Array.isArray(msg.permission_denials) ? msg.permission_denials.length : 0,
    };
    const summary: { [key: string]: Json } = { type: 'result', subtype };
    for (const key of [
      'is_error',
      'api_error_status',
      'num_turns',
      'total_cost_usd',
      'duration_ms',
      'duration_api_ms',
      'stop_reason',
      'terminal_reason',
      'permission_denials',
      'errors',
    ]) {
      if (msg[key] !== undefined) summary[key] = cutJson(msg[key]);
    }
    events.push({ type: 'message', data: summary });
    this.remainder(msg, tokens, events);
  }

  /** `usage` events for the tokens the result counts beyond what the assistant lines reported. */
  private remainder(msg: Readonly<Obj>, total: TokenUsage | null, events: RuntimeEvent[]): void {
    const byModel = isObj(msg.modelUsage) ? Object.entries(msg.modelUsage) : [];
    if (byModel.length > 0) {
      for (const [model, usage] of byModel) {
        if (!isObj(usage)) continue;
        const counted: TokenUsage = {
          input: count(usage.inputTokens),
          output: count(usage.outputTokens),
          cacheRead: count(usage.cacheReadInputTokens),
          cacheWrite: count(usage.cacheCreationInputTokens),
        };
        const rest = subtract(counted, this.usageByModel.get(model) ?? zeroTokens());
        if (!isZero(rest)) events.push({ type: 'usage', model, tokens: rest });
      }
      return;
    }
    if (total === null) return;
    let reported = zeroTokens();
    for (const u of this.usageByModel.values()) reported = add(reported, u);
    const rest = subtract(total, reported);
    if (isZero(rest)) return;
    const event: RuntimeEvent & { type: 'usage' } = { type: 'usage', tokens: rest };
    if (this.model !== null) event.model = this.model;
    events.push(event);
  }
}

/** What {@link classifyFailure} decided. */
export interface FailureClass {
  reason: FailureReason;
  /** False when retrying cannot help (credentials, billing, a bad request, the budget). */
  retryable: boolean;
  /** What to do about it, for the error message. */
  hint: string;
}

/** Facts about a failed run, for {@link classifyFailure}. */
export interface FailureFacts {
  /** The result's subtype (`error_max_turns` …), when a result arrived. */
  subtype?: string | null;
  /** The result's `api_error_status`. */
  apiErrorStatus?: number | null;
  /** The `error` code of the CLI's last assistant message (`authentication_failed` …). */
  apiError?: string | null;
  /** Text to search for known errors: the result text, the error message, stderr. */
  text?: string;
}

const AUTH_HINT = 'check ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN, or log in with "claude /login")';
const PROVIDER_HINT = 'the Anthropic API failed; smith retries while attempts remain';
const RATE_HINT = 'the Anthropic API rate limit was hit; smith retries after a backoff while attempts remain';

/**
 * Why a Claude Code run failed, as a {@link FailureReason}: first from the result's subtype
 * (`error_max_budget_usd`, `error_max_turns` → `budget_exceeded`;
 * `error_max_structured_output_retries` → `malformed`), then the HTTP status of the API error
 * (401/403 → `auth`; 429 → `rate_limited`; 5xx and 529 → `provider`; other 4xx → `provider`, not
 * retryable), then the assistant `error` code, then known words in the text (`invalid api key`,
 * `rate limit`, `overloaded`, `API Error: 5xx` …).
 *
 * @param facts - what is known about the failure
 * @returns the reason and whether a retry can help; null when nothing matched
 */
export function classifyFailure(facts: FailureFacts): FailureClass | null {
  switch (facts.subtype) {
    case 'error_max_budget_usd':
      return {
        reason: 'budget_exceeded',
        retryable: false,
        hint: 'it reached --max-budget-usd; raise max_budget_usd or the task budget',
      };
    case 'error_max_turns':
      // a turn cap is a budget too; resuming the session with more turns can finish the work
      return { reason: 'budget_exceeded', retryable: true, hint: 'it reached --max-turns; raise max_turns' };
    case 'error_max_structured_output_retries':
      return { reason: 'malformed', retryable: true, hint: 'its answer never matched the JSON schema' };
    default:
      break;
  }
  const status = facts.apiErrorStatus;
  if (typeof status === 'number') {
    if (status === 401 || status === 403) return { reason: 'auth', retryable: false, hint: AUTH_HINT };
    if (status === 429) return { reason: 'rate_limited', retryable: true, hint: RATE_HINT };
    if (status >= 500) return { reason: 'provider', retryable: true, hint: PROVIDER_HINT };
    if (status >= 400) {
      return {
        reason: 'provider',
        retryable: false,
        hint: 'the Anthropic API refused the request; check the model name and the agent settings',
      };
    }
  }
  switch (facts.apiError) {
    case 'authentication_failed':
    case 'oauth_org_not_allowed':
      return { reason: 'auth', retryable: false, hint: AUTH_HINT };
    case 'billing_error':
      return {
        reason: 'auth',
        retryable: false,
        hint: 'the account cannot be billed; check its plan or credits',
      };
    case 'rate_limit':
      return { reason: 'rate_limited', retryable: true, hint: RATE_HINT };
    case 'overloaded':
    case 'server_error':
    case 'unknown':
      return { reason: 'provider', retryable: true, hint: PROVIDER_HINT };
    case 'invalid_request':
    case 'model_not_found':
      return {
        reason: 'provider',
        retryable: false,
        hint: 'the Anthropic API refused the request; check the model name and the agent settings',
      };
    case 'max_output_tokens':
      return { reason: 'provider', retryable: true, hint: 'the answer hit the output token limit' };
    default:
      break;
  }
  const text = facts.text ?? '';
  if (
    /invalid api key|invalid x-api-key|authentication_error|\b401\b|unauthori[sz]ed|oauth token|please run \/login|not logged in/i.test(
      text,
    )
  ) {
    return { reason: 'auth', retryable: false, hint: AUTH_HINT };
  }
  if (/\b429\b|rate.?limit/i.test(text)) return { reason: 'rate_limited', retryable: true, hint: RATE_HINT };
  if (/overloaded|\b5\d\d\b|api_error|internal server error|api error/i.test(text)) {
    return { reason: 'provider', retryable: true, hint: PROVIDER_HINT };
  }
  return null;
}

function isObj(value: unknown): value is Obj {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}

/** Anthropic `usage` → {@link TokenUsage}; null when it is not an object. */
function tokensOf(usage: unknown): TokenUsage | null {
  if (!isObj(usage)) return null;
  return {
    input: count(usage.input_tokens),
    output: count(usage.output_tokens),
    cacheRead: count(usage.cache_read_input_tokens),
    cacheWrite: count(usage.cache_creation_input_tokens),
  };
}

function zeroTokens(): TokenUsage {
  return { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
}

function add(a: TokenUsage, b: TokenUsage): TokenUsage {
  return {
    input: a.input + b.input,
    output: a.output + b.output,
    cacheRead: a.cacheRead + b.cacheRead,
    cacheWrite: a.cacheWrite + b.cacheWrite,
  };
}

/** `a - b` per field, never below 0. */
function subtract(a: TokenUsage, b: TokenUsage): TokenUsage {
  return {
    input: Math.max(0, a.input - b.input),
    output: Math.max(0, a.output - b.output),
    cacheRead: Math.max(0, a.cacheRead - b.cacheRead),
    cacheWrite: Math.max(0, a.cacheWrite - b.cacheWrite),
  };
}

function maxTokens(a: TokenUsage, b: TokenUsage): TokenUsage {
  return {
    input: Math.max(a.input, b.input),
    output: Math.max(a.output, b.output),
    cacheRead: Math.max(a.cacheRead, b.cacheRead),
    cacheWrite: Math.max(a.cacheWrite, b.cacheWrite),
  };
}

function isZero(t: TokenUsage): boolean {
  return t.input === 0 && t.output === 0 && t.cacheRead === 0 && t.cacheWrite === 0;
}

/** The text of a message's or tool result's `content`: a string, or its text blocks joined. */
function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const parts: string[] = [];
  for (const block of content) {
    if (!isObj(block)) continue;
    if (typeof block.text === 'string') parts.push(block.text);
    else if (typeof block.type === 'string') parts.push(`[${block.type}]`);
  }
  return parts.join('\n');
}

function cutText(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}… [cut: ${text.length - max} more characters]` : text;
}

/** A JSON value with every string longer than {@link JSON_STRING_CHARS} cut (depth capped at 20). */
function cutJson(value: unknown, depth = 0): Json {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'string') return cutText(value, JSON_STRING_CHARS);
  if (depth >= 20) return '[too deep]';
  if (Array.isArray(value)) return value.map((v) => cutJson(v, depth + 1));
  if (isObj(value)) {
    const out: { [key: string]: Json } = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = cutJson(v, depth + 1);
    return out;
  }
  return null;
}
