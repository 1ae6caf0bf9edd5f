import { randomBytes } from 'node:crypto';

/**
 * Time-sortable identifiers in the ULID layout (48-bit milliseconds, 80 random bits,
 * Crockford base32; https://github.com/ulid/spec), prefixed by kind: `t_` task, `w_` workflow,
 * `a_` attempt. Monotonic within one process: ids made in the same millisecond increase.
 */

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
let lastTime = -1;
const lastRandom = new Uint8Array(16); // 16 base32 digits of randomness (80 bits)
let pool = randomBytes(4096);
let poolPos = 0;

function refill(): void {
  for (let i = 0; i < 16; i++) {
    if (poolPos >= pool.length) {
      pool = randomBytes(4096);
      poolPos = 0;
    }
    lastRandom[i] = pool[poolPos++]! & 31;
  }
}

function increment(): void {
  for (let i = 15; i >= 0; i--) {
    if (lastRandom[i]! < 31) {
      lastRandom[i]!++;
      return;
    }
    lastRandom[i] = 0;
  }
}

/**
 * A new ULID string (26 characters).
 * @param now - the time in ms since the epoch (default `Date.now()`)
 */
export function ulid(now: number = Date.now()): string {
  if (now <= lastTime) {
    increment();
    now = lastTime;
  } else {
    lastTime = now;
    refill();
  }
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  let rand = '';
  for (let i = 0; i < 16; i++) rand += ALPHABET[lastRandom[i]!]!;
  return time + rand;
}

/** Kinds of id and their prefixes. */
export const ID_PREFIX = { task: 't_', workflow: 'w_', attempt: 'a_', owner: 'o_', query: 'q_' } as const;

/** A new id of `kind`, e.g. `t_01J…`. */
export function newId(kind: keyof typeof ID_PREFIX): string {
  return ID_PREFIX[kind] + ulid();
}
