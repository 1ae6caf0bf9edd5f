/**
 * The `http` runtime: an agent that is a remote worker. Each attempt POSTs the task JSON to the
 * agent's `url`; the worker answers with one JSON object, or streams NDJSON events ending with a
 * `result` line. Tries are retried with exponential backoff and guarded by a circuit breaker per
 * worker URL (cockatiel 3). The worker protocol is specified in `docs/runtimes/http.md`.
 */
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  TimeoutStrategy,
  circuitBreaker,
  handleWhen,
  noJitterGenerator,
  retry,
  timeout,
  wrap,
} from 'cockatiel';
import type { CircuitBreakerPolicy, IPolicy } from 'cockatiel';

import { SmithError } from '../../core/errors.js';
import type { AgentSpec, Json } from '../../core/types.js';
import { parseAgentLine, sanitizeLine } from '../process/agent-line.js';
import type {
  AgentRuntime,
  AttemptContext,
  AttemptHandle,
  AttemptOutcome,
  FailureReason,
  RuntimeEvent,
  TokenUsage,
} from '../types.js';

/**
 * HTTP statuses a try is retried on: 408 Request Timeout, 429 Too Many Requests, 500, 502, 503 and
 * 504. 500 is retried because every try of one attempt carries the same `Idempotency-Key`, so a
 * worker that de-duplicates by it makes a repeat safe (the same choice as Stripe's and the AI SDK's
 * clients). Other 4xx statuses are never retried: the same request would fail the same way.
 */
export const HTTP_RETRY_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/** Retries after the first try of an attempt (so at most 4 requests). */
export const HTTP_DEFAULT_RETRIES = 3;
/** First retry delay in ms; each next one doubles (100, 200, 400 ms), no jitter. */
export const HTTP_DEFAULT_INITIAL_DELAY_MS = 100;
/** Longest retry delay in ms. */
export const HTTP_DEFAULT_MAX_DELAY_MS = 400;
/** Consecutive failed attempts to one worker URL that open its circuit breaker. */
export const HTTP_DEFAULT_BREAKER_THRESHOLD = 5;
/** ms an open breaker waits before it lets one trial attempt through (half-open). */
export const HTTP_DEFAULT_HALF_OPEN_AFTER_MS = 10_000;
/** Largest response body (JSON) or NDJSON line accepted, in bytes (16 MiB). */
export const HTTP_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** Characters of an error response body quoted in the attempt's error. */
const SNIPPET_CHARS = 300;

/** Tuning of {@link HttpRuntime}; every field has the documented default. */
export interface HttpRuntimeOptions {
  /** Retries after the first try. Default {@link HTTP_DEFAULT_RETRIES} (3). */
  retries?: number;
  /** First retry delay in ms. Default {@link HTTP_DEFAULT_INITIAL_DELAY_MS} (100). */
  initialDelayMs?: number;
  /** Longest retry delay in ms. Default {@link HTTP_DEFAULT_MAX_DELAY_MS} (400). */
  maxDelayMs?: number;
  /** Consecutive failed attempts that open a URL's breaker. Default {@link HTTP_DEFAULT_BREAKER_THRESHOLD} (5). */
  breakerThreshold?: number;
  /** ms before an open breaker lets a trial attempt through. Default {@link HTTP_DEFAULT_HALF_OPEN_AFTER_MS} (10 000). */
  halfOpenAfterMs?: number;
}

/** One worker URL's circuit breaker and what it needs to explain itself. */
interface BreakerEntry {
  policy: CircuitBreakerPolicy;
  /** `Date.now()` when it last opened. */
  openedAt: number;
  /** Why the attempt that opened it failed. */
  lastError: string;
}

/** The attempt was ended by smith (cancel or timeout), not by the worker. */
class AttemptStoppedError extends Error {
  constructor(readonly status: 'canceled' | 'timed_out') {
    super(status);
    this.name = 'AttemptStoppedError';
  }
}

/** The worker answered a non-2xx status. */
class WorkerStatusError extends Error {
  constructor(
    readonly status: number,
    readonly snippet: string,
  ) {
    super(`HTTP ${status}${snippet === '' ? '' : `: ${snippet}`}`);
    this.name = 'WorkerStatusError';
  }
}

