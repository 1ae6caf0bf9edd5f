/**
 * Server-Sent Events (the WHATWG HTML standard, "Server-sent events"): the wire format, one open
 * stream ({@link SseStream}), the streams of a server ({@link SseStreams}: heartbeats, counts, and
 * the end of every stream when the server closes), and the event stream's tailer
 * ({@link EventHub}).
 *
 * The tailer is one per server. It reads new task events and audit records from the store (woken by
 * the engine's `task:state`, `task:progress` and `workflow:state` events, and polling for writes of
 * other processes),
 * serializes each event once and writes the same text to every client. A client that reconnects
 * with `Last-Event-ID` is replayed what it missed from the store, then joins the live events with no
 * gap and no duplicate. The contract is in docs/events-and-metrics.md.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AuditRecord } from '../core/types.js';
import type { Engine, EngineEventMap } from '../engine/engine.js';
import type { StreamEvent, Store } from '../store/store.js';

/** Largest text a client may leave unsent in its socket's buffer before it is disconnected, in bytes. */
export const DEFAULT_MAX_BUFFER_BYTES = 1024 * 1024;
/** Interval of the comment heartbeat that keeps idle streams (and proxies) open, in ms. */
export const DEFAULT_HEARTBEAT_MS = 15_000;
/** Interval at which the tailer looks for rows written by other processes, in ms. */
export const DEFAULT_POLL_MS = 50;
/** Rows read from the store at once. */
export const DEFAULT_PAGE_SIZE = 1000;
/** Reconnection delay a client is told to use (the `retry:` field), in ms. */
export const RECONNECT_MS = 1000;
/** Interval of the check for stalled clients, in ms. */
const CHECK_MS = 1000;
/** How long an ended stream may take to deliver what it still holds before it is cut, in ms. */
export const END_GRACE_MS = 1000;
/**
 * After a fan-out that took d ms the tailer rests min(d, this) ms before it reads again, so that
 * writing to many clients takes at most about half of the event loop; what comes meanwhile goes
 * out in the next batch, one write per client.
 */
export const MAX_REST_MS = 50;

/**
 * One SSE message: `id:`, `event:` and one `data:` line, then the blank line that ends it.
 * @param m - `data` must hold no line break (JSON.stringify output never does)
 * @returns the message text
 */
export function sseMessage(m: { id?: string; event?: string; data: string }): string {
  return `${m.id !== undefined ? `id: ${m.id}\n` : ''}${m.event !== undefined ? `event: ${m.event}\n` : ''}data: ${m.data}\n\n`;
}

/** Options of an {@link SseStream}. */
export interface SseStreamOptions {
  /** Disconnect when more than this many bytes wait in the socket's buffer. Default 1 MiB. */
  maxBufferBytes?: number;
}

/**
 * An open event stream on a hijacked Fastify reply. Writes never wait: a client that leaves more
 * than `maxBufferBytes` unread is disconnected (an SSE client reconnects by itself, with
 * `Last-Event-ID`).
 */
export class SseStream {
  /** Text written at each heartbeat; a stream may compute its own (see {@link EventHub}). */
  heartbeat: () => string = () => ': keep-alive\n\n';
  private readonly res: FastifyReply['raw'];
  private readonly maxBuffer: number;
  private closeFns: (() => void)[] = [];
  private isClosed = false;
  private lastBuffered = 0;

