import { describe, expect, it } from 'vitest';
import {
  assertTaskTransition,
  canTransitionInstance,
  canTransitionTask,
  canTransitionWorkflow,
  isTerminalTaskState,
  TASK_STATES,
  TASK_TRANSITIONS,
} from './states.js';
import { InvalidTransitionError } from './errors.js';

describe('task state machine', () => {
  it('follows the path of a task in DESIGN.md', () => {
    const path = ['pending', 'queued', 'running', 'judging', 'awaiting_approval', 'completed'] as const;
    for (let i = 0; i + 1 < path.length; i++) expect(canTransitionTask(path[i]!, path[i + 1]!)).toBe(true);
  });

  it('never lets a completed task move again', () => {
    for (const to of TASK_STATES) expect(canTransitionTask('completed', to)).toBe(false);
  });

  it('lets a person retry failed, rejected and canceled tasks', () => {
    for (const from of ['failed', 'rejected', 'canceled'] as const)
      expect(canTransitionTask(from, 'queued')).toBe(true);
  });

  it('retries go running -> queued; a queued task cannot complete without running', () => {
    expect(canTransitionTask('running', 'queued')).toBe(true);
    expect(canTransitionTask('queued', 'completed')).toBe(false);
    expect(canTransitionTask('pending', 'running')).toBe(false);
  });

  it('every state in the table is a known state, and terminal states are exactly the ended ones', () => {
    for (const [from, tos] of Object.entries(TASK_TRANSITIONS)) {
      expect(TASK_STATES).toContain(from);
      for (const to of tos) expect(TASK_STATES).toContain(to);
    }
    expect(TASK_STATES.filter(isTerminalTaskState).sort()).toEqual([
      'canceled',
      'completed',
      'failed',
      'rejected',
    ]);
  });

  it('assertTaskTransition names the task and both states', () => {
    expect(() => assertTaskTransition('t_1', 'completed', 'running')).toThrow(InvalidTransitionError);
    expect(() => assertTaskTransition('t_1', 'completed', 'running')).toThrow(
      'task t_1 cannot go from completed to running',
    );
  });
});

describe('instance and workflow state machines', () => {
  it('instances: idle <-> busy, error -> initializing (restart), stopping -> terminated', () => {
    expect(canTransitionInstance('idle', 'busy')).toBe(true);
    expect(canTransitionInstance('busy', 'idle')).toBe(true);
    expect(canTransitionInstance('error', 'initializing')).toBe(true);
    expect(canTransitionInstance('stopping', 'terminated')).toBe(true);
    expect(canTransitionInstance('terminated', 'busy')).toBe(false);
  });

  it('workflows end once; a retry moves a failed one back to running; completed is final', () => {
    expect(canTransitionWorkflow('running', 'completed')).toBe(true);
    expect(canTransitionWorkflow('failed', 'running')).toBe(true);
    expect(canTransitionWorkflow('completed', 'running')).toBe(false);
  });
});
