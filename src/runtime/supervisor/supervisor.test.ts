import { afterEach, describe, expect, it, vi } from 'vitest';
import { isSmithError } from '../../core/errors.js';
import { Supervisor } from './index.js';
import type { Child, ChildSpec, ExitReason, SupervisorEventMap, SupervisorOptions } from './index.js';

/** A child in memory whose end the test decides. */
interface FakeChild {
  readonly child: Child;
  /** End it with an error. */
  crash(error?: unknown): void;
  /** End it on purpose (`normal`). */
  finish(): void;
  /** End it with `shutdown` on its own. */
  shutdown(): void;
}

/** Makes child specs and records what happens to their children, in order. */
class Lab {
  /** `start:<id>`, `fail:<id>` (start rejected), `stop:<id>`, `kill:<id>`, in order. */
  readonly log: string[] = [];
  /** The latest run of each child. */
  readonly live = new Map<string, FakeChild>();
  /** Children whose start() rejects (how many more times; Infinity = always). */
  readonly failStarts = new Map<string, number>();
  /** Children whose stop() never completes. */
  readonly hangStop = new Set<string>();
  /** Children whose start() waits for this gate. */
  readonly gates = new Map<string, Promise<void>>();

  spec(id: string, extra: Omit<Partial<ChildSpec>, 'id' | 'start'> = {}): ChildSpec {
    return { id, start: () => this.startChild(id), ...extra };
  }

  get(id: string): FakeChild {
    const c = this.live.get(id);
    if (!c) throw new Error(`child ${id} never started`);
    return c;
  }

  clear(): void {
    this.log.splice(0);
  }

  private async startChild(id: string): Promise<Child> {
    const gate = this.gates.get(id);
    if (gate) await gate;
    const fails = this.failStarts.get(id) ?? 0;
    if (fails > 0) {
      this.failStarts.set(id, fails - 1);
      this.log.push(`fail:${id}`);
      throw new Error(`${id} cannot start`);
    }
    this.log.push(`start:${id}`);
    const fake = makeChild(id, this);
    this.live.set(id, fake);
    return fake.child;
  }
}

function makeChild(id: string, lab: Lab): FakeChild {
  let resolve!: (reason: ExitReason) => void;
  const done = new Promise<ExitReason>((r) => {
    resolve = r;
  });
  let ended = false;
  const end = (reason: ExitReason): void => {
    if (ended) return;
    ended = true;
    resolve(reason);
  };
  const child: Child = {
    done,
    stop: async () => {
      lab.log.push(`stop:${id}`);
      if (lab.hangStop.has(id)) return new Promise<void>(() => undefined);
      end({ kind: 'shutdown' });
    },
    kill: () => {
      lab.log.push(`kill:${id}`);
      end({ kind: 'shutdown' });
    },
  };
  return {
    child,
    crash: (error: unknown = new Error(`${id} crashed`)) => end({ kind: 'error', error }),
    finish: () => end({ kind: 'normal' }),
    shutdown: () => end({ kind: 'shutdown' }),
  };
}

/** Fast restarts for tests: 1 ms of backoff, no jitter. */
const FAST: SupervisorOptions = { backoff: { baseMs: 1, maxMs: 1, jitter: 'none' }, periodMs: 60_000 };

function nextEvent<K extends keyof SupervisorEventMap>(
  sup: Supervisor,
  event: K,
  match: (payload: SupervisorEventMap[K]) => boolean = () => true,
): Promise<SupervisorEventMap[K]> {
  return new Promise((resolve) => {
    const listener = (payload: SupervisorEventMap[K]): void => {
      if (!match(payload)) return;
      sup.off(event, listener);
      resolve(payload);
    };
    sup.on(event, listener);
  });
}

