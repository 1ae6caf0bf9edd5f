/**
 * Ed25519 signing keys for the audit trail: one key pair per home, stored as JWK files.
 *
 * - `private.jwk` holds the private JWK (RFC 8037 OKP key with `d`), file mode 0600. Like ssh
 *   (`UNPROTECTED PRIVATE KEY FILE`), a private key readable by group or others is refused.
 * - `public.jwk` holds the public JWK with `kid`, `alg: 'EdDSA'`, `crv: 'Ed25519'`, `use: 'sig'`;
 *   hand it to anyone who verifies.
 * - The key id (`kid`) is the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key,
 *   computed by jose's `calculateJwkThumbprint`, so a kid names exactly one key.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import { ProvenanceError } from './errors.js';

/** File name of the private key in a key directory. */
export const PRIVATE_KEY_FILE = 'private.jwk';
/** File name of the public key in a key directory. */
export const PUBLIC_KEY_FILE = 'public.jwk';

/** A public Ed25519 JWK as written to `public.jwk` (RFC 7517, RFC 8037 §2). */
export interface PublicJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  /** The public key, base64url (RFC 8037 §2). */
  x: string;
  /** RFC 7638 thumbprint of the key. */
  kid: string;
  alg: 'EdDSA';
  use: 'sig';
}

/** A public key ready to verify with. */
export interface PublicKey {
  /** RFC 7638 thumbprint of the key. */
  readonly kid: string;
  readonly key: KeyObject;
  readonly jwk: PublicJwk;
}

/** A private key ready to sign with, and its public half. */
export interface SigningKey {
  /** RFC 7638 thumbprint of the public key. */
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: PublicKey;
}

/** What {@link createKeyPair} wrote. */
export interface CreatedKeyPair {
  kid: string;
  /** Path of `private.jwk` (mode 0600). */
  privateFile: string;
  /** Path of `public.jwk`. */
  publicFile: string;
}

/**
 * Generate an Ed25519 key pair and write `private.jwk` (mode 0600) and `public.jwk` into `dir`.
 * The directory is created with mode 0700 when missing.
 * @param dir - the key directory, e.g. `.smith/keys`
 * @param options - `overwrite: true` replaces an existing key pair (default false: refuse, since
 *   records signed with the old key then verify only with the old public key)
 * @returns the kid and the two paths
 * @throws ProvenanceError `key-exists` when `private.jwk` exists and `overwrite` is not set
 */
export async function createKeyPair(
  dir: string,
  options: { overwrite?: boolean } = {},
): Promise<CreatedKeyPair> {
  const privateFile = join(dir, PRIVATE_KEY_FILE);
  const publicFile = join(dir, PUBLIC_KEY_FILE);
  if (!options.overwrite && existsSync(privateFile))
    throw new ProvenanceError(
      'key-exists',
      `a signing key already exists at ${privateFile}: keep it (records signed with it verify only with its public key), or move it away first to create a new one`,
      { context: { file: privateFile } },
    );
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pub = await publicJwkOf(publicKey);
  const priv = {
    ...(privateKey.export({ format: 'jwk' }) as Record<string, unknown>),
    kid: pub.kid,
    alg: 'EdDSA',
  };
  // the mode applies on creation; chmod covers an overwritten file that had another mode
  writeFileSync(privateFile, JSON.stringify(priv, null, 2) + '\n', { mode: 0o600 });
  chmodSync(privateFile, 0o600);
  writeFileSync(publicFile, JSON.stringify(pub, null, 2) + '\n', { mode: 0o644 });
  return { kid: pub.kid, privateFile, publicFile };
}

/**
 * Load the signing key from `dir/private.jwk` (a private Ed25519 JWK, or a PKCS#8 PEM file).
 * @param dir - the key directory
 * @returns the key and its public half; the kid is recomputed from the key, never trusted from the file
 * @throws ProvenanceError `key-not-found` when the file is missing; `key-insecure` when group or
 *   others may read it (the message gives the `chmod 600` command); `key-invalid` when it is not an
 *   Ed25519 private key, or its `kid` member is not its thumbprint
 */
