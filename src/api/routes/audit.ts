/**
 * `/api/v1/audit`: page through the audit records, and verify the chain (with the home's public
 * key when it has one: checkpoints and verdict signatures too).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { keysDir } from '../../engine/home.js';
import { loadPublicKey, PUBLIC_KEY_FILE, verifyAuditChain } from '../../provenance/index.js';
import type { ApiContext } from '../context.js';
import { errorBody } from '../schemas.js';

const record = z.object({
  seq: z.number(),
  time: z.string(),
  actor: z.string(),
  action: z.string(),
  subject: z.string(),
  data: z.unknown(),
  prev_hash: z.string(),
  hash: z.string(),
});

/** Register the audit routes. */
export function auditRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/api/v1/audit',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['audit'],
        summary: 'Audit records from seq `from`, ascending',
        querystring: z.strictObject({
          from: z.coerce.number().int().min(1).default(1),
          limit: z.coerce.number().int().min(1).max(5000).default(100),
        }),
        response: {
          200: z.object({ records: z.array(record), next_from: z.number().nullable() }),
          400: errorBody,
        },
      },
    },
    async (req) => {
      const rows = await ctx.store.auditRecords(req.query.from, req.query.limit + 1);
      const page = rows.slice(0, req.query.limit);
      return {
        records: page.map((x) => ({
          seq: x.seq,
          time: new Date(x.time).toISOString(),
          actor: x.actor,
          action: x.action,
          subject: x.subject,
          data: x.data,
          prev_hash: x.prevHash,
          hash: x.hash,
        })),
        next_from: rows.length > req.query.limit ? rows[req.query.limit]!.seq : null,
      };
    },
  );
  r.post(
    '/api/v1/audit/verify',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['audit'],
        summary: 'Verify the hash chain, checkpoints and verdict signatures; names the first broken record',
        response: {
          200: z.object({
            ok: z.boolean(),
            checked: z.number(),
            head: z.object({ seq: z.number(), hash: z.string() }),
            broken: z.object({ seq: z.number(), reason: z.string() }).nullable(),
            checkpoints: z.number(),
            signatures: z.number(),
            signed: z.boolean().describe('whether signatures were checked (the home has a key)'),
          }),
        },
      },
    },
    async () => {
      const keyFile = join(keysDir(ctx.home), PUBLIC_KEY_FILE);
      const publicKey = existsSync(keyFile) ? await loadPublicKey(keyFile) : undefined;
      const v = await verifyAuditChain(ctx.store, undefined, publicKey ? { publicKey } : {});
      return {
        ok: v.ok,
        checked: v.checked,
        head: v.head,
        broken: v.broken ? { seq: v.broken.seq, reason: v.broken.reason } : null,
        checkpoints: v.checkpoints,
        signatures: v.signatures,
        signed: publicKey !== undefined,
      };
    },
  );
}