function record(sup: Supervisor): string[] {
  const events: string[] = [];
  sup.on('child:start', ({ id }) => events.push(`child:start ${id}`));
  sup.on('child:exit', ({ id, reason }) => events.push(`child:exit ${id} ${reason.kind}`));
  sup.on('child:restart', ({ id, count }) => events.push(`child:restart ${id} ${count}`));
  sup.on('supervisor:escalate', ({ name, childId, restarts }) =>
    events.push(`supervisor:escalate ${name} ${childId} ${restarts}`),
  );
  sup.on('supervisor:stop', ({ name }) => events.push(`supervisor:stop ${name}`));
  return events;
}

const running: Supervisor[] = [];
function track(sup: Supervisor): Supervisor {
  running.push(sup);
  return sup;
}

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

describe('Supervisor: start and stop', () => {
  it('starts children in order and stops them in reverse order', async () => {
    const lab = new Lab();
    const sup = track(new Supervisor([lab.spec('a'), lab.spec('b'), lab.spec('c')], { name: 'sup' }));
    expect(sup.state).toBe('idle');
    await sup.start();
    expect(lab.log).toEqual(['start:a', 'start:b', 'start:c']);
    expect(sup.state).toBe('running');
    expect(sup.children().map((c) => [c.id, c.running, c.restarts, c.restartType])).toEqual([
      ['a', true, 0, 'permanent'],
      ['b', true, 0, 'permanent'],
      ['c', true, 0, 'permanent'],
    ]);
    expect(sup.children().every((c) => c.startedAt !== null)).toBe(true);

    lab.clear();
    await sup.stop();
    expect(lab.log).toEqual(['stop:c', 'stop:b', 'stop:a']);
    expect(sup.state).toBe('stopped');
    await expect(sup.done).resolves.toEqual({ kind: 'shutdown' });
    expect(sup.children().map((c) => [c.id, c.running, c.state, c.startedAt])).toEqual([
      ['a', false, 'stopped', null],
      ['b', false, 'stopped', null],
      ['c', false, 'stopped', null],
    ]);
  });

  it('stop() twice returns the same promise, stops each child once, and nothing restarts after', async () => {
    const lab = new Lab();
    const sup = track(new Supervisor([lab.spec('a'), lab.spec('b')], FAST));
    const events = record(sup);
    await sup.start();
    lab.clear();
    const a = lab.get('a');

    const first = sup.stop();
    const second = sup.stop();
    expect(second).toBe(first);
    await first;
    expect(sup.stop()).toBe(first);
    a.crash(); // too late to matter
    await sup.stop();

    expect(lab.log).toEqual(['stop:b', 'stop:a']);
    expect(events.filter((e) => e.startsWith('supervisor:'))).toEqual(['supervisor:stop supervisor']);
    await expect(sup.done).resolves.toEqual({ kind: 'shutdown' });
  });

  it('stop() before start() ends it; a later start() is refused', async () => {
    const lab = new Lab();
    const sup = new Supervisor([lab.spec('a')]);
    await sup.stop();
    await expect(sup.done).resolves.toEqual({ kind: 'shutdown' });
    await expect(sup.start()).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
    expect(lab.log).toEqual([]);
  });

  it('a child failing to start during start() stops the ones before it in reverse order and rejects', async () => {
    const lab = new Lab();
    lab.failStarts.set('c', 1);
    const sup = track(
      new Supervisor([lab.spec('a'), lab.spec('b'), lab.spec('c'), lab.spec('d')], {
        ...FAST,
        name: 'workers',
      }),
    );

    const error: unknown = await sup.start().then(
      () => null,
      (err: unknown) => err,
    );
    expect(isSmithError(error, 'SUPERVISOR_ESCALATED')).toBe(true);
    expect((error as Error).message).toContain('"workers"');
    expect((error as Error).message).toContain('"c"');
    expect(((error as Error).cause as Error).message).toBe('c cannot start');
    expect(lab.log).toEqual(['start:a', 'start:b', 'fail:c', 'stop:b', 'stop:a']);
    expect(sup.state).toBe('failed');
    const reason = await sup.done;
    expect(reason.kind === 'error' && reason.error).toBe(error);
  });

  it('stop() during start() stops the children started so far and start() rejects', async () => {
    const lab = new Lab();
    let open!: () => void;
    lab.gates.set(
      'b',
      new Promise<void>((r) => {
        open = r;
      }),
    );
    const sup = track(new Supervisor([lab.spec('a'), lab.spec('b'), lab.spec('c')], FAST));
    const started = sup.start();
    await vi.waitFor(() => expect(lab.log).toEqual(['start:a']));
    const stopped = sup.stop();
    open();
    await expect(started).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
    await stopped;
    expect(lab.log).toEqual(['start:a', 'start:b', 'stop:b', 'stop:a']);
    await expect(sup.done).resolves.toEqual({ kind: 'shutdown' });
  });

  it('kills a child whose stop() outlasts its shutdownMs, then goes on in reverse order', async () => {
    const lab = new Lab();
    lab.hangStop.add('b');
    const sup = track(new Supervisor([lab.spec('a'), lab.spec('b', { shutdownMs: 1 }), lab.spec('c')], FAST));
    await sup.start();
    lab.clear();
    await sup.stop();
    expect(lab.log).toEqual(['stop:c', 'stop:b', 'kill:b', 'stop:a']);
  });

  it('kill() kills every child at once, even one in the middle of a graceful stop', async () => {
    const lab = new Lab();
    lab.hangStop.add('c');
    const sup = track(
      new Supervisor([lab.spec('a'), lab.spec('b'), lab.spec('c', { shutdownMs: Infinity })], FAST),
    );
    await sup.start();
    lab.clear();
    const stopped = sup.stop();
    await vi.waitFor(() => expect(lab.log).toEqual(['stop:c']));
    sup.kill();
    await stopped;
    expect(lab.log).toEqual(['stop:c', 'kill:c', 'kill:b', 'kill:a']);
    await expect(sup.done).resolves.toEqual({ kind: 'shutdown' });
  });

  it('rejects child specs with the same id', () => {
    const lab = new Lab();
    expect(() => new Supervisor([lab.spec('a'), lab.spec('a')])).toThrow(/"a"/);
  });
});

