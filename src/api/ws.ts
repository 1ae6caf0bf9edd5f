/**
 * Chat: the live side of chat sessions, and the WebSocket protocol that carries it (docs/chat.md).
 *
 * {@link ChatHub} numbers and records the messages of each chat session, has the session's agent
 * answer every message a person sends (one task per message, one at a time per session, in
 * order), streams the reply while the task runs (deltas, not recorded), records the reply when the
 * task ends, and hands all of it to the sockets that watch the session. {@link installChatSockets}
 * registers `@fastify/websocket`; {@link serveChatSocket} speaks the protocol on one socket.
 */
import websocket from '@fastify/websocket';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { z } from 'zod';
import { isSmithError } from '../core/errors.js';
import { TERMINAL_TASK_STATES } from '../core/states.js';
import type { Json, Task, TaskEvent } from '../core/types.js';
import type { EngineEventMap } from '../engine/engine.js';
import type { ChatMessageRecord, ChatSessionRecord } from '../store/store.js';
import type { ApiContext } from './context.js';
import { ApiError, errorResponse } from './errors.js';

/**
 * The subprotocol of the chat socket. A client that offers subprotocols (a browser passing its key
 * as `smith.bearer.<key>`) must offer this one too: the server answers with it.
 */
export const CHAT_PROTOCOL = 'smith.chat.v1';

/** Most characters of one message's content (over HTTP and over the socket). */
export const MAX_CHAT_CONTENT_CHARS = 100_000;

/**
 * Largest client frame, in bytes, the server reads. A larger one (up to
 * {@link MAX_CHAT_PAYLOAD_BYTES}) is answered with a `FRAME_TOO_LARGE` error frame and dropped.
 */
export const MAX_CHAT_FRAME_BYTES = 1024 * 1024;

/** Largest client frame, in bytes, the socket accepts at all; a larger one closes it (code 1009). */
export const MAX_CHAT_PAYLOAD_BYTES = 4 * MAX_CHAT_FRAME_BYTES;

/** Bad frames in a row after which the socket is closed (code 1008, policy violation). */
export const MAX_BAD_FRAMES = 10;

/**
 * Messages of one session that may wait for a reply at once (the one being answered included).
 * One more is refused with `CHAT_BUSY` (HTTP 429).
 */
export const MAX_WAITING_MESSAGES = 20;

/** The task key of every reply task. */
export const CHAT_TASK_KEY = 'chat';

/** Characters of earlier messages a reply task's prompt holds at most (the newest ones). */
export const HISTORY_CHARS = 12_000;

/** Earlier messages a reply task's prompt holds at most. */
export const HISTORY_MESSAGES = 40;

/** Idle sessions kept loaded (their last seq known without reading all their messages). */
const MAX_IDLE_SESSIONS = 256;
/** ms between reads of a reply task's events at first; doubled while nothing happens. */
const POLL_MS = 100;
/** Longest ms between two reads of a reply task's events and state. */
const POLL_MAX_MS = 1000;
/** Events read per page while following a reply task. */
const EVENT_PAGE = 500;
/** Messages read per page (replay, scans). */
const MESSAGE_PAGE = 500;
/** Tasks of the session's agent searched for a reply task recorded before a restart. */
const RECOVERY_TASKS = 200;
/** Bytes queued on a socket above which deltas are skipped (the final message holds everything). */
const DELTA_DROP_BYTES = 1024 * 1024;
/** Bytes queued on a socket above which the client is too slow: it is closed (code 1013). */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** ms between pings; a socket that did not answer the previous ping is ended. */
const HEARTBEAT_MS = 30_000;
/** ms sockets have to answer the close frame when the server stops, before they are cut. */
const CLOSE_GRACE_MS = 2000;

/** Who wrote a chat message. */
export type ChatRole = ChatMessageRecord['role'];