export async function loadSigningKey(dir: string): Promise<SigningKey> {
  const file = join(dir, PRIVATE_KEY_FILE);
  const text = readKeyFile(file, 'private');
  if (process.platform !== 'win32') {
    const mode = statSync(file).mode & 0o777;
    if ((mode & 0o077) !== 0)
      throw new ProvenanceError(
        'key-insecure',
        `private key ${file} has mode ${mode.toString(8).padStart(4, '0')}: it is readable by others, so it is refused; make it readable by its owner only: chmod 600 ${file}`,
        { context: { file, mode } },
      );
  }
  let privateKey: KeyObject;
  let declaredKid: unknown;
  try {
    if (text.trimStart().startsWith('-----BEGIN')) privateKey = createPrivateKey(text);
    else {
      const jwk = JSON.parse(text) as Record<string, unknown>;
      declaredKid = jwk.kid;
      privateKey = createPrivateKey({ key: stripMeta(jwk), format: 'jwk' });
    }
  } catch (err) {
    throw new ProvenanceError(
      'key-invalid',
      `private key ${file} is not a JWK or PEM private key: ${errText(err)}`,
      {
        cause: err,
        context: { file },
      },
    );
  }
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new ProvenanceError(
      'key-invalid',
      `private key ${file} is a ${privateKey.asymmetricKeyType ?? 'unknown'} key, not Ed25519: create one with createKeyPair`,
      { context: { file } },
    );
  const publicKey = await toPublicKey(createPublicKey(privateKey));
  if (declaredKid !== undefined && declaredKid !== publicKey.kid)
    throw new ProvenanceError(
      'key-invalid',
      `private key ${file} says kid ${String(declaredKid)}, but its thumbprint is ${publicKey.kid}: the file was edited; restore it from a backup`,
      { context: { file } },
    );
  return { kid: publicKey.kid, privateKey, publicKey };
}

/**
 * Load a public key from a file: a public Ed25519 JWK (as `public.jwk`), or an SPKI PEM file.
 * @param file - path of the key file
 * @returns the key with its kid (the RFC 7638 thumbprint, recomputed)
 * @throws ProvenanceError `key-not-found` when missing; `key-invalid` when not an Ed25519 public
 *   key, or when its `kid` member is not its thumbprint
 */
export async function loadPublicKey(file: string): Promise<PublicKey> {
  const text = readKeyFile(file, 'public');
  try {
    if (text.trimStart().startsWith('-----BEGIN')) return await toPublicKey(createPublicKey(text), file);
    return await publicKeyFromJwk(JSON.parse(text) as Record<string, unknown>, file);
  } catch (err) {
    if (err instanceof ProvenanceError) throw err;
    throw new ProvenanceError(
      'key-invalid',
      `public key ${file} is not a JWK or PEM public key: ${errText(err)}`,
      {
        cause: err,
        context: { file },
      },
    );
  }
}

/**
 * A public key from a JWK object (for keys held in memory or in config).
 * @param jwk - an Ed25519 OKP JWK; private members are ignored
 * @param where - where the JWK came from, for messages (default `'the JWK'`)
 * @throws ProvenanceError `key-invalid` when not an Ed25519 key or when `kid` is not its thumbprint
 */
export async function publicKeyFromJwk(jwk: Record<string, unknown>, where = 'the JWK'): Promise<PublicKey> {
  let key: KeyObject;
  try {
    const { kty, crv, x } = jwk;
    key = createPublicKey({ key: { kty, crv, x } as Record<string, unknown> as never, format: 'jwk' });
  } catch (err) {
    throw new ProvenanceError('key-invalid', `${where} is not an Ed25519 public JWK: ${errText(err)}`, {
      cause: err,
      context: { where },
    });
  }
  const pk = await toPublicKey(key, where);
  if (jwk.kid !== undefined && jwk.kid !== pk.kid)
    throw new ProvenanceError(
      'key-invalid',
      `${where} says kid ${String(jwk.kid)}, but its RFC 7638 thumbprint is ${pk.kid}: the file was edited`,
      { context: { where } },
    );
  return pk;
}

async function toPublicKey(key: KeyObject, where = 'the key'): Promise<PublicKey> {
  if (key.asymmetricKeyType !== 'ed25519')
    throw new ProvenanceError(
      'key-invalid',
      `${where} is a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519: smith signs with Ed25519 (EdDSA) only`,
      { context: { where } },
    );
  const jwk = await publicJwkOf(key);
  return { kid: jwk.kid, key, jwk };
}

async function publicJwkOf(key: KeyObject): Promise<PublicJwk> {
  const { x } = key.export({ format: 'jwk' });
  if (typeof x !== 'string') throw new TypeError('an Ed25519 public key exports an x member');
  const kid = await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x }, 'sha256');
  return { kty: 'OKP', crv: 'Ed25519', x, kid, alg: 'EdDSA', use: 'sig' };
}

function readKeyFile(file: string, which: 'private' | 'public'): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ProvenanceError(
      missing ? 'key-not-found' : 'key-invalid',
      missing
        ? which === 'private'
          ? `private key ${file} not found: create a key pair in ${dirname(file)} first (createKeyPair)`
          : `public key ${file} not found: give the path of the public.jwk of the key that signed the chain`
        : `${which} key ${file} cannot be read: ${errText(err)}`,
      { cause: err, context: { file } },
    );
  }
}

/** The JWK members node:crypto's JWK import understands; `kid`, `alg`, `use` are metadata. */
function stripMeta(jwk: Record<string, unknown>): never {
  const { kty, crv, x, d } = jwk;
  return { kty, crv, x, d } as never;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