describe('Supervisor: strategies', () => {
  it('one_for_one restarts only the failed child', async () => {
    const lab = new Lab();
    const sup = track(new Supervisor([lab.spec('a'), lab.spec('b'), lab.spec('c')], FAST));
    const events = record(sup);
    await sup.start();
    const [a, c] = [lab.get('a'), lab.get('c')];
    lab.clear();
    events.splice(0);

    lab.get('b').crash();
    await vi.waitFor(() => expect(lab.log).toEqual(['start:b']));
    expect(lab.get('a')).toBe(a);
    expect(lab.get('c')).toBe(c);
    expect(events).toEqual(['child:exit b error', 'child:restart b 1', 'child:start b']);
    expect(sup.children().map((x) => [x.id, x.restarts, x.running])).toEqual([
      ['a', 0, true],
      ['b', 1, true],
      ['c', 0, true],
    ]);
  });

  it('one_for_all stops the others in reverse order and restarts all in order', async () => {
    const lab = new Lab();
    const sup = track(
      new Supervisor([lab.spec('a'), lab.spec('b'), lab.spec('c')], { ...FAST, strategy: 'one_for_all' }),
    );
    await sup.start();
    lab.clear();

    lab.get('b').crash();
    await vi.waitFor(() => expect(lab.log).toEqual(['stop:c', 'stop:a', 'start:a', 'start:b', 'start:c']));
    expect(sup.children().map((x) => [x.id, x.restarts, x.running])).toEqual([
      ['a', 1, true],
      ['b', 1, true],
      ['c', 1, true],
    ]);
  });

  it('rest_for_one stops the later children in reverse order and restarts the failed one and them', async () => {
    const lab = new Lab();
    const sup = track(
      new Supervisor([lab.spec('a'), lab.spec('b'), lab.spec('c'), lab.spec('d')], {
        ...FAST,
        strategy: 'rest_for_one',
      }),
    );
    await sup.start();
    const a = lab.get('a');
    lab.clear();

    lab.get('b').crash();
    await vi.waitFor(() => expect(lab.log).toEqual(['stop:d', 'stop:c', 'start:b', 'start:c', 'start:d']));
    expect(lab.get('a')).toBe(a);
    expect(sup.children().map((x) => x.restarts)).toEqual([0, 1, 1, 1]);
  });

  it('rest_for_one: a failure of an earlier child while a later restart waits restarts them together', async () => {
    const lab = new Lab();
    const sup = track(
      new Supervisor([lab.spec('a'), lab.spec('b'), lab.spec('c')], {
        strategy: 'rest_for_one',
        backoff: { baseMs: 60_000, jitter: 'none' },
      }),
    );
    await sup.start();
    lab.clear();

    lab.get('c').crash();
    await vi.waitFor(() =>
      expect(sup.children().map((x) => x.state)).toEqual(['running', 'running', 'restarting']),
    );
    lab.get('a').crash();
    await vi.waitFor(() =>
      expect(sup.children().map((x) => x.state)).toEqual(['restarting', 'restarting', 'restarting']),
    );
    expect(lab.log).toEqual(['stop:b']);
  });
});

