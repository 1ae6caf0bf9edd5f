/**
 * A home: the folder that holds a store (`.smith/` by default) and the rules for sharing it between
 * processes (DESIGN.md, "Several processes, one home"). One process at a time owns the engine of a
 * home through a lease in the store (pid, host, heartbeat); taking the lease runs recovery.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { StoreError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { commandJudge, defaultJudges, llmJudge, loadPolicy } from '../council/index.js';
import type { JudgeConfig } from '../core/schema/index.js';
import { Checkpointer, loadSigningKey, PRIVATE_KEY_FILE, type SigningKey } from '../provenance/index.js';
import { Governor } from './governance.js';
import { isAlive } from '../runtime/process/index.js';
import { openSqliteStore } from '../store/sqlite/sqlite-store.js';
import type { Lease, Store } from '../store/store.js';
import { Supervisor } from '../runtime/supervisor/index.js';
import type { Engine } from './engine.js';
import { intervalService } from './services.js';
import { recover, type RecoveryReport } from './recovery.js';

/** Default lease time-to-live: 15 s; renewed every 5 s. */
export const LEASE_TTL_MS = 15_000;

/**
 * The home folder: `explicit` (a `--home` flag) if given, else SMITH_HOME, else `<cwd>/.smith`.
 * @returns an absolute path
 */
export function resolveHome(
  cwd: string,
  explicit?: string,
  env: Record<string, string | undefined> = process.env,
): string {
  if (explicit) return resolve(cwd, explicit);
  if (env.SMITH_HOME) return resolve(cwd, env.SMITH_HOME);
  return resolve(cwd, '.smith');
}

/** The store file of a home. */
export function storeFile(home: string): string {
  return join(home, 'smith.db');
}

/**
 * Open a home's store.
 * @param options.readonly - for read-only commands: never creates or migrates anything
 * @throws StoreError STORE_NOT_WRITABLE, STORE_LOCKED, STORE_FAILED; for readonly, STORE_FAILED
 *   when nothing has run in this home yet
 */
export async function openHomeStore(
  home: string,
  options: { synchronous?: 'FULL' | 'NORMAL'; readonly?: boolean } = {},
): Promise<Store> {
  const file = storeFile(home);
  if (options.readonly && !existsSync(file)) {
    throw new StoreError(
      'STORE_FAILED',
      `no store at ${file}: nothing has run in this home yet. Run "smith run WORKFLOW.yaml" (or "smith demo") first, or point --home at another home`,
      { context: { file } },
    );
  }
  return openSqliteStore(file, options);
}

/** True when the lease's holder is a process on this host that is gone. */
export function holderIsGone(lease: Lease): boolean {
  return lease.host === hostname() && !isAlive(lease.pid);
}

/** True when some live process owns the engine of this home now. */
export async function ownerIsAlive(store: Store): Promise<Lease | undefined> {
  const lease = await store.getLease();
  if (!lease || lease.expiresAt < Date.now() || holderIsGone(lease)) return undefined;
  return lease;
}

/**
 * The engine lease of a home, held by this process. Its heartbeat runs as a supervised service
 * (see {@link engineServices}).
 */
export class Ownership {
  readonly owner: string;
  /** What recovery found when the lease was taken. */
  readonly recovery: RecoveryReport;
  private readonly store: Store;
  private readonly ttlMs: number;
  private readonly onLost: (err: Error) => void;
  private released = false;

  private constructor(
    store: Store,
    owner: string,
    recovery: RecoveryReport,
    ttlMs: number,
    onLost: (err: Error) => void,
  ) {
    this.store = store;
    this.owner = owner;
    this.recovery = recovery;
    this.ttlMs = ttlMs;
    this.onLost = onLost;
  }

  /**
   * Take the engine lease of `home` and recover what an earlier owner left.
   * @param onLost - called if the lease is taken by another process (this one must stop)
   * @param ttlMs - lease time-to-live (default {@link LEASE_TTL_MS}); renew every third of it
   * @throws SmithError LEASE_HELD when a live process owns it
   */
  static async acquire(
    store: Store,
    home: string,
    onLost: (err: Error) => void,
    ttlMs: number = LEASE_TTL_MS,
  ): Promise<Ownership> {
    const owner = newId('owner');
    await store.acquireLease(owner, ttlMs, holderIsGone);
    const report = await recover(store, { owner, home });
    return new Ownership(store, owner, report, ttlMs, onLost);
  }

  /** ms between heartbeats. */
  get heartbeatMs(): number {
    return Math.max(100, Math.floor(this.ttlMs / 3));
  }

  /**
   * Renew the lease once. A lease taken by another process calls `onLost`; a store error throws
   * (the service crashes and its supervisor retries).
   */
  async heartbeat(): Promise<void> {
    if (this.released) return;
    const ok = await this.store.renewLease(this.owner, this.ttlMs);
    if (!ok && !this.released)
      this.onLost(new Error('another smith process took over the engine lease of this home'));
  }

