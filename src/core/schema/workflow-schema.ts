/**
 * The zod schema of workflow files. Input is the YAML as written; output is a
 * {@link WorkflowFile}: tasks in file order with durations in ms, before the config's defaults
 * and agents are applied (the loader does that). Pure: no I/O.
 */
import { z } from 'zod';
import type { AgentSpec, Budget, ExecutionMode, TaskSpec } from '../types.js';
import {
  agentNameSchema,
  agentsSchema,
  budgetSchema,
  modeSchema,
  capabilitiesSchema,
  durationSchema,
  envSchema,
  keySchema,
  nullAsAbsent,
  prioritySchema,
  recordError,
  retriesSchema,
  smithErrorMap,
  strictFields,
} from './config-schema.js';

/** A task as a workflow file gives it: `retries` and `priority` stay unset until defaults apply. */
export type WorkflowFileTask = Omit<TaskSpec, 'retries' | 'priority'> & {
  retries?: number;
  priority?: number;
  /** `spec:` as written (a file path or a map); the loader reads and validates it into `spec`. */
  rawSpec?: string | Record<string, unknown>;
};

/** A workflow file after validation, before the config is applied. */
export interface WorkflowFile {
  /** The `name:` field, if given. */
  name?: string;
  /** The workflow's own agents (`name` set from the key). */
  agents: Record<string, AgentSpec>;
  /** Tasks in file order. */
  tasks: WorkflowFileTask[];
  /** The workflow's spend cap. */
  budget?: Budget;
  /** Default execution mode of its tasks. */
  mode?: ExecutionMode;
}

const taskShape = {
  agent: agentNameSchema.optional(),
  capabilities: capabilitiesSchema.optional(),
  prompt: z
    .string({ error: "expected the task's prompt as a string (the text or command it runs)" })
    .refine((s) => s.trim() !== '', {
      error: 'expected a non-empty prompt (the text or command the task runs)',
      params: { showFound: true },
    }),
  needs: z
    .preprocess(
      (v) => (typeof v === 'string' ? [v] : v),
      z.array(keySchema, { error: 'expected a list of task keys, such as [build, lint]' }),
    )
    .optional(),
  timeout: durationSchema(true).optional(),
  retries: retriesSchema.optional(),
  priority: prioritySchema.optional(),
  workdir: z
    .string({ error: 'expected a directory path (relative to the workflow file)' })
    .min(1, { error: 'expected a directory path (relative to the workflow file)' })
    .optional(),
  env: nullAsAbsent(envSchema),
  budget: nullAsAbsent(budgetSchema),
  mode: modeSchema.optional(),
  workspace: z
    .enum(['worktree', 'none'], {
      error: 'expected worktree (run in its own git worktree and branch) or none',
    })
    .optional(),
  repo: z
    .string({ error: 'expected the path of a git repository (relative to the workflow file)' })
    .min(1, { error: 'expected the path of a git repository (relative to the workflow file)' })
    .optional(),
  spec: z
    .union([z.string().min(1), z.record(z.string(), z.unknown())], {
      error:
        'expected a working spec: a file path (relative to the workflow file) or the spec itself as a map',
    })
    .optional(),
  trigger: z
    .enum(['all_success', 'all_done'], {
      error: 'expected all_success (run when every need completed) or all_done (run when every need ended)',
    })
    .optional(),
};

/** The fields of a task, for messages and tooling. */
export const TASK_FIELDS: readonly string[] = Object.keys(taskShape);

type RawTask = z.output<typeof taskSchema>;

const routeCheck = {
  // Run even when another field failed, so a task missing both agent and prompt hears of both.
  when: (payload: z.core.ParsePayload) =>
    typeof payload.value === 'object' && payload.value !== null && !Array.isArray(payload.value),
};

function checkRoute(t: { agent?: unknown; capabilities?: unknown }, ctx: z.core.$RefinementCtx<unknown>) {
  const caps = t.capabilities;
  if (t.agent === undefined && (caps === undefined || (Array.isArray(caps) && caps.length === 0))) {
    ctx.addIssue({
      code: 'custom',
      message:
        'a task needs "agent:" (the agent to run it on) or "capabilities:" (to run it on any agent that has them), or both',
    });
  }
}

