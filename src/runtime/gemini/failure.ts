/**
 * Why a Gemini CLI run failed: its exit codes and API errors mapped to smith's
 * {@link FailureReason} codes and words.
 *
 * Exit codes are those of the CLI's `FatalError` classes (Gemini CLI 0.61,
 * `packages/core/src/utils/errors.ts`; documented in `docs/resources/troubleshooting.md` "Exit
 * codes" and `docs/cli/headless.md`). An API error that ends the run exits with the HTTP status
 * as the exit code, which the OS keeps modulo 256 (401 → 145, 429 → 173, 500 → 244): the CLI's
 * `handleError` calls `process.exit(error.status)`.
 */
import type { FailureReason } from '../types.js';

/** What an exit code or an error message says about a failure. */
export interface GeminiFailure {
  /** The stable code. */
  reason: FailureReason;
  /** False when retrying the same attempt cannot help. */
  retryable: boolean;
  /** What happened, in a few words (`refused the credentials`, `turn limit exceeded`). */
  what: string;
  /** What to do about it. */
  hint: string;
}

/** One documented exit code of Gemini CLI. */
interface ExitCodeInfo extends GeminiFailure {
  /** The CLI's error class. */
  name: string;
}

/**
 * The exit codes Gemini CLI documents (and 54, 55 and 130 from its source), with smith's reading
 * of them.
 */
export const GEMINI_EXIT_CODES: Readonly<Record<number, ExitCodeInfo>> = {
  1: {
    name: 'general error',
    reason: 'crashed',
    retryable: true,
    what: 'failed (general error or API failure)',
    hint: 'see the stderr log of the attempt',
  },
  41: {
    name: 'FatalAuthenticationError',
    reason: 'auth',
    retryable: false,
    what: 'could not authenticate',
    hint: 'set the API key in the environment variable named by "api_key_env" (default GEMINI_API_KEY)',
  },
  42: {
    name: 'FatalInputError',
    reason: 'crashed',
    retryable: false,
    what: 'rejected its input (input error)',
    hint: 'check the task\'s prompt (it must not be empty) and the agent\'s "args"',
  },
  44: {
    name: 'FatalSandboxError',
    reason: 'crashed',
    retryable: false,
    what: 'could not start its sandbox (sandbox error)',
    hint: 'check the sandbox (Docker/Podman) the agent\'s "args" ask for',
  },
  52: {
    name: 'FatalConfigError',
    reason: 'crashed',
    retryable: false,
    what: 'found an invalid settings.json (config error)',
    hint: 'fix ~/.gemini/settings.json, or run with an isolated home ("isolate_home": true)',
  },
  53: {
    name: 'FatalTurnLimitedError',
    reason: 'crashed',
    retryable: true,
    what: 'stopped: turn limit exceeded',
    hint: 'raise "max_turns" of the agent, or split the task',
  },
  54: {
    name: 'FatalToolExecutionError',
    reason: 'crashed',
    retryable: true,
    what: 'stopped: a tool failed fatally (for example the disk is full)',
    hint: 'see the last tool_result event of the attempt',
  },
  55: {
    name: 'FatalUntrustedWorkspaceError',
    reason: 'crashed',
    retryable: false,
    what: 'refused to run in an untrusted folder',
    hint: 'pass "--skip-trust" (smith does) or set GEMINI_CLI_TRUST_WORKSPACE=true',
  },
  130: {
    name: 'FatalCancellationError',
    reason: 'crashed',
    retryable: true,
    what: 'was canceled (SIGINT)',
    hint: 'something interrupted it outside smith',
  },
};

const AUTH: Omit<GeminiFailure, 'what'> = {
  reason: 'auth',
  retryable: false,
  hint: 'check the API key in the environment variable named by "api_key_env" (default GEMINI_API_KEY) and "base_url"',
};
const RATE: Omit<GeminiFailure, 'what'> = {
  reason: 'rate_limited',
  retryable: true,
  hint: 'wait and retry, lower the concurrency, or raise the quota',
};
const PROVIDER: Omit<GeminiFailure, 'what'> = {
  reason: 'provider',
  retryable: true,
  hint: 'the Gemini API failed; retry later',
};

/**
 * Read an HTTP status from an API error: the `"code": NNN` of Google's error JSON, or
 * `status: NNN`.
 */
