/**
 * Process groups and the Linux `/proc` file system: signal a whole group, find the processes of
 * an attempt by their environment marker, and end process trees (crash recovery).
 *
 * On platforms without `/proc`, {@link findProcessesByEnv} returns nothing and the others fall
 * back to `kill(2)` probes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const HAS_PROC = process.platform === 'linux';
const POLL_MS = 50;
/** How long {@link killProcessTree} waits for SIGKILLed processes to vanish. */
const AFTER_KILL_WAIT_MS = 1000;

/** Fields of `/proc/<pid>/stat` that this module reads (see proc(5)). */
export interface ProcStat {
  /** Field 3: `R` running, `S` sleeping, `T` stopped, `Z` zombie, … */
  state: string;
  /** Field 4: parent pid. */
  ppid: number;
  /** Field 5: process group id. */
  pgid: number;
}

/**
 * Read `/proc/<pid>/stat` (Linux).
 *
 * @param pid - process id
 * @returns its state, parent and process group; null when it does not exist, cannot be read, or
 *   the platform has no `/proc`
 */
export function readProcStat(pid: number): ProcStat | null {
  if (!HAS_PROC) return null;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // Field 2 (comm) is in parentheses and may itself hold spaces and parentheses.
  const close = text.lastIndexOf(')');
  if (close === -1) return null;
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const ppid = Number(fields[1]);
  const pgid = Number(fields[2]);
  if (state === undefined || !Number.isInteger(ppid) || !Number.isInteger(pgid)) return null;
  return { state, ppid, pgid };
}

/**
 * Whether a process exists and has not ended. A zombie (ended, not yet reaped) counts as ended.
 *
 * @param pid - process id
 * @returns true when the process exists and is not a zombie
 */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  const stat = readProcStat(pid);
  return !(stat !== null && (stat.state === 'Z' || stat.state === 'X'));
}

/**
 * Send a signal to every process of a process group, ignoring a group that no longer exists.
 *
 * @param pgid - process group id (the leader's pid); values below 2 are refused
 * @param signal - e.g. `SIGTERM`
 * @returns true when the signal was sent, false when the group is gone (ESRCH), not ours (EPERM)
 *   or `pgid` is invalid
 */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  if (!Number.isInteger(pgid) || pgid < 2) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Send a signal to one process, ignoring one that no longer exists.
 *
 * @param pid - process id
 * @param signal - e.g. `SIGKILL`
 * @returns true when the signal was sent
 */
export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  if (!Number.isInteger(pid) || pid < 1) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

function procPids(): number[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const name of names) {
    const code = name.charCodeAt(0);
    if (code < 0x30 || code > 0x39) continue;
    const pid = Number(name);
    if (Number.isInteger(pid) && pid > 0) pids.push(pid);
  }
  return pids;
}

/**
 * Processes whose environment holds exactly `name=value` (Linux: `/proc/<pid>/environ`), such as
 * the processes of one attempt (`SMITH_ATTEMPT_ID=<id>`). Entries that cannot be read (other users'
 * processes, processes that just ended) are skipped, and so is the calling process.
 *
 * The environment read is the one the process started with: a process that changed its own
 * environment after `exec` is still found by its starting one.
 *
 * @param name - variable name, e.g. `SMITH_ATTEMPT_ID`
 * @param value - its exact value
 * @returns pids in ascending order; empty on platforms without `/proc`
 */
export function findProcessesByEnv(name: string, value: string): number[] {
  if (!HAS_PROC || name === '' || name.includes('=') || name.includes('\0')) return [];
  const needle = Buffer.from(`${name}=${value}\0`);
  return processesWhoseEnviron((environ) => hasEntry(environ, needle));
}

/**
 * Pids (ascending, the caller's own excluded) whose `/proc/<pid>/environ` satisfies `match`; one pass
 * over `/proc`, skipping entries that cannot be read.
 */
