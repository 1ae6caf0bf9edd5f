/**
 * `/api/v1/workflows`: submit a workflow (YAML text or a JSON object, the same contract as a
 * workflow file), list them, and read one's status with its tasks.
 */
import { isAbsolute } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SmithError } from '../../core/errors.js';
import { WORKFLOW_STATES, type WorkflowState } from '../../core/states.js';
import type { Workflow } from '../../core/types.js';
import { taskView } from '../../core/views.js';
import { parseWorkflowText, workflowFromObject } from '../../engine/loader/index.js';
import { actorOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError } from '../errors.js';
import { errorBody, taskViewSchema } from '../schemas.js';

const workflowView = z.object({
  id: z.string(),
  name: z.string(),
  state: z.string(),
  file: z.string().nullable(),
  dir: z.string(),
  created_at: z.string(),
  ended_at: z.string().nullable(),
});

function view(w: Workflow): z.infer<typeof workflowView> {
  return {
    id: w.id,
    name: w.name,
    state: w.state,
    file: w.file,
    dir: w.dir,
    created_at: new Date(w.createdAt).toISOString(),
    ended_at: w.endedAt === null ? null : new Date(w.endedAt).toISOString(),
  };
}

const submitBody = z
  .strictObject({
    yaml: z.string().min(1).max(1_000_000).optional().describe("the workflow file's text"),
    workflow: z.looseObject({}).optional().describe('the workflow as JSON (name, agents, tasks)'),
    dir: z
      .string()
      .min(1)
      .max(4096)
      .optional()
      .describe("absolute directory tasks run in (default: the server's)"),
  })
  .refine((b) => (b.yaml === undefined) !== (b.workflow === undefined), {
    error: 'give either "yaml" (the text of a workflow file) or "workflow" (a JSON object), not both',
  });

/** Register the workflow routes. */
export function workflowRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  // a workflow file may be posted as is
  for (const type of ['application/yaml', 'application/x-yaml', 'text/yaml']) {
    app.addContentTypeParser(type, { parseAs: 'string' }, (_req, body, done) => done(null, { yaml: body }));
  }

  r.post(
    '/api/v1/workflows',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['workflows'],
        summary: 'Submit a workflow (JSON {yaml} or {workflow}, or a YAML body); answers once it is recorded',
        body: submitBody,
        response: {
          201: z.object({ workflow: workflowView, tasks: z.array(taskViewSchema) }),
          400: errorBody,
          422: errorBody,
        },
      },
    },
    async (req, reply) => {
      const b = req.body;
      if (b.dir !== undefined && !isAbsolute(b.dir))
        throw new ApiError(
          400,
          'INVALID_REQUEST',
          `body.dir: expected an absolute directory, found ${b.dir}`,
        );
      const dir = b.dir ?? ctx.workdir;
      const config = {
        ...ctx.config,
        agents: Object.fromEntries(ctx.engine.agentSpecs().map((a) => [a.name, a])),
      };
      const spec =
        b.yaml !== undefined
          ? parseWorkflowText(b.yaml, `${dir}/request.yaml`, config)
          : workflowFromObject(b.workflow, { dir, source: 'POST /api/v1/workflows' }, config);
      const wf = await ctx.engine.submitWorkflow(spec, actorOf(req));
      const tasks = await ctx.store.listTasks({ workflowId: wf.id });
      return reply.code(201).send({ workflow: view(wf), tasks: tasks.map(taskView) });
    },
  );

  r.get(
    '/api/v1/workflows',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['workflows'],
        summary: 'List workflows, oldest first',
        querystring: z.strictObject({
          state: z.string().max(200).optional().describe('comma-separated states'),
        }),
        response: { 200: z.object({ workflows: z.array(workflowView) }), 400: errorBody },
      },
    },
    async (req) => {
      const states = req.query.state
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      for (const s of states ?? [])
        if (!WORKFLOW_STATES.includes(s as WorkflowState))
          throw new ApiError(
            400,
            'INVALID_REQUEST',
            `querystring.state: ${s} is not a workflow state; use ${WORKFLOW_STATES.join(', ')}`,
          );
      const wfs = await ctx.store.listWorkflows(states as WorkflowState[] | undefined);
      return { workflows: wfs.map(view) };
    },
  );

  r.get(
    '/api/v1/workflows/:id',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['workflows'],
        summary: 'A workflow, its task counts by state and its tasks',
        params: z.strictObject({ id: z.string().min(1).max(200) }),
        response: {
          200: z.object({
            workflow: workflowView,
            counts: z.record(z.string(), z.number()),
            tasks: z.array(taskViewSchema),
          }),
          404: errorBody,
        },
      },
    },
    async (req) => {
      const wf = await ctx.store.getWorkflow(req.params.id);
      if (!wf)
        throw new SmithError(
          'WORKFLOW_NOT_FOUND',
          `no workflow has the id ${req.params.id}; list them with GET /api/v1/workflows`,
        );
      const [counts, tasks] = await Promise.all([
        ctx.store.countTasks(wf.id),
        ctx.store.listTasks({ workflowId: wf.id }),
      ]);
      return { workflow: view(wf), counts: counts as Record<string, number>, tasks: tasks.map(taskView) };
    },
  );
}
