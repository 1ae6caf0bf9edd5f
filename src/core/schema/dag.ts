/**
 * Checks that a workflow can run: its tasks form a DAG (every `needs` names a task, no task needs
 * itself, no cycles) and every task can be routed to an agent. Pure: no I/O.
 */
import { WorkflowValidationError } from '../errors.js';
import type { AgentSpec, TaskSpec } from '../types.js';
import { didYouMean } from './config-schema.js';

/**
 * One reason a workflow cannot run, with the place it is about.
 * `path` is from the workflow's root in the map form: `['tasks', key, 'needs', index]`.
 */
export interface WorkflowProblem {
  /** Where: `['tasks', <key>, <field>, …]`. */
  path: (string | number)[];
  /** What is wrong and what to do; names the task, so it reads alone. */
  message: string;
}

/** The minimal part of a task these checks read. */
type TaskLike = Pick<TaskSpec, 'key' | 'needs'> & Partial<Pick<TaskSpec, 'agent' | 'capabilities'>>;

function listNames(names: readonly string[]): string {
  return names.length === 0 ? '(none)' : names.join(', ');
}

/**
 * Finds what keeps the tasks from forming a DAG: duplicate keys, `needs` naming no task, tasks
 * needing themselves, and cycles (one cycle reported per tangle, starting at its task that comes
 * first in file order, written `a -> b -> a` where `x -> y` means x needs y).
 *
 * @param tasks - the tasks, in file order
 * @returns the problems with their places; empty when the tasks form a DAG
 */
export function checkDag(tasks: readonly TaskLike[]): WorkflowProblem[] {
  const problems: WorkflowProblem[] = [];
  const order = new Map<string, number>();
  tasks.forEach((t, i) => {
    if (order.has(t.key)) {
      problems.push({
        path: ['tasks', t.key],
        message: `duplicate task key "${t.key}"; give each task its own key`,
      });
    } else {
      order.set(t.key, i);
    }
  });
  const keys = [...order.keys()];
  const byKey = new Map(tasks.map((t) => [t.key, t] as const));

  for (const t of tasks) {
    t.needs.forEach((need, i) => {
      if (need === t.key) {
        problems.push({
          path: ['tasks', t.key, 'needs', i],
          message: `task "${t.key}" needs itself; remove "${need}" from its needs`,
        });
      } else if (!order.has(need)) {
        const guess = didYouMean(need, keys);
        problems.push({
          path: ['tasks', t.key, 'needs', i],
          message:
            `task "${t.key}" needs "${need}", which is not a task of this workflow` +
            (guess === undefined ? '' : `; did you mean "${guess}"?`) +
            ` (tasks: ${listNames(keys)})`,
        });
      }
    });
  }

  // Peel off tasks whose needs are all peeled (Kahn); what remains is in a cycle or needs one.
  const edges = (key: string): string[] =>
    (byKey.get(key)?.needs ?? []).filter((n) => n !== key && order.has(n));
  let remaining = new Set(keys);
  const prune = (): void => {
    let changed = true;
    while (changed) {
      changed = false;
      for (const k of remaining) {
        if (!edges(k).some((n) => remaining.has(n))) {
          remaining.delete(k);
          changed = true;
        }
      }
    }
  };
  prune();
  while (remaining.size > 0) {
    // Every remaining task needs another remaining task, so walking needs must revisit one.
    const start = keys.find((k) => remaining.has(k)) ?? '';
    const walk: string[] = [];
    const seenAt = new Map<string, number>();
    let cur = start;
    while (!seenAt.has(cur)) {
      seenAt.set(cur, walk.length);
      walk.push(cur);
      cur = edges(cur).find((n) => remaining.has(n)) ?? start;
    }
    const cycle = walk.slice(seenAt.get(cur) ?? 0);
    // Start the cycle at its task that comes first in the file.
    let first = 0;
    cycle.forEach((k, i) => {
      if ((order.get(k) ?? 0) < (order.get(cycle[first] ?? '') ?? 0)) first = i;
    });
    const rotated = [...cycle.slice(first), ...cycle.slice(0, first)];
    const head = rotated[0] ?? start;
    const next = rotated[1] ?? head;
    problems.push({
      path: ['tasks', head, 'needs', byKey.get(head)?.needs.indexOf(next) ?? 0],
      message: `tasks ${[...rotated, head].join(' -> ')} form a cycle (each needs the next); remove one of these needs`,
    });
    remaining = new Set([...remaining].filter((k) => !rotated.includes(k)));
    prune();
  }
  return problems;
}

/**
 * Checks the tasks' dependencies (see {@link checkDag}) and words each problem alone.
 *
 * @param tasks - the tasks, in file order
 * @returns one line per problem (duplicate keys, unknown needs naming the task and the missing key,
 *   self-needs, cycles named `a -> b -> a`); empty when the tasks form a DAG
 */
