/**
 * `smith cancel|pause|resume-task|retry|approve|reject|override ID`, `smith guide ID TEXT` and
 * `smith init`.
 *
 * When another smith process owns this home's engine, the command writes a request to the store
 * and waits for the owner to act on it. When none does, it takes the lease (recovering what a dead
 * owner left) and acts itself. With SMITH_URL set, it asks that server (`POST
 * /api/v1/tasks/:id/<action>`), which owns its home's engine.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SmithError } from '../../core/errors.js';
import { actionRefusal, type TaskAction, type TaskView } from '../../core/views.js';
import type { Json, Task } from '../../core/types.js';
import { Engine } from '../../engine/engine.js';
import {
  keysDir,
  loadHomeKey,
  makeGovernor,
  openHomeStore,
  ownerIsAlive,
  Ownership,
  storeFile,
} from '../../engine/home.js';
import { createKeyPair, PRIVATE_KEY_FILE } from '../../provenance/index.js';
import { guideTask } from '../../engine/interventions.js';
import { CONFIG_FILE_NAME, STARTER_CONFIG } from '../../engine/loader/index.js';
import { builtinRuntimes } from '../../runtime/builtin.js';
import type { RequestAction, Store } from '../../store/store.js';
import { findOneTask } from '../../engine/find-task.js';
import { EXIT, type Context } from '../context.js';
import { remoteClient, resolveTask, type RemoteClient } from '../remote.js';

/** The verbs and what they ask for. */
const ACTIONS: Record<string, RequestAction> = {
  cancel: 'cancel',
  pause: 'pause',
  'resume-task': 'resume',
  retry: 'retry',
  approve: 'approve',
  reject: 'reject',
  override: 'override',
};

function actor(): string {
  return `user:${process.env.USER ?? process.env.LOGNAME ?? 'unknown'}`;
}

