/**
 * The `llm` runtime: an agent that is a model called through the AI SDK (v6) — any
 * OpenAI-compatible API (OpenAI, vLLM, llama.cpp, LM Studio, Ollama's `/v1`, OpenRouter …),
 * Anthropic's Messages API, or Ollama's native API. One attempt is one model call: the task's
 * prompt in, the model's text (or, with `output_schema`, its JSON) out. See `docs/runtimes/llm.md`.
 */
import type { JSONSchema7, LanguageModel, LanguageModelUsage } from 'ai';
import type * as Ai from 'ai';
import type * as Anthropic from '@ai-sdk/anthropic';
import type * as OpenAiCompatible from '@ai-sdk/openai-compatible';
import type * as Ollama from 'ollama-ai-provider-v2';
import { z } from 'zod';

import { SmithError } from '../../core/errors.js';
import type { ErrorCode } from '../../core/errors.js';
import type { AgentSpec, Json } from '../../core/types.js';
import { promptWithGuidance } from '../types.js';
import type {
  AgentRuntime,
  AttemptContext,
  AttemptHandle,
  AttemptOutcome,
  FailureReason,
  TaskInput,
  TokenUsage,
} from '../types.js';

/** The providers the `llm` runtime speaks (`provider:` in the agent). */
export type LlmProvider = 'openai-compatible' | 'anthropic' | 'ollama';

/** Every {@link LlmProvider}, the first being the default. */
export const LLM_PROVIDERS: readonly LlmProvider[] = ['openai-compatible', 'anthropic', 'ollama'];

/**
 * API base URL of each provider when the agent sets no `base_url`. Sources: OpenAI
 * (https://platform.openai.com/docs/api-reference), `@ai-sdk/anthropic` (its `baseURL` default),
 * `ollama-ai-provider-v2` (its `baseURL` default).
 */
export const LLM_DEFAULT_BASE_URLS: Readonly<Record<LlmProvider, string>> = {
  'openai-compatible': 'https://api.openai.com/v1',
  anthropic: 'https://api.anthropic.com/v1',
  ollama: 'http://127.0.0.1:11434/api',
};

/** The environment variable read for the API key when the agent sets no `api_key_env`; none for ollama. */
export const LLM_DEFAULT_API_KEY_ENV: Readonly<Record<LlmProvider, string | null>> = {
  'openai-compatible': 'OPENAI_API_KEY',
  anthropic: 'ANTHROPIC_API_KEY',
  ollama: null,
};

/**
 * Retries the AI SDK makes after a failed call (its `maxRetries`): 2, so at most 3 requests, on the
 * statuses the SDK deems retryable (408, 409, 429, 5xx) and network errors, with exponential
 * backoff from 2 s (doubling), or the provider's `retry-after-ms` / `retry-after` header when it is
 * under 60 s. Source: `retryWithExponentialBackoffRespectingRetryHeaders` in the `ai` package.
 */
export const LLM_MAX_RETRIES = 2;

/** Longest time in ms streamed text is held before it is reported as a `text` event. */
export const LLM_TEXT_FLUSH_MS = 200;

/** The parts of an agent that say which model to call and how. */
export type ModelSpec = Pick<
  AgentSpec,
  'name' | 'model' | 'provider' | 'baseUrl' | 'apiKeyEnv' | 'headers' | 'systemPrompt' | 'outputSchema'
>;

/** Options of {@link runModel}. */
export interface RunModelOptions {
  /** Where the API key variable is read from. Default `{}` (no key). */
  env?: Record<string, string | undefined>;
  /** Aborts the call (the HTTP request is aborted and its connection closed). */
  signal?: AbortSignal;
  /** The system prompt; default the spec's `systemPrompt`. */
  system?: string;
  /**
   * A JSON Schema the answer must match (structured output); default the spec's `outputSchema`.
   * `null` asks for plain text even when the spec has a schema.
   */
  schema?: Json | null;
  /** Called with each piece of text as it streams in. */
  onText?: (delta: string) => void;
  /** Called with each warning the provider returned (an unsupported setting …). */
  onWarning?: (message: string) => void;
  /** The AI SDK's `maxRetries`. Default {@link LLM_MAX_RETRIES} (2). */
  maxRetries?: number;
}

