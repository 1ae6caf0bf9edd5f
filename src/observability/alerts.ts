/**
 * SLO alerts and their lifecycle: `firing` (an SLO's burn-rate rule holds) -> `acknowledged` (a
 * person took it) -> `resolved` (no rule of its severity holds any more). At most one alert per SLO
 * and severity is open (firing or acknowledged) at a time; a new one fires only after it resolved.
 * Ids are `AL-0001`, `AL-0002`, … in the order alerts fire.
 *
 * Every change is one store change: a `putAlert` op and an audit record (`alert.fired`,
 * `alert.acknowledged` or `alert.resolved`, subject `alert:<id>`, data = the alert as JSON, see
 * {@link alertView}) in the same commit, so the audit chain holds every step and the server's event
 * stream and webhooks can follow it. The burn-rate rules are in slo.ts; docs/slos-and-alerts.md
 * describes the whole.
 */
import { SmithError } from '../core/errors.js';
import type { SloConfig } from '../core/schema/config-schema.js';
import type { Json } from '../core/types.js';
import type { AlertRecord, AlertState, Op, Store } from '../store/store.js';
import { evaluateSlo, formatWindow, ruleView, type AlertSeverity, type SloStatus } from './slo.js';

/** Every alert state, in lifecycle order. */
export const ALERT_STATES: readonly AlertState[] = ['firing', 'acknowledged', 'resolved'];

/** The states of an open alert (one that has not resolved). */
export const OPEN_ALERT_STATES: readonly AlertState[] = ['firing', 'acknowledged'];

/** Alert severities, most urgent first. */
export const ALERT_SEVERITIES: readonly AlertSeverity[] = ['page', 'ticket'];

/** What alert ids look like: `AL-` and at least four digits (`AL-0001`, `AL-12345`). */
export const ALERT_ID_PATTERN = /^AL-\d{4,}$/;

/** The audit actor of changes the evaluator makes. */
export const ALERTING_ACTOR = 'alerting';

/**
 * The id after the highest one in use.
 * @param existing - ids in use (others than {@link ALERT_ID_PATTERN} are ignored)
 * @returns `AL-` and one more than the highest number, zero-padded to four digits; `AL-0001` first
 */
export function nextAlertId(existing: Iterable<string>): string {
  let max = 0;
  for (const id of existing) if (ALERT_ID_PATTERN.test(id)) max = Math.max(max, Number(id.slice(3)));
  return `AL-${String(max + 1).padStart(4, '0')}`;
}

/**
 * An alert as JSON: what `smith alerts --json` prints, the API answers, audit records hold and
 * webhooks carry. Times are ISO 8601.
 */
