/**
 * Runs the built demo agents as real child processes against temporary git repositories.
 * The agents are compiled from this tree into a temporary directory first (with the settings of
 * tsconfig.build.json), so the test never runs a stale `dist/`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const AGENTS = ['inventory', 'tests', 'placeholders', 'report'] as const;
type AgentName = (typeof AGENTS)[number];

// Marker texts are assembled so that this file holds none of them.
const todoMark = 'TO' + 'DO';
const SKIP = 'sk' + 'ip';

const temps: string[] = [];
let outDir = '';

function tempDir(prefix: string): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  temps.push(dir);
  return dir;
}

/** Compile the agents (and what they import) into `outDir`, mirroring `src/`. */
function compileAgents(out: string): void {
  const configPath = join(ROOT, 'tsconfig.build.json');
  const config = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
  const options: ts.CompilerOptions = {
    ...parsed.options,
    rootDir: join(ROOT, 'src'),
    outDir: out,
    declaration: false,
    sourceMap: false,
    noEmit: false,
  };
  const files = AGENTS.map((a) => join(ROOT, 'src', 'demo', 'agents', `${a}.ts`));
  const program = ts.createProgram(files, options);
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...program.emit().diagnostics];
  if (diagnostics.length > 0) {
    throw new Error(
      ts.formatDiagnostics(diagnostics, {
        getCanonicalFileName: (f) => f,
        getCurrentDirectory: () => ROOT,
        getNewLine: () => '\n',
      }),
    );
  }
}

interface Fixture {
  dir: string;
  /** Expected inventory. */
  files: number;
  lines: number;
  byLanguage: Record<string, { files: number; lines: number }>;
}

function lineCount(text: string): number {
  return text === '' ? 0 : text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

/** A git repository in 3 languages plus JSON and Markdown, with one marker comment and one skipped test. */
function makeFixture(testScript: string | null): Fixture {
  const dir = tempDir('smith-demo-repo-');
  const pkg =
    JSON.stringify(
      {
        name: 'demo-fixture',
        version: '1.0.0',
        private: true,
        ...(testScript === null ? {} : { scripts: { test: testScript } }),
      },
      null,
      2,
    ) + '\n';
  const files: Record<string, string | Buffer> = {
    'src/app.ts': `export const a = 1;\n// ${todoMark}: finish this\nexport const b = 2;\n`,
    'src/util.ts': 'export function f(): number {\n  return 1;\n}',
    'test/app.test.ts': `describe('app', () => {\n  it.${SKIP}('later', () => {});\n});\n`,
    'lib/helper.js': `const s = '${todoMark}';\nmodule.exports = { s };\n`,
    'node_modules/dep/index.js': `// ${todoMark} in a dependency\n`,
    'README.md': '# Fixture\n\nA small repository.\n',
    'package.json': pkg,
    'logo.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x00, 0x0a, 0x0a]),
  };
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  execFileSync('git', ['-c', 'init.defaultBranch=main', 'init', '-q'], { cwd: dir });
  execFileSync('git', ['add', '-A', '-f'], { cwd: dir });
  // Untracked: not counted, not scanned.
  writeFileSync(join(dir, 'notes.txt'), `${todoMark}\n`);
  const json = lineCount(pkg);
  return {
    dir,
    files: 8,
    lines: 3 + 3 + 3 + 2 + 1 + 3 + json,
    byLanguage: {
      TypeScript: { files: 3, lines: 9 },
      JavaScript: { files: 2, lines: 3 },
      Markdown: { files: 1, lines: 3 },
      JSON: { files: 1, lines: json },
      other: { files: 1, lines: 0 },
    },
  };
}

type Event = { type: string; [key: string]: unknown };

interface AgentRun {
  code: number | null;
  events: Event[];
  plain: string[];
  stderr: string;
  result: unknown;
}

function runAgent(
  name: AgentName,
  cwd: string,
  needs: Record<string, { id: string; output: string | null }> = {},
  env: Record<string, string> = {},
  opts: { closeStdin?: boolean } = {},
): Promise<AgentRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(outDir, 'demo', 'agents', `${name}.js`)], {
      cwd,
      env: { ...process.env, SMITH_TASK_ID: 't_1', SMITH_ATTEMPT: '1', SMITH_WORKDIR: cwd, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => {
      const events: Event[] = [];
      const plain: string[] = [];
      for (const line of stdout.split('\n')) {
        if (line === '') continue;
        try {
          events.push(JSON.parse(line) as Event);
        } catch {
          plain.push(line);
        }
      }
      const results = events.filter((e) => e.type === 'result');
      if (results.length !== 1) {
        reject(new Error(`${name}: expected one result event, got ${results.length}\n${stdout}\n${stderr}`));
        return;
      }
      resolvePromise({ code, events, plain, stderr, result: results[0]?.['output'] });
    });
    const input = { id: 't_1', key: name, workflow_id: 'w_1', prompt: 'demo', attempt: 1, needs };
    child.stdin.write(`${JSON.stringify(input)}\n`);
    // The runtime may keep stdin open: the agents must not wait for its end.
    if (opts.closeStdin !== false) child.stdin.end();
    else child.on('close', () => child.stdin.destroy());
  });
}

const asOutput = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));

let failing: Fixture;
let passing: Fixture;

beforeAll(() => {
  outDir = tempDir('smith-demo-build-');
  compileAgents(outDir);
  failing = makeFixture('node -e "process.exit(1)"');
  passing = makeFixture(`node -e "console.log('ok', process.env.SMITH_DEMO_ACTIVE)"`);
});

