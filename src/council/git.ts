/**
 * The git plumbing the judges need: run git with execFile, the diff of a branch against its base
 * (`--numstat` and the added and removed lines of each file), and `git merge-tree --write-tree` for
 * conflicts (git ≥ 2.38).
 *
 * Output formats: git-diff(1) ("Generating patch text with -p", "--numstat", "-z"), git-merge-tree(1)
 * ("OUTPUT", "--name-only", "-z"; https://git-scm.com/docs/git-merge-tree).
 */
import { execFile } from 'node:child_process';
import { SmithError } from '../core/errors.js';

/** The largest git output read, in bytes (256 MiB). */
const MAX_GIT_OUTPUT = 256 * 1024 * 1024;

/** Config that makes git's output predictable whatever the user's settings. */
const STABLE_CONFIG = ['-c', 'core.quotePath=false', '-c', 'diff.noprefix=false', '-c', 'color.ui=false'];

/** Result of one git command. */
export interface GitResult {
  stdout: string;
  stderr: string;
  /** Exit code (0 on success). */
  code: number;
}

/** Options of {@link git}. */
export interface GitOptions {
  /** Exit codes that are not failures (default `[0]`). */
  okCodes?: readonly number[];
  signal?: AbortSignal;
}

/**
 * Runs git in a repository.
 *
 * @param repo - the work tree (git runs with `-C repo`)
 * @param args - git's arguments (after a few `-c` settings that make output stable)
 * @param opts - accepted exit codes, abort signal
 * @returns stdout, stderr and the exit code
 * @throws SmithError with code `SPAWN_FAILED` when git cannot run, or when it exits with a code not
 *   in `okCodes` (message: the command, the repository and git's stderr)
 */
export function git(repo: string, args: readonly string[], opts: GitOptions = {}): Promise<GitResult> {
  const okCodes = opts.okCodes ?? [0];
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      ['-C', repo, ...STABLE_CONFIG, ...args],
      {
        maxBuffer: MAX_GIT_OUTPUT,
        encoding: 'utf8',
        signal: opts.signal,
        env: { ...process.env, LC_ALL: 'C', GIT_TERMINAL_PROMPT: '0', GIT_OPTIONAL_LOCKS: '0' },
      },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
        const code = e === null ? 0 : typeof e.code === 'number' ? e.code : -1;
        if (e !== null && (typeof e.code !== 'number' || !okCodes.includes(code))) {
          const what = `git ${args.join(' ')}`;
          const detail = (stderr || e.message).trim().split('\n').slice(-3).join(' ');
          reject(
            new SmithError(
              'SPAWN_FAILED',
              `${what} failed in ${repo}: ${detail}; check that ${repo} is a git repository and the refs exist`,
              {
                cause: err,
                context: { repo, args: [...args], code, stderr },
              },
            ),
          );
          return;
        }
        resolve({ stdout, stderr, code });
      },
    );
  });
}

/**
 * Resolves a ref to a commit id.
 *
 * @param repo - the work tree
 * @param ref - a branch, tag or commit
 * @returns the full commit id
 * @throws SmithError (`SPAWN_FAILED`) naming the ref when it is not a commit
 */
export async function resolveCommit(repo: string, ref: string, signal?: AbortSignal): Promise<string> {
  try {
    const r = await git(repo, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], {
      ...(signal === undefined ? {} : { signal }),
    });
    return r.stdout.trim();
  } catch (err) {
    throw new SmithError(
      'SPAWN_FAILED',
      `"${ref}" is not a commit or branch in ${repo}; check the branch name`,
      {
        cause: err,
        context: { repo, ref },
      },
    );
  }
}

/** How a file changed. */
export type ChangeStatus = 'added' | 'modified' | 'deleted' | 'renamed' | 'copied' | 'typechange';

/** A line of a diff: its 1-based number (in the new file for added lines, the old file for removed ones) and text. */
export interface DiffLine {
  line: number;
  text: string;
}

/** One changed file. Paths are relative to the repository root, `/`-separated. */
export interface ChangedFile {
  /** The path after the change (the old path for a deleted file). */
  path: string;
  /** The path before, for renames and copies. */
  oldPath?: string;
  status: ChangeStatus;
  /** Lines added, as `--numstat` counts them (0 for binary files). */
  added: number;
  /** Lines deleted. */
  deleted: number;
  binary: boolean;
  /** The added lines, with their line numbers in the new file. */
  addedLines: DiffLine[];
  /** The removed lines, with their line numbers in the old file. */
  removedLines: DiffLine[];
}

/** A branch's change against its base. */
export interface BranchDiff {
  /** The commit the diff starts from (`git merge-base base head`). */
  mergeBase: string;
  /** The head commit. */
  head: string;
  files: ChangedFile[];
  /** Σ added over files. */
  added: number;
  /** Σ deleted over files. */
  deleted: number;
}

