/**
 * The integration judge: the change merges cleanly onto the base branch and onto each branch
 * already approved in the same workflow. Trial merges use `git merge-tree --write-tree` (git ≥
 * 2.38), which touches neither the work tree nor the index. A conflict is a critical violation per
 * conflicting path and the decision is `reject`.
 */
import type { Json } from '../../core/types.js';
import { mergeTree } from '../git.js';
import type { MergeCheck } from '../git.js';
import { makeVerdict } from '../judge.js';
import type { Judge, JudgeContext, Verdict, Violation } from '../judge.js';

/**
 * Builds the integration judge.
 *
 * Each approved branch is merged with the head pairwise (`merge-tree <approved> <head>`), so a
 * conflict names the branch it is with.
 *
 * @returns a judge named `integration`
 */
export function integrationJudge(): Judge {
  return { name: 'integration', evaluate: evaluateIntegration };
}

async function evaluateIntegration(ctx: JudgeContext): Promise<Verdict> {
  const checks: MergeCheck[] = [await mergeTree(ctx.repo, ctx.base, ctx.head, ctx.signal)];
  for (const branch of ctx.approvedBranches) {
    if (branch === ctx.head) continue;
    checks.push(await mergeTree(ctx.repo, branch, ctx.head, ctx.signal));
  }
  const violations: Violation[] = [];
  const reasons: string[] = [];
  const evidence: Json[] = [];
  for (const [i, c] of checks.entries()) {
    const onBase = i === 0;
    evidence.push({
      kind: 'merge',
      onto: c.onto,
      head: c.head,
      clean: c.clean,
      tree: c.tree,
      conflicts: c.conflicts,
      messages: c.messages.slice(0, 50),
    });
    if (c.clean) continue;
    // A failed merge always names paths; should it not, the conflict still counts.
    for (const p of c.conflicts.length > 0 ? c.conflicts : [c.onto]) {
      violations.push({
        rule: onBase ? 'merge.conflict' : 'merge.conflict_branch',
        severity: 'critical',
        location: p,
        suggestion: onBase
          ? `rebase ${ctx.head} onto ${ctx.base} and resolve ${p}`
          : `coordinate with ${c.onto} (already approved), which changes ${p} too`,
      });
    }
    reasons.push(
      `${ctx.head} does not merge cleanly onto ${onBase ? `the base ${c.onto}` : `approved branch ${c.onto}`}: conflicts in ${c.conflicts.join(', ') || '(unnamed paths)'}`,
    );
  }
  if (violations.length > 0) return makeVerdict('integration', 'reject', { reasons, violations, evidence });
  const others = checks.length - 1;
  return makeVerdict('integration', 'approve', {
    reasons: [
      `${ctx.head} merges cleanly onto ${ctx.base}${others > 0 ? ` and onto ${others} approved branch(es)` : ''}`,
    ],
    evidence,
  });
}
