/**
 * The orchestrator: takes workflows and tasks, queues them by priority once their `needs` are met,
 * routes each to the least-loaded agent that has the capabilities, runs attempts through runtimes
 * under a global limit of permits and each agent's concurrency, retries with exponential backoff and
 * jitter, and records every transition (state + event + audit record, one transaction) before it
 * acts on it.
 *
 * Fencing: every attempt carries the task's epoch at its start; a result is recorded only if the task
 * still has that epoch, in the same transaction (DESIGN.md, "Guarantees").
 */
import { EventEmitter } from 'node:events';
import { backoffDelay, type BackoffOptions } from '../core/backoff.js';
import { SmithError, TaskNotFoundError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import {
  assertTaskTransition,
  isTerminalTaskState,
  type InstanceState,
  type TaskState,
  type WorkflowState,
} from '../core/states.js';
import type {
  AgentSpec,
  Budget,
  Json,
  Task,
  TaskEventType,
  TaskGovernance,
  TokenUsage,
  Workflow,
  WorkflowSpec,
} from '../core/types.js';
import type { ModelPrice } from '../core/schema/index.js';
import { DEFAULT_PRIORITY } from '../core/types.js';
import type {
  AgentRuntime,
  AttemptHandle,
  AttemptOutcome,
  RuntimeEvent,
  TaskInput,
} from '../runtime/types.js';
import type { Op, Store } from '../store/store.js';
import { Supervisor, type Child, type ChildSpec, type ExitReason } from '../runtime/supervisor/index.js';
import { ReadyQueue } from './queue.js';
import { governanceOf, Governor, waiversFrom, type ApplyTrailers } from './governance.js';
import { join } from 'node:path';
import { verdictAuditOp, type SigningKey } from '../provenance/index.js';
import {
  BudgetLedger,
  addUsage,
  breachReason,
  noUsage,
  priceUsage,
  totalTokens,
  type BudgetBreach,
  type BudgetSubject,
} from './budget.js';
import { withSpan } from '../observability/tracing.js';

/** Typed engine events (namespaced keys). */
export interface EngineEventMap {
  /** A task changed state (after the change committed). */
  'task:state': { task: Task; from: TaskState | null; to: TaskState };
  /** A running attempt reported progress. `pct` 0..100. */
  'task:progress': { taskId: string; pct?: number; message?: string };
  /** A workflow changed state (after the change committed). */
  'workflow:state': { id: string; name: string; state: WorkflowState };
  /** An agent instance changed state. */
  'agent:instance': { agent: string; index: number; state: InstanceState };
  /**
   * An attempt ended: its runtime reported the outcome (emitted before the outcome is recorded).
   * `state` is the outcome (`canceled` when a person canceled the task); `durationMs` runs from the
   * attempt's start to its end.
   */
  'attempt:end': {
    taskId: string;
    agent: string;
    number: number;
    state: 'succeeded' | 'failed' | 'timed_out' | 'canceled';
    durationMs: number;
  };
  /** The council judged a task (after the verdict was recorded): its decision and each judge's. */
  'task:verdict': {
    taskId: string;
    decision: string;
    judges: { judge: string; decision: string }[];
  };
  /** The engine hit an error it cannot continue from (store write failed, lease lost). */
  'engine:error': { error: unknown };
}

/** Options of {@link Engine}. */
export interface EngineOptions {
  store: Store;
  /** Runtime adapters by kind. */
  runtimes: AgentRuntime[];
  /** The agents this engine may run. */
  agents: AgentSpec[];
  /** Absolute path of the home (`.smith`); given to agents as SMITH_HOME for recovery. */
  home: string;
  /** Global limit of attempts at once (permits). Default 16. */
  concurrency?: number;
  /** This engine's owner id (default a new `o_…` id). */
  owner?: string;
  /** Backoff between attempts of a task. Default { baseMs: 1000, maxMs: 60000, jitter: 'full' }. */
  retryBackoff?: BackoffOptions;
  /** Log events kept per attempt; the rest is in the attempt's output. Default 1000. */
  logEventLimit?: number;
  /** The environment agents start from. Default `process.env`. */
  baseEnv?: Record<string, string | undefined>;
  /** Spend cap of everything in this home (`budget:` at the top of `smith.yaml`). */
  budget?: Budget;
  /** Model prices (USD per million tokens) for usage reported without a cost. Default none. */
  prices?: Record<string, ModelPrice>;
  /** Attempts at once per runtime kind (`runtimes: {claude-code: {concurrency: 2}}`). Default no cap. */
  runtimeConcurrency?: Record<string, number>;
  /** Worktrees, the council and apply, for governed tasks (`workspace: worktree` or a `spec`). */
  governor?: Governor;
  /** Signs verdicts (the home's key); unsigned verdicts are still audited. */
  signingKey?: SigningKey;
}

interface AgentSlot {
  spec: AgentSpec;
  runtime: AgentRuntime;
  running: number;
  /** Idle instances, ready for an attempt. */
  free: number[];
  instances: InstanceState[];
  restarts: number[];
  dirty: Set<number>;
  /** Why the agent cannot run (its supervisor gave up), or null. */
  error: string | null;
  supervisor: Supervisor | null;
  /** Crash instance i (its supervisor restarts it). */
  crash: ((err: unknown) => void)[];
}

/** Tasks that route alike (same agent asked for, same capabilities) and the agents that can take them. */
interface Group {
  key: string;
  agent: string | null;
  caps: string[];
  queue: ReadyQueue;
  agents: AgentSlot[];
}

interface WfLive {
  id: string;
  name: string;
  budget?: Budget;
  state: WorkflowState;
  live: number;
  waiters: ((w: Workflow) => void)[];
}

interface RunningAttempt {
  id: string;
  number: number;
  epoch: number;
  agent: AgentSlot;
  instance: number;
  handle?: AttemptHandle;
  startedAt: number;
  logEvents: number;
  stop?: { kind: 'canceled' | 'shutdown' | 'budget'; reason: string };
  /** Spend reported so far by `usage` events (priced when they came without a cost). */
  usd: number;
  usage: TokenUsage;
  sessionId?: string;
  pausePending?: boolean;
  done?: Promise<void>;
}

interface Live {
  task: Task;
  wf: WfLive | null;
  waiting: number;
  dependents: string[];
  group: Group | null;
  run?: RunningAttempt;
  retryTimer?: NodeJS.Timeout;
}

/** Input of {@link Engine.submitTask}. */
export interface SubmitTaskInput {
  agent?: string;
  capabilities?: string[];
  prompt: string;
  key?: string;
  priority?: number;
  timeoutMs?: number;
  retries?: number;
  workdir: string;
  env?: Record<string, string>;
  /** The task's spend cap. */
  budget?: Budget;
}

/**
 * Shared empty values for the many tasks that have no capabilities, needs or env (100,000 queued
 * tasks would otherwise hold 300,000 empty objects). Frozen: nothing may add to them.
 */
const NONE: string[] = Object.freeze([]) as unknown as string[];
const NO_ENV: Record<string, string> = Object.freeze({}) as Record<string, string>;

const ZERO_OUTCOME_FIELDS = { stdoutBytes: 0, stderrBytes: 0, droppedBytes: 0, stderr: '' };

/**
 * The records that submit a workflow: the workflow row, its tasks (`queued` when they need nothing,
 * else `pending`), a `state` event and a `task.created` audit record each, and `workflow.created`.
 * Pure: the caller commits `ops` (the engine does; so does a process that hands the workflow to the
 * home's owner).
 * @param spec - a validated workflow
 * @param actor - who submits it
 */
export function workflowRecords(
  spec: WorkflowSpec,
  actor: string,
): { workflow: Workflow; tasks: Task[]; ops: Op[] } {
  const now = Date.now();
  const wfId = newId('workflow');
  const workflow: Workflow = {
    id: wfId,
    name: spec.name,
    state: 'running',
    file: spec.file ?? null,
    dir: spec.dir,
    createdAt: now,
    updatedAt: now,
    endedAt: null,
  };
  const ids = new Map<string, string>();
  for (const t of spec.tasks) ids.set(t.key, newId('task'));
  const tasks: Task[] = spec.tasks.map((t) => ({
    id: ids.get(t.key)!,
    key: t.key,
    workflowId: wfId,
    agent: t.agent ?? null,
    capabilities: t.capabilities && t.capabilities.length > 0 ? t.capabilities : NONE,
    prompt: t.prompt,
    needs: t.needs.length > 0 ? t.needs.map((k) => ids.get(k)!) : NONE,
    trigger: t.trigger ?? 'all_success',
    priority: t.priority ?? DEFAULT_PRIORITY,
    state: 'pending',
    attempts: 0,
    maxAttempts: 1 + (t.retries ?? 0),
    epoch: 0,
    timeoutMs: t.timeoutMs ?? null,
    workdir: t.workdir ?? spec.dir,
    env: t.env && Object.keys(t.env).length > 0 ? t.env : NO_ENV,
    availableAt: now,
    assignedAgent: null,
    output: null,
    exitCode: null,
    reason: null,
    budget: t.budget ?? null,
    costUsd: 0,
    tokens: 0,
    sessionId: null,
    governance: governanceOf(t, spec),
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    endedAt: null,
  }));
  const ops: Op[] = [
    { op: 'insertWorkflow', workflow, spec: spec as unknown as Json },
    {
      op: 'audit',
      actor,
      action: 'workflow.created',
      subject: wfId,
      data: { name: spec.name, file: spec.file ?? null, tasks: tasks.length },
    },
  ];
  for (const t of tasks) {
    const ready = t.needs.length === 0;
    if (ready) t.state = 'queued';
    ops.push({ op: 'insertTask', task: t });
    ops.push({
      op: 'event',
      taskId: t.id,
      attemptId: null,
      type: 'state',
      data: { from: null, to: t.state },
    });
    ops.push({
      op: 'audit',
      actor,
      action: 'task.created',
      subject: t.id,
      data: { workflow: wfId, key: t.key, state: t.state, agent: t.agent, needs: t.needs },
    });
  }
  return { workflow, tasks, ops };
}

/**
 * The engine. One per home at a time (the caller holds the home's lease).
 *
 * @example
 * const engine = new Engine({ store, runtimes: [new ProcessRuntime()], agents, home });
 * await engine.start();
 * const wf = await engine.submitWorkflow(spec);
 * const done = await engine.waitWorkflow(wf.id);
 * await engine.close();
 */
export class Engine {
  /** This engine's owner id (fencing of processes after a crash). */
  readonly owner: string;
  private readonly store: Store;
  private readonly home: string;
  private readonly runtimes = new Map<string, AgentRuntime>();
  private readonly agents = new Map<string, AgentSlot>();
  private readonly groups = new Map<string, Group>();
  private readonly live = new Map<string, Live>();
  private readonly workflows = new Map<string, WfLive>();
  private readonly emitter = new EventEmitter();
  private readonly backoff: BackoffOptions;
  private readonly logEventLimit: number;
  private readonly baseEnv: Record<string, string>;
  private permitsFree: number;
  private readonly permits: number;
  private seq = 0;
  private dispatchScheduled = false;
  private stopping = false;
  private closing: Promise<void> | undefined;
  private readonly running = new Set<RunningAttempt>();
  private instanceTimer: NodeJS.Timeout | undefined;
  private fatalError: unknown;
  private started = false;
  private pendingStarts: Promise<void>[] = [];
  private readonly ledger: BudgetLedger;
  private readonly prices: Record<string, ModelPrice>;
  private readonly runtimeCaps: Record<string, number>;
  private readonly runtimeRunning = new Map<string, number>();
  private readonly governor: Governor;
  private readonly signingKey: SigningKey | undefined;
  /** Judgements under way (a close waits for them). */
  private readonly judging = new Set<Promise<void>>();
  /** Tasks that may have guidance before their first attempt (their next input reads it from the store). */
  private readonly maybeGuided = new Set<string>();
  /** Aborts judgements at shutdown (their tasks stay `judging` and are judged again on resume). */
  private readonly judgeAbort = new AbortController();

  constructor(options: EngineOptions) {
    this.store = options.store;
    this.home = options.home;
    this.owner = options.owner ?? newId('owner');
    this.permits = options.concurrency ?? 16;
    this.permitsFree = this.permits;
    this.backoff = options.retryBackoff ?? { baseMs: 1000, maxMs: 60_000, jitter: 'full' };
    this.logEventLimit = options.logEventLimit ?? 1000;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(options.baseEnv ?? process.env)) if (v !== undefined) env[k] = v;
    this.baseEnv = env;
    this.ledger = new BudgetLedger(options.budget);
    this.prices = options.prices ?? {};
    this.runtimeCaps = options.runtimeConcurrency ?? {};
    this.governor = options.governor ?? new Governor({ worktreesDir: join(options.home, 'worktrees') });
    this.signingKey = options.signingKey;
    for (const r of options.runtimes) this.runtimes.set(r.kind, r);
    for (const a of options.agents) this.addAgent(a);
    this.emitter.setMaxListeners(0);
  }

  /** Subscribe to an engine event. */
  on<K extends keyof EngineEventMap>(event: K, listener: (e: EngineEventMap[K]) => void): this {
    this.emitter.on(event, listener);
    return this;
  }

  /** Unsubscribe. */
  off<K extends keyof EngineEventMap>(event: K, listener: (e: EngineEventMap[K]) => void): this {
    this.emitter.off(event, listener);
    return this;
  }

  private emit<K extends keyof EngineEventMap>(event: K, payload: EngineEventMap[K]): void {
    this.emitter.emit(event, payload);
  }

  /**
   * Add (or replace) an agent definition.
   * @throws SmithError RUNTIME_NOT_FOUND when no runtime serves its `runtime`
   */
  addAgent(spec: AgentSpec): void {
    const runtime = this.runtimes.get(spec.runtime);
    if (!runtime) {
      throw new SmithError(
        'RUNTIME_NOT_FOUND',
        `agent "${spec.name}" uses runtime "${spec.runtime}", which this smith does not have; use one of: ${[...this.runtimes.keys()].join(', ')}`,
        { context: { agent: spec.name, runtime: spec.runtime } },
      );
    }
    const existing = this.agents.get(spec.name);
    if (existing && existing.running > 0) {
      existing.spec = spec;
      return;
    }
    // a replaced agent's instances stop with it
    if (existing) void existing.supervisor?.stop();
    const n = Math.max(1, spec.concurrency);
    const slot: AgentSlot = {
      spec,
      runtime,
      running: 0,
      free: [],
      instances: Array.from({ length: n }, () => 'initializing' as InstanceState),
      restarts: Array.from({ length: n }, () => 0),
      dirty: new Set(Array.from({ length: n }, (_, i) => i)),
      error: null,
      supervisor: null,
      crash: [],
    };
    this.agents.set(spec.name, slot);
    // groups keep their queued tasks; only who may take them changes
    for (const g of this.groups.values()) g.agents = this.eligible(g.agent, g.caps);
    if (this.started) this.pendingStarts.push(this.startAgent(slot));
  }

  /**
   * Supervise an agent's instances: one child per instance (OTP one_for_one, intensity 3 in 10 s).
   * An instance starts by checking its runtime (`initializing -> idle`); a runtime failure crashes it
   * (`error`) and its supervisor restarts it with backoff. When the supervisor gives up, the agent is
   * in error and takes no more tasks.
   */
  private async startAgent(slot: AgentSlot): Promise<void> {
    const children: ChildSpec[] = slot.instances.map((_, i) => this.instanceChild(slot, i));
    const sup = new Supervisor(children, {
      name: `agent:${slot.spec.name}`,
      strategy: 'one_for_one',
      intensity: 3,
      periodMs: 10_000,
      backoff: { baseMs: 200, maxMs: 5000, jitter: 'full' },
    });
    slot.supervisor = sup;
    sup.on('child:restart', ({ id, count }) => {
      const i = Number(id);
      slot.restarts[i] = count;
      slot.dirty.add(i);
    });
    try {
      await sup.start();
      slot.error = null;
    } catch (err) {
      this.agentFailed(slot, err);
      return;
    }
    void sup.done.then((r) => {
      if (r.kind === 'error') this.agentFailed(slot, r.error);
    });
  }

  private instanceChild(slot: AgentSlot, i: number): ChildSpec {
    return {
      id: String(i),
      restart: 'permanent',
      shutdownMs: 2000,
      start: async (): Promise<Child> => {
        this.setInstance(slot, i, 'initializing');
        try {
          await slot.runtime.check?.(slot.spec);
        } catch (err) {
          this.setInstance(slot, i, 'error');
          throw err;
        }
        let finish: (r: ExitReason) => void = () => undefined;
        const done = new Promise<ExitReason>((r) => (finish = r));
        slot.crash[i] = (err) => {
          this.takeFree(slot, i);
          this.setInstance(slot, i, 'error');
          finish({ kind: 'error', error: err });
        };
        this.setInstance(slot, i, 'idle');
        slot.free.push(i);
        this.scheduleDispatch();
        return {
          done,
          stop: () => {
            this.takeFree(slot, i);
            this.setInstance(slot, i, 'stopping');
            finish({ kind: 'shutdown' });
            this.setInstance(slot, i, 'terminated');
            return Promise.resolve();
          },
        };
      },
    };
  }

  private takeFree(slot: AgentSlot, i: number): void {
    const at = slot.free.indexOf(i);
    if (at !== -1) slot.free.splice(at, 1);
  }

  private agentFailed(slot: AgentSlot, err: unknown): void {
    let e: unknown = err;
    while (e instanceof Error && e.cause instanceof Error) e = e.cause;
    slot.error = e instanceof Error ? e.message : String(e);
    slot.free = [];
    for (let i = 0; i < slot.instances.length; i++) {
      if (slot.instances[i] !== 'busy') this.setInstance(slot, i, 'error');
    }
    this.scheduleDispatch();
  }

  /** The agent definitions this engine knows. */
  agentSpecs(): AgentSpec[] {
    return [...this.agents.values()].map((a) => a.spec);
  }

  /**
   * Check every agent's runtime (commands installed …), record the agents, and start the periodic
   * work. Instances move `initializing -> idle`, or `error` when their check fails.
   */
  async start(): Promise<void> {
    this.started = true;
    this.ledger.seed(await this.store.spendTotals());
    const ops: Op[] = [];
    for (const slot of this.agents.values()) ops.push({ op: 'upsertAgent', spec: slot.spec });
    await Promise.all([...this.agents.values()].map((slot) => this.startAgent(slot)));
    await this.commit(ops);
    this.flushInstances();
    this.instanceTimer = setInterval(() => this.flushInstances(), 1000);
    this.instanceTimer.unref();
  }

  /** Resolve once agents added after start() have started their instances. */
  async agentsStarted(): Promise<void> {
    const starts = this.pendingStarts;
    this.pendingStarts = [];
    await Promise.all(starts);
  }

  /** Problems found by the agents' checks (agent name -> message). */
  agentErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, a] of this.agents) if (a.error) out[name] = a.error;
    return out;
  }

  private setInstance(slot: AgentSlot, index: number, state: InstanceState): void {
    if (slot.instances[index] === state) return;
    slot.instances[index] = state;
    slot.dirty.add(index);
    this.emit('agent:instance', { agent: slot.spec.name, index, state });
  }

  /** Write changed instance states (at most once a second: they are for display). */
  private flushInstances(): void {
    const ops: Op[] = [];
    for (const slot of this.agents.values()) {
      for (const i of slot.dirty) {
        ops.push({
          op: 'setInstance',
          agent: slot.spec.name,
          index: i,
          state: slot.instances[i]!,
          restarts: slot.restarts[i] ?? 0,
        });
      }
      slot.dirty.clear();
    }
    if (ops.length > 0) this.commit(ops).catch((err) => this.fatal(err));
  }

  private async commit(ops: Op[]): Promise<{ applied: boolean; audit: { seq: number; hash: string }[] }> {
    return this.store.commit(ops);
  }

  private fatal(error: unknown): void {
    if (this.fatalError) return;
    this.fatalError = error;
    this.emit('engine:error', { error });
    void this.close({ force: true });
  }

  /** The error that stopped the engine, if any. */
  get error(): unknown {
    return this.fatalError;
  }

  // ---------------------------------------------------------------- submission

  /**
   * Record a workflow and its tasks (durably, with audit records), then schedule them.
   * @param spec - a validated workflow (see engine/loader)
   * @param actor - who submitted it (default `cli`)
   * @returns the recorded workflow
   */
  async submitWorkflow(spec: WorkflowSpec, actor = 'cli'): Promise<Workflow> {
    return (await this.submit(spec, actor)).workflow;
  }

  private async submit(spec: WorkflowSpec, actor: string): Promise<{ workflow: Workflow; tasks: Task[] }> {
    for (const a of Object.values(spec.agents)) if (!this.agents.has(a.name)) this.addAgent(a);
    await this.agentsStarted();
    const { workflow, tasks, ops } = workflowRecords(spec, actor);
    await this.commit(ops);
    this.adopt(workflow, tasks, spec.budget);
    this.emit('workflow:state', { id: workflow.id, name: workflow.name, state: 'running' });
    return { workflow, tasks };
  }

  /**
   * Record and schedule one task outside any workflow file (a one-task workflow named after its key).
   * @returns the workflow and the task id
   */
  async submitTask(input: SubmitTaskInput, actor = 'cli'): Promise<{ workflow: Workflow; taskId: string }> {
    const key = input.key ?? 'task';
    const spec: WorkflowSpec = {
      name: key,
      dir: input.workdir,
      agents: {},
      tasks: [
        {
          key,
          agent: input.agent,
          capabilities: input.capabilities,
          prompt: input.prompt,
          needs: [],
          timeoutMs: input.timeoutMs,
          retries: input.retries ?? 0,
          priority: input.priority ?? DEFAULT_PRIORITY,
          env: input.env,
          budget: input.budget,
        },
      ],
    };
    const { workflow, tasks } = await this.submit(spec, actor);
    return { workflow, taskId: tasks[0]!.id };
  }

  /**
   * Submit many single tasks at once, all in one workflow (used by benchmarks and the API).
   * @returns the workflow
   */
  async submitBatch(
    name: string,
    dir: string,
    inputs: Omit<SubmitTaskInput, 'workdir'>[],
    actor = 'cli',
  ): Promise<Workflow> {
    return this.submitWorkflow(
      {
        name,
        dir,
        agents: {},
        tasks: inputs.map((i, n) => ({
          key: i.key ?? `t${n}`,
          agent: i.agent,
          capabilities: i.capabilities,
          prompt: i.prompt,
          needs: [],
          timeoutMs: i.timeoutMs,
          retries: i.retries ?? 0,
          priority: i.priority ?? DEFAULT_PRIORITY,
          env: i.env,
        })),
      },
      actor,
    );
  }

  /** Take tasks (already recorded) into memory and schedule those that are ready. */
  private adopt(workflow: Workflow, tasks: Task[], budget?: Budget): void {
    let wf = this.workflows.get(workflow.id);
    if (!wf) {
      wf = { id: workflow.id, name: workflow.name, state: 'running', live: 0, waiters: [] };
      this.workflows.set(workflow.id, wf);
    }
    if (budget !== undefined) wf.budget = budget;
    for (const t of tasks) {
      if (isTerminalTaskState(t.state) || this.live.has(t.id)) continue;
      this.live.set(t.id, { task: t, wf, waiting: 0, dependents: [], group: null });
      wf.live++;
    }
    for (const t of tasks) {
      const l = this.live.get(t.id);
      if (!l) continue;
      for (const n of t.needs) {
        const dep = this.live.get(n);
        if (dep) {
          l.waiting++;
          dep.dependents.push(t.id);
        }
      }
    }
    for (const t of tasks) {
      const l = this.live.get(t.id);
      if (l) this.makeReady(l);
    }
    this.scheduleDispatch();
  }

  /**
   * Resume the unfinished work of a recorded workflow: its pending, queued and paused tasks are
   * scheduled again. Tasks that completed are never run again.
   */
  async resumeWorkflow(id: string, actor = 'cli'): Promise<Workflow> {
    const workflow = await this.store.getWorkflow(id);
    if (!workflow) throw new SmithError('WORKFLOW_NOT_FOUND', `workflow ${id} not found`);
    const spec = (await this.store.getWorkflowSpec(id)) as unknown as WorkflowSpec | undefined;
    if (spec)
      for (const a of Object.values(spec.agents ?? {})) if (!this.agents.has(a.name)) this.addAgent(a);
    await this.agentsStarted();
    const all = await this.store.listTasks({ workflowId: id });
    const byId = new Map(all.map((t) => [t.id, t]));
    const ops: Op[] = [];
    if (workflow.state !== 'running') {
      ops.push({ op: 'updateWorkflow', id, set: { state: 'running', updatedAt: Date.now(), endedAt: null } });
    }
    ops.push({ op: 'audit', actor, action: 'workflow.resumed', subject: id, data: { from: workflow.state } });
    await this.commit(ops);
    workflow.state = 'running';
    const open = all.filter((t) => !isTerminalTaskState(t.state));
    for (const t of open) this.maybeGuided.add(t.id);
    this.adopt(workflow, open, spec?.budget);
    // a judgement cut short by a stop or a crash is made again
    for (const t of open) {
      const l = this.live.get(t.id);
      if (l && t.state === 'judging' && t.governance)
        this.startJudging(l, t.assignedAgent ?? '-', t.attempts);
    }
    // needs that ended without completing: their dependents cannot run
    for (const t of open) {
      const l = this.live.get(t.id);
      if (!l) continue;
      if (t.trigger === 'all_done') continue;
      const bad = t.needs
        .map((n) => byId.get(n))
        .find((n) => n && isTerminalTaskState(n.state) && n.state !== 'completed');
      if (bad) await this.endDependents(bad, [l.task.id]);
    }
    const wf = this.workflows.get(id)!;
    if (wf.live === 0) await this.finishWorkflow(wf);
    return workflow;
  }

  /**
   * Wait until no workflow this engine holds is running (its own and those handed to it by other
   * processes through `adopt` requests).
   */
  async waitAll(): Promise<void> {
    for (;;) {
      const open = [...this.workflows.values()].filter((w) => w.state === 'running' && w.live > 0);
      if (open.length === 0 || this.stopping) return;
      await Promise.all(open.map((w) => this.waitWorkflow(w.id)));
    }
  }

  /** Wait until workflow `id` has ended (completed, failed or canceled). */
  waitWorkflow(id: string): Promise<Workflow> {
    const wf = this.workflows.get(id);
    if (!wf || wf.state !== 'running') {
      return this.store.getWorkflow(id).then((w) => {
        if (!w) throw new SmithError('WORKFLOW_NOT_FOUND', `workflow ${id} not found`);
        return w;
      });
    }
    return new Promise((resolve) => wf.waiters.push(resolve));
  }

  // ---------------------------------------------------------------- scheduling

  /** Move a task whose needs are met to `queued` (if pending), and into its group's queue. */
  private makeReady(l: Live): void {
    const t = l.task;
    if (l.waiting > 0) return;
    if (t.state === 'pending') {
      void this.transition(l, 'queued', { actor: 'engine' }).then((ok) => {
        if (ok) this.enqueue(l);
      });
      return;
    }
    if (t.state === 'queued') this.enqueue(l);
  }

  private enqueue(l: Live): void {
    const t = l.task;
    if (t.state !== 'queued') return;
    const delay = t.availableAt - Date.now();
    if (delay > 0) {
      if (l.retryTimer) clearTimeout(l.retryTimer);
      l.retryTimer = setTimeout(() => {
        l.retryTimer = undefined;
        this.enqueue(l);
      }, delay);
      return;
    }
    const g = this.groupFor(t);
    l.group = g;
    g.queue.push(t.id, t.priority, this.seq++);
    this.scheduleDispatch();
  }

  private groupFor(t: Task): Group {
    const caps = [...t.capabilities].sort();
    const key = `${t.agent ?? '*'}|${caps.join(',')}`;
    let g = this.groups.get(key);
    if (!g) {
      g = { key, agent: t.agent, caps, queue: new ReadyQueue(), agents: this.eligible(t.agent, caps) };
      this.groups.set(key, g);
    }
    return g;
  }

  /** Agents that may take a task asking for `agent` (or any) with all of `caps`. */
  private eligible(agent: string | null, caps: string[]): AgentSlot[] {
    return [...this.agents.values()].filter(
      (a) => (agent === null || a.spec.name === agent) && caps.every((c) => a.spec.capabilities.includes(c)),
    );
  }

  private scheduleDispatch(): void {
    if (this.dispatchScheduled || this.stopping) return;
    this.dispatchScheduled = true;
    setImmediate(() => {
      this.dispatchScheduled = false;
      this.dispatch();
    });
  }

  /** Start as many attempts as permits, agents and priorities allow. */
  private dispatch(): void {
    while (this.permitsFree > 0 && !this.stopping) {
      let best: Group | undefined;
      let bestHead: { priority: number; seq: number } | undefined;
      for (const g of this.groups.values()) {
        if (g.queue.size === 0) continue;
        const h = g.queue.peek();
        if (!h) continue;
        if (g.agents.length === 0 || g.agents.every((a) => a.error !== null)) {
          // nothing can ever take these tasks: fail them all with the reason
          for (let id = g.queue.pop(); id !== undefined; id = g.queue.pop()) {
            const l = this.live.get(id);
            if (l) void this.failUnroutable(l, g);
          }
          continue;
        }
        if (!g.agents.some((a) => this.canTake(a))) continue;
        if (
          !bestHead ||
          h.priority < bestHead.priority ||
          (h.priority === bestHead.priority && h.seq < bestHead.seq)
        ) {
          best = g;
          bestHead = h;
        }
      }
      if (!best) return;
      const id = best.queue.pop()!;
      const l = this.live.get(id);
      if (!l || l.task.state !== 'queued') continue;
      let agent: AgentSlot | undefined;
      for (const a of best.agents) {
        if (!this.canTake(a)) continue;
        if (!agent || a.running / a.spec.concurrency < agent.running / agent.spec.concurrency) agent = a;
      }
      const breach = this.hasBudget(l, agent!)
        ? this.ledger.check(this.budgetSubject(l, agent!), { usd: l.task.costUsd, tokens: l.task.tokens })
        : null;
      if (breach) {
        void this.failBudget(l, breach);
        continue;
      }
      this.startAttempt(l, agent!);
    }
  }

  /** Whether an agent can start an attempt now (not in error, an idle instance, room in its runtime's cap). */
  private canTake(a: AgentSlot): boolean {
    if (a.error !== null || a.free.length === 0) return false;
    const cap = this.runtimeCaps[a.spec.runtime];
    return cap === undefined || (this.runtimeRunning.get(a.spec.runtime) ?? 0) < cap;
  }

  /** Whether any cap applies to a task on an agent (most tasks have none: no ledger work for them). */
  private hasBudget(l: Live, agent: AgentSlot): boolean {
    return (
      l.task.budget !== null ||
      agent.spec.budget !== undefined ||
      l.wf?.budget !== undefined ||
      this.ledger.hasHomeBudget
    );
  }

  private budgetSubject(l: Live, agent: AgentSlot): BudgetSubject {
    return {
      taskId: l.task.id,
      agent: agent.spec.name,
      workflowId: l.task.workflowId,
      task: l.task.budget,
      agentBudget: agent.spec.budget,
      workflowBudget: l.wf?.budget,
    };
  }

  /** A queued task whose budget (or its agent's, workflow's or home's) is spent: it fails without running. */
  private async failBudget(l: Live, breach: BudgetBreach): Promise<void> {
    const reason = breachReason(breach);
    if (
      await this.transition(l, 'failed', {
        actor: 'engine',
        set: { reason, endedAt: Date.now() },
        data: { reason, budget_scope: breach.scope },
      })
    ) {
      await this.ended(l);
    }
  }

  private async failUnroutable(l: Live, g: Group): Promise<void> {
    const errors = g.agents.map((a) => `${a.spec.name}: ${a.error}`).join('; ');
    const reason =
      g.agents.length === 0
        ? `no agent can take this task (agent ${l.task.agent ?? 'any'}, capabilities [${l.task.capabilities.join(', ')}])`
        : `every agent that can take this task is in error: ${errors}`;
    if (
      await this.transition(l, 'failed', {
        actor: 'engine',
        set: { reason, endedAt: Date.now() },
        data: { reason },
      })
    ) {
      await this.ended(l);
    }
  }

  private startAttempt(l: Live, agent: AgentSlot): void {
    const t = l.task;
    const now = Date.now();
    const instance = agent.free.pop()!;
    const run: RunningAttempt = {
      id: newId('attempt'),
      number: t.attempts + 1,
      epoch: t.epoch + 1,
      agent,
      instance,
      startedAt: now,
      logEvents: 0,
      usd: 0,
      usage: noUsage(),
    };
    this.permitsFree--;
    agent.running++;
    this.runtimeRunning.set(agent.spec.runtime, (this.runtimeRunning.get(agent.spec.runtime) ?? 0) + 1);
    this.setInstance(agent, instance, 'busy');
    l.run = run;
    this.running.add(run);
    run.done = this.runAttempt(l, run).catch((err) => this.fatal(err));
  }

  /** Run one attempt inside a `smith.attempt` span (a no-op unless a tracer provider is registered). */
  private runAttempt(l: Live, run: RunningAttempt): Promise<void> {
    const attrs = {
      'smith.task.id': l.task.id,
      'smith.task.key': l.task.key,
      'smith.attempt': run.number,
      'smith.agent': run.agent.spec.name,
      'smith.runtime': run.agent.spec.runtime,
    };
    return withSpan('smith.attempt', attrs, async (span) => {
      await this.runAttemptInSpan(l, run);
      if (span.isRecording()) span.setAttribute('smith.task.state', l.task.state);
    });
  }

  private async runAttemptInSpan(l: Live, run: RunningAttempt): Promise<void> {
    const t = l.task;
    const agent = run.agent;
    // a native session is resumed only by the agent that made it
    const resumeSessionId =
      t.sessionId !== null && t.assignedAgent === agent.spec.name ? t.sessionId : undefined;
    // The attempt is recorded in the same tick as the process starts, not before: a crash in between
    // leaves the task queued, and recovery ends the process by the SMITH_HOME marker it carries.
    const recorded = this.transition(l, 'running', {
      actor: 'engine',
      expectEpoch: t.epoch,
      set: {
        attempts: run.number,
        epoch: run.epoch,
        assignedAgent: agent.spec.name,
        startedAt: t.startedAt ?? run.startedAt,
      },
      data: { attempt: run.number, epoch: run.epoch, agent: agent.spec.name, instance: run.instance },
      attemptId: run.id,
      extra: [
        {
          op: 'insertAttempt',
          owner: this.owner,
          attempt: {
            id: run.id,
            taskId: t.id,
            number: run.number,
            epoch: run.epoch,
            agent: agent.spec.name,
            instance: run.instance,
            state: 'running',
            pid: null,
            startedAt: run.startedAt,
            endedAt: null,
            exitCode: null,
            signal: null,
            output: null,
            error: null,
            sessionId: null,
            costUsd: 0,
            tokens: 0,
            usage: null,
          },
        },
      ],
    });
    let outcome: AttemptOutcome;
    if (run.stop) {
      if (!(await recorded)) return this.unrecorded(l, run);
      outcome = {
        status: 'canceled',
        exitCode: null,
        signal: null,
        output: '',
        error: run.stop.reason,
        ...ZERO_OUTCOME_FIELDS,
      };
    } else {
      let workdir = t.workdir;
      if (t.governance?.workspace === 'worktree') {
        try {
          workdir = await this.prepareWorktree(l, run);
        } catch (err) {
          await recorded;
          await this.onOutcome(l, run, {
            status: 'failed',
            exitCode: null,
            signal: null,
            output: '',
            error: (err as Error).message,
            retryable: false,
            ...ZERO_OUTCOME_FIELDS,
          });
          return;
        }
      }
      const input = await this.buildInput(t, run.number);
      let env: Record<string, string> | undefined;
      // built on first use: in-process agents rarely read it, and a copy of the environment is not free
      const buildEnv = (): Record<string, string> => {
        const e: Record<string, string> = {
          ...this.baseEnv,
          ...(agent.spec.env ?? {}),
          ...t.env,
          SMITH_TASK_ID: t.id,
          SMITH_TASK_KEY: t.key,
          SMITH_ATTEMPT: String(run.number),
          SMITH_ATTEMPT_ID: run.id,
          SMITH_WORKDIR: workdir,
          SMITH_HOME: this.home,
          SMITH_OWNER: this.owner,
        };
        if (t.workflowId) e.SMITH_WORKFLOW_ID = t.workflowId;
        if (resumeSessionId !== undefined) e.SMITH_RESUME_SESSION = resumeSessionId;
        return e;
      };
      const handle = agent.runtime.start({
        input,
        attemptId: run.id,
        epoch: run.epoch,
        agent: agent.spec,
        instance: run.instance,
        workdir,
        ...(t.governance ? { mode: t.governance.mode } : {}),
        get env() {
          return (env ??= buildEnv());
        },
        timeoutMs: t.timeoutMs ?? agent.spec.timeoutMs ?? null,
        onEvent: (e) => this.onRuntimeEvent(l, run, e),
        ...(resumeSessionId !== undefined ? { resumeSessionId } : {}),
        ...this.budgetForAttempt(l, agent),
      });
      run.handle = handle;
      // a cancel may have arrived while the attempt was being recorded
      const stop = run.stop as RunningAttempt['stop'];
      if (stop) handle.cancel(stop.reason);
      else if (run.pausePending) handle.pause();
      if (handle.pid !== null) {
        this.commit([{ op: 'updateAttempt', id: run.id, set: { pid: handle.pid } }]).catch((err) =>
          this.fatal(err),
        );
      }
      if (!(await recorded)) {
        // someone else changed the task meanwhile: this attempt must not run
        handle.cancel('the attempt could not be recorded: the task changed');
        await handle.done;
        return this.unrecorded(l, run);
      }
      outcome = await handle.done;
    }
    await this.onOutcome(l, run, outcome);
  }

  private budgetForAttempt(l: Live, agent: AgentSlot): { budget?: Budget } {
    if (!this.hasBudget(l, agent)) return {};
    const left = this.ledger.remaining(this.budgetSubject(l, agent), {
      usd: l.task.costUsd,
      tokens: l.task.tokens,
    });
    return left.usd === undefined && left.tokens === undefined ? {} : { budget: left };
  }

  // ---------------------------------------------------------------- governance

  /** Lease the task's worktree and record where it is; returns the attempt's working directory. */
  private async prepareWorktree(l: Live, run: RunningAttempt): Promise<string> {
    const t = l.task;
    const { worktree, set } = await this.governor.prepare(t, t.workdir, run.agent.spec);
    const g = t.governance!;
    const changed = (Object.keys(set) as (keyof TaskGovernance)[]).some((k) => g[k] !== set[k]);
    if (changed) {
      const next: TaskGovernance = { ...g, ...set };
      await this.commit([
        { op: 'updateTask', id: t.id, expect: { epoch: run.epoch }, set: { governance: next } },
      ]);
      t.governance = next;
    }
    return worktree.path;
  }

  private startJudging(l: Live, agent: string, attempt: number): void {
    const p: Promise<void> = this.judgeTask(l, agent, attempt)
      .catch((err) => this.fatal(err))
      .finally(() => this.judging.delete(p));
    this.judging.add(p);
  }

  /** Branches of other tasks of the task's workflow that the council approved and are not applied yet. */
  private async approvedBranches(t: Task): Promise<string[]> {
    if (t.workflowId === null) return [];
    const tasks = await this.store.listTasks({ workflowId: t.workflowId });
    return tasks
      .filter(
        (o) =>
          o.id !== t.id &&
          o.governance?.branch !== undefined &&
          o.governance.verdict?.decision === 'approve' &&
          o.governance.applied !== true &&
          o.governance.repo === t.governance?.repo,
      )
      .map((o) => o.governance!.branch!);
  }

  /**
   * The council judges a task's change (after committing what its agent left in the worktree),
   * the verdict is recorded (signed when the home has a key), and the decision is carried out:
   * approve (apply in auto mode, wait for a person in strict mode, never apply in dry-run), revise
   * (back to the agent with the reasons, while rounds remain), or reject.
   */
  private async judgeTask(l: Live, agent: string, attempt: number): Promise<void> {
    const t = l.task;
    const g = t.governance!;
    let council: Awaited<ReturnType<Governor['judge']>>;
    try {
      if (g.workspace === 'worktree') await this.governor.commitWork(t, attempt, agent);
      const waivers = waiversFrom(await this.store.listWaivers(t.id));
      council = await this.governor.judge(t, waivers, await this.approvedBranches(t), this.judgeAbort.signal);
    } catch (err) {
      // shutting down: the task stays `judging`; `smith resume` judges it again
      if (this.stopping) return;
      const reason = `the council could not judge the result: ${(err as Error).message}`;
      if (
        await this.transition(l, 'failed', {
          actor: 'council',
          set: { reason, endedAt: Date.now() },
          data: { reason },
        })
      ) {
        await this.governor.keep(t);
        await this.ended(l);
      }
      return;
    }
    const r = council.result;
    const verdict = {
      task: t.id,
      round: g.rounds,
      attempt,
      decision: r.decision,
      score: r.score,
      threshold: r.threshold,
      tier: r.tier,
      vetoed_by: r.vetoedBy ?? null,
      reasons: r.reasons,
      violations: r.violations,
      waived: r.waived,
      unusable_waivers: r.unusableWaivers,
      verdicts: council.verdicts,
    } as unknown as Json;
    const auditOp: Op = this.signingKey
      ? await verdictAuditOp({ subject: t.id, verdict, extra: { attempt } }, this.signingKey)
      : { op: 'audit', actor: 'council', action: 'task.verdict', subject: t.id, data: { verdict, attempt } };
    const ops: Op[] = [
      auditOp,
      {
        op: 'event',
        taskId: t.id,
        attemptId: null,
        type: 'verdict',
        data: {
          decision: r.decision,
          score: r.score,
          threshold: r.threshold,
          round: g.rounds,
          reasons: r.reasons,
          judges: council.verdicts.map((v) => ({
            judge: v.judge,
            decision: v.decision,
            confidence: v.confidence,
          })),
        } as unknown as Json,
      },
    ];
    for (const use of r.waived) {
      ops.push({
        op: 'audit',
        actor: 'council',
        action: 'waiver.used',
        subject: use.waiverId,
        data: { task: t.id, gate: use.gate, judge: use.judge, rule: use.violation.rule },
      });
    }
    const recorded = await this.commit(ops);
    this.emit('task:verdict', {
      taskId: t.id,
      decision: r.decision,
      judges: council.verdicts.map((v) => ({ judge: v.judge, decision: v.decision })),
    });
    const auditHash = recorded.audit[0]?.hash ?? '';
    const next: TaskGovernance = {
      ...g,
      verdict: {
        decision: r.decision,
        score: r.score,
        threshold: r.threshold,
        audit: auditHash,
        round: g.rounds,
      },
    };
    const jws = (auditOp as { data?: { verdict_jws?: string } }).data?.verdict_jws;
    if (r.decision === 'approve') {
      if (g.mode === 'dry-run') {
        if (
          await this.transition(l, 'completed', {
            actor: 'council',
            set: { governance: { ...next, applied: false }, endedAt: Date.now() },
            data: { applied: false, mode: 'dry-run', verdict: auditHash },
          })
        ) {
          await this.governor.keep(t);
          await this.ended(l);
        }
        return;
      }
      if (g.mode === 'strict') {
        await this.transition(l, 'awaiting_approval', {
          actor: 'council',
          set: { governance: next },
          data: { verdict: auditHash, hint: `smith approve ${t.id}` },
        });
        return;
      }
      t.governance = next;
      await this.applyAndComplete(l, 'council', this.trailersOf(t, auditHash, jws), false);
      return;
    }
    if (r.decision === 'revise') {
      const text = `The council asked for changes (round ${g.rounds + 1}): ${r.reasons.join(' ')}`;
      const ok = await this.transition(l, 'queued', {
        actor: 'council',
        set: {
          governance: { ...next, rounds: g.rounds + 1 },
          // a revise round does not use up the task's retries
          maxAttempts: t.maxAttempts + 1,
          availableAt: Date.now(),
          reason: `revise: ${r.reasons[0] ?? 'the council asked for changes'}`,
        },
        data: { verdict: auditHash, round: g.rounds + 1 },
        extra: [
          { op: 'event', taskId: t.id, attemptId: null, type: 'guidance', data: { from: 'council', text } },
        ],
      });
      if (ok) this.enqueue(l);
      return;
    }
    const reason = `rejected by the council: ${r.reasons.join(' ') || 'no reason given'}`;
    if (
      await this.transition(l, 'rejected', {
        actor: 'council',
        set: { governance: next, reason, endedAt: Date.now() },
        data: { verdict: auditHash, reason },
      })
    ) {
      await this.governor.keep(t);
      await this.ended(l);
    }
  }

  private trailersOf(t: Task, auditHash: string, jws: string | undefined): ApplyTrailers {
    const v = t.governance?.verdict;
    const verdict = v ? `${v.decision} ${v.score.toFixed(2)}/${v.threshold} round ${v.round}` : 'approve';
    return {
      task: t.id,
      agent: t.assignedAgent ?? t.agent ?? '-',
      verdict,
      audit: auditHash,
      ...(jws ? { jws } : {}),
    };
  }

  /**
   * Apply the task's approved change and complete it. When the apply fails (a conflict, a dirty
   * checkout of the base) the task waits in `awaiting_approval` with the reason (from the council),
   * or the error is thrown (from a person's approve).
   */
  private async applyAndComplete(
    l: Live,
    actor: string,
    trailers: ApplyTrailers,
    throwOnFailure: boolean,
  ): Promise<Task> {
    const t = l.task;
    const g = t.governance!;
    let sha: string;
    try {
      sha = await this.governor.apply(t, trailers);
    } catch (err) {
      if (throwOnFailure) throw err;
      const reason = `approved, but not applied: ${(err as Error).message}`;
      await this.transition(l, 'awaiting_approval', { actor, set: { reason }, data: { reason } });
      return t;
    }
    const ok = await this.transition(l, 'completed', {
      actor,
      set: { governance: { ...g, applied: true, appliedSha: sha }, reason: null, endedAt: Date.now() },
      data: { applied: sha, branch: g.branch ?? null, base: g.base ?? null, verdict: trailers.audit },
    });
    if (ok) await this.ended(l);
    return t;
  }

  /** The hash and JWS of a task's last verdict record. */
  private async lastVerdict(t: Task): Promise<{ hash: string; jws?: string }> {
    const records = await this.store.auditFor(t.id);
    const v = [...records].reverse().find((r) => r.action === 'task.verdict');
    const jws = (v?.data as { verdict_jws?: string } | undefined)?.verdict_jws;
    return { hash: v?.hash ?? t.governance?.verdict?.audit ?? '', ...(jws ? { jws } : {}) };
  }

  /** `smith guide` recorded guidance for a task (told through a request): its next attempt reads it. */
  noteGuidance(taskId: string): void {
    this.maybeGuided.add(taskId);
  }

  /**
   * A person approves a task waiting in `awaiting_approval` (strict mode): its change is applied
   * and it completes.
   * @throws InvalidTransitionError when it is not awaiting approval; SmithError when the apply fails
   */
  async approve(id: string, actor = 'cli'): Promise<Task> {
    const l = await this.liveOrLoad(id);
    const t = l.task;
    if (t.state !== 'awaiting_approval') {
      throw new SmithError(
        'INVALID_TRANSITION',
        `task ${t.id} (${t.key}) is ${t.state}, not awaiting_approval; only a task the council approved in strict mode waits for a person`,
        { context: { task: t.id, state: t.state } },
      );
    }
    const { hash, jws } = await this.lastVerdict(t);
    return this.applyAndComplete(l, actor, this.trailersOf(t, hash, jws), true);
  }

  /**
   * A person rejects a task waiting for approval (or being judged): it ends `rejected`; its
   * worktree and branch are kept.
   */
  async reject(id: string, actor = 'cli', reason = 'rejected by a person'): Promise<Task> {
    const l = await this.liveOrLoad(id);
    const t = l.task;
    assertTaskTransition(t.id, t.state, 'rejected');
    const why = `rejected by ${actor}: ${reason}`;
    if (
      await this.transition(l, 'rejected', {
        actor,
        set: { reason: why, endedAt: Date.now() },
        data: { reason },
      })
    ) {
      await this.governor.keep(t);
      await this.ended(l);
    }
    return t;
  }

  /**
   * A person overrides the council's verdict (audited as `task.override`): `approve` applies the
   * change of a task awaiting approval or rejected by the council (never in dry-run), `reject`
   * rejects a task awaiting approval.
   */
  async override(id: string, verdict: 'approve' | 'reject', actor = 'cli', reason = ''): Promise<Task> {
    const l = await this.liveOrLoad(id);
    const t = l.task;
    if (!t.governance) {
      throw new SmithError(
        'INVALID_TRANSITION',
        `task ${t.id} (${t.key}) is not judged by the council; nothing to override`,
      );
    }
    if (verdict === 'reject') {
      await this.commit([
        {
          op: 'audit',
          actor,
          action: 'task.override',
          subject: t.id,
          data: { verdict, reason, from: t.state },
        },
      ]);
      return this.reject(id, actor, reason || 'overridden');
    }
    if (t.state !== 'awaiting_approval' && t.state !== 'rejected') {
      throw new SmithError(
        'INVALID_TRANSITION',
        `task ${t.id} (${t.key}) is ${t.state}; an approve override applies a task awaiting approval or rejected by the council`,
      );
    }
    if (t.governance.mode === 'dry-run') {
      throw new SmithError('INVALID_TRANSITION', `task ${t.id} is dry-run: its change is never applied`);
    }
    await this.commit([
      {
        op: 'audit',
        actor,
        action: 'task.override',
        subject: t.id,
        data: { verdict, reason, from: t.state },
      },
    ]);
    const { hash, jws } = await this.lastVerdict(t);
    const trailers = this.trailersOf(t, hash, jws);
    trailers.verdict = `override approve by ${actor}`;
    if (t.governance.worktree !== undefined) {
      // re-open the worktree this process may not have open (after a restart)
      await this.governor.prepare(t, t.workdir);
    }
    return this.applyAndComplete(l, actor, trailers, true);
  }

  /** A `session` event: the native session id goes on the attempt and (if still current) the task. */
  private onSession(l: Live, run: RunningAttempt, id: string): void {
    run.sessionId = id;
    const ops: Op[] = [{ op: 'updateAttempt', id: run.id, set: { sessionId: id } }];
    if (run.epoch === l.task.epoch) {
      l.task.sessionId = id;
      ops.push({ op: 'updateTask', id: l.task.id, set: { sessionId: id } });
    }
    this.commit(ops).catch((err) => this.fatal(err));
  }

  /** A `usage` event: add it to the attempt and the ledger, and stop the task when a cap is reached. */
  private onUsage(l: Live, run: RunningAttempt, e: Extract<RuntimeEvent, { type: 'usage' }>): void {
    const usd = e.costUsd ?? priceUsage(e.tokens, e.model, this.prices) ?? 0;
    const tokens = totalTokens(e.tokens);
    run.usd += usd;
    addUsage(run.usage, e.tokens);
    this.ledger.add(run.agent.spec.name, l.task.workflowId, usd, tokens);
    if (run.stop) return;
    const spent = { usd: l.task.costUsd + run.usd, tokens: l.task.tokens + totalTokens(run.usage) };
    const breach = this.ledger.check(this.budgetSubject(l, run.agent), spent);
    if (breach) {
      const reason = breachReason(breach);
      run.stop = { kind: 'budget', reason };
      run.handle?.cancel(reason);
    }
  }

  private unrecorded(l: Live, run: RunningAttempt): void {
    this.release(run);
    if (l.run === run) l.run = undefined;
  }

  private async buildInput(t: Task, attempt: number): Promise<TaskInput> {
    const needs: TaskInput['needs'] = {};
    let prompt = t.prompt;
    for (const id of t.needs) {
      const n = await this.store.getTask(id);
      if (n) needs[n.key] = { id: n.id, output: n.output, state: n.state };
    }
    if (t.needs.length > 0 && prompt.includes('{needs.')) {
      prompt = prompt.replace(/\{needs\.([A-Za-z0-9_][A-Za-z0-9_.-]*?)\.output\}/g, (m, key: string) =>
        needs[key] ? (needs[key].output ?? '') : m,
      );
    }
    const input: TaskInput = { id: t.id, key: t.key, workflow_id: t.workflowId, prompt, attempt, needs };
    // guidance exists after an attempt (a revise round; `smith guide` before a retry), or when a
    // person guided the task (noted by a request, or assumed for tasks taken over on resume)
    const guidance =
      attempt > 1 || this.maybeGuided.has(t.id) ? await this.store.eventsOfType(t.id, 'guidance') : [];
    if (guidance.length > 0) {
      input.guidance = guidance.map((e) => {
        const d = e.data as { from?: string; text?: string };
        return { from: d.from ?? 'unknown', text: d.text ?? '' };
      });
    }
    return input;
  }

  private onRuntimeEvent(l: Live, run: RunningAttempt, e: RuntimeEvent): void {
    let type: TaskEventType;
    let data: Json;
    switch (e.type) {
      case 'progress':
        this.emit('task:progress', { taskId: l.task.id, pct: e.pct, message: e.message });
        type = 'progress';
        data = { pct: e.pct ?? null, message: e.message ?? null };
        break;
      case 'log':
        if (run.logEvents >= this.logEventLimit) return;
        run.logEvents++;
        type = 'log';
        data =
          run.logEvents === this.logEventLimit
            ? {
                stream: e.stream,
                line: `(log events past ${this.logEventLimit} are in the attempt output only)`,
              }
            : {
                stream: e.stream,
                line: e.line.length > 65_536 ? `${e.line.slice(0, 65_536)}… (line cut at 64 KiB)` : e.line,
              };
        break;
      case 'artifact':
        type = 'artifact';
        data = { path: e.path };
        break;
      case 'message':
        type = 'message';
        data = e.data;
        break;
      case 'session':
        this.onSession(l, run, e.id);
        type = 'session';
        data = { id: e.id };
        break;
      case 'usage': {
        this.onUsage(l, run, e);
        const { type: kind, ...rest } = e;
        type = kind;
        data = rest as unknown as Json;
        break;
      }
      case 'text':
      case 'tool_use':
      case 'tool_result':
      case 'file_change': {
        const { type: kind, ...rest } = e;
        type = kind;
        data = rest as Json;
        break;
      }
    }
    this.commit([{ op: 'event', taskId: l.task.id, attemptId: run.id, type, data }]).catch((err) =>
      this.fatal(err),
    );
  }

  private release(run: RunningAttempt): void {
    if (!this.running.delete(run)) return;
    this.permitsFree++;
    run.agent.running--;
    const kind = run.agent.spec.runtime;
    this.runtimeRunning.set(kind, Math.max(0, (this.runtimeRunning.get(kind) ?? 1) - 1));
    const state = run.agent.instances[run.instance];
    if ((state === 'busy' || state === 'paused') && run.agent.error === null) {
      run.agent.free.push(run.instance);
      this.setInstance(run.agent, run.instance, 'idle');
    }
    this.scheduleDispatch();
  }

  private async onOutcome(l: Live, run: RunningAttempt, o: AttemptOutcome): Promise<void> {
    // the runtime itself failed (could not spawn): the instance is faulty; its supervisor restarts it
    if (o.runtimeError) run.agent.crash[run.instance]?.(new Error(o.error ?? 'runtime error'));
    this.release(run);
    const t = l.task;
    const now = Date.now();
    this.emit('attempt:end', {
      taskId: t.id,
      agent: run.agent.spec.name,
      number: run.number,
      state: run.stop?.kind === 'canceled' ? 'canceled' : o.status,
      durationMs: now - run.startedAt,
    });
    // the attempt's spend: the runtime's own totals when it has them, else the sum of its usage events
    const usage = o.tokens ?? run.usage;
    const usd = o.costUsd ?? run.usd;
    const tokens = totalTokens(usage);
    this.ledger.add(run.agent.spec.name, t.workflowId, usd - run.usd, tokens - totalTokens(run.usage));
    const sessionId = o.sessionId ?? run.sessionId ?? null;
    const attemptSet = {
      endedAt: now,
      exitCode: o.exitCode,
      signal: o.signal,
      output: o.output,
      error: o.error ?? null,
      costUsd: usd,
      tokens,
      usage: tokens > 0 ? usage : null,
      ...(sessionId !== null ? { sessionId } : {}),
    };
    // the task's spend covers every attempt, whatever became of the task
    t.costUsd += usd;
    t.tokens += tokens;
    const spendSet: Partial<Task> = { costUsd: t.costUsd, tokens: t.tokens };
    if (sessionId !== null && run.epoch === t.epoch) {
      t.sessionId = sessionId;
      spendSet.sessionId = sessionId;
    }
    const spendData: Record<string, Json> =
      usd > 0 || tokens > 0 ? { cost_usd: usd, tokens, task_cost_usd: t.costUsd, task_tokens: t.tokens } : {};
    if (l.run === run) l.run = undefined;
    const current = run.epoch === t.epoch && (t.state === 'running' || t.state === 'paused');
    if (!current || run.stop?.kind === 'canceled') {
      // the task moved on (canceled, or a newer epoch): record the attempt and the spend, never the state
      const state = run.stop?.kind === 'canceled' ? 'canceled' : 'stale';
      const ops: Op[] = [
        { op: 'updateAttempt', id: run.id, expect: { state: ['running'] }, set: { ...attemptSet, state } },
      ];
      if (usd > 0 || tokens > 0)
        ops.push({ op: 'updateTask', id: t.id, set: { costUsd: t.costUsd, tokens: t.tokens } });
      await this.commit(ops);
      return;
    }
    // no guard of its own: it rides with the task update, whose epoch guard already fences a stale attempt
    const attemptOp = (state: 'succeeded' | 'failed' | 'timed_out' | 'canceled'): Op => ({
      op: 'updateAttempt',
      id: run.id,
      set: { ...attemptSet, state },
    });
    if (run.stop?.kind === 'shutdown') {
      // smith is shutting down: the task goes back to the queue for `smith resume`; the attempt does not count
      await this.transition(l, 'queued', {
        actor: 'engine',
        expectEpoch: run.epoch,
        set: { maxAttempts: t.maxAttempts + 1, availableAt: now, ...spendSet },
        data: { reason: 'shutdown', attempt: run.number, ...spendData },
        attemptId: run.id,
        extra: [attemptOp('canceled')],
      });
      return;
    }
    // the task moved on in the store meanwhile (its epoch or state changed): keep the result on the attempt
    const stale = async (): Promise<void> => {
      await this.commit([
        {
          op: 'updateAttempt',
          id: run.id,
          expect: { state: ['running'] },
          set: { ...attemptSet, state: 'stale' },
        },
      ]);
    };
    const duration = now - run.startedAt;
    if (o.status === 'succeeded') {
      // a governed task's result is judged before it completes
      const judged = t.governance !== null;
      const ok = await this.transition(l, judged ? 'judging' : 'completed', {
        actor: 'engine',
        expectEpoch: run.epoch,
        set: {
          output: o.output,
          exitCode: o.exitCode,
          reason: null,
          ...(judged ? {} : { endedAt: now }),
          ...spendSet,
        },
        data: {
          attempt: run.number,
          agent: run.agent.spec.name,
          exit_code: o.exitCode,
          duration_ms: duration,
          ...spendData,
        },
        attemptId: run.id,
        extra: [attemptOp('succeeded')],
      });
      if (!ok) await stale();
      else if (judged) this.startJudging(l, run.agent.spec.name, run.number);
      else await this.ended(l);
      return;
    }
    const overBudget = run.stop?.kind === 'budget' || o.reason === 'budget_exceeded';
    let reason = run.stop?.kind === 'budget' ? run.stop.reason : (o.error ?? o.status);
    if (o.reason === 'budget_exceeded' && !reason.startsWith('budget_exceeded'))
      reason = `budget_exceeded: ${reason}`;
    const codeData: Record<string, Json> = o.reason !== undefined ? { reason_code: o.reason } : {};
    const status =
      o.status === 'timed_out'
        ? 'timed_out'
        : o.status === 'canceled' && run.stop?.kind !== 'budget'
          ? 'canceled'
          : 'failed';
    // retrying cannot help a spent budget, a missing CLI or refused credentials
    const retryable = !overBudget && o.retryable !== false;
    if (retryable && t.attempts < t.maxAttempts && t.state === 'running') {
      const delay = Math.round(backoffDelay(t.attempts, this.backoff));
      const ok = await this.transition(l, 'queued', {
        actor: 'engine',
        expectEpoch: run.epoch,
        set: { availableAt: now + delay, reason, exitCode: o.exitCode, ...spendSet },
        data: {
          attempt: run.number,
          reason,
          retry_in_ms: delay,
          exit_code: o.exitCode,
          ...codeData,
          ...spendData,
        },
        attemptId: run.id,
        extra: [attemptOp(status)],
      });
      if (ok) this.enqueue(l);
      else await stale();
      return;
    }
    const ok = await this.transition(l, 'failed', {
      actor: 'engine',
      expectEpoch: run.epoch,
      set: { output: o.output || null, exitCode: o.exitCode, reason, endedAt: now, ...spendSet },
      data: {
        attempt: run.number,
        agent: run.agent.spec.name,
        reason,
        exit_code: o.exitCode,
        duration_ms: duration,
        ...codeData,
        ...spendData,
      },
      attemptId: run.id,
      extra: [attemptOp(status)],
    });
    if (ok) await this.ended(l);
    else await stale();
  }

  /**
   * Change a task's state: the row (guarded by its current state, and epoch when given), a `state`
   * event and an audit record, in one transaction. Memory changes only after the commit applied.
   * @returns whether it applied
   */
  private async transition(
    l: Live,
    to: TaskState,
    o: {
      actor: string;
      set?: Partial<Task>;
      data?: Record<string, Json>;
      expectEpoch?: number;
      attemptId?: string;
      extra?: Op[];
    },
  ): Promise<boolean> {
    const t = l.task;
    const from = t.state;
    assertTaskTransition(t.id, from, to);
    const now = Date.now();
    const set = { ...(o.set ?? {}), state: to, updatedAt: now };
    const ops: Op[] = [
      {
        op: 'updateTask',
        id: t.id,
        expect: o.expectEpoch === undefined ? { state: [from] } : { state: [from], epoch: o.expectEpoch },
        set,
      },
      ...(o.extra ?? []),
      {
        op: 'event',
        taskId: t.id,
        attemptId: o.attemptId ?? null,
        type: 'state',
        data: { from, to, ...(o.data ?? {}) },
      },
      { op: 'audit', actor: o.actor, action: `task.${to}`, subject: t.id, data: { from, ...(o.data ?? {}) } },
    ];
    // reserve the new state in memory at once so nothing else acts on the old one meanwhile
    t.state = to;
    let r;
    try {
      r = await this.commit(ops);
    } catch (err) {
      t.state = from;
      this.fatal(err);
      return false;
    }
    if (!r.applied) {
      if (t.state === to) t.state = from;
      return false;
    }
    Object.assign(t, set);
    this.emit('task:state', { task: t, from, to });
    return true;
  }

  /** A task reached an ended state: its dependents move on, its workflow may end. */
  private async ended(l: Live): Promise<void> {
    const t = l.task;
    if (this.live.get(t.id) === l) {
      this.live.delete(t.id);
      if (l.wf) l.wf.live--;
    }
    if (l.retryTimer) clearTimeout(l.retryTimer);
    this.maybeGuided.delete(t.id);
    if (t.state === 'completed') {
      for (const id of l.dependents) {
        const d = this.live.get(id);
        if (!d) continue;
        d.waiting--;
        this.makeReady(d);
      }
    } else {
      await this.endDependents(t, l.dependents);
    }
    if (l.wf && l.wf.live === 0 && l.wf.state === 'running') await this.finishWorkflow(l.wf);
  }

  /** Cancel the tasks that needed `t` (which ended without completing), transitively. */
  private async endDependents(t: Task, dependents: string[]): Promise<void> {
    for (const id of dependents) {
      const d = this.live.get(id);
      // a waiting task, or one a person paused before it ever ran
      if (!d || !(d.task.state === 'pending' || (d.task.state === 'paused' && !d.run))) continue;
      if (d.task.trigger === 'all_done') {
        d.waiting--;
        this.makeReady(d);
        continue;
      }
      const reason = `dependency_failed: ${t.key} ended ${t.state}`;
      if (
        await this.transition(d, 'canceled', {
          actor: 'engine',
          set: { reason, endedAt: Date.now() },
          data: { reason },
        })
      ) {
        await this.ended(d);
      }
    }
  }

  private async finishWorkflow(wf: WfLive): Promise<void> {
    const counts = await this.store.countTasks(wf.id);
    const n = (st: TaskState): number => counts[st] ?? 0;
    const total = Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);
    const ended = n('completed') + n('failed') + n('rejected') + n('canceled');
    if (ended < total) {
      // tasks recorded but not in memory (not adopted by this engine): the workflow is not over
      return this.settleWaiters(wf);
    }
    const state: WorkflowState =
      n('completed') === total ? 'completed' : n('failed') + n('rejected') > 0 ? 'failed' : 'canceled';
    const now = Date.now();
    wf.state = state;
    await this.commit([
      {
        op: 'updateWorkflow',
        id: wf.id,
        expect: { state: ['running'] },
        set: { state, updatedAt: now, endedAt: now },
      },
      { op: 'audit', actor: 'engine', action: `workflow.${state}`, subject: wf.id, data: { tasks: counts } },
    ]);
    this.emit('workflow:state', { id: wf.id, name: wf.name, state });
    await this.settleWaiters(wf);
  }

  private async settleWaiters(wf: WfLive): Promise<void> {
    const w = await this.store.getWorkflow(wf.id);
    const waiters = wf.waiters;
    wf.waiters = [];
    if (w) for (const r of waiters) r(w);
  }

  // ---------------------------------------------------------------- interventions

  private async liveOrLoad(idOrKey: string): Promise<Live> {
    const l = this.live.get(idOrKey);
    if (l) return l;
    const t = await this.store.getTask(idOrKey);
    if (!t) throw new TaskNotFoundError(idOrKey);
    const held = this.live.get(t.id);
    if (held) return held;
    return { task: t, wf: null, waiting: 0, dependents: [], group: null };
  }

  /**
   * Cancel a task: a queued or pending one never runs; a running one's process group gets SIGTERM,
   * then SIGKILL after the agent's grace. Tasks that needed it are canceled too.
   * @throws TaskNotFoundError, InvalidTransitionError when it has already ended
   */
  async cancel(id: string, actor = 'cli', reason = 'canceled by a person'): Promise<Task> {
    const l = await this.liveOrLoad(id);
    const t = l.task;
    assertTaskTransition(t.id, t.state, 'canceled');
    if (l.group) l.group.queue.remove(t.id);
    if (l.retryTimer) clearTimeout(l.retryTimer);
    const run = l.run;
    const ok = await this.transition(l, 'canceled', {
      actor,
      set: { reason, endedAt: Date.now() },
      data: { reason },
    });
    if (!ok)
      throw new SmithError(
        'INVALID_TRANSITION',
        `task ${t.id} changed while it was being canceled; try again`,
      );
    if (run) {
      run.stop = { kind: 'canceled', reason };
      run.handle?.cancel(reason);
    }
    await this.ended(l);
    if (t.governance?.workspace === 'worktree') {
      // cancel rolls the worktree back to its base; the work is kept in a snapshot ref first
      await run?.done;
      const snapshot = await this.governor
        .rollback(t)
        .catch((err: unknown) => `kept (${(err as Error).message})`);
      if (snapshot !== undefined) {
        await this.commit([
          {
            op: 'audit',
            actor,
            action: 'task.rolled_back',
            subject: t.id,
            data: { snapshot, branch: t.governance.branch ?? null },
          },
        ]);
      }
    }
    return t;
  }

  /**
   * Pause a task: a running attempt is stopped (SIGSTOP to its process group) and keeps its permit;
   * a queued or pending task is held. @throws InvalidTransitionError
   */
  async pause(id: string, actor = 'cli'): Promise<Task> {
    const l = await this.liveOrLoad(id);
    const t = l.task;
    assertTaskTransition(t.id, t.state, 'paused');
    const wasRunning = t.state === 'running';
    if (l.group) l.group.queue.remove(t.id);
    if (l.retryTimer) clearTimeout(l.retryTimer);
    await this.transition(l, 'paused', { actor, data: { was: wasRunning ? 'running' : 'waiting' } });
    if (wasRunning && l.run) {
      if (l.run.handle) l.run.handle.pause();
      else l.run.pausePending = true;
      this.setInstance(l.run.agent, l.run.instance, 'paused');
    }
    return t;
  }

  /** Resume a paused task (SIGCONT for a stopped attempt; back to the queue otherwise). */
  async resumeTask(id: string, actor = 'cli'): Promise<Task> {
    const l = await this.liveOrLoad(id);
    const t = l.task;
    if (t.state !== 'paused') {
      throw new SmithError('INVALID_TRANSITION', `task ${t.id} is ${t.state}, not paused; nothing to resume`);
    }
    if (l.run) {
      await this.transition(l, 'running', { actor, data: { resumed: true } });
      l.run.pausePending = false;
      l.run.handle?.resume();
      this.setInstance(l.run.agent, l.run.instance, 'busy');
      return t;
    }
    const to = l.waiting > 0 ? 'pending' : 'queued';
    if (await this.transition(l, to, { actor, data: { resumed: true } })) {
      if (this.live.has(t.id)) this.enqueue(l);
    }
    return t;
  }

  /**
   * Run an ended task again (failed, rejected or canceled; never a completed one), with its whole
   * attempt budget (1 + retries) again; the tasks canceled because it failed wait for it again. Its
   * workflow runs again. @throws InvalidTransitionError for a completed task
   */
  async retry(id: string, actor = 'cli'): Promise<Task> {
    const l = await this.liveOrLoad(id);
    const t = l.task;
    if (!isTerminalTaskState(t.state) || t.state === 'completed') {
      throw new SmithError(
        'INVALID_TRANSITION',
        t.state === 'completed'
          ? `task ${t.id} completed; a completed task never runs again`
          : `task ${t.id} is ${t.state}; only failed, rejected or canceled tasks can be retried`,
      );
    }
    const needs = await Promise.all(t.needs.map((n) => this.store.getTask(n)));
    const unmet = needs.filter((n) =>
      t.trigger === 'all_done' ? !n || !isTerminalTaskState(n.state) : !n || n.state !== 'completed',
    ).length;
    const to: TaskState = unmet > 0 ? 'pending' : 'queued';
    const extra: Op[] = [];
    if (t.workflowId) {
      const w = await this.store.getWorkflow(t.workflowId);
      if (w && w.state !== 'running') {
        extra.push({
          op: 'updateWorkflow',
          id: w.id,
          set: { state: 'running', updatedAt: Date.now(), endedAt: null },
        });
        extra.push({
          op: 'audit',
          actor,
          action: 'workflow.running',
          subject: w.id,
          data: { from: w.state, retry: t.id },
        });
      }
    }
    // a person's retry grants the task's whole budget again: 1 + its retries
    let budget = 1;
    if (t.workflowId) {
      const spec = (await this.store.getWorkflowSpec(t.workflowId)) as unknown as WorkflowSpec | undefined;
      const own = spec?.tasks?.find((x) => x.key === t.key);
      if (own && typeof own.retries === 'number') budget = 1 + own.retries;
    }
    const ok = await this.transition(l, to, {
      actor,
      set: { maxAttempts: t.attempts + budget, availableAt: Date.now(), reason: null, endedAt: null },
      data: { retry: true },
      extra,
    });
    if (!ok)
      throw new SmithError(
        'INVALID_TRANSITION',
        `task ${t.id} changed while it was being retried; try again`,
      );
    // the tasks canceled because this one failed wait for it again
    const revived: Task[] = [];
    if (t.workflowId) {
      const all = await this.store.listTasks({ workflowId: t.workflowId });
      const reached = new Set([t.id]);
      let grew = true;
      while (grew) {
        grew = false;
        for (const d of all) {
          if (reached.has(d.id) || !d.needs.some((n) => reached.has(n))) continue;
          if (d.state === 'canceled' && d.reason?.startsWith('dependency_failed')) {
            reached.add(d.id);
            grew = true;
            const dl = this.live.get(d.id) ?? { task: d, wf: null, waiting: 0, dependents: [], group: null };
            if (
              await this.transition(dl, 'pending', {
                actor,
                set: { reason: null, endedAt: null },
                data: { revived_by: t.id },
              })
            ) {
              revived.push(dl.task);
            }
          }
        }
      }
      const wf = this.workflows.get(t.workflowId);
      if (wf) {
        wf.state = 'running';
        const w = await this.store.getWorkflow(t.workflowId);
        if (w) this.adopt(w, [t, ...revived]);
      }
    }
    return t;
  }

  // ---------------------------------------------------------------- shutdown

  /** How many of the tasks this engine holds are in each unfinished state. */
  liveCounts(): Record<'pending' | 'queued' | 'running' | 'paused' | 'judging', number> {
    const c = { pending: 0, queued: 0, running: 0, paused: 0, judging: 0 };
    for (const l of this.live.values()) {
      const st = l.task.state;
      if (st in c) c[st as keyof typeof c]++;
    }
    return c;
  }

  /** Attempts under way now. */
  get runningCount(): number {
    return this.running.size;
  }

  /**
   * Stop the engine. Graceful (default): no new attempts start; running attempts are waited for up
   * to `timeoutMs` (default 0 = not at all), then ended (SIGTERM, SIGKILL after grace) and their
   * tasks go back to `queued` for `smith resume`. Safe to call twice.
   */
  close(options: { timeoutMs?: number; force?: boolean } = {}): Promise<void> {
    if (this.closing) return this.closing;
    this.stopping = true;
    this.closing = (async () => {
      if (this.instanceTimer) clearInterval(this.instanceTimer);
      for (const l of this.live.values()) if (l.retryTimer) clearTimeout(l.retryTimer);
      const wait = options.force ? 0 : (options.timeoutMs ?? 0);
      if (wait > 0 && this.running.size > 0) {
        await Promise.race([
          Promise.all([...this.running].map((r) => r.done)),
          new Promise((r) => setTimeout(r, wait).unref()),
        ]);
      }
      const runs = [...this.running];
      for (const r of runs) {
        if (!r.stop) r.stop = { kind: 'shutdown', reason: 'smith is shutting down' };
        r.handle?.resume();
        r.handle?.cancel('smith is shutting down');
      }
      await Promise.all(runs.map((r) => r.done));
      this.judgeAbort.abort(new Error('smith is shutting down'));
      await Promise.all([...this.judging]);
      await this.agentsStarted().catch(() => undefined);
      await Promise.all([...this.agents.values()].map((slot) => slot.supervisor?.stop()));
      await Promise.all([...this.runtimes.values()].map((rt) => rt.close?.().catch(() => undefined)));
      for (const slot of this.agents.values()) {
        for (let i = 0; i < slot.instances.length; i++) this.setInstance(slot, i, 'terminated');
      }
      if (!this.fatalError) {
        this.flushInstances();
        await this.store.flush();
      }
      for (const wf of this.workflows.values())
        if (wf.state === 'running') await this.settleWaiters(wf).catch(() => {});
    })();
    return this.closing;
  }
}
