/**
 * Metrics of one server: Prometheus series (prom-client, in a registry of their own, never the
 * global one) and the KPI snapshot of the dashboard's metrics stream.
 *
 * Every series name starts with `smith_` ({@link METRIC_PREFIX}). Counters and histograms count
 * what this process's engine did since it started (engine events); gauges read the store and the
 * engine when scraped. The list of series, their labels and meaning is in
 * docs/events-and-metrics.md.
 */
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
  type PrometheusContentType,
} from 'prom-client';
import {
  INSTANCE_TRANSITIONS,
  isTerminalTaskState,
  TASK_STATES,
  type InstanceState,
  type TaskState,
} from '../core/states.js';
import type { Engine, EngineEventMap } from '../engine/engine.js';
import type { Store } from '../store/store.js';

/** The prefix of every series name. */
export const METRIC_PREFIX = 'smith_';

/** Every agent instance state, in lifecycle order (the keys of the instance transition table). */
export const INSTANCE_STATES = Object.keys(INSTANCE_TRANSITIONS) as InstanceState[];

/**
 * Buckets of task and attempt durations, in seconds: 50 ms to 2 h, because agent tasks last
 * seconds to hours (DESIGN.md).
 */
export const DURATION_BUCKETS_S: readonly number[] = [
  0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200,
];

/** Buckets of API request durations, in seconds (1 ms to 10 s; prom-client's defaults, finer below 5 ms). */
export const API_BUCKETS_S: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Buckets of the event stream's delivery lag, in seconds (5 ms to 5 s; the target is p99 <= 100 ms). */
export const LAG_BUCKETS_S: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5,
];

/** The KPI window: tasks that ended in the last 5 minutes, in ms. */
export const KPI_WINDOW_MS = 5 * 60_000;

/** At most this many ended tasks are kept in the KPI window (the newest win). */
export const KPI_WINDOW_MAX = 50_000;

/** The route label of requests that matched no route (never the raw URL: it would explode the series). */
export const UNMATCHED_ROUTE = '(unmatched)';

/**
 * What the metrics stream sends every second (JSON, snake_case like the API's views).
 * The window counts tasks this server's engine ended in the last {@link KPI_WINDOW_MS}.
 */
export interface KpiSnapshot {
  /** When it was taken (ISO 8601). */
  time: string;
  /** Tasks of the home in each state (every state, 0 when none). */
  tasks: Record<TaskState, number>;
  /** Tasks this engine holds `queued` (ready, waiting for an agent or a permit). */
  queue_depth: number;
  /** Length of the window, in seconds (300). */
  window_seconds: number;
  /** Tasks that ended in the window, by how they ended. */
  ended: { completed: number; failed: number; rejected: number; canceled: number };
  /**
   * completed ÷ (completed + failed + rejected) in the window, 0..1; canceled tasks are left out
   * (a person stopped them). `null` when none ended.
   */
  success_rate: number | null;
  /** Mean task latency (submission to end) of the window's completed, failed and rejected tasks, in ms. */
  latency_avg_ms: number | null;
  /** 95th percentile of the same latencies (nearest-rank method), in ms. */
  latency_p95_ms: number | null;
  /** Agent instances busy with an attempt. */
  active_agents: number;
  /** Agent instances in each state (every state, 0 when none). */
  instances: Record<InstanceState, number>;
}

/** Where the metrics read from. */
export interface MetricsSources {
  store: Store;
  /** The engine this server owns; its events feed the counters and histograms. */
  engine: Engine;
  /** Open streams of the server by stream name (for `smith_sse_clients`). Default none. */
  streams?: () => Record<string, number>;
}

/** One ended task of the KPI window. */
interface Ended {
  at: number;
  latencyMs: number;
  state: 'completed' | 'failed' | 'rejected' | 'canceled';
}

/** The registry of the process metrics, shared by every server of the process (made once). */
let processRegistry: Registry | undefined;

/**
 * prom-client's default process metrics (CPU, memory, event loop lag, GC, handles) with the
 * `smith_` prefix, in a registry of their own made once per process: the collectors hold timers
 * and observers that a registry per server would pile up.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: METRIC_PREFIX });
  }
  return processRegistry;
}

/**
 * The nearest-rank percentile of sorted values: the smallest value with at least `p`% of the
 * values at or below it (the "nearest-rank method"; Hyndman & Fan 1996, definition 1).
 * @param sorted - values in ascending order (not empty)
 * @param p - the percentile, 0 < p <= 100
 * @returns the percentile
 */
