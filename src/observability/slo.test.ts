import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SloConfig } from '../core/schema/config-schema.js';
import type { Task } from '../core/types.js';
import { openSqliteStore } from '../store/sqlite/sqlite-store.js';
import type { OutcomeCounts, Store } from '../store/store.js';
import { acknowledgeAlert, AlertEvaluator, nextAlertId } from './alerts.js';
import {
  alertWindows,
  BURN_RATE_RULES,
  burnRate,
  errorBudgetRemaining,
  evaluateSlo,
  evaluationWindows,
  formatWindow,
  sloStatus,
} from './slo.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const success: SloConfig = { name: 'success', objective: 0.99, sli: 'success_rate', windowMs: 30 * DAY };

function counts(ended: number, completed: number, timed = ended, fast = completed): OutcomeCounts {
  return { ended, completed, timed, fast };
}

describe('alert windows', () => {
  it("are the SRE Workbook's for a 30-day SLO: page 14.4 over 1h and 5m, 6 over 6h and 30m; ticket 1 over 3d and 6h", () => {
    expect(alertWindows(30 * DAY)).toEqual([
      { severity: 'page', burnRate: 14.4, longMs: HOUR, shortMs: 5 * 60_000 },
      { severity: 'page', burnRate: 6, longMs: 6 * HOUR, shortMs: 30 * 60_000 },
      { severity: 'ticket', burnRate: 1, longMs: 3 * DAY, shortMs: 6 * HOUR },
    ]);
  });

  it('scale with the SLO window: W/720, W/120 and W/10, each short window a twelfth of its long one', () => {
    const w = alertWindows(HOUR);
    expect(w.map((x) => x.longMs)).toEqual([5000, 30_000, 360_000]);
    expect(w[0]!.shortMs).toBeCloseTo(5000 / 12, 9);
    expect(w[1]!.shortMs).toBe(2500);
    expect(w[2]!.shortMs).toBe(30_000);
    fc.assert(
      fc.property(fc.integer({ min: 1000, max: 366 * DAY }), (windowMs) => {
        const ws = alertWindows(windowMs);
        ws.forEach((x, i) => {
          expect(x.longMs).toBeCloseTo(windowMs * BURN_RATE_RULES[i]!.longFraction, 6);
          expect(x.longMs / x.shortMs).toBeCloseTo(12, 9);
        });
      }),
    );
  });

  it('spend 2%, 5% and 10% of the error budget in their long window at their burn rate, whatever the SLO window', () => {
    expect(BURN_RATE_RULES.map((r) => Number((r.burnRate * r.longFraction).toFixed(12)))).toEqual([
      0.02, 0.05, 0.1,
    ]);
  });

  it('read the SLO window first, then each long and short window', () => {
    expect(evaluationWindows(success)).toEqual([
      30 * DAY,
      HOUR,
      5 * 60_000,
      6 * HOUR,
      30 * 60_000,
      3 * DAY,
      6 * HOUR,
    ]);
  });

  it('print in the largest whole unit', () => {
    expect([30 * DAY, 6 * HOUR, 5 * 60_000, 2500, 5000 / 12].map(formatWindow)).toEqual([
      '30d',
      '6h',
      '5m',
      '2.5s',
      '417ms',
    ]);
  });
});

describe('burn rate and error budget', () => {
  it('is the fraction of bad events over the budget fraction; none without events', () => {
    expect(burnRate(90, 100, 0.99)).toBeCloseTo(10, 9);
    expect(burnRate(99, 100, 0.99)).toBeCloseTo(1, 9);
    expect(burnRate(100, 100, 0.99)).toBe(0);
    expect(burnRate(0, 10, 0.5)).toBe(2);
    expect(burnRate(0, 0, 0.99)).toBeNull();
  });

  it('leaves the whole budget when nothing ended, half of it at half the allowed errors, and goes below 0 when overspent', () => {
    expect(errorBudgetRemaining(0, 0, 0.99)).toBe(1);
    expect(errorBudgetRemaining(1000, 1000, 0.99)).toBe(1);
    expect(errorBudgetRemaining(995, 1000, 0.99)).toBeCloseTo(0.5, 9);
    expect(errorBudgetRemaining(990, 1000, 0.99)).toBeCloseTo(0, 9);
    expect(errorBudgetRemaining(900, 1000, 0.99)).toBeCloseTo(-9, 9);
  });
});

