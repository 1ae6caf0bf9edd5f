/**
 * `smith run WORKFLOW.yaml`, `smith run --agent NAME "prompt"`, `smith demo` and `smith resume`:
 * the commands that own the engine of a home while they run. With SMITH_URL set, `smith run` and
 * `smith resume` hand the work to that server and follow it from here (see docs/remote-cli.md).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, isSmithError, NonRetryableError, SmithError } from '../../core/errors.js';
import { parseDuration } from '../../core/schema/index.js';
import type { Workflow, WorkflowSpec } from '../../core/types.js';
import type { TaskView } from '../../core/views.js';
import { buildDemoWorkflow, findDemoRepo } from '../../demo/index.js';
import { workflowRecords, type Engine } from '../../engine/engine.js';
import { openHomeStore, ownerIsAlive } from '../../engine/home.js';
import { closeSession, mergedAgents, openSession, type Session } from '../../engine/session.js';
import { loadWorkflow } from '../../engine/loader/index.js';
import { verifyAuditChain } from '../../provenance/verify.js';
import type { Store } from '../../store/store.js';
import { EXIT, type Context } from '../context.js';
import {
  firstLine,
  formatDuration,
  formatSpend,
  paint,
  stateColor,
  table,
  taskDuration,
  useColor,
} from '../output.js';
import { ProgressView } from '../progress.js';
import {
  listTasks,
  POLL_INTERVAL_MS,
  remoteClient,
  type ListedTaskView,
  type RemoteClient,
  type WorkflowView,
} from '../remote.js';

/** The JSON summary `smith run --json` and `smith resume --json` end with. */
export interface RunSummary {
  workflow: { id: string; name: string; state: string };
  tasks: {
    id: string;
    key: string;
    state: string;
    attempts: number;
    exit_code: number | null;
    output: string | null;
    agent: string | null;
    reason: string | null;
    duration_ms: number | null;
    /** USD spent by the task's attempts. */
    cost_usd: number;
    /** Tokens used by the task's attempts. */
    tokens: number;
    /** The agent's native session id, when its runtime has one. */
    session_id: string | null;
  }[];
}

/** Options of `smith run`. */
export interface RunOptions {
  agent?: string;
  capabilities?: string;
  priority?: string;
  timeout?: string;
  retries?: string;
  concurrency?: string;
}

/** Fail before anything runs when an agent the workflow needs cannot start here. */
function checkNeededAgents(engine: Engine, spec: WorkflowSpec): void {
  const errors = engine.agentErrors();
  const needed = new Set<string>();
  const specs = engine.agentSpecs();
  for (const t of spec.tasks) {
    if (t.agent) needed.add(t.agent);
    else {
      const capable = specs.filter((a) => (t.capabilities ?? []).every((c) => a.capabilities.includes(c)));
      if (capable.length > 0 && capable.every((a) => errors[a.name]))
        for (const a of capable) needed.add(a.name);
    }
  }
  const problems = [...needed].filter((n) => errors[n]).map((n) => errors[n]!);
  if (problems.length > 0) {
    throw new SmithError(
      'RUNTIME_NOT_FOUND',
      `workflow ${spec.name} cannot run:\n  ${problems.join('\n  ')}`,
    );
  }
}

/** Build the JSON summary of a workflow. */
export async function summarize(store: Store, wf: Workflow): Promise<RunSummary> {
  const tasks = await store.listTasks({ workflowId: wf.id });
  return {
    workflow: { id: wf.id, name: wf.name, state: wf.state },
    tasks: tasks.map((t) => ({
      id: t.id,
      key: t.key,
      state: t.state,
      attempts: t.attempts,
      exit_code: t.exitCode,
      output: t.output,
      agent: t.assignedAgent,
      reason: t.reason,
      duration_ms: taskDuration(t),
      cost_usd: t.costUsd,
      tokens: t.tokens,
      session_id: t.sessionId,
    })),
  };
}

