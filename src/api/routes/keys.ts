/**
 * `/api/v1/keys` (admin): create a key (its token is in this answer only), list keys, revoke one.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { parseDuration } from '../../core/schema/index.js';
import { createApiKey, revokeApiKey } from '../../engine/api-keys.js';
import { apiKeyView } from '../../core/views.js';
import { actorOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError } from '../errors.js';
import { errorBody } from '../schemas.js';

const keyView = z.object({
  id: z.string(),
  role: z.enum(['viewer', 'operator', 'admin']),
  name: z.string(),
  created_by: z.string(),
  created_at: z.string(),
  expires_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
});

/** Register the key routes. */
export function keyRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post(
    '/api/v1/keys',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['keys'],
        summary: 'Create an API key; its token is shown in this answer only',
        body: z.strictObject({
          role: z.enum(['viewer', 'operator', 'admin']),
          name: z.string().min(1).max(200).optional(),
          expires_in: z
            .string()
            .max(50)
            .optional()
            .describe('a duration such as "24h" or "90m"; none: never expires'),
        }),
        response: { 201: keyView.extend({ token: z.string() }), 400: errorBody },
      },
    },
    async (req, reply) => {
      let expiresAt: number | null = null;
      if (req.body.expires_in !== undefined) {
        try {
          expiresAt = Date.now() + parseDuration(req.body.expires_in, 'body.expires_in');
        } catch (err) {
          throw new ApiError(400, 'INVALID_REQUEST', (err as Error).message);
        }
      }
      const made = await createApiKey(ctx.store, ctx.pepper, {
        role: req.body.role,
        ...(req.body.name !== undefined ? { name: req.body.name } : {}),
        expiresAt,
        createdBy: actorOf(req),
      });
      return reply.code(201).send({ ...apiKeyView(made.record), token: made.token });
    },
  );
  r.get(
    '/api/v1/keys',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['keys'],
        summary: 'Every API key (never a secret)',
        response: { 200: z.object({ keys: z.array(keyView) }) },
      },
    },
    async () => ({ keys: (await ctx.store.listApiKeys()).map(apiKeyView) }),
  );
  r.post(
    '/api/v1/keys/:id/revoke',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['keys'],
        summary: 'Revoke a key; it stops working at once',
        params: z.strictObject({ id: z.string().min(1).max(200) }),
        response: { 200: keyView, 400: errorBody },
      },
    },
    async (req) => {
      const k = await revokeApiKey(ctx.store, req.params.id, actorOf(req));
      ctx.keys.forget(k.id);
      return apiKeyView(k);
    },
  );
}