/** What a model answered. */
export interface ModelAnswer {
  /** The full text the model returned (with a schema: the JSON text as the model wrote it). */
  text: string;
  /** With a schema: the parsed object, valid against it. */
  object?: unknown;
  /** Tokens the call used (all retries of the SDK included as the provider reports them). */
  tokens: TokenUsage;
  /** The model as configured (`spec.model`). */
  model: string;
  /** The model id the provider said answered (may be more specific, e.g. a dated snapshot). */
  responseModel: string;
  /** Why the model stopped: `stop`, `length`, `content-filter`, … (AI SDK `FinishReason`). */
  finishReason: string;
}

/**
 * A model call that failed, with the stable {@link FailureReason} and whether retrying can help.
 * `code` is `AGENT_FAILED` (the call failed), `CONFIG_INVALID` (the spec cannot work) or
 * `ATTEMPT_CANCELED` (aborted through the signal).
 */
export class ModelCallError extends SmithError {
  /** Why, as a stable code; absent for a config error or an abort. */
  readonly reason: FailureReason | undefined;
  /** False when the same call cannot succeed (credentials refused, bad request, bad config). */
  readonly retryable: boolean;
  /** The provider's HTTP status, when it answered one. */
  readonly status: number | undefined;
  /** Tokens the call used anyway (an answer that did not match the schema was still paid for). */
  tokens: TokenUsage | undefined;

  /**
   * @param code - the error code
   * @param message - what happened, where, what to do
   * @param details - reason, retryable (default true), status, cause
   */
  constructor(
    code: ErrorCode,
    message: string,
    details: { reason?: FailureReason; retryable?: boolean; status?: number; cause?: unknown } = {},
  ) {
    super(code, message, {
      cause: details.cause,
      context: { reason: details.reason, status: details.status },
    });
    this.name = 'ModelCallError';
    this.reason = details.reason;
    this.retryable = details.retryable ?? true;
    this.status = details.status;
    this.tokens = undefined;
  }
}

/** A spec resolved to what the AI SDK needs. */
interface ResolvedModel {
  provider: LlmProvider;
  model: string;
  baseUrl: string;
  keyEnv: string | null;
  language: LanguageModel;
}

function where(spec: ModelSpec): string {
  return `agent "${spec.name}" (runtime llm)`;
}

/**
 * The provider of a spec, checked.
 *
 * @throws ModelCallError `CONFIG_INVALID` for an unknown provider
 */
function providerOf(spec: ModelSpec): LlmProvider {
  const p = spec.provider ?? 'openai-compatible';
  if (!(LLM_PROVIDERS as readonly string[]).includes(p)) {
    throw new ModelCallError(
      'CONFIG_INVALID',
      `${where(spec)}: unknown provider "${p}"; use one of: ${LLM_PROVIDERS.join(', ')}`,
      { retryable: false },
    );
  }
  return p as LlmProvider;
}

/**
 * Check a spec without calling anything: model set, provider known, base URL valid, schema usable.
 *
 * @param spec - the agent
 * @throws ModelCallError `CONFIG_INVALID` naming the agent and the field
 */
export function checkModelSpec(spec: ModelSpec): void {
  providerOf(spec);
  if (spec.model === undefined || spec.model === '') {
    throw new ModelCallError(
      'CONFIG_INVALID',
      `${where(spec)} has no model; set model: to a model name, such as gpt-4o-mini or llama3.1`,
      { retryable: false },
    );
  }
  if (spec.baseUrl !== undefined) {
    let ok = false;
    try {
      const u = new URL(spec.baseUrl);
      ok = u.protocol === 'http:' || u.protocol === 'https:';
    } catch {
      ok = false;
    }
    if (!ok) {
      throw new ModelCallError(
        'CONFIG_INVALID',
        `${where(spec)}: base_url "${spec.baseUrl}" is not an http(s) URL, such as http://127.0.0.1:11434/v1`,
        { retryable: false },
      );
    }
  }
  if (spec.outputSchema !== undefined) validatorOf(spec, spec.outputSchema);
}

