/**
 * The SQLite dialect of the Store: one file, WAL journal, `synchronous` FULL (default) or NORMAL,
 * group commit (every change submitted in one tick shares one `BEGIN IMMEDIATE` transaction).
 *
 * SQL is written with Kysely. Hot statements are compiled by Kysely once per shape and then run as
 * better-sqlite3 prepared statements, so the query builder is not paid for on every write.
 */
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type CompiledQuery } from 'kysely';
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { auditHash, GENESIS_HASH } from '../../core/canonical-json.js';
import { SmithError, StoreError } from '../../core/errors.js';
import type { AttemptState, InstanceState, TaskState, WorkflowState } from '../../core/states.js';
import type {
  AgentRecord,
  AgentSpec,
  Attempt,
  AuditRecord,
  Json,
  Task,
  TaskEvent,
  TaskEventType,
  Workflow,
} from '../../core/types.js';
import { MIGRATIONS } from '../migrations/index.js';
import type { AttemptsTable, Database as Schema, TasksTable, WorkflowsTable } from '../schema.js';
import type {
  CommitResult,
  Lease,
  Op,
  Request,
  RequestAction,
  Store,
  StoreOptions,
  TaskFilter,
} from '../store.js';

type Row = Record<string, unknown>;

interface PendingChange {
  ops: Op[];
  resolve: (r: CommitResult) => void;
  reject: (e: unknown) => void;
}

const TASK_JSON_COLS = new Set(['capabilities', 'needs', 'env']);

/** camelCase task field -> column. */
const TASK_COLS: Record<string, keyof TasksTable> = {
  workflowId: 'workflow_id',
  key: 'key',
  agent: 'agent',
  capabilities: 'capabilities',
  prompt: 'prompt',
  needs: 'needs',
  priority: 'priority',
  state: 'state',
  attempts: 'attempts',
  maxAttempts: 'max_attempts',
  epoch: 'epoch',
  timeoutMs: 'timeout_ms',
  workdir: 'workdir',
  env: 'env',
  availableAt: 'available_at',
  assignedAgent: 'assigned_agent',
  output: 'output',
  exitCode: 'exit_code',
  reason: 'reason',
  updatedAt: 'updated_at',
  startedAt: 'started_at',
  endedAt: 'ended_at',
};

const ATTEMPT_COLS: Record<string, keyof AttemptsTable> = {
  instance: 'instance',
  state: 'state',
  pid: 'pid',
  endedAt: 'ended_at',
  exitCode: 'exit_code',
  signal: 'signal',
  output: 'output',
  error: 'error',
};

const WORKFLOW_COLS: Record<string, keyof WorkflowsTable> = {
  name: 'name',
  state: 'state',
  file: 'file',
  dir: 'dir',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
  endedAt: 'ended_at',
};

function taskToRow(t: Task): TasksTable {
  return {
    id: t.id,
    workflow_id: t.workflowId,
    key: t.key,
    agent: t.agent,
    capabilities: JSON.stringify(t.capabilities),
    prompt: t.prompt,
    needs: JSON.stringify(t.needs),
    priority: t.priority,
    state: t.state,
    attempts: t.attempts,
    max_attempts: t.maxAttempts,
    epoch: t.epoch,
    timeout_ms: t.timeoutMs,
    workdir: t.workdir,
    env: JSON.stringify(t.env),
    available_at: t.availableAt,
    assigned_agent: t.assignedAgent,
    output: t.output,
    exit_code: t.exitCode,
    reason: t.reason,
    created_at: t.createdAt,
    updated_at: t.updatedAt,
    started_at: t.startedAt,
    ended_at: t.endedAt,
  };
}

