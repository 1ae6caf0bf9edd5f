import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { detectTestCommand, TEST_MANIFESTS } from './detect-tests.js';

const dirs: string[] = [];

function repo(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'smith-detect-'));
  dirs.push(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('detectTestCommand', () => {
  it('finds an npm test script', () => {
    const dir = repo({ 'package.json': JSON.stringify({ scripts: { test: 'vitest run' } }) });
    expect(detectTestCommand(dir)).toEqual({ tool: 'npm', argv: ['npm', 'test'], manifest: 'package.json' });
  });

  it('prefers a test:quick script', () => {
    const dir = repo({
      'package.json': JSON.stringify({ scripts: { test: 'vitest run', 'test:quick': 'vitest run src' } }),
    });
    expect(detectTestCommand(dir)).toEqual({
      tool: 'npm',
      argv: ['npm', 'run', 'test:quick'],
      manifest: 'package.json',
    });
  });

  it("ignores npm's default failing test script and a package.json without one", () => {
    const npmDefault = { scripts: { test: 'echo "Error: no test specified" && exit 1' } };
    expect(detectTestCommand(repo({ 'package.json': JSON.stringify(npmDefault) }))).toBeNull();
    expect(detectTestCommand(repo({ 'package.json': JSON.stringify({ name: 'x' }) }))).toBeNull();
    expect(detectTestCommand(repo({ 'package.json': '{ not json' }))).toBeNull();
  });

  it('falls through to another manifest when the npm script is the default', () => {
    const dir = repo({
      'package.json': JSON.stringify({ scripts: { test: 'echo "Error: no test specified" && exit 1' } }),
      'go.mod': 'module example.com/x\n',
    });
    expect(detectTestCommand(dir)?.tool).toBe('go');
  });

  it.each([
    [{ 'pytest.ini': '[pytest]\n' }, 'pytest.ini'],
    [{ 'pyproject.toml': '[tool.pytest.ini_options]\naddopts = "-q"\n' }, 'pyproject.toml'],
    [{ 'setup.cfg': '[tool:pytest]\ntestpaths = tests\n' }, 'setup.cfg'],
    [{ 'tox.ini': '[pytest]\n' }, 'tox.ini'],
    [{ 'tests/test_app.py': 'def test_a():\n    assert True\n' }, 'tests/'],
    [{ 'tests/unit/test_deep.py': 'def test_a():\n    assert True\n' }, 'tests/'],
  ])('finds pytest from %o', (files, manifest) => {
    expect(detectTestCommand(repo(files))).toEqual({
      tool: 'pytest',
      argv: ['python3', '-m', 'pytest', '-q'],
      manifest,
    });
  });

  it('does not take a pyproject.toml without pytest for a pytest project', () => {
    expect(detectTestCommand(repo({ 'pyproject.toml': '[project]\nname = "x"\n' }))).toBeNull();
  });

  it('finds go, cargo and make', () => {
    expect(detectTestCommand(repo({ 'go.mod': 'module x\n' }))).toEqual({
      tool: 'go',
      argv: ['go', 'test', './...'],
      manifest: 'go.mod',
    });
    expect(detectTestCommand(repo({ 'Cargo.toml': '[package]\nname = "x"\n' }))).toEqual({
      tool: 'cargo',
      argv: ['cargo', 'test'],
      manifest: 'Cargo.toml',
    });
    expect(detectTestCommand(repo({ Makefile: 'build:\n\tcc x.c\n\ntest: build\n\t./run-tests\n' }))).toEqual(
      {
        tool: 'make',
        argv: ['make', 'test'],
        manifest: 'Makefile',
      },
    );
  });

  it('ignores a Makefile without a test rule (a variable named test is not one)', () => {
    expect(detectTestCommand(repo({ Makefile: 'test := 1\nbuild:\n\tcc x.c\n' }))).toBeNull();
  });

  it('returns null for an empty directory, and lists what it checks', () => {
    expect(detectTestCommand(repo({}))).toBeNull();
    expect(TEST_MANIFESTS).toContain('package.json');
    expect(TEST_MANIFESTS).toContain('Makefile');
  });
});
