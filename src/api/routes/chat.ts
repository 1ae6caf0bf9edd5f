/**
 * `/api/v1/chat`: chat sessions bound to an agent. Create and list sessions, read a session's
 * messages by seq, send a message over HTTP, and the WebSocket that streams a session live
 * (protocol: docs/chat.md, src/api/ws.ts).
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { SmithError } from '../../core/errors.js';
import { ulid } from '../../core/ids.js';
import type { ChatSessionRecord } from '../../store/store.js';
import { actorOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError } from '../errors.js';
import { decodeCursor, encodeCursor } from '../pagination.js';
import { errorBody } from '../schemas.js';
import {
  ChatHub,
  CHAT_PROTOCOL,
  installChatSockets,
  MAX_CHAT_CONTENT_CHARS,
  messageFrame,
  serveChatSocket,
} from '../ws.js';

/** The prefix of chat session ids (`c_` + a ULID). */
export const CHAT_SESSION_PREFIX = 'c_';

const iso = z.string().describe('ISO 8601 time');

const sessionView = z.object({
  id: z.string(),
  agent: z.string(),
  title: z.string(),
  created_by: z.string(),
  created_at: iso,
  updated_at: iso,
});

const messageView = z.object({
  seq: z.number().describe('the number of the message in its session, from 1'),
  role: z.enum(['user', 'agent', 'system']),
  content: z.string(),
  time: iso,
  data: z.unknown().describe('replies: task_id, reply_to (the seq answered), state, reason; user: from'),
});

const sessionId = z.strictObject({ id: z.string().min(1).max(200) });

const createBody = z.strictObject({
  agent: z.string().min(1).max(200).describe('the agent that answers'),
  title: z.string().min(1).max(200).optional().describe('default "chat with <agent>"'),
});

const listQuery = z.strictObject({
  agent: z.string().min(1).max(200).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(500).optional().describe('next_cursor of the previous page'),
});

const detailQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0).describe('only messages with a higher seq'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const messageBody = z.strictObject({
  content: z.string().min(1).max(MAX_CHAT_CONTENT_CHARS),
});

const wsQuery = z.strictObject({
  after: z.coerce
    .number()
    .int()
    .min(0)
    .default(0)
    .describe('the last seq the client has: recorded messages after it are sent first'),
});

const isCursor = (v: unknown): v is { c: number; i: string } =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as { c?: unknown }).c === 'number' &&
  typeof (v as { i?: unknown }).i === 'string';

function view(s: ChatSessionRecord): z.infer<typeof sessionView> {
  return {
    id: s.id,
    agent: s.agent,
    title: s.title,
    created_by: s.createdBy,
    created_at: new Date(s.createdAt).toISOString(),
    updated_at: new Date(s.updatedAt).toISOString(),
  };
}

function notFound(id: string): ApiError {
  return new ApiError(
    404,
    'CHAT_SESSION_NOT_FOUND',
    `no chat session has the id ${id}; list them with GET /api/v1/chat/sessions`,
  );
}

/**
 * Register the chat routes, and `@fastify/websocket` before them. The chat hub stops when the
 * server closes (replies under way go on as tasks and are recorded after the next start).
 * @param app - the server
 * @param ctx - store, engine, working directory of reply tasks
 */
