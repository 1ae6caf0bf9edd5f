/**
 * The `tmux` runtime against a real tmux server, on its own socket per test.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { AgentSpec } from '../src/core/types.js';
import { findProcessesByEnv, isAlive, readProcStat } from '../src/runtime/process/process-group.js';
import { paneSessionMembers } from '../src/runtime/tmux/pane-process.js';
import { TmuxRuntime, attachCommand, sessionNameFor, socketNameFor } from '../src/runtime/tmux/index.js';
import type { AttemptContext, AttemptHandle, RuntimeEvent } from '../src/runtime/types.js';

let workdir: string;
let socket: string;
let runtime: TmuxRuntime;
let counter = 0;

beforeEach(() => {
  workdir = realpathSync(mkdtempSync(path.join(tmpdir(), 'smith-tmuxtest-')));
  socket = `smith-test-${process.pid}-${++counter}`;
  runtime = new TmuxRuntime({ socketName: socket });
});

afterEach(async () => {
  await runtime.close();
  tmux(['kill-server'], true);
  rmSync(workdir, { recursive: true, force: true });
});

/** Run a tmux command on the test's server; returns stdout. */
function tmux(args: string[], ignoreErrors = false): string {
  try {
    return execFileSync('tmux', ['-L', socket, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    if (ignoreErrors) return '';
    throw err;
  }
}

interface Run {
  handle: AttemptHandle;
  events: RuntimeEvent[];
  ctx: AttemptContext;
}

interface RunOptions {
  agent?: Partial<AgentSpec>;
  instance?: number;
  timeoutMs?: number | null;
  env?: Record<string, string>;
  workdir?: string;
}

function run(prompt: string, options: RunOptions = {}): Run {
  const events: RuntimeEvent[] = [];
  const attemptId = randomUUID();
  const ctx: AttemptContext = {
    input: { id: 'task-1', key: 'task', workflow_id: null, prompt, attempt: 1, needs: {} },
    attemptId,
    epoch: 1,
    agent: {
      name: 'sh',
      runtime: 'tmux',
      command: ['bash'],
      capabilities: [],
      concurrency: 2,
      ...options.agent,
    },
    instance: options.instance ?? 0,
    workdir: options.workdir ?? workdir,
    // HOME in the temp dir: no ~/.bashrc, so the pane is the same on every machine
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: workdir,
      SMITH_ATTEMPT_ID: attemptId,
      ...options.env,
    },
    timeoutMs: options.timeoutMs ?? 30_000,
    onEvent: (event) => events.push(event),
  };
  return { handle: runtime.start(ctx), events, ctx };
}

function logLines(events: RuntimeEvent[]): string[] {
  return events.flatMap((e) => (e.type === 'log' ? [e.line] : []));
}

/** Poll until `predicate` holds; false if it never did within `ms` (a bound, not an assertion). */
async function waitFor(predicate: () => boolean, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (predicate()) return true;
    await sleep(25);
  }
  return predicate();
}

/** The live processes started by one attempt (they carry its SMITH_ATTEMPT_ID), pane program excepted. */
function attemptProcesses(r: Run): number[] {
  return findProcessesByEnv('SMITH_ATTEMPT_ID', r.ctx.attemptId).filter(
    (pid) => pid !== r.handle.pid && isAlive(pid),
  );
}

function paneText(target = '=smith-sh:0'): string {
  return tmux(['capture-pane', '-p', '-J', '-S', '-', '-t', target]);
}

