/**
 * Reads workflow files (and workflow objects from the API) into validated {@link WorkflowSpec}s:
 * schema, then the config's agents and defaults, then the DAG and routing checks.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { checkDag, checkRouting, smithErrorMap, workflowFileSchema } from '../../core/schema/index.js';
import type { SmithConfig, WorkflowProblem } from '../../core/schema/index.js';
import { ConfigError, NonRetryableError, WorkflowValidationError } from '../../core/errors.js';
import type { AgentSpec, Json, TaskSpec, WorkflowSpec } from '../../core/types.js';
import { parseWorkingSpec, parseWorkingSpecText, type WorkingSpec } from '../../council/index.js';
import {
  invalidFileError,
  issuesToProblems,
  parseYaml,
  problemLines,
} from '../../core/schema/yaml-source.js';
import type { PathSegment, ProblemPlace } from '../../core/schema/yaml-source.js';

/** Options of {@link workflowFromObject}. */
export interface WorkflowObjectOptions {
  /** The directory tasks run in by default and relative `workdir`s resolve against. */
  dir: string;
  /** The file the object came from, if any (becomes `WorkflowSpec.file`, absolute). */
  file?: string;
  /**
   * Where the object came from, named in messages when there is no `file` (`request body`,
   * `POST /v1/workflows`). Default: the file, else none.
   */
  source?: string;
}

interface BuildPlace extends ProblemPlace {
  /** Absolute file, for `WorkflowSpec.file` and error context. */
  absFile?: string;
  /** Absolute directory. */
  dir: string;
  /** Task keys of the `tasks:` map in file order, when known. */
  taskOrder?: string[];
}

/**
 * Builds a workflow from a plain object, as parsed from YAML or JSON: validates it, merges its
 * agents over the config's, applies the config's defaults, converts durations, and checks that it
 * can run.
 *
 * Defaults: a task's `retries` and `priority` come from `config.defaults` when unset; an agent
 * without `timeout` gets `config.defaults.timeoutMs`; a task without `timeout` that names an agent
 * gets that agent's timeout (a task routed by capabilities keeps none, and the runtime uses the
 * chosen agent's). `workdir` is made absolute against `dir`. `name` defaults to the file's base
 * name without extension, else `workflow`.
 *
 * @param obj - the workflow as data (`name`, `agents`, `tasks`)
 * @param opts - the directory, and the file or source it came from
 * @param config - the loaded config (agents and defaults)
 * @returns the validated workflow, tasks in input order
 * @throws ConfigError (code `CONFIG_INVALID`, context `{ file, problems }`) when the object does not
 *   fit the schema, every problem one per line as `path: expected …, found …`
 * @throws WorkflowValidationError (code `WORKFLOW_INVALID`, `problems`) when tasks need unknown or
 *   cyclic tasks or cannot be routed to an agent
 */
export function workflowFromObject(
  obj: unknown,
  opts: WorkflowObjectOptions,
  config: SmithConfig,
): WorkflowSpec {
  const absFile = opts.file === undefined ? undefined : path.resolve(opts.file);
  const place: BuildPlace = { dir: path.resolve(opts.dir) };
  const display = opts.source ?? opts.file;
  if (display !== undefined) place.display = display;
  if (absFile !== undefined) place.absFile = absFile;
  return buildWorkflow(obj, place, config);
}

/**
 * Builds a workflow from YAML text (see {@link workflowFromObject}); every error names the file,
 * line and column, the field path, what was found and what was expected.
 *
 * @param text - the YAML
 * @param file - the file as the user named it (messages show it as given); its directory, made
 *   absolute against the process's working directory, is the workflow's `dir`
 * @param config - the loaded config
 * @returns the validated workflow
 * @throws ConfigError (code `CONFIG_INVALID`, context `{ file, problems }`) listing every YAML
 *   syntax error, or else every schema problem, one per line as `file:line:col: path: …`
 * @throws WorkflowValidationError (code `WORKFLOW_INVALID`) whose message starts
 *   `workflow <file> cannot run:` then lists every DAG and routing problem, one per line
 */
export function parseWorkflowText(text: string, file: string, config: SmithConfig): WorkflowSpec {
  const absFile = path.resolve(file);
  const src = parseYaml(text, file, 'workflow file', absFile);
  const place: BuildPlace = { display: file, locate: src.locate, absFile, dir: path.dirname(absFile) };
  const order = src.keysAt(['tasks']);
  if (order !== undefined) place.taskOrder = order;
  return buildWorkflow(src.data, place, config);
}

/**
 * Reads and builds a workflow file (see {@link parseWorkflowText}).
 *
 * @param file - the path, relative to the process's working directory or absolute
 * @param config - the loaded config
 * @returns the validated workflow; `file` and `dir` are absolute
 * @throws NonRetryableError with code `WORKFLOW_NOT_FOUND` (context `{ file }`) when the file does
 *   not exist
 * @throws ConfigError when it cannot be read, is not YAML or does not fit the schema
 * @throws WorkflowValidationError when its tasks cannot run (cycles, unknown needs or agents, …)
 */
