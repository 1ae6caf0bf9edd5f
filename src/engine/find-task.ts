/**
 * Finding one task the way a person names it: by its id, an id prefix, or its key. The CLI and
 * the API (`GET /api/v1/tasks?match=`) resolve a name the same way, with the same errors.
 */
import { SmithError, TaskNotFoundError } from '../core/errors.js';
import type { Task } from '../core/types.js';
import type { Store } from '../store/store.js';

/**
 * Find exactly one task by id, id prefix or key. A key that several tasks share (one per run)
 * names the newest of them, as a person usually means the latest run.
 *
 * @param store - the home's store
 * @param idOrKey - a task id, a prefix of one, or a task key
 * @returns the task
 * @throws TaskNotFoundError (`TASK_NOT_FOUND`) when nothing matches
 * @throws SmithError `INVALID_ARGUMENT` when a prefix matches several tasks (the message lists up to
 *   five of them and asks for the full id)
 */
export async function findOneTask(store: Store, idOrKey: string): Promise<Task> {
  const found = await store.findTasks(idOrKey);
  if (found.length === 0) throw new TaskNotFoundError(idOrKey);
  if (found.length > 1 && found.every((t) => t.key === idOrKey)) return found[0]!;
  if (found.length > 1 && !found.some((t) => t.id === idOrKey)) {
    const sample = found
      .slice(0, 5)
      .map((t) => `${t.id} (${t.key}, ${t.state})`)
      .join(', ');
    throw new SmithError(
      'INVALID_ARGUMENT',
      `"${idOrKey}" matches ${found.length} tasks (${sample}${found.length > 5 ? ', …' : ''}); give the full task id`,
    );
  }
  return found.find((t) => t.id === idOrKey) ?? found[0]!;
}