  /**
   * Take the reply over and send the stream's headers (status 200, `text/event-stream`, the
   * headers hooks already set such as CORS and rate limits) and the reconnection delay.
   * @param reply - the reply of the request (hijacked here)
   * @param stream - the stream's name (`events`, `kpi`), for counts
   */
  constructor(
    reply: FastifyReply,
    readonly stream: string,
    options: SseStreamOptions = {},
  ) {
    this.maxBuffer = options.maxBufferBytes ?? DEFAULT_MAX_BUFFER_BYTES;
    reply.hijack();
    this.res = reply.raw;
    // the body ends when the connection does: plain writes, without chunk framing (fewer bytes and
    // cheaper writes to thousands of clients)
    this.res.useChunkedEncodingByDefault = false;
    const headers: Record<string, string | number | readonly string[] | undefined> = {
      ...reply.getHeaders(),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'close',
      // nginx would otherwise buffer the stream
      'x-accel-buffering': 'no',
    };
    // set one by one, so that hooks can read them back (getHeader) once the stream ends
    for (const [k, v] of Object.entries(headers)) if (v !== undefined) this.res.setHeader(k, v);
    this.res.writeHead(200);
    this.res.socket?.setNoDelay(true);
    this.res.once('close', () => this.closed());
    this.res.write(`retry: ${RECONNECT_MS}\n\n`);
  }

  /** True until the stream ends (either side). */
  get isOpen(): boolean {
    return !this.isClosed;
  }

  /** Bytes written but not yet handed to the socket. */
  get buffered(): number {
    return this.res.writableLength;
  }

  /**
   * Write text (whole messages). A client that left more than `maxBufferBytes` unread is
   * disconnected instead (so one large message never cuts a client that keeps up).
   * @returns false when the stream is closed (or was just closed for being slow)
   */
  send(text: string): boolean {
    if (this.isClosed) return false;
    if (this.res.writableLength > this.maxBuffer) {
      this.destroy();
      return false;
    }
    this.res.write(text);
    return true;
  }

  /**
   * Write text whatever the buffer holds; the caller waits for {@link SseStream.drained} (replays).
   * @returns false when the stream is closed
   */
  write(text: string): boolean {
    if (this.isClosed) return false;
    this.res.write(text);
    return true;
  }

  /** Resolve when the buffer drained or the stream closed. */
  drained(): Promise<void> {
    if (this.isClosed || this.res.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }

  /**
   * Cut the client when more than `maxBufferBytes` wait unsent and nothing was read since the last
   * check (a client that drains a large message in time is kept).
   */
  checkStalled(): void {
    const now = this.buffered;
    if (now > this.maxBuffer && now >= this.lastBuffered) this.destroy();
    this.lastBuffered = now;
  }

  /** Call `fn` once when the stream closes (at once when it is closed). */
  onClose(fn: () => void): void {
    if (this.isClosed) fn();
    else this.closeFns.push(fn);
  }

  /**
   * End the stream gracefully: what was written is still delivered, for up to
   * {@link END_GRACE_MS}; then the connection is cut (a stalled client must not hold a closing
   * server).
   */
  end(): void {
    if (this.isClosed) return;
    this.res.end();
    if (!this.res.writableFinished) {
      const cut = setTimeout(() => this.res.destroy(), END_GRACE_MS);
      cut.unref();
      this.res.once('close', () => clearTimeout(cut));
    }
    this.closed();
  }

  /** Cut the connection at once (a slow client). */
  destroy(): void {
    if (this.isClosed) return;
    this.res.destroy();
    this.closed();
  }

  private closed(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const fns = this.closeFns;
    this.closeFns = [];
    for (const fn of fns) fn();
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The open event streams of this server (see {@link sseStreams}). */
    sseStreams?: SseStreams;
  }
}

/**
 * The open streams of one server: one timer for all of them (the heartbeat, and the check that
 * cuts stalled clients), their counts, and the end of all of them when the server closes.
 */
export class SseStreams {
  private readonly open = new Set<SseStream>();
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  private readonly closeFns: (() => void)[] = [];
  private readonly lagFns: ((lagMs: number) => void)[] = [];
  private sinceBeat = 0;

  /** @param heartbeatMs - interval of the heartbeat, in ms (default 15 s; checks run every second) */
  constructor(private readonly heartbeatMs = DEFAULT_HEARTBEAT_MS) {}