function toTask(key: string, t: RawTask): WorkflowFileTask {
  const out: WorkflowFileTask = { key, prompt: t.prompt, needs: t.needs ?? [] };
  if (t.agent !== undefined) out.agent = t.agent;
  if (t.capabilities !== undefined) out.capabilities = t.capabilities;
  if (t.timeout !== undefined) out.timeoutMs = t.timeout;
  if (t.retries !== undefined) out.retries = t.retries;
  if (t.priority !== undefined) out.priority = t.priority;
  if (t.workdir !== undefined) out.workdir = t.workdir;
  if (t.env !== undefined) out.env = t.env;
  if (t.trigger !== undefined) out.trigger = t.trigger;
  if (t.budget !== undefined) out.budget = t.budget;
  if (t.mode !== undefined) out.mode = t.mode;
  if (t.workspace === 'worktree') out.workspace = 'worktree';
  if (t.repo !== undefined) out.repo = t.repo;
  if (t.spec !== undefined) out.rawSpec = t.spec as string | Record<string, unknown>;
  return out;
}

/** One task in the map form (`tasks: { <key>: <task> }`); outputs its fields without `key`. */
export const taskSchema = strictFields(taskShape, 'a task').superRefine(checkRoute, routeCheck);

/** One task in the list form (`tasks: [ { key: <key>, … } ]`). */
export const taskListItemSchema = strictFields({ key: keySchema, ...taskShape }, 'a task').superRefine(
  checkRoute,
  routeCheck,
);

const taskMapSchema = z
  .record(keySchema, taskSchema, {
    error: recordError('expected the tasks as a map (key: task) or a list of tasks'),
  })
  .refine((m) => Object.keys(m).length > 0, { error: 'expected at least one task' })
  .transform((m) => Object.entries(m).map(([key, t]) => toTask(key, t)));

const taskListSchema = z
  .array(taskListItemSchema, { error: 'expected the tasks as a map (key: task) or a list of tasks' })
  .min(1, { error: 'expected at least one task' })
  .superRefine(
    (list, ctx) => {
      const seen = new Map<string, number>();
      list.forEach((t: { key?: unknown }, i) => {
        if (typeof t !== 'object' || t === null || typeof t.key !== 'string') return;
        const first = seen.get(t.key);
        if (first === undefined) seen.set(t.key, i);
        else
          ctx.addIssue({
            code: 'custom',
            path: [i, 'key'],
            message: `duplicate task key "${t.key}" (also at tasks[${first}]); give each task its own key`,
          });
      });
    },
    // Run even when an item failed, so a duplicate key is reported with the other problems.
    { when: (payload) => Array.isArray(payload.value) },
  )
  .transform((list) => list.map(({ key, ...t }) => toTask(key, t)));

/**
 * `tasks:` as a map (the primary form) or a list of tasks with `key` fields. A union would bury one
 * form's issues inside an `invalid_union` issue, so the form is chosen by the input's shape and the
 * chosen schema's issues are passed up with their own paths.
 */
export const tasksSchema = z.unknown().transform((v, ctx): WorkflowFileTask[] => {
  const r = Array.isArray(v)
    ? taskListSchema.safeParse(v, { error: smithErrorMap })
    : taskMapSchema.safeParse(v, { error: smithErrorMap });
  if (r.success) return r.data;
  // Each issue is already finalized (message set); re-raise it unchanged, at its own path.
  for (const iss of r.error.issues) ctx.addIssue({ ...iss } as z.core.$ZodRawIssue);
  return z.NEVER;
});

/**
 * A whole workflow file: `name` (optional; the loader defaults it to the file's base name),
 * `agents` (map; merged over the config's by the loader), `tasks` (map or list; at least one).
 * Unknown fields are errors. Outputs a {@link WorkflowFile}.
 */
export const workflowFileSchema = strictFields(
  {
    name: z
      .string({ error: 'expected the workflow name as a string' })
      .refine((s) => s.trim() !== '', {
        error: 'expected a non-empty workflow name',
        params: { showFound: true },
      })
      .optional(),
    agents: nullAsAbsent(agentsSchema),
    budget: nullAsAbsent(budgetSchema),
    mode: modeSchema.optional(),
    tasks: tasksSchema,
  },
  'a workflow',
).transform((raw): WorkflowFile => {
  const out: WorkflowFile = { agents: raw.agents ?? {}, tasks: raw.tasks };
  if (raw.name !== undefined) out.name = raw.name.trim();
  if (raw.budget !== undefined) out.budget = raw.budget;
  if (raw.mode !== undefined) out.mode = raw.mode;
  return out;
});
