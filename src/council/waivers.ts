/**
 * Waivers: a person-approved, time-boxed exception that lifts the violations of named gates. The
 * model and its pure checks only (no store): ids `WV-0001`, gates, reason, approvers, expiry,
 * status `active` / `expired` / `revoked`. Every use of a waiver is reported by `aggregate()` so the
 * engine can audit it. After CAWS's waivers (`caws waivers create --gates … --expires-at …
 * --approved-by …`, https://github.com/Paths-Design/coding-agent-working-standard).
 */
import { z } from 'zod';
import { NAME_PATTERN } from '../core/schema/index.js';
import { strictFields } from '../core/schema/config-schema.js';
import { validate } from './source.js';

/**
 * A gate a waiver can lift: a judge's name (`constitution`, `verification`, `quality`,
 * `integration`, or a command judge's) lifts all of that judge's violations, except secrets; a
 * finer gate lifts one family: `budget` (the change budget, a quality rule), `scope` (paths outside
 * the spec's scope, a constitution rule), `secrets` (secrets in the diff or output: only this gate
 * lifts them, never a blanket `constitution` waiver).
 */
export type WaiverGate = string;

/** The finer gates (see {@link WaiverGate}). */
export const FINE_GATES = ['budget', 'scope', 'secrets'] as const;

/** Status of a waiver as stored. A stored `active` waiver past its expiry is effectively `expired`. */
export type WaiverStatus = 'active' | 'expired' | 'revoked';

/** A waiver. Times are ms since the Unix epoch. */
export interface Waiver {
  /** `WV-0001` (see {@link WAIVER_ID_PATTERN}). */
  id: string;
  /** A short title. */
  title?: string;
  /** The gates it lifts (at least one). */
  gates: WaiverGate[];
  /** Why it is needed (at least a few words). */
  reason: string;
  /** Who approved it (at least one). */
  approvers: string[];
  /** When it was created. */
  createdAt?: number;
  /** When it stops lifting anything. */
  expiresAt: number;
  status: WaiverStatus;
  /** When it was revoked (status `revoked`). */
  revokedAt?: number;
  /** Who revoked it. */
  revokedBy?: string;
}

/** What waiver ids look like: `WV-` and at least four digits (`WV-0001`, `WV-12345`). */
export const WAIVER_ID_PATTERN = /^WV-\d{4,}$/;

/** Shortest accepted reason, in characters. */
export const MIN_REASON_LENGTH = 10;

/**
 * Whether a string is a waiver id.
 *
 * @param id - the string
 * @returns true for `WV-0001` and the like
 */
export function isWaiverId(id: string): boolean {
  return WAIVER_ID_PATTERN.test(id);
}

/**
 * Formats a waiver number as an id.
 *
 * @param n - a positive integer
 * @returns `WV-` and `n`, zero-padded to four digits (`WV-0007`, `WV-12345`)
 * @throws RangeError when `n` is not a positive integer
 */
export function formatWaiverId(n: number): string {
  if (!Number.isInteger(n) || n < 1)
    throw new RangeError(`waiver number must be a positive integer, got ${n}`);
  return `WV-${String(n).padStart(4, '0')}`;
}

/**
 * The next free waiver id.
 *
 * @param existing - ids in use (others are ignored)
 * @returns one more than the highest number in use, or `WV-0001`
 */
export function nextWaiverId(existing: Iterable<string>): string {
  let max = 0;
  for (const id of existing) {
    if (isWaiverId(id)) max = Math.max(max, Number(id.slice(3)));
  }
  return formatWaiverId(max + 1);
}

/**
 * A waiver's status at a moment.
 *
 * @param waiver - the waiver
 * @param now - ms since the epoch
 * @returns `revoked` if revoked; `expired` if marked so or `now >= expiresAt`; else `active`
 */
export function waiverStatus(waiver: Waiver, now: number): WaiverStatus {
  if (waiver.status === 'revoked') return 'revoked';
  if (waiver.status === 'expired' || now >= waiver.expiresAt) return 'expired';
  return 'active';
}

/**
 * Whether a waiver names a gate (regardless of its status).
 *
 * @param waiver - the waiver
 * @param gates - the gates a violation can be lifted by (see `gatesOf` in aggregate.ts)
 * @returns the first of `gates` the waiver names, or undefined
 */
export function waiverGateFor(waiver: Waiver, gates: readonly string[]): string | undefined {
  return gates.find((g) => waiver.gates.includes(g));
}

/**
 * Revokes a waiver (pure: returns a new object).
 *
 * @param waiver - the waiver
 * @param by - who revokes it
 * @param now - ms since the epoch
 * @returns the waiver with status `revoked`, `revokedAt` and `revokedBy`
 */
export function revokeWaiver(waiver: Waiver, by: string, now: number): Waiver {
  return { ...waiver, status: 'revoked', revokedAt: now, revokedBy: by };
}

/**
 * Checks a waiver before it is granted: the rules a stored waiver must keep, plus an expiry in the
 * future.
 *
 * @param waiver - the waiver
 * @param now - ms since the epoch
 * @param knownGates - the gates that exist (judge names and {@link FINE_GATES}); unchecked when omitted
 * @returns problems, one sentence each (empty when it is fine)
 */