export async function loadWorkflow(file: string, config: SmithConfig): Promise<WorkflowSpec> {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new NonRetryableError(
        'WORKFLOW_NOT_FOUND',
        `workflow file ${file} not found (looked at ${abs}); check the path`,
        {
          cause: err,
          context: { file: abs },
        },
      );
    }
    if (code === 'EISDIR') {
      throw new ConfigError(`workflow file ${file} is a directory (${abs}); give the path of a YAML file`, {
        cause: err,
        context: { file: abs },
      });
    }
    throw new ConfigError(`cannot read workflow file ${file} (${abs}): ${(err as Error).message}`, {
      cause: err,
      context: { file: abs },
    });
  }
  return parseWorkflowText(text, file, config);
}

function buildWorkflow(data: unknown, place: BuildPlace, config: SmithConfig): WorkflowSpec {
  const label = place.display ?? 'input';
  const kind = place.locate === undefined ? 'workflow' : 'workflow file';
  if (data === null || data === undefined) {
    const problem = {
      path: [],
      at: 'value' as const,
      message: 'the workflow is empty; expected "tasks:" with at least one task',
    };
    throw invalidFileError(label, kind, place.absFile, problemLines(place, [problem]));
  }
  const r = workflowFileSchema.safeParse(data, { error: smithErrorMap });
  if (!r.success) {
    const problems = problemLines(place, issuesToProblems(r.error.issues, data));
    throw invalidFileError(label, kind, place.absFile, problems);
  }
  const wf = r.data;
  if (place.taskOrder !== undefined) {
    // JS objects put integer-like keys first; the YAML map knows the order they were written in.
    const rank = new Map(place.taskOrder.map((k, i) => [k, i]));
    wf.tasks.sort((a, b) => (rank.get(a.key) ?? 0) - (rank.get(b.key) ?? 0));
  }

  const agents: Record<string, AgentSpec> = {};
  for (const [name, spec] of Object.entries({ ...config.agents, ...wf.agents })) {
    const agent: AgentSpec = { ...spec };
    if (agent.timeoutMs === undefined && config.defaults.timeoutMs !== undefined) {
      agent.timeoutMs = config.defaults.timeoutMs;
    }
    agents[name] = agent;
  }

  const tasks: TaskSpec[] = wf.tasks.map(({ rawSpec, ...t }) => {
    const task: TaskSpec = {
      ...t,
      needs: [...new Set(t.needs)],
      retries: t.retries ?? config.defaults.retries,
      priority: t.priority ?? config.defaults.priority,
    };
    if (t.workspace === 'worktree' || rawSpec !== undefined) task.mode = t.mode ?? wf.mode ?? config.mode;
    if (t.repo !== undefined) task.repo = path.resolve(place.dir, t.repo);
    if (rawSpec !== undefined) task.spec = readTaskSpec(rawSpec, place.dir, t.key) as unknown as Json;
    const agentTimeout = t.agent === undefined ? undefined : agents[t.agent]?.timeoutMs;
    if (task.timeoutMs === undefined && agentTimeout !== undefined) task.timeoutMs = agentTimeout;
    if (t.workdir !== undefined) task.workdir = path.resolve(place.dir, t.workdir);
    return task;
  });

  // Checked on the tasks as written (needs not de-duplicated), so `needs` indexes point into the file.
  const found: WorkflowProblem[] = [...checkDag(wf.tasks), ...checkRouting(wf.tasks, agents)];
  if (found.length > 0) {
    const rawTasks = (data as { tasks?: unknown }).tasks;
    const lines = problemLines(
      place,
      found.map((p) => ({ path: toDataPath(p.path, rawTasks), message: p.message, at: 'value' as const })),
    );
    const subject = place.display ?? `"${wf.name ?? 'workflow'}"`;
    throw new WorkflowValidationError(
      `workflow ${subject} cannot run:\n${lines.map((l) => `  ${l}`).join('\n')}`,
      lines,
      {
        context: { file: place.absFile, problems: lines },
      },
    );
  }

  let name = wf.name;
  if (name === undefined && place.absFile !== undefined) {
    name = path.basename(place.absFile).replace(/\.(ya?ml|json)$/i, '');
  }
  const spec: WorkflowSpec = { name: name ?? 'workflow', dir: place.dir, agents, tasks };
  if (wf.budget !== undefined) spec.budget = wf.budget;
  if (wf.mode !== undefined) spec.mode = wf.mode;
  if (place.absFile !== undefined) spec.file = place.absFile;
  return spec;
}

/** Maps `['tasks', key, …]` to `['tasks', index, …]` when the tasks were written as a list. */
function toDataPath(p: (string | number)[], rawTasks: unknown): PathSegment[] {
  if (!Array.isArray(rawTasks) || p[0] !== 'tasks' || p.length < 2) return p;
  const index = rawTasks.findIndex((t) => (t as { key?: unknown } | null)?.key === p[1]);
  return index < 0 ? p : ['tasks', index, ...p.slice(2)];
}

/**
 * A task's `spec:`: a file (relative to the workflow's directory) or the spec itself, validated.
 * @throws ConfigError naming the file, line and field (or the task) of the problem
 */
function readTaskSpec(raw: string | Record<string, unknown>, dir: string, key: string): WorkingSpec {
  if (typeof raw !== 'string') return parseWorkingSpec(raw, `the spec of task ${key}`);
  const file = path.resolve(dir, raw);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `task ${key}: working spec ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}); fix "spec:" or write the file`,
      { context: { task: key, file } },
    );
  }
  return parseWorkingSpecText(text, file);
}