describe('multiwindow rules', () => {
  // [W, long1, short1, long2, short2, long3, short3]
  const at = (...c: OutcomeCounts[]): OutcomeCounts[] => c;

  it('fire a rule only when both its long and its short window burn above its rate', () => {
    const quiet = counts(1000, 1000);
    // 20% bad = burn 20 in the first page pair's both windows
    const s = sloStatus(
      success,
      at(counts(1000, 990), counts(100, 80), counts(10, 8), quiet, quiet, quiet, quiet),
      0,
    );
    expect(s.rules.map((r) => r.firing)).toEqual([true, false, false]);
    expect(s.rules[0]!.long).toEqual({
      windowMs: HOUR,
      total: 100,
      bad: 20,
      burnRate: expect.closeTo(20, 9),
    });
    // the long window burns, the short one has recovered: no alert (the workbook's fast reset)
    const reset = sloStatus(
      success,
      at(quiet, counts(100, 80), counts(10, 10), quiet, quiet, quiet, quiet),
      0,
    );
    expect(reset.rules[0]!.firing).toBe(false);
    // a short spike the long window does not confirm: no alert
    const spike = sloStatus(
      success,
      at(quiet, counts(1000, 990), counts(10, 5), quiet, quiet, quiet, quiet),
      0,
    );
    expect(spike.rules[0]!.firing).toBe(false);
  });

  it('never fire on an empty window, and not at exactly the rate', () => {
    const empty = counts(0, 0);
    const allBad = counts(5, 0);
    const s = sloStatus(success, at(allBad, allBad, empty, empty, allBad, allBad, empty), 0);
    expect(s.rules.map((r) => r.firing)).toEqual([false, false, false]);
    expect(s.rules[0]!.short.burnRate).toBeNull();
    // burn exactly 1 in both ticket windows: 1% bad at 99%
    const exact = counts(100, 99);
    const quiet = counts(100, 100);
    expect(sloStatus(success, at(exact, quiet, quiet, quiet, quiet, exact, exact), 0).rules[2]!.firing).toBe(
      false,
    );
    const nothing = sloStatus(success, at(empty, empty, empty, empty, empty, empty, empty), 0);
    expect(nothing).toMatchObject({ sli: null, good: 0, total: 0, errorBudgetRemaining: 1 });
  });

  it('count, for a latency SLI, the tasks that started and call good those within the threshold', () => {
    const latency: SloConfig = { ...success, name: 'fast', sli: 'latency', thresholdMs: 30_000 };
    // 10 ended, 8 of them started, 6 of those within 30 s; every task completed
    const c = counts(10, 10, 8, 6);
    const s = sloStatus(latency, at(c, c, c, c, c, c, c), 0);
    expect(s).toMatchObject({ good: 6, total: 8, sli: 0.75 });
    expect(s.rules.every((r) => r.firing)).toBe(true);
    expect(sloStatus(success, at(c, c, c, c, c, c, c), 0)).toMatchObject({ good: 10, total: 10, sli: 1 });
  });

  it('fire only when both windows are above the rate, for any counts', () => {
    const win = fc.record({ total: fc.nat(1000), badShare: fc.double({ min: 0, max: 1, noNaN: true }) });
    fc.assert(
      fc.property(fc.array(win, { minLength: 7, maxLength: 7 }), (ws) => {
        const cs = ws.map((w) => {
          const good = Math.round(w.total * (1 - w.badShare));
          return counts(w.total, good);
        });
        const s = sloStatus(success, cs, 0);
        for (const r of s.rules) {
          const above = (b: number | null): boolean => b !== null && b > r.threshold;
          expect(r.firing).toBe(above(r.long.burnRate) && above(r.short.burnRate));
        }
      }),
    );
  });

  it('refuses counts that do not match the windows', () => {
    expect(() => sloStatus(success, [counts(1, 1)], 0)).toThrow(/expected 7 window counts for SLO "success"/);
  });
});

// ---------------------------------------------------------------------------------------------
// Over a real SQLite store

const T0 = Date.UTC(2025, 0, 1);

function task(id: string, over: Partial<Task>): Task {
  return {
    id,
    key: id,
    workflowId: null,
    agent: null,
    capabilities: [],
    prompt: 'p',
    needs: [],
    trigger: 'all_success',
    priority: 5,
    state: 'completed',
    attempts: 1,
    maxAttempts: 1,
    epoch: 1,
    timeoutMs: null,
    workdir: '/tmp',
    env: {},
    availableAt: T0,
    assignedAgent: null,
    output: null,
    exitCode: null,
    reason: null,
    budget: null,
    costUsd: 0,
    tokens: 0,
    sessionId: null,
    governance: null,
    createdAt: T0,
    updatedAt: T0,
    startedAt: null,
    endedAt: null,
    ...over,
  };
}

