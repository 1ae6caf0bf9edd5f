/**
 * Reads the JSONL stream of `codex exec --json` and turns it into smith's runtime events.
 *
 * The stream's shape is codex's `ThreadEvent` (`codex-rs/exec/src/exec_events.rs` in
 * https://github.com/openai/codex, mapped from the app-server protocol in
 * `codex-rs/exec/src/event_processor_with_jsonl_output.rs`), checked against codex-cli 0.169:
 *
 * - `{"type":"thread.started","thread_id":"<uuid>"}` first;
 * - `{"type":"turn.started"}`;
 * - `{"type":"item.started"|"item.updated"|"item.completed","item":{"id":"item_N","type":…}}` with item
 *   types `agent_message` (`text`), `reasoning` (`text`), `command_execution` (`command`,
 *   `aggregated_output`, `exit_code`, `status`), `file_change` (`changes: [{path, kind}]`, `status`),
 *   `mcp_tool_call` (`server`, `tool`, `arguments`, `result`, `error`, `status`), `collab_tool_call`,
 *   `web_search` (`query`), `todo_list` (`items: [{text, completed}]`), `plan` (`text`) and `error`
 *   (`message`, a warning that does not end the turn);
 * - `{"type":"turn.completed","usage":{input_tokens, cached_input_tokens, output_tokens, …}}` or
 *   `{"type":"turn.failed","error":{"message":…}}` last;
 * - `{"type":"error","message":…}` for stream errors (retries announce themselves as
 *   `Reconnecting... 2/5 (…)` and do not end the turn).
 *
 * The usage of `turn.completed` is the thread's running total (codex reports
 * `ThreadTokenUsage.total`), including the turns of earlier runs of a resumed thread; this parser
 * reports the difference from a known base.
 */
import path from 'node:path';

import type { Json } from '../../core/types.js';
import type { FailureReason, RuntimeEvent, TokenUsage } from '../types.js';

/** Characters of a command's output kept in a `tool_result` event. */
export const TOOL_OUTPUT_CHARS = 4096;

/** Characters of a non-JSON stdout line quoted in a `log` event. */
const LOG_LINE_CHARS = 4096;

/** Token totals as codex reports them (`turn.completed.usage`, rollout `total_token_usage`). */
export interface CodexUsageTotals {
  /** Prompt tokens, cached ones included (OpenAI's `input_tokens`). */
  inputTokens: number;
  /** Prompt tokens read from the provider's cache (a part of `inputTokens`). */
  cachedInputTokens: number;
  /** Prompt tokens written to the provider's cache, when it reports them (a part of `inputTokens`). */
  cacheWriteInputTokens: number;
  /** Completion tokens, reasoning included. */
  outputTokens: number;
}

/** Zero totals. */
export const ZERO_CODEX_USAGE: Readonly<CodexUsageTotals> = Object.freeze({
  inputTokens: 0,
  cachedInputTokens: 0,
  cacheWriteInputTokens: 0,
  outputTokens: 0,
});

/** Options of {@link CodexEventParser}. */
export interface CodexEventParserOptions {
  /** Absolute working directory: `file_change` paths inside it are reported relative to it. */
  workdir: string;
  /** The model, for `usage` events (`agent.model`); codex's JSONL does not name it. */
  model?: string;
  /**
   * The thread's token totals before this run (a resumed thread's last `total_token_usage`), so
   * that `usage` events and {@link CodexEventParser.tokens} count this run only. Default zero.
   */
  baseUsage?: CodexUsageTotals;
  /** Bytes of non-JSON stdout reported as `log` events; the rest is counted and dropped. Default 1 MiB. */
  logLimitBytes?: number;
}

/** How a run of codex ended, as far as its stdout tells. */
export type CodexResult =
  | { kind: 'completed' }
  | { kind: 'failed'; message: string }
  /** No `turn.completed` / `turn.failed` was seen. */
  | { kind: 'none' };

