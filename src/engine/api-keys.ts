/**
 * API keys of a home: `smk_<id>_<secret>`, where `id` (16 hex characters) names the key and
 * `secret` carries 256 random bits (base64url). The store keeps only HMAC-SHA256(pepper, secret),
 * the peppered hash of OWASP's Password Storage Cheat Sheet ("Peppering"); the pepper lives outside
 * the store, in `<home>/keys/api-pepper` (0600) or `SMITH_API_PEPPER`. A key is shown once, when
 * it is created. Comparisons are constant-time (`crypto.timingSafeEqual`).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SmithError } from '../core/errors.js';
import type { ApiKeyRecord, Role, Store } from '../store/store.js';
import { keysDir } from './home.js';

/** Roles, least to most powerful. */
export const ROLES: readonly Role[] = ['viewer', 'operator', 'admin'];

/** The file of a home's pepper. */
export const PEPPER_FILE = 'api-pepper';

/** A key's token: `smk_` + 16 hex id + `_` + 43 base64url characters (256 bits). */
const TOKEN_PATTERN = /^smk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

/** True when `role` may do what `needed` may (admin ⊇ operator ⊇ viewer). */
export function roleAllows(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

/**
 * The pepper of a home: `SMITH_API_PEPPER` when set, else `<home>/keys/api-pepper`, created (32
 * random bytes, hex, mode 0600) when missing.
 * @throws SmithError INVALID_ARGUMENT when the file is readable by others or too short
 */
export function loadPepper(home: string, env: Record<string, string | undefined> = process.env): Buffer {
  const fromEnv = env.SMITH_API_PEPPER;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (fromEnv.length < 32)
      throw new SmithError(
        'INVALID_ARGUMENT',
        'SMITH_API_PEPPER is shorter than 32 characters; use 32 random bytes, e.g. "openssl rand -hex 32"',
      );
    return Buffer.from(fromEnv, 'utf8');
  }
  const dir = keysDir(home);
  const file = join(dir, PEPPER_FILE);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      writeFileSync(file, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    } catch (err) {
      // another process made it first: use theirs
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    chmodSync(file, 0o600);
  }
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new SmithError(
      'INVALID_ARGUMENT',
      `${file} is readable by others (mode ${mode.toString(8)}); run "chmod 600 ${file}"`,
    );
  }
  const text = readFileSync(file, 'utf8').trim();
  if (text.length < 32)
    throw new SmithError('INVALID_ARGUMENT', `${file} holds no usable pepper; delete it to make a new one`);
  return Buffer.from(text, 'utf8');
}

/** HMAC-SHA256 of `secret` keyed by `pepper`, hex. */
export function hashSecret(pepper: Buffer, secret: string): string {
  return createHmac('sha256', pepper).update(secret).digest('hex');
}