/** The worker could not be reached, or its connection broke before the answer was read. */
class WorkerNetworkError extends Error {
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'WorkerNetworkError';
  }
}

/** The worker's answer could not be understood (or its stream broke after events were reported). */
class WorkerAnswerError extends Error {
  constructor(
    message: string,
    readonly reason: FailureReason,
  ) {
    super(message);
    this.name = 'WorkerAnswerError';
  }
}

/** What a worker answered, once read. */
interface WorkerAnswer {
  output: string;
  failed: boolean;
  error: string | null;
  tokens?: TokenUsage;
  model?: string;
  costUsd?: number;
  sessionId?: string;
  bytes: number;
}

/** Per-attempt state the tries share. */
interface AttemptState {
  url: string;
  body: string;
  headers: Headers;
  tries: number;
  stopped: { status: 'canceled' | 'timed_out'; error: string } | null;
  /** Whether a `usage` event was reported from the worker's own events. */
  usageReported: boolean;
  emit: (event: RuntimeEvent) => void;
}

/**
 * Whether a failed try is worth another: a network error or a status in {@link HTTP_RETRY_STATUSES}.
 *
 * @param err - what the try threw
 * @returns true to retry
 */
function isRetryableTry(err: Error): boolean {
  if (err instanceof WorkerStatusError) return HTTP_RETRY_STATUSES.has(err.status);
  return err instanceof WorkerNetworkError;
}

/**
 * Runs agents that are remote HTTP workers (`runtime: http`).
 *
 * Each attempt POSTs `{...task, attempt_id}` to `agent.url` with `content-type: application/json`,
 * `Idempotency-Key: <attempt id>` (the same on every try of the attempt, so the worker can
 * de-duplicate), and the agent's `headers`. A try that fails with a network error or a status in
 * {@link HTTP_RETRY_STATUSES} is retried up to 3 times, 100, 200 and 400 ms apart (cockatiel
 * `ExponentialBackoff` with `noJitterGenerator`). The whole attempt runs under the attempt's
 * timeout (cockatiel `timeout`, cooperative: the request is aborted and its connection closed) and
 * through a circuit breaker per worker URL kept on this instance: after 5 consecutive failed
 * attempts (each counted once, after its retries) the breaker opens, and attempts fail at once with
 * reason `circuit_open` until 10 s have passed; then one trial attempt goes through and its result
 * closes or re-opens the breaker. Canceled attempts do not count as failures.
 *
 * Not supported: pause and resume (a remote worker cannot be stopped from here; they do nothing,
 * and the timeout clock keeps running). `pid` is null.
 *
 * @see docs/runtimes/http.md for the worker protocol (request, JSON answer, NDJSON stream).
 * @see https://github.com/connor4312/cockatiel#readme for the retry, timeout and breaker policies.
 */
export class HttpRuntime implements AgentRuntime {
  readonly kind = 'http';
  private readonly breakers = new Map<string, BreakerEntry>();
  private readonly retries: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly breakerThreshold: number;
  private readonly halfOpenAfterMs: number;

  /** @param options - retry and breaker tuning (defaults as documented on {@link HttpRuntimeOptions}) */
  constructor(options: HttpRuntimeOptions = {}) {
    this.retries = options.retries ?? HTTP_DEFAULT_RETRIES;
    this.initialDelayMs = options.initialDelayMs ?? HTTP_DEFAULT_INITIAL_DELAY_MS;
    this.maxDelayMs = options.maxDelayMs ?? HTTP_DEFAULT_MAX_DELAY_MS;
    this.breakerThreshold = options.breakerThreshold ?? HTTP_DEFAULT_BREAKER_THRESHOLD;
    this.halfOpenAfterMs = options.halfOpenAfterMs ?? HTTP_DEFAULT_HALF_OPEN_AFTER_MS;
  }

