/**
 * Read-only commands: `smith tasks`, `smith task ID`, `smith agents`, `smith audit verify`.
 * They open the store read-only and never recover anything.
 */
import { SmithError, TaskNotFoundError } from '../../core/errors.js';
import { TASK_STATES, type TaskState } from '../../core/states.js';
import type { Task } from '../../core/types.js';
import { taskDetailView, taskView } from '../../core/views.js';
import { copyFileSync, createReadStream, createWriteStream, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { keysDir, openHomeStore, ownerIsAlive } from '../../engine/home.js';
import {
  exportAudit,
  loadPublicKey,
  PUBLIC_KEY_FILE,
  verifyAuditChain,
  verifyExport,
  type ChainVerification,
} from '../../provenance/index.js';
import type { Store } from '../../store/store.js';
import { EXIT, type Context } from '../context.js';
import {
  firstLine,
  formatDuration,
  formatSpend,
  paint,
  stateColor,
  table,
  taskDuration,
  useColor,
} from '../output.js';

async function withStore<T>(ctx: Context, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openHomeStore(ctx.home, { readonly: true });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Find exactly one task by id, id prefix or key. @throws TaskNotFoundError, INVALID_ARGUMENT when ambiguous */
export async function findOneTask(store: Store, idOrKey: string): Promise<Task> {
  const found = await store.findTasks(idOrKey);
  if (found.length === 0) throw new TaskNotFoundError(idOrKey);
  // a key names the newest task with that key (the latest run), as a person usually means
  if (found.length > 1 && found.every((t) => t.key === idOrKey)) return found[0]!;
  if (found.length > 1 && !found.some((t) => t.id === idOrKey)) {
    const sample = found
      .slice(0, 5)
      .map((t) => `${t.id} (${t.key}, ${t.state})`)
      .join(', ');
    throw new SmithError(
      'INVALID_ARGUMENT',
      `"${idOrKey}" matches ${found.length} tasks (${sample}${found.length > 5 ? ', …' : ''}); give the full task id`,
    );
  }
  return found.find((t) => t.id === idOrKey) ?? found[0]!;
}

/** One line for a usage event: `claude-sonnet-4-5 1200 in, 300 out, 5000 cache read, $0.0123`. */
function usageText(d: Record<string, unknown>): string {
  const t = (d.tokens ?? {}) as Record<string, number>;
  const parts = [`${t.input ?? 0} in`, `${t.output ?? 0} out`];
  if (t.cacheRead) parts.push(`${t.cacheRead} cache read`);
  if (t.cacheWrite) parts.push(`${t.cacheWrite} cache write`);
  if (typeof d.costUsd === 'number') parts.push(`$${d.costUsd.toFixed(4)}`);
  return `${typeof d.model === 'string' ? `${d.model} ` : ''}${parts.join(', ')}`;
}

/** `smith tasks`. */
export async function tasksCommand(
  ctx: Context,
  o: { state?: string; agent?: string; workflow?: string; limit?: string },
): Promise<number> {
  const states = o.state ? o.state.split(',').map((s) => s.trim()) : undefined;
  for (const s of states ?? []) {
    if (!TASK_STATES.includes(s as TaskState)) {
      throw new SmithError(
        'INVALID_ARGUMENT',
        `--state ${s} is not a task state; use one of: ${TASK_STATES.join(', ')}`,
      );
    }
  }
  return withStore(ctx, async (store) => {
    let workflowId: string | undefined;
    if (o.workflow) {
      const wfs = await store.findWorkflows(o.workflow);
      if (wfs.length === 0) throw new SmithError('WORKFLOW_NOT_FOUND', `no workflow matches "${o.workflow}"`);
      workflowId = wfs[0]!.id;
    }
    const limit = o.limit ? Number(o.limit) : undefined;
    const tasks = await store.listTasks({
      state: states as TaskState[] | undefined,
      agent: o.agent,
      workflowId,
      limit,
      newestFirst: limit !== undefined,
    });
    if (ctx.json) {
      process.stdout.write(JSON.stringify(tasks.map(taskView)) + '\n');
      return EXIT.ok;
    }
    const color = useColor(process.stdout);
    const spent = tasks.some((t) => t.costUsd > 0 || t.tokens > 0);
    const rows = [
      ['ID', 'KEY', 'STATE', 'AGENT', 'ATTEMPTS', 'TIME', ...(spent ? ['SPEND'] : []), 'OUTPUT / REASON'],
    ];
    for (const t of tasks) {
      rows.push([
        t.id,
        t.key,
        paint(color, stateColor(t.state), t.state),
        t.assignedAgent ?? t.agent ?? '-',
        String(t.attempts),
        formatDuration(taskDuration(t)),
        ...(spent ? [formatSpend(t.costUsd, t.tokens)] : []),
        firstLine(t.state === 'completed' ? t.output : (t.reason ?? t.output), 50),
      ]);
    }
    process.stdout.write(tasks.length === 0 ? 'no tasks\n' : table(rows) + '\n');
    return EXIT.ok;
  });
}

/** `smith audit export [--out FILE] [--key-out FILE]`: every record as JSONL, and the public key. */
export async function auditExportCommand(
  ctx: Context,
  o: { out?: string; keyOut?: string },
): Promise<number> {
  return withStore(ctx, async (store) => {
    const file = o.out === undefined || o.out === '-' ? undefined : resolve(ctx.cwd, o.out);
    const out = file ? createWriteStream(file) : process.stdout;
    const summary = await exportAudit(store, out);
    if (file) {
      await new Promise<void>((res, rej) => {
        out.once('error', rej);
        (out as ReturnType<typeof createWriteStream>).end(() => res());
      });
    }
    const publicFile = join(keysDir(ctx.home), PUBLIC_KEY_FILE);
    let keyOut: string | null = null;
    if (existsSync(publicFile)) {
      keyOut = o.keyOut === undefined ? publicFile : resolve(ctx.cwd, o.keyOut);
      if (keyOut !== publicFile) copyFileSync(publicFile, keyOut);
    }
    const note = `exported ${summary.records} audit record(s), head ${summary.head.seq}${file ? ` to ${file}` : ''}; public key: ${keyOut ?? 'none (smith init makes one)'}\n`;
    // with the records on stdout, the note goes to stderr
    (file ? process.stdout : process.stderr).write(note);
    return EXIT.ok;
  });
}

/** `smith task ID`. */
export async function taskCommand(ctx: Context, id: string): Promise<number> {
  return withStore(ctx, async (store) => {
    const t = await findOneTask(store, id);
    const attempts = await store.getAttempts(t.id);
    const events = await store.getEvents(t.id);
    if (ctx.json) {
      process.stdout.write(JSON.stringify(taskDetailView(t, attempts, events)) + '\n');
      return EXIT.ok;
    }
    const color = useColor(process.stdout);
    const out: string[] = [];
    out.push(`task ${t.id}  ${paint(color, 'bold', t.key)}  ${paint(color, stateColor(t.state), t.state)}`);
    out.push(`  workflow   ${t.workflowId ?? '-'}`);
    out.push(
      `  agent      ${t.assignedAgent ?? t.agent ?? '-'}${t.capabilities.length ? `  (capabilities: ${t.capabilities.join(', ')})` : ''}`,
    );
    out.push(`  priority   ${t.priority}    attempts ${t.attempts}/${t.maxAttempts}    epoch ${t.epoch}`);
    out.push(`  workdir    ${t.workdir}`);
    out.push(`  created    ${new Date(t.createdAt).toISOString()}    ran ${formatDuration(taskDuration(t))}`);
    if (t.reason) out.push(`  reason     ${t.reason}`);
    if (t.costUsd > 0 || t.tokens > 0 || t.budget) {
      const cap = t.budget
        ? `    budget ${[t.budget.usd !== undefined ? `$${t.budget.usd}` : '', t.budget.tokens !== undefined ? `${t.budget.tokens} tokens` : ''].filter(Boolean).join(', ')}`
        : '';
      out.push(`  spend      ${formatSpend(t.costUsd, t.tokens)}${cap}`);
    }
    if (t.sessionId) out.push(`  session    ${t.sessionId}`);
    if (t.governance) {
      const g = t.governance;
      const v = g.verdict
        ? `${g.verdict.decision} ${g.verdict.score.toFixed(2)}/${g.verdict.threshold}`
        : 'not judged yet';
      const applied =
        g.applied === true
          ? `applied ${g.appliedSha?.slice(0, 12) ?? ''}`
          : g.applied === false
            ? 'not applied'
            : '';
      out.push(
        `  council    ${v}${g.rounds ? `, ${g.rounds} revise round(s)` : ''}    mode ${g.mode}    ${applied}`,
      );
      if (g.branch)
        out.push(`  branch     ${g.branch} onto ${g.base ?? '?'}${g.worktree ? `  (${g.worktree})` : ''}`);
    }
    out.push(`  prompt     ${firstLine(t.prompt, 100)}`);
    out.push('');
    out.push('attempts:');
    const attemptSpend = attempts.some((a) => a.costUsd > 0 || a.tokens > 0);
    const rows = [
      ['#', 'STATE', 'AGENT', 'PID', 'EXIT', 'TIME', ...(attemptSpend ? ['SPEND'] : []), 'ERROR'],
    ];
    for (const a of attempts) {
      rows.push([
        String(a.number),
        paint(color, stateColor(a.state === 'succeeded' ? 'completed' : a.state), a.state),
        `${a.agent}/${a.instance}`,
        a.pid === null ? '-' : String(a.pid),
        a.exitCode === null ? (a.signal ?? '-') : String(a.exitCode),
        formatDuration(a.endedAt === null ? Date.now() - a.startedAt : a.endedAt - a.startedAt),
        ...(attemptSpend ? [formatSpend(a.costUsd, a.tokens)] : []),
        firstLine(a.error, 60),
      ]);
    }
    out.push(attempts.length === 0 ? '  none yet' : table(rows).replace(/^/gm, '  '));
    out.push('');
    out.push('events:');
    for (const e of events.slice(-40)) {
      const d = e.data as Record<string, unknown>;
      const text =
        e.type === 'state'
          ? `${String(d.from ?? '-')} -> ${String(d.to)}${d.reason ? ` (${String(d.reason)})` : ''}`
          : e.type === 'progress'
            ? `${d.pct === null ? '' : `${String(d.pct)}% `}${String(d.message ?? '')}`
            : e.type === 'log'
              ? `[${String(d.stream)}] ${String(d.line)}`
              : e.type === 'text'
                ? String(d.text)
                : e.type === 'tool_use'
                  ? `${String(d.name)} ${JSON.stringify(d.input ?? {})}`
                  : e.type === 'tool_result'
                    ? `${d.isError ? 'error: ' : ''}${String(d.output ?? '')}`
                    : e.type === 'file_change'
                      ? `${String(d.kind)} ${String(d.path)}`
                      : e.type === 'verdict'
                        ? `${String(d.decision)} ${Number(d.score).toFixed(2)}/${String(d.threshold)}: ${(d.reasons as string[] | undefined)?.join(' ') ?? ''}`
                        : e.type === 'guidance'
                          ? `(${String(d.from)}) ${String(d.text)}`
                          : e.type === 'usage'
                            ? usageText(d)
                            : JSON.stringify(d);
      out.push(
        `  ${new Date(e.time).toISOString().slice(11, 23)}  ${e.type.padEnd(8)} ${firstLine(text, 100)}`,
      );
    }
    if (events.length > 40) out.push(`  (${events.length - 40} earlier events: smith task ${t.id} --json)`);
    out.push('');
    out.push('output:');
    out.push(t.output ? t.output.replace(/\s+$/, '').split('\n').slice(-30).join('\n') : '  (none)');
    process.stdout.write(out.join('\n') + '\n');
    return EXIT.ok;
  });
}

/** `smith agents`. */
export async function agentsCommand(ctx: Context): Promise<number> {
  return withStore(ctx, async (store) => {
    const agents = await store.listAgents();
    const owner = await ownerIsAlive(store);
    if (ctx.json) {
      process.stdout.write(
        JSON.stringify(
          agents.map((a) => ({
            name: a.name,
            runtime: a.spec.runtime,
            capabilities: a.spec.capabilities,
            concurrency: a.spec.concurrency,
            instances: a.instances.map((i) => ({
              index: i.index,
              state: owner ? i.state : 'terminated',
              restarts: i.restarts,
            })),
          })),
        ) + '\n',
      );
      return EXIT.ok;
    }
    const color = useColor(process.stdout);
    const rows = [['AGENT', 'RUNTIME', 'CAPABILITIES', 'INSTANCES']];
    for (const a of agents) {
      const states = a.instances.map((i) => (owner ? i.state : 'terminated'));
      const counts = new Map<string, number>();
      for (const s of states) counts.set(s, (counts.get(s) ?? 0) + 1);
      rows.push([
        a.name,
        a.spec.runtime,
        a.spec.capabilities.join(',') || '-',
        [...counts]
          .map(([s, n]) => paint(color, s === 'busy' ? 'blue' : s === 'error' ? 'red' : 'gray', `${n} ${s}`))
          .join(', '),
      ]);
    }
    process.stdout.write(agents.length === 0 ? 'no agents recorded yet\n' : table(rows) + '\n');
    if (!owner && agents.length > 0) process.stdout.write('(no smith process owns this home now)\n');
    return EXIT.ok;
  });
}

/**
 * `smith audit verify [--key FILE] [--from EXPORT.jsonl]`: the hash chain, and with a public key
 * (the home's own by default) the signed checkpoints and verdict signatures; `--from` checks an
 * export offline, without the store.
 */
export async function auditVerifyCommand(
  ctx: Context,
  o: { key?: string; from?: string } = {},
): Promise<number> {
  // the home's own public key unless another is named; none: the hash chain only
  const keyFile = o.key !== undefined ? resolve(ctx.cwd, o.key) : join(keysDir(ctx.home), PUBLIC_KEY_FILE);
  const publicKey = o.key !== undefined || existsSync(keyFile) ? await loadPublicKey(keyFile) : undefined;
  let v: ChainVerification;
  if (o.from !== undefined) {
    const file = resolve(ctx.cwd, o.from);
    if (!existsSync(file)) {
      throw new SmithError(
        'CONFIG_NOT_FOUND',
        `audit export ${file} not found; write one with smith audit export --out FILE`,
      );
    }
    const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
    v = await verifyExport(lines, publicKey);
  } else {
    v = await withStore(ctx, async (store) => {
      const head = await store.auditHead();
      const total = head?.seq ?? 0;
      const tty = Boolean(process.stderr.isTTY) && total > 20_000;
      // a long chain shows how far the check is
      const r = await verifyAuditChain(
        store,
        (checked) => {
          if (tty) process.stderr.write(`\rchecking the audit chain: ${checked}/${total} records`);
        },
        publicKey ? { publicKey } : {},
      );
      if (tty) process.stderr.write('\r\u001b[2K');
      return r;
    });
  }
  if (ctx.json) {
    process.stdout.write(JSON.stringify({ ...v, key: publicKey ? publicKey.kid : null }) + '\n');
  } else if (v.ok) {
    process.stdout.write(`audit chain verified: ${v.checked} records, head ${v.head.seq} ${v.head.hash}\n`);
    if (publicKey) {
      const tail = v.lastCheckpoint ? v.head.seq - v.lastCheckpoint.headSeq : v.head.seq;
      process.stdout.write(
        `signatures verified with key ${publicKey.kid}: ${v.checkpoints} checkpoint(s), ${v.signatures} verdict(s)` +
          (tail > 0 ? `; the last ${tail} record(s) come after the last checkpoint (not signed yet)` : '') +
          '\n',
      );
    } else {
      process.stdout.write(
        'no public key: signatures not checked (smith init makes a key; --key FILE names one)\n',
      );
    }
  } else {
    process.stdout.write(
      `audit chain BROKEN at record ${v.broken!.seq}: ${v.broken!.reason}\n(${v.checked} records before it are intact)\n`,
    );
  }
  return v.ok ? EXIT.ok : EXIT.failed;
}
