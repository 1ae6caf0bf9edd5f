/**
 * Waivers as records of a home: grant one for a task, list them with their effective status,
 * revoke one. Each grant and revocation is committed with its audit record (`waiver.created`,
 * `waiver.revoked`) in one transaction. The CLI (`smith waiver …`) and the API
 * (`/api/v1/waivers`) share these, so both check and record a waiver the same way. The waiver
 * model and its pure checks are in council/waivers.ts.
 */
import { SmithError } from '../core/errors.js';
import type { SmithConfig } from '../core/schema/index.js';
import type { Json } from '../core/types.js';
import {
  BUILTIN_JUDGES,
  FINE_GATES,
  checkWaiver,
  nextWaiverId,
  revokeWaiver,
  waiverStatus,
  type Waiver,
  type WaiverStatus,
} from '../council/index.js';
import type { Store } from '../store/store.js';
import { waiversFrom } from './governance.js';

/** A waiver as recorded: the waiver and the id of the task it is for. */
export type WaiverRecord = Waiver & { task: string };

/** A waiver as listed: its record and its status now (`expired` once past its expiry). */
export type ListedWaiver = WaiverRecord & { effective: WaiverStatus };

/** What a person asks for when granting a waiver. */
export interface WaiverRequest {
  /** The id of the task it is for (the task must exist). */
  taskId: string;
  /** The gates it lifts (blank and repeated names are dropped). */
  gates: string[];
  /** Why it is needed (at least `MIN_REASON_LENGTH` characters once trimmed). */
  reason: string;
  /** Who approved it (at least one). */
  approvers: string[];
  /** How long it lasts from now, ms (greater than 0). */
  expiresInMs: number;
  /** A short title. */
  title?: string;
}

/**
 * The gates a waiver may name in a home: the built-in judges, the finer gates (`budget`, `scope`,
 * `secrets`) and the council judges of its smith.yaml.
 *
 * @param config - the home's config
 * @returns the gate names
 */
export function knownGates(config: SmithConfig): string[] {
  return [...BUILTIN_JUDGES, ...FINE_GATES, ...config.council.judges.map((j) => j.name)];
}

/**
 * Grant a waiver (id `WV-0001`, … the next free one) and audit it.
 *
 * @param store - the home's store
 * @param request - the task, gates, reason, approvers and lifetime
 * @param gates - the gates that exist (see {@link knownGates})
 * @param actor - who records it (`user:alice`, `key:<id>`)
 * @param now - ms since the epoch (default: now)
 * @returns the recorded waiver
 * @throws TaskNotFoundError when the task does not exist
 * @throws SmithError `INVALID_ARGUMENT` listing every problem of the waiver (unknown gate, short
 *   reason, no approver, a lifetime of 0 or less)
 */
export async function grantWaiver(
  store: Store,
  request: WaiverRequest,
  gates: readonly string[],
  actor: string,
  now = Date.now(),
): Promise<WaiverRecord> {
  const task = await store.getTask(request.taskId);
  if (!task)
    throw new SmithError(
      'TASK_NOT_FOUND',
      `task ${request.taskId} not found: list tasks with "smith tasks"`,
      {
        context: { id: request.taskId },
      },
    );
  if (!Number.isFinite(request.expiresInMs) || request.expiresInMs <= 0)
    throw new SmithError('INVALID_ARGUMENT', 'a waiver must last longer than 0 (for example 2d or 12h)');
  const all = await store.listWaivers();
  const waiver: Waiver = {
    id: nextWaiverId(all.map((w) => w.id)),
    gates: [...new Set(request.gates.map((g) => g.trim()).filter((g) => g !== ''))],
    reason: request.reason.trim(),
    approvers: request.approvers.map((a) => a.trim()).filter((a) => a !== ''),
    createdAt: now,
    expiresAt: now + request.expiresInMs,
    status: 'active',
    ...(request.title ? { title: request.title } : {}),
  };
  const problems = checkWaiver(waiver, now, gates);
  if (problems.length > 0) {
    throw new SmithError('INVALID_ARGUMENT', `the waiver is not valid: ${problems.join('; ')}`, {
      context: { problems },
    });
  }
  const record: WaiverRecord = { ...waiver, task: task.id };
  const data = record as unknown as Json;
  await store.commit([
    { op: 'putWaiver', id: waiver.id, taskId: task.id, data, createdAt: now },
    { op: 'audit', actor, action: 'waiver.created', subject: waiver.id, data },
  ]);
  return record;
}

/**
 * The waivers of a home, or of one task, oldest first, each with its status now.
 *
 * @param store - the home's store
 * @param taskId - only this task's (an exact id)
 * @param now - ms since the epoch (default: now)
 * @returns the waivers; rows this smith cannot read are left out
 */
export async function listWaiverRecords(
  store: Store,
  taskId?: string,
  now = Date.now(),
): Promise<ListedWaiver[]> {
  const out: ListedWaiver[] = [];
  for (const row of await store.listWaivers(taskId)) {
    const [w] = waiversFrom([row]);
    if (w) out.push({ ...w, task: row.taskId, effective: waiverStatus(w, now) });
  }
  return out;
}

/**
 * Revoke a waiver and audit it.
 *
 * @param store - the home's store
 * @param id - `WV-0001`, …
 * @param actor - who revokes it
 * @param now - ms since the epoch (default: now)
 * @returns the revoked waiver
 * @throws SmithError `INVALID_ARGUMENT` when no waiver has the id; `INVALID_TRANSITION` when it is
 *   revoked already; `STORE_FAILED` when its record cannot be read
 */
export async function revokeWaiverRecord(
  store: Store,
  id: string,
  actor: string,
  now = Date.now(),
): Promise<WaiverRecord> {
  const row = (await store.listWaivers()).find((w) => w.id === id);
  if (!row) throw new SmithError('INVALID_ARGUMENT', `no waiver ${id}; see smith waiver list`);
  const [w] = waiversFrom([row]);
  if (!w) throw new SmithError('STORE_FAILED', `waiver ${id} is recorded in a form this smith cannot read`);
  if (w.status === 'revoked') throw new SmithError('INVALID_TRANSITION', `waiver ${id} is already revoked`);
  const revoked: WaiverRecord = { ...revokeWaiver(w, actor, now), task: row.taskId };
  await store.commit([
    { op: 'putWaiver', id, taskId: row.taskId, data: revoked as unknown as Json, createdAt: row.createdAt },
    { op: 'audit', actor, action: 'waiver.revoked', subject: id, data: { task: row.taskId } },
  ]);
  return revoked;
}