describe('Supervisor: restart types', () => {
  it('transient: restarted after an error, not after a normal end or a shutdown', async () => {
    const lab = new Lab();
    const sup = track(
      new Supervisor(
        [
          lab.spec('t1', { restart: 'transient' }),
          lab.spec('t2', { restart: 'transient' }),
          lab.spec('t3', { restart: 'transient' }),
        ],
        FAST,
      ),
    );
    await sup.start();
    lab.clear();

    const ended = nextEvent(sup, 'child:exit', (e) => e.id === 't1');
    lab.get('t1').finish();
    expect((await ended).reason).toEqual({ kind: 'normal' });
    expect(sup.children()[0]?.state).toBe('stopped');

    const shut = nextEvent(sup, 'child:exit', (e) => e.id === 't2');
    lab.get('t2').shutdown();
    await shut;
    expect(sup.children()[1]?.state).toBe('stopped');

    lab.get('t3').crash();
    await vi.waitFor(() => expect(lab.log).toEqual(['start:t3']));
    expect(sup.children().map((x) => [x.id, x.running, x.restarts])).toEqual([
      ['t1', false, 0],
      ['t2', false, 0],
      ['t3', true, 1],
    ]);
  });

  it('permanent: restarted even after a normal end', async () => {
    const lab = new Lab();
    const sup = track(new Supervisor([lab.spec('p')], FAST));
    await sup.start();
    lab.clear();
    lab.get('p').finish();
    await vi.waitFor(() => expect(lab.log).toEqual(['start:p']));
  });

  it('temporary: never restarted, and removed from the child list once ended', async () => {
    const lab = new Lab();
    const sup = track(new Supervisor([lab.spec('tmp', { restart: 'temporary' }), lab.spec('a')], FAST));
    await sup.start();
    lab.clear();

    const ended = nextEvent(sup, 'child:exit', (e) => e.id === 'tmp');
    lab.get('tmp').crash();
    await ended;
    expect(sup.children().map((x) => x.id)).toEqual(['a']);

    lab.get('a').crash();
    await vi.waitFor(() => expect(lab.log).toEqual(['start:a']));
  });

  it('temporary: stopped but not restarted when a sibling fails under one_for_all', async () => {
    const lab = new Lab();
    const sup = track(
      new Supervisor([lab.spec('a'), lab.spec('tmp', { restart: 'temporary' }), lab.spec('b')], {
        ...FAST,
        strategy: 'one_for_all',
      }),
    );
    await sup.start();
    lab.clear();

    lab.get('b').crash();
    await vi.waitFor(() => expect(lab.log).toEqual(['stop:tmp', 'stop:a', 'start:a', 'start:b']));
    expect(sup.children().map((x) => x.id)).toEqual(['a', 'b']);
  });

  it('one_for_all restarts a transient child that had ended normally along with the others (as OTP does)', async () => {
    const lab = new Lab();
    const sup = track(
      new Supervisor([lab.spec('t', { restart: 'transient' }), lab.spec('b')], {
        ...FAST,
        strategy: 'one_for_all',
      }),
    );
    await sup.start();
    lab.clear();
    const ended = nextEvent(sup, 'child:exit', (e) => e.id === 't');
    lab.get('t').finish();
    await ended;

    lab.get('b').crash();
    await vi.waitFor(() => expect(lab.log).toEqual(['start:t', 'start:b']));
  });
});

