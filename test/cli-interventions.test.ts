/**
 * End-to-end: `smith guide` through the `smith` command, with a real agent process that reads its
 * task JSON on stdin.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, byKey, lastJson, shAgent, waitFor, type RunSummaryJson } from './fixtures/smith-cli.js';

let box: Sandbox;
beforeEach(() => {
  box = new Sandbox();
});
afterEach(async () => {
  const left = box.processes();
  await box.cleanup();
  expect(left, 'agent processes left behind').toEqual([]);
});

describe('smith guide', () => {
  it("records guidance (audited) that the task's next attempt receives in its task JSON", async () => {
    box.write(
      'wf.yaml',
      [
        'name: guided',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  fix:',
        '    agent: sh',
        // fails until it has been guided; then prints the guidance it got
        `    prompt: "cat > in.json; grep -q guidance in.json || exit 1; node -e 'const g=JSON.parse(require(\\"fs\\").readFileSync(\\"in.json\\",\\"utf8\\")).guidance; console.log(g.map(x=>x.text).join(\\"|\\"))'"`,
        '',
      ].join('\n'),
    );
    const first = await box.run(['run', 'wf.yaml', '--json']);
    expect(first.code, first.stderr).toBe(1);
    const id = byKey(lastJson<RunSummaryJson>(first)).fix!.id;

    const empty = await box.run(['guide', id, '   ']);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/guidance text is empty/);

    const g1 = await box.run(['guide', id, 'use the --fast flag']);
    expect(g1.code, g1.stderr).toBe(0);
    expect(g1.stdout).toMatch(/guidance recorded for task .* \(fix, failed\)/);
    expect((await box.run(['guide', 'fix', 'and keep the output short'])).code).toBe(0);

    expect((await box.run(['retry', id])).code).toBe(0);
    const resumed = await box.run(['resume', '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(byKey(lastJson<RunSummaryJson>(resumed)).fix!.output).toBe(
      'use the --fast flag|and keep the output short',
    );

    const audit = await box.run(['audit', 'verify']);
    expect(audit.code, audit.stdout + audit.stderr).toBe(0);
    const done = await box.run(['guide', id, 'too late']);
    expect(done.code).not.toBe(0);
    expect(done.stderr).toMatch(/completed; it never runs again/);
  });

  it('guidance given from another terminal before a task first runs reaches that first attempt', async () => {
    const go = join(box.dir, 'go');
    box.write(
      'wf.yaml',
      [
        'name: guided-early',
        'agents:',
        ...shAgent('sh'),
        'tasks:',
        '  first:',
        '    agent: sh',
        `    prompt: "while [ ! -f ${go} ]; do sleep 0.1; done"`,
        '  second:',
        '    agent: sh',
        '    needs: [first]',
        `    prompt: "node -e 'let s=\\"\\";process.stdin.on(\\"data\\",d=>s+=d).on(\\"end\\",()=>console.log(JSON.parse(s).guidance.map(g=>g.text).join()))'"`,
        '',
      ].join('\n'),
    );
    const run = box.start(['run', 'wf.yaml', '--json']);
    // (the store appears once the run has started: until then `smith tasks` says there is none)
    await waitFor('the first task to run', async () => {
      const r = await box.run(['tasks', '--state', 'running', '--json']);
      return r.code === 0 && (JSON.parse(r.stdout) as unknown[]).length > 0;
    });
    const g = await box.run(['guide', 'second', 'be brief']);
    expect(g.code, g.stderr).toBe(0);
    writeFileSync(go, '');
    const done = await run.done;
    expect(done.code, done.stdout + done.stderr).toBe(0);
    expect(byKey(lastJson<RunSummaryJson>(done)).second!.output).toBe('be brief');
  });
});
