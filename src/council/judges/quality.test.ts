import { describe, expect, it } from 'vitest';
import type { DiffLine } from '../git.js';
import {
  commentOf,
  findEmptyFunctions,
  findPlaceholders,
  findSkippedTests,
  isTestFile,
  removedTestCases,
} from './quality.js';

function lines(...texts: string[]): DiffLine[] {
  return texts.map((text, i) => ({ line: i + 1, text }));
}

describe('findPlaceholders', () => {
  it.each([
    ['a.ts', '  // TODO: handle errors', 'placeholder.marker'],
    ['a.ts', '  /* FIXME later */', 'placeholder.marker'],
    ['a.ts', '   * @todo write docs', 'placeholder.marker'],
    ['a.py', '    pass  # TODO', 'placeholder.marker'],
    ['a.go', '\t// XXX: racy', 'placeholder.marker'],
    ['a.sql', 'SELECT 1; -- HACK around the planner', 'placeholder.marker'],
    ['a.ts', "  throw new Error('not implemented');", 'placeholder.not_implemented'],
    ['a.ts', '  throw new Error("Not yet implemented: save");', 'placeholder.not_implemented'],
    ['a.ts', "  throw new Error('TODO');", 'placeholder.not_implemented'],
    ['A.cs', '  throw new NotImplementedException();', 'placeholder.not_implemented'],
    ['a.py', '    raise NotImplementedError', 'placeholder.not_implemented'],
    ['a.rs', '    unimplemented!()', 'placeholder.not_implemented'],
    ['a.rs', '    todo!("later")', 'placeholder.not_implemented'],
    ['a.go', '\tpanic("not implemented")', 'placeholder.not_implemented'],
  ])('%s: %s', (file, text, rule) => {
    expect(findPlaceholders(file, lines(text)).map((f) => f.rule)).toEqual([rule]);
  });

  it.each([
    ['a.ts', 'const todo = loadTodoList(); // the todo app'],
    ['a.ts', "const label = 'TODO list';"],
    ['a.ts', 'const url = "http://example.test/TODO";'],
    ['a.ts', 'class A { #TODO = 1 }'],
    ['a.ts', '// Todo items are stored in the database'],
    ['README.md', '- [ ] TODO: write the docs'],
    ['notes.txt', 'TODO'],
    ['a.ts', "throw new Error('invalid input');"],
    ['a.py', "print('# TODO')"],
  ])('ignores %s: %s', (file, text) => {
    expect(findPlaceholders(file, lines(text))).toEqual([]);
  });

  it('allows NotImplementedError in an abstract method', () => {
    const added = lines(
      '    @abstractmethod',
      '    def area(self) -> float:',
      '        raise NotImplementedError',
    );
    expect(findPlaceholders('shape.py', added)).toEqual([]);
  });

  it('reports line numbers of the new file', () => {
    const added: DiffLine[] = [
      { line: 10, text: 'const a = 1;' },
      { line: 11, text: '// FIXME' },
    ];
    expect(findPlaceholders('a.js', added)).toEqual([
      { rule: 'placeholder.marker', line: 11, what: 'FIXME comment' },
    ]);
  });
});

describe('commentOf', () => {
  it('skips strings and knows the language', () => {
    expect(commentOf('const s = "// not a comment"; // real', 'a.ts')).toBe(' real');
    expect(commentOf('x = 1  # note', 'a.py')).toBe(' note');
    expect(commentOf("it's fine # note", 'a.sh')).toBe(' note');
    expect(commentOf('const x = a#b;', 'a.ts')).toBeUndefined();
  });
});

