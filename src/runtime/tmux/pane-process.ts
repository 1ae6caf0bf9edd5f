/**
 * The processes of a tmux pane, read from Linux `/proc/<pid>/stat` (proc(5)): the pane's program
 * (`#{pane_pid}`) leads its own session and process group, and the terminal's foreground process
 * group (`tpgid`) says whether a command is running in it. On platforms without `/proc` these
 * return nothing and the runtime relies on `C-c` and `respawn-pane -k` alone.
 */
import { readdirSync, readFileSync } from 'node:fs';

import { signalGroup, signalProcess } from '../process/process-group.js';

/** Fields of `/proc/<pid>/stat` read here (proc(5), fields 3 to 8). */
export interface PaneProcStat {
  pid: number;
  /** `R`, `S`, `T` (stopped), `Z` (zombie), … */
  state: string;
  ppid: number;
  pgid: number;
  /** Session id: the pane's program's pid for every process started in the pane. */
  sid: number;
  /** The foreground process group of the process's controlling terminal (-1 when it has none). */
  tpgid: number;
}

/**
 * Read `/proc/<pid>/stat`.
 *
 * @param pid - process id
 * @returns its fields, or null when it does not exist or cannot be read
 */
export function readPaneStat(pid: number): PaneProcStat | null {
  if (!Number.isInteger(pid) || pid < 1) return null;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // Field 2 (comm) is in parentheses and may itself hold spaces and parentheses.
  const close = text.lastIndexOf(')');
  if (close === -1) return null;
  const f = text.slice(close + 2).split(' ');
  const [state, ppid, pgid, sid, , tpgid] = [
    f[0],
    Number(f[1]),
    Number(f[2]),
    Number(f[3]),
    f[4],
    Number(f[5]),
  ];
  if (state === undefined || ![ppid, pgid, sid, tpgid].every(Number.isInteger)) return null;
  return { pid, state, ppid, pgid, sid, tpgid };
}

function alive(stat: PaneProcStat | null): stat is PaneProcStat {
  return stat !== null && stat.state !== 'Z' && stat.state !== 'X';
}

/**
 * Whether the pane's program is alive and its terminal's foreground group is its own, that is, no
 * command it started is running in the foreground (a shell at its prompt).
 *
 * @param panePid - `#{pane_pid}`
 * @returns true when idle or when the program is gone (nothing left to wait for)
 */
export function paneForegroundIsIdle(panePid: number): boolean {
  const stat = readPaneStat(panePid);
  if (!alive(stat)) return true;
  return stat.tpgid === stat.pgid || stat.tpgid <= 0;
}

/**
 * The foreground process group of the pane's terminal when it is not the pane program's own.
 *
 * @param panePid - `#{pane_pid}`
 * @returns the group id, or null when the program is in the foreground or gone
 */
export function paneForegroundGroup(panePid: number): number | null {
  const stat = readPaneStat(panePid);
  if (!alive(stat) || stat.tpgid <= 0 || stat.tpgid === stat.pgid) return null;
  return stat.tpgid;
}

/**
 * The live processes of the pane's session (those whose session id is `panePid`), the pane's
 * program excluded.
 *
 * @param panePid - `#{pane_pid}`
 * @returns their pids, ascending
 */
export function paneSessionMembers(panePid: number): number[] {
  if (process.platform !== 'linux' || !Number.isInteger(panePid) || panePid < 2) return [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const name of names) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0 || pid === panePid || pid === process.pid) continue;
    const stat = readPaneStat(pid);
    if (alive(stat) && stat.sid === panePid) found.push(pid);
  }
  return found.sort((a, b) => a - b);
}

/**
 * Send a signal to processes, each with its process group when it leads one.
 *
 * @param pids - the processes
 * @param signal - e.g. `SIGKILL`
 */
export function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    const stat = readPaneStat(pid);
    if (stat !== null && stat.pgid === pid) signalGroup(pid, signal);
    signalProcess(pid, signal);
  }
}
