import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { isSmithError } from '../../core/errors.js';
import type { AgentSpec } from '../../core/types.js';
import type { AttemptContext, AttemptHandle, RuntimeEvent, TaskInput } from '../types.js';
import { isAlive, readProcStat } from './process-group.js';
import { ProcessRuntime } from './process-runtime.js';

const NODE = process.execPath;
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const MiB = 1_048_576;

let workdir: string;
const started: AttemptHandle[] = [];

beforeEach(() => {
  workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'smith-process-')));
});

afterEach(async () => {
  for (const handle of started.splice(0)) {
    handle.cancel('test cleanup');
    await handle.done;
  }
  rmSync(workdir, { recursive: true, force: true });
});

interface RunOptions {
  agent?: Partial<AgentSpec>;
  input?: Partial<TaskInput>;
  env?: Record<string, string>;
  timeoutMs?: number | null;
  workdir?: string;
  onEvent?: (event: RuntimeEvent) => void;
}

interface Run {
  handle: AttemptHandle;
  events: RuntimeEvent[];
  ctx: AttemptContext;
}

function run(command: string[], options: RunOptions = {}): Run {
  const events: RuntimeEvent[] = [];
  const agent: AgentSpec = {
    name: 'test-agent',
    runtime: 'process',
    command,
    capabilities: [],
    concurrency: 1,
    ...options.agent,
  };
  const ctx: AttemptContext = {
    input: {
      id: 'task-1',
      key: 'task',
      workflow_id: null,
      prompt: 'do it',
      attempt: 1,
      needs: {},
      ...options.input,
    },
    attemptId: randomUUID(),
    epoch: 1,
    agent,
    instance: 0,
    workdir: options.workdir ?? workdir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...options.env },
    timeoutMs: options.timeoutMs ?? null,
    onEvent: (event) => {
      events.push(event);
      options.onEvent?.(event);
    },
  };
  ctx.env.SMITH_ATTEMPT_ID = ctx.attemptId;
  const handle = new ProcessRuntime().start(ctx);
  started.push(handle);
  return { handle, events, ctx };
}

function logLines(events: RuntimeEvent[], stream: 'stdout' | 'stderr'): string[] {
  return events.flatMap((e) => (e.type === 'log' && e.stream === stream ? [e.line] : []));
}

/** Poll until `predicate` holds; false if it never did within `ms` (a bound, not an assertion). */
async function waitFor(predicate: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (predicate()) return true;
    await sleep(20);
  }
  return predicate();
}

/** The first stdout log line that is a number: a pid a fixture printed. */
function printedPid(events: RuntimeEvent[]): number {
  const line = logLines(events, 'stdout').find((l) => /^\d+$/.test(l.trim()));
  if (line === undefined) throw new Error('the fixture printed no pid');
  return Number(line.trim());
}

describe('ProcessRuntime: input, environment and arguments', () => {
  it('writes the task JSON to stdin', async () => {
    const script =
      'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const t=JSON.parse(s);' +
      'console.log(JSON.stringify({type:"result",output:t.prompt+"|"+t.id+"|"+t.attempt+"|"+JSON.stringify(t.needs)}))})';
    const { handle } = run([NODE, '-e', script], {
      input: { prompt: 'summarize the repo', id: 'T42', attempt: 2, needs: { a: { id: 'T1', output: 'x' } } },
    });
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('summarize the repo|T42|2|{"a":{"id":"T1","output":"x"}}');
    expect(outcome.exitCode).toBe(0);
  });

  it('applies the env exactly and runs in the workdir', async () => {
    const { handle } = run(['sh', '-c', 'echo "$SMITH_TEST_FOO"; echo "${HOME:-no home}"; pwd'], {
      env: { SMITH_TEST_FOO: 'bar baz' },
    });
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe(`bar baz\nno home\n${workdir}`);
  });

  it('substitutes placeholders within one argument each, spaces and quotes included', async () => {
    const prompt = `it's "quoted" $HOME; rm -rf / {task_id} \`x\``;
    const { handle } = run(
      [
        NODE,
        '-e',
        'console.log(JSON.stringify(process.argv.slice(1)))',
        '{prompt}',
        'id={task_id}',
        '{workdir}/x',
      ],
      { input: { prompt, id: 'T 7' } },
    );
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(JSON.parse(outcome.output)).toEqual([prompt, 'id=T 7', `${workdir}/x`]);
  });

  it('does not fail when the agent never reads a large stdin', async () => {
    const { handle } = run(['sh', '-c', 'exec 0<&-; echo ok'], { input: { prompt: 'p'.repeat(4 * MiB) } });
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('ok');
  });
});

