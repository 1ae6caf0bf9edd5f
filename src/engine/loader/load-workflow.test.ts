import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, NonRetryableError, WorkflowValidationError, isSmithError } from '../../core/errors.js';
import type { SmithConfig } from '../../core/schema/index.js';
import type { WorkflowSpec } from '../../core/types.js';
import { loadConfig } from './load-config.js';
import { loadWorkflow, parseWorkflowText, workflowFromObject } from './load-workflow.js';

const SMITH_YAML = `
agents:
  sh:
    command: [bash, -c, "{prompt}"]
    capabilities: [shell]
  claude:
    command: [claude, -p, "{prompt}"]
    capabilities: [code, review]
defaults:
  timeout: 30m
  retries: 1
  priority: 4
`;

let dir: string;
let config: SmithConfig;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'smith-workflow-'));
  await writeFile(path.join(dir, 'smith.yaml'), SMITH_YAML);
  config = (await loadConfig({ cwd: dir })).config;
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, lines: string[]): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, lines.join('\n') + '\n');
  return file;
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

/** Loads `lines` as bad.yaml and returns the problem lines of the error. */
async function problems(lines: string[]): Promise<{ err: Error; lines: string[]; file: string }> {
  const file = await write('bad.yaml', lines);
  const err = await failure(loadWorkflow(file, config));
  expect(err).toBeInstanceOf(NonRetryableError);
  return { err, lines: err.message.split('\n'), file };
}

