/**
 * Supervision trees with Erlang/OTP semantics: a {@link Supervisor} starts its children in order,
 * restarts them by restart type and strategy, gives up when restarts exceed its intensity, and
 * stops them in reverse order. A supervisor is itself a {@link Child}, so trees nest.
 *
 * Source of the semantics: the OTP Design Principles, "Supervisor Behaviour"
 * (https://www.erlang.org/doc/system/sup_princ) and the `supervisor` module reference
 * (https://www.erlang.org/doc/apps/stdlib/supervisor). Where this module differs from OTP it says
 * so: it waits with backoff and jitter before each restart (OTP restarts at once), and a supervisor
 * that gives up ends with an error (OTP exits with reason `shutdown`).
 *
 * Terms (supervisor, child spec, restart type, strategy, intensity): docs/terminology.md.
 */
import { EventEmitter } from 'node:events';
import { backoffDelay } from '../../core/backoff.js';
import type { BackoffOptions } from '../../core/backoff.js';
import { SmithError } from '../../core/errors.js';

/**
 * When a child is restarted (OTP `restart` of a child spec).
 * - `permanent`: always restarted, whatever the exit reason
 * - `transient`: restarted only after an abnormal exit (`{ kind: 'error' }`), not after `normal` or `shutdown`
 * - `temporary`: never restarted, not even when a sibling's failure stops it under `one_for_all`
 *   or `rest_for_one`; removed from the child list once it has ended
 */
export type RestartType = 'permanent' | 'transient' | 'temporary';

/**
 * Which children are restarted when one fails (OTP restart strategies).
 * - `one_for_one`: only the failed child
 * - `one_for_all`: all children: the others are stopped in reverse start order, then all are
 *   started again in order
 * - `rest_for_one`: the failed child and the children started after it: those are stopped in
 *   reverse order, then the failed one and they are started again in order
 */
export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';

/** How a child ended: 'normal' (finished on purpose), 'shutdown' (stopped by its supervisor), or a failure. */
export type ExitReason = { kind: 'normal' } | { kind: 'shutdown' } | { kind: 'error'; error: unknown };

/** A running child. */
export interface Child {
  /** Resolves when the child has ended, with why. Never rejects. */
  readonly done: Promise<ExitReason>;
  /** Ask it to stop; resolve once it has. The supervisor waits at most the spec's shutdownMs, then calls kill() if present. */
  stop(): Promise<void>;
  /** End it now, without waiting (OTP `brutal_kill`). Optional. */
  kill?(): void;
}

/** How to start and supervise one child (OTP child specification). */
export interface ChildSpec {
  /** Unique within its supervisor. */
  id: string;
  /** Start the child. A rejection counts as a failure of the child (a crash), subject to restart and intensity. */
  start: () => Promise<Child>;
  /** Default `'permanent'`. See {@link RestartType}. */
  restart?: RestartType;
  /**
   * How long to wait for `stop()` before calling `kill()`, in ms. Default 5000 (OTP's default for
   * workers). `Infinity` waits for as long as it takes (OTP `infinity`, the default for supervisors).
   */
  shutdownMs?: number;
}

/** Settings of a {@link Supervisor}. */
export interface SupervisorOptions {
  /** Default `'one_for_one'`. See {@link Strategy}. */
  strategy?: Strategy;
  /**
   * Max restarts within `periodMs`; one more and the supervisor gives up (OTP `intensity`).
   * Default 3 (OTP's default is 1 restart in 5 s; we choose 3 in 5 s). 0 allows no restart.
   */
  intensity?: number;
  /** The window of `intensity`, in ms (OTP `period`). Default 5000. */
  periodMs?: number;
  /**
   * The delay before each restart (see `backoffDelay` in core/backoff.ts); the step grows with each
   * restart of the same child. Not in OTP, which restarts at once. Default
   * `{ baseMs: 100, maxMs: 10_000, jitter: 'full' }`; fields given here override those.
   */
  backoff?: BackoffOptions;
  /** A child up at least this long (ms) when it ends has its backoff reset to the first step. Default 30_000. */
  stableMs?: number;
  /** Names the supervisor in events and errors. Default `'supervisor'`. */
  name?: string;
  /** The clock, in ms (default `Date.now`). Only tests need to set it. */
  now?: () => number;
  /** Uniform numbers in [0, 1) for the backoff jitter (default `Math.random`). Only tests need to set it. */
  random?: () => number;
}

