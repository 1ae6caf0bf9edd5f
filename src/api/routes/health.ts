/**
 * `/health` (liveness; the only route without a key) and `/ready` (the store answers, the engine
 * runs, the bus is reachable).
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiContext } from '../context.js';

/** Register the health routes. */
export function healthRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/health',
    {
      config: { public: true },
      schema: {
        tags: ['health'],
        summary: 'Liveness (no key needed)',
        response: { 200: z.object({ status: z.literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );
  const checks = z.object({ store: z.string(), engine: z.string(), bus: z.string() });
  r.get(
    '/ready',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['health'],
        summary: 'Readiness: store, engine and bus',
        response: {
          200: z.object({ status: z.literal('ready'), checks }),
          503: z.object({ status: z.literal('unavailable'), checks }),
        },
      },
    },
    async (_req, reply) => {
      const out = { store: 'ok', engine: 'ok', bus: 'ok (in-process)' };
      let ok = true;
      try {
        await ctx.store.auditHead();
      } catch (err) {
        ok = false;
        out.store = `failing: ${(err as Error).message}`;
      }
      if (ctx.engine.error !== undefined) {
        ok = false;
        out.engine = `stopped: ${ctx.engine.error instanceof Error ? ctx.engine.error.message : String(ctx.engine.error)}`;
      }
      if (ok) return { status: 'ready' as const, checks: out };
      return reply.code(503).send({ status: 'unavailable' as const, checks: out });
    },
  );
}
