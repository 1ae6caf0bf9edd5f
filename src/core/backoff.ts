/**
 * Exponential backoff with jitter, after "Exponential Backoff And Jitter" (Marc Brooker, AWS
 * Architecture Blog, 2015): the n-th delay is `min(maxMs, baseMs * factor^(n-1))`, and with
 * `jitter: 'full'` a uniform random value in `[0, that]`; with `'equal'` half of it fixed plus a
 * random half.
 */

/** Backoff settings. Durations in ms. */
export interface BackoffOptions {
  /** The first delay before jitter. Default 1000 ms. */
  baseMs?: number;
  /** The cap before jitter. Default 60000 ms. */
  maxMs?: number;
  /** Growth per retry. Default 2. */
  factor?: number;
  /** `full` (default), `equal`, or `none`. */
  jitter?: 'full' | 'equal' | 'none';
}

/**
 * The delay in ms before retry number `n` (1 = the first retry).
 * @param n - retry number, >= 1
 * @param options - see {@link BackoffOptions}
 * @param random - a source of uniform numbers in [0, 1) (default `Math.random`)
 */
export function backoffDelay(
  n: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const base = options.baseMs ?? 1000;
  const max = options.maxMs ?? 60_000;
  const factor = options.factor ?? 2;
  const exp = Math.min(max, base * Math.pow(factor, Math.max(0, n - 1)));
  switch (options.jitter ?? 'full') {
    case 'none':
      return exp;
    case 'equal':
      return exp / 2 + random() * (exp / 2);
    default:
      return random() * exp;
  }
}
