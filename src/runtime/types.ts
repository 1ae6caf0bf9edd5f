/**
 * The AgentRuntime seam: how an attempt of a task is run on an agent. One adapter per runtime
 * kind (`process`, `function`, later `claude-code`, `http`, `llm`, `tmux`, …).
 */
import type { AgentSpec, Json } from '../core/types.js';

/** The task JSON an agent receives (on stdin for `process`). */
export interface TaskInput {
  id: string;
  key: string;
  workflow_id: string | null;
  prompt: string;
  /** 1-based attempt number. */
  attempt: number;
  /** Outputs (and end states) of the tasks this one needs, by key. */
  needs: Record<string, { id: string; output: string | null; state?: string }>;
}

/** An event an attempt reports while it runs. */
export type RuntimeEvent =
  | { type: 'progress'; pct?: number; message?: string }
  | { type: 'log'; stream: 'stdout' | 'stderr'; line: string }
  | { type: 'artifact'; path: string }
  | { type: 'message'; data: Json };

/** Everything a runtime needs to run one attempt. */
export interface AttemptContext {
  /** The task JSON (stdin for `process`). */
  input: TaskInput;
  attemptId: string;
  /** The fencing token of this attempt. */
  epoch: number;
  agent: AgentSpec;
  /** Instance index within the agent. */
  instance: number;
  /** Absolute working directory. */
  workdir: string;
  /** Full environment for the agent's processes (already merged: smith's, agent's, task's, SMITH_*). */
  env: Record<string, string>;
  /** Per-attempt timeout in ms; null = none. */
  timeoutMs: number | null;
  /** Called for every event, in order, synchronously from the runtime. */
  onEvent: (event: RuntimeEvent) => void;
}

/** How an attempt ended. */
export interface AttemptOutcome {
  status: 'succeeded' | 'failed' | 'timed_out' | 'canceled';
  exitCode: number | null;
  /** The signal that ended the process, if any (`SIGKILL`). */
  signal: string | null;
  /** The `result` event's output, else the kept stdout. */
  output: string;
  /** Why it failed, in words (`exit code 2`, `timed out after 10000 ms`, `spawn ENOENT: …`). */
  error?: string;
  /** Bytes seen on stdout / stderr, and bytes dropped past the cap. */
  stdoutBytes: number;
  stderrBytes: number;
  droppedBytes: number;
  /** The kept stderr tail (for messages). */
  stderr: string;
  /**
   * True when the runtime itself could not run the attempt (the command could not be spawned):
   * the agent instance is faulty, not just the task. Its supervisor restarts the instance.
   */
  runtimeError?: boolean;
}

/** A running attempt. */
export interface AttemptHandle {
  /** The process id (and process group id) when the runtime runs a process; else null. */
  readonly pid: number | null;
  /** Resolves once the attempt has ended and every process of it is gone. Never rejects. */
  readonly done: Promise<AttemptOutcome>;
  /** End it: SIGTERM to the process group, SIGKILL after the agent's grace. Idempotent. */
  cancel(reason: string): void;
  /** Stop it (SIGSTOP to the group); the timeout clock stops too. */
  pause(): void;
  /** Continue it (SIGCONT); the timeout clock continues with what remained. */
  resume(): void;
}

/** A runtime adapter. */
export interface AgentRuntime {
  /** The `runtime:` name it serves. */
  readonly kind: string;
  /**
   * Check that the agent can run here (command installed …) before anything is dispatched.
   * @throws SmithError with a message naming the command and how to install it
   */
  check?(agent: AgentSpec): Promise<void>;
  /** Start one attempt. Never throws for a failure of the agent: that ends `done` as failed. */
  start(ctx: AttemptContext): AttemptHandle;
}