function rowToTask(r: Row): Task {
  return {
    id: r.id as string,
    workflowId: (r.workflow_id as string | null) ?? null,
    key: r.key as string,
    agent: (r.agent as string | null) ?? null,
    capabilities: JSON.parse(r.capabilities as string) as string[],
    prompt: r.prompt as string,
    needs: JSON.parse(r.needs as string) as string[],
    priority: Number(r.priority),
    state: r.state as TaskState,
    attempts: Number(r.attempts),
    maxAttempts: Number(r.max_attempts),
    epoch: Number(r.epoch),
    timeoutMs: r.timeout_ms == null ? null : Number(r.timeout_ms),
    workdir: r.workdir as string,
    env: JSON.parse(r.env as string) as Record<string, string>,
    availableAt: Number(r.available_at),
    assignedAgent: (r.assigned_agent as string | null) ?? null,
    output: (r.output as string | null) ?? null,
    exitCode: r.exit_code == null ? null : Number(r.exit_code),
    reason: (r.reason as string | null) ?? null,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    startedAt: r.started_at == null ? null : Number(r.started_at),
    endedAt: r.ended_at == null ? null : Number(r.ended_at),
  };
}

function rowToAttempt(r: Row): Attempt & { owner: string } {
  return {
    id: r.id as string,
    taskId: r.task_id as string,
    number: Number(r.number),
    epoch: Number(r.epoch),
    agent: r.agent as string,
    instance: Number(r.instance),
    state: r.state as AttemptState,
    owner: r.owner as string,
    pid: r.pid == null ? null : Number(r.pid),
    startedAt: Number(r.started_at),
    endedAt: r.ended_at == null ? null : Number(r.ended_at),
    exitCode: r.exit_code == null ? null : Number(r.exit_code),
    signal: (r.signal as string | null) ?? null,
    output: (r.output as string | null) ?? null,
    error: (r.error as string | null) ?? null,
  };
}

function rowToWorkflow(r: Row): Workflow {
  return {
    id: r.id as string,
    name: r.name as string,
    state: r.state as WorkflowState,
    file: (r.file as string | null) ?? null,
    dir: r.dir as string,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    endedAt: r.ended_at == null ? null : Number(r.ended_at),
  };
}

function rowToAudit(r: Row): AuditRecord {
  return {
    seq: Number(r.seq),
    time: Number(r.time),
    actor: r.actor as string,
    action: r.action as string,
    subject: r.subject as string,
    data: JSON.parse(r.data as string) as Json,
    prevHash: r.prev_hash as string,
    hash: r.hash as string,
  };
}

function sqliteValue(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v;
}

function describeOpenError(file: string, err: unknown): StoreError {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') {
    return new StoreError(
      'STORE_LOCKED',
      `the store ${file} is locked by another process; wait for it to finish or use another --home`,
      { cause: err, context: { file } },
    );
  }
  if (code === 'SQLITE_READONLY' || code === 'SQLITE_CANTOPEN' || code === 'EACCES' || code === 'EROFS') {
    return new StoreError(
      'STORE_NOT_WRITABLE',
      `cannot open the store ${file} for writing (${code}); check the permissions of its folder or choose another with --home or SMITH_HOME`,
      { cause: err, context: { file } },
    );
  }
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new StoreError(
      'STORE_FAILED',
      `${file} is not a MisterSmith store (${code}); move it away or choose another --home`,
      { cause: err, context: { file } },
    );
  }
  return new StoreError('STORE_FAILED', `cannot open the store ${file}: ${(err as Error).message}`, {
    cause: err,
    context: { file },
  });
}

/**
 * Open (creating and migrating when needed) the SQLite store at `file`.
 * @param file - path of the database file (its folder is created)
 * @param options - synchronous mode (default FULL), readonly
 * @throws StoreError STORE_NOT_WRITABLE, STORE_LOCKED or STORE_FAILED with the path and what to do
 */