describe('findEmptyFunctions', () => {
  it.each([
    'export function saveUser(user: User): void {}',
    'export async function loadUser(id: string): Promise<User> {}',
    'const handleSubmit = () => {};',
    'const handleSubmit = async (e: Event): Promise<void> => {};',
    'export const parse = function (input) {};',
    'const validate = input => {};',
    '  async refresh(token: string): Promise<void> {}',
    '  private compute(a: number, b: number) {}',
  ])('flags %s', (text) => {
    expect(findEmptyFunctions('src/a.ts', lines(text)).map((f) => f.rule)).toEqual(['stub.empty_function']);
  });

  it('flags braces on two lines, at the line of the function', () => {
    const found = findEmptyFunctions('src/a.ts', [
      { line: 4, text: 'export function save(data: string) {' },
      { line: 5, text: '}' },
    ]);
    expect(found).toEqual([{ rule: 'stub.empty_function', line: 4, what: 'empty function "save"' }]);
  });

  it.each([
    'promise.catch(() => {});',
    'const noop = () => {};',
    'function _unused() {}',
    '  constructor(private readonly db: Db) {}',
    '  dispose(): void {}',
    'if (ready) {}',
    '} catch (err) {}',
    'for (const x of xs) {}',
    'while (next()) {}',
    'export function add(a: number, b: number) { return a + b; }',
    'emitter.on("data", function () {});',
    'const x = {};',
    'export interface Store { save(x: string): void; }',
  ])('does not flag %s', (text) => {
    expect(findEmptyFunctions('src/a.ts', lines(text))).toEqual([]);
  });

  it('does not look at test files, declaration files or other languages', () => {
    expect(findEmptyFunctions('src/a.test.ts', lines('function helper() {}'))).toEqual([]);
    expect(findEmptyFunctions('src/a.d.ts', lines('function helper() {}'))).toEqual([]);
    expect(findEmptyFunctions('src/a.py', lines('function helper() {}'))).toEqual([]);
  });
});

describe('findSkippedTests', () => {
  // these strings are inputs for the skip detector (lines an agent might add), not skipped tests here
  it.each([
    "it.skip('works', () => {});",
    "describe.skip('suite', () => {});",
    "test.skip('works', () => {});",
    "it.todo('later');",
    "xit('works', () => {});",
    "xdescribe('suite', () => {});",
    "it.only('this one', () => {});",
    '@pytest.mark.skip(reason="flaky")',
    '@pytest.mark.skip',
    '@unittest.skip("later")',
    '\tt.Skip("needs network")',
    '#[ignore]',
    '@Disabled',
  ])('flags %s', (text) => {
    expect(findSkippedTests('x.test.ts', lines(text)).map((f) => f.rule)).toEqual(['test.skipped']);
  });

  it.each([
    "it.skipIf(process.platform === 'win32')('posix only', () => {});",
    '@pytest.mark.skipif(sys.platform == "win32", reason="posix")',
    'process.exit(1);',
    "it('works', () => {});",
  ])('allows %s', (text) => {
    expect(findSkippedTests('x.test.ts', lines(text))).toEqual([]);
  });
});

describe('test files and removed cases', () => {
  it.each([
    ['src/a.test.ts', true],
    ['src/a.spec.js', true],
    ['tests/test_api.py', true],
    ['pkg/api_test.go', true],
    ['src/test/java/FooTest.java', true],
    ['spec/user_spec.rb', true],
    ['src/__tests__/a.ts', true],
    ['tests/integration.rs', true],
    ['src/testing.ts', false],
    ['test/fixtures/data.json', false],
  ])('%s is a test file: %s', (p, expected) => {
    expect(isTestFile(p)).toBe(expected);
  });

  it('counts removed test cases beyond those added back', () => {
    const removed: DiffLine[] = [
      { line: 3, text: "  it('adds', () => {" },
      { line: 7, text: "  it('subtracts', () => {" },
      { line: 9, text: '  expect(1).toBe(1);' },
    ];
    expect(removedTestCases({ removedLines: removed, addedLines: [] })).toEqual(removed.slice(0, 2));
    // A renamed test is not a removal.
    expect(
      removedTestCases({
        removedLines: removed.slice(0, 1),
        addedLines: [{ line: 3, text: "  it('adds two', () => {" }],
      }),
    ).toEqual([]);
    // A skipped one is flagged as skipped, not as removed (the line is judged input, not a skip here).
    expect(
      removedTestCases({
        removedLines: removed.slice(0, 1),
        addedLines: [{ line: 3, text: "  it.skip('adds', () => {" }],
      }),
    ).toEqual([]);
    expect(
      removedTestCases({ removedLines: [{ line: 4, text: 'def test_login(client):' }], addedLines: [] }),
    ).toHaveLength(1);
  });
});