/**
 * A stateful reader of one attempt's `codex exec --json` stdout. Feed it each line with
 * {@link CodexEventParser.line}; it reports runtime events and remembers the session id, the last
 * agent message, the token totals and how the turn ended. It never throws on bad input: lines that
 * are not JSON become `log` events (up to `logLimitBytes`), JSON it does not know becomes `message`
 * events.
 *
 * @example
 * const parser = new CodexEventParser({ workdir: '/repo', model: 'gpt-5-codex' });
 * parser.line('{"type":"thread.started","thread_id":"t1"}', false, emit); // emits {type:'session', id:'t1'}
 */
export class CodexEventParser {
  /** The thread id (`thread.started`), once seen. */
  sessionId: string | null = null;
  /** The text of the last `agent_message` item (the final answer once the turn completed). */
  lastMessage: string | null = null;
  /** The last stream error (`error` event or `error` item), for failure messages. */
  lastError: string | null = null;
  /** How the turn ended. */
  result: CodexResult = { kind: 'none' };
  /** Whether the last event was codex waiting for the network (`Reconnecting... waiting for network`). */
  reconnecting = false;
  /** Bytes of non-JSON output that were not reported as `log` events. */
  droppedLogBytes = 0;

  private readonly workdirs: string[];
  private readonly model: string | undefined;
  private readonly logLimitBytes: number;
  private loggedBytes = 0;
  /** Totals as of the last `usage` event (starts at the base). */
  private reported: CodexUsageTotals;
  private readonly base: CodexUsageTotals;
  private sawUsage = false;
  /** Tool items whose `tool_use` was reported, by item id. */
  private readonly openTools = new Set<string>();

  /** @param options - working directory, model, base usage and log budget */
  constructor(options: CodexEventParserOptions) {
    this.workdirs = [path.resolve(options.workdir)];
    this.model = options.model;
    this.logLimitBytes = options.logLimitBytes ?? 1_048_576;
    this.base = { ...(options.baseUsage ?? ZERO_CODEX_USAGE) };
    this.reported = { ...this.base };
  }

  /**
   * Add another spelling of the working directory (its real path, when it goes through a symlink),
   * so that `file_change` paths under either are made relative.
   *
   * @param dir - an absolute directory
   */
  addWorkdirAlias(dir: string): void {
    const resolved = path.resolve(dir);
    if (!this.workdirs.includes(resolved)) this.workdirs.push(resolved);
  }

  /**
   * The tokens this run used (the last totals less the base), or null when codex reported none.
   *
   * @returns token counts per {@link TokenUsage} (`input` excludes cached input)
   */
  tokens(): TokenUsage | null {
    return this.sawUsage ? toTokenUsage(this.reported, this.base) : null;
  }

  /**
   * Read one stdout line.
   *
   * @param text - the line, without its newline
   * @param truncated - true when the line was longer than the line cap and arrives cut
   * @param emit - reports one runtime event
   * @returns true when the line ended the turn (`turn.completed` or `turn.failed`)
   */
  line(text: string, truncated: boolean, emit: (event: RuntimeEvent) => void): boolean {
    const trimmed = text.trim();
    if (trimmed === '') return false;
    if (truncated || !trimmed.startsWith('{')) {
      this.log(trimmed, truncated, emit);
      return false;
    }
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch {
      this.log(trimmed, false, emit);
      return false;
    }
    if (!isObject(value) || typeof value.type !== 'string') {
      emit({ type: 'message', data: value as Json });
      return false;
    }
    this.reconnecting = false;
    switch (value.type) {
      case 'thread.started': {
        const id = value.thread_id;
        if (typeof id === 'string' && id !== '') {
          this.sessionId = id;
          emit({ type: 'session', id });
        } else emit({ type: 'message', data: value as Json });
        return false;
      }
      case 'turn.started':
      case 'item.plan.delta':
        return false;
      case 'turn.completed':
        this.onUsage(value.usage, emit);
        this.result = { kind: 'completed' };
        return true;
      case 'turn.failed': {
        const error = isObject(value.error) ? value.error.message : undefined;
        const message = typeof error === 'string' && error !== '' ? error : (this.lastError ?? 'turn failed');
        this.result = { kind: 'failed', message };
        this.onUsage(value.usage, emit);
        return true;
      }
      case 'error': {
        const message = typeof value.message === 'string' ? value.message : JSON.stringify(value);
        this.lastError = message;
        this.reconnecting = /waiting for network/i.test(message);
        emit({ type: 'log', stream: 'stdout', line: `codex error: ${message}` });
        return false;
      }
      case 'item.started':
      case 'item.updated':
      case 'item.completed':
        if (!isObject(value.item) || typeof value.item.type !== 'string') {
          emit({ type: 'message', data: value as Json });
          return false;
        }
        this.onItem(value.type, value.item, emit);
        return false;
      default:
        emit({ type: 'message', data: value as Json });
        return false;
    }
  }