describe('TmuxRuntime: a bash agent', () => {
  it('runs a prompt in a temp dir: output, log events, exit status', async () => {
    writeFileSync(path.join(workdir, 'alpha.txt'), 'a');
    writeFileSync(path.join(workdir, 'beta.txt'), 'b');
    const r = run('echo hello; ls');
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.exitCode).toBe(0);
    expect(outcome.error).toBeUndefined();
    expect(outcome.output).toContain('hello');
    expect(outcome.output).toContain('alpha.txt');
    expect(outcome.output).toContain('beta.txt');
    expect(outcome.output).not.toContain('smith:');
    expect(logLines(r.events)).toContain('hello');
    expect(logLines(r.events).join('\n')).toContain('beta.txt');
    // the pane shows what happened, for a person who attaches
    expect(paneText()).toContain('hello');
  });

  it('never types the marker: it appears once per run, on the completion line; a look-alike does not end the run', async () => {
    const prompt =
      "echo 'smith:end:0123456789abcdef0123456789abcdef:0'; echo 'smith:begin:x'; sleep 0.3; echo after";
    const first = await run(prompt).handle.done;
    expect(first.status).toBe('succeeded');
    expect(first.output).toBe('smith:end:0123456789abcdef0123456789abcdef:0\nsmith:begin:x\nafter');
    const second = await run('echo second').handle.done;
    expect(second.output).toBe('second');

    const text = paneText();
    const lookAlike = '0123456789abcdef0123456789abcdef';
    const completions = [...text.matchAll(/^smith:end:([0-9a-f]{32}):(\d+)$/gm)].filter(
      (m) => m[1] !== lookAlike,
    );
    expect(completions.map((m) => m[2])).toEqual(['0', '0']);
    const tokens = completions.map((m) => m[1] ?? '');
    expect(new Set(tokens).size).toBe(2);
    for (const token of tokens) expect(text.split(token).length - 1).toBe(1);
    // the lines typed into the pane name the sentinel files, never a marker
    const typed = text.split('\n').filter((l) => l.includes('.pre') || l.includes('.post'));
    expect(typed.length).toBeGreaterThanOrEqual(2);
    for (const line of typed) for (const token of tokens) expect(line).not.toContain(token);
  });

  it('fails with the exit status: false gives 1, sh -c "exit 3" gives 3', async () => {
    const f = await run('false').handle.done;
    expect(f.status).toBe('failed');
    expect(f.exitCode).toBe(1);
    expect(f.error).toBe('exit code 1');
    expect(f.reason).toBe('crashed');

    const three = await run("echo about to fail; sh -c 'exit 3'").handle.done;
    expect(three.status).toBe('failed');
    expect(three.exitCode).toBe(3);
    expect(three.error).toBe('exit code 3: about to fail');
    expect(three.output).toBe('about to fail');
  });

  it('times out a sleep 30 with C-c; the pane is usable afterwards', async () => {
    const r = run('sleep 30', { timeoutMs: 1000 });
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('timed_out');
    expect(outcome.error).toBe('timed out after 1000 ms');
    expect(attemptProcesses(r)).toEqual([]);

    const next = await run('echo again').handle.done;
    expect(next.status).toBe('succeeded');
    expect(next.output).toBe('again');
  });

  it('cancels mid-run: canceled, and no sleep process is left', async () => {
    const r = run('sleep 30; echo never');
    expect(await waitFor(() => attemptProcesses(r).length > 0)).toBe(true);
    const sleeper = attemptProcesses(r)[0] ?? 0;
    r.handle.cancel('canceled by the test');
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('canceled');
    expect(outcome.error).toBe('canceled by the test');
    expect(outcome.output).not.toContain('never');
    expect(isAlive(sleeper)).toBe(false);
    expect(attemptProcesses(r)).toEqual([]);
    const pane = r.handle.pid;
    expect(pane).not.toBeNull();
    expect(paneSessionMembers(pane ?? 0)).toEqual([]);
    // the shell itself lives on, at its prompt
    expect(isAlive(pane ?? 0)).toBe(true);
    expect((await run('echo still here').handle.done).output).toBe('still here');
  });

  it('fails with reason crashed when the tmux server is killed mid-run, and the next attempt starts a new one', async () => {
    const r = run('sleep 30', { timeoutMs: 50_000 });
    expect(await waitFor(() => attemptProcesses(r).length > 0)).toBe(true);
    tmux(['kill-server']);
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('crashed');
    expect(outcome.error).toMatch(new RegExp(`the tmux server on socket "${socket}" died`));
    expect(attemptProcesses(r)).toEqual([]);

    const next = await run('echo back').handle.done;
    expect(next.status).toBe('succeeded');
    expect(next.output).toBe('back');
  });

  it('runs two instances at once, in two windows', async () => {
    // instance 0 waits for a file that only instance 1 makes: they must run side by side
    const zero = run('while [ ! -e flag ]; do sleep 0.05; done; echo zero-done', { instance: 0 });
    const one = run('sleep 0.2; touch flag; echo one-done', { instance: 1 });
    const [a, b] = await Promise.all([zero.handle.done, one.handle.done]);
    expect(a.status).toBe('succeeded');
    expect(a.output).toBe('zero-done');
    expect(b.status).toBe('succeeded');
    expect(b.output).toBe('one-done');
    expect(zero.handle.pid).not.toBe(one.handle.pid);
    expect(tmux(['list-windows', '-t', '=smith-sh', '-F', '#{window_index}']).trim().split('\n')).toEqual([
      '0',
      '1',
    ]);
  });

  it('attachCommand names the socket and the session that exists', async () => {
    await run('true').handle.done;
    const argv = attachCommand('sh', { socketName: socket });
    expect(argv).toEqual(['tmux', '-L', socket, 'attach-session', '-t', 'smith-sh']);
    expect(runtime.attachCommand('sh')).toEqual(argv);
    // the same server and session a person would attach to
    expect(() => tmux(['has-session', '-t', `=${sessionNameFor('sh')}`])).not.toThrow();
    const home = path.join(workdir, '.smith');
    expect(attachCommand('sh', { home })[2]).toBe(socketNameFor(home));
  });
});

