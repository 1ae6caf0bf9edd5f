/**
 * Read-only commands: `smith tasks`, `smith task ID`, `smith agents`, `smith audit verify`,
 * `smith audit export`. Embedded they open the store read-only and never recover anything; with
 * SMITH_URL set they ask the server (see docs/remote-cli.md) and print the same.
 */
import { SmithError } from '../../core/errors.js';
import { TASK_STATES, type TaskState } from '../../core/states.js';
import type { Budget, TaskGovernance } from '../../core/types.js';
import { taskDetailView, taskView, type TaskDetailView, type TaskView } from '../../core/views.js';
import { once } from 'node:events';
import { copyFileSync, createReadStream, createWriteStream, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import { findOneTask } from '../../engine/find-task.js';
import { keysDir, openHomeStore, ownerIsAlive } from '../../engine/home.js';
import {
  loadPublicKey,
  PUBLIC_KEY_FILE,
  exportAudit,
  verifyAuditChain,
  verifyExport,
  type ChainVerification,
  type ExportedRecord,
  type PublicKey,
} from '../../provenance/index.js';
import type { Store } from '../../store/store.js';
import { EXIT, type Context } from '../context.js';
import { firstLine, formatDuration, formatSpend, paint, stateColor, table, useColor } from '../output.js';
import { listTasks, remoteClient, resolveTask, resolveWorkflow, type RemoteClient } from '../remote.js';

async function withStore<T>(ctx: Context, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await openHomeStore(ctx.home, { readonly: true });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
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

/** A task as `smith tasks` shows it: its view, and its output for the table. */
type TaskRow = TaskView & { output?: string | null };

/** Print tasks: a JSON array of task views with --json, else a table. */
function printTasks(ctx: Context, tasks: TaskRow[]): void {
  if (ctx.json) {
    process.stdout.write(JSON.stringify(tasks.map(({ output: _output, ...view }) => view)) + '\n');
    return;
  }
  const color = useColor(process.stdout);
  const spent = tasks.some((t) => t.cost_usd > 0 || t.tokens > 0);
  const rows = [
    ['ID', 'KEY', 'STATE', 'AGENT', 'ATTEMPTS', 'TIME', ...(spent ? ['SPEND'] : []), 'OUTPUT / REASON'],
  ];
  for (const t of tasks) {
    rows.push([
      t.id,
      t.key,
      paint(color, stateColor(t.state), t.state),
      t.agent ?? '-',
      String(t.attempts),
      formatDuration(t.duration_ms),
      ...(spent ? [formatSpend(t.cost_usd, t.tokens)] : []),
      firstLine(t.state === 'completed' ? t.output : (t.reason ?? t.output), 50),
    ]);
  }
  process.stdout.write(tasks.length === 0 ? 'no tasks\n' : table(rows) + '\n');
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
  const limit = o.limit ? Number(o.limit) : undefined;
  const api = remoteClient();
  if (api) {
    const workflow = o.workflow ? (await resolveWorkflow(api, o.workflow)).id : undefined;
    const newest = await listTasks(
      api,
      { state: states?.join(','), agent: o.agent, workflow },
      { ...(limit !== undefined ? { limit } : {}), output: !ctx.json },
    );
    // embedded, a listing without --limit is oldest first
    printTasks(ctx, limit === undefined ? newest.reverse() : newest);
    return EXIT.ok;
  }
  return withStore(ctx, async (store) => {
    let workflowId: string | undefined;
    if (o.workflow) {
      const wfs = await store.findWorkflows(o.workflow);
      if (wfs.length === 0) throw new SmithError('WORKFLOW_NOT_FOUND', `no workflow matches "${o.workflow}"`);
      workflowId = wfs[0]!.id;
    }
    const tasks = await store.listTasks({
      state: states as TaskState[] | undefined,
      agent: o.agent,
      workflowId,
      limit,
      newestFirst: limit !== undefined,
    });
    printTasks(
      ctx,
      tasks.map((t) => ({ ...taskView(t), output: t.output })),
    );
    return EXIT.ok;
  });
}

/** The audit records of a server in seq order, in their exported form, a page (5000) at a time. */
async function* remoteAuditPages(api: RemoteClient): AsyncGenerator<ExportedRecord[]> {
  let from: number | null = 1;
  while (from !== null) {
    const page: {
      records: (Omit<ExportedRecord, 'time'> & { time: string })[];
      next_from: number | null;
    } = await api.get('/api/v1/audit', { from, limit: 5000 });
    yield page.records.map((r) => ({ ...r, time: Date.parse(r.time) }));
    from = page.next_from;
  }
}

/** Write a server's audit records as JSON lines; @returns how many and the last one. */
async function exportRemoteAudit(
  api: RemoteClient,
  out: Writable,
): Promise<{ records: number; head: { seq: number; hash: string } }> {
  let records = 0;
  let head = { seq: 0, hash: '0'.repeat(64) };
  for await (const page of remoteAuditPages(api)) {
    const text = page.map((r) => JSON.stringify(r) + '\n').join('');
    if (text && !out.write(text)) await once(out, 'drain');
    records += page.length;
    const last = page[page.length - 1];
    if (last) head = { seq: last.seq, hash: last.hash };
  }
  return { records, head };
}

/** `smith audit export [--out FILE] [--key-out FILE]`: every record as JSONL, and the public key. */
export async function auditExportCommand(
  ctx: Context,
  o: { out?: string; keyOut?: string },
): Promise<number> {
  const api = remoteClient();
  if (api && o.keyOut !== undefined) {
    throw new SmithError(
      'INVALID_ARGUMENT',
      `--key-out copies the home's public key, which stays on the server (SMITH_URL=${api.url}): copy keys/public.jwk from the server's home, or leave out --key-out`,
    );
  }
  const file = o.out === undefined || o.out === '-' ? undefined : resolve(ctx.cwd, o.out);
  const out = file ? createWriteStream(file) : process.stdout;
  const write = async (): Promise<{ records: number; head: { seq: number; hash: string } }> =>
    api ? exportRemoteAudit(api, out) : withStore(ctx, (store) => exportAudit(store, out));
  const summary = await write();
  if (file) {
    await new Promise<void>((res, rej) => {
      out.once('error', rej);
      (out as ReturnType<typeof createWriteStream>).end(() => res());
    });
  }
  let keyNote: string;
  if (api) {
    keyNote = `on the server (copy keys/public.jwk from its home to verify offline)`;
  } else {
    const publicFile = join(keysDir(ctx.home), PUBLIC_KEY_FILE);
    let keyOut: string | null = null;
    if (existsSync(publicFile)) {
      keyOut = o.keyOut === undefined ? publicFile : resolve(ctx.cwd, o.keyOut);
      if (keyOut !== publicFile) copyFileSync(publicFile, keyOut);
    }
    keyNote = keyOut ?? 'none (smith init makes one)';
  }
  const note = `exported ${summary.records} audit record(s), head ${summary.head.seq}${file ? ` to ${file}` : ''}; public key: ${keyNote}\n`;
  // with the records on stdout, the note goes to stderr
  (file ? process.stdout : process.stderr).write(note);
  return EXIT.ok;
}

/** The text of one event in `smith task`'s events list. */
function eventText(type: string, d: Record<string, unknown>): string {
  return type === 'state'
    ? `${String(d.from ?? '-')} -> ${String(d.to)}${d.reason ? ` (${String(d.reason)})` : ''}`
    : type === 'progress'
      ? `${d.pct === null ? '' : `${String(d.pct)}% `}${String(d.message ?? '')}`
      : type === 'log'
        ? `[${String(d.stream)}] ${String(d.line)}`
        : type === 'text'
          ? String(d.text)
          : type === 'tool_use'
            ? `${String(d.name)} ${JSON.stringify(d.input ?? {})}`
            : type === 'tool_result'
              ? `${d.isError ? 'error: ' : ''}${String(d.output ?? '')}`
              : type === 'file_change'
                ? `${String(d.kind)} ${String(d.path)}`
                : type === 'verdict'
                  ? `${String(d.decision)} ${Number(d.score).toFixed(2)}/${String(d.threshold)}: ${(d.reasons as string[] | undefined)?.join(' ') ?? ''}`
                  : type === 'guidance'
                    ? `(${String(d.from)}) ${String(d.text)}`
                    : type === 'usage'
                      ? usageText(d)
                      : JSON.stringify(d);
}

/** Print one task: its detail view as JSON with --json, else its fields, attempts, events and output. */
function printTaskDetail(ctx: Context, t: TaskDetailView): void {
  if (ctx.json) {
    process.stdout.write(JSON.stringify(t) + '\n');
    return;
  }
  const budget = t.budget as unknown as Budget | null;
  const governance = t.governance as unknown as TaskGovernance | null;
  const color = useColor(process.stdout);
  const out: string[] = [];
  out.push(`task ${t.id}  ${paint(color, 'bold', t.key)}  ${paint(color, stateColor(t.state), t.state)}`);
  out.push(`  workflow   ${t.workflow_id ?? '-'}`);
  out.push(
    `  agent      ${t.agent ?? '-'}${t.capabilities.length ? `  (capabilities: ${t.capabilities.join(', ')})` : ''}`,
  );
  out.push(`  priority   ${t.priority}    attempts ${t.attempts}/${t.max_attempts}    epoch ${t.epoch}`);
  out.push(`  workdir    ${t.workdir}`);
  out.push(`  created    ${t.created_at}    ran ${formatDuration(t.duration_ms)}`);
  if (t.reason) out.push(`  reason     ${t.reason}`);
  if (t.cost_usd > 0 || t.tokens > 0 || budget) {
    const cap = budget
      ? `    budget ${[budget.usd !== undefined ? `$${budget.usd}` : '', budget.tokens !== undefined ? `${budget.tokens} tokens` : ''].filter(Boolean).join(', ')}`
      : '';
    out.push(`  spend      ${formatSpend(t.cost_usd, t.tokens)}${cap}`);
  }
  if (t.session_id) out.push(`  session    ${t.session_id}`);
  if (governance) {
    const g = governance;
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
  const attempts = t.attempts_detail;
  const attemptSpend = attempts.some((a) => a.cost_usd > 0 || a.tokens > 0);
  const rows = [['#', 'STATE', 'AGENT', 'PID', 'EXIT', 'TIME', ...(attemptSpend ? ['SPEND'] : []), 'ERROR']];
  for (const a of attempts) {
    rows.push([
      String(a.number),
      paint(color, stateColor(a.state === 'succeeded' ? 'completed' : a.state), a.state),
      `${a.agent}/${a.instance}`,
      a.pid === null ? '-' : String(a.pid),
      a.exit_code === null ? (a.signal ?? '-') : String(a.exit_code),
      formatDuration(a.duration_ms ?? Date.now() - Date.parse(a.started_at)),
      ...(attemptSpend ? [formatSpend(a.cost_usd, a.tokens)] : []),
      firstLine(a.error, 60),
    ]);
  }
  out.push(attempts.length === 0 ? '  none yet' : table(rows).replace(/^/gm, '  '));
  out.push('');
  out.push('events:');
  const events = t.events;
  for (const e of events.slice(-40)) {
    const text = eventText(e.type, e.data as Record<string, unknown>);
    out.push(`  ${e.time.slice(11, 23)}  ${e.type.padEnd(8)} ${firstLine(text, 100)}`);
  }
  if (events.length > 40) out.push(`  (${events.length - 40} earlier events: smith task ${t.id} --json)`);
  out.push('');
  out.push('output:');
  out.push(t.output ? t.output.replace(/\s+$/, '').split('\n').slice(-30).join('\n') : '  (none)');
  process.stdout.write(out.join('\n') + '\n');
}

/** `smith task ID`. */
export async function taskCommand(ctx: Context, id: string): Promise<number> {
  const api = remoteClient();
  if (api) {
    const found = await resolveTask(api, id);
    const detail = await api.get<TaskDetailView>(`/api/v1/tasks/${encodeURIComponent(found.id)}`);
    printTaskDetail(ctx, detail);
    return EXIT.ok;
  }
  return withStore(ctx, async (store) => {
    const t = await findOneTask(store, id);
    const attempts = await store.getAttempts(t.id);
    const events = await store.getEvents(t.id);
    printTaskDetail(ctx, taskDetailView(t, attempts, events));
    return EXIT.ok;
  });
}

/** An agent as `smith agents` shows it. */
interface AgentRow {
  name: string;
  runtime: string;
  capabilities: string[];
  concurrency: number;
  instances: { index: number; state: string; restarts: number }[];
}

/** Print agents: a JSON array with --json, else a table; `owned`: a smith process runs them. */
function printAgents(ctx: Context, agents: AgentRow[], owned: boolean): void {
  if (ctx.json) {
    process.stdout.write(JSON.stringify(agents) + '\n');
    return;
  }
  const color = useColor(process.stdout);
  const rows = [['AGENT', 'RUNTIME', 'CAPABILITIES', 'INSTANCES']];
  for (const a of agents) {
    const counts = new Map<string, number>();
    for (const i of a.instances) counts.set(i.state, (counts.get(i.state) ?? 0) + 1);
    rows.push([
      a.name,
      a.runtime,
      a.capabilities.join(',') || '-',
      [...counts]
        .map(([s, n]) => paint(color, s === 'busy' ? 'blue' : s === 'error' ? 'red' : 'gray', `${n} ${s}`))
        .join(', '),
    ]);
  }
  process.stdout.write(agents.length === 0 ? 'no agents recorded yet\n' : table(rows) + '\n');
  if (!owned && agents.length > 0) process.stdout.write('(no smith process owns this home now)\n');
}

/** `smith agents`. */
export async function agentsCommand(ctx: Context): Promise<number> {
  const api = remoteClient();
  if (api) {
    const { agents } = await api.get<{ agents: AgentRow[] }>('/api/v1/agents');
    // the server owns its home: its instances' states are live
    printAgents(
      ctx,
      agents.map((a) => ({
        name: a.name,
        runtime: a.runtime,
        capabilities: a.capabilities,
        concurrency: a.concurrency,
        instances: a.instances.map((i) => ({ index: i.index, state: i.state, restarts: i.restarts })),
      })),
      true,
    );
    return EXIT.ok;
  }
  return withStore(ctx, async (store) => {
    const agents = await store.listAgents();
    const owner = await ownerIsAlive(store);
    printAgents(
      ctx,
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
      owner !== undefined,
    );
    return EXIT.ok;
  });
}

/**
 * Print the result of an audit check. `key`: the public key the signatures were checked with
 * here, `'server'` when the server checked them with its home's key, undefined when none was.
 */
function printVerification(ctx: Context, v: ChainVerification, key: PublicKey | 'server' | undefined): void {
  if (ctx.json) {
    process.stdout.write(
      JSON.stringify(
        key === 'server' ? { ...v, key: null, signed: true } : { ...v, key: key ? key.kid : null },
      ) + '\n',
    );
  } else if (v.ok) {
    process.stdout.write(`audit chain verified: ${v.checked} records, head ${v.head.seq} ${v.head.hash}\n`);
    if (key === 'server') {
      process.stdout.write(
        `signatures verified by the server with its home's key: ${v.checkpoints} checkpoint(s), ${v.signatures} verdict(s)\n`,
      );
    } else if (key) {
      const tail = v.lastCheckpoint ? v.head.seq - v.lastCheckpoint.headSeq : v.head.seq;
      process.stdout.write(
        `signatures verified with key ${key.kid}: ${v.checkpoints} checkpoint(s), ${v.signatures} verdict(s)` +
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
}

/** The answer of `POST /api/v1/audit/verify`. */
interface ServerVerification {
  ok: boolean;
  checked: number;
  head: { seq: number; hash: string };
  broken: { seq: number; reason: string } | null;
  checkpoints: number;
  signatures: number;
  signed: boolean;
}

/**
 * `smith audit verify [--key FILE] [--from EXPORT.jsonl]`: the hash chain, and with a public key
 * (the home's own by default) the signed checkpoints and verdict signatures; `--from` checks an
 * export offline, without the store. With SMITH_URL set the server checks its chain (with its
 * home's key), or, given `--key FILE`, the chain is fetched and checked here with that key.
 */
export async function auditVerifyCommand(
  ctx: Context,
  o: { key?: string; from?: string } = {},
): Promise<number> {
  const api = o.from === undefined ? remoteClient() : undefined;
  if (api && o.key === undefined) {
    // a long chain takes a while to check
    const r = await api.post<ServerVerification>('/api/v1/audit/verify', {}, { timeoutMs: 30 * 60_000 });
    const v: ChainVerification = {
      ok: r.ok,
      checked: r.checked,
      head: r.head,
      ...(r.broken ? { broken: r.broken } : {}),
      checkpoints: r.checkpoints,
      signatures: r.signatures,
    };
    printVerification(ctx, v, r.signed ? 'server' : undefined);
    return v.ok ? EXIT.ok : EXIT.failed;
  }
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
  } else if (api) {
    const lines = async function* (): AsyncGenerator<string> {
      for await (const page of remoteAuditPages(api)) for (const r of page) yield JSON.stringify(r);
    };
    v = await verifyExport(lines(), publicKey);
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
  printVerification(ctx, v, publicKey);
  return v.ok ? EXIT.ok : EXIT.failed;
}
