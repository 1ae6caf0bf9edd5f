/**
 * A session: this process owns the engine of a home. Opening one takes the home's engine lease
 * (recovering what a dead owner left), loads the signing key, the council and the agents, starts
 * the engine and its supervised services. `smith run`, `smith resume`, `smith demo` and
 * `smith serve` all run their work inside one.
 */
import { dirname } from 'node:path';
import type { SmithConfig } from '../core/schema/index.js';
import type { AgentSpec, WorkflowSpec } from '../core/types.js';
import { builtinRuntimes } from '../runtime/builtin.js';
import type { Store } from '../store/store.js';
import { Engine, type EngineOptions } from './engine.js';
import type { Governor } from './governance.js';
import {
  loadHomeKey,
  makeGovernor,
  openCheckpointer,
  openHomeStore,
  Ownership,
  startEngineServices,
} from './home.js';

/** Where a session's home and config come from. */
export interface HomeSettings {
  /** The working directory (relative config paths resolve here when there is no config file). */
  cwd: string;
  /** The home folder (absolute). */
  home: string;
  config: SmithConfig;
  /** The config file read, or null for the defaults. */
  configFile: string | null;
}

/** An open session. */
export interface Session {
  store: Store;
  engine: Engine;
  ownership: Ownership;
  /** Stop the services and sign the chain's tail (after the engine closed). */
  stopServices: () => Promise<void>;
  /** Set by a signal handler: the session was interrupted. */
  interrupted: boolean;
}

/**
 * Open the home, take the engine lease (recovering what a dead owner left), start an engine.
 * @param agents - the agents the engine may run (see {@link mergedAgents})
 * @param concurrency - the global limit of attempts (default `engine.concurrency` of the config)
 * @param say - where notices go (default stderr, prefixed `smith: `)
 * @throws SmithError LEASE_HELD when a live process owns the home; ConfigError for a bad policy
 *   file; ProvenanceError for an unsafe key; StoreError when the store cannot be opened
 */
export async function openSession(
  ctx: HomeSettings,
  agents: AgentSpec[],
  concurrency?: number,
  say: (line: string) => void = (line) => process.stderr.write(`smith: ${line}\n`),
): Promise<Session> {
  const store = await openHomeStore(ctx.home, { synchronous: ctx.config.store.synchronous });
  const late: { engine?: Engine } = {};
  let ownership: Ownership;
  let checkpointer: Awaited<ReturnType<typeof openCheckpointer>>;
  let signingKey: Awaited<ReturnType<typeof loadHomeKey>>;
  let governor: Governor;
  try {
    // a key readable by others, or a bad policy file, is refused before anything runs
    checkpointer = await openCheckpointer(store, ctx.home);
    signingKey = await loadHomeKey(ctx.home);
    governor = await makeGovernor(
      ctx.home,
      ctx.config.council,
      ctx.configFile ? dirname(ctx.configFile) : ctx.cwd,
      ctx.config.worktrees.dir,
    );
    ownership = await Ownership.acquire(store, ctx.home, (err) => {
      say(`${err.message}; stopping`);
      void late.engine?.close({ force: true });
    });
  } catch (err) {
    await store.close();
    throw err;
  }
  const r = ownership.recovery;
  if (r.lostAttempts > 0 || r.killed > 0) {
    say(
      `recovered this home after an unclean stop: ${r.lostAttempts} attempt(s) lost and requeued, ${r.killed} leftover process(es) ended`,
    );
  }
  const engine = new Engine({
    store,
    runtimes: builtinRuntimes(),
    agents,
    home: ctx.home,
    owner: ownership.owner,
    concurrency: concurrency ?? ctx.config.engine.concurrency,
    ...engineLimits(ctx.config),
    governor,
    ...(signingKey ? { signingKey } : {}),
  });
  late.engine = engine;
  const services = await startEngineServices(
    store,
    ownership,
    engine,
    (err) => {
      say(`the engine's services failed (${(err as Error).message}); stopping`);
      void engine.close({ force: true });
    },
    undefined,
    checkpointer,
  );
  return {
    store,
    engine,
    ownership,
    stopServices: async () => {
      await services.stop();
      // the chain's tail is signed at shutdown
      await checkpointer?.checkpointNow();
    },
    interrupted: false,
  };
}

/** Budget, prices and per-runtime caps from `smith.yaml`, as engine options. */
export function engineLimits(
  config: SmithConfig,
): Pick<EngineOptions, 'budget' | 'prices' | 'runtimeConcurrency'> {
  const caps: Record<string, number> = {};
  for (const [kind, r] of Object.entries(config.runtimes))
    if (r.concurrency !== undefined) caps[kind] = r.concurrency;
  return {
    ...(config.budget !== undefined ? { budget: config.budget } : {}),
    prices: config.prices,
    runtimeConcurrency: caps,
  };
}

/** Close the engine, stop the services, give the lease up, close the store. */
export async function closeSession(s: Session): Promise<void> {
  await s.engine.close();
  await s.stopServices();
  await s.ownership.release().catch(() => undefined);
  await s.store.close();
}

/** Agents of the config merged with those of a workflow (the workflow's win). */
export function mergedAgents(config: SmithConfig, spec?: WorkflowSpec): AgentSpec[] {
  const all = new Map<string, AgentSpec>();
  for (const a of Object.values(config.agents)) all.set(a.name, a);
  for (const a of Object.values(spec?.agents ?? {})) all.set(a.name, a);
  return [...all.values()];
}
