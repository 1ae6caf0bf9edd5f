/**
 * The `smith demo` workflow and its helpers. The agents themselves are programs under `agents/`,
 * run by the `process` runtime; they are not imported here.
 */
export {
  buildDemoWorkflow,
  findDemoRepo,
  DEMO_TASK_TIMEOUT_MS,
  DEMO_TESTS_TIMEOUT_MS,
  type DemoWorkflowOptions,
} from './demo-workflow.js';
export {
  detectTestCommand,
  TEST_MANIFESTS,
  type DetectedTestCommand,
  type TestTool,
} from './detect-tests.js';