describe('loadWorkflow', () => {
  it('builds the exact WorkflowSpec: durations in ms, defaults applied, agents merged, dir absolute', async () => {
    const file = await write('repo-health.yaml', [
      'name: repo-health',
      'agents:',
      '  sh:',
      '    runtime: process',
      '    command: ["sh", "-c", "{prompt}"]',
      '    capabilities: [shell]',
      '    concurrency: 4',
      '    env: {FOO: bar}',
      '    timeout: 5m',
      '    kill_grace: 2s',
      '    output_limit: 512KiB',
      'tasks:',
      '  count:',
      '    agent: sh',
      '    prompt: git ls-files | wc -l',
      '  test:',
      '    needs: [count]',
      '    capabilities: [shell]',
      '    prompt: npm test',
      '    timeout: 10m',
      '    retries: 2',
      '    priority: 3',
      '    workdir: sub/dir',
      '    env: {A: "1"}',
      '  review:',
      '    needs: [test, count, test]',
      '    capabilities: [review]',
      '    prompt: |',
      '      Review the change.',
      '      Output of the tests: {needs.test.output}',
    ]);
    const spec = await loadWorkflow(file, config);
    const expected: WorkflowSpec = {
      name: 'repo-health',
      file,
      dir,
      agents: {
        sh: {
          name: 'sh',
          runtime: 'process',
          command: ['sh', '-c', '{prompt}'],
          capabilities: ['shell'],
          concurrency: 4,
          env: { FOO: 'bar' },
          timeoutMs: 300_000,
          killGraceMs: 2000,
          outputLimitBytes: 524_288,
        },
        claude: {
          name: 'claude',
          runtime: 'process',
          command: ['claude', '-p', '{prompt}'],
          capabilities: ['code', 'review'],
          concurrency: 1,
          timeoutMs: 1_800_000,
          killGraceMs: 5000,
          outputLimitBytes: 1_048_576,
        },
      },
      tasks: [
        {
          key: 'count',
          agent: 'sh',
          prompt: 'git ls-files | wc -l',
          needs: [],
          timeoutMs: 300_000,
          retries: 1,
          priority: 4,
        },
        {
          key: 'test',
          capabilities: ['shell'],
          prompt: 'npm test',
          needs: ['count'],
          timeoutMs: 600_000,
          retries: 2,
          priority: 3,
          workdir: path.join(dir, 'sub', 'dir'),
          env: { A: '1' },
        },
        {
          key: 'review',
          capabilities: ['review'],
          prompt: 'Review the change.\nOutput of the tests: {needs.test.output}\n',
          needs: ['test', 'count'],
          retries: 1,
          priority: 4,
        },
      ],
    };
    expect(spec).toStrictEqual(expected);
    expect(path.isAbsolute(spec.dir)).toBe(true);
  });

  it('names the workflow after its file when it has no name, and keeps tasks in file order', async () => {
    const file = await write('nightly.yml', [
      'tasks:',
      '  "10": {agent: sh, prompt: a}',
      '  "2": {agent: sh, prompt: b}',
      '  z: {agent: sh, prompt: c}',
      '  "1": {agent: sh, prompt: d}',
    ]);
    const spec = await loadWorkflow(file, config);
    expect(spec.name).toBe('nightly');
    expect(spec.tasks.map((t) => t.key)).toEqual(['10', '2', 'z', '1']);
  });

  it('accepts tasks as a list with key fields', async () => {
    const file = await write('list.yaml', [
      'tasks:',
      '  - key: a',
      '    agent: sh',
      '    prompt: echo a',
      '  - key: b',
      '    needs: a',
      '    capabilities: [code]',
      '    prompt: echo b',
    ]);
    const spec = await loadWorkflow(file, config);
    expect(spec.tasks).toStrictEqual([
      { key: 'a', agent: 'sh', prompt: 'echo a', needs: [], timeoutMs: 1_800_000, retries: 1, priority: 4 },
      { key: 'b', capabilities: ['code'], prompt: 'echo b', needs: ['a'], retries: 1, priority: 4 },
    ]);
  });

  it('fails with WORKFLOW_NOT_FOUND naming the file', async () => {
    const err = await failure(loadWorkflow(path.join(dir, 'missing.yaml'), config));
    expect(isSmithError(err, 'WORKFLOW_NOT_FOUND')).toBe(true);
    expect(err.message).toContain('missing.yaml not found');
  });

  describe('reports, with file, line:column, field path and what was found', () => {
    it('a wrong type', async () => {
      const { err, lines, file } = await problems([
        'tasks:',
        '  test:',
        '    agent: sh',
        '    prompt: npm test',
        '    retries: two',
      ]);
      expect(err).toBeInstanceOf(ConfigError);
      expect(lines[0]).toBe(`${file} is not a valid workflow file (1 problem):`);
      expect(lines[1]).toBe(
        `  ${file}:5:14: tasks.test.retries: expected a whole number of retries, 0 or more, found "two"`,
      );
      expect((err as ConfigError).context).toEqual({ file, problems: [lines[1]?.trim()] });
    });

    it('an unknown field, with a suggestion', async () => {
      const { lines, file } = await problems([
        'tasks:',
        '  count: {agent: sh, prompt: x}',
        '  test:',
        '    agent: sh',
        '    need: [count]',
        '    prompt: npm test',
      ]);
      expect(lines[1]).toBe(
        `  ${file}:5:5: tasks.test.need: unknown field "need" in a task; did you mean "needs"? ` +
          '(fields: agent, capabilities, prompt, needs, timeout, retries, priority, workdir, env, budget, mode, workspace, repo, spec, trigger)',
      );
    });

    it('a bad duration', async () => {
      const { lines, file } = await problems([
        'tasks:',
        '  test:',
        '    agent: sh',
        '    prompt: x',
        '    timeout: 10 minutes',
      ]);
      expect(lines[1]).toBe(
        `  ${file}:5:14: tasks.test.timeout: expected a duration such as "500ms", "30s", "10m", "2h", "1d" or a number ` +
          'of milliseconds; unknown unit "minutes" (use ms, s, m, h or d), found "10 minutes"',
      );
    });

    it('priority 11', async () => {
      const { lines, file } = await problems([
        'tasks:',
        '  test:',
        '    agent: sh',
        '    prompt: x',
        '    priority: 11',
      ]);
      expect(lines[1]).toBe(
        `  ${file}:5:15: tasks.test.priority: expected an integer from 1 (highest) to 10 (lowest), found 11`,
      );
    });

    it('a missing prompt, at the task', async () => {
      const { lines, file } = await problems([
        'tasks:',
        '  count: {agent: sh, prompt: x}',
        '  test:',
        '    agent: sh',
      ]);
      expect(lines[1]).toBe(
        `  ${file}:3:3: tasks.test.prompt: required field missing; ` +
          "expected the task's prompt as a string (the text or command it runs)",
      );
    });

    it('every problem at once, in file order', async () => {
      const { err, lines, file } = await problems([
        'name: [not, a, name]',
        'agents:',
        '  gpu:',
        '    command: run-on-gpu',
        'tasks:',
        '  a:',
        '    prompt: x',
        '  b: {agent: sh, prompt: "", env: {A: [1]}}',
        'extra: 1',
      ]);
      expect(lines.slice(1, -1)).toEqual([
        `  ${file}:1:7: name: expected the workflow name as a string, found a list`,
        `  ${file}:4:14: agents.gpu.command: expected the argv as a list, such as ["sh", "-c", "{prompt}"], found "run-on-gpu"`,
        `  ${file}:6:3: tasks.a: a task needs "agent:" (the agent to run it on) or "capabilities:" (to run it on any agent that has them), or both`,
        `  ${file}:8:26: tasks.b.prompt: expected a non-empty prompt (the text or command the task runs), found ""`,
        `  ${file}:8:39: tasks.b.env.A: expected a string value (quote it: "..."), found a list`,
        `  ${file}:9:1: extra: unknown field "extra" in a workflow (fields: name, agents, budget, mode, tasks)`,
      ]);
      expect((err as ConfigError).context['problems']).toHaveLength(6);
      expect(lines[lines.length - 1]).toBe('fix these and run again');
    });

    it('a cycle, naming its path', async () => {
      const { err, lines, file } = await problems([
        'tasks:',
        '  a: {agent: sh, prompt: x, needs: [b]}',
        '  b: {agent: sh, prompt: x, needs: [c]}',
        '  c: {agent: sh, prompt: x, needs: [a]}',
      ]);
      expect(err).toBeInstanceOf(WorkflowValidationError);
      expect(isSmithError(err, 'WORKFLOW_INVALID')).toBe(true);
      expect(lines).toEqual([
        `workflow ${file} cannot run:`,
        `  ${file}:2:37: tasks.a.needs[0]: tasks a -> b -> c -> a form a cycle (each needs the next); remove one of these needs`,
      ]);
      expect((err as WorkflowValidationError).problems).toEqual([lines[1]?.trim()]);
    });

    it('unknown needs', async () => {
      const { err, lines, file } = await problems([
        'tasks:',
        '  count: {agent: sh, prompt: x}',
        '  test:',
        '    agent: sh',
        '    prompt: x',
        '    needs: [count, cout]',
      ]);
      expect(err).toBeInstanceOf(WorkflowValidationError);
      expect(lines[1]).toBe(
        `  ${file}:6:20: tasks.test.needs[1]: task "test" needs "cout", which is not a task of this workflow; ` +
          'did you mean "count"? (tasks: count, test)',
      );
    });

    it('an unknown agent, with the known ones', async () => {
      const { err, lines, file } = await problems(['tasks:', '  test:', '    agent: bash', '    prompt: x']);
      expect(err).toBeInstanceOf(WorkflowValidationError);
      expect(lines[1]).toBe(
        `  ${file}:3:12: tasks.test.agent: task "test" asks for agent "bash", which is not defined (agents: sh, claude); ` +
          'define agents under "agents:" in the workflow or in smith.yaml ("smith init" writes a starter)',
      );
    });

    it('capabilities no agent has', async () => {
      const { err, lines, file } = await problems([
        'tasks:',
        '  train:',
        '    capabilities: [gpu, shell]',
        '    prompt: python train.py',
      ]);
      expect(err).toBeInstanceOf(WorkflowValidationError);
      expect(lines[1]).toBe(
        `  ${file}:3:19: tasks.train.capabilities: no agent has all the capabilities [gpu, shell] that task "train" asks for ` +
          "(agents: sh [shell], claude [code, review]); add them to an agent or change the task's capabilities",
      );
    });

    it('an agent that lacks the capabilities the task also asks for', async () => {
      const { lines, file } = await problems(['tasks:', '  t: {agent: sh, capabilities: [code], prompt: x}']);
      expect(lines[1]).toMatch(
        new RegExp(`^  ${escape(file)}:2:32: tasks\\.t\\.capabilities: task "t" asks for agent "sh"`),
      );
      expect(lines[1]).toContain('"sh" lacks "code" (it has [shell])');
    });

    it('problems in the list form, by index', async () => {
      const { lines, file } = await problems([
        'tasks:',
        '  - key: a',
        '    agent: sh',
        '    prompt: x',
        '  - key: b',
        '    agent: sh',
        '    prompt: y',
        '    needs: [zz]',
      ]);
      expect(lines[1]).toBe(
        `  ${file}:8:13: tasks[1].needs[0]: task "b" needs "zz", which is not a task of this workflow (tasks: a, b)`,
      );
    });

    it('a YAML syntax error', async () => {
      const { err, lines, file } = await problems([
        'tasks:',
        '  test:',
        '    agent: sh',
        '   prompt: "x',
        '',
      ]);
      expect(err).toBeInstanceOf(ConfigError);
      expect(lines[0]).toMatch(new RegExp(`^${escape(file)} is not a valid workflow file`));
      expect(lines[1]).toMatch(new RegExp(`^  ${escape(file)}:\\d+:\\d+: YAML syntax error: `));
    });

    it('an empty file', async () => {
      const { lines, file } = await problems(['# nothing']);
      expect(lines[1]).toBe(
        `  ${file}:1:1: (top level): the workflow is empty; expected "tasks:" with at least one task`,
      );
    });
  });
});