/**
 * The state of a supervisor.
 * - `idle`: constructed, `start()` not called yet
 * - `starting`: starting its children in order
 * - `running`: supervising
 * - `stopping`: stopping its children in reverse order (after `stop()`, or while giving up)
 * - `stopped`: stopped by `stop()`/`kill()`; `done` resolved `{ kind: 'shutdown' }`
 * - `failed`: gave up (intensity exceeded, or a child failed to start during `start()`); `done`
 *   resolved `{ kind: 'error' }` with a `SUPERVISOR_ESCALATED` {@link SmithError}
 */
export type SupervisorState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/**
 * The state of one child as its supervisor sees it.
 * - `idle`: not started yet
 * - `starting`: its `start()` is under way
 * - `running`: started and not ended
 * - `stopping`: its supervisor asked it to stop and waits
 * - `restarting`: ended; a restart is scheduled after the backoff delay
 * - `stopped`: ended and not to be restarted (a transient child that ended normally, or the
 *   supervisor has stopped)
 */
export type ChildState = 'idle' | 'starting' | 'running' | 'stopping' | 'restarting' | 'stopped';

/** One row of {@link Supervisor.children}, for display. */
export interface ChildInfo {
  /** The child spec's id. */
  id: string;
  /** The child spec's restart type (after the default). */
  restartType: RestartType;
  /** True while the child is started and has not ended. */
  running: boolean;
  /** How many times this child has been restarted (restarts attempted, including failed starts). */
  restarts: number;
  /** When the current run started (epoch ms, from the supervisor's clock), or null when not running. */
  startedAt: number | null;
  /** Where the child is in its lifecycle; see {@link ChildState}. */
  state: ChildState;
}

/**
 * The events of a {@link Supervisor}, by name, with their payloads.
 * Listen with {@link Supervisor.on}; after graphile-worker's `WorkerEventMap`.
 */
export interface SupervisorEventMap {
  /** A child has started (first start or restart). */
  'child:start': { id: string };
  /**
   * A child has ended: on its own, stopped by its supervisor (`reason.kind === 'shutdown'`, also
   * after a kill), or its `start()` rejected (`reason.kind === 'error'`).
   */
  'child:exit': { id: string; reason: ExitReason };
  /**
   * A child is being restarted now, after waiting `delayMs` (ms) of backoff. `count` is its
   * restart count including this one. Followed by `child:start`, or by `child:exit` if the start fails.
   */
  'child:restart': { id: string; count: number; delayMs: number };
  /**
   * The supervisor gave up: more than `intensity` restarts within `periodMs`. `childId` failed
   * last; `restarts` is how many restarts fell within the window (including the refused one). Its
   * children have been stopped; `done` resolves with `error` next.
   */
  'supervisor:escalate': { name: string; childId: string; restarts: number; error: SmithError };
  /** The supervisor has stopped all its children after `stop()` or `kill()`. */
  'supervisor:stop': { name: string };
}

/** A listener of event `K` of {@link SupervisorEventMap}. */
export type SupervisorListener<K extends keyof SupervisorEventMap> = (payload: SupervisorEventMap[K]) => void;

/** Options of {@link Supervisor.asChildSpec}. */
export interface SupervisorChildSpecOptions {
  /** Default `'permanent'`. */
  restart?: RestartType;
  /** Default `Infinity` (OTP's default shutdown for a supervisor child: wait for its subtree). */
  shutdownMs?: number;
}

const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 100, maxMs: 10_000, jitter: 'full' };
const SHUTDOWN: ExitReason = { kind: 'shutdown' };

interface Entry {
  readonly spec: ChildSpec;
  readonly id: string;
  readonly restartType: RestartType;
  readonly shutdownMs: number;
  state: ChildState;
  child: Child | null;
  /** Incremented on every start and stop: an exit reported for an older generation is stale. */
  gen: number;
  startedAt: number | null;
  restarts: number;
  /** The backoff step of the last restart (0 = none yet). */
  backoffStep: number;
}

/** Children waiting for their restart after a backoff delay. */
interface PendingRestart {
  members: Entry[];
  delayMs: number;
  timer: ReturnType<typeof setTimeout> | null;
}

