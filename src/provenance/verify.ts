/**
 * Offline verification of the audit chain: every record's hash is recomputed from its canonical
 * JSON (RFC 8785) and must equal the stored hash, and each `prev_hash` must equal the previous
 * record's hash, with `seq` increasing by one from 1.
 *
 * With a public key it also checks the signatures: every checkpoint record (its JWS verifies with
 * the key, its payload is what its data says, and that head is the chain's real head at that
 * point) and every verdict record (`task.verdict` / `council.verdict`: `data.verdict_jws` verifies
 * and signs exactly the canonical JSON of `data.verdict`). The first failure is named by seq.
 */
import { auditHash, canonicalJson, GENESIS_HASH } from '../core/canonical-json.js';
import type { AuditRecord, Json } from '../core/types.js';
import type { Store } from '../store/store.js';
import { CHECKPOINT_ACTION } from './checkpoint.js';
import type { PublicKey } from './keys.js';
import { CHECKPOINT_JWS_TYPE, VERDICT_ACTIONS, VERDICT_JWS_TYPE, verifyJws } from './sign.js';

/** The outcome of {@link verifyAuditChain} and `verifyExport`. */
export interface ChainVerification {
  ok: boolean;
  /** Records checked. */
  checked: number;
  /** The head after the last good record. */
  head: { seq: number; hash: string };
  /** The first broken record and why, when not ok. */
  broken?: Broken;
  /** Checkpoints whose signature and head were verified (0 without a public key). */
  checkpoints: number;
  /** Verdict signatures verified (0 without a public key). */
  signatures: number;
  /**
   * The last verified checkpoint: records after `headSeq` are not covered by a signature yet
   * (whoever holds the database could drop them unnoticed).
   */
  lastCheckpoint?: { seq: number; headSeq: number; time: number; kid: string };
}

/** Options of {@link verifyAuditChain}. */
export interface VerifyOptions {
  /**
   * The public key (or keys, after a rotation) that signed the chain. When given, checkpoints and
   * verdict signatures are verified too, and a verdict record without a signature fails.
   */
  publicKey?: PublicKey | readonly PublicKey[];
  /** Records read per page (default 5000). */
  pageSize?: number;
}

/**
 * Check one record against its predecessor.
 * @returns a reason when broken, else undefined
 */
export function checkRecord(r: AuditRecord, expectedSeq: number, prevHash: string): string | undefined {
  if (r.seq !== expectedSeq)
    return `expected seq ${expectedSeq}, found ${r.seq} (a record is missing or reordered)`;
  if (r.prevHash !== prevHash)
    return `prev_hash ${r.prevHash.slice(0, 12)}… does not match the previous record's hash ${prevHash.slice(0, 12)}…`;
  const h = auditHash({
    seq: r.seq,
    time: r.time,
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    data: r.data,
    prev_hash: r.prevHash,
  });
  if (h !== r.hash)
    return `hash mismatch: the record was changed after it was written (stored ${r.hash.slice(0, 12)}…, computed ${h.slice(0, 12)}…)`;
  return undefined;
}

/** A broken record: its seq and why. */
export interface Broken {
  seq: number;
  reason: string;
}

/** Hashes of this many recent records are kept to check a checkpoint's head without a lookup. */
const RECENT = 4096;

/**
 * Checks records one at a time, in seq order: the hash chain and, with keys, the signatures.
 * Shared by {@link verifyAuditChain} (from a store) and `verifyExport` (from JSONL lines).
 */
export class ChainChecker {
  private expected = 1;
  private prev = GENESIS_HASH;
  private checked = 0;
  private checkpoints = 0;
  private signatures = 0;
  private lastCheckpoint: ChainVerification['lastCheckpoint'];
  private readonly recent = new Map<number, string>();
  private readonly keys: readonly PublicKey[] | undefined;

  /**
   * @param publicKey - the key(s) to verify signatures with; none: the hash chain only
   * @param lookup - the hash of an older record, for a checkpoint whose head is more than 4096
   *   records back (undefined: such a checkpoint fails as unverifiable)
   */
  constructor(
    publicKey?: PublicKey | readonly PublicKey[],
    private readonly lookup?: (seq: number) => Promise<string | undefined>,
  ) {
    this.keys =
      publicKey === undefined ? undefined : Array.isArray(publicKey) ? publicKey : [publicKey as PublicKey];
  }

  /** The seq the next record must have. */
  get nextSeq(): number {
    return this.expected;
  }

  /**
   * Check the next record. Synchronous unless a signature must be verified (keeps long chains fast).
   * @returns the failure (seq and reason), or undefined when the record is good
   */
  push(r: AuditRecord): Broken | undefined | Promise<Broken | undefined> {
    if (r.seq > this.expected) {
      const missing =
        r.seq - 1 === this.expected
          ? `record ${this.expected} is`
          : `records ${this.expected}..${r.seq - 1} are`;
      return {
        seq: this.expected,
        reason: `${missing} missing (the next one is ${r.seq}): deleted from the chain`,
      };
    }
    const reason = checkRecord(r, this.expected, this.prev);
    if (reason) return { seq: r.seq, reason };
    if (this.keys) {
      const pending =
        r.action === CHECKPOINT_ACTION
          ? this.checkCheckpoint(r, this.keys)
          : VERDICT_ACTIONS.includes(r.action)
            ? this.checkVerdict(r, this.keys)
            : undefined;
      if (pending)
        return pending.then((bad) => {
          if (bad) return { seq: r.seq, reason: bad };
          this.accept(r);
          return undefined;
        });
    }
    this.accept(r);
    return undefined;
  }

