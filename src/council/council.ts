/**
 * Runs a council: each judge in turn on one change, then {@link aggregate}.
 */
import { SmithError } from '../core/errors.js';
import { aggregate } from './aggregate.js';
import type { CouncilResult } from './aggregate.js';
import { makeVerdict } from './judge.js';
import type { Judge, JudgeContext, Verdict } from './judge.js';
import { constitutionJudge } from './judges/constitution.js';
import { integrationJudge } from './judges/integration.js';
import { qualityJudge } from './judges/quality.js';
import { verificationJudge } from './judges/verification.js';
import { withSpan } from '../observability/tracing.js';

/**
 * The four built-in judges: constitution, verification, quality, integration.
 *
 * @param env - environment of verify and acceptance commands (default the process's plus `CI=true`)
 * @returns fresh judges in that order
 */
export function defaultJudges(env?: NodeJS.ProcessEnv): Judge[] {
  const opts = env === undefined ? {} : { env };
  return [constitutionJudge(), verificationJudge(opts), qualityJudge(opts), integrationJudge()];
}

/** Options of {@link runCouncil}. */
export interface RunCouncilOptions {
  /** Revise rounds already used for this task (see `AggregateOptions.round`). Default 0. */
  round?: number;
}

/** What a council run returns. */
export interface CouncilRun {
  /** One per judge, in judge order. */
  verdicts: Verdict[];
  result: CouncilResult;
}

/**
 * Runs the judges one after another (verify and acceptance commands share the worktree, so they
 * must not run at once), then aggregates with the spec's risk tier, the policy and the waivers of
 * the context.
 *
 * A judge that throws fails closed: its verdict is `reject` with a critical, non-fixable
 * `judge.failed` violation naming the error, so a broken judge never lets a change through.
 *
 * @param judges - the council (names must be unique)
 * @param ctx - the change
 * @param opts - revise rounds used
 * @returns the verdicts and the council's result
 * @throws SmithError with code `ATTEMPT_CANCELED` when `ctx.signal` aborts
 * @throws SmithError with code `INVALID_ARGUMENT` when two judges share a name
 */
export async function runCouncil(
  judges: readonly Judge[],
  ctx: JudgeContext,
  opts: RunCouncilOptions = {},
): Promise<CouncilRun> {
  const names = new Set<string>();
  for (const j of judges) {
    if (names.has(j.name)) {
      throw new SmithError(
        'INVALID_ARGUMENT',
        `two judges are named "${j.name}"; give each judge its own name`,
        {
          context: { judge: j.name },
        },
      );
    }
    names.add(j.name);
  }
  const verdicts: Verdict[] = [];
  for (const judge of judges) {
    let verdict: Verdict;
    try {
      verdict = await withSpan(
        'smith.judge',
        { 'smith.judge': judge.name, 'smith.head': ctx.head },
        async (span) => {
          const v = await judge.evaluate(ctx);
          span.setAttributes({
            'smith.verdict.decision': v.decision,
            'smith.verdict.confidence': v.confidence,
          });
          return v;
        },
      );
      verdict = { ...verdict, judge: judge.name };
    } catch (err) {
      if (ctx.signal?.aborted === true) break;
      const message = err instanceof Error ? err.message : String(err);
      verdict = makeVerdict(judge.name, 'reject', {
        reasons: [`judge ${judge.name} failed: ${message}`],
        violations: [
          {
            rule: 'judge.failed',
            severity: 'critical',
            suggestion: 'fix the judge or its environment (git, the repository, the refs), then judge again',
          },
        ],
      });
    }
    verdicts.push(verdict);
    if (ctx.signal?.aborted === true) break;
  }
  if (ctx.signal?.aborted === true) {
    throw new SmithError('ATTEMPT_CANCELED', `judging of ${ctx.head} was canceled`, {
      context: { repo: ctx.repo, head: ctx.head },
    });
  }
  const aggOpts = { tier: ctx.spec.riskTier, policy: ctx.policy, waivers: ctx.waivers, now: ctx.now };
  const result = aggregate(verdicts, opts.round === undefined ? aggOpts : { ...aggOpts, round: opts.round });
  return { verdicts, result };
}