function processesWhoseEnviron(match: (environ: Buffer) => boolean): number[] {
  const found: number[] = [];
  for (const pid of procPids()) {
    if (pid === process.pid) continue;
    let environ: Buffer;
    try {
      environ = readFileSync(`/proc/${pid}/environ`);
    } catch {
      continue;
    }
    if (match(environ)) found.push(pid);
  }
  return found.sort((a, b) => a - b);
}

function hasEntry(environ: Buffer, needle: Buffer): boolean {
  // The last entry may lack its NUL terminator: compare it with the needle minus its NUL.
  let at = environ.indexOf(needle);
  while (at !== -1) {
    if (at === 0 || environ[at - 1] === 0) return true;
    at = environ.indexOf(needle, at + 1);
  }
  const bare = needle.subarray(0, needle.length - 1);
  const tail = environ.length - bare.length;
  return tail >= 0 && (tail === 0 || environ[tail - 1] === 0) && environ.subarray(tail).equals(bare);
}

/**
 * Whether a process group still has a member that has not ended (zombies, which an init that does
 * not reap may keep forever, do not count).
 *
 * @param pgid - process group id
 * @returns false once every member has exited
 */
export function groupAlive(pgid: number): boolean {
  if (!Number.isInteger(pgid) || pgid < 2) return false;
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (!HAS_PROC) return true;
  for (const pid of procPids()) {
    const stat = readProcStat(pid);
    if (stat !== null && stat.pgid === pgid && stat.state !== 'Z' && stat.state !== 'X') return true;
  }
  return false;
}

/**
 * Wait until processes and process groups have ended (see {@link isAlive}, {@link groupAlive}).
 *
 * @param pids - processes to wait for
 * @param groups - process groups to wait for
 * @param timeoutMs - longest wait, in ms
 * @param pollMs - ms between checks; default 50
 * @returns true when all ended, false when some were still there after `timeoutMs`
 */
export async function waitUntilGone(
  pids: readonly number[],
  groups: readonly number[],
  timeoutMs: number,
  pollMs = POLL_MS,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let leftPids = pids.filter(isAlive);
  let leftGroups = groups.filter(groupAlive);
  while (leftPids.length + leftGroups.length > 0) {
    if (Date.now() >= deadline) return false;
    await sleep(Math.min(pollMs, Math.max(1, deadline - Date.now())));
    leftPids = leftPids.filter(isAlive);
    leftGroups = leftGroups.filter(groupAlive);
  }
  return true;
}

interface Target {
  pid: number;
  /** The process group to signal, or null to signal only `pid`. */
  group: number | null;
}

function targetAlive(t: Target): boolean {
  return isAlive(t.pid) || (t.group !== null && groupAlive(t.group));
}

function signalTarget(t: Target, signal: NodeJS.Signals): void {
  if (t.group !== null) signalGroup(t.group, signal);
  signalProcess(t.pid, signal);
}

async function waitGone(targets: Target[], ms: number): Promise<Target[]> {
  const deadline = Date.now() + ms;
  let left = targets.filter(targetAlive);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
    left = left.filter(targetAlive);
  }
  return left;
}

/**
 * End processes and their process groups, gracefully then forcefully: SIGTERM to each one's
 * process group (its pgid from `/proc/<pid>/stat` field 5, else the pid itself) followed by
 * SIGCONT (a stopped process acts on SIGTERM only once continued), then up to `graceMs` for them
 * all to end, then SIGKILL to whatever is left (and up to 1 s more for it to vanish).
 *
 * The caller's own process group is never signalled, only the pid in it. Pids that are already
 * gone are skipped. Never rejects.
 *
 * @param pids - processes to end (e.g. from {@link findProcessesByEnv})
 * @param graceMs - ms between SIGTERM and SIGKILL
 * @returns resolves once they are gone, or after the SIGKILL and its short wait
 */
