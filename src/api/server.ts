/**
 * The HTTP server of `smith serve` (Fastify 5): REST under `/api/v1` with zod schemas, an OpenAPI
 * 3.1 document at `/api/v1/openapi.json` and a docs page at `/api/v1/docs`, API keys with roles,
 * per-key rate limits (`@fastify/rate-limit`), body limits, CORS (off unless origins are
 * configured), and JSON errors `{code, message}` for everything.
 */
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { installAuth } from './auth.js';
import type { ApiContext } from './context.js';
import { ApiError, errorHandler } from './errors.js';
import { agentRoutes } from './routes/agents.js';
import { alertRoutes } from './routes/alerts.js';
import { auditRoutes } from './routes/audit.js';
import { chatRoutes } from './routes/chat.js';
import { eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { keyRoutes } from './routes/keys.js';
import { metricsRoutes } from './routes/metrics.js';
import { queryRoutes } from './routes/queries.js';
import { taskRoutes } from './routes/tasks.js';
import { waiverRoutes } from './routes/waivers.js';
import { workflowRoutes } from './routes/workflows.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route (method and URL pattern) the server serves, HEAD left out. */
    routeTable: readonly { method: string; url: string }[];
  }
}

/** Options of {@link buildServer}. */
export interface ServerOptions {
  /** Fastify's logger option: a pino logger, `true`, or false (default) for none. */
  logger?: FastifyServerOptions['logger'] | FastifyServerOptions['loggerInstance'];
  /** Package version, shown in the OpenAPI document. */
  version?: string;
}

/** A route plugin: registers its routes on the app. */
export type RouteModule = (app: FastifyInstance, ctx: ApiContext) => void | Promise<void>;

/** Every route module, in registration order; each lives in `routes/<resource>.ts`. */
const ROUTES: RouteModule[] = [
  healthRoutes,
  taskRoutes,
  workflowRoutes,
  agentRoutes,
  auditRoutes,
  keyRoutes,
  waiverRoutes,
  eventRoutes,
  metricsRoutes,
  alertRoutes,
  queryRoutes,
  // last: it registers @fastify/websocket, whose upgrade handling applies to the routes after it
  chatRoutes,
];

/**
 * Build the server (not listening yet: call `listen`).
 * @param ctx - store, engine, home, config, key verifier, pepper
 * @returns the Fastify instance, ready
 */
export async function buildServer(ctx: ApiContext, options: ServerOptions = {}): Promise<FastifyInstance> {
  const s = ctx.config.server;
  const logger = options.logger;
  const routeTable: { method: string; url: string }[] = [];
  const app = Fastify({
    ...(logger && typeof logger === 'object' && 'child' in logger
      ? { loggerInstance: logger as NonNullable<FastifyServerOptions['loggerInstance']> }
      : { logger: (logger as FastifyServerOptions['logger']) ?? false }),
    bodyLimit: s.bodyLimit,
    // a route's own schema rejects what it does not know; nothing is coerced silently
    ajv: { customOptions: { removeAdditional: false } },
    trustProxy: false,
    // one line per request would cost more than the request; errors are logged by the error handler
    logController: new LogController({ disableRequestLogging: true }),
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    const e = new ApiError(
      404,
      'NOT_FOUND',
      `no route ${req.method} ${req.url.split('?')[0]}; see /api/v1/openapi.json`,
    );
    void reply.code(404).send({ code: e.code, message: e.message });
  });

  // the docs page and its assets need a key like everything else (any role)
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/api/v1/docs')) route.config = { ...(route.config ?? {}), role: 'viewer' };
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const m of methods) if (m !== 'HEAD') routeTable.push({ method: m, url: route.url });
  });
  // every route but /health needs a key: the hook runs before the body is read
  installAuth(app, ctx.keys);
  await app.register(rateLimit, {
    max: s.rateLimit,
    timeWindow: s.rateWindowMs,
    keyGenerator: (req) => (req.apiKey ? `key:${req.apiKey.id}` : `ip:${req.ip}`),
    errorResponseBuilder: (_req, c) =>
      new ApiError(
        429,
        'RATE_LIMITED',
        `rate limit of ${c.max} requests per ${Math.round(c.ttl / 1000)} s reached for this key; retry after ${c.after}`,
      ),
  });
  if (s.corsOrigins.length > 0) await app.register(cors, { origin: s.corsOrigins });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'MisterSmith API',
        description:
          'Tasks, workflows, agents, audit, chat, queries, alerts and keys of one MisterSmith home.',
        version: options.version ?? '0.0.0',
      },
      components: {
        securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'smk_<id>_<secret>' } },
      },
      security: [{ apiKey: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/api/v1/docs' });

  for (const mod of ROUTES) await mod(app, ctx);
  app.get('/api/v1/openapi.json', { config: { role: 'viewer' }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
  app.decorate('routeTable', routeTable);
  await app.ready();
  return app;
}
