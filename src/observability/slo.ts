/**
 * Service level objectives over the tasks a home runs: their service level indicators (SLIs), the
 * error budget left, and the burn rates that multiwindow, multi-burn-rate alerts fire on.
 *
 * The alerting method is recommendation 6 of "Alerting on SLOs", chapter 5 of the Google SRE
 * Workbook (https://sre.google/workbook/alerting-on-slos/): for a 30-day SLO, page when the error
 * budget burns at 14.4 times the sustainable rate over 1 h and over 5 min, or at 6 times over 6 h
 * and over 30 min; open a ticket when it burns at 1 time over 3 days and over 6 h. An alert fires
 * only when both its long and its short window burn above the rate: the long window says enough
 * budget went, the short one says it is still going (so the alert also resets quickly).
 *
 * Windows scale with the SLO's own window W: the long windows are W/720, W/120 and W/10 (1 h, 6 h
 * and 3 d of a 30-day W), each short window one twelfth of its long one (5 min, 30 min, 6 h). So
 * a 1-hour SLO pages on 5 s and 0.42 s, or on 30 s and 2.5 s, and tickets on 6 min and 30 s. The
 * burn rates stay the workbook's: 14.4 over W/720 spends 2% of the budget, 6 over W/120 5%, and 1
 * over W/10 10%, whatever W is.
 */
import type { SloConfig } from '../core/schema/config-schema.js';
import type { AlertRecord, OutcomeCounts, Store } from '../store/store.js';

/** Severity of an alert: `page` wakes a person now, `ticket` is for the next working day. */
export type AlertSeverity = AlertRecord['severity'];

/** One multiwindow, multi-burn-rate alert rule, with its windows as fractions of the SLO window. */
export interface BurnRateRule {
  severity: AlertSeverity;
  /** The burn rate both windows must exceed (1 spends the budget exactly over the SLO window). */
  burnRate: number;
  /** The long window as a fraction of the SLO window. */
  longFraction: number;
}

/**
 * The workbook's rules (recommendation 6) for a 30-day SLO, with the long windows written as
 * fractions of 30 days: 1 h = 30 d/720, 6 h = 30 d/120, 3 d = 30 d/10.
 * Source: Google SRE Workbook, "Alerting on SLOs", recommendation 6 ("Multiwindow, multi-burn-rate
 * alerts"), https://sre.google/workbook/alerting-on-slos/.
 */
export const BURN_RATE_RULES: readonly BurnRateRule[] = [
  { severity: 'page', burnRate: 14.4, longFraction: 1 / 720 },
  { severity: 'page', burnRate: 6, longFraction: 1 / 120 },
  { severity: 'ticket', burnRate: 1, longFraction: 1 / 10 },
];

/** A short window is its long window divided by this (5 min of 1 h; the workbook's 1/12). */
export const SHORT_WINDOW_DIVISOR = 12;

/** One rule's windows for a given SLO window, in ms. */
export interface AlertWindows {
  severity: AlertSeverity;
  burnRate: number;
  longMs: number;
  shortMs: number;
}

/**
 * The alert windows of an SLO window, scaled from the workbook's 30-day ones.
 * @param windowMs - the SLO window W, ms
 * @returns one entry per {@link BURN_RATE_RULES} rule: long = W × fraction, short = long / 12 (ms,
 *   not rounded)
 * @example alertWindows(30 * 86_400_000)[0] // { severity: 'page', burnRate: 14.4, longMs: 3_600_000, shortMs: 300_000 }
 */
export function alertWindows(windowMs: number): AlertWindows[] {
  return BURN_RATE_RULES.map((r) => {
    const longMs = windowMs * r.longFraction;
    return { severity: r.severity, burnRate: r.burnRate, longMs, shortMs: longMs / SHORT_WINDOW_DIVISOR };
  });
}

/**
 * How fast the error budget burns: the fraction of bad events divided by the budget's fraction.
 * 1 spends exactly the budget over the SLO window; 14.4 would spend it in W/14.4.
 * @param good - good events
 * @param total - all events (good and bad)
 * @param objective - the target fraction of good events, in (0, 1)
 * @returns `(1 − good/total) / (1 − objective)`, or null when there were no events
 */
