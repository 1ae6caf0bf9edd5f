/**
 * The `smith` command (commander). Only this layer knows exit codes.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import {
  agentsCommand,
  auditExportCommand,
  auditVerifyCommand,
  taskCommand,
  tasksCommand,
} from './commands/inspect.js';
import { SmithError } from '../core/errors.js';
import { alertsAckCommand, alertsCommand } from './commands/alerts.js';
import { attachAgentCommand } from './commands/attach.js';
import { worktreesCommand, worktreesPruneCommand } from './commands/worktrees.js';
import {
  waiverAddCommand,
  waiverListCommand,
  waiverRevokeCommand,
  type WaiverAddOptions,
} from './commands/waiver.js';
import { controlCommand, guideCommand, initCommand } from './commands/control.js';
import {
  keysCreateCommand,
  keysListCommand,
  keysRevokeCommand,
  serveCommand,
  type ServeOptions,
} from './commands/serve.js';
import { demoCommand, resumeCommand, runCommand, type RunOptions } from './commands/run.js';
import {
  context as embeddedContext,
  readOnlyContext,
  EXIT,
  exitCodeFor,
  printError,
  type Context,
  type GlobalOptions,
} from './context.js';
import { commandPath, isRemote, refuseEmbeddedOnly } from './remote.js';

/**
 * The context of a command that may change things. With SMITH_URL set the server's smith.yaml
 * rules, so none is read here.
 */
async function context(g: GlobalOptions): Promise<Context> {
  return isRemote() ? readOnlyContext(g) : embeddedContext(g);
}

/**
 * A commander option parser that accepts an integer in [min, max] and keeps the text as written
 * (the commands convert it). Anything else is a usage error (exit 2) naming the option and the range.
 */
