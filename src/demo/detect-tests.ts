/**
 * Finds a repository's own test command from its manifests, for the demo's `tests` agent.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The test runners the demo knows how to start. */
export type TestTool = 'npm' | 'pytest' | 'go' | 'cargo' | 'make';

/** A detected test command. */
export interface DetectedTestCommand {
  /** Which runner. */
  tool: TestTool;
  /** The command to run with cwd = the repository, e.g. `['npm', 'test']`. */
  argv: string[];
  /** The repository-relative manifest it was detected from (`package.json`, `tests/`, …). */
  manifest: string;
}

/**
 * The manifests {@link detectTestCommand} looks at, in the order it looks (the first match wins).
 */
export const TEST_MANIFESTS: readonly string[] = [
  'package.json',
  'pyproject.toml',
  'pytest.ini',
  'setup.cfg',
  'tox.ini',
  'tests/',
  'go.mod',
  'Cargo.toml',
  'Makefile',
];

/** The test script `npm init` writes, which only fails: `echo "Error: no test specified" && exit 1`. */
const NPM_DEFAULT_TEST_MARK = 'no test specified';

function readText(path: string): string | null {
  try {
    if (!statSync(path).isFile()) return null;
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The npm script a repository may declare for a quick run of its tests (preferred by the demo). */
export const NPM_QUICK_TEST_SCRIPT = 'test:quick';

/** Which npm test script to run: `test:quick` when declared, else `test`, else none. */
function npmTestScript(dir: string): 'quick' | 'test' | false {
  const text = readText(join(dir, 'package.json'));
  if (text === null) return false;
  let pkg: unknown;
  try {
    pkg = JSON.parse(text);
  } catch {
    return false;
  }
  if (pkg === null || typeof pkg !== 'object') return false;
  const scripts = (pkg as { scripts?: unknown }).scripts;
  if (scripts === null || typeof scripts !== 'object') return false;
  const quick = (scripts as Record<string, unknown>)[NPM_QUICK_TEST_SCRIPT];
  if (typeof quick === 'string' && quick.trim() !== '') return 'quick';
  const test = (scripts as { test?: unknown }).test;
  return typeof test === 'string' && test.trim() !== '' && !test.includes(NPM_DEFAULT_TEST_MARK)
    ? 'test'
    : false;
}

/** Whether a directory holds pytest-style test files (`test_*.py`, `*_test.py`), looking `depth` levels down. */
function hasPytestFiles(dir: string, depth: number): boolean {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  for (const e of entries) {
    if (e.isFile() && /^test_.*\.py$|_test\.py$/.test(e.name)) return true;
  }
  if (depth <= 0) return false;
  for (const e of entries) {
    if (e.isDirectory() && !e.name.startsWith('.') && e.name !== '__pycache__' && e.name !== 'node_modules') {
      if (hasPytestFiles(join(dir, e.name), depth - 1)) return true;
    }
  }
  return false;
}

function pytestManifest(dir: string): string | null {
  if (existsSync(join(dir, 'pytest.ini'))) return 'pytest.ini';
  const pyproject = readText(join(dir, 'pyproject.toml'));
  if (pyproject !== null && /\bpytest\b/.test(pyproject)) return 'pyproject.toml';
  const setupCfg = readText(join(dir, 'setup.cfg'));
  if (setupCfg !== null && /\bpytest\b/.test(setupCfg)) return 'setup.cfg';
  const tox = readText(join(dir, 'tox.ini'));
  if (tox !== null && /^\[pytest\]/m.test(tox)) return 'tox.ini';
  for (const testDir of ['tests', 'test']) {
    if (hasPytestFiles(join(dir, testDir), 2)) return `${testDir}/`;
  }
  return null;
}

function makeTestTarget(dir: string): string | null {
  for (const name of ['GNUmakefile', 'Makefile', 'makefile']) {
    const text = readText(join(dir, name));
    // A rule `test:` or `test: deps`, not a variable `test := …`.
    if (text !== null && /^test\s*:(?!=)/m.test(text)) return name;
  }
  return null;
}

/**
 * Detect the test command a repository declares, looking at {@link TEST_MANIFESTS} in order:
 * a `package.json` with a `test:quick` script → `npm run test:quick` (a repository's quick tests,
 * for a demo that should take about a minute), else whose `scripts.test` is not npm's default failing
 * stub → `npm test`; pytest
 * configuration (`pytest.ini`, or `pyproject.toml` / `setup.cfg` mentioning pytest, or `tox.ini` with a
 * `[pytest]` section) or `test_*.py` files under `tests/` or `test/` → `python3 -m pytest -q`; `go.mod` →
 * `go test ./...`; `Cargo.toml` → `cargo test`; a Makefile with a `test:` rule → `make test`.
 *
 * @param dir - the repository's directory
 * @returns the command, or null when none is declared
 * @example
 * detectTestCommand('/src/app'); // { tool: 'npm', argv: ['npm', 'test'], manifest: 'package.json' }
 */
export function detectTestCommand(dir: string): DetectedTestCommand | null {
  const npm = npmTestScript(dir);
  if (npm === 'quick') {
    return { tool: 'npm', argv: ['npm', 'run', NPM_QUICK_TEST_SCRIPT], manifest: 'package.json' };
  }
  if (npm === 'test') return { tool: 'npm', argv: ['npm', 'test'], manifest: 'package.json' };
  const pytest = pytestManifest(dir);
  if (pytest !== null) return { tool: 'pytest', argv: ['python3', '-m', 'pytest', '-q'], manifest: pytest };
  if (existsSync(join(dir, 'go.mod')))
    return { tool: 'go', argv: ['go', 'test', './...'], manifest: 'go.mod' };
  if (existsSync(join(dir, 'Cargo.toml'))) {
    return { tool: 'cargo', argv: ['cargo', 'test'], manifest: 'Cargo.toml' };
  }
  const makefile = makeTestTarget(dir);
  if (makefile !== null) return { tool: 'make', argv: ['make', 'test'], manifest: makefile };
  return null;
}