  /**
   * Check that the agent has a valid http(s) `url` and string `headers`.
   *
   * @param agent - the agent to check
   * @throws SmithError `CONFIG_INVALID` naming the agent and the bad field
   */
  check(agent: AgentSpec): Promise<void> {
    try {
      workerUrl(agent);
      for (const [name, value] of Object.entries(agent.headers ?? {})) {
        if (typeof value !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
          throw new SmithError(
            'CONFIG_INVALID',
            `agent "${agent.name}" (runtime http): header "${name}" is not a valid HTTP header (name: text value); fix headers: in its definition`,
            { context: { agent: agent.name, field: 'headers' } },
          );
        }
      }
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /**
   * Start one attempt: POST the task to the worker and read its answer (see the class summary).
   *
   * Events: the events of the JSON answer's `events` list in order, then a `session` event
   * (`session_id`) and a `usage` event (`usage`, `cost_usd`) when the answer has them; or, for an
   * NDJSON answer, each line's event as it arrives (a line that is not an event is a `log` line); a
   * `log` line before each retry.
   *
   * Outcome: `succeeded` with the worker's output, or `failed` with the worker's `error` when it
   * said `status: "failed"`. Failures: a non-2xx status after retries says `HTTP <status>: <body>`
   * with reason `provider` (5xx, 408), `rate_limited` (429), `auth` (401, 403; not retryable) or
   * `bad_response` (other 4xx); an answer that is not the protocol's JSON is `bad_response`; an
   * unreachable worker is `provider`; an open breaker is `circuit_open`. Timeout ends it
   * `timed_out`, cancel `canceled`.
   *
   * @param ctx - the attempt
   * @returns the running attempt (pid null); never throws
   */
  start(ctx: AttemptContext): AttemptHandle {
    const ac = new AbortController();
    let url: string;
    let headers: Headers;
    try {
      url = workerUrl(ctx.agent);
      headers = new Headers(ctx.agent.headers ?? {});
    } catch (err) {
      const message =
        err instanceof SmithError
          ? err.message
          : `agent "${ctx.agent.name}" (runtime http): invalid headers: ${(err as Error).message}; fix headers: in its definition`;
      return settled(failure(message, 'bad_response', 0, false));
    }
    if (!headers.has('accept')) headers.set('accept', 'application/json, application/x-ndjson');
    headers.set('content-type', 'application/json');
    headers.set('idempotency-key', ctx.attemptId);
    const state: AttemptState = {
      url,
      body: JSON.stringify({ ...ctx.input, attempt_id: ctx.attemptId }),
      headers,
      tries: 0,
      stopped: null,
      usageReported: false,
      emit: (event) => ctx.onEvent(event),
    };
    let finished = false;

    const breaker = this.breakerFor(url);
    const retryPolicy = retry(handleWhen(isRetryableTry), {
      maxAttempts: this.retries,
      backoff: new ExponentialBackoff({
        generator: noJitterGenerator,
        initialDelay: this.initialDelayMs,
        maxDelay: this.maxDelayMs,
        exponent: 2,
      }),
    });
    retryPolicy.onRetry((r) => {
      const why = 'error' in r ? r.error.message : 'unexpected result';
      state.emit({
        type: 'log',
        stream: 'stderr',
        line: `${why} from ${url}; try ${state.tries + 1} of ${this.retries + 1} in ${r.delay} ms`,
      });
    });
    const policies: IPolicy[] = [breaker.policy, retryPolicy];
    if (ctx.timeoutMs !== null) {
      const limit = ctx.timeoutMs;
      const timeoutPolicy = timeout(limit, TimeoutStrategy.Cooperative);
      timeoutPolicy.onTimeout(() => {
        if (state.stopped === null && !finished) {
          state.stopped = { status: 'timed_out', error: `timed out after ${limit} ms (POST ${url})` };
        }
      });
      policies.unshift(timeoutPolicy);
    }
    const policy = wrap(...policies);

    const done = policy
      .execute(({ signal }) => tryOnce(state, signal), ac.signal)
      .then(
        (answer) => succeed(state, answer),
        (err: unknown) => this.fail(state, breaker, err),
      )
      .catch((err: unknown): AttemptOutcome =>
        failure(`could not read the worker's answer: ${String(err)}`, 'bad_response', 0),
      )
      .finally(() => {
        finished = true;
      });

    return {
      pid: null,
      done,
      cancel: (reason: string) => {
        if (finished || state.stopped !== null) return;
        state.stopped = { status: 'canceled', error: reason };
        ac.abort(new Error(reason));
      },
      // A remote worker cannot be stopped from here: pause and resume do nothing (documented).
      pause: () => undefined,
      resume: () => undefined,
    };
  }

  /** The breaker of one worker URL, created on first use and shared by its attempts. */
  private breakerFor(url: string): BreakerEntry {
    const existing = this.breakers.get(url);
    if (existing) return existing;
    // A canceled attempt says nothing about the worker's health: it is not counted.
    const counted = handleWhen((err) => !(err instanceof AttemptStoppedError && err.status === 'canceled'));
    const policy = circuitBreaker(counted, {
      halfOpenAfter: this.halfOpenAfterMs,
      breaker: new ConsecutiveBreaker(this.breakerThreshold),
    });
    const entry: BreakerEntry = { policy, openedAt: 0, lastError: '' };
    policy.onBreak((reason) => {
      entry.openedAt = Date.now();
      if ('error' in reason) entry.lastError = describeError(reason.error);
    });
    this.breakers.set(url, entry);
    return entry;
  }

  /** The outcome of an attempt whose policy chain threw. */
  private fail(state: AttemptState, breaker: BreakerEntry, err: unknown): AttemptOutcome {
    const where = `POST ${state.url}`;
    const tries = state.tries === 1 ? '1 try' : `${state.tries} tries`;
    if (state.stopped !== null) {
      return { ...base(0), status: state.stopped.status, error: state.stopped.error };
    }
    if (err instanceof BrokenCircuitError) {
      const openFor = Math.max(0, breaker.openedAt + this.halfOpenAfterMs - Date.now());
      const when =
        breaker.policy.state === CircuitState.HalfOpen
          ? 'a trial attempt is running now'
          : `it lets one trial attempt through at ${new Date(breaker.openedAt + this.halfOpenAfterMs).toISOString()} (in ${Math.ceil(openFor / 1000)} s)`;
      const last = breaker.lastError === '' ? '' : ` (last: ${breaker.lastError})`;
      return failure(
        `circuit breaker for ${state.url} is open after ${this.breakerThreshold} consecutive failed attempts${last}; ${when}. Check the worker, or wait and retry the task`,
        'circuit_open',
        0,
      );
    }
    if (err instanceof WorkerStatusError) {
      const { reason, retryable } = statusReason(err.status);
      const hint = reason === 'auth' ? '; check the credentials in the agent\'s "headers"' : '';
      return failure(`${err.message} (${where}, ${tries})${hint}`, reason, 0, retryable);
    }
    if (err instanceof WorkerNetworkError) {
      return failure(`${err.message} (${where}, ${tries}); is the worker running?`, 'provider', 0);
    }
    if (err instanceof WorkerAnswerError) {
      return failure(`${err.message} (${where})`, err.reason, 0);
    }
    return failure(`${describeError(err)} (${where})`, 'provider', 0);
  }
}

/** How a final non-2xx status is reported. */
function statusReason(status: number): { reason: FailureReason; retryable?: boolean } {
  if (status === 401 || status === 403) return { reason: 'auth', retryable: false };
  if (status === 429) return { reason: 'rate_limited' };
  if (status >= 500 || status === 408) return { reason: 'provider' };
  return { reason: 'bad_response' };
}

/**
 * The agent's worker URL, validated.
 *
 * @throws SmithError `CONFIG_INVALID` when it is missing or not http(s)
 */
function workerUrl(agent: AgentSpec): string {
  const raw = agent.url;
  if (raw === undefined || raw === '') {
    throw new SmithError(
      'CONFIG_INVALID',
      `agent "${agent.name}" (runtime http) has no url; set url: to the worker's address, such as http://127.0.0.1:8080/run`,
      { context: { agent: agent.name, field: 'url' } },
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    parsed = new URL('invalid:');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new SmithError(
      'CONFIG_INVALID',
      `agent "${agent.name}" (runtime http): url "${raw}" is not an http(s) URL; set url: to the worker's address, such as http://127.0.0.1:8080/run`,
      { context: { agent: agent.name, field: 'url', url: raw } },
    );
  }
  return parsed.href;
}

/** One try: POST, then read the answer. Throws the try's failure. */
async function tryOnce(state: AttemptState, signal: AbortSignal): Promise<WorkerAnswer> {
  if (signal.aborted) throw stoppedError(state);
  state.tries++;
  let res: Response;
  try {
    res = await fetch(state.url, { method: 'POST', headers: state.headers, body: state.body, signal });
  } catch (err) {
    if (signal.aborted) throw stoppedError(state);
    throw new WorkerNetworkError(`cannot reach the worker: ${describeError(err)}`, err);
  }
  if (!res.ok) {
    const text = await readCapped(res, 64 * 1024, signal).catch(() => Buffer.alloc(0));
    if (signal.aborted) throw stoppedError(state);
    throw new WorkerStatusError(res.status, snippet(text.toString('utf8')));
  }
  const type = (res.headers.get('content-type') ?? '').toLowerCase();
  if (type.includes('ndjson') || type.includes('jsonl')) return readStream(state, res, signal);
  let bytes: Buffer;
  try {
    bytes = await readCapped(res, HTTP_MAX_RESPONSE_BYTES, signal);
  } catch (err) {
    if (signal.aborted) throw stoppedError(state);
    if (err instanceof WorkerAnswerError) throw err;
    throw new WorkerNetworkError(`the worker's answer broke off: ${describeError(err)}`, err);
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new WorkerAnswerError(
      `the worker answered HTTP ${res.status} with a body that is not JSON (content-type "${type}"): ${snippet(bytes.toString('utf8'))}; a worker answers {"output": "..."} (see docs/runtimes/http.md)`,
      'bad_response',
    );
  }
  return readJsonAnswer(state, value, bytes.length);
}

function stoppedError(state: AttemptState): AttemptStoppedError {
  return new AttemptStoppedError(state.stopped?.status ?? 'canceled');
}

/** Read a body up to `limit` bytes; more is a `bad_response`. */
async function readCapped(res: Response, limit: number, signal: AbortSignal): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) {
        throw new WorkerAnswerError(`the worker's answer is larger than ${limit} bytes`, 'bad_response');
      }
      chunks.push(Buffer.from(value));
    }
  } finally {
    if (signal.aborted || total > limit) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  return Buffer.concat(chunks);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Read the JSON answer `{output, status?, error?, events?, usage?, cost_usd?, session_id?}`. */
function readJsonAnswer(state: AttemptState, value: unknown, bytes: number): WorkerAnswer {
  if (!isObject(value)) {
    throw new WorkerAnswerError(
      `the worker's answer is JSON but not an object: ${snippet(JSON.stringify(value))}; a worker answers {"output": "..."} (see docs/runtimes/http.md)`,
      'bad_response',
    );
  }
  const { status, events } = value;
  if (status !== undefined && status !== 'succeeded' && status !== 'failed') {
    throw new WorkerAnswerError(
      `the worker's answer has status ${JSON.stringify(status)}; expected "succeeded" or "failed"`,
      'bad_response',
    );
  }
  if (events !== undefined && !Array.isArray(events)) {
    throw new WorkerAnswerError(`the worker's answer has "events" that is not a list`, 'bad_response');
  }
  for (const item of events ?? []) {
    const event = toRuntimeEvent(item);
    if (event === null) {
      state.emit({ type: 'log', stream: 'stdout', line: sanitizeLine(JSON.stringify(item)) });
      continue;
    }
    if (event.type === 'usage') state.usageReported = true;
    state.emit(event);
  }
  return answerFrom(value, status === 'failed', bytes);
}

/** The result fields shared by the JSON answer and the NDJSON `result` line. */
function answerFrom(value: Record<string, unknown>, failed: boolean, bytes: number): WorkerAnswer {
  const { output, error } = value;
  const answer: WorkerAnswer = {
    output:
      output === undefined || output === null
        ? ''
        : typeof output === 'string'
          ? output
          : JSON.stringify(output),
    failed,
    error: failed
      ? typeof error === 'string' && error !== ''
        ? error
        : 'the worker reported failure'
      : null,
    bytes,
  };
  const tokens = tokensFrom(value.usage);
  if (tokens !== null) answer.tokens = tokens;
  if (isObject(value.usage) && typeof value.usage.model === 'string') answer.model = value.usage.model;
  if (typeof value.model === 'string') answer.model = value.model;
  if (typeof value.cost_usd === 'number' && Number.isFinite(value.cost_usd) && value.cost_usd >= 0) {
    answer.costUsd = value.cost_usd;
  }
  if (typeof value.session_id === 'string' && value.session_id !== '') answer.sessionId = value.session_id;
  return answer;
}

/** Read an NDJSON answer, reporting each line's event as it arrives, up to the `result` line. */
async function readStream(state: AttemptState, res: Response, signal: AbortSignal): Promise<WorkerAnswer> {
  if (!res.body) throw new WorkerAnswerError('the worker sent an empty NDJSON stream', 'bad_response');
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  let bytes = 0;
  let lines = 0;
  let result: WorkerAnswer | null = null;
  const handle = (raw: string): void => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    lines++;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      state.emit({ type: 'log', stream: 'stdout', line: sanitizeLine(line) });
      return;
    }
    if (isObject(value) && value.type === 'result') {
      const parsed = parseAgentLine(line);
      if (parsed.kind !== 'result') {
        throw new WorkerAnswerError(
          `the worker's result line is not valid: ${snippet(line)} (see docs/runtimes/http.md)`,
          'bad_response',
        );
      }
      result = { ...answerFrom(value, parsed.failed, 0), output: parsed.output };
      if (parsed.failed) result.error = parsed.error;
      return;
    }
    const event = toRuntimeEvent(value);
    if (event === null) {
      state.emit({ type: 'log', stream: 'stdout', line: sanitizeLine(line) });
      return;
    }
    if (event.type === 'usage') state.usageReported = true;
    state.emit(event);
  };
  try {
    while (result === null) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (signal.aborted) throw stoppedError(state);
        throw new WorkerAnswerError(
          `the worker's NDJSON stream broke off after ${lines} lines: ${describeError(err)}`,
          'provider',
        );
      }
      if (chunk.done) {
        pending += decoder.decode();
        if (pending !== '') handle(pending);
        pending = '';
        break;
      }
      bytes += chunk.value.byteLength;
      pending += decoder.decode(chunk.value, { stream: true });
      let nl: number;
      while (result === null && (nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        handle(line);
      }
      if (pending.length > HTTP_MAX_RESPONSE_BYTES) {
        throw new WorkerAnswerError(
          `the worker sent an NDJSON line longer than ${HTTP_MAX_RESPONSE_BYTES} bytes`,
          'bad_response',
        );
      }
    }
  } finally {
    // The answer is complete at its result line; whatever follows is not read.
    await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  if (result === null) {
    throw new WorkerAnswerError(
      `the worker's NDJSON stream ended after ${lines} lines without a {"type":"result"} line (see docs/runtimes/http.md)`,
      'bad_response',
    );
  }
  return { ...(result as WorkerAnswer), bytes };
}