/** The AI SDK and its providers, loaded on first use. */
interface Sdk {
  ai: typeof Ai;
  createAnthropic: typeof Anthropic.createAnthropic;
  createOpenAICompatible: typeof OpenAiCompatible.createOpenAICompatible;
  createOllama: typeof Ollama.createOllama;
}

let loadedSdk: Sdk | undefined;

/**
 * Load the AI SDK and its providers on first use: about 0.3 s and 16 MB that a smith process which
 * never calls a model (most commands) does not pay.
 */
async function loadSdk(): Promise<Sdk> {
  if (loadedSdk === undefined) {
    const [ai, anthropic, compat, ollama] = await Promise.all([
      import('ai'),
      import('@ai-sdk/anthropic'),
      import('@ai-sdk/openai-compatible'),
      import('ollama-ai-provider-v2'),
    ]);
    loadedSdk = {
      ai,
      createAnthropic: anthropic.createAnthropic,
      createOpenAICompatible: compat.createOpenAICompatible,
      createOllama: ollama.createOllama,
    };
  }
  return loadedSdk;
}

/**
 * Build the AI SDK model of a spec, reading its API key from `env`.
 *
 * @throws ModelCallError `CONFIG_INVALID` (bad spec) or `AGENT_FAILED` with reason `auth` (key missing)
 */
function resolveModel(spec: ModelSpec, env: Record<string, string | undefined>, sdk: Sdk): ResolvedModel {
  checkModelSpec(spec);
  const provider = providerOf(spec);
  const model = spec.model as string;
  const baseUrl = (spec.baseUrl ?? LLM_DEFAULT_BASE_URLS[provider]).replace(/\/+$/, '');
  const keyEnv = spec.apiKeyEnv ?? LLM_DEFAULT_API_KEY_ENV[provider];
  const key = keyEnv === null ? undefined : env[keyEnv] || undefined;
  // A key is required when the agent names its variable, and for Anthropic; a local
  // OpenAI-compatible server (llama.cpp, vLLM, Ollama's /v1) usually needs none.
  if (key === undefined && keyEnv !== null && (spec.apiKeyEnv !== undefined || provider === 'anthropic')) {
    throw new ModelCallError(
      'AGENT_FAILED',
      `${where(spec)}: the API key variable ${keyEnv} is not set; set it in the environment or the agent's env:, or name another with api_key_env:`,
      { reason: 'auth', retryable: false },
    );
  }
  const headers = { ...(spec.headers ?? {}) };
  let language: LanguageModel;
  switch (provider) {
    case 'openai-compatible':
      language = sdk
        .createOpenAICompatible({
          name: 'openai-compatible',
          baseURL: baseUrl,
          ...(key === undefined ? {} : { apiKey: key }),
          headers,
          // sends stream_options.include_usage, so a streamed answer reports its tokens
          includeUsage: true,
          // sends response_format json_schema with the agent's output_schema
          supportsStructuredOutputs: true,
        })
        .chatModel(model);
      break;
    case 'anthropic':
      language = sdk.createAnthropic({ baseURL: baseUrl, apiKey: key as string, headers })(model);
      break;
    case 'ollama':
      if (key !== undefined) headers.authorization ??= `Bearer ${key}`;
      language = sdk.createOllama({ baseURL: baseUrl, headers })(model);
      break;
  }
  return { provider, model, baseUrl, keyEnv, language };
}

/**
 * The AI SDK schema of a JSON Schema, validated by zod's `z.fromJSONSchema` (zod 4).
 *
 * @throws ModelCallError `CONFIG_INVALID` when the schema cannot be used
 */
