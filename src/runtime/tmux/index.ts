/**
 * The `tmux` runtime: interactive CLI agents hosted in tmux panes (see docs/runtimes/tmux.md).
 */
export {
  TmuxRuntime,
  DEFAULT_QUIET_MS,
  attachCommand,
  sessionNameFor,
  socketNameFor,
} from './tmux-runtime.js';
export type { TmuxRuntimeOptions } from './tmux-runtime.js';
export { Tmux, TmuxCommandError, isServerGoneMessage, TMUX_COMMAND_TIMEOUT_MS } from './tmux.js';
export type { PaneProgram } from './tmux.js';
export { TerminalLineDecoder, DEFAULT_MAX_LINE_CHARS } from './pane-output.js';
export {
  SHELLS,
  isShellCommand,
  makeSentinel,
  matchEnd,
  postScript,
  preScript,
  promptGroup,
  shellQuote,
  typedText,
} from './sentinel.js';
export type { EndMatch, Sentinel } from './sentinel.js';
