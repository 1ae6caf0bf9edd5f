/**
 * Bad input, end to end: malformed config and workflows, agents that are not installed, that print
 * binary garbage or 100 MB or never exit, stores that cannot be written, are not databases or are
 * locked, and bad arguments. Each must get a clear error (what, where, what to do), and nothing
 * already recorded may be lost.
 *
 * Real `node bin/smith.js` processes (the CLI runs from dist/: build first), one temp dir and home
 * per test.
 *
 * Part: bad config and workflow files, misbehaving agents.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { groupAlive, isAlive } from '../src/runtime/process/index.js';
import {
  lastJson,
  Sandbox,
  type RunSummaryJson,
  type SmithResult,
  type TaskDetailJson,
  SH_AGENT,
  workflow,
  expectCleanError,
} from './fixtures/smith-cli.js';

let box: Sandbox;
beforeEach(() => {
  box = new Sandbox('smith-bad-');
});
afterEach(async () => {
  const left = box.processes();
  await box.cleanup();
  expect(left, 'agent processes left behind').toEqual([]);
});

/** Nothing was recorded in this home: no store yet, or a store without tasks. */
async function expectNothingRecorded(): Promise<void> {
  const r = await box.run(['tasks', '--json']);
  if (r.code === 0) {
    expect(JSON.parse(r.stdout)).toEqual([]);
  } else {
    expect(r.stderr).toMatch(/no store/);
  }
}

/** Same, with the broken smith.yaml still there: read-only commands do not read it. */
async function expectNothingRecordedWithoutConfig(): Promise<void> {
  const broken = await box.run(['tasks', '--json']);
  expect(broken.stderr).not.toMatch(/smith\.yaml/);
  await expectNothingRecorded();
}

/** Run a valid one-task workflow (the smith.yaml of the test decides whether it can). */
async function runSmallWorkflow(): Promise<SmithResult> {
  box.write('wf.yaml', workflow('w', ['  a:', '    agent: sh', '    prompt: echo a']));
  return box.run(['run', 'wf.yaml']);
}

describe('malformed smith.yaml', () => {
  it('a YAML syntax error: exit 2, names the file and line:column', async () => {
    box.write('smith.yaml', 'agents:\n  sh:\n    command: [sh, -c\n');
    const r = await runSmallWorkflow();
    expect(r.code).toBe(2);
    expectCleanError(r);
    expect(r.stderr).toMatch(/smith\.yaml:\d+:\d+/);
    expect(r.stderr).toMatch(/YAML/);
    await expectNothingRecordedWithoutConfig();
  });

  it('a value of the wrong type: exit 2, names file:line:column, the field path, what was found and expected', async () => {
    box.write('smith.yaml', 'engine:\n  concurrency: four\n');
    const r = await runSmallWorkflow();
    expect(r.code).toBe(2);
    expectCleanError(r);
    expect(r.stderr).toMatch(/smith\.yaml:2:\d+/);
    expect(r.stderr).toContain('engine.concurrency');
    expect(r.stderr).toContain('four');
    expect(r.stderr).toMatch(/expected/);
    await expectNothingRecordedWithoutConfig();
  });

  it('an unknown field: exit 2, names file:line:column, the field path and suggests the right one', async () => {
    box.write(
      'smith.yaml',
      'agents:\n  sh:\n    command: ["sh", "-c", "{prompt}"]\n    capabilitys: [shell]\n',
    );
    const r = await runSmallWorkflow();
    expect(r.code).toBe(2);
    expectCleanError(r);
    expect(r.stderr).toMatch(/smith\.yaml:4:\d+/);
    expect(r.stderr).toContain('agents.sh.capabilitys');
    expect(r.stderr).toMatch(/did you mean "capabilities"/);
    await expectNothingRecordedWithoutConfig();
  });

  it('--config naming a file that does not exist: exit 2 naming it', async () => {
    box.write('wf.yaml', workflow('w', ['  a:', '    agent: sh', '    prompt: echo a']));
    const r = await box.run(['--config', 'nope.yaml', 'run', 'wf.yaml']);
    expect(r.code).toBe(2);
    expectCleanError(r);
    expect(r.stderr).toContain('nope.yaml');
  });
});