export function burnRate(good: number, total: number, objective: number): number | null {
  if (total <= 0) return null;
  return (total - good) / total / (1 - objective);
}

/**
 * The error budget left over the SLO window: 1 when nothing was spent, 0 when exactly all of it,
 * below 0 when overspent.
 * @param good - good events in the SLO window
 * @param total - all events in the SLO window
 * @param objective - the target fraction, in (0, 1)
 * @returns `1 − burn rate over the whole window`; 1 when there were no events
 */
export function errorBudgetRemaining(good: number, total: number, objective: number): number {
  return 1 - (burnRate(good, total, objective) ?? 0);
}

/** Events of one window and their burn rate. */
export interface WindowBurn {
  /** The window's length, ms. */
  windowMs: number;
  /** Events (ended tasks the SLI counts) in the window. */
  total: number;
  /** Bad events in the window. */
  bad: number;
  /** See {@link burnRate}; null when the window holds no events. */
  burnRate: number | null;
}

/** One rule evaluated. */
export interface RuleStatus {
  severity: AlertSeverity;
  /** The rate both windows must exceed. */
  threshold: number;
  long: WindowBurn;
  short: WindowBurn;
  /** Both windows burn above `threshold` (never with an empty window). */
  firing: boolean;
}

/** An SLO evaluated at one time. */
export interface SloStatus {
  slo: SloConfig;
  /** When it was evaluated, ms since the epoch. */
  at: number;
  /** Good events over the SLO window. */
  good: number;
  /** All events over the SLO window. */
  total: number;
  /** The SLI over the SLO window: good / total; null when nothing ended. */
  sli: number | null;
  /** See {@link errorBudgetRemaining}. */
  errorBudgetRemaining: number;
  /** One per {@link BURN_RATE_RULES} rule, in that order. */
  rules: RuleStatus[];
}

/**
 * Good and total events of a window's counts, by the SLO's SLI: `success_rate` counts tasks that
 * ended `completed`, `failed` or `rejected` and calls `completed` good; `latency` counts those of
 * them that had started and calls good those that ran at most the threshold.
 * @param slo - the SLO
 * @param c - the window's counts
 * @returns good and total
 */
export function sliEvents(slo: SloConfig, c: OutcomeCounts): { good: number; total: number } {
  return slo.sli === 'latency' ? { good: c.fast, total: c.timed } : { good: c.completed, total: c.ended };
}

/**
 * The windows an SLO's evaluation reads, as their lengths in ms: the SLO window first, then each
 * rule's long and short window.
 * @param slo - the SLO
 * @returns `[W, long₁, short₁, long₂, short₂, long₃, short₃]`
 */
export function evaluationWindows(slo: SloConfig): number[] {
  return [slo.windowMs, ...alertWindows(slo.windowMs).flatMap((w) => [w.longMs, w.shortMs])];
}

/**
 * Evaluate an SLO from the counts of its windows (pure).
 * @param slo - the SLO
 * @param counts - one per {@link evaluationWindows} entry, in that order
 * @param at - the evaluation time, ms since the epoch
 * @returns the SLI, the budget left and each rule's burn rates
 * @throws RangeError when `counts` does not have one entry per window
 */
export function sloStatus(slo: SloConfig, counts: readonly OutcomeCounts[], at: number): SloStatus {
  const windows = evaluationWindows(slo);
  if (counts.length !== windows.length)
    throw new RangeError(
      `expected ${windows.length} window counts for SLO "${slo.name}", got ${counts.length}`,
    );
  const burn = (i: number): WindowBurn => {
    const { good, total } = sliEvents(slo, counts[i]!);
    return {
      windowMs: windows[i]!,
      total,
      bad: total - good,
      burnRate: burnRate(good, total, slo.objective),
    };
  };
  const whole = sliEvents(slo, counts[0]!);
  const rules = alertWindows(slo.windowMs).map((w, i): RuleStatus => {
    const long = burn(1 + 2 * i);
    const short = burn(2 + 2 * i);
    const firing =
      long.burnRate !== null &&
      short.burnRate !== null &&
      long.burnRate > w.burnRate &&
      short.burnRate > w.burnRate;
    return { severity: w.severity, threshold: w.burnRate, long, short, firing };
  });
  return {
    slo,
    at,
    good: whole.good,
    total: whole.total,
    sli: whole.total === 0 ? null : whole.good / whole.total,
    errorBudgetRemaining: errorBudgetRemaining(whole.good, whole.total, slo.objective),
    rules,
  };
}