  private log(text: string, truncated: boolean, emit: (event: RuntimeEvent) => void): void {
    const bytes = Buffer.byteLength(text);
    if (this.loggedBytes >= this.logLimitBytes) {
      this.droppedLogBytes += bytes;
      return;
    }
    this.loggedBytes += bytes;
    let line = text.length > LOG_LINE_CHARS ? `${text.slice(0, LOG_LINE_CHARS)}…` : text;
    if (truncated) line += ' [line cut: longer than the line cap]';
    emit({ type: 'log', stream: 'stdout', line });
  }

  /**
   * Take token totals learnt elsewhere (the rollout file of a turn that failed or was ended before
   * `turn.completed`): reports the tokens not reported yet as a `usage` event.
   *
   * @param totals - the thread's totals
   * @param emit - reports the `usage` event
   */
  observeTotals(totals: CodexUsageTotals, emit: (event: RuntimeEvent) => void): void {
    this.applyTotals(totals, emit);
  }

  private onUsage(raw: unknown, emit: (event: RuntimeEvent) => void): void {
    const totals = readUsageTotals(raw);
    if (totals === null) return;
    this.applyTotals(totals, emit);
  }

  private applyTotals(totals: CodexUsageTotals, emit: (event: RuntimeEvent) => void): void {
    this.sawUsage = true;
    const delta = toTokenUsage(totals, this.reported);
    // A total below what was reported (a thread whose history was compacted away) is a new base.
    this.reported = {
      inputTokens: Math.max(totals.inputTokens, this.reported.inputTokens),
      cachedInputTokens: Math.max(totals.cachedInputTokens, this.reported.cachedInputTokens),
      cacheWriteInputTokens: Math.max(totals.cacheWriteInputTokens, this.reported.cacheWriteInputTokens),
      outputTokens: Math.max(totals.outputTokens, this.reported.outputTokens),
    };
    if (delta.input + delta.output + delta.cacheRead + delta.cacheWrite === 0) return;
    const event: RuntimeEvent = { type: 'usage', tokens: delta };
    if (this.model !== undefined) event.model = this.model;
    emit(event);
  }

