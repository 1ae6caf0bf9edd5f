/**
 * Provenance: the hash-chained audit log's signatures (Ed25519 JWS over RFC 8785 canonical JSON),
 * signed checkpoints, offline verification, JSONL export, and verdict notes on git commits.
 * See docs/provenance.md.
 */
export { ProvenanceError } from './errors.js';
export type { ProvenanceErrorKind } from './errors.js';
export {
  createKeyPair,
  loadSigningKey,
  loadPublicKey,
  publicKeyFromJwk,
  PRIVATE_KEY_FILE,
  PUBLIC_KEY_FILE,
} from './keys.js';
export type { CreatedKeyPair, PublicJwk, PublicKey, SigningKey } from './keys.js';
export {
  signJson,
  verifyJws,
  signVerdict,
  verdictAuditOp,
  CHECKPOINT_JWS_TYPE,
  JSON_JWS_TYPE,
  VERDICT_ACTIONS,
  VERDICT_JWS_TYPE,
} from './sign.js';
export type { SignedVerdictData, SmithJwsHeader, VerifiedJws } from './sign.js';
export {
  checkpointOps,
  Checkpointer,
  CHECKPOINT_ACTION,
  CHECKPOINT_SUBJECT,
  DEFAULT_CHECKPOINT_EVERY,
} from './checkpoint.js';
export type { CheckpointData, CheckpointerOptions, CheckpointPayload } from './checkpoint.js';
export { verifyAuditChain, checkRecord, ChainChecker } from './verify.js';
export type { Broken, ChainVerification, VerifyOptions } from './verify.js';
export { exportAudit, verifyExport, toExported } from './export.js';
export type { ExportedRecord, ExportSummary } from './export.js';
export { addNote, readNote, verifyNote, NOTES_REF } from './git-notes.js';
export type { NoteVerification } from './git-notes.js';
