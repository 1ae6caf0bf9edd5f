/**
 * Conformance suite of the Store seam, written against the {@link Store} interface only and run
 * against every dialect named in `SMITH_TEST_STORES` (comma list, default `sqlite`), as Kysely runs
 * its suite per dialect. Each test gets its own database (a fresh temp dir for SQLite).
 *
 * To add a dialect, add a factory to `factories`; tests that only make sense for one dialect
 * (file-system errors) live in their own `describe` at the end.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { auditHash, GENESIS_HASH } from '../src/core/canonical-json.js';
import { SmithError, StoreError } from '../src/core/errors.js';
import type { Attempt, Json, Task, Workflow } from '../src/core/types.js';
import { openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { CommitResult, Lease, Op, Store, StoreOptions } from '../src/store/store.js';
import { tempDir } from './helpers.js';

/** One test's database: the open store, a way to open it again, and cleanup. */
interface Harness {
  store: Store;
  /** Open the same database again (a new connection), e.g. after `store.close()`. */
  reopen(options?: StoreOptions): Promise<Store>;
  /** Close everything opened and remove the database. */
  cleanup(): Promise<void>;
}

const factories: Record<string, () => Promise<Harness>> = {
  sqlite: async () => {
    const tmp = tempDir('smith-store-');
    const file = join(tmp.dir, 'smith.db');
    const opened: Store[] = [];
    const open = async (options?: StoreOptions): Promise<Store> => {
      const s = await openSqliteStore(file, options);
      opened.push(s);
      return s;
    };
    const store = await open();
    return {
      store,
      reopen: open,
      cleanup: async () => {
        for (const s of opened) await s.close();
        tmp.cleanup();
      },
    };
  },
};

const selected = (process.env.SMITH_TEST_STORES ?? 'sqlite')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s.length > 0);
for (const name of selected) {
  if (!factories[name]) {
    throw new Error(`SMITH_TEST_STORES names "${name}"; known stores: ${Object.keys(factories).join(', ')}`);
  }
}

const T0 = 1_700_000_000_000;

function task(id: string, over: Partial<Task> = {}): Task {
  return {
    id,
    key: id,
    workflowId: null,
    agent: null,
    capabilities: [],
    prompt: `do ${id}`,
    needs: [],
    trigger: 'all_success',
    priority: 5,
    state: 'queued',
    attempts: 0,
    maxAttempts: 1,
    epoch: 0,
    timeoutMs: null,
    workdir: '/tmp/w',
    env: {},
    availableAt: T0,
    assignedAgent: null,
    output: null,
    exitCode: null,
    reason: null,
    budget: null,
    costUsd: 0,
    tokens: 0,
    sessionId: null,
    governance: null,
    createdAt: T0,
    updatedAt: T0,
    startedAt: null,
    endedAt: null,
    ...over,
  };
}

function attempt(id: string, taskId: string, over: Partial<Attempt> = {}): Attempt {
  return {
    id,
    taskId,
    number: 1,
    epoch: 1,
    agent: 'sh',
    instance: 0,
    state: 'running',
    pid: null,
    startedAt: T0,
    endedAt: null,
    exitCode: null,
    signal: null,
    output: null,
    error: null,
    sessionId: null,
    costUsd: 0,
    tokens: 0,
    usage: null,
    ...over,
  };
}

function workflow(id: string, over: Partial<Workflow> = {}): Workflow {
  return {
    id,
    name: `wf-${id}`,
    state: 'running',
    file: null,
    dir: '/tmp/w',
    createdAt: T0,
    updatedAt: T0,
    endedAt: null,
    ...over,
  };
}

function audit(subject: string, action = 'task.created', data: Json = { n: 1 }): Op {
  return { op: 'audit', actor: 'engine', action, subject, data };
}

