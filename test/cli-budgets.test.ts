/**
 * End-to-end: budgets and spend through the `smith` command, with real agent processes that report
 * `usage` and `session` lines on stdout (the process runtime's NDJSON protocol).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Sandbox,
  byKey,
  lastJson,
  shAgent,
  taskDetail,
  tasksJson,
  type RunSummaryJson,
} from './fixtures/smith-cli.js';

let box: Sandbox;
beforeEach(() => {
  box = new Sandbox();
});
afterEach(async () => {
  const left = box.processes();
  await box.cleanup();
  expect(left, 'agent processes left behind').toEqual([]);
});

/** YAML lines of a shell prompt that reports a session, then spends `usd` per step for `steps` steps. */
function spend(usd: number, steps: number): string[] {
  const line = `{"type":"usage","model":"m","tokens":{"input":100,"output":20},"cost_usd":${usd}}`;
  return [
    '    prompt: |',
    `      echo '{"type":"session","id":"native-'"$SMITH_ATTEMPT"'"}'`,
    `      i=0; while [ $i -lt ${steps} ]; do echo '${line}'; i=$((i+1)); sleep 0.05; done; echo spent`,
  ];
}

describe('budgets through smith run', () => {
  it('stops the task that reaches its budget (budget_exceeded, no retry), shows spend in run, tasks and task', async () => {
    box.write(
      'smith.yaml',
      ['prices:', '  m: {input: 1, output: 5}', 'runtimes:', '  process: {concurrency: 4}', ''].join('\n'),
    );
    box.write(
      'wf.yaml',
      [
        'name: spend',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  cheap:',
        '    agent: sh',
        ...spend(0.01, 2),
        '  pricey:',
        '    agent: sh',
        '    retries: 2',
        '    budget: {usd: 0.05}',
        ...spend(0.02, 200),
        '',
      ].join('\n'),
    );
    const r = await box.run(['run', 'wf.yaml', '--json']);
    expect(r.code, r.stderr).toBe(1);
    const summary = lastJson<RunSummaryJson>(r);
    const t = byKey(summary) as Record<
      string,
      RunSummaryJson['tasks'][number] & { cost_usd: number; tokens: number; session_id: string | null }
    >;
    expect(t.cheap).toMatchObject({
      state: 'completed',
      cost_usd: 0.02,
      tokens: 240,
      session_id: 'native-1',
    });
    expect(t.pricey).toMatchObject({ state: 'failed', attempts: 1, cost_usd: 0.06, tokens: 360 });
    expect(t.pricey!.reason).toMatch(/^budget_exceeded: task budget \$0\.05 reached \(\$0\.0600 spent\)/);
    const total = Object.values(t).reduce((n, x) => n + x.cost_usd, 0);
    expect(total).toBeCloseTo(0.08, 6);

    const detail = await taskDetail(box, t.pricey!.id);
    expect(detail).toMatchObject({
      cost_usd: 0.06,
      tokens: 360,
      session_id: 'native-1',
      budget: { usd: 0.05 },
    });
    const rows = await tasksJson(box);
    expect(rows.find((x) => x.key === 'pricey')).toMatchObject({ cost_usd: 0.06, tokens: 360 });

    const text = await box.run(['task', t.pricey!.id]);
    expect(text.stdout).toMatch(/spend +\$0\.0600 · 360 tok {4}budget \$0\.05/);
    expect(text.stdout).toMatch(/usage +m 100 in, 20 out, \$0\.0200/);
    const run = await box.run(['tasks']);
    expect(run.stdout).toMatch(/SPEND/);
  });

  it('prices usage without a cost from smith.yaml prices, and a retry gets the previous session', async () => {
    box.write('smith.yaml', ['prices:', '  gpt-x: {input: 2, output: 8}', ''].join('\n'));
    box.write(
      'wf.yaml',
      [
        'name: priced',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  t:',
        '    agent: sh',
        '    retries: 1',
        // attempt 1 reports a session and fails; attempt 2 prints the session it was given
        '    prompt: |',
        `      echo '{"type":"session","id":"s-'"$SMITH_ATTEMPT"'"}'`,
        `      echo '{"type":"usage","model":"gpt-x-1","tokens":{"input":1000000,"output":100000}}'`,
        '      [ "$SMITH_ATTEMPT" = 2 ] && echo "resumed $SMITH_RESUME_SESSION"',
        '',
      ].join('\n'),
    );
    const r = await box.run(['run', 'wf.yaml', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const t = byKey(lastJson<RunSummaryJson>(r)).t as RunSummaryJson['tasks'][number] & { cost_usd: number };
    expect(t.output).toBe('resumed s-1');
    expect(t.cost_usd).toBeCloseTo(5.6, 6);
  });
});
