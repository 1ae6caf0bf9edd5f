/**
 * The workflow `smith demo` runs: three agents look at a repository in parallel (inventory, tests,
 * placeholders) and a fourth writes the report from their outputs.
 */
import { execFileSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { SmithError } from '../core/errors.js';
import type { AgentSpec, Json, TaskSpec, WorkflowSpec } from '../core/types.js';
import { parseWorkingSpec } from '../council/index.js';

/** Options of {@link buildDemoWorkflow}. */
export interface DemoWorkflowOptions {
  /** Absolute path of the repository the demo looks at (the tasks' directory). */
  repoDir: string;
  /** Absolute path of the built `dist/` folder; the agents are `${distDir}/demo/agents/*.js`. */
  distDir: string;
  /** The node binary that runs the agents; default `process.execPath` (the running node). */
  nodePath?: string;
  /** When set, the report is also written to this file (env `SMITH_DEMO_REPORT` of the report task). */
  reportPath?: string;
  /**
   * A scratch clone of the repository: when set, a coding task `tidy` runs the tidy codemod in its
   * own worktree of this clone, is judged by the council, and is applied (auto mode) to the clone.
   */
  scratchRepo?: string;
}

/** Per-attempt timeout of the `tests` task: 10 minutes, in ms. */
export const DEMO_TESTS_TIMEOUT_MS = 10 * 60_000;

/** Per-attempt timeout of the other demo tasks: 2 minutes, in ms. */
export const DEMO_TASK_TIMEOUT_MS = 2 * 60_000;

/**
 * Build the demo workflow (`demo`): agents `inventory`, `tests`, `placeholders` and `report`, each a
 * `process` agent running `node <distDir>/demo/agents/<name>.js` with concurrency 1. Tasks
 * `inventory`, `tests` and `placeholders` need nothing, so they run in parallel; `report` needs all
 * three. `tests` has priority 3 (it starts first), a 10-minute timeout and no retry (a failing test
 * suite fails the task); the others have priority 5, a 2-minute timeout and 1 retry.
 *
 * @param opts - the repository, the `dist/` folder, the node binary, the report file
 * @returns the workflow, with `dir` = `opts.repoDir`
 * @example
 * const spec = buildDemoWorkflow({ repoDir: findDemoRepo(process.cwd(), packageRoot), distDir: join(packageRoot, 'dist') });
 */
export function buildDemoWorkflow(opts: DemoWorkflowOptions): WorkflowSpec {
  const node = opts.nodePath ?? process.execPath;
  const agent = (name: string, capabilities: string[]): AgentSpec => ({
    name,
    runtime: 'process',
    command: [node, join(opts.distDir, 'demo', 'agents', `${name}.js`)],
    capabilities,
    concurrency: 1,
  });
  const agents: Record<string, AgentSpec> = {
    inventory: agent('inventory', ['git', 'inventory']),
    tests: agent('tests', ['tests']),
    placeholders: agent('placeholders', ['scan']),
    report: agent('report', ['report']),
  };
  if (opts.scratchRepo !== undefined) agents.tidy = agent('tidy', ['code']);
  const tasks: TaskSpec[] = [
    {
      key: 'inventory',
      agent: 'inventory',
      prompt: 'Count the tracked files and their lines per language.',
      needs: [],
      timeoutMs: DEMO_TASK_TIMEOUT_MS,
      retries: 1,
      priority: 5,
    },
    {
      key: 'tests',
      agent: 'tests',
      prompt: "Run the repository's own test command and report the outcome.",
      needs: [],
      timeoutMs: DEMO_TESTS_TIMEOUT_MS,
      retries: 0,
      priority: 3,
    },
    {
      key: 'placeholders',
      agent: 'placeholders',
      prompt: 'Find marks of unfinished work (marker comments, stubs, skipped tests) in the tracked files.',
      needs: [],
      timeoutMs: DEMO_TASK_TIMEOUT_MS,
      retries: 1,
      priority: 5,
    },
    {
      key: 'report',
      agent: 'report',
      prompt: 'Write the report from the inventory, the test run and the placeholder scan.',
      needs: ['inventory', 'tests', 'placeholders'],
      // the report fans in whatever happened, failed tests included
      trigger: 'all_done',
      timeoutMs: DEMO_TASK_TIMEOUT_MS,
      retries: 1,
      priority: 5,
      ...(opts.reportPath === undefined ? {} : { env: { SMITH_DEMO_REPORT: opts.reportPath } }),
    },
  ];
  if (opts.scratchRepo !== undefined) {
    tasks.push({
      key: 'tidy',
      agent: 'tidy',
      prompt: 'Strip trailing whitespace from the source files and write SMITH_HEALTH.md from the findings.',
      needs: ['inventory', 'tests', 'placeholders'],
      trigger: 'all_done',
      timeoutMs: DEMO_TASK_TIMEOUT_MS,
      retries: 0,
      priority: 5,
      workspace: 'worktree',
      repo: opts.scratchRepo,
      mode: 'auto',
      spec: parseWorkingSpec(
        {
          id: 'DEMO-TIDY',
          title: 'Tidy trailing whitespace and add a health summary',
          risk_tier: 3,
          scope: { out: ['.git/**', '.github/**'] },
          invariants: ['Only whitespace at line ends and final newlines change in existing files'],
          verify: [{ name: 'whitespace', command: 'git diff --check HEAD~1 HEAD' }],
        },
        'the demo tidy task',
      ) as unknown as Json,
    });
  }
  return { name: 'demo', dir: opts.repoDir, agents, tasks };
}

/** The top directory of the git work tree holding `dir`, or null (not in a work tree, or no git). */
function gitToplevel(dir: string): string | null {
  try {
    const out = execFileSync('git', ['rev-parse', '--show-toplevel'], {
      cwd: dir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return out === '' ? null : out;
  } catch {
    return null;
  }
}

function samePath(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/**
 * Choose the repository `smith demo` looks at: the git work tree holding `cwd`, else the project's
 * own checkout (`packageRoot`) when that is the top of a git work tree.
 *
 * @param cwd - the directory the command was started in
 * @param packageRoot - the directory of MisterSmith's own `package.json`
 * @returns the absolute path of the repository's top directory
 * @throws SmithError `INVALID_ARGUMENT` when neither is in a git work tree (or git is not installed)
 */
export function findDemoRepo(cwd: string, packageRoot: string): string {
  const fromCwd = gitToplevel(cwd);
  if (fromCwd !== null) return fromCwd;
  // The package's own checkout only: an installed copy inside another project's node_modules is not one.
  const fromPackage = gitToplevel(packageRoot);
  if (fromPackage !== null && samePath(fromPackage, packageRoot)) return fromPackage;
  throw new SmithError(
    'INVALID_ARGUMENT',
    `smith demo needs a git repository: ${cwd} is not inside a git work tree (and neither is MisterSmith's own ` +
      `checkout at ${packageRoot}); run it inside a git repository (with git installed), e.g. "cd my-repo && smith demo"`,
    { context: { cwd, packageRoot } },
  );
}