  /**
   * Keep track of a stream until it closes. A stream added while the server closes is ended.
   * @returns false when the server is closing (the stream was ended)
   */
  add(s: SseStream): boolean {
    if (this.closing) {
      s.end();
      return false;
    }
    this.open.add(s);
    s.onClose(() => {
      this.open.delete(s);
      if (this.open.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    });
    if (!this.timer) {
      this.sinceBeat = 0;
      this.timer = setInterval(() => this.check(), CHECK_MS);
      this.timer.unref();
    }
    return true;
  }

  /** Open streams by stream name. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.open) out[s.stream] = (out[s.stream] ?? 0) + 1;
    return out;
  }

  /** Call `fn` when the server closes (before the streams end), e.g. to stop a tailer. */
  onClose(fn: () => void): void {
    this.closeFns.push(fn);
  }

  /** Call `fn` with each delivery lag reported through {@link SseStreams.delivered} (metrics). */
  onDelivered(fn: (lagMs: number) => void): void {
    this.lagFns.push(fn);
  }

  /**
   * Report that an event went out to every client.
   * @param lagMs - from the event's recorded time to the end of the writes, in ms
   */
  delivered(lagMs: number): void {
    for (const fn of this.lagFns) fn(lagMs);
  }

  /** End every stream and refuse new ones. Safe to call twice. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    for (const fn of this.closeFns) fn();
    for (const s of [...this.open]) s.end();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Every second: cut stalled clients; every `heartbeatMs`: the heartbeat. */
  private check(): void {
    this.sinceBeat += CHECK_MS;
    const beat = this.sinceBeat >= this.heartbeatMs;
    if (beat) this.sinceBeat = 0;
    for (const s of this.open) {
      s.checkStalled();
      if (beat) s.send(s.heartbeat());
    }
  }
}

/**
 * The streams of a server, made on first use; the server's `preClose` hook ends them all (an open
 * stream would otherwise keep `close()` waiting).
 * @param app - the server (before it is ready)
 * @returns its {@link SseStreams}
 */
export function sseStreams(app: FastifyInstance): SseStreams {
  if (app.sseStreams) return app.sseStreams;
  const streams = new SseStreams();
  app.decorate('sseStreams', streams);
  app.addHook('preClose', (done) => {
    streams.close();
    done();
  });
  return streams;
}

// ------------------------------------------------------------------------------------- events

/**
 * Where a client of the event stream is: the last task event seq and the last audit seq it was
 * sent (or that were passed over for it). Sent as each message's `id:` as `<task>.<audit>`.
 */
export interface EventCursor {
  task: number;
  audit: number;
}

/** Event names of the event stream. */
export type StreamEventName = 'task' | 'agent' | 'alert';

/** Every event name of the event stream. */
export const STREAM_EVENT_NAMES: readonly StreamEventName[] = ['task', 'agent', 'alert'];

/**
 * Parse an event id (`<task seq>.<audit seq>`, two non-negative integers of at most 15 digits).
 * @param text - the id as a client sent it (`Last-Event-ID`); surrounding spaces are ignored
 * @returns the cursor, or undefined when the text is not an event id
 */
export function parseEventCursor(text: string): EventCursor | undefined {
  const m = /^(\d{1,15})\.(\d{1,15})$/.exec(text.trim());
  if (!m) return undefined;
  return { task: Number(m[1]), audit: Number(m[2]) };
}

/**
 * Format a cursor as an event id.
 * @param c - the cursor
 * @returns `<task>.<audit>`
 */
export function formatEventCursor(c: EventCursor): string {
  return `${c.task}.${c.audit}`;
}

function maxCursor(a: EventCursor, b: EventCursor): EventCursor {
  return { task: Math.max(a.task, b.task), audit: Math.max(a.audit, b.audit) };
}

function sameCursor(a: EventCursor, b: EventCursor): boolean {
  return a.task === b.task && a.audit === b.audit;
}

/** What a client of the event stream asked for. */
export interface EventFilter {
  /** Event names to send. */
  events: ReadonlySet<StreamEventName>;
  /** Task event types to send (all when absent). */
  types?: ReadonlySet<string>;
  /** Only events of this task. */
  task?: string;
  /** Only events of the tasks of this workflow. */
  workflow?: string;
}

/** One event, serialized once. */
interface Item {
  name: StreamEventName;
  /** Where it comes from: a task event, an audit record, or the engine (live only, no seq). */
  source: 'task' | 'audit' | 'live';
  seq: number;
  taskId: string | null;
  workflowId: string | null;
  type: string | null;
  /** When it was recorded (ms since the epoch); for live events, when the engine reported it. */
  time: number;
  /** The `data:` JSON. */
  data: string;
  /** The cursor once this event is delivered (its id). */
  after: EventCursor;
  /** The message, with `after` as its id. */
  msg: string;
}

/** Events read in one go: they move a cursor from `start` to `end`. */
interface Batch {
  items: Item[];
  start: EventCursor;
  end: EventCursor;
  bytes: number;
}

interface Client {
  stream: SseStream;
  filter: EventFilter;
  /** The filter lets everything through. */
  all: boolean;
  cursor: EventCursor;
  /** The id of the last message sent. */
  lastId: string;
  /** While the client is replayed from the store: the live batches it will get after. */
  backlog: Batch[] | null;
  backlogBytes: number;
}

/** Options of an {@link EventHub}. */
export interface EventHubOptions {
  /** Look for rows written by other processes this often, in ms. Default 50. */
  pollMs?: number;
  /** Rows read at once. Default 1000. */
  pageSize?: number;
  /** Disconnect a client with more than this many unsent bytes. Default 1 MiB. */
  maxBufferBytes?: number;
  /** Told about store reads that failed (the next poll tries again). Default: ignored. */
  onError?: (err: unknown) => void;
  /**
   * Told, after each live batch was written to every client, the delivery lag of each task event
   * in it: from its recorded time to the end of the writes, in ms. Default: ignored.
   */
  onDelivered?: (lagMs: number) => void;
}

function toIso(ms: number): string {
  return new Date(ms).toISOString();
}

/** The `data:` of a task event. */
function taskData(e: StreamEvent): string {
  return JSON.stringify({
    seq: e.seq,
    task_id: e.taskId,
    workflow_id: e.workflowId,
    attempt_id: e.attemptId,
    type: e.type,
    time: toIso(e.time),
    data: e.data,
  });
}

/** The event name of an audit record, or undefined when the stream does not carry it. */
function auditEventName(r: AuditRecord): StreamEventName | undefined {
  if (r.action.startsWith('alert.')) return 'alert';
  if (r.action.startsWith('agent.')) return 'agent';
  return undefined;
}

/** The `data:` of an alert or agent audit record. */
function auditData(name: StreamEventName, r: AuditRecord): string {
  if (name === 'alert') {
    return JSON.stringify({
      audit_seq: r.seq,
      action: r.action,
      alert_id: r.subject.startsWith('alert:') ? r.subject.slice('alert:'.length) : r.subject,
      actor: r.actor,
      time: toIso(r.time),
      alert: r.data,
    });
  }
  return JSON.stringify({
    kind: 'audit',
    audit_seq: r.seq,
    action: r.action,
    agent: r.subject.startsWith('agent:') ? r.subject.slice('agent:'.length) : r.subject,
    actor: r.actor,
    time: toIso(r.time),
    data: r.data,
  });
}

/**
 * Merge task events and audit records (each ascending by seq) into one batch, ordered by time
 * while keeping each source's own order; audit records the stream does not carry only move the
 * cursor. Agent instance changes (`live`, their `data:` JSON) come first, with `start` as their id.
 */
function toBatch(
  events: StreamEvent[],
  audits: AuditRecord[],
  start: EventCursor,
  live: string[] = [],
): Batch {
  const items: Item[] = [];
  let task = start.task;
  let audit = start.audit;
  let bytes = 0;
  for (const data of live) {
    const msg = sseMessage({ id: formatEventCursor(start), event: 'agent', data });
    bytes += msg.length;
    items.push({
      name: 'agent',
      source: 'live',
      seq: 0,
      taskId: null,
      workflowId: null,
      type: null,
      time: Date.now(),
      data,
      after: start,
      msg,
    });
  }
  let i = 0;
  let j = 0;
  while (i < events.length || j < audits.length) {
    const e = events[i];
    const r = audits[j];
    if (e && (!r || e.time <= r.time)) {
      i++;
      task = Math.max(task, e.seq);
      const after = { task, audit };
      const data = taskData(e);
      const msg = sseMessage({ id: formatEventCursor(after), event: 'task', data });
      bytes += msg.length;
      items.push({
        name: 'task',
        source: 'task',
        seq: e.seq,
        taskId: e.taskId,
        workflowId: e.workflowId,
        type: e.type,
        time: e.time,
        data,
        after,
        msg,
      });
    } else if (r) {
      j++;
      audit = Math.max(audit, r.seq);
      const name = auditEventName(r);
      if (!name) continue;
      const after = { task, audit };
      const data = auditData(name, r);
      const msg = sseMessage({ id: formatEventCursor(after), event: name, data });
      bytes += msg.length;
      items.push({
        name,
        source: 'audit',
        seq: r.seq,
        taskId: null,
        workflowId: null,
        type: null,
        time: r.time,
        data,
        after,
        msg,
      });
    }
  }
  return { items, start, end: { task, audit }, bytes };
}

function matches(f: EventFilter, item: Item): boolean {
  if (!f.events.has(item.name)) return false;
  if (item.name !== 'task') return true;
  if (f.types && !f.types.has(item.type ?? '')) return false;
  if (f.task !== undefined && item.taskId !== f.task) return false;
  if (f.workflow !== undefined && item.workflowId !== f.workflow) return false;
  return true;
}

function passesAll(f: EventFilter): boolean {
  return (
    STREAM_EVENT_NAMES.every((n) => f.events.has(n)) &&
    f.types === undefined &&
    f.task === undefined &&
    f.workflow === undefined
  );
}

/**
 * The tailer of the event stream: one per server. Reads new task events and audit records from
 * the store and fans each event out to every client, serialized once.
 *
 * Ordering: task events in seq order, audit records in seq order, the two interleaved by time.
 * Agent instance changes reported by the engine are live only (not in the store); they carry the
 * current cursor as their id.
 */
export class EventHub {
  private cursor: EventCursor = { task: 0, audit: 0 };
  private readonly clients = new Set<Client>();
  private readonly pollMs: number;
  private readonly page: number;
  private readonly maxBuffer: number;
  private readonly onError: (err: unknown) => void;
  private readonly onDelivered: (lagMs: number) => void;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private again = false;
  /** No read before this time (performance.now() ms): see {@link MAX_REST_MS}. */
  private restUntil = 0;
  private wakeScheduled = false;
  private isClosed = false;
  private readonly wake = (): void => {
    if (this.wakeScheduled || this.isClosed) return;
    this.wakeScheduled = true;
    // after the change that woke us is committed (progress is reported before it is recorded)
    setImmediate(() => {
      this.wakeScheduled = false;
      this.store.flush().then(
        () => this.tick(),
        (err: unknown) => this.onError(err),
      );
    });
  };
  /** Agent instance changes (their `data:` JSON) waiting for the next batch. */
  private live: string[] = [];
  private readonly onInstance = (e: EngineEventMap['agent:instance']): void => {
    if (this.clients.size === 0) return;
    this.live.push(
      JSON.stringify({
        kind: 'instance',
        agent: e.agent,
        index: e.index,
        state: e.state,
        time: toIso(Date.now()),
      }),
    );
    this.wake();
  };