export function nearestRank(sorted: ArrayLike<number>, p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/**
 * The metrics of one server. Subscribes to the engine's events when made; call
 * {@link SmithMetrics.close} to unsubscribe.
 *
 * @example
 * const metrics = new SmithMetrics({ store, engine });
 * reply.type(metrics.contentType).send(await metrics.text());
 */
export class SmithMetrics {
  /** The server's own registry (never prom-client's global one). */
  readonly registry: Registry<PrometheusContentType>;
  private readonly store: Store;
  private readonly engine: Engine;
  private readonly apiLatency: Histogram<'method' | 'route' | 'status'>;
  private readonly taskDuration: Histogram<'state'>;
  private readonly attemptDuration: Histogram<'agent' | 'state'>;
  private readonly verdicts: Counter<'judge' | 'decision'>;
  private readonly deliveryLag: Histogram;
  /** The latest state of each instance seen in the engine's events (`agent\0index`). */
  private readonly liveInstances = new Map<string, InstanceState>();
  private window: Ended[] = [];
  private closed = false;
  private readonly onState = (e: EngineEventMap['task:state']): void => this.taskEnded(e);
  private readonly onAttempt = (e: EngineEventMap['attempt:end']): void => {
    this.attemptDuration.observe({ agent: e.agent, state: e.state }, e.durationMs / 1000);
  };
  private readonly onVerdict = (e: EngineEventMap['task:verdict']): void => {
    this.verdicts.inc({ judge: 'council', decision: e.decision });
    for (const j of e.judges) this.verdicts.inc({ judge: j.judge, decision: j.decision });
  };
  private readonly onInstance = (e: EngineEventMap['agent:instance']): void => {
    this.liveInstances.set(`${e.agent}\u0000${e.index}`, e.state);
  };

  /** @param sources - the store, the engine, and the server's open streams */
  constructor(sources: MetricsSources) {
    this.store = sources.store;
    this.engine = sources.engine;
    const registers = [(this.registry = new Registry())];
    const p = METRIC_PREFIX;
    const store = this.store;
    const engine = this.engine;
    // arrow functions cannot be collectors (prom-client calls them with the metric as `this`)
    const instances = (): Promise<{ states: Map<string, InstanceState[]>; restarts: Map<string, number> }> =>
      this.instances();

    new Gauge({
      name: `${p}tasks`,
      help: 'Tasks of the home in each state.',
      labelNames: ['state'],
      registers,
      async collect() {
        const counts = await store.countTasksByState();
        for (const s of TASK_STATES) this.set({ state: s }, counts[s] ?? 0);
      },
    });
    new Gauge({
      name: `${p}queue_depth`,
      help: 'Tasks queued (ready to run, waiting for an agent instance or a permit) in this engine.',
      registers,
      collect() {
        this.set(engine.liveCounts().queued);
      },
    });
    new Gauge({
      name: `${p}attempts_running`,
      help: 'Attempts under way now.',
      registers,
      collect() {
        this.set(engine.runningCount);
      },
    });
    new Gauge({
      name: `${p}agent_instances`,
      help: 'Agent instances in each state, by agent.',
      labelNames: ['agent', 'state'],
      registers,
      async collect() {
        this.reset();
        const { states } = await instances();
        for (const [agent, list] of states) {
          for (const s of INSTANCE_STATES)
            this.set(
              { agent, state: s },
              list.reduce((n, x) => n + (x === s ? 1 : 0), 0),
            );
        }
      },
    });
    new Counter({
      name: `${p}agent_restarts_total`,
      help: "Restarts of an agent's instances by their supervisor, since the agent started.",
      labelNames: ['agent'],
      registers,
      async collect() {
        // the supervisor's own count (recorded with the instances); it starts again at 0 with the engine
        this.reset();
        const { restarts } = await instances();
        for (const [agent, n] of restarts) this.inc({ agent }, n);
      },
    });
    const streams = sources.streams;
    new Gauge({
      name: `${p}sse_clients`,
      help: 'Open Server-Sent Events streams of this server, by stream.',
      labelNames: ['stream'],
      registers,
      collect() {
        this.reset();
        for (const [stream, n] of Object.entries(streams?.() ?? {})) this.set({ stream }, n);
      },
    });
    this.taskDuration = new Histogram({
      name: `${p}task_duration_seconds`,
      help: 'Time from submission to end of tasks that ended, by how they ended (queueing included).',
      labelNames: ['state'],
      buckets: [...DURATION_BUCKETS_S],
      registers,
    });
    this.attemptDuration = new Histogram({
      name: `${p}attempt_duration_seconds`,
      help: 'Time from start to end of attempts, by agent and outcome.',
      labelNames: ['agent', 'state'],
      buckets: [...DURATION_BUCKETS_S],
      registers,
    });
    this.verdicts = new Counter({
      name: `${p}verdicts_total`,
      help: 'Verdicts, by judge and decision; judge="council" counts the aggregated decisions.',
      labelNames: ['judge', 'decision'],
      registers,
    });
    this.apiLatency = new Histogram({
      name: `${p}api_request_duration_seconds`,
      help: 'Time to answer API requests, by method, route pattern and status (event streams left out).',
      labelNames: ['method', 'route', 'status'],
      buckets: [...API_BUCKETS_S],
      registers,
    });
    this.deliveryLag = new Histogram({
      name: `${p}sse_delivery_lag_seconds`,
      help: 'Time from a task event being recorded to the end of its writes to every client of the event stream.',
      buckets: [...LAG_BUCKETS_S],
      registers,
    });
    processMetrics();

    this.engine.on('task:state', this.onState);
    this.engine.on('attempt:end', this.onAttempt);
    this.engine.on('task:verdict', this.onVerdict);
    this.engine.on('agent:instance', this.onInstance);
  }

  /** The content type of {@link SmithMetrics.text} (Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Count one answered API request.
   * @param method - HTTP method
   * @param route - the route pattern (`/api/v1/tasks/:id`), or {@link UNMATCHED_ROUTE}
   * @param status - the HTTP status sent
   * @param seconds - time from the request's arrival to the end of the answer, in seconds
   */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.apiLatency.observe({ method, route, status: String(status) }, seconds);
  }

  /**
   * Count the delivery of one task event to every client of the event stream.
   * @param seconds - from the event's recorded time to the end of the writes, in seconds
   */
  observeDeliveryLag(seconds: number): void {
    this.deliveryLag.observe(Math.max(0, seconds));
  }

  /**
   * Every series in the Prometheus text format: the server's, then the process's.
   * @returns the exposition text
   * @throws StoreError when the store cannot be read
   */
  async text(): Promise<string> {
    const [own, proc] = await Promise.all([this.registry.metrics(), processMetrics().metrics()]);
    return `${own}\n${proc}`;
  }

  /**
   * Take a KPI snapshot: tasks by state, the queue, the window's success rate and latencies, and
   * the agent instances.
   * @param now - the time of the snapshot, ms since the epoch (default now)
   * @returns the snapshot
   * @throws StoreError when the store cannot be read
   */
  async kpi(now = Date.now()): Promise<KpiSnapshot> {
    const [counts, { states }] = await Promise.all([this.store.countTasksByState(), this.instances()]);
    const tasks = {} as Record<TaskState, number>;
    for (const s of TASK_STATES) tasks[s] = counts[s] ?? 0;
    const instances = {} as Record<InstanceState, number>;
    for (const s of INSTANCE_STATES) instances[s] = 0;
    for (const list of states.values()) for (const s of list) instances[s]++;

    this.prune(now);
    const ended = { completed: 0, failed: 0, rejected: 0, canceled: 0 };
    const latencies = new Float64Array(this.window.length);
    let n = 0;
    let sum = 0;
    for (const e of this.window) {
      ended[e.state]++;
      if (e.state === 'canceled') continue;
      latencies[n++] = e.latencyMs;
      sum += e.latencyMs;
    }
    const judged = latencies.subarray(0, n).sort();
    return {
      time: new Date(now).toISOString(),
      tasks,
      queue_depth: this.engine.liveCounts().queued,
      window_seconds: KPI_WINDOW_MS / 1000,
      ended,
      success_rate: n === 0 ? null : ended.completed / n,
      latency_avg_ms: n === 0 ? null : Math.round(sum / n),
      latency_p95_ms: n === 0 ? null : Math.round(nearestRank(judged, 95)),
      active_agents: instances.busy,
      instances,
    };
  }

  /** Stop listening to the engine. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.engine.off('task:state', this.onState);
    this.engine.off('attempt:end', this.onAttempt);
    this.engine.off('task:verdict', this.onVerdict);
    this.engine.off('agent:instance', this.onInstance);
  }

  private taskEnded(e: EngineEventMap['task:state']): void {
    if (!isTerminalTaskState(e.to)) return;
    const now = Date.now();
    const end = e.task.endedAt ?? now;
    const latencyMs = Math.max(0, end - e.task.createdAt);
    this.taskDuration.observe({ state: e.to }, latencyMs / 1000);
    this.window.push({ at: now, latencyMs, state: e.to as Ended['state'] });
    if (this.window.length > 2 * KPI_WINDOW_MAX) this.prune(now);
  }

  /** Drop what left the window (and the oldest past {@link KPI_WINDOW_MAX}). */
  private prune(now: number): void {
    const from = now - KPI_WINDOW_MS;
    let i = 0;
    while (i < this.window.length && this.window[i]!.at < from) i++;
    i = Math.max(i, this.window.length - KPI_WINDOW_MAX);
    if (i > 0) this.window = this.window.slice(i);
  }

  /**
   * The state of every instance of the engine's agents: the latest the engine reported, else the
   * one recorded in the store (written at most a second late), else `initializing`. Restarts come
   * from the store.
   */
  private async instances(): Promise<{
    states: Map<string, InstanceState[]>;
    restarts: Map<string, number>;
  }> {
    const recorded = new Map((await this.store.listAgents()).map((a) => [a.name, a]));
    const states = new Map<string, InstanceState[]>();
    const restarts = new Map<string, number>();
    for (const spec of this.engine.agentSpecs()) {
      const rec = recorded.get(spec.name);
      const list: InstanceState[] = [];
      for (let i = 0; i < Math.max(1, spec.concurrency); i++) {
        const stored = rec?.instances.find((x) => x.index === i)?.state;
        list.push(this.liveInstances.get(`${spec.name}\u0000${i}`) ?? stored ?? 'initializing');
      }
      states.set(spec.name, list);
      restarts.set(spec.name, rec?.instances.reduce((n, x) => n + x.restarts, 0) ?? 0);
    }
    return { states, restarts };
  }
}
