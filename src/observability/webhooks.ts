/**
 * Webhooks: alert and task events POSTed to the URLs of `webhooks:` in smith.yaml.
 *
 * Each event is one JSON body `{id, event, time, data}` with the headers `X-Smith-Event`,
 * `X-Smith-Delivery` (the id, the same on every try: receivers de-duplicate by it),
 * `X-Smith-Timestamp` (unix seconds of the try) and, when the webhook names a `secret_env`,
 * `X-Smith-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>` (see
 * {@link verifyWebhookSignature} for the receiver's side).
 *
 * Deliveries run in the background: each webhook has its own bounded queue (the oldest undelivered
 * event is dropped and logged when it is full) and a few deliveries in flight at once, so a slow or
 * failing endpoint never holds up the engine, the API or another webhook. A try that ends in a
 * network error, no answer within the webhook's `timeout`, 408, 429 or a 5xx is retried with
 * exponential backoff and jitter (cockatiel); after `max_attempts` tries the event is given up and
 * logged. See docs/slos-and-alerts.md.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ExponentialBackoff, TimeoutStrategy, handleWhen, retry, timeout, wrap } from 'cockatiel';
import { SmithError } from '../core/errors.js';
import { ulid } from '../core/ids.js';
import { WEBHOOK_EVENTS, type WebhookConfig, type WebhookEvent } from '../core/schema/config-schema.js';
import { isTerminalTaskState } from '../core/states.js';
import type { Json } from '../core/types.js';
import { taskView } from '../core/views.js';
import type { Engine, EngineEventMap } from '../engine/engine.js';
import type { Store } from '../store/store.js';
import { SILENT_LOG, type LogSink } from './alerts.js';

/** The body of every webhook request. */
export interface WebhookPayload {
  /** The event's id (`ev_<ULID>`), also in `X-Smith-Delivery`; the same on every try. */
  id: string;
  event: WebhookEvent;
  /** When the event happened, ISO 8601. */
  time: string;
  /** The alert (alert events) or the task (task events) as JSON. */
  data: Json;
}

/** Header names (lower case, as Node delivers them to a receiver). */
export const WEBHOOK_HEADERS = {
  event: 'x-smith-event',
  delivery: 'x-smith-delivery',
  timestamp: 'x-smith-timestamp',
  signature: 'x-smith-signature',
} as const;

/**
 * Statuses a try is retried on: 408 Request Timeout, 429 Too Many Requests and every 5xx. Any
 * other status outside 2xx gives the event up at once (the same request would fail the same way).
 */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Default bound of each webhook's queue (events waiting, not counting those in flight). */
export const DEFAULT_WEBHOOK_QUEUE_LIMIT = 1000;
/** Default deliveries in flight at once per webhook. */
export const DEFAULT_WEBHOOK_CONCURRENCY = 4;
/** Default first retry delay in ms; later ones grow exponentially (factor 2) with decorrelated jitter. */
export const DEFAULT_WEBHOOK_INITIAL_DELAY_MS = 500;
/** Default longest retry delay in ms. */
export const DEFAULT_WEBHOOK_MAX_DELAY_MS = 60_000;
/** Default time `close()` lets queued events go out before it drops them, ms. */
export const DEFAULT_WEBHOOK_CLOSE_GRACE_MS = 2000;
/** Default greatest age of a signature timestamp {@link verifyWebhookSignature} accepts, seconds. */
export const DEFAULT_SIGNATURE_TOLERANCE_S = 300;

/**
 * The signature of one request: `sha256=` and the hex HMAC-SHA256 (RFC 2104) of
 * `<timestamp>.<body>` keyed with the secret. Signing the timestamp with the body lets a receiver
 * refuse old requests replayed (the scheme Stripe and Slack use).
 * @param secret - the webhook's secret (the value of its `secret_env`)
 * @param timestamp - unix seconds, as sent in `X-Smith-Timestamp`
 * @param body - the exact request body
 * @returns the `X-Smith-Signature` value
 */
