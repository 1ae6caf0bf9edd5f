/**
 * `smith cancel|pause|resume-task|retry ID` and `smith init`.
 *
 * When another smith process owns this home's engine, the command writes a request to the store
 * and waits for the owner to act on it. When none does, it takes the lease (recovering what a dead
 * owner left) and acts itself.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SmithError } from '../../core/errors.js';
import type { Task } from '../../core/types.js';
import { Engine } from '../../engine/engine.js';
import { openHomeStore, ownerIsAlive, Ownership, storeFile } from '../../engine/home.js';
import { CONFIG_FILE_NAME, STARTER_CONFIG } from '../../engine/loader/index.js';
import { FunctionRuntime } from '../../runtime/function/function-runtime.js';
import { ProcessRuntime } from '../../runtime/process/index.js';
import type { RequestAction, Store } from '../../store/store.js';
import { EXIT, type Context } from '../context.js';
import { findOneTask } from './inspect.js';

/** The verbs and what they ask for. */
const ACTIONS: Record<string, RequestAction> = { cancel: 'cancel', pause: 'pause', 'resume-task': 'resume', retry: 'retry' };

function actor(): string {
  return `user:${process.env.USER ?? process.env.LOGNAME ?? 'unknown'}`;
}

async function waitForOwner(store: Store, taskId: string, before: Task, timeoutMs: number): Promise<Task> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const pending = await store.pendingRequests();
    if (!pending.some((r) => r.taskId === taskId)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return (await store.getTask(taskId)) ?? before;
}

/** `smith cancel|pause|resume-task|retry ID`. */
export async function controlCommand(ctx: Context, verb: string, id: string): Promise<number> {
  const action = ACTIONS[verb];
  if (!action) throw new SmithError('INVALID_ARGUMENT', `unknown verb ${verb}`);
  const store = await openHomeStore(ctx.home, { synchronous: ctx.config.store.synchronous });
  try {
    const task = await findOneTask(store, id);
    let after: Task;
    let via: string;
    const owner = await ownerIsAlive(store);
    if (owner) {
      await store.commit([{ op: 'request', taskId: task.id, action, actor: actor() }]);
      after = await waitForOwner(store, task.id, task, 10_000);
      via = `asked the running smith (pid ${owner.pid})`;
    } else {
      const ownership = await Ownership.acquire(store, ctx.home, () => undefined);
      const engine = new Engine({
        store,
        runtimes: [new ProcessRuntime(), new FunctionRuntime()],
        agents: [],
        home: ctx.home,
        owner: ownership.owner,
      });
      try {
        if (action === 'cancel') after = await engine.cancel(task.id, actor());
        else if (action === 'pause') after = await engine.pause(task.id, actor());
        else if (action === 'resume') after = await engine.resumeTask(task.id, actor());
        else after = await engine.retry(task.id, actor());
        await engine.close();
      } finally {
        await ownership.release();
      }
      via = 'no smith process owns this home; recorded it directly';
      if (action === 'retry' || action === 'resume') via += '. Run "smith resume" to run it';
    }
    if (ctx.json) {
      process.stdout.write(JSON.stringify({ id: after.id, key: after.key, state: after.state, before: task.state }) + '\n');
    } else {
      process.stdout.write(`task ${after.id} (${after.key}): ${task.state} -> ${after.state} (${via})\n`);
    }
    return after.state === task.state && action !== 'retry' ? EXIT.failed : EXIT.ok;
  } finally {
    await store.close();
  }
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
  if (ctx.json) process.stdout.write(JSON.stringify({ config: configPath, home: ctx.home }) + '\n');
  else {
    process.stdout.write(`initialized:\n  ${wrote.join('\n  ')}\n`);
    if (wrote.length === 1) process.stdout.write(`  ${configPath} already exists; left as it was\n`);
    process.stdout.write('next: smith run WORKFLOW.yaml, or smith run --agent sh "echo hello"\n');
  }
  return EXIT.ok;
}