function validatorOf(spec: ModelSpec, schema: Json): z.ZodType {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new ModelCallError('CONFIG_INVALID', `${where(spec)}: output_schema must be a JSON Schema object`, {
      retryable: false,
    });
  }
  let validator: z.ZodType;
  try {
    validator = z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]);
  } catch (err) {
    throw new ModelCallError(
      'CONFIG_INVALID',
      `${where(spec)}: output_schema is not a JSON Schema smith can check: ${(err as Error).message}`,
      { retryable: false, cause: err },
    );
  }
  return validator;
}

/** The AI SDK schema of a JSON Schema, checked with {@link validatorOf}. */
function outputSchemaOf(spec: ModelSpec, schema: Json, sdk: Sdk) {
  const validator = validatorOf(spec, schema);
  return sdk.ai.jsonSchema<unknown>(schema as JSONSchema7, {
    validate: (value) => {
      const r = validator.safeParse(value);
      return r.success
        ? { success: true, value: r.data }
        : { success: false, error: new Error(z.prettifyError(r.error)) };
    },
  });
}

/**
 * {@link TokenUsage} from the AI SDK's usage: `input` is the non-cached input
 * (`inputTokenDetails.noCacheTokens`, else input less cache read and written).
 *
 * @param usage - the AI SDK usage (fields may be undefined when the provider did not report them)
 * @returns token counts, 0 where not reported
 */
export function tokensOf(usage: LanguageModelUsage | undefined): TokenUsage {
  if (!usage) return { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
  const n = (v: number | undefined): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);
  const cacheRead = n(usage.inputTokenDetails?.cacheReadTokens ?? usage.cachedInputTokens);
  const cacheWrite = n(usage.inputTokenDetails?.cacheWriteTokens);
  const noCache = usage.inputTokenDetails?.noCacheTokens;
  const input =
    noCache !== undefined ? n(noCache) : Math.max(0, n(usage.inputTokens) - cacheRead - cacheWrite);
  return { input, output: n(usage.outputTokens), cacheRead, cacheWrite };
}

/**
 * An AI SDK error class test that needs no import of the SDK: the SDK marks its errors with a
 * `Symbol.for('vercel.ai.error.<name>')` property set to true, and its own `isInstance` checks
 * exactly that (`AISDKError.hasMarker` in @ai-sdk/provider), so the checks agree across copies.
 */
function sdkError<T>(name: string): { isInstance(e: unknown): e is T } {
  const marker = Symbol.for(`vercel.ai.error.${name}`);
  return {
    isInstance: (e: unknown): e is T =>
      typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[marker] === true,
  };
}

type SdkError = Error & { cause?: unknown };
const SDK_ERRORS = {
  APICallError: sdkError<SdkError & { statusCode?: number; responseBody?: string }>('AI_APICallError'),
  EmptyResponseBodyError: sdkError<SdkError>('AI_EmptyResponseBodyError'),
  InvalidResponseDataError: sdkError<SdkError>('AI_InvalidResponseDataError'),
  JSONParseError: sdkError<SdkError>('AI_JSONParseError'),
  LoadAPIKeyError: sdkError<SdkError>('AI_LoadAPIKeyError'),
  NoContentGeneratedError: sdkError<SdkError>('AI_NoContentGeneratedError'),
  NoObjectGeneratedError: sdkError<SdkError & { text?: string }>('AI_NoObjectGeneratedError'),
  NoOutputGeneratedError: sdkError<SdkError>('AI_NoOutputGeneratedError'),
  RetryError: sdkError<SdkError & { errors: unknown[]; lastError: unknown }>('AI_RetryError'),
  TypeValidationError: sdkError<SdkError>('AI_TypeValidationError'),
};

/**
 * Turn an AI SDK error into a {@link ModelCallError}: 401/403 → `auth` (not retryable); 429 →
 * `rate_limited`; 5xx, 408, 409 and network errors → `provider`; other 4xx → `provider`, not
 * retryable; no answer, unparsable or schema-mismatched output → `bad_response`.
 *
 * @param err - what the AI SDK threw or streamed (a `RetryError` is unwrapped to its last error)
 * @param label - what was called, for the message (`openai-compatible model "x" at <url>`)
 * @returns the error to throw
 */
