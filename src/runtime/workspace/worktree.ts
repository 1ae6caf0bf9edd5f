/**
 * Git worktree workspaces: each coding task works in its own worktree on its own branch, so many
 * agents can change one repository at once, and a worktree is never removed while it holds work
 * (DESIGN.md, "Guarantees → Work"; `docs/worktrees.md`).
 *
 * Layout under the manager's root (for example `<home>/worktrees`):
 *
 * ```
 * <root>/<name>/               the worktree, on branch smith/<name>   (name = the task id by default)
 * <root>/.leases/<name>.json   its lease: task id, owner pid, host
 * <root>/.meta/<name>.json     its record: repository, branch, base sha, env files copied, setup done
 * ```
 *
 * and in the repository: `refs/heads/smith/<name>` (the branch), `refs/smith/bases/<name>` (the
 * base commit) and `refs/smith/snapshots/<name>` (the last snapshot; earlier ones are its second
 * parents).
 *
 * Git commands used (https://git-scm.com/docs): `worktree add/remove/prune`, `add -A`,
 * `commit`, `interpret-trailers`, `write-tree`, `commit-tree`, `update-ref`, `ls-tree -r`,
 * `hash-object --stdin-paths`, `status --porcelain=v1 -z`, `diff --name-status -z`,
 * `rev-list --count`, `for-each-ref --contains`, `reset --hard`, `clean -fdx`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { WorkspaceError } from './errors.js';
import { describeGitFailure, runGit } from './git.js';
import type { GitResult } from './git.js';
import { dropLease, leaseOwnerAlive, readLease, takeLease } from './lease.js';
import type { WorktreeLease } from './lease.js';

/** Options of a {@link WorktreeManager}. */
export interface WorktreeManagerOptions {
  /** The directory under which worktrees live, for example `<home>/worktrees`; created on first use. */
  root: string;
  /** The git program (default `git` on `PATH`). */
  git?: string;
  /** Extra environment for every git command and setup command (over `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * Who commits and snapshots when git has no identity configured (`git var GIT_COMMITTER_IDENT`
   * fails, as on a fresh machine). Default `MisterSmith <smith@localhost>`. A configured identity
   * always wins.
   */
  identity?: GitIdentity;
  /** Time limit of one git command in ms (default 600 000 = 10 min). */
  gitTimeoutMs?: number;
  /** Time limit of one setup command in ms (default 1 800 000 = 30 min). */
  setupTimeoutMs?: number;
}

/** A git author or committer. */
export interface GitIdentity {
  /** The name, for example `MisterSmith`. */
  name: string;
  /** The email, for example `smith@localhost`. */
  email: string;
}

/** What {@link WorktreeManager.acquire} needs. */
export interface AcquireOptions {
  /** The repository (its top directory or any directory inside it; a bare repository works too). */
  repo: string;
  /** The task the worktree is leased to. */
  taskId: string;
  /**
   * The worktree's name: directory `<root>/<name>`, branch `smith/<name>`, snapshot ref
   * `refs/smith/snapshots/<name>`. Default: the task id. A task that continues another task's work
   * passes that task's name. Letters, digits, `.`, `_`, `-`; starts with a letter, digit or `_`.
   */
  name?: string;
  /** The commit to start from (any commit-ish: branch, tag, sha). Default: the repository's HEAD. Ignored when the branch exists already. */
  base?: string;
  /**
   * Files, relative to the repository's top, copied into a worktree that does not have them (for
   * example `.env`). They are local configuration, not work: never committed, snapshotted or
   * counted as changes. Missing ones are skipped. Not used with a bare repository.
   */
  envFiles?: readonly string[];
  /**
   * Commands run one after the other with `sh -c` in the worktree after it is created (and again
   * on the next acquire if one failed), for example `npm ci`. Their environment is `process.env`,
   * the manager's `env`, and `SMITH_TASK_ID`, `SMITH_WORKTREE`, `SMITH_REPO`.
   */
  setup?: readonly string[];
  /** The pid that owns the lease (default: this process). */
  owner?: number;
}

/** Options of {@link Worktree.commitAll}. */
export interface CommitOptions {
  /** The commit's author (default: git's configured identity, else the manager's `identity`). */
  author?: GitIdentity;
  /**
   * Trailers added at the end of the message as `Key: value` lines
   * (https://git-scm.com/docs/git-interpret-trailers), for example `{ 'Smith-Task': 't_01…' }`.
   * Keys: letters, digits and `-`; values: one line.
   */
  trailers?: Readonly<Record<string, string | readonly string[]>>;
}

/** One file changed between the base and the branch head, from `git diff --name-status`. */
export interface ChangedFile {
  /**
   * Git's status letter: `A` added, `M` modified, `D` deleted, `R` renamed, `C` copied,
   * `T` type changed, `U` unmerged, `X` unknown (https://git-scm.com/docs/git-diff, `--diff-filter`).
   */
  status: 'A' | 'C' | 'D' | 'M' | 'R' | 'T' | 'U' | 'X';
  /** The path (after a rename or copy), relative to the worktree's top. */
  path: string;
  /** The path before a rename or copy. */
  from?: string;
  /** Similarity of a rename or copy, percent. */
  similarity?: number;
}

/** What {@link Worktree.release} did. */
export interface ReleaseResult {
  /** Whether the worktree directory was removed. */
  removed: boolean;
  /**
   * What was kept and why, when something was: the whole worktree (a git command failed, the
   * snapshot could not be verified, the lease is another's) or the branch (commits not on any
   * other branch). Absent when everything went.
   */
  kept?: string;
  /** The snapshot taken before removing a worktree with uncommitted work (`refs/smith/snapshots/<name>`). */
  snapshot?: string;
  /** The branch's fate: `deleted`, `kept`, or `absent` (it did not exist). Absent when nothing was tried. */
  branch?: 'deleted' | 'kept' | 'absent';
}

/** What {@link Worktree.rollback} did. */
export interface RollbackResult {
  /** The snapshot holding the rolled-back work. */
  snapshot: string;
  /** The head after the rollback: the base. */
  head: string;
}

/** One worktree under the root, as {@link WorktreeManager.list} sees it. */
export interface WorktreeInfo {
  /** The worktree's name (directory under the root). */
  name: string;
  /** Its path. */
  path: string;
  /** Whether the directory exists. */
  exists: boolean;
  /** The task it was last leased to (from its record). */
  taskId?: string;
  /** The repository's top directory (from its record). */
  repo?: string;
  /** Its branch (from its record). */
  branch?: string;
  /** Its base sha (from its record). */
  base?: string;
  /** Its lease file, if any. */
  lease?: WorktreeLease;
  /** Whether the lease is held by a live owner. */
  leased: boolean;
  /** Its head sha. */
  head?: string;
  /** Whether it has uncommitted changes or untracked files (env files not counted). */
  dirty?: boolean;
  /** Commits on the branch not reachable from the base. */
  ahead?: number;
  /** Why a field is missing: no record (not made by smith), a git failure. */
  problem?: string;
}

/** One worktree {@link WorktreeManager.prune} looked at. */
export interface PruneResult extends ReleaseResult {
  /** The worktree's name. */
  name: string;
  /** Its task. */
  taskId?: string;
}

