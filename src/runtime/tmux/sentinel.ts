/**
 * The completion sentinel of the `tmux` runtime for shell-like programs.
 *
 * What is typed into the pane is `. '<dir>/<id>.pre' && { <prompt>\n}; . '<dir>/<id>.post'`: the
 * two sourced files are written by smith for each attempt and are never typed, so the markers
 * they print (random tokens made at run time) appear in the pane only when the shell really runs
 * them. `pre` turns job control off (so pausing the prompt's processes does not make the shell
 * give up the command line), prints the begin marker, exports the attempt's environment and
 * changes to its working directory; `post` records the exit status (`$?` of the prompt, which `.` passes on in
 * POSIX shells) to a file, prints the end marker followed by it, and wakes the attempt's channel
 * with `tmux wait-for -S` (tmux(1), "wait-for": https://man7.org/linux/man-pages/man1/tmux.1.html).
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';

/**
 * Program names (basename of `command[0]`) treated as POSIX-like shells, which run the sentinel.
 * fish and csh are left out: their syntax for `$?`, `{ …; }` and `.` differs.
 */
export const SHELLS: ReadonlySet<string> = new Set([
  'sh',
  'bash',
  'dash',
  'zsh',
  'ksh',
  'ksh93',
  'mksh',
  'pdksh',
  'ash',
  'yash',
  'posh',
]);

/**
 * Variables never exported into the pane's shell by the `pre` file: read-only in bash or zsh, owned
 * by the shell (`PWD`, `SHLVL`), or owned by tmux (`TERM`, `TMUX`, `TMUX_PANE`, the size).
 */
const NOT_EXPORTED: ReadonlySet<string> = new Set([
  'BASHOPTS',
  'BASHPID',
  'BASH_ARGV0',
  'BASH_VERSINFO',
  'EUID',
  'PPID',
  'SHELLOPTS',
  'UID',
  'GID',
  'EGID',
  'PWD',
  'OLDPWD',
  'SHLVL',
  '_',
  'TERM',
  'TMUX',
  'TMUX_PANE',
  'COLUMNS',
  'LINES',
]);

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Whether an agent's command runs a POSIX-like shell that can run the sentinel: its program's
 * basename is in {@link SHELLS} and it is not given a script with `-c`.
 *
 * @param command - the agent's argv
 * @returns true for `["bash"]`, `["/bin/sh", "-l"]`; false for `["python3", "-i"]`, `["bash", "-c", "x"]`
 */
export function isShellCommand(command: readonly string[]): boolean {
  const program = command[0];
  if (program === undefined || program === '') return false;
  if (!SHELLS.has(path.basename(program))) return false;
  return !command.slice(1).some((arg) => arg === '-c' || (/^-[a-zA-Z]+$/.test(arg) && arg.includes('c')));
}

/**
 * Quote a string for a POSIX shell: single quotes, with each `'` written as `'\''`.
 *
 * @param text - any text
 * @returns the quoted word
 */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The random names of one attempt's sentinel. */
export interface Sentinel {
  /** File name stem of the attempt's files in the state directory. */
  id: string;
  /** The line `pre` prints before the prompt runs (`smith:begin:<token>`). */
  begin: string;
  /** What `post` prints before the exit status (`smith:end:<token>:`). */
  endPrefix: string;
  /** The `tmux wait-for` channel `post` wakes (`smith-<token>`). */
  channel: string;
}

/**
 * Make the random names of one attempt: three independent 128-bit tokens, so that no typed text
 * (which names the files) holds a marker.
 *
 * @returns a fresh sentinel
 */
export function makeSentinel(): Sentinel {
  const token = (): string => randomBytes(16).toString('hex');
  return {
    id: token(),
    begin: `smith:begin:${token()}`,
    endPrefix: `smith:end:${token()}:`,
    channel: `smith-${token()}`,
  };
}