export async function openSqliteStore(file: string, options: StoreOptions = {}): Promise<SqliteStore> {
  let db: Database.Database;
  try {
    if (!options.readonly) mkdirSync(dirname(file), { recursive: true });
    db = new Database(file, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
    db.pragma('busy_timeout = 10000');
    if (!options.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
    }
    db.pragma('foreign_keys = OFF');
  } catch (err) {
    throw describeOpenError(file, err);
  }
  const kysely = new Kysely<Schema>({ dialect: new SqliteDialect({ database: db }) });
  if (!options.readonly) {
    const migrator = new Migrator({
      db: kysely,
      provider: { getMigrations: () => Promise.resolve(MIGRATIONS) },
    });
    const { error } = await migrator.migrateToLatest();
    if (error) {
      db.close();
      throw describeOpenError(file, error);
    }
  }
  return new SqliteStore(file, db, kysely);
}

/** The SQLite Store. Create with {@link openSqliteStore}. */
export class SqliteStore implements Store {
  readonly location: string;
  private readonly db: Database.Database;
  private readonly kysely: Kysely<Schema>;
  private pending: PendingChange[] = [];
  private scheduled = false;
  private flushWaiters: (() => void)[] = [];
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly stmts = new Map<string, Database.Statement>();
  private readonly begin: Database.Statement;
  private readonly commitStmt: Database.Statement;
  private readonly rollback: Database.Statement;
  private readonly headStmt: Database.Statement;

  /** Use {@link openSqliteStore}. */
  constructor(file: string, db: Database.Database, kysely: Kysely<Schema>) {
    this.location = file;
    this.db = db;
    this.kysely = kysely;
    this.begin = db.prepare('BEGIN IMMEDIATE');
    this.commitStmt = db.prepare('COMMIT');
    this.rollback = db.prepare('ROLLBACK');
    const head = this.kysely.selectFrom('audit_records').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).compile();
    this.headStmt = db.prepare(head.sql).bind(...head.parameters.map(sqliteValue));
  }

  /** Prepare (once per SQL text) a Kysely-compiled query. */
  private prep(q: CompiledQuery): Database.Statement {
    let s = this.stmts.get(q.sql);
    if (!s) {
      s = this.db.prepare(q.sql);
      this.stmts.set(q.sql, s);
    }
    return s;
  }

  private run(q: CompiledQuery): Database.RunResult {
    return this.prep(q).run(...q.parameters.map(sqliteValue));
  }

  private all(q: CompiledQuery): Row[] {
    return this.prep(q).all(...q.parameters.map(sqliteValue)) as Row[];
  }

  private get(q: CompiledQuery): Row | undefined {
    return this.prep(q).get(...q.parameters.map(sqliteValue)) as Row | undefined;
  }

  commit(change: Op[]): Promise<CommitResult> {
    if (this.closed) {
      return Promise.reject(new SmithError('SHUTTING_DOWN', `the store ${this.location} is closed`));
    }
    return new Promise<CommitResult>((resolve, reject) => {
      this.pending.push({ ops: change, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flushNow());
      }
    });
  }

  flush(): Promise<void> {
    if (this.pending.length === 0 && !this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push(resolve));
  }

  /** Run every pending change in one transaction; isolate a failing change when one throws. */
  private flushNow(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    if (batch.length > 0) {
      let results: CommitResult[] | undefined;
      try {
        results = this.runBatch(batch);
      } catch {
        results = undefined;
      }
      if (results) {
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]!);
      } else {
        // Something in the batch failed: run each change alone so only the bad one fails.
        for (const change of batch) {
          try {
            const [r] = this.runBatch([change]);
            change.resolve(r!);
          } catch (err) {
            change.reject(this.wrapWriteError(err));
          }
        }
      }
    }
    for (const w of waiters) w();
  }

  private wrapWriteError(err: unknown): unknown {
    const code = (err as { code?: string }).code ?? '';
    if (code === 'SQLITE_BUSY') {
      return new StoreError(
        'STORE_LOCKED',
        `the store ${this.location} stayed locked by another process for 10 s; nothing was written. Retry when the other process is done`,
        { cause: err, context: { file: this.location } },
      );
    }
    if (code === 'SQLITE_FULL' || code === 'SQLITE_READONLY' || code === 'SQLITE_IOERR') {
      return new StoreError(
        'STORE_NOT_WRITABLE',
        `cannot write to the store ${this.location} (${code}); free disk space or fix permissions. Everything recorded before is intact`,
        { cause: err, context: { file: this.location } },
      );
    }
    return err;
  }

  private runBatch(batch: PendingChange[]): CommitResult[] {
    const now = Date.now();
    this.begin.run();
    try {
      const head = this.headStmt.get() as { seq: number; hash: string } | undefined;
      const chain = { seq: head ? Number(head.seq) : 0, hash: head ? head.hash : GENESIS_HASH };
      const results: CommitResult[] = [];
      for (const change of batch) {
        const guarded = change.ops.filter((o) => 'expect' in o && o.expect !== undefined).length;
        if (guarded > 1) this.db.exec('SAVEPOINT change');
        const saved = { seq: chain.seq, hash: chain.hash };
        const audit: { seq: number; hash: string }[] = [];
        let applied = true;
        for (const op of change.ops) {
          if (!this.applyOp(op, now, chain, audit)) {
            applied = false;
            break;
          }
        }
        if (guarded > 1) {
          if (!applied) this.db.exec('ROLLBACK TO change');
          this.db.exec('RELEASE change');
        }
        if (!applied) {
          chain.seq = saved.seq;
          chain.hash = saved.hash;
          results.push({ applied: false, audit: [] });
        } else {
          results.push({ applied: true, audit });
        }
      }
      this.commitStmt.run();
      return results;
    } catch (err) {
      if (this.db.inTransaction) this.rollback.run();
      throw err;
    }
  }

  /** Apply one op inside the open transaction. @returns false when its guard did not hold. */
  private applyOp(
    op: Op,
    now: number,
    chain: { seq: number; hash: string },
    audit: { seq: number; hash: string }[],
  ): boolean {
    const k = this.kysely;
    switch (op.op) {
      case 'insertTask':
        this.run(k.insertInto('tasks').values(taskToRow(op.task)).compile());
        return true;
      case 'updateTask': {
        const set: Record<string, unknown> = {};
        for (const key of Object.keys(op.set).sort()) {
          const col = TASK_COLS[key];
          if (!col) throw new TypeError(`unknown task field ${key}`);
          const v = (op.set as Record<string, unknown>)[key];
          set[col] = TASK_JSON_COLS.has(col) ? JSON.stringify(v) : v;
        }
        let q = k.updateTable('tasks').set(set).where('id', '=', op.id);
        if (op.expect?.state) q = q.where('state', 'in', op.expect.state);
        if (op.expect?.epoch !== undefined) q = q.where('epoch', '=', op.expect.epoch);
        const r = this.run(q.compile());
        return r.changes > 0 || op.expect === undefined;
      }
      case 'insertAttempt': {
        const a = op.attempt;
        this.run(
          k
            .insertInto('attempts')
            .values({
              id: a.id,
              task_id: a.taskId,
              number: a.number,
              epoch: a.epoch,
              agent: a.agent,
              instance: a.instance,
              state: a.state,
              owner: op.owner,
              pid: a.pid,
              started_at: a.startedAt,
              ended_at: a.endedAt,
              exit_code: a.exitCode,
              signal: a.signal,
              output: a.output,
              error: a.error,
            })
            .compile(),
        );
        return true;
      }
      case 'updateAttempt': {
        const set: Record<string, unknown> = {};
        for (const key of Object.keys(op.set).sort()) {
          const col = ATTEMPT_COLS[key];
          if (!col) throw new TypeError(`unknown attempt field ${key}`);
          set[col] = (op.set as Record<string, unknown>)[key];
        }
        let q = k.updateTable('attempts').set(set).where('id', '=', op.id);
        if (op.expect?.state) q = q.where('state', 'in', op.expect.state);
        const r = this.run(q.compile());
        return r.changes > 0 || op.expect === undefined;
      }
      case 'insertWorkflow': {
        const w = op.workflow;
        this.run(
          k
            .insertInto('workflows')
            .values({
              id: w.id,
              name: w.name,
              state: w.state,
              file: w.file,
              dir: w.dir,
              spec: JSON.stringify(op.spec),
              created_at: w.createdAt,
              updated_at: w.updatedAt,
              ended_at: w.endedAt,
            })
            .compile(),
        );
        return true;
      }
      case 'updateWorkflow': {
        const set: Record<string, unknown> = {};
        for (const key of Object.keys(op.set).sort()) {
          const col = WORKFLOW_COLS[key];
          if (!col) throw new TypeError(`unknown workflow field ${key}`);
          set[col] = (op.set as Record<string, unknown>)[key];
        }
        let q = k.updateTable('workflows').set(set).where('id', '=', op.id);
        if (op.expect?.state) q = q.where('state', 'in', op.expect.state);
        const r = this.run(q.compile());
        return r.changes > 0 || op.expect === undefined;
      }
      case 'event':
        this.run(
          k
            .insertInto('task_events')
            .values({
              task_id: op.taskId,
              attempt_id: op.attemptId,
              time: op.time ?? now,
              type: op.type,
              data: JSON.stringify(op.data),
            })
            .compile(),
        );
        return true;
      case 'audit': {
        const seq = chain.seq + 1;
        const time = op.time ?? now;
        const hash = auditHash({
          seq,
          time,
          actor: op.actor,
          action: op.action,
          subject: op.subject,
          data: op.data,
          prev_hash: chain.hash,
        });
        this.run(
          k
            .insertInto('audit_records')
            .values({
              seq,
              time,
              actor: op.actor,
              action: op.action,
              subject: op.subject,
              data: JSON.stringify(op.data),
              prev_hash: chain.hash,
              hash,
            })
            .compile(),
        );
        chain.seq = seq;
        chain.hash = hash;
        audit.push({ seq, hash });
        return true;
      }
      case 'upsertAgent':
        this.run(
          k
            .insertInto('agents')
            .values({ name: op.spec.name, spec: JSON.stringify(op.spec), updated_at: now })
            .onConflict((oc) => oc.column('name').doUpdateSet({ spec: JSON.stringify(op.spec), updated_at: now }))
            .compile(),
        );
        return true;
      case 'setInstance': {
        const values = {
          agent: op.agent,
          idx: op.index,
          state: op.state,
          restarts: op.restarts ?? 0,
          updated_at: now,
        };
        const update: Record<string, unknown> = { state: op.state, updated_at: now };
        if (op.restarts !== undefined) update.restarts = op.restarts;
        this.run(
          k
            .insertInto('agent_instances')
            .values(values)
            .onConflict((oc) => oc.columns(['agent', 'idx']).doUpdateSet(update))
            .compile(),
        );
        return true;
      }
      case 'request':
        this.run(
          k
            .insertInto('requests')
            .values({
              task_id: op.taskId,
              action: op.action,
              actor: op.actor,
              data: JSON.stringify(op.data ?? null),
              created_at: now,
              done_at: null,
              result: null,
            })
            .compile(),
        );
        return true;
      case 'requestDone':
        this.run(
          k.updateTable('requests').set({ done_at: now, result: op.result }).where('id', '=', op.id).compile(),
        );
        return true;
    }
  }

  getTask(id: string): Promise<Task | undefined> {
    const r = this.get(this.kysely.selectFrom('tasks').selectAll().where('id', '=', id).compile());
    return Promise.resolve(r ? rowToTask(r) : undefined);
  }

  findTasks(idOrKeyOrPrefix: string): Promise<Task[]> {
    const exact = this.get(this.kysely.selectFrom('tasks').selectAll().where('id', '=', idOrKeyOrPrefix).compile());
    if (exact) return Promise.resolve([rowToTask(exact)]);
    const rows = this.all(
      this.kysely
        .selectFrom('tasks')
        .selectAll()
        .where((eb) =>
          eb.or([
            eb('id', 'like', `${idOrKeyOrPrefix.replace(/[%_]/g, '')}%`),
            eb('key', '=', idOrKeyOrPrefix),
          ]),
        )
        .orderBy('created_at', 'desc')
        .limit(50)
        .compile(),
    );
    return Promise.resolve(rows.map(rowToTask));
  }

  listTasks(filter: TaskFilter = {}): Promise<Task[]> {
    let q = this.kysely.selectFrom('tasks').selectAll();
    if (filter.state && filter.state.length > 0) q = q.where('state', 'in', filter.state);
    if (filter.agent) {
      const agent = filter.agent;
      q = q.where((eb) => eb.or([eb('agent', '=', agent), eb('assigned_agent', '=', agent)]));
    }
    if (filter.workflowId) q = q.where('workflow_id', '=', filter.workflowId);
    q = filter.newestFirst ? q.orderBy('created_at', 'desc').orderBy('id', 'desc') : q.orderBy('created_at').orderBy('id');
    if (filter.limit !== undefined) q = q.limit(filter.limit);
    return Promise.resolve(this.all(q.compile()).map(rowToTask));
  }

  getAttempts(taskId: string): Promise<Attempt[]> {
    const rows = this.all(
      this.kysely.selectFrom('attempts').selectAll().where('task_id', '=', taskId).orderBy('number').compile(),
    );
    return Promise.resolve(rows.map(rowToAttempt));
  }

  listAttempts(states: AttemptState[]): Promise<(Attempt & { owner: string })[]> {
    const rows = this.all(this.kysely.selectFrom('attempts').selectAll().where('state', 'in', states).compile());
    return Promise.resolve(rows.map(rowToAttempt));
  }

  getEvents(taskId: string, afterSeq = 0, limit = 10_000): Promise<TaskEvent[]> {
    const rows = this.all(
      this.kysely
        .selectFrom('task_events')
        .selectAll()
        .where('task_id', '=', taskId)
        .where('seq', '>', afterSeq)
        .orderBy('seq')
        .limit(limit)
        .compile(),
    );
    return Promise.resolve(
      rows.map((r) => ({
        seq: Number(r.seq),
        taskId: r.task_id as string,
        attemptId: (r.attempt_id as string | null) ?? null,
        time: Number(r.time),
        type: r.type as TaskEventType,
        data: JSON.parse(r.data as string) as Json,
      })),
    );
  }

  getWorkflow(id: string): Promise<Workflow | undefined> {
    const r = this.get(this.kysely.selectFrom('workflows').selectAll().where('id', '=', id).compile());
    return Promise.resolve(r ? rowToWorkflow(r) : undefined);
  }

  findWorkflows(idOrPrefix: string): Promise<Workflow[]> {
    const rows = this.all(
      this.kysely
        .selectFrom('workflows')
        .selectAll()
        .where((eb) => eb.or([eb('id', 'like', `${idOrPrefix.replace(/[%_]/g, '')}%`), eb('name', '=', idOrPrefix)]))
        .orderBy('created_at', 'desc')
        .limit(50)
        .compile(),
    );
    return Promise.resolve(rows.map(rowToWorkflow));
  }

  listWorkflows(states?: WorkflowState[]): Promise<Workflow[]> {
    let q = this.kysely.selectFrom('workflows').selectAll();
    if (states && states.length > 0) q = q.where('state', 'in', states);
    return Promise.resolve(this.all(q.orderBy('created_at').compile()).map(rowToWorkflow));
  }

  getWorkflowSpec(id: string): Promise<Json | undefined> {
    const r = this.get(this.kysely.selectFrom('workflows').select('spec').where('id', '=', id).compile());
    return Promise.resolve(r ? (JSON.parse(r.spec as string) as Json) : undefined);
  }

  listAgents(): Promise<AgentRecord[]> {
    const agents = this.all(this.kysely.selectFrom('agents').selectAll().orderBy('name').compile());
    const inst = this.all(this.kysely.selectFrom('agent_instances').selectAll().orderBy('agent').orderBy('idx').compile());
    return Promise.resolve(
      agents.map((a) => ({
        name: a.name as string,
        spec: JSON.parse(a.spec as string) as AgentSpec,
        instances: inst
          .filter((i) => i.agent === a.name)
          .map((i) => ({
            index: Number(i.idx),
            state: i.state as InstanceState,
            restarts: Number(i.restarts),
            updatedAt: Number(i.updated_at),
          })),
      })),
    );
  }

  auditRecords(fromSeq: number, limit: number): Promise<AuditRecord[]> {
    const rows = this.all(
      this.kysely
        .selectFrom('audit_records')
        .selectAll()
        .where('seq', '>=', fromSeq)
        .orderBy('seq')
        .limit(limit)
        .compile(),
    );
    return Promise.resolve(rows.map(rowToAudit));
  }

  auditHead(): Promise<{ seq: number; hash: string } | undefined> {
    const r = this.headStmt.get() as { seq: number; hash: string } | undefined;
    return Promise.resolve(r ? { seq: Number(r.seq), hash: r.hash } : undefined);
  }

  auditFor(subject: string): Promise<AuditRecord[]> {
    const rows = this.all(
      this.kysely.selectFrom('audit_records').selectAll().where('subject', '=', subject).orderBy('seq').compile(),
    );
    return Promise.resolve(rows.map(rowToAudit));
  }

  pendingRequests(): Promise<Request[]> {
    const rows = this.all(
      this.kysely.selectFrom('requests').selectAll().where('done_at', 'is', null).orderBy('id').compile(),
    );
    return Promise.resolve(
      rows.map((r) => ({
        id: Number(r.id),
        taskId: r.task_id as string,
        action: r.action as RequestAction,
        actor: r.actor as string,
        data: JSON.parse(r.data as string) as Json,
        createdAt: Number(r.created_at),
      })),
    );
  }

  async acquireLease(owner: string, ttlMs: number, isGone: (lease: Lease) => boolean): Promise<Lease | null> {
    await this.flush();
    const now = Date.now();
    const k = this.kysely;
    const tx = this.db.transaction((): Lease | null => {
      const r = this.get(k.selectFrom('leases').selectAll().where('name', '=', 'engine').compile());
      const current = r ? rowToLease(r) : undefined;
      if (current && current.owner !== owner && current.expiresAt > now && !isGone(current)) {
        throw new SmithError(
          'LEASE_HELD',
          `another smith process (pid ${current.pid} on ${current.host}) owns the engine of this home; ` +
            `wait for it to finish, or use its terminal. Read-only commands (smith tasks, smith task ID) work meanwhile`,
          { context: { ...current } },
        );
      }
      const values = {
        name: 'engine',
        owner,
        pid: process.pid,
        host: hostName(),
        acquired_at: now,
        heartbeat_at: now,
        expires_at: now + ttlMs,
      };
      this.run(
        k
          .insertInto('leases')
          .values(values)
          .onConflict((oc) =>
            oc.column('name').doUpdateSet({
              owner,
              pid: values.pid,
              host: values.host,
              acquired_at: now,
              heartbeat_at: now,
              expires_at: now + ttlMs,
            }),
          )
          .compile(),
      );
      return current && current.owner !== owner ? current : null;
    });
    try {
      return tx.immediate();
    } catch (err) {
      throw this.wrapWriteError(err);
    }
  }

  renewLease(owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    try {
      const r = this.run(
        this.kysely
          .updateTable('leases')
          .set({ heartbeat_at: now, expires_at: now + ttlMs })
          .where('name', '=', 'engine')
          .where('owner', '=', owner)
          .compile(),
      );
      return Promise.resolve(r.changes > 0);
    } catch (err) {
      return Promise.reject(this.wrapWriteError(err));
    }
  }

  async releaseLease(owner: string): Promise<void> {
    await this.flush();
    this.run(this.kysely.deleteFrom('leases').where('name', '=', 'engine').where('owner', '=', owner).compile());
  }

  getLease(): Promise<Lease | undefined> {
    const r = this.get(this.kysely.selectFrom('leases').selectAll().where('name', '=', 'engine').compile());
    return Promise.resolve(r ? rowToLease(r) : undefined);
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      await this.flush();
      this.closed = true;
      this.stmts.clear();
      this.db.close();
    })();
    return this.closing;
  }
}

function rowToLease(r: Row): Lease {
  return {
    owner: r.owner as string,
    pid: Number(r.pid),
    host: r.host as string,
    acquiredAt: Number(r.acquired_at),
    heartbeatAt: Number(r.heartbeat_at),
    expiresAt: Number(r.expires_at),
  };
}

function hostName(): string {
  return hostname();
}