export function classifyModelError(err: unknown, label: string): ModelCallError {
  if (err instanceof ModelCallError) return err;
  const {
    APICallError,
    EmptyResponseBodyError,
    InvalidResponseDataError,
    JSONParseError,
    LoadAPIKeyError,
    NoContentGeneratedError,
    NoObjectGeneratedError,
    NoOutputGeneratedError,
    RetryError,
    TypeValidationError,
  } = SDK_ERRORS;
  let tries = '';
  let e = err;
  if (RetryError.isInstance(e)) {
    tries = ` after ${e.errors.length} tries`;
    e = e.lastError;
  }
  if (NoOutputGeneratedError.isInstance(e) && e.cause !== undefined) e = e.cause;
  if (APICallError.isInstance(e)) {
    const status = e.statusCode;
    const detail = providerMessage(e);
    if (status === undefined) {
      return new ModelCallError('AGENT_FAILED', `${label}: cannot reach the API${tries}: ${detail}`, {
        reason: 'provider',
        cause: err,
      });
    }
    const base = `${label}: HTTP ${status}${tries}: ${detail}`;
    if (status === 401 || status === 403) {
      return new ModelCallError('AGENT_FAILED', `${base}; check the API key and api_key_env`, {
        reason: 'auth',
        retryable: false,
        status,
        cause: err,
      });
    }
    if (status === 429) {
      return new ModelCallError('AGENT_FAILED', base, { reason: 'rate_limited', status, cause: err });
    }
    if (status >= 500 || status === 408 || status === 409) {
      return new ModelCallError('AGENT_FAILED', base, { reason: 'provider', status, cause: err });
    }
    return new ModelCallError('AGENT_FAILED', base, {
      reason: 'provider',
      retryable: false,
      status,
      cause: err,
    });
  }
  if (LoadAPIKeyError.isInstance(e)) {
    return new ModelCallError('AGENT_FAILED', `${label}: ${e.message}`, {
      reason: 'auth',
      retryable: false,
      cause: err,
    });
  }
  if (NoObjectGeneratedError.isInstance(e)) {
    let cause: Error = e.cause instanceof Error ? e.cause : e;
    // a schema mismatch: the validator's own words (zod's), not the SDK's wrapper with the value
    if (TypeValidationError.isInstance(cause) && cause.cause instanceof Error) cause = cause.cause;
    const why = cut(cause.message);
    return new ModelCallError(
      'AGENT_FAILED',
      `${label}: the answer does not match output_schema: ${why}${e.text === undefined ? '' : `; the model wrote: ${cut(e.text)}`}`,
      { reason: 'bad_response', cause: err },
    );
  }
  if (
    NoOutputGeneratedError.isInstance(e) ||
    NoContentGeneratedError.isInstance(e) ||
    TypeValidationError.isInstance(e) ||
    JSONParseError.isInstance(e) ||
    InvalidResponseDataError.isInstance(e) ||
    EmptyResponseBodyError.isInstance(e)
  ) {
    return new ModelCallError('AGENT_FAILED', `${label}: the API's answer could not be read: ${e.message}`, {
      reason: 'bad_response',
      cause: err,
    });
  }
  const message = e instanceof Error ? e.message : String(e);
  return new ModelCallError('AGENT_FAILED', `${label}: ${message}${tries}`, {
    reason: 'provider',
    cause: err,
  });
}

/** The provider's own error message from an API error body, else the SDK's message. */
function providerMessage(e: { responseBody?: string; message: string }): string {
  const body = e.responseBody;
  if (body) {
    try {
      const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown };
      const m =
        typeof parsed.error === 'string'
          ? parsed.error
          : typeof parsed.error?.message === 'string'
            ? parsed.error.message
            : typeof parsed.message === 'string'
              ? parsed.message
              : undefined;
      if (m !== undefined) return cut(m);
    } catch {
      return cut(body);
    }
  }
  return cut(e.message);
}

