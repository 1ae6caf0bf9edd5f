/**
 * Errors with stable string codes. Every error MisterSmith raises is a {@link SmithError};
 * only `cli/` maps codes to exit codes and only `api/` maps them to HTTP statuses.
 *
 * Messages say what happened, where (file and field, task id, agent), and what to do.
 */

/** Every error code MisterSmith raises. Stable: scripts may match on them. */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_NOT_FOUND'
  | 'WORKFLOW_INVALID'
  | 'TASK_NOT_FOUND'
  | 'WORKFLOW_NOT_FOUND'
  | 'AGENT_NOT_FOUND'
  | 'KEY_NOT_FOUND'
  | 'ALERT_NOT_FOUND'
  | 'NO_CAPABLE_AGENT'
  | 'INVALID_TRANSITION'
  | 'STALE_EPOCH'
  | 'STORE_LOCKED'
  | 'STORE_NOT_WRITABLE'
  | 'STORE_FAILED'
  | 'LEASE_HELD'
  | 'RUNTIME_NOT_FOUND'
  | 'SPAWN_FAILED'
  | 'ATTEMPT_TIMEOUT'
  | 'ATTEMPT_CANCELED'
  | 'AGENT_FAILED'
  | 'SUPERVISOR_ESCALATED'
  | 'SHUTTING_DOWN'
  | 'INVALID_ARGUMENT'
  /** A read-only SQL query refused before or while running (a write, a second statement, bad SQL). */
  | 'QUERY_REJECTED'
  /** A read-only SQL query stopped at its time limit. */
  | 'QUERY_TIMEOUT';

/** Options for {@link SmithError}. */
export interface SmithErrorOptions {
  /** The underlying error, passed through as `Error.cause`. */
  cause?: unknown;
  /** Readonly facts about where the error happened (task id, file, field …). */
  context?: Record<string, unknown>;
}

/**
 * The base of every MisterSmith error.
 *
 * @example
 * throw new SmithError('TASK_NOT_FOUND', `task ${id} not found: list tasks with "smith tasks"`, { context: { id } });
 */
export class SmithError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;
  /** Readonly facts about where it happened. */
  readonly context: Readonly<Record<string, unknown>>;

  /**
   * @param code - the stable code
   * @param message - what happened, where, and what to do
   * @param options - cause and context
   */
  constructor(code: ErrorCode, message: string, options: SmithErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SmithError';
    this.code = code;
    this.context = Object.freeze({ ...(options.context ?? {}) });
  }
}

/** A failure that retrying cannot fix (bad input, unknown agent, invalid config). */
export class NonRetryableError extends SmithError {
  constructor(code: ErrorCode, message: string, options: SmithErrorOptions = {}) {
    super(code, message, options);
    this.name = 'NonRetryableError';
  }
}

/** A config or workflow file that does not validate. `context.file` and `context.path` say where. */
export class ConfigError extends NonRetryableError {
  constructor(message: string, options: SmithErrorOptions = {}) {
    super('CONFIG_INVALID', message, options);
    this.name = 'ConfigError';
  }
}

/** A workflow that cannot run: cycles, unknown `needs`, unknown agents, tasks no agent can take. */
export class WorkflowValidationError extends NonRetryableError {
  /** Every problem found, one line each. */
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[], options: SmithErrorOptions = {}) {
    super('WORKFLOW_INVALID', message, options);
    this.name = 'WorkflowValidationError';
    this.problems = Object.freeze([...problems]);
  }
}

/** A task id (or key) that names no task. */
export class TaskNotFoundError extends NonRetryableError {
  constructor(id: string) {
    super('TASK_NOT_FOUND', `task ${id} not found: list tasks with "smith tasks"`, { context: { id } });
    this.name = 'TaskNotFoundError';
  }
}

/** A state change the transition table does not allow. */
export class InvalidTransitionError extends NonRetryableError {
  constructor(kind: string, id: string, from: string, to: string) {
    super('INVALID_TRANSITION', `${kind} ${id} cannot go from ${from} to ${to}`, {
      context: { kind, id, from, to },
    });
    this.name = 'InvalidTransitionError';
  }
}

/** The store could not be opened or written (locked, read-only, corrupt). */
export class StoreError extends SmithError {
  constructor(code: ErrorCode, message: string, options: SmithErrorOptions = {}) {
    super(code, message, options);
    this.name = 'StoreError';
  }
}

/** True when `err` is a {@link SmithError} with `code`. */
export function isSmithError(err: unknown, code?: ErrorCode): err is SmithError {
  return err instanceof SmithError && (code === undefined || err.code === code);
}
