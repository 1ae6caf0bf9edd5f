/**
 * Recovery at start: what a `smith` process does when it takes a home's engine lease. Attempts that
 * were running under an earlier owner are marked `lost`, any of their processes still alive are
 * ended (found by the SMITH_HOME and SMITH_OWNER markers in their environment, so grandchildren that
 * left the group are found too, and a person's shell that only exports SMITH_HOME is not), and their
 * tasks go back to `queued`. A lost attempt does not use up the task's
 * retries: the task did not fail, its orchestrator did.
 */
import { findAgentProcesses, killProcessTree, readProcStat } from '../runtime/process/index.js';
import type { Op, Store } from '../store/store.js';

/** What recovery found and did. */
export interface RecoveryReport {
  /** Attempts marked lost. */
  lostAttempts: number;
  /** Tasks put back in the queue. */
  requeued: number;
  /** Processes of earlier owners that were still alive and were ended. */
  killed: number;
}

/** The pids of this process and its ancestors (never to be killed by recovery). */
function selfAndAncestors(): Set<number> {
  const out = new Set<number>([process.pid]);
  let pid = process.ppid;
  for (let i = 0; i < 64 && pid > 1 && !out.has(pid); i++) {
    out.add(pid);
    pid = readProcStat(pid)?.ppid ?? 0;
  }
  return out;
}

/**
 * Recover a home after its previous owner died.
 * @param store - the home's store
 * @param options.owner - the new owner's id (its own processes are spared)
 * @param options.home - absolute path of the home (the SMITH_HOME marker agents carry)
 * @param options.graceMs - SIGTERM to SIGKILL grace for leftover processes; default 2000 ms
 */
export async function recover(
  store: Store,
  options: { owner: string; home: string; graceMs?: number },
): Promise<RecoveryReport> {
  const spare = selfAndAncestors();
  const orphans = findAgentProcesses(options.home, options.owner).filter((p) => !spare.has(p));
  if (orphans.length > 0) await killProcessTree(orphans, options.graceMs ?? 2000);

  const report: RecoveryReport = { lostAttempts: 0, requeued: 0, killed: orphans.length };
  const attempts = (await store.listAttempts(['running'])).filter((a) => a.owner !== options.owner);
  const now = Date.now();
  for (const a of attempts) {
    const ops: Op[] = [
      {
        op: 'updateAttempt',
        id: a.id,
        expect: { state: ['running'] },
        set: { state: 'lost', endedAt: now, error: `lost: smith owner ${a.owner} ended while it ran` },
      },
      {
        op: 'audit',
        actor: 'recovery',
        action: 'attempt.lost',
        subject: a.taskId,
        data: { attempt: a.id, number: a.number, owner: a.owner, pid: a.pid },
      },
    ];
    const r = await store.commit(ops);
    if (!r.applied) continue;
    report.lostAttempts++;
    const t = await store.getTask(a.taskId);
    if (!t || t.epoch !== a.epoch || (t.state !== 'running' && t.state !== 'paused')) continue;
    const to = t.state === 'paused' ? 'paused' : 'queued';
    const moved = await store.commit([
      {
        op: 'updateTask',
        id: t.id,
        expect: { state: [t.state], epoch: a.epoch },
        set: { state: to, maxAttempts: t.maxAttempts + 1, availableAt: now, updatedAt: now },
      },
      {
        op: 'event',
        taskId: t.id,
        attemptId: a.id,
        type: 'state',
        data: { from: t.state, to, reason: 'recovered: attempt lost' },
      },
      {
        op: 'audit',
        actor: 'recovery',
        action: `task.${to}`,
        subject: t.id,
        data: { from: t.state, reason: 'recovered: attempt lost', attempt: a.number },
      },
    ]);
    if (moved.applied) report.requeued++;
  }
  return report;
}