export function webhookSignature(secret: string, timestamp: number | string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * Check a request a receiver got: the signature matches the body and timestamp (compared in
 * constant time), and the timestamp is recent.
 * @param secret - the shared secret
 * @param request - the raw body (as received, before any JSON parsing) and the two headers
 * @param options - `toleranceS`: greatest age (or skew) in seconds, default 300; `now`: ms since
 *   the epoch, default now
 * @returns true when the request is genuine and fresh
 * @example
 * const ok = verifyWebhookSignature(process.env.SMITH_WEBHOOK_SECRET!, {
 *   body: rawBody,
 *   timestamp: req.headers['x-smith-timestamp'],
 *   signature: req.headers['x-smith-signature'],
 * });
 */
export function verifyWebhookSignature(
  secret: string,
  request: {
    body: string;
    timestamp: string | string[] | undefined;
    signature: string | string[] | undefined;
  },
  options: { toleranceS?: number; now?: number } = {},
): boolean {
  const { timestamp, signature } = request;
  if (typeof timestamp !== 'string' || typeof signature !== 'string' || !/^\d+$/.test(timestamp))
    return false;
  const age = Math.abs((options.now ?? Date.now()) / 1000 - Number(timestamp));
  if (age > (options.toleranceS ?? DEFAULT_SIGNATURE_TOLERANCE_S)) return false;
  const expected = Buffer.from(webhookSignature(secret, timestamp, request.body));
  const got = Buffer.from(signature);
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/** Whether a string names a webhook event. */
export function isWebhookEvent(s: string): s is WebhookEvent {
  return (WEBHOOK_EVENTS as readonly string[]).includes(s);
}

/** Options of {@link WebhookDispatcher}. */
export interface WebhookDispatcherOptions {
  /** The webhooks (`webhooks:` of smith.yaml). */
  webhooks: readonly WebhookConfig[];
  /** Where `secret_env` names are looked up. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Where dropped and given-up events are logged. Default: nowhere. */
  log?: LogSink;
  /** Events waiting per webhook before the oldest is dropped. Default 1000. */
  queueLimit?: number;
  /** Deliveries in flight at once per webhook. Default 4. */
  concurrency?: number;
  /** First retry delay in ms. Default 500. */
  initialDelayMs?: number;
  /** Longest retry delay in ms. Default 60000. */
  maxDelayMs?: number;
}

/** Counts since the dispatcher started, over every webhook. */
export interface WebhookStats {
  /** Waiting in queues now. */
  queued: number;
  /** Being tried (or waiting for a retry) now. */
  inFlight: number;
  delivered: number;
  /** Given up after their tries, or refused with a status that is not retried. */
  failed: number;
  /** Dropped from a full queue, or left undelivered at close. */
  dropped: number;
}

/** A try that failed; `retryable` says whether another try may succeed. */
class DeliveryError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}

interface Endpoint {
  index: number;
  config: WebhookConfig;
  /** For logs: the origin only (a webhook URL's path or query may hold a token). */
  where: string;
  secret: string | undefined;
  queue: WebhookPayload[];
  active: number;
}

/**
 * Delivers events to the configured webhooks in the background (see the module summary).
 * `publish` never blocks and never throws; `close` lets queued events go out for a grace period,
 * then drops the rest. `close` may be called twice.
 */
export class WebhookDispatcher {
  private readonly endpoints: Endpoint[];
  private readonly log: LogSink;
  private readonly queueLimit: number;
  private readonly concurrency: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly abort = new AbortController();
  private readonly counts = { delivered: 0, failed: 0, dropped: 0 };
  private idleWaiters: (() => void)[] = [];
  private closing: Promise<void> | undefined;

  /**
   * @param options - webhooks, environment, log, queue and retry tuning
   * @throws SmithError CONFIG_INVALID when a webhook's `secret_env` is not set (or empty)
   */
  constructor(options: WebhookDispatcherOptions) {
    const env = options.env ?? process.env;
    this.log = options.log ?? SILENT_LOG;
    this.queueLimit = options.queueLimit ?? DEFAULT_WEBHOOK_QUEUE_LIMIT;
    this.concurrency = options.concurrency ?? DEFAULT_WEBHOOK_CONCURRENCY;
    this.initialDelayMs = options.initialDelayMs ?? DEFAULT_WEBHOOK_INITIAL_DELAY_MS;
    this.maxDelayMs = options.maxDelayMs ?? DEFAULT_WEBHOOK_MAX_DELAY_MS;
    this.endpoints = options.webhooks.map((config, index) => {
      const where = `webhook ${index + 1} (${new URL(config.url).origin})`;
      let secret: string | undefined;
      if (config.secretEnv !== undefined) {
        secret = env[config.secretEnv];
        if (secret === undefined || secret === '')
          throw new SmithError(
            'CONFIG_INVALID',
            `smith.yaml webhooks[${index}] (${new URL(config.url).origin}): secret_env names ${config.secretEnv}, which is not set; set it to the signing secret, or remove secret_env to send unsigned events`,
            { context: { field: `webhooks.${index}.secret_env` } },
          );
      }
      return { index, config, where, secret, queue: [], active: 0 };
    });
  }

  /** Whether any webhook subscribes to `event`. */
  wants(event: WebhookEvent): boolean {
    return this.endpoints.some((e) => e.config.events.includes(event));
  }

  /** Counts over every webhook (see {@link WebhookStats}). */
  stats(): WebhookStats {
    let queued = 0;
    let inFlight = 0;
    for (const e of this.endpoints) {
      queued += e.queue.length;
      inFlight += e.active;
    }
    return { queued, inFlight, ...this.counts };
  }

  /**
   * Queue an event for every webhook that subscribes to it. Returns at once.
   * @param event - the event name
   * @param data - the alert or task as JSON
   * @param time - when it happened, ms since the epoch (default now)
   * @returns the event's id, or undefined when no webhook takes it (or the dispatcher is closing)
   */
  publish(event: WebhookEvent, data: Json, time: number = Date.now()): string | undefined {
    if (this.closing !== undefined) return undefined;
    const targets = this.endpoints.filter((e) => e.config.events.includes(event));
    if (targets.length === 0) return undefined;
    const payload: WebhookPayload = { id: `ev_${ulid()}`, event, time: new Date(time).toISOString(), data };
    for (const e of targets) {
      if (e.queue.length >= this.queueLimit) {
        const dropped = e.queue.shift()!;
        this.counts.dropped++;
        this.log.warn(
          { webhook: e.where, event: dropped.event, id: dropped.id, queueLimit: this.queueLimit },
          `${e.where}: queue full (${this.queueLimit} events); dropped the oldest undelivered event ${dropped.id} (${dropped.event})`,
        );
      }
      e.queue.push(payload);
      this.pump(e);
    }
    return payload.id;
  }

  private pump(e: Endpoint): void {
    while (e.active < this.concurrency && e.queue.length > 0 && !this.abort.signal.aborted) {
      const payload = e.queue.shift()!;
      e.active++;
      void this.deliver(e, payload).finally(() => {
        e.active--;
        this.pump(e);
        this.notifyIdle();
      });
    }
  }

  private notifyIdle(): void {
    if (this.stats().queued + this.stats().inFlight > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** One event to one webhook, with its retries; never throws. */
  private async deliver(e: Endpoint, payload: WebhookPayload): Promise<void> {
    const body = JSON.stringify(payload);
    const limit = e.config.timeoutMs;
    const closing = this.abort.signal;
    let tries = 0;
    const policy = wrap(
      retry(
        handleWhen((err) => err instanceof DeliveryError && err.retryable),
        {
          maxAttempts: e.config.maxAttempts - 1,
          backoff: new ExponentialBackoff({
            initialDelay: this.initialDelayMs,
            maxDelay: this.maxDelayMs,
            exponent: 2,
          }),
        },
        // a retry waiting on its backoff does not keep the process alive
      ).dangerouslyUnref(),
      timeout(limit, TimeoutStrategy.Cooperative),
    );
    try {
      await policy.execute(async ({ signal }) => {
        if (closing.aborted) throw new DeliveryError('the server is stopping', false);
        tries++;
        const ts = Math.floor(Date.now() / 1000);
        const headers: Record<string, string> = {
          'content-type': 'application/json',
          'user-agent': 'smith-webhooks',
          [WEBHOOK_HEADERS.event]: payload.event,
          [WEBHOOK_HEADERS.delivery]: payload.id,
          [WEBHOOK_HEADERS.timestamp]: String(ts),
        };
        if (e.secret !== undefined) headers[WEBHOOK_HEADERS.signature] = webhookSignature(e.secret, ts, body);
        let res: Response;
        try {
          res = await fetch(e.config.url, { method: 'POST', headers, body, signal, redirect: 'manual' });
        } catch (err) {
          if (closing.aborted) throw new DeliveryError('the server is stopping', false);
          if (signal.aborted) throw new DeliveryError(`no answer within ${limit} ms`, true);
          const cause = (err as { cause?: { code?: string; message?: string } }).cause;
          throw new DeliveryError(
            `network error: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
            true,
          );
        }
        // the answer's body is not needed: release the connection
        await res.body?.cancel().catch(() => undefined);
        if (res.status >= 200 && res.status < 300) return;
        throw new DeliveryError(`HTTP ${res.status}`, isRetryableStatus(res.status));
      }, closing);
      this.counts.delivered++;
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      if (closing.aborted) {
        this.counts.dropped++;
        this.log.warn(
          { webhook: e.where, event: payload.event, id: payload.id, tries },
          `${e.where}: event ${payload.id} (${payload.event}) left undelivered: the server stopped`,
        );
        return;
      }
      this.counts.failed++;
      const retryable = err instanceof DeliveryError && err.retryable;
      this.log.error(
        { webhook: e.where, event: payload.event, id: payload.id, tries, error: why },
        retryable
          ? `${e.where}: gave up event ${payload.id} (${payload.event}) after ${tries} tries; last: ${why}`
          : `${e.where}: event ${payload.id} (${payload.event}) refused (${why}); not retried`,
      );
    }
  }

  /**
   * Stop taking events; let queued and in-flight ones go out for up to `graceMs`, then abort the
   * rest (logged as dropped). Safe to call twice.
   * @param options - `graceMs`, default 2000
   */
  close(options: { graceMs?: number } = {}): Promise<void> {
    this.closing ??= (async () => {
      const grace = options.graceMs ?? DEFAULT_WEBHOOK_CLOSE_GRACE_MS;
      const s = this.stats();
      if (s.queued + s.inFlight > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, grace))),
        ]);
        clearTimeout(timer);
      }
      this.abort.abort();
      for (const e of this.endpoints) {
        if (e.queue.length === 0) continue;
        this.counts.dropped += e.queue.length;
        this.log.warn(
          { webhook: e.where, events: e.queue.length },
          `${e.where}: ${e.queue.length} queued event(s) left undelivered: the server stopped`,
        );
        e.queue = [];
      }
    })();
    return this.closing;
  }
}

/**
 * Send `task.completed`, `task.failed`, `task.canceled` and `task.rejected` (data: the task as
 * core/views.ts `taskView` shows it) when the engine moves a task to that state.
 * @param engine - the engine whose `task:state` events to follow
 * @param dispatcher - where the events go
 * @returns a function that stops following
 */
export function forwardTaskEvents(engine: Engine, dispatcher: WebhookDispatcher): () => void {
  const listener = ({ task, to }: EngineEventMap['task:state']): void => {
    if (!isTerminalTaskState(to)) return;
    const event = `task.${to}`;
    if (isWebhookEvent(event) && dispatcher.wants(event))
      dispatcher.publish(event, taskView(task) as unknown as Json);
  };
  engine.on('task:state', listener);
  return () => engine.off('task:state', listener);
}

/**
 * Follows the audit chain and sends its alert records (`alert.fired`, `alert.acknowledged`,
 * `alert.resolved`; data: the alert) to the webhooks, whichever process wrote them (the server's
 * evaluator, the API, or `smith alerts ack` beside the server). It starts at the chain's head:
 * records written before {@link start} are not sent.
 */
export class AlertAuditFeed {
  private next = 1;
  private chain: Promise<void> = Promise.resolve();

  /**
   * @param store - the home's store
   * @param dispatcher - where the events go
   * @param pageSize - audit records read per query (default 500)
   */
  constructor(
    private readonly store: Store,
    private readonly dispatcher: WebhookDispatcher,
    private readonly pageSize = 500,
  ) {}

  /** Start after the records already written. */
  async start(): Promise<void> {
    const head = await this.store.auditHead();
    this.next = (head?.seq ?? 0) + 1;
  }

  /**
   * Send the alert records written since the last poll (polls run one at a time).
   * @throws StoreError when the store cannot be read
   */
  poll(): Promise<void> {
    const run = this.chain.then(async () => {
      for (;;) {
        const records = await this.store.auditRecords(this.next, this.pageSize);
        for (const r of records) {
          this.next = r.seq + 1;
          if (r.action.startsWith('alert.') && isWebhookEvent(r.action) && this.dispatcher.wants(r.action))
            this.dispatcher.publish(r.action, r.data, r.time);
        }
        if (records.length < this.pageSize) return;
      }
    });
    this.chain = run.catch(() => undefined);
    return run;
  }
}
