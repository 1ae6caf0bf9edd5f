/**
 * The error worktree code raises: a {@link SmithError} with a finer `kind`, because the shared
 * {@link ErrorCode} union has no workspace code yet.
 */
import { SmithError } from '../../core/errors.js';
import type { ErrorCode, SmithErrorOptions } from '../../core/errors.js';

/**
 * What went wrong, finer than the error code:
 * - `not-a-repo` — the repository path is not inside a git repository (code `INVALID_ARGUMENT`);
 * - `bad-name` — a task id that cannot name a directory and a branch (code `INVALID_ARGUMENT`);
 * - `bad-base` — the base does not name a commit of the repository (code `INVALID_ARGUMENT`);
 * - `bad-argument` — another invalid argument: env file path, trailer, author (code `INVALID_ARGUMENT`);
 * - `path-conflict` — the worktree path exists but is not this task's worktree of this repository (code `INVALID_ARGUMENT`);
 * - `lease-held` — another live task holds the worktree's lease (code `LEASE_HELD`);
 * - `git-failed` — a git command failed (code `SPAWN_FAILED`: the attempt's workspace could not be prepared or saved);
 * - `setup-failed` — a setup command failed (code `SPAWN_FAILED`);
 * - `snapshot-failed` — a snapshot could not be written or verified (code `SPAWN_FAILED`).
 */
export type WorkspaceErrorKind =
  | 'not-a-repo'
  | 'bad-name'
  | 'bad-base'
  | 'bad-argument'
  | 'path-conflict'
  | 'lease-held'
  | 'git-failed'
  | 'setup-failed'
  | 'snapshot-failed';

const CODES: Record<WorkspaceErrorKind, ErrorCode> = {
  'not-a-repo': 'INVALID_ARGUMENT',
  'bad-name': 'INVALID_ARGUMENT',
  'bad-base': 'INVALID_ARGUMENT',
  'bad-argument': 'INVALID_ARGUMENT',
  'path-conflict': 'INVALID_ARGUMENT',
  'lease-held': 'LEASE_HELD',
  'git-failed': 'SPAWN_FAILED',
  'setup-failed': 'SPAWN_FAILED',
  'snapshot-failed': 'SPAWN_FAILED',
};

/** Kinds that a later try can fix without a change of input (the lease is freed, git's lock goes away). */
const RETRYABLE: ReadonlySet<WorkspaceErrorKind> = new Set(['lease-held', 'git-failed', 'snapshot-failed']);

/** A worktree could not be created, re-opened, leased, committed, snapshotted or rolled back. */
export class WorkspaceError extends SmithError {
  /** The finer reason; see {@link WorkspaceErrorKind}. */
  readonly kind: WorkspaceErrorKind;
  /** Whether trying again later may succeed (`lease-held`, `git-failed`, `snapshot-failed`). */
  readonly retryable: boolean;

  /**
   * @param kind - the finer reason, which also picks the error code
   * @param message - what happened, where (repository, task, worktree, command), and what to do
   * @param options - cause and context
   */
  constructor(kind: WorkspaceErrorKind, message: string, options: SmithErrorOptions = {}) {
    super(CODES[kind], message, { ...options, context: { kind, ...(options.context ?? {}) } });
    this.name = 'WorkspaceError';
    this.kind = kind;
    this.retryable = RETRYABLE.has(kind);
  }
}