let dir: string;
let store: Store;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'smith-slo-'));
  store = await openSqliteStore(join(dir, 'smith.db'));
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A task that ran `ranMs` and ended `agoMs` before `now` in `state`. */
function ended(
  id: string,
  state: Task['state'],
  now: number,
  agoMs: number,
  ranMs: number | null,
  over: Partial<Task> = {},
): Task {
  const endedAt = now - agoMs;
  return task(id, { state, endedAt, startedAt: ranMs === null ? null : endedAt - ranMs, ...over });
}

describe('outcome counts from the store', () => {
  it('count completed, failed and rejected tasks per window, leave canceled and unfinished ones out, and filter by agent', async () => {
    const now = T0 + 10 * DAY;
    await store.commit([
      { op: 'insertTask', task: ended('t_1', 'completed', now, 1000, 500, { agent: 'sh' }) },
      { op: 'insertTask', task: ended('t_2', 'failed', now, 2000, 40_000, { assignedAgent: 'sh' }) },
      { op: 'insertTask', task: ended('t_3', 'rejected', now, HOUR * 2, 1000, { agent: 'other' }) },
      { op: 'insertTask', task: ended('t_4', 'canceled', now, 1000, 100, { agent: 'sh' }) },
      { op: 'insertTask', task: ended('t_5', 'failed', now, 3000, null, { agent: 'sh' }) },
      { op: 'insertTask', task: ended('t_6', 'completed', now, 5 * DAY, 100) },
      { op: 'insertTask', task: task('t_7', { state: 'running', startedAt: now - 1000 }) },
      {
        op: 'insertTask',
        task: task('t_8', { state: 'awaiting_approval', startedAt: now - 900, endedAt: now - 800 }),
      },
    ]);
    const since = [now - DAY, now - HOUR, now - 2500];
    expect(await store.taskOutcomeCounts({ since, thresholdMs: 30_000 })).toEqual([
      { ended: 4, completed: 1, timed: 3, fast: 2 },
      { ended: 3, completed: 1, timed: 2, fast: 1 },
      { ended: 2, completed: 1, timed: 2, fast: 1 },
    ]);
    expect(await store.taskOutcomeCounts({ since, agent: 'sh' })).toEqual([
      { ended: 3, completed: 1, timed: 2, fast: 0 },
      { ended: 3, completed: 1, timed: 2, fast: 0 },
      { ended: 2, completed: 1, timed: 2, fast: 0 },
    ]);
    expect(await store.taskOutcomeCounts({ since: [] })).toEqual([]);
  });

  it('evaluate an SLO over the recorded tasks', async () => {
    const now = T0 + 10 * DAY;
    const slo: SloConfig = { name: 'hour', objective: 0.9, sli: 'success_rate', windowMs: HOUR };
    // page windows of a 1-hour SLO: 5 s / 417 ms and 30 s / 2.5 s
    await store.commit([
      { op: 'insertTask', task: ended('t_1', 'failed', now, 100, 10) },
      { op: 'insertTask', task: ended('t_2', 'failed', now, 1000, 10) },
      { op: 'insertTask', task: ended('t_3', 'completed', now, 20_000, 10) },
      { op: 'insertTask', task: ended('t_4', 'completed', now, 30 * 60_000, 10) },
    ]);
    const s = await evaluateSlo(store, slo, now);
    expect(s).toMatchObject({ good: 2, total: 4, sli: 0.5 });
    expect(s.errorBudgetRemaining).toBeCloseTo(-4, 9);
    // first page pair: 2 of 2 bad over 5 s, 1 of 1 over 417 ms -> burn 10, below 14.4
    expect(s.rules[0]).toMatchObject({
      firing: false,
      long: { total: 2, bad: 2 },
      short: { total: 1, bad: 1 },
    });
    expect(s.rules[0]!.long.burnRate).toBeCloseTo(10, 9);
    // second page pair: 2 of 3 over 30 s (burn 6.67), 2 of 2 over 2.5 s (burn 10) -> above 6
    expect(s.rules[1]!.firing).toBe(true);
    // ticket: 2 of 3 over 6 min and 2 of 2 over 30 s, above 1
    expect(s.rules[2]!.firing).toBe(true);
  });
});

