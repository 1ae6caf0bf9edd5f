/**
 * The engine's own periodic services (lease heartbeat, request server, …) as supervised children:
 * a service whose tick throws crashes, and its supervisor restarts it with backoff (OTP semantics,
 * src/runtime/supervisor).
 */
import type { ChildSpec, ExitReason, RestartType } from '../runtime/supervisor/index.js';

/**
 * A child spec that runs `tick` every `intervalMs` (never two at once). A tick that throws ends the
 * child with that error; `stop()` ends it with `shutdown`.
 * @param id - child id, e.g. `lease-heartbeat`
 * @param intervalMs - ms between the end of one tick and the start of the next
 * @param tick - the work
 * @param restart - restart type, default `permanent`
 */
export function intervalService(
  id: string,
  intervalMs: number,
  tick: () => Promise<void>,
  restart: RestartType = 'permanent',
): ChildSpec {
  return {
    id,
    restart,
    shutdownMs: 5000,
    start: () => {
      let timer: NodeJS.Timeout | undefined;
      let stopped = false;
      let running: Promise<void> = Promise.resolve();
      let finish: (r: ExitReason) => void = () => undefined;
      const done = new Promise<ExitReason>((r) => (finish = r));
      const schedule = (): void => {
        if (stopped) return;
        timer = setTimeout(() => {
          running = tick().then(schedule, (error: unknown) => {
            stopped = true;
            finish({ kind: 'error', error });
          });
        }, intervalMs);
        timer.unref();
      };
      schedule();
      return Promise.resolve({
        done,
        stop: async () => {
          stopped = true;
          if (timer) clearTimeout(timer);
          await running.catch(() => undefined);
          finish({ kind: 'shutdown' });
        },
      });
    },
  };
}
