/**
 * `/api/v1/agents`: the agents of the home, their instances' states and restarts.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AgentRecord } from '../../core/types.js';
import { SmithError } from '../../core/errors.js';
import type { ApiContext } from '../context.js';
import { errorBody } from '../schemas.js';

const agentView = z.object({
  name: z.string(),
  runtime: z.string(),
  capabilities: z.array(z.string()),
  concurrency: z.number(),
  error: z.string().nullable().describe('why the agent cannot run, when its supervisor gave up'),
  restarts: z.number().describe('instance restarts in total'),
  instances: z.array(
    z.object({ index: z.number(), state: z.string(), restarts: z.number(), updated_at: z.string() }),
  ),
});

function view(a: AgentRecord, errors: Record<string, string>): z.infer<typeof agentView> {
  return {
    name: a.name,
    runtime: a.spec.runtime,
    capabilities: a.spec.capabilities,
    concurrency: a.spec.concurrency,
    error: errors[a.name] ?? null,
    restarts: a.instances.reduce((n, i) => n + i.restarts, 0),
    instances: a.instances.map((i) => ({
      index: i.index,
      state: i.state,
      restarts: i.restarts,
      updated_at: new Date(i.updatedAt).toISOString(),
    })),
  };
}

/** Register the agent routes. */
export function agentRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/api/v1/agents',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['agents'],
        summary: 'The agents and their instances',
        response: { 200: z.object({ agents: z.array(agentView) }) },
      },
    },
    async () => {
      const errors = ctx.engine.agentErrors();
      return { agents: (await ctx.store.listAgents()).map((a) => view(a, errors)) };
    },
  );
  r.get(
    '/api/v1/agents/:name',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['agents'],
        summary: 'One agent: its definition (secrets left out), instances and restarts',
        params: z.strictObject({ name: z.string().min(1).max(200) }),
        response: { 200: agentView.extend({ spec: z.looseObject({}) }), 404: errorBody },
      },
    },
    async (req) => {
      const a = (await ctx.store.listAgents()).find((x) => x.name === req.params.name);
      if (!a)
        throw new SmithError(
          'AGENT_NOT_FOUND',
          `no agent is named ${req.params.name}; list them with GET /api/v1/agents`,
        );
      // env and headers may carry secrets: only their names are shown
      const spec: Record<string, unknown> = { ...a.spec };
      for (const k of ['env', 'headers'] as const) {
        const v = spec[k];
        if (v && typeof v === 'object')
          spec[k] = Object.fromEntries(Object.keys(v).map((n) => [n, '<redacted>']));
      }
      return { ...view(a, ctx.engine.agentErrors()), spec };
    },
  );
}
