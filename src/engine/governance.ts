/**
 * Governance in the engine: a task's worktree, the council's judgement of its change, and the one
 * place where an approved change is applied (merged into its base with provenance trailers and a
 * git note carrying the signed verdict). The engine decides when; this module does the git and the
 * judging. See docs/governance.md.
 */
import { SmithError } from '../core/errors.js';
import type {
  AgentSpec,
  ExecutionMode,
  Json,
  Task,
  TaskGovernance,
  TaskSpec,
  WorkflowSpec,
} from '../core/types.js';
import {
  defaultJudges,
  defaultPolicy,
  loadRepoWorkingSpec,
  parseWorkingSpec,
  runCouncil,
  waiverStatus,
  type CouncilRun,
  type Judge,
  type Policy,
  type Waiver,
  type WorkingSpec,
} from '../council/index.js';
import { addNote } from '../provenance/index.js';
import { DEFAULT_IDENTITY, runGit, WorktreeManager, type Worktree } from '../runtime/workspace/index.js';

/** What the engine needs to judge and apply. */
export interface GovernorOptions {
  /** Where worktrees live (`<home>/worktrees`). */
  worktreesDir: string;
  /** The policy in force (default {@link defaultPolicy}). */
  policy?: Policy;
  /** The council (default the four built-in judges). */
  judges?: Judge[];
  /** Environment of verify and acceptance commands (default the process's, plus `CI=true`). */
  judgeEnv?: NodeJS.ProcessEnv;
}

/**
 * The governance of a task as submitted: present when it runs in a worktree or carries a working
 * spec (those tasks are judged), else null.
 *
 * @param t - the task as written
 * @param spec - its workflow
 * @returns the initial governance, or null
 */
export function governanceOf(t: TaskSpec, spec: WorkflowSpec): TaskGovernance | null {
  if (t.workspace !== 'worktree' && t.spec === undefined) return null;
  const mode: ExecutionMode = t.mode ?? spec.mode ?? 'auto';
  return {
    mode,
    workspace: t.workspace === 'worktree' ? 'worktree' : 'none',
    repo: t.repo ?? null,
    spec: t.spec ?? null,
    rounds: 0,
    applied: null,
  };
}

/** The spec a task without one is judged by: its key and prompt, tier 2, the whole repository in scope. */
function defaultSpec(t: Task): WorkingSpec {
  return parseWorkingSpec(
    {
      id: t.key.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'task',
      title: (t.prompt.split('\n')[0] ?? t.key).slice(0, 120) || t.key,
      risk_tier: 2,
    },
    `the default working spec of task ${t.key}`,
  );
}

/** A git command that must succeed; its failure becomes a SmithError naming what and where. */
async function git(cwd: string, args: string[], what: string, env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await runGit(args, { cwd, ...(env ? { env } : {}) });
  if (r.code !== 0) {
    const detail = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ');
    throw new SmithError('SPAWN_FAILED', `${what} failed in ${cwd}: git ${args.join(' ')}: ${detail}`, {
      context: { cwd, args },
    });
  }
  return r.stdout.trim();
}

/** The judged change's provenance trailers. */
export interface ApplyTrailers {
  task: string;
  agent: string;
  /** `approve 0.92/0.60 tier 2`. */
  verdict: string;
  /** Hash of the verdict's audit record. */
  audit: string;
  /** The verdict's compact JWS, for the git note (when signed). */
  jws?: string;
}

/** Runs the git and council steps of governed tasks. */
export class Governor {
  readonly worktrees: WorktreeManager;
  readonly policy: Policy;
  private readonly judges: Judge[];
  private readonly open = new Map<string, Worktree>();

  constructor(options: GovernorOptions) {
    this.worktrees = new WorktreeManager({ root: options.worktreesDir });
    this.policy = options.policy ?? defaultPolicy();
    this.judges = options.judges ?? defaultJudges(options.judgeEnv);
  }

  /**
   * Lease (create or re-open) the task's worktree on `smith/<task id>`, from the base recorded
   * earlier or the repository's current branch.
   *
   * @param t - the task (its `governance.workspace` is `worktree`)
   * @param fallbackRepo - the repository when the task names none (its working directory)
   * @returns the worktree, and the governance fields to record (base, branch, path)
   * @throws SmithError when the directory is not in a git repository, or git fails
   */
  async prepare(
    t: Task,
    fallbackRepo: string,
    agent?: Pick<AgentSpec, 'envFiles' | 'setup'>,
  ): Promise<{ worktree: Worktree; set: Partial<TaskGovernance> }> {
    const g = t.governance!;
    const repoDir = g.repo ?? fallbackRepo;
    const top = await runGit(['rev-parse', '--show-toplevel'], { cwd: repoDir });
    if (top.code !== 0) {
      throw new SmithError(
        'CONFIG_INVALID',
        `task ${t.key} has "workspace: worktree" but ${repoDir} is not in a git repository; set "repo:" to one, or run "git init" there`,
        { context: { task: t.id, repo: repoDir } },
      );
    }
    const repo = top.stdout.trim();
    let base = g.base;
    if (base === undefined) {
      const head = await runGit(['symbolic-ref', '--quiet', '--short', 'HEAD'], { cwd: repo });
      base = head.code === 0 ? head.stdout.trim() : await git(repo, ['rev-parse', 'HEAD'], 'reading HEAD');
    }
    const wt = await this.worktrees.acquire({
      repo,
      taskId: t.id,
      ...(g.baseSha !== undefined ? { base: g.baseSha } : { base }),
      ...(agent?.envFiles ? { envFiles: agent.envFiles } : {}),
      ...(agent?.setup ? { setup: agent.setup } : {}),
    });
    this.open.set(t.id, wt);
    return { worktree: wt, set: { repo, base, baseSha: wt.base, branch: wt.branch, worktree: wt.path } };
  }

