import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { WorkspaceError } from './errors.js';
import { dropLease, leaseOwnerAlive, processStartTime, readLease, takeLease } from './lease.js';

let dir: string;
let file: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smith-lease-'));
  file = path.join(dir, '.leases', 'w.json');
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

describe('worktree leases', () => {
  it('is taken once, refused to another task while its owner lives, and dropped by its holder only', () => {
    const lease = takeLease(file, { taskId: 't_1', pid: process.pid }, '/w');
    expect(readLease(file)).toEqual(lease);
    expect(lease).toMatchObject({ taskId: 't_1', pid: process.pid, host: os.hostname() });
    let error: unknown;
    try {
      takeLease(file, { taskId: 't_2', pid: process.pid }, '/w');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(WorkspaceError);
    expect((error as WorkspaceError).code).toBe('LEASE_HELD');
    expect((error as WorkspaceError).message).toContain('leased to task t_1');
    expect(dropLease(file, 'not-the-nonce')).toBe(false);
    expect(fs.existsSync(file)).toBe(true);
    expect(dropLease(file, lease.nonce)).toBe(true);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('is taken over from a dead owner, from a damaged file, and by the same task', async () => {
    const dead = await deadPid();
    takeLease(file, { taskId: 't_1', pid: dead }, '/w');
    const mine = takeLease(file, { taskId: 't_2', pid: process.pid }, '/w');
    expect(readLease(file)?.nonce).toBe(mine.nonce);
    const again = takeLease(file, { taskId: 't_2', pid: process.pid }, '/w');
    expect(again.nonce).not.toBe(mine.nonce);
    fs.writeFileSync(file, '{ half a lea');
    expect(takeLease(file, { taskId: 't_3', pid: process.pid }, '/w').taskId).toBe('t_3');
    expect(fs.readdirSync(path.dirname(file))).toEqual(['w.json']); // no temporary files left
  });

  it('judges owners by pid, start time and host', async () => {
    const here = os.hostname();
    expect(leaseOwnerAlive({ pid: process.pid, host: here })).toBe(true);
    expect(leaseOwnerAlive({ pid: process.pid, host: here, startTime: processStartTime(process.pid) })).toBe(
      true,
    );
    expect(leaseOwnerAlive({ pid: await deadPid(), host: here })).toBe(false);
    if (processStartTime(process.pid) !== undefined) {
      // The same pid with another start time is a reused pid: the owner is gone.
      expect(leaseOwnerAlive({ pid: process.pid, host: here, startTime: '1' })).toBe(false);
    }
    expect(leaseOwnerAlive({ pid: await deadPid(), host: `${here}-elsewhere` })).toBe(true);
  });
});
