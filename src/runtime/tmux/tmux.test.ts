import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { Tmux, TmuxCommandError, isServerGoneMessage } from './tmux.js';

let dir: string;
let tmux: Tmux;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'smith-tmuxcmd-'));
  tmux = new Tmux(`smith-unit-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
});

afterEach(async () => {
  await tmux.killServer();
  rmSync(dir, { recursive: true, force: true });
});

describe('Tmux', () => {
  it('reports a missing server as such', async () => {
    expect(await tmux.hasSession('smith-x')).toBe(false);
    const err = await tmux.paneInfo('=smith-x:0', ['#{pane_pid}']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TmuxCommandError);
    expect((err as TmuxCommandError).serverGone).toBe(true);
  });

  it('creates a session, finds its pane, and tells a missing window from a missing server', async () => {
    await tmux.newSession('smith-x', '0', { cwd: dir, argv: ['sh'] });
    expect(await tmux.hasSession('smith-x')).toBe(true);
    // exact names: "smith-" is not a prefix match for "smith-x"
    expect(await tmux.hasSession('smith-')).toBe(false);
    const [pid] = await tmux.paneInfo('=smith-x:0', ['#{pane_pid}']);
    expect(Number(pid)).toBeGreaterThan(1);
    const err = (await tmux
      .paneInfo('=smith-x:5', ['#{pane_pid}'])
      .catch((e: unknown) => e)) as TmuxCommandError;
    expect(err.targetMissing).toBe(true);
    expect(err.serverGone).toBe(false);
  });

  it('kill-server removes the socket file tmux would leave behind', async () => {
    await tmux.newSession('smith-x', '0', { cwd: dir, argv: ['sh'] });
    const socket = await tmux.socketPath();
    expect(socket).toBe(tmux.defaultSocketPath());
    expect(existsSync(socket)).toBe(true);
    await tmux.killServer();
    expect(existsSync(socket)).toBe(false);
    await tmux.killServer(); // nothing to kill: no error
  });

  it('knows the messages of a server that is not there', () => {
    expect(isServerGoneMessage('no server running on /tmp/tmux-0/x')).toBe(true);
    expect(isServerGoneMessage('error connecting to /tmp/tmux-0/x (No such file or directory)')).toBe(true);
    expect(isServerGoneMessage("can't find session: x")).toBe(false);
  });
});