/** Server frame: a recorded message (the person's own message is echoed with its seq). */
export interface MessageFrame {
  type: 'message';
  /** The message's number in its session, from 1. */
  seq: number;
  role: ChatRole;
  content: string;
  /** When it was recorded (ISO 8601). */
  time: string;
  /** Replies: `task_id`, `reply_to` (the seq answered), `state` (the task's), `reason`. */
  data: Json;
}

/** Server frame: a piece of the reply to message `reply_to` while its task runs (not recorded). */
export interface DeltaFrame {
  type: 'delta';
  reply_to: number;
  text: string;
}

/** Server frame: what was wrong with a client frame, or what failed. */
export interface ErrorFrame {
  type: 'error';
  code: string;
  message: string;
}

/** Every frame the server sends. */
export type ServerFrame = MessageFrame | DeltaFrame | ErrorFrame;

/** What a session's watchers are told: a message was recorded, or a reply grew. */
export type ChatEvent =
  { kind: 'message'; message: ChatMessageRecord } | { kind: 'delta'; replyTo: number; text: string };

/**
 * A recorded message as a frame (and, without `type`, as the API shows it).
 * @param m - the message as stored
 * @returns the `message` frame
 */
export function messageFrame(m: ChatMessageRecord): MessageFrame {
  return {
    type: 'message',
    seq: m.seq,
    role: m.role,
    content: m.content,
    time: new Date(m.time).toISOString(),
    data: m.data,
  };
}

/**
 * Pick the subprotocol to answer a WebSocket handshake with (`ws`'s `handleProtocols`).
 * @param offered - the subprotocols the client offered
 * @returns {@link CHAT_PROTOCOL} when offered, else false (a client that offered only others,
 *   the bearer key included, then fails the handshake, as RFC 6455 section 4.1 asks)
 */
export function chooseProtocol(offered: Set<string>): string | false {
  return offered.has(CHAT_PROTOCOL) ? CHAT_PROTOCOL : false;
}

/** The `reply_to` of a reply's data, if it has one. */
function replyToOf(data: Json): number | undefined {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return undefined;
  const r = (data as Record<string, Json>).reply_to;
  return typeof r === 'number' ? r : undefined;
}

/** The text of a reply task's event that streams to watchers, if it is one. */
function deltaText(e: TaskEvent): string | undefined {
  const d = e.data as Record<string, unknown> | null;
  if (typeof d !== 'object' || d === null) return undefined;
  if (e.type === 'text' && typeof d.text === 'string') return d.text;
  if (e.type === 'log' && d.stream === 'stdout' && typeof d.line === 'string') return `${d.line}\n`;
  return undefined;
}

/**
 * The prompt of a reply task: the newest earlier messages that fit in {@link HISTORY_CHARS}
 * (at most {@link HISTORY_MESSAGES}), oldest first, each labelled with its role, then the new
 * message. An earlier message longer than what is left of the budget is cut to its last part.
 * @param session - the chat session
 * @param history - the conversation before it, oldest first (replies recorded after the message
 *   was sent included, later messages of the person left out)
 * @param message - the message to answer
 * @returns the prompt text
 */
export function chatPrompt(
  session: ChatSessionRecord,
  history: readonly ChatMessageRecord[],
  message: ChatMessageRecord,
): string {
  const lines: string[] = [];
  let left = HISTORY_CHARS;
  for (let i = history.length - 1; i >= 0 && left > 0 && lines.length < HISTORY_MESSAGES; i--) {
    const m = history[i]!;
    const text = m.content.length > left ? `…${m.content.slice(m.content.length - left)}` : m.content;
    left -= text.length;
    lines.push(`${m.role}: ${text}`);
  }
  lines.reverse();
  const head = `You are the agent "${session.agent}" in the chat session "${session.title}" (${session.id}).`;
  const past =
    lines.length > 0
      ? `The conversation so far, oldest first:\n\n${lines.join('\n\n')}`
      : 'This is the first message of the conversation.';
  return `${head}\n\n${past}\n\nThe new message from the user, to answer now:\n\n${message.content}\n`;
}

