/**
 * The Store seam: the one persistence interface. Dialects (SQLite by default, PostgreSQL later)
 * implement it without the engine knowing which one runs.
 *
 * Writes are declarative {@link Op} lists ("changes"). Changes submitted in the same tick share one
 * transaction (group commit); {@link Store.commit} resolves only after that transaction commits.
 * A change whose guard does not hold is skipped whole and reported as not applied.
 */
import type { TaskState, WorkflowState, AttemptState, InstanceState } from '../core/states.js';
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
} from '../core/types.js';

/** Columns of a task that an update may set. */
export type TaskPatch = Partial<Omit<Task, 'id' | 'createdAt'>>;
/** Columns of an attempt that an update may set. */
export type AttemptPatch = Partial<
  Omit<Attempt, 'id' | 'taskId' | 'number' | 'epoch' | 'agent' | 'startedAt'>
>;

/** One write. Guards (`expect`) make the whole change a no-op when they do not hold. */
export type Op =
  | { op: 'insertWorkflow'; workflow: Workflow; spec: Json }
  | {
      op: 'updateWorkflow';
      id: string;
      expect?: { state?: WorkflowState[] };
      set: Partial<Omit<Workflow, 'id'>>;
    }
  | { op: 'insertTask'; task: Task }
  | {
      op: 'updateTask';
      id: string;
      /** Guard: the task's current state is one of these and/or its epoch equals this. */
      expect?: { state?: TaskState[]; epoch?: number };
      set: TaskPatch;
    }
  | { op: 'insertAttempt'; attempt: Attempt; owner: string }
  | { op: 'updateAttempt'; id: string; expect?: { state?: AttemptState[] }; set: AttemptPatch }
  | { op: 'event'; taskId: string; attemptId: string | null; type: TaskEventType; data: Json; time?: number }
  | { op: 'audit'; actor: string; action: string; subject: string; data: Json; time?: number }
  | { op: 'upsertAgent'; spec: AgentSpec }
  /** Record a waiver (`data` is the whole waiver); an existing id is replaced (revocation). */
  | { op: 'putWaiver'; id: string; taskId: string; data: Json; createdAt: number }
  | { op: 'setInstance'; agent: string; index: number; state: InstanceState; restarts?: number }
  | { op: 'request'; taskId: string; action: RequestAction; actor: string; data?: Json }
  /** Insert or replace an API key (revocation sets `revokedAt`). */
  | { op: 'putApiKey'; key: ApiKeyRecord }
  /** Insert or replace a chat session. */
  | { op: 'putChatSession'; session: ChatSessionRecord }
  /** Append a chat message; a (session, seq) already recorded makes the change fail. */
  | { op: 'chatMessage'; message: ChatMessageRecord }
  /** Insert or replace a saved query (by id; names are unique). */
  | { op: 'putSavedQuery'; query: SavedQueryRecord }
  | { op: 'deleteSavedQuery'; id: string }
  /** Insert or replace an alert. */
  | { op: 'putAlert'; alert: AlertRecord }
  | { op: 'requestDone'; id: number; result: string };

/**
 * What a person (or another process) asks the engine's owner to do. `adopt` hands over a workflow
 * another process recorded (the request's `taskId` holds the workflow id).
 */
export type RequestAction =
  'cancel' | 'pause' | 'resume' | 'retry' | 'adopt' | 'approve' | 'reject' | 'override' | 'guide';

/** Roles of API keys, least to most powerful. */
export type Role = 'viewer' | 'operator' | 'admin';