/** The outcome of an attempt whose worker answered. */
function succeed(state: AttemptState, answer: WorkerAnswer): AttemptOutcome {
  if (state.stopped !== null)
    return { ...base(answer.bytes), status: state.stopped.status, error: state.stopped.error };
  if (answer.sessionId !== undefined) state.emit({ type: 'session', id: answer.sessionId });
  if (!state.usageReported && (answer.tokens !== undefined || answer.costUsd !== undefined)) {
    const event: RuntimeEvent = { type: 'usage', tokens: answer.tokens ?? zeroTokens() };
    if (answer.model !== undefined) event.model = answer.model;
    if (answer.costUsd !== undefined) event.costUsd = answer.costUsd;
    state.emit(event);
  }
  const outcome: AttemptOutcome = {
    ...base(answer.bytes),
    status: answer.failed ? 'failed' : 'succeeded',
    output: answer.output,
  };
  if (answer.failed) outcome.error = answer.error ?? 'the worker reported failure';
  if (answer.sessionId !== undefined) outcome.sessionId = answer.sessionId;
  if (answer.tokens !== undefined) outcome.tokens = answer.tokens;
  if (answer.costUsd !== undefined) outcome.costUsd = answer.costUsd;
  return outcome;
}

function base(bytes: number): Omit<AttemptOutcome, 'status'> {
  return {
    exitCode: null,
    signal: null,
    output: '',
    stdoutBytes: bytes,
    stderrBytes: 0,
    droppedBytes: 0,
    stderr: '',
  };
}

