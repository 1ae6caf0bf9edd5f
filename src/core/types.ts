/**
 * Domain types. Terms are defined in docs/terminology.md.
 * Times are milliseconds since the Unix epoch; durations are milliseconds.
 */
import type { AttemptState, InstanceState, TaskState, WorkflowState } from './states.js';

/** JSON values as stored and hashed. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Task priority: 1 (highest) .. 10 (lowest); default 5. FIFO within a priority. */
export type Priority = number;

/** The default priority of a task. */
export const DEFAULT_PRIORITY = 5;

/**
 * Tokens used by a model, as the provider counts them. All fields are token counts (integers >= 0).
 * `input` excludes cached input read (`cacheRead`) and written (`cacheWrite`) where the provider
 * reports them apart (Anthropic); providers that do not report a field leave it 0.
 */
export interface TokenUsage {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
}

/**
 * How a task's approved change is applied (DESIGN.md, "The path of a task"): `auto` (default)
 * applies it when the council approves; `strict` waits in `awaiting_approval` for a person
 * (`smith approve`); `dry-run` runs and judges but never applies, and the agent may not write
 * outside its worktree.
 */
export type ExecutionMode = 'strict' | 'auto' | 'dry-run';

/**
 * A task's governance: where it works, how it is judged and applied, and what became of it.
 * Present on tasks that run in a worktree or carry a working spec; such tasks are judged by the
 * council before they complete.
 */
export interface TaskGovernance {
  mode: ExecutionMode;
  /** `worktree`: the task runs in its own git worktree on branch `smith/<task id>`. */
  workspace: 'worktree' | 'none';
  /** Absolute path of the git repository the change is for. */
  repo: string | null;
  /** The working spec (parsed; see `src/council/working-spec.ts`), or null for the repository's or the default. */
  spec: Json | null;
  /** The base branch the change goes onto (the repository's current branch when the task first ran). */
  base?: string;
  /** The base commit the worktree was made from. */
  baseSha?: string;
  /** `smith/<task id>`. */
  branch?: string;
  /** Absolute path of its worktree. */
  worktree?: string;
  /** Revise rounds used. */
  rounds: number;
  /** Whether the change was applied (merged into the base); null until decided. */
  applied: boolean | null;
  /** The commit that applied it. */
  appliedSha?: string;
  /** The last council result: decision, score, threshold, and the hash of its audit record. */
  verdict?: { decision: string; score: number; threshold: number; audit: string; round: number };
}

/**
 * A spend cap: USD and/or tokens (input + output + cache, as {@link TokenUsage} counts them). Set on
 * a task, an agent, a workflow, or at the top of `smith.yaml` (`budget: {usd: 0.50, tokens: 200000}`).
 */
export interface Budget {
  /** US dollars. */
  usd?: number;
  /** Tokens. */
  tokens?: number;
}

/**
 * An agent: a named worker definition that a runtime runs. Comes from `smith.yaml`, a workflow's
 * `agents:` map, or the library API.
 */
export interface AgentSpec {
  /** Unique name, e.g. `sh`. */
  name: string;
  /** Runtime kind: `process`, `function` (in-process, library API only), … */
  runtime: string;
  /** argv for `process`; `{prompt}`, `{task_id}`, `{workdir}` are substituted, each as one argument. */
  command?: string[];
  /** What the agent can do; tasks that ask for capabilities are routed to agents that have all of them. */
  capabilities: string[];
  /** At most this many attempts of this agent at once (its instances). Default 1. */
  concurrency: number;
  /** Extra environment for its processes. */
  env?: Record<string, string>;
  /** Default per-attempt timeout in ms for this agent's tasks (a task's own `timeout` wins). */
  timeoutMs?: number;
  /** Grace in ms between SIGTERM and SIGKILL on cancel/timeout. Default 5000. */
  killGraceMs?: number;
  /** Bytes of stdout and of stderr kept per attempt; the rest is counted and dropped. Default 1 MiB. */
  outputLimitBytes?: number;
  /** Spend cap of this agent over all its tasks (see {@link Budget}). */
  budget?: Budget;

  // Model-backed runtimes (claude-code, codex, gemini, llm). Each runtime documents what it uses.