  /**
   * @param store - where events are read
   * @param engine - wakes the tailer, and reports agent instance changes
   */
  constructor(
    private readonly store: Store,
    private readonly engine: Engine,
    options: EventHubOptions = {},
  ) {
    this.pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    this.page = options.pageSize ?? DEFAULT_PAGE_SIZE;
    this.maxBuffer = options.maxBufferBytes ?? DEFAULT_MAX_BUFFER_BYTES;
    this.onError = options.onError ?? (() => undefined);
    this.onDelivered = options.onDelivered ?? (() => undefined);
  }

  /**
   * Start at the store's heads, listen to the engine and start polling.
   * @throws StoreError when the store cannot be read
   */
  async start(): Promise<void> {
    this.cursor = await this.heads();
    this.engine.on('task:state', this.wake);
    this.engine.on('task:progress', this.wake);
    // a new task's first state comes with its workflow's
    this.engine.on('workflow:state', this.wake);
    this.engine.on('agent:instance', this.onInstance);
    this.timer = setInterval(() => void this.tick(), this.pollMs);
    this.timer.unref();
  }

  /** The newest task event seq and audit seq in the store. */
  async heads(): Promise<EventCursor> {
    const [task, head] = await Promise.all([this.store.lastEventSeq(), this.store.auditHead()]);
    return { task, audit: head?.seq ?? 0 };
  }

