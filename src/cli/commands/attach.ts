/**
 * `smith attach AGENT`: open a `tmux` agent's session (one window per instance) for a person.
 */
import { spawnSync } from 'node:child_process';
import { SmithError } from '../../core/errors.js';
import { attachCommand } from '../../runtime/tmux/index.js';
import { EXIT, type Context } from '../context.js';

/**
 * Attach the terminal to the agent's tmux session on this home's tmux server. Detach with the
 * tmux prefix then `d` (Ctrl-b d): the agent keeps running.
 *
 * @throws SmithError `INVALID_ARGUMENT` when stdin is not a terminal; `AGENT_NOT_FOUND` when no
 *   session of that agent runs on this home's tmux server
 */
export function attachAgentCommand(ctx: Context, agent: string): number {
  const argv = attachCommand(agent, { home: ctx.home });
  const [tmux, ...rest] = argv as [string, ...string[]];
  const socket = rest[1]!;
  const session = rest[4]!;
  const has = spawnSync(tmux, ['-L', socket, 'has-session', '-t', `=${session}`], { stdio: 'ignore' });
  if (has.error) {
    throw new SmithError(
      'RUNTIME_NOT_FOUND',
      `tmux is not installed (${has.error.message}); install it: apt-get install tmux`,
    );
  }
  if (has.status !== 0) {
    throw new SmithError(
      'AGENT_NOT_FOUND',
      `no tmux session of agent "${agent}" on this home's tmux server (socket ${socket}); it exists while a smith run with a "runtime: tmux" agent named ${agent} goes on`,
      { context: { agent, socket } },
    );
  }
  if (ctx.json) {
    process.stdout.write(JSON.stringify({ agent, argv }) + '\n');
    return EXIT.ok;
  }
  if (!process.stdin.isTTY) {
    throw new SmithError(
      'INVALID_ARGUMENT',
      `smith attach needs a terminal; from a script, run: ${argv.map((a) => JSON.stringify(a)).join(' ')}`,
    );
  }
  const r = spawnSync(tmux, rest, { stdio: 'inherit' });
  return r.status === 0 ? EXIT.ok : EXIT.failed;
}
