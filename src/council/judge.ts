/**
 * The council's seam: a {@link Judge} reads a {@link JudgeContext} (a task's branch, its working
 * spec, the policy) and returns a {@link Verdict}. Verdicts are combined by `aggregate()`.
 *
 * Terms (judge, verdict, waiver, working spec, risk tier) are those of DESIGN.md, "The council".
 */
import { z } from 'zod';
import type { Json } from '../core/types.js';
import type { Policy } from './policy.js';
import type { Waiver } from './waivers.js';
import type { WorkingSpec } from './working-spec.js';

/**
 * What a judge says:
 * - `approve`: the change passes this judge (its `confidence` counts toward the score);
 * - `revise`: send it back to the agent with the reasons (counts 0);
 * - `reject`: the change must not land (counts 0; a constitution reject vetoes);
 * - `abstain`: nothing to judge (no verify commands, an unreadable command judge); the judge's weight
 *   is removed from the score's denominator.
 */
export type Decision = 'approve' | 'revise' | 'reject' | 'abstain';

/** Every {@link Decision}, in order of severity. */
export const DECISIONS: readonly Decision[] = ['approve', 'abstain', 'revise', 'reject'];

/**
 * How bad a violation is. Any `critical` violation left after waivers vetoes the change; `major`
 * and `minor` only lower the judge's decision.
 */
export type Severity = 'critical' | 'major' | 'minor';

/** One broken rule. */
export interface Violation {
  /**
   * A stable dotted code, first segment the family: `scope.outside`, `forbidden.path`,
   * `secret.aws_access_key`, `verify.failed`, `placeholder.todo`, `budget.lines`, `merge.conflict`, ….
   * The codes of the built-in judges are listed in docs/council.md.
   */
  rule: string;
  severity: Severity;
  /** Where: `path`, `path:line`, `output`, `command[2]`, a branch name. */
  location?: string;
  /** What to do about it, for the agent or the person reading. */
  suggestion?: string;
}

/** A judge's answer. */
export interface Verdict {
  /** The judge's name (`constitution`, `verification`, `quality`, `integration`, or a command judge's). */
  judge: string;
  decision: Decision;
  /** 0..1: how sure the judge is. Rule-based judges say 1 when they checked something. */
  confidence: number;
  /** Sentences for people (and for the agent, on `revise`). */
  reasons: string[];
  violations: Violation[];
  /** What the judge looked at: command results (exit code, duration, output tail), diff stats, …. */
  evidence: Json[];
}

/** Everything a judge may look at. Plain data (JSON-serializable but `signal`). */
export interface JudgeContext {
  /** Absolute path of the task's worktree (a git work tree checked out at `head`). */
  repo: string;
  /**
   * The base the change goes onto: a branch name (preferred: its current tip is what the change
   * must merge onto) or a commit. The diff judged is `base...head` (from their merge base).
   */
  base: string;
  /** The task's branch or commit. Only committed changes are judged. */
  head: string;
  /** The task's working spec. */
  spec: WorkingSpec;
  /** The policy in force. */
  policy: Policy;
  /** The agent's final output text (checked for secrets). */
  output: string;
  /** Commands the agent reported running (checked against the forbidden commands). */
  commands?: string[];
  /** Other branches already approved in the same workflow (the integration judge merges onto them). */
  approvedBranches: string[];
  /** Waivers in force (aggregation lifts violations with them; judges may read them). */
  waivers: Waiver[];
  /** Now, in ms since the Unix epoch. */
  now: number;
  /** Aborts running commands (their process groups are killed). */
  signal?: AbortSignal;
}

/** A judge: one gate of the council. Implementations must not throw for a bad change (return a verdict). */
export interface Judge {
  /** Unique name; also the gate a waiver names to lift its violations and the key of its weight. */
  readonly name: string;
  /**
   * Judges one change.
   *
   * @param ctx - the change and its rules
   * @returns the verdict; rejects only when the judge itself cannot work (git missing, …)
   */
  evaluate(ctx: JudgeContext): Promise<Verdict>;
}

/** The names of the four built-in judges. */
export const BUILTIN_JUDGES = ['constitution', 'verification', 'quality', 'integration'] as const;

const jsonSchema: z.ZodType<Json> = z.lazy(() =>
  z.union([
    z.null(),
    z.boolean(),
    z.number(),
    z.string(),
    z.array(jsonSchema),
    z.record(z.string(), jsonSchema),
  ]),
);

/** A violation as a program writes it (JSON). */
export const violationSchema = z.object({
  rule: z.string({ error: 'expected a rule code as a string' }).min(1),
  severity: z.enum(['critical', 'major', 'minor'], { error: 'expected "critical", "major" or "minor"' }),
  location: z.string({ error: 'expected a location as a string' }).optional(),
  suggestion: z.string({ error: 'expected a suggestion as a string' }).optional(),
});

/**
 * A verdict as a command judge prints it (JSON on stdout): `decision` is required; `confidence`
 * (0..1) defaults to 1, `reasons`, `violations` and `evidence` to `[]`; `judge` is ignored (the
 * configured name wins); unknown fields are ignored.
 */
export const verdictInputSchema = z.object({
  judge: z.string().optional(),
  decision: z.enum(['approve', 'revise', 'reject', 'abstain'], {
    error: 'expected "approve", "revise", "reject" or "abstain"',
  }),
  confidence: z
    .number({ error: 'expected a number from 0 to 1' })
    .min(0, { error: 'expected a number from 0 to 1' })
    .max(1, { error: 'expected a number from 0 to 1' })
    .optional(),
  reasons: z
    .array(z.string({ error: 'expected a string' }), { error: 'expected a list of strings' })
    .optional(),
  violations: z.array(violationSchema, { error: 'expected a list of violations' }).optional(),
  evidence: z.array(jsonSchema, { error: 'expected a list of JSON values' }).optional(),
});

/**
 * Builds a verdict with defaults filled in.
 *
 * @param judge - the judge's name
 * @param decision - its decision
 * @param fields - the rest; `confidence` defaults to 1 (0 for `abstain`), lists to `[]`
 * @returns the verdict
 */
export function makeVerdict(
  judge: string,
  decision: Decision,
  fields: Partial<Omit<Verdict, 'judge' | 'decision'>> = {},
): Verdict {
  return {
    judge,
    decision,
    confidence: fields.confidence ?? (decision === 'abstain' ? 0 : 1),
    reasons: fields.reasons ?? [],
    violations: fields.violations ?? [],
    evidence: fields.evidence ?? [],
  };
}
