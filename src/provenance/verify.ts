/**
 * Offline verification of the audit chain: every record's hash is recomputed from its canonical
 * JSON (RFC 8785) and must equal the stored hash, and each `prev_hash` must equal the previous
 * record's hash, with `seq` increasing by one from 1.
 */
import { auditHash, GENESIS_HASH } from '../core/canonical-json.js';
import type { AuditRecord } from '../core/types.js';
import type { Store } from '../store/store.js';

/** The outcome of {@link verifyAuditChain}. */
export interface ChainVerification {
  ok: boolean;
  /** Records checked. */
  checked: number;
  /** The head after the last good record. */
  head: { seq: number; hash: string };
  /** The first broken record and why, when not ok. */
  broken?: { seq: number; reason: string };
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

/**
 * Verify the whole chain, reading it in pages.
 * @param store - the store to read
 * @param onProgress - called after every page with the records checked so far
 */
export async function verifyAuditChain(
  store: Pick<Store, 'auditRecords'>,
  onProgress?: (checked: number) => void,
): Promise<ChainVerification> {
  let expected = 1;
  let prev = GENESIS_HASH;
  let checked = 0;
  const page = 5000;
  for (;;) {
    const records = await store.auditRecords(expected, page);
    for (const r of records) {
      if (r.seq > expected) {
        const missing =
          r.seq - 1 === expected ? `record ${expected} is` : `records ${expected}..${r.seq - 1} are`;
        return {
          ok: false,
          checked,
          head: { seq: expected - 1, hash: prev },
          broken: {
            seq: expected,
            reason: `${missing} missing (the next one is ${r.seq}): deleted from the chain`,
          },
        };
      }
      const reason = checkRecord(r, expected, prev);
      if (reason)
        return {
          ok: false,
          checked,
          head: { seq: expected - 1, hash: prev },
          broken: { seq: r.seq, reason },
        };
      prev = r.hash;
      expected++;
      checked++;
    }
    onProgress?.(checked);
    if (records.length < page) break;
  }
  return { ok: true, checked, head: { seq: expected - 1, hash: prev } };
}