const STATUS: Readonly<Record<string, ChangeStatus>> = {
  A: 'added',
  M: 'modified',
  D: 'deleted',
  R: 'renamed',
  C: 'copied',
  T: 'typechange',
};

/**
 * The change a branch makes: `git diff <base>...<head>` (from their merge base), with renames
 * detected (`-M`), per file status, `--numstat` counts and the added and removed lines (`-U0`).
 *
 * @param repo - the work tree
 * @param base - the base branch or commit
 * @param head - the task's branch or commit
 * @param signal - aborts git
 * @returns the files in git's order, with totals
 * @throws SmithError (`SPAWN_FAILED`) when a ref does not exist or git fails
 */
export async function branchDiff(
  repo: string,
  base: string,
  head: string,
  signal?: AbortSignal,
): Promise<BranchDiff> {
  const so = signal === undefined ? {} : { signal };
  const baseId = await resolveCommit(repo, base, signal);
  const headId = await resolveCommit(repo, head, signal);
  const mb = await git(repo, ['merge-base', baseId, headId], { ...so, okCodes: [0, 1] });
  const mergeBase = mb.stdout.trim();
  if (mergeBase === '') {
    throw new SmithError('SPAWN_FAILED', `${base} and ${head} have no common history in ${repo}`, {
      context: { repo, base, head },
    });
  }
  const common = ['--no-ext-diff', '--no-textconv', '--no-relative', '-M', mergeBase, headId, '--'];
  const [nameStatus, numstat, patch] = await Promise.all([
    git(repo, ['diff', '--name-status', '-z', ...common], so),
    git(repo, ['diff', '--numstat', '-z', ...common], so),
    git(repo, ['diff', '-U0', '--src-prefix=a/', '--dst-prefix=b/', ...common], so),
  ]);

  const files: ChangedFile[] = [];
  const byPath = new Map<string, ChangedFile>();
  const ns = nameStatus.stdout.split('\0');
  for (let i = 0; i < ns.length;) {
    const code = ns[i++] ?? '';
    if (code === '') continue;
    const letter = code[0] ?? 'M';
    const status = STATUS[letter] ?? 'modified';
    let file: ChangedFile;
    if (letter === 'R' || letter === 'C') {
      const oldPath = ns[i++] ?? '';
      const path = ns[i++] ?? '';
      file = { path, oldPath, status, added: 0, deleted: 0, binary: false, addedLines: [], removedLines: [] };
    } else {
      const path = ns[i++] ?? '';
      file = { path, status, added: 0, deleted: 0, binary: false, addedLines: [], removedLines: [] };
    }
    files.push(file);
    byPath.set(file.path, file);
  }

  // numstat -z: "added\tdeleted\tpath\0", or for renames "added\tdeleted\t\0old\0new\0".
  const nm = numstat.stdout.split('\0');
  for (let i = 0; i < nm.length;) {
    const head3 = nm[i++] ?? '';
    if (head3 === '') continue;
    const [a = '0', d = '0', rest = ''] = head3.split('\t');
    let path = rest;
    if (rest === '') {
      i++; // old path
      path = nm[i++] ?? '';
    }
    const f = byPath.get(path);
    if (f === undefined) continue;
    f.binary = a === '-' && d === '-';
    f.added = f.binary ? 0 : Number(a);
    f.deleted = f.binary ? 0 : Number(d);
  }

  for (const fp of parsePatch(patch.stdout)) {
    const f = byPath.get(fp.path);
    if (f === undefined) continue;
    f.addedLines = fp.added;
    f.removedLines = fp.removed;
  }

  return {
    mergeBase,
    head: headId,
    files,
    added: files.reduce((s, f) => s + f.added, 0),
    deleted: files.reduce((s, f) => s + f.deleted, 0),
  };
}

/** One file's lines from a patch. */
interface PatchFile {
  path: string;
  added: DiffLine[];
  removed: DiffLine[];
}

/**
 * Parses `git diff -U0 --src-prefix=a/ --dst-prefix=b/` output into added and removed lines per
 * file. Hunk bodies are read by their counts, so a removed line starting with `--` is not taken for
 * a header.
 *
 * @param patch - the patch text
 * @returns per file (keyed by the new path, or the old path of a deleted file)
 */
