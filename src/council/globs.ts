/**
 * Path globs of working specs and policies, matched with picomatch against paths relative to the
 * repository root (`/`-separated, as git prints them).
 */
import picomatch from 'picomatch';

/** Characters that make a pattern a glob rather than a plain path. */
const GLOB_CHARS = /[*?[\]{}()!+@]/;

/**
 * The patterns one written glob stands for: `./` is dropped; `dir/` means everything under `dir`;
 * a plain path (no glob characters) means that file or everything under that directory.
 *
 * @param glob - as written
 * @returns picomatch patterns
 */
export function expandGlob(glob: string): string[] {
  let g = glob.trim().replace(/^(\.\/)+/, '');
  if (g === '' || g === '.' || g === '/') return ['**'];
  g = g.replace(/^\/+/, '');
  if (g.endsWith('/')) return [`${g}**`];
  if (!GLOB_CHARS.test(g)) return [g, `${g}/**`];
  return [g];
}

/**
 * Compiles globs into one predicate (dotfiles match; see {@link expandGlob}).
 *
 * @param globs - as written
 * @returns true for a path that any glob matches (never for an empty list)
 */
export function globMatcher(globs: readonly string[]): (file: string) => boolean {
  if (globs.length === 0) return () => false;
  const isMatch = picomatch(globs.flatMap(expandGlob), { dot: true });
  return (file) => isMatch(file);
}

/**
 * The first glob that matches a path, to name it in messages.
 *
 * @param globs - as written
 * @param file - a repository-relative path
 * @returns the glob, or undefined
 */
export function firstMatchingGlob(globs: readonly string[], file: string): string | undefined {
  return globs.find((g) => picomatch(expandGlob(g), { dot: true })(file));
}

/**
 * Checks that a glob compiles.
 *
 * @param glob - as written
 * @returns an error message, or undefined when it is fine
 */
export function globProblem(glob: string): string | undefined {
  try {
    picomatch.makeRe(expandGlob(glob)[0] ?? glob);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
