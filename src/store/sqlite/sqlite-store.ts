/**
 * The SQLite dialect of the Store: one file, WAL journal, `synchronous` FULL (default) or NORMAL,
 * group commit (every change submitted in one tick shares one `BEGIN IMMEDIATE` transaction).
 *
 * SQL is written with Kysely. Each statement shape is compiled by Kysely once and then run as a
 * cached better-sqlite3 prepared statement with parameters the store builds itself (checked against
 * Kysely's on first use; see {@link StatementCache}). Rows of `insertTask`, `insertAttempt`,
 * `event` and `audit` ops are buffered during a group commit and written with multi-row inserts
 * before `COMMIT`; rows of a change that does not apply are dropped from the buffers.
 */
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql, type SqlBool } from 'kysely';
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
  Budget,
  Json,
  Task,
  TaskEvent,
  TaskEventType,
  TaskGovernance,
  TaskTrigger,
  TokenUsage,
  Workflow,
} from '../../core/types.js';
import { MIGRATIONS } from '../migrations/index.js';
import type { Database as Schema } from '../schema.js';
import type {
  AlertRecord,
  AlertState,
  ApiKeyRecord,
  ChatMessageRecord,
  ChatSessionRecord,
  CommitResult,
  Lease,
  Op,
  OutcomeCounts,
  OutcomeQuery,
  Request,
  RequestAction,
  SavedQueryRecord,
  SpendTotals,
  StreamEvent,
  Store,
  StoreOptions,
  TaskFilter,
} from '../store.js';
import type { QueryOptions, QueryResult, SchemaTable } from '../store.js';
import { describeSqliteSchema, ReadOnlyQueries } from './read-only-query.js';
import { RowBuffer } from './row-buffer.js';
import { sqliteValue, StatementCache, type Compilable } from './statement-cache.js';

type Row = Record<string, unknown>;

/** Tasks (and attempts) whose last write {@link SqliteStore.changeStamp} remembers. */
const STAMP_ENTRIES = 20_000;

/** How long a write waits for another process's write lock before it fails STORE_LOCKED, in ms. */
export const BUSY_TIMEOUT_MS = 5000;
/** Kysely over tables named at run time (the shapes below); the SQL still comes from Kysely. */
type LooseSchema = Record<string, Record<string, unknown>>;

interface PendingChange {
  ops: Op[];
  resolve: (r: CommitResult) => void;
  reject: (e: unknown) => void;
}

/** Rows per multi-row INSERT. Smaller remainders use the powers of two below it (≤ 8 statements a table). */
const CHUNK_ROWS = 128;

/** One settable field of a table: its camelCase name, column, whether it holds JSON text, its bit. */
interface Field {
  name: string;
  col: string;
  json: boolean;
  bit: number;
}

/** The settable fields of a table, in the (fixed) order their columns appear in an UPDATE. */
interface FieldSet {
  /** Small number identifying the table in statement keys. */
  id: number;
  table: 'tasks' | 'attempts' | 'workflows';
  what: string;
  list: Field[];
  byName: Map<string, Field>;
}

function fieldSet(
  id: number,
  table: FieldSet['table'],
  what: string,
  cols: Record<string, string>,
  json: string[] = [],
): FieldSet {
  const list = Object.entries(cols).map(([name, col], i) => ({
    name,
    col,
    json: json.includes(col),
    bit: 1 << i,
  }));
  // the mask and the table id share one small integer key (see SqliteStore.update)
  if (list.length > 31) throw new Error(`too many ${what} fields for a bit mask`);
  return { id, table, what, list, byName: new Map(list.map((f) => [f.name, f])) };
}

/** camelCase task field -> column. */
const TASK_FIELDS = fieldSet(
  0,
  'tasks',
  'task',
  {
    workflowId: 'workflow_id',
    key: 'key',
    agent: 'agent',
    capabilities: 'capabilities',
    prompt: 'prompt',
    needs: 'needs',
    trigger: 'trigger',
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
    budget: 'budget',
    costUsd: 'cost_usd',
    tokens: 'tokens',
    sessionId: 'session_id',
    governance: 'governance',
    updatedAt: 'updated_at',
    startedAt: 'started_at',
    endedAt: 'ended_at',
  },
  ['capabilities', 'needs', 'env', 'budget', 'governance'],
);

const ATTEMPT_FIELDS = fieldSet(
  1,
  'attempts',
  'attempt',
  {
    instance: 'instance',
    state: 'state',
    pid: 'pid',
    endedAt: 'ended_at',
    exitCode: 'exit_code',
    signal: 'signal',
    output: 'output',
    error: 'error',
    sessionId: 'session_id',
    costUsd: 'cost_usd',
    tokens: 'tokens',
    usage: 'usage',
  },
  ['usage'],
);

const WORKFLOW_FIELDS = fieldSet(2, 'workflows', 'workflow', {
  name: 'name',
  state: 'state',
  file: 'file',
  dir: 'dir',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
  endedAt: 'ended_at',
});

/** Columns of the buffered tables, in parameter order (primary key first). */
const TASK_ROW_COLS = [
  'id',
  'workflow_id',
  'key',
  'agent',
  'capabilities',
  'prompt',
  'needs',
  'trigger',
  'priority',
  'state',
  'attempts',
  'max_attempts',
  'epoch',
  'timeout_ms',
  'workdir',
  'env',
  'available_at',
  'assigned_agent',
  'output',
  'exit_code',
  'reason',
  'budget',
  'cost_usd',
  'tokens',
  'session_id',
  'governance',
  'created_at',
  'updated_at',
  'started_at',
  'ended_at',
] as const;

const ATTEMPT_ROW_COLS = [
  'id',
  'task_id',
  'number',
  'epoch',
  'agent',
  'instance',
  'state',
  'owner',
  'pid',
  'started_at',
  'ended_at',
  'exit_code',
  'signal',
  'output',
  'error',
  'session_id',
  'cost_usd',
  'tokens',
  'usage',
] as const;

const EVENT_ROW_COLS = ['task_id', 'attempt_id', 'time', 'type', 'data'] as const;

const AUDIT_ROW_COLS = ['seq', 'time', 'actor', 'action', 'subject', 'data', 'prev_hash', 'hash'] as const;