export interface AlertView {
  id: string;
  slo: string;
  state: AlertState;
  severity: AlertSeverity;
  summary: string;
  /** The SLO, and the windows and burn rates that fired it (and, once resolved, why). */
  data: Json;
  fired_at: string;
  acked_at: string | null;
  acked_by: string | null;
  resolved_at: string | null;
  updated_at: string;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/**
 * An alert as JSON.
 * @param a - the alert as stored
 * @returns its view
 */
export function alertView(a: AlertRecord): AlertView {
  return {
    id: a.id,
    slo: a.slo,
    state: a.state,
    severity: a.severity,
    summary: a.summary,
    data: a.data,
    fired_at: new Date(a.firedAt).toISOString(),
    acked_at: iso(a.ackedAt),
    acked_by: a.ackedBy,
    resolved_at: iso(a.resolvedAt),
    updated_at: new Date(a.updatedAt).toISOString(),
  };
}

/**
 * The change that records an alert's new state: the alert and its audit record.
 * @param alert - the alert after the change
 * @param action - `alert.fired`, `alert.acknowledged` or `alert.resolved`
 * @param actor - who made it (`alerting`, `key:<id>`, `user:<name>`)
 * @returns the ops of one commit
 */
export function alertChange(
  alert: AlertRecord,
  action: 'alert.fired' | 'alert.acknowledged' | 'alert.resolved',
  actor: string,
): Op[] {
  return [
    { op: 'putAlert', alert },
    {
      op: 'audit',
      actor,
      action,
      subject: `alert:${alert.id}`,
      data: alertView(alert) as unknown as Json,
      time: alert.updatedAt,
    },
  ];
}

/**
 * Whether a string is a list of alert states; the states when it is.
 * @param text - comma-separated states (`firing,acknowledged`)
 * @returns the states, or the first word that is not one
 */
export function parseAlertStates(text: string): { states: AlertState[] } | { bad: string } {
  const states: AlertState[] = [];
  for (const s of text
    .split(',')
    .map((w) => w.trim())
    .filter(Boolean)) {
    if (!ALERT_STATES.includes(s as AlertState)) return { bad: s };
    states.push(s as AlertState);
  }
  return { states };
}

/**
 * Acknowledge an alert: a person took it. Acknowledging an acknowledged alert changes nothing.
 * @param store - the home's store
 * @param id - the alert id (`AL-0001`)
 * @param actor - who acknowledges it (`key:<id>`, `user:<name>`)
 * @param now - the time, ms since the epoch (default now)
 * @returns the alert after the call, and whether it changed
 * @throws SmithError ALERT_NOT_FOUND when no alert has the id; INVALID_TRANSITION when it is resolved
 */
export async function acknowledgeAlert(
  store: Store,
  id: string,
  actor: string,
  now: number = Date.now(),
): Promise<{ alert: AlertRecord; changed: boolean }> {
  const a = await store.getAlert(id);
  if (!a)
    throw new SmithError(
      'ALERT_NOT_FOUND',
      `no alert has the id ${id}; list alerts with "smith alerts" or GET /api/v1/alerts`,
      { context: { alert: id } },
    );
  if (a.state === 'resolved')
    throw new SmithError(
      'INVALID_TRANSITION',
      `alert ${id} resolved at ${iso(a.resolvedAt) ?? '?'}; only a firing alert can be acknowledged`,
      { context: { alert: id, state: a.state } },
    );
  if (a.state === 'acknowledged') return { alert: a, changed: false };
  const next: AlertRecord = { ...a, state: 'acknowledged', ackedAt: now, ackedBy: actor, updatedAt: now };
  await store.commit(alertChange(next, 'alert.acknowledged', actor));
  return { alert: next, changed: true };
}

/** Where the evaluator reports (a pino or Fastify logger fits). */
export interface LogSink {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** A log that drops everything. */
export const SILENT_LOG: LogSink = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Options of {@link AlertEvaluator}. */
export interface AlertEvaluatorOptions {
  store: Store;
  /** The SLOs (`slos:` of smith.yaml). Open alerts of SLOs not listed are resolved. */
  slos: readonly SloConfig[];
  /** ms between evaluations (`alerting.evaluate_every`). */
  everyMs: number;
  /** Where fired and resolved alerts and evaluation failures are logged. Default: nowhere. */
  log?: LogSink;
  /** Called after every evaluation (and every acknowledgement) once its changes committed. */
  onChange?: () => void | Promise<void>;
}

/** One change an evaluation made. */
export interface AlertTransition {
  action: 'alert.fired' | 'alert.resolved';
  alert: AlertRecord;
}

function percent(f: number): string {
  return `${Number((f * 100).toFixed(4))}%`;
}

function rate(r: number | null): string {
  return r === null ? '-' : `${Number(r.toFixed(1))}x`;
}

/**
 * The SLO as alert data: `{name, objective, sli, window_ms, threshold_ms, agent}`.
 * @param slo - the SLO
 */
function sloData(slo: SloConfig): Json {
  return {
    name: slo.name,
    objective: slo.objective,
    sli: slo.sli,
    window_ms: slo.windowMs,
    threshold_ms: slo.thresholdMs ?? null,
    agent: slo.agent ?? null,
  };
}

/**
 * Evaluates every SLO on a timer and keeps the alerts in step: fires an alert when a rule of a
 * severity holds and none of that SLO and severity is open, resolves the open one when no rule of
 * its severity holds any more. Evaluations and acknowledgements made through it run one at a time.
 * `close()` waits for a running evaluation and may be called twice.
 */
export class AlertEvaluator {
  private readonly store: Store;
  private readonly slos: readonly SloConfig[];
  private readonly everyMs: number;
  private readonly log: LogSink;
  private readonly onChange: (() => void | Promise<void>) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  /** @param options - store, SLOs, interval, log */
  constructor(options: AlertEvaluatorOptions) {
    this.store = options.store;
    this.slos = options.slos;
    this.everyMs = options.everyMs;
    this.log = options.log ?? SILENT_LOG;
    this.onChange = options.onChange;
  }

  /** Evaluate now, then every `everyMs` (the timer does not keep the process alive). */
  start(): void {
    if (this.closed || this.timer !== undefined) return;
    const tick = (): void => {
      this.timer = undefined;
      void this.evaluate()
        .catch((err: unknown) => this.log.error({ err }, 'SLO evaluation failed; trying again next interval'))
        .finally(() => {
          if (this.closed) return;
          this.timer = setTimeout(tick, this.everyMs);
          this.timer.unref();
        });
    };
    this.timer = setTimeout(tick, 0);
    this.timer.unref();
  }

