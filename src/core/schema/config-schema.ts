/**
 * The zod schemas of `smith.yaml` and of agents, shared by workflow files. Input is the YAML as
 * written (snake_case, durations as `"30s"`, sizes as `"1MiB"`); output is the domain shape
 * (camelCase, ms, bytes, defaults applied). Pure: no I/O.
 *
 * Every schema carries its own "expected …" message so that a loader can print
 * `file:line:col: path: expected …, found …`; see {@link smithErrorMap} for the rest.
 */
import { z } from 'zod';
import type { AgentSpec, Budget, ExecutionMode, Json } from '../types.js';
import { DEFAULT_PRIORITY } from '../types.js';
import { BYTES_EXPECTED, DURATION_EXPECTED, checkBytes, checkDuration } from './duration.js';

/** Default `engine.concurrency`: attempts running at once across all agents (permits). */
export const DEFAULT_ENGINE_CONCURRENCY = 16;
/** Default `concurrency` of an agent: attempts of that agent at once. */
export const DEFAULT_AGENT_CONCURRENCY = 1;
/** Default `kill_grace` of an agent in ms: time between SIGTERM and SIGKILL. */
export const DEFAULT_KILL_GRACE_MS = 5000;
/** Default `output_limit` of an agent in bytes (1 MiB), kept per stream (stdout, stderr) per attempt. */
export const DEFAULT_OUTPUT_LIMIT_BYTES = 1024 * 1024;
/** Default runtime of an agent that names none. */
export const DEFAULT_RUNTIME = 'process';

/**
 * What names of tasks and agents look like: letters, digits, `_`, `.`, `-`, starting with a letter,
 * digit or `_`.
 */
export const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const NAME_RULE = 'letters, digits, "_", "." and "-", starting with a letter, digit or "_"';

/** What capability names look like: like {@link NAME_PATTERN}, and `:` and `/` are allowed too. */
export const CAPABILITY_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$/;

/** What environment variable names look like (POSIX portable names). */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The validated, defaulted contents of `smith.yaml`. */
export interface SmithConfig {
  /** Agents by name (`name` is set from the key). Default `{}`. */
  agents: Record<string, AgentSpec>;
  /** Applied to tasks (and agents) that do not set them. */
  defaults: {
    /** Per-attempt timeout in ms of agents without their own `timeout`; undefined = none. */
    timeoutMs?: number;
    /** Retries after the first attempt. Default 0. */
    retries: number;
    /** 1 (highest) .. 10. Default 5. */
    priority: number;
  };
  engine: {
    /** Attempts running at once across all agents (permits). Default 16. */
    concurrency: number;
  };
  store: {
    /** SQLite `synchronous`: `FULL` (default; a commit survives power loss) or `NORMAL`. */
    synchronous: 'FULL' | 'NORMAL';
  };
  /** Spend cap over everything this home runs (see {@link Budget}); none by default. */
  budget?: Budget;
  /** Model prices by model name, to price token usage that comes without a cost. Default `{}`. */
  prices: Record<string, ModelPrice>;
  /** Per-runtime settings by runtime name: `concurrency` caps attempts of that runtime at once. Default `{}`. */
  runtimes: Record<string, { concurrency?: number }>;
  /** Default execution mode of tasks that the council judges. Default `auto`. */
  mode: ExecutionMode;
  /** Where task worktrees live (path as written; relative to the config file). Default `<home>/worktrees`. */
  worktrees: { dir?: string };
  /** The council: a policy file (path as written; the loader resolves it) and command judges. */
  council: {
    policy?: string;
    judges: JudgeConfig[];
  };
  /** `smith serve`: where it listens and the limits of its API. */
  server: ServerConfig;
  /** Service level objectives over the tasks this home runs (see docs/slos-and-alerts.md). Default `[]`. */
  slos: SloConfig[];
  /** How often `smith serve` evaluates the SLOs' burn-rate alerts. */
  alerting: AlertingConfig;
  /** Where `smith serve` posts alert and task events. Default `[]`. */
  webhooks: WebhookConfig[];
}

/** The `server:` section of `smith.yaml` (every field optional). */
export interface ServerConfig {
  /** Interface to bind. Default `127.0.0.1` (loopback only). */
  host: string;
  /** TCP port. Default 7700. */
  port: number;
  /** Requests per key per `rateWindowMs`. Default 1000. */
  rateLimit: number;
  /** Rate-limit window in ms. Default 60000 (one minute). */
  rateWindowMs: number;
  /** Largest request body in bytes; larger gets 413. Default 1 MiB. */
  bodyLimit: number;
  /** Origins allowed by CORS; empty (default) turns CORS off. */
  corsOrigins: string[];
}

/** Default port of `smith serve`. */
export const DEFAULT_SERVER_PORT = 7700;

/**
 * What an SLI counts as good: `success_rate` (tasks that ended `completed` among those that ended
 * `completed`, `failed` or `rejected`; `canceled` counts neither way) or `latency` (tasks that ran
 * at most `threshold`, start to end, among those that ended so and had started).
 */
export type SliKind = 'success_rate' | 'latency';