/** A message waiting for its reply. */
interface Waiting {
  message: ChatMessageRecord;
  /** Found unanswered when the session was loaded: its task may exist already. */
  recovered: boolean;
}

/** A session the hub holds in memory while someone uses it or a reply is under way. */
interface LiveSession {
  id: string;
  record: ChatSessionRecord | undefined;
  /** The highest seq recorded. */
  lastSeq: number;
  /** Resolves true once loaded, false when no such session exists. */
  ready: Promise<boolean>;
  /** The tail of the session's writes (one at a time, so seqs follow each other). */
  writes: Promise<unknown>;
  waiting: Waiting[];
  /** Messages being recorded that will wait for a reply (counted against the limit). */
  reserved: number;
  pump: Promise<void> | null;
  listeners: Set<(e: ChatEvent) => void>;
  /** Calls under way and subscriptions that hold the session in memory. */
  users: number;
}

/** Raised inside the hub when it stops while a reply is under way (the reply resumes at the next start). */
class HubClosed extends Error {}

/**
 * The chat sessions of one server: messages numbered per session and recorded, replies by the
 * session's agent, and live watchers.
 *
 * A reply is a task (`key` {@link CHAT_TASK_KEY}, env `SMITH_CHAT_SESSION` and
 * `SMITH_CHAT_MESSAGE`) submitted to the engine when the message's turn comes; its `text` events
 * and stdout `log` lines stream as deltas; when it ends, an `agent` message (completed) or a
 * `system` message (failed, canceled, rejected) is recorded with `reply_to`. Closing a socket never
 * stops a reply. A message left unanswered by a stop is answered when its session is next used
 * (its task is found again by its env when it still exists).
 */
export class ChatHub {
  private readonly sessions = new Map<string, LiveSession>();
  /** Ids of loaded sessions nobody uses now, least recently used first. */
  private readonly idle = new Set<string>();
  /** Wakes the reply that follows a task (by task id) when the task changes state. */
  private readonly wakers = new Map<string, () => void>();
  private closed = false;
  private readonly onTaskState = (e: EngineEventMap['task:state']): void => {
    this.wakers.get(e.task.id)?.();
  };

  /**
   * @param ctx - the store, the engine that runs replies, the working directory of reply tasks
   * @param log - where failures of replies are logged
   */
  constructor(
    private readonly ctx: ApiContext,
    private readonly log: FastifyBaseLogger,
  ) {
    ctx.engine.on('task:state', this.onTaskState);
  }

  /**
   * The highest seq of a session.
   * @returns it (0 when the session has no message), or undefined when no such session exists
   */
  async lastSeq(id: string): Promise<number | undefined> {
    const s = await this.acquire(id);
    if (!s) return undefined;
    const seq = s.lastSeq;
    this.release(s);
    return seq;
  }

  /**
   * Recorded messages of a session with a seq above `after`, ascending.
   * @param limit - at most this many
   */
  messages(id: string, after: number, limit: number): Promise<ChatMessageRecord[]> {
    return this.ctx.store.chatMessages(id, after, limit);
  }

  /**
   * Record a person's message and queue it for the agent's reply.
   * @param id - the chat session
   * @param content - the message (1 to {@link MAX_CHAT_CONTENT_CHARS} characters)
   * @param from - who sent it (`key:<id>`), kept in its data and as the reply task's actor
   * @returns the recorded message, or undefined when no such session exists
   * @throws ApiError 429 CHAT_BUSY when {@link MAX_WAITING_MESSAGES} already wait; 503
   *   SHUTTING_DOWN when the server is stopping; StoreError when it cannot be recorded
   */
  async post(id: string, content: string, from: string): Promise<ChatMessageRecord | undefined> {
    if (this.closed) throw stopping();
    const s = await this.acquire(id);
    if (!s) return undefined;
    try {
      if (s.waiting.length + s.reserved >= MAX_WAITING_MESSAGES)
        throw new ApiError(
          429,
          'CHAT_BUSY',
          `chat session ${id} already has ${MAX_WAITING_MESSAGES} messages waiting for the reply of ${s.record!.agent}; send more once replies arrive`,
        );
      s.reserved++;
      let message: ChatMessageRecord;
      try {
        message = await this.append(s, 'user', content, { from });
      } finally {
        s.reserved--;
      }
      s.waiting.push({ message, recovered: false });
      this.startPump(s);
      return message;
    } finally {
      this.release(s);
    }
  }