export function checkWaiver(waiver: Waiver, now: number, knownGates?: readonly string[]): string[] {
  const problems: string[] = [];
  if (!isWaiverId(waiver.id)) problems.push(`id "${waiver.id}" is not a waiver id such as WV-0001`);
  if (waiver.gates.length === 0)
    problems.push('it names no gate; name the gates it lifts, such as quality or budget');
  if (knownGates !== undefined) {
    for (const g of waiver.gates) {
      if (!knownGates.includes(g)) problems.push(`gate "${g}" is unknown (gates: ${knownGates.join(', ')})`);
    }
  }
  if (waiver.reason.trim().length < MIN_REASON_LENGTH) {
    problems.push(`its reason is too short; say why it is needed (at least ${MIN_REASON_LENGTH} characters)`);
  }
  if (waiver.approvers.filter((a) => a.trim() !== '').length === 0) problems.push('it has no approver');
  if (!Number.isFinite(waiver.expiresAt)) problems.push('it has no valid expiry');
  else if (waiver.expiresAt <= now)
    problems.push(`it expires in the past (${new Date(waiver.expiresAt).toISOString()})`);
  if (waiver.createdAt !== undefined && waiver.createdAt > waiver.expiresAt) {
    problems.push('it expires before it was created');
  }
  if (waiver.status === 'revoked' && waiver.revokedAt === undefined)
    problems.push('it is revoked without a time');
  return problems;
}

const timeSchema = z
  .union([z.number(), z.string(), z.date()], {
    error: 'expected a time: an ISO 8601 date such as "2025-12-31T23:59:59Z" or ms since the epoch',
  })
  .transform((v, ctx) => {
    const ms = typeof v === 'number' ? v : v instanceof Date ? v.getTime() : Date.parse(v);
    if (!Number.isFinite(ms)) {
      ctx.addIssue({
        code: 'custom',
        message: 'expected a time: an ISO 8601 date such as "2025-12-31T23:59:59Z" or ms since the epoch',
        params: { showFound: true },
      });
      return z.NEVER;
    }
    return ms;
  });

const nonEmpty = (what: string) =>
  z
    .string({ error: `expected ${what} as a string` })
    .trim()
    .min(1, { error: `expected ${what} (not empty)` });

/**
 * A waiver as written (snake_case; YAML or JSON): `id`, `title?`, `gates`, `reason`, `approvers`
 * (or `approved_by`: a name or a list), `created_at?`, `expires_at` (ISO 8601 or ms), `status?`
 * (default `active`), `revoked_at?`, `revoked_by?`. Outputs a {@link Waiver}.
 */
export const waiverSchema = strictFields(
  {
    id: z.string({ error: 'expected a waiver id such as "WV-0001"' }).regex(WAIVER_ID_PATTERN, {
      error: 'expected a waiver id such as "WV-0001"',
    }),
    title: nonEmpty('a title').optional(),
    gates: z
      .array(
        z.string({ error: 'expected a gate name' }).regex(NAME_PATTERN, {
          error: 'expected a gate name such as "quality" or "budget"',
        }),
        { error: 'expected a list of gates such as [quality] or [budget]' },
      )
      .min(1, { error: 'expected at least one gate, such as [quality] or [budget]' }),
    reason: z
      .string({ error: 'expected the reason as a string' })
      .trim()
      .min(MIN_REASON_LENGTH, { error: `expected a reason of at least ${MIN_REASON_LENGTH} characters` }),
    approvers: z
      .array(nonEmpty('an approver'), { error: 'expected a list of approvers' })
      .min(1, { error: 'expected at least one approver' })
      .optional(),
    approved_by: z.union([nonEmpty('an approver'), z.array(nonEmpty('an approver'))]).optional(),
    created_at: timeSchema.optional(),
    expires_at: timeSchema,
    status: z
      .enum(['active', 'expired', 'revoked'], { error: 'expected "active", "expired" or "revoked"' })
      .optional(),
    revoked_at: timeSchema.optional(),
    revoked_by: nonEmpty('who revoked it').optional(),
  },
  'a waiver',
)
  .superRefine((w, ctx) => {
    if (w.approvers === undefined && w.approved_by === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['approvers'],
        message: 'expected "approvers": who approved the waiver (at least one name)',
      });
    }
  })
  .transform((w): Waiver => {
    const by =
      w.approved_by === undefined ? [] : Array.isArray(w.approved_by) ? w.approved_by : [w.approved_by];
    const out: Waiver = {
      id: w.id,
      gates: [...new Set(w.gates)],
      reason: w.reason,
      approvers: [...new Set([...(w.approvers ?? []), ...by])],
      expiresAt: w.expires_at,
      status: w.status ?? (w.revoked_at !== undefined ? 'revoked' : 'active'),
    };
    if (w.title !== undefined) out.title = w.title;
    if (w.created_at !== undefined) out.createdAt = w.created_at;
    if (w.revoked_at !== undefined) out.revokedAt = w.revoked_at;
    if (w.revoked_by !== undefined) out.revokedBy = w.revoked_by;
    return out;
  });

/**
 * Validates a waiver given as data.
 *
 * @param value - the waiver, snake_case
 * @param where - what it is called in messages (`waiver file .smith/waivers/WV-0001.yaml`)
 * @returns the waiver
 * @throws ConfigError (code `CONFIG_INVALID`) listing every problem as `<where>: <field>: expected …, found …`
 */
export function parseWaiver(value: unknown, where: string): Waiver {
  return validate(waiverSchema, value, { display: where }, 'waiver');
}