function stateEvent(taskId: string, to: string): Op {
  return { op: 'event', taskId, attemptId: null, type: 'state', data: { to } };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.each(selected)('Store conformance: %s', (name) => {
  let h: Harness;
  let store: Store;

  beforeEach(async () => {
    h = await factories[name]!();
    store = h.store;
  });
  afterEach(async () => {
    await h.cleanup();
  });

  describe('change stamps', () => {
    it("changes a task's stamp on every write to its row, attempts or events, by this connection or another", async () => {
      await store.commit([
        { op: 'insertTask', task: task('t_1') },
        { op: 'insertTask', task: task('t_2') },
      ]);
      const s0 = store.changeStamp('t_1');
      const other = store.changeStamp('t_2');
      expect(store.changeStamp('t_1')).toBe(s0);
      // each kind of write to t_1 changes its stamp
      const writes: Op[][] = [
        [{ op: 'updateTask', id: 't_1', set: { priority: 3 } }],
        [{ op: 'insertAttempt', attempt: attempt('a_1', 't_1'), owner: 'o_1' }],
        [{ op: 'updateAttempt', id: 'a_1', set: { pid: 4242 } }],
        [stateEvent('t_1', 'running')],
      ];
      let last = s0;
      for (const w of writes) {
        await store.commit(w);
        const now = store.changeStamp('t_1');
        expect(now, JSON.stringify(w)).not.toBe(last);
        last = now;
      }
      // writes to t_1 leave t_2's stamp as it was
      expect(store.changeStamp('t_2')).toBe(other);
      // a write by another connection (another process) changes it too
      const second = await h.reopen();
      await second.commit([stateEvent('t_1', 'completed')]);
      expect(store.changeStamp('t_1')).not.toBe(last);
    });
  });

  describe('tasks', () => {
    it('inserts and reads a task back field for field', async () => {
      const t = task('t_full', {
        workflowId: 'w_1',
        agent: 'sh',
        capabilities: ['git', 'node'],
        needs: ['t_a', 't_b'],
        trigger: 'all_done',
        priority: 2,
        state: 'running',
        attempts: 2,
        maxAttempts: 3,
        epoch: 4,
        timeoutMs: 10_000,
        env: { A: '1', 'B C': 'two "quoted"' },
        assignedAgent: 'sh',
        output: 'out\nput',
        exitCode: 0,
        reason: 'why',
        startedAt: T0 + 5,
        endedAt: T0 + 9,
      });
      const r = await store.commit([{ op: 'insertTask', task: t }]);
      expect(r).toEqual({ applied: true, audit: [] });
      expect(await store.getTask('t_full')).toEqual(t);
      expect(await store.getTask('t_missing')).toBeUndefined();
    });

    it('lists tasks with filters, limits and order', async () => {
      await store.commit([
        {
          op: 'insertTask',
          task: task('t_1', { createdAt: T0 + 1, state: 'queued', agent: 'a', workflowId: 'w_1' }),
        },
        {
          op: 'insertTask',
          task: task('t_2', { createdAt: T0 + 2, state: 'running', assignedAgent: 'a', workflowId: 'w_1' }),
        },
        {
          op: 'insertTask',
          task: task('t_3', { createdAt: T0 + 3, state: 'completed', agent: 'b', workflowId: 'w_2' }),
        },
        { op: 'insertTask', task: task('t_4', { createdAt: T0 + 4, state: 'queued', agent: 'b' }) },
        { op: 'insertTask', task: task('t_5', { createdAt: T0 + 5, state: 'failed' }) },
      ]);
      const ids = (ts: Task[]): string[] => ts.map((t) => t.id);
      expect(ids(await store.listTasks())).toEqual(['t_1', 't_2', 't_3', 't_4', 't_5']);
      expect(ids(await store.listTasks({ state: ['queued'] }))).toEqual(['t_1', 't_4']);
      expect(ids(await store.listTasks({ state: ['queued', 'failed'] }))).toEqual(['t_1', 't_4', 't_5']);
      expect(ids(await store.listTasks({ state: [] }))).toEqual(['t_1', 't_2', 't_3', 't_4', 't_5']);
      // `agent` matches the agent asked for or the one assigned
      expect(ids(await store.listTasks({ agent: 'a' }))).toEqual(['t_1', 't_2']);
      expect(ids(await store.listTasks({ workflowId: 'w_1' }))).toEqual(['t_1', 't_2']);
      expect(ids(await store.listTasks({ workflowId: 'w_1', state: ['running'] }))).toEqual(['t_2']);
      expect(ids(await store.listTasks({ limit: 2 }))).toEqual(['t_1', 't_2']);
      expect(ids(await store.listTasks({ newestFirst: true }))).toEqual(['t_5', 't_4', 't_3', 't_2', 't_1']);
      expect(ids(await store.listTasks({ newestFirst: true, limit: 2 }))).toEqual(['t_5', 't_4']);
      expect(ids(await store.listTasks({ agent: 'b', newestFirst: true, limit: 1 }))).toEqual(['t_4']);
      expect(await store.listTasks({ workflowId: 'w_none' })).toEqual([]);
    });

    it('orders tasks created in the same millisecond by id', async () => {
      await store.commit([
        { op: 'insertTask', task: task('t_b') },
        { op: 'insertTask', task: task('t_a') },
        { op: 'insertTask', task: task('t_c') },
      ]);
      expect((await store.listTasks()).map((t) => t.id)).toEqual(['t_a', 't_b', 't_c']);
      expect((await store.listTasks({ newestFirst: true })).map((t) => t.id)).toEqual(['t_c', 't_b', 't_a']);
    });

    it('finds tasks by exact id, id prefix, or key', async () => {
      await store.commit([
        { op: 'insertTask', task: task('t_abc1', { key: 'build', createdAt: T0 + 1 }) },
        { op: 'insertTask', task: task('t_abc2', { key: 'test', createdAt: T0 + 2 }) },
        { op: 'insertTask', task: task('t_xyz', { key: 'build', createdAt: T0 + 3 }) },
        { op: 'insertTask', task: task('t_abc', { key: 'lint', createdAt: T0 + 4 }) },
        { op: 'insertTask', task: task('tXabc', { key: 'misc', createdAt: T0 + 5 }) },
      ]);
      const ids = (ts: Task[]): string[] => ts.map((t) => t.id);
      // an exact id wins over prefixes
      expect(ids(await store.findTasks('t_abc'))).toEqual(['t_abc']);
      expect(ids(await store.findTasks('t_ab'))).toEqual(['t_abc', 't_abc2', 't_abc1']);
      expect(ids(await store.findTasks('build'))).toEqual(['t_xyz', 't_abc1']);
      expect(await store.findTasks('nothing')).toEqual([]);
      // `_` and `%` in the input are not wildcards
      expect(ids(await store.findTasks('t_'))).toEqual(['t_abc', 't_xyz', 't_abc2', 't_abc1']);
      expect(await store.findTasks('%')).toEqual([]);
      expect(await store.findTasks('t%')).toEqual([]);
      expect(ids(await store.findTasks('tX'))).toEqual(['tXabc']);
    });
  });

  describe('guarded changes', () => {
    it('applies a change whose state guard holds, and writes its event and audit record', async () => {
      await store.commit([{ op: 'insertTask', task: task('t_1') }]);
      const r = await store.commit([
        {
          op: 'updateTask',
          id: 't_1',
          expect: { state: ['queued', 'pending'] },
          set: { state: 'running', updatedAt: T0 + 1 },
        },
        stateEvent('t_1', 'running'),
        audit('t_1', 'task.running'),
      ]);
      expect(r.applied).toBe(true);
      expect(r.audit.map((a) => a.seq)).toEqual([1]);
      const t = await store.getTask('t_1');
      expect(t?.state).toBe('running');
      expect(t?.updatedAt).toBe(T0 + 1);
      expect(await store.getEvents('t_1')).toHaveLength(1);
      expect(await store.auditFor('t_1')).toHaveLength(1);
    });

    it('skips a change whose state guard fails: nothing of it is written', async () => {
      await store.commit([{ op: 'insertTask', task: task('t_1') }]);
      const r = await store.commit([
        {
          op: 'updateTask',
          id: 't_1',
          expect: { state: ['running'] },
          set: { state: 'completed', output: 'x' },
        },
        { op: 'insertAttempt', attempt: attempt('a_1', 't_1'), owner: 'o' },
        stateEvent('t_1', 'completed'),
        audit('t_1', 'task.completed'),
      ]);
      expect(r).toEqual({ applied: false, audit: [] });
      expect(await store.getTask('t_1')).toEqual(task('t_1'));
      expect(await store.getAttempts('t_1')).toEqual([]);
      expect(await store.getEvents('t_1')).toEqual([]);
      expect(await store.auditFor('t_1')).toEqual([]);
      expect(await store.auditHead()).toBeUndefined();
    });

    it('checks the epoch guard (fencing) together with the state guard', async () => {
      await store.commit([{ op: 'insertTask', task: task('t_1', { state: 'running', epoch: 2 }) }]);
      const stale = await store.commit([
        {
          op: 'updateTask',
          id: 't_1',
          expect: { state: ['running'], epoch: 1 },
          set: { state: 'completed' },
        },
        audit('t_1', 'task.completed'),
      ]);
      expect(stale.applied).toBe(false);
      const wrongState = await store.commit([
        { op: 'updateTask', id: 't_1', expect: { state: ['queued'], epoch: 2 }, set: { state: 'completed' } },
      ]);
      expect(wrongState.applied).toBe(false);
      const epochOnly = await store.commit([
        { op: 'updateTask', id: 't_1', expect: { epoch: 2 }, set: { epoch: 3 } },
      ]);
      expect(epochOnly.applied).toBe(true);
      const current = await store.commit([
        {
          op: 'updateTask',
          id: 't_1',
          expect: { state: ['running'], epoch: 3 },
          set: { state: 'completed' },
        },
        audit('t_1', 'task.completed'),
      ]);
      expect(current.applied).toBe(true);
      expect(current.audit.map((a) => a.seq)).toEqual([1]);
      expect((await store.getTask('t_1'))?.state).toBe('completed');
      expect((await store.auditFor('t_1')).map((a) => a.action)).toEqual(['task.completed']);
    });

    it('a guard on a missing row does not hold', async () => {
      const r = await store.commit([
        { op: 'updateTask', id: 't_none', expect: { state: ['queued'] }, set: { state: 'running' } },
        audit('t_none'),
      ]);
      expect(r.applied).toBe(false);
      expect(await store.auditHead()).toBeUndefined();
    });

    it('an update without a guard applies even when it changes no row', async () => {
      const r = await store.commit([
        { op: 'updateTask', id: 't_none', set: { state: 'running' } },
        audit('t_none'),
      ]);
      expect(r.applied).toBe(true);
      expect(r.audit).toHaveLength(1);
    });

    it('a failing guard after other writes of the same change undoes them', async () => {
      await store.commit([
        { op: 'insertTask', task: task('t_1') },
        { op: 'insertWorkflow', workflow: workflow('w_1'), spec: {} },
      ]);
      const r = await store.commit([
        stateEvent('t_1', 'running'),
        audit('t_1', 'task.running'),
        { op: 'updateWorkflow', id: 'w_1', set: { name: 'renamed' } },
        { op: 'request', taskId: 't_1', action: 'cancel', actor: 'cli' },
        { op: 'insertTask', task: task('t_2') },
        { op: 'updateTask', id: 't_1', expect: { state: ['running'] }, set: { state: 'completed' } },
      ]);
      expect(r).toEqual({ applied: false, audit: [] });
      expect(await store.getEvents('t_1')).toEqual([]);
      expect(await store.auditHead()).toBeUndefined();
      expect((await store.getWorkflow('w_1'))?.name).toBe('wf-w_1');
      expect(await store.pendingRequests()).toEqual([]);
      expect(await store.getTask('t_2')).toBeUndefined();
      // the chain continues at seq 1: nothing of the skipped change took a number
      const next = await store.commit([audit('t_1')]);
      expect(next.audit.map((a) => a.seq)).toEqual([1]);
    });

    it('with several guards, the change applies only when every guard holds', async () => {
      await store.commit([
        { op: 'insertTask', task: task('t_1', { state: 'running', epoch: 1 }) },
        { op: 'insertAttempt', attempt: attempt('a_1', 't_1', { state: 'stale' }), owner: 'o' },
      ]);
      const r = await store.commit([
        {
          op: 'updateTask',
          id: 't_1',
          expect: { state: ['running'], epoch: 1 },
          set: { state: 'completed' },
        },
        {
          op: 'updateAttempt',
          id: 'a_1',
          expect: { state: ['running'] },
          set: { state: 'succeeded', endedAt: T0 + 1 },
        },
        stateEvent('t_1', 'completed'),
        audit('t_1', 'task.completed'),
      ]);
      expect(r.applied).toBe(false);
      // the first guard held and its update ran, but the change was undone whole
      expect((await store.getTask('t_1'))?.state).toBe('running');
      expect((await store.getAttempts('t_1'))[0]?.state).toBe('stale');
      expect(await store.getEvents('t_1')).toEqual([]);
      expect(await store.auditHead()).toBeUndefined();
    });

    it('a skipped change does not affect the other changes of the same tick', async () => {
      await store.commit([
        { op: 'insertTask', task: task('t_1', { state: 'running', epoch: 1 }) },
        { op: 'insertTask', task: task('t_2', { state: 'running', epoch: 1 }) },
        { op: 'insertAttempt', attempt: attempt('a_1', 't_1'), owner: 'o' },
        { op: 'insertAttempt', attempt: attempt('a_2', 't_2'), owner: 'o' },
      ]);
      const complete = (t: string, a: string, epoch: number): Op[] => [
        { op: 'updateTask', id: t, expect: { state: ['running'], epoch }, set: { state: 'completed' } },
        { op: 'updateAttempt', id: a, expect: { state: ['running'] }, set: { state: 'succeeded' } },
        stateEvent(t, 'completed'),
        audit(t, 'task.completed'),
      ];
      const results = await Promise.all([
        store.commit([audit('x', 'first')]),
        store.commit(complete('t_1', 'a_1', 7)), // stale epoch
        store.commit(complete('t_2', 'a_2', 1)),
        store.commit(complete('t_1', 'a_1', 1)),
        store.commit([
          { op: 'updateAttempt', id: 'a_2', expect: { state: ['running'] }, set: { state: 'failed' } },
          audit('a_2', 'late'),
        ]),
      ]);
      expect(results.map((r) => r.applied)).toEqual([true, false, true, true, false]);
      expect(results.map((r) => r.audit.map((a) => a.seq))).toEqual([[1], [], [2], [3], []]);
      expect((await store.getTask('t_1'))?.state).toBe('completed');
      expect((await store.getTask('t_2'))?.state).toBe('completed');
      expect((await store.getAttempts('t_2'))[0]?.state).toBe('succeeded');
      expect(await store.getEvents('t_1')).toHaveLength(1);
      expect(await store.getEvents('t_2')).toHaveLength(1);
      expect((await store.auditHead())?.seq).toBe(3);
    });

    it('sees, in a later change of the same tick, rows inserted by an earlier one', async () => {
      const results = await Promise.all([
        store.commit([
          { op: 'insertTask', task: task('t_1', { state: 'pending' }) },
          { op: 'insertWorkflow', workflow: workflow('w_1'), spec: null },
        ]),
        store.commit([
          { op: 'updateTask', id: 't_1', expect: { state: ['pending'] }, set: { state: 'queued' } },
          { op: 'insertAttempt', attempt: attempt('a_1', 't_1'), owner: 'o' },
          audit('t_1', 'task.queued'),
        ]),
        store.commit([
          { op: 'updateAttempt', id: 'a_1', expect: { state: ['running'] }, set: { state: 'succeeded' } },
          { op: 'updateWorkflow', id: 'w_1', expect: { state: ['running'] }, set: { state: 'completed' } },
        ]),
        store.commit([
          // inserted and updated within one change
          { op: 'insertTask', task: task('t_2', { state: 'pending' }) },
          { op: 'updateTask', id: 't_2', expect: { state: ['pending'] }, set: { state: 'queued' } },
        ]),
        store.commit([
          { op: 'insertAttempt', attempt: attempt('a_2', 't_2'), owner: 'o' },
          { op: 'updateAttempt', id: 'a_2', expect: { state: ['running'] }, set: { state: 'failed' } },
        ]),
      ]);
      expect(results.map((r) => r.applied)).toEqual([true, true, true, true, true]);
      expect((await store.getTask('t_1'))?.state).toBe('queued');
      expect((await store.getAttempts('t_1'))[0]?.state).toBe('succeeded');
      expect((await store.getWorkflow('w_1'))?.state).toBe('completed');
      expect((await store.getTask('t_2'))?.state).toBe('queued');
      expect((await store.getAttempts('t_2'))[0]?.state).toBe('failed');
    });

    it('a change that inserts then fails its guard leaves none of its rows', async () => {
      const results = await Promise.all([
        store.commit([{ op: 'insertTask', task: task('t_0') }]),
        store.commit([
          { op: 'insertTask', task: task('t_1', { state: 'pending' }) },
          { op: 'updateTask', id: 't_1', expect: { state: ['pending'] }, set: { state: 'queued' } },
          { op: 'insertAttempt', attempt: attempt('a_1', 't_1'), owner: 'o' },
          stateEvent('t_1', 'queued'),
          audit('t_1'),
          { op: 'updateTask', id: 't_0', expect: { state: ['running'] }, set: { state: 'completed' } },
        ]),
        store.commit([{ op: 'insertTask', task: task('t_2') }, audit('t_2')]),
      ]);
      expect(results.map((r) => r.applied)).toEqual([true, false, true]);
      expect(results[2]?.audit.map((a) => a.seq)).toEqual([1]);
      expect((await store.listTasks()).map((t) => t.id)).toEqual(['t_0', 't_2']);
      expect(await store.listAttempts(['running'])).toEqual([]);
      expect(await store.getEvents('t_1')).toEqual([]);
    });

    it('a large change whose last guard fails leaves none of its many rows', async () => {
      await store.commit([{ op: 'insertTask', task: task('t_0') }]);
      const many: Op[] = [];
      for (let i = 0; i < 300; i++) {
        many.push(
          { op: 'insertTask', task: task(`t_${1000 + i}`) },
          stateEvent('t_0', `s${i}`),
          audit('t_0', `a${i}`),
        );
      }
      const results = await Promise.all([
        store.commit([audit('t_0', 'before')]),
        store.commit([
          ...many,
          { op: 'updateTask', id: 't_0', expect: { state: ['running'] }, set: { state: 'completed' } },
        ]),
        store.commit(many.slice(0, 30)),
        store.commit([audit('t_0', 'after')]),
      ]);
      expect(results.map((r) => r.applied)).toEqual([true, false, true, true]);
      expect(results.map((r) => r.audit.length)).toEqual([1, 0, 10, 1]);
      expect(await store.listTasks()).toHaveLength(11);
      expect(await store.getEvents('t_0')).toHaveLength(10);
      expect((await store.auditFor('t_0')).map((r) => r.seq)).toEqual(
        Array.from({ length: 12 }, (_, i) => i + 1),
      );
    });
  });

  describe('group commit', () => {
    it('commits many changes of one tick together, audit seq contiguous in submission order', async () => {
      const n = 1000;
      const pending: Promise<CommitResult>[] = [];
      for (let i = 0; i < n; i++) {
        pending.push(
          store.commit([
            { op: 'insertTask', task: task(`t_${String(i).padStart(4, '0')}`) },
            stateEvent(`t_${String(i).padStart(4, '0')}`, 'queued'),
            audit(`t_${String(i).padStart(4, '0')}`, 'task.created', { i }),
          ]),
        );
      }
      const results = await Promise.all(pending);
      expect(results.every((r) => r.applied)).toBe(true);
      expect(results.map((r) => r.audit[0]?.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      const records = await store.auditRecords(1, n + 10);
      expect(records).toHaveLength(n);
      expect(records.map((r) => r.data)).toEqual(Array.from({ length: n }, (_, i) => ({ i })));
      expect(records.map((r) => r.hash)).toEqual(results.map((r) => r.audit[0]?.hash));
      expect(await store.listTasks()).toHaveLength(n);
      // events got increasing seqs in submission order
      const seqs: number[] = [];
      for (let i = 0; i < n; i += 97)
        seqs.push((await store.getEvents(`t_${String(i).padStart(4, '0')}`))[0]!.seq);
      expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    });

    it('flush resolves once everything submitted has committed', async () => {
      let done = 0;
      for (let i = 0; i < 50; i++) void store.commit([audit(`s${i}`)]).then(() => done++);
      await store.flush();
      expect(done).toBe(50);
      expect((await store.auditHead())?.seq).toBe(50);
      await store.flush();
    });

    it('a failing change fails only its own promise; the rest of the batch commits', async () => {
      await store.commit([{ op: 'insertTask', task: task('t_dup') }]);
      const settled = await Promise.allSettled([
        store.commit([{ op: 'insertTask', task: task('t_a') }, audit('t_a')]),
        store.commit([{ op: 'insertTask', task: task('t_dup') }, audit('t_dup')]),
        store.commit([{ op: 'insertTask', task: task('t_b') }, stateEvent('t_b', 'queued'), audit('t_b')]),
        store.commit([{ op: 'insertAttempt', attempt: attempt('a_1', 't_a'), owner: 'o' }]),
        store.commit([{ op: 'insertAttempt', attempt: attempt('a_1', 't_b'), owner: 'o' }]),
        store.commit([stateEvent('t_a', 'running'), audit('t_a')]),
      ]);
      expect(settled.map((s) => s.status)).toEqual([
        'fulfilled',
        'rejected',
        'fulfilled',
        'fulfilled',
        'rejected',
        'fulfilled',
      ]);
      const audits = settled.map((s) => (s.status === 'fulfilled' ? s.value.audit.map((a) => a.seq) : null));
      expect(audits).toEqual([[1], null, [2], [], null, [3]]);
      expect((await store.listTasks()).map((t) => t.id).sort()).toEqual(['t_a', 't_b', 't_dup']);
      expect((await store.getAttempts('t_a')).map((a) => a.id)).toEqual(['a_1']);
      expect(await store.getAttempts('t_b')).toEqual([]);
      // no row was written twice
      expect(await store.getEvents('t_b')).toHaveLength(1);
      expect(await store.getEvents('t_a')).toHaveLength(1);
      expect(await store.auditRecords(1, 10)).toHaveLength(3);
      expect(await store.auditFor('t_dup')).toEqual([]);
    });

    it('rejects commits after close, and close may be called twice', async () => {
      await store.close();
      await store.close();
      await expect(store.commit([audit('x')])).rejects.toMatchObject({ code: 'SHUTTING_DOWN' });
    });
  });

  describe('audit chain', () => {
    it('links records by prev_hash and hashes the canonical body', async () => {
      const r1 = await store.commit([audit('t_1', 'task.created', { b: 2, a: [1, 'x', null] })]);
      const r2 = await store.commit([
        {
          op: 'audit',
          actor: 'user:ann',
          action: 'task.canceled',
          subject: 't_1',
          data: { reason: 'é\u2028' },
          time: T0,
        },
        audit('w_1', 'workflow.created', null),
      ]);
      const r3 = await store.commit([audit('t_2', 'task.created', { nested: { z: 1, y: [true, false] } })]);
      const records = await store.auditRecords(1, 100);
      expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
      expect(records.map((r) => ({ seq: r.seq, hash: r.hash }))).toEqual([
        ...r1.audit,
        ...r2.audit,
        ...r3.audit,
      ]);
      let prev = GENESIS_HASH;
      for (const r of records) {
        expect(r.prevHash).toBe(prev);
        expect(r.hash).toBe(
          auditHash({
            seq: r.seq,
            time: r.time,
            actor: r.actor,
            action: r.action,
            subject: r.subject,
            data: r.data,
            prev_hash: r.prevHash,
          }),
        );
        prev = r.hash;
      }
      expect(records[1]).toMatchObject({
        actor: 'user:ann',
        action: 'task.canceled',
        time: T0,
        data: { reason: 'é\u2028' },
      });
      expect(records[0]?.data).toEqual({ b: 2, a: [1, 'x', null] });
      expect(records[2]?.data).toBeNull();
      expect(await store.auditHead()).toEqual({ seq: 4, hash: prev });
      expect((await store.auditRecords(2, 2)).map((r) => r.seq)).toEqual([2, 3]);
      expect(await store.auditRecords(5, 10)).toEqual([]);
    });

    it('answers auditFor one subject, ascending', async () => {
      await store.commit([audit('t_1', 'a1'), audit('t_2', 'b1')]);
      await store.commit([audit('t_1', 'a2')]);
      await store.commit([audit('t_2', 'b2'), audit('t_1', 'a3')]);
      expect((await store.auditFor('t_1')).map((r) => [r.seq, r.action])).toEqual([
        [1, 'a1'],
        [3, 'a2'],
        [5, 'a3'],
      ]);
      expect(await store.auditFor('t_3')).toEqual([]);
    });

    it('has no head while empty', async () => {
      expect(await store.auditHead()).toBeUndefined();
      expect(await store.auditRecords(1, 10)).toEqual([]);
    });
  });

  describe('events', () => {
    it('returns a task’s events in order, after a seq, up to a limit', async () => {
      const before = Date.now();
      await store.commit([
        stateEvent('t_1', 'queued'),
        { op: 'event', taskId: 't_2', attemptId: null, type: 'log', data: { line: 'other' } },
      ]);
      await store.commit([
        { op: 'event', taskId: 't_1', attemptId: 'a_1', type: 'progress', data: { pct: 50 }, time: T0 },
        { op: 'event', taskId: 't_1', attemptId: 'a_1', type: 'log', data: { stream: 'stdout', line: 'hi' } },
      ]);
      const after = Date.now();
      const events = await store.getEvents('t_1');
      expect(events.map((e) => e.type)).toEqual(['state', 'progress', 'log']);
      expect(events.map((e) => e.taskId)).toEqual(['t_1', 't_1', 't_1']);
      expect(events.map((e) => e.attemptId)).toEqual([null, 'a_1', 'a_1']);
      expect(events[1]).toMatchObject({ time: T0, data: { pct: 50 } });
      expect(events[0]!.time).toBeGreaterThanOrEqual(before);
      expect(events[0]!.time).toBeLessThanOrEqual(after);
      const seqs = events.map((e) => e.seq);
      expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
      expect(new Set(seqs).size).toBe(3);
      expect((await store.getEvents('t_1', events[0]!.seq)).map((e) => e.type)).toEqual(['progress', 'log']);
      expect((await store.getEvents('t_1', 0, 2)).map((e) => e.type)).toEqual(['state', 'progress']);
      expect(await store.getEvents('t_1', events[2]!.seq)).toEqual([]);
      expect((await store.getEvents('t_2'))[0]?.seq).toBeGreaterThan(seqs[0]!);
    });
  });

  describe('attempts', () => {
    it('inserts, updates, and lists attempts by task and by state', async () => {
      const a1 = attempt('a_1', 't_1', { number: 1, epoch: 1, pid: 123 });
      const a2 = attempt('a_2', 't_1', { number: 2, epoch: 2, instance: 1 });
      const b1 = attempt('b_1', 't_2', { agent: 'other' });
      await store.commit([
        { op: 'insertAttempt', attempt: a2, owner: 'o1' },
        { op: 'insertAttempt', attempt: a1, owner: 'o1' },
        { op: 'insertAttempt', attempt: b1, owner: 'o2' },
      ]);
      expect(await store.getAttempts('t_1')).toMatchObject([a1, a2]);
      const r = await store.commit([
        {
          op: 'updateAttempt',
          id: 'a_1',
          expect: { state: ['running'] },
          set: { state: 'failed', endedAt: T0 + 7, exitCode: 2, signal: 'SIGTERM', output: 'o', error: 'e' },
        },
      ]);
      expect(r.applied).toBe(true);
      const again = await store.commit([
        { op: 'updateAttempt', id: 'a_1', expect: { state: ['running'] }, set: { state: 'succeeded' } },
      ]);
      expect(again.applied).toBe(false);
      await store.commit([{ op: 'updateAttempt', id: 'a_2', set: { pid: 99, instance: 3 } }]);
      const [g1, g2] = await store.getAttempts('t_1');
      expect(g1).toMatchObject({
        ...a1,
        state: 'failed',
        endedAt: T0 + 7,
        exitCode: 2,
        signal: 'SIGTERM',
        output: 'o',
        error: 'e',
      });
      expect(g2).toMatchObject({ ...a2, pid: 99, instance: 3 });
      const running = await store.listAttempts(['running']);
      expect(running.map((a) => [a.id, a.owner]).sort()).toEqual([
        ['a_2', 'o1'],
        ['b_1', 'o2'],
      ]);
      expect(running.find((a) => a.id === 'b_1')).toEqual({ ...b1, owner: 'o2' });
      expect((await store.listAttempts(['failed', 'succeeded'])).map((a) => a.id)).toEqual(['a_1']);
      expect(await store.getAttempts('t_none')).toEqual([]);
    });
  });

  describe('workflows', () => {
    it('inserts, updates, finds and lists workflows; the spec round-trips', async () => {
      const spec: Json = {
        name: 'repo-health',
        tasks: [{ key: 'a', needs: [], prompt: 'x "y"\n' }],
        agents: { sh: { runtime: 'process', command: ['sh', '-c', '{prompt}'] } },
        n: 1.5,
        ok: true,
        none: null,
      };
      const w1 = workflow('w_abc1', { name: 'repo-health', file: '/x/wf.yaml', createdAt: T0 + 1 });
      const w2 = workflow('w_abc2', { name: 'other', createdAt: T0 + 2 });
      const w3 = workflow('w_xyz', {
        name: 'repo-health',
        createdAt: T0 + 3,
        state: 'failed',
        endedAt: T0 + 4,
      });
      await store.commit([
        { op: 'insertWorkflow', workflow: w1, spec },
        { op: 'insertWorkflow', workflow: w2, spec: [] },
        { op: 'insertWorkflow', workflow: w3, spec: null },
      ]);
      expect(await store.getWorkflow('w_abc1')).toEqual(w1);
      expect(await store.getWorkflow('w_none')).toBeUndefined();
      expect(await store.getWorkflowSpec('w_abc1')).toEqual(spec);
      expect(await store.getWorkflowSpec('w_abc2')).toEqual([]);
      expect(await store.getWorkflowSpec('w_xyz')).toBeNull();
      expect(await store.getWorkflowSpec('w_none')).toBeUndefined();
      const ids = (ws: Workflow[]): string[] => ws.map((w) => w.id);
      expect(ids(await store.findWorkflows('w_abc'))).toEqual(['w_abc2', 'w_abc1']);
      expect(ids(await store.findWorkflows('repo-health'))).toEqual(['w_xyz', 'w_abc1']);
      expect(await store.findWorkflows('nope')).toEqual([]);
      expect(ids(await store.listWorkflows())).toEqual(['w_abc1', 'w_abc2', 'w_xyz']);
      expect(ids(await store.listWorkflows([]))).toEqual(['w_abc1', 'w_abc2', 'w_xyz']);
      expect(ids(await store.listWorkflows(['running']))).toEqual(['w_abc1', 'w_abc2']);

      const guarded = await store.commit([
        { op: 'updateWorkflow', id: 'w_xyz', expect: { state: ['running'] }, set: { state: 'completed' } },
        audit('w_xyz', 'workflow.completed'),
      ]);
      expect(guarded.applied).toBe(false);
      const done = await store.commit([
        {
          op: 'updateWorkflow',
          id: 'w_abc1',
          expect: { state: ['running'] },
          set: { state: 'completed', updatedAt: T0 + 9, endedAt: T0 + 9 },
        },
        audit('w_abc1', 'workflow.completed'),
      ]);
      expect(done.applied).toBe(true);
      expect(await store.getWorkflow('w_abc1')).toEqual({
        ...w1,
        state: 'completed',
        updatedAt: T0 + 9,
        endedAt: T0 + 9,
      });
      expect(await store.getWorkflow('w_xyz')).toEqual(w3);
      expect(ids(await store.listWorkflows(['completed', 'failed']))).toEqual(['w_abc1', 'w_xyz']);
    });
  });

  describe('agents', () => {
    it('upserts agents and instance states, and lists them by name and index', async () => {
      const sh = {
        name: 'sh',
        runtime: 'process',
        command: ['sh', '-c', '{prompt}'],
        capabilities: ['shell'],
        concurrency: 2,
      };
      const ai = { name: 'ai', runtime: 'llm', capabilities: [], concurrency: 1 };
      await store.commit([
        { op: 'upsertAgent', spec: sh },
        { op: 'upsertAgent', spec: ai },
        { op: 'setInstance', agent: 'sh', index: 1, state: 'idle' },
        { op: 'setInstance', agent: 'sh', index: 0, state: 'busy', restarts: 2 },
        { op: 'setInstance', agent: 'ai', index: 0, state: 'initializing' },
      ]);
      let agents = await store.listAgents();
      expect(agents.map((a) => a.name)).toEqual(['ai', 'sh']);
      expect(agents[1]?.spec).toEqual(sh);
      expect(agents[1]?.instances.map((i) => [i.index, i.state, i.restarts])).toEqual([
        [0, 'busy', 2],
        [1, 'idle', 0],
      ]);
      expect(typeof agents[1]?.instances[0]?.updatedAt).toBe('number');

      const sh2 = { ...sh, concurrency: 4, env: { A: 'b' } };
      await store.commit([
        { op: 'upsertAgent', spec: sh2 },
        // restarts is kept when not given
        { op: 'setInstance', agent: 'sh', index: 0, state: 'idle' },
        { op: 'setInstance', agent: 'sh', index: 1, state: 'error', restarts: 5 },
      ]);
      agents = await store.listAgents();
      expect(agents).toHaveLength(2);
      expect(agents[1]?.spec).toEqual(sh2);
      expect(agents[1]?.instances.map((i) => [i.index, i.state, i.restarts])).toEqual([
        [0, 'idle', 2],
        [1, 'error', 5],
      ]);
      expect(agents[0]?.instances.map((i) => [i.index, i.state, i.restarts])).toEqual([
        [0, 'initializing', 0],
      ]);
    });
  });

  describe('requests', () => {
    it('records requests, lists the pending ones in order, and marks them done', async () => {
      const before = Date.now();
      await store.commit([
        { op: 'request', taskId: 't_1', action: 'cancel', actor: 'cli', data: { reason: 'no' } },
        { op: 'request', taskId: 't_2', action: 'retry', actor: 'user:ann' },
      ]);
      await store.commit([{ op: 'request', taskId: 't_1', action: 'pause', actor: 'api' }]);
      const pending = await store.pendingRequests();
      expect(pending.map((r) => [r.taskId, r.action, r.actor, r.data])).toEqual([
        ['t_1', 'cancel', 'cli', { reason: 'no' }],
        ['t_2', 'retry', 'user:ann', null],
        ['t_1', 'pause', 'api', null],
      ]);
      expect(pending[0]!.id).toBeLessThan(pending[1]!.id);
      expect(pending[1]!.id).toBeLessThan(pending[2]!.id);
      expect(pending[0]!.createdAt).toBeGreaterThanOrEqual(before);
      const r = await store.commit([{ op: 'requestDone', id: pending[1]!.id, result: 'ok' }]);
      expect(r.applied).toBe(true);
      expect((await store.pendingRequests()).map((x) => x.action)).toEqual(['cancel', 'pause']);
      await store.commit([
        { op: 'requestDone', id: pending[0]!.id, result: 'done' },
        { op: 'requestDone', id: pending[2]!.id, result: 'failed: x' },
      ]);
      expect(await store.pendingRequests()).toEqual([]);
    });
  });

  describe('lease', () => {
    const live = (): boolean => false;

    it('is acquired when free, held against another live owner, and released', async () => {
      expect(await store.getLease()).toBeUndefined();
      const before = Date.now();
      expect(await store.acquireLease('owner-a', 60_000, live)).toBeNull();
      const l = await store.getLease();
      expect(l).toMatchObject({ owner: 'owner-a', pid: process.pid });
      expect(typeof l?.host).toBe('string');
      expect(l!.acquiredAt).toBeGreaterThanOrEqual(before);
      expect(l!.expiresAt).toBeGreaterThanOrEqual(l!.heartbeatAt + 60_000);

      const seen: Lease[] = [];
      const err = await store
        .acquireLease('owner-b', 60_000, (x) => {
          seen.push(x);
          return false;
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(SmithError);
      expect(err).toMatchObject({ code: 'LEASE_HELD' });
      expect((err as SmithError).message).toContain(String(process.pid));
      expect(seen.map((x) => x.owner)).toEqual(['owner-a']);
      expect((await store.getLease())?.owner).toBe('owner-a');

      // the holder may acquire again (it renews)
      expect(await store.acquireLease('owner-a', 60_000, live)).toBeNull();
      expect(await store.renewLease('owner-a', 60_000)).toBe(true);

      // only the holder releases
      await store.releaseLease('owner-b');
      expect((await store.getLease())?.owner).toBe('owner-a');
      await store.releaseLease('owner-a');
      expect(await store.getLease()).toBeUndefined();
      expect(await store.renewLease('owner-a', 60_000)).toBe(false);
      expect(await store.acquireLease('owner-b', 60_000, live)).toBeNull();
      expect((await store.getLease())?.owner).toBe('owner-b');
    });

    it('is taken over when expired, returning the previous holder; the old holder is fenced', async () => {
      await store.acquireLease('owner-a', 1, live);
      await sleep(10);
      const prev = await store.acquireLease('owner-b', 60_000, live);
      expect(prev).toMatchObject({ owner: 'owner-a', pid: process.pid });
      expect((await store.getLease())?.owner).toBe('owner-b');
      expect(await store.renewLease('owner-a', 60_000)).toBe(false);
      expect(await store.renewLease('owner-b', 60_000)).toBe(true);
      await store.releaseLease('owner-a');
      expect((await store.getLease())?.owner).toBe('owner-b');
    });

    it('is taken over when its holder is gone, returning the previous holder', async () => {
      await store.acquireLease('owner-a', 60_000, live);
      const prev = await store.acquireLease('owner-b', 60_000, (l) => l.owner === 'owner-a');
      expect(prev?.owner).toBe('owner-a');
      expect((await store.getLease())?.owner).toBe('owner-b');
      expect(await store.renewLease('owner-a', 60_000)).toBe(false);
    });

    it('renewing extends the expiry', async () => {
      await store.acquireLease('owner-a', 1, live);
      const first = (await store.getLease())!;
      await sleep(5);
      expect(await store.renewLease('owner-a', 60_000)).toBe(true);
      const renewed = (await store.getLease())!;
      expect(renewed.expiresAt).toBeGreaterThan(first.expiresAt);
      expect(renewed.heartbeatAt).toBeGreaterThanOrEqual(first.heartbeatAt);
      expect(renewed.acquiredAt).toBe(first.acquiredAt);
      await expect(store.acquireLease('owner-b', 60_000, live)).rejects.toMatchObject({ code: 'LEASE_HELD' });
    });
  });

  describe('durability and read-only access', () => {
    async function writeEverything(): Promise<void> {
      await store.commit([
        { op: 'insertWorkflow', workflow: workflow('w_1'), spec: { tasks: ['a'] } },
        { op: 'insertTask', task: task('t_1', { workflowId: 'w_1', env: { K: 'v' }, capabilities: ['c'] }) },
        { op: 'insertAttempt', attempt: attempt('a_1', 't_1'), owner: 'o' },
        stateEvent('t_1', 'queued'),
        audit('t_1'),
        { op: 'upsertAgent', spec: { name: 'sh', runtime: 'process', capabilities: [], concurrency: 1 } },
        { op: 'setInstance', agent: 'sh', index: 0, state: 'idle' },
        { op: 'request', taskId: 't_1', action: 'cancel', actor: 'cli' },
      ]);
      await store.commit([
        { op: 'updateTask', id: 't_1', expect: { state: ['queued'] }, set: { state: 'running', epoch: 1 } },
        audit('t_1', 'task.running'),
      ]);
      await store.acquireLease('owner-a', 60_000, () => false);
    }

    async function snapshot(s: Store): Promise<unknown> {
      return {
        tasks: await s.listTasks(),
        attempts: await s.getAttempts('t_1'),
        events: await s.getEvents('t_1'),
        workflow: await s.getWorkflow('w_1'),
        spec: await s.getWorkflowSpec('w_1'),
        agents: await s.listAgents(),
        audit: await s.auditRecords(1, 100),
        head: await s.auditHead(),
        requests: await s.pendingRequests(),
        lease: await s.getLease(),
      };
    }

    it('reads back everything after close and reopen', async () => {
      await writeEverything();
      const before = await snapshot(store);
      await store.close();
      const again = await h.reopen();
      expect(await snapshot(again)).toEqual(before);
      expect((await again.getTask('t_1'))?.state).toBe('running');
      expect((await again.auditHead())?.seq).toBe(2);
      // the chain continues where it stopped
      const r = await again.commit([audit('t_1', 'task.completed')]);
      expect(r.audit[0]?.seq).toBe(3);
      expect((await again.auditRecords(3, 1))[0]?.prevHash).toBe((await again.auditRecords(2, 1))[0]?.hash);
    });

    it('a read-only store reads what another connection wrote', async () => {
      await writeEverything();
      const ro = await h.reopen({ readonly: true });
      expect(await snapshot(ro)).toEqual(await snapshot(store));
      expect((await ro.findTasks('t_'))[0]?.id).toBe('t_1');
      await store.commit([audit('t_1', 'later')]);
      expect((await ro.auditHead())?.seq).toBe(3);
    });

    it('a read-only store refuses writes', async () => {
      await writeEverything();
      const ro = await h.reopen({ readonly: true });
      await expect(ro.commit([audit('t_1')])).rejects.toBeInstanceOf(StoreError);
      expect((await store.auditHead())?.seq).toBe(2);
    });
  });
});

describe.runIf(selected.includes('sqlite'))('SQLite store: opening', () => {
  let tmp: { dir: string; cleanup: () => void };
  beforeEach(() => {
    tmp = tempDir('smith-store-');
  });
  afterEach(() => {
    tmp.cleanup();
  });

  it('creates the folder of a new store', async () => {
    const s = await openSqliteStore(join(tmp.dir, 'a', 'b', 'smith.db'), { synchronous: 'NORMAL' });
    await s.commit([audit('x')]);
    await s.close();
  });

  it('fails with STORE_NOT_WRITABLE when the folder cannot be created', async () => {
    // a path under a regular file fails for root too
    writeFileSync(join(tmp.dir, 'file.txt'), 'x');
    const file = join(tmp.dir, 'file.txt', 'smith.db');
    const err = await openSqliteStore(file).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ code: 'STORE_NOT_WRITABLE' });
    expect((err as Error).message).toContain(file);
  });

  it('fails with STORE_NOT_WRITABLE when the file is a folder', async () => {
    mkdirSync(join(tmp.dir, 'smith.db'));
    await expect(openSqliteStore(join(tmp.dir, 'smith.db'))).rejects.toMatchObject({
      code: 'STORE_NOT_WRITABLE',
    });
  });

  it('fails with STORE_FAILED when the file is not a database', async () => {
    const file = join(tmp.dir, 'smith.db');
    writeFileSync(file, 'this is not a database\n'.repeat(300));
    for (const options of [{}, { readonly: true }]) {
      const err = await openSqliteStore(file, options).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StoreError);
      expect(err).toMatchObject({ code: 'STORE_FAILED' });
      expect((err as Error).message).toContain('not a MisterSmith store');
      expect(((err as Error).cause as { code?: string }).code).toBe('SQLITE_NOTADB');
    }
  });

  it('fails when a read-only store does not exist, and creates nothing', async () => {
    const file = join(tmp.dir, 'none', 'smith.db');
    await expect(openSqliteStore(file, { readonly: true })).rejects.toBeInstanceOf(StoreError);
    await expect(openSqliteStore(file, { readonly: true })).rejects.toThrow(file);
    expect(existsSync(join(tmp.dir, 'none'))).toBe(false);
  });
});
