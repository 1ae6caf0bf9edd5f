import { describe, expect, it } from 'vitest';
import { aggregate, gatesOf, isFixable } from './aggregate.js';
import type { Decision, Verdict, Violation } from './judge.js';
import { defaultPolicy } from './policy.js';
import type { Waiver } from './waivers.js';

const NOW = Date.parse('2030-01-10T00:00:00Z');
const policy = defaultPolicy();

function v(judge: string, decision: Decision, confidence = 1, violations: Violation[] = []): Verdict {
  return { judge, decision, confidence, reasons: [`${judge} says ${decision}`], violations, evidence: [] };
}

function all(decisions: Record<string, Decision | [Decision, number]>): Verdict[] {
  return Object.entries(decisions).map(([judge, d]) =>
    Array.isArray(d) ? v(judge, d[0], d[1]) : v(judge, d),
  );
}

function waiver(id: string, gates: string[], extra: Partial<Waiver> = {}): Waiver {
  return {
    id,
    gates,
    reason: 'approved exception',
    approvers: ['lead'],
    expiresAt: NOW + 86_400_000,
    status: 'active',
    ...extra,
  };
}

describe('aggregate: weights and thresholds', () => {
  it('approves when every judge approves', () => {
    const r = aggregate(
      all({ constitution: 'approve', verification: 'approve', quality: 'approve', integration: 'approve' }),
      { tier: 1, policy, now: NOW },
    );
    expect(r).toMatchObject({ decision: 'approve', score: 1, threshold: 0.8, tier: 1 });
    expect(r.vetoedBy).toBeUndefined();
  });

  it('weighs constitution 0.4 and the others 0.2: one revise scores 0.8', () => {
    const verdicts = all({
      constitution: 'approve',
      verification: 'revise',
      quality: 'approve',
      integration: 'approve',
    });
    const t1 = aggregate(verdicts, { tier: 1, policy, now: NOW });
    expect(t1.score).toBe(0.8);
    expect(t1.decision).toBe('approve');
    expect(t1.contributions.map((c) => [c.judge, c.weight, c.contribution])).toEqual([
      ['constitution', 0.4, 0.4],
      ['verification', 0.2, 0],
      ['quality', 0.2, 0.2],
      ['integration', 0.2, 0.2],
    ]);
  });

  it('scales by confidence and applies the tier threshold: 0.7 fails tier 1, passes tier 2 and 3', () => {
    const verdicts = all({
      constitution: ['approve', 0.75],
      verification: 'approve',
      quality: 'revise',
      integration: 'approve',
    });
    // 0.4 * 0.75 + 0.2 + 0 + 0.2 = 0.7
    const t1 = aggregate(verdicts, { tier: 1, policy, now: NOW });
    expect(t1.score).toBe(0.7);
    expect(t1.decision).toBe('revise');
    expect(t1.reasons[0]).toBe('score 0.7 < threshold 0.8 (risk tier 1)');
    expect(aggregate(verdicts, { tier: 2, policy, now: NOW }).decision).toBe('approve');
    expect(aggregate(verdicts, { tier: 3, policy, now: NOW }).decision).toBe('approve');
  });

  it('removes an abstaining judge from the denominator', () => {
    const verdicts = all({
      constitution: 'approve',
      verification: 'abstain',
      quality: 'revise',
      integration: 'approve',
    });
    // (0.4 + 0.2) / (0.4 + 0.2 + 0.2) = 0.75
    const r = aggregate(verdicts, { tier: 1, policy, now: NOW });
    expect(r.score).toBe(0.75);
    expect(r.decision).toBe('revise');
    expect(r.contributions[1]).toMatchObject({ judge: 'verification', counted: false, contribution: 0 });
    expect(aggregate(verdicts, { tier: 2, policy, now: NOW }).decision).toBe('approve');
  });

  it('rejects when every judge abstains: nothing was checked', () => {
    const r = aggregate(all({ verification: 'abstain', style: 'abstain' }), { tier: 3, policy, now: NOW });
    expect(r).toMatchObject({ decision: 'reject', score: 0 });
    expect(r.reasons[0]).toContain('every judge abstained');
  });

  it('gives command judges the default weight', () => {
    const r = aggregate(all({ constitution: 'approve', style: 'reject' }), { tier: 2, policy, now: NOW });
    // 0.4 / 0.6
    expect(r.score).toBeCloseTo(0.667, 3);
    expect(r.decision).toBe('approve');
  });
});