describe('ProcessRuntime: stdout protocol and outcome', () => {
  it('reports NDJSON events in order and uses the result line as the output', async () => {
    const lines = [
      { type: 'progress', pct: 10, message: 'reading' },
      { type: 'log', message: 'a log line' },
      'plain text line',
      { type: 'artifact', path: 'out/report.md' },
      { type: 'message', data: { to: 'reviewer', n: [1, 2] } },
      { type: 'progress', pct: 250 },
      { type: 'result', output: { summary: 'all good', files: 3 } },
    ].map((l) => (typeof l === 'string' ? l : JSON.stringify(l)));
    const { handle, events } = run([
      NODE,
      '-e',
      `process.stdout.write(${JSON.stringify(lines.join('\n') + '\n')})`,
    ]);
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(JSON.parse(outcome.output)).toEqual({ summary: 'all good', files: 3 });
    expect(events).toEqual([
      { type: 'progress', pct: 10, message: 'reading' },
      { type: 'log', stream: 'stdout', line: 'a log line' },
      { type: 'log', stream: 'stdout', line: 'plain text line' },
      { type: 'artifact', path: 'out/report.md' },
      { type: 'message', data: { to: 'reviewer', n: [1, 2] } },
      { type: 'progress', pct: 100 },
    ]);
  });

  it('treats JSON that is not an event as plain text', async () => {
    const text = ['[1,2]', '{"type":"unknown"}', '{"no":"type"}', '{"type":"progress","pct":"x"}', '{broken'];
    const { handle, events } = run(['printf', '%s\\n', ...text]);
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(logLines(events, 'stdout')).toEqual(text);
    expect(outcome.output).toBe(text.join('\n'));
  });

  it('without a result line, the output is stdout lines (CRLF and a last line without newline included)', async () => {
    const { handle, events } = run(['printf', 'first\\r\\nsecond\\nlast']);
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('first\nsecond\nlast');
    expect(logLines(events, 'stdout')).toEqual(['first', 'second', 'last']);
  });

  it('fails on a non-zero exit with the last stderr line in the error, keeping the output', async () => {
    const { handle, events } = run([
      'sh',
      '-c',
      'echo partial work; echo "warning: first" >&2; echo "fatal: it broke" >&2; echo "   " >&2; exit 3',
    ]);
    const outcome = await handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.exitCode).toBe(3);
    expect(outcome.error).toBe('exit code 3: fatal: it broke');
    expect(outcome.output).toBe('partial work');
    expect(outcome.stderr).toContain('fatal: it broke');
    expect(logLines(events, 'stderr')).toEqual(['warning: first', 'fatal: it broke', '   ']);
  });

  it('truncates a long stderr line in the error to 500 characters', async () => {
    const { handle } = run(['sh', '-c', `printf '%0900d\\n' 0 >&2; exit 1`]);
    const outcome = await handle.done;
    expect(outcome.error).toBe(`exit code 1: ${'0'.repeat(500)}`);
  });

  it('fails when the result line says so, with its error', async () => {
    const { handle } = run([
      'echo',
      JSON.stringify({ type: 'result', status: 'failed', error: 'tests fail', output: 'log' }),
    ]);
    const outcome = await handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toBe('tests fail');
    expect(outcome.output).toBe('log');
  });

  it('fails on a non-zero exit even after a result line, keeping its output', async () => {
    const { handle } = run([
      'sh',
      '-c',
      `echo '{"type":"result","output":"half done"}'; echo oops >&2; exit 2`,
    ]);
    const outcome = await handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.output).toBe('half done');
    expect(outcome.error).toBe('exit code 2: oops');
  });

  it('reports a process killed by a signal', async () => {
    const { handle } = run(['sh', '-c', 'kill -USR1 $$; sleep 5']);
    const outcome = await handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.signal).toBe('SIGUSR1');
    expect(outcome.error).toBe('killed by SIGUSR1');
  });

  it('keeps running when the onEvent handler throws', async () => {
    const { handle, events } = run(
      ['sh', '-c', 'echo one; echo two >&2; echo \'{"type":"progress","pct":5}\'; echo three'],
      {
        onEvent: () => {
          throw new Error('handler bug');
        },
      },
    );
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    // event lines are events, not output
    expect(outcome.output).toBe('one\nthree');
    expect(events).toHaveLength(4);
  });

  it('survives binary garbage on stdout: log lines are clean strings', async () => {
    const script =
      'const c=require("crypto");for(let i=0;i<50;i++){process.stdout.write(c.randomBytes(4000));' +
      'process.stdout.write(Buffer.from([0,0,10,0x1b,0x5b,0x33,0x31,0x6d,0x72,0x65,0x64,0xc3,0x28,9,0x41,13,10]))}';
    const { handle, events } = run([NODE, '-e', script]);
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.stdoutBytes).toBe(50 * 4017);
    const lines = logLines(events, 'stdout');
    expect(lines.length).toBeGreaterThan(50);
    for (const line of lines) {
      expect(typeof line).toBe('string');
      // eslint-disable-next-line no-control-regex -- asserting that control characters are gone
      expect(line).not.toMatch(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/);
    }
    expect(lines).toContain('red\ufffd(\tA');
    expect(outcome.output).not.toContain('\0');
  });
});