afterAll(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('demo agents, run as processes', () => {
  let inventory: AgentRun;
  let tests: AgentRun;
  let placeholders: AgentRun;

  it('inventory counts exactly the tracked files and lines per language', async () => {
    inventory = await runAgent('inventory', failing.dir, {}, {}, { closeStdin: false });
    expect(inventory.code).toBe(0);
    const out = inventory.result as {
      files: number;
      lines: number;
      languages: { language: string; files: number; lines: number }[];
    };
    expect(out.files).toBe(failing.files);
    expect(out.lines).toBe(failing.lines);
    expect(
      Object.fromEntries(out.languages.map((l) => [l.language, { files: l.files, lines: l.lines }])),
    ).toEqual(failing.byLanguage);
    const lines = out.languages.map((l) => l.lines);
    expect(lines).toEqual([...lines].sort((a, b) => b - a));
    const pcts = inventory.events.filter((e) => e.type === 'progress').map((e) => e['pct']);
    expect(pcts).toContain(100);
  });

  it('tests fails with the exit code of a failing test command', async () => {
    tests = await runAgent('tests', failing.dir);
    expect(tests.code).toBe(1);
    expect(tests.result).toMatchObject({ command: 'npm test', exit_code: 1 });
    expect(Array.isArray((tests.result as { tail: unknown }).tail)).toBe(true);
  });

  it('tests succeeds with a passing test command, forwards its output and sets SMITH_DEMO_ACTIVE', async () => {
    const run = await runAgent('tests', passing.dir, {}, { SMITH_DEMO_ACTIVE: '' });
    expect(run.code).toBe(0);
    expect(run.result).toMatchObject({ command: 'npm test', exit_code: 0 });
    expect((run.result as { tail: string[] }).tail).toContain('ok 1');
    expect(run.events.some((e) => e.type === 'log' && e['message'] === 'ok 1')).toBe(true);
  });

  it('tests reports that no test command exists, and succeeds', async () => {
    const fixture = makeFixture(null);
    const run = await runAgent('tests', fixture.dir);
    expect(run.code).toBe(0);
    expect(run.result).toMatch(/^no test command found in package\.json, .*Makefile$/);
  });

  it('placeholders finds the planted marks, with path and line, and skips dependencies', async () => {
    placeholders = await runAgent('placeholders', failing.dir);
    expect(placeholders.code).toBe(0);
    const out = placeholders.result as {
      files_scanned: number;
      findings: number;
      by_kind: Record<string, number>;
      samples: { path: string; line: number; kind: string; text: string }[];
    };
    // app.ts, util.ts, app.test.ts, helper.js, README.md, package.json (not node_modules, not the binary).
    expect(out.files_scanned).toBe(6);
    expect(out.findings).toBe(2);
    expect(out.by_kind[todoMark]).toBe(1);
    expect(out.by_kind['skipped-test']).toBe(1);
    expect(out.samples).toEqual([
      { path: 'src/app.ts', line: 2, kind: todoMark, text: `// ${todoMark}: finish this` },
      { path: 'test/app.test.ts', line: 2, kind: 'skipped-test', text: `it.${SKIP}('later', () => {});` },
    ]);
  });

  it('report fans in the three outputs, writes the report file and announces it', async () => {
    const reportPath = join(tempDir('smith-demo-report-'), 'out', 'report.txt');
    const run = await runAgent(
      'report',
      failing.dir,
      {
        inventory: { id: 't_a', output: asOutput(inventory.result) },
        tests: { id: 't_b', output: asOutput(tests.result) },
        placeholders: { id: 't_c', output: asOutput(placeholders.result) },
      },
      { SMITH_DEMO_REPORT: reportPath },
    );
    expect(run.code).toBe(0);
    const text = run.result as string;
    expect(text).toContain(`Languages (${failing.files} files, ${failing.lines} lines)`);
    expect(text).toMatch(/TypeScript\s+3 files\s+9 lines/);
    expect(text).toContain('command: npm test');
    expect(text).toContain('outcome: FAILED (exit code 1');
    expect(text).toContain('2 findings in 6 files scanned');
    expect(text).toContain(`src/app.ts:2  [${todoMark}]`);
    expect(readFileSync(reportPath, 'utf8')).toBe(text);
    expect(run.events).toContainEqual({ type: 'artifact', path: reportPath });
    expect(run.events.filter((e) => e.type === 'log').map((e) => e['message'])).toContain('Tests');
  });

  it('report still reports when inputs are missing or unreadable', async () => {
    const run = await runAgent('report', failing.dir, { inventory: { id: 't_a', output: '{broken' } });
    expect(run.code).toBe(0);
    expect(run.result).toContain('not available');
  });

  it('an agent given input that is not JSON fails', async () => {
    const child = spawn(process.execPath, [join(outDir, 'demo', 'agents', 'inventory.js')], {
      cwd: failing.dir,
    });
    child.stdin.end('this is not json\n');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).toBe(1);
  });

  it('inventory fails outside a git repository', async () => {
    const dir = tempDir('smith-demo-nogit-');
    const child = spawn(process.execPath, [join(outDir, 'demo', 'agents', 'inventory.js')], {
      cwd: dir,
      env: { ...process.env, SMITH_WORKDIR: dir, GIT_CEILING_DIRECTORIES: dirname(dir) },
    });
    child.stdin.end('{}\n');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).toBe(1);
  });
});
