/**
 * `/api/v1/tasks`: list (filters, cursor pagination), detail (attempts, events, verdicts), create,
 * and the interventions cancel, pause, resume, retry, approve, reject, override, guide.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SmithError } from '../../core/errors.js';
import { TASK_STATES, type TaskState } from '../../core/states.js';
import type { Task } from '../../core/types.js';
import { actionRefusal, taskDetailView, taskView, type TaskAction } from '../../core/views.js';
import { findOneTask } from '../../engine/find-task.js';
import { guideTask, MAX_GUIDANCE_CHARS } from '../../engine/interventions.js';
import { workflowFromObject } from '../../engine/loader/index.js';
import { actorOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError } from '../errors.js';
import { decodeCursor, encodeCursor } from '../pagination.js';
import { errorBody, taskDetailSchema, taskViewSchema } from '../schemas.js';

const taskId = z.strictObject({ id: z.string().min(1).max(200) });

const listQuery = z.strictObject({
  state: z.string().max(500).optional().describe('comma-separated task states'),
  agent: z.string().max(200).optional(),
  workflow: z.string().max(200).optional().describe('workflow id'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(500).optional().describe('next_cursor of the previous page'),
  match: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe('a task id, id prefix or key: answers the one task it names (a key: its newest task), alone'),
  include: z.enum(['output']).optional().describe("output: each task's output too"),
});

const createBody = z
  .strictObject({
    agent: z.string().min(1).max(200).optional(),
    capabilities: z.array(z.string().min(1).max(200)).max(50).optional(),
    prompt: z.string().min(1).max(1_000_000),
    key: z.string().min(1).max(200).optional().describe('the task key (default "task")'),
    priority: z.number().int().min(1).max(10).optional(),
    timeout: z
      .union([z.string().max(50), z.number().int().positive()])
      .optional()
      .describe('"10m", "30s" or ms'),
    retries: z.number().int().min(0).max(100).optional(),
    workdir: z.string().min(1).max(4096).optional().describe("default: the server's working directory"),
    env: z.record(z.string().max(200), z.string().max(100_000)).optional(),
    budget: z
      .strictObject({ usd: z.number().positive().optional(), tokens: z.number().int().positive().optional() })
      .optional(),
  })
  .refine((b) => b.agent !== undefined || (b.capabilities?.length ?? 0) > 0, {
    error: 'give "agent" (an agent name) or "capabilities" (a list)',
  });

const actionBody = z
  .strictObject({
    reason: z.string().max(10_000).optional(),
    verdict: z.enum(['approve', 'reject']).optional().describe('override only'),
    text: z.string().max(MAX_GUIDANCE_CHARS).optional().describe('guide only: the guidance'),
  })
  .nullish();

const isCursor = (v: unknown): v is { c: number; i: string } =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as { c?: unknown }).c === 'number' &&
  typeof (v as { i?: unknown }).i === 'string';

async function mustGet(ctx: ApiContext, id: string): Promise<Task> {
  const t = await ctx.store.getTask(id);
  if (!t)
    throw new SmithError('TASK_NOT_FOUND', `no task has the id ${id}; list tasks with GET /api/v1/tasks`);
  return t;
}

/** Task details kept serialized, at most this many (least recently stored dropped first). */
const DETAIL_CACHE_ENTRIES = 1000;

/** Send JSON already serialized (Fastify sends a string as it is, past the response schema). */
function sendJson(reply: FastifyReply, body: string): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(body);
}

