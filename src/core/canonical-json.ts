/**
 * Canonical JSON after RFC 8785 (JSON Canonicalization Scheme, JCS): object keys sorted by UTF-16
 * code units, no whitespace, strings and numbers serialized as ECMAScript's JSON.stringify does
 * (RFC 8785 §3.2.2 adopts ES2015+ Number.prototype.toString and JSON string escaping).
 *
 * The general case delegates to the `canonicalize` package (the reference implementation by the
 * RFC's authors); {@link canonicalAuditBody} is a fast path for audit records whose top-level keys
 * are known, tested to produce byte-identical output.
 */
import canonicalizeImpl from 'canonicalize';
import * as crypto from 'node:crypto';
import type { Json } from './types.js';

const canonicalizeFn = canonicalizeImpl as unknown as (input: unknown) => string | undefined;

/**
 * The RFC 8785 canonical form of `value`.
 * @throws TypeError for NaN, Infinity or a value with no JSON form
 */
export function canonicalize(value: unknown): string {
  const out = canonicalizeFn(value);
  if (out === undefined) throw new TypeError('value has no JSON form');
  return out;
}

/**
 * RFC 8785 canonical JSON of a {@link Json} value, written for speed (about 4x the package's on
 * small records); tested byte for byte against {@link canonicalize}.
 * @throws TypeError for a non-finite number
 */
export function canonicalJson(value: Json): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${value} has no JSON form`);
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          const v = value[i];
          out += v === undefined ? 'null' : canonicalJson(v);
        }
        return out + ']';
      }
      const keys = Object.keys(value).sort();
      let out = '{';
      let first = true;
      for (const k of keys) {
        const v = value[k];
        if (v === undefined) continue;
        if (!first) out += ',';
        first = false;
        out += quote(k) + ':' + canonicalJson(v);
      }
      return out + '}';
    }
    default:
      throw new TypeError(`a ${typeof value} has no JSON form`);
  }
}

// characters JSON.stringify escapes (quote, backslash, controls) and surrogates (lone ones are escaped)
// eslint-disable-next-line no-control-regex -- control characters are exactly what must be found
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A JSON string literal, as JSON.stringify writes it (RFC 8785 §3.2.2.2), without its cost when nothing needs escaping. */
function quote(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

// crypto.hash (Node >= 20.12) hashes a string in one call, twice as fast as createHash for small inputs
const sha256hex: (s: string) => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (s) =>
        (crypto as unknown as { hash: (a: string, d: string, e: string) => string }).hash('sha256', s, 'hex')
    : (s) => crypto.createHash('sha256').update(s).digest('hex');

/** Hash of the first audit record's predecessor: 64 zeros. */
export const GENESIS_HASH = '0'.repeat(64);

/** The fields of an audit record that its hash covers. */
export interface AuditBody {
  seq: number;
  time: number;
  actor: string;
  action: string;
  subject: string;
  data: Json;
  prev_hash: string;
}

/**
 * The canonical JSON of an audit record's body, keys in RFC 8785 order:
 * action, actor, data, prev_hash, seq, subject, time.
 */
export function canonicalAuditBody(b: AuditBody): string {
  return `{"action":${quote(b.action)},"actor":${quote(b.actor)},"data":${canonicalJson(b.data)},"prev_hash":${quote(
    b.prev_hash,
  )},"seq":${canonicalNumber(b.seq)},"subject":${quote(b.subject)},"time":${canonicalNumber(b.time)}}`;
}

function canonicalNumber(n: number): string {
  if (!Number.isFinite(n)) throw new TypeError(`audit number ${n} is not finite`);
  return String(n);
}

/** SHA-256 (hex) of the canonical JSON of an audit record's body. */
export function auditHash(b: AuditBody): string {
  return sha256hex(canonicalAuditBody(b));
}