  /** Clients connected now. */
  get size(): number {
    return this.clients.size;
  }

  /**
   * Send the events of the store to a stream: from `from` (replayed from the store, then live), or
   * from now on when `from` is absent.
   * @param stream - an open stream
   * @param filter - what the client asked for
   * @param from - the cursor of the client's last event (its `Last-Event-ID`)
   */
  attach(stream: SseStream, filter: EventFilter, from?: EventCursor): void {
    if (this.isClosed) {
      stream.end();
      return;
    }
    const start = from ?? { ...this.cursor };
    const c: Client = {
      stream,
      filter,
      all: passesAll(filter),
      cursor: start,
      lastId: formatEventCursor(start),
      backlog: from ? [] : null,
      backlogBytes: 0,
    };
    this.clients.add(c);
    stream.onClose(() => this.clients.delete(c));
    stream.heartbeat = () => this.heartbeat(c);
    if (from) {
      this.replay(c, { ...this.cursor }).catch((err: unknown) => {
        this.onError(err);
        stream.destroy();
      });
    }
  }

  /** Stop the tailer (the streams are ended by their {@link SseStreams}). Safe to call twice. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.timer) clearInterval(this.timer);
    this.engine.off('task:state', this.wake);
    this.engine.off('task:progress', this.wake);
    this.engine.off('workflow:state', this.wake);
    this.engine.off('agent:instance', this.onInstance);
    for (const c of [...this.clients]) c.stream.end();
    this.clients.clear();
  }

  /** A comment that keeps the stream open, with the client's cursor when its last id lags. */
  private heartbeat(c: Client): string {
    if (c.backlog) return ': keep-alive\n\n';
    const id = formatEventCursor(c.cursor);
    if (id === c.lastId) return ': keep-alive\n\n';
    // an id with no data moves the client's Last-Event-ID without an event (WHATWG HTML, "dispatch the event")
    c.lastId = id;
    return `: keep-alive\nid: ${id}\n\n`;
  }