describe('ProcessRuntime: bounded output', () => {
  async function flood(
    shell: string,
  ): Promise<{ outcome: Awaited<AttemptHandle['done']>; events: RuntimeEvent[]; growth: number }> {
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 10);
    try {
      const { handle, events } = run(['sh', '-c', shell]);
      const outcome = await handle.done;
      peak = Math.max(peak, process.memoryUsage().rss);
      return { outcome, events, growth: peak - before };
    } finally {
      clearInterval(sampler);
    }
  }

  it('keeps 1 MiB of a 100 MB line without newline and counts the rest', async () => {
    const { outcome, events, growth } = await flood(`head -c 100000000 /dev/zero | tr '\\0' 'a'`);
    expect(outcome.status).toBe('succeeded');
    expect(outcome.stdoutBytes).toBe(100_000_000);
    expect(outcome.droppedBytes).toBe(100_000_000 - MiB);
    expect(outcome.output.length).toBe(MiB);
    expect(growth).toBeLessThan(200 * MiB);
    const lines = logLines(events, 'stdout');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe('a'.repeat(MiB));
    expect(lines[1]).toBe(`output truncated: ${100_000_000 - MiB} bytes dropped`);
  });

  it('keeps 1 MiB of 100 MB of 1 KiB lines, stops log events at the budget, still honours a late result', async () => {
    const { outcome, events, growth } = await flood(
      `yes "$(head -c 1023 /dev/zero | tr '\\0' 'a')" | head -c 100000000; echo; echo '{"type":"result","output":"done"}'`,
    );
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('done');
    const resultBytes = '\n{"type":"result","output":"done"}\n'.length;
    expect(outcome.stdoutBytes).toBe(100_000_000 + resultBytes);
    expect(outcome.droppedBytes).toBe(100_000_000 + resultBytes - MiB);
    expect(growth).toBeLessThan(200 * MiB);
    const lines = logLines(events, 'stdout');
    expect(lines).toHaveLength(1024 + 1);
    expect(lines.slice(0, 1024).every((l) => l === 'a'.repeat(1023))).toBe(true);
    expect(lines.at(-1)).toBe(`output truncated: ${100_000_000 + resultBytes - MiB} bytes dropped`);
  });

  it('applies outputLimitBytes to stdout and stderr separately', async () => {
    const { handle, events } = run(
      ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10; do echo "out line $i"; echo "err line $i" >&2; done'],
      { agent: { outputLimitBytes: 30 } },
    );
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('out line 1\nout line 2\nout line');
    expect(logLines(events, 'stdout')).toEqual([
      'out line 1',
      'out line 2',
      'out line',
      `output truncated: ${outcome.stdoutBytes - 30} bytes dropped`,
    ]);
    expect(logLines(events, 'stderr')).toEqual([
      'err line 1',
      'err line 2',
      'err line',
      `output truncated: ${outcome.stderrBytes - 30} bytes dropped`,
    ]);
    expect(outcome.droppedBytes).toBe(outcome.stdoutBytes - 30 + outcome.stderrBytes - 30);
    expect(outcome.stderr).toBe('line 8\nerr line 9\nerr line 10\n');
  });
});