  /** Run `fn` after everything queued before it (evaluations and acknowledgements). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Evaluate every SLO once and fire or resolve alerts.
   * @param at - the evaluation time, ms since the epoch (default now)
   * @returns the alerts fired and resolved
   * @throws StoreError when the store cannot be read or written
   */
  evaluate(at?: number): Promise<AlertTransition[]> {
    return this.serial(async () => {
      const now = at ?? Date.now();
      const statuses = await Promise.all(this.slos.map((s) => evaluateSlo(this.store, s, now)));
      const open = await this.store.listAlerts([...OPEN_ALERT_STATES]);
      const changes: AlertTransition[] = [];
      for (const status of statuses) {
        for (const severity of ALERT_SEVERITIES) {
          const current = open.find((a) => a.slo === status.slo.name && a.severity === severity);
          const holding = status.rules.some((r) => r.severity === severity && r.firing);
          if (holding && !current) changes.push(await this.fire(status, severity, now));
          else if (!holding && current) {
            const done = await this.resolve(current.id, now, {
              reason: 'recovered',
              windows: status.rules.filter((r) => r.severity === severity).map(ruleView) as unknown as Json,
            });
            if (done) changes.push(done);
          }
        }
      }
      const names = new Set(this.slos.map((s) => s.name));
      for (const a of open) {
        if (names.has(a.slo)) continue;
        const done = await this.resolve(a.id, now, { reason: 'the SLO is no longer configured' });
        if (done) changes.push(done);
      }
      if (this.onChange) await this.onChange();
      return changes;
    });
  }

  /**
   * Acknowledge an alert (see {@link acknowledgeAlert}), in turn with the evaluations.
   * @throws SmithError ALERT_NOT_FOUND (unknown id) or INVALID_TRANSITION (resolved)
   */
  acknowledge(id: string, actor: string): Promise<{ alert: AlertRecord; changed: boolean }> {
    return this.serial(async () => {
      const r = await acknowledgeAlert(this.store, id, actor);
      if (r.changed && this.onChange) await this.onChange();
      return r;
    });
  }

  private async fire(status: SloStatus, severity: AlertSeverity, now: number): Promise<AlertTransition> {
    const slo = status.slo;
    const firing = status.rules.filter((r) => r.severity === severity && r.firing);
    const top = firing[0]!;
    const all = await this.store.listAlerts();
    const alert: AlertRecord = {
      id: nextAlertId(all.map((a) => a.id)),
      slo: slo.name,
      state: 'firing',
      severity,
      summary:
        `SLO "${slo.name}" (${percent(slo.objective)} ${slo.sli} over ${formatWindow(slo.windowMs)}${slo.agent ? `, agent ${slo.agent}` : ''}): ` +
        `error budget burning ${rate(top.long.burnRate)} over ${formatWindow(top.long.windowMs)} and ${rate(top.short.burnRate)} over ${formatWindow(top.short.windowMs)}, ` +
        `above ${top.threshold}x (${severity})`,
      data: {
        slo: sloData(slo),
        windows: firing.map(ruleView) as unknown as Json,
        sli_value: status.sli,
        error_budget_remaining: status.errorBudgetRemaining,
      },
      firedAt: now,
      ackedAt: null,
      ackedBy: null,
      resolvedAt: null,
      updatedAt: now,
    };
    await this.store.commit(alertChange(alert, 'alert.fired', ALERTING_ACTOR));
    this.log.warn({ alert: alertView(alert) }, `alert ${alert.id} fired: ${alert.summary}`);
    return { action: 'alert.fired', alert };
  }

  private async resolve(
    id: string,
    now: number,
    why: { reason: string; windows?: Json },
  ): Promise<AlertTransition | undefined> {
    // read again: a person may have acknowledged it from another process since the listing
    const a = await this.store.getAlert(id);
    if (!a || a.state === 'resolved') return undefined;
    const data =
      typeof a.data === 'object' && a.data !== null && !Array.isArray(a.data) ? a.data : { fired: a.data };
    const alert: AlertRecord = {
      ...a,
      state: 'resolved',
      resolvedAt: now,
      updatedAt: now,
      data: { ...data, resolution: why },
    };
    await this.store.commit(alertChange(alert, 'alert.resolved', ALERTING_ACTOR));
    this.log.info({ alert: alertView(alert) }, `alert ${alert.id} resolved (${why.reason})`);
    return { action: 'alert.resolved', alert };
  }

  /** Stop the timer and wait for a running evaluation. Safe to call twice. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.chain;
  }
}
