/**
 * The `http` runtime: agents that are remote HTTP workers (see `docs/runtimes/http.md`).
 */
export {
  HttpRuntime,
  HTTP_DEFAULT_BREAKER_THRESHOLD,
  HTTP_DEFAULT_HALF_OPEN_AFTER_MS,
  HTTP_DEFAULT_INITIAL_DELAY_MS,
  HTTP_DEFAULT_MAX_DELAY_MS,
  HTTP_DEFAULT_RETRIES,
  HTTP_MAX_RESPONSE_BYTES,
  HTTP_RETRY_STATUSES,
  toRuntimeEvent,
} from './http-runtime.js';
export type { HttpRuntimeOptions } from './http-runtime.js';