describe('ProcessRuntime: timeout, cancel, pause', () => {
  it('times out, ending the process and its background grandchild', async () => {
    const { handle, events } = run(['sh', '-c', 'sleep 1000 & echo $!; sleep 1000'], { timeoutMs: 300 });
    const outcome = await handle.done;
    expect(outcome.status).toBe('timed_out');
    expect(outcome.error).toBe('timed out after 300 ms');
    expect(handle.pid).not.toBeNull();
    expect(isAlive(handle.pid ?? 0)).toBe(false);
    expect(isAlive(printedPid(events))).toBe(false);
  });

  it('SIGKILLs a process that ignores SIGTERM once the grace is over', async () => {
    let ready = false;
    const { handle } = run(['sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 0.05; done'], {
      agent: { killGraceMs: 200 },
      onEvent: (e) => {
        if (e.type === 'log' && e.line === 'ready') ready = true;
      },
    });
    expect(await waitFor(() => ready)).toBe(true);
    handle.cancel('stop please');
    const outcome = await handle.done;
    expect(outcome.status).toBe('canceled');
    expect(outcome.error).toBe('stop please');
    expect(outcome.signal).toBe('SIGKILL');
    expect(isAlive(handle.pid ?? 0)).toBe(false);
  });

  it('cancel is idempotent, and a no-op after the process ended', async () => {
    const { handle } = run(['sleep', '1000']);
    handle.cancel('first');
    handle.cancel('second');
    const outcome = await handle.done;
    expect(outcome.status).toBe('canceled');
    expect(outcome.error).toBe('first');
    expect(outcome.signal).toBe('SIGTERM');

    const quick = run(['echo', 'hi']);
    const ended = await quick.handle.done;
    quick.handle.cancel('too late');
    quick.handle.pause();
    quick.handle.resume();
    expect(ended.status).toBe('succeeded');
    expect(await quick.handle.done).toBe(ended);
  });

  it('pause stops the process group, resume lets it finish', async () => {
    let count = 0;
    const { handle } = run(['sh', path.join(FIXTURES, 'count.sh'), '30'], {
      onEvent: (e) => {
        if (e.type === 'progress') count++;
      },
    });
    expect(await waitFor(() => count >= 2)).toBe(true);
    handle.pause();
    const pid = handle.pid ?? 0;
    expect(await waitFor(() => readProcStat(pid)?.state === 'T')).toBe(true);
    handle.resume();
    expect(await waitFor(() => readProcStat(pid)?.state !== 'T')).toBe(true);
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('counted to 30');
    expect(count).toBe(30);
  });

  it('a timeout longer than setTimeout can hold (2^31 ms) does not fire early', async () => {
    const { handle } = run(['sh', '-c', 'sleep 0.3; echo ok'], { timeoutMs: 3_000_000_000 });
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('ok');
  });

  it('cancel of a paused process ends it', async () => {
    const { handle } = run(['sleep', '1000'], { agent: { killGraceMs: 10_000 } });
    handle.pause();
    const pid = handle.pid ?? 0;
    expect(await waitFor(() => readProcStat(pid)?.state === 'T')).toBe(true);
    handle.cancel('no longer needed');
    const outcome = await handle.done;
    expect(outcome.status).toBe('canceled');
    expect(outcome.signal).toBe('SIGTERM');
  });

  it('the timeout clock stops while paused', async () => {
    const { handle } = run(['sh', '-c', 'sleep 0.2; echo finished'], { timeoutMs: 1500 });
    handle.pause();
    await sleep(2500);
    handle.resume();
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('finished');
  });
});

describe('ProcessRuntime: no orphans', () => {
  it('kills a background grandchild when the leader exits', async () => {
    const { handle, events } = run(['sh', '-c', 'sleep 1000 >/dev/null 2>&1 & echo $!']);
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    const grandchild = Number(outcome.output);
    expect(grandchild).toBe(printedPid(events));
    expect(isAlive(grandchild)).toBe(false);
  });

  it('kills a grandchild that keeps the stdout pipe open after the leader exits', async () => {
    const { handle } = run(['sh', '-c', 'sleep 1000 & echo $!']);
    const outcome = await handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(isAlive(Number(outcome.output))).toBe(false);
  });

  it('kills a grandchild that left the process group (setsid), found by SMITH_ATTEMPT_ID', async () => {
    const spawnDetached =
      'const c=require("child_process").spawn("sleep",["1000"],{detached:true,stdio:["ignore",STDOUT,"ignore"]});' +
      'console.log(c.pid);c.unref()';
    for (const stdout of ['"ignore"', '"inherit"']) {
      const { handle } = run([NODE, '-e', spawnDetached.replace('STDOUT', stdout)]);
      const outcome = await handle.done;
      expect(outcome.status).toBe('succeeded');
      const grandchild = Number(outcome.output);
      expect(grandchild).toBeGreaterThan(0);
      expect(await waitFor(() => !isAlive(grandchild), 2000)).toBe(true);
    }
  });
});