  /** Give the lease up (after the engine closed). Safe to call twice. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.store.releaseLease(this.owner);
  }
}

function requestReason(data: unknown): string {
  const reason = (data as { reason?: unknown } | null)?.reason;
  return typeof reason === 'string' ? reason : '';
}

/**
 * Serve, once, the requests other processes wrote to the store (cancel, pause, resume, retry).
 * @throws when the store cannot be read (the service crashes and is restarted)
 */
export async function serveRequestsOnce(store: Store, engine: Engine): Promise<void> {
  for (const r of await store.pendingRequests()) {
    let result = 'ok';
    try {
      if (r.action === 'cancel') await engine.cancel(r.taskId, r.actor);
      else if (r.action === 'pause') await engine.pause(r.taskId, r.actor);
      else if (r.action === 'resume') await engine.resumeTask(r.taskId, r.actor);
      else if (r.action === 'retry') await engine.retry(r.taskId, r.actor);
      // another process recorded a workflow and hands it to this owner (its id is in taskId)
      else if (r.action === 'adopt') await engine.resumeWorkflow(r.taskId, r.actor);
      else if (r.action === 'approve') await engine.approve(r.taskId, r.actor);
      else if (r.action === 'guide') engine.noteGuidance(r.taskId);
      else if (r.action === 'reject') await engine.reject(r.taskId, r.actor, requestReason(r.data));
      else if (r.action === 'override') {
        const verdict = (r.data as { verdict?: string } | null)?.verdict === 'reject' ? 'reject' : 'approve';
        await engine.override(r.taskId, verdict, r.actor, requestReason(r.data));
      } else result = `unknown request ${r.action}`;
    } catch (err) {
      result = `error: ${(err as Error).message}`;
    }
    await store.commit([{ op: 'requestDone', id: r.id, result }]);
  }
}

/** ms between checks whether a checkpoint of the audit chain is due. */
const CHECKPOINT_POLL_MS = 1000;

/** The folder of a home's signing key pair (`smith init` creates it). */
export function keysDir(home: string): string {
  return join(home, 'keys');
}

/**
 * A checkpointer for the home's audit chain when the home has a signing key (`<home>/keys`), else
 * undefined (a home made before keys existed, or whose key was moved away, runs unsigned).
 *
 * @param store - the home's store
 * @param home - the home folder
 * @param every - audit records between checkpoints (default 1000)
 * @throws ProvenanceError when the key exists but is unreadable, invalid or readable by others
 */
export async function openCheckpointer(
  store: Store,
  home: string,
  every?: number,
): Promise<Checkpointer | undefined> {
  const key = await loadHomeKey(home);
  if (!key) return undefined;
  return new Checkpointer({ store, key, ...(every !== undefined ? { every } : {}) });
}

/**
 * The home's signing key (`<home>/keys/private.jwk`), or undefined when the home has none.
 * @throws ProvenanceError when the key exists but is unreadable, invalid or readable by others
 */
export async function loadHomeKey(home: string): Promise<SigningKey | undefined> {
  const dir = keysDir(home);
  if (!existsSync(join(dir, PRIVATE_KEY_FILE))) return undefined;
  return loadSigningKey(dir);
}

/**
 * The governor of a home: worktrees under `<home>/worktrees`, the policy file and command judges
 * of the config (paths relative to the config file's directory), the four built-in judges.
 *
 * @param home - the home folder
 * @param council - `council:` of `smith.yaml`
 * @param baseDir - the directory relative paths of the config are resolved against
 * @param worktreesDir - `worktrees.dir` of `smith.yaml` (default `<home>/worktrees`)
 * @throws ConfigError when the policy file is missing or invalid (naming file, line and field)
 */
export async function makeGovernor(
  home: string,
  council: { policy?: string; judges: JudgeConfig[] },
  baseDir: string,
  worktreesDir?: string,
): Promise<Governor> {
  const policy =
    council.policy !== undefined ? await loadPolicy(resolve(baseDir, council.policy)) : undefined;
  const judges = [
    ...defaultJudges(),
    ...council.judges.map((j) =>
      j.model !== undefined
        ? llmJudge({
            name: j.name,
            model: {
              model: j.model,
              ...(j.provider !== undefined ? { provider: j.provider } : {}),
              ...(j.baseUrl !== undefined ? { baseUrl: j.baseUrl } : {}),
              ...(j.apiKeyEnv !== undefined ? { apiKeyEnv: j.apiKeyEnv } : {}),
            },
          })
        : commandJudge({
            name: j.name,
            command: j.command ?? [],
            ...(j.timeoutMs !== undefined ? { timeoutMs: j.timeoutMs } : {}),
          }),
    ),
  ];
  return new Governor({
    worktreesDir: worktreesDir !== undefined ? resolve(baseDir, worktreesDir) : join(home, 'worktrees'),
    judges,
    ...(policy ? { policy } : {}),
  });
}

/**
 * The engine's own services under one supervisor (OTP one_for_one, intensity 5 in 30 s): the lease
 * heartbeat, the request server and (with a checkpointer) the checkpoints of the audit chain. Past the intensity the supervisor escalates: `onFail` is called
 * and the caller must stop the engine.
 * @returns the started supervisor (stop it before closing the store)
 */
export async function startEngineServices(
  store: Store,
  ownership: Ownership,
  engine: Engine,
  onFail: (err: unknown) => void,
  requestIntervalMs = 200,
  checkpointer?: Checkpointer,
): Promise<Supervisor> {
  const children = [
    intervalService('lease-heartbeat', ownership.heartbeatMs, () => ownership.heartbeat()),
    intervalService('requests', requestIntervalMs, () => serveRequestsOnce(store, engine)),
  ];
  if (checkpointer) {
    children.push(
      intervalService('checkpoints', CHECKPOINT_POLL_MS, async () => {
        await checkpointer.maybeCheckpoint();
      }),
    );
  }
  const sup = new Supervisor(children, {
    name: 'smith-services',
    strategy: 'one_for_one',
    intensity: 5,
    periodMs: 30_000,
  });
  await sup.start();
  void sup.done.then((r) => {
    if (r.kind === 'error') onFail(r.error);
  });
  return sup;
}