  private accept(r: AuditRecord): void {
    this.prev = r.hash;
    this.recent.set(r.seq, r.hash);
    this.recent.delete(r.seq - RECENT);
    this.expected++;
    this.checked++;
  }

  /**
   * The verification so far.
   * @param broken - the failure that stopped it, if any
   */
  result(broken?: Broken): ChainVerification {
    const v: ChainVerification = {
      ok: broken === undefined,
      checked: this.checked,
      head: { seq: this.expected - 1, hash: this.prev },
      checkpoints: this.checkpoints,
      signatures: this.signatures,
    };
    if (broken) v.broken = broken;
    if (this.lastCheckpoint) v.lastCheckpoint = this.lastCheckpoint;
    return v;
  }

  /** The records checked so far. */
  get count(): number {
    return this.checked;
  }

  private async hashAt(seq: number): Promise<string | undefined> {
    if (seq === 0) return GENESIS_HASH;
    return this.recent.get(seq) ?? (await this.lookup?.(seq));
  }

  private async checkCheckpoint(r: AuditRecord, keys: readonly PublicKey[]): Promise<string | undefined> {
    const where = `checkpoint at seq ${r.seq}`;
    const d = r.data;
    if (
      !isObject(d) ||
      typeof d.jws !== 'string' ||
      typeof d.kid !== 'string' ||
      typeof d.size !== 'number' ||
      typeof d.head_seq !== 'number' ||
      typeof d.head_hash !== 'string' ||
      typeof d.time !== 'number'
    )
      return `${where}: its data is not {size, head_seq, head_hash, time, kid, jws}`;
    let signed: { canonical: string; kid: string };
    try {
      signed = await verifyJws(d.jws, keys, { typ: CHECKPOINT_JWS_TYPE });
    } catch (err) {
      return `${where}: ${(err as Error).message}`;
    }
    if (signed.kid !== d.kid) return `${where}: its data names key ${d.kid}, but key ${signed.kid} signed it`;
    const claimed = canonicalJson({
      size: d.size,
      head_seq: d.head_seq,
      head_hash: d.head_hash,
      time: d.time,
    });
    if (claimed !== signed.canonical)
      return `${where}: its data ${claimed} differs from the signed head ${signed.canonical}: the checkpoint was edited`;
    if (d.head_seq >= r.seq || d.head_seq < 0 || !Number.isInteger(d.head_seq))
      return `${where}: it signs head ${d.head_seq}, which is not a record before it`;
    if (d.size !== d.head_seq) return `${where}: size ${d.size} is not head_seq ${d.head_seq}`;
    const real = await this.hashAt(d.head_seq);
    if (real === undefined)
      return `${where}: it signs record ${d.head_seq}, whose hash cannot be looked up (more than ${RECENT} records back)`;
    if (real !== d.head_hash)
      return `${where}: signed head ${d.head_seq} has hash ${d.head_hash.slice(0, 12)}…, but the chain's record ${d.head_seq} has hash ${real.slice(0, 12)}…: the chain up to ${d.head_seq} was rewritten after it was signed`;
    this.checkpoints++;
    this.lastCheckpoint = { seq: r.seq, headSeq: d.head_seq, time: d.time, kid: signed.kid };
    return undefined;
  }

  private async checkVerdict(r: AuditRecord, keys: readonly PublicKey[]): Promise<string | undefined> {
    const where = `verdict at seq ${r.seq}`;
    const d = r.data;
    if (!isObject(d) || d.verdict === undefined) return `${where}: its data has no verdict`;
    if (typeof d.verdict_jws !== 'string') return `${where}: the verdict is not signed (no data.verdict_jws)`;
    let signed: { canonical: string };
    try {
      signed = await verifyJws(d.verdict_jws, keys, { typ: VERDICT_JWS_TYPE });
    } catch (err) {
      return `${where}: ${(err as Error).message}`;
    }
    if (canonicalJson(d.verdict) !== signed.canonical)
      return `${where}: the recorded verdict differs from the signed one: the verdict was edited`;
    this.signatures++;
    return undefined;
  }
}

function isObject(v: Json): v is { [key: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Verify the whole chain, reading it in pages.
 * @param store - the store to read
 * @param onProgress - called after every page with the records checked so far
 * @param options - `publicKey`: also verify checkpoints and verdict signatures; `pageSize`
 * @returns ok, or the first broken record (seq and reason, e.g. `checkpoint at seq 1201: signature
 *   does not verify with key <kid>`), with counts of records, checkpoints and signatures
 */
export async function verifyAuditChain(
  store: Pick<Store, 'auditRecords'>,
  onProgress?: (checked: number) => void,
  options: VerifyOptions = {},
): Promise<ChainVerification> {
  const checker = new ChainChecker(
    options.publicKey,
    async (seq) => (await store.auditRecords(seq, 1))[0]?.hash,
  );
  const page = options.pageSize ?? 5000;
  for (;;) {
    const records = await store.auditRecords(checker.nextSeq, page);
    for (const r of records) {
      let broken = checker.push(r);
      if (broken instanceof Promise) broken = await broken;
      if (broken) return checker.result(broken);
    }
    onProgress?.(checker.count);
    if (records.length < page) break;
  }
  return checker.result();
}