  /**
   * Watch a session: `listener` hears every message recorded and every delta from now on, in
   * order. The session stays loaded while watched.
   * @returns the function that stops watching, or undefined when no such session exists
   */
  async subscribe(id: string, listener: (e: ChatEvent) => void): Promise<(() => void) | undefined> {
    const s = await this.acquire(id);
    if (!s) return undefined;
    s.listeners.add(listener);
    return () => {
      if (s.listeners.delete(listener)) this.release(s);
    };
  }

  /**
   * Stop: replies stop being followed (their tasks go on; they are recorded when the session is
   * next used after a start), and nothing new is accepted. Waits for writes under way. Safe to
   * call twice.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.ctx.engine.off('task:state', this.onTaskState);
    for (const wake of [...this.wakers.values()]) wake();
    const live = [...this.sessions.values()];
    await Promise.allSettled(live.map((s) => s.pump ?? s.writes));
    await Promise.allSettled(live.map((s) => s.writes));
  }

  // ------------------------------------------------------------------ sessions in memory

  private async acquire(id: string): Promise<LiveSession | undefined> {
    let s = this.sessions.get(id);
    if (!s) {
      const created: LiveSession = {
        id,
        record: undefined,
        lastSeq: 0,
        ready: Promise.resolve(false),
        writes: Promise.resolve(),
        waiting: [],
        reserved: 0,
        pump: null,
        listeners: new Set(),
        users: 0,
      };
      created.ready = this.load(created);
      this.sessions.set(id, created);
      s = created;
    }
    this.idle.delete(id);
    s.users++;
    let ok: boolean;
    try {
      ok = await s.ready;
    } catch (err) {
      s.users--;
      this.forget(s);
      throw err;
    }
    if (!ok) {
      s.users--;
      this.forget(s);
      return undefined;
    }
    return s;
  }

  private release(s: LiveSession): void {
    s.users--;
    this.keepIfIdle(s);
  }

  private isIdle(s: LiveSession): boolean {
    return s.users === 0 && s.pump === null && s.waiting.length === 0 && s.reserved === 0;
  }

  /** An idle session stays loaded among the newest idle ones; the oldest beyond the cap go. */
  private keepIfIdle(s: LiveSession): void {
    if (!this.isIdle(s) || this.sessions.get(s.id) !== s) return;
    this.idle.delete(s.id);
    this.idle.add(s.id);
    for (const id of this.idle) {
      if (this.idle.size <= MAX_IDLE_SESSIONS) break;
      this.idle.delete(id);
      const old = this.sessions.get(id);
      if (old && this.isIdle(old)) this.sessions.delete(id);
    }
  }

  private forget(s: LiveSession): void {
    if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
    this.idle.delete(s.id);
  }

  /** Read the session, its last seq, and the messages a stop left unanswered (queued again). */
  private async load(s: LiveSession): Promise<boolean> {
    const record = await this.ctx.store.getChatSession(s.id);
    if (!record) return false;
    s.record = record;
    // replies come in order, so the unanswered messages are the person's after the last answered
    let answered = 0;
    let open: ChatMessageRecord[] = [];
    let after = 0;
    for (;;) {
      const page = await this.ctx.store.chatMessages(s.id, after, MESSAGE_PAGE);
      for (const m of page) {
        after = m.seq;
        if (m.role === 'user') open.push(m);
        const r = replyToOf(m.data);
        if (m.role !== 'user' && r !== undefined && r > answered) {
          answered = r;
          open = open.filter((u) => u.seq > answered);
        }
      }
      if (page.length < MESSAGE_PAGE) break;
    }
    s.lastSeq = after;
    for (const message of open) s.waiting.push({ message, recovered: true });
    this.startPump(s);
    return true;
  }

