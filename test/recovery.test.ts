/**
 * Recovery ends the agent processes an earlier owner of the home left behind, and nothing else:
 * not a person's shell that exports SMITH_HOME, not the new owner's own agents.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { recover } from '../src/engine/recovery.js';
import { isAlive } from '../src/runtime/process/index.js';
import { openSqliteStore, type SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { tempDir } from './helpers.js';

let tmp: { dir: string; cleanup: () => void };
let store: SqliteStore;
const started: number[] = [];

beforeEach(async () => {
  tmp = tempDir('smith-recover-');
  store = await openSqliteStore(join(tmp.dir, 'smith.db'));
});
afterEach(async () => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await store.close();
  tmp.cleanup();
});

function sleeper(env: Record<string, string>): number {
  const c = spawn('sleep', ['1000'], {
    detached: true,
    stdio: 'ignore',
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  c.unref();
  started.push(c.pid!);
  return c.pid!;
}

describe('recovery', () => {
  it("ends a dead owner's agents, and spares a shell that only exports SMITH_HOME and the new owner's agents", async () => {
    const home = join(tmp.dir, 'home');
    const shell = sleeper({ SMITH_HOME: home });
    const orphan = sleeper({ SMITH_HOME: home, SMITH_OWNER: 'o_dead', SMITH_ATTEMPT_ID: 'a_1' });
    const mine = sleeper({ SMITH_HOME: home, SMITH_OWNER: 'o_new' });
    const otherHome = sleeper({ SMITH_HOME: join(tmp.dir, 'elsewhere'), SMITH_OWNER: 'o_dead' });
    const report = await recover(store, { owner: 'o_new', home, graceMs: 500 });
    expect(report.killed).toBe(1);
    expect(isAlive(orphan)).toBe(false);
    expect(isAlive(shell)).toBe(true);
    expect(isAlive(mine)).toBe(true);
    expect(isAlive(otherHome)).toBe(true);
  });
});