  private onItem(
    phase: 'item.started' | 'item.updated' | 'item.completed',
    item: Record<string, unknown>,
    emit: (event: RuntimeEvent) => void,
  ): void {
    const id = typeof item.id === 'string' ? item.id : undefined;
    const done = phase === 'item.completed';
    switch (item.type) {
      case 'agent_message': {
        if (!done || typeof item.text !== 'string') return;
        this.lastMessage = item.text;
        emit({ type: 'text', text: item.text });
        return;
      }
      case 'reasoning':
      case 'plan': {
        if (!done || typeof item.text !== 'string') return;
        emit({ type: 'message', data: { type: item.type, text: item.text } });
        return;
      }
      case 'command_execution': {
        const command = typeof item.command === 'string' ? item.command : '';
        this.openTool(id, 'shell', { command }, emit);
        if (!done) return;
        const exitCode = typeof item.exit_code === 'number' ? item.exit_code : null;
        const output = typeof item.aggregated_output === 'string' ? item.aggregated_output : '';
        const isError = item.status !== 'completed' || (exitCode !== null && exitCode !== 0);
        let text = cut(output);
        if (item.status === 'declined') text = text === '' ? 'declined' : text;
        else if (exitCode !== null && exitCode !== 0) text = `exit code ${exitCode}\n${text}`;
        this.closeTool(id, isError, text, emit);
        return;
      }
      case 'file_change': {
        const changes = Array.isArray(item.changes) ? item.changes.filter(isObject) : [];
        const paths = changes.flatMap((c) => (typeof c.path === 'string' ? [this.relative(c.path)] : []));
        this.openTool(id, 'apply_patch', { paths }, emit);
        if (!done) return;
        const failed = item.status !== 'completed';
        this.closeTool(id, failed, failed ? `patch failed: ${paths.join(', ')}` : paths.join('\n'), emit);
        if (failed) return;
        for (const change of changes) {
          if (typeof change.path !== 'string') continue;
          const kind = change.kind === 'add' || change.kind === 'delete' ? change.kind : 'update';
          emit({ type: 'file_change', path: this.relative(change.path), kind });
        }
        return;
      }
      case 'mcp_tool_call': {
        const server = typeof item.server === 'string' ? item.server : 'mcp';
        const tool = typeof item.tool === 'string' ? item.tool : 'tool';
        this.openTool(id, `mcp__${server}__${tool}`, (item.arguments ?? null) as Json, emit);
        if (!done) return;
        const error =
          isObject(item.error) && typeof item.error.message === 'string' ? item.error.message : null;
        const failed = item.status === 'failed' || error !== null;
        this.closeTool(id, failed, error ?? mcpResultText(item.result), emit);
        return;
      }
      case 'collab_tool_call': {
        const tool = typeof item.tool === 'string' ? item.tool : 'agent';
        const input: Json = typeof item.prompt === 'string' ? { prompt: item.prompt } : null;
        this.openTool(id, `collab:${tool}`, input, emit);
        if (!done) return;
        this.closeTool(id, item.status === 'failed', '', emit);
        return;
      }
      case 'web_search': {
        const query = typeof item.query === 'string' ? item.query : '';
        this.openTool(id, 'web_search', { query }, emit);
        if (done) this.closeTool(id, false, '', emit);
        return;
      }
      case 'todo_list': {
        const items = Array.isArray(item.items) ? item.items.filter(isObject) : [];
        if (items.length === 0) return;
        const finished = items.filter((t) => t.completed === true).length;
        const next = items.find((t) => t.completed !== true);
        const label = next !== undefined && typeof next.text === 'string' ? `: ${next.text}` : '';
        emit({
          type: 'progress',
          pct: Math.round((finished / items.length) * 100),
          message: `${finished}/${items.length} steps done${label}`,
        });
        return;
      }
      case 'error': {
        if (!done) return;
        const message = typeof item.message === 'string' ? item.message : JSON.stringify(item);
        emit({ type: 'log', stream: 'stdout', line: `codex warning: ${message}` });
        return;
      }
      default:
        emit({ type: 'message', data: { type: phase, item } as Json });
    }
  }

  private openTool(
    id: string | undefined,
    name: string,
    input: Json,
    emit: (event: RuntimeEvent) => void,
  ): void {
    if (id !== undefined) {
      if (this.openTools.has(id)) return;
      this.openTools.add(id);
    }
    const event: RuntimeEvent = { type: 'tool_use', name, input };
    if (id !== undefined) event.id = id;
    emit(event);
  }

  private closeTool(
    id: string | undefined,
    isError: boolean,
    output: string,
    emit: (event: RuntimeEvent) => void,
  ): void {
    if (id !== undefined) this.openTools.delete(id);
    const event: RuntimeEvent = { type: 'tool_result', isError, output: cut(output) };
    if (id !== undefined) event.id = id;
    emit(event);
  }

  private relative(file: string): string {
    if (!path.isAbsolute(file)) return file;
    for (const dir of this.workdirs) {
      const rel = path.relative(dir, file);
      if (rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel)) return rel;
    }
    return file;
  }
}

/**
 * Read codex token totals from a `usage` / `total_token_usage` object (snake_case, as codex writes
 * them). Missing fields count 0.
 *
 * @param raw - the object
 * @returns the totals, or null when `raw` is not an object with at least one valid count
 */
