/**
 * The `process` runtime's stdout protocol: each line is either one NDJSON event
 * (`progress`, `log`, `artifact`, `message`, `result`, `usage`, `session`) or plain text.
 */
import type { Json } from '../../core/types.js';
import type { RuntimeEvent } from '../types.js';

/** What one stdout line of an agent means. */
export type AgentLine =
  /** An event to report as is. */
  | { kind: 'event'; event: RuntimeEvent }
  /** The attempt's result; `failed` when the line said `"status": "failed"`. */
  | { kind: 'result'; output: string; failed: boolean; error: string | null }
  /** Anything else: plain text, reported as a `log` line. */
  | { kind: 'text' };

const TEXT: AgentLine = { kind: 'text' };

/**
 * Whether a line's bytes may hold a JSON object (first non-blank byte is `{`): a cheap test that
 * spares decoding and parsing for plain-text lines.
 *
 * @param bytes - the line, without its terminator
 * @returns true when the first byte that is not a space, tab or CR is `{`
 */
export function mayBeJsonObject(bytes: Uint8Array): boolean {
  for (const b of bytes) {
    if (b === 0x20 || b === 0x09 || b === 0x0d) continue;
    return b === 0x7b;
  }
  return false;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Classify one stdout line of an agent.
 *
 * A line is an event when it parses as a JSON object whose `type` is one of:
 * - `progress`: optional `pct` (finite number, clamped to 0..100), optional `message` (string);
 * - `log`: `message` or `line` (string), reported as a stdout log line;
 * - `artifact`: `path` (non-empty string);
 * - `message`: `data` (any JSON); without `data`, the object minus its `type` is the data;
 * - `result`: `output` (a string, or any JSON, which is stringified; absent = `""`), optional
 *   `status: "failed"` with `error` (string) to report failure explicitly;
 * - `usage`: spend since the previous `usage` line: `tokens` (`{input, output, cache_read,
 *   cache_write}`, each a whole number >= 0, missing ones 0), optional `cost_usd` (number >= 0) and
 *   `model` (string). Budgets count it; without `cost_usd` the config's price table prices it;
 * - `session`: `id` (non-empty string), the agent's own session id, handed back to the next
 *   attempt of the task in its environment as `SMITH_RESUME_SESSION`.
 *
 * A line whose fields do not have these types is plain text.
 *
 * @param text - the line, decoded, without its terminator
 * @returns what the line means
 */
export function parseAgentLine(text: string): AgentLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return TEXT;
  }
  if (!isObject(value) || typeof value.type !== 'string') return TEXT;
  switch (value.type) {
    case 'progress': {
      const { pct, message } = value;
      if (pct !== undefined && (typeof pct !== 'number' || !Number.isFinite(pct))) return TEXT;
      if (message !== undefined && typeof message !== 'string') return TEXT;
      const event: RuntimeEvent = { type: 'progress' };
      if (pct !== undefined) event.pct = Math.min(100, Math.max(0, pct));
      if (message !== undefined) event.message = message;
      return { kind: 'event', event };
    }
    case 'log': {
      const line = typeof value.message === 'string' ? value.message : value.line;
      if (typeof line !== 'string') return TEXT;
      return { kind: 'event', event: { type: 'log', stream: 'stdout', line: sanitizeLine(line) } };
    }
    case 'artifact': {
      const { path } = value;
      if (typeof path !== 'string' || path === '') return TEXT;
      return { kind: 'event', event: { type: 'artifact', path } };
    }
    case 'message': {
      let data: Json;
      if ('data' in value) {
        data = value.data as Json;
      } else {
        const { type: _type, ...rest } = value;
        data = rest as Json;
      }
      return { kind: 'event', event: { type: 'message', data } };
    }
    case 'result': {
      const { output, status, error } = value;
      if (status !== undefined && status !== 'failed' && status !== 'succeeded') return TEXT;
      const text = output === undefined ? '' : typeof output === 'string' ? output : JSON.stringify(output);
      const failed = status === 'failed';
      return {
        kind: 'result',
        output: text,
        failed,
        error: failed ? (typeof error === 'string' && error !== '' ? error : 'agent reported failure') : null,
      };
    }
    case 'usage': {
      const { tokens, cost_usd: cost, model } = value;
      if (!isObject(tokens)) return TEXT;
      const count = (v: unknown): number | null =>
        v === undefined ? 0 : typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
      const input = count(tokens.input);
      const output = count(tokens.output);
      const cacheRead = count(tokens.cache_read);
      const cacheWrite = count(tokens.cache_write);
      if (input === null || output === null || cacheRead === null || cacheWrite === null) return TEXT;
      if (cost !== undefined && (typeof cost !== 'number' || !Number.isFinite(cost) || cost < 0)) return TEXT;
      if (model !== undefined && typeof model !== 'string') return TEXT;
      const event: RuntimeEvent = { type: 'usage', tokens: { input, output, cacheRead, cacheWrite } };
      if (cost !== undefined) event.costUsd = cost;
      if (model !== undefined) event.model = model;
      return { kind: 'event', event };
    }
    case 'session': {
      const { id } = value;
      if (typeof id !== 'string' || id === '') return TEXT;
      return { kind: 'event', event: { type: 'session', id } };
    }
    default:
      return TEXT;
  }
}

/**
 * Make a line of agent output safe to store and show: removes ANSI escape sequences (CSI and OSC),
 * NUL and every other C0/C1 control character except tab.
 *
 * @param text - decoded text (invalid UTF-8 already replaced by U+FFFD)
 * @returns the text without control characters
 */
export function sanitizeLine(text: string): string {
  let clean = true;
  for (let i = 0; i < text.length; i++) {
    if (isControl(text.charCodeAt(i))) {
      clean = false;
      break;
    }
  }
  if (clean) return text;

  let out = '';
  let runStart = 0;
  let i = 0;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    if (!isControl(code)) {
      i++;
      continue;
    }
    out += text.slice(runStart, i);
    i = code === 0x1b ? skipEscape(text, i) : i + 1;
    runStart = i;
  }
  return out + text.slice(runStart);
}

function isControl(code: number): boolean {
  return (code < 0x20 && code !== 0x09) || (code >= 0x7f && code <= 0x9f);
}

/** Index just past the escape sequence starting at `i` (an ESC). */
function skipEscape(text: string, i: number): number {
  const next = text.charCodeAt(i + 1);
  if (next === 0x5b /* [ : CSI, ends with a byte in @..~ */) {
    let j = i + 2;
    while (j < text.length) {
      const c = text.charCodeAt(j);
      if (c >= 0x40 && c <= 0x7e) return j + 1;
      if (c < 0x20 || c > 0x3f) return j; // not a parameter or intermediate byte: malformed, stop
      j++;
    }
    return j;
  }
  if (next === 0x5d /* ] : OSC, ends with BEL or ESC \ */) {
    let j = i + 2;
    while (j < text.length) {
      const c = text.charCodeAt(j);
      if (c === 0x07) return j + 1;
      if (c === 0x1b) return text.charCodeAt(j + 1) === 0x5c ? j + 2 : j;
      j++;
    }
    return j;
  }
  return i + 1;
}
