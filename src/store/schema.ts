import type { Generated } from 'kysely';

/**
 * Table shapes (Kysely's database type) shared by every dialect. Times are integer ms since the
 * epoch; JSON columns hold JSON text.
 */

/** The `workflows` table. */
export interface WorkflowsTable {
  id: string;
  name: string;
  state: string;
  file: string | null;
  dir: string;
  spec: string;
  created_at: number;
  updated_at: number;
  ended_at: number | null;
}

/** The `tasks` table. */
export interface TasksTable {
  id: string;
  workflow_id: string | null;
  key: string;
  agent: string | null;
  capabilities: string;
  prompt: string;
  needs: string;
  trigger: string;
  priority: number;
  state: string;
  attempts: number;
  max_attempts: number;
  epoch: number;
  timeout_ms: number | null;
  workdir: string;
  env: string;
  available_at: number;
  assigned_agent: string | null;
  output: string | null;
  exit_code: number | null;
  reason: string | null;
  budget: string | null;
  cost_usd: number;
  tokens: number;
  session_id: string | null;
  governance: string | null;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  ended_at: number | null;
}

/** The `attempts` table. */
export interface AttemptsTable {
  id: string;
  task_id: string;
  number: number;
  epoch: number;
  agent: string;
  instance: number;
  state: string;
  owner: string;
  pid: number | null;
  started_at: number;
  ended_at: number | null;
  exit_code: number | null;
  signal: string | null;
  output: string | null;
  error: string | null;
  session_id: string | null;
  cost_usd: number;
  tokens: number;
  usage: string | null;
}

/** The `task_events` table. */
export interface TaskEventsTable {
  seq: Generated<number>;
  task_id: string;
  attempt_id: string | null;
  time: number;
  type: string;
  data: string;
}

/** The `audit_records` table (hash chain). */
export interface AuditRecordsTable {
  seq: number;
  time: number;
  actor: string;
  action: string;
  subject: string;
  data: string;
  prev_hash: string;
  hash: string;
}

/** The `waivers` table: `data` is the waiver as JSON (gates, reason, approvers, expiry, status). */
export interface WaiversTable {
  id: string;
  task_id: string;
  data: string;
  created_at: number;
}

/** The `agents` table. */
export interface AgentsTable {
  name: string;
  spec: string;
  updated_at: number;
}

/** The `agent_instances` table. */
export interface AgentInstancesTable {
  agent: string;
  idx: number;
  state: string;
  restarts: number;
  updated_at: number;
}

/** The `leases` table (one row per lease name; `engine` is the home's engine lease). */
export interface LeasesTable {
  name: string;
  owner: string;
  pid: number;
  host: string;
  acquired_at: number;
  heartbeat_at: number;
  expires_at: number;
}

/** The `requests` table: what other processes ask the engine's owner to do. */
export interface RequestsTable {
  id: Generated<number>;
  task_id: string;
  action: string;
  actor: string;
  data: string;
  created_at: number;
  done_at: number | null;
  result: string | null;
}

/** The `api_keys` table: `hash` is SHA-256 (hex) of the secret with the server's pepper. */
export interface ApiKeysTable {
  id: string;
  hash: string;
  role: string;
  name: string;
  created_by: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
}

/** The `chat_sessions` table. */
export interface ChatSessionsTable {
  id: string;
  agent: string;
  title: string;
  created_by: string;
  created_at: number;
  updated_at: number;
}

/** The `chat_messages` table: `seq` counts from 1 within a session; `data` is JSON. */
export interface ChatMessagesTable {
  session_id: string;
  seq: number;
  role: string;
  content: string;
  data: string;
  time: number;
}

/** The `saved_queries` table. */
export interface SavedQueriesTable {
  id: string;
  name: string;
  sql: string;
  description: string;
  created_by: string;
  created_at: number;
  updated_at: number;
}

/** The `alerts` table: `data` is JSON (burn rates, windows). */
export interface AlertsTable {
  id: string;
  slo: string;
  state: string;
  severity: string;
  summary: string;
  data: string;
  fired_at: number;
  acked_at: number | null;
  acked_by: string | null;
  resolved_at: number | null;
  updated_at: number;
}

/** Every table. */
export interface Database {
  workflows: WorkflowsTable;
  tasks: TasksTable;
  attempts: AttemptsTable;
  task_events: TaskEventsTable;
  audit_records: AuditRecordsTable;
  agents: AgentsTable;
  agent_instances: AgentInstancesTable;
  leases: LeasesTable;
  requests: RequestsTable;
  waivers: WaiversTable;
  api_keys: ApiKeysTable;
  chat_sessions: ChatSessionsTable;
  chat_messages: ChatMessagesTable;
  saved_queries: SavedQueriesTable;
  alerts: AlertsTable;
}