function integerIn(min: number, max: number, what: string): (value: string) => string {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected ${what}`);
    }
    return value;
  };
}

/** Build the program; `exit` receives each action's exit code. */
export function buildProgram(exit: (code: number) => void): Command {
  const program = new Command();
  program
    .name('smith')
    .description('MisterSmith: run teams of AI agents as supervised workers')
    .option('--home <dir>', 'state folder (default: SMITH_HOME, else ./.smith)')
    .option('--config <file>', 'config file (default: ./smith.yaml when present)')
    .option('--json', 'machine-readable output on stdout')
    .showHelpAfterError()
    .exitOverride();

  const act =
    <A extends unknown[]>(fn: (g: GlobalOptions, ...args: A) => Promise<number>) =>
    async (...args: A): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      const g = cmd.optsWithGlobals() as GlobalOptions;
      try {
        refuseEmbeddedOnly(commandPath(cmd));
        exit(await fn(g, ...args));
      } catch (err) {
        printError(err, Boolean(g.json));
        exit(exitCodeFor(err));
      }
    };

  program
    .command('init')
    .description('write a commented starter smith.yaml and create the home')
    .option('--json', 'JSON output')
    .action(act(async (g) => initCommand(await context(g))));

  program
    .command('run')
    .description(
      'run a workflow file, or one task: smith run WORKFLOW.yaml | smith run --agent NAME "prompt"',
    )
    .argument('[target]', 'workflow file, or the prompt with --agent')
    .argument('[prompt]', 'the prompt (with --agent)')
    .option('--agent <name>', 'run one task on this agent')
    .option(
      '--capabilities <list>',
      'run one task on the least-loaded agent with these capabilities (comma list)',
    )
    .option('--priority <n>', '1 (highest) .. 10', integerIn(1, 10, 'an integer from 1 (highest) to 10'))
    .option('--timeout <duration>', 'per-attempt timeout, e.g. 30s, 10m')
    .option(
      '--retries <n>',
      'retries after the first attempt',
      integerIn(0, 1000, 'a whole number of retries from 0 to 1000'),
    )
    .option(
      '--concurrency <n>',
      'global limit of attempts at once',
      integerIn(1, 100_000, 'a whole number of attempts at once from 1 to 100000'),
    )
    .option('--json', 'end with one JSON object {workflow, tasks}')
    .action(
      act(async (g, target: string | undefined, prompt: string | undefined, o: RunOptions) =>
        runCommand(await context(g), target, prompt, o),
      ),
    );

  program
    .command('demo')
    .description("run the demo workflow on this git repository (or on MisterSmith's own checkout)")
    .option('--json', 'end with one JSON object {workflow, tasks}')
    .action(act(async (g) => demoCommand(await context(g))));

  program
    .command('resume')
    .description('finish every unfinished workflow of this home (after a crash or an interrupt)')
    .option('--json', 'one JSON object {workflow, tasks} per workflow')
    .action(act(async (g) => resumeCommand(await context(g))));

  program
    .command('tasks')
    .description('list tasks')
    .option('--state <states>', 'filter by state (comma list)')
    .option('--agent <name>', 'filter by agent')
    .option('--workflow <id|name>', 'filter by workflow')
    .option(
      '--limit <n>',
      'at most n, newest first',
      integerIn(1, Number.MAX_SAFE_INTEGER, 'a positive integer'),
    )
    .option('--json', 'JSON array')
    .action(
      act(async (g, o: { state?: string; agent?: string; workflow?: string; limit?: string }) =>
        tasksCommand(readOnlyContext(g), o),
      ),
    );

  program
    .command('task')
    .description('one task: attempts, events, output, timings')
    .argument('<id>', 'task id, id prefix, or key')
    .option('--json', 'JSON object')
    .action(act(async (g, id: string) => taskCommand(readOnlyContext(g), id)));

  program
    .command('approve')
    .description('approve a task awaiting approval (strict mode): its change is applied and it completes')
    .argument('<id>', 'task id, id prefix, or key')
    .option('--json', 'JSON object')
    .action(act(async (g, id: string) => controlCommand(await context(g), 'approve', id)));
  program
    .command('reject')
    .description('reject a task awaiting approval or being judged; its worktree and branch are kept')
    .argument('<id>', 'task id, id prefix, or key')
    .requiredOption('--reason <text>', 'why (recorded in the audit trail)')
    .option('--json', 'JSON object')
    .action(
      act(async (g, id: string, o: { reason: string }) =>
        controlCommand(await context(g), 'reject', id, { reason: o.reason }),
      ),
    );
  program
    .command('override')
    .description("override the council's verdict (audited): approve applies the change, reject rejects it")
    .argument('<id>', 'task id, id prefix, or key')
    .requiredOption('--verdict <verdict>', 'approve or reject')
    .requiredOption('--reason <text>', 'why (recorded in the audit trail)')
    .option('--json', 'JSON object')
    .action(
      act(async (g, id: string, o: { verdict: string; reason: string }) => {
        if (o.verdict !== 'approve' && o.verdict !== 'reject') {
          throw new SmithError('INVALID_ARGUMENT', `--verdict ${o.verdict}: expected approve or reject`);
        }
        return controlCommand(await context(g), 'override', id, { verdict: o.verdict, reason: o.reason });
      }),
    );

  const waiver = program
    .command('waiver')
    .description('waivers: lift named council gates of one task while active');
  waiver
    .command('add')
    .description('add a waiver (id WV-0001, …); every use is audited')
    .requiredOption('--task <id>', 'the task it is for')
    .requiredOption(
      '--gates <list>',
      'gates it lifts: constitution, verification, quality, integration, budget, scope, secrets, or a command judge',
    )
    .requiredOption('--reason <text>', 'why it is needed (at least 10 characters)')
    .requiredOption(
      '--approver <name>',
      'who approved it (repeat for several)',
      (v: string, acc: string[] = []) => [...acc, v],
    )
    .requiredOption('--expires <duration>', 'how long it lasts, such as 2d or 12h')
    .option('--title <text>', 'a short title')
    .option('--json', 'JSON object')
    .action(act(async (g, o: WaiverAddOptions) => waiverAddCommand(await context(g), o)));
  waiver
    .command('list')
    .description('list waivers with their effective status')
    .option('--task <id>', 'only this task')
    .option('--json', 'JSON array')
    .action(act(async (g, o: { task?: string }) => waiverListCommand(readOnlyContext(g), o)));
  waiver
    .command('revoke')
    .description('revoke a waiver (audited)')
    .argument('<id>', 'WV-0001, …')
    .option('--json', 'JSON object')
    .action(act(async (g, id: string) => waiverRevokeCommand(await context(g), id)));

  for (const [verb, what] of [
    ['cancel', 'cancel a task (SIGTERM to its process group, SIGKILL after the grace)'],
    ['pause', 'pause a task (SIGSTOP when running; hold when queued)'],
    ['resume-task', 'resume a paused task'],
    ['retry', 'run a failed, rejected or canceled task again'],
  ] as const) {
    program
      .command(verb)
      .description(what)
      .argument('<id>', 'task id, id prefix, or key')
      .option('--json', 'JSON object')
      .action(act(async (g, id: string) => controlCommand(await context(g), verb, id)));
  }

  const worktrees = program
    .command('worktrees')
    .description('the task worktrees of this home, with their task, branch and lease')
    .option('--json', 'JSON array')
    .action(act(async (g) => worktreesCommand(await context(g))));
  worktrees
    .command('prune')
    .description('remove the worktrees of ended tasks, keeping any unsaved work in a snapshot ref')
    .option('--json', 'JSON array')
    .action(act(async (g) => worktreesPruneCommand(await context(g))));

  program
    .command('serve')
    .description('own this home and serve it over HTTP: REST v1, SSE, WebSocket chat (see docs/api.md)')
    .option('--host <host>', 'interface to bind (default: server.host, else 127.0.0.1)')
    .option(
      '--port <port>',
      'TCP port (default: server.port, else 7700; 0 picks a free one)',
      integerIn(0, 65535, 'a port from 0 to 65535'),
    )
    .option('--json', 'print {url, home, pid} once listening')
    .action(act(async (g, o: ServeOptions) => serveCommand(await context(g), o)));

  const keys = program.command('keys').description('API keys of this home (for smith serve)');
  keys
    .command('create')
    .description('make a key; its token is printed this once')
    .requiredOption('--role <role>', 'viewer, operator or admin')
    .option('--name <name>', 'a name to know it by')
    .option('--expires <duration>', 'it stops working after this long, such as 720h')
    .option('--json', 'JSON object')
    .action(
      act(async (g, o: { role: string; name?: string; expires?: string }) =>
        keysCreateCommand(await context(g), o),
      ),
    );
  keys
    .command('list')
    .description('every key with its role and status (never a secret)')
    .option('--json', 'JSON array')
    .action(act(async (g) => keysListCommand(readOnlyContext(g))));
  keys
    .command('revoke')
    .description('revoke a key; a running server refuses it within a second')
    .argument('<id>', 'key id')
    .option('--json', 'JSON object')
    .action(act(async (g, id: string) => keysRevokeCommand(readOnlyContext(g), id)));

  program
    .command('attach')
    .description("open a tmux agent's session (its windows are its instances); detach with Ctrl-b d")
    .argument('<agent>', 'agent name')
    .option('--json', 'print the tmux command instead of attaching')
    .action(act(async (g, agent: string) => attachAgentCommand(readOnlyContext(g), agent)));

  program
    .command('guide')
    .description("guidance for a task's next attempt (appended to its input; audited)")
    .argument('<id>', 'task id, id prefix, or key')
    .argument('<text>', 'what the agent should do differently')
    .option('--json', 'JSON object')
    .action(act(async (g, id: string, text: string) => guideCommand(await context(g), id, text)));

  program
    .command('agents')
    .description('agents and the states of their instances')
    .option('--json', 'JSON array')
    .action(act(async (g) => agentsCommand(readOnlyContext(g))));

  const alerts = program
    .command('alerts')
    .description('SLO alerts, newest first (firing, acknowledged, resolved); see docs/slos-and-alerts.md')
    .option('--state <states>', 'only these states (comma list): firing, acknowledged, resolved')
    .option('--json', 'JSON array')
    .action(act(async (g, o: { state?: string }) => alertsCommand(readOnlyContext(g), o)));
  alerts
    .command('ack')
    .description('acknowledge a firing alert (audited); it resolves by itself when the SLO recovers')
    .argument('<id>', 'alert id, such as AL-0001')
    .option('--json', 'JSON object')
    .action(act(async (g, id: string) => alertsAckCommand(readOnlyContext(g), id)));

  const audit = program.command('audit').description('the audit trail');
  audit
    .command('verify')
    .description(
      'check the hash chain, the signed checkpoints and the verdict signatures; exits 1 and names the first failure',
    )
    .option(
      '--key <file>',
      "the public key (JWK or PEM) to check signatures with (default: the home's public.jwk)",
    )
    .option('--from <file>', 'check an export (smith audit export --out FILE) offline instead of the store')
    .option('--json', 'JSON object')
    .action(act(async (g, o: { key?: string; from?: string }) => auditVerifyCommand(readOnlyContext(g), o)));
  audit
    .command('export')
    .description('write every audit record as JSON lines, and the public key, for offline verification')
    .option('--out <file>', 'write the records to this file (default: stdout)')
    .option('--key-out <file>', "copy the public key here (default: it stays at the home's keys/public.jwk)")
    .action(
      act(async (g, o: { out?: string; keyOut?: string }) => auditExportCommand(readOnlyContext(g), o)),
    );

  return program;
}

/**
 * Run the CLI.
 * @param argv - process.argv
 * @returns the exit code
 */
export async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.ok;
  const program = buildProgram((c) => (code = c));
  // Keep the process alive until the command has finished. The engine's and the store's timers are
  // unref'd (so that a library user's process can exit), and a pending promise holds nothing: while
  // the only thing left is, say, a retry's backoff timer, Node would otherwise exit with code 0 in
  // the middle of `smith run`, printing nothing.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    throw err;
  } finally {
    clearInterval(keepAlive);
  }
  return code;
}
