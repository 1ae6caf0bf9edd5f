/**
 * `GET /api/v1/events`: the event stream (Server-Sent Events) of tasks, agents and alerts, with
 * filters and reconnection through `Last-Event-ID`. The contract is in docs/events-and-metrics.md.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TaskEventType } from '../../core/types.js';
import type { ApiContext } from '../context.js';
import { ApiError } from '../errors.js';
import { errorBody } from '../schemas.js';
import {
  EventHub,
  formatEventCursor,
  parseEventCursor,
  SseStream,
  sseStreams,
  STREAM_EVENT_NAMES,
  type EventCursor,
  type EventFilter,
  type StreamEventName,
} from '../sse.js';

/** Every task event type, for the `types` filter. */
export const TASK_EVENT_TYPES = [
  'state',
  'progress',
  'log',
  'artifact',
  'result',
  'message',
  'session',
  'usage',
  'text',
  'tool_use',
  'tool_result',
  'file_change',
  'guidance',
  'verdict',
] as const satisfies readonly TaskEventType[];

// the list above must name every type: this fails to compile when one is missing
const allTypesListed: Exclude<TaskEventType, (typeof TASK_EVENT_TYPES)[number]> extends never ? true : never =
  true;
void allTypesListed;

const eventsQuery = z.strictObject({
  events: z
    .string()
    .max(100)
    .optional()
    .describe(
      'comma-separated event names: task, agent, alert (default: all; only task when task, workflow or types is given)',
    ),
  types: z
    .string()
    .max(500)
    .optional()
    .describe('comma-separated task event types (state, progress, log, …)'),
  task: z.string().min(1).max(200).optional().describe('only the events of this task'),
  workflow: z.string().min(1).max(200).optional().describe("only the events of this workflow's tasks"),
  last_event_id: z
    .string()
    .max(100)
    .optional()
    .describe('the id of the last event received, for clients that cannot send the Last-Event-ID header'),
});

type EventsQuery = z.infer<typeof eventsQuery>;

/** Split a comma-separated list and check each entry against `allowed`. */
function listParam<T extends string>(
  value: string,
  field: string,
  allowed: readonly T[],
  what: string,
): Set<T> {
  const out = new Set<T>();
  for (const raw of value.split(',')) {
    const v = raw.trim();
    if (!v) continue;
    if (!allowed.includes(v as T))
      throw new ApiError(
        400,
        'INVALID_REQUEST',
        `querystring.${field}: ${v} is not ${what}; use ${allowed.join(', ')}`,
      );
    out.add(v as T);
  }
  if (out.size === 0)
    throw new ApiError(
      400,
      'INVALID_REQUEST',
      `querystring.${field}: the list is empty; use ${allowed.join(', ')} or leave ${field} out`,
    );
  return out;
}

function filterOf(q: EventsQuery): EventFilter {
  const narrowed = q.task !== undefined || q.workflow !== undefined || q.types !== undefined;
  const events =
    q.events !== undefined
      ? listParam<StreamEventName>(q.events, 'events', STREAM_EVENT_NAMES, 'an event name')
      : new Set<StreamEventName>(narrowed ? ['task'] : STREAM_EVENT_NAMES);
  return {
    events,
    ...(q.types !== undefined
      ? { types: listParam<string>(q.types, 'types', TASK_EVENT_TYPES, 'a task event type') }
      : {}),
    ...(q.task !== undefined ? { task: q.task } : {}),
    ...(q.workflow !== undefined ? { workflow: q.workflow } : {}),
  };
}

/**
 * The cursor a client resumes from: the `Last-Event-ID` header, else `?last_event_id=`.
 * @throws ApiError 400 INVALID_LAST_EVENT_ID when it is not an id of this stream, or is ahead of
 *   the newest event of the home
 */
async function resumeFrom(
  req: FastifyRequest,
  q: EventsQuery,
  hub: EventHub,
): Promise<EventCursor | undefined> {
  const header = req.headers['last-event-id'];
  const text = typeof header === 'string' ? header : q.last_event_id;
  if (text === undefined) return undefined;
  const where = typeof header === 'string' ? 'the Last-Event-ID header' : 'querystring.last_event_id';
  const c = parseEventCursor(text);
  if (!c)
    throw new ApiError(
      400,
      'INVALID_LAST_EVENT_ID',
      `${where}: "${text.slice(0, 100)}" is not an id of this stream; send back an "id:" of an event it sent (<task event seq>.<audit seq>, e.g. 42.17), or leave it out to start at the newest events`,
    );
  const heads = await hub.heads();
  if (c.task > heads.task || c.audit > heads.audit)
    throw new ApiError(
      400,
      'INVALID_LAST_EVENT_ID',
      `${where}: ${text} is ahead of the newest event of this home (${formatEventCursor(heads)}); it comes from another home or a replaced store. Leave it out to start at the newest events`,
    );
  return c;
}

/** Register the event stream. */
export async function eventRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  const streams = sseStreams(app);
  const hub = new EventHub(ctx.store, ctx.engine, {
    onError: (err) => app.log.warn({ err }, 'the event stream could not read the store; trying again'),
    onDelivered: (lagMs) => streams.delivered(lagMs),
  });
  await hub.start();
  streams.onClose(() => hub.close());
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/api/v1/events',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['events'],
        summary:
          'Server-Sent Events of tasks, agents and alerts; reconnect with Last-Event-ID to miss nothing',
        querystring: eventsQuery,
        response: {
          200: {
            description:
              'an endless text/event-stream: events "task", "agent" and "alert", each with an id "<task event seq>.<audit seq>" and JSON data',
            content: { 'text/event-stream': { schema: z.string() } },
          },
          400: errorBody,
        },
      },
    },
    async (req, reply) => {
      const filter = filterOf(req.query);
      const from = await resumeFrom(req, req.query, hub);
      const stream = new SseStream(reply, 'events');
      if (!streams.add(stream)) return;
      hub.attach(stream, filter, from);
    },
  );
}
