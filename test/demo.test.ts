/**
 * `smith demo` end to end on real git repositories made here. When this suite itself runs inside a
 * demo (SMITH_DEMO_ACTIVE is set), it checks that the demo refuses to start again instead.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findProcessesByEnv } from '../src/runtime/process/index.js';
import { tempDir } from './helpers.js';

const BIN = resolve(__dirname, '..', 'bin', 'smith.js');
const insideDemo = Boolean(process.env.SMITH_DEMO_ACTIVE);

let tmp: { dir: string; cleanup: () => void };
beforeEach(() => {
  tmp = tempDir('smith-demo-');
});
afterEach(() => tmp.cleanup());

function makeRepo(dir: string, testScript: string): void {
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'x', version: '1.0.0', scripts: { test: testScript } }),
  );
  // trailing spaces for the tidy codemod to remove
  writeFileSync(join(dir, 'src', 'a.ts'), 'export const a = 1;   \nexport const b = 2;\n');
  writeFileSync(join(dir, 'src', 'b.js'), `// ${'TO' + 'DO'}: finish this\nmodule.exports = 3;\n`);
  writeFileSync(join(dir, 'README.md'), '# x\n');
  execFileSync('git', ['init', '-q', '-b', 'main'], { cwd: dir });
  execFileSync('git', ['add', '.'], { cwd: dir });
  execFileSync(
    'git',
    ['-c', 'user.name=T', '-c', 'user.email=t@localhost', 'commit', '-q', '-m', 'initial'],
    {
      cwd: dir,
    },
  );
}

function demo(cwd: string, env: NodeJS.ProcessEnv = process.env) {
  const home = join(cwd, '.smith');
  const r = spawnSync(process.execPath, [BIN, 'demo', '--json'], {
    cwd,
    env,
    encoding: 'utf8',
    timeout: 180_000,
  });
  return { ...r, home };
}

describe.skipIf(insideDemo)('smith demo', () => {
  it('runs the real agents on a repository whose tests pass: exit 0, a report, a verified chain', () => {
    const repo = join(tmp.dir, 'ok');
    mkdirSync(repo);
    makeRepo(repo, 'node -e "console.log(\'1 passed\')"');
    const r = demo(repo);
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      workflow: { state: string };
      tasks: { id: string; key: string; state: string; output: string | null }[];
    };
    expect(summary.workflow.state).toBe('completed');
    const byKey = Object.fromEntries(summary.tasks.map((t) => [t.key, t]));
    expect(Object.keys(byKey).sort()).toEqual(['inventory', 'placeholders', 'report', 'tests', 'tidy']);
    // the coding task: judged, applied to a scratch clone, never to the repository itself
    expect(byKey.tidy!.state).toBe('completed');
    expect(readFileSync(join(repo, 'src', 'a.ts'), 'utf8')).toContain('1;   \n');
    const scratch = join(r.home, 'demo', readdirSync(join(r.home, 'demo'))[0]!);
    const git = (...args: string[]) => execFileSync('git', args, { cwd: scratch, encoding: 'utf8' });
    expect(git('show', 'HEAD:src/a.ts')).toBe('export const a = 1;\nexport const b = 2;\n');
    expect(git('show', 'HEAD:SMITH_HEALTH.md')).toContain('tests: passed');
    const message = git('log', '-1', '--format=%B');
    expect(message).toContain(`Smith-Task: ${byKey.tidy!.id}`);
    expect(message).toMatch(/Smith-Verdict: approve/);
    expect(execFileSync('git', ['rev-list', '--count', 'HEAD'], { cwd: repo, encoding: 'utf8' }).trim()).toBe(
      '1',
    );
    const inventory = JSON.parse(byKey.inventory!.output!) as { files: number };
    expect(inventory.files).toBe(4);
    const scan = JSON.parse(byKey.placeholders!.output!) as { findings: number };
    expect(scan.findings).toBe(1);
    const report = readFileSync(join(r.home, 'demo-report.txt'), 'utf8');
    expect(report).toContain('TypeScript');
    const verify = spawnSync(process.execPath, [BIN, '--home', r.home, 'audit', 'verify'], {
      encoding: 'utf8',
    });
    expect(verify.status).toBe(0);
    expect(findProcessesByEnv('SMITH_HOME', r.home)).toEqual([]);
  });

  it('exits non-zero when the repository tests fail, and still writes the report', () => {
    const repo = join(tmp.dir, 'bad');
    mkdirSync(repo);
    makeRepo(repo, 'node -e "process.exit(1)"');
    const r = demo(repo);
    expect(r.status).toBe(1);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      workflow: { state: string };
      tasks: { key: string; state: string; exit_code: number | null }[];
    };
    expect(summary.workflow.state).toBe('failed');
    const byKey = Object.fromEntries(summary.tasks.map((t) => [t.key, t]));
    expect(byKey.tests!.state).toBe('failed');
    expect(byKey.tests!.exit_code).toBe(1);
    expect(byKey.report!.state).toBe('completed');
  });
});

describe('smith demo inside a demo', () => {
  it('refuses to start again when SMITH_DEMO_ACTIVE is set (a test suite run by the demo cannot recurse)', () => {
    const repo = join(tmp.dir, 'nested');
    mkdirSync(repo);
    makeRepo(repo, 'node -e "0"');
    const r = demo(repo, { ...process.env, SMITH_DEMO_ACTIVE: '1' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('SMITH_DEMO_ACTIVE');
  });
});
