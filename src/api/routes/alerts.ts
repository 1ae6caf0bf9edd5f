/**
 * `/api/v1/alerts` and `/api/v1/slos`: SLO alerts (list, detail, acknowledge) and the SLOs with
 * their SLI, burn rates and error budget. Registering this module also runs, for the server's
 * life, the SLO evaluator (every `alerting.evaluate_every`) and the webhook dispatcher (alert and
 * task events to `webhooks:`); both stop when the server closes.
 */
import type { FastifyInstance } from 'fastify';
import { SmithError } from '../../core/errors.js';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  ALERT_STATES,
  AlertEvaluator,
  alertView,
  parseAlertStates,
  type LogSink,
} from '../../observability/alerts.js';
import { evaluateSlo, sloView } from '../../observability/slo.js';
import { AlertAuditFeed, forwardTaskEvents, WebhookDispatcher } from '../../observability/webhooks.js';
import { actorOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError } from '../errors.js';
import { errorBody } from '../schemas.js';

const iso = z.string().describe('ISO 8601 time');

/** An alert (observability/alerts.ts `AlertView`). */
const alertSchema = z.object({
  id: z.string().describe('AL-0001, …'),
  slo: z.string(),
  state: z.enum(['firing', 'acknowledged', 'resolved']),
  severity: z.enum(['page', 'ticket']),
  summary: z.string(),
  data: z.unknown().describe('the SLO, and the windows and burn rates that fired it (and why it resolved)'),
  fired_at: iso,
  acked_at: iso.nullable(),
  acked_by: z.string().nullable(),
  resolved_at: iso.nullable(),
  updated_at: iso,
});

const ruleSchema = z.object({
  severity: z.enum(['page', 'ticket']),
  burn_rate_threshold: z.number(),
  long_window_ms: z.number(),
  short_window_ms: z.number(),
  long_burn_rate: z.number().nullable().describe('null when the window holds no ended task'),
  short_burn_rate: z.number().nullable(),
  long_events: z.number(),
  long_bad: z.number(),
  short_events: z.number(),
  short_bad: z.number(),
  firing: z.boolean(),
});

/** An evaluated SLO (observability/slo.ts `SloView`) and its open alerts. */
const sloSchema = z.object({
  name: z.string(),
  objective: z.number().describe('target fraction of good events, 0.99 for 99%'),
  sli: z.enum(['success_rate', 'latency']),
  window_ms: z.number(),
  threshold_ms: z.number().nullable(),
  agent: z.string().nullable(),
  sli_value: z.number().nullable().describe('good / total over the SLO window; null when nothing ended'),
  good_events: z.number(),
  total_events: z.number(),
  error_budget_remaining: z.number().describe('1 = untouched, 0 = spent, below 0 = overspent'),
  windows: z.array(ruleSchema).describe('the burn-rate rules: page 14.4x and 6x, ticket 1x'),
  evaluated_at: iso,
  open_alerts: z.array(z.string()).describe('ids of its firing or acknowledged alerts'),
});

const alertId = z.strictObject({ id: z.string().min(1).max(100) });
const listQuery = z.strictObject({
  state: z
    .string()
    .max(200)
    .optional()
    .describe(`comma-separated alert states: ${ALERT_STATES.join(', ')}`),
});

/**
 * Register the alert and SLO routes, and run the SLO evaluator and the webhook dispatcher until the
 * server closes.
 * @throws SmithError CONFIG_INVALID when a webhook's `secret_env` is not set
 */
export async function alertRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  const log: LogSink = app.log;
  const dispatcher = new WebhookDispatcher({ webhooks: ctx.config.webhooks, log });
  const alertEvents = (['alert.fired', 'alert.acknowledged', 'alert.resolved'] as const).some((e) =>
    dispatcher.wants(e),
  );
  const feed = alertEvents ? new AlertAuditFeed(ctx.store, dispatcher) : undefined;
  await feed?.start();
  const stopTasks = forwardTaskEvents(ctx.engine, dispatcher);
  const evaluator = new AlertEvaluator({
    store: ctx.store,
    slos: ctx.config.slos,
    everyMs: ctx.config.alerting.evaluateEveryMs,
    log,
    ...(feed ? { onChange: () => feed.poll() } : {}),
  });
  evaluator.start();
  app.addHook('onClose', async () => {
    stopTasks();
    await evaluator.close();
    await feed?.poll().catch(() => undefined);
    await dispatcher.close();
  });

  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/api/v1/alerts',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['alerts'],
        summary: 'List SLO alerts, newest first',
        querystring: listQuery,
        response: { 200: z.object({ alerts: z.array(alertSchema) }), 400: errorBody },
      },
    },
    async (req) => {
      let states: (typeof ALERT_STATES)[number][] | undefined;
      if (req.query.state !== undefined) {
        const parsed = parseAlertStates(req.query.state);
        if ('bad' in parsed)
          throw new ApiError(
            400,
            'INVALID_REQUEST',
            `querystring.state: ${parsed.bad} is not an alert state; use ${ALERT_STATES.join(', ')}`,
          );
        states = parsed.states;
      }
      const alerts = await ctx.store.listAlerts(states);
      return { alerts: alerts.map(alertView) };
    },
  );

  r.get(
    '/api/v1/alerts/:id',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['alerts'],
        summary: 'One SLO alert',
        params: alertId,
        response: { 200: alertSchema, 404: errorBody },
      },
    },
    async (req) => {
      const a = await ctx.store.getAlert(req.params.id);
      if (!a)
        throw new SmithError(
          'ALERT_NOT_FOUND',
          `no alert has the id ${req.params.id}; list alerts with GET /api/v1/alerts`,
        );
      return alertView(a);
    },
  );

  r.post(
    '/api/v1/alerts/:id/ack',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['alerts'],
        summary: 'Acknowledge a firing alert (an acknowledged one stays as it is; a resolved one is 409)',
        params: alertId,
        body: z.strictObject({}).nullish(),
        response: { 200: alertSchema, 404: errorBody, 409: errorBody },
      },
    },
    async (req) => {
      if (!(await ctx.store.getAlert(req.params.id)))
        throw new SmithError(
          'ALERT_NOT_FOUND',
          `no alert has the id ${req.params.id}; list alerts with GET /api/v1/alerts`,
        );
      const { alert } = await evaluator.acknowledge(req.params.id, actorOf(req));
      return alertView(alert);
    },
  );

  r.get(
    '/api/v1/slos',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['slos'],
        summary: 'Each SLO with its SLI, burn rate per alert window and error budget remaining',
        response: { 200: z.object({ slos: z.array(sloSchema) }) },
      },
    },
    async () => {
      const now = Date.now();
      const [statuses, open] = await Promise.all([
        Promise.all(ctx.config.slos.map((s) => evaluateSlo(ctx.store, s, now))),
        ctx.store.listAlerts(['firing', 'acknowledged']),
      ]);
      return {
        slos: statuses.map((s) => ({
          ...sloView(s),
          open_alerts: open.filter((a) => a.slo === s.slo.name).map((a) => a.id),
        })),
      };
    },
  );
}