  /** The model (`claude-sonnet-4-5`, `gpt-5-codex`, `gemini-2.5-pro`, `llama3.1`). Runtime default when unset. */
  model?: string;
  /** Extra arguments appended to the CLI's argv (claude-code, codex, gemini). */
  args?: string[];
  /** Tools the CLI may use (claude-code `--allowedTools`). */
  allowedTools?: string[];
  /** Tools the CLI may not use (claude-code `--disallowedTools`). */
  disallowedTools?: string[];
  /**
   * How the CLI asks before acting: claude-code `--permission-mode` (`default`, `acceptEdits`,
   * `bypassPermissions`, `plan`); gemini `--approval-mode` (`default`, `auto_edit`, `yolo`); codex
   * sandbox (`read-only`, `workspace-write`, `danger-full-access`). Dry-run tasks run in the
   * runtime's read-only mode whatever this says.
   */
  permissionMode?: string;
  /** claude-code `--max-turns`. */
  maxTurns?: number;
  /** claude-code `--max-budget-usd` per attempt (USD). */
  maxBudgetUsd?: number;
  /** claude-code `--mcp-config` file. */
  mcpConfig?: string;
  /** claude-code `--append-system-prompt`. */
  appendSystemPrompt?: string;
  /** The system prompt (`llm`). */
  systemPrompt?: string;
  /**
   * Idle watchdog in ms: a CLI that reports no event for this long is ended and its attempt fails
   * with reason `idle`. Default per runtime (claude-code, codex, gemini: 5 minutes); none for `process`.
   */
  idleTimeoutMs?: number;
  /**
   * Run the CLI with a throwaway `HOME` (and `CODEX_HOME`) made for the attempt instead of the
   * user's. Default true for codex and gemini, false for claude-code.
   */
  isolateHome?: boolean;
  /** The worker URL (`http`). */
  url?: string;
  /** The provider's API base URL (`llm`; the CLIs' `ANTHROPIC_BASE_URL` / codex provider / `GOOGLE_GEMINI_BASE_URL`). */
  baseUrl?: string;
  /** Extra HTTP headers (`http`, `llm`). */
  headers?: Record<string, string>;
  /** `llm`: `openai-compatible` (default), `anthropic` or `ollama`; codex: the provider name. */
  provider?: string;
  /** The environment variable that holds the API key (`llm`, codex provider). */
  apiKeyEnv?: string;
  /** `llm`: a JSON Schema the answer must match (structured output); the output is its JSON. */
  outputSchema?: Json;
  /**
   * Files (relative to the repository) copied into a task's worktree before its agent runs (`.env`);
   * never committed. For tasks with `workspace: worktree`.
   */
  envFiles?: string[];
  /** Commands run (`sh -c`) in a new worktree before its agent runs (`npm ci`). */
  setup?: string[];
}

/**
 * When a task with `needs` may run, after Airflow's trigger rules: `all_success` (default) when all
 * of its needs completed (a need that failed cancels it); `all_done` when all of them ended,
 * whatever their state (for reports and clean-ups that fan in).
 */
export type TaskTrigger = 'all_success' | 'all_done';

/** One task of a workflow, as written in YAML (after validation and defaults). */
export interface TaskSpec {
  /** The task's name in the workflow (`count`, `test`). */
  key: string;
  /** The agent to run it on; or route by `capabilities`. */
  agent?: string;
  /** Capabilities the agent must have (all of them). */
  capabilities?: string[];
  /** The prompt; may use `{needs.<key>.output}`. */
  prompt: string;
  /** Keys of tasks that must complete first. */
  needs: string[];
  /** Per-attempt timeout in ms. */
  timeoutMs?: number;
  /** Retries after the first attempt; attempts = 1 + retries. Default 0. */
  retries: number;
  /** 1 (highest) .. 10. Default 5. */
  priority: Priority;
  /** Working directory; default the workflow file's directory. Relative paths resolve against it. */
  workdir?: string;
  /** Extra environment for this task's processes. */
  env?: Record<string, string>;
  /** When it may run given its needs' states. Default `all_success`. */
  trigger?: TaskTrigger;
  /** Spend cap of this task over all its attempts. */
  budget?: Budget;
  /** How its change is applied. Default the workflow's, then the config's, then `auto`. */
  mode?: ExecutionMode;
  /** `worktree`: run in its own git worktree (judged by the council, then applied per `mode`). */
  workspace?: 'worktree';
  /** The repository for `workspace: worktree` (absolute); default the git repository holding the workflow file. */
  repo?: string;
  /** The working spec, parsed (a task with a spec is judged even without a worktree). */
  spec?: Json;
}