export async function chatRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  await installChatSockets(app);
  const hub = new ChatHub(ctx, app.log);
  app.addHook('onClose', () => hub.close());
  const r = app.withTypeProvider<ZodTypeProvider>();

  const mustGet = async (id: string): Promise<ChatSessionRecord> => {
    const s = await ctx.store.getChatSession(id);
    if (!s) throw notFound(id);
    return s;
  };

  r.post(
    '/api/v1/chat/sessions',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['chat'],
        summary: 'Start a chat session with an agent',
        body: createBody,
        response: { 201: sessionView, 400: errorBody, 404: errorBody },
      },
    },
    async (req, reply) => {
      const { agent } = req.body;
      const known = ctx.engine.agentSpecs().map((a) => a.name);
      if (!known.includes(agent))
        throw new SmithError(
          'AGENT_NOT_FOUND',
          `no agent is named ${agent}; the agents are ${known.length > 0 ? known.join(', ') : '(none: define them under agents: in smith.yaml)'}`,
          { context: { agent } },
        );
      const now = Date.now();
      const session: ChatSessionRecord = {
        id: CHAT_SESSION_PREFIX + ulid(now),
        agent,
        title: req.body.title ?? `chat with ${agent}`,
        createdBy: actorOf(req),
        createdAt: now,
        updatedAt: now,
      };
      await ctx.store.commit([
        { op: 'putChatSession', session },
        {
          op: 'audit',
          actor: session.createdBy,
          action: 'chat.session.created',
          subject: session.id,
          data: { agent, title: session.title },
        },
      ]);
      return reply.code(201).send(view(session));
    },
  );

  r.get(
    '/api/v1/chat/sessions',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['chat'],
        summary: 'List chat sessions, newest first',
        querystring: listQuery,
        response: {
          200: z.object({ sessions: z.array(sessionView), next_cursor: z.string().nullable() }),
          400: errorBody,
        },
      },
    },
    async (req) => {
      const q = req.query;
      const after = q.cursor ? decodeCursor(q.cursor, isCursor) : undefined;
      const all = (await ctx.store.listChatSessions()).filter(
        (s) =>
          (q.agent === undefined || s.agent === q.agent) &&
          (after === undefined || s.createdAt < after.c || (s.createdAt === after.c && s.id < after.i)),
      );
      const page = all.slice(0, q.limit);
      const last = page[page.length - 1];
      return {
        sessions: page.map(view),
        next_cursor: all.length > q.limit && last ? encodeCursor({ c: last.createdAt, i: last.id }) : null,
      };
    },
  );

  r.get(
    '/api/v1/chat/sessions/:id',
    {
      config: { role: 'viewer' },
      schema: {
        tags: ['chat'],
        summary: 'A chat session with its messages after a seq, oldest first',
        params: sessionId,
        querystring: detailQuery,
        response: {
          200: sessionView.extend({
            last_seq: z.number().describe('the highest seq of the session (0: no message)'),
            messages: z.array(messageView),
            next_after: z.number().nullable().describe('pass as after for the next page; null at the end'),
          }),
          400: errorBody,
          404: errorBody,
        },
      },
    },
    async (req) => {
      const s = await mustGet(req.params.id);
      const last = (await hub.lastSeq(s.id)) ?? 0;
      const messages = await hub.messages(s.id, req.query.after, req.query.limit);
      const tail = messages[messages.length - 1];
      return {
        ...view(s),
        last_seq: Math.max(last, tail?.seq ?? 0),
        messages: messages.map((m) => {
          const { type: _type, ...rest } = messageFrame(m);
          return rest;
        }),
        next_after: tail && tail.seq < last ? tail.seq : null,
      };
    },
  );

  r.post(
    '/api/v1/chat/sessions/:id/messages',
    {
      config: { role: 'operator' },
      schema: {
        tags: ['chat'],
        summary: "Send a message; the agent's reply arrives later as the next messages",
        params: sessionId,
        body: messageBody,
        response: { 202: messageView, 400: errorBody, 404: errorBody, 429: errorBody, 503: errorBody },
      },
    },
    async (req, reply) => {
      const m = await hub.post(req.params.id, req.body.content, actorOf(req));
      if (!m) throw notFound(req.params.id);
      const { type: _type, ...rest } = messageFrame(m);
      return reply.code(202).send(rest);
    },
  );

  r.route({
    method: 'GET',
    url: '/api/v1/chat/sessions/:id/ws',
    config: { role: 'operator' },
    schema: {
      tags: ['chat'],
      summary: 'WebSocket: send messages and watch the session live (protocol: docs/chat.md)',
      description:
        `Upgrade to a WebSocket (subprotocol ${CHAT_PROTOCOL}; a browser passes its key as the subprotocol ` +
        '"smith.bearer.<key>" beside it). Client frames: {"type":"message","content":"…"}, {"type":"resume","after":N}. ' +
        'Server frames: message (recorded, with seq), delta (reply text while it streams), error.',
      params: sessionId,
      querystring: wsQuery,
      response: { 400: errorBody, 404: errorBody, 426: errorBody },
    },
    preHandler: async (req) => {
      await mustGet(req.params.id);
    },
    handler: async () => {
      throw new ApiError(
        426,
        'UPGRADE_REQUIRED',
        'this route is a WebSocket: connect with a WebSocket client (Upgrade: websocket); see docs/chat.md',
        { upgrade: 'websocket' },
      );
    },
    wsHandler: (socket, req) => {
      serveChatSocket(hub, socket, {
        sessionId: req.params.id,
        after: req.query.after,
        actor: actorOf(req),
        log: req.log,
      });
    },
  });
}
