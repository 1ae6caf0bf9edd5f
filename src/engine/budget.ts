/**
 * Budgets: spend caps in USD and tokens per task, agent, workflow and home, fed by the `usage`
 * events of attempts. The ledger keeps what is recorded plus what running attempts have reported so
 * far, so a cap is checked against live spend, not only against ended attempts.
 */
import type { Budget, TokenUsage } from '../core/types.js';
import type { ModelPrice } from '../core/schema/index.js';
import type { Spend, SpendTotals } from '../store/store.js';

/** Tokens of a usage record, all kinds together (input + output + cache read + cache write). */
export function totalTokens(u: TokenUsage): number {
  return u.input + u.output + u.cacheRead + u.cacheWrite;
}

/** A zero {@link TokenUsage}. */
export function noUsage(): TokenUsage {
  return { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
}

/** Add `b` into `a` (in place) and return `a`. */
export function addUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  a.input += b.input;
  a.output += b.output;
  a.cacheRead += b.cacheRead;
  a.cacheWrite += b.cacheWrite;
  return a;
}

/**
 * The price of `usage` in USD from a price table in USD per million tokens (`prices:` in
 * `smith.yaml`), looked up by exact model name, then by the longest table key that the model name
 * starts with (`claude-sonnet-4-5` prices `claude-sonnet-4-5-20250929`).
 *
 * @param usage - tokens by kind
 * @param model - the model that used them, if known
 * @param prices - model name -> price
 * @returns USD, or undefined when the model has no price
 */
export function priceUsage(
  usage: TokenUsage,
  model: string | undefined,
  prices: Readonly<Record<string, ModelPrice>>,
): number | undefined {
  if (model === undefined) return undefined;
  let price = prices[model];
  if (price === undefined) {
    let bestLen = 0;
    for (const [name, p] of Object.entries(prices)) {
      if (model.startsWith(name) && name.length > bestLen) {
        price = p;
        bestLen = name.length;
      }
    }
  }
  if (price === undefined) return undefined;
  return (
    (usage.input * price.inputPerMTok +
      usage.output * price.outputPerMTok +
      usage.cacheRead * price.cacheReadPerMTok +
      usage.cacheWrite * price.cacheWritePerMTok) /
    1_000_000
  );
}

/** The scopes a cap applies to, most specific first. */
export type BudgetScope = 'task' | 'agent' | 'workflow' | 'home';

/** A cap that was reached: which scope, which limit, what was spent. */
export interface BudgetBreach {
  scope: BudgetScope;
  /** The task id, agent name, workflow id, or `home`. */
  subject: string;
  limit: Budget;
  spent: Spend;
}

/**
 * The task's failure reason for a breach: `budget_exceeded: agent "claude" budget $0.50 reached
 * ($0.5123 spent)`.
 */
export function breachReason(b: BudgetBreach): string {
  const what = b.scope === 'home' ? 'the home' : b.scope === 'agent' ? `agent "${b.subject}"` : `${b.scope}`;
  const parts: string[] = [];
  if (b.limit.usd !== undefined && b.spent.usd >= b.limit.usd) {
    parts.push(`budget $${b.limit.usd} reached ($${b.spent.usd.toFixed(4)} spent)`);
  }
  if (b.limit.tokens !== undefined && b.spent.tokens >= b.limit.tokens) {
    parts.push(`budget of ${b.limit.tokens} tokens reached (${b.spent.tokens} used)`);
  }
  return `budget_exceeded: ${what} ${parts.join(' and ')}; raise "budget" or retry the task with a larger one`;
}

function over(limit: Budget | null | undefined, spent: Spend): boolean {
  if (!limit) return false;
  return (
    (limit.usd !== undefined && spent.usd >= limit.usd) ||
    (limit.tokens !== undefined && spent.tokens >= limit.tokens)
  );
}

/** What a check needs to know about one task: its ids and the caps that apply to it. */
export interface BudgetSubject {
  taskId: string;
  agent: string;
  workflowId: string | null;
  task: Budget | null;
  agentBudget: Budget | undefined;
  workflowBudget: Budget | undefined;
}

