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
}

/** Kinds of task event. `state` events are written with every transition. */
export type TaskEventType = 'state' | 'progress' | 'log' | 'artifact' | 'result' | 'message';

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