type StartResult = { ok: true } | { ok: false; error: unknown };

/**
 * A supervisor: starts child specs in order, restarts them after they end according to their
 * {@link RestartType} and its {@link Strategy}, and gives up (escalates) when restarts exceed its
 * intensity within its period. It implements {@link Child}, so a supervisor can be a child of
 * another (see {@link Supervisor.asChildSpec}).
 *
 * Like an OTP supervisor it handles one thing at a time, in order (child exits, restarts, stop),
 * so a child's `start()` or `stop()` that hangs delays the others. Backoff delays do not block:
 * other children's exits are handled while a restart waits.
 *
 * @example
 * const sup = new Supervisor(
 *   [
 *     { id: 'db', start: startDb },
 *     { id: 'agents', start: startAgents, restart: 'transient' },
 *   ],
 *   { strategy: 'rest_for_one', intensity: 3, periodMs: 5000, name: 'engine' },
 * );
 * sup.on('child:restart', ({ id, count }) => log.warn({ id, count }, 'restarting'));
 * await sup.start();
 * // …
 * await sup.stop();
 */
export class Supervisor implements Child {
  /** Names the supervisor in events and errors. */
  readonly name: string;
  /**
   * Resolves once the supervisor has ended: `{ kind: 'shutdown' }` after {@link Supervisor.stop}
   * or {@link Supervisor.kill}; `{ kind: 'error', error }` with a `SUPERVISOR_ESCALATED`
   * {@link SmithError} after it gave up or its `start()` failed. Never rejects.
   */
  readonly done: Promise<ExitReason>;

  private readonly strategy: Strategy;
  private readonly intensity: number;
  private readonly periodMs: number;
  private readonly backoff: BackoffOptions;
  private readonly stableMs: number;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly events = new EventEmitter();

  private entries: Entry[];
  private status: SupervisorState = 'idle';
  /** Set once the supervisor is stopping or giving up: no restart happens after it. */
  private closing = false;
  private killed = false;
  private restartLog: number[] = [];
  private readonly pending = new Set<PendingRestart>();
  private mailbox: Promise<void> = Promise.resolve();
  private startPromise: Promise<void> | null = null;
  private stopPromise: Promise<void> | null = null;
  private finished = false;
  private resolveDone!: (reason: ExitReason) => void;
  /** Graceful stops under way, each waiting to hear of a kill() of the supervisor. */
  private readonly killWaiters = new Set<() => void>();

  /**
   * @param specs - the children, in start order; ids must be unique
   * @param options - strategy, intensity, period, backoff, name; see {@link SupervisorOptions}
   * @throws SmithError `INVALID_ARGUMENT` when two specs share an id, or an option is out of range
   *   (intensity < 0, periodMs <= 0, stableMs < 0, shutdownMs < 0)
   */
  constructor(specs: readonly ChildSpec[], options: SupervisorOptions = {}) {
    this.name = options.name ?? 'supervisor';
    this.strategy = options.strategy ?? 'one_for_one';
    this.intensity = options.intensity ?? 3;
    this.periodMs = options.periodMs ?? 5000;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.stableMs = options.stableMs ?? 30_000;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;

    const where = `supervisor "${this.name}"`;
    if (!Number.isInteger(this.intensity) || this.intensity < 0) {
      throw invalid(`${where}: intensity must be an integer >= 0, got ${this.intensity}`, 'intensity');
    }
    if (!(this.periodMs > 0))
      throw invalid(`${where}: periodMs must be > 0, got ${this.periodMs}`, 'periodMs');
    if (!(this.stableMs >= 0))
      throw invalid(`${where}: stableMs must be >= 0, got ${this.stableMs}`, 'stableMs');
    const seen = new Set<string>();
    this.entries = specs.map((spec) => {
      if (seen.has(spec.id)) {
        throw invalid(
          `${where}: two child specs have the id "${spec.id}"; give each child a unique id`,
          'id',
        );
      }
      seen.add(spec.id);
      const shutdownMs = spec.shutdownMs ?? 5000;
      if (!(shutdownMs >= 0)) {
        throw invalid(
          `${where}: child "${spec.id}" has shutdownMs ${spec.shutdownMs}; use a number >= 0`,
          'shutdownMs',
        );
      }
      return {
        spec,
        id: spec.id,
        restartType: spec.restart ?? 'permanent',
        shutdownMs,
        state: 'idle' as ChildState,
        child: null,
        gen: 0,
        startedAt: null,
        restarts: 0,
        backoffStep: 0,
      };
    });

    this.done = new Promise<ExitReason>((resolve) => {
      this.resolveDone = resolve;
    });
  }