/**
 * Spend by agent, workflow and home: recorded spend (from the store at start) plus what running
 * attempts report. A task's own spend is on the task itself ({@link BudgetLedger.check} takes it).
 */
export class BudgetLedger {
  private readonly byAgent = new Map<string, Spend>();
  private readonly byWorkflow = new Map<string, Spend>();
  private readonly home: Spend = { usd: 0, tokens: 0 };

  /**
   * @param home - the cap of everything in this home (`budget:` at the top of `smith.yaml`)
   */
  constructor(private readonly homeBudget?: Budget) {}

  /** Whether the home has a cap. */
  get hasHomeBudget(): boolean {
    return this.homeBudget !== undefined;
  }

  /** Start from what the store has recorded. */
  seed(totals: SpendTotals): void {
    this.home.usd = totals.total.usd;
    this.home.tokens = totals.total.tokens;
    for (const [k, v] of Object.entries(totals.byAgent)) this.byAgent.set(k, { ...v });
    for (const [k, v] of Object.entries(totals.byWorkflow)) this.byWorkflow.set(k, { ...v });
  }

  /** Add spend (USD and tokens, may be negative to correct an estimate) to an agent and workflow. */
  add(agent: string, workflowId: string | null, usd: number, tokens: number): void {
    const a = this.byAgent.get(agent) ?? { usd: 0, tokens: 0 };
    a.usd += usd;
    a.tokens += tokens;
    this.byAgent.set(agent, a);
    if (workflowId !== null) {
      const w = this.byWorkflow.get(workflowId) ?? { usd: 0, tokens: 0 };
      w.usd += usd;
      w.tokens += tokens;
      this.byWorkflow.set(workflowId, w);
    }
    this.home.usd += usd;
    this.home.tokens += tokens;
  }

  /**
   * The first cap reached for a task, most specific first (task, agent, workflow, home).
   *
   * @param s - the task and its caps
   * @param taskSpent - the task's spend so far, including its running attempt
   * @returns the breach, or null when every cap has room
   */
  check(s: BudgetSubject, taskSpent: Spend): BudgetBreach | null {
    if (over(s.task, taskSpent))
      return { scope: 'task', subject: s.taskId, limit: s.task!, spent: taskSpent };
    const a = this.byAgent.get(s.agent) ?? { usd: 0, tokens: 0 };
    if (over(s.agentBudget, a)) return { scope: 'agent', subject: s.agent, limit: s.agentBudget!, spent: a };
    if (s.workflowId !== null) {
      const w = this.byWorkflow.get(s.workflowId) ?? { usd: 0, tokens: 0 };
      if (over(s.workflowBudget, w)) {
        return { scope: 'workflow', subject: s.workflowId, limit: s.workflowBudget!, spent: w };
      }
    }
    if (over(this.homeBudget, this.home)) {
      return { scope: 'home', subject: 'home', limit: this.homeBudget!, spent: { ...this.home } };
    }
    return null;
  }

  /**
   * What is left of the tightest cap for a task, for runtimes that can cap themselves
   * (`--max-budget-usd`); undefined fields have no cap.
   */
  remaining(s: BudgetSubject, taskSpent: Spend): Budget {
    const out: Budget = {};
    const consider = (limit: Budget | null | undefined, spent: Spend): void => {
      if (!limit) return;
      if (limit.usd !== undefined)
        out.usd = Math.min(out.usd ?? Infinity, Math.max(0, limit.usd - spent.usd));
      if (limit.tokens !== undefined) {
        out.tokens = Math.min(out.tokens ?? Infinity, Math.max(0, limit.tokens - spent.tokens));
      }
    };
    consider(s.task, taskSpent);
    consider(s.agentBudget, this.byAgent.get(s.agent) ?? { usd: 0, tokens: 0 });
    if (s.workflowId !== null) {
      consider(s.workflowBudget, this.byWorkflow.get(s.workflowId) ?? { usd: 0, tokens: 0 });
    }
    consider(this.homeBudget, this.home);
    return out;
  }
}
