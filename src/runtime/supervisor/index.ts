/** Supervision trees with Erlang/OTP semantics; see supervisor.ts. */
export { Supervisor } from './supervisor.js';
export type {
  Child,
  ChildInfo,
  ChildSpec,
  ChildState,
  ExitReason,
  RestartType,
  Strategy,
  SupervisorChildSpecOptions,
  SupervisorEventMap,
  SupervisorListener,
  SupervisorOptions,
  SupervisorState,
} from './supervisor.js';