/** Every {@link SliKind}. */
export const SLI_KINDS: readonly SliKind[] = ['success_rate', 'latency'];

/** One entry of `slos:` in `smith.yaml` (see docs/slos-and-alerts.md). */
export interface SloConfig {
  /** Unique among the SLOs; alerts name it. */
  name: string;
  /** Target fraction of good events, above 0 and below 1 (`99%` is 0.99); the error budget is `1 - objective`. */
  objective: number;
  sli: SliKind;
  /** `latency` only: the longest duration in ms that counts as good. */
  thresholdMs?: number;
  /** The SLO period in ms: the error budget's window; the alert windows scale from it. */
  windowMs: number;
  /** Only tasks of this agent (the one asked for or the one that ran them). */
  agent?: string;
}

/** The `alerting:` section of `smith.yaml`. */
export interface AlertingConfig {
  /** How often the burn-rate alerts are evaluated, in ms. Default 15000 (15 s). */
  evaluateEveryMs: number;
}

/** Default `alerting.evaluate_every` in ms. */
export const DEFAULT_EVALUATE_EVERY_MS = 15_000;

/** Events a webhook can subscribe to. */
export type WebhookEvent =
  | 'alert.fired'
  | 'alert.acknowledged'
  | 'alert.resolved'
  | 'task.completed'
  | 'task.failed'
  | 'task.canceled'
  | 'task.rejected';

/** Every {@link WebhookEvent}. */
export const WEBHOOK_EVENTS: readonly WebhookEvent[] = [
  'alert.fired',
  'alert.acknowledged',
  'alert.resolved',
  'task.completed',
  'task.failed',
  'task.canceled',
  'task.rejected',
];

/** One entry of `webhooks:` in `smith.yaml`. */
export interface WebhookConfig {
  /** Where events are POSTed (http or https). */
  url: string;
  /** The events sent there. Default: every {@link WebhookEvent}. */
  events: WebhookEvent[];
  /** The environment variable holding the HMAC-SHA256 signing key; unsigned when absent. */
  secretEnv?: string;
  /** Time one try may take, in ms. Default 10000. */
  timeoutMs: number;
  /** Tries of one delivery before it is given up (and logged). Default 5. */
  maxAttempts: number;
}

/** Default `timeout` of a webhook in ms. */
export const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000;
/** Default `max_attempts` of a webhook. */
export const DEFAULT_WEBHOOK_MAX_ATTEMPTS = 5;

/** An agent as its schema outputs it: everything but `name`, which comes from its key. */
export type AgentFields = Omit<AgentSpec, 'name'>;

// ---------------------------------------------------------------------------------------------
// Suggestions

/** Field names people write for ours (other tools' words, old names), by what they should be. */
const FIELD_ALIASES: Readonly<Record<string, readonly string[]>> = {
  needs: ['depends_on', 'dependson', 'depends', 'dependencies', 'after', 'requires', 'need'],
  retries: ['retry', 'max_retries', 'retry_count', 'attempts'],
  workdir: ['cwd', 'dir', 'directory', 'working_dir', 'working_directory'],
  env: ['environment', 'vars', 'variables'],
  capabilities: ['capability', 'caps', 'skills', 'requires_capabilities'],
  timeout: ['timeout_ms', 'time_limit', 'deadline'],
  concurrency: ['parallelism', 'max_concurrency', 'instances', 'workers'],
  command: ['cmd', 'args', 'argv', 'exec'],
  runtime: ['type', 'kind'],
  prompt: ['task', 'input', 'instructions', 'message', 'run', 'script'],
  agent: ['agent_name', 'worker', 'assignee'],
  agents: ['agent', 'workers'],
  tasks: ['task', 'jobs', 'steps'],
  kill_grace: ['grace', 'kill_timeout', 'grace_period'],
  output_limit: ['max_output', 'output_max', 'log_limit'],
};

function normalizeName(s: string): string {
  return s.toLowerCase().replace(/[-_\s]/g, '');
}

/** Levenshtein edit distance (insertions, deletions, substitutions each cost 1). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, sub));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/**
 * The candidate a mistyped name most likely meant, if one is close enough: a known alias
 * (`depends_on` → `needs`), the same name in another case or separator style (`killGrace` →
 * `kill_grace`), a shared prefix of 4+ characters, or a small edit distance (none for names up to
 * 2 characters, at most 1 up to 4, 2 up to 8, else 3).
 *
 * @param word - what was written
 * @param candidates - the names that exist
 * @returns the best candidate, or undefined when none is close
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  if (candidates.includes(word)) return undefined;
  for (const c of candidates) {
    if (FIELD_ALIASES[c]?.includes(word.toLowerCase())) return c;
  }
  const nw = normalizeName(word);
  const same = candidates.find((c) => normalizeName(c) === nw);
  if (same !== undefined) return same;
  let best: string | undefined;
  let bestScore = Infinity;
  const limit = nw.length <= 2 ? 0 : nw.length <= 4 ? 1 : nw.length <= 8 ? 2 : 3;
  for (const c of candidates) {
    const nc = normalizeName(c);
    let score = editDistance(nw, nc);
    const prefix = commonPrefix(nw, nc);
    if (prefix >= 4 && score > limit) score = limit;
    if (score <= limit && score < bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return best;
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** `"x"`, `"x" or "y"`, `"x", "y" or "z"`. */
function quoteList(names: readonly string[]): string {
  const q = names.map((n) => `"${n}"`);
  if (q.length <= 1) return q.join('');
  return `${q.slice(0, -1).join(', ')} or ${q[q.length - 1] ?? ''}`;
}