/** A validated workflow, ready to submit. */
export interface WorkflowSpec {
  /** Workflow name (`repo-health`). */
  name: string;
  /** Absolute path of the file it came from, when it came from a file. */
  file?: string;
  /** Absolute directory tasks run in by default (the file's directory). */
  dir: string;
  /** Agents defined by the workflow, merged over the config's. */
  agents: Record<string, AgentSpec>;
  /** Tasks in file order. */
  tasks: TaskSpec[];
  /** Spend cap of the whole workflow. */
  budget?: Budget;
  /** Default execution mode of its tasks. */
  mode?: ExecutionMode;
}

/** A task as recorded. */
export interface Task {
  id: string;
  /** Name within its workflow; for a single task, its given key or `task`. */
  key: string;
  workflowId: string | null;
  /** The agent asked for, if any. */
  agent: string | null;
  /** Capabilities asked for. */
  capabilities: string[];
  prompt: string;
  /** Ids of the tasks this one needs. */
  needs: string[];
  /** When it may run given its needs' states. */
  trigger: TaskTrigger;
  priority: Priority;
  state: TaskState;
  /** Attempts started so far. */
  attempts: number;
  /** 1 + retries. */
  maxAttempts: number;
  /** Fencing token: increases with every attempt started; only the current epoch may end the task. */
  epoch: number;
  timeoutMs: number | null;
  workdir: string;
  env: Record<string, string>;
  /** Not dispatched before this time (retry backoff). */
  availableAt: number;
  /** The agent the last attempt ran on. */
  assignedAgent: string | null;
  /** The result output of the completing attempt (or the last error output). */
  output: string | null;
  exitCode: number | null;
  /** Why the task ended failed/canceled (`exit code 1`, `timeout after 10000 ms`, `dependency_failed`). */
  reason: string | null;
  /** The task's own spend cap, or null. */
  budget: Budget | null;
  /** USD spent by all its attempts so far. */
  costUsd: number;
  /** Tokens used by all its attempts so far (input + output + cache). */
  tokens: number;
  /** The agent's native session id of the last attempt that reported one (resumed by the next). */
  sessionId: string | null;
  /** Worktree, judging and apply state; null for a task the council does not judge. */
  governance: TaskGovernance | null;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  endedAt: number | null;
}

/** One try at a task on an agent. */
export interface Attempt {
  id: string;
  taskId: string;
  /** 1-based. */
  number: number;
  /** The task's epoch when this attempt started. */
  epoch: number;
  agent: string;
  /** Instance index within the agent. */
  instance: number;
  state: AttemptState;
  pid: number | null;
  startedAt: number;
  endedAt: number | null;
  exitCode: number | null;
  signal: string | null;
  output: string | null;
  error: string | null;
  /** The agent's native session id, when its runtime has one. */
  sessionId: string | null;
  /** USD this attempt spent. */
  costUsd: number;
  /** Tokens this attempt used (input + output + cache). */
  tokens: number;
  /** Its tokens by kind, when its runtime reported any. */
  usage: TokenUsage | null;
}

/** Kinds of task event. `state` events are written with every transition. */
export type TaskEventType =
  | 'state'
  | 'progress'
  | 'log'
  | 'artifact'
  | 'result'
  | 'message'
  | 'session'
  | 'usage'
  | 'text'
  | 'tool_use'
  | 'tool_result'
  | 'file_change'
  | 'guidance'
  | 'verdict';

/** Something that happened to a task, in order (`seq` is global and increasing). */
export interface TaskEvent {
  seq: number;
  taskId: string;
  attemptId: string | null;
  time: number;
  type: TaskEventType;
  data: Json;
}

/** A workflow as recorded. */
export interface Workflow {
  id: string;
  name: string;
  state: WorkflowState;
  file: string | null;
  dir: string;
  createdAt: number;
  updatedAt: number;
  endedAt: number | null;
}

/** An agent as recorded, with its instances' states. */
export interface AgentRecord {
  name: string;
  spec: AgentSpec;
  instances: { index: number; state: InstanceState; restarts: number; updatedAt: number }[];
}

/**
 * One record of the audit trail. `hash` = SHA-256 (hex) of the RFC 8785 canonical JSON of
 * `{seq, time, actor, action, subject, data, prev_hash}`; `prev_hash` is the previous record's hash
 * (64 zeros for the first).
 */
export interface AuditRecord {
  seq: number;
  time: number;
  /** Who did it: `engine`, `user:<name>`, `recovery`, … */
  actor: string;
  /** What: `task.created`, `task.queued`, `task.running`, `task.completed`, … */
  action: string;
  /** What it was done to: a task, workflow or agent id. */
  subject: string;
  data: Json;
  prevHash: string;
  hash: string;
}
