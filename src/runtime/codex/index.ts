/**
 * The `codex` runtime: OpenAI's Codex CLI (`codex exec --json`) as a supervised agent.
 */
export {
  CODEX_INSTALL_HINT,
  CODEX_SANDBOX_MODES,
  CodexRuntime,
  DEFAULT_CODEX_API_KEY_ENV,
  DEFAULT_CODEX_IDLE_TIMEOUT_MS,
  DEFAULT_CODEX_PROVIDER,
  DEFAULT_CODEX_SANDBOX,
  buildCodexArgv,
  codexConfigProblem,
} from './codex-runtime.js';
export type { CodexArgvInput, CodexRuntimeOptions, CodexSandboxMode } from './codex-runtime.js';
export {
  CodexEventParser,
  TOOL_OUTPUT_CHARS,
  ZERO_CODEX_USAGE,
  classifyCodexError,
  readUsageTotals,
  toTokenUsage,
} from './codex-events.js';
export type {
  CodexEventParserOptions,
  CodexFailureClass,
  CodexResult,
  CodexUsageTotals,
} from './codex-events.js';
export {
  DEFAULT_SESSION_KEEP_MS,
  defaultCodexHomeRoot,
  findRollout,
  prepareAttemptHomes,
  pruneCodexHomes,
  readRolloutUsage,
  releaseAttemptHomes,
  taskDirName,
} from './codex-home.js';
export type { AttemptHomes } from './codex-home.js';