/** Append a task's row parameters (in {@link TASK_ROW_COLS} order). */
function pushTask(out: unknown[], t: Task): void {
  out.push(
    sqliteValue(t.id),
    sqliteValue(t.workflowId),
    sqliteValue(t.key),
    sqliteValue(t.agent),
    sqliteValue(JSON.stringify(t.capabilities)),
    sqliteValue(t.prompt),
    sqliteValue(JSON.stringify(t.needs)),
    // rows written before the column existed read back as the column default
    sqliteValue(t.trigger ?? 'all_success'),
    sqliteValue(t.priority),
    sqliteValue(t.state),
    sqliteValue(t.attempts),
    sqliteValue(t.maxAttempts),
    sqliteValue(t.epoch),
    sqliteValue(t.timeoutMs),
    sqliteValue(t.workdir),
    sqliteValue(JSON.stringify(t.env)),
    sqliteValue(t.availableAt),
    sqliteValue(t.assignedAgent),
    sqliteValue(t.output),
    sqliteValue(t.exitCode),
    sqliteValue(t.reason),
    sqliteValue(t.budget ? JSON.stringify(t.budget) : null),
    sqliteValue(t.costUsd ?? 0),
    sqliteValue(t.tokens ?? 0),
    sqliteValue(t.sessionId ?? null),
    sqliteValue(t.governance ? JSON.stringify(t.governance) : null),
    sqliteValue(t.createdAt),
    sqliteValue(t.updatedAt),
    sqliteValue(t.startedAt),
    sqliteValue(t.endedAt),
  );
}

/** Append an attempt's row parameters (in {@link ATTEMPT_ROW_COLS} order). */
function pushAttempt(out: unknown[], a: Attempt, owner: string): void {
  out.push(
    sqliteValue(a.id),
    sqliteValue(a.taskId),
    sqliteValue(a.number),
    sqliteValue(a.epoch),
    sqliteValue(a.agent),
    sqliteValue(a.instance),
    sqliteValue(a.state),
    sqliteValue(owner),
    sqliteValue(a.pid),
    sqliteValue(a.startedAt),
    sqliteValue(a.endedAt),
    sqliteValue(a.exitCode),
    sqliteValue(a.signal),
    sqliteValue(a.output),
    sqliteValue(a.error),
    sqliteValue(a.sessionId ?? null),
    sqliteValue(a.costUsd ?? 0),
    sqliteValue(a.tokens ?? 0),
    sqliteValue(a.usage ? JSON.stringify(a.usage) : null),
  );
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
    trigger: ((r.trigger as TaskTrigger | null | undefined) ?? 'all_success') as TaskTrigger,
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
    budget: r.budget == null ? null : (JSON.parse(r.budget as string) as Budget),
    costUsd: Number(r.cost_usd ?? 0),
    tokens: Number(r.tokens ?? 0),
    sessionId: (r.session_id as string | null) ?? null,
    governance: r.governance == null ? null : (JSON.parse(r.governance as string) as TaskGovernance),
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
    sessionId: (r.session_id as string | null) ?? null,
    costUsd: Number(r.cost_usd ?? 0),
    tokens: Number(r.tokens ?? 0),
    usage: r.usage == null ? null : (JSON.parse(r.usage as string) as TokenUsage),
  };
}

