/**
 * Metrics: `GET /metrics` (Prometheus text format) and `GET /api/v1/metrics/stream` (a KPI
 * snapshot every second, as Server-Sent Events), and the hook that times every API request by its
 * route pattern. Series and fields are listed in docs/events-and-metrics.md.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SmithMetrics, UNMATCHED_ROUTE } from '../../observability/metrics.js';
import type { ApiContext } from '../context.js';
import { errorBody } from '../schemas.js';
import { sseMessage, SseStream, sseStreams } from '../sse.js';

/** Interval of KPI snapshots on the metrics stream, in ms. */
export const KPI_INTERVAL_MS = 1000;

/** Register the metrics routes and the request timing hook. */
export function metricsRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const streams = sseStreams(app);
  const metrics = new SmithMetrics({ store: ctx.store, engine: ctx.engine, streams: () => streams.counts() });
  const kpiClients = new Set<SseStream>();
  let timer: NodeJS.Timeout | undefined;
  let sending = false;

  const snapshot = async (): Promise<string> =>
    sseMessage({ event: 'kpi', data: JSON.stringify(await metrics.kpi()) });
  const broadcast = async (): Promise<void> => {
    // one snapshot a second for every client; a slow store skips a beat instead of piling up
    if (sending) return;
    sending = true;
    try {
      const msg = await snapshot();
      for (const s of kpiClients) s.send(msg);
    } catch (err) {
      app.log.warn({ err }, 'the metrics stream could not take a snapshot');
    } finally {
      sending = false;
    }
  };
  streams.onDelivered((lagMs) => metrics.observeDeliveryLag(lagMs / 1000));
  streams.onClose(() => {
    if (timer) clearInterval(timer);
    timer = undefined;
    metrics.close();
  });

  // every answer is timed by its route pattern; event streams are left out (they last for hours)
  app.addHook('onResponse', async (req, reply) => {
    if (String(reply.raw.getHeader('content-type') ?? '').startsWith('text/event-stream')) return;
    metrics.observeRequest(
      req.method,
      req.routeOptions.url ?? UNMATCHED_ROUTE,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
  });

  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/metrics',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['metrics'],
        summary: 'Prometheus metrics (text format 0.0.4); every series is named smith_*',
        response: {
          200: {
            description: 'the Prometheus text exposition format',
            content: { 'text/plain': { schema: z.string() } },
          },
        },
      },
    },
    async (_req, reply) => {
      const text = await metrics.text();
      return reply.type(metrics.contentType).send(text);
    },
  );

  r.get(
    '/api/v1/metrics/stream',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['metrics'],
        summary: 'Server-Sent Events: a KPI snapshot ("kpi" event) at once, then every second',
        querystring: z.strictObject({}),
        response: {
          200: {
            description:
              'an endless text/event-stream of "kpi" events: tasks by state, queue depth, success rate and latency of the last 5 minutes, active agents',
            content: { 'text/event-stream': { schema: z.string() } },
          },
          400: errorBody,
        },
      },
    },
    async (_req, reply) => {
      const first = await snapshot();
      const stream = new SseStream(reply, 'kpi');
      if (!streams.add(stream)) return;
      stream.send(first);
      kpiClients.add(stream);
      stream.onClose(() => {
        kpiClients.delete(stream);
        if (kpiClients.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
        }
      });
      if (!timer) {
        timer = setInterval(() => void broadcast(), KPI_INTERVAL_MS);
        timer.unref();
      }
    },
  );
}