function cut(text: string, max = 300): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/**
 * Call a model once and return its answer: text, or a JSON object valid against a schema. The
 * same provider configuration as the `llm` runtime (`provider`, `model`, `baseUrl`, `apiKeyEnv`,
 * `headers`, `systemPrompt`, `outputSchema`), for any part of smith that needs a model (a council
 * judge, a planner). Streams through `streamText`; the AI SDK retries as {@link LLM_MAX_RETRIES} says.
 *
 * @param spec - the model configuration (an agent, or any object with its fields)
 * @param prompt - the user message
 * @param options - env for the key, abort signal, system prompt, schema, streaming callback
 * @returns the answer with its token usage
 * @throws ModelCallError `CONFIG_INVALID` for a spec that cannot work, `ATTEMPT_CANCELED` when
 *   `signal` aborted it, `AGENT_FAILED` with a {@link FailureReason} for every failed call
 * @example
 * const { object } = await runModel(
 *   { name: 'judge', model: 'gpt-4o-mini', outputSchema: verdictSchema },
 *   `Review this diff:\n${diff}`,
 *   { env: process.env },
 * );
 */
export async function runModel(
  spec: ModelSpec,
  prompt: string,
  options: RunModelOptions = {},
): Promise<ModelAnswer> {
  const sdk = await loadSdk();
  const resolved = resolveModel(spec, options.env ?? {}, sdk);
  const label = `${resolved.provider} model "${resolved.model}" at ${resolved.baseUrl}`;
  const schemaJson = options.schema === undefined ? spec.outputSchema : options.schema;
  const schema =
    schemaJson === undefined || schemaJson === null ? null : outputSchemaOf(spec, schemaJson, sdk);
  const system = options.system ?? spec.systemPrompt;
  const signal = options.signal;
  const aborted = (): ModelCallError =>
    new ModelCallError('ATTEMPT_CANCELED', `${label}: the call was aborted`, { retryable: true });
  if (signal?.aborted) throw aborted();

  const result = sdk.ai.streamText({
    model: resolved.language,
    prompt,
    ...(system === undefined ? {} : { system }),
    maxRetries: options.maxRetries ?? LLM_MAX_RETRIES,
    ...(signal === undefined ? {} : { abortSignal: signal }),
    ...(schema === null ? {} : { output: sdk.ai.Output.object({ schema }) }),
    // errors are read from the stream below; the default handler would print them to stderr
    onError: () => undefined,
  });

  let text = '';
  let usage: LanguageModelUsage | undefined;
  let responseModel = resolved.model;
  let finishReason = 'unknown';
  let failure: unknown = null;
  let wasAborted = false;
  try {
    for await (const part of result.fullStream) {
      switch (part.type) {
        case 'text-delta':
          if (part.text === '') break;
          text += part.text;
          options.onText?.(part.text);
          break;
        case 'start-step':
          for (const w of part.warnings) options.onWarning?.(warningText(w));
          break;
        case 'finish-step':
          if (part.response.modelId) responseModel = part.response.modelId;
          break;
        case 'finish':
          usage = part.totalUsage;
          finishReason = part.finishReason;
          break;
        case 'error':
          failure ??= part.error;
          break;
        case 'abort':
          wasAborted = true;
          break;
        default:
          break;
      }
    }
  } catch (err) {
    failure ??= err;
  }
  if (wasAborted || signal?.aborted) throw aborted();
  const withTokens = (err: unknown): ModelCallError => {
    const e = classifyModelError(err, label);
    if (usage !== undefined && e.tokens === undefined) e.tokens = tokensOf(usage);
    return e;
  };
  if (failure !== null) throw withTokens(failure);

  const answer: ModelAnswer = {
    text,
    tokens: tokensOf(usage),
    model: resolved.model,
    responseModel,
    finishReason,
  };
  if (schema !== null) {
    try {
      answer.object = await result.output;
    } catch (err) {
      throw withTokens(err);
    }
  } else if (text === '') {
    throw withTokens(
      new ModelCallError(
        'AGENT_FAILED',
        `${label}: the model returned no text (finish reason: ${finishReason})`,
        {
          reason: 'bad_response',
        },
      ),
    );
  }
  return answer;
}