/** Print the human summary table of a workflow. */
export function printSummary(summary: RunSummary): void {
  const color = useColor(process.stdout);
  const w = summary.workflow;
  const spend = {
    usd: summary.tasks.reduce((n, t) => n + t.cost_usd, 0),
    tokens: summary.tasks.reduce((n, t) => n + t.tokens, 0),
  };
  const spent = spend.usd > 0 || spend.tokens > 0;
  const rows = [
    ['TASK', 'STATE', 'AGENT', 'ATTEMPTS', 'EXIT', 'TIME', ...(spent ? ['SPEND'] : []), 'OUTPUT / REASON'],
  ];
  for (const t of summary.tasks) {
    const detail = t.state === 'completed' ? firstLine(t.output) : (t.reason ?? firstLine(t.output));
    rows.push([
      t.key,
      paint(color, stateColor(t.state), t.state),
      t.agent ?? '-',
      String(t.attempts),
      t.exit_code === null ? '-' : String(t.exit_code),
      formatDuration(t.duration_ms),
      ...(spent ? [formatSpend(t.cost_usd, t.tokens)] : []),
      firstLine(detail, 70),
    ]);
  }
  process.stdout.write(`\nworkflow ${w.name} (${w.id}): ${paint(color, stateColor(w.state), w.state)}\n`);
  process.stdout.write(table(rows) + '\n');
  if (spent) process.stdout.write(`spend: ${formatSpend(spend.usd, spend.tokens)}\n`);
}

