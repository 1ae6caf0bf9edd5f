/**
 * The `claude-code` runtime: Claude Code run headless with stream-json output.
 */
export {
  ClaudeCodeRuntime,
  CLAUDE_INSTALL_HINT,
  DEFAULT_CLAUDE_COMMAND,
  DEFAULT_CLAUDE_IDLE_TIMEOUT_MS,
  NESTED_SESSION_ENV,
  buildClaudeArgv,
  buildClaudeEnv,
  claudeBudgetUsd,
} from './claude-code-runtime.js';
export type { ClaudeCodeRuntimeOptions } from './claude-code-runtime.js';
export {
  DEFAULT_LOG_BYTES,
  JSON_STRING_CHARS,
  StreamJsonParser,
  TOOL_OUTPUT_CHARS,
  classifyFailure,
  parseStreamJsonLine,
} from './stream-json.js';
export type {
  FailureClass,
  FailureFacts,
  StreamJsonLine,
  StreamJsonParserOptions,
  StreamJsonResult,
  StreamJsonStep,
} from './stream-json.js';