  /** Record a message as the session's next seq, then tell its watchers. */
  private append(s: LiveSession, role: ChatRole, content: string, data: Json): Promise<ChatMessageRecord> {
    const run = async (): Promise<ChatMessageRecord> => {
      const time = Date.now();
      const message: ChatMessageRecord = { sessionId: s.id, seq: s.lastSeq + 1, role, content, data, time };
      const record: ChatSessionRecord = { ...s.record!, updatedAt: time };
      await this.ctx.store.commit([
        { op: 'chatMessage', message },
        { op: 'putChatSession', session: record },
      ]);
      s.lastSeq = message.seq;
      s.record = record;
      for (const l of s.listeners) l({ kind: 'message', message });
      return message;
    };
    const p = s.writes.then(run, run);
    s.writes = p.catch(() => undefined);
    return p;
  }

  // ------------------------------------------------------------------ replies

  private startPump(s: LiveSession): void {
    if (s.pump !== null || this.closed || s.waiting.length === 0) return;
    s.pump = this.pump(s).finally(() => {
      s.pump = null;
      if (!this.closed && s.waiting.length > 0) this.startPump(s);
      else this.keepIfIdle(s);
    });
  }

  /** Answer the waiting messages of a session, one at a time, in order. */
  private async pump(s: LiveSession): Promise<void> {
    while (!this.closed && s.waiting.length > 0) {
      const w = s.waiting[0]!;
      try {
        await this.answer(s, w);
      } catch (err) {
        if (err instanceof HubClosed) return;
        this.log.error({ err, session: s.id, seq: w.message.seq }, 'chat: the reply could not be recorded');
      }
      s.waiting.shift();
    }
  }

  private async answer(s: LiveSession, w: Waiting): Promise<void> {
    const seq = w.message.seq;
    const agent = s.record!.agent;
    let taskId = w.recovered ? await this.findTask(s, seq) : undefined;
    if (taskId === undefined) {
      try {
        // the conversation as it stands now: replies recorded after this message count, the
        // person's messages still waiting after it do not
        const span = HISTORY_MESSAGES + MAX_WAITING_MESSAGES;
        const history = (await this.ctx.store.chatMessages(s.id, Math.max(0, s.lastSeq - span), span))
          .filter((m) => m.role !== 'user' || m.seq < seq)
          .slice(-HISTORY_MESSAGES);
        const from = (w.message.data as { from?: unknown } | null)?.from;
        const submitted = await this.ctx.engine.submitTask(
          {
            agent,
            prompt: chatPrompt(s.record!, history, w.message),
            key: CHAT_TASK_KEY,
            workdir: this.ctx.workdir,
            env: { SMITH_CHAT_SESSION: s.id, SMITH_CHAT_MESSAGE: String(seq) },
          },
          typeof from === 'string' ? from : 'chat',
        );
        taskId = submitted.taskId;
      } catch (err) {
        if (this.closed || (isSmithError(err) && err.code === 'SHUTTING_DOWN')) throw new HubClosed();
        const why = err instanceof Error ? err.message : String(err);
        await this.append(
          s,
          'system',
          `the agent ${agent} could not be asked to answer message ${seq}: ${why}`,
          {
            reply_to: seq,
            state: 'not_submitted',
            reason: why,
          },
        );
        return;
      }
    }
    const task = await this.follow(taskId, seq, s);
    const data = { task_id: task.id, reply_to: seq, state: task.state, reason: task.reason };
    const why = task.reason ?? 'no reason was recorded';
    switch (task.state) {
      case 'completed':
        await this.append(s, 'agent', task.output ?? '', data);
        break;
      case 'failed':
        await this.append(
          s,
          'system',
          `the agent ${agent} failed to answer message ${seq} (task ${task.id}): ${why}`,
          data,
        );
        break;
      case 'canceled':
        await this.append(
          s,
          'system',
          `the reply to message ${seq} was canceled (task ${task.id}): ${why}`,
          data,
        );
        break;
      default:
        await this.append(
          s,
          'system',
          `the council rejected the reply of ${agent} to message ${seq} (task ${task.id}): ${why}`,
          data,
        );
        break;
    }
  }

