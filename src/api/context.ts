/**
 * What the routes share: the store, the engine this server owns, the home and its config.
 */
import type { SmithConfig } from '../core/schema/index.js';
import type { KeyVerifier } from '../engine/api-keys.js';
import type { Engine } from '../engine/engine.js';
import type { Store } from '../store/store.js';

/** The dependencies of the API's routes. */
export interface ApiContext {
  store: Store;
  /** The engine of the home (this server owns it). */
  engine: Engine;
  /** The home folder (absolute). */
  home: string;
  config: SmithConfig;
  /** The directory tasks run in when a request names none (the server's working directory). */
  workdir: string;
  /** Checks API keys (and forgets a key this server revokes). */
  keys: KeyVerifier;
  /** The home's pepper, for keys created through the API. */
  pepper: Buffer;
}