/** Run one workflow to its end with live progress; returns its summary. */
async function runToEnd(
  ctx: Context,
  s: Session,
  submit: () => Promise<Workflow>,
  total: number,
): Promise<RunSummary> {
  const view = ctx.json && !process.stderr.isTTY ? undefined : new ProgressView(s.engine, total);
  const onSignal = (): void => {
    if (s.interrupted) return;
    s.interrupted = true;
    process.stderr.write(
      '\nsmith: interrupted; ending running attempts. Run "smith resume" to finish the work\n',
    );
    void s.engine.close();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const hint = pausedHint(s.engine);
  // strict mode: say which task waits for a person, and how to approve or reject it
  const onState = (e: { task: { id: string; key: string; reason: string | null }; to: string }): void => {
    if (e.to !== 'awaiting_approval') return;
    const why = e.task.reason ? ` (${e.task.reason})` : '';
    process.stderr.write(
      `smith: task ${e.task.key} (${e.task.id}) awaits approval${why}: smith approve ${e.task.id}, or smith reject ${e.task.id} --reason "…"\n`,
    );
  };
  s.engine.on('task:state', onState);
  try {
    const wf = await submit();
    const done = await s.engine.waitWorkflow(wf.id);
    view?.stop();
    return summarize(s.store, done);
  } finally {
    s.engine.off('task:state', onState);
    clearInterval(hint);
    view?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Say so (once) when nothing can move because every unfinished task is paused. */
function pausedHint(engine: Engine): NodeJS.Timeout {
  let said = false;
  const timer = setInterval(() => {
    const c = engine.liveCounts();
    const stuck = c.paused > 0 && c.running === 0 && c.queued === 0 && c.judging === 0;
    if (stuck && !said) {
      said = true;
      process.stderr.write(
        `smith: waiting for ${c.paused} paused task(s); continue them with "smith resume-task ID" or end them with "smith cancel ID" (list: smith tasks --state paused)\n`,
      );
    }
    if (!stuck) said = false;
  }, 2000);
  timer.unref();
  return timer;
}

/** The engine stopped on an error of its own (store write failed, lease lost): say it and exit 4. */
function engineFailed(s: Session): number | undefined {
  const err = s.engine.error;
  if (err === undefined) return undefined;
  process.stderr.write(`smith: the engine stopped: ${err instanceof Error ? err.message : String(err)}\n`);
  return EXIT.store;
}

function exitFor(s: Session, states: string[]): number {
  if (s.interrupted) return EXIT.interrupted;
  return states.every((st) => st === 'completed') ? EXIT.ok : EXIT.failed;
}

/** `smith run`. @returns the exit code */
export async function runCommand(
  ctx: Context,
  target: string | undefined,
  prompt: string | undefined,
  o: RunOptions,
): Promise<number> {
  const api = remoteClient();
  if (api) return runRemote(ctx, api, target, prompt, o);
  let spec: WorkflowSpec;
  if (o.agent || o.capabilities) {
    const text = prompt ?? target;
    if (!text)
      throw new SmithError(
        'INVALID_ARGUMENT',
        'smith run --agent NAME needs a prompt: smith run --agent NAME "prompt"',
      );
    const known = Object.keys(ctx.config.agents);
    if (o.agent && !ctx.config.agents[o.agent]) {
      throw new SmithError(
        'AGENT_NOT_FOUND',
        `no agent named "${o.agent}" in ${ctx.configFile ?? 'smith.yaml (none found)'}; known agents: ${known.join(', ') || 'none — run "smith init" to write a starter smith.yaml'}`,
      );
    }
    spec = {
      name: o.agent ?? 'task',
      dir: ctx.cwd,
      agents: {},
      tasks: [
        {
          key: o.agent ?? 'task',
          agent: o.agent,
          capabilities: o.capabilities
            ? o.capabilities
                .split(',')
                .map((c) => c.trim())
                .filter(Boolean)
            : undefined,
          prompt: text,
          needs: [],
          retries: o.retries ? Number(o.retries) : ctx.config.defaults.retries,
          priority: o.priority ? Number(o.priority) : ctx.config.defaults.priority,
          timeoutMs: o.timeout ? parseDuration(o.timeout, '--timeout') : ctx.config.defaults.timeoutMs,
        },
      ],
    };
    const capable = Object.values(ctx.config.agents).filter((a) =>
      (spec.tasks[0]!.capabilities ?? []).every((c) => a.capabilities.includes(c)),
    );
    if (!o.agent && capable.length === 0) {
      throw new SmithError(
        'NO_CAPABLE_AGENT',
        `no agent has the capabilities [${o.capabilities}]; agents: ${known.join(', ') || 'none'}`,
      );
    }
  } else {
    if (!target)
      throw new SmithError(
        'INVALID_ARGUMENT',
        'smith run needs a workflow file (smith run WORKFLOW.yaml) or --agent NAME "prompt"',
      );
    spec = await loadWorkflow(resolve(ctx.cwd, target), ctx.config);
  }
  return runSpec(ctx, spec, o.concurrency ? Number(o.concurrency) : undefined);
}

async function runSpec(
  ctx: Context,
  spec: WorkflowSpec,
  concurrency?: number,
  after?: (s: Session, summary: RunSummary) => Promise<{ code: number; text: string }>,
): Promise<number> {
  let s: Session;
  try {
    s = await openSession(ctx, mergedAgents(ctx.config, spec), concurrency);
  } catch (err) {
    // another smith owns this home: hand the workflow to it and follow it from here
    if (isSmithError(err, 'LEASE_HELD') && !after) return runViaOwner(ctx, spec, concurrency);
    throw err;
  }
  let summary: RunSummary;
  let extra: { code: number; text: string } = { code: EXIT.ok, text: '' };
  try {
    await s.engine.start();
    checkNeededAgents(s.engine, spec);
    summary = await runToEnd(ctx, s, () => s.engine.submitWorkflow(spec), spec.tasks.length);
    if (after && !s.interrupted) extra = await after(s, summary);
    // workflows other terminals handed to this process finish before it leaves
    if (!s.interrupted && s.engine.liveCounts().running + s.engine.liveCounts().queued > 0) {
      process.stderr.write(
        'smith: finishing the workflows handed over from other terminals before exiting\n',
      );
    }
    if (!s.interrupted) await s.engine.waitAll();
  } finally {
    await closeSession(s);
  }
  if (ctx.json) process.stdout.write(JSON.stringify(summary) + '\n');
  else printSummary(summary);
  if (extra.text) process.stdout.write(extra.text);
  const failed = engineFailed(s);
  if (failed !== undefined) return failed;
  const code = exitFor(s, [summary.workflow.state]);
  return code === EXIT.ok ? extra.code : code;
}

type Followed = 'ended' | 'owner-gone' | 'interrupted';

/** Print the state changes of a workflow's tasks as they are recorded, until it ends. */
async function follow(ctx: Context, store: Store, workflowId: string): Promise<Followed> {
  const seen = new Map<string, string>();
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (;;) {
      const w = await store.getWorkflow(workflowId);
      if (!ctx.json || process.stderr.isTTY) {
        for (const t of await store.listTasks({ workflowId })) {
          if (seen.get(t.id) === t.state) continue;
          seen.set(t.id, t.state);
          process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${t.key} ${t.state}\n`);
        }
      }
      if (w && w.state !== 'running') return 'ended';
      if (interrupted) return 'interrupted';
      if (!(await ownerIsAlive(store))) return 'owner-gone';
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * `smith run` while another process owns the home: record the workflow, ask the owner to adopt it,
 * and follow it here. If the owner leaves before it ends, take the home over and finish it.
 */
async function runViaOwner(ctx: Context, spec: WorkflowSpec, concurrency?: number): Promise<number> {
  const store = await openHomeStore(ctx.home, { synchronous: ctx.config.store.synchronous });
  try {
    const owner = await ownerIsAlive(store);
    const { workflow, ops } = workflowRecords(spec, 'cli');
    await store.commit([...ops, { op: 'request', taskId: workflow.id, action: 'adopt', actor: 'cli' }]);
    process.stderr.write(
      `smith: another smith process (pid ${owner?.pid ?? '?'}) owns this home; it runs workflow ${spec.name} (${workflow.id}). ` +
        'Following it here: Ctrl-C stops following, not the workflow\n',
    );
    for (;;) {
      const how = await follow(ctx, store, workflow.id);
      if (how === 'interrupted') {
        process.stderr.write(
          `smith: stopped following; the workflow goes on (smith tasks --workflow ${workflow.id})\n`,
        );
        return EXIT.interrupted;
      }
      if (how === 'ended') break;
      // the owner left before the workflow ended: take the home over and finish it
      let s: Session;
      try {
        s = await openSession(ctx, mergedAgents(ctx.config, spec), concurrency);
      } catch (err) {
        if (isSmithError(err, 'LEASE_HELD')) continue;
        throw err;
      }
      try {
        await s.engine.start();
        await runToEnd(ctx, s, () => s.engine.resumeWorkflow(workflow.id), spec.tasks.length);
      } finally {
        await closeSession(s);
      }
      const failed = engineFailed(s);
      if (failed !== undefined) return failed;
      if (s.interrupted) return EXIT.interrupted;
      break;
    }
    const done = await store.getWorkflow(workflow.id);
    const summary = await summarize(store, done!);
    if (ctx.json) process.stdout.write(JSON.stringify(summary) + '\n');
    else printSummary(summary);
    return summary.workflow.state === 'completed' ? EXIT.ok : EXIT.failed;
  } finally {
    await store.close();
  }
}

/** `smith resume`: finish every unfinished workflow of this home. */
export async function resumeCommand(ctx: Context): Promise<number> {
  const api = remoteClient();
  if (api) return resumeRemote(ctx, api);
  const s = await openSession(ctx, mergedAgents(ctx.config));
  const summaries: RunSummary[] = [];
  try {
    await s.engine.start();
    const open = await s.store.listWorkflows(['running']);
    if (open.length === 0) {
      if (!ctx.json)
        process.stderr.write('smith: nothing to resume: every workflow in this home has ended\n');
    }
    const total = (await Promise.all(open.map((w) => s.store.listTasks({ workflowId: w.id })))).reduce(
      (n, ts) => n + ts.filter((t) => t.state !== 'completed').length,
      0,
    );
    const view = ctx.json && !process.stderr.isTTY ? undefined : new ProgressView(s.engine, total);
    const onSignal = (): void => {
      s.interrupted = true;
      void s.engine.close();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const hint = pausedHint(s.engine);
    try {
      for (const w of open) await s.engine.resumeWorkflow(w.id);
      const ended = await Promise.all(open.map((w) => s.engine.waitWorkflow(w.id)));
      for (const w of ended) summaries.push(await summarize(s.store, w));
    } finally {
      clearInterval(hint);
      view?.stop();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  } finally {
    await closeSession(s);
  }
  const failed = engineFailed(s);
  if (failed !== undefined) return failed;
  for (const sum of summaries) {
    if (ctx.json) process.stdout.write(JSON.stringify(sum) + '\n');
    else printSummary(sum);
  }
  if (ctx.json && summaries.length === 0)
    process.stdout.write(JSON.stringify({ workflow: null, tasks: [] }) + '\n');
  return exitFor(
    s,
    summaries.map((x) => x.workflow.state),
  );
}

/** A workflow with its task counts and tasks, as `GET /api/v1/workflows/:id` answers. */
interface WorkflowDetail {
  workflow: WorkflowView;
  counts: Record<string, number>;
  tasks: TaskView[];
}

/** Read a workflow file to send it, failing as loading it embedded fails when it cannot be read. */
async function readWorkflowFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new NonRetryableError(
        'WORKFLOW_NOT_FOUND',
        `workflow file ${file} not found (looked at ${file}); check the path`,
        { cause: err, context: { file } },
      );
    }
    if (code === 'EISDIR') {
      throw new ConfigError(`workflow file ${file} is a directory (${file}); give the path of a YAML file`, {
        cause: err,
        context: { file },
      });
    }
    throw new ConfigError(`cannot read workflow file ${file} (${file}): ${(err as Error).message}`, {
      cause: err,
      context: { file },
    });
  }
}

/**
 * `smith run` with SMITH_URL set: submit the workflow file (its YAML, and its directory for the
 * paths in it) or the one task to the server, then follow it to its end and print the same
 * summary as embedded.
 */
async function runRemote(
  ctx: Context,
  api: RemoteClient,
  target: string | undefined,
  prompt: string | undefined,
  o: RunOptions,
): Promise<number> {
  if (o.concurrency !== undefined) {
    throw new SmithError(
      'INVALID_ARGUMENT',
      `--concurrency limits an engine this command owns; with SMITH_URL set (${api.url}) the server's engine runs the work and its smith.yaml sets its limits: leave out --concurrency`,
    );
  }
  let workflowId: string;
  if (o.agent || o.capabilities) {
    const text = prompt ?? target;
    if (!text)
      throw new SmithError(
        'INVALID_ARGUMENT',
        'smith run --agent NAME needs a prompt: smith run --agent NAME "prompt"',
      );
    if (o.timeout !== undefined) parseDuration(o.timeout, '--timeout');
    const capabilities = o.capabilities
      ?.split(',')
      .map((c) => c.trim())
      .filter(Boolean);
    const { agents } = await api.get<{ agents: { name: string; capabilities: string[] }[] }>(
      '/api/v1/agents',
    );
    const known = agents.map((a) => a.name);
    if (o.agent && !known.includes(o.agent)) {
      throw new SmithError(
        'AGENT_NOT_FOUND',
        `no agent named "${o.agent}" on the server at ${api.url}; known agents: ${known.join(', ') || 'none — define agents in the smith.yaml of the server'}`,
      );
    }
    if (!o.agent && !agents.some((a) => (capabilities ?? []).every((c) => a.capabilities.includes(c)))) {
      throw new SmithError(
        'NO_CAPABLE_AGENT',
        `no agent has the capabilities [${o.capabilities}]; agents: ${known.join(', ') || 'none'}`,
      );
    }
    const task = await api.post<TaskView>('/api/v1/tasks', {
      ...(o.agent ? { agent: o.agent } : {}),
      ...(capabilities ? { capabilities } : {}),
      prompt: text,
      key: o.agent ?? 'task',
      ...(o.priority !== undefined ? { priority: Number(o.priority) } : {}),
      ...(o.timeout !== undefined ? { timeout: o.timeout } : {}),
      ...(o.retries !== undefined ? { retries: Number(o.retries) } : {}),
      // the task runs where the command was typed, as embedded (a path on the server's machine)
      workdir: ctx.cwd,
    });
    if (task.workflow_id === null)
      throw new SmithError(
        'STORE_FAILED',
        `the server made task ${task.id} outside a workflow; cannot follow it`,
      );
    workflowId = task.workflow_id;
  } else {
    if (!target)
      throw new SmithError(
        'INVALID_ARGUMENT',
        'smith run needs a workflow file (smith run WORKFLOW.yaml) or --agent NAME "prompt"',
      );
    const file = resolve(ctx.cwd, target);
    const yaml = await readWorkflowFile(file);
    const dir = dirname(file);
    try {
      const made = await api.post<{ workflow: WorkflowView }>('/api/v1/workflows', { yaml, dir });
      workflowId = made.workflow.id;
    } catch (err) {
      // the server names the posted text after its directory: say the file's own name, as embedded
      const posted = join(dir, 'request.yaml');
      if (isSmithError(err) && err.message.includes(posted)) {
        throw new SmithError(err.code, err.message.split(posted).join(file), {
          cause: err,
          context: err.context,
        });
      }
      throw err;
    }
  }
  return followRemote(ctx, api, [workflowId], 'the workflow goes on');
}

/**
 * `smith resume` with SMITH_URL set. The server resumes every unfinished workflow of its home by
 * itself when it starts; this follows the ones still running to their ends and prints their
 * summaries, as `smith resume` does embedded.
 */
async function resumeRemote(ctx: Context, api: RemoteClient): Promise<number> {
  const { workflows } = await api.get<{ workflows: WorkflowView[] }>('/api/v1/workflows', {
    state: 'running',
  });
  if (workflows.length === 0) {
    if (ctx.json) process.stdout.write(JSON.stringify({ workflow: null, tasks: [] }) + '\n');
    else
      process.stderr.write(
        `smith: nothing to resume: every workflow of the server at ${api.url} has ended\n`,
      );
    return EXIT.ok;
  }
  process.stderr.write(
    `smith: the server at ${api.url} resumes unfinished work by itself; ${workflows.length} workflow(s) run there: ${workflows.map((w) => `${w.name} (${w.id})`).join(', ')}\n`,
  );
  return followRemote(
    ctx,
    api,
    workflows.map((w) => w.id),
    workflows.length === 1 ? 'the workflow goes on' : 'the workflows go on',
  );
}

/**
 * Follow workflows on a server until every one has ended, printing their tasks' state changes on
 * stderr; then print their summaries. Ctrl-C stops following, never the workflows.
 * @returns 0 when every workflow completed, 1 when one did not, 130 when interrupted
 */
async function followRemote(ctx: Context, api: RemoteClient, ids: string[], goesOn: string): Promise<number> {
  const lines = !ctx.json || Boolean(process.stderr.isTTY);
  if (lines) {
    process.stderr.write(
      `smith: following ${ids.length === 1 ? `workflow ${ids[0]}` : `${ids.length} workflows`} on the server at ${api.url}: Ctrl-C stops following, not the work\n`,
    );
  }
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const seen = new Map<string, string>();
  const ended = new Map<string, WorkflowView>();
  let saidPaused = false;
  try {
    while (ended.size < ids.length && !interrupted) {
      const counts = { paused: 0, moving: 0 };
      for (const id of ids) {
        if (ended.has(id)) continue;
        const d = await api.get<WorkflowDetail>(`/api/v1/workflows/${encodeURIComponent(id)}`);
        for (const t of d.tasks) {
          if (seen.get(t.id) === t.state) continue;
          seen.set(t.id, t.state);
          if (lines) process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${t.key} ${t.state}\n`);
          // strict mode: say which task waits for a person, and how to approve or reject it
          if (t.state === 'awaiting_approval') {
            const why = t.reason ? ` (${t.reason})` : '';
            process.stderr.write(
              `smith: task ${t.key} (${t.id}) awaits approval${why}: smith approve ${t.id}, or smith reject ${t.id} --reason "…"\n`,
            );
          }
        }
        if (d.workflow.state !== 'running') ended.set(id, d.workflow);
        counts.paused += d.counts.paused ?? 0;
        counts.moving += (d.counts.running ?? 0) + (d.counts.queued ?? 0) + (d.counts.judging ?? 0);
      }
      // say so (once) when nothing can move because every unfinished task is paused
      const stuck = counts.paused > 0 && counts.moving === 0 && ended.size < ids.length;
      if (stuck && !saidPaused) {
        process.stderr.write(
          `smith: waiting for ${counts.paused} paused task(s); continue them with "smith resume-task ID" or end them with "smith cancel ID" (list: smith tasks --state paused)\n`,
        );
      }
      saidPaused = stuck;
      if (ended.size < ids.length && !interrupted) {
        // one request per workflow each round: the round stretches with the number of workflows
        await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS * (ids.length - ended.size)));
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (interrupted) {
    const open = ids.filter((id) => !ended.has(id));
    process.stderr.write(
      `\nsmith: stopped following; ${goesOn} on the server (${open.map((id) => `smith tasks --workflow ${id}`).join('; ')})\n`,
    );
    return EXIT.interrupted;
  }
  const states: string[] = [];
  for (const id of ids) {
    const w = ended.get(id)!;
    const summary = remoteSummary(w, await listTasks(api, { workflow: id }, { output: true }));
    states.push(summary.workflow.state);
    if (ctx.json) process.stdout.write(JSON.stringify(summary) + '\n');
    else printSummary(summary);
  }
  return states.every((st) => st === 'completed') ? EXIT.ok : EXIT.failed;
}

/** The summary of a workflow from the server's views of it and its tasks (newest first). */
function remoteSummary(w: WorkflowView, newestFirst: ListedTaskView[]): RunSummary {
  return {
    workflow: { id: w.id, name: w.name, state: w.state },
    tasks: [...newestFirst].reverse().map((t) => ({
      id: t.id,
      key: t.key,
      state: t.state,
      attempts: t.attempts,
      exit_code: t.exit_code,
      output: t.output ?? null,
      // the view names the agent asked for until one is assigned, which happens with the first attempt
      agent: t.attempts > 0 ? t.agent : null,
      reason: t.reason,
      duration_ms: t.duration_ms,
      cost_usd: t.cost_usd,
      tokens: t.tokens,
      session_id: t.session_id,
    })),
  };
}

/** The folder of this package (where package.json is). */
export function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

/**
 * A scratch clone of the demo's repository under `<home>/demo/` (objects shared with the original,
 * `git clone --shared`), for the coding task to change; or why there is none.
 */
function scratchClone(repo: string, home: string): { dir?: string; why?: string } {
  const head = spawnSync('git', ['rev-parse', '--verify', '--quiet', 'HEAD'], {
    cwd: repo,
    encoding: 'utf8',
  });
  if (head.status !== 0) return { why: `${repo} has no commit yet to clone` };
  const dir = join(home, 'demo', `scratch-${Date.now()}`);
  mkdirSync(dirname(dir), { recursive: true });
  const r = spawnSync('git', ['clone', '--quiet', '--shared', repo, dir], { encoding: 'utf8' });
  if (r.status !== 0) return { why: `git clone failed: ${(r.stderr || '').trim()}` };
  return { dir };
}

/** What became of the coding task, with the applied commit's message (its trailers) from the scratch clone. */
function tidyText(t: RunSummary['tasks'][number], dir: string): string {
  if (t.state !== 'completed') return `coding task: ${t.state}${t.reason ? ` (${t.reason})` : ''}\n`;
  const log = spawnSync('git', ['log', '-1', '--format=%h %s%n%b', 'HEAD'], { cwd: dir, encoding: 'utf8' });
  const body = (log.stdout || '').trim().replace(/^/gm, '  ');
  return `coding task: judged by the council and applied to the scratch clone ${dir}:\n${body}\n`;
}

/** `smith demo`: the main job on real input. */
export async function demoCommand(ctx: Context): Promise<number> {
  if (process.env.SMITH_DEMO_ACTIVE) {
    throw new SmithError(
      'INVALID_ARGUMENT',
      'smith demo is already running above this process (SMITH_DEMO_ACTIVE is set): a test suite started by the demo cannot start the demo again',
    );
  }
  const root = packageRoot();
  const repo = findDemoRepo(ctx.cwd, root);
  const reportPath = join(ctx.home, 'demo-report.txt');
  // the coding task's change is applied to a scratch clone, never to the user's own branch
  const scratch = scratchClone(repo, ctx.home);
  const spec = buildDemoWorkflow({
    repoDir: repo,
    distDir: join(root, 'dist'),
    reportPath,
    ...(scratch.dir ? { scratchRepo: scratch.dir } : {}),
  });
  if (!ctx.json && scratch.why) process.stderr.write(`smith demo: no coding task: ${scratch.why}\n`);
  if (!ctx.json) {
    process.stderr.write(
      `smith demo: looking at ${repo} with ${Object.keys(spec.agents).length} agents (home ${ctx.home})\n`,
    );
  }
  return runSpec(ctx, spec, undefined, async (s, summary) => {
    const v = await verifyAuditChain(s.store);
    let text = '';
    if (!ctx.json) {
      const color = useColor(process.stdout);
      const report = summary.tasks.find((t) => t.key === 'report');
      if (report?.state === 'completed' && report.output)
        text += `\n${report.output.replace(/\s+$/, '')}\n\n`;
      text += v.ok
        ? `audit chain: ${paint(color, 'green', 'verified')} (${v.checked} records, head ${v.head.hash.slice(0, 16)}…)\n`
        : `audit chain: ${paint(color, 'red', 'BROKEN')} at record ${v.broken?.seq}: ${v.broken?.reason}\n`;
      text += `report: ${reportPath}\n`;
      const tidy = summary.tasks.find((t) => t.key === 'tidy');
      if (tidy && scratch.dir) text += tidyText(tidy, scratch.dir);
    }
    return { code: v.ok ? EXIT.ok : EXIT.failed, text };
  });
}