function failure(error: string, reason: FailureReason, bytes: number, retryable?: boolean): AttemptOutcome {
  const outcome: AttemptOutcome = { ...base(bytes), status: 'failed', error, reason };
  if (retryable !== undefined) outcome.retryable = retryable;
  return outcome;
}

function settled(outcome: AttemptOutcome): AttemptHandle {
  return {
    pid: null,
    done: Promise.resolve(outcome),
    cancel: () => undefined,
    pause: () => undefined,
    resume: () => undefined,
  };
}

function zeroTokens(): TokenUsage {
  return { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
}

/** A token count field: a finite integer >= 0, else 0. */
function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.floor(value) : 0;
}

/**
 * Worker usage `{input_tokens, output_tokens, cache_read_tokens?, cache_write_tokens?}` as
 * {@link TokenUsage}; null when it is not an object with at least one of them.
 */
function tokensFrom(value: unknown): TokenUsage | null {
  if (!isObject(value)) return null;
  const keys = ['input_tokens', 'output_tokens', 'cache_read_tokens', 'cache_write_tokens'];
  if (!keys.some((k) => typeof value[k] === 'number')) return null;
  return {
    input: count(value.input_tokens),
    output: count(value.output_tokens),
    cacheRead: count(value.cache_read_tokens),
    cacheWrite: count(value.cache_write_tokens),
  };
}