  /** A reply task recorded before a stop, found by its env among the agent's newest tasks. */
  private async findTask(s: LiveSession, seq: number): Promise<string | undefined> {
    const tasks = await this.ctx.store.listTasks({
      agent: s.record!.agent,
      newestFirst: true,
      limit: RECOVERY_TASKS,
    });
    return tasks.find(
      (t) =>
        t.key === CHAT_TASK_KEY &&
        t.env.SMITH_CHAT_SESSION === s.id &&
        t.env.SMITH_CHAT_MESSAGE === String(seq),
    )?.id;
  }

  /**
   * Stream a reply task's text to the session's watchers until the task ends.
   * @returns the ended task
   * @throws HubClosed when the hub stops first
   */
  private async follow(taskId: string, replyTo: number, s: LiveSession): Promise<Task> {
    let after = 0;
    let quiet = 0;
    for (;;) {
      if (this.closed) throw new HubClosed();
      const task = await this.ctx.store.getTask(taskId);
      if (!task) throw new Error(`the reply task ${taskId} is not in the store`);
      // read after the state: every event of an ended task is recorded by now
      let seen = 0;
      for (;;) {
        const events = await this.ctx.store.getEvents(taskId, after, EVENT_PAGE);
        for (const e of events) {
          after = e.seq;
          const text = deltaText(e);
          if (text !== undefined && text !== '')
            for (const l of s.listeners) l({ kind: 'delta', replyTo, text });
        }
        seen += events.length;
        if (events.length < EVENT_PAGE) break;
      }
      if (TERMINAL_TASK_STATES.has(task.state)) return task;
      quiet = seen > 0 ? 0 : quiet + 1;
      await this.sleep(taskId, Math.min(POLL_MAX_MS, POLL_MS * 2 ** Math.min(quiet, 4)));
    }
  }

  /** Wait `ms`, or less when the task changes state or the hub stops. */
  private sleep(taskId: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.wakers.get(taskId) === done) this.wakers.delete(taskId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.set(taskId, done);
    });
  }
}

function stopping(): ApiError {
  return new ApiError(
    503,
    'SHUTTING_DOWN',
    'smith serve is stopping; send the message again once it is back',
  );
}

// -------------------------------------------------------------------------------- the socket

const messageFrameSchema = z.strictObject({
  type: z.literal('message'),
  content: z.string().min(1, { error: 'content is empty' }),
});
const resumeFrameSchema = z.strictObject({
  type: z.literal('resume'),
  after: z.number().int().min(0),
});

/** What {@link serveChatSocket} needs to know about the connection. */
export interface ChatSocketOptions {
  /** The chat session watched (it exists). */
  sessionId: string;
  /** Send the recorded messages with a seq above this first (0: all). */
  after: number;
  /** Who sends messages on this socket (`key:<id>`). */
  actor: string;
  log: FastifyBaseLogger;
}

/**
 * Speak the chat protocol (docs/chat.md) on an open socket: replay the session's recorded
 * messages after `after`, then send live messages and deltas; take `message` and `resume` frames;
 * answer bad frames with `error` frames (closing with 1008 after {@link MAX_BAD_FRAMES} in a row).
 * Attaches its handlers at once, so no frame is missed.
 * @param hub - the server's chat hub
 * @param socket - the upgraded socket
 * @param options - session, cursor, actor, logger
 */
