/**
 * Git worktree workspaces: one worktree and branch per task, leased to one task at a time, never
 * removed while it holds work. See `docs/worktrees.md`.
 */
export { WorktreeManager, Worktree, findRepoRoot, DEFAULT_IDENTITY } from './worktree.js';
export type {
  WorktreeManagerOptions,
  AcquireOptions,
  CommitOptions,
  ChangedFile,
  GitIdentity,
  ReleaseResult,
  RollbackResult,
  WorktreeInfo,
  WorktreeRecord,
  PruneResult,
} from './worktree.js';
export { WorkspaceError } from './errors.js';
export type { WorkspaceErrorKind } from './errors.js';
export { runGit, describeGitFailure, DEFAULT_GIT_TIMEOUT_MS } from './git.js';
export type { GitOptions, GitResult } from './git.js';
export { leaseOwnerAlive, readLease, takeLease, dropLease, parseLease, processStartTime } from './lease.js';
export type { WorktreeLease } from './lease.js';
