/**
 * The `process` runtime and the process-group helpers crash recovery uses.
 */
export { ProcessRuntime, DEFAULT_KILL_GRACE_MS, DEFAULT_LINGER_MS, spawnAttempt } from './process-runtime.js';
export type { EndedBy, SpawnPlan, StdoutProtocol } from './process-runtime.js';
export { buildArgv, resolveExecutable } from './command.js';
export type { CommandValues, ExecutableProblem, ExecutableResolution } from './command.js';
export { parseAgentLine, sanitizeLine } from './agent-line.js';
export type { AgentLine } from './agent-line.js';
export { DEFAULT_OUTPUT_LIMIT_BYTES, OutputCapture, TailBuffer, lineCapFor } from './output-capture.js';
export type { CapturedLine, OutputCaptureOptions } from './output-capture.js';
export {
  findAgentProcesses,
  findProcessesByEnv,
  groupAlive,
  isAlive,
  killProcessTree,
  readProcStat,
  signalGroup,
  signalProcess,
  waitUntilGone,
} from './process-group.js';
export type { ProcStat } from './process-group.js';
