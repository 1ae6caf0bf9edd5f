/**
 * Durations and byte sizes as written in `smith.yaml` and workflow files: `"30s"`, `"10m"`, `"1MiB"`,
 * or plain numbers (ms, bytes). Pure: no I/O.
 */
import { ConfigError } from '../errors.js';

/**
 * The longest duration accepted, in ms: 2^31 - 1 (about 24.8 days). Node's `setTimeout` treats any
 * longer delay as 1 ms, so a longer timeout would fire at once instead of never.
 * Source: Node.js docs, `setTimeout` ("When delay is larger than 2147483647 … the delay will be set to 1").
 */
export const MAX_DURATION_MS = 2_147_483_647;

/** Milliseconds per duration unit. */
const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Bytes per size unit, keyed by lower case. `KiB`/`MiB`/`GiB` are powers of 1024 (IEC 80000-13);
 * `KB`/`MB`/`GB` are powers of 1000 (SI).
 */
const BYTE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** What a duration field accepts, in words (used in error messages). */
export const DURATION_EXPECTED =
  'a duration such as "500ms", "30s", "10m", "2h", "1d" or a number of milliseconds';

/** What a byte-size field accepts, in words (used in error messages). */
export const BYTES_EXPECTED = 'a size such as "512KiB", "1MiB" or a number of bytes';

/**
 * The outcome of checking a value: the number, or what was expected instead (a phrase starting
 * with "expected").
 */
export type Checked = { ok: true; value: number } | { ok: false; expected: string };

const DURATION_PART = /(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]+)/y;

/**
 * Checks a duration without throwing.
 *
 * @param value - a number of ms, or a string of one or more `<number><unit>` parts (`"1h30m"`),
 *   units `ms`, `s`, `m`, `h`, `d`; a string of digits alone is ms
 * @returns the duration in whole ms (rounded), or the expectation it failed
 */
export function checkDuration(value: unknown): Checked {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) {
      return { ok: false, expected: `expected ${DURATION_EXPECTED} (zero or more)` };
    }
    return withinDurationLimit(Math.round(value));
  }
  if (typeof value !== 'string') return { ok: false, expected: `expected ${DURATION_EXPECTED}` };
  const text = value.trim();
  if (/^\d+$/.test(text)) return withinDurationLimit(Number(text));
  if (text === '') return { ok: false, expected: `expected ${DURATION_EXPECTED}` };
  let total = 0;
  let pos = 0;
  while (pos < text.length) {
    DURATION_PART.lastIndex = pos;
    const m = DURATION_PART.exec(text);
    if (!m) return { ok: false, expected: `expected ${DURATION_EXPECTED}` };
    const [, amount = '', unit = ''] = m;
    const perUnit = DURATION_UNITS[unit];
    if (perUnit === undefined) {
      return {
        ok: false,
        expected: `expected ${DURATION_EXPECTED}; unknown unit "${unit}" (use ms, s, m, h or d)`,
      };
    }
    total += Number(amount) * perUnit;
    pos = DURATION_PART.lastIndex;
    while (text[pos] === ' ') pos++;
  }
  return withinDurationLimit(Math.round(total));
}

function withinDurationLimit(ms: number): Checked {
  if (ms > MAX_DURATION_MS) {
    return {
      ok: false,
      expected: `expected a duration of at most 24d (${MAX_DURATION_MS} ms, the longest timer Node.js supports)`,
    };
  }
  return { ok: true, value: ms };
}

/**
 * Checks a byte size without throwing.
 *
 * @param value - a number of bytes, or a string `<number><unit>` with unit `B`, `KB`, `MB`, `GB`
 *   (powers of 1000) or `KiB`, `MiB`, `GiB` (powers of 1024), case-insensitive; digits alone are bytes
 * @returns the size in whole bytes (rounded down), or the expectation it failed
 */
export function checkBytes(value: unknown): Checked {
  let bytes: number;
  if (typeof value === 'number') {
    bytes = value;
  } else if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*$/.exec(value);
    if (!m) return { ok: false, expected: `expected ${BYTES_EXPECTED}` };
    const [, amount = '', unit = ''] = m;
    const perUnit = unit === '' ? 1 : BYTE_UNITS[unit.toLowerCase()];
    if (perUnit === undefined) {
      return {
        ok: false,
        expected: `expected ${BYTES_EXPECTED}; unknown unit "${unit}" (use B, KiB, MiB, GiB, KB, MB or GB)`,
      };
    }
    bytes = Number(amount) * perUnit;
  } else {
    return { ok: false, expected: `expected ${BYTES_EXPECTED}` };
  }
  if (!Number.isFinite(bytes) || bytes < 0 || bytes > Number.MAX_SAFE_INTEGER) {
    return { ok: false, expected: `expected ${BYTES_EXPECTED} (zero or more)` };
  }
  return { ok: true, value: Math.floor(bytes) };
}

/**
 * Renders a value for an error message: strings quoted, lists and maps named, long text cut.
 *
 * @param value - the value found in the input; `undefined` means the field is absent
 * @returns e.g. `"four"`, `11`, `a list`, `a map`, `null (an empty value)`, `nothing`
 */
export function describeFound(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null (an empty value)';
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') {
    const cut = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return JSON.stringify(cut);
  }
  return String(value);
}

/**
 * Parses a duration to milliseconds.
 *
 * @example
 * parseDuration('1h30m', 'defaults.timeout'); // 5_400_000
 * parseDuration(250, 'kill_grace'); // 250
 *
 * @param value - a number of ms, or a string like `"500ms"`, `"30s"`, `"10m"`, `"2h"`, `"1d"`, `"1h30m"`
 *   (a string of digits alone is ms)
 * @param where - what the value is for, named in the error (a field path such as `tasks.test.timeout`)
 * @returns whole milliseconds, 0 ..= {@link MAX_DURATION_MS}
 * @throws ConfigError (code `CONFIG_INVALID`, context `{ where, value }`) when the value is not a
 *   duration, is negative, or is longer than {@link MAX_DURATION_MS}
 */
export function parseDuration(value: string | number, where: string): number {
  const r = checkDuration(value);
  if (r.ok) return r.value;
  throw new ConfigError(`${where}: ${r.expected}, found ${describeFound(value)}`, {
    context: { where, value },
  });
}

/**
 * Parses a byte size to bytes.
 *
 * @example
 * parseBytes('1MiB', 'agents.sh.output_limit'); // 1_048_576
 * parseBytes('512KiB', 'x'); // 524_288
 *
 * @param value - a number of bytes, or a string like `"512KiB"`, `"1MiB"`, `"2GiB"` (powers of 1024) or
 *   `"500KB"`, `"1MB"` (powers of 1000); units are case-insensitive; digits alone are bytes
 * @param where - what the value is for, named in the error (a field path such as `agents.sh.output_limit`)
 * @returns whole bytes (rounded down), 0 ..= `Number.MAX_SAFE_INTEGER`
 * @throws ConfigError (code `CONFIG_INVALID`, context `{ where, value }`) when the value is not a size
 *   or is negative
 */
export function parseBytes(value: string | number, where: string): number {
  const r = checkBytes(value);
  if (r.ok) return r.value;
  throw new ConfigError(`${where}: ${r.expected}, found ${describeFound(value)}`, {
    context: { where, value },
  });
}
