import { describe, expect, it } from 'vitest';
import {
  checkWaiver,
  formatWaiverId,
  isWaiverId,
  nextWaiverId,
  parseWaiver,
  revokeWaiver,
  waiverStatus,
} from './waivers.js';
import type { Waiver } from './waivers.js';

const NOW = Date.parse('2030-01-10T00:00:00Z');

function waiver(extra: Partial<Waiver> = {}): Waiver {
  return {
    id: 'WV-0001',
    gates: ['budget'],
    reason: 'vendored generated client',
    approvers: ['lead'],
    expiresAt: Date.parse('2030-02-01T00:00:00Z'),
    status: 'active',
    ...extra,
  };
}

describe('waiver ids', () => {
  it('are WV- and at least four digits', () => {
    expect(isWaiverId('WV-0001')).toBe(true);
    expect(isWaiverId('WV-12345')).toBe(true);
    expect(isWaiverId('WV-1')).toBe(false);
    expect(isWaiverId('wv-0001')).toBe(false);
    expect(formatWaiverId(7)).toBe('WV-0007');
    expect(formatWaiverId(12345)).toBe('WV-12345');
    expect(() => formatWaiverId(0)).toThrow(RangeError);
    expect(nextWaiverId([])).toBe('WV-0001');
    expect(nextWaiverId(['WV-0002', 'junk', 'WV-0010'])).toBe('WV-0011');
  });
});

describe('waiverStatus', () => {
  it('is active until the expiry, expired from it on, revoked once revoked', () => {
    const w = waiver();
    expect(waiverStatus(w, NOW)).toBe('active');
    expect(waiverStatus(w, w.expiresAt - 1)).toBe('active');
    expect(waiverStatus(w, w.expiresAt)).toBe('expired');
    expect(waiverStatus({ ...w, status: 'expired' }, NOW)).toBe('expired');
    const revoked = revokeWaiver(w, 'security', NOW);
    expect(revoked).toMatchObject({ status: 'revoked', revokedAt: NOW, revokedBy: 'security' });
    expect(waiverStatus(revoked, NOW)).toBe('revoked');
    expect(w.status).toBe('active');
  });
});

describe('checkWaiver', () => {
  it('accepts a complete waiver', () => {
    expect(checkWaiver(waiver(), NOW, ['quality', 'budget'])).toEqual([]);
  });

  it('names every problem', () => {
    const problems = checkWaiver(
      waiver({ id: 'X-1', gates: ['qualty'], reason: 'because', approvers: [' '], expiresAt: NOW - 1 }),
      NOW,
      ['quality', 'budget'],
    );
    expect(problems).toEqual([
      'id "X-1" is not a waiver id such as WV-0001',
      'gate "qualty" is unknown (gates: quality, budget)',
      'its reason is too short; say why it is needed (at least 10 characters)',
      'it has no approver',
      'it expires in the past (2030-01-09T23:59:59.999Z)',
    ]);
  });
});

describe('parseWaiver', () => {
  it('reads snake_case with ISO times and approved_by', () => {
    expect(
      parseWaiver(
        {
          id: 'WV-0003',
          title: 'budget for the client',
          gates: ['budget', 'budget'],
          reason: 'generated API client is large',
          approved_by: 'lead',
          created_at: '2030-01-01T00:00:00Z',
          expires_at: '2030-01-31T00:00:00Z',
        },
        'waiver WV-0003',
      ),
    ).toEqual({
      id: 'WV-0003',
      title: 'budget for the client',
      gates: ['budget'],
      reason: 'generated API client is large',
      approvers: ['lead'],
      createdAt: Date.parse('2030-01-01T00:00:00Z'),
      expiresAt: Date.parse('2030-01-31T00:00:00Z'),
      status: 'active',
    });
  });

  it('lists every problem', () => {
    let message = '';
    try {
      parseWaiver({ id: 'W-1', gates: [], reason: 'x', expires_at: 'tomorrow' }, 'waiver file w.yaml');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message.split('\n').slice(0, 5)).toEqual([
      'waiver file w.yaml is not a valid waiver (4 problems):',
      '  waiver file w.yaml: id: expected a waiver id such as "WV-0001", found "W-1"',
      '  waiver file w.yaml: gates: expected at least one gate, such as [quality] or [budget], found an empty list',
      '  waiver file w.yaml: reason: expected a reason of at least 10 characters, found "x"',
      '  waiver file w.yaml: expires_at: expected a time: an ISO 8601 date such as "2025-12-31T23:59:59Z" or ms since the epoch, found "tomorrow"',
    ]);
  });

  it('requires approvers', () => {
    expect(() =>
      parseWaiver({ id: 'WV-0001', gates: ['quality'], reason: 'a good reason', expires_at: 1 }, 'w'),
    ).toThrow(/approvers: expected "approvers"/);
  });
});