/**
 * One worker event (an item of the JSON answer's `events`, or an NDJSON line) as a
 * {@link RuntimeEvent}: the `process` runtime's `progress`, `log`, `artifact` and `message` (read by
 * {@link parseAgentLine}), plus `text` `{text}`, `session` `{id}`, `usage` `{input_tokens,
 * output_tokens, cache_read_tokens?, cache_write_tokens?, model?, cost_usd?}` (a delta),
 * `tool_use` `{name, id?, input?}`, `tool_result` `{id?, is_error?, output?}` and `file_change`
 * `{path, kind}`.
 *
 * @param value - the parsed event
 * @returns the event, or null when it is not one (reported as a `log` line instead)
 */
export function toRuntimeEvent(value: unknown): RuntimeEvent | null {
  if (!isObject(value) || typeof value.type !== 'string') return null;
  switch (value.type) {
    case 'progress':
    case 'log':
    case 'artifact':
    case 'message': {
      const parsed = parseAgentLine(JSON.stringify(value));
      return parsed.kind === 'event' ? parsed.event : null;
    }
    case 'text':
      return typeof value.text === 'string' ? { type: 'text', text: value.text } : null;
    case 'session':
      return typeof value.id === 'string' && value.id !== '' ? { type: 'session', id: value.id } : null;
    case 'usage': {
      const tokens = tokensFrom(value) ?? zeroTokens();
      const event: RuntimeEvent = { type: 'usage', tokens };
      if (typeof value.model === 'string') event.model = value.model;
      if (typeof value.cost_usd === 'number' && Number.isFinite(value.cost_usd) && value.cost_usd >= 0) {
        event.costUsd = value.cost_usd;
      }
      return event;
    }
    case 'tool_use': {
      if (typeof value.name !== 'string' || value.name === '') return null;
      const event: RuntimeEvent = { type: 'tool_use', name: value.name };
      if (typeof value.id === 'string') event.id = value.id;
      if (value.input !== undefined) event.input = value.input as Json;
      return event;
    }
    case 'tool_result': {
      const event: RuntimeEvent = { type: 'tool_result', isError: value.is_error === true };
      if (typeof value.id === 'string') event.id = value.id;
      if (typeof value.output === 'string') event.output = value.output.slice(0, 4096);
      return event;
    }
    case 'file_change': {
      const { path, kind } = value;
      if (typeof path !== 'string' || path === '') return null;
      if (kind !== 'add' && kind !== 'update' && kind !== 'delete') return null;
      return { type: 'file_change', path, kind };
    }
    default:
      return null;
  }
}

/** A body quoted in an error: control characters removed, whitespace collapsed, cut. */
function snippet(text: string): string {
  const flat = sanitizeLine(text.replace(/\s+/g, ' ')).trim();
  return flat.length > SNIPPET_CHARS ? `${flat.slice(0, SNIPPET_CHARS)}…` : flat;
}

/** An error's message with its cause's code (`fetch failed: ECONNREFUSED`). */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return `${err.message}: ${code ?? cause.message}`;
  }
  return err.message;
}
