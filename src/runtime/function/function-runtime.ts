/**
 * The `function` runtime: an agent that is a JavaScript function in the same process. For the
 * library API, tests of the engine itself, and benchmarks of the orchestrator without process costs.
 */
import type { AgentSpec } from '../../core/types.js';
import { SmithError } from '../../core/errors.js';
import type {
  AgentRuntime,
  AttemptContext,
  AttemptHandle,
  AttemptOutcome,
  RuntimeEvent,
  TaskInput,
} from '../types.js';

/** What a function agent returns: its output text, or `{output}`; throwing fails the attempt. */
export type FunctionAgentResult = string | { output: string } | undefined | void;

/** A function agent. `signal` aborts on cancel and timeout; `report` sends progress, log … events. */
export type FunctionAgent = (
  input: TaskInput,
  tools: {
    signal: AbortSignal;
    report: (event: RuntimeEvent) => void;
    workdir: string;
    env: Record<string, string>;
    /** The native session an earlier attempt of this task reported, to continue. */
    resumeSessionId?: string;
    /** What is left of the task's budget, when it has one. */
    budget?: { usd?: number; tokens?: number };
  },
) => FunctionAgentResult | Promise<FunctionAgentResult>;

/** Runs agents registered by name as in-process functions. */
export class FunctionRuntime implements AgentRuntime {
  readonly kind = 'function';
  private readonly handlers = new Map<string, FunctionAgent>();

  /** @param handlers - agent name -> function */
  constructor(handlers: Record<string, FunctionAgent> = {}) {
    for (const [k, v] of Object.entries(handlers)) this.handlers.set(k, v);
  }

  /** Register (or replace) the function behind agent `name`. */
  register(name: string, fn: FunctionAgent): void {
    this.handlers.set(name, fn);
  }

  check(agent: AgentSpec): Promise<void> {
    if (!this.handlers.has(agent.name)) {
      return Promise.reject(
        new SmithError(
          'RUNTIME_NOT_FOUND',
          `agent "${agent.name}" has runtime "function" but no function is registered for it; register one with FunctionRuntime.register("${agent.name}", fn)`,
        ),
      );
    }
    return Promise.resolve();
  }

  start(ctx: AttemptContext): AttemptHandle {
    const ac = new AbortController();
    const fn = this.handlers.get(ctx.agent.name);
    let status: AttemptOutcome['status'] | undefined;
    let reason = '';
    let timer: NodeJS.Timeout | undefined;
    const base = {
      exitCode: null,
      signal: null,
      stdoutBytes: 0,
      stderrBytes: 0,
      droppedBytes: 0,
      stderr: '',
    };
    const run = async (): Promise<AttemptOutcome> => {
      if (!fn)
        return {
          ...base,
          status: 'failed',
          output: '',
          error: `no function registered for agent ${ctx.agent.name}`,
        };
      try {
        const r = await fn(ctx.input, {
          signal: ac.signal,
          report: ctx.onEvent,
          workdir: ctx.workdir,
          get env() {
            return ctx.env;
          },
          ...(ctx.resumeSessionId !== undefined ? { resumeSessionId: ctx.resumeSessionId } : {}),
          ...(ctx.budget !== undefined ? { budget: ctx.budget } : {}),
        });
        if (status) return { ...base, status, output: '', error: reason };
        const output = typeof r === 'string' ? r : r && typeof r === 'object' ? r.output : '';
        return { ...base, status: 'succeeded', exitCode: 0, output };
      } catch (err) {
        if (status) return { ...base, status, output: '', error: reason };
        return {
          ...base,
          status: 'failed',
          exitCode: null,
          output: '',
          error: (err as Error).message ?? String(err),
        };
      } finally {
        if (timer) clearTimeout(timer);
      }
    };
    const stop = (s: 'timed_out' | 'canceled', why: string): void => {
      if (status) return;
      status = s;
      reason = why;
      ac.abort(new Error(why));
    };
    if (ctx.timeoutMs !== null) {
      timer = setTimeout(() => stop('timed_out', `timed out after ${ctx.timeoutMs} ms`), ctx.timeoutMs);
      timer.unref();
    }
    const done = run();
    return {
      pid: null,
      done,
      cancel: (why) => stop('canceled', why),
      pause: () => undefined,
      resume: () => undefined,
    };
  }
}
