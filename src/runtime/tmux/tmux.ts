/**
 * A small wrapper around the `tmux` command (tmux(1): https://man7.org/linux/man-pages/man1/tmux.1.html),
 * always on one dedicated server socket (`-L <name>`) so that smith never touches a person's own
 * tmux sessions, and with `-f /dev/null` so that a server it starts does not read the person's
 * `~/.tmux.conf` (window indexes, shells and key bindings stay the defaults smith relies on).
 *
 * Every command runs with `execFile` (no shell). Needs tmux 3.0 or later (commands given as argv,
 * `=` exact-match targets, `wait-for`).
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { lstatSync, rmSync } from 'node:fs';
import path from 'node:path';

/** ms a tmux command may take before it is abandoned (a wedged server must not hang an attempt). */
export const TMUX_COMMAND_TIMEOUT_MS = 10_000;

/** Longest piece of text given to one `send-keys -l`; tmux refuses commands over about 16 KiB. */
export const SEND_CHUNK_CHARS = 2000;

/** A tmux command that failed: its arguments, exit code and what it said on stderr. */
export class TmuxCommandError extends Error {
  /** The tmux arguments after the socket options. */
  readonly args: readonly string[];
  /** What tmux printed on stderr (trimmed). */
  readonly stderr: string;
  /** Its exit code, or null when it was killed or could not start. */
  readonly exitCode: number | null;
  /** The errno code when tmux itself could not be started (`ENOENT`). */
  readonly errno: string | undefined;

  constructor(args: readonly string[], stderr: string, exitCode: number | null, errno?: string) {
    super(`tmux ${args.join(' ')}: ${stderr || errno || `exit code ${exitCode ?? 'unknown'}`}`);
    this.name = 'TmuxCommandError';
    this.args = args;
    this.stderr = stderr;
    this.exitCode = exitCode;
    this.errno = errno;
  }

  /** True when the failure means there is no tmux server on the socket (never started, killed, crashed). */
  get serverGone(): boolean {
    return isServerGoneMessage(this.stderr);
  }

  /** True when the failure means the session, window or pane named does not exist. */
  get targetMissing(): boolean {
    return /can't find (session|window|pane)/i.test(this.stderr);
  }
}

/**
 * Whether a tmux error message says that no server answers on the socket.
 *
 * @param text - tmux's stderr
 * @returns true for `no server running on …`, `error connecting to …`, `server exited unexpectedly`, `lost server`
 */
export function isServerGoneMessage(text: string): boolean {
  return /no server running|error connecting to|server exited|lost server/i.test(text);
}

/** Where a new window's program runs. */
export interface PaneProgram {
  /** Working directory (`-c`). */
  cwd: string;
  /** The argv run directly by tmux (no shell). */
  argv: readonly string[];
}

/** One dedicated tmux server, by socket name. */
export class Tmux {
  /** The socket name given with `-L`. */
  readonly socketName: string;
  /** The tmux program (a name searched on PATH, or a path). */
  readonly tmuxPath: string;
  private readonly env: NodeJS.ProcessEnv;

  /**
   * @param socketName - the server's socket name (`-L`); the socket is `$TMUX_TMPDIR/tmux-<uid>/<name>`
   * @param tmuxPath - the tmux program; default `tmux`
   */
  constructor(socketName: string, tmuxPath = 'tmux') {
    this.socketName = socketName;
    this.tmuxPath = tmuxPath;
    // Inside a person's tmux, TMUX would make some commands act on that server's client.
    const env = { ...process.env };
    delete env.TMUX;
    delete env.TMUX_PANE;
    this.env = env;
  }

  /** The argv prefix for every command: socket and config file. */
  private base(): string[] {
    return ['-L', this.socketName, '-f', '/dev/null'];
  }

