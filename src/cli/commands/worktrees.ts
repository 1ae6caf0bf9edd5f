/**
 * `smith worktrees [prune]`: the task worktrees of this home, and the safe removal of those whose
 * task has ended (a worktree holding unsaved work is snapshotted first; one with unmerged commits
 * keeps its branch; any git failure keeps everything).
 */
import { dirname } from 'node:path';
import { isTerminalTaskState } from '../../core/states.js';
import { makeGovernor, openHomeStore } from '../../engine/home.js';
import { EXIT, type Context } from '../context.js';
import { table } from '../output.js';

async function manager(ctx: Context) {
  const governor = await makeGovernor(
    ctx.home,
    ctx.config.council,
    ctx.configFile ? dirname(ctx.configFile) : ctx.cwd,
    ctx.config.worktrees.dir,
  );
  return governor.worktrees;
}

/** `smith worktrees`: list them with their task, branch and lease. */
export async function worktreesCommand(ctx: Context): Promise<number> {
  const list = await (await manager(ctx)).list();
  if (ctx.json) {
    process.stdout.write(JSON.stringify(list) + '\n');
    return EXIT.ok;
  }
  if (list.length === 0) {
    process.stdout.write('no worktrees\n');
    return EXIT.ok;
  }
  const rows = [['NAME', 'TASK', 'BRANCH', 'LEASED', 'PATH']];
  for (const w of list) {
    rows.push([
      w.name,
      w.taskId ?? '-',
      w.branch ?? '-',
      w.leased ? 'yes' : 'no',
      w.exists ? w.path : '(gone)',
    ]);
  }
  process.stdout.write(table(rows) + '\n');
  return EXIT.ok;
}

/** `smith worktrees prune`: remove, safely, the worktrees of tasks that have ended. */
export async function worktreesPruneCommand(ctx: Context): Promise<number> {
  const store = await openHomeStore(ctx.home, { readonly: true });
  try {
    const results = await (
      await manager(ctx)
    ).prune({
      isDone: async (info) => {
        const t = info.taskId ? await store.getTask(info.taskId) : undefined;
        return t !== undefined && isTerminalTaskState(t.state);
      },
    });
    if (ctx.json) process.stdout.write(JSON.stringify(results) + '\n');
    else if (results.length === 0) process.stdout.write('nothing to prune: no worktree of an ended task\n');
    else {
      for (const r of results) {
        const what = r.removed ? 'removed' : `kept (${r.kept ?? 'unknown'})`;
        process.stdout.write(
          `${r.name}: ${what}${r.snapshot ? `; snapshot ${r.snapshot.slice(0, 12)}` : ''}\n`,
        );
      }
    }
    return EXIT.ok;
  } finally {
    await store.close();
  }
}