// ---------------------------------------------------------------------------------------------
// Building blocks

/**
 * A strict object: unknown fields are errors. The message of an `unrecognized_keys` issue has one
 * line per unknown key, in the issue's `keys` order (a loader splits it to report each key where it
 * is written), each with a "did you mean" when one is close.
 *
 * @param shape - the fields
 * @param what - what the object is, for messages (`a task`, `an agent`)
 * @returns a strict zod object schema
 */
export function strictFields<S extends z.ZodRawShape>(shape: S, what: string) {
  const allowed = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === 'unrecognized_keys') {
        return iss.keys.map((k) => unknownFieldMessage(k, allowed, what)).join('\n');
      }
      if (iss.code === 'invalid_type') return `expected ${what} (a map of fields: ${allowed.join(', ')})`;
      return undefined;
    },
  });
}

/**
 * The message for one unknown field.
 *
 * @param key - the field written
 * @param allowed - the fields that exist
 * @param what - what the object is (`a task`)
 * @returns `unknown field "<key>" in <what>[; did you mean "<field>"?] (fields: …)`
 */
export function unknownFieldMessage(key: string, allowed: readonly string[], what: string): string {
  const guess = didYouMean(key, allowed);
  const hint = guess === undefined ? '' : `; did you mean "${guess}"?`;
  return `unknown field "${key}" in ${what}${hint} (fields: ${allowed.join(', ')})`;
}

/**
 * The `error` of a record schema: `expected` for a value that is not a map; for a bad key, the key
 * schema's own message.
 *
 * @param expected - what the map should be (`expected a map of agents (name: settings)`)
 * @returns the error map
 */
export function recordError(expected: string): z.core.$ZodErrorMap {
  return (iss) => {
    if (iss.code === 'invalid_type') return expected;
    if (iss.code === 'invalid_key') return iss.issues[0]?.message;
    return undefined;
  };
}

/**
 * Makes a field optional and lets `null` (a YAML key with nothing after it) count as absent.
 *
 * @param schema - the field's schema
 * @returns a schema whose output is the field's output or `undefined`
 */
export function nullAsAbsent<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === null ? undefined : v), schema.optional());
}

function nameSchema(what: string) {
  const error = `expected ${what} name (${NAME_RULE})`;
  return z.string({ error }).regex(NAME_PATTERN, { error });
}

/** A task key or agent name: {@link NAME_PATTERN}. */
export const keySchema = nameSchema('a task');
/** An agent name: {@link NAME_PATTERN}. */
export const agentNameSchema = nameSchema('an agent');

/** A list of capability names, de-duplicated, order kept. */
export const capabilitiesSchema = z
  .array(
    z
      .string({ error: 'expected a capability name such as "shell"' })
      .regex(CAPABILITY_PATTERN, { error: `expected a capability name (${NAME_RULE}; ":" and "/" too)` }),
    { error: 'expected a list of capability names such as [shell, git]' },
  )
  .transform((caps) => [...new Set(caps)]);

/**
 * An integer in `[min, max]`, with one message for every way it can fail.
 *
 * @param expected - what to say it should be (`a positive integer`), without "expected"
 * @param min - the least value allowed
 * @param max - the greatest value allowed; none when omitted
 * @returns the schema
 */
export function intSchema(expected: string, min: number, max?: number) {
  const error = `expected ${expected}`;
  const s = z.int({ error }).min(min, { error });
  return max === undefined ? s : s.max(max, { error });
}

/** A priority: an integer 1 (highest) .. 10 (lowest). */
export const prioritySchema = intSchema('an integer from 1 (highest) to 10 (lowest)', 1, 10);
/** Retries after the first attempt: an integer >= 0. */
export const retriesSchema = intSchema('a whole number of retries, 0 or more', 0);

/**
 * A duration (see `checkDuration`) converted to ms.
 *
 * @param positive - reject 0 (for timeouts: omit the field for none)
 * @returns a schema that outputs whole ms
 */
export function durationSchema(positive: boolean) {
  return z.union([z.string(), z.number()], { error: `expected ${DURATION_EXPECTED}` }).transform((v, ctx) => {
    const r = checkDuration(v);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.expected, params: { showFound: true } });
      return z.NEVER;
    }
    if (positive && r.value === 0) {
      ctx.addIssue({
        code: 'custom',
        message: 'expected a duration greater than 0 (leave the field out for no timeout)',
        params: { showFound: true },
      });
      return z.NEVER;
    }
    return r.value;
  });
}