/** The record kept for each worktree in `<root>/.meta/<name>.json` (JSON, this shape). */
export interface WorktreeRecord {
  /** Format version, 1. */
  version: 1;
  /** The worktree's name. */
  name: string;
  /** The task it was last leased to. */
  taskId: string;
  /** The repository's top directory (or the bare repository's directory). */
  repo: string;
  /** Its branch, `smith/<name>`. */
  branch: string;
  /** The base commit's sha. */
  base: string;
  /** Env files copied into it (relative paths): never committed or snapshotted. */
  envFiles: string[];
  /** Whether the setup commands have all succeeded since it was created or rolled back. */
  setupDone: boolean;
  /** When it was created, ISO 8601. */
  createdAt: string;
}

/** One entry of `git status --porcelain=v1 -z`. */
interface StatusEntry {
  x: string;
  y: string;
  path: string;
  from?: string;
}

interface RepoInfo {
  /** The top directory (non-bare) or the repository directory (bare). */
  top: string;
  /** realpath of the common git directory: identifies the repository. */
  commonDir: string;
  bare: boolean;
}

/** Default identity for commits and snapshots when git has none configured. */
export const DEFAULT_IDENTITY: GitIdentity = { name: 'MisterSmith', email: 'smith@localhost' };

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/;
const TRAILER_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
const OUTPUT_TAIL_CHARS = 2000;

function checkName(name: string, what: string): void {
  if (!NAME_RE.test(name) || name.includes('..') || name.endsWith('.lock') || name.endsWith('.')) {
    throw new WorkspaceError(
      'bad-name',
      `${what} "${name}" cannot name a worktree directory and a git branch: use letters, digits, ".", "_" and "-" ` +
        `(no "..", not ending in "." or ".lock"), starting with a letter, digit or "_"`,
      { context: { name } },
    );
  }
}

