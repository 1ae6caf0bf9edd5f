/**
 * Signed checkpoints of the audit chain, in the spirit of RFC 9162 §4.10 signed tree heads: every
 * so often the engine signs the chain's head (size, last seq, last hash, time) and records the
 * signature as an audit record of its own. Whoever rewrites the chain before a checkpoint (even
 * recomputing every hash after the change) cannot produce the checkpoint's signature for the new
 * head without the private key.
 *
 * A checkpoint record: action {@link CHECKPOINT_ACTION}, actor `engine`, subject `audit`, data
 * `{size, head_seq, head_hash, time, kid, jws}`; the JWS (typ `smith-checkpoint+jws`) signs the
 * canonical JSON of `{size, head_seq, head_hash, time}` of the chain BEFORE the checkpoint record.
 */
import { GENESIS_HASH } from '../core/canonical-json.js';
import type { Store, Op } from '../store/store.js';
import type { SigningKey } from './keys.js';
import { CHECKPOINT_JWS_TYPE, signJson } from './sign.js';

/** The audit action of a checkpoint record. */
export const CHECKPOINT_ACTION = 'audit.checkpoint';
/** The subject of a checkpoint record. */
export const CHECKPOINT_SUBJECT = 'audit';
/** Default number of records between two checkpoints. */
export const DEFAULT_CHECKPOINT_EVERY = 1000;

/** What a checkpoint signs: the chain's head before the checkpoint record. */
export interface CheckpointPayload {
  [key: string]: number | string;
  /** Records in the chain (equal to `head_seq`: seqs run from 1 without gaps). */
  size: number;
  /** The last record's seq; 0 for an empty chain. */
  head_seq: number;
  /** The last record's hash (hex SHA-256); 64 zeros for an empty chain. */
  head_hash: string;
  /** When it was signed, ms since the epoch. */
  time: number;
}

/** The `data` of a checkpoint record: the payload, the kid and the JWS. */
export interface CheckpointData extends CheckpointPayload {
  /** RFC 7638 thumbprint of the signing key. */
  kid: string;
  /** Compact JWS over the canonical JSON of the {@link CheckpointPayload}. */
  jws: string;
}

/**
 * Sign a chain head and build the op that records it.
 * @param head - the chain's head, from `store.auditHead()` (undefined for an empty chain)
 * @param key - the signing key
 * @param now - the checkpoint's time, ms since the epoch (default `Date.now()`)
 * @returns one `audit` op to pass to `store.commit`
 */
export async function checkpointOps(
  head: { seq: number; hash: string } | undefined,
  key: SigningKey,
  now: number = Date.now(),
): Promise<Op[]> {
  const payload: CheckpointPayload = {
    size: head?.seq ?? 0,
    head_seq: head?.seq ?? 0,
    head_hash: head?.hash ?? GENESIS_HASH,
    time: now,
  };
  const data: CheckpointData = {
    ...payload,
    kid: key.kid,
    jws: await signJson(payload, key, CHECKPOINT_JWS_TYPE),
  };
  return [
    { op: 'audit', actor: 'engine', action: CHECKPOINT_ACTION, subject: CHECKPOINT_SUBJECT, data, time: now },
  ];
}

/** Options of a {@link Checkpointer}. */
export interface CheckpointerOptions {
  store: Pick<Store, 'auditHead' | 'auditRecords' | 'commit'>;
  key: SigningKey;
  /** Records between two checkpoints (default {@link DEFAULT_CHECKPOINT_EVERY}). */
  every?: number;
  /** The clock, ms since the epoch (default `Date.now`). */
  now?: () => number;
}

/**
 * Writes a checkpoint every `every` audit records. Call {@link Checkpointer.maybeCheckpoint} after
 * commits (cheap when none is due) and {@link Checkpointer.checkpointNow} at shutdown, so the
 * chain's tail is signed too. Calls do not overlap: a call during a running one waits for it.
 *
 * @example
 * const cp = new Checkpointer({ store, key: await loadSigningKey(keysDir), every: 1000 });
 * await store.commit(ops);
 * await cp.maybeCheckpoint();
 * // at shutdown
 * await cp.checkpointNow();
 */
export class Checkpointer {
  readonly every: number;
  private readonly store: CheckpointerOptions['store'];
  private readonly key: SigningKey;
  private readonly now: () => number;
  /** Seq of the last checkpoint record, once known (0: none). */
  private last: number | undefined;
  private running: Promise<number | undefined> = Promise.resolve(undefined);

  /**
   * @param options - store, key, `every` (records, default 1000), clock
   * @throws RangeError when `every` is not a positive integer
   */
  constructor(options: CheckpointerOptions) {
    this.every = options.every ?? DEFAULT_CHECKPOINT_EVERY;
    if (!Number.isInteger(this.every) || this.every < 1)
      throw new RangeError(`checkpoint every must be a positive integer of records, got ${this.every}`);
    this.store = options.store;
    this.key = options.key;
    this.now = options.now ?? Date.now;
  }

  /** The seq of the last checkpoint record this checkpointer knows of (0: none), once it has looked. */
  get lastCheckpointSeq(): number | undefined {
    return this.last;
  }

  /**
   * Write a checkpoint when at least `every` records were added since the last one.
   * @returns the checkpoint record's seq, or undefined when none was due
   * @throws StoreError when the commit fails
   */
  maybeCheckpoint(): Promise<number | undefined> {
    return this.serial(false);
  }

  /**
   * Write a checkpoint now when any record was added since the last one (at shutdown).
   * @returns the checkpoint record's seq, or undefined when the chain is empty or already signed to its head
   * @throws StoreError when the commit fails
   */
  checkpointNow(): Promise<number | undefined> {
    return this.serial(true);
  }

  private serial(force: boolean): Promise<number | undefined> {
    const next = this.running.then(
      () => this.run(force),
      () => this.run(force),
    );
    this.running = next;
    return next;
  }

  private async run(force: boolean): Promise<number | undefined> {
    const head = await this.store.auditHead();
    if (!head) return undefined;
    const last = this.last ?? (await this.findLast(head.seq));
    this.last = last;
    const added = head.seq - last;
    if (added <= 0 || (!force && added < this.every)) return undefined;
    const result = await this.store.commit(await checkpointOps(head, this.key, this.now()));
    const seq = result.audit[0]?.seq;
    if (seq !== undefined) this.last = seq;
    return seq;
  }

  /**
   * The last checkpoint among the last `every` records; when there is none there, a seq `every`
   * records back, which makes one due (reading at most `every` records, once).
   */
  private async findLast(headSeq: number): Promise<number> {
    const from = Math.max(1, headSeq - this.every + 1);
    const records = await this.store.auditRecords(from, headSeq - from + 1);
    for (let i = records.length - 1; i >= 0; i--) {
      const r = records[i]!;
      if (r.action === CHECKPOINT_ACTION && r.subject === CHECKPOINT_SUBJECT) return r.seq;
    }
    return from - 1;
  }
}