describe('TmuxRuntime: environment, workdir, pause, output', () => {
  it('applies the environment and each attempt runs in its own working directory', async () => {
    const other = path.join(workdir, 'other dir');
    mkdirSync(other);
    // the tmux server inherits this process's environment; the pane must not
    process.env.SMITH_TMUX_TEST_LEAK = 'leaked';
    let first;
    try {
      first = await run('echo "$GREETING"; pwd; echo "${SMITH_TMUX_TEST_LEAK:-not set}"; echo "$TERM"', {
        env: { GREETING: "it's a 'test'", TERM: 'xterm-outer' },
      }).handle.done;
    } finally {
      delete process.env.SMITH_TMUX_TEST_LEAK;
    }
    expect(first.output).toBe(
      `it's a 'test'\n${workdir}\nnot set\n${tmux(['show-options', '-gv', 'default-terminal']).trim()}`,
    );
    const second = await run('echo "$GREETING"; pwd', { env: { GREETING: 'second' }, workdir: other }).handle
      .done;
    expect(second.output).toBe(`second\n${other}`);
  });

  it('ends the background processes a prompt left once it completes', async () => {
    const r = run('sleep 100 & echo started');
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toContain('started'); // after bash's job line, "[1] <pid>"
    expect(attemptProcesses(r)).toEqual([]);
  });

  it('pauses and resumes the running command', async () => {
    const r = run('sleep 2; echo after-pause');
    expect(await waitFor(() => attemptProcesses(r).length > 0)).toBe(true);
    r.handle.pause();
    const sleeper = attemptProcesses(r)[0] ?? 0;
    // a signal is delivered asynchronously
    expect(await waitFor(() => readProcStat(sleeper)?.state === 'T')).toBe(true);
    // stopped, and yet the command goes on where it was once resumed
    await sleep(300);
    expect(readProcStat(sleeper)?.state).toBe('T');
    r.handle.resume();
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toBe('after-pause');
  });

  it('keeps output up to outputLimitBytes and says how much it dropped', async () => {
    const r = run('seq 1 3000', { agent: { outputLimitBytes: 1000 } });
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(Buffer.byteLength(outcome.output)).toBeLessThanOrEqual(1000);
    expect(outcome.output.startsWith('1\n2\n3\n')).toBe(true);
    expect(outcome.droppedBytes).toBeGreaterThan(0);
    expect(logLines(r.events).at(-1)).toMatch(/^output truncated: \d+ bytes dropped$/);
  });

  it('types a long prompt in pieces tmux accepts', async () => {
    const word = 'x'.repeat(6000);
    const outcome = await run(`printf '%s' ${word} | wc -c`).handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output.trim()).toBe('6000');
  });

  it('tabs and multi-line prompts are typed as they are', async () => {
    const outcome = await run("printf 'a\\tb\\n' | od -c | head -1\ncat <<'EOF'\nline\twith tab\nEOF").handle
      .done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.output).toContain('a  \\t   b');
    expect(outcome.output).toContain('line\twith tab');
  });
});

