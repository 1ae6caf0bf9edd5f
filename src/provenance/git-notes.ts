/**
 * Verdict signatures on applied commits, as git notes (https://git-scm.com/docs/git-notes): the
 * compact JWS of the verdict that approved a change is attached to the commit under
 * `refs/notes/smith`, so the repository alone shows who approved what, verifiable with the public key.
 *
 * Notes are not pushed by default: `git push origin refs/notes/smith` shares them, and
 * `git fetch origin refs/notes/smith:refs/notes/smith` brings them back.
 */
import { execFile } from 'node:child_process';
import type { Json } from '../core/types.js';
import { ProvenanceError } from './errors.js';
import type { PublicKey } from './keys.js';
import { verifyJws } from './sign.js';

/** The notes ref smith writes to. */
export const NOTES_REF = 'refs/notes/smith';

/** Who writes the notes commit when git has no identity configured (as the worktree manager does). */
const FALLBACK_IDENTITY = { name: 'MisterSmith', email: 'smith@localhost' };

interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

function git(repo: string, args: string[], env?: Record<string, string>): Promise<GitResult> {
  return new Promise((resolve) => {
    execFile(
      'git',
      ['-C', repo, ...args],
      { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr: stderr || (err && typeof err.code !== 'number' ? err.message : '') });
      },
    );
  });
}

function gitFailed(what: string, repo: string, r: GitResult): ProvenanceError {
  return new ProvenanceError('git-failed', `${what} in ${repo} failed (exit ${r.code}): ${r.stderr.trim()}`, {
    context: { repo, stderr: r.stderr },
  });
}

/** Identity env for a repository without `user.name` / `user.email`; a configured identity wins. */
async function identityEnv(repo: string): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  const { name, email } = FALLBACK_IDENTITY;
  if ((await git(repo, ['var', 'GIT_AUTHOR_IDENT'])).code !== 0)
    Object.assign(env, { GIT_AUTHOR_NAME: name, GIT_AUTHOR_EMAIL: email });
  if ((await git(repo, ['var', 'GIT_COMMITTER_IDENT'])).code !== 0)
    Object.assign(env, { GIT_COMMITTER_NAME: name, GIT_COMMITTER_EMAIL: email });
  return env;
}

/**
 * The full sha of a commit.
 * @throws ProvenanceError `git-failed` when `commit` names no commit in `repo`
 */
async function resolveCommit(repo: string, commit: string): Promise<string> {
  const r = await git(repo, ['rev-parse', '--verify', '--quiet', `${commit}^{commit}`]);
  if (r.code !== 0)
    throw new ProvenanceError(
      'git-failed',
      `${commit} is not a commit in ${repo}: give a commit sha or ref`,
      {
        context: { repo, commit },
      },
    );
  return r.stdout.trim();
}

/**
 * Attach `text` to `commit` as a note, replacing a note already there
 * (`git notes --ref <ref> add -f -m <text> <commit>`). When the repository has no git identity,
 * the notes commit is written as `MisterSmith <smith@localhost>`.
 * @param repo - the repository (any directory inside it)
 * @param commit - a commit sha or ref
 * @param text - the note, usually a verdict's compact JWS
 * @param ref - the notes ref (default {@link NOTES_REF})
 * @throws ProvenanceError `git-failed` when `commit` is not a commit or git fails
 */
export async function addNote(
  repo: string,
  commit: string,
  text: string,
  ref: string = NOTES_REF,
): Promise<void> {
  const sha = await resolveCommit(repo, commit);
  const r = await git(repo, ['notes', '--ref', ref, 'add', '-f', '-m', text, sha], await identityEnv(repo));
  if (r.code !== 0) throw gitFailed(`adding a note to ${sha} under ${ref}`, repo, r);
}

/**
 * The note on `commit` (`git notes --ref <ref> show <commit>`), without its trailing newline.
 * @param repo - the repository
 * @param commit - a commit sha or ref
 * @param ref - the notes ref (default {@link NOTES_REF})
 * @returns the note, or undefined when the commit has none
 * @throws ProvenanceError `git-failed` when `commit` is not a commit or git fails
 */
export async function readNote(
  repo: string,
  commit: string,
  ref: string = NOTES_REF,
): Promise<string | undefined> {
  const sha = await resolveCommit(repo, commit);
  const r = await git(repo, ['notes', '--ref', ref, 'show', sha]);
  if (r.code === 1 && /no note found/i.test(r.stderr)) return undefined;
  if (r.code !== 0) throw gitFailed(`reading the note of ${sha} under ${ref}`, repo, r);
  return r.stdout.replace(/\n+$/, '');
}

/** The outcome of {@link verifyNote}. */
export type NoteVerification =
  { ok: true; commit: string; kid: string; payload: Json } | { ok: false; commit: string; reason: string };

/**
 * Verify the JWS in a commit's note: it must verify with the public key (alg EdDSA, kid of the
 * key), and when its payload is an object with a `commit` member, that member must be this commit.
 * @param repo - the repository
 * @param commit - a commit sha or ref
 * @param publicKey - the key(s) that may have signed
 * @param ref - the notes ref (default {@link NOTES_REF})
 * @returns ok with the signed payload and kid, or not ok with the reason (no note, bad signature …)
 * @throws ProvenanceError `git-failed` when `commit` is not a commit or git fails
 */
export async function verifyNote(
  repo: string,
  commit: string,
  publicKey: PublicKey | readonly PublicKey[],
  ref: string = NOTES_REF,
): Promise<NoteVerification> {
  const sha = await resolveCommit(repo, commit);
  const note = await readNote(repo, sha, ref);
  if (note === undefined) return { ok: false, commit: sha, reason: `commit ${sha} has no note under ${ref}` };
  try {
    const v = await verifyJws(note.trim(), publicKey);
    const p = v.payload;
    if (
      typeof p === 'object' &&
      p !== null &&
      !Array.isArray(p) &&
      typeof p.commit === 'string' &&
      p.commit !== sha
    )
      return {
        ok: false,
        commit: sha,
        reason: `the note on ${sha} signs commit ${p.commit}: it was copied from another commit`,
      };
    return { ok: true, commit: sha, kid: v.kid, payload: p };
  } catch (err) {
    if (!(err instanceof ProvenanceError)) throw err;
    return { ok: false, commit: sha, reason: `the note on ${sha}: ${err.message}` };
  }
}
