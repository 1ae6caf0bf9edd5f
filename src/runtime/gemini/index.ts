/**
 * The `gemini` runtime: Gemini CLI in headless stream-json mode.
 */
export {
  DEFAULT_GEMINI_IDLE_TIMEOUT_MS,
  DEFAULT_HOME_RETENTION_MS,
  GEMINI_APPROVAL_MODES,
  GEMINI_INSTALL_HINT,
  GeminiPlanError,
  GeminiRuntime,
  planGeminiAttempt,
} from './gemini-runtime.js';
export type { GeminiAttemptPlan, GeminiRuntimeOptions } from './gemini-runtime.js';
export { GeminiStreamParser, TOOL_OUTPUT_CHARS, tokensOfStats } from './stream-json.js';
export type {
  GeminiModelStats,
  GeminiResultLine,
  GeminiResultStats,
  GeminiStreamParserOptions,
} from './stream-json.js';
export {
  GEMINI_EXIT_CODES,
  classifyErrorText,
  classifyExitCode,
  classifyFailure,
  classifyHttpStatus,
} from './failure.js';
export type { GeminiFailure } from './failure.js';
export {
  DEFAULT_GEMINI_SETTINGS,
  findSessionFile,
  homeNameFor,
  mergeSettings,
  prepareHome,
  pruneHomes,
} from './home.js';