describe('aggregate: vetoes', () => {
  const critical = (rule: string, location?: string): Violation => ({
    rule,
    severity: 'critical',
    ...(location === undefined ? {} : { location }),
  });

  it('a constitutional reject vetoes even with a passing score', () => {
    const verdicts = [
      v('constitution', 'reject', 1),
      v('verification', 'approve'),
      v('quality', 'approve'),
      v('integration', 'approve'),
    ];
    const r = aggregate(verdicts, {
      tier: 3,
      policy: { ...policy, weights: { constitution: 0.1 } },
      now: NOW,
    });
    expect(r.score).toBeGreaterThan(0.6);
    expect(r).toMatchObject({ decision: 'reject', vetoedBy: 'constitution' });
  });

  it('a fixable critical violation vetoes with revise while rounds remain, then rejects', () => {
    const verdicts = [
      v('constitution', 'approve'),
      v('verification', 'revise', 1, [critical('verify.failed', 'verify[0]')]),
      v('quality', 'approve'),
      v('integration', 'approve'),
    ];
    const first = aggregate(verdicts, { tier: 3, policy, now: NOW });
    expect(first).toMatchObject({ decision: 'revise', vetoedBy: 'verification', score: 0.8 });
    expect(first.violations).toEqual([
      { rule: 'verify.failed', severity: 'critical', location: 'verify[0]', judge: 'verification' },
    ]);
    const last = aggregate(verdicts, { tier: 3, policy, now: NOW, round: 2 });
    expect(last.decision).toBe('reject');
    expect(last.reasons.at(-1)).toContain('no revise rounds left (2 of 2 used)');
  });

  it('a critical violation the agent cannot fix rejects', () => {
    const verdicts = [
      v('constitution', 'approve'),
      v('verification', 'revise', 1, [critical('verify.failed')]),
      v('quality', 'approve'),
      v('integration', 'reject', 1, [critical('merge.conflict', 'src/a.ts')]),
    ];
    expect(aggregate(verdicts, { tier: 3, policy, now: NOW })).toMatchObject({
      decision: 'reject',
      vetoedBy: 'verification',
    });
  });

  it('knows which rules are fixable', () => {
    expect(isFixable('placeholder.marker', 'revise')).toBe(true);
    expect(isFixable('budget.lines', 'revise')).toBe(true);
    expect(isFixable('test.skipped', 'revise')).toBe(true);
    expect(isFixable('test.deleted_file', 'revise')).toBe(false);
    expect(isFixable('secret.aws_access_key', 'revise')).toBe(false);
    expect(isFixable('style.naming', 'revise')).toBe(true);
    expect(isFixable('style.naming', 'reject')).toBe(false);
  });
});

describe('aggregate: waivers', () => {
  const budget: Violation = { rule: 'budget.lines', severity: 'critical', location: '400 lines' };
  const secret: Violation = { rule: 'secret.aws_access_key', severity: 'critical', location: 'a.ts:1' };
  const verdicts = [
    v('constitution', 'approve'),
    v('verification', 'approve'),
    v('quality', 'revise', 1, [budget]),
    v('integration', 'approve'),
  ];

  it('a budget waiver lifts the budget violation and the judge counts as approving', () => {
    const r = aggregate(verdicts, { tier: 1, policy, now: NOW, waivers: [waiver('WV-0002', ['budget'])] });
    expect(r).toMatchObject({ decision: 'approve', score: 1, violations: [] });
    expect(r.waived).toEqual([{ waiverId: 'WV-0002', gate: 'budget', judge: 'quality', violation: budget }]);
  });

  it('an expired or revoked waiver lifts nothing and is reported', () => {
    const r = aggregate(verdicts, {
      tier: 1,
      policy,
      now: NOW,
      waivers: [
        waiver('WV-0003', ['quality'], { expiresAt: NOW }),
        waiver('WV-0004', ['budget'], { status: 'revoked', revokedAt: NOW - 1 }),
        waiver('WV-0005', ['integration']),
      ],
    });
    expect(r).toMatchObject({ decision: 'revise', vetoedBy: 'quality', waived: [] });
    expect(r.unusableWaivers.map((u) => [u.waiverId, u.status, u.gate])).toEqual([
      ['WV-0003', 'expired', 'quality'],
      ['WV-0004', 'revoked', 'budget'],
    ]);
  });

  it('secrets are lifted only by the secrets gate', () => {
    const withSecret = [v('constitution', 'reject', 1, [secret]), ...verdicts.slice(1, 2)];
    const blanket = aggregate(withSecret, {
      tier: 2,
      policy,
      now: NOW,
      waivers: [waiver('WV-0006', ['constitution'])],
    });
    expect(blanket).toMatchObject({ decision: 'reject', vetoedBy: 'constitution', waived: [] });
    const exact = aggregate(withSecret, {
      tier: 2,
      policy,
      now: NOW,
      waivers: [waiver('WV-0007', ['secrets'])],
    });
    expect(exact).toMatchObject({ decision: 'approve', waived: [{ waiverId: 'WV-0007', gate: 'secrets' }] });
  });

  it('names the gates of a violation', () => {
    expect(gatesOf('quality', 'budget.files')).toEqual(['quality', 'budget']);
    expect(gatesOf('constitution', 'scope.outside')).toEqual(['constitution', 'scope']);
    expect(gatesOf('constitution', 'secret.private_key')).toEqual(['secrets']);
    expect(gatesOf('style', 'style.naming')).toEqual(['style']);
  });
});
