import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SmithError } from '../core/errors.js';
import { buildDemoWorkflow, findDemoRepo } from './demo-workflow.js';

const dirs: string[] = [];

function tempDir(): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'smith-demo-wf-')));
  dirs.push(dir);
  return dir;
}

function gitInit(dir: string): void {
  execFileSync('git', ['-c', 'init.defaultBranch=main', 'init', '-q'], { cwd: dir });
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('buildDemoWorkflow', () => {
  it('builds four process agents and the fan-in DAG', () => {
    const spec = buildDemoWorkflow({ repoDir: '/r', distDir: '/pkg/dist', nodePath: '/usr/bin/node' });
    expect(spec.name).toBe('demo');
    expect(spec.dir).toBe('/r');
    expect(Object.keys(spec.agents).sort()).toEqual(['inventory', 'placeholders', 'report', 'tests']);
    for (const [name, agent] of Object.entries(spec.agents)) {
      expect(agent.name).toBe(name);
      expect(agent.runtime).toBe('process');
      expect(agent.concurrency).toBe(1);
      expect(agent.command).toEqual(['/usr/bin/node', join('/pkg/dist', 'demo', 'agents', `${name}.js`)]);
      expect(agent.capabilities.length).toBeGreaterThan(0);
    }
    const byKey = Object.fromEntries(spec.tasks.map((t) => [t.key, t]));
    expect(spec.tasks.map((t) => t.key)).toEqual(['inventory', 'tests', 'placeholders', 'report']);
    expect(byKey['inventory']?.needs).toEqual([]);
    expect(byKey['tests']?.needs).toEqual([]);
    expect(byKey['placeholders']?.needs).toEqual([]);
    expect(byKey['report']?.needs).toEqual(['inventory', 'tests', 'placeholders']);
    expect(byKey['tests']).toMatchObject({ timeoutMs: 600_000, retries: 0, priority: 3 });
    for (const key of ['inventory', 'placeholders', 'report']) {
      expect(byKey[key]).toMatchObject({ timeoutMs: 120_000, retries: 1, priority: 5, agent: key });
    }
    expect(byKey['report']?.env).toBeUndefined();
  });

  it('uses the running node by default and passes the report path to the report task', () => {
    const spec = buildDemoWorkflow({ repoDir: '/r', distDir: '/d', reportPath: '/tmp/report.txt' });
    expect(spec.agents['tests']?.command?.[0]).toBe(process.execPath);
    expect(spec.tasks.find((t) => t.key === 'report')?.env).toEqual({ SMITH_DEMO_REPORT: '/tmp/report.txt' });
  });
});

describe('findDemoRepo', () => {
  it("returns the top of cwd's git work tree", () => {
    const repo = tempDir();
    gitInit(repo);
    mkdirSync(join(repo, 'a', 'b'), { recursive: true });
    expect(findDemoRepo(join(repo, 'a', 'b'), tempDir())).toBe(repo);
  });

  it("falls back to the package's own checkout when cwd is not in a work tree", () => {
    const pkg = tempDir();
    gitInit(pkg);
    expect(findDemoRepo(tempDir(), pkg)).toBe(pkg);
  });

  it('does not take a package inside another work tree for its own checkout', () => {
    const outer = tempDir();
    gitInit(outer);
    const pkg = join(outer, 'node_modules', 'mistersmith');
    mkdirSync(pkg, { recursive: true });
    expect(() => findDemoRepo(tempDir(), pkg)).toThrow(SmithError);
  });

  it('throws INVALID_ARGUMENT outside any git work tree', () => {
    const cwd = tempDir();
    try {
      findDemoRepo(cwd, tempDir());
      expect.unreachable('findDemoRepo should throw');
    } catch (err) {
      expect(err).toBeInstanceOf(SmithError);
      expect((err as SmithError).code).toBe('INVALID_ARGUMENT');
      expect((err as SmithError).message).toContain('run it inside a git repository');
    }
  });
});