function statusIn(text: string): number | null {
  const m = /"code"\s*:\s*([1-5]\d\d)\b/.exec(text) ?? /\bstatus:?\s*([1-5]\d\d)\b/i.exec(text);
  return m?.[1] === undefined ? null : Number(m[1]);
}

/**
 * Classify an HTTP status of the Gemini API.
 *
 * @param status - the HTTP status (400 … 599)
 * @returns the failure, or null for a status that says nothing particular
 */
export function classifyHttpStatus(status: number): GeminiFailure | null {
  if (status === 401 || status === 403) return { ...AUTH, what: `refused the credentials (HTTP ${status})` };
  if (status === 429) return { ...RATE, what: 'was rate limited (HTTP 429)' };
  if (status >= 500 && status <= 599)
    return { ...PROVIDER, what: `got a server error from the API (HTTP ${status})` };
  if (status === 404)
    return {
      ...PROVIDER,
      retryable: false,
      what: 'got HTTP 404 from the API (unknown model?)',
      hint: 'check "model" and "base_url"',
    };
  if (status >= 400 && status <= 499)
    return { ...PROVIDER, retryable: false, what: `got HTTP ${status} from the API` };
  return null;
}

/**
 * Classify an error message of the CLI (a `result` line's error, `error` lines, the stderr tail):
 * Google's API error JSON (`"code"`, `"status"`, `API_KEY_INVALID`) or its words.
 *
 * @param text - the messages, joined
 * @returns the failure, or null when the text says nothing about the API
 */
export function classifyErrorText(text: string): GeminiFailure | null {
  if (
    /API_KEY_INVALID|API key not valid|API key expired|UNAUTHENTICATED|PERMISSION_DENIED|invalid authentication/i.test(
      text,
    )
  )
    return { ...AUTH, what: 'refused the credentials' };
  const status = statusIn(text);
  if (status !== null) {
    const byStatus = classifyHttpStatus(status);
    if (byStatus !== null) return byStatus;
  }
  if (/RESOURCE_EXHAUSTED|quota|rate limit|too many requests/i.test(text))
    return { ...RATE, what: 'was rate limited' };
  if (/\b(INTERNAL|UNAVAILABLE|DEADLINE_EXCEEDED)\b|overloaded|server error/.test(text))
    return { ...PROVIDER, what: 'got a server error from the API' };
  if (/API Error|invalid stream|empty response|fetch failed|ECONNREFUSED|ECONNRESET|ETIMEDOUT/i.test(text))
    return { ...PROVIDER, what: 'failed to talk to the Gemini API' };
  return null;
}

/**
 * Classify an exit code: the documented ones, and 144–255, which is an HTTP status 400–511 of the
 * API kept modulo 256.
 *
 * @param code - the exit code (not 0)
 * @returns the failure (`crashed` for an unknown code)
 */
export function classifyExitCode(code: number): GeminiFailure {
  const known = GEMINI_EXIT_CODES[code];
  if (known !== undefined) {
    const { name: _name, ...failure } = known;
    return failure;
  }
  if (code >= 144 && code <= 255) {
    const byStatus = classifyHttpStatus(code + 256);
    if (byStatus !== null) return byStatus;
  }
  return {
    reason: 'crashed',
    retryable: true,
    what: 'failed',
    hint: 'see the stderr log of the attempt',
  };
}

/**
 * Decide why a run failed from its exit code and its messages: the messages win when they name an
 * API failure (auth, rate limit, server error); else the exit code says.
 *
 * @param exitCode - the exit code; null when a signal ended it
 * @param text - the result's error, the `error` lines and the stderr tail, joined
 * @returns the failure
 */
export function classifyFailure(exitCode: number | null, text: string): GeminiFailure {
  const fromCode = exitCode !== null && exitCode !== 0 ? classifyExitCode(exitCode) : null;
  // a documented fatal error (input, config, turn limit …) is what it says, whatever the text
  if (exitCode !== null && exitCode !== 1 && GEMINI_EXIT_CODES[exitCode] !== undefined && fromCode !== null)
    return fromCode;
  const fromText = classifyErrorText(text);
  if (fromText !== null) return fromText;
  if (fromCode !== null) return fromCode;
  return { reason: 'crashed', retryable: true, what: 'failed', hint: 'see the stderr log of the attempt' };
}