  /** Read what is new in the store and send it. One at a time; a call while one runs asks for another. */
  private async tick(): Promise<void> {
    if (this.isClosed) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    try {
      do {
        // leave the event loop to the rest of the server for as long as the last fan-out took
        const rest = this.restUntil - performance.now();
        if (rest > 0) await new Promise((r) => setTimeout(r, rest));
        this.again = false;
        if (this.clients.size === 0) {
          // nobody listens: keep up with the heads without reading rows
          const heads = await this.heads();
          if (this.clients.size === 0) {
            this.cursor = maxCursor(this.cursor, heads);
            this.live = [];
          } else this.again = true;
          continue;
        }
        const events = await this.store.eventsSince(this.cursor.task, this.page);
        const audits = await this.store.auditRecords(this.cursor.audit + 1, this.page);
        const live = this.live;
        this.live = [];
        if (events.length === 0 && audits.length === 0 && live.length === 0) break;
        const batch = toBatch(events, audits, this.cursor, live);
        this.cursor = batch.end;
        const t0 = performance.now();
        this.fanout(batch);
        const t1 = performance.now();
        this.restUntil = t1 + Math.min(t1 - t0, MAX_REST_MS);
        const now = Date.now();
        for (const item of batch.items) if (item.source === 'task') this.onDelivered(now - item.time);
        if (events.length === this.page || audits.length === this.page) this.again = true;
      } while (this.again && !this.isClosed);
    } catch (err) {
      this.onError(err);
    } finally {
      this.ticking = false;
    }
  }

