import { describe, expect, it } from 'vitest';
import type { Attempt, Task, TaskEvent } from './types.js';
import { taskDetailView, taskView } from './views.js';

const task: Task = {
  id: 't_1',
  workflowId: 'w_1',
  key: 'build',
  agent: null,
  capabilities: ['shell'],
  prompt: 'make',
  needs: [],
  trigger: 'all_success',
  priority: 3,
  state: 'completed',
  attempts: 1,
  maxAttempts: 2,
  epoch: 1,
  timeoutMs: null,
  workdir: '/tmp',
  env: {},
  availableAt: 0,
  assignedAgent: 'sh',
  output: 'ok',
  exitCode: 0,
  reason: null,
  budget: { usd: 1 },
  costUsd: 0.25,
  tokens: 100,
  sessionId: 's_1',
  governance: null,
  createdAt: 1_700_000_000_000,
  updatedAt: 1_700_000_002_000,
  startedAt: 1_700_000_001_000,
  endedAt: 1_700_000_002_000,
} as Task;

const events: TaskEvent[] = [
  { seq: 1, taskId: 't_1', attemptId: null, time: 1_700_000_000_000, type: 'state', data: { to: 'queued' } },
  {
    seq: 2,
    taskId: 't_1',
    attemptId: 'a_1',
    time: 1_700_000_002_000,
    type: 'verdict',
    data: { decision: 'approve', score: 1 },
  },
];

describe('taskDetailView', () => {
  it('holds every field of the listed view, with the same values (the two are written out separately)', () => {
    const detail = taskDetailView(task, [] as Attempt[], events) as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(taskView(task))) expect(detail[k], k).toEqual(v);
  });

  it('lists the verdict events as verdicts, with their time', () => {
    const detail = taskDetailView(task, [], events);
    expect(detail.verdicts).toEqual([{ decision: 'approve', score: 1, time: '2023-11-14T22:13:22.000Z' }]);
    expect(detail.duration_ms).toBe(1000);
  });
});