/** Wait until the owner has taken the request; returns the task then, and whether it was taken. */
async function waitForOwner(
  store: Store,
  taskId: string,
  before: Task,
  timeoutMs: number,
): Promise<{ task: Task; served: boolean }> {
  const deadline = Date.now() + timeoutMs;
  let served = false;
  while (Date.now() < deadline) {
    const pending = await store.pendingRequests();
    if (!pending.some((r) => r.taskId === taskId)) {
      served = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { task: (await store.getTask(taskId)) ?? before, served };
}

/** `smith cancel|pause|resume-task|retry ID`. */
export async function controlCommand(
  ctx: Context,
  verb: string,
  id: string,
  extra: { reason?: string; verdict?: 'approve' | 'reject' } = {},
): Promise<number> {
  const action = ACTIONS[verb];
  if (!action) throw new SmithError('INVALID_ARGUMENT', `unknown verb ${verb}`);
  const api = remoteClient();
  if (api) return controlRemote(ctx, api, action, id, extra);
  const store = await openHomeStore(ctx.home, { synchronous: ctx.config.store.synchronous });
  try {
    const task = await findOneTask(store, id);
    const refused = actionRefusal(action as TaskAction, task);
    if (refused) {
      throw new SmithError('INVALID_TRANSITION', refused, { context: { task: task.id, state: task.state } });
    }
    let after: Task;
    let via: string;
    const owner = await ownerIsAlive(store);
    if (owner) {
      await store.commit([
        { op: 'request', taskId: task.id, action, actor: actor(), data: { ...extra } as Json },
      ]);
      const waited = await waitForOwner(store, task.id, task, 10_000);
      after = waited.task;
      via = waited.served
        ? `asked the running smith (pid ${owner.pid})`
        : `asked the running smith (pid ${owner.pid}); it has not acted on it yet and will when it can`;
      if (waited.served && after.state === task.state && action !== 'retry') {
        via += `; it left the task ${after.state} (it may have changed meanwhile: see smith task ${after.id})`;
      }
    } else {
      const ownership = await Ownership.acquire(store, ctx.home, () => undefined);
      const signingKey = await loadHomeKey(ctx.home);
      const engine = new Engine({
        store,
        runtimes: builtinRuntimes(),
        agents: [],
        home: ctx.home,
        owner: ownership.owner,
        governor: await makeGovernor(
          ctx.home,
          ctx.config.council,
          ctx.configFile ? dirname(ctx.configFile) : ctx.cwd,
          ctx.config.worktrees.dir,
        ),
        ...(signingKey ? { signingKey } : {}),
      });
      try {
        if (action === 'cancel') after = await engine.cancel(task.id, actor());
        else if (action === 'pause') after = await engine.pause(task.id, actor());
        else if (action === 'resume') after = await engine.resumeTask(task.id, actor());
        else if (action === 'approve') after = await engine.approve(task.id, actor());
        else if (action === 'reject') after = await engine.reject(task.id, actor(), extra.reason ?? '');
        else if (action === 'override')
          after = await engine.override(task.id, extra.verdict ?? 'approve', actor(), extra.reason ?? '');
        else after = await engine.retry(task.id, actor());
        await engine.close();
      } finally {
        await ownership.release();
      }
      via = 'no smith process owns this home; recorded it directly';
      if (action === 'retry' || action === 'resume') via += '. Run "smith resume" to run it';
      if (after.state === 'completed' && after.workflowId)
        via += '. Run "smith resume" to run the tasks that need it';
    }
    if (ctx.json) {
      process.stdout.write(
        JSON.stringify({ id: after.id, key: after.key, state: after.state, before: task.state }) + '\n',
      );
    } else {
      process.stdout.write(`task ${after.id} (${after.key}): ${task.state} -> ${after.state} (${via})\n`);
    }
    return after.state === task.state && action !== 'retry' ? EXIT.failed : EXIT.ok;
  } finally {
    await store.close();
  }
}

/** A task after an intervention, as the API answers: its view and its state before. */
type Intervened = TaskView & { before: string };

/** `smith cancel|… ID` against a server: the same output and exit code as embedded. */
async function controlRemote(
  ctx: Context,
  api: RemoteClient,
  action: RequestAction,
  id: string,
  extra: { reason?: string; verdict?: 'approve' | 'reject' },
): Promise<number> {
  const task = await resolveTask(api, id);
  const body =
    action === 'reject'
      ? { reason: extra.reason ?? '' }
      : action === 'override'
        ? { verdict: extra.verdict ?? 'approve', reason: extra.reason ?? '' }
        : {};
  const after = await api.post<Intervened>(`/api/v1/tasks/${encodeURIComponent(task.id)}/${action}`, body);
  if (ctx.json) {
    process.stdout.write(
      JSON.stringify({ id: after.id, key: after.key, state: after.state, before: after.before }) + '\n',
    );
  } else {
    process.stdout.write(
      `task ${after.id} (${after.key}): ${after.before} -> ${after.state} (asked the server at ${api.url})\n`,
    );
  }
  return after.state === after.before && action !== 'retry' ? EXIT.failed : EXIT.ok;
}

/** `smith init`: a starter smith.yaml and the home's store. */
export async function initCommand(ctx: Context): Promise<number> {
  const configPath = join(ctx.cwd, CONFIG_FILE_NAME);
  const wrote: string[] = [];
  if (!existsSync(configPath)) {
    writeFileSync(configPath, STARTER_CONFIG, { flag: 'wx' });
    wrote.push(`${configPath} (starter config: edit its agents)`);
  }
  const store = await openHomeStore(ctx.home);
  await store.close();
  wrote.push(`${storeFile(ctx.home)} (store)`);
  // the signing key of the audit trail: made once, never replaced by init
  const keys = keysDir(ctx.home);
  let kid: string | undefined;
  if (!existsSync(join(keys, PRIVATE_KEY_FILE))) {
    const made = await createKeyPair(keys);
    kid = made.kid;
    wrote.push(`${made.privateFile} (signing key, mode 0600; kid ${made.kid})`);
    wrote.push(`${made.publicFile} (public key: give it to whoever verifies the audit trail)`);
  }
  if (ctx.json)
    process.stdout.write(JSON.stringify({ config: configPath, home: ctx.home, kid: kid ?? null }) + '\n');
  else {
    process.stdout.write(`initialized:\n  ${wrote.join('\n  ')}\n`);
    if (!wrote.some((w) => w.includes(configPath)))
      process.stdout.write(`  ${configPath} already exists; left as it was\n`);
    process.stdout.write('next: smith run WORKFLOW.yaml, or smith run --agent sh "echo hello"\n');
  }
  return EXIT.ok;
}

/** `smith guide ID "text"`: guidance for the task's next attempt (works with or without a running smith). */
export async function guideCommand(ctx: Context, id: string, text: string): Promise<number> {
  const api = remoteClient();
  if (api) {
    const task = await resolveTask(api, id);
    const after = await api.post<Intervened>(`/api/v1/tasks/${encodeURIComponent(task.id)}/guide`, { text });
    printGuided(ctx, { id: after.id, key: after.key, state: after.before });
    return EXIT.ok;
  }
  const store = await openHomeStore(ctx.home, { synchronous: ctx.config.store.synchronous });
  try {
    const task = await findOneTask(store, id);
    const owner = await ownerIsAlive(store);
    await guideTask(store, task, text, actor(), owner !== undefined);
    // the running smith notes it before this returns, so even the task's first attempt gets it
    if (owner) await waitForOwner(store, task.id, task, 10_000);
    printGuided(ctx, task);
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

/** Say that a task got guidance (`state`: its state when it got it). */
function printGuided(ctx: Context, task: { id: string; key: string; state: string }): void {
  if (ctx.json) {
    process.stdout.write(
      JSON.stringify({ id: task.id, key: task.key, state: task.state, guided: true }) + '\n',
    );
    return;
  }
  const when =
    task.state === 'running' || task.state === 'paused'
      ? 'its next attempt (a retry or a revise round) will get it'
      : 'its next attempt will get it';
  process.stdout.write(`guidance recorded for task ${task.id} (${task.key}, ${task.state}); ${when}\n`);
}
