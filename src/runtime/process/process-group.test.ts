import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';

import { afterEach, describe, expect, it } from 'vitest';

import { findProcessesByEnv, isAlive, killProcessTree, readProcStat } from './process-group.js';

const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) {
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

/** Start a detached shell command carrying `SMITH_TEST_MARK=<mark>`; resolves with its first stdout line. */
function startMarked(script: string, mark: string): Promise<{ child: ChildProcess; firstLine: string }> {
  const child = spawn('sh', ['-c', script], {
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SMITH_TEST_MARK: mark },
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout?.on('data', (d: Buffer) => {
      text += d.toString();
      const nl = text.indexOf('\n');
      if (nl !== -1) resolve({ child, firstLine: text.slice(0, nl) });
    });
    child.on('error', reject);
  });
}

describe('process-group', () => {
  it('isAlive: this process yes, a pid that cannot exist no', () => {
    expect(isAlive(process.pid)).toBe(true);
    expect(isAlive(2 ** 22 + 1)).toBe(false);
    expect(isAlive(0)).toBe(false);
    expect(isAlive(-1)).toBe(false);
  });

  it('readProcStat reads state and process group', () => {
    const own = readProcStat(process.pid);
    expect(own?.state).toMatch(/^[RS]$/);
    expect(own?.ppid).toBe(process.ppid);
  });

  it('finds processes by an environment marker and ends their process group', async () => {
    const mark = randomUUID();
    const { child, firstLine } = await startMarked('sleep 1000 & g=$!; sleep 1000 & echo $g; wait', mark);
    const grandchild = Number(firstLine);
    // The shell and its two sleeps, all forked before the shell printed (a child between fork and
    // exec may show no environment for a moment: look again until all three are seen).
    let found = findProcessesByEnv('SMITH_TEST_MARK', mark);
    for (let i = 0; i < 50 && found.length < 3; i++) {
      await new Promise((r) => setTimeout(r, 20));
      found = findProcessesByEnv('SMITH_TEST_MARK', mark);
    }
    expect(found).toHaveLength(3);
    expect(found).toContain(child.pid);
    expect(found).toContain(grandchild);
    expect(found.every((pid) => readProcStat(pid)?.pgid === child.pid)).toBe(true);
    expect(findProcessesByEnv('SMITH_TEST_MARK', mark.slice(0, -1))).toEqual([]);
    expect(findProcessesByEnv('SMITH_TEST_MAR', mark)).toEqual([]);

    // Only the grandchild is named: its process group (led by the shell) goes with it.
    await killProcessTree([grandchild], 2000);
    expect(isAlive(grandchild)).toBe(false);
    expect(isAlive(child.pid ?? 0)).toBe(false);
    expect(findProcessesByEnv('SMITH_TEST_MARK', mark)).toEqual([]);
  });

  it('SIGKILLs what ignores SIGTERM after the grace, and ends stopped processes', async () => {
    const mark = randomUUID();
    const { child, firstLine } = await startMarked('trap "" TERM; sleep 1000 & echo $!; wait', mark);
    const grandchild = Number(firstLine);
    process.kill(-(child.pid ?? 0), 'SIGSTOP');
    await killProcessTree(findProcessesByEnv('SMITH_TEST_MARK', mark), 200);
    expect(isAlive(child.pid ?? 0)).toBe(false);
    expect(isAlive(grandchild)).toBe(false);
  });

  it('does nothing for pids that are gone', async () => {
    await expect(killProcessTree([2 ** 22 + 1], 100)).resolves.toBeUndefined();
    await expect(killProcessTree([], 100)).resolves.toBeUndefined();
  });
});