/** A byte size (see `checkBytes`) converted to bytes. */
export const bytesSchema = z
  .union([z.string(), z.number()], { error: `expected ${BYTES_EXPECTED}` })
  .transform((v, ctx) => {
    const r = checkBytes(v);
    if (!r.ok) {
      ctx.addIssue({ code: 'custom', message: r.expected, params: { showFound: true } });
      return z.NEVER;
    }
    return r.value;
  });

/** Environment variables: names per {@link ENV_NAME_PATTERN}; numbers and booleans become strings. */
export const envSchema = z.record(
  z.string().regex(ENV_NAME_PATTERN, {
    error: 'expected an environment variable name (letters, digits and "_", not starting with a digit)',
  }),
  z
    .union([z.string(), z.number(), z.boolean()], { error: 'expected a string value (quote it: "...")' })
    .transform((v) => String(v)),
  { error: recordError('expected a map of environment variables (NAME: value)') },
);

/**
 * A spend cap: `{usd, tokens}`, at least one of them, each > 0. Outputs a {@link Budget}.
 */
export const budgetSchema = strictFields(
  {
    usd: z.number({ error: 'expected an amount in US dollars, such as 0.50' }).positive({
      error: 'expected an amount in US dollars greater than 0, such as 0.50',
    }),
    tokens: intSchema('a whole number of tokens greater than 0, such as 200000', 1),
  },
  'a budget',
)
  .partial()
  .refine((b) => b.usd !== undefined || b.tokens !== undefined, {
    error: 'expected a budget with "usd", "tokens" or both, such as {usd: 0.50, tokens: 200000}',
  })
  .transform((b): Budget => {
    const out: Budget = {};
    if (b.usd !== undefined) out.usd = b.usd;
    if (b.tokens !== undefined) out.tokens = b.tokens;
    return out;
  });

/**
 * A judge added to the council in `smith.yaml`: a `command` judge (a program that reads the
 * context JSON and prints a verdict) or a model (`model`, with `provider`, `base_url`,
 * `api_key_env` as an `llm` agent).
 */
export interface JudgeConfig {
  name: string;
  command?: string | string[];
  timeoutMs?: number;
  model?: string;
  provider?: string;
  baseUrl?: string;
  apiKeyEnv?: string;
}

/** An execution mode: `strict`, `auto` or `dry-run`. */
export const modeSchema = z.enum(['strict', 'auto', 'dry-run'], {
  error:
    'expected strict (a person approves after the council), auto (applied when the council approves) or dry-run (judged, never applied)',
});

/**
 * The price of a model in USD per million tokens (`input`, `output`, and optionally `cache_read`,
 * `cache_write`; these default to `input`). Used to price `usage` events that come without a cost.
 */
export interface ModelPrice {
  inputPerMTok: number;
  outputPerMTok: number;
  cacheReadPerMTok: number;
  cacheWritePerMTok: number;
}

const usdPerMTok = z
  .number({ error: 'expected a price in US dollars per million tokens, such as 3' })
  .nonnegative({ error: 'expected a price in US dollars per million tokens, 0 or more' });

/** One entry of `prices:` (by model name). Outputs a {@link ModelPrice}. */
export const modelPriceSchema = strictFields(
  {
    input: usdPerMTok,
    output: usdPerMTok,
    cache_read: usdPerMTok.optional(),
    cache_write: usdPerMTok.optional(),
  },
  'a model price',
).transform((p): ModelPrice => ({
  inputPerMTok: p.input,
  outputPerMTok: p.output,
  cacheReadPerMTok: p.cache_read ?? p.input,
  cacheWritePerMTok: p.cache_write ?? p.input,
}));

const stringListSchema = z.array(z.string({ error: 'expected a string' }), {
  error: 'expected a list of strings',
});

// ---------------------------------------------------------------------------------------------
// Agents