/**
 * Evaluate an SLO over the tasks recorded in a store (one aggregate read).
 * @param store - the home's store
 * @param slo - the SLO
 * @param at - the evaluation time, ms since the epoch (default now)
 * @returns see {@link sloStatus}
 * @throws StoreError when the store cannot be read
 */
export async function evaluateSlo(store: Store, slo: SloConfig, at: number = Date.now()): Promise<SloStatus> {
  const counts = await store.taskOutcomeCounts({
    since: evaluationWindows(slo).map((w) => at - w),
    ...(slo.agent !== undefined ? { agent: slo.agent } : {}),
    ...(slo.thresholdMs !== undefined ? { thresholdMs: slo.thresholdMs } : {}),
  });
  return sloStatus(slo, counts, at);
}

/**
 * A window length for people: `30d`, `6h`, `5m`, `2.5s`, `417ms`.
 * @param ms - the length, ms
 * @returns the largest unit that gives at least 1, with at most one decimal
 */
export function formatWindow(ms: number): string {
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  for (const [unit, size] of units) {
    if (ms >= size) return `${Number((ms / size).toFixed(1))}${unit}`;
  }
  return `${Math.round(ms)}ms`;
}

/** A rule's windows and burn rates as JSON (`GET /api/v1/slos`, alert data). */
export interface RuleView {
  severity: AlertSeverity;
  /** The burn rate both windows must exceed. */
  burn_rate_threshold: number;
  long_window_ms: number;
  short_window_ms: number;
  /** null when the window holds no events. */
  long_burn_rate: number | null;
  short_burn_rate: number | null;
  /** Events (ended tasks the SLI counts) in each window, and the bad ones. */
  long_events: number;
  long_bad: number;
  short_events: number;
  short_bad: number;
  firing: boolean;
}

/** An evaluated SLO as JSON (`GET /api/v1/slos`). */
export interface SloView {
  name: string;
  objective: number;
  sli: SloConfig['sli'];
  window_ms: number;
  threshold_ms: number | null;
  agent: string | null;
  /** The SLI over the SLO window; null when nothing ended. */
  sli_value: number | null;
  good_events: number;
  total_events: number;
  /** 1 when nothing was spent, below 0 when overspent. */
  error_budget_remaining: number;
  windows: RuleView[];
  evaluated_at: string;
}

/** A rule as JSON. */
export function ruleView(r: RuleStatus): RuleView {
  return {
    severity: r.severity,
    burn_rate_threshold: r.threshold,
    long_window_ms: r.long.windowMs,
    short_window_ms: r.short.windowMs,
    long_burn_rate: r.long.burnRate,
    short_burn_rate: r.short.burnRate,
    long_events: r.long.total,
    long_bad: r.long.bad,
    short_events: r.short.total,
    short_bad: r.short.bad,
    firing: r.firing,
  };
}

/** An evaluated SLO as JSON. */
export function sloView(s: SloStatus): SloView {
  return {
    name: s.slo.name,
    objective: s.slo.objective,
    sli: s.slo.sli,
    window_ms: s.slo.windowMs,
    threshold_ms: s.slo.thresholdMs ?? null,
    agent: s.slo.agent ?? null,
    sli_value: s.sli,
    good_events: s.good,
    total_events: s.total,
    error_budget_remaining: s.errorBudgetRemaining,
    windows: s.rules.map(ruleView),
    evaluated_at: new Date(s.at).toISOString(),
  };
}
