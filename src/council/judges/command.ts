/**
 * The command judge kind: any program that reads the {@link JudgeContext} as JSON on stdin and
 * prints a {@link Verdict} as JSON on stdout. The verdict is validated with
 * {@link verdictInputSchema}; a missing, unparsable or invalid verdict, a timeout or a program that
 * cannot start gives `abstain` with the reason (its weight leaves the score).
 */
import { ConfigError } from '../../core/errors.js';
import { NAME_PATTERN } from '../../core/schema/index.js';
import type { Json } from '../../core/types.js';
import { makeVerdict, verdictInputSchema } from '../judge.js';
import type { Judge, JudgeContext, Verdict } from '../judge.js';
import { commandEvidence, describeFailure, lastLines, runCommand } from '../run-command.js';

/** Bytes of stdout read from a command judge (1 MiB). */
export const COMMAND_JUDGE_STDOUT_LIMIT = 1024 * 1024;

/** Options of {@link commandJudge}. */
export interface CommandJudgeOptions {
  /** The judge's name: its weight key and the gate a waiver names ({@link NAME_PATTERN}). */
  name: string;
  /** Shell text (run with `sh -c`) or an argv. Runs in the worktree, in its own process group. */
  command: string | readonly string[];
  /** Timeout in ms; default the policy's `verifyTimeoutMs` (10 min). The group is killed on timeout. */
  timeoutMs?: number;
  /** Environment; default the process's, plus `SMITH_JUDGE=<name>`. */
  env?: NodeJS.ProcessEnv;
}

/**
 * The JSON a command judge reads on stdin: the context without its abort signal (camelCase, times
 * in ms since the epoch).
 *
 * @param ctx - the context
 * @returns `{repo, base, head, spec, policy, output, commands, approvedBranches, waivers, now}`
 */
export function judgeInput(ctx: JudgeContext): string {
  const { signal: _signal, ...data } = ctx;
  return JSON.stringify({ ...data, commands: data.commands ?? [] });
}

/**
 * Builds a command judge.
 *
 * @param opts - name, command, timeout, environment
 * @returns the judge
 * @throws ConfigError (code `CONFIG_INVALID`) when the name or command is empty or malformed
 */
export function commandJudge(opts: CommandJudgeOptions): Judge {
  if (!NAME_PATTERN.test(opts.name)) {
    throw new ConfigError(
      `command judge name "${opts.name}" is invalid: use letters, digits, "_", "." and "-"`,
      { context: { judge: opts.name } },
    );
  }
  const empty = typeof opts.command === 'string' ? opts.command.trim() === '' : opts.command.length === 0;
  if (empty) {
    throw new ConfigError(
      `command judge "${opts.name}" has no command: give a program that prints a verdict`,
      {
        context: { judge: opts.name },
      },
    );
  }
  return { name: opts.name, evaluate: (ctx) => evaluateCommand(ctx, opts) };
}

async function evaluateCommand(ctx: JudgeContext, opts: CommandJudgeOptions): Promise<Verdict> {
  const timeoutMs = opts.timeoutMs ?? ctx.policy.verifyTimeoutMs;
  const run = await runCommand(opts.command, {
    cwd: ctx.repo,
    timeoutMs,
    env: opts.env ?? { ...process.env, SMITH_JUDGE: opts.name },
    stdin: judgeInput(ctx),
    stdoutLimitBytes: COMMAND_JUDGE_STDOUT_LIMIT,
    ...(ctx.signal === undefined ? {} : { signal: ctx.signal }),
  });
  const ev = commandEvidence('command-judge', opts.name, run);
  const abstain = (why: string): Verdict =>
    makeVerdict(opts.name, 'abstain', { reasons: [`command judge ${opts.name} ${why}`], evidence: [ev] });

  if (run.spawnError !== undefined || run.timedOut || run.aborted || run.signal !== null) {
    const tail = lastLines(run.outputTail);
    return abstain(`${describeFailure(run, timeoutMs)}${tail === '' ? '' : `: ${tail}`}`);
  }
  const parsed = parseJsonOutput(run.stdout);
  if (parsed === undefined) {
    const tail = lastLines(run.outputTail);
    return abstain(
      `printed no JSON verdict (exit code ${String(run.exitCode)})${tail === '' ? '' : `; its output ends: ${tail}`}`,
    );
  }
  const r = verdictInputSchema.safeParse(parsed);
  if (!r.success) {
    const problems = r.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`)
      .join('; ');
    return abstain(`printed an invalid verdict: ${problems}`);
  }
  const v = r.data;
  return makeVerdict(opts.name, v.decision, {
    ...(v.confidence === undefined ? {} : { confidence: v.confidence }),
    reasons: v.reasons ?? [],
    violations: (v.violations ?? []).map((x) => {
      const out: Verdict['violations'][number] = { rule: x.rule, severity: x.severity };
      if (x.location !== undefined) out.location = x.location;
      if (x.suggestion !== undefined) out.suggestion = x.suggestion;
      return out;
    }),
    evidence: [...((v.evidence ?? []) as Json[]), ev],
  });
}

/** The whole stdout as JSON, else its last non-empty line as JSON, else undefined. */
function parseJsonOutput(stdout: string): unknown {
  const text = stdout.trim();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    const last = text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .pop();
    if (last === undefined) return undefined;
    try {
      return JSON.parse(last) as unknown;
    } catch {
      return undefined;
    }
  }
}