const agentShape = {
  runtime: z
    .string({ error: 'expected a runtime name such as "process"' })
    .regex(/^[a-z][a-z0-9_-]*$/, { error: 'expected a runtime name such as "process" (lower case)' })
    .optional(),
  command: z
    .array(z.union([z.string(), z.number()], { error: 'expected a string argument' }).transform(String), {
      error: 'expected the argv as a list, such as ["sh", "-c", "{prompt}"]',
    })
    .min(1, {
      error: 'expected at least one argument (the program to run), such as ["sh", "-c", "{prompt}"]',
    })
    .optional(),
  capabilities: capabilitiesSchema.optional(),
  concurrency: intSchema('a positive integer', 1).optional(),
  env: nullAsAbsent(envSchema),
  timeout: durationSchema(true).optional(),
  kill_grace: durationSchema(false).optional(),
  output_limit: bytesSchema.optional(),
  budget: nullAsAbsent(budgetSchema),
  model: z.string({ error: 'expected a model name as a string' }).min(1).optional(),
  args: stringListSchema.optional(),
  allowed_tools: stringListSchema.optional(),
  disallowed_tools: stringListSchema.optional(),
  permission_mode: z.string({ error: 'expected a permission mode as a string' }).min(1).optional(),
  max_turns: intSchema('a positive whole number of turns', 1).optional(),
  max_budget_usd: z
    .number({ error: 'expected an amount in US dollars, such as 0.50' })
    .positive({ error: 'expected an amount in US dollars greater than 0' })
    .optional(),
  mcp_config: z.string({ error: 'expected a file path' }).min(1).optional(),
  append_system_prompt: z.string({ error: 'expected text' }).optional(),
  system_prompt: z.string({ error: 'expected text' }).optional(),
  idle_timeout: durationSchema(true).optional(),
  isolate_home: z.boolean({ error: 'expected true or false' }).optional(),
  url: z.url({ error: 'expected a URL such as http://127.0.0.1:8080/run' }).optional(),
  base_url: z.url({ error: 'expected a URL such as http://127.0.0.1:11434/v1' }).optional(),
  headers: z
    .record(z.string(), z.string({ error: 'expected a header value as a string' }), {
      error: recordError('expected a map of HTTP headers (Name: value)'),
    })
    .optional(),
  provider: z.string({ error: 'expected a provider name' }).min(1).optional(),
  api_key_env: z
    .string()
    .regex(ENV_NAME_PATTERN, {
      error: 'expected the name of an environment variable, such as OPENAI_API_KEY',
    })
    .optional(),
  output_schema: z.record(z.string(), z.unknown(), { error: 'expected a JSON Schema (a map)' }).optional(),
  env_files: stringListSchema.optional(),
  setup: stringListSchema.optional(),
};

/** Runtimes that run an agent's `command` and so require it. */
const NEEDS_COMMAND = new Set(['process', 'tmux']);

/**
 * One agent as written in YAML (without its name, which is its key):
 * `runtime` (default `process`), `command` (argv; required for `process`; `{prompt}`, `{task_id}`,
 * `{workdir}` are substituted later), `capabilities` (default `[]`), `concurrency` (default 1),
 * `env`, `timeout` (duration), `kill_grace` (duration, default 5s), `output_limit` (bytes, default
 * 1 MiB). Outputs {@link AgentFields} with durations in ms and sizes in bytes.
 */
export const agentSpecSchema = strictFields(agentShape, 'an agent')
  .superRefine((a, ctx) => {
    const runtime = a.runtime ?? DEFAULT_RUNTIME;
    if (NEEDS_COMMAND.has(runtime) && a.command === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['command'],
        message: `required for runtime "${runtime}": expected the argv as a list, such as ["sh", "-c", "{prompt}"]`,
      });
    }
    if (runtime === 'http' && a.url === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['url'],
        message: 'required for runtime "http": expected the worker URL, such as http://127.0.0.1:8080/run',
      });
    }
    if (runtime === 'llm' && a.model === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['model'],
        message: 'required for runtime "llm": expected a model name, such as gpt-4o-mini or llama3.1',
      });
    }
  })
  .transform((a): AgentFields => {
    const out: AgentFields = {
      runtime: a.runtime ?? DEFAULT_RUNTIME,
      capabilities: a.capabilities ?? [],
      concurrency: a.concurrency ?? DEFAULT_AGENT_CONCURRENCY,
      killGraceMs: a.kill_grace ?? DEFAULT_KILL_GRACE_MS,
      outputLimitBytes: a.output_limit ?? DEFAULT_OUTPUT_LIMIT_BYTES,
    };
    if (a.command !== undefined) out.command = a.command;
    if (a.env !== undefined) out.env = a.env;
    if (a.timeout !== undefined) out.timeoutMs = a.timeout;
    if (a.budget !== undefined) out.budget = a.budget;
    if (a.model !== undefined) out.model = a.model;
    if (a.args !== undefined) out.args = a.args;
    if (a.allowed_tools !== undefined) out.allowedTools = a.allowed_tools;
    if (a.disallowed_tools !== undefined) out.disallowedTools = a.disallowed_tools;
    if (a.permission_mode !== undefined) out.permissionMode = a.permission_mode;
    if (a.max_turns !== undefined) out.maxTurns = a.max_turns;
    if (a.max_budget_usd !== undefined) out.maxBudgetUsd = a.max_budget_usd;
    if (a.mcp_config !== undefined) out.mcpConfig = a.mcp_config;
    if (a.append_system_prompt !== undefined) out.appendSystemPrompt = a.append_system_prompt;
    if (a.system_prompt !== undefined) out.systemPrompt = a.system_prompt;
    if (a.idle_timeout !== undefined) out.idleTimeoutMs = a.idle_timeout;
    if (a.isolate_home !== undefined) out.isolateHome = a.isolate_home;
    if (a.url !== undefined) out.url = a.url;
    if (a.base_url !== undefined) out.baseUrl = a.base_url;
    if (a.headers !== undefined) out.headers = a.headers;
    if (a.provider !== undefined) out.provider = a.provider;
    if (a.api_key_env !== undefined) out.apiKeyEnv = a.api_key_env;
    if (a.output_schema !== undefined) out.outputSchema = a.output_schema as Json;
    if (a.env_files !== undefined) out.envFiles = a.env_files;
    if (a.setup !== undefined) out.setup = a.setup;
    return out;
  });