describe('Supervisor: intensity and escalation', () => {
  it('past its intensity it stops its children in reverse order and ends with SUPERVISOR_ESCALATED', async () => {
    const lab = new Lab();
    const sup = track(
      new Supervisor([lab.spec('a'), lab.spec('b'), lab.spec('c')], { ...FAST, intensity: 2, name: 'pool' }),
    );
    const escalated = nextEvent(sup, 'supervisor:escalate');
    await sup.start();

    for (let i = 1; i <= 2; i++) {
      lab.clear();
      lab.get('a').crash();
      await vi.waitFor(() => expect(lab.log).toEqual(['start:a']));
    }
    lab.clear();
    lab.get('a').crash();

    const reason = await sup.done;
    expect(lab.log).toEqual(['stop:c', 'stop:b']);
    expect(reason.kind).toBe('error');
    const error = reason.kind === 'error' ? reason.error : null;
    expect(isSmithError(error, 'SUPERVISOR_ESCALATED')).toBe(true);
    expect((error as Error).message).toContain('"pool"');
    expect((error as Error).message).toContain('"a"');
    expect((error as Error).cause).toBeInstanceOf(Error);
    expect(await escalated).toMatchObject({ name: 'pool', childId: 'a', restarts: 3 });
    expect(sup.state).toBe('failed');
    expect(sup.children().map((x) => [x.id, x.running, x.restarts])).toEqual([
      ['a', false, 2],
      ['b', false, 0],
      ['c', false, 0],
    ]);
    await sup.stop(); // harmless after giving up
    expect(await sup.done).toBe(reason);
  });

  it('intensity 0 allows no restart', async () => {
    const lab = new Lab();
    const sup = track(new Supervisor([lab.spec('a')], { ...FAST, intensity: 0 }));
    await sup.start();
    lab.clear();
    lab.get('a').crash();
    expect((await sup.done).kind).toBe('error');
    expect(lab.log).toEqual([]);
  });

  it('restarts outside the period do not count', async () => {
    let now = 0;
    const lab = new Lab();
    const sup = track(
      new Supervisor([lab.spec('a')], { ...FAST, intensity: 1, periodMs: 1000, now: () => now }),
    );
    await sup.start();
    for (let i = 1; i <= 4; i++) {
      now += 5000;
      lab.clear();
      lab.get('a').crash();
      await vi.waitFor(() => expect(lab.log).toEqual(['start:a']));
    }
    expect(sup.state).toBe('running');
    expect(sup.children()[0]?.restarts).toBe(4);
  });

  it('a child whose restart keeps failing to start counts toward intensity', async () => {
    const lab = new Lab();
    const sup = track(new Supervisor([lab.spec('a'), lab.spec('b')], { ...FAST, intensity: 2 }));
    await sup.start();
    lab.clear();
    lab.failStarts.set('a', Infinity);
    lab.get('a').crash();
    const reason = await sup.done;
    expect(reason.kind).toBe('error');
    expect(lab.log).toEqual(['fail:a', 'fail:a', 'stop:b']);
    expect(sup.children()[0]?.restarts).toBe(2);
  });

  it('escalates to a parent, which restarts the nested supervisor under its own strategy', async () => {
    const lab = new Lab();
    const subs: Supervisor[] = [];
    const makeSub = (): Supervisor => {
      const sub = new Supervisor([lab.spec('a'), lab.spec('b')], { ...FAST, intensity: 1, name: 'sub' });
      subs.push(sub);
      return sub;
    };
    const parent = track(
      new Supervisor([lab.spec('x'), Supervisor.asChildSpec('sub', makeSub), lab.spec('y')], {
        ...FAST,
        strategy: 'rest_for_one',
        name: 'parent',
      }),
    );
    await parent.start();
    expect(lab.log).toEqual(['start:x', 'start:a', 'start:b', 'start:y']);
    const x = lab.get('x');

    lab.clear();
    lab.get('a').crash();
    await vi.waitFor(() => expect(lab.log).toEqual(['start:a']));
    lab.clear();
    lab.get('a').crash(); // second restart within the period: sub gives up

    await vi.waitFor(() => expect(lab.log).toEqual(['stop:b', 'stop:y', 'start:a', 'start:b', 'start:y']));
    expect(subs).toHaveLength(2);
    const first = await subs[0]?.done;
    expect(first?.kind === 'error' && isSmithError(first.error, 'SUPERVISOR_ESCALATED')).toBe(true);
    expect(subs[1]?.state).toBe('running');
    expect(lab.get('x')).toBe(x);
    expect(parent.state).toBe('running');
    expect(parent.children().map((c) => [c.id, c.restarts, c.running])).toEqual([
      ['x', 0, true],
      ['sub', 1, true],
      ['y', 1, true],
    ]);

    lab.clear();
    await parent.stop();
    expect(lab.log).toEqual(['stop:y', 'stop:b', 'stop:a', 'stop:x']);
    await expect(subs[1]?.done).resolves.toEqual({ kind: 'shutdown' });
  });

  it('a parent past its own intensity escalates further, up to the root', async () => {
    const lab = new Lab();
    const makeLeaf = (): Supervisor =>
      new Supervisor([lab.spec('a')], { ...FAST, intensity: 0, name: 'leaf' });
    const makeMid = (): Supervisor =>
      new Supervisor([Supervisor.asChildSpec('leaf', makeLeaf), lab.spec('w')], {
        ...FAST,
        intensity: 1,
        name: 'mid',
      });
    const root = track(
      new Supervisor([Supervisor.asChildSpec('mid', makeMid)], { ...FAST, intensity: 0, name: 'root' }),
    );
    const events = record(root);
    await root.start();
    expect(lab.log).toEqual(['start:a', 'start:w']);

    lab.clear();
    lab.get('a').crash(); // leaf gives up; mid restarts leaf (its first restart)
    await vi.waitFor(() => expect(lab.log).toEqual(['start:a']));
    lab.clear();
    lab.get('a').crash(); // leaf gives up again; mid is past its intensity and gives up; so does root

    const reason = await root.done;
    expect(lab.log).toEqual(['stop:w']);
    expect(reason.kind).toBe('error');
    const error = reason.kind === 'error' ? reason.error : null;
    expect(isSmithError(error, 'SUPERVISOR_ESCALATED')).toBe(true);
    expect((error as Error).message).toContain('"root"');
    expect((error as Error).message).toContain('"mid"');
    // the chain of causes leads down the tree
    const midError = (error as Error).cause;
    expect(isSmithError(midError, 'SUPERVISOR_ESCALATED') && midError.context).toMatchObject({
      supervisor: 'mid',
      childId: 'leaf',
    });
    const leafError = (midError as Error).cause;
    expect(isSmithError(leafError, 'SUPERVISOR_ESCALATED') && leafError.context).toMatchObject({
      supervisor: 'leaf',
      childId: 'a',
    });
    expect(events).toEqual(['child:start mid', 'child:exit mid error', 'supervisor:escalate root mid 1']);
  });

  it('a parent kills a nested supervisor that outlasts its shutdownMs, and that kills its children', async () => {
    const lab = new Lab();
    lab.hangStop.add('a');
    const parent = track(
      new Supervisor(
        [
          Supervisor.asChildSpec(
            'sub',
            () => new Supervisor([lab.spec('a', { shutdownMs: Infinity })], { ...FAST, name: 'sub' }),
            { shutdownMs: 1 },
          ),
        ],
        FAST,
      ),
    );
    await parent.start();
    lab.clear();
    await parent.stop();
    expect(lab.log).toEqual(['stop:a', 'kill:a']);
  });
});