  /**
   * Run one tmux command.
   *
   * @param args - the command and its arguments (`['has-session', '-t', '=smith-a']`)
   * @returns what it printed on stdout
   * @throws TmuxCommandError when it exits non-zero, times out or cannot start
   */
  run(args: readonly string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        this.tmuxPath,
        [...this.base(), ...args],
        { env: this.env, timeout: TMUX_COMMAND_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
        (err, stdout, stderr) => {
          if (err === null) {
            resolve(stdout);
            return;
          }
          const e = err as NodeJS.ErrnoException & { code?: number | string };
          const exitCode = typeof e.code === 'number' ? e.code : null;
          const errno = typeof e.code === 'string' ? e.code : undefined;
          reject(new TmuxCommandError(args, String(stderr).trim(), exitCode, errno));
        },
      );
    });
  }

  /**
   * Whether a session exists (exact name).
   *
   * @param session - session name
   * @returns false also when no server runs
   */
  async hasSession(session: string): Promise<boolean> {
    try {
      await this.run(['has-session', '-t', `=${session}`]);
      return true;
    } catch (err) {
      if (err instanceof TmuxCommandError && err.errno === undefined) return false;
      throw err;
    }
  }

  /**
   * Create a detached session whose first window (index 0, named `windowName`) runs `program`.
   * Starts the server when none runs.
   *
   * @param session - session name
   * @param windowName - the first window's name
   * @param program - its working directory and argv
   * @throws TmuxCommandError (for example `duplicate session`)
   */
  async newSession(session: string, windowName: string, program: PaneProgram): Promise<void> {
    await this.run([
      'new-session',
      '-d',
      '-s',
      session,
      '-n',
      windowName,
      '-x',
      '200',
      '-y',
      '50',
      '-c',
      program.cwd,
      '--',
      ...program.argv,
    ]);
  }

  /**
   * Create a window at `session:index` (named after its index) running `program`.
   *
   * @throws TmuxCommandError
   */
  async newWindow(session: string, index: number, program: PaneProgram): Promise<void> {
    await this.run([
      'new-window',
      '-d',
      '-t',
      `=${session}:${index}`,
      '-n',
      String(index),
      '-c',
      program.cwd,
      '--',
      ...program.argv,
    ]);
  }

  /**
   * Move a window to another index of its session.
   *
   * @throws TmuxCommandError
   */
  async moveWindow(session: string, from: number, to: number): Promise<void> {
    await this.run(['move-window', '-d', '-s', `=${session}:${from}`, '-t', `=${session}:${to}`]);
  }

  /**
   * Restart a pane's program, killing what runs in it (`respawn-pane -k`); without `program`, the
   * command it was created with runs again.
   *
   * @throws TmuxCommandError
   */
  async respawnPane(target: string, program?: PaneProgram): Promise<void> {
    const args = ['respawn-pane', '-k', '-t', target];
    if (program !== undefined) args.push('-c', program.cwd, '--', ...program.argv);
    await this.run(args);
  }

  /**
   * Set a window option (`set-option -w`), user options (`@name`) included.
   *
   * @throws TmuxCommandError
   */
  async setWindowOption(target: string, name: string, value: string): Promise<void> {
    await this.run(['set-option', '-w', '-t', target, name, value]);
  }

  /**
   * Format values of one pane (`list-panes -F`), which fails when the target does not exist
   * (unlike `display-message`, which falls back to another pane).
   *
   * @param target - `=session:window`
   * @param formats - format strings such as `#{pane_pid}`
   * @returns one value per format, for the window's first pane
   * @throws TmuxCommandError when the server, session or window is missing
   */
  async paneInfo(target: string, formats: readonly string[]): Promise<string[]> {
    const out = await this.run(['list-panes', '-t', target, '-F', formats.join('\t')]);
    const first = out.split('\n')[0] ?? '';
    return first.split('\t');
  }

  /**
   * Type text into a pane literally (`send-keys -l`), in pieces tmux accepts. With `quoteTabs`, a
   * tab is sent as `C-v Tab` (readline's quoted-insert and the terminal's literal-next), so a shell
   * does not complete on it. Enter is not sent.
   *
   * @param target - the pane
   * @param text - what to type; `\r\n` and `\r` are typed as `\n`
   * @param quoteTabs - send tabs as `C-v Tab`
   * @throws TmuxCommandError
   */
  async sendText(target: string, text: string, quoteTabs: boolean): Promise<void> {
    const normalized = text.replace(/\r\n?/g, '\n');
    const parts = quoteTabs ? normalized.split('\t') : [normalized];
    for (let p = 0; p < parts.length; p++) {
      if (p > 0) await this.sendKeys(target, 'C-v', 'Tab');
      for (const chunk of chunks(parts[p] ?? '', SEND_CHUNK_CHARS)) {
        await this.run(['send-keys', '-t', target, '-l', '--', chunk]);
      }
    }
  }

  /**
   * Send keys by name (`Enter`, `C-c`).
   *
   * @throws TmuxCommandError
   */
  async sendKeys(target: string, ...keys: string[]): Promise<void> {
    await this.run(['send-keys', '-t', target, ...keys]);
  }

  /**
   * Copy a pane's output to a shell command (`pipe-pane`), replacing any pipe it had; null closes it.
   *
   * @throws TmuxCommandError
   */
  async pipePane(target: string, command: string | null): Promise<void> {
    await this.run(command === null ? ['pipe-pane', '-t', target] : ['pipe-pane', '-t', target, command]);
  }

  /**
   * The pane's whole text: history and screen (`capture-pane -p -J -S -`).
   *
   * @throws TmuxCommandError
   */
  async capturePane(target: string): Promise<string> {
    return this.run(['capture-pane', '-p', '-J', '-S', '-', '-t', target]);
  }

  /**
   * The absolute path of the server's socket (`#{socket_path}`).
   *
   * @throws TmuxCommandError when no server runs
   */
  async socketPath(): Promise<string> {
    return (await this.run(['display-message', '-p', '#{socket_path}'])).trim();
  }

  /**
   * The socket path tmux uses for `-L <name>` when no server answers: `$TMUX_TMPDIR/tmux-<uid>/<name>`
   * (`TMUX_TMPDIR` default `/tmp`), as tmux(1) documents under `-L`.
   */
  defaultSocketPath(): string {
    const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
    return path.join(this.env.TMUX_TMPDIR || '/tmp', `tmux-${uid}`, this.socketName);
  }

  /**
   * Kill the server and every session on it, and remove its socket file (tmux leaves it behind);
   * nothing happens when none runs.
   */
  async killServer(): Promise<void> {
    let socket: string;
    try {
      socket = await this.socketPath();
    } catch {
      socket = this.defaultSocketPath();
    }
    try {
      await this.run(['kill-server']);
    } catch {
      // no server running: nothing to kill
    }
    try {
      if (lstatSync(socket).isSocket()) rmSync(socket, { force: true });
    } catch {
      // no socket file
    }
  }

  /**
   * Start a client that waits on a channel (`wait-for <channel>`). It exits when the channel is
   * woken (or was woken before it started waiting) and also, with status 0, when the server dies:
   * the caller must check why.
   *
   * @param channel - the channel name
   * @returns the waiting child (kill it to stop waiting) and a promise of its exit
   */
  waitFor(channel: string): { child: ChildProcess; exited: Promise<void> } {
    const child = spawn(this.tmuxPath, [...this.base(), 'wait-for', channel], {
      env: this.env,
      stdio: 'ignore',
    });
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    return { child, exited };
  }
}

/** Split text into pieces of at most `size` UTF-16 units without cutting a surrogate pair. */
function chunks(text: string, size: number): string[] {
  const out: string[] = [];
  let at = 0;
  while (at < text.length) {
    let end = Math.min(text.length, at + size);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    out.push(text.slice(at, end));
    at = end;
  }
  return out;
}
