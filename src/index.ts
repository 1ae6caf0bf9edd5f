/**
 * MisterSmith's public API. Start narrow: the engine, the store, the runtimes, and the types they
 * speak. Terms: docs/terminology.md.
 */
export { Engine } from './engine/engine.js';
export type { EngineEventMap, EngineOptions, SubmitTaskInput } from './engine/engine.js';
export {
  Ownership,
  openHomeStore,
  resolveHome,
  serveRequestsOnce,
  startEngineServices,
  storeFile,
} from './engine/home.js';
export { recover } from './engine/recovery.js';
export type { RecoveryReport } from './engine/recovery.js';
export { ReadyQueue } from './engine/queue.js';
export {
  loadConfig,
  loadWorkflow,
  parseWorkflowText,
  workflowFromObject,
  STARTER_CONFIG,
} from './engine/loader/index.js';
export type { SmithConfig } from './core/schema/index.js';
export { openSqliteStore, SqliteStore } from './store/sqlite/sqlite-store.js';
export type { Store, Op, CommitResult, TaskFilter, Lease, StoreOptions } from './store/store.js';
export { ProcessRuntime, spawnAttempt } from './runtime/process/index.js';
export type { SpawnPlan, StdoutProtocol, EndedBy } from './runtime/process/index.js';
export { builtinRuntimes } from './runtime/builtin.js';
export { HttpRuntime } from './runtime/http/index.js';
export type { HttpRuntimeOptions } from './runtime/http/index.js';
export { LlmRuntime, runModel, ModelCallError } from './runtime/llm/index.js';
export type { ModelAnswer, ModelSpec, RunModelOptions } from './runtime/llm/index.js';
export { ClaudeCodeRuntime } from './runtime/claude-code/index.js';
export type { ClaudeCodeRuntimeOptions } from './runtime/claude-code/index.js';
export { CodexRuntime } from './runtime/codex/index.js';
export type { CodexRuntimeOptions } from './runtime/codex/index.js';
export { GeminiRuntime } from './runtime/gemini/index.js';
export type { GeminiRuntimeOptions } from './runtime/gemini/index.js';
export { TmuxRuntime, attachCommand } from './runtime/tmux/index.js';
export type { TmuxRuntimeOptions } from './runtime/tmux/index.js';
export { promptWithGuidance } from './runtime/types.js';
export { FunctionRuntime } from './runtime/function/function-runtime.js';
export type { FunctionAgent } from './runtime/function/function-runtime.js';
export type {
  AgentRuntime,
  AttemptContext,
  AttemptHandle,
  AttemptOutcome,
  RuntimeEvent,
  TaskInput,
  FailureReason,
  TokenUsage,
} from './runtime/types.js';
export { Supervisor } from './runtime/supervisor/index.js';
export type {
  ChildSpec,
  Child,
  ExitReason,
  RestartType,
  Strategy,
  SupervisorOptions,
} from './runtime/supervisor/index.js';
export { verifyAuditChain } from './provenance/verify.js';
export type { ChainVerification } from './provenance/verify.js';
export {
  SmithError,
  NonRetryableError,
  ConfigError,
  WorkflowValidationError,
  TaskNotFoundError,
  StoreError,
} from './core/errors.js';
export type { ErrorCode } from './core/errors.js';
export type { TaskState, InstanceState, WorkflowState, AttemptState } from './core/states.js';
export type {
  AgentSpec,
  Attempt,
  AuditRecord,
  Task,
  TaskEvent,
  TaskSpec,
  Workflow,
  WorkflowSpec,
  Json,
} from './core/types.js';
