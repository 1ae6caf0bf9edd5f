/**
 * Export of the audit chain as JSON Lines (one record per line, https://jsonlines.org), and its
 * offline verification without a store: the same hash-chain and signature checks as
 * `verifyAuditChain`, from the lines and the public key alone.
 *
 * A line: `{"seq":…,"time":…,"actor":…,"action":…,"subject":…,"data":…,"prev_hash":…,"hash":…}`,
 * the fields as stored (snake_case), `time` in ms since the epoch.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { AuditRecord, Json } from '../core/types.js';
import type { Store } from '../store/store.js';
import type { PublicKey } from './keys.js';
import { ChainChecker } from './verify.js';
import type { Broken, ChainVerification } from './verify.js';

/** One exported line, parsed. */
export interface ExportedRecord {
  seq: number;
  time: number;
  actor: string;
  action: string;
  subject: string;
  data: Json;
  prev_hash: string;
  hash: string;
}

/** What {@link exportAudit} wrote. */
export interface ExportSummary {
  /** Lines written. */
  records: number;
  /** The last record written (seq 0 and 64 zeros for an empty chain). */
  head: { seq: number; hash: string };
}

/**
 * Write every audit record to `out`, one JSON line each, in seq order. Waits for `drain` when the
 * stream is full; does not end the stream.
 * @param store - the store to read
 * @param out - where to write (a file stream, stdout …)
 * @param options - `pageSize`: records read per page (default 5000)
 * @returns how many records were written and the last one
 */
export async function exportAudit(
  store: Pick<Store, 'auditRecords'>,
  out: Writable,
  options: { pageSize?: number } = {},
): Promise<ExportSummary> {
  const page = options.pageSize ?? 5000;
  let next = 1;
  let records = 0;
  let head = { seq: 0, hash: '0'.repeat(64) };
  for (;;) {
    const batch = await store.auditRecords(next, page);
    let text = '';
    for (const r of batch) {
      text += JSON.stringify(toExported(r)) + '\n';
      head = { seq: r.seq, hash: r.hash };
      next = r.seq + 1;
      records++;
    }
    if (text && !out.write(text)) await once(out, 'drain');
    if (batch.length < page) break;
  }
  return { records, head };
}

/** An audit record in its exported (stored, snake_case) form. */
export function toExported(r: AuditRecord): ExportedRecord {
  return {
    seq: r.seq,
    time: r.time,
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    data: r.data,
    prev_hash: r.prevHash,
    hash: r.hash,
  };
}

/**
 * Verify a JSONL export offline: the hash chain, and with a public key every checkpoint and
 * verdict signature. Blank lines are skipped.
 * @param lines - the export's lines (an array, or an async iterable such as `readline.createInterface`)
 * @param publicKey - the key(s) that signed the chain; none: the hash chain only
 * @param onProgress - called every 5000 records with the records checked so far
 * @returns the same shape as `verifyAuditChain`; a line that is not a record fails naming its line number
 */
export async function verifyExport(
  lines: Iterable<string> | AsyncIterable<string>,
  publicKey?: PublicKey | readonly PublicKey[],
  onProgress?: (checked: number) => void,
): Promise<ChainVerification> {
  // every hash is at hand in the export only as it streams by: a checkpoint signing a head more than
  // 4096 records back (never written by Checkpointer) cannot be checked and fails as such
  const checker = new ChainChecker(publicKey);
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    if (line.trim() === '') continue;
    const parsed = parseLine(line);
    if (typeof parsed === 'string')
      return checker.result({ seq: checker.nextSeq, reason: `line ${lineNo} ${parsed}` });
    let broken: Broken | undefined | Promise<Broken | undefined> = checker.push(parsed);
    if (broken instanceof Promise) broken = await broken;
    if (broken) return checker.result({ ...broken, reason: `${broken.reason} (line ${lineNo})` });
    if (onProgress && checker.count % 5000 === 0) onProgress(checker.count);
  }
  return checker.result();
}

/** A parsed record, or why the line is not one. */
function parseLine(line: string): AuditRecord | string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return 'is not JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'is not a JSON object';
  const o = v as Record<string, unknown>;
  for (const k of ['seq', 'time'] as const)
    if (typeof o[k] !== 'number') return `has no number ${k}: it is not an audit record`;
  for (const k of ['actor', 'action', 'subject', 'prev_hash', 'hash'] as const)
    if (typeof o[k] !== 'string') return `has no string ${k}: it is not an audit record`;
  if (!('data' in o)) return 'has no data: it is not an audit record';
  return {
    seq: o.seq as number,
    time: o.time as number,
    actor: o.actor as string,
    action: o.action as string,
    subject: o.subject as string,
    data: o.data as Json,
    prevHash: o.prev_hash as string,
    hash: o.hash as string,
  };
}