  private fanout(batch: Batch): void {
    let whole: string | undefined;
    for (const c of this.clients) {
      if (c.backlog) {
        // a client whose replay falls too far behind reconnects and goes on from where it got to
        if (c.backlogBytes > this.maxBuffer) c.stream.destroy();
        c.backlog.push(batch);
        c.backlogBytes += batch.bytes;
        continue;
      }
      if (c.all && sameCursor(c.cursor, batch.start)) {
        // the common case: everything, in step with the tailer: the same text for every client
        whole ??= batch.items.map((i) => i.msg).join('');
        c.cursor = batch.end;
        const last = batch.items[batch.items.length - 1];
        if (last) {
          c.lastId = formatEventCursor(last.after);
          c.stream.send(whole);
        }
        continue;
      }
      this.deliver(c, batch);
    }
  }

  /** Send a batch to one client: what it has not had yet and its filter lets through. */
  private deliver(c: Client, batch: Batch): void {
    let out = '';
    for (const item of batch.items) {
      if (item.source === 'task' && item.seq <= c.cursor.task) continue;
      if (item.source === 'audit' && item.seq <= c.cursor.audit) continue;
      const next = maxCursor(c.cursor, item.after);
      c.cursor = next;
      if (!matches(c.filter, item)) continue;
      const id = formatEventCursor(next);
      out += sameCursor(next, item.after) ? item.msg : sseMessage({ id, event: item.name, data: item.data });
      c.lastId = id;
    }
    c.cursor = maxCursor(c.cursor, batch.end);
    if (out) c.stream.send(out);
  }

  /**
   * Replay what a client missed, from its cursor up to `upto` (the tailer's cursor when it
   * connected), waiting for its socket to drain; then send the live batches that came meanwhile.
   */
  private async replay(c: Client, upto: EventCursor): Promise<void> {
    const s = c.stream;
    // a source the client's filter leaves out whole is not read at all (its cursor jumps to `upto`)
    const ev = c.filter.events;
    let taskDone = !ev.has('task') || c.cursor.task >= upto.task;
    let auditDone = !(ev.has('alert') || ev.has('agent')) || c.cursor.audit >= upto.audit;
    while (s.isOpen && !(taskDone && auditDone)) {
      const events = taskDone ? [] : await this.store.eventsSince(c.cursor.task, this.page);
      const audits = auditDone ? [] : await this.store.auditRecords(c.cursor.audit + 1, this.page);
      const lastTask = events[events.length - 1]?.seq ?? Infinity;
      const lastAudit = audits[audits.length - 1]?.seq ?? Infinity;
      if (events.length < this.page || lastTask >= upto.task) taskDone = true;
      if (audits.length < this.page || lastAudit >= upto.audit) auditDone = true;
      const batch = toBatch(
        events.filter((e) => e.seq <= upto.task),
        audits.filter((r) => r.seq <= upto.audit),
        c.cursor,
      );
      for (const item of batch.items) {
        c.cursor = item.after;
        if (!matches(c.filter, item)) continue;
        if (!s.write(item.msg)) return;
        c.lastId = formatEventCursor(item.after);
        if (s.buffered > this.maxBuffer / 2) await s.drained();
      }
      c.cursor = batch.end;
    }
    if (!s.isOpen) return;
    c.cursor = maxCursor(c.cursor, upto);
    const backlog = c.backlog ?? [];
    c.backlog = null;
    c.backlogBytes = 0;
    for (const b of backlog) {
      if (!s.isOpen) return;
      this.deliver(c, b);
    }
  }
}