/** Register the task routes. */
export function taskRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  // serialized details of tasks, valid while the store's change stamp of the task is the same
  const details = new Map<string, { stamp: string; body: string }>();

  r.get(
    '/api/v1/tasks',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['tasks'],
        summary: 'List tasks, newest first',
        querystring: listQuery,
        response: {
          200: z.object({
            tasks: z.array(taskViewSchema.extend({ output: z.string().nullable().optional() })),
            next_cursor: z.string().nullable(),
          }),
          400: errorBody,
          404: errorBody,
        },
      },
    },
    async (req) => {
      const q = req.query;
      const show = (t: Task) => (q.include === 'output' ? { ...taskView(t), output: t.output } : taskView(t));
      if (q.match !== undefined) {
        if (q.state || q.agent || q.workflow || q.cursor)
          throw new ApiError(
            400,
            'INVALID_REQUEST',
            'querystring.match: give it alone (no state, agent, workflow or cursor)',
          );
        return { tasks: [show(await findOneTask(ctx.store, q.match))], next_cursor: null };
      }
      const states = q.state
        ? q.state
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : undefined;
      for (const s of states ?? [])
        if (!TASK_STATES.includes(s as TaskState))
          throw new ApiError(
            400,
            'INVALID_REQUEST',
            `querystring.state: ${s} is not a task state; use ${TASK_STATES.join(', ')}`,
          );
      const after = q.cursor ? decodeCursor(q.cursor, isCursor) : undefined;
      const tasks = await ctx.store.listTasks({
        ...(states ? { state: states as TaskState[] } : {}),
        ...(q.agent ? { agent: q.agent } : {}),
        ...(q.workflow ? { workflowId: q.workflow } : {}),
        limit: q.limit + 1,
        newestFirst: true,
        ...(after ? { after: { createdAt: after.c, id: after.i } } : {}),
      });
      const page = tasks.slice(0, q.limit);
      const last = page[page.length - 1];
      return {
        tasks: page.map(show),
        next_cursor: tasks.length > q.limit && last ? encodeCursor({ c: last.createdAt, i: last.id }) : null,
      };
    },
  );

  r.get(
    '/api/v1/tasks/:id',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['tasks'],
        summary: 'A task with its attempts, events and verdicts',
        params: taskId,
        response: { 200: taskDetailSchema, 404: errorBody },
      },
    },
    async (req, reply) => {
      const id = req.params.id;
      // the stamp is read before the task: a write in between only makes the next stamp differ
      const stamp = ctx.store.changeStamp(id);
      const hit = details.get(id);
      if (hit !== undefined && hit.stamp === stamp) return sendJson(reply, hit.body);
      const t = await mustGet(ctx, id);
      const [attempts, events] = await Promise.all([ctx.store.getAttempts(t.id), ctx.store.getEvents(t.id)]);
      const body = JSON.stringify(taskDetailView(t, attempts, events));
      // a running task's duration grows with the clock: only details that do not are kept
      if (t.startedAt === null || t.endedAt !== null) {
        details.delete(id);
        details.set(id, { stamp, body });
        if (details.size > DETAIL_CACHE_ENTRIES) details.delete(details.keys().next().value!);
      }
      return sendJson(reply, body);
    },
  );

  r.post(
    '/api/v1/tasks',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['tasks'],
        summary: 'Create a task (a one-task workflow); answers once it is recorded',
        body: createBody,
        response: { 201: taskViewSchema, 400: errorBody, 422: errorBody },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const key = b.key ?? 'task';
      const spec = workflowFromObject(
        {
          name: key,
          tasks: {
            [key]: {
              ...(b.agent !== undefined ? { agent: b.agent } : {}),
              ...(b.capabilities !== undefined ? { capabilities: b.capabilities } : {}),
              prompt: b.prompt,
              ...(b.priority !== undefined ? { priority: b.priority } : {}),
              ...(b.timeout !== undefined ? { timeout: b.timeout } : {}),
              ...(b.retries !== undefined ? { retries: b.retries } : {}),
              ...(b.workdir !== undefined ? { workdir: b.workdir } : {}),
              ...(b.env !== undefined ? { env: b.env } : {}),
              ...(b.budget !== undefined ? { budget: b.budget } : {}),
            },
          },
        },
        { dir: ctx.workdir, source: 'POST /api/v1/tasks' },
        { ...ctx.config, agents: Object.fromEntries(ctx.engine.agentSpecs().map((a) => [a.name, a])) },
      );
      const t = spec.tasks[0]!;
      const { taskId: id } = await ctx.engine.submitTask(
        {
          ...(t.agent !== undefined ? { agent: t.agent } : {}),
          ...(t.capabilities !== undefined ? { capabilities: t.capabilities } : {}),
          prompt: t.prompt,
          key,
          priority: t.priority,
          ...(t.timeoutMs !== undefined ? { timeoutMs: t.timeoutMs } : {}),
          retries: t.retries,
          workdir: t.workdir ?? spec.dir,
          ...(t.env !== undefined ? { env: t.env } : {}),
          ...(t.budget !== undefined ? { budget: t.budget } : {}),
        },
        actorOf(req),
      );
      const task = await mustGet(ctx, id);
      return reply.code(201).send(taskView(task));
    },
  );

  const actions: { path: string; action: TaskAction | 'guide'; summary: string }[] = [
    {
      path: 'cancel',
      action: 'cancel',
      summary: 'Cancel a task (its agent is stopped; a governed task is rolled back)',
    },
    { path: 'pause', action: 'pause', summary: 'Pause a task (SIGSTOP when running, held when queued)' },
    { path: 'resume', action: 'resume', summary: 'Resume a paused task' },
    { path: 'retry', action: 'retry', summary: 'Run a failed, rejected or canceled task again' },
    {
      path: 'approve',
      action: 'approve',
      summary: 'Approve a task awaiting approval (strict mode): its change is applied',
    },
    { path: 'reject', action: 'reject', summary: 'Reject a task (body: reason)' },
    {
      path: 'override',
      action: 'override',
      summary: "Override the council's verdict (body: verdict, reason)",
    },
    { path: 'guide', action: 'guide', summary: "Give guidance to a task's next attempt (body: text)" },
  ];
  for (const a of actions) {
    r.post(
      `/api/v1/tasks/:id/${a.path}`,
      {
        config: { role: 'operator' },
        schema: {
          tags: ['tasks'],
          summary: a.summary,
          params: taskId,
          body: actionBody,
          response: {
            200: taskViewSchema.extend({ before: z.string() }),
            400: errorBody,
            404: errorBody,
            409: errorBody,
          },
        },
      },
      async (req) => {
        const before = await mustGet(ctx, req.params.id);
        const body = req.body ?? {};
        const actor = actorOf(req);
        const e = ctx.engine;
        let after: Task;
        if (a.action === 'guide') {
          if (body.text === undefined)
            throw new ApiError(400, 'INVALID_REQUEST', 'body.text: the guidance is missing');
          await guideTask(ctx.store, before, body.text, actor);
          e.noteGuidance(before.id);
          after = await mustGet(ctx, before.id);
        } else {
          const refused = actionRefusal(a.action, before);
          if (refused) throw new SmithError('INVALID_TRANSITION', refused, { context: { task: before.id } });
          switch (a.action) {
            case 'cancel':
              after = await e.cancel(before.id, actor, body.reason ?? 'canceled by a person');
              break;
            case 'pause':
              after = await e.pause(before.id, actor);
              break;
            case 'resume':
              after = await e.resumeTask(before.id, actor);
              break;
            case 'retry':
              after = await e.retry(before.id, actor);
              break;
            case 'approve':
              after = await e.approve(before.id, actor);
              break;
            case 'reject':
              after = await e.reject(before.id, actor, body.reason ?? 'rejected by a person');
              break;
            case 'override':
              after = await e.override(before.id, body.verdict ?? 'approve', actor, body.reason ?? '');
              break;
          }
        }
        return { ...taskView(after), before: before.state };
      },
    );
  }
}