/** An API key as stored: never its secret, only the peppered hash. Times in ms since the epoch. */
export interface ApiKeyRecord {
  id: string;
  /** SHA-256 (hex) of the secret with the server's pepper. */
  hash: string;
  role: Role;
  name: string;
  createdBy: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

/** A chat session bound to an agent. */
export interface ChatSessionRecord {
  id: string;
  agent: string;
  title: string;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

/** One message of a chat session; `seq` counts from 1. */
export interface ChatMessageRecord {
  sessionId: string;
  seq: number;
  role: 'user' | 'agent' | 'system';
  content: string;
  /** Extra fields (the task that answered, its state). */
  data: Json;
  time: number;
}

/** A saved read-only SQL query of the database explorer. */
export interface SavedQueryRecord {
  id: string;
  name: string;
  sql: string;
  description: string;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

/** Limits of one {@link Store.readOnlyQuery}. */
export interface QueryOptions {
  /** At most this many rows come back; more make `truncated` true. */
  maxRows: number;
  /** The query is stopped after this long, in ms (QUERY_TIMEOUT). */
  timeoutMs: number;
}

/** The answer of a {@link Store.readOnlyQuery}. */
export interface QueryResult {
  /** Column names, in order (duplicates kept). */
  columns: string[];
  /**
   * One array per row, values in column order: numbers, strings, null; integers beyond
   * `Number.MAX_SAFE_INTEGER` as decimal strings, blobs as base64 strings, infinite reals as
   * `"Infinity"` / `"-Infinity"`.
   */
  rows: unknown[][];
  /** True when rows were left out (the row limit, or the size limit of an answer). */
  truncated: boolean;
  /** Time the database spent preparing and running the query, in ms. */
  elapsedMs: number;
}

/** A table (or view) of the database and its columns, for the database explorer. */
export interface SchemaTable {
  table: string;
  /** Columns in order; `type` is the declared type ('' when none was declared). */
  columns: { name: string; type: string }[];
}

/** Alert states: firing, then acknowledged by a person, then resolved when the SLO recovers. */
export type AlertState = 'firing' | 'acknowledged' | 'resolved';

/** An SLO alert. */
export interface AlertRecord {
  id: string;
  slo: string;
  state: AlertState;
  severity: 'page' | 'ticket';
  summary: string;
  /** Burn rates and windows that fired it. */
  data: Json;
  firedAt: number;
  ackedAt: number | null;
  ackedBy: string | null;
  resolvedAt: number | null;
  updatedAt: number;
}

/** A task event with the id of its task's workflow (the server's event stream). */
export type StreamEvent = TaskEvent & { workflowId: string | null };

/** A pending request. */
export interface Request {
  id: number;
  taskId: string;
  action: RequestAction;
  actor: string;
  data: Json;
  createdAt: number;
}

/** The result of one change. */
export interface CommitResult {
  /** False when a guard did not hold; nothing of the change was written. */
  applied: boolean;
  /** The audit records written by this change (seq and hash), in order. */
  audit: { seq: number; hash: string }[];
}

/** Spend in USD and tokens. */
export interface Spend {
  usd: number;
  tokens: number;
}

/** See {@link Store.spendTotals}. */
export interface SpendTotals {
  total: Spend;
  byAgent: Record<string, Spend>;
  byWorkflow: Record<string, Spend>;
}

/** Filters for {@link Store.listTasks}. */
export interface TaskFilter {
  state?: TaskState[];
  agent?: string;
  workflowId?: string;
  /** At most this many, newest first when `newestFirst`. Default: all. */
  limit?: number;
  newestFirst?: boolean;
  /**
   * Keyset cursor: only tasks after this one in the listing's order (older ones when
   * `newestFirst`). Pages are stable while tasks are added.
   */
  after?: { createdAt: number; id: string };
}

/** What {@link Store.taskOutcomeCounts} counts: tasks that ended since each of several times. */
export interface OutcomeQuery {
  /** The start of each window, ms since the epoch; a window runs from there to now. */
  since: number[];
  /** Only tasks of this agent (the one asked for, or the one that ran them). */
  agent?: string;
  /** Tasks that ran at most this long (ms, start to end) count as `fast`. Default: none do. */
  thresholdMs?: number;
}

/** The tasks that ended in one window of an {@link OutcomeQuery}. */
export interface OutcomeCounts {
  /** Tasks that ended `completed`, `failed` or `rejected` (`canceled` is left out). */
  ended: number;
  /** Of `ended`, those that ended `completed`. */
  completed: number;
  /** Of `ended`, those that had started (their duration is known). */
  timed: number;
  /** Of `timed`, those that ran at most `thresholdMs`. */
  fast: number;
}

/** The engine lease of a home: who owns the engine. */
export interface Lease {
  owner: string;
  pid: number;
  host: string;
  acquiredAt: number;
  heartbeatAt: number;
  expiresAt: number;
}

/** Settings of a store. */
export interface StoreOptions {
  /** `FULL` (default): a commit survives power loss. `NORMAL`: it survives a crash of the process. */
  synchronous?: 'FULL' | 'NORMAL';
  /** Open without writing (no migrations); for read-only commands. */
  readonly?: boolean;
}

/** The persistence interface. */
export interface Store {
  /** Human-readable location (file path or URL without password). */
  readonly location: string;
  /**
   * Record one change (a list of ops) durably. Changes of the same tick share one transaction.
   * @returns whether it applied, and the audit records it wrote
   * @throws StoreError when the transaction cannot commit (disk full, locked past the timeout)
   */
  commit(change: Op[]): Promise<CommitResult>;
  /** Resolve once everything submitted so far has committed. */
  flush(): Promise<void>;