/**
 * The `pre` file: turns job control off (`set +m`) for the prompt, prints the begin marker, exports
 * `env` (names that are not shell variables, or that the shell or tmux own, are skipped), and
 * changes to `workdir` (its status is the file's).
 *
 * @param sentinel - the attempt's names
 * @param env - the attempt's environment
 * @param workdir - absolute working directory
 * @returns the file's text
 */
export function preScript(sentinel: Sentinel, env: Record<string, string>, workdir: string): string {
  // Without job control the prompt's commands stay in the shell's process group and the shell
  // does not wait for stops (WUNTRACED): pausing them cannot make it give up the command line.
  const lines = ['set +m 2>/dev/null', `printf '%s\\n' ${shellQuote(sentinel.begin)}`];
  for (const [name, value] of Object.entries(env)) {
    if (!NAME.test(name) || NOT_EXPORTED.has(name)) continue;
    lines.push(`export ${name}=${shellQuote(value)}`);
  }
  lines.push(`cd -- ${shellQuote(workdir)}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The `post` file: keeps `$?`, writes it to `statusFile`, turns job control back on in an
 * interactive shell, prints the end marker and the status on one line, and wakes `channel` on the
 * tmux server at `socketPath`.
 *
 * @param sentinel - the attempt's names
 * @param statusFile - absolute path the exit status is written to (decimal, one line)
 * @param tmuxPath - absolute path of the tmux program
 * @param socketPath - absolute path of the tmux server's socket (`#{socket_path}`)
 * @returns the file's text
 */
export function postScript(
  sentinel: Sentinel,
  statusFile: string,
  tmuxPath: string,
  socketPath: string,
): string {
  return [
    '__smith_status=$?',
    `printf '%s\\n' "$__smith_status" > ${shellQuote(statusFile)}`,
    'case $- in *i*) set -m 2>/dev/null;; esac',
    `printf '%s%s\\n' ${shellQuote(sentinel.endPrefix)} "$__smith_status"`,
    `${shellQuote(tmuxPath)} -S ${shellQuote(socketPath)} wait-for -S ${shellQuote(sentinel.channel)}`,
    '',
  ].join('\n');
}

/**
 * The prompt as a shell group: `{ <prompt>\n}` (an empty prompt becomes `:`). The newline before
 * `}` ends a trailing comment or heredoc of the prompt; `\r\n` and lone `\r` become `\n`.
 *
 * @param prompt - the task's prompt (shell commands)
 * @returns the group, for typing and for a syntax check with `sh -n`
 */
export function promptGroup(prompt: string): string {
  const body = prompt.replace(/\r\n?/g, '\n').replace(/\n+$/, '');
  return `{ ${body.trim() === '' ? ':' : body}\n}`;
}

/**
 * The text typed into the pane for one attempt (Enter is sent apart).
 *
 * @param prompt - the task's prompt
 * @param preFile - absolute path of the `pre` file
 * @param postFile - absolute path of the `post` file
 * @returns `. 'pre' && { prompt\n}; . 'post'`
 */
export function typedText(prompt: string, preFile: string, postFile: string): string {
  return `. ${shellQuote(preFile)} && ${promptGroup(prompt)}; . ${shellQuote(postFile)}`;
}

/** Where the end marker was found in a line. */
export interface EndMatch {
  /** What the command printed on the marker's line before it (without a final newline). */
  before: string;
  /** The exit status printed after the marker. */
  status: number;
}

/**
 * Find the end marker at the end of a pane line (a command that printed no final newline leaves
 * its last text before the marker on the same line).
 *
 * @param line - a decoded pane line
 * @param endPrefix - the attempt's {@link Sentinel.endPrefix}
 * @returns the text before it and the status, or null when the line does not end with the marker
 */
export function matchEnd(line: string, endPrefix: string): EndMatch | null {
  const at = line.lastIndexOf(endPrefix);
  if (at === -1) return null;
  const rest = line.slice(at + endPrefix.length);
  if (!/^\d{1,3}$/.test(rest)) return null;
  return { before: line.slice(0, at), status: Number(rest) };
}
