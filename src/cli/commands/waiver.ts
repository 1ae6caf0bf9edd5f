/**
 * `smith waiver add|list|revoke`: waivers lift named council gates of one task while active. Each
 * creation and revocation is an audit record; each use is audited by the engine (`waiver.used`).
 * With SMITH_URL set, the server records them (`/api/v1/waivers`) and the output is the same.
 */
import { SmithError } from '../../core/errors.js';
import { checkDuration } from '../../core/schema/duration.js';
import type { Waiver, WaiverStatus } from '../../council/index.js';
import { findOneTask } from '../../engine/find-task.js';
import { openHomeStore } from '../../engine/home.js';
import {
  grantWaiver,
  knownGates,
  listWaiverRecords,
  revokeWaiverRecord,
  type ListedWaiver,
  type WaiverRecord,
} from '../../engine/waiver-records.js';
import { EXIT, type Context } from '../context.js';
import { paint, table, useColor } from '../output.js';
import { remoteClient, resolveTask } from '../remote.js';

function actor(): string {
  return `user:${process.env.USER ?? process.env.LOGNAME ?? 'unknown'}`;
}

/** Options of `smith waiver add`. */
export interface WaiverAddOptions {
  task: string;
  gates: string;
  reason: string;
  approver: string[];
  expires: string;
  title?: string;
}

/** A waiver as the API answers it (snake_case, ISO 8601 times). */
interface WaiverJson {
  id: string;
  task: string;
  title: string | null;
  gates: string[];
  reason: string;
  approvers: string[];
  status: WaiverStatus;
  effective: WaiverStatus;
  created_at: string | null;
  expires_at: string;
  revoked_at: string | null;
  revoked_by: string | null;
}

/** The waiver an API answer describes, in the form it is recorded (and printed embedded). */
function fromJson(w: WaiverJson): WaiverRecord {
  const waiver: Waiver = {
    id: w.id,
    gates: w.gates,
    reason: w.reason,
    approvers: w.approvers,
    ...(w.created_at !== null ? { createdAt: Date.parse(w.created_at) } : {}),
    expiresAt: Date.parse(w.expires_at),
    status: w.status,
    ...(w.title !== null ? { title: w.title } : {}),
    ...(w.revoked_at !== null ? { revokedAt: Date.parse(w.revoked_at) } : {}),
    ...(w.revoked_by !== null ? { revokedBy: w.revoked_by } : {}),
  };
  return { ...waiver, task: w.task };
}

/** `smith waiver add --task ID --gates quality,budget --reason … --approver … --expires 2d`. */
export async function waiverAddCommand(ctx: Context, o: WaiverAddOptions): Promise<number> {
  const d = checkDuration(o.expires);
  if (!d.ok || d.value <= 0) {
    throw new SmithError(
      'INVALID_ARGUMENT',
      `--expires ${o.expires}: ${d.ok ? 'expected a duration greater than 0' : d.expected} (for example 2d or 12h)`,
    );
  }
  const gates = o.gates
    .split(',')
    .map((g) => g.trim())
    .filter((g) => g !== '');
  let task: { id: string; key: string };
  let waiver: WaiverRecord;
  const api = remoteClient();
  if (api) {
    task = await resolveTask(api, o.task);
    const made = await api.post<WaiverJson>('/api/v1/waivers', {
      task: task.id,
      gates,
      reason: o.reason,
      approvers: o.approver,
      expires_in: o.expires,
      ...(o.title ? { title: o.title } : {}),
    });
    waiver = fromJson(made);
  } else {
    const store = await openHomeStore(ctx.home, { synchronous: ctx.config.store.synchronous });
    try {
      task = await findOneTask(store, o.task);
      waiver = await grantWaiver(
        store,
        {
          taskId: task.id,
          gates,
          reason: o.reason,
          approvers: o.approver,
          expiresInMs: d.value,
          ...(o.title ? { title: o.title } : {}),
        },
        knownGates(ctx.config),
        actor(),
      );
    } finally {
      await store.close();
    }
  }
  if (ctx.json) process.stdout.write(JSON.stringify(waiver) + '\n');
  else {
    process.stdout.write(
      `waiver ${waiver.id} for task ${task.id} (${task.key}): lifts ${waiver.gates.join(', ')} until ${new Date(waiver.expiresAt).toISOString()}\n`,
    );
  }
  return EXIT.ok;
}

/** `smith waiver list [--task ID]`. */
export async function waiverListCommand(ctx: Context, o: { task?: string }): Promise<number> {
  let waivers: ListedWaiver[];
  const api = remoteClient();
  if (api) {
    const taskId = o.task ? (await resolveTask(api, o.task)).id : undefined;
    const answer = await api.get<{ waivers: WaiverJson[] }>('/api/v1/waivers', { task: taskId });
    waivers = answer.waivers.map((w) => ({ ...fromJson(w), effective: w.effective }));
  } else {
    const store = await openHomeStore(ctx.home, { readonly: true });
    try {
      const taskId = o.task ? (await findOneTask(store, o.task)).id : undefined;
      waivers = await listWaiverRecords(store, taskId);
    } finally {
      await store.close();
    }
  }
  if (ctx.json) {
    process.stdout.write(JSON.stringify(waivers) + '\n');
    return EXIT.ok;
  }
  if (waivers.length === 0) {
    process.stdout.write('no waivers\n');
    return EXIT.ok;
  }
  const color = useColor(process.stdout);
  const out = [['ID', 'TASK', 'GATES', 'STATUS', 'EXPIRES', 'APPROVERS', 'REASON']];
  for (const w of waivers) {
    out.push([
      w.id,
      w.task,
      w.gates.join(','),
      paint(color, w.effective === 'active' ? 'green' : 'gray', w.effective),
      new Date(w.expiresAt).toISOString(),
      w.approvers.join(','),
      w.reason.slice(0, 50),
    ]);
  }
  process.stdout.write(table(out) + '\n');
  return EXIT.ok;
}

/** `smith waiver revoke WV-0001`. */
export async function waiverRevokeCommand(ctx: Context, id: string): Promise<number> {
  let revoked: WaiverRecord;
  const api = remoteClient();
  if (api) {
    revoked = fromJson(await api.post<WaiverJson>(`/api/v1/waivers/${encodeURIComponent(id)}/revoke`));
  } else {
    const store = await openHomeStore(ctx.home, { synchronous: ctx.config.store.synchronous });
    try {
      revoked = await revokeWaiverRecord(store, id, actor());
    } finally {
      await store.close();
    }
  }
  process.stdout.write(ctx.json ? JSON.stringify(revoked) + '\n' : `waiver ${id} revoked\n`);
  return EXIT.ok;
}
