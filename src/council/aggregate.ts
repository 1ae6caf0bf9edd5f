/**
 * Combines the judges' verdicts into the council's decision: waivers first, then vetoes, then the
 * weighted score against the risk tier's threshold (DESIGN.md, "The council").
 */
import type { Decision, Verdict, Violation } from './judge.js';
import { judgeWeight } from './policy.js';
import type { Policy } from './policy.js';
import { waiverGateFor, waiverStatus } from './waivers.js';
import type { Waiver, WaiverStatus } from './waivers.js';
import type { RiskTier } from './working-spec.js';

/** The council's decision. */
export type CouncilDecision = 'approve' | 'revise' | 'reject';

/** Options of {@link aggregate}. */
export interface AggregateOptions {
  /** The working spec's risk tier: picks the threshold. */
  tier: RiskTier;
  /** Weights, thresholds, revise rounds. */
  policy: Policy;
  /** Waivers to apply (any status: expired and revoked ones are reported, never used). Default none. */
  waivers?: readonly Waiver[];
  /** Now, ms since the Unix epoch (decides expiry). */
  now: number;
  /** Revise rounds already used for this task (0 on its first judging). Default 0. */
  round?: number;
}

/** A violation with the judge that found it. */
export interface JudgedViolation extends Violation {
  judge: string;
}

/** One use of a waiver: which waiver lifted which violation through which gate. Audit each one. */
export interface WaiverUse {
  waiverId: string;
  gate: string;
  judge: string;
  violation: Violation;
}

/** A waiver that named a violation's gate but could not lift it (expired or revoked). */
export interface UnusableWaiver {
  waiverId: string;
  status: Exclude<WaiverStatus, 'active'>;
  gate: string;
  judge: string;
  violation: Violation;
}

/** How one judge counted. */
export interface Contribution {
  judge: string;
  /** The judge's decision after waivers (a revise or reject whose violations were all waived counts as approve). */
  decision: Decision;
  weight: number;
  confidence: number;
  /** weight × confidence for approve; 0 for revise, reject and abstain. */
  contribution: number;
  /** False for abstain: its weight is not in the denominator. */
  counted: boolean;
}

/** The council's result. */
export interface CouncilResult {
  decision: CouncilDecision;
  /** Σ contribution / Σ weight of the judges that did not abstain, 0..1 (0 when all abstained). */
  score: number;
  /** The tier's threshold (`policy.thresholds[tier]`). */
  threshold: number;
  tier: RiskTier;
  /** The judge whose critical violation or constitutional reject vetoed the change. */
  vetoedBy?: string;
  /** Why, for people (and for the agent on `revise`), one sentence each. */
  reasons: string[];
  /** The violations left after waivers, each with its judge. */
  violations: JudgedViolation[];
  /** Every use of a waiver. */
  waived: WaiverUse[];
  /** Waivers that would have applied but are expired or revoked (they lifted nothing). */
  unusableWaivers: UnusableWaiver[];
  /** Per judge, in verdict order. */
  contributions: Contribution[];
}

/**
 * Rule families the agent can fix in a revise round (a failing command, a placeholder, a stub, a
 * skipped test, the budget, an acceptance criterion). Everything else of the built-in judges
 * (scope, forbidden paths or commands, secrets, deleted tests, merge conflicts, a failed judge) is
 * not: see {@link isFixable}.
 */
const FIXABLE = ['verify.', 'placeholder.', 'stub.', 'test.skipped', 'budget.', 'acceptance.'];
const NOT_FIXABLE = ['scope.', 'forbidden.', 'secret.', 'test.', 'merge.', 'judge.'];

/**
 * Whether the agent can fix a violation by revising its change.
 *
 * @param rule - the violation's rule
 * @param decision - the decision of the verdict it came from (decides for rules of other judges)
 * @returns true for fixable built-in families; for rules the built-in judges do not use, true when
 *   their judge said `revise`
 */
export function isFixable(rule: string, decision: Decision): boolean {
  if (FIXABLE.some((p) => rule.startsWith(p))) return true;
  if (NOT_FIXABLE.some((p) => rule.startsWith(p))) return false;
  return decision === 'revise';
}

/**
 * The gates that can lift a violation: the judge's own name and, for the finer families, `budget`
 * (rules `budget.*`) or `scope` (rules `scope.*`). Secrets (`secret.*`) are lifted only by the
 * `secrets` gate, never by a blanket waiver of their judge.
 *
 * @param judge - the judge that found it
 * @param rule - its rule
 * @returns the gate names, most specific last
 */
export function gatesOf(judge: string, rule: string): string[] {
  if (rule.startsWith('secret.')) return ['secrets'];
  if (rule.startsWith('budget.')) return [judge, 'budget'];
  if (rule.startsWith('scope.')) return [judge, 'scope'];
  return [judge];
}

function round9(x: number): number {
  return Math.round(x * 1e9) / 1e9;
}

/**
 * Combines verdicts into the council's decision.
 *
 * 1. Waivers: a violation is lifted by an active waiver (status `active`, `now` before its expiry)
 *    that names one of its {@link gatesOf}; each use is listed in `waived`. Expired and revoked
 *    waivers lift nothing and are listed in `unusableWaivers`. A `revise` or `reject` whose
 *    violations were all lifted counts as `approve`.
 * 2. Veto: a critical violation left, or a `reject` from the `constitution` judge, vetoes. The
 *    decision is `revise` when every critical violation left is one the agent can fix
 *    ({@link isFixable}) and the constitution did not reject, else `reject`.
 * 3. Score: each judge adds weight × confidence when it approves, 0 for revise or reject; an
 *    abstaining judge's weight leaves the denominator. The change passes when score ≥ the tier's
 *    threshold (defaults 0.8 for tier 1, 0.6 for tiers 2 and 3); else `revise`.
 * 4. A `revise` when `round` ≥ `policy.maxReviseRounds` becomes `reject`. When every judge
 *    abstained, nothing was checked: `reject`.
 *
 * @param verdicts - one per judge
 * @param opts - tier, policy, waivers, now, round
 * @returns the decision, score and threshold, the veto, reasons, violations left, waiver uses
 */
