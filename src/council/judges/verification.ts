/**
 * The verification judge: the working spec's `verify` commands (tests, type-check, lint) pass in
 * the task's worktree. Each runs with `sh -c` in `ctx.repo`, in its own process group, one after
 * another, with its timeout (default the policy's `verifyTimeoutMs`, 10 min); on timeout the whole
 * group is killed. A failing command is a critical violation with decision `revise`, so the agent
 * can fix it. No verify commands: `abstain`.
 */
import type { Json } from '../../core/types.js';
import { makeVerdict } from '../judge.js';
import type { Judge, JudgeContext, Verdict, Violation } from '../judge.js';
import { commandEvidence, describeFailure, lastLines, runCommand } from '../run-command.js';

/** Options of {@link verificationJudge}. */
export interface VerificationJudgeOptions {
  /** Environment of the commands; default the process's, plus `CI=true`. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Builds the verification judge.
 *
 * @param opts - the commands' environment
 * @returns a judge named `verification`
 */
export function verificationJudge(opts: VerificationJudgeOptions = {}): Judge {
  return { name: 'verification', evaluate: (ctx) => evaluateVerification(ctx, opts) };
}

async function evaluateVerification(ctx: JudgeContext, opts: VerificationJudgeOptions): Promise<Verdict> {
  if (ctx.spec.verify.length === 0) {
    return makeVerdict('verification', 'abstain', {
      reasons: [`spec ${ctx.spec.id} has no verify commands; nothing to run`],
    });
  }
  const env = opts.env ?? { ...process.env, CI: 'true' };
  const evidence: Json[] = [];
  const violations: Violation[] = [];
  const reasons: string[] = [];
  let passed = 0;
  for (const [i, v] of ctx.spec.verify.entries()) {
    const timeoutMs = v.timeoutMs ?? ctx.policy.verifyTimeoutMs;
    const run = await runCommand(v.command, {
      cwd: ctx.repo,
      timeoutMs,
      env,
      ...(ctx.signal === undefined ? {} : { signal: ctx.signal }),
    });
    evidence.push(commandEvidence('verify', v.name, run));
    if (run.aborted) {
      return makeVerdict('verification', 'abstain', {
        reasons: ['verification was canceled'],
        evidence,
      });
    }
    if (run.passed) {
      passed++;
      continue;
    }
    const how = describeFailure(run, timeoutMs);
    const tail = lastLines(run.outputTail);
    violations.push({
      rule: run.timedOut ? 'verify.timeout' : 'verify.failed',
      severity: 'critical',
      location: `verify[${i}]`,
      suggestion: `make "${v.command}" pass in the worktree${tail === '' ? '' : `; it printed: ${tail}`}`,
    });
    reasons.push(`verify "${v.name}" ${how}${tail === '' ? '' : `: ${tail}`}`);
  }
  if (violations.length > 0) {
    return makeVerdict('verification', 'revise', { reasons, violations, evidence });
  }
  return makeVerdict('verification', 'approve', {
    reasons: [`all ${passed} verify command(s) passed`],
    evidence,
  });
}