describe('parseWorkflowText', () => {
  it('shows the file as given and resolves dir from it', () => {
    const rel = path.relative(process.cwd(), path.join(dir, 'wf.yaml'));
    const spec = parseWorkflowText('tasks:\n  t: {agent: sh, prompt: x}\n', rel, config);
    expect(spec.dir).toBe(dir);
    expect(spec.file).toBe(path.join(dir, 'wf.yaml'));
    expect(() =>
      parseWorkflowText('tasks:\n  t: {agent: sh, prompt: x, retries: -1}\n', 'wf.yaml', config),
    ).toThrow('wf.yaml:2:38: tasks.t.retries: expected a whole number of retries, 0 or more, found -1');
  });
});

describe('workflowFromObject', () => {
  it('builds a workflow from data', () => {
    const spec = workflowFromObject(
      { name: 'api', tasks: { t: { capabilities: ['shell'], prompt: 'x', timeout: 1500 } } },
      { dir },
      config,
    );
    expect(spec).toStrictEqual({
      name: 'api',
      dir,
      agents: {
        sh: { ...config.agents['sh'], timeoutMs: 1_800_000 },
        claude: { ...config.agents['claude'], timeoutMs: 1_800_000 },
      },
      tasks: [
        {
          key: 't',
          capabilities: ['shell'],
          prompt: 'x',
          needs: [],
          timeoutMs: 1500,
          retries: 1,
          priority: 4,
        },
      ],
    });
    expect(spec.file).toBeUndefined();
  });

  it('names the source and field paths (no positions without YAML)', () => {
    expect(() =>
      workflowFromObject(
        { tasks: { t: { agent: 'sh', prompt: 'x', priority: 0 } } },
        { dir, source: 'request body' },
        config,
      ),
    ).toThrow(
      'request body is not a valid workflow (1 problem):\n' +
        '  request body: tasks.t.priority: expected an integer from 1 (highest) to 10 (lowest), found 0',
    );
    expect(() =>
      workflowFromObject({ tasks: { t: { agent: 'nope', prompt: 'x' } } }, { dir }, config),
    ).toThrow(/^workflow "workflow" cannot run:\n {2}tasks\.t\.agent: task "t" asks for agent "nope"/);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