export function aggregate(verdicts: readonly Verdict[], opts: AggregateOptions): CouncilResult {
  const { tier, policy, now } = opts;
  const threshold = policy.thresholds[tier];
  const waivers = opts.waivers ?? [];
  const waived: WaiverUse[] = [];
  const unusable: UnusableWaiver[] = [];
  const left: JudgedViolation[] = [];
  const contributions: Contribution[] = [];
  const reasons: string[] = [];
  const leftByJudge = new Map<string, { verdict: Verdict; violations: Violation[] }>();

  for (const v of verdicts) {
    const remaining: Violation[] = [];
    for (const violation of v.violations) {
      const gates = gatesOf(v.judge, violation.rule);
      let use: WaiverUse | undefined;
      for (const w of waivers) {
        const gate = waiverGateFor(w, gates);
        if (gate === undefined) continue;
        const status = waiverStatus(w, now);
        if (status === 'active') {
          use ??= { waiverId: w.id, gate, judge: v.judge, violation };
        } else {
          unusable.push({ waiverId: w.id, status, gate, judge: v.judge, violation });
        }
      }
      if (use !== undefined) waived.push(use);
      else {
        remaining.push(violation);
        left.push({ ...violation, judge: v.judge });
      }
    }
    leftByJudge.set(v.judge, { verdict: v, violations: remaining });
    let decision = v.decision;
    if (
      (decision === 'revise' || decision === 'reject') &&
      v.violations.length > 0 &&
      remaining.length === 0
    ) {
      decision = 'approve';
    }
    const weight = judgeWeight(policy, v.judge);
    const confidence = Math.min(1, Math.max(0, Number.isFinite(v.confidence) ? v.confidence : 0));
    const counted = decision !== 'abstain';
    contributions.push({
      judge: v.judge,
      decision,
      weight,
      confidence,
      contribution: decision === 'approve' ? weight * confidence : 0,
      counted,
    });
  }

  const denominator = contributions.reduce((s, c) => s + (c.counted ? c.weight : 0), 0);
  const numerator = contributions.reduce((s, c) => s + c.contribution, 0);
  const score = denominator > 0 ? round9(numerator / denominator) : 0;

  for (const u of waived) {
    reasons.push(`waiver ${u.waiverId} (gate ${u.gate}) lifted ${u.judge}: ${describe(u.violation)}`);
  }
  for (const u of unusable) {
    reasons.push(
      `waiver ${u.waiverId} is ${u.status} and lifts nothing: ${u.judge}: ${describe(u.violation)}`,
    );
  }

  // Vetoes.
  const criticals = left.filter((x) => x.severity === 'critical');
  const constitution = contributions.find((c) => c.judge === 'constitution');
  const constitutionRejects = constitution?.decision === 'reject';
  let vetoedBy: string | undefined;
  let decision: CouncilDecision;
  if (criticals.length > 0 || constitutionRejects) {
    vetoedBy = constitutionRejects ? 'constitution' : criticals[0]?.judge;
    const fixable =
      !constitutionRejects &&
      criticals.every((c) => isFixable(c.rule, leftByJudge.get(c.judge)?.verdict.decision ?? 'reject'));
    decision = fixable ? 'revise' : 'reject';
    reasons.unshift(
      `vetoed by ${vetoedBy}: ${
        criticals.length > 0
          ? `${criticals.length} critical violation${criticals.length === 1 ? '' : 's'}${fixable ? ' the agent can fix' : ''}`
          : 'the constitution judge rejected the change'
      }`,
    );
  } else if (denominator === 0) {
    decision = 'reject';
    reasons.unshift('no judge gave a verdict (every judge abstained), so nothing was checked');
  } else if (score >= threshold) {
    decision = 'approve';
    reasons.unshift(`score ${fmt(score)} ≥ threshold ${fmt(threshold)} (risk tier ${tier})`);
  } else {
    decision = 'revise';
    reasons.unshift(`score ${fmt(score)} < threshold ${fmt(threshold)} (risk tier ${tier})`);
  }

  for (const c of contributions) {
    if (c.decision === 'approve') continue;
    const v = leftByJudge.get(c.judge)?.verdict;
    for (const r of v?.reasons ?? []) reasons.push(`${c.judge} (${c.decision}): ${r}`);
  }

  const roundsUsed = opts.round ?? 0;
  if (decision === 'revise' && roundsUsed >= policy.maxReviseRounds) {
    decision = 'reject';
    reasons.push(
      `no revise rounds left (${roundsUsed} of ${policy.maxReviseRounds} used), so the change is rejected`,
    );
  }

  const result: CouncilResult = {
    decision,
    score,
    threshold,
    tier,
    reasons,
    violations: left,
    waived,
    unusableWaivers: unusable,
    contributions,
  };
  if (vetoedBy !== undefined) result.vetoedBy = vetoedBy;
  return result;
}

function fmt(x: number): string {
  return String(Math.round(x * 1000) / 1000);
}

function describe(v: Violation): string {
  return `${v.rule}${v.location === undefined ? '' : ` at ${v.location}`}`;
}