  getTask(id: string): Promise<Task | undefined>;
  /** Tasks whose id starts with `prefix`, or whose `key` equals it (for CLI lookups). */
  findTasks(idOrKeyOrPrefix: string): Promise<Task[]>;
  listTasks(filter?: TaskFilter): Promise<Task[]>;
  /** How many tasks of a workflow are in each state. */
  countTasks(workflowId: string): Promise<Partial<Record<TaskState, number>>>;
  /**
   * Recorded spend (ended attempts' USD and tokens), in total and by agent and by workflow: what
   * budgets of agents, workflows and the home are checked against.
   */
  spendTotals(): Promise<SpendTotals>;
  getAttempts(taskId: string): Promise<Attempt[]>;
  /** Attempts in these states (recovery). */
  listAttempts(states: AttemptState[]): Promise<(Attempt & { owner: string })[]>;
  getEvents(taskId: string, afterSeq?: number, limit?: number): Promise<TaskEvent[]>;
  /** Waivers (as recorded JSON) of one task, or of every task; oldest first. */
  listWaivers(taskId?: string): Promise<{ id: string; taskId: string; data: Json; createdAt: number }[]>;
  /** A task's events of one type, oldest first. */
  eventsOfType(taskId: string, type: TaskEventType): Promise<TaskEvent[]>;
  getWorkflow(id: string): Promise<Workflow | undefined>;
  findWorkflows(idOrPrefix: string): Promise<Workflow[]>;
  listWorkflows(states?: WorkflowState[]): Promise<Workflow[]>;
  getWorkflowSpec(id: string): Promise<Json | undefined>;
  listAgents(): Promise<AgentRecord[]>;
  /** Audit records with `seq` in [from, from + limit), ascending. */
  auditRecords(fromSeq: number, limit: number): Promise<AuditRecord[]>;
  auditHead(): Promise<{ seq: number; hash: string } | undefined>;
  /** Audit records about one subject, ascending. */
  auditFor(subject: string): Promise<AuditRecord[]>;
  pendingRequests(): Promise<Request[]>;
  /**
   * Task events of every task with `seq` > `afterSeq`, ascending, at most `limit` (the server's
   * event stream and its replay after a reconnect).
   */
  eventsSince(afterSeq: number, limit: number): Promise<StreamEvent[]>;
  /** The highest task event seq (0 when none). */
  lastEventSeq(): Promise<number>;

  /**
   * Counts of the tasks that ended in each window, for service level indicators
   * (observability/slo.ts): one {@link OutcomeCounts} per `query.since`, in that order.
   */
  taskOutcomeCounts(query: OutcomeQuery): Promise<OutcomeCounts[]>;

  /** How many tasks of the home are in each state (states with none are left out). */
  countTasksByState(): Promise<Partial<Record<TaskState, number>>>;
  /**
   * Run one read-only SQL statement (SELECT, WITH, VALUES, EXPLAIN, a reading PRAGMA) on a
   * separate read-only connection, and stop it at its time limit. Rules: docs/queries.md.
   * @param sql - one statement; a trailing `;` and comments are allowed
   * @param opts - row limit and time limit (ms)
   * @returns the columns, the rows (at most `maxRows`), whether rows were left out, the time taken
   * @throws SmithError QUERY_REJECTED for a write, a second statement, SQL that does not compile
   *   or fails; QUERY_TIMEOUT past the time limit; INVALID_ARGUMENT for bad limits
   */
  readOnlyQuery(sql: string, opts: QueryOptions): Promise<QueryResult>;
  /** Tables and views of the database with their columns, by name (the database explorer). */
  describeSchema(): Promise<SchemaTable[]>;
  /**
   * A value that changes whenever what a task's detail shows (its row, attempts, events) may have
   * changed, written by this process or another; equal values mean nothing changed. For caches of
   * task details; cheap (no read of the task). It may change when nothing did (never the reverse).
   */
  changeStamp(taskId: string): string;
  getApiKey(id: string): Promise<ApiKeyRecord | undefined>;
  /** Every API key, oldest first. */
  listApiKeys(): Promise<ApiKeyRecord[]>;
  getChatSession(id: string): Promise<ChatSessionRecord | undefined>;
  /** Chat sessions, newest first. */
  listChatSessions(): Promise<ChatSessionRecord[]>;
  /** A session's messages with `seq` > `afterSeq`, ascending, at most `limit`. */
  chatMessages(sessionId: string, afterSeq: number, limit: number): Promise<ChatMessageRecord[]>;
  /** A saved query by id or name. */
  getSavedQuery(idOrName: string): Promise<SavedQueryRecord | undefined>;
  listSavedQueries(): Promise<SavedQueryRecord[]>;
  getAlert(id: string): Promise<AlertRecord | undefined>;
  /** Alerts (in these states when given), newest first. */
  listAlerts(states?: AlertState[]): Promise<AlertRecord[]>;

  /**
   * Take the engine lease if it is free, expired, or held by a process that is gone.
   * @param isGone - tells whether a holder's process is gone (same host, pid not alive)
   * @returns the previous holder when taken over from one, `null` when free; throws when held
   * @throws SmithError LEASE_HELD with the holder's pid and host
   */
  acquireLease(owner: string, ttlMs: number, isGone: (lease: Lease) => boolean): Promise<Lease | null>;
  /** Extend the lease. @returns false when the lease is no longer ours (fenced). */
  renewLease(owner: string, ttlMs: number): Promise<boolean>;
  releaseLease(owner: string): Promise<void>;
  getLease(): Promise<Lease | undefined>;

  /** Graceful close: flush, then close. Safe to call twice. */
  close(): Promise<void>;
}