/** A map of agents by name; outputs {@link AgentSpec}s with `name` set from the key. */
export const agentsSchema = z
  .record(agentNameSchema, agentSpecSchema, {
    error: recordError('expected a map of agents (name: settings)'),
  })
  .transform((agents): Record<string, AgentSpec> =>
    Object.fromEntries(Object.entries(agents).map(([name, a]) => [name, { name, ...a }])),
  );

// ---------------------------------------------------------------------------------------------
// smith.yaml

const defaultsSchema = strictFields(
  {
    timeout: durationSchema(true).optional(),
    retries: retriesSchema.optional(),
    priority: prioritySchema.optional(),
  },
  'the defaults section',
);

const engineSchema = strictFields(
  { concurrency: intSchema('a positive integer', 1).optional() },
  'the engine section',
);

const storeSchema = strictFields(
  {
    synchronous: z
      .string({ error: 'expected FULL or NORMAL' })
      .transform((s) => s.toUpperCase())
      .pipe(z.enum(['FULL', 'NORMAL'], { error: 'expected FULL or NORMAL' }))
      .optional(),
  },
  'the store section',
);

// ---------------------------------------------------------------------------------------------
// SLOs, alerting, webhooks

/** Milliseconds per unit of an SLO window (a week is 7 days). */
const PERIOD_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Shortest SLO window in ms (1 s). */
export const MIN_SLO_WINDOW_MS = 1000;
/** Longest SLO window in ms (366 days). */
export const MAX_SLO_WINDOW_MS = 366 * 86_400_000;

const PERIOD_EXPECTED =
  'expected an SLO window such as "30d", "7d", "1h" (units ms, s, m, h, d, w) from 1s to 366d';
const PERIOD_PART = /(\d+(?:\.\d+)?|\.\d+)\s*([a-z]+)\s*/y;

/**
 * An SLO window: like a duration, but it may be longer than a timer can wait (`30d`, `4w`), from
 * {@link MIN_SLO_WINDOW_MS} to {@link MAX_SLO_WINDOW_MS}. Outputs ms.
 */
const sloWindowSchema = z.union([z.string(), z.number()], { error: PERIOD_EXPECTED }).transform((v, ctx) => {
  let ms = typeof v === 'number' ? v : NaN;
  if (typeof v === 'string') {
    const text = v.trim();
    let total = 0;
    let pos = 0;
    while (text !== '' && pos < text.length) {
      PERIOD_PART.lastIndex = pos;
      const m = PERIOD_PART.exec(text);
      const perUnit = m ? PERIOD_UNITS[m[2] ?? ''] : undefined;
      if (!m || perUnit === undefined) {
        total = NaN;
        break;
      }
      total += Number(m[1]) * perUnit;
      pos = PERIOD_PART.lastIndex;
    }
    ms = text === '' ? NaN : total;
  }
  if (!Number.isFinite(ms) || ms < MIN_SLO_WINDOW_MS || ms > MAX_SLO_WINDOW_MS) {
    ctx.addIssue({ code: 'custom', message: PERIOD_EXPECTED, params: { showFound: true } });
    return z.NEVER;
  }
  return Math.round(ms);
});

const OBJECTIVE_EXPECTED =
  'expected an objective above 0 and below 100%, as a percentage such as "99%" or "99.9%" or a fraction such as 0.99';

/** An SLO objective: `"99.9%"` or `0.999`. Outputs the fraction, in (0, 1). */
const objectiveSchema = z
  .union([z.number(), z.string()], { error: OBJECTIVE_EXPECTED })
  .transform((v, ctx) => {
    let f = NaN;
    if (typeof v === 'number') f = v;
    else {
      const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*%\s*$/.exec(v);
      // 12 decimals: 99.9 / 100 is 0.9990000000000001 in binary floating point
      if (m) f = Number((Number(m[1]) / 100).toFixed(12));
    }
    if (!Number.isFinite(f) || f <= 0 || f >= 1) {
      ctx.addIssue({ code: 'custom', message: OBJECTIVE_EXPECTED, params: { showFound: true } });
      return z.NEVER;
    }
    return f;
  });

const sloSchema = strictFields(
  {
    name: nameSchema('an SLO'),
    objective: objectiveSchema,
    sli: z.enum(['success_rate', 'latency'], {
      error:
        'expected success_rate (completed / ended tasks) or latency (tasks that ran at most "threshold")',
    }),
    threshold: durationSchema(true).optional(),
    window: sloWindowSchema,
    agent: agentNameSchema.optional(),
  },
  'an SLO',
)
  .superRefine((s, ctx) => {
    if (s.sli === 'latency' && s.threshold === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['threshold'],
        message: 'required for sli "latency": expected the longest good duration, such as 30s',
      });
    if (s.sli !== 'latency' && s.threshold !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['threshold'],
        message: `only for sli "latency": remove it, or set sli: latency (this SLO's sli is "${s.sli}")`,
      });
  })
  .transform((s): SloConfig => {
    const out: SloConfig = { name: s.name, objective: s.objective, sli: s.sli, windowMs: s.window };
    if (s.threshold !== undefined) out.thresholdMs = s.threshold;
    if (s.agent !== undefined) out.agent = s.agent;
    return out;
  });

