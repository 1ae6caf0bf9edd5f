/**
 * Worktree leases: one file per worktree under `<root>/.leases/`, holding the task id and the
 * owner process. A worktree is leased to exactly one task at a time; a lease whose owner process is
 * gone is taken over.
 *
 * The file is created atomically (written to a temporary file, then hard-linked into place, which
 * fails when a lease already exists), so a reader never sees half a lease. Taking over renames the
 * stale file away and checks that what it moved is the lease it judged stale; if another process
 * got there first, the fresh lease is put back.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { WorkspaceError } from './errors.js';

/** What a lease file holds. */
export interface WorktreeLease {
  /** The task the worktree is leased to. */
  taskId: string;
  /** The owner process id. */
  pid: number;
  /** The owner's host name (`os.hostname()`); a lease from another host is never judged dead. */
  host: string;
  /**
   * The owner's start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`, see
   * proc(5)), when known: a live pid with another start time is a reused pid, so the owner is gone.
   */
  startTime?: string;
  /** When it was taken, ISO 8601. */
  acquiredAt: string;
  /** Random token naming this one lease; only its holder drops it. */
  nonce: string;
}

/** Fields of `/proc/<pid>/stat` the lease needs, or `undefined` when `/proc` has no such process. */
function procStat(pid: number): { state: string; startTime: string } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = rest[0];
  const startTime = rest[19]; // field 22 overall; fields 3.. start at index 0
  if (state === undefined || startTime === undefined) return undefined;
  return { state, startTime };
}

/**
 * The start time of a process as `/proc/<pid>/stat` reports it (clock ticks since boot).
 *
 * @param pid - the process id
 * @returns the start time, or `undefined` where `/proc` is not available or has no such process
 */
export function processStartTime(pid: number): string | undefined {
  return procStat(pid)?.startTime;
}

/**
 * Whether the process that owns a lease still runs on this host.
 *
 * Dead when `kill(pid, 0)` fails with `ESRCH`, when `/proc` shows it as a zombie, or when its
 * start time differs from the one recorded (the pid was reused). A lease from another host counts
 * as live: there is no way to tell from here.
 *
 * @param lease - the lease's owner fields
 * @returns true when the owner may still run
 */
export function leaseOwnerAlive(lease: Pick<WorktreeLease, 'pid' | 'host' | 'startTime'>): boolean {
  if (lease.host !== os.hostname()) return true;
  if (!Number.isInteger(lease.pid) || lease.pid <= 0) return false;
  try {
    process.kill(lease.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(lease.pid);
  if (stat === undefined) return true; // no /proc: kill(0) is all we know
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return lease.startTime === undefined || lease.startTime === stat.startTime;
}

function readRaw(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Parse a lease file's text.
 *
 * @param text - the file's content
 * @returns the lease, or `undefined` when the text is not a lease (a damaged file, which acquire takes over)
 */
export function parseLease(text: string): WorktreeLease | undefined {
  try {
    const value = JSON.parse(text) as Partial<WorktreeLease>;
    if (
      typeof value.taskId !== 'string' ||
      typeof value.pid !== 'number' ||
      typeof value.host !== 'string' ||
      typeof value.nonce !== 'string'
    ) {
      return undefined;
    }
    return {
      taskId: value.taskId,
      pid: value.pid,
      host: value.host,
      nonce: value.nonce,
      acquiredAt: typeof value.acquiredAt === 'string' ? value.acquiredAt : '',
      ...(typeof value.startTime === 'string' ? { startTime: value.startTime } : {}),
    };
  } catch {
    return undefined;
  }
}

/**
 * Read the lease file of a worktree.
 *
 * @param file - the lease file
 * @returns the lease; `undefined` when there is none or it is damaged
 */
export function readLease(file: string): WorktreeLease | undefined {
  const text = readRaw(file);
  return text === undefined ? undefined : parseLease(text);
}

function tmpName(file: string, suffix: string): string {
  return `${file}.${process.pid}.${randomBytes(6).toString('hex')}.${suffix}`;
}

/** Create `file` with `text` only when it does not exist; true when created. */
function createExclusive(file: string, text: string): boolean {
  const tmp = tmpName(file, 'tmp');
  fs.writeFileSync(tmp, text, { flag: 'wx', mode: 0o644 });
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Take the lease of one worktree for a task.
 *
 * Succeeds when there is no lease, when the lease is damaged, when its owner process is gone
 * (see {@link leaseOwnerAlive}), or when it is already held for the same task (a retry or a revise
 * round re-opens its own worktree; the engine's epochs fence stale attempts of one task).
 *
 * @param file - the lease file (`<root>/.leases/<name>.json`); its folder is created
 * @param want - the task and the owner pid
 * @param where - the worktree path, for the error message
 * @returns the lease now held
 * @throws WorkspaceError `lease-held` when another live task holds it (context: holder's task, pid, host)
 */
export function takeLease(file: string, want: { taskId: string; pid: number }, where: string): WorktreeLease {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  for (let round = 0; round < 20; round++) {
    const startTime = processStartTime(want.pid);
    const lease: WorktreeLease = {
      taskId: want.taskId,
      pid: want.pid,
      host: os.hostname(),
      ...(startTime !== undefined ? { startTime } : {}),
      acquiredAt: new Date().toISOString(),
      nonce: randomBytes(12).toString('hex'),
    };
    if (createExclusive(file, `${JSON.stringify(lease, null, 2)}\n`)) return lease;
    const seen = readRaw(file);
    if (seen === undefined) continue; // dropped meanwhile: try again
    const holder = parseLease(seen);
    if (holder !== undefined && holder.taskId !== want.taskId && leaseOwnerAlive(holder)) {
      throw new WorkspaceError(
        'lease-held',
        `worktree ${where} is leased to task ${holder.taskId} (pid ${holder.pid} on ${holder.host} since ` +
          `${holder.acquiredAt}), so task ${want.taskId} cannot use it: wait for that task to end or cancel it; ` +
          `if that process is gone from another host, delete ${file}`,
        {
          context: {
            file,
            path: where,
            taskId: want.taskId,
            holder: holder.taskId,
            pid: holder.pid,
            host: holder.host,
          },
        },
      );
    }
    // Stale, damaged or our own task's: move it aside, and check we moved what we judged.
    const aside = tmpName(file, 'stale');
    try {
      fs.renameSync(file, aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    const moved = readRaw(aside);
    if (moved !== seen) {
      // Another process replaced it between our read and our rename: put its lease back.
      try {
        fs.linkSync(aside, file);
      } catch {
        // A third lease is already in place; the moved one was superseded anyway.
      }
    }
    fs.rmSync(aside, { force: true });
  }
  throw new WorkspaceError(
    'lease-held',
    `worktree ${where}: could not take its lease for task ${want.taskId} after 20 tries (other processes keep ` +
      `taking it); try again`,
    { context: { file, path: where, taskId: want.taskId } },
  );
}

/**
 * Drop a lease, only when it is still the one with `nonce` (a lease taken over since is left alone).
 *
 * @param file - the lease file
 * @param nonce - the nonce of the lease the caller holds
 * @returns true when the file was removed
 */
export function dropLease(file: string, nonce: string): boolean {
  const lease = readLease(file);
  if (lease === undefined || lease.nonce !== nonce) return false;
  fs.rmSync(file, { force: true });
  return true;
}
