/**
 * The `llm` judge: a model reviews the change against the working spec and answers with a verdict
 * (structured output), through the same provider configuration as the `llm` runtime.
 */
import type { Json } from '../../core/types.js';
import { runModel, type ModelSpec } from '../../runtime/llm/index.js';
import { branchDiff } from '../git.js';
import { makeVerdict, verdictInputSchema, type Judge, type JudgeContext, type Verdict } from '../judge.js';

/** Most characters of the diff shown to the model; the rest is summarised by file. */
export const LLM_JUDGE_DIFF_CHARS = 60_000;

/** The JSON Schema the model's answer must match (the verdict a command judge prints). */
export const LLM_VERDICT_SCHEMA: Json = {
  type: 'object',
  additionalProperties: false,
  required: ['decision', 'confidence', 'reasons', 'violations'],
  properties: {
    decision: { type: 'string', enum: ['approve', 'revise', 'reject', 'abstain'] },
    confidence: { type: 'number', minimum: 0, maximum: 1 },
    reasons: { type: 'array', items: { type: 'string' } },
    violations: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['rule', 'severity', 'location', 'suggestion'],
        properties: {
          rule: { type: 'string' },
          severity: { type: 'string', enum: ['critical', 'major', 'minor'] },
          location: { type: 'string' },
          suggestion: { type: 'string' },
        },
      },
    },
  },
};

const SYSTEM = [
  'You are one judge of a council that reviews a change an AI coding agent made to a repository.',
  'Judge the change against the working spec: its title, scope, invariants and acceptance criteria.',
  'Answer only with the verdict JSON. decision: approve (the change does what the spec asks and',
  'breaks none of its invariants), revise (fixable problems: say what to fix), reject (the change',
  'must not be applied), or abstain (you cannot tell). Each violation names a rule (a short code such',
  'as "spec.acceptance" or "invariant.broken"), a severity, the file:line location and a suggestion.',
].join(' ');

/** Options of {@link llmJudge}. */
export interface LlmJudgeOptions {
  /** The judge's name (its weight key and waiver gate). Default `llm`. */
  name?: string;
  /** The model: `model`, `provider`, `baseUrl`, `apiKeyEnv`, `headers` (as an `llm` agent). */
  model: Omit<ModelSpec, 'name' | 'outputSchema'>;
  /** Where the API key variable is read from. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

/** The prompt: the spec, the agent's answer, and the diff (cut at {@link LLM_JUDGE_DIFF_CHARS}). */
async function promptFor(ctx: JudgeContext): Promise<string> {
  const diff = await branchDiff(ctx.repo, ctx.base, ctx.head, ctx.signal);
  const lines: string[] = [];
  for (const f of diff.files) {
    lines.push(`--- ${f.status} ${f.oldPath ? `${f.oldPath} -> ` : ''}${f.path} (+${f.added} -${f.deleted})`);
    for (const l of f.removedLines) lines.push(`-${l.line}: ${l.text}`);
    for (const l of f.addedLines) lines.push(`+${l.line}: ${l.text}`);
  }
  let patch = lines.join('\n');
  if (patch.length > LLM_JUDGE_DIFF_CHARS) {
    patch = `${patch.slice(0, LLM_JUDGE_DIFF_CHARS)}\n… (diff cut at ${LLM_JUDGE_DIFF_CHARS} characters; ${diff.files.length} files, +${diff.added} -${diff.deleted})`;
  }
  const spec = ctx.spec;
  return [
    `Working spec ${spec.id}: ${spec.title} (risk tier ${spec.riskTier})`,
    `Scope in: ${spec.scope.in?.join(', ') ?? 'the whole repository'}; out: ${spec.scope.out.join(', ') || 'nothing'}`,
    spec.invariants.length
      ? `Invariants:\n${spec.invariants.map((i) => `- ${i}`).join('\n')}`
      : 'Invariants: none',
    spec.acceptance.length
      ? `Acceptance criteria:\n${spec.acceptance.map((a) => `- ${a.id}: given ${a.given}, when ${a.when}, then ${a.then}`).join('\n')}`
      : 'Acceptance criteria: none',
    `The agent's final answer:\n${ctx.output.slice(0, 8000)}`,
    `The change (${diff.files.length} files, +${diff.added} -${diff.deleted}):\n${patch || '(no change)'}`,
  ].join('\n\n');
}

/**
 * A judge backed by a model. It abstains (never approves) when the model cannot be reached or
 * answers something that is not a verdict, so a broken model never lets a change through.
 *
 * @param opts - name, model configuration, environment for the key
 * @returns the judge
 */
export function llmJudge(opts: LlmJudgeOptions): Judge {
  const name = opts.name ?? 'llm';
  return {
    name,
    async evaluate(ctx: JudgeContext): Promise<Verdict> {
      try {
        const answer = await runModel({ ...opts.model, name }, await promptFor(ctx), {
          env: opts.env ?? process.env,
          system: SYSTEM,
          schema: LLM_VERDICT_SCHEMA,
          ...(ctx.signal ? { signal: ctx.signal } : {}),
        });
        const parsed = verdictInputSchema.safeParse(answer.object);
        if (!parsed.success) {
          return makeVerdict(name, 'abstain', {
            reasons: [`the model's answer is not a verdict: ${parsed.error.issues[0]?.message ?? 'invalid'}`],
          });
        }
        const v = parsed.data;
        return makeVerdict(name, v.decision, {
          ...(v.confidence !== undefined ? { confidence: v.confidence } : {}),
          reasons: v.reasons ?? [],
          violations: (v.violations ?? []).map((x) => ({
            rule: x.rule,
            severity: x.severity,
            ...(x.location ? { location: x.location } : {}),
            ...(x.suggestion ? { suggestion: x.suggestion } : {}),
          })),
          evidence: [{ model: answer.responseModel, tokens: answer.tokens as unknown as Json }],
        });
      } catch (err) {
        if (ctx.signal?.aborted) throw err;
        return makeVerdict(name, 'abstain', {
          reasons: [`the model could not judge: ${(err as Error).message}`],
        });
      }
    },
  };
}