/** `slos:`: a list of SLOs with unique names. Outputs {@link SloConfig}s. */
export const slosSchema = z
  .array(sloSchema, {
    error: 'expected a list of SLOs ({name, objective, sli, window}, and threshold for latency)',
  })
  .superRefine((slos, ctx) => {
    const seen = new Set<string>();
    slos.forEach((s, i) => {
      if (seen.has(s.name))
        ctx.addIssue({
          code: 'custom',
          path: [i, 'name'],
          message: `expected a name no other SLO has; "${s.name}" is used twice`,
        });
      seen.add(s.name);
    });
  });

const webhookSchema = strictFields(
  {
    url: z.url({
      protocol: /^https?$/,
      error: 'expected an http or https URL, such as https://hooks.example.com/smith',
    }),
    events: z
      .array(
        z.enum(WEBHOOK_EVENTS as [WebhookEvent, ...WebhookEvent[]], {
          error: `expected an event name: ${WEBHOOK_EVENTS.join(', ')}`,
        }),
        { error: `expected a list of events such as [alert.fired, task.failed]` },
      )
      .min(1, {
        error: `expected at least one event (${WEBHOOK_EVENTS.join(', ')}); leave "events" out for all`,
      })
      .optional(),
    secret_env: z
      .string({ error: 'expected the name of an environment variable, such as SMITH_WEBHOOK_SECRET' })
      .regex(ENV_NAME_PATTERN, {
        error: 'expected the name of an environment variable, such as SMITH_WEBHOOK_SECRET',
      })
      .optional(),
    timeout: durationSchema(true).optional(),
    max_attempts: intSchema('a whole number of tries from 1 to 100', 1, 100).optional(),
  },
  'a webhook',
).transform((w): WebhookConfig => {
  const out: WebhookConfig = {
    url: w.url,
    events: w.events ? [...new Set(w.events)] : [...WEBHOOK_EVENTS],
    timeoutMs: w.timeout ?? DEFAULT_WEBHOOK_TIMEOUT_MS,
    maxAttempts: w.max_attempts ?? DEFAULT_WEBHOOK_MAX_ATTEMPTS,
  };
  if (w.secret_env !== undefined) out.secretEnv = w.secret_env;
  return out;
});

/**
 * The whole of `smith.yaml`. Every section is optional and a section left empty counts as absent:
 * `agents` (map of agents), `defaults` (`timeout`, `retries` default 0, `priority` default 5),
 * `engine` (`concurrency` default 16), `store` (`synchronous` `FULL` default, or `NORMAL`), `slos`
 * (default none), `alerting` (`evaluate_every` default 15s), `webhooks` (default none).
 * `null` or `undefined` input (an empty file) gives the defaults. Outputs {@link SmithConfig}.
 */