  /**
   * Commit what the agent left uncommitted in its worktree, so the council judges exactly what is
   * on the branch.
   *
   * @returns the new head, or null when there was nothing to commit
   */
  async commitWork(t: Task, attempt: number, agent: string): Promise<string | null> {
    const wt = await this.worktreeOf(t);
    return wt.commitAll(`smith: ${t.key}, attempt ${attempt}`, {
      trailers: { 'Smith-Task': t.id, 'Smith-Agent': agent, 'Smith-Attempt': String(attempt) },
    });
  }

  private async worktreeOf(t: Task): Promise<Worktree> {
    const open = this.open.get(t.id);
    if (open) return open;
    const { worktree } = await this.prepare(t, t.workdir);
    return worktree;
  }

  /**
   * Judge the task's change with the council.
   *
   * @param t - the task (its output is the agent's final answer)
   * @param waivers - the task's waivers (expired and revoked ones lift nothing; they are reported)
   * @param approvedBranches - branches of other tasks of its workflow already approved
   * @returns the verdicts and the council's result
   */
  async judge(
    t: Task,
    waivers: Waiver[],
    approvedBranches: string[],
    signal?: AbortSignal,
  ): Promise<CouncilRun> {
    const g = t.governance!;
    const repo = g.worktree ?? g.repo ?? t.workdir;
    let spec: WorkingSpec;
    // validated when the workflow was loaded: stored in its parsed form
    if (g.spec !== null) spec = g.spec as unknown as WorkingSpec;
    else spec = (g.repo ? await loadRepoWorkingSpec(g.repo) : undefined) ?? defaultSpec(t);
    return runCouncil(
      this.judges,
      {
        repo,
        base: g.baseSha ?? 'HEAD',
        head: g.branch ?? 'HEAD',
        spec,
        policy: this.policy,
        output: t.output ?? '',
        approvedBranches,
        waivers,
        now: Date.now(),
        ...(signal ? { signal } : {}),
      },
      { round: g.rounds },
    );
  }

