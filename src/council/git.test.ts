import { describe, expect, it } from 'vitest';
import { parsePatch, unquoteC } from './git.js';

describe('parsePatch', () => {
  it('reads added and removed lines with their numbers, by hunk counts', () => {
    const patch = [
      'diff --git a/src/a.sql b/src/a.sql',
      'index 1111111..2222222 100644',
      '--- a/src/a.sql',
      '+++ b/src/a.sql',
      '@@ -2,2 +2 @@ SELECT',
      '--- a comment line that starts with two dashes',
      '-SELECT 2;',
      '+SELECT 3;',
      '@@ -10,0 +10,2 @@',
      '+++ not a header',
      '+last',
      '\\ No newline at end of file',
      'diff --git a/gone.txt b/gone.txt',
      'deleted file mode 100644',
      '--- a/gone.txt',
      '+++ /dev/null',
      '@@ -1 +0,0 @@',
      '-bye',
      'diff --git "a/caf\\303\\251 x.txt" "b/caf\\303\\251 x.txt"',
      'new file mode 100644',
      '--- /dev/null',
      '+++ "b/caf\\303\\251 x.txt"',
      '@@ -0,0 +1 @@',
      '+hello',
      'diff --git a/with space.txt b/with space.txt',
      '--- a/with space.txt\t',
      '+++ b/with space.txt\t',
      '@@ -1 +1 @@',
      '-a',
      '+b',
      '',
    ].join('\n');
    expect(parsePatch(patch)).toEqual([
      {
        path: 'src/a.sql',
        removed: [
          { line: 2, text: '-- a comment line that starts with two dashes' },
          { line: 3, text: 'SELECT 2;' },
        ],
        added: [
          { line: 2, text: 'SELECT 3;' },
          { line: 10, text: '++ not a header' },
          { line: 11, text: 'last' },
        ],
      },
      { path: 'gone.txt', removed: [{ line: 1, text: 'bye' }], added: [] },
      { path: 'café x.txt', removed: [], added: [{ line: 1, text: 'hello' }] },
      { path: 'with space.txt', removed: [{ line: 1, text: 'a' }], added: [{ line: 1, text: 'b' }] },
    ]);
  });

  it('unquotes C-style paths', () => {
    expect(unquoteC('"a\\tb\\"c\\\\d"')).toBe('a\tb"c\\d');
  });
});
