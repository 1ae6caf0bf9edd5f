import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { countLines, languageOf } from './inventory.js';
import { isExcluded, scanText } from './placeholders.js';
import { decileReporter, looksBinary, mapLimit, parseTaskInput, readTaskInput } from './protocol.js';
import { formatReport } from './report.js';
import { createSummaryParser, stripAnsi } from './tests.js';

// Marker words are assembled so that this file holds none of them.
const todoMark = 'TO' + 'DO';
const fixmeMark = 'FIX' + 'ME';

describe('inventory helpers', () => {
  it('maps extensions to languages', () => {
    expect(languageOf('src/a.ts')).toBe('TypeScript');
    expect(languageOf('web/App.TSX')).toBe('TypeScript');
    expect(languageOf('bin/x.mjs')).toBe('JavaScript');
    expect(languageOf('a/b.yml')).toBe('YAML');
    expect(languageOf('main.go')).toBe('Go');
    expect(languageOf('x.hpp')).toBe('C++');
    expect(languageOf('x.h')).toBe('C');
    expect(languageOf('Makefile')).toBe('other');
    expect(languageOf('.gitignore')).toBe('other');
  });

  it('counts lines, with or without a final newline', () => {
    expect(countLines(Buffer.from(''))).toBe(0);
    expect(countLines(Buffer.from('a'))).toBe(1);
    expect(countLines(Buffer.from('a\n'))).toBe(1);
    expect(countLines(Buffer.from('a\nb'))).toBe(2);
    expect(countLines(Buffer.from('\n\n\n'))).toBe(3);
  });
});

describe('placeholder scan', () => {
  it('finds marker words in comments only', () => {
    const text = [
      `// ${todoMark}: later`,
      `const s = '${todoMark}';`,
      `/* ${fixmeMark} */`,
      ` * ${todoMark} in a block`,
    ].join('\n');
    expect(scanText('a.ts', text).map((f) => [f.line, f.kind])).toEqual([
      [1, todoMark],
      [3, fixmeMark],
      [4, todoMark],
    ]);
  });

  it('does not take a URL for a comment, nor a longer word for a marker', () => {
    expect(scanText('a.ts', `const u = 'https://example.com/${todoMark}';`)).toEqual([]);
    expect(scanText('a.py', `# ${todoMark}S are listed elsewhere`)).toEqual([]);
  });

  it('uses the comment syntax of the file type', () => {
    expect(scanText('a.py', `x = 1  # ${todoMark} tidy`)).toHaveLength(1);
    expect(scanText('README.md', `# ${todoMark} list`)).toEqual([]);
    expect(scanText('README.md', `<!-- ${todoMark}: write -->`)).toHaveLength(1);
    expect(scanText('data.json', `{"note": "// ${todoMark}"}`)).toEqual([]);
  });

  it('finds stubs, not-implemented throws and skipped tests', () => {
    const lines = [
      `throw new Error('not ${'implemented'}');`,
      `  raise NotImplemented${'Error'}`,
      `  pass  # st${'ub'}`,
      `it.sk${'ip'}('later', () => {});`,
      `x${'it'}('later', () => {});`,
      `@pytest.mark.sk${'ip'}(reason="x")`,
      `@pytest.mark.skipif(sys.platform == "win32", reason="x")`,
      `un${'implemented'}!()`,
    ];
    const kinds = lines.map((l) =>
      scanText(l.startsWith('@') || l.includes('raise') || l.includes('pass') ? 'a.py' : 'a.ts', l).map(
        (f) => f.kind,
      ),
    );
    expect(kinds).toEqual([
      ['not-implemented'],
      ['not-implemented'],
      ['stub'],
      ['skipped-test'],
      ['skipped-test'],
      ['skipped-test'],
      [],
      ['not-implemented'],
    ]);
  });

  it('excludes dependencies, build output, lockfiles, minified files and its own source', () => {
    expect(isExcluded('node_modules/x/index.js')).toBe(true);
    expect(isExcluded('packages/a/dist/index.js')).toBe(true);
    expect(isExcluded('vendor/lib.go')).toBe(true);
    expect(isExcluded('package-lock.json')).toBe(true);
    expect(isExcluded('web/app.min.js')).toBe(true);
    expect(isExcluded('src/demo/agents/placeholders.ts')).toBe(true);
    expect(isExcluded('src/demo/agents/placeholders.test.ts')).toBe(true);
    expect(isExcluded('src/demo/agents/report.ts')).toBe(false);
    expect(isExcluded('src/distance.ts')).toBe(false);
  });
});