  /**
   * Apply an approved change: merge the task's branch into its base branch (a merge commit whose
   * message carries the `Smith-Task`, `Smith-Agent`, `Smith-Verdict` and `Smith-Audit` trailers),
   * add the signed verdict as a git note (`refs/notes/smith`), and remove the worktree (its work is
   * now reachable from the base). This is the only place changes are applied; dry-run tasks never
   * get here.
   *
   * When the base branch is checked out (in the repository or another worktree), the merge runs
   * there and refuses a dirty tree; otherwise the merge commit is made without a checkout and the
   * branch moved only if it did not move meanwhile.
   *
   * @returns the merge commit
   * @throws SmithError naming the conflict or the dirty checkout and what to do
   */
  async apply(t: Task, trailers: ApplyTrailers): Promise<string> {
    const g = t.governance!;
    if (g.mode === 'dry-run') {
      throw new SmithError('INVALID_TRANSITION', `task ${t.id} is dry-run: its change is never applied`);
    }
    const repo = g.repo;
    const base = g.base;
    const branch = g.branch;
    if (!repo || !base || !branch) {
      throw new SmithError('INVALID_TRANSITION', `task ${t.id} has no worktree branch to apply`);
    }
    const title = `smith: apply ${t.key} (${t.id})`;
    const body = (t.output ?? '').split('\n').slice(0, 20).join('\n').trim();
    const message = [
      title,
      '',
      ...(body ? [body, ''] : []),
      `Smith-Task: ${trailers.task}`,
      `Smith-Agent: ${trailers.agent}`,
      `Smith-Verdict: ${trailers.verdict}`,
      `Smith-Audit: ${trailers.audit}`,
      '',
    ].join('\n');
    const env = await this.identityEnv(repo);
    const checkedOut = await this.checkoutOf(repo, base);
    let sha: string;
    if (checkedOut !== undefined) {
      const dirty = await git(
        checkedOut,
        ['status', '--porcelain', '--untracked-files=no'],
        'checking the base',
      );
      if (dirty !== '') {
        throw new SmithError(
          'INVALID_TRANSITION',
          `cannot apply task ${t.id}: the base branch ${base} is checked out at ${checkedOut} with uncommitted changes; commit or stash them, then run smith approve ${t.id}`,
          { context: { task: t.id, checkout: checkedOut } },
        );
      }
      const r = await runGit(['merge', '--no-ff', '--no-edit', '-m', message, branch], {
        cwd: checkedOut,
        env,
      });
      if (r.code !== 0) {
        await runGit(['merge', '--abort'], { cwd: checkedOut });
        throw new SmithError(
          'INVALID_TRANSITION',
          `cannot apply task ${t.id}: merging ${branch} into ${base} conflicts (${(r.stdout + r.stderr).trim().split('\n').slice(-2).join(' ')}); the branch is kept: resolve it by hand or retry the task`,
          { context: { task: t.id, branch, base } },
        );
      }
      sha = await git(checkedOut, ['rev-parse', 'HEAD'], 'reading the merge');
    } else {
      const old = await git(repo, ['rev-parse', `refs/heads/${base}`], 'reading the base');
      const m = await runGit(['merge-tree', '--write-tree', old, branch], { cwd: repo });
      const tree = m.stdout.split('\n')[0]?.trim() ?? '';
      if (m.code !== 0 || !/^[0-9a-f]{40,64}$/.test(tree)) {
        throw new SmithError(
          'INVALID_TRANSITION',
          `cannot apply task ${t.id}: ${branch} does not merge cleanly onto ${base}; the branch is kept: resolve it by hand or retry the task`,
          { context: { task: t.id, branch, base } },
        );
      }
      const head = await git(repo, ['rev-parse', branch], 'reading the branch');
      sha = await git(
        repo,
        ['commit-tree', tree, '-p', old, '-p', head, '-m', message],
        'writing the merge',
        env,
      );
      await git(repo, ['update-ref', '-m', title, `refs/heads/${base}`, sha, old], 'moving the base');
    }
    if (trailers.jws) await addNote(repo, sha, trailers.jws);
    // the work is on the base now: the worktree can go (its cleanup keeps anything unsaved)
    const wt = this.open.get(t.id);
    this.open.delete(t.id);
    if (wt) await wt.release({ remove: true });
    return sha;
  }

  /**
   * Cancel with rollback: snapshot the worktree's work (`refs/smith/snapshots/<task id>`), reset it
   * to its base, and release it. Nothing is lost: the snapshot holds it.
   *
   * @returns the snapshot commit, or undefined when the task has no open worktree
   */
  async rollback(t: Task): Promise<string | undefined> {
    const wt = this.open.get(t.id);
    if (!wt) return undefined;
    this.open.delete(t.id);
    const r = await wt.rollback();
    await wt.release({ remove: false });
    return r.snapshot;
  }

  /** Release the task's worktree without removing it (the task ended unapplied: its work stays). */
  async keep(t: Task): Promise<void> {
    const wt = this.open.get(t.id);
    this.open.delete(t.id);
    if (wt) await wt.release({ remove: false });
  }

  /** The worktree path where `branch` is checked out, if any. */
  private async checkoutOf(repo: string, branch: string): Promise<string | undefined> {
    const list = await git(repo, ['worktree', 'list', '--porcelain'], 'listing worktrees');
    let path: string | undefined;
    for (const line of list.split('\n')) {
      if (line.startsWith('worktree ')) path = line.slice('worktree '.length);
      else if (line === `branch refs/heads/${branch}` && path !== undefined) return path;
    }
    return undefined;
  }

  /** Git's identity, or the fallback one when git has none (a fresh machine). */
  private async identityEnv(repo: string): Promise<NodeJS.ProcessEnv | undefined> {
    const r = await runGit(['var', 'GIT_COMMITTER_IDENT'], { cwd: repo });
    if (r.code === 0) return undefined;
    return {
      ...process.env,
      GIT_AUTHOR_NAME: DEFAULT_IDENTITY.name,
      GIT_AUTHOR_EMAIL: DEFAULT_IDENTITY.email,
      GIT_COMMITTER_NAME: DEFAULT_IDENTITY.name,
      GIT_COMMITTER_EMAIL: DEFAULT_IDENTITY.email,
    };
  }
}

/**
 * The waivers of a task in force now, parsed from the store's JSON (malformed ones are skipped).
 *
 * @param rows - the task's waiver rows
 * @returns waivers (all statuses: aggregation reports expired and revoked ones as unusable)
 */
export function waiversFrom(rows: { data: Json }[]): Waiver[] {
  const out: Waiver[] = [];
  for (const r of rows) {
    const w = r.data as unknown as Waiver;
    if (w && typeof w.id === 'string' && Array.isArray(w.gates)) out.push(w);
  }
  return out;
}

/** Whether a waiver lifts anything now. */
export function waiverActive(w: Waiver, now = Date.now()): boolean {
  return waiverStatus(w, now) === 'active';
}
