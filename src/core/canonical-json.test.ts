import { describe, expect, it } from 'vitest';
import type { Json } from './types.js';
import {
  type AuditBody,
  auditHash,
  canonicalJson,
  canonicalAuditBody,
  canonicalize,
  GENESIS_HASH,
} from './canonical-json.js';

describe('canonical JSON (RFC 8785)', () => {
  it('sorts keys and drops whitespace', () => {
    expect(canonicalize({ b: 1, a: [true, null, 'x'], c: { z: 1.5, y: 'é' } })).toBe(
      '{"a":[true,null,"x"],"b":1,"c":{"y":"é","z":1.5}}',
    );
  });

  it('serializes numbers as ECMAScript does (RFC 8785 appendix B samples)', () => {
    expect(canonicalize([1e21, 1e-7, 0.000001, -0, 333333333.3333333])).toBe(
      '[1e+21,1e-7,0.000001,0,333333333.3333333]',
    );
  });

  it('the audit fast path matches the general canonicalizer byte for byte', () => {
    const samples: Omit<AuditBody, 'prev_hash'>[] = [
      { seq: 1, time: 1_700_000_000_123, actor: 'engine', action: 'task.created', subject: 't_1', data: {} },
      {
        seq: 99,
        time: 0,
        actor: 'user:ana "q"',
        action: 'task.canceled',
        subject: 't_\u2028x',
        data: { reason: 'line\nbreak', n: [3, 2.5, -1e-9], nested: { b: null, a: '\ud83d\ude00' } },
      },
    ];
    for (const s of samples) {
      const body = { ...s, prev_hash: GENESIS_HASH };
      expect(canonicalAuditBody(body)).toBe(canonicalize(body));
    }
  });

  it('hashes change when any covered field changes', () => {
    const body = {
      seq: 1,
      time: 5,
      actor: 'a',
      action: 'x',
      subject: 's',
      data: { k: 1 },
      prev_hash: GENESIS_HASH,
    };
    const h = auditHash(body);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    expect(auditHash({ ...body, data: { k: 2 } })).not.toBe(h);
    expect(auditHash({ ...body, seq: 2 })).not.toBe(h);
    expect(auditHash({ ...body, prev_hash: h })).not.toBe(h);
  });

  it('the fast canonicalizer matches the reference on many random values', () => {
    let seed = 42;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const strings = [
      '',
      'a',
      'é',
      '\u2028',
      '\ud83d\ude00',
      'quote"back\\slash',
      '\u0000\u001f',
      'Z',
      'aa',
      '10',
      '1',
    ];
    const gen = (depth: number): Json => {
      const r = rnd();
      if (depth > 3 || r < 0.3) {
        const k = Math.floor(rnd() * 5);
        if (k === 0) return null;
        if (k === 1) return rnd() < 0.5;
        if (k === 2) return (rnd() - 0.5) * 10 ** Math.floor(rnd() * 40 - 20);
        if (k === 3) return Math.floor(rnd() * 1e6);
        return strings[Math.floor(rnd() * strings.length)]!;
      }
      if (r < 0.6) return Array.from({ length: Math.floor(rnd() * 4) }, () => gen(depth + 1));
      const o: Record<string, Json> = {};
      for (let i = 0; i < Math.floor(rnd() * 5); i++)
        o[strings[Math.floor(rnd() * strings.length)]! + i] = gen(depth + 1);
      return o;
    };
    for (let i = 0; i < 2000; i++) {
      const v = gen(0);
      expect(canonicalJson(v)).toBe(canonicalize(v));
    }
  });
});