export const configSchema = z.preprocess(
  (v) => (v === null || v === undefined ? {} : v),
  strictFields(
    {
      agents: nullAsAbsent(agentsSchema),
      defaults: nullAsAbsent(defaultsSchema),
      engine: nullAsAbsent(engineSchema),
      store: nullAsAbsent(storeSchema),
      budget: nullAsAbsent(budgetSchema),
      prices: nullAsAbsent(
        z.record(z.string().min(1), modelPriceSchema, {
          error: recordError('expected a map of model prices (model: {input, output})'),
        }),
      ),
      mode: modeSchema.optional(),
      worktrees: nullAsAbsent(
        strictFields(
          { dir: z.string({ error: 'expected a directory path' }).min(1).optional() },
          'the worktrees section',
        ),
      ),
      council: nullAsAbsent(
        strictFields(
          {
            policy: z.string({ error: 'expected the path of a policy file' }).min(1).optional(),
            judges: z
              .array(
                strictFields(
                  {
                    name: nameSchema('a judge'),
                    command: z
                      .union([z.string().min(1), z.array(z.string()).min(1)], {
                        error: 'expected a shell command or an argv list',
                      })
                      .optional(),
                    timeout: durationSchema(true).optional(),
                    model: z.string({ error: 'expected a model name' }).min(1).optional(),
                    provider: z.string({ error: 'expected a provider name' }).min(1).optional(),
                    base_url: z.url({ error: 'expected a URL' }).optional(),
                    api_key_env: z
                      .string()
                      .regex(ENV_NAME_PATTERN, { error: 'expected the name of an environment variable' })
                      .optional(),
                  },
                  'a judge',
                ).refine((j) => (j.command === undefined) !== (j.model === undefined), {
                  error: 'expected either "command" (a command judge) or "model" (a model judge), not both',
                }),
                { error: 'expected a list of command judges ({name, command, timeout})' },
              )
              .optional(),
          },
          'the council section',
        ),
      ),
      server: nullAsAbsent(
        strictFields(
          {
            host: z.string({ error: 'expected a host name or IP address' }).min(1).optional(),
            port: intSchema('a TCP port from 0 to 65535', 0, 65535).optional(),
            rate_limit: intSchema('a positive number of requests per window', 1).optional(),
            rate_window: durationSchema(true).optional(),
            body_limit: bytesSchema.optional(),
            cors_origins: z
              .array(z.string().min(1), { error: 'expected a list of origins (https://example.com)' })
              .optional(),
          },
          'the server section',
        ),
      ),
      slos: nullAsAbsent(slosSchema),
      alerting: nullAsAbsent(
        strictFields({ evaluate_every: durationSchema(true).optional() }, 'the alerting section'),
      ),
      webhooks: nullAsAbsent(
        z.array(webhookSchema, { error: 'expected a list of webhooks ({url, events, secret_env})' }),
      ),
      runtimes: nullAsAbsent(
        z.record(
          z.string().regex(/^[a-z][a-z0-9_-]*$/, { error: 'expected a runtime name such as "claude-code"' }),
          strictFields({ concurrency: intSchema('a positive integer', 1).optional() }, 'a runtime section'),
          { error: recordError('expected a map of runtimes (name: {concurrency})') },
        ),
      ),
    },
    'smith.yaml',
  ).transform((raw): SmithConfig => {
    const defaults: SmithConfig['defaults'] = {
      retries: raw.defaults?.retries ?? 0,
      priority: raw.defaults?.priority ?? DEFAULT_PRIORITY,
    };
    if (raw.defaults?.timeout !== undefined) defaults.timeoutMs = raw.defaults.timeout;
    const config: SmithConfig = {
      agents: raw.agents ?? {},
      defaults,
      engine: { concurrency: raw.engine?.concurrency ?? DEFAULT_ENGINE_CONCURRENCY },
      store: { synchronous: raw.store?.synchronous ?? 'FULL' },
      prices: raw.prices ?? {},
      runtimes: raw.runtimes ?? {},
      mode: raw.mode ?? 'auto',
      worktrees: raw.worktrees?.dir !== undefined ? { dir: raw.worktrees.dir } : {},
      council: {
        judges: (raw.council?.judges ?? []).map((j) => {
          const out: JudgeConfig = { name: j.name };
          if (j.command !== undefined) out.command = j.command;
          if (j.timeout !== undefined) out.timeoutMs = j.timeout;
          if (j.model !== undefined) out.model = j.model;
          if (j.provider !== undefined) out.provider = j.provider;
          if (j.base_url !== undefined) out.baseUrl = j.base_url;
          if (j.api_key_env !== undefined) out.apiKeyEnv = j.api_key_env;
          return out;
        }),
        ...(raw.council?.policy !== undefined ? { policy: raw.council.policy } : {}),
      },
      server: {
        host: raw.server?.host ?? '127.0.0.1',
        port: raw.server?.port ?? DEFAULT_SERVER_PORT,
        rateLimit: raw.server?.rate_limit ?? 1000,
        rateWindowMs: raw.server?.rate_window ?? 60_000,
        bodyLimit: raw.server?.body_limit ?? 1024 * 1024,
        corsOrigins: raw.server?.cors_origins ?? [],
      },
      slos: raw.slos ?? [],
      alerting: { evaluateEveryMs: raw.alerting?.evaluate_every ?? DEFAULT_EVALUATE_EVERY_MS },
      webhooks: raw.webhooks ?? [],
    };
    if (raw.budget !== undefined) config.budget = raw.budget;
    return config;
  }),
);

/**
 * The config used when there is no `smith.yaml`: no agents, retries 0, priority 5, no default
 * timeout, engine concurrency 16, store synchronous FULL.
 *
 * @returns a fresh object each call
 */
export function defaultConfig(): SmithConfig {
  return configSchema.parse({});
}

// ---------------------------------------------------------------------------------------------
// Messages for issues whose schema gives none

const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a map',
  record: 'a map',
  array: 'a list',
  map: 'a map',
};

/**
 * A zod error map (pass as `safeParse(data, { error: smithErrorMap })`) that words the issues no
 * schema words itself as "expected …", so a loader can append ", found …".
 *
 * @param iss - the raw issue
 * @returns the message
 */
export const smithErrorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type':
      return `expected ${TYPE_WORDS[iss.expected] ?? iss.expected}`;
    case 'invalid_value':
      return `expected ${quoteList(iss.values.map(String))}`;
    case 'too_small':
      return iss.origin === 'string'
        ? 'expected a non-empty string'
        : iss.origin === 'array'
          ? `expected at least ${String(iss.minimum)} item(s)`
          : `expected a number >= ${String(iss.minimum)}`;
    case 'too_big':
      return iss.origin === 'array'
        ? `expected at most ${String(iss.maximum)} item(s)`
        : `expected a number <= ${String(iss.maximum)}`;
    case 'invalid_format':
      return iss.pattern === undefined ? `expected a ${iss.format}` : `expected text matching ${iss.pattern}`;
    case 'invalid_key':
      return `invalid key: ${iss.issues[0]?.message ?? 'not allowed here'}`;
    case 'unrecognized_keys':
      return iss.keys.map((k) => `unknown field "${k}"`).join('\n');
    default:
      return undefined;
  }
};
