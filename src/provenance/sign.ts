/**
 * Ed25519 JWS over canonical JSON: the payload of every signature is the RFC 8785 canonical JSON
 * of a value, so anyone holding the same value recomputes the same bytes and compares.
 *
 * Format: JWS Compact Serialization (RFC 7515 §7.1), `alg: 'EdDSA'` with an Ed25519 key
 * (RFC 8037 §3.1), protected header `{alg, kid, typ}` where `kid` is the RFC 7638 thumbprint of the
 * public key. Built with jose's `CompactSign` / `compactVerify`
 * (https://github.com/panva/jose/blob/main/docs/jws/compact/sign/classes/CompactSign.md).
 */
import { CompactSign, compactVerify, decodeProtectedHeader } from 'jose';
import { canonicalJson } from '../core/canonical-json.js';
import type { Json } from '../core/types.js';
import type { Op } from '../store/store.js';
import { ProvenanceError } from './errors.js';
import type { PublicKey, SigningKey } from './keys.js';

/** `typ` of a verdict signature. */
export const VERDICT_JWS_TYPE = 'smith-verdict+jws';
/** `typ` of a checkpoint signature. */
export const CHECKPOINT_JWS_TYPE = 'smith-checkpoint+jws';
/** Default `typ` of {@link signJson}. */
export const JSON_JWS_TYPE = 'smith+jws';
/** Audit actions whose records carry a signed verdict (`data.verdict` and `data.verdict_jws`). */
export const VERDICT_ACTIONS: readonly string[] = ['task.verdict', 'council.verdict'];

/** The JWS protected header smith writes. */
export interface SmithJwsHeader {
  alg: 'EdDSA';
  /** RFC 7638 thumbprint of the signing key. */
  kid: string;
  typ: string;
}

/** What {@link verifyJws} found. */
export interface VerifiedJws {
  /** The payload, parsed. */
  payload: Json;
  /** The payload bytes as signed: the RFC 8785 canonical JSON of `payload`. */
  canonical: string;
  /** The key that signed it. */
  kid: string;
  header: SmithJwsHeader;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Sign the RFC 8785 canonical JSON of `value` with Ed25519.
 * @param value - any JSON value
 * @param key - the signing key (see `loadSigningKey`)
 * @param typ - the header's `typ` (default {@link JSON_JWS_TYPE})
 * @returns a compact JWS `header.payload.signature`, base64url parts
 * @throws TypeError when `value` has no JSON form (NaN, Infinity)
 */
export async function signJson(value: Json, key: SigningKey, typ: string = JSON_JWS_TYPE): Promise<string> {
  return new CompactSign(encoder.encode(canonicalJson(value)))
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ })
    .sign(key.privateKey);
}

/**
 * Verify a compact JWS from {@link signJson}: the algorithm must be `EdDSA`, the header's `kid` one
 * of the given keys', the signature valid for that key, and the payload canonical JSON.
 * @param jws - the compact JWS
 * @param keys - the key, or the keys (by kid, for rotation), allowed to have signed
 * @param options - `typ`: the header's `typ` must equal this when given
 * @returns the payload and the kid that signed it
 * @throws ProvenanceError `signature-invalid`, its message naming the kid: malformed JWS, another
 *   algorithm, a kid not among `keys`, a signature that does not verify, or a non-canonical payload
 */
export async function verifyJws(
  jws: string,
  keys: PublicKey | readonly PublicKey[],
  options: { typ?: string } = {},
): Promise<VerifiedJws> {
  const list: readonly PublicKey[] = Array.isArray(keys) ? keys : [keys as PublicKey];
  function fail(reason: string, cause?: unknown): never {
    throw new ProvenanceError('signature-invalid', reason, {
      cause,
      context: { kids: list.map((k) => k.kid) },
    });
  }
  let header: Record<string, unknown> = {};
  try {
    header = decodeProtectedHeader(jws) as Record<string, unknown>;
  } catch (err) {
    fail('not a compact JWS (its header does not decode)', err);
  }
  if (jws.split('.').length !== 3) fail('not a compact JWS (it needs three dot-separated parts)');
  if (header.alg !== 'EdDSA') fail(`signed with alg ${String(header.alg)}, not EdDSA`);
  const kid = typeof header.kid === 'string' ? header.kid : undefined;
  if (kid === undefined) fail('the JWS header names no kid');
  const key = list.find((k) => k.kid === kid);
  if (!key)
    fail(
      `signed with key ${kid}, not with the given key ${list.map((k) => k.kid).join(', ') || '(none)'}: verify with the public key of ${kid}, or the record was signed by someone else`,
    );
  if (options.typ !== undefined && header.typ !== options.typ)
    fail(`typ ${String(header.typ)} is not ${options.typ}: a signature of another kind was put in its place`);
  let payloadBytes: Uint8Array = new Uint8Array();
  try {
    payloadBytes = (await compactVerify(jws, key.key, { algorithms: ['EdDSA'] })).payload;
  } catch (err) {
    fail(`signature does not verify with key ${kid}`, err);
  }
  let canonical = '';
  let payload: Json = null;
  try {
    canonical = decoder.decode(payloadBytes);
    payload = JSON.parse(canonical) as Json;
  } catch (err) {
    fail(`payload signed by key ${kid} is not JSON`, err);
  }
  if (canonicalJson(payload) !== canonical)
    fail(`payload signed by key ${kid} is not RFC 8785 canonical JSON`);
  return { payload, canonical, kid, header: { alg: 'EdDSA', kid, typ: String(header.typ) } };
}

/** The `data` of a signed verdict record. */
export interface SignedVerdictData {
  [key: string]: Json;
  /** The verdict, as judged. */
  verdict: Json;
  /** Compact JWS whose payload is the canonical JSON of `verdict` (typ {@link VERDICT_JWS_TYPE}). */
  verdict_jws: string;
  /** The signing key's thumbprint. */
  kid: string;
}

/**
 * Sign a verdict for its audit record.
 * @param verdict - the verdict, whole (judge, decision, confidence, reasons …)
 * @param key - the signing key
 * @returns `{verdict, verdict_jws, kid}`, the `data` of a `task.verdict` / `council.verdict` record
 */
export async function signVerdict(verdict: Json, key: SigningKey): Promise<SignedVerdictData> {
  // the stored verdict goes through JSON.stringify and JSON.parse: sign exactly what will be read back
  const stored = JSON.parse(JSON.stringify(verdict)) as Json;
  return { verdict: stored, verdict_jws: await signJson(stored, key, VERDICT_JWS_TYPE), kid: key.kid };
}

/**
 * The audit op that records a signed verdict.
 * @param input - `subject` (the task or workflow id), `verdict`, `actor` (default `'council'`),
 *   `action` (default `'task.verdict'`; one of {@link VERDICT_ACTIONS}), `extra` data merged in
 * @param key - the signing key
 * @returns an `audit` op for `store.commit`
 */
export async function verdictAuditOp(
  input: { subject: string; verdict: Json; actor?: string; action?: string; extra?: Record<string, Json> },
  key: SigningKey,
): Promise<Op> {
  const action = input.action ?? 'task.verdict';
  if (!VERDICT_ACTIONS.includes(action))
    throw new TypeError(`verdict action ${action} is not one of ${VERDICT_ACTIONS.join(', ')}`);
  const data = await signVerdict(input.verdict, key);
  return {
    op: 'audit',
    actor: input.actor ?? 'council',
    action,
    subject: input.subject,
    data: { ...(input.extra ?? {}), ...data },
  };
}