describe('ProcessRuntime: missing commands', () => {
  const agent = (command: string[] | undefined, env?: Record<string, string>): AgentSpec => ({
    name: 'ghost',
    runtime: 'process',
    command,
    capabilities: [],
    concurrency: 1,
    env,
  });

  it('check() passes for an installed command and a path to an executable', async () => {
    const runtime = new ProcessRuntime();
    await expect(runtime.check(agent(['sh', '-c', 'true']))).resolves.toBeUndefined();
    await expect(runtime.check(agent([NODE]))).resolves.toBeUndefined();
  });

  it('check() throws RUNTIME_NOT_FOUND for a command not on PATH', async () => {
    const err: unknown = await new ProcessRuntime()
      .check(agent(['no-such-agent-cli-xyz', '{prompt}']))
      .catch((e) => e);
    expect(isSmithError(err, 'RUNTIME_NOT_FOUND')).toBe(true);
    expect((err as Error).message).toBe(
      'agent "ghost": command "no-such-agent-cli-xyz" not found on PATH; install it or fix "command" in smith.yaml',
    );
  });

  it("check() searches the agent's own PATH", async () => {
    writeFileSync(path.join(workdir, 'my-agent'), '#!/bin/sh\necho hi\n');
    chmodSync(path.join(workdir, 'my-agent'), 0o755);
    const runtime = new ProcessRuntime();
    await expect(
      runtime.check(agent(['my-agent'], { PATH: `/nonexistent:${workdir}` })),
    ).resolves.toBeUndefined();
    await expect(runtime.check(agent(['my-agent']))).rejects.toMatchObject({ code: 'RUNTIME_NOT_FOUND' });
  });

  it('check() throws RUNTIME_NOT_FOUND for a missing or non-executable path', async () => {
    const file = path.join(workdir, 'not-executable.sh');
    writeFileSync(file, '#!/bin/sh\n');
    chmodSync(file, 0o644);
    const runtime = new ProcessRuntime();
    await expect(runtime.check(agent([file]))).rejects.toMatchObject({
      code: 'RUNTIME_NOT_FOUND',
      message: expect.stringContaining('is not executable'),
    });
    await expect(runtime.check(agent([path.join(workdir, 'missing')]))).rejects.toMatchObject({
      code: 'RUNTIME_NOT_FOUND',
      message: expect.stringContaining('not found'),
    });
  });

  it('check() rejects an agent without a command', async () => {
    await expect(new ProcessRuntime().check(agent(undefined))).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('needs a "command"'),
    });
  });

  it('start() with a missing binary ends failed, naming the command and the errno', async () => {
    const { handle } = run(['no-such-agent-cli-xyz', '{prompt}']);
    expect(handle.pid).toBeNull();
    handle.cancel('ignored');
    const outcome = await handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toBe(
      'spawn ENOENT: command "no-such-agent-cli-xyz" not found; install it or fix "command" in smith.yaml',
    );
  });

  it('start() with a non-executable file or a missing workdir ends failed', async () => {
    const file = path.join(workdir, 'plain.txt');
    writeFileSync(file, 'not a program');
    const notExecutable = await run([file]).handle.done;
    expect(notExecutable.status).toBe('failed');
    expect(notExecutable.error).toContain('EACCES');
    expect(notExecutable.error).toContain(file);
    // the agent's command is at fault: its instance is restarted by its supervisor
    expect(notExecutable.runtimeError).toBe(true);

    const missingDir = path.join(workdir, 'gone');
    const noDir = await run(['echo', 'hi'], { workdir: missingDir }).handle.done;
    expect(noDir.status).toBe('failed');
    expect(noDir.error).toContain(`working directory "${missingDir}" does not exist`);
    // a task's bad working directory is the task's fault, not the agent's
    expect(noDir.runtimeError).toBeUndefined();
  });

  it('start() without a command ends failed without throwing', async () => {
    const outcome = await run([]).handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toContain('needs a "command"');
  });
});
