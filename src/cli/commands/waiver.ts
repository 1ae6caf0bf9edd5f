/**
 * `smith waiver add|list|revoke`: waivers lift named council gates of one task while active. Each
 * creation and revocation is an audit record; each use is audited by the engine (`waiver.used`).
 */
import { SmithError } from '../../core/errors.js';
import { checkDuration } from '../../core/schema/duration.js';
import type { Json } from '../../core/types.js';
import {
  BUILTIN_JUDGES,
  FINE_GATES,
  checkWaiver,
  nextWaiverId,
  revokeWaiver,
  waiverStatus,
  type Waiver,
} from '../../council/index.js';
import { waiversFrom } from '../../engine/governance.js';
import { openHomeStore } from '../../engine/home.js';
import { EXIT, type Context } from '../context.js';
import { paint, table, useColor } from '../output.js';
import { findOneTask } from './inspect.js';

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

/** `smith waiver add --task ID --gates quality,budget --reason … --approver … --expires 2d`. */
export async function waiverAddCommand(ctx: Context, o: WaiverAddOptions): Promise<number> {
  const d = checkDuration(o.expires);
  if (!d.ok || d.value <= 0) {
    throw new SmithError(
      'INVALID_ARGUMENT',
      `--expires ${o.expires}: ${d.ok ? 'expected a duration greater than 0' : d.expected} (for example 2d or 12h)`,
    );
  }
  const store = await openHomeStore(ctx.home, { synchronous: ctx.config.store.synchronous });
  try {
    const task = await findOneTask(store, o.task);
    const all = await store.listWaivers();
    const now = Date.now();
    const gates = [
      ...new Set(
        o.gates
          .split(',')
          .map((g) => g.trim())
          .filter((g) => g !== ''),
      ),
    ];
    const known = [...BUILTIN_JUDGES, ...FINE_GATES, ...ctx.config.council.judges.map((j) => j.name)];
    const waiver: Waiver = {
      id: nextWaiverId(all.map((w) => w.id)),
      gates,
      reason: o.reason.trim(),
      approvers: o.approver.map((a) => a.trim()).filter((a) => a !== ''),
      createdAt: now,
      expiresAt: now + d.value,
      status: 'active',
      ...(o.title ? { title: o.title } : {}),
    };
    const problems = checkWaiver(waiver, now, known);
    if (problems.length > 0) {
      throw new SmithError('INVALID_ARGUMENT', `the waiver is not valid: ${problems.join('; ')}`, {
        context: { problems },
      });
    }
    const data = { ...waiver, task: task.id } as unknown as Json;
    await store.commit([
      { op: 'putWaiver', id: waiver.id, taskId: task.id, data, createdAt: now },
      { op: 'audit', actor: actor(), action: 'waiver.created', subject: waiver.id, data },
    ]);
    if (ctx.json) process.stdout.write(JSON.stringify(data) + '\n');
    else {
      process.stdout.write(
        `waiver ${waiver.id} for task ${task.id} (${task.key}): lifts ${gates.join(', ')} until ${new Date(waiver.expiresAt).toISOString()}\n`,
      );
    }
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

/** `smith waiver list [--task ID]`. */
export async function waiverListCommand(ctx: Context, o: { task?: string }): Promise<number> {
  const store = await openHomeStore(ctx.home, { readonly: true });
  try {
    const taskId = o.task ? (await findOneTask(store, o.task)).id : undefined;
    const rows = await store.listWaivers(taskId);
    const now = Date.now();
    const waivers = waiversFrom(rows).map((w, i) => ({
      ...w,
      task: rows[i]!.taskId,
      effective: waiverStatus(w, now),
    }));
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
  } finally {
    await store.close();
  }
}

/** `smith waiver revoke WV-0001`. */
export async function waiverRevokeCommand(ctx: Context, id: string): Promise<number> {
  const store = await openHomeStore(ctx.home, { synchronous: ctx.config.store.synchronous });
  try {
    const row = (await store.listWaivers()).find((w) => w.id === id);
    if (!row) throw new SmithError('INVALID_ARGUMENT', `no waiver ${id}; see smith waiver list`);
    const [w] = waiversFrom([row]);
    if (!w) throw new SmithError('STORE_FAILED', `waiver ${id} is recorded in a form this smith cannot read`);
    if (w.status === 'revoked') throw new SmithError('INVALID_TRANSITION', `waiver ${id} is already revoked`);
    const revoked = { ...revokeWaiver(w, actor(), Date.now()), task: row.taskId } as unknown as Json;
    await store.commit([
      { op: 'putWaiver', id, taskId: row.taskId, data: revoked, createdAt: row.createdAt },
      { op: 'audit', actor: actor(), action: 'waiver.revoked', subject: id, data: { task: row.taskId } },
    ]);
    process.stdout.write(ctx.json ? JSON.stringify(revoked) + '\n' : `waiver ${id} revoked\n`);
    return EXIT.ok;
  } finally {
    await store.close();
  }
}