export function readUsageTotals(raw: unknown): CodexUsageTotals | null {
  if (!isObject(raw)) return null;
  const count = (v: unknown): number | null =>
    typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : null;
  const input = count(raw.input_tokens);
  const cached = count(raw.cached_input_tokens);
  const cacheWrite = count(raw.cache_write_input_tokens);
  const output = count(raw.output_tokens);
  if (input === null && cached === null && output === null) return null;
  return {
    inputTokens: input ?? 0,
    cachedInputTokens: cached ?? 0,
    cacheWriteInputTokens: cacheWrite ?? 0,
    outputTokens: output ?? 0,
  };
}

/**
 * The tokens between two codex totals, as smith counts them: `input` is the prompt tokens less the
 * cached ones read and written (OpenAI counts those inside `input_tokens`), so that a price table
 * prices each token once. Negative differences count 0.
 *
 * @param now - the later totals
 * @param before - the earlier totals
 * @returns the difference as {@link TokenUsage}
 */
export function toTokenUsage(now: CodexUsageTotals, before: CodexUsageTotals): TokenUsage {
  const diff = (a: number, b: number): number => Math.max(0, a - b);
  const cacheRead = diff(now.cachedInputTokens, before.cachedInputTokens);
  const cacheWrite = diff(now.cacheWriteInputTokens, before.cacheWriteInputTokens);
  const input = Math.max(0, diff(now.inputTokens, before.inputTokens) - cacheRead - cacheWrite);
  return { input, output: diff(now.outputTokens, before.outputTokens), cacheRead, cacheWrite };
}

/** How a codex failure message is classified. */
export interface CodexFailureClass {
  reason: FailureReason;
  retryable: boolean;
}

/**
 * Classify the message of a failed codex turn (`turn.failed` / `error`), as codex words them
 * (codex-cli 0.169 against an OpenAI Responses endpoint):
 *
 * - `unexpected status 401 Unauthorized: …`, `Missing environment variable: \`OPENAI_API_KEY\``,
 *   403, "invalid api key", "not logged in" → `auth`, not retryable;
 * - `exceeded retry limit, last status: 429 Too Many Requests`, "rate limit", "usage limit",
 *   "quota" → `rate_limited`;
 * - `unexpected status 5xx …`, "We’re currently experiencing high demand" (codex's words for a 500),
 *   `stream disconnected before completion: …`, "Reconnecting… waiting for network",
 *   "server_error", "overloaded" → `provider`;
 * - `unexpected status 400/404/422 …` or an `invalid_request_error` body → `provider`, not
 *   retryable (the same request fails again);
 * - anything else → `provider` (a turn fails on the model's side).
 *
 * @param message - the error text
 * @returns the reason code and whether retrying can help
 */
export function classifyCodexError(message: string): CodexFailureClass {
  const m = message.toLowerCase();
  const status = /\b(?:status|last status:?)\s+(\d{3})\b/.exec(m)?.[1];
  const code = status === undefined ? null : Number(status);
  if (
    code === 401 ||
    code === 403 ||
    /unauthori[sz]ed|invalid[_ ]api[_ ]key|incorrect api key|missing environment variable|not logged in|no codex credentials|authentication/.test(
      m,
    )
  ) {
    return { reason: 'auth', retryable: false };
  }
  if (code === 429 || /too many requests|rate[_ ]limit|usage limit|quota/.test(m)) {
    return { reason: 'rate_limited', retryable: true };
  }
  if (code !== null && code >= 500) return { reason: 'provider', retryable: true };
  if (code === 400 || code === 404 || code === 422 || /invalid_request_error/.test(m)) {
    return { reason: 'provider', retryable: false };
  }
  return { reason: 'provider', retryable: true };
}

function mcpResultText(result: unknown): string {
  if (!isObject(result)) return '';
  const content = Array.isArray(result.content) ? result.content : [];
  const texts = content.flatMap((c) => (isObject(c) && typeof c.text === 'string' ? [c.text] : []));
  if (texts.length > 0) return texts.join('\n');
  if (result.structured_content !== undefined && result.structured_content !== null) {
    return JSON.stringify(result.structured_content);
  }
  return '';
}

function cut(text: string): string {
  return text.length > TOOL_OUTPUT_CHARS ? `${text.slice(0, TOOL_OUTPUT_CHARS)}… (cut)` : text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