export function validateDag(tasks: readonly TaskLike[]): string[] {
  return checkDag(tasks).map((p) => p.message);
}

function describeAgents(agents: Record<string, AgentSpec>): string {
  const list = Object.values(agents);
  if (list.length === 0) return 'no agents are defined';
  return `agents: ${list.map((a) => `${a.name} [${a.capabilities.join(', ')}]`).join(', ')}`;
}

const DEFINE_AGENTS =
  'define agents under "agents:" in the workflow or in smith.yaml ("smith init" writes a starter)';

/**
 * Finds tasks that no agent can take: an `agent` that is not defined, an agent that lacks
 * capabilities the task also asks for, capabilities no single agent has all of, or neither `agent`
 * nor `capabilities`.
 *
 * @param tasks - the tasks
 * @param agents - the agents the workflow can use (config's merged with the workflow's), by name
 * @returns the problems with their places; empty when every task can be routed
 */
export function checkRouting(
  tasks: readonly TaskLike[],
  agents: Record<string, AgentSpec>,
): WorkflowProblem[] {
  const problems: WorkflowProblem[] = [];
  const names = Object.keys(agents);
  for (const t of tasks) {
    const caps = t.capabilities ?? [];
    if (t.agent !== undefined) {
      const agent = agents[t.agent];
      if (agent === undefined) {
        const guess = didYouMean(t.agent, names);
        problems.push({
          path: ['tasks', t.key, 'agent'],
          message:
            `task "${t.key}" asks for agent "${t.agent}", which is not defined` +
            (guess === undefined ? '' : `; did you mean "${guess}"?`) +
            ` (${names.length === 0 ? 'no agents are defined' : `agents: ${names.join(', ')}`}); ${DEFINE_AGENTS}`,
        });
        continue;
      }
      const missing = caps.filter((c) => !agent.capabilities.includes(c));
      if (missing.length > 0) {
        problems.push({
          path: ['tasks', t.key, 'capabilities'],
          message:
            `task "${t.key}" asks for agent "${agent.name}" and capabilities [${caps.join(', ')}], but ` +
            `"${agent.name}" lacks ${missing.map((c) => `"${c}"`).join(', ')} (it has [${agent.capabilities.join(', ')}]); ` +
            `add them to the agent's capabilities, or drop "agent:" to route by capabilities`,
        });
      }
    } else if (caps.length > 0) {
      const capable = Object.values(agents).some((a) => caps.every((c) => a.capabilities.includes(c)));
      if (!capable) {
        problems.push({
          path: ['tasks', t.key, 'capabilities'],
          message:
            `no agent has all the capabilities [${caps.join(', ')}] that task "${t.key}" asks for ` +
            `(${describeAgents(agents)}); add them to an agent or change the task's capabilities`,
        });
      }
    } else {
      problems.push({
        path: ['tasks', t.key],
        message: `task "${t.key}" names neither "agent:" nor "capabilities:"; give it one of them (or both)`,
      });
    }
  }
  return problems;
}

/**
 * Checks that every task can be routed to an agent (see {@link checkRouting}) and words each
 * problem alone.
 *
 * @param tasks - the tasks
 * @param agents - the agents the workflow can use, by name
 * @returns one line per problem (unknown agent with the list of known agents; capabilities no
 *   agent has all of, with the agents that exist; an agent lacking the task's capabilities); empty
 *   when every task can be routed
 */
export function validateRouting(tasks: readonly TaskLike[], agents: Record<string, AgentSpec>): string[] {
  return checkRouting(tasks, agents).map((p) => p.message);
}

/**
 * The task keys in an order where every task comes after the tasks it needs; among tasks that are
 * ready together, file order (Kahn's algorithm, stable).
 *
 * @param tasks - the tasks, in file order
 * @returns every key once
 * @throws WorkflowValidationError (code `WORKFLOW_INVALID`) when {@link validateDag} finds problems
 */
export function topologicalOrder(tasks: readonly TaskLike[]): string[] {
  const problems = validateDag(tasks);
  if (problems.length > 0) {
    throw new WorkflowValidationError(
      `tasks cannot be ordered:\n${problems.map((p) => `  ${p}`).join('\n')}`,
      problems,
    );
  }
  const done = new Set<string>();
  const out: string[] = [];
  const pending = [...tasks];
  while (pending.length > 0) {
    const i = pending.findIndex((t) => t.needs.every((n) => done.has(n)));
    // validateDag guarantees a ready task while any remain.
    const [t] = pending.splice(i < 0 ? 0 : i, 1);
    if (t === undefined) break;
    done.add(t.key);
    out.push(t.key);
  }
  return out;
}