export function serveChatSocket(hub: ChatHub, socket: WebSocket, options: ChatSocketOptions): void {
  new ChatConnection(hub, socket, options).start();
}

class ChatConnection {
  /** The highest seq sent to this client. */
  private lastSent = 0;
  /** Replays and live sends, one after the other. */
  private chain: Promise<void> = Promise.resolve();
  private badFrames = 0;
  private open = true;
  private alive = true;
  private unsubscribe: (() => void) | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly hub: ChatHub,
    private readonly socket: WebSocket,
    private readonly o: ChatSocketOptions,
  ) {}

  start(): void {
    const { socket } = this;
    socket.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    socket.on('close', () => this.stop());
    socket.on('pong', () => {
      this.alive = true;
    });
    this.heartbeat = setInterval(() => {
      if (!this.alive) {
        socket.terminate();
        return;
      }
      this.alive = false;
      socket.ping();
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
    this.enqueue(async () => {
      const unsubscribe = await this.hub.subscribe(this.o.sessionId, (e) => this.onEvent(e));
      if (!unsubscribe) {
        this.sendError('CHAT_SESSION_NOT_FOUND', `no chat session has the id ${this.o.sessionId}`);
        this.socket.close(1008, 'no such chat session');
        return;
      }
      if (!this.open) {
        unsubscribe();
        return;
      }
      this.unsubscribe = unsubscribe;
      await this.replay(this.o.after);
    });
  }

  private stop(): void {
    this.open = false;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  private enqueue(step: () => Promise<void> | void): void {
    this.chain = this.chain.then(step).catch((err: unknown) => {
      this.o.log.error({ err, session: this.o.sessionId }, 'chat socket: reading the session failed');
      const r = errorResponse(err);
      this.sendError(r.body.code, r.body.message);
      if (this.open) this.socket.close(1011, 'the server could not read the chat session');
    });
  }

  private onEvent(e: ChatEvent): void {
    if (!this.open) return;
    if (e.kind === 'message') {
      const m = e.message;
      this.enqueue(() => this.deliver(m));
    } else {
      const frame: DeltaFrame = { type: 'delta', reply_to: e.replyTo, text: e.text };
      this.enqueue(() => {
        if (this.socket.bufferedAmount < DELTA_DROP_BYTES) this.send(frame);
      });
    }
  }

  /** Send a live message unless the client has it; fill a gap from the store first. */
  private async deliver(m: ChatMessageRecord): Promise<void> {
    if (m.seq <= this.lastSent) return;
    if (m.seq > this.lastSent + 1) {
      await this.replay(this.lastSent);
      return;
    }
    this.send(messageFrame(m));
    this.lastSent = m.seq;
  }

  /** Send every recorded message with a seq above `after`, in order. */
  private async replay(after: number): Promise<void> {
    let cursor = after;
    let sent = false;
    for (;;) {
      const page = await this.hub.messages(this.o.sessionId, cursor, MESSAGE_PAGE);
      for (const m of page) {
        this.send(messageFrame(m));
        cursor = m.seq;
        sent = true;
      }
      if (page.length < MESSAGE_PAGE || !this.open) break;
    }
    // a cursor past the end (a client of an older home) counts from the real end
    this.lastSent = sent ? cursor : Math.min(after, (await this.hub.lastSeq(this.o.sessionId)) ?? 0);
  }

  private send(frame: ServerFrame): void {
    if (!this.open || this.socket.readyState !== this.socket.OPEN) return;
    if (this.socket.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.open = false;
      this.socket.close(1013, `the client reads too slowly; reconnect with after=${this.lastSent}`);
      return;
    }
    this.socket.send(JSON.stringify(frame));
  }

  private sendError(code: string, message: string): void {
    this.send({ type: 'error', code, message });
  }

  private bad(code: string, message: string): void {
    this.badFrames++;
    this.sendError(code, message);
    if (this.badFrames >= MAX_BAD_FRAMES && this.open) {
      this.open = false;
      this.socket.close(1008, `${MAX_BAD_FRAMES} bad frames in a row`);
    }
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    if (!this.open) return;
    if (isBinary)
      return this.bad('BINARY_FRAME', 'binary frames are not read; send JSON text frames (see docs/chat.md)');
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (buf.length > MAX_CHAT_FRAME_BYTES)
      return this.bad(
        'FRAME_TOO_LARGE',
        `the frame has ${buf.length} bytes, more than the ${MAX_CHAT_FRAME_BYTES} a frame may have; a message holds at most ${MAX_CHAT_CONTENT_CHARS} characters`,
      );
    const text = buf.toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return this.bad(
        'INVALID_JSON',
        `the frame is not JSON (${(err as Error).message}); send {"type":"message","content":"…"} or {"type":"resume","after":N}`,
      );
    }
    const type =
      typeof value === 'object' && value !== null && !Array.isArray(value)
        ? (value as { type?: unknown }).type
        : undefined;
    if (type === 'message') {
      const f = messageFrameSchema.safeParse(value);
      if (!f.success) return this.bad('INVALID_FRAME', `message frame: ${issues(f.error)}`);
      if (f.data.content.length > MAX_CHAT_CONTENT_CHARS)
        return this.bad(
          'CONTENT_TOO_LARGE',
          `the message has ${f.data.content.length} characters; a message holds at most ${MAX_CHAT_CONTENT_CHARS}`,
        );
      this.badFrames = 0;
      this.hub.post(this.o.sessionId, f.data.content, this.o.actor).then(
        (m) => {
          if (!m) this.sendError('CHAT_SESSION_NOT_FOUND', `no chat session has the id ${this.o.sessionId}`);
        },
        (err: unknown) => {
          const r = errorResponse(err);
          if (r.status >= 500) this.o.log.error({ err, session: this.o.sessionId }, 'chat: a message failed');
          this.sendError(r.body.code, r.body.message);
        },
      );
      return;
    }
    if (type === 'resume') {
      const f = resumeFrameSchema.safeParse(value);
      if (!f.success) return this.bad('INVALID_FRAME', `resume frame: ${issues(f.error)}`);
      this.badFrames = 0;
      const after = f.data.after;
      this.enqueue(() => this.replay(after));
      return;
    }
    if (typeof type !== 'string')
      return this.bad(
        'INVALID_FRAME',
        'a frame is a JSON object with a "type": "message" (with "content") or "resume" (with "after")',
      );
    return this.bad('UNKNOWN_TYPE', `unknown frame type "${type}"; the types are "message" and "resume"`);
  }
}

/** The issues of a frame that did not validate, as one line. */
function issues(err: z.ZodError): string {
  return err.issues
    .map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
}

/**
 * Register `@fastify/websocket` on the app (once, before the chat routes): frames up to
 * {@link MAX_CHAT_PAYLOAD_BYTES}, the subprotocol chosen by {@link chooseProtocol}, and sockets
 * closed with 1001 when the server stops. An upgrade request answered without an upgrade (a
 * missing key, a wrong role, an unknown session) has its connection ended after the answer.
 * @param app - the server
 */
export async function installChatSockets(app: FastifyInstance): Promise<void> {
  await app.register(websocket, {
    options: { maxPayload: MAX_CHAT_PAYLOAD_BYTES, handleProtocols: chooseProtocol },
    // clients get a close frame with a reason, and a moment to answer it before they are cut
    async preClose() {
      const wss = app.websocketServer;
      for (const client of wss.clients)
        client.close(1001, 'smith serve is stopping; reconnect with your last seq as after');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => wss.close(() => resolve())),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS))),
      ]);
      clearTimeout(timer);
      for (const client of wss.clients) client.terminate();
    },
  });
  app.addHook('onResponse', async (req) => {
    const raw = req.raw;
    if (!req.ws && typeof raw.headers.upgrade === 'string' && !raw.socket.destroyed) raw.socket.end();
  });
}