export async function killProcessTree(pids: number[], graceMs: number): Promise<void> {
  const ownGroup = readProcStat(process.pid)?.pgid ?? null;
  const targets: Target[] = [];
  for (const pid of new Set(pids)) {
    if (pid === process.pid || !isAlive(pid)) continue;
    const pgid = HAS_PROC ? (readProcStat(pid)?.pgid ?? pid) : pid;
    const group = pgid > 1 && pgid !== ownGroup ? pgid : null;
    targets.push({ pid, group });
  }
  if (targets.length === 0) return;
  for (const t of targets) {
    signalTarget(t, 'SIGTERM');
    signalTarget(t, 'SIGCONT');
  }
  const left = await waitGone(targets, Math.max(0, graceMs));
  if (left.length === 0) return;
  for (const t of left) signalTarget(t, 'SIGKILL');
  await waitGone(left, AFTER_KILL_WAIT_MS);
}

/** Whether any process (zombies included) is in process group `pgid`: one kill(2) probe. */
export function groupExists(pgid: number): boolean {
  if (!Number.isInteger(pgid) || pgid < 2) return false;
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** How long after an attempt ends the reaper looks for its escaped processes, in ms. */
export const REAP_INTERVAL_MS = 200;
const reapQueue = new Map<string, { name: string; value: string; passes: number }>();
let reapTimer: NodeJS.Timeout | null = null;

/**
 * Ask for processes carrying `name=value` in their environment (an attempt's processes that left
 * its process group, e.g. with setsid) to be SIGKILLed in the background. Markers that arrive
 * together share one pass over `/proc` every {@link REAP_INTERVAL_MS}; each marker gets two passes.
 * One scan of `/proc` costs a few ms, so this keeps it off the path of every attempt.
 *
 * @param name - variable name, e.g. `SMITH_ATTEMPT_ID`
 * @param value - its exact value
 */
export function reapEscapees(name: string, value: string): void {
  if (!HAS_PROC || value === '') return;
  reapQueue.set(`${name}=${value}`, { name, value, passes: 2 });
  if (reapTimer === null) {
    reapTimer = setTimeout(reapPass, REAP_INTERVAL_MS);
    reapTimer.unref();
  }
}

function reapPass(): void {
  reapTimer = null;
  const needles = [...reapQueue.keys()].map((key) => Buffer.from(`${key}\0`));
  for (const pid of processesWhoseEnviron((environ) => needles.some((n) => hasEntry(environ, n)))) {
    signalProcess(pid, 'SIGKILL');
  }
  for (const [key, entry] of reapQueue) {
    entry.passes--;
    if (entry.passes <= 0) reapQueue.delete(key);
  }
  if (reapQueue.size > 0) {
    reapTimer = setTimeout(reapPass, REAP_INTERVAL_MS);
    reapTimer.unref();
  }
}

/**
 * Agent processes that an engine of `home` started: their environment holds `SMITH_HOME=<home>`
 * and a `SMITH_OWNER` (which only the engine sets, on the processes it starts). A person's shell
 * that merely exports SMITH_HOME carries no SMITH_OWNER and is never matched.
 *
 * @param home - the home's absolute path, as the engine passes it
 * @param exceptOwner - an owner id whose processes are spared (the caller's own)
 * @returns pids in ascending order; empty on platforms without `/proc`
 */
export function findAgentProcesses(home: string, exceptOwner: string): number[] {
  if (!HAS_PROC) return [];
  const homeNeedle = Buffer.from(`SMITH_HOME=${home}\0`);
  return processesWhoseEnviron((environ) => {
    if (!hasEntry(environ, homeNeedle)) return false;
    const owner = envValue(environ, 'SMITH_OWNER');
    return owner !== undefined && owner !== '' && owner !== exceptOwner;
  });
}

/** The value of `name` in a NUL-separated environment block, or undefined. */
function envValue(environ: Buffer, name: string): string | undefined {
  const prefix = `${name}=`;
  for (const entry of environ.toString('utf8').split('\0')) {
    if (entry.startsWith(prefix)) return entry.slice(prefix.length);
  }
  return undefined;
}