describe('alert lifecycle over the store', () => {
  const slo: SloConfig = { name: 'hour', objective: 0.99, sli: 'success_rate', windowMs: HOUR };

  async function failures(now: number, n: number, from = 0): Promise<void> {
    const ops = Array.from({ length: n }, (_, i) => ({
      op: 'insertTask' as const,
      task: ended(`t_f${from + i}`, 'failed', now, 10 + i, 5),
    }));
    await store.commit(ops);
  }

  it('fires one page and one ticket alert per SLO, keeps them open while the rules hold, and resolves them when they stop', async () => {
    const ev = new AlertEvaluator({ store, slos: [slo], everyMs: 60_000 });
    const now = T0 + DAY;
    await failures(now, 5);
    const fired = await ev.evaluate(now);
    expect(fired.map((c) => [c.action, c.alert.id, c.alert.severity])).toEqual([
      ['alert.fired', 'AL-0001', 'page'],
      ['alert.fired', 'AL-0002', 'ticket'],
    ]);
    expect(fired[0]!.alert.summary).toMatch(
      /^SLO "hour" \(99% success_rate over 1h\): error budget burning 100x over 5s/,
    );
    // still burning: nothing new
    expect(await ev.evaluate(now + 1)).toEqual([]);
    const audit = await store.auditFor('alert:AL-0001');
    expect(audit.map((r) => r.action)).toEqual(['alert.fired']);
    expect(audit[0]!.data).toMatchObject({ id: 'AL-0001', state: 'firing', severity: 'page', slo: 'hour' });

    // a person acknowledges the page; acknowledging again changes nothing
    const acked = await acknowledgeAlert(store, 'AL-0001', 'user:ann', now + 2);
    expect(acked).toMatchObject({ changed: true, alert: { state: 'acknowledged', ackedBy: 'user:ann' } });
    expect((await acknowledgeAlert(store, 'AL-0001', 'user:bob')).changed).toBe(false);

    // an hour later no window holds an ended task: both resolve
    const later = now + HOUR;
    const resolved = await ev.evaluate(later);
    expect(resolved.map((c) => [c.action, c.alert.id])).toEqual([
      ['alert.resolved', 'AL-0001'],
      ['alert.resolved', 'AL-0002'],
    ]);
    const a1 = await store.getAlert('AL-0001');
    expect(a1).toMatchObject({ state: 'resolved', ackedBy: 'user:ann', resolvedAt: later });
    expect((await store.auditFor('alert:AL-0001')).map((r) => r.action)).toEqual([
      'alert.fired',
      'alert.acknowledged',
      'alert.resolved',
    ]);
    await expect(acknowledgeAlert(store, 'AL-0001', 'user:ann')).rejects.toMatchObject({
      code: 'INVALID_TRANSITION',
      message: expect.stringMatching(
        /^alert AL-0001 resolved at .*; only a firing alert can be acknowledged$/,
      ),
    });
    await expect(acknowledgeAlert(store, 'AL-0099', 'user:ann')).rejects.toMatchObject({
      code: 'ALERT_NOT_FOUND',
      message: expect.stringMatching(/^no alert has the id AL-0099; list alerts with "smith alerts"/),
    });

    // burning again: new alerts with the next ids
    await failures(later, 5, 100);
    expect((await ev.evaluate(later)).map((c) => c.alert.id)).toEqual(['AL-0003', 'AL-0004']);
    await ev.close();
    await ev.close();
  });

  it('resolves the open alerts of an SLO that is no longer configured', async () => {
    const now = T0 + DAY;
    await failures(now, 3);
    await new AlertEvaluator({ store, slos: [slo], everyMs: 60_000 }).evaluate(now);
    const changes = await new AlertEvaluator({ store, slos: [], everyMs: 60_000 }).evaluate(now);
    expect(changes.map((c) => c.action)).toEqual(['alert.resolved', 'alert.resolved']);
    expect((await store.getAlert('AL-0001'))?.data).toMatchObject({
      resolution: { reason: 'the SLO is no longer configured' },
    });
  });

  it('numbers alert ids after the highest in use', () => {
    expect(nextAlertId([])).toBe('AL-0001');
    expect(nextAlertId(['AL-0009', 'AL-0002', 'x'])).toBe('AL-0010');
    expect(nextAlertId(['AL-9999'])).toBe('AL-10000');
  });
});