describe('test summary parsing', () => {
  const parse = (lines: string[]): ReturnType<ReturnType<typeof createSummaryParser>['counts']> => {
    const p = createSummaryParser();
    for (const l of lines) p.feed(stripAnsi(l));
    return p.counts();
  };

  it('reads vitest, jest, node:test, pytest, cargo and go summaries', () => {
    expect(parse([' Test Files  2 passed (2)', '      Tests  12 passed (12)'])).toEqual({
      passed: 12,
      failed: 0,
    });
    expect(parse(['      Tests  1 failed | 11 passed (12)'])).toEqual({ passed: 11, failed: 1 });
    expect(parse(['Tests:       1 failed, 11 passed, 12 total'])).toEqual({ passed: 11, failed: 1 });
    expect(parse(['# tests 4', '# pass 3', '# fail 1'])).toEqual({ passed: 3, failed: 1 });
    expect(parse(['ℹ pass 5', 'ℹ fail 0'])).toEqual({ passed: 5, failed: 0 });
    expect(parse(['3 passed, 1 failed in 0.12s'])).toEqual({ passed: 3, failed: 1 });
    expect(parse(['========= 7 passed, 2 warnings in 1.02s =========='])).toEqual({ passed: 7, failed: 0 });
    expect(
      parse([
        'test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out',
        'test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out',
      ]),
    ).toEqual({ passed: 6, failed: 2 });
    expect(parse(['ok  \texample.com/a\t0.012s', 'FAIL\texample.com/b\t0.020s', 'FAIL'])).toEqual({
      passed: 1,
      failed: 1,
    });
  });

  it('strips colours and gives nothing for unknown output', () => {
    expect(parse(['\u001b[32m      Tests  3 passed (3)\u001b[39m'])).toEqual({ passed: 3, failed: 0 });
    expect(parse(['hello', 'ok'])).toEqual({});
  });
});

describe('protocol helpers', () => {
  it('parses task JSON with defaults, and rejects what is not an object', () => {
    expect(parseTaskInput('', 'x')).toMatchObject({ key: 'x', needs: {}, attempt: 1 });
    const input = parseTaskInput(
      JSON.stringify({
        id: 't1',
        key: 'report',
        workflow_id: 'w1',
        prompt: 'p',
        attempt: 2,
        needs: { a: { id: 't0', output: { n: 1 } } },
      }),
      'x',
    );
    expect(input).toEqual({
      id: 't1',
      key: 'report',
      workflow_id: 'w1',
      prompt: 'p',
      attempt: 2,
      needs: { a: { id: 't0', output: '{"n":1}' } },
    });
    expect(() => parseTaskInput('[1]', 'x')).toThrow(/not an object/);
    expect(() => parseTaskInput('{', 'x')).toThrow(/does not parse/);
  });

  it('reads the first line of stdin without waiting for its end', async () => {
    const stream = new PassThrough();
    const pending = readTaskInput('x', stream);
    stream.write('{"id":"t1","key":"k",');
    stream.write('"needs":{}}\n{"ignored":true}\n');
    await expect(pending).resolves.toMatchObject({ id: 't1', key: 'k' });
  });

  it('detects binary content, reports deciles and keeps order under a concurrency limit', async () => {
    expect(looksBinary(Buffer.from([65, 0, 66]))).toBe(true);
    expect(looksBinary(Buffer.from('plain text'))).toBe(false);
    const seen: number[] = [];
    const tick = decileReporter(100, (pct) => seen.push(pct));
    for (let i = 0; i < 100; i++) tick();
    expect(seen).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    const out = await mapLimit([3, 1, 2], 2, async (n) => {
      await new Promise((r) => setTimeout(r, n));
      return n * 10;
    });
    expect(out).toEqual([30, 10, 20]);
  });
});

describe('report formatting', () => {
  it('names missing and unparseable inputs instead of failing', () => {
    const text = formatReport(
      { inventory: { id: 't1', output: 'not json at all' }, tests: { id: 't2', output: null } },
      '/r',
    );
    expect(text).toContain('MisterSmith demo report: /r');
    expect(text).toMatch(/Languages\n {2}not available: not json at all/);
    expect(text).toMatch(/Tests\n {2}not available: "tests" gave no output/);
    expect(text).toMatch(/Placeholders\n {2}not available: no "placeholders" input/);
  });

  it('shows a plain-text tests output as it is', () => {
    const text = formatReport({ tests: { id: 't2', output: 'no test command found in package.json' } }, '/r');
    expect(text).toContain('  no test command found in package.json');
  });
});

describe('tidyText', () => {
  it('strips trailing spaces and tabs, adds one final newline, and leaves tidy text as it is', async () => {
    const { tidyText } = await import('./tidy.js');
    expect(tidyText('a  \nb\t\r\nc')).toBe('a\nb\r\nc\n');
    expect(tidyText('x\n')).toBe('x\n');
    expect(tidyText('')).toBe('');
  });
});