/** A provider warning as one line. */
function warningText(w: unknown): string {
  if (typeof w !== 'object' || w === null) return String(w);
  const o = w as {
    type?: unknown;
    feature?: unknown;
    setting?: unknown;
    details?: unknown;
    message?: unknown;
  };
  const what = [o.type, o.feature ?? o.setting, o.details ?? o.message].filter((x) => typeof x === 'string');
  return `model warning: ${what.join(': ')}`;
}

/**
 * Gathers streamed text into `text` events: a piece is reported when it completes a line (up to
 * its last newline) or when it has waited {@link LLM_TEXT_FLUSH_MS}, not token by token. The
 * events' texts, joined, are exactly the streamed text.
 */
export class TextCoalescer {
  private pending = '';
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param emit - receives each piece of text
   * @param flushMs - longest wait in ms before a partial line is reported. Default {@link LLM_TEXT_FLUSH_MS}.
   */
  constructor(
    private readonly emit: (text: string) => void,
    private readonly flushMs = LLM_TEXT_FLUSH_MS,
  ) {}

  /** Add streamed text. */
  push(delta: string): void {
    if (delta === '') return;
    this.pending += delta;
    const nl = this.pending.lastIndexOf('\n');
    if (nl >= 0) {
      const lines = this.pending.slice(0, nl + 1);
      this.pending = this.pending.slice(nl + 1);
      this.emit(lines);
    }
    if (this.pending === '') {
      this.clear();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, this.flushMs);
      this.timer.unref();
    }
  }

  /** Report what is held now (at the end of the stream). */
  flush(): void {
    this.clear();
    if (this.pending === '') return;
    const text = this.pending;
    this.pending = '';
    this.emit(text);
  }

  private clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * The user message of an attempt: the task's prompt, then the outputs of the tasks it needs (each
 * under `## <key>`) when there are any, then the attempt's guidance (see {@link promptWithGuidance}).
 *
 * @param input - the task JSON
 * @returns the prompt text
 */
export function promptOf(input: TaskInput): string {
  const needs = Object.entries(input.needs);
  let prompt = input.prompt;
  if (needs.length > 0) {
    const parts = needs.map(([key, need]) => `## ${key}\n${need.output ?? '(no output)'}`);
    prompt = `${prompt}\n\n# Outputs of the tasks this one needs\n\n${parts.join('\n\n')}`;
  }
  return promptWithGuidance({ ...input, prompt });
}

/**
 * Runs agents that are models (`runtime: llm`) through the AI SDK.
 *
 * Agent fields: `model` (required); `provider` `openai-compatible` (default), `anthropic` or
 * `ollama`; `base_url` (default per {@link LLM_DEFAULT_BASE_URLS}); `api_key_env` (default
 * `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` by provider, none for ollama; read from the attempt's
 * env, never from smith's own process env); `system_prompt`; `headers`; `output_schema` (a JSON
 * Schema: the model is asked for structured output, the answer is validated against it and the
 * outcome's output is its JSON).
 *
 * Events: `text` events as the answer streams (coalesced per line or per 200 ms), `log` lines for
 * provider warnings, and at the end one `usage` event (tokens of the call, with the configured
 * `model`; no cost: the engine prices the tokens from its price table).
 *
 * Outcome: `succeeded` with the full text (or the JSON) and `tokens`. Failures carry a reason:
 * `auth` (401/403 or a missing key; not retryable), `rate_limited` (429), `provider` (5xx, network,
 * other API errors), `bad_response` (no answer, or one that does not match the schema). The AI SDK
 * itself retries twice first ({@link LLM_MAX_RETRIES}). Timeout and cancel abort the request.
 *
 * Not supported: pause and resume (a model call cannot be suspended; they do nothing and the
 * timeout keeps running), sessions (`resumeSessionId` is ignored). `pid` is null.
 *
 * @see https://ai-sdk.dev/docs/reference/ai-sdk-core/stream-text
 */
