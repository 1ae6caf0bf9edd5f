/**
 * Schemas and checks for `smith.yaml` and workflow files. Pure: no I/O; the loaders in
 * `engine/loader/` read files and place errors at their line and column.
 */
export {
  BYTES_EXPECTED,
  DURATION_EXPECTED,
  MAX_DURATION_MS,
  checkBytes,
  checkDuration,
  describeFound,
  parseBytes,
  parseDuration,
} from './duration.js';
export type { Checked } from './duration.js';
export {
  CAPABILITY_PATTERN,
  DEFAULT_AGENT_CONCURRENCY,
  DEFAULT_ENGINE_CONCURRENCY,
  DEFAULT_KILL_GRACE_MS,
  DEFAULT_OUTPUT_LIMIT_BYTES,
  DEFAULT_RUNTIME,
  ENV_NAME_PATTERN,
  NAME_PATTERN,
  agentSpecSchema,
  agentsSchema,
  configSchema,
  defaultConfig,
  didYouMean,
  smithErrorMap,
} from './config-schema.js';
export type { AgentFields, JudgeConfig, ModelPrice, ServerConfig, SmithConfig } from './config-schema.js';
export { TASK_FIELDS, taskListItemSchema, taskSchema, workflowFileSchema } from './workflow-schema.js';
export type { WorkflowFile, WorkflowFileTask } from './workflow-schema.js';
export { checkDag, checkRouting, topologicalOrder, validateDag, validateRouting } from './dag.js';
export type { WorkflowProblem } from './dag.js';