describe('malformed workflow: rejected before anything runs', () => {
  it('a cycle: exit 2 naming the tasks of the cycle', async () => {
    box.write(
      'wf.yaml',
      workflow('cyc', [
        '  a:',
        '    agent: sh',
        '    prompt: echo a',
        '    needs: [c]',
        '  b:',
        '    agent: sh',
        '    prompt: echo b',
        '    needs: [a]',
        '  c:',
        '    agent: sh',
        '    prompt: echo c',
        '    needs: [b]',
        '  free:',
        '    agent: sh',
        '    prompt: touch ran',
      ]),
    );
    const r = await box.run(['run', 'wf.yaml']);
    expect(r.code).toBe(2);
    expectCleanError(r);
    expect(r.stderr).toMatch(/cycle/);
    expect(r.stderr).toMatch(/wf\.yaml:\d+:\d+/);
    expect(r.stderr).toMatch(/a -> c -> b -> a|c -> b -> a -> c|b -> a -> c -> b/);
    expect(existsSync(join(box.dir, 'ran'))).toBe(false);
    await expectNothingRecorded();
  });

  it('unknown needs, an unknown agent and capabilities no agent has: exit 2 naming each', async () => {
    box.write(
      'wf.yaml',
      workflow('bad', [
        '  a:',
        '    agent: sh',
        '    prompt: touch ran',
        '    needs: [nope]',
        '  b:',
        '    agent: ghost',
        '    prompt: touch ran',
        '  c:',
        '    capabilities: [telepathy]',
        '    prompt: touch ran',
        '  d:',
        '    agent: sh',
        '    prompt: touch ran',
      ]),
    );
    const r = await box.run(['run', 'wf.yaml']);
    expect(r.code).toBe(2);
    expectCleanError(r);
    expect(r.stderr).toMatch(/tasks\.a\.needs.*"nope"/);
    expect(r.stderr).toMatch(/tasks\.b\.agent.*"ghost"/);
    expect(r.stderr).toMatch(/tasks\.c\.capabilities.*telepathy/);
    expect(r.stderr).toMatch(/wf\.yaml:\d+:\d+/);
    expect(existsSync(join(box.dir, 'ran'))).toBe(false);
    await expectNothingRecorded();
  });

  it('an agent whose command is not installed: exit 2 before anything runs, naming the command', async () => {
    box.write(
      'wf.yaml',
      workflow(
        'missing',
        ['  a:', '    agent: nb', '    prompt: hello', '  b:', '    agent: sh', '    prompt: touch ran'],
        [...SH_AGENT, '  nb:', '    runtime: process', '    command: ["no-such-binary-xyz", "{prompt}"]'],
      ),
    );
    const r = await box.run(['run', 'wf.yaml']);
    expect(r.code).toBe(2);
    expectCleanError(r);
    expect(r.stderr).toContain('no-such-binary-xyz');
    expect(r.stderr).toMatch(/not found|not installed/);
    expect(existsSync(join(box.dir, 'ran'))).toBe(false);
    await expectNothingRecorded();
  });

  it('a workflow file that does not exist: exit 2 naming it', async () => {
    const r = await box.run(['run', 'nope.yaml']);
    expect(r.code).toBe(2);
    expectCleanError(r);
    expect(r.stderr).toContain('nope.yaml');
    await expectNothingRecorded();
  });
});

describe('agents that misbehave', () => {
  it('binary garbage on stdout: the task completes and smith task prints valid text', async () => {
    box.write(
      'wf.yaml',
      workflow('garbage', ['  noise:', '    agent: sh', '    prompt: head -c 100000 /dev/urandom']),
    );
    const r = await box.run(['run', 'wf.yaml', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const summary = lastJson<RunSummaryJson>(r);
    const noise = summary.tasks[0]!;
    expect(noise.state).toBe('completed');

    for (const args of [['task', noise.id], ['task', noise.id, '--json'], ['tasks'], ['tasks', '--json']]) {
      const out = await box.run(args);
      expect(out.code, `${args.join(' ')}: ${out.stderr}`).toBe(0);
      const bytes = Buffer.from(out.stdoutBytes);
      // valid UTF-8 (a fatal decoder throws on anything else) without control characters but \n and \t
      const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      // eslint-disable-next-line no-control-regex -- looking for control characters is the point
      expect(text).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
      if (args.includes('--json')) expect(() => JSON.parse(text)).not.toThrow();
    }
  });

  it('100 MB on stdout: the task completes, the stored output is capped and smith stays small', async () => {
    box.write(
      'wf.yaml',
      workflow('flood', [
        '  flood:',
        '    agent: sh',
        `    prompt: "head -c 100000000 /dev/zero | tr '\\\\0' 'a'"`,
      ]),
    );
    const run = box.start(['run', 'wf.yaml', '--json']);
    // the peak resident set of smith itself (VmHWM only grows), read until it exits
    let peakKiB = 0;
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${run.child.pid}/status`, 'utf8'));
        if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
      } catch {
        // it exited
      }
    }, 20);
    const r = await run.done;
    clearInterval(poll);
    expect(r.code, r.stderr).toBe(0);
    const flood = lastJson<RunSummaryJson>(r).tasks[0]!;
    expect(flood.state).toBe('completed');
    const MiB = 1024 * 1024;
    expect(flood.output!.length).toBeGreaterThan(0);
    expect(flood.output!.length).toBeLessThanOrEqual(MiB + 4096);
    expect(flood.output).toMatch(/^a+/);

    const d = await box.run(['task', flood.id, '--json']);
    expect(d.code, d.stderr).toBe(0);
    // the output (1 MiB) and at most one kept line of it as a log event, plus small fields
    expect(d.stdout.length).toBeLessThanOrEqual(3 * MiB);
    const detail = JSON.parse(d.stdout) as TaskDetailJson;
    expect(detail.output!.length).toBeLessThanOrEqual(MiB + 4096);
    // 100 MB went through; smith never held it whole (node alone is ~50-120 MiB)
    if (peakKiB > 0) expect(peakKiB).toBeLessThan(200 * 1024);
  });

  it('an agent that never exits (and ignores SIGTERM) with a timeout: failed with the reason, no process left', async () => {
    box.write(
      'wf.yaml',
      workflow(
        'stuck',
        [
          '  stuck:',
          '    agent: stubborn',
          `    prompt: "trap '' TERM; while true; do sleep 1; done"`,
          '    timeout: 1s',
        ],
        [
          '  stubborn:',
          '    runtime: process',
          '    command: ["sh", "-c", "{prompt}"]',
          '    kill_grace: 500ms',
        ],
      ),
    );
    const r = await box.run(['run', 'wf.yaml', '--json']);
    expect(r.code, r.stderr).toBe(1);
    const summary = lastJson<RunSummaryJson>(r);
    expect(summary.workflow.state).toBe('failed');
    const stuck = summary.tasks[0]!;
    expect(stuck.state).toBe('failed');
    const detail = (await box.json<TaskDetailJson>(['task', stuck.id])).value;
    expect(detail.reason).toMatch(/timed out/);
    expect(detail.attempts_detail[0]!.state).toBe('timed_out');
    const pid = detail.attempts_detail[0]!.pid!;
    expect(isAlive(pid)).toBe(false);
    expect(groupAlive(pid)).toBe(false);
  });
});