export class LlmRuntime implements AgentRuntime {
  readonly kind = 'llm';

  /**
   * Check the agent's model settings (see {@link checkModelSpec}); the key is checked when an
   * attempt starts, since it comes from the attempt's env.
   *
   * @param agent - the agent
   * @throws ModelCallError `CONFIG_INVALID` naming the agent and the field
   */
  check(agent: AgentSpec): Promise<void> {
    try {
      checkModelSpec(agent);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /**
   * Start one attempt: one streamed model call with the task's prompt (see the class summary).
   *
   * @param ctx - the attempt
   * @returns the running attempt (pid null); never throws
   */
  start(ctx: AttemptContext): AttemptHandle {
    const ac = new AbortController();
    let stopped: { status: 'canceled' | 'timed_out'; error: string } | null = null;
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const stop = (status: 'canceled' | 'timed_out', error: string): void => {
      if (finished || stopped !== null) return;
      stopped = { status, error };
      ac.abort(new Error(error));
    };
    if (ctx.timeoutMs !== null) {
      const ms = ctx.timeoutMs;
      timer = setTimeout(() => stop('timed_out', `timed out after ${ms} ms`), ms);
      timer.unref();
    }

    let streamed = '';
    const coalescer = new TextCoalescer((text) => ctx.onEvent({ type: 'text', text }));
    const base = (output: string): Omit<AttemptOutcome, 'status'> => ({
      exitCode: null,
      signal: null,
      output,
      stdoutBytes: Buffer.byteLength(output),
      stderrBytes: 0,
      droppedBytes: 0,
      stderr: '',
    });

    const run = async (): Promise<AttemptOutcome> => {
      try {
        const answer = await runModel(ctx.agent, promptOf(ctx.input), {
          env: ctx.env,
          signal: ac.signal,
          onText: (delta) => {
            streamed += delta;
            coalescer.push(delta);
          },
          onWarning: (line) => ctx.onEvent({ type: 'log', stream: 'stderr', line }),
        });
        coalescer.flush();
        if (stopped !== null)
          return { ...base(streamed), ...(stopped as { status: 'canceled'; error: string }) };
        ctx.onEvent({ type: 'usage', model: answer.model, tokens: answer.tokens });
        const output = answer.object !== undefined ? JSON.stringify(answer.object) : answer.text;
        return { ...base(output), status: 'succeeded', tokens: answer.tokens };
      } catch (err) {
        coalescer.flush();
        if (stopped !== null)
          return { ...base(streamed), ...(stopped as { status: 'canceled'; error: string }) };
        const e =
          err instanceof ModelCallError
            ? err
            : classifyModelError(err, `agent "${ctx.agent.name}" model "${ctx.agent.model ?? ''}"`);
        const outcome: AttemptOutcome = { ...base(streamed), status: 'failed', error: e.message };
        if (e.tokens !== undefined) {
          // the provider answered (and billed) even though the answer is not usable
          ctx.onEvent({ type: 'usage', model: ctx.agent.model ?? '', tokens: e.tokens });
          outcome.tokens = e.tokens;
        }
        if (e.reason !== undefined) outcome.reason = e.reason;
        if (!e.retryable) outcome.retryable = false;
        return outcome;
      } finally {
        finished = true;
        if (timer !== undefined) clearTimeout(timer);
      }
    };

    return {
      pid: null,
      done: run(),
      cancel: (reason: string) => stop('canceled', reason),
      // A model call cannot be suspended: pause and resume do nothing (documented).
      pause: () => undefined,
      resume: () => undefined,
    };
  }
}
