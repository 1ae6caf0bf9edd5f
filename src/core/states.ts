/**
 * The state machines of tasks, agent instances and workflows: the one place that says which
 * state may follow which. Every other module asks here. Terms: docs/terminology.md.
 */
import { InvalidTransitionError } from './errors.js';

/**
 * The state of a task.
 * - `pending`: recorded, waiting for its `needs`
 * - `queued`: ready to run (dependencies met), waiting for an agent, a permit or `available_at`
 * - `running`: an attempt is under way on an agent
 * - `paused`: held by a person; a running attempt is stopped (SIGSTOP), a queued task is not dispatched
 * - `judging`: the council is reviewing the result
 * - `awaiting_approval`: strict mode; the council approved and a person must approve too
 * - `completed` | `failed` | `rejected` | `canceled`: ended
 */
export type TaskState =
  | 'pending'
  | 'awaiting_approval'
  | 'queued'
  | 'running'
  | 'paused'
  | 'judging'
  | 'completed'
  | 'failed'
  | 'rejected'
  | 'canceled';

/** Every task state, in lifecycle order. */
export const TASK_STATES: readonly TaskState[] = [
  'pending',
  'queued',
  'running',
  'paused',
  'judging',
  'awaiting_approval',
  'completed',
  'failed',
  'rejected',
  'canceled',
];

/** The task transition table: `from -> allowed next states`. */
export const TASK_TRANSITIONS: Readonly<Record<TaskState, readonly TaskState[]>> = {
  pending: ['queued', 'paused', 'canceled'],
  // failed: no agent can ever take it (its agents are in error)
  queued: ['running', 'paused', 'canceled', 'pending', 'failed'],
  running: ['judging', 'completed', 'failed', 'queued', 'paused', 'canceled'],
  // an attempt may end while its task is paused (killed from outside, or it finished as it was stopped)
  paused: ['queued', 'pending', 'running', 'completed', 'failed', 'canceled'],
  judging: ['completed', 'rejected', 'awaiting_approval', 'queued', 'failed', 'canceled'],
  awaiting_approval: ['completed', 'rejected', 'canceled'],
  // a person may retry an ended task (except a completed one, which never runs again)
  completed: [],
  failed: ['queued', 'pending'],
  // completed: a person overrides the council's reject (smith override ID --verdict approve)
  rejected: ['queued', 'pending', 'completed'],
  canceled: ['queued', 'pending'],
};

/** States in which a task has ended (it may still be retried by a person unless completed). */
export const TERMINAL_TASK_STATES: ReadonlySet<TaskState> = new Set([
  'completed',
  'failed',
  'rejected',
  'canceled',
]);

/** True when the table allows `from -> to`. */
export function canTransitionTask(from: TaskState, to: TaskState): boolean {
  return TASK_TRANSITIONS[from].includes(to);
}

/**
 * Throws unless the table allows `from -> to`.
 * @throws InvalidTransitionError
 */
export function assertTaskTransition(id: string, from: TaskState, to: TaskState): void {
  if (!canTransitionTask(from, to)) throw new InvalidTransitionError('task', id, from, to);
}

/** True when `state` is an ended state. */
export function isTerminalTaskState(state: TaskState): boolean {
  return TERMINAL_TASK_STATES.has(state);
}

/**
 * The state of an agent instance (after the MisterSmith process design).
 * `initializing` -> `idle` <-> `busy`; `paused`; `error` (crashed, the supervisor decides);
 * `stopping` -> `terminated`.
 */
export type InstanceState = 'initializing' | 'idle' | 'busy' | 'paused' | 'error' | 'stopping' | 'terminated';

/** The agent instance transition table. */
export const INSTANCE_TRANSITIONS: Readonly<Record<InstanceState, readonly InstanceState[]>> = {
  initializing: ['idle', 'error', 'stopping', 'terminated'],
  idle: ['busy', 'paused', 'error', 'stopping'],
  busy: ['idle', 'paused', 'error', 'stopping'],
  paused: ['idle', 'busy', 'error', 'stopping'],
  error: ['initializing', 'stopping', 'terminated'],
  stopping: ['terminated', 'error'],
  terminated: ['initializing'],
};

/** True when the table allows `from -> to`. */
export function canTransitionInstance(from: InstanceState, to: InstanceState): boolean {
  return INSTANCE_TRANSITIONS[from].includes(to);
}

/**
 * The state of a workflow: `running`; `completed` (every task completed); `failed` (a task ended
 * failed or rejected and nothing else can run); `canceled`.
 */
export type WorkflowState = 'running' | 'completed' | 'failed' | 'canceled';

/** Every workflow state. */
export const WORKFLOW_STATES: readonly WorkflowState[] = ['running', 'completed', 'failed', 'canceled'];

/** The workflow transition table. A retry or resume moves an ended workflow back to running. */
export const WORKFLOW_TRANSITIONS: Readonly<Record<WorkflowState, readonly WorkflowState[]>> = {
  running: ['completed', 'failed', 'canceled'],
  completed: [],
  failed: ['running'],
  canceled: ['running'],
};

/** True when the table allows `from -> to`. */
export function canTransitionWorkflow(from: WorkflowState, to: WorkflowState): boolean {
  return WORKFLOW_TRANSITIONS[from].includes(to);
}

/**
 * The state of one attempt of a task.
 * `running`; `succeeded`; `failed` (non-zero exit or error result); `timed_out`; `canceled`;
 * `lost` (the owning smith process died while it ran; found by recovery); `stale` (its epoch was
 * superseded, its result was refused).
 */
export type AttemptState = 'running' | 'succeeded' | 'failed' | 'timed_out' | 'canceled' | 'lost' | 'stale';
