import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { MAX_DURATION_MS, describeFound, parseBytes, parseDuration } from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['10m', 600_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1.5s', 1500],
    ['1h30m', 5_400_000],
    ['1h 30m', 5_400_000],
    [' 45s ', 45_000],
    ['250', 250],
    [0, 0],
    [1234, 1234],
  ] as const)('reads %j as %d ms', (input, ms) => {
    expect(parseDuration(input, 'x')).toBe(ms);
  });

  it.each(['', 'soon', '5 minutes', '10M', '-1s', 's', '1h30', '1.2.3s'])(
    'rejects %j naming the field',
    (input) => {
      expect(() => parseDuration(input, 'tasks.test.timeout')).toThrow(ConfigError);
      expect(() => parseDuration(input, 'tasks.test.timeout')).toThrow(
        /^tasks\.test\.timeout: expected .*found "/,
      );
    },
  );

  it('rejects negative and non-finite numbers', () => {
    expect(() => parseDuration(-1, 'defaults.timeout')).toThrow(/defaults\.timeout: expected .*found -1/);
    expect(() => parseDuration(Number.POSITIVE_INFINITY, 'defaults.timeout')).toThrow(ConfigError);
  });

  it('names the unknown unit', () => {
    expect(() => parseDuration('5min', 'x')).toThrow(/unknown unit "min" \(use ms, s, m, h or d\)/);
  });

  it("rejects durations longer than Node's timer limit", () => {
    expect(parseDuration('24d', 'x')).toBe(24 * 86_400_000);
    expect(() => parseDuration('25d', 'x')).toThrow(/at most 24d/);
    expect(() => parseDuration(MAX_DURATION_MS + 1, 'x')).toThrow(ConfigError);
  });

  it('puts where and value in the error context', () => {
    try {
      parseDuration('x', 'agents.sh.timeout');
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).code).toBe('CONFIG_INVALID');
      expect((err as ConfigError).context).toEqual({ where: 'agents.sh.timeout', value: 'x' });
    }
  });
});

describe('parseBytes', () => {
  it.each([
    [0, 0],
    [4096, 4096],
    ['100', 100],
    ['100B', 100],
    ['512KiB', 524_288],
    ['1MiB', 1_048_576],
    ['1mib', 1_048_576],
    ['2GiB', 2 * 1024 ** 3],
    ['1KB', 1000],
    ['1.5MB', 1_500_000],
    ['0.5KiB', 512],
  ] as const)('reads %j as %d bytes', (input, bytes) => {
    expect(parseBytes(input, 'x')).toBe(bytes);
  });

  it.each(['', 'big', '1 MegaByte', '-1KiB', '1TiB'])('rejects %j naming the field', (input) => {
    expect(() => parseBytes(input, 'agents.sh.output_limit')).toThrow(
      /^agents\.sh\.output_limit: expected a size/,
    );
  });

  it('rejects negative numbers', () => {
    expect(() => parseBytes(-5, 'x')).toThrow(/found -5/);
  });
});

describe('describeFound', () => {
  it('renders values for messages', () => {
    expect(describeFound('four')).toBe('"four"');
    expect(describeFound(11)).toBe('11');
    expect(describeFound(true)).toBe('true');
    expect(describeFound(null)).toBe('null (an empty value)');
    expect(describeFound(undefined)).toBe('nothing');
    expect(describeFound([1])).toBe('a list');
    expect(describeFound([])).toBe('an empty list');
    expect(describeFound({ a: 1 })).toBe('a map');
    expect(describeFound('x'.repeat(100))).toBe(`"${'x'.repeat(57)}..."`);
  });
});
