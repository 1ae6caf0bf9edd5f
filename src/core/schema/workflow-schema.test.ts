import { describe, expect, it } from 'vitest';
import { smithErrorMap } from './config-schema.js';
import { workflowFileSchema } from './workflow-schema.js';

function issues(input: unknown): { path: string; message: string }[] {
  const r = workflowFileSchema.safeParse(input, { error: smithErrorMap });
  if (r.success) throw new Error('expected the workflow to fail');
  return r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
}

describe('workflowFileSchema', () => {
  it('reads the map form, leaving defaults unset', () => {
    const wf = workflowFileSchema.parse({
      name: 'repo-health',
      agents: { sh: { command: ['sh', '-c', '{prompt}'], capabilities: ['shell'] } },
      tasks: {
        count: { agent: 'sh', prompt: 'git ls-files | wc -l' },
        test: {
          needs: 'count',
          capabilities: ['shell'],
          prompt: 'npm test',
          timeout: '10m',
          retries: 2,
          priority: 3,
          workdir: 'sub',
          env: { A: 1 },
        },
      },
    });
    expect(wf).toStrictEqual({
      name: 'repo-health',
      agents: {
        sh: {
          name: 'sh',
          runtime: 'process',
          command: ['sh', '-c', '{prompt}'],
          capabilities: ['shell'],
          concurrency: 1,
          killGraceMs: 5000,
          outputLimitBytes: 1_048_576,
        },
      },
      tasks: [
        { key: 'count', agent: 'sh', prompt: 'git ls-files | wc -l', needs: [] },
        {
          key: 'test',
          capabilities: ['shell'],
          prompt: 'npm test',
          needs: ['count'],
          timeoutMs: 600_000,
          retries: 2,
          priority: 3,
          workdir: 'sub',
          env: { A: '1' },
        },
      ],
    });
  });

  it('reads the list form the same way', () => {
    const wf = workflowFileSchema.parse({
      tasks: [
        { key: 'a', agent: 'sh', prompt: 'x' },
        { key: 'b', agent: 'sh', prompt: 'y', needs: ['a'] },
      ],
    });
    expect(wf.tasks.map((t) => [t.key, t.needs])).toEqual([
      ['a', []],
      ['b', ['a']],
    ]);
  });

  it('reports problems inside the list form at their own paths', () => {
    expect(
      issues({
        tasks: [
          { key: 'a', agent: 'sh', prompt: 'x', retries: -1 },
          { key: 'a', agent: 'sh', prompt: 'y' },
        ],
      }),
    ).toEqual([
      { path: 'tasks.0.retries', message: 'expected a whole number of retries, 0 or more' },
      {
        path: 'tasks.1.key',
        message: 'duplicate task key "a" (also at tasks[0]); give each task its own key',
      },
    ]);
  });

  it('reports problems inside the map form at their own paths', () => {
    expect(
      issues({ tasks: { 'bad key': { agent: 'sh', prompt: 'x' }, t: { agent: 'sh', prompt: '  ' } } }),
    ).toEqual([
      { path: 'tasks.bad key', message: expect.stringContaining('expected a task name') },
      { path: 'tasks.t.prompt', message: 'expected a non-empty prompt (the text or command the task runs)' },
    ]);
  });

  it('requires at least one task, agent or capabilities, and a prompt', () => {
    expect(issues({ tasks: {} })).toEqual([{ path: 'tasks', message: 'expected at least one task' }]);
    expect(issues({ tasks: [] })).toEqual([{ path: 'tasks', message: 'expected at least one task' }]);
    expect(issues({ tasks: { t: {} } })).toEqual([
      {
        path: 'tasks.t.prompt',
        message: "expected the task's prompt as a string (the text or command it runs)",
      },
      { path: 'tasks.t', message: expect.stringContaining('a task needs "agent:"') },
    ]);
  });

  it('rejects unknown fields with a suggestion', () => {
    expect(issues({ tasks: { t: { agent: 'sh', prompt: 'x', need: ['a'], retry: 1 } } })).toEqual([
      {
        path: 'tasks.t',
        message: expect.stringMatching(
          /^unknown field "need" in a task; did you mean "needs"\?.*\nunknown field "retry" in a task; did you mean "retries"\?/,
        ),
      },
    ]);
  });
});
