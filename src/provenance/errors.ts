/**
 * The error provenance code raises: a {@link NonRetryableError} with a finer `kind`, because the
 * shared {@link ErrorCode} union has no key or signature codes yet.
 */
import { NonRetryableError } from '../core/errors.js';
import type { ErrorCode, SmithErrorOptions } from '../core/errors.js';

/**
 * What went wrong, finer than the error code:
 * - `key-not-found` — a key file is missing (code `CONFIG_NOT_FOUND`);
 * - `key-exists` — {@link createKeyPair} would overwrite a key (code `INVALID_ARGUMENT`);
 * - `key-insecure` — a private key file is readable by group or others (code `CONFIG_INVALID`);
 * - `key-invalid` — a key file is not an Ed25519 JWK or PEM, or its `kid` is not its thumbprint (code `CONFIG_INVALID`);
 * - `signature-invalid` — a JWS is malformed, signed by another key, or does not verify (code `INVALID_ARGUMENT`);
 * - `git-failed` — a git command failed (code `INVALID_ARGUMENT`).
 */
export type ProvenanceErrorKind =
  'key-not-found' | 'key-exists' | 'key-insecure' | 'key-invalid' | 'signature-invalid' | 'git-failed';

const CODES: Record<ProvenanceErrorKind, ErrorCode> = {
  'key-not-found': 'CONFIG_NOT_FOUND',
  'key-exists': 'INVALID_ARGUMENT',
  'key-insecure': 'CONFIG_INVALID',
  'key-invalid': 'CONFIG_INVALID',
  'signature-invalid': 'INVALID_ARGUMENT',
  'git-failed': 'INVALID_ARGUMENT',
};

/** A key, signature or git-notes failure. Retrying does not fix it. */
export class ProvenanceError extends NonRetryableError {
  /** The finer reason; see {@link ProvenanceErrorKind}. */
  readonly kind: ProvenanceErrorKind;

  /**
   * @param kind - the finer reason, which also picks the error code
   * @param message - what happened, where (file, kid, commit), and what to do
   * @param options - cause and context
   */
  constructor(kind: ProvenanceErrorKind, message: string, options: SmithErrorOptions = {}) {
    super(CODES[kind], message, { ...options, context: { kind, ...(options.context ?? {}) } });
    this.name = 'ProvenanceError';
    this.kind = kind;
  }
}
