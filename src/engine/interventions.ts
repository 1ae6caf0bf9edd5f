/**
 * Interventions that need no engine: they are records, read by the engine when it next acts.
 * (cancel, pause, resume and retry change a running engine's state: see `Engine` and requests.)
 */
import { SmithError } from '../core/errors.js';
import type { Task } from '../core/types.js';
import type { Store } from '../store/store.js';

/** Longest guidance text, in characters. */
export const MAX_GUIDANCE_CHARS = 16_384;

/**
 * `smith guide ID "text"`: record guidance for a task's next attempt. It is appended to the next
 * attempt's input (`TaskInput.guidance`; model-backed runtimes add it to the prompt), and is one
 * audit record (`task.guided`) naming who gave it. Works from any process, whether or not an engine
 * owns the home: the engine reads a task's guidance from the store when it starts an attempt.
 *
 * @param store - the home's store
 * @param task - the task (as found by id, prefix or key)
 * @param text - the guidance (1 .. 16,384 characters)
 * @param actor - who gives it (`user:alice`)
 * @param tellOwner - also write a `guide` request, for a smith process that owns the home
 * @throws SmithError `INVALID_ARGUMENT` for empty or oversized text; `INVALID_TRANSITION` for a
 *   completed task (it never runs again, so guidance would never be read)
 */
export async function guideTask(
  store: Store,
  task: Task,
  text: string,
  actor: string,
  tellOwner = false,
): Promise<void> {
  const clean = text.trim();
  if (clean === '')
    throw new SmithError('INVALID_ARGUMENT', 'guidance text is empty; say what the agent should do');
  if (clean.length > MAX_GUIDANCE_CHARS) {
    throw new SmithError(
      'INVALID_ARGUMENT',
      `guidance is ${clean.length} characters; at most ${MAX_GUIDANCE_CHARS} (put long instructions in a file the prompt names)`,
    );
  }
  if (task.state === 'completed') {
    throw new SmithError(
      'INVALID_TRANSITION',
      `task ${task.id} (${task.key}) completed; it never runs again, so guidance would never be read`,
      { context: { task: task.id, state: task.state } },
    );
  }
  await store.commit([
    { op: 'event', taskId: task.id, attemptId: null, type: 'guidance', data: { from: actor, text: clean } },
    {
      op: 'audit',
      actor,
      action: 'task.guided',
      subject: task.id,
      data: { text: clean, state: task.state, next_attempt: task.attempts + 1 },
    },
    // a running owner learns of it, so the task's first attempt reads it too
    ...(tellOwner ? [{ op: 'request' as const, taskId: task.id, action: 'guide' as const, actor }] : []),
  ]);
}
