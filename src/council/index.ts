/**
 * The council: judges, verdict aggregation per risk tier, working specs (CAWS), waivers and the
 * policy. A pure library: the engine decides when to judge and what to do with the result.
 * See docs/council.md.
 */
export { BUILTIN_JUDGES, DECISIONS, makeVerdict, verdictInputSchema, violationSchema } from './judge.js';
export type { Decision, Judge, JudgeContext, Severity, Verdict, Violation } from './judge.js';
export {
  REPO_SPEC_PATH,
  loadRepoWorkingSpec,
  loadWorkingSpec,
  parseWorkingSpec,
  parseWorkingSpecText,
  workingSpecSchema,
} from './working-spec.js';
export type { AcceptanceCriterion, RiskTier, VerifyCommand, WorkingSpec } from './working-spec.js';
export {
  DEFAULT_BUDGETS,
  DEFAULT_BUDGET_IGNORE,
  DEFAULT_FORBIDDEN_COMMANDS,
  DEFAULT_FORBIDDEN_PATHS,
  DEFAULT_JUDGE_WEIGHT,
  DEFAULT_MAX_REVISE_ROUNDS,
  DEFAULT_THRESHOLDS,
  DEFAULT_VERIFY_TIMEOUT_MS,
  DEFAULT_WEIGHTS,
  defaultPolicy,
  forbiddenCommandsIn,
  judgeWeight,
  loadPolicy,
  parsePolicy,
  parsePolicyText,
  policySchema,
} from './policy.js';
export type { ChangeBudget, ForbiddenCommand, Policy } from './policy.js';
export {
  FINE_GATES,
  MIN_REASON_LENGTH,
  WAIVER_ID_PATTERN,
  checkWaiver,
  formatWaiverId,
  isWaiverId,
  nextWaiverId,
  parseWaiver,
  revokeWaiver,
  waiverGateFor,
  waiverSchema,
  waiverStatus,
} from './waivers.js';
export type { Waiver, WaiverGate, WaiverStatus } from './waivers.js';
export { aggregate, gatesOf, isFixable } from './aggregate.js';
export type {
  AggregateOptions,
  Contribution,
  CouncilDecision,
  CouncilResult,
  JudgedViolation,
  UnusableWaiver,
  WaiverUse,
} from './aggregate.js';
export { branchDiff, git, mergeTree, parsePatch, resolveCommit } from './git.js';
export type {
  BranchDiff,
  ChangeStatus,
  ChangedFile,
  DiffLine,
  GitOptions,
  GitResult,
  MergeCheck,
} from './git.js';
export {
  constitutionJudge,
  findSecrets,
  isScriptFile,
  redact,
  shannonEntropy,
} from './judges/constitution.js';
export type { SecretFinding } from './judges/constitution.js';
export { verificationJudge } from './judges/verification.js';
export type { VerificationJudgeOptions } from './judges/verification.js';
export {
  findEmptyFunctions,
  findPlaceholders,
  findSkippedTests,
  isTestFile,
  qualityJudge,
  removedTestCases,
} from './judges/quality.js';
export type { Finding, QualityJudgeOptions } from './judges/quality.js';
export { integrationJudge } from './judges/integration.js';
export { COMMAND_JUDGE_STDOUT_LIMIT, commandJudge, judgeInput } from './judges/command.js';
export type { CommandJudgeOptions } from './judges/command.js';
export { defaultJudges, runCouncil } from './council.js';
export { llmJudge, LLM_JUDGE_DIFF_CHARS, LLM_VERDICT_SCHEMA } from './judges/llm.js';
export type { LlmJudgeOptions } from './judges/llm.js';
export type { CouncilRun, RunCouncilOptions } from './council.js';