/** Split a token into id and secret, or undefined when it is not shaped like one. */
export function parseToken(token: string): { id: string; secret: string } | undefined {
  const m = TOKEN_PATTERN.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

/** A new key: its record (to store) and its token (to show once). */
export interface NewApiKey {
  record: ApiKeyRecord;
  token: string;
}

/**
 * Make a key and record it (with a `key.created` audit record).
 * @param opts.expiresAt - ms since the epoch, or null (default) for no expiry
 * @throws SmithError INVALID_ARGUMENT for an unknown role or an expiry in the past
 */
export async function createApiKey(
  store: Store,
  pepper: Buffer,
  opts: { role: Role; name?: string; expiresAt?: number | null; createdBy: string },
): Promise<NewApiKey> {
  if (!ROLES.includes(opts.role))
    throw new SmithError(
      'INVALID_ARGUMENT',
      `role ${String(opts.role)} is unknown; use one of ${ROLES.join(', ')}`,
    );
  const now = Date.now();
  if (opts.expiresAt !== undefined && opts.expiresAt !== null && opts.expiresAt <= now)
    throw new SmithError('INVALID_ARGUMENT', 'the expiry is in the past; give a later time or none');
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const record: ApiKeyRecord = {
    id,
    hash: hashSecret(pepper, secret),
    role: opts.role,
    name: opts.name ?? `${opts.role} key`,
    createdBy: opts.createdBy,
    createdAt: now,
    expiresAt: opts.expiresAt ?? null,
    revokedAt: null,
    lastUsedAt: null,
  };
  await store.commit([
    { op: 'putApiKey', key: record },
    {
      op: 'audit',
      actor: opts.createdBy,
      action: 'key.created',
      subject: `key:${id}`,
      data: { role: record.role, name: record.name, expires_at: record.expiresAt },
    },
  ]);
  return { record, token: `smk_${id}_${secret}` };
}

/**
 * Revoke a key (it stops working at once; a running server notices within its cache time).
 * @throws SmithError KEY_NOT_FOUND when no key has this id
 */
export async function revokeApiKey(store: Store, id: string, actor: string): Promise<ApiKeyRecord> {
  const clean = id.startsWith('smk_') ? (parseToken(id)?.id ?? id.slice(4, 20)) : id;
  const key = await store.getApiKey(clean);
  if (!key)
    throw new SmithError(
      'KEY_NOT_FOUND',
      `no API key has the id ${clean}; list them with "smith keys list"`,
      {
        context: { id: clean },
      },
    );
  if (key.revokedAt !== null) return key;
  const revoked = { ...key, revokedAt: Date.now() };
  await store.commit([
    { op: 'putApiKey', key: revoked },
    { op: 'audit', actor, action: 'key.revoked', subject: `key:${key.id}`, data: { role: key.role } },
  ]);
  return revoked;
}

/** Why a key cannot be used now, or undefined when it can. */
export function keyRefusal(key: ApiKeyRecord, now = Date.now()): string | undefined {
  if (key.revokedAt !== null) return `API key ${key.id} was revoked`;
  if (key.expiresAt !== null && key.expiresAt <= now) return `API key ${key.id} expired`;
  return undefined;
}

/**
 * Checks tokens against the store, remembering each key's record for at most `cacheMs` (default
 * 1000 ms), so keys created or revoked by another process take effect within that time.
 */
export class KeyVerifier {
  private readonly cache = new Map<string, { key: ApiKeyRecord | undefined; at: number }>();

  constructor(
    private readonly store: Store,
    private readonly pepper: Buffer,
    private readonly cacheMs = 1000,
  ) {}

  /**
   * The key a token belongs to, or why it is refused.
   * @returns `{ key }` for a valid, unexpired, unrevoked key, else `{ reason }`
   */
  async verify(token: string | undefined): Promise<{ key: ApiKeyRecord } | { reason: string }> {
    if (token === undefined || token === '')
      return { reason: 'no API key: send "Authorization: Bearer smk_…" (or "X-API-Key: smk_…")' };
    const parsed = parseToken(token);
    if (!parsed) return { reason: 'the API key is malformed; keys look like smk_<id>_<secret>' };
    const now = Date.now();
    let hit = this.cache.get(parsed.id);
    if (hit === undefined || now - hit.at > this.cacheMs) {
      hit = { key: await this.store.getApiKey(parsed.id), at: now };
      this.cache.set(parsed.id, hit);
      if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value!);
    }
    const key = hit.key;
    const given = Buffer.from(hashSecret(this.pepper, parsed.secret), 'hex');
    // compare against a hash even for an unknown id, so timing does not tell which ids exist
    const stored = Buffer.from(key?.hash ?? '0'.repeat(64), 'hex');
    const same = stored.length === given.length && timingSafeEqual(stored, given);
    if (!key || !same) return { reason: 'the API key is not valid' };
    const refused = keyRefusal(key, now);
    return refused ? { reason: refused } : { key };
  }

  /** Forget cached records (after this process created or revoked a key). */
  forget(id?: string): void {
    if (id === undefined) this.cache.clear();
    else this.cache.delete(id);
  }
}
