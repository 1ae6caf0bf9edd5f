/**
 * Loaders: read `smith.yaml` and workflow files, validate them, and report every problem with its
 * file, line and column.
 */
export { CONFIG_FILE_NAME, loadConfig, parseConfigText } from './load-config.js';
export type { LoadConfigOptions } from './load-config.js';
export { loadWorkflow, parseWorkflowText, workflowFromObject } from './load-workflow.js';
export type { WorkflowObjectOptions } from './load-workflow.js';
export { STARTER_CONFIG } from './starter-config.js';