  /**
   * A child spec that runs a supervisor as a child of another (a subtree). Each (re)start of the
   * child calls `factory` for a fresh supervisor and starts it; a supervisor that gave up ends
   * with an error, so its parent restarts it (`permanent` or `transient`) under the parent's own
   * strategy and intensity, or gives up in turn.
   *
   * @param id - the child id within the parent
   * @param factory - makes a new, not yet started supervisor
   * @param options - restart type (default `'permanent'`) and shutdownMs (default `Infinity`, as
   *   OTP's default `shutdown` for supervisor children)
   * @returns the child spec to pass to the parent
   * @example
   * const root = new Supervisor([
   *   { id: 'store', start: startStore },
   *   Supervisor.asChildSpec('agents', () => new Supervisor(agentSpecs, { name: 'agents' })),
   * ], { strategy: 'rest_for_one', name: 'root' });
   */
  static asChildSpec(
    id: string,
    factory: () => Supervisor,
    options: SupervisorChildSpecOptions = {},
  ): ChildSpec {
    return {
      id,
      restart: options.restart ?? 'permanent',
      shutdownMs: options.shutdownMs ?? Infinity,
      start: async () => {
        const sup = factory();
        await sup.start();
        return sup;
      },
    };
  }

  /**
   * The supervisor's state.
   * @returns see {@link SupervisorState}
   */
  get state(): SupervisorState {
    return this.status;
  }

  /**
   * Listen to an event; see {@link SupervisorEventMap} for the names and payloads. Listeners run
   * synchronously, in the supervisor's order of events. A listener must not throw: if one does,
   * the other listeners still run, the supervisor carries on, and the error is rethrown
   * asynchronously (an `uncaughtException`).
   *
   * @param event - the event name
   * @param listener - called with the payload
   * @returns this supervisor, for chaining
   */
  on<K extends keyof SupervisorEventMap>(event: K, listener: SupervisorListener<K>): this {
    this.events.on(event, listener);
    return this;
  }

  /**
   * Stop listening.
   * @param event - the event name
   * @param listener - the function given to {@link Supervisor.on}
   * @returns this supervisor, for chaining
   */
  off<K extends keyof SupervisorEventMap>(event: K, listener: SupervisorListener<K>): this {
    this.events.off(event, listener);
    return this;
  }

  /**
   * Start the children in order, each after the previous one's `start()` resolved (OTP: a
   * supervisor starts its children in the order of its child specs). Calling it again returns the
   * same promise.
   *
   * If a child's `start()` rejects, the children already started are stopped in reverse order,
   * the later ones are never started, `done` resolves with the error, and the returned promise
   * rejects with it (OTP: `start_link` fails with `{shutdown, {failed_to_start_child, Id, Reason}}`).
   *
   * @returns resolves once every child has started
   * @throws SmithError `SUPERVISOR_ESCALATED` (context `{ supervisor, childId }`, cause: the
   *   child's error) when a child failed to start
   * @throws SmithError `SHUTTING_DOWN` when `stop()` or `kill()` was called before or during the start
   */
  start(): Promise<void> {
    this.startPromise ??= this.post(() => this.startAll());
    return this.startPromise;
  }

  /**
   * Stop gracefully: cancel pending restarts, then stop the children in reverse start order, each
   * waiting at most its spec's `shutdownMs` before `kill()` (OTP shutdown). No restart happens
   * during or after it. `done` then resolves `{ kind: 'shutdown' }` and `supervisor:stop` is
   * emitted. Safe to call more than once: later calls return the same promise. If the supervisor
   * already gave up, it resolves without changing `done`.
   *
   * @returns resolves once every child has stopped; never rejects
   */
  stop(): Promise<void> {
    if (this.stopPromise) return this.stopPromise;
    if (this.status === 'idle') {
      this.closing = true;
      this.status = 'stopped';
      this.emit('supervisor:stop', { name: this.name });
      this.finish(SHUTDOWN);
      this.stopPromise = Promise.resolve();
      return this.stopPromise;
    }
    if (this.status === 'starting' || this.status === 'running') this.status = 'stopping';
    this.closing = true;
    this.cancelPending();
    this.stopPromise = this.post(() => this.shutdown());
    return this.stopPromise;
  }