function rowToEvent(r: Row): TaskEvent {
  return {
    seq: Number(r.seq),
    taskId: r.task_id as string,
    attemptId: (r.attempt_id as string | null) ?? null,
    time: Number(r.time),
    type: r.type as TaskEventType,
    data: JSON.parse(r.data as string) as Json,
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

/** A LIKE pattern matching values that start with `prefix` (its `%`, `_` and `\` taken literally). */
function num(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

function rowToApiKey(r: Row): ApiKeyRecord {
  return {
    id: r.id as string,
    hash: r.hash as string,
    role: r.role as ApiKeyRecord['role'],
    name: r.name as string,
    createdBy: r.created_by as string,
    createdAt: Number(r.created_at),
    expiresAt: num(r.expires_at),
    revokedAt: num(r.revoked_at),
    lastUsedAt: num(r.last_used_at),
  };
}

function rowToChatSession(r: Row): ChatSessionRecord {
  return {
    id: r.id as string,
    agent: r.agent as string,
    title: r.title as string,
    createdBy: r.created_by as string,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

function rowToSavedQuery(r: Row): SavedQueryRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    sql: r.sql as string,
    description: r.description as string,
    createdBy: r.created_by as string,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

function rowToAlert(r: Row): AlertRecord {
  return {
    id: r.id as string,
    slo: r.slo as string,
    state: r.state as AlertState,
    severity: r.severity as AlertRecord['severity'],
    summary: r.summary as string,
    data: JSON.parse(r.data as string) as Json,
    firedAt: Number(r.fired_at),
    ackedAt: num(r.acked_at),
    ackedBy: (r.acked_by as string | null) ?? null,
    resolvedAt: num(r.resolved_at),
    updatedAt: Number(r.updated_at),
  };
}

function prefixPattern(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
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
  if (code === 'ENOTDIR' || code === 'EEXIST') {
    return new StoreError(
      'STORE_NOT_WRITABLE',
      `cannot create the folder of the store ${file} (${code}): a part of its path is a file, not a folder; choose another with --home or SMITH_HOME`,
      { cause: err, context: { file } },
    );
  }
  if (
    code === 'SQLITE_READONLY' ||
    code === 'SQLITE_CANTOPEN' ||
    code === 'EACCES' ||
    code === 'EPERM' ||
    code === 'EROFS'
  ) {
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
 * @returns the open store
 * @throws StoreError STORE_NOT_WRITABLE, STORE_LOCKED or STORE_FAILED with the path and what to do
 */
export async function openSqliteStore(file: string, options: StoreOptions = {}): Promise<SqliteStore> {
  let db: Database.Database;
  try {
    if (!options.readonly) mkdirSync(dirname(file), { recursive: true });
    db = new Database(file, {
      readonly: options.readonly ?? false,
      fileMustExist: options.readonly ?? false,
    });
  } catch (err) {
    throw describeOpenError(file, err);
  }
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    if (!options.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
    } else {
      // read the header now, so a file that is not a database fails here and not on first use
      db.pragma('schema_version');
    }
    db.pragma('foreign_keys = OFF');
  } catch (err) {
    db.close();
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
  /** The same Kysely instance, for statements over a table chosen at run time. */
  private readonly loose: Kysely<LooseSchema>;
  private readonly stmts: StatementCache;
  private readonly adhocStmts = new Map<string, Database.Statement>();
  /** `PRAGMA data_version`: changes when another connection commits (see {@link changeStamp}). */
  private readonly dataVersionStmt: Database.Statement;
  /** Write counter of this connection; per task, the count at its last write (bounded). */
  private writeCount = 0;
  private readonly taskWrites = new Map<string, number>();
  /** The task of each attempt this connection inserted (bounded), to stamp attempt updates. */
  private readonly attemptTasks = new Map<string, string>();
  /** Raised when a write cannot be tied to a task (or a task's count is forgotten): every stamp changes. */
  private stampFloor = 0;
  /** UPDATE statements by (table, set-column mask), then by guard shape; filled from {@link stmts}. */
  private readonly updateStmts = new Map<number, Database.Statement[]>();
  private pending: PendingChange[] = [];
  private scheduled = false;
  private flushWaiters: (() => void)[] = [];
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly begin: Database.Statement;
  private readonly commitStmt: Database.Statement;
  private readonly rollback: Database.Statement;
  private readonly savepoint: Database.Statement;
  private readonly rollbackToSavepoint: Database.Statement;
  private readonly releaseSavepoint: Database.Statement;
  private readonly headStmt: Database.Statement;
  private readonly taskRows = new RowBuffer('tasks', TASK_ROW_COLS, true);
  private readonly attemptRows = new RowBuffer('attempts', ATTEMPT_ROW_COLS, true);
  private readonly eventRows = new RowBuffer('task_events', EVENT_ROW_COLS, false);
  private readonly auditRows = new RowBuffer('audit_records', AUDIT_ROW_COLS, false);

  /**
   * Use {@link openSqliteStore}.
   * @param file - the database file (for messages)
   * @param db - the open, migrated connection
   * @param kysely - Kysely over `db`
   */
  constructor(file: string, db: Database.Database, kysely: Kysely<Schema>) {
    this.location = file;
    this.db = db;
    this.kysely = kysely;
    this.loose = kysely as unknown as Kysely<LooseSchema>;
    this.stmts = new StatementCache(db);
    this.begin = db.prepare('BEGIN IMMEDIATE');
    this.commitStmt = db.prepare('COMMIT');
    this.rollback = db.prepare('ROLLBACK');
    this.savepoint = db.prepare('SAVEPOINT change');
    this.rollbackToSavepoint = db.prepare('ROLLBACK TO change');
    this.releaseSavepoint = db.prepare('RELEASE change');
    const head = this.kysely
      .selectFrom('audit_records')
      .select(['seq', 'hash'])
      .orderBy('seq', 'desc')
      .limit(1)
      .compile();
    this.headStmt = db.prepare(head.sql).bind(...head.parameters.map(sqliteValue));
    this.dataVersionStmt = db.prepare('PRAGMA data_version').pluck();
  }

  // ------------------------------------------------------------------ statements by shape

  private stmt(key: string, params: unknown[], build: () => Compilable): Database.Statement {
    return this.stmts.get(key, params, build);
  }

  private run(key: string, params: unknown[], build: () => Compilable): Database.RunResult {
    return this.stmt(key, params, build).run(params);
  }

  private all(key: string, params: unknown[], build: () => Compilable): Row[] {
    return this.stmt(key, params, build).all(params) as Row[];
  }

  private get(key: string, params: unknown[], build: () => Compilable): Row | undefined {
    return this.stmt(key, params, build).get(params) as Row | undefined;
  }

  /** Note a write to a task (for {@link changeStamp}). */
  private touch(taskId: string): void {
    this.remember(this.taskWrites, taskId, ++this.writeCount);
  }

  /** Set a key in a map bounded to {@link STAMP_ENTRIES}; forgetting one raises the floor. */
  private remember<V>(map: Map<string, V>, key: string, value: V): void {
    map.delete(key);
    map.set(key, value);
    if (map.size > STAMP_ENTRIES) {
      map.delete(map.keys().next().value!);
      this.stampFloor = ++this.writeCount;
    }
  }

  changeStamp(taskId: string): string {
    const other = this.dataVersionStmt.get() as number;
    return `${other}.${this.taskWrites.get(taskId) ?? 0}.${this.stampFloor}`;
  }

  /**
   * The statement of a query built by Kysely, prepared once per SQL text. For the tables of the
   * server (keys, chat, saved queries, alerts), whose writes are rare beside the engine's.
   */
  private adhoc(q: Compilable): { stmt: Database.Statement; params: unknown[] } {
    const c = q.compile();
    let stmt = this.adhocStmts.get(c.sql);
    if (stmt === undefined) {
      stmt = this.db.prepare(c.sql);
      this.adhocStmts.set(c.sql, stmt);
    }
    return { stmt, params: c.parameters.map(sqliteValue) };
  }

  private exec(q: Compilable): void {
    const { stmt, params } = this.adhoc(q);
    stmt.run(params);
  }

  private rows(q: Compilable): Row[] {
    const { stmt, params } = this.adhoc(q);
    return stmt.all(params) as Row[];
  }

  /** INSERT a whole row, or replace every column of the row with the same key. */
  private upsert(
    table: 'api_keys' | 'chat_sessions' | 'saved_queries' | 'alerts',
    key: string[],
    row: Record<string, unknown>,
  ): void {
    const set: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(row)) if (!key.includes(k)) set[k] = v;
    const loose = this.loose as unknown as Kysely<Record<string, Record<string, unknown>>>;
    this.exec(
      loose
        .insertInto(table)
        .values(row)
        .onConflict((oc) => oc.columns(key).doUpdateSet(set)),
    );
  }

  /**
   * Run a guarded (or not) UPDATE of one row by id.
   * @returns the number of rows changed
   */
  private update(
    fields: FieldSet,
    id: string,
    set: Record<string, unknown>,
    state: readonly string[] | undefined,
    epoch: number | undefined,
  ): number {
    let mask = 0;
    for (const name in set) {
      const f = fields.byName.get(name);
      if (f === undefined) throw new TypeError(`unknown ${fields.what} field ${name}`);
      if (set[name] !== undefined) mask |= f.bit;
    }
    const params: unknown[] = [];
    for (const f of fields.list) {
      if ((mask & f.bit) === 0) continue;
      const v = set[f.name];
      params.push(sqliteValue(f.json ? JSON.stringify(v) : v));
    }
    params.push(sqliteValue(id));
    if (state !== undefined) for (const s of state) params.push(sqliteValue(s));
    if (epoch !== undefined) params.push(sqliteValue(epoch));
    // fast path: shapes by number (no string key, no closure); the first use goes through Kysely
    const guards = (state === undefined ? 0 : state.length + 1) * 2 + (epoch === undefined ? 0 : 1);
    const byMask = fields.id * 0x80000000 + mask;
    let shapes = this.updateStmts.get(byMask);
    let stmt = shapes?.[guards];
    if (stmt === undefined) {
      const key = `update:${fields.table}:${mask}:${state === undefined ? -1 : state.length}:${epoch === undefined ? 0 : 1}`;
      stmt = this.stmt(key, params, () => {
        const values: Record<string, unknown> = {};
        let j = 0;
        for (const f of fields.list) if ((mask & f.bit) !== 0) values[f.col] = params[j++];
        let q = this.loose.updateTable(fields.table).set(values).where('id', '=', id);
        if (state !== undefined) q = q.where('state', 'in', state);
        if (epoch !== undefined) q = q.where('epoch', '=', epoch);
        return q;
      });
      if (shapes === undefined) this.updateStmts.set(byMask, (shapes = []));
      shapes[guards] = stmt;
    }
    return stmt.run(params).changes;
  }

  /** Insert `n` rows (flat `params`) into `buf`'s table with one statement. */
  private insertRows(buf: RowBuffer, n: number, params: unknown[]): void {
    const stmt = this.stmt(`insert:${buf.table}:${n}`, params, () => {
      const w = buf.cols.length;
      const rows: Record<string, unknown>[] = [];
      for (let r = 0; r < n; r++) {
        const row: Record<string, unknown> = {};
        for (let c = 0; c < w; c++) row[buf.cols[c]!] = params[r * w + c];
        rows.push(row);
      }
      return this.loose.insertInto(buf.table).values(rows);
    });
    stmt.run(params);
  }

  /** Write every buffered row of `buf` (chunks of {@link CHUNK_ROWS}, then powers of two), then clear it. */
  private writeRows(buf: RowBuffer): void {
    const total = buf.rows;
    if (total === 0) return;
    const w = buf.cols.length;
    let done = 0;
    while (done < total) {
      let n = CHUNK_ROWS;
      while (n > total - done) n >>= 1;
      const params = done === 0 && n === total ? buf.params : buf.params.slice(done * w, (done + n) * w);
      this.insertRows(buf, n, params);
      done += n;
    }
    buf.clear();
  }

  private writeAllRows(): void {
    this.writeRows(this.taskRows);
    this.writeRows(this.attemptRows);
    this.writeRows(this.eventRows);
    this.writeRows(this.auditRows);
  }

  private clearAllRows(): void {
    this.taskRows.clear();
    this.attemptRows.clear();
    this.eventRows.clear();
    this.auditRows.clear();
  }

  // ------------------------------------------------------------------ group commit

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
        `the store ${this.location} stayed locked by another process for ${BUSY_TIMEOUT_MS / 1000} s; nothing was written. Retry when the other process is done`,
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
      const results: CommitResult[] = new Array<CommitResult>(batch.length);
      for (let i = 0; i < batch.length; i++) results[i] = this.runChange(batch[i]!.ops, now, chain);
      this.writeAllRows();
      this.commitStmt.run();
      return results;
    } catch (err) {
      this.clearAllRows();
      if (this.db.inTransaction) this.rollback.run();
      throw err;
    }
  }

  /**
   * Apply one change inside the open transaction: all of it, or (when a guard fails) none of it.
   *
   * Rows of inserts are buffered, so a change whose guard fails drops them from the buffers. Writes
   * that run at once (updates, upserts, requests) and come before the change's last guard run
   * inside a savepoint that is rolled back when a guard fails.
   */
  private runChange(ops: Op[], now: number, chain: { seq: number; hash: string }): CommitResult {
    // Find the last guard; write buffered rows that this change updates (so the update sees them);
    // a change that inserts a row and then updates it writes its inserts at once (`direct`).
    let lastGuard = -1;
    let direct = false;
    let insertedTasks: string[] | undefined;
    let insertedAttempts: string[] | undefined;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      switch (op.op) {
        case 'insertTask':
          (insertedTasks ??= []).push(op.task.id);
          break;
        case 'insertAttempt':
          (insertedAttempts ??= []).push(op.attempt.id);
          break;
        case 'updateTask':
          if (op.expect !== undefined) lastGuard = i;
          if (this.taskRows.ids!.has(op.id)) this.writeRows(this.taskRows);
          if (insertedTasks?.includes(op.id)) direct = true;
          break;
        case 'updateAttempt':
          if (op.expect !== undefined) lastGuard = i;
          if (this.attemptRows.ids!.has(op.id)) this.writeRows(this.attemptRows);
          if (insertedAttempts?.includes(op.id)) direct = true;
          break;
        case 'updateWorkflow':
          if (op.expect !== undefined) lastGuard = i;
          break;
        default:
          break;
      }
    }
    const marks =
      lastGuard < 0
        ? undefined
        : [this.taskRows.rows, this.attemptRows.rows, this.eventRows.rows, this.auditRows.rows, chain.seq];
    const savedHash = chain.hash;
    const audit: { seq: number; hash: string }[] = [];
    let inSavepoint = false;
    let applied = true;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (i < lastGuard && !inSavepoint && writesAtOnce(op, direct)) {
        this.savepoint.run();
        inSavepoint = true;
      }
      if (!this.applyOp(op, now, chain, audit, direct, i > lastGuard)) {
        applied = false;
        break;
      }
    }
    if (inSavepoint) {
      if (!applied) this.rollbackToSavepoint.run();
      this.releaseSavepoint.run();
    }
    if (!applied) {
      this.taskRows.truncate(marks![0]!);
      this.attemptRows.truncate(marks![1]!);
      this.eventRows.truncate(marks![2]!);
      this.auditRows.truncate(marks![3]!);
      chain.seq = marks![4]!;
      chain.hash = savedHash;
      return { applied: false, audit: [] };
    }
    return { applied: true, audit };
  }

  /**
   * Buffer a row; write the buffer when it holds a full chunk and no guard of the change is left.
   * @param settled - no guard follows in this change, so its rows can no longer be dropped
   */
  private buffered(buf: RowBuffer, id: unknown, settled: boolean): void {
    buf.added(id);
    if (settled && buf.rows >= CHUNK_ROWS) this.writeRows(buf);
  }

  /**
   * Apply one op inside the open transaction.
   * @param direct - insert tasks and attempts at once instead of buffering them
   * @param settled - no guard follows this op in its change
   * @returns false when its guard did not hold
   */
  private applyOp(
    op: Op,
    now: number,
    chain: { seq: number; hash: string },
    audit: { seq: number; hash: string }[],
    direct: boolean,
    settled: boolean,
  ): boolean {
    switch (op.op) {
      case 'insertTask': {
        this.touch(op.task.id);
        if (direct) {
          const p: unknown[] = [];
          pushTask(p, op.task);
          this.insertRows(this.taskRows, 1, p);
        } else {
          pushTask(this.taskRows.params, op.task);
          this.buffered(this.taskRows, op.task.id, settled);
        }
        return true;
      }
      case 'updateTask': {
        this.touch(op.id);
        const changes = this.update(
          TASK_FIELDS,
          op.id,
          op.set as Record<string, unknown>,
          op.expect?.state,
          op.expect?.epoch,
        );
        return changes > 0 || op.expect === undefined;
      }
      case 'insertAttempt': {
        this.touch(op.attempt.taskId);
        this.remember(this.attemptTasks, op.attempt.id, op.attempt.taskId);
        if (direct) {
          const p: unknown[] = [];
          pushAttempt(p, op.attempt, op.owner);
          this.insertRows(this.attemptRows, 1, p);
        } else {
          pushAttempt(this.attemptRows.params, op.attempt, op.owner);
          this.buffered(this.attemptRows, op.attempt.id, settled);
        }
        return true;
      }
      case 'updateAttempt': {
        const of = this.attemptTasks.get(op.id);
        if (of !== undefined) this.touch(of);
        else this.stampFloor = ++this.writeCount;
        const changes = this.update(
          ATTEMPT_FIELDS,
          op.id,
          op.set as Record<string, unknown>,
          op.expect?.state,
          undefined,
        );
        return changes > 0 || op.expect === undefined;
      }
      case 'insertWorkflow': {
        const w = op.workflow;
        const params = [
          w.id,
          w.name,
          w.state,
          w.file,
          w.dir,
          JSON.stringify(op.spec),
          w.createdAt,
          w.updatedAt,
          w.endedAt,
        ].map(sqliteValue);
        this.run('insertWorkflow', params, () =>
          this.kysely.insertInto('workflows').values({
            id: params[0] as string,
            name: params[1] as string,
            state: params[2] as string,
            file: params[3] as string | null,
            dir: params[4] as string,
            spec: params[5] as string,
            created_at: params[6] as number,
            updated_at: params[7] as number,
            ended_at: params[8] as number | null,
          }),
        );
        return true;
      }
      case 'updateWorkflow': {
        const changes = this.update(
          WORKFLOW_FIELDS,
          op.id,
          op.set as Record<string, unknown>,
          op.expect?.state,
          undefined,
        );
        return changes > 0 || op.expect === undefined;
      }
      case 'event': {
        this.touch(op.taskId);
        const p = this.eventRows.params;
        p.push(
          sqliteValue(op.taskId),
          sqliteValue(op.attemptId),
          sqliteValue(op.time ?? now),
          sqliteValue(op.type),
          sqliteValue(JSON.stringify(op.data)),
        );
        this.buffered(this.eventRows, null, settled);
        return true;
      }
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
        this.auditRows.params.push(
          seq,
          sqliteValue(time),
          sqliteValue(op.actor),
          sqliteValue(op.action),
          sqliteValue(op.subject),
          sqliteValue(JSON.stringify(op.data)),
          chain.hash,
          hash,
        );
        chain.seq = seq;
        chain.hash = hash;
        audit.push({ seq, hash });
        this.buffered(this.auditRows, null, settled);
        return true;
      }
      case 'putWaiver': {
        const data = JSON.stringify(op.data);
        const params = [op.id, op.taskId, data, op.createdAt, data].map(sqliteValue);
        this.run('putWaiver', params, () =>
          this.kysely
            .insertInto('waivers')
            .values({ id: op.id, task_id: op.taskId, data, created_at: op.createdAt })
            .onConflict((oc) => oc.column('id').doUpdateSet({ data })),
        );
        return true;
      }
      case 'upsertAgent': {
        const spec = JSON.stringify(op.spec);
        const params = [op.spec.name, spec, now, spec, now].map(sqliteValue);
        this.run('upsertAgent', params, () =>
          this.kysely
            .insertInto('agents')
            .values({ name: params[0] as string, spec, updated_at: now })
            .onConflict((oc) => oc.column('name').doUpdateSet({ spec, updated_at: now })),
        );
        return true;
      }
      case 'setInstance': {
        const restarts = op.restarts;
        const params: unknown[] = [op.agent, op.index, op.state, restarts ?? 0, now, op.state, now];
        if (restarts !== undefined) params.push(restarts);
        for (let i = 0; i < params.length; i++) params[i] = sqliteValue(params[i]);
        this.run(`setInstance:${restarts === undefined ? 0 : 1}`, params, () => {
          const update: Record<string, unknown> = { state: params[5], updated_at: params[6] };
          if (restarts !== undefined) update.restarts = params[7];
          return this.kysely
            .insertInto('agent_instances')
            .values({
              agent: params[0] as string,
              idx: params[1] as number,
              state: params[2] as string,
              restarts: params[3] as number,
              updated_at: params[4] as number,
            })
            .onConflict((oc) => oc.columns(['agent', 'idx']).doUpdateSet(update));
        });
        return true;
      }
      case 'request': {
        const params = [op.taskId, op.action, op.actor, JSON.stringify(op.data ?? null), now, null, null].map(
          sqliteValue,
        );
        this.run('request', params, () =>
          this.kysely.insertInto('requests').values({
            task_id: params[0] as string,
            action: params[1] as string,
            actor: params[2] as string,
            data: params[3] as string,
            created_at: params[4] as number,
            done_at: null,
            result: null,
          }),
        );
        return true;
      }
      case 'putApiKey': {
        const k = op.key;
        this.upsert('api_keys', ['id'], {
          id: k.id,
          hash: k.hash,
          role: k.role,
          name: k.name,
          created_by: k.createdBy,
          created_at: k.createdAt,
          expires_at: k.expiresAt,
          revoked_at: k.revokedAt,
          last_used_at: k.lastUsedAt,
        });
        return true;
      }
      case 'putChatSession': {
        const c = op.session;
        this.upsert('chat_sessions', ['id'], {
          id: c.id,
          agent: c.agent,
          title: c.title,
          created_by: c.createdBy,
          created_at: c.createdAt,
          updated_at: c.updatedAt,
        });
        return true;
      }
      case 'chatMessage': {
        const m = op.message;
        this.exec(
          this.kysely.insertInto('chat_messages').values({
            session_id: m.sessionId,
            seq: m.seq,
            role: m.role,
            content: m.content,
            data: JSON.stringify(m.data),
            time: m.time,
          }),
        );
        return true;
      }
      case 'putSavedQuery': {
        const q = op.query;
        this.upsert('saved_queries', ['id'], {
          id: q.id,
          name: q.name,
          sql: q.sql,
          description: q.description,
          created_by: q.createdBy,
          created_at: q.createdAt,
          updated_at: q.updatedAt,
        });
        return true;
      }
      case 'deleteSavedQuery': {
        this.exec(this.kysely.deleteFrom('saved_queries').where('id', '=', op.id));
        return true;
      }
      case 'putAlert': {
        const a = op.alert;
        this.upsert('alerts', ['id'], {
          id: a.id,
          slo: a.slo,
          state: a.state,
          severity: a.severity,
          summary: a.summary,
          data: JSON.stringify(a.data),
          fired_at: a.firedAt,
          acked_at: a.ackedAt,
          acked_by: a.ackedBy,
          resolved_at: a.resolvedAt,
          updated_at: a.updatedAt,
        });
        return true;
      }
      case 'requestDone': {
        const params = [now, op.result, op.id].map(sqliteValue);
        this.run('requestDone', params, () =>
          this.kysely
            .updateTable('requests')
            .set({ done_at: params[0] as number, result: params[1] as string })
            .where('id', '=', params[2] as number),
        );
        return true;
      }
    }
  }

  // ------------------------------------------------------------------ reads

  private taskById(id: string): Row | undefined {
    const params = [sqliteValue(id)];
    return this.get('getTask', params, () =>
      this.kysely.selectFrom('tasks').selectAll().where('id', '=', id),
    );
  }

  getTask(id: string): Promise<Task | undefined> {
    const r = this.taskById(id);
    return Promise.resolve(r ? rowToTask(r) : undefined);
  }

  findTasks(idOrKeyOrPrefix: string): Promise<Task[]> {
    const exact = this.taskById(idOrKeyOrPrefix);
    if (exact) return Promise.resolve([rowToTask(exact)]);
    const pattern = prefixPattern(idOrKeyOrPrefix);
    const params = [pattern, idOrKeyOrPrefix, 50];
    const rows = this.all('findTasks', params, () =>
      this.kysely
        .selectFrom('tasks')
        .selectAll()
        .where((eb) =>
          eb.or([sql<SqlBool>`${eb.ref('id')} like ${pattern} escape '\\'`, eb('key', '=', idOrKeyOrPrefix)]),
        )
        .orderBy('created_at', 'desc')
        .limit(50),
    );
    return Promise.resolve(rows.map(rowToTask));
  }

  listTasks(filter: TaskFilter = {}): Promise<Task[]> {
    const states = filter.state && filter.state.length > 0 ? filter.state : undefined;
    const agent = filter.agent ? filter.agent : undefined;
    const workflowId = filter.workflowId ? filter.workflowId : undefined;
    const newest = filter.newestFirst ? 1 : 0;
    const limit = filter.limit;
    const after = filter.after;
    const params: unknown[] = [];
    if (states) for (const s of states) params.push(sqliteValue(s));
    if (agent !== undefined) params.push(agent, agent);
    if (workflowId !== undefined) params.push(workflowId);
    if (after !== undefined) params.push(after.createdAt, after.createdAt, after.id);
    if (limit !== undefined) params.push(sqliteValue(limit));
    const key = `listTasks:${states ? states.length : 0}:${agent === undefined ? 0 : 1}:${workflowId === undefined ? 0 : 1}:${newest}:${limit === undefined ? 0 : 1}:${after === undefined ? 0 : 1}`;
    const rows = this.all(key, params, () => {
      let q = this.kysely.selectFrom('tasks').selectAll();
      if (states) q = q.where('state', 'in', states);
      if (agent !== undefined)
        q = q.where((eb) => eb.or([eb('agent', '=', agent), eb('assigned_agent', '=', agent)]));
      if (workflowId !== undefined) q = q.where('workflow_id', '=', workflowId);
      if (after !== undefined) {
        const cmp = newest ? '<' : '>';
        q = q.where((eb) =>
          eb.or([
            eb('created_at', cmp, after.createdAt),
            eb.and([eb('created_at', '=', after.createdAt), eb('id', cmp, after.id)]),
          ]),
        );
      }
      q = newest
        ? q.orderBy('created_at', 'desc').orderBy('id', 'desc')
        : q.orderBy('created_at').orderBy('id');
      if (limit !== undefined) q = q.limit(limit);
      return q;
    });
    return Promise.resolve(rows.map(rowToTask));
  }

  countTasks(workflowId: string): Promise<Partial<Record<TaskState, number>>> {
    const rows = this.all('countTasks', [sqliteValue(workflowId)], () =>
      this.kysely
        .selectFrom('tasks')
        .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
        .where('workflow_id', '=', workflowId)
        .groupBy('state'),
    );
    const out: Partial<Record<TaskState, number>> = {};
    for (const r of rows) out[r.state as TaskState] = Number(r.n);
    return Promise.resolve(out);
  }

  spendTotals(): Promise<SpendTotals> {
    const byAgentRows = this.all('spendByAgent', [], () =>
      this.kysely
        .selectFrom('attempts')
        .select([
          'agent',
          (eb) => eb.fn.sum<number>('cost_usd').as('usd'),
          (eb) => eb.fn.sum<number>('tokens').as('tokens'),
        ])
        .groupBy('agent'),
    );
    const byWfRows = this.all('spendByWorkflow', [], () =>
      this.kysely
        .selectFrom('tasks')
        .select([
          'workflow_id',
          (eb) => eb.fn.sum<number>('cost_usd').as('usd'),
          (eb) => eb.fn.sum<number>('tokens').as('tokens'),
        ])
        .where('workflow_id', 'is not', null)
        .groupBy('workflow_id'),
    );
    const out: SpendTotals = { total: { usd: 0, tokens: 0 }, byAgent: {}, byWorkflow: {} };
    for (const r of byAgentRows) {
      const spend = { usd: Number(r.usd ?? 0), tokens: Number(r.tokens ?? 0) };
      if (spend.usd > 0 || spend.tokens > 0) out.byAgent[r.agent as string] = spend;
    }
    for (const r of byWfRows) {
      const spend = { usd: Number(r.usd ?? 0), tokens: Number(r.tokens ?? 0) };
      if (spend.usd === 0 && spend.tokens === 0) continue;
      out.byWorkflow[r.workflow_id as string] = spend;
      out.total.usd += spend.usd;
      out.total.tokens += spend.tokens;
    }
    return Promise.resolve(out);
  }

  getAttempts(taskId: string): Promise<Attempt[]> {
    const params = [sqliteValue(taskId)];
    const rows = this.all('getAttempts', params, () =>
      this.kysely.selectFrom('attempts').selectAll().where('task_id', '=', taskId).orderBy('number'),
    );
    return Promise.resolve(rows.map(rowToAttempt));
  }

  listAttempts(states: AttemptState[]): Promise<(Attempt & { owner: string })[]> {
    const params = states.map(sqliteValue);
    const rows = this.all(`listAttempts:${states.length}`, params, () =>
      this.kysely.selectFrom('attempts').selectAll().where('state', 'in', states),
    );
    return Promise.resolve(rows.map(rowToAttempt));
  }

  listWaivers(taskId?: string): Promise<{ id: string; taskId: string; data: Json; createdAt: number }[]> {
    const params = taskId === undefined ? [] : [sqliteValue(taskId)];
    const rows = this.all(`listWaivers:${params.length}`, params, () => {
      const q = this.kysely.selectFrom('waivers').selectAll().orderBy('created_at').orderBy('id');
      return taskId === undefined ? q : q.where('task_id', '=', taskId);
    });
    return Promise.resolve(
      rows.map((r) => ({
        id: r.id as string,
        taskId: r.task_id as string,
        data: JSON.parse(r.data as string) as Json,
        createdAt: Number(r.created_at),
      })),
    );
  }

  eventsOfType(taskId: string, type: TaskEventType): Promise<TaskEvent[]> {
    const rows = this.all('eventsOfType', [sqliteValue(taskId), sqliteValue(type)], () =>
      this.kysely
        .selectFrom('task_events')
        .selectAll()
        .where('task_id', '=', taskId)
        .where('type', '=', type)
        .orderBy('seq'),
    );
    return Promise.resolve(rows.map(rowToEvent));
  }

  getEvents(taskId: string, afterSeq = 0, limit = 10_000): Promise<TaskEvent[]> {
    const params = [taskId, afterSeq, limit].map(sqliteValue);
    const rows = this.all('getEvents', params, () =>
      this.kysely
        .selectFrom('task_events')
        .selectAll()
        .where('task_id', '=', taskId)
        .where('seq', '>', afterSeq)
        .orderBy('seq')
        .limit(limit),
    );
    return Promise.resolve(rows.map(rowToEvent));
  }

  getWorkflow(id: string): Promise<Workflow | undefined> {
    const params = [sqliteValue(id)];
    const r = this.get('getWorkflow', params, () =>
      this.kysely.selectFrom('workflows').selectAll().where('id', '=', id),
    );
    return Promise.resolve(r ? rowToWorkflow(r) : undefined);
  }

  findWorkflows(idOrPrefix: string): Promise<Workflow[]> {
    const pattern = prefixPattern(idOrPrefix);
    const params = [pattern, idOrPrefix, 50];
    const rows = this.all('findWorkflows', params, () =>
      this.kysely
        .selectFrom('workflows')
        .selectAll()
        .where((eb) =>
          eb.or([sql<SqlBool>`${eb.ref('id')} like ${pattern} escape '\\'`, eb('name', '=', idOrPrefix)]),
        )
        .orderBy('created_at', 'desc')
        .limit(50),
    );
    return Promise.resolve(rows.map(rowToWorkflow));
  }

  listWorkflows(states?: WorkflowState[]): Promise<Workflow[]> {
    const filtered = states && states.length > 0 ? states : undefined;
    const params = filtered ? filtered.map(sqliteValue) : [];
    const rows = this.all(`listWorkflows:${filtered ? filtered.length : 0}`, params, () => {
      let q = this.kysely.selectFrom('workflows').selectAll();
      if (filtered) q = q.where('state', 'in', filtered);
      return q.orderBy('created_at');
    });
    return Promise.resolve(rows.map(rowToWorkflow));
  }

  getWorkflowSpec(id: string): Promise<Json | undefined> {
    const params = [sqliteValue(id)];
    const r = this.get('getWorkflowSpec', params, () =>
      this.kysely.selectFrom('workflows').select('spec').where('id', '=', id),
    );
    return Promise.resolve(r ? (JSON.parse(r.spec as string) as Json) : undefined);
  }

  listAgents(): Promise<AgentRecord[]> {
    const agents = this.all('listAgents', [], () =>
      this.kysely.selectFrom('agents').selectAll().orderBy('name'),
    );
    const inst = this.all('listInstances', [], () =>
      this.kysely.selectFrom('agent_instances').selectAll().orderBy('agent').orderBy('idx'),
    );
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
    const params = [fromSeq, limit].map(sqliteValue);
    const rows = this.all('auditRecords', params, () =>
      this.kysely
        .selectFrom('audit_records')
        .selectAll()
        .where('seq', '>=', fromSeq)
        .orderBy('seq')
        .limit(limit),
    );
    return Promise.resolve(rows.map(rowToAudit));
  }

  auditHead(): Promise<{ seq: number; hash: string } | undefined> {
    const r = this.headStmt.get() as { seq: number; hash: string } | undefined;
    return Promise.resolve(r ? { seq: Number(r.seq), hash: r.hash } : undefined);
  }

  auditFor(subject: string): Promise<AuditRecord[]> {
    const params = [sqliteValue(subject)];
    const rows = this.all('auditFor', params, () =>
      this.kysely.selectFrom('audit_records').selectAll().where('subject', '=', subject).orderBy('seq'),
    );
    return Promise.resolve(rows.map(rowToAudit));
  }

  pendingRequests(): Promise<Request[]> {
    const rows = this.all('pendingRequests', [], () =>
      this.kysely.selectFrom('requests').selectAll().where('done_at', 'is', null).orderBy('id'),
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

  eventsSince(afterSeq: number, limit: number): Promise<StreamEvent[]> {
    const params = [afterSeq, limit].map(sqliteValue);
    const rows = this.all('eventsSince', params, () =>
      this.kysely
        .selectFrom('task_events')
        .leftJoin('tasks', 'tasks.id', 'task_events.task_id')
        .selectAll('task_events')
        .select('tasks.workflow_id')
        .where('task_events.seq', '>', afterSeq)
        .orderBy('task_events.seq')
        .limit(limit),
    );
    return Promise.resolve(
      rows.map((r) => ({ ...rowToEvent(r), workflowId: (r.workflow_id as string | null) ?? null })),
    );
  }

  lastEventSeq(): Promise<number> {
    const r = this.get('lastEventSeq', [], () =>
      this.kysely.selectFrom('task_events').select((eb) => eb.fn.max('seq').as('seq')),
    );
    return Promise.resolve(Number(r?.seq ?? 0));
  }

  getApiKey(id: string): Promise<ApiKeyRecord | undefined> {
    const r = this.rows(this.kysely.selectFrom('api_keys').selectAll().where('id', '=', id))[0];
    return Promise.resolve(r ? rowToApiKey(r) : undefined);
  }

  listApiKeys(): Promise<ApiKeyRecord[]> {
    const rows = this.rows(
      this.kysely.selectFrom('api_keys').selectAll().orderBy('created_at').orderBy('id'),
    );
    return Promise.resolve(rows.map(rowToApiKey));
  }

  getChatSession(id: string): Promise<ChatSessionRecord | undefined> {
    const r = this.rows(this.kysely.selectFrom('chat_sessions').selectAll().where('id', '=', id))[0];
    return Promise.resolve(r ? rowToChatSession(r) : undefined);
  }

  listChatSessions(): Promise<ChatSessionRecord[]> {
    const rows = this.rows(
      this.kysely.selectFrom('chat_sessions').selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc'),
    );
    return Promise.resolve(rows.map(rowToChatSession));
  }

  chatMessages(sessionId: string, afterSeq: number, limit: number): Promise<ChatMessageRecord[]> {
    const rows = this.rows(
      this.kysely
        .selectFrom('chat_messages')
        .selectAll()
        .where('session_id', '=', sessionId)
        .where('seq', '>', afterSeq)
        .orderBy('seq')
        .limit(limit),
    );
    return Promise.resolve(
      rows.map((r) => ({
        sessionId: r.session_id as string,
        seq: Number(r.seq),
        role: r.role as ChatMessageRecord['role'],
        content: r.content as string,
        data: JSON.parse(r.data as string) as Json,
        time: Number(r.time),
      })),
    );
  }

  getSavedQuery(idOrName: string): Promise<SavedQueryRecord | undefined> {
    const r = this.rows(
      this.kysely
        .selectFrom('saved_queries')
        .selectAll()
        .where((eb) => eb.or([eb('id', '=', idOrName), eb('name', '=', idOrName)]))
        .orderBy('id')
        .limit(1),
    )[0];
    return Promise.resolve(r ? rowToSavedQuery(r) : undefined);
  }

  listSavedQueries(): Promise<SavedQueryRecord[]> {
    const rows = this.rows(this.kysely.selectFrom('saved_queries').selectAll().orderBy('name'));
    return Promise.resolve(rows.map(rowToSavedQuery));
  }

  getAlert(id: string): Promise<AlertRecord | undefined> {
    const r = this.rows(this.kysely.selectFrom('alerts').selectAll().where('id', '=', id))[0];
    return Promise.resolve(r ? rowToAlert(r) : undefined);
  }

  listAlerts(states?: AlertState[]): Promise<AlertRecord[]> {
    let q = this.kysely.selectFrom('alerts').selectAll();
    if (states && states.length > 0) q = q.where('state', 'in', states);
    const rows = this.rows(q.orderBy('fired_at', 'desc').orderBy('id', 'desc'));
    return Promise.resolve(rows.map(rowToAlert));
  }

  taskOutcomeCounts(query: OutcomeQuery): Promise<OutcomeCounts[]> {
    if (query.since.length === 0) return Promise.resolve([]);
    const from = Math.min(...query.since);
    const threshold = query.thresholdMs ?? -1;
    // one pass over the tasks that ended since the earliest window: a conditional sum per window
    let q = this.kysely
      .selectFrom('tasks')
      .where('state', 'in', ['completed', 'failed', 'rejected'])
      .where('ended_at', '>=', from);
    if (query.agent !== undefined) {
      const agent = query.agent;
      q = q.where((eb) => eb.or([eb('agent', '=', agent), eb('assigned_agent', '=', agent)]));
    }
    const sums = query.since.flatMap((since, i) => [
      sql<number>`sum(case when ended_at >= ${since} then 1 else 0 end)`.as(`e${i}`),
      sql<number>`sum(case when ended_at >= ${since} and state = 'completed' then 1 else 0 end)`.as(`c${i}`),
      sql<number>`sum(case when ended_at >= ${since} and started_at is not null then 1 else 0 end)`.as(
        `t${i}`,
      ),
      sql<number>`sum(case when ended_at >= ${since} and started_at is not null and ended_at - started_at <= ${threshold} then 1 else 0 end)`.as(
        `f${i}`,
      ),
    ]);
    const r = this.rows(q.select(sums))[0] ?? {};
    return Promise.resolve(
      query.since.map((_, i) => ({
        ended: Number(r[`e${i}`] ?? 0),
        completed: Number(r[`c${i}`] ?? 0),
        timed: Number(r[`t${i}`] ?? 0),
        fast: Number(r[`f${i}`] ?? 0),
      })),
    );
  }

  countTasksByState(): Promise<Partial<Record<TaskState, number>>> {
    const rows = this.all('countTasksByState', [], () =>
      this.kysely
        .selectFrom('tasks')
        .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
        .groupBy('state'),
    );
    const out: Partial<Record<TaskState, number>> = {};
    for (const r of rows) out[r.state as TaskState] = Number(r.n);
    return Promise.resolve(out);
  }

  /** The query processes of {@link readOnlyQuery}; started on first use, stopped by {@link close}. */
  private readOnlyQueries: ReadOnlyQueries | undefined;

  readOnlyQuery(sql: string, opts: QueryOptions): Promise<QueryResult> {
    if (this.closed || this.closing)
      return Promise.reject(new SmithError('SHUTTING_DOWN', `the store ${this.location} is closed`));
    this.readOnlyQueries ??= new ReadOnlyQueries(this.location);
    return this.readOnlyQueries.run(sql, opts);
  }

  describeSchema(): Promise<SchemaTable[]> {
    if (this.closed)
      return Promise.reject(new SmithError('SHUTTING_DOWN', `the store ${this.location} is closed`));
    return Promise.resolve(describeSqliteSchema(this.db));
  }

  // ------------------------------------------------------------------ lease

  private leaseRow(): Row | undefined {
    return this.get('getLease', ['engine'], () =>
      this.kysely.selectFrom('leases').selectAll().where('name', '=', 'engine'),
    );
  }

  async acquireLease(owner: string, ttlMs: number, isGone: (lease: Lease) => boolean): Promise<Lease | null> {
    await this.flush();
    const now = Date.now();
    const tx = this.db.transaction((): Lease | null => {
      const r = this.leaseRow();
      const current = r ? rowToLease(r) : undefined;
      if (current && current.owner !== owner && current.expiresAt > now && !isGone(current)) {
        throw new SmithError(
          'LEASE_HELD',
          `another smith process (pid ${current.pid} on ${current.host}) owns the engine of this home; ` +
            `wait for it to finish, or use its terminal. Read-only commands (smith tasks, smith task ID) work meanwhile`,
          { context: { ...current } },
        );
      }
      const host = hostname();
      const expires = now + ttlMs;
      const params = [
        'engine',
        owner,
        process.pid,
        host,
        now,
        now,
        expires,
        owner,
        process.pid,
        host,
        now,
        now,
        expires,
      ].map(sqliteValue);
      this.run('acquireLease', params, () =>
        this.kysely
          .insertInto('leases')
          .values({
            name: 'engine',
            owner,
            pid: process.pid,
            host,
            acquired_at: now,
            heartbeat_at: now,
            expires_at: expires,
          })
          .onConflict((oc) =>
            oc.column('name').doUpdateSet({
              owner,
              pid: process.pid,
              host,
              acquired_at: now,
              heartbeat_at: now,
              expires_at: expires,
            }),
          ),
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
      const params = [now, now + ttlMs, 'engine', owner].map(sqliteValue);
      const r = this.run('renewLease', params, () =>
        this.kysely
          .updateTable('leases')
          .set({ heartbeat_at: now, expires_at: now + ttlMs })
          .where('name', '=', 'engine')
          .where('owner', '=', owner),
      );
      return Promise.resolve(r.changes > 0);
    } catch (err) {
      return Promise.reject(this.wrapWriteError(err));
    }
  }

  async releaseLease(owner: string): Promise<void> {
    await this.flush();
    const params = ['engine', owner];
    this.run('releaseLease', params, () =>
      this.kysely.deleteFrom('leases').where('name', '=', 'engine').where('owner', '=', owner),
    );
  }

  getLease(): Promise<Lease | undefined> {
    const r = this.leaseRow();
    return Promise.resolve(r ? rowToLease(r) : undefined);
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      await this.flush();
      this.closed = true;
      await this.readOnlyQueries?.close();
      this.stmts.clear();
      this.adhocStmts.clear();
      this.db.close();
    })();
    return this.closing;
  }
}

/** Whether `op` writes to the database when applied (rather than buffering its row). */
function writesAtOnce(op: Op, direct: boolean): boolean {
  switch (op.op) {
    case 'event':
    case 'audit':
      return false;
    case 'insertTask':
    case 'insertAttempt':
      return direct;
    default:
      return true;
  }
}