describe('TmuxRuntime: failures', () => {
  it('a prompt that is not valid shell syntax fails at once with reason malformed, untyped', async () => {
    const outcome = await run("echo 'unterminated").handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('malformed');
    expect(outcome.retryable).toBe(false);
    expect(outcome.error).toMatch(/the prompt is not valid bash syntax/);
  });

  it('a shell that exits fails with reason crashed; the next attempt respawns it', async () => {
    const r = run('exit 4');
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('crashed');
    // tmux records the status when it reaps the program, which is sometimes too late to say
    expect(outcome.error).toMatch(
      /^the program in tmux window smith-sh:0 \(socket "[^"]+"\) exited( with status 4)? while the attempt ran; the next attempt respawns it$/,
    );
    const next = await run('echo respawned').handle.done;
    expect(next.status).toBe('succeeded');
    expect(next.output).toBe('respawned');
  });

  it('a missing working directory fails without touching tmux', async () => {
    const outcome = await run('true', { workdir: path.join(workdir, 'missing') }).handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toMatch(/working directory ".*missing" does not exist/);
    expect(tmux(['has-session'], true)).toBe('');
  });

  it('the idle watchdog (idleTimeoutMs) ends a silent shell command with reason idle', async () => {
    const r = run('echo start; sleep 30', { agent: { idleTimeoutMs: 1500 } });
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('failed');
    expect(outcome.reason).toBe('idle');
    expect(outcome.output).toBe('start');
    expect(attemptProcesses(r)).toEqual([]);
  });
});

describe('TmuxRuntime.close', () => {
  it('cancels running attempts, kills the server and leaves no process behind', async () => {
    const r = run('sleep 30');
    expect(await waitFor(() => attemptProcesses(r).length > 0)).toBe(true);
    const pane = r.handle.pid ?? 0;
    await runtime.close();
    const outcome = await r.handle.done;
    expect(outcome.status).toBe('canceled');
    expect(outcome.error).toBe('the tmux runtime was closed');
    expect(attemptProcesses(r)).toEqual([]);
    expect(await waitFor(() => !isAlive(pane))).toBe(true);
    expect(tmux(['has-session'], true)).toBe('');
  });
});

describe('TmuxRuntime: programs that are not shells (quiet mode)', () => {
  const python = ['/usr/bin/python3', '/usr/local/bin/python3'].find((p) => existsSync(p));
  it.skipIf(python === undefined)('python3 -i: the run ends succeeded once the pane is quiet', async () => {
    const agent = { name: 'py', command: [python ?? 'python3', '-q', '-i'], idleTimeoutMs: 1500 };
    const first = run('print(6 * 7)', { agent });
    const outcome = await first.handle.done;
    expect(outcome.status).toBe('succeeded');
    expect(outcome.exitCode).toBeNull();
    expect(outcome.output).toBe('42');
    // the interpreter keeps its state between attempts
    await run('x = 20', { agent }).handle.done;
    expect((await run('print(x + 1)', { agent }).handle.done).output).toBe('21');
  });
});
