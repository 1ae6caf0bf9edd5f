import { describe, expect, it } from 'vitest';
import { WorkflowValidationError } from '../errors.js';
import type { AgentSpec, TaskSpec } from '../types.js';
import { checkDag, topologicalOrder, validateDag, validateRouting } from './dag.js';

function task(key: string, needs: string[] = [], extra: Partial<TaskSpec> = {}): TaskSpec {
  return { key, prompt: key, needs, retries: 0, priority: 5, agent: 'sh', ...extra };
}

function agent(name: string, capabilities: string[]): AgentSpec {
  return { name, runtime: 'process', command: ['true'], capabilities, concurrency: 1 };
}

describe('validateDag', () => {
  it('accepts a DAG', () => {
    expect(validateDag([task('a'), task('b', ['a']), task('c', ['a', 'b'])])).toEqual([]);
  });

  it('names the task and the missing key of an unknown need, with a suggestion', () => {
    expect(validateDag([task('count'), task('test', ['cout'])])).toEqual([
      'task "test" needs "cout", which is not a task of this workflow; did you mean "count"? (tasks: count, test)',
    ]);
  });

  it('reports a task that needs itself', () => {
    expect(validateDag([task('a', ['a'])])).toEqual(['task "a" needs itself; remove "a" from its needs']);
  });

  it('names the cycle path, starting at its first task in file order', () => {
    const tasks = [task('x'), task('a', ['b']), task('b', ['c']), task('c', ['a', 'x'])];
    expect(validateDag(tasks)).toEqual([
      'tasks a -> b -> c -> a form a cycle (each needs the next); remove one of these needs',
    ]);
    // The same cycle, listed from another task, still starts at `a`.
    expect(validateDag([task('a', ['b']), task('c', ['a']), task('b', ['c'])])).toEqual([
      'tasks a -> b -> c -> a form a cycle (each needs the next); remove one of these needs',
    ]);
  });

  it('reports each separate cycle once and not the tasks that merely need one', () => {
    const tasks = [
      task('a', ['b']),
      task('b', ['a']),
      task('after', ['a']),
      task('p', ['q']),
      task('q', ['r']),
      task('r', ['p']),
    ];
    expect(validateDag(tasks)).toEqual([
      'tasks a -> b -> a form a cycle (each needs the next); remove one of these needs',
      'tasks p -> q -> r -> p form a cycle (each needs the next); remove one of these needs',
    ]);
  });

  it('reports duplicate keys', () => {
    expect(validateDag([task('a'), task('a')])).toEqual([
      'duplicate task key "a"; give each task its own key',
    ]);
  });

  it('places each problem at the need that causes it', () => {
    expect(checkDag([task('a', ['zz', 'b']), task('b', ['a'])]).map((p) => p.path)).toEqual([
      ['tasks', 'a', 'needs', 0],
      ['tasks', 'a', 'needs', 1],
    ]);
  });
});

describe('validateRouting', () => {
  const agents = { sh: agent('sh', ['shell']), claude: agent('claude', ['code', 'review']) };

  it('accepts tasks that can be routed', () => {
    const tasks = [
      task('a'),
      task('b', [], { agent: undefined, capabilities: ['code'] }),
      task('c', [], { agent: 'claude', capabilities: ['review', 'code'] }),
    ];
    expect(validateRouting(tasks, agents)).toEqual([]);
  });

  it('names an unknown agent and the known ones', () => {
    expect(validateRouting([task('a', [], { agent: 'claud' })], agents)).toEqual([
      'task "a" asks for agent "claud", which is not defined; did you mean "claude"? (agents: sh, claude); ' +
        'define agents under "agents:" in the workflow or in smith.yaml ("smith init" writes a starter)',
    ]);
  });

  it('says when no agents are defined at all', () => {
    expect(validateRouting([task('a')], {})[0]).toMatch(
      /asks for agent "sh", which is not defined \(no agents are defined\)/,
    );
  });

  it('names capabilities no agent has all of, and the agents that exist', () => {
    expect(
      validateRouting([task('gpu', [], { agent: undefined, capabilities: ['shell', 'code'] })], agents),
    ).toEqual([
      'no agent has all the capabilities [shell, code] that task "gpu" asks for ' +
        "(agents: sh [shell], claude [code, review]); add them to an agent or change the task's capabilities",
    ]);
  });

  it('names what an agent lacks when a task asks for both', () => {
    expect(validateRouting([task('t', [], { agent: 'sh', capabilities: ['shell', 'gpu'] })], agents)).toEqual(
      [
        'task "t" asks for agent "sh" and capabilities [shell, gpu], but "sh" lacks "gpu" (it has [shell]); ' +
          'add them to the agent\'s capabilities, or drop "agent:" to route by capabilities',
      ],
    );
  });

  it('reports a task with neither agent nor capabilities', () => {
    expect(validateRouting([task('t', [], { agent: undefined })], agents)).toEqual([
      'task "t" names neither "agent:" nor "capabilities:"; give it one of them (or both)',
    ]);
  });
});

describe('topologicalOrder', () => {
  it('puts needs first and keeps file order among ready tasks', () => {
    const tasks = [task('d', ['b']), task('a'), task('b', ['a']), task('c'), task('e', ['d', 'c'])];
    expect(topologicalOrder(tasks)).toEqual(['a', 'b', 'd', 'c', 'e']);
  });

  it('throws WorkflowValidationError with the problems on a cycle', () => {
    try {
      topologicalOrder([task('a', ['b']), task('b', ['a'])]);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(WorkflowValidationError);
      expect((err as WorkflowValidationError).problems).toEqual([
        'tasks a -> b -> a form a cycle (each needs the next); remove one of these needs',
      ]);
    }
  });
});
