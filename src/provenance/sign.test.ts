import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompactSign, decodeProtectedHeader } from 'jose';
import { createKeyPair, loadSigningKey } from './keys.js';
import type { SigningKey } from './keys.js';
import { signJson, signVerdict, VERDICT_JWS_TYPE, verifyJws } from './sign.js';

let dir: string;
let key: SigningKey;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'smith-sign-'));
  await createKeyPair(dir);
  key = await loadSigningKey(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const b64 = (s: string): string => Buffer.from(s).toString('base64url');

describe('signJson / verifyJws', () => {
  it('signs the RFC 8785 canonical JSON with an EdDSA header naming the kid', async () => {
    const jws = await signJson({ b: 1, a: [true, null, 'x'] }, key, VERDICT_JWS_TYPE);
    expect(decodeProtectedHeader(jws)).toEqual({ alg: 'EdDSA', kid: key.kid, typ: VERDICT_JWS_TYPE });
    expect(Buffer.from(jws.split('.')[1]!, 'base64url').toString()).toBe('{"a":[true,null,"x"],"b":1}');
    const v = await verifyJws(jws, key.publicKey, { typ: VERDICT_JWS_TYPE });
    expect(v).toMatchObject({ payload: { a: [true, null, 'x'], b: 1 }, kid: key.kid });
  });

  it('refuses another typ, another alg, a non-canonical payload and garbage', async () => {
    const jws = await signJson({ a: 1 }, key);
    await expect(verifyJws(jws, key.publicKey, { typ: VERDICT_JWS_TYPE })).rejects.toThrow(/typ smith\+jws/);
    const hs = `${b64(JSON.stringify({ alg: 'HS256', kid: key.kid }))}.${b64('{}')}.${b64('sig')}`;
    await expect(verifyJws(hs, key.publicKey)).rejects.toThrow(/alg HS256, not EdDSA/);
    const none = `${b64(JSON.stringify({ alg: 'none', kid: key.kid }))}.${b64('{}')}.`;
    await expect(verifyJws(none, key.publicKey)).rejects.toThrow(/alg none/);
    const loose = await new CompactSign(new TextEncoder().encode('{"b":1, "a":2}'))
      .setProtectedHeader({ alg: 'EdDSA', kid: key.kid })
      .sign(key.privateKey);
    await expect(verifyJws(loose, key.publicKey)).rejects.toThrow(/not RFC 8785 canonical/);
    await expect(verifyJws('garbage', key.publicKey)).rejects.toMatchObject({ kind: 'signature-invalid' });
  });

  it('signs a verdict exactly as it will be read back from the store', async () => {
    const d = await signVerdict({ decision: 'approve', note: undefined, n: 1 } as never, key);
    expect(d.verdict).toEqual({ decision: 'approve', n: 1 });
    expect((await verifyJws(d.verdict_jws, key.publicKey)).canonical).toBe('{"decision":"approve","n":1}');
  });
});
