/**
 * An attempt that failed before any process was started (a bad agent config, no budget left, a
 * working directory that cannot be made): for runtimes that find out in `start()`.
 */
import type { AttemptHandle, AttemptOutcome, FailureReason } from './types.js';

/**
 * A handle whose `done` is already a failed outcome with `error`; cancel, pause and resume do
 * nothing, and `pid` is null.
 *
 * @param error - why, in words (names the agent and what to do)
 * @param fields - the failure's `reason` code, and `retryable` (default true)
 * @returns the handle
 */
export function failedBeforeStart(
  error: string,
  fields: { reason?: FailureReason; retryable?: boolean } = {},
): AttemptHandle {
  const outcome: AttemptOutcome = {
    status: 'failed',
    exitCode: null,
    signal: null,
    output: '',
    error,
    stdoutBytes: 0,
    stderrBytes: 0,
    droppedBytes: 0,
    stderr: '',
  };
  if (fields.reason !== undefined) outcome.reason = fields.reason;
  if (fields.retryable === false) outcome.retryable = false;
  return {
    pid: null,
    done: Promise.resolve(outcome),
    cancel: () => undefined,
    pause: () => undefined,
    resume: () => undefined,
  };
}