function realpathOr(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

function tail(text: string, maxChars = OUTPUT_TAIL_CHARS): string {
  const trimmed = text.trimEnd();
  return trimmed.length > maxChars ? `…${trimmed.slice(trimmed.length - maxChars)}` : trimmed;
}

function parseStatus(out: string): StatusEntry[] {
  const parts = out.split('\0');
  const entries: StatusEntry[] = [];
  for (let i = 0; i < parts.length; i++) {
    const item = parts[i];
    if (item === undefined || item.length < 4) continue;
    const x = item[0] ?? ' ';
    const y = item[1] ?? ' ';
    const entry: StatusEntry = { x, y, path: item.slice(3) };
    if (x === 'R' || x === 'C' || y === 'R' || y === 'C') {
      const from = parts[++i];
      if (from !== undefined && from !== '') entry.from = from;
    }
    entries.push(entry);
  }
  return entries;
}

function writeJsonAtomic(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

/**
 * The top directory of the git work tree holding `dir` (`git rev-parse --show-toplevel`).
 *
 * @param dir - any directory inside the repository (or a worktree of it)
 * @param options - the git program (default `git`)
 * @returns the absolute path of the top directory
 * @throws WorkspaceError `not-a-repo` (code `INVALID_ARGUMENT`) when `dir` is not in a git work tree
 *   or git cannot run
 */
export async function findRepoRoot(dir: string, options: { git?: string } = {}): Promise<string> {
  const args = ['rev-parse', '--show-toplevel'];
  const result = fs.existsSync(dir)
    ? await runGit(args, { cwd: dir, ...(options.git ? { git: options.git } : {}) })
    : { code: -1, stdout: '', stderr: `no such directory: ${dir}` };
  const top = result.stdout.trim();
  if (result.code !== 0 || top === '') {
    throw new WorkspaceError(
      'not-a-repo',
      `${dir} is not inside a git work tree (${describeGitFailure(args, result)}); run smith inside a git ` +
        `repository or create one with "git init" and a first commit`,
      { context: { dir } },
    );
  }
  return top;
}

/**
 * Creates, re-opens, lists and prunes the git worktrees of tasks, one per task, each on its own
 * branch, leased to one task at a time. See the module comment for the layout.
 *
 * @example
 * const manager = new WorktreeManager({ root: path.join(home, 'worktrees') });
 * const wt = await manager.acquire({ repo, taskId: task.id, envFiles: ['.env'], setup: ['npm ci'] });
 * // … the agent works in wt.path …
 * await wt.commitAll('agent: fix the parser', { trailers: { 'Smith-Task': task.id } });
 * const { removed, kept } = await wt.release({ remove: true });
 */
export class WorktreeManager {
  /** The absolute root directory. */
  readonly root: string;
  /** @internal */
  readonly gitProgram: string | undefined;
  /** @internal */
  readonly env: Readonly<Record<string, string | undefined>>;
  private readonly fallbackIdentity: GitIdentity;
  private readonly gitTimeoutMs: number | undefined;
  private readonly setupTimeoutMs: number;
  private readonly identityCache = new Map<string, Promise<Record<string, string>>>();
  private readonly locks = new Map<string, Promise<unknown>>();

  /**
   * @param options - the root directory, the git program, extra environment, fallback identity, time limits
   */
  constructor(options: WorktreeManagerOptions) {
    this.root = path.resolve(options.root);
    this.gitProgram = options.git;
    this.env = { ...(options.env ?? {}) };
    this.fallbackIdentity = options.identity ?? DEFAULT_IDENTITY;
    this.gitTimeoutMs = options.gitTimeoutMs;
    this.setupTimeoutMs = options.setupTimeoutMs ?? 1_800_000;
  }

  /**
   * Create the worktree of a task, or re-open it (after a crash, for a retry or a revise round).
   *
   * New: `git worktree add -b smith/<name> <root>/<name> <base>` (or, when the branch exists from an
   * earlier round, `git worktree add <root>/<name> smith/<name>`), the base sha recorded in
   * `refs/smith/bases/<name>`; then env files are copied and setup commands run. Existing: checked
   * to be a worktree of the same repository, and re-used with its files as they are.
   *
   * @param options - repository, task id, name, base, env files, setup commands, owner pid
   * @returns the leased worktree
   * @throws WorkspaceError `lease-held` (code `LEASE_HELD`) when another live task holds it;
   *   `not-a-repo`, `bad-name`, `bad-base`, `bad-argument`, `path-conflict` (code `INVALID_ARGUMENT`);
   *   `git-failed`, `setup-failed` (code `SPAWN_FAILED`; the worktree stays, and the next acquire
   *   runs setup again). On any error the lease is dropped.
   */
  async acquire(options: AcquireOptions): Promise<Worktree> {
    const name = options.name ?? options.taskId;
    checkName(name, options.name === undefined ? 'task id' : 'worktree name');
    if (options.taskId.trim() === '' || /[\r\n]/.test(options.taskId)) {
      throw new WorkspaceError('bad-argument', `task id "${options.taskId}" must be one non-empty line`, {
        context: { taskId: options.taskId },
      });
    }
    const envFiles = (options.envFiles ?? []).map((file) => this.checkEnvFile(file));
    const repo = await this.resolveRepo(options.repo);
    return this.withLock(name, async () => {
      const wtPath = this.pathOf(name);
      const leaseFile = this.leaseFile(name);
      const lease = takeLease(
        leaseFile,
        { taskId: options.taskId, pid: options.owner ?? process.pid },
        wtPath,
      );
      try {
        const meta = await this.openOrCreate(repo, name, options);
        const worktree = new Worktree(this, meta, lease);
        await this.prepare(worktree, repo, envFiles, options.setup ?? []);
        return worktree;
      } catch (error) {
        dropLease(leaseFile, lease.nonce);
        throw error;
      }
    });
  }

  /**
   * Every worktree under the root (and every record whose directory is gone), with its lease and
   * its state. Reads only: `git status` runs with `GIT_OPTIONAL_LOCKS=0`.
   *
   * @returns one entry per name, sorted by name
   */
  async list(): Promise<WorktreeInfo[]> {
    const names = new Set<string>();
    const addJsonNames = (dir: string) => {
      for (const file of safeReaddir(dir))
        if (file.endsWith('.json')) names.add(file.slice(0, -'.json'.length));
    };
    for (const entry of safeReaddir(this.root)) {
      if (
        !entry.startsWith('.') &&
        fs.statSync(path.join(this.root, entry), { throwIfNoEntry: false })?.isDirectory()
      ) {
        names.add(entry);
      }
    }
    addJsonNames(path.join(this.root, '.meta'));
    addJsonNames(path.join(this.root, '.leases'));
    const infos: WorktreeInfo[] = [];
    for (const name of [...names].sort()) infos.push(await this.inspect(name));
    return infos;
  }

  /**
   * Remove the worktrees whose task is done and whose work is safe, by the rules of
   * {@link Worktree.release} with `remove: true`: uncommitted work is snapshotted first, unmerged
   * branches are kept, and any git failure keeps the worktree.
   *
   * A worktree is a candidate when smith made it (it has a record), no live owner holds its lease,
   * and `isDone` (when given) says its task is done. Each candidate is leased for the time of its
   * removal, so a concurrent acquire waits or fails instead of racing it.
   *
   * @param options - `isDone(info)`: whether the worktree's task is done (default: every unleased
   *   worktree counts as done); `owner`: the pid that leases candidates meanwhile (default: this process)
   * @returns what happened to each candidate
   */
  async prune(
    options: { isDone?: (info: WorktreeInfo) => boolean | Promise<boolean>; owner?: number } = {},
  ): Promise<PruneResult[]> {
    const results: PruneResult[] = [];
    for (const info of await this.list()) {
      if (info.taskId === undefined || info.repo === undefined || info.leased) continue;
      if (options.isDone && !(await options.isDone(info))) continue;
      const taskId = info.taskId;
      const result = await this.withLock(info.name, async (): Promise<PruneResult> => {
        const meta = this.readMeta(info.name);
        if (meta === undefined)
          return { name: info.name, taskId, removed: false, kept: 'its record is gone' };
        let lease: WorktreeLease;
        try {
          lease = takeLease(
            this.leaseFile(info.name),
            { taskId: meta.taskId, pid: options.owner ?? process.pid },
            info.path,
          );
        } catch (error) {
          return { name: info.name, taskId, removed: false, kept: (error as Error).message };
        }
        const worktree = new Worktree(this, meta, lease);
        return { name: info.name, taskId, ...(await worktree.releaseLocked(true)) };
      });
      results.push(result);
    }
    return results;
  }

  // ---- internals shared with Worktree -------------------------------------------------------

  /** @internal the path of a worktree */
  pathOf(name: string): string {
    return path.join(this.root, name);
  }

  /** @internal */
  leaseFile(name: string): string {
    return path.join(this.root, '.leases', `${name}.json`);
  }

  /** @internal */
  metaFile(name: string): string {
    return path.join(this.root, '.meta', `${name}.json`);
  }

  /** @internal */
  readMeta(name: string): WorktreeRecord | undefined {
    try {
      const value = JSON.parse(fs.readFileSync(this.metaFile(name), 'utf8')) as Partial<WorktreeRecord>;
      if (
        typeof value.taskId !== 'string' ||
        typeof value.repo !== 'string' ||
        typeof value.branch !== 'string' ||
        typeof value.base !== 'string'
      ) {
        return undefined;
      }
      return {
        version: 1,
        name,
        taskId: value.taskId,
        repo: value.repo,
        branch: value.branch,
        base: value.base,
        envFiles: Array.isArray(value.envFiles) ? value.envFiles.filter((f) => typeof f === 'string') : [],
        setupDone: value.setupDone === true,
        createdAt: typeof value.createdAt === 'string' ? value.createdAt : '',
      };
    } catch {
      return undefined;
    }
  }

  /** @internal */
  writeMeta(meta: WorktreeRecord): void {
    writeJsonAtomic(this.metaFile(meta.name), meta);
  }

  /** @internal run git; never throws */
  git(
    args: readonly string[],
    cwd: string,
    extra: { env?: Record<string, string | undefined>; input?: string } = {},
  ): Promise<GitResult> {
    return runGit(args, {
      cwd,
      env: { ...this.env, ...(extra.env ?? {}) },
      ...(this.gitProgram !== undefined ? { git: this.gitProgram } : {}),
      ...(this.gitTimeoutMs !== undefined ? { timeoutMs: this.gitTimeoutMs } : {}),
      ...(extra.input !== undefined ? { input: extra.input } : {}),
    });
  }

  /** @internal run git; throws WorkspaceError `git-failed` on a non-zero exit */
  async mustGit(
    args: readonly string[],
    cwd: string,
    what: string,
    extra: { env?: Record<string, string | undefined>; input?: string } = {},
  ): Promise<string> {
    const result = await this.git(args, cwd, extra);
    if (result.code !== 0) {
      throw new WorkspaceError('git-failed', `${what}: ${describeGitFailure(args, result)} (in ${cwd})`, {
        context: { cwd, args: [...args], exitCode: result.code },
      });
    }
    return result.stdout;
  }

  /**
   * @internal Environment that gives commits an identity when git has none configured: checks
   * `git var GIT_AUTHOR_IDENT` / `GIT_COMMITTER_IDENT` once per repository.
   */
  identityEnv(cwd: string, repo: string): Promise<Record<string, string>> {
    let cached = this.identityCache.get(repo);
    if (cached === undefined) {
      cached = (async () => {
        const env: Record<string, string> = {};
        const { name, email } = this.fallbackIdentity;
        if ((await this.git(['var', 'GIT_AUTHOR_IDENT'], cwd)).code !== 0) {
          Object.assign(env, { GIT_AUTHOR_NAME: name, GIT_AUTHOR_EMAIL: email });
        }
        if ((await this.git(['var', 'GIT_COMMITTER_IDENT'], cwd)).code !== 0) {
          Object.assign(env, { GIT_COMMITTER_NAME: name, GIT_COMMITTER_EMAIL: email });
        }
        return env;
      })();
      this.identityCache.set(repo, cached);
    }
    return cached;
  }

  /** @internal Run `fn` after every earlier call for the same name has settled (in this process). */
  withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const before = this.locks.get(name) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(name, settled);
    void settled.then(() => {
      if (this.locks.get(name) === settled) this.locks.delete(name);
    });
    return run;
  }

  /** @internal copy missing env files from the repository; returns the files copied */
  copyEnvFiles(repoTop: string, worktreePath: string, files: readonly string[]): string[] {
    const copied: string[] = [];
    for (const file of files) {
      const from = path.join(repoTop, file);
      const to = path.join(worktreePath, file);
      const stat = fs.statSync(from, { throwIfNoEntry: false });
      if (!stat?.isFile() || fs.lstatSync(to, { throwIfNoEntry: false }) !== undefined) continue;
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.copyFileSync(from, to);
      fs.chmodSync(to, stat.mode & 0o7777);
      copied.push(file);
    }
    return copied;
  }

  // ---- private -------------------------------------------------------------------------------

  private checkEnvFile(file: string): string {
    const normal = path.posix.normalize(file.replaceAll('\\', '/'));
    if (
      file === '' ||
      path.isAbsolute(file) ||
      normal === '.' ||
      normal.startsWith('../') ||
      normal === '..'
    ) {
      throw new WorkspaceError(
        'bad-argument',
        `env file "${file}" must be a path inside the repository, relative to its top (for example ".env")`,
        { context: { file } },
      );
    }
    return normal;
  }

  private async resolveRepo(dir: string): Promise<RepoInfo> {
    const args = ['rev-parse', '--path-format=absolute', '--git-common-dir', '--is-bare-repository'];
    const result = fs.existsSync(dir)
      ? await this.git(args, dir)
      : { code: -1, stdout: '', stderr: `no such directory: ${dir}` };
    const [commonDir, bare] = result.stdout.split('\n').map((line) => line.trim());
    const notRepo = (failure: string) =>
      new WorkspaceError(
        'not-a-repo',
        `repository ${dir} is not a git repository (${failure}); point the workflow at a git repository, or ` +
          `create one with "git init" and a first commit`,
        { context: { repo: dir } },
      );
    if (result.code !== 0 || !commonDir) throw notRepo(describeGitFailure(args, result));
    if (bare === 'true') return { top: realpathOr(commonDir), commonDir: realpathOr(commonDir), bare: true };
    const topArgs = ['rev-parse', '--show-toplevel'];
    const top = await this.git(topArgs, dir);
    if (top.code !== 0 || top.stdout.trim() === '') throw notRepo(describeGitFailure(topArgs, top));
    return { top: realpathOr(top.stdout.trim()), commonDir: realpathOr(commonDir), bare: false };
  }

  private async resolveBase(repo: RepoInfo, base: string | undefined): Promise<string> {
    const wanted = base ?? 'HEAD';
    const args = ['rev-parse', '--verify', '--quiet', '--end-of-options', `${wanted}^{commit}`];
    const result = wanted.startsWith('-') ? undefined : await this.git(args, repo.top);
    const sha = result?.stdout.trim() ?? '';
    if (result === undefined || result.code !== 0 || sha === '') {
      const hint =
        base === undefined
          ? 'the repository has no commit yet: commit something first'
          : 'name a branch, tag or commit that exists in it';
      throw new WorkspaceError(
        'bad-base',
        `base "${wanted}" is not a commit of repository ${repo.top}: ${hint}`,
        {
          context: { repo: repo.top, base: wanted },
        },
      );
    }
    return sha;
  }

  private async refSha(cwd: string, ref: string): Promise<string | undefined> {
    const result = await this.git(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], cwd);
    const sha = result.stdout.trim();
    return result.code === 0 && sha !== '' ? sha : undefined;
  }

  private async openOrCreate(repo: RepoInfo, name: string, options: AcquireOptions): Promise<WorktreeRecord> {
    const wtPath = this.pathOf(name);
    const branch = `smith/${name}`;
    const baseRef = `refs/smith/bases/${name}`;
    const previous = this.readMeta(name);
    if (safeReaddir(wtPath).length === 0 && fs.existsSync(wtPath) && fs.statSync(wtPath).isDirectory()) {
      // An empty directory (a crash before git checked anything out) holds nothing: start afresh.
      fs.rmdirSync(wtPath);
    }
    if (fs.existsSync(wtPath)) {
      await this.checkExisting(repo, wtPath, name, options.taskId);
      const base =
        (previous?.repo === repo.top ? previous.base : undefined) ??
        (await this.refSha(repo.top, baseRef)) ??
        (await this.mergeBase(repo, branch, options.base));
      const meta: WorktreeRecord = {
        version: 1,
        name,
        taskId: options.taskId,
        repo: repo.top,
        branch,
        base,
        envFiles: previous?.envFiles ?? [],
        setupDone: previous?.setupDone ?? false,
        createdAt: previous?.createdAt ?? new Date().toISOString(),
      };
      this.writeMeta(meta);
      return meta;
    }
    fs.mkdirSync(this.root, { recursive: true });
    const branchSha = await this.refSha(repo.top, `refs/heads/${branch}`);
    let base: string;
    let args: string[];
    if (branchSha !== undefined) {
      base = (await this.refSha(repo.top, baseRef)) ?? (await this.mergeBase(repo, branch, options.base));
      args = ['worktree', 'add', '--quiet', wtPath, branch];
    } else {
      base = await this.resolveBase(repo, options.base);
      args = ['worktree', 'add', '--quiet', '-b', branch, wtPath, base];
    }
    let result = await this.git(args, repo.top);
    if (result.code !== 0 && /missing but (already registered|locked) worktree/.test(result.stderr)) {
      // A worktree directory deleted by hand stays registered; drop the stale registration and retry.
      await this.git(['worktree', 'prune'], repo.top);
      result = await this.git(args, repo.top);
    }
    if (result.code !== 0) {
      throw new WorkspaceError(
        'git-failed',
        `could not create worktree ${wtPath} for task ${options.taskId}: ${describeGitFailure(args, result)} ` +
          `(in ${repo.top}); fix the cause and retry`,
        { context: { repo: repo.top, path: wtPath, taskId: options.taskId, exitCode: result.code } },
      );
    }
    if (branchSha === undefined) {
      // The base is also in the record; the ref keeps it findable (and alive) if the record is lost.
      await this.git(['update-ref', baseRef, base], repo.top);
    }
    const meta: WorktreeRecord = {
      version: 1,
      name,
      taskId: options.taskId,
      repo: repo.top,
      branch,
      base,
      envFiles: previous?.repo === repo.top ? previous.envFiles : [],
      setupDone: false,
      createdAt: new Date().toISOString(),
    };
    this.writeMeta(meta);
    return meta;
  }

  private async mergeBase(repo: RepoInfo, branch: string, base: string | undefined): Promise<string> {
    const other = await this.resolveBase(repo, base);
    const result = await this.git(['merge-base', other, `refs/heads/${branch}`], repo.top);
    const sha = result.stdout.trim();
    return result.code === 0 && sha !== '' ? sha : other;
  }

  private async checkExisting(repo: RepoInfo, wtPath: string, name: string, taskId: string): Promise<void> {
    const args = ['rev-parse', '--path-format=absolute', '--show-toplevel', '--git-common-dir'];
    const result = await this.git(args, wtPath);
    const [top, common] = result.stdout.split('\n').map((line) => line.trim());
    const conflict = (why: string) =>
      new WorkspaceError(
        'path-conflict',
        `task ${taskId}: ${wtPath} exists but ${why}; it was left untouched: move it away, or use another root or ` +
          `worktree name`,
        { context: { path: wtPath, name, taskId, repo: repo.top } },
      );
    if (result.code !== 0 || !top || !common)
      throw conflict(`is not a git worktree (${describeGitFailure(args, result)})`);
    if (realpathOr(top) !== realpathOr(wtPath))
      throw conflict(`is not the top of a worktree (its repository is ${top})`);
    if (realpathOr(common) !== repo.commonDir) {
      throw conflict(`is a worktree of another repository (${common}, not ${repo.commonDir})`);
    }
  }

  private async prepare(worktree: Worktree, repo: RepoInfo, envFiles: string[], setup: readonly string[]) {
    const meta = worktree.meta;
    if (!repo.bare && envFiles.length > 0) {
      const copied = this.copyEnvFiles(repo.top, worktree.path, envFiles);
      const all = [...new Set([...meta.envFiles, ...copied])];
      if (all.length !== meta.envFiles.length) {
        meta.envFiles = all;
        this.writeMeta(meta);
      }
    }
    if (meta.setupDone) return;
    for (const command of setup) await this.runSetup(command, worktree);
    meta.setupDone = true;
    this.writeMeta(meta);
  }

  private runSetup(command: string, worktree: Worktree): Promise<void> {
    return new Promise((resolve, reject) => {
      const env: Record<string, string | undefined> = {
        ...process.env,
        ...this.env,
        SMITH_TASK_ID: worktree.taskId,
        SMITH_WORKTREE: worktree.path,
        SMITH_REPO: worktree.repo,
      };
      let output = '';
      const keep = (chunk: Buffer) => {
        output += chunk.toString('utf8');
        if (output.length > 4 * OUTPUT_TAIL_CHARS)
          output = output.slice(output.length - 2 * OUTPUT_TAIL_CHARS);
      };
      const child = spawn('sh', ['-c', command], {
        cwd: worktree.path,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true, // its own process group, so a timeout ends everything it started
      });
      const killGroup = (signal: NodeJS.Signals) => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, signal);
        } catch {
          // already gone
        }
      };
      let timedOut = false;
      let forceTimer: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup('SIGTERM');
        forceTimer = setTimeout(() => killGroup('SIGKILL'), 2000);
      }, this.setupTimeoutMs);
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      let settled = false;
      const fail = (how: string, code: number | null, signal: NodeJS.Signals | null) => {
        const shown = tail(output);
        reject(
          new WorkspaceError(
            'setup-failed',
            `setup command "${command}" failed in worktree ${worktree.path} (task ${worktree.taskId}): ${how}; ` +
              `${shown === '' ? 'it printed nothing' : `last output:\n${shown}`}\nFix the command (or run it by hand ` +
              `in the worktree to see why); the next acquire runs the setup again`,
            {
              context: {
                command,
                path: worktree.path,
                taskId: worktree.taskId,
                exitCode: code,
                signal,
                outputTail: shown,
              },
            },
          ),
        );
      };
      child.on('error', (error) => {
        if (settled || child.pid !== undefined) return; // a started child reports through 'close'
        settled = true;
        clearTimeout(timer);
        fail(`could not start sh: ${error.message}`, null, null);
      });
      child.on('exit', () => {
        // Nothing a setup command starts may outlive it (DESIGN.md, "Guarantees → Processes").
        killGroup('SIGKILL');
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (forceTimer) clearTimeout(forceTimer);
        if (settled) return;
        settled = true;
        if (code === 0) resolve();
        else
          fail(
            timedOut
              ? `timed out after ${this.setupTimeoutMs} ms`
              : signal
                ? `killed by ${signal}`
                : `exit code ${code}`,
            code,
            signal,
          );
      });
    });
  }

  private async inspect(name: string): Promise<WorktreeInfo> {
    const wtPath = this.pathOf(name);
    const meta = this.readMeta(name);
    const lease = readLease(this.leaseFile(name));
    const exists = fs.existsSync(wtPath);
    const info: WorktreeInfo = {
      name,
      path: wtPath,
      exists,
      leased: lease !== undefined && leaseOwnerAlive(lease),
      ...(lease !== undefined ? { lease } : {}),
    };
    if (meta === undefined) {
      info.problem = `no record in ${this.metaFile(name)}: not a worktree smith made (or its record is lost)`;
      return info;
    }
    Object.assign(info, { taskId: meta.taskId, repo: meta.repo, branch: meta.branch, base: meta.base });
    if (!exists) {
      info.problem = 'the worktree directory is gone';
      return info;
    }
    const status = await this.git(['status', '--porcelain=v1', '-z', '--untracked-files=all'], wtPath, {
      env: { GIT_OPTIONAL_LOCKS: '0' },
    });
    const head = await this.refSha(wtPath, 'HEAD');
    const ahead = await this.git(['rev-list', '--count', `${meta.base}..refs/heads/${meta.branch}`], wtPath);
    if (head !== undefined) info.head = head;
    if (status.code === 0) {
      const envFiles = new Set(meta.envFiles);
      info.dirty = parseStatus(status.stdout).some((e) => !envFiles.has(e.path));
    }
    if (ahead.code === 0) info.ahead = Number(ahead.stdout.trim());
    if (status.code !== 0 || head === undefined || ahead.code !== 0) {
      info.problem =
        status.code !== 0 ? describeGitFailure(['status'], status) : 'git could not read its head or branch';
    }
    return info;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * One task's worktree, leased to it by {@link WorktreeManager.acquire}.
 *
 * Methods on one worktree run one at a time (in this process). `release` with `remove` and
 * `rollback` refuse to act when the lease has been taken over by another holder.
 */
export class Worktree {
  /** The worktree directory (`<root>/<name>`). */
  readonly path: string;
  /** The branch, `smith/<name>`. */
  readonly branch: string;
  /** The base commit's sha: where the branch started. */
  readonly base: string;
  /** The task the worktree is leased to. */
  readonly taskId: string;
  /** The worktree's name (default: the task id). */
  readonly name: string;
  /** The repository's top directory (or the bare repository's directory). */
  readonly repo: string;
  /** The snapshot ref, `refs/smith/snapshots/<name>`. */
  readonly snapshotRef: string;
  /** @internal */
  readonly meta: WorktreeRecord;
  private readonly manager: WorktreeManager;
  private readonly lease: WorktreeLease;
  private released = false;

  /** @internal use {@link WorktreeManager.acquire} */
  constructor(manager: WorktreeManager, meta: WorktreeRecord, lease: WorktreeLease) {
    this.manager = manager;
    this.meta = meta;
    this.lease = lease;
    this.path = manager.pathOf(meta.name);
    this.branch = meta.branch;
    this.base = meta.base;
    this.taskId = meta.taskId;
    this.name = meta.name;
    this.repo = meta.repo;
    this.snapshotRef = `refs/smith/snapshots/${meta.name}`;
  }

  /**
   * Stage everything (`git add -A`: modified, new and deleted files, untracked ones included,
   * `.gitignore` respected, env files left out) and commit it when there is anything to commit.
   * Commit hooks are skipped (`--no-verify`): the council, not a hook, judges the work.
   *
   * @param message - the commit message (non-empty)
   * @param options - author and trailers (added with `git interpret-trailers`)
   * @returns the new head sha, or `null` when there was nothing to commit
   * @throws WorkspaceError `bad-argument` for an empty message, a bad trailer or author;
   *   `git-failed` when a git command fails (the changes stay in the worktree)
   */
  async commitAll(message: string, options: CommitOptions = {}): Promise<string | null> {
    if (message.trim() === '') {
      throw new WorkspaceError(
        'bad-argument',
        `commit message for task ${this.taskId} is empty; say what changed`,
      );
    }
    const trailerArgs: string[] = [];
    for (const [key, values] of Object.entries(options.trailers ?? {})) {
      for (const value of typeof values === 'string' ? [values] : values) {
        if (!TRAILER_KEY_RE.test(key) || /[\r\n]/.test(value)) {
          throw new WorkspaceError(
            'bad-argument',
            `trailer "${key}: ${value}" for task ${this.taskId} is not valid: keys are letters, digits and "-", values one line`,
            { context: { key, value } },
          );
        }
        trailerArgs.push('--trailer', `${key}: ${value}`);
      }
    }
    if (
      options.author &&
      (/[<>\r\n]/.test(options.author.name + options.author.email) || !options.author.name.trim())
    ) {
      throw new WorkspaceError(
        'bad-argument',
        `author "${options.author.name} <${options.author.email}>" is not valid`,
      );
    }
    return this.manager.withLock(this.name, async () => {
      await this.manager.mustGit(
        ['add', '-A', '--', '.', ...this.excludes()],
        this.path,
        `task ${this.taskId}: staging`,
      );
      const staged = await this.manager.git(['diff', '--cached', '--quiet', '--no-ext-diff'], this.path);
      if (staged.code === 0) return null;
      if (staged.code !== 1) {
        throw new WorkspaceError(
          'git-failed',
          `task ${this.taskId}: ${describeGitFailure(['diff', '--cached'], staged)}`,
        );
      }
      let text = message;
      if (trailerArgs.length > 0) {
        text = await this.manager.mustGit(
          ['interpret-trailers', ...trailerArgs],
          this.path,
          `task ${this.taskId}: adding trailers`,
          { input: message.endsWith('\n') ? message : `${message}\n` },
        );
      }
      const env: Record<string, string> = { ...(await this.identity()) };
      if (options.author)
        Object.assign(env, { GIT_AUTHOR_NAME: options.author.name, GIT_AUTHOR_EMAIL: options.author.email });
      await this.manager.mustGit(
        ['commit', '--quiet', '--no-verify', '--cleanup=whitespace', '--file=-'],
        this.path,
        `task ${this.taskId}: committing in ${this.path}`,
        { env, input: text },
      );
      return this.headLocked();
    });
  }

  /**
   * The sha of the worktree's HEAD.
   *
   * @returns the sha (40 hex digits)
   * @throws WorkspaceError `git-failed` when git cannot read it
   */
  head(): Promise<string> {
    return this.manager.withLock(this.name, () => this.headLocked());
  }

  /**
   * The files changed on the branch since the base (`git diff --name-status -M <base> HEAD`);
   * committed changes only: call {@link commitAll} first to include the rest.
   *
   * @returns one entry per changed path, in git's order
   * @throws WorkspaceError `git-failed` when git fails
   */
  async changedFiles(): Promise<ChangedFile[]> {
    const out = await this.manager.mustGit(
      ['diff', '--name-status', '-z', '-M', '--no-ext-diff', '--no-color', this.base, 'HEAD', '--'],
      this.path,
      `task ${this.taskId}: listing changed files`,
    );
    const parts = out.split('\0');
    const files: ChangedFile[] = [];
    for (let i = 0; i < parts.length; i++) {
      const code = parts[i];
      if (!code) continue;
      const letter = code[0] as ChangedFile['status'];
      if (letter === 'R' || letter === 'C') {
        const from = parts[++i] ?? '';
        const to = parts[++i] ?? '';
        files.push({ status: letter, path: to, from, similarity: Number(code.slice(1)) || 0 });
      } else {
        files.push({ status: letter, path: parts[++i] ?? '' });
      }
    }
    return files;
  }

  /**
   * Whether the worktree has uncommitted changes or untracked files (ignored files and env files
   * do not count).
   *
   * @returns true when there is work not on the branch
   * @throws WorkspaceError `git-failed` when `git status` fails
   */
  async isDirty(): Promise<boolean> {
    return this.manager.withLock(this.name, async () => (await this.dirtyEntries()).length > 0);
  }

  /**
   * Save the current state (committed, uncommitted and untracked files; not ignored or env files)
   * to `refs/smith/snapshots/<name>` without touching the branch, the index or the files: a
   * temporary index (`GIT_INDEX_FILE`, a copy of the real one), `git add -A`, `write-tree`,
   * `commit-tree` with HEAD as first parent (and the previous snapshot as second, so earlier
   * snapshots stay reachable), `update-ref` (with a reflog).
   *
   * @returns the snapshot's commit sha
   * @throws WorkspaceError `snapshot-failed` when a git command fails (nothing changed)
   */
  snapshot(): Promise<string> {
    return this.manager.withLock(this.name, () => this.snapshotLocked());
  }

  /**
   * Drop the lease; with `remove`, also remove the worktree if its work is safe:
   *
   * 1. uncommitted changes or untracked files (or a HEAD moved off the branch) → a snapshot first,
   *    verified to exist and to hold every dirty file with its content (`git ls-tree -r`);
   * 2. commits on the branch not reachable from another branch, tag or remote-tracking branch →
   *    the branch is kept (the directory may go: everything is on a ref); otherwise it is deleted,
   *    with `refs/smith/bases/<name>`;
   * 3. any git failure at any step → nothing more is removed, and `kept` says why;
   * 4. `git worktree remove --force` only after a verified snapshot; a clean worktree goes
   *    without `--force`.
   *
   * Never throws for a git failure.
   *
   * @param options - `remove`: whether to remove the worktree (default false: only the lease goes)
   * @returns whether the directory was removed, what was kept and why, the snapshot sha
   */
  async release(options: { remove?: boolean } = {}): Promise<ReleaseResult> {
    return this.manager.withLock(this.name, () => this.releaseLocked(options.remove === true));
  }

  /**
   * For cancel with rollback: snapshot the worktree, verify the snapshot, and only then reset it
   * to the base (`git reset --hard <base>` on the branch, `git clean -fdx`). The branch's commits
   * and the uncommitted work stay reachable from the snapshot. Env files are copied again and the
   * setup runs again on the next acquire (the clean removed what it made).
   *
   * @returns the snapshot holding the rolled-back work, and the new head
   * @throws WorkspaceError `lease-held` when the lease was taken over; `snapshot-failed` when the
   *   snapshot cannot be written or verified (nothing was reset); `git-failed` when the reset fails
   */
  rollback(): Promise<RollbackResult> {
    return this.manager.withLock(this.name, async () => {
      const lost = this.leaseLost();
      if (lost !== undefined)
        throw new WorkspaceError('lease-held', `task ${this.taskId}: cannot roll back ${this.path}: ${lost}`);
      const entries = await this.dirtyEntries().catch((error: unknown) => {
        throw new WorkspaceError(
          'snapshot-failed',
          `task ${this.taskId}: ${(error as Error).message}; nothing was reset`,
        );
      });
      const snapshot = await this.snapshotLocked();
      const problem = await this.verifySnapshot(snapshot, entries);
      if (problem !== undefined) {
        throw new WorkspaceError(
          'snapshot-failed',
          `task ${this.taskId}: snapshot ${snapshot} of ${this.path} could not be verified (${problem}); nothing was reset`,
          { context: { path: this.path, snapshot } },
        );
      }
      const what = `task ${this.taskId}: rolling back ${this.path} to ${this.base} (work saved in ${snapshot})`;
      const onBranch = await this.manager.git(['symbolic-ref', '--quiet', 'HEAD'], this.path);
      if (onBranch.stdout.trim() !== `refs/heads/${this.branch}`) {
        await this.manager.mustGit(['checkout', '--quiet', '--force', this.branch, '--'], this.path, what);
      }
      await this.manager.mustGit(['reset', '--quiet', '--hard', this.base, '--'], this.path, what);
      await this.manager.mustGit(['clean', '-fdxq'], this.path, what);
      this.manager.copyEnvFiles(this.repo, this.path, this.meta.envFiles);
      this.meta.setupDone = false;
      this.manager.writeMeta(this.meta);
      return { snapshot, head: await this.headLocked() };
    });
  }

  // ---- internals -----------------------------------------------------------------------------

  /** @internal release while holding the in-process lock */
  async releaseLocked(remove: boolean): Promise<ReleaseResult> {
    const lost = this.leaseLost();
    if (lost !== undefined) {
      return { removed: false, kept: `${lost}; the worktree was left to its holder` };
    }
    let result: ReleaseResult;
    try {
      result = remove ? await this.removeSafely() : { removed: false, kept: 'release without remove' };
    } catch (error) {
      // Anything unexpected (a file system error): keep everything.
      result = {
        removed: false,
        kept: `unexpected error, nothing more was removed: ${(error as Error).message}`,
      };
    }
    dropLease(this.manager.leaseFile(this.name), this.lease.nonce);
    this.released = true;
    return result;
  }

  private leaseLost(): string | undefined {
    if (this.released) return `the lease of task ${this.taskId} on ${this.path} was already released`;
    const current = readLease(this.manager.leaseFile(this.name));
    if (current?.nonce === this.lease.nonce) return undefined;
    return current === undefined
      ? `the lease of task ${this.taskId} on ${this.path} is gone`
      : `the lease on ${this.path} is now held by task ${current.taskId} (pid ${current.pid})`;
  }

  private excludes(): string[] {
    return this.meta.envFiles.map((file) => `:(top,literal,exclude)${file}`);
  }

  private async identity(): Promise<Record<string, string>> {
    return this.manager.identityEnv(this.path, this.repo);
  }

  private async headLocked(): Promise<string> {
    const out = await this.manager.mustGit(
      ['rev-parse', '--verify', 'HEAD'],
      this.path,
      `task ${this.taskId}: reading HEAD`,
    );
    return out.trim();
  }

  private async dirtyEntries(): Promise<StatusEntry[]> {
    const out = await this.manager.mustGit(
      ['status', '--porcelain=v1', '-z', '--untracked-files=all'],
      this.path,
      `task ${this.taskId}: reading the status of ${this.path}`,
    );
    const envFiles = new Set(this.meta.envFiles);
    return parseStatus(out).filter((entry) => !envFiles.has(entry.path));
  }

  private async snapshotLocked(): Promise<string> {
    const fail = (what: string, args: readonly string[], result: GitResult) =>
      new WorkspaceError(
        'snapshot-failed',
        `task ${this.taskId}: could not snapshot ${this.path} (${what}): ${describeGitFailure(args, result)}; ` +
          `the worktree is untouched`,
        { context: { path: this.path, taskId: this.taskId, args: [...args], exitCode: result.code } },
      );
    const run = async (
      what: string,
      args: string[],
      extra: { env?: Record<string, string>; input?: string } = {},
    ) => {
      const result = await this.manager.git(args, this.path, extra);
      if (result.code !== 0) throw fail(what, args, result);
      return result.stdout.trim();
    };
    const gitDir = await run('finding its git directory', [
      'rev-parse',
      '--path-format=absolute',
      '--git-dir',
    ]);
    const head = await run('reading HEAD', ['rev-parse', '--verify', 'HEAD']);
    const index = path.join(gitDir, `smith-snapshot-index-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      const realIndex = path.join(gitDir, 'index');
      if (fs.existsSync(realIndex)) fs.copyFileSync(realIndex, index); // keeps stat data: no rehash of clean files
      const env = { GIT_INDEX_FILE: index };
      if (!fs.existsSync(index))
        await run('reading HEAD into a temporary index', ['read-tree', 'HEAD'], { env });
      await run('staging into a temporary index', ['add', '-A', '--', '.', ...this.excludes()], { env });
      const tree = await run('writing the tree', ['write-tree'], { env });
      const previous = await this.manager.git(
        ['rev-parse', '--verify', '--quiet', `${this.snapshotRef}^{commit}`],
        this.path,
      );
      const prevSha = previous.code === 0 ? previous.stdout.trim() : '';
      const parents = ['-p', head, ...(prevSha !== '' && prevSha !== head ? ['-p', prevSha] : [])];
      const message =
        `smith snapshot of worktree ${this.name} (task ${this.taskId})\n\n` +
        `Head: ${head}\nBranch: ${this.branch}\nBase: ${this.base}\n\nSmith-Task: ${this.taskId}\n`;
      const commit = await run('writing the snapshot commit', ['commit-tree', tree, ...parents], {
        env: await this.identity(),
        input: message,
      });
      await run('updating the snapshot ref', [
        'update-ref',
        '--create-reflog',
        '-m',
        `smith snapshot (task ${this.taskId})`,
        this.snapshotRef,
        commit,
        prevSha !== '' ? prevSha : '0'.repeat(commit.length),
      ]);
      return commit;
    } finally {
      fs.rmSync(index, { force: true });
    }
  }

  /**
   * Check that the snapshot ref names `snapshot` and that its tree holds every dirty path as it is
   * on disk (same blob, per `git hash-object`), and none of the deleted ones.
   * Returns the problem, or undefined when verified.
   */
  private async verifySnapshot(snapshot: string, entries: StatusEntry[]): Promise<string | undefined> {
    const ref = await this.manager.git(['rev-parse', '--verify', '--quiet', this.snapshotRef], this.path);
    if (ref.code !== 0 || ref.stdout.trim() !== snapshot) {
      return `${this.snapshotRef} does not name ${snapshot}: ${describeGitFailure(['rev-parse', this.snapshotRef], ref)}`;
    }
    const lsArgs = ['ls-tree', '-r', '-z', '--full-tree', snapshot];
    const listed = await this.manager.git(lsArgs, this.path);
    if (listed.code !== 0) return describeGitFailure(lsArgs, listed);
    const tree = new Map<string, { mode: string; sha: string }>();
    for (const line of listed.stdout.split('\0')) {
      const tab = line.indexOf('\t');
      if (tab < 0) continue;
      const [mode = '', , sha = ''] = line.slice(0, tab).split(' ');
      tree.set(line.slice(tab + 1), { mode, sha });
    }
    const paths = new Set<string>();
    const envFiles = new Set(this.meta.envFiles);
    for (const entry of entries) {
      for (const p of [entry.path, entry.from]) {
        if (p !== undefined && !envFiles.has(p)) paths.add(p.endsWith('/') ? p.slice(0, -1) : p);
      }
    }
    const regular: string[] = [];
    for (const p of paths) {
      const stat = fs.lstatSync(path.join(this.path, p), { throwIfNoEntry: false });
      const inTree = tree.get(p);
      if (stat === undefined) {
        if (inTree !== undefined) return `the snapshot still holds ${p}, which is deleted on disk`;
      } else if (stat.isFile()) {
        if (inTree === undefined) return `the snapshot lacks ${p}`;
        regular.push(p);
      } else if (stat.isSymbolicLink()) {
        if (inTree?.mode !== '120000') return `the snapshot lacks the symbolic link ${p}`;
      } else if (stat.isDirectory()) {
        const held = inTree !== undefined || [...tree.keys()].some((key) => key.startsWith(`${p}/`));
        if (!held) return `the snapshot lacks the directory ${p}`;
      }
    }
    const hashable = regular.filter((p) => !p.includes('\n'));
    if (hashable.length > 0) {
      const hashArgs = ['hash-object', '--stdin-paths'];
      const hashed = await this.manager.git(hashArgs, this.path, { input: `${hashable.join('\n')}\n` });
      if (hashed.code !== 0) return describeGitFailure(hashArgs, hashed);
      const shas = hashed.stdout.trim().split('\n');
      for (const [i, p] of hashable.entries()) {
        if (shas[i] !== tree.get(p)?.sha) return `the snapshot's ${p} differs from the file on disk`;
      }
    }
    return undefined;
  }

  private async removeSafely(): Promise<ReleaseResult> {
    const repo = this.repo;
    const branchRef = `refs/heads/${this.branch}`;
    const keep = (why: string, extra: Partial<ReleaseResult> = {}): ReleaseResult => ({
      removed: false,
      kept: `worktree ${this.path} kept: ${why}`,
      ...extra,
    });
    const gitDirExists = fs.existsSync(this.path);

    // 1. Save what is not on a ref yet.
    let snapshot: string | undefined;
    if (gitDirExists) {
      const statusArgs = ['status', '--porcelain=v1', '-z', '--untracked-files=all'];
      const status = await this.manager.git(statusArgs, this.path);
      if (status.code !== 0) return keep(describeGitFailure(statusArgs, status));
      const all = parseStatus(status.stdout);
      const envFiles = new Set(this.meta.envFiles);
      const dirty = all.filter((entry) => !envFiles.has(entry.path));
      const symbolic = await this.manager.git(['symbolic-ref', '--quiet', 'HEAD'], this.path);
      const onBranch = symbolic.code === 0 && symbolic.stdout.trim() === branchRef;
      if (all.length > 0 || !onBranch) {
        try {
          snapshot = await this.snapshotLocked();
        } catch (error) {
          return keep((error as Error).message);
        }
        const problem = await this.verifySnapshot(snapshot, dirty);
        if (problem !== undefined)
          return keep(`snapshot ${snapshot} could not be verified: ${problem}`, { snapshot });
      }
    }
    const withSnapshot = snapshot !== undefined ? { snapshot } : {};

    // 2. Decide the branch's fate before removing anything.
    const branchHead = await this.manager.git(
      ['rev-parse', '--verify', '--quiet', `${branchRef}^{commit}`],
      repo,
    );
    let branchSha: string | undefined;
    let branchKept: string | undefined;
    if (branchHead.code === 0) {
      branchSha = branchHead.stdout.trim();
      const countArgs = ['rev-list', '--count', `${this.base}..${branchSha}`];
      const count = await this.manager.git(countArgs, repo);
      if (count.code !== 0) return keep(describeGitFailure(countArgs, count), withSnapshot);
      const ahead = Number(count.stdout.trim());
      const containsArgs = [
        'for-each-ref',
        '--format=%(refname)',
        '--contains',
        branchSha,
        'refs/heads/',
        'refs/tags/',
        'refs/remotes/',
      ];
      const contains = await this.manager.git(containsArgs, repo);
      if (contains.code !== 0) return keep(describeGitFailure(containsArgs, contains), withSnapshot);
      // Other smith branches do not count: they may be removed by the same rules later.
      const elsewhere = contains.stdout
        .split('\n')
        .map((line) => line.trim())
        .filter((ref) => ref !== '' && !ref.startsWith('refs/heads/smith/'));
      if (elsewhere.length === 0) {
        branchKept =
          ahead > 0
            ? `branch ${this.branch} kept: ${ahead} commit(s) since base ${this.base.slice(0, 12)} are on no other branch`
            : `branch ${this.branch} kept: its head ${branchSha.slice(0, 12)} is on no other branch or tag`;
      }
    } else if (branchHead.code !== 1) {
      return keep(describeGitFailure(['rev-parse', branchRef], branchHead), withSnapshot);
    }

    // 3. Remove the directory: --force only after a verified snapshot.
    if (gitDirExists) {
      const removeArgs = ['worktree', 'remove', ...(snapshot !== undefined ? ['--force'] : []), this.path];
      const removed = await this.manager.git(removeArgs, repo);
      if (removed.code !== 0 || fs.existsSync(this.path)) {
        const why =
          removed.code !== 0 ? describeGitFailure(removeArgs, removed) : 'the directory is still there';
        return keep(why, withSnapshot);
      }
    } else {
      const prune = await this.manager.git(['worktree', 'prune'], repo);
      if (prune.code !== 0)
        return keep(`its directory is gone but ${describeGitFailure(['worktree', 'prune'], prune)}`);
    }
    fs.rmSync(this.manager.metaFile(this.name), { force: true });

    // 4. Delete the branch only when its commits are on another ref.
    if (branchSha === undefined) return { removed: true, branch: 'absent', ...withSnapshot };
    if (branchKept !== undefined) return { removed: true, kept: branchKept, branch: 'kept', ...withSnapshot };
    const deleteArgs = ['update-ref', '-d', branchRef, branchSha];
    const deleted = await this.manager.git(deleteArgs, repo);
    if (deleted.code !== 0) {
      return {
        removed: true,
        kept: `branch ${this.branch} kept: ${describeGitFailure(deleteArgs, deleted)}`,
        branch: 'kept',
        ...withSnapshot,
      };
    }
    await this.manager.git(['update-ref', '-d', `refs/smith/bases/${this.name}`], repo);
    return { removed: true, branch: 'deleted', ...withSnapshot };
  }
}