  /**
   * Stop forcefully: like {@link Supervisor.stop}, but every child is killed at once (its `kill()`,
   * or, if it has none, its `stop()` without waiting), including one whose graceful stop is under
   * way. A parent calls this when this supervisor's shutdownMs has passed. Does not wait; await
   * `done` or the result of `stop()` to know when it is over.
   */
  kill(): void {
    this.killed = true;
    for (const wake of [...this.killWaiters]) wake();
    void this.stop();
  }

  /**
   * The children in start order, for display. Temporary children that have ended are not listed.
   * @returns one {@link ChildInfo} per child
   */
  children(): ChildInfo[] {
    return this.entries.map((e) => ({
      id: e.id,
      restartType: e.restartType,
      running: e.state === 'running',
      restarts: e.restarts,
      startedAt: e.startedAt,
      state: e.state,
    }));
  }

  // ---- the mailbox: one operation at a time, in order (an OTP supervisor's message loop) ----

  private post<T>(op: () => Promise<T>): Promise<T> {
    const run = this.mailbox.then(op);
    this.mailbox = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async startAll(): Promise<void> {
    if (this.status !== 'idle' && this.status !== 'starting') throw this.shuttingDown();
    if (this.closing) throw this.shuttingDown();
    this.status = 'starting';
    for (const e of [...this.entries]) {
      if (this.closing) throw this.shuttingDown();
      const result = await this.startEntry(e);
      if (!result.ok) {
        this.closing = true;
        this.status = 'stopping';
        await this.stopAll();
        const error = new SmithError(
          'SUPERVISOR_ESCALATED',
          `supervisor "${this.name}" could not start child "${e.id}": ${describe(result.error)}; ` +
            `the children started before it were stopped. Fix what makes "${e.id}" fail to start, then start again`,
          { cause: result.error, context: { supervisor: this.name, childId: e.id } },
        );
        this.status = 'failed';
        this.finish({ kind: 'error', error });
        throw error;
      }
    }
    if (this.closing) throw this.shuttingDown();
    this.status = 'running';
  }

  private async shutdown(): Promise<void> {
    if (this.status === 'failed' || this.status === 'stopped') return;
    this.status = 'stopping';
    this.cancelPending();
    await this.stopAll();
    this.status = 'stopped';
    this.emit('supervisor:stop', { name: this.name });
    this.finish(SHUTDOWN);
  }

  private async onExit(e: Entry, gen: number, reason: ExitReason): Promise<void> {
    if (gen !== e.gen || e.child === null) return; // stale: this run was stopped by us
    const upMs = e.startedAt === null ? 0 : this.now() - e.startedAt;
    e.child = null;
    e.startedAt = null;
    e.state = 'stopped';
    if (e.restartType === 'temporary') this.remove(e);
    this.emit('child:exit', { id: e.id, reason });
    if (this.closing) return;
    if (e.restartType === 'temporary') return;
    if (e.restartType === 'transient' && reason.kind !== 'error') return;
    if (upMs >= this.stableMs) e.backoffStep = 0;
    await this.handleFailure(e, reason, []);
  }

  /**
   * A child that must be restarted ended (or failed to start): count the restart, stop the
   * children the strategy names, and schedule their restart after the backoff delay.
   * `carry` are children already waiting for a restart that must join this one.
   */
  private async handleFailure(failed: Entry, reason: ExitReason, carry: Entry[]): Promise<void> {
    if (this.closing) return;
    if (!this.recordRestart()) {
      await this.escalate(failed, reason);
      return;
    }
    const members = new Set<Entry>([...this.targetsFor(failed), ...carry]);
    // a restart already waiting for any of these children joins this one (rest_for_one, one_for_all)
    for (const p of [...this.pending]) {
      if (p.members.some((m) => members.has(m))) {
        if (p.timer) clearTimeout(p.timer);
        this.pending.delete(p);
        for (const m of p.members) members.add(m);
      }
    }
    const ordered = this.entries.filter((e) => members.has(e));
    for (const e of [...ordered].reverse()) {
      if (e.child) await this.stopChild(e);
    }
    if (this.closing) return;
    // temporary children are never restarted; stopping them removed them from the list
    const toStart = ordered.filter((e) => e.restartType !== 'temporary' && this.entries.includes(e));
    for (const e of toStart) e.state = 'restarting';
    failed.backoffStep += 1;
    const delayMs = backoffDelay(failed.backoffStep, this.backoff, this.random);
    const restart: PendingRestart = { members: toStart, delayMs, timer: null };
    // Not unref'd on purpose: a pending restart is work the process must still do. stop() clears it.
    restart.timer = setTimeout(() => {
      restart.timer = null;
      this.pending.delete(restart);
      this.post(() => this.runRestart(restart)).catch(rethrowAsync);
    }, delayMs);
    this.pending.add(restart);
  }

  private async runRestart(restart: PendingRestart): Promise<void> {
    const { members, delayMs } = restart;
    for (let i = 0; i < members.length; i++) {
      if (this.closing) return;
      const e = members[i];
      if (e === undefined || e.state !== 'restarting' || !this.entries.includes(e)) continue;
      e.restarts += 1;
      this.emit('child:restart', { id: e.id, count: e.restarts, delayMs });
      const result = await this.startEntry(e);
      if (!result.ok) {
        const rest = members.slice(i + 1).filter((m) => m.state === 'restarting');
        await this.handleFailure(e, { kind: 'error', error: result.error }, rest);
        return;
      }
    }
  }

  private async escalate(failed: Entry, reason: ExitReason): Promise<void> {
    this.closing = true;
    this.status = 'stopping';
    this.cancelPending();
    const restarts = this.restartLog.length;
    await this.stopAll();
    const error = new SmithError(
      'SUPERVISOR_ESCALATED',
      `supervisor "${this.name}" gave up: ${restarts} restarts within ${this.periodMs} ms exceed its intensity ` +
        `${this.intensity}; child "${failed.id}" failed last (${describeReason(reason)}). Its children were stopped. ` +
        `Find why "${failed.id}" keeps failing, or raise intensity/periodMs`,
      {
        cause: reason.kind === 'error' ? reason.error : undefined,
        context: {
          supervisor: this.name,
          childId: failed.id,
          restarts,
          intensity: this.intensity,
          periodMs: this.periodMs,
        },
      },
    );
    this.status = 'failed';
    this.emit('supervisor:escalate', { name: this.name, childId: failed.id, restarts, error });
    this.finish({ kind: 'error', error });
  }

  // ---- children ----

  private async startEntry(e: Entry): Promise<StartResult> {
    e.state = 'starting';
    let child: Child;
    try {
      child = await e.spec.start();
      if (
        child === null ||
        typeof child !== 'object' ||
        typeof child.stop !== 'function' ||
        !isThenable(child.done)
      ) {
        throw new SmithError(
          'INVALID_ARGUMENT',
          `child "${e.id}" of supervisor "${this.name}": start() must resolve to a Child ({ done, stop() })`,
          { context: { supervisor: this.name, childId: e.id } },
        );
      }
    } catch (error) {
      e.state = 'stopped';
      this.emit('child:exit', { id: e.id, reason: { kind: 'error', error } });
      return { ok: false, error };
    }
    e.gen += 1;
    const gen = e.gen;
    e.child = child;
    e.startedAt = this.now();
    e.state = 'running';
    Promise.resolve(child.done)
      .then(
        (reason) => reason,
        (error: unknown): ExitReason => ({ kind: 'error', error }),
      )
      .then((reason) => this.post(() => this.onExit(e, gen, reason)))
      .catch(rethrowAsync);
    this.emit('child:start', { id: e.id });
    return { ok: true };
  }

  /** Stop one child: stop(), wait up to shutdownMs (or a kill of the supervisor), then kill(). */
  private async stopChild(e: Entry): Promise<void> {
    const child = e.child;
    if (child === null) return;
    e.gen += 1; // its exit is ours to report now
    e.child = null;
    e.state = 'stopping';
    let reason: ExitReason = SHUTDOWN;
    if (this.killed) {
      forceKill(child);
    } else {
      const done = Promise.resolve(child.done).then(
        (r) => r,
        (error: unknown): ExitReason => ({ kind: 'error', error }),
      );
      const stopped = new Promise<ExitReason>((resolve) => {
        let call: Promise<void>;
        try {
          call = Promise.resolve(child.stop());
        } catch {
          return; // a stop() that throws: wait for done or the timeout
        }
        // once stop() resolved the child has ended: prefer the reason `done` gives, if it already has one
        call.then(
          () => resolve(Promise.race([done, Promise.resolve(SHUTDOWN)])),
          () => undefined,
        );
      });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout =
        e.shutdownMs === Infinity
          ? new Promise<'timeout'>(() => undefined)
          : new Promise<'timeout'>((resolve) => {
              // a guard, not work of its own: never keep the process alive for it
              timer = setTimeout(() => resolve('timeout'), e.shutdownMs);
              timer.unref();
            });
      let wake: (() => void) | undefined;
      const killed = new Promise<'killed'>((resolve) => {
        wake = () => resolve('killed');
        this.killWaiters.add(wake);
      });
      const outcome = await Promise.race([done, stopped, timeout, killed]);
      if (timer !== undefined) clearTimeout(timer);
      if (wake) this.killWaiters.delete(wake);
      if (outcome === 'timeout' || outcome === 'killed') forceKill(child);
      else reason = outcome;
    }
    e.startedAt = null;
    e.state = 'stopped';
    if (e.restartType === 'temporary') this.remove(e);
    this.emit('child:exit', { id: e.id, reason });
  }

  /** Stop every running child, in reverse start order. */
  private async stopAll(): Promise<void> {
    for (const e of [...this.entries].reverse()) {
      if (e.child) await this.stopChild(e);
      else if (e.state === 'restarting') e.state = 'stopped';
    }
  }

  private targetsFor(failed: Entry): Entry[] {
    switch (this.strategy) {
      case 'one_for_all':
        return [...this.entries];
      case 'rest_for_one': {
        const i = this.entries.indexOf(failed);
        return i < 0 ? [failed] : this.entries.slice(i);
      }
      default:
        return [failed];
    }
  }

  /** OTP `add_restart`: log this restart, forget those older than the period, and say whether it is allowed. */
  private recordRestart(): boolean {
    const now = this.now();
    this.restartLog = this.restartLog.filter((t) => t >= now - this.periodMs);
    this.restartLog.push(now);
    return this.restartLog.length <= this.intensity;
  }

  private cancelPending(): void {
    for (const p of this.pending) {
      if (p.timer) clearTimeout(p.timer);
      for (const m of p.members) if (m.state === 'restarting') m.state = 'stopped';
    }
    this.pending.clear();
  }

  private remove(e: Entry): void {
    this.entries = this.entries.filter((x) => x !== e);
  }

  private finish(reason: ExitReason): void {
    if (this.finished) return;
    this.finished = true;
    this.resolveDone(reason);
  }

  private shuttingDown(): SmithError {
    return new SmithError(
      'SHUTTING_DOWN',
      `supervisor "${this.name}" was stopped before its children had all started; create a new supervisor to start again`,
      { context: { supervisor: this.name } },
    );
  }

  private emit<K extends keyof SupervisorEventMap>(event: K, payload: SupervisorEventMap[K]): void {
    for (const listener of this.events.rawListeners(event)) {
      try {
        (listener as SupervisorListener<K>)(payload);
      } catch (err) {
        rethrowAsync(err);
      }
    }
  }
}

function invalid(message: string, field: string): SmithError {
  return new SmithError('INVALID_ARGUMENT', message, { context: { field } });
}

function isThenable(value: unknown): boolean {
  return (
    typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
  );
}

function forceKill(child: Child): void {
  try {
    if (child.kill) child.kill();
    else Promise.resolve(child.stop()).catch(() => undefined);
  } catch {
    // nothing more can be done for a child whose kill() throws
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function describeReason(reason: ExitReason): string {
  switch (reason.kind) {
    case 'error':
      return describe(reason.error);
    case 'normal':
      return 'it ended normally, but a permanent child must keep running';
    default:
      return 'it was shut down';
  }
}

function rethrowAsync(err: unknown): void {
  setImmediate(() => {
    throw err;
  });
}
