/**
 * `/api/v1/waivers`: list waivers (of one task or all) with their effective status, grant one
 * for a task, revoke one. Every grant and revocation is an audit record; the engine audits every
 * use (`waiver.used`). The same checks as `smith waiver` (engine/waiver-records.ts).
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { checkDuration } from '../../core/schema/index.js';
import { waiverStatus } from '../../council/index.js';
import {
  grantWaiver,
  knownGates,
  listWaiverRecords,
  revokeWaiverRecord,
  type WaiverRecord,
} from '../../engine/waiver-records.js';
import { actorOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError } from '../errors.js';
import { errorBody } from '../schemas.js';

const iso = z.string().describe('ISO 8601 time');

const waiverView = z.object({
  id: z.string().describe('WV-0001, …'),
  task: z.string().describe('the id of the task it is for'),
  title: z.string().nullable(),
  gates: z.array(z.string()).describe('the council gates it lifts'),
  reason: z.string(),
  approvers: z.array(z.string()),
  status: z.enum(['active', 'expired', 'revoked']).describe('as recorded'),
  effective: z
    .enum(['active', 'expired', 'revoked'])
    .describe('its status now: an active waiver past its expiry is expired'),
  created_at: iso.nullable(),
  expires_at: iso,
  revoked_at: iso.nullable(),
  revoked_by: z.string().nullable(),
});

/** The API's form of a waiver: snake_case, ISO 8601 times. */
export type WaiverView = z.infer<typeof waiverView>;

function iso8601(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString();
}

/**
 * A waiver as the API shows it.
 * @param w - the recorded waiver
 * @param now - ms since the epoch, for the effective status
 * @returns its view
 */
export function waiverToView(w: WaiverRecord, now = Date.now()): WaiverView {
  return {
    id: w.id,
    task: w.task,
    title: w.title ?? null,
    gates: w.gates,
    reason: w.reason,
    approvers: w.approvers,
    status: w.status,
    effective: waiverStatus(w, now),
    created_at: iso8601(w.createdAt),
    expires_at: new Date(w.expiresAt).toISOString(),
    revoked_at: iso8601(w.revokedAt),
    revoked_by: w.revokedBy ?? null,
  };
}

/**
 * Register the waiver routes.
 * @param app - the server
 * @param ctx - its store and config (the council judges name the gates a waiver may lift)
 */
export function waiverRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/api/v1/waivers',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['waivers'],
        summary: 'Waivers, oldest first, with their effective status',
        querystring: z.strictObject({
          task: z.string().min(1).max(200).optional().describe('only the waivers of this task (its id)'),
        }),
        response: { 200: z.object({ waivers: z.array(waiverView) }), 400: errorBody },
      },
    },
    async (req) => {
      const now = Date.now();
      const rows = await listWaiverRecords(ctx.store, req.query.task, now);
      return { waivers: rows.map((w) => waiverToView(w, now)) };
    },
  );

  r.post(
    '/api/v1/waivers',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['waivers'],
        summary: 'Grant a waiver for a task (audited): it lifts the named gates until it expires',
        body: z.strictObject({
          task: z.string().min(1).max(200).describe('the id of the task it is for'),
          gates: z
            .array(z.string().min(1).max(200))
            .min(1)
            .max(50)
            .describe('constitution, verification, quality, integration, budget, scope, secrets, or a judge'),
          reason: z.string().min(1).max(10_000).describe('why it is needed (at least 10 characters)'),
          approvers: z.array(z.string().min(1).max(200)).min(1).max(50).describe('who approved it'),
          expires_in: z.string().min(1).max(50).describe('how long it lasts, such as "2d" or "12h"'),
          title: z.string().min(1).max(500).optional(),
        }),
        response: { 201: waiverView, 400: errorBody, 404: errorBody },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const d = checkDuration(b.expires_in);
      if (!d.ok || d.value <= 0)
        throw new ApiError(
          400,
          'INVALID_REQUEST',
          `body.expires_in: ${d.ok ? 'expected a duration greater than 0' : d.expected} (for example 2d or 12h), found ${b.expires_in}`,
        );
      const now = Date.now();
      const w = await grantWaiver(
        ctx.store,
        {
          taskId: b.task,
          gates: b.gates,
          reason: b.reason,
          approvers: b.approvers,
          expiresInMs: d.value,
          ...(b.title !== undefined ? { title: b.title } : {}),
        },
        knownGates(ctx.config),
        actorOf(req),
        now,
      );
      return reply.code(201).send(waiverToView(w, now));
    },
  );

  r.post(
    '/api/v1/waivers/:id/revoke',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['waivers'],
        summary: 'Revoke a waiver (audited): it lifts nothing from now on',
        params: z.strictObject({
          id: z.string().min(1).max(200).describe('WV-0001, …'),
        }),
        response: { 200: waiverView, 400: errorBody, 409: errorBody },
      },
    },
    async (req) => waiverToView(await revokeWaiverRecord(ctx.store, req.params.id, actorOf(req))),
  );
}