describe('Supervisor: backoff', () => {
  it('grows the delay with each restart and resets it after the child was up stableMs', async () => {
    let now = 0;
    const lab = new Lab();
    const sup = track(
      new Supervisor([lab.spec('a')], {
        backoff: { baseMs: 1, factor: 2, maxMs: 1000, jitter: 'none' },
        intensity: 100,
        stableMs: 1000,
        now: () => now,
      }),
    );
    const delays: number[] = [];
    sup.on('child:restart', ({ delayMs }) => delays.push(delayMs));
    await sup.start();

    const crashAndWait = async (): Promise<void> => {
      const restarted = nextEvent(sup, 'child:start');
      lab.get('a').crash();
      await restarted;
    };
    await crashAndWait();
    await crashAndWait();
    await crashAndWait();
    now += 1000; // up for stableMs
    await crashAndWait();
    await crashAndWait();
    expect(delays).toEqual([1, 2, 4, 1, 2]);
  });

  it('stop() during a backoff delay cancels the restart and leaves no timer behind', async () => {
    vi.useFakeTimers();
    const lab = new Lab();
    const sup = track(
      new Supervisor([lab.spec('a'), lab.spec('b')], { backoff: { baseMs: 60_000, jitter: 'none' } }),
    );
    await sup.start();
    lab.clear();

    lab.get('a').crash();
    for (let i = 0; i < 100 && sup.children()[0]?.state !== 'restarting'; i++) await Promise.resolve();
    expect(sup.children()[0]?.state).toBe('restarting');
    expect(vi.getTimerCount()).toBe(1);

    await sup.stop();
    expect(vi.getTimerCount()).toBe(0);
    await vi.runAllTimersAsync();
    expect(lab.log).toEqual(['stop:b']);
    expect(sup.children().map((c) => c.state)).toEqual(['stopped', 'stopped']);
  });
});

describe('Supervisor: events', () => {
  it('a throwing listener does not stop the supervisor or the other listeners', async () => {
    const lab = new Lab();
    const sup = track(new Supervisor([lab.spec('a')], FAST));
    const boom = new Error('listener failed');
    // the error is rethrown on a later turn of the event loop: catch it there instead
    const deferred: (() => void)[] = [];
    const spy = vi.spyOn(globalThis, 'setImmediate').mockImplementation(((fn: () => void) => {
      deferred.push(fn);
      return undefined as unknown as NodeJS.Immediate;
    }) as typeof setImmediate);
    const throwing = (): void => {
      throw boom;
    };
    sup.on('child:start', throwing);
    const seen: string[] = [];
    sup.on('child:start', ({ id }) => seen.push(id));
    try {
      await sup.start();
    } finally {
      spy.mockRestore();
    }
    sup.off('child:start', throwing);
    expect(seen).toEqual(['a']);
    expect(deferred).toHaveLength(1);
    expect(() => deferred[0]?.()).toThrow(boom);
    expect(sup.state).toBe('running');
  });
});