export function parsePatch(patch: string): PatchFile[] {
  const out: PatchFile[] = [];
  const lines = patch.split('\n');
  let cur: PatchFile | undefined;
  let oldPath: string | undefined;
  let oldLeft = 0;
  let newLeft = 0;
  let oldNo = 0;
  let newNo = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (oldLeft > 0 || newLeft > 0) {
      if (line.startsWith('-') && oldLeft > 0) {
        cur?.removed.push({ line: oldNo++, text: line.slice(1) });
        oldLeft--;
        continue;
      }
      if (line.startsWith('+') && newLeft > 0) {
        cur?.added.push({ line: newNo++, text: line.slice(1) });
        newLeft--;
        continue;
      }
      if (line.startsWith('\\')) continue; // "\ No newline at end of file"
      // Unexpected: leave the hunk.
      oldLeft = 0;
      newLeft = 0;
    }
    if (line.startsWith('\\')) continue;
    if (line.startsWith('diff --git ')) {
      cur = undefined;
      oldPath = undefined;
      continue;
    }
    if (line.startsWith('--- ')) {
      const p = headerPath(line.slice(4), 'a/');
      oldPath = p;
      continue;
    }
    if (line.startsWith('+++ ')) {
      const p = headerPath(line.slice(4), 'b/') ?? oldPath;
      if (p !== undefined) {
        cur = { path: p, added: [], removed: [] };
        out.push(cur);
      }
      continue;
    }
    const m = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(line);
    if (m !== null) {
      oldNo = Number(m[1]);
      oldLeft = m[2] === undefined ? 1 : Number(m[2]);
      newNo = Number(m[3]);
      newLeft = m[4] === undefined ? 1 : Number(m[4]);
    }
  }
  return out;
}

/** The path of a `---`/`+++` header: `/dev/null` is none; C-quoted names are unquoted; the prefix goes. */
function headerPath(raw: string, prefix: string): string | undefined {
  let s = raw;
  if (s.endsWith('\t')) s = s.slice(0, -1); // git ends names that contain a space with a TAB
  if (s === '/dev/null') return undefined;
  if (s.startsWith('"')) s = unquoteC(s);
  return s.startsWith(prefix) ? s.slice(prefix.length) : s;
}

/** Undoes git's C-style quoting of a path (`"a/caf\303\251 \"x\""`). */
export function unquoteC(quoted: string): string {
  const body = quoted.replace(/^"|"$/g, '');
  const bytes: number[] = [];
  const simple: Record<string, number> = { n: 10, t: 9, r: 13, b: 8, f: 12, v: 11, a: 7, '\\': 92, '"': 34 };
  for (let i = 0; i < body.length; i++) {
    const c = body[i] ?? '';
    if (c !== '\\') {
      for (const b of Buffer.from(c, 'utf8')) bytes.push(b);
      continue;
    }
    const n = body[i + 1] ?? '';
    if (/[0-7]/.test(n)) {
      bytes.push(parseInt(body.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      bytes.push(simple[n] ?? n.charCodeAt(0));
      i += 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The result of a trial merge. */
export interface MergeCheck {
  /** The side merged onto (a branch or commit). */
  onto: string;
  /** The side merged. */
  head: string;
  clean: boolean;
  /** The resulting tree (with conflict markers in conflicted files). */
  tree: string;
  /** Paths with conflicts. */
  conflicts: string[];
  /** git's informational messages (`CONFLICT (content): Merge conflict in f.txt`). */
  messages: string[];
}

/**
 * Merges two commits without touching the work tree or the index: `git merge-tree --write-tree
 * --name-only -z <onto> <head>` (git ≥ 2.38). Exit 0 is clean, 1 has conflicts.
 *
 * @param repo - the work tree
 * @param onto - the branch or commit merged onto
 * @param head - the branch or commit merged
 * @param signal - aborts git
 * @returns whether it merges cleanly and the conflicting paths
 * @throws SmithError (`SPAWN_FAILED`) when a ref does not exist, or git is older than 2.38
 */
export async function mergeTree(
  repo: string,
  onto: string,
  head: string,
  signal?: AbortSignal,
): Promise<MergeCheck> {
  const so = signal === undefined ? {} : { signal };
  const ontoId = await resolveCommit(repo, onto, signal);
  const headId = await resolveCommit(repo, head, signal);
  const r = await git(repo, ['merge-tree', '--write-tree', '--name-only', '-z', ontoId, headId], {
    ...so,
    okCodes: [0, 1],
  });
  const parts = r.stdout.split('\0');
  const tree = parts[0] ?? '';
  if (!/^[0-9a-f]{40,64}$/.test(tree)) {
    throw new SmithError(
      'SPAWN_FAILED',
      `git merge-tree ${onto} ${head} failed in ${repo}: ${r.stderr.trim() || 'no tree in its output'}; it needs git 2.38 or later`,
      { context: { repo, onto, head, stderr: r.stderr } },
    );
  }
  const conflicts: string[] = [];
  let i = 1;
  if (r.code === 1) {
    for (; i < parts.length; i++) {
      const p = parts[i] ?? '';
      if (p === '') {
        i++;
        break;
      }
      conflicts.push(p);
    }
  }
  // Informational messages: <count>\0<path>…\0<type>\0<message>\0, repeated.
  const messages: string[] = [];
  while (i < parts.length) {
    const n = Number(parts[i]);
    if (!Number.isInteger(n) || n < 1) break;
    i += 1 + n + 1;
    const msg = parts[i++];
    if (msg !== undefined) messages.push(msg.trim());
  }
  return { onto, head, clean: r.code === 0, tree, conflicts: [...new Set(conflicts)], messages };
}
