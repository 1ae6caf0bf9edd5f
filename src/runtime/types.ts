/**
 * The AgentRuntime seam: how an attempt of a task is run on an agent. One adapter per runtime
 * kind (`process`, `function`, later `claude-code`, `http`, `llm`, `tmux`, …).
 */
import type { AgentSpec, Json, TokenUsage } from '../core/types.js';

export type { TokenUsage } from '../core/types.js';

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
  /**
   * Guidance for this attempt, oldest first: what a person said with `smith guide`, and the
   * council's reasons when it sent the result back (`revise`). Absent when there is none.
   */
  guidance?: { from: string; text: string }[];
}

/**
 * The prompt for a model-backed agent: the task's prompt, then its guidance (if any) as a list the
 * model reads as instructions for this attempt. Runtimes that run a command (`process`, `tmux`) do
 * not use it: their prompt is a command line, and the guidance is in the task JSON.
 *
 * @param input - the task JSON of the attempt
 * @returns the prompt text
 */
export function promptWithGuidance(input: TaskInput): string {
  if (!input.guidance || input.guidance.length === 0) return input.prompt;
  const lines = input.guidance.map((g) => `- (${g.from}) ${g.text}`);
  return `${input.prompt}\n\nGuidance for this attempt (address every point):\n${lines.join('\n')}`;
}

/** An event an attempt reports while it runs. */
export type RuntimeEvent =
  | { type: 'progress'; pct?: number; message?: string }
  | { type: 'log'; stream: 'stdout' | 'stderr'; line: string }
  | { type: 'artifact'; path: string }
  | { type: 'message'; data: Json }
  /**
   * The agent's native session id (Claude Code `session_id`, Codex `thread_id`, Gemini `session_id`),
   * reported as soon as it is known so that a retry after a crash can resume it.
   */
  | { type: 'session'; id: string }
  /**
   * Spend since the previous `usage` event of this attempt (a delta, not a total). `costUsd` is set
   * when the runtime knows the price; else the engine prices the tokens from the config's price
   * table by `model`. The engine adds them up per task, agent, workflow and home, and stops a task
   * that goes over its budget.
   */
  | { type: 'usage'; model?: string; tokens: TokenUsage; costUsd?: number }
  /** Text the agent said (an assistant message), for the task's event log. */
  | { type: 'text'; text: string }
  /** The agent called a tool (`Bash`, `Edit`, `shell`, …); `id` pairs it with its result. */
  | { type: 'tool_use'; id?: string; name: string; input?: Json }
  /** A tool call's result. `output` is cut to a few KiB by the runtime. */
  | { type: 'tool_result'; id?: string; isError: boolean; output?: string }
  /** The agent changed a file (path relative to the working directory when inside it). */
  | { type: 'file_change'; path: string; kind: 'add' | 'update' | 'delete' };

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
  /**
   * The native session id to continue (`--resume`), when an earlier attempt of this task recorded
   * one: a retry after a crash or a failure, a follow-up, a `revise` round.
   */
  resumeSessionId?: string;
  /**
   * What is left of the task's budget for this attempt, when it has one. Runtimes that can cap
   * spend themselves pass it on (Claude Code `--max-budget-usd`); the engine enforces it anyway.
   */
  budget?: { usd?: number; tokens?: number };
  /**
   * The execution mode of the task: `dry-run` runtimes must not write outside the working
   * directory (Claude Code runs with `--permission-mode plan`). Default `auto`.
   */
  mode?: 'strict' | 'auto' | 'dry-run';
}

/**
 * Why an attempt failed, as a stable code for scripts and retries (the `error` text says it in
 * words): `not_installed` (the CLI is missing), `auth` (the provider refused the credentials),
 * `provider` (the provider answered 5xx or an API error), `rate_limited`, `idle` (the watchdog ended
 * a CLI that went silent), `budget_exceeded`, `malformed` (the agent's output could not be
 * understood), `crashed` (non-zero exit or signal), `circuit_open` (the http runtime's breaker is
 * open), `bad_response`, `max_turns` (a CLI stopped at its turn limit).
 */
export type FailureReason =
  | 'not_installed'
  | 'auth'
  | 'provider'
  | 'rate_limited'
  | 'idle'
  | 'budget_exceeded'
  | 'malformed'
  | 'crashed'
  | 'circuit_open'
  | 'bad_response'
  | 'max_turns';

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
  /** A stable code for why it failed (see {@link FailureReason}); absent when it succeeded. */
  reason?: FailureReason;
  /**
   * False when retrying cannot help (a CLI that is not installed, credentials refused): the task
   * fails at once whatever retries remain. Default true.
   */
  retryable?: boolean;
  /** The native session id, when the runtime has one (also reported by a `session` event). */
  sessionId?: string;
  /**
   * The attempt's total spend when the runtime knows it authoritatively (Claude Code's
   * `total_cost_usd`); it replaces the sum of the attempt's `usage` events. USD.
   */
  costUsd?: number;
  /** The attempt's total tokens when the runtime reports a total; replaces the sum of `usage` events. */
  tokens?: TokenUsage;
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
  /**
   * Release what the runtime holds beyond its attempts (the tmux runtime's server). Called by
   * `Engine.close()` after every attempt has ended. Optional; may be called twice.
   */
  close?(): Promise<void>;
}
