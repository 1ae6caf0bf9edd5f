/**
 * The council's policy (`policy.yaml`): change budgets per risk tier, forbidden paths and commands,
 * judge weights, approval thresholds per tier, and how many revise rounds an agent gets. Every
 * field is optional; what is left out keeps its default ({@link defaultPolicy}).
 */
import { z } from 'zod';
import { durationSchema, intSchema, nullAsAbsent, strictFields } from '../core/schema/config-schema.js';
import { globProblem } from './globs.js';
import { readInputFile, validate, validateText } from './source.js';
import type { RiskTier } from './working-spec.js';

/** How much one change may touch. */
export interface ChangeBudget {
  /** Files changed (added, modified, deleted, renamed: each counts once). */
  maxFiles: number;
  /** Lines added plus lines deleted, as `git diff --numstat` counts them (binary files count 0). */
  maxLines: number;
}

/** A command that must not appear in an agent's reported commands or in added script lines. */
export interface ForbiddenCommand {
  /** A JavaScript regular expression (source text, no flags), matched anywhere in a line. */
  pattern: string;
  /** Why it is forbidden, for messages. */
  reason: string;
}

/** A validated policy. Plain data (serializable to JSON for command judges). */
export interface Policy {
  /** Change budget per risk tier. */
  budgets: Record<RiskTier, ChangeBudget>;
  /** Globs of files the budget does not count (lock files). */
  budgetIgnore: string[];
  /** Globs of paths no change may touch. */
  forbiddenPaths: string[];
  /** Commands no agent may run or add to a script. */
  forbiddenCommands: ForbiddenCommand[];
  /** Weight of each judge by name. */
  weights: Record<string, number>;
  /** Weight of a judge not named in `weights` (command judges). */
  defaultWeight: number;
  /** Score (0..1) a change needs to pass, per risk tier. */
  thresholds: Record<RiskTier, number>;
  /** How many times a change may be sent back to its agent before a `revise` becomes a `reject`. */
  maxReviseRounds: number;
  /** Timeout in ms of verify and acceptance commands that set none. */
  verifyTimeoutMs: number;
}

/**
 * Default change budgets: tier 1 10 files / 250 lines, tier 2 100 / 10,000, tier 3 500 / 40,000.
 */
export const DEFAULT_BUDGETS: Readonly<Record<RiskTier, Readonly<ChangeBudget>>> = {
  1: { maxFiles: 10, maxLines: 250 },
  2: { maxFiles: 100, maxLines: 10_000 },
  3: { maxFiles: 500, maxLines: 40_000 },
};

/** Default thresholds: tier 1 needs 0.8, tiers 2 and 3 need 0.6 (DESIGN.md, "The council"). */
export const DEFAULT_THRESHOLDS: Readonly<Record<RiskTier, number>> = { 1: 0.8, 2: 0.6, 3: 0.6 };

/** Default weights: constitution 0.4, verification, quality and integration 0.2 each. */
export const DEFAULT_WEIGHTS: Readonly<Record<string, number>> = {
  constitution: 0.4,
  verification: 0.2,
  quality: 0.2,
  integration: 0.2,
};

/** Default weight of judges not named in the weights (command judges). */
export const DEFAULT_JUDGE_WEIGHT = 0.2;

/** Default maximum revise rounds. */
export const DEFAULT_MAX_REVISE_ROUNDS = 2;

/** Default timeout of verify and acceptance commands: 10 minutes. */
export const DEFAULT_VERIFY_TIMEOUT_MS = 10 * 60_000;

/** Lock files, which the change budget does not count by default. */
export const DEFAULT_BUDGET_IGNORE: readonly string[] = [
  '**/package-lock.json',
  '**/npm-shrinkwrap.json',
  '**/yarn.lock',
  '**/pnpm-lock.yaml',
  '**/bun.lockb',
  '**/Cargo.lock',
  '**/go.sum',
  '**/poetry.lock',
  '**/uv.lock',
  '**/Gemfile.lock',
  '**/composer.lock',
];

/**
 * Paths no change may touch by default: git's own files, smith's home (its specs and policy), env
 * files and private keys.
 */
export const DEFAULT_FORBIDDEN_PATHS: readonly string[] = [
  '.git/**',
  '**/.git/**',
  '.smith/**',
  '**/.env',
  '**/.env.local',
  '**/.env.*.local',
  '**/*.pem',
  '**/*.key',
  '**/*.p12',
  '**/*.pfx',
  '**/id_rsa',
  '**/id_dsa',
  '**/id_ecdsa',
  '**/id_ed25519',
];

/** Commands no agent may run by default. */
export const DEFAULT_FORBIDDEN_COMMANDS: readonly ForbiddenCommand[] = [
  {
    pattern: String.raw`\brm\s+(?:-{1,2}[\w-]+\s+)+(?:--\s+)?(?:/\*?|~/?|\$\{?HOME\}?/?)(?=$|[\s;&|)'"])`,
    reason: 'deletes the root or home directory (rm -rf /)',
  },
  {
    pattern: String.raw`\b(?:curl|wget)\b[^|\n]*\|\s*(?:sudo\s+)?(?:env\s+)?(?:ba|da|k|z)?sh\b`,
    reason: 'pipes a download into a shell (curl … | sh)',
  },
  { pattern: String.raw`:\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:`, reason: 'a fork bomb' },
  { pattern: String.raw`\bmkfs(?:\.\w+)?\s`, reason: 'formats a filesystem (mkfs)' },
  {
    pattern: String.raw`\bdd\b[^\n]*\bof=/dev/(?!null\b|zero\b|stdout\b|stderr\b)`,
    reason: 'writes to a raw device (dd)',
  },
  {
    pattern: String.raw`>\s*/dev/(?:sd[a-z]|nvme\d|hd[a-z]|xvd[a-z]|vd[a-z]|disk\d)`,
    reason: 'writes to a raw device',
  },
  {
    pattern: String.raw`\bchmod\s+(?:-\w+\s+)*0?777\s+/(?=$|\s)`,
    reason: 'makes the root directory world-writable',
  },
  {
    pattern: String.raw`\bgit\s+push\b[^\n]*\s(?:--force(?:-with-lease)?|-f)(?=$|\s)`,
    reason: 'force-pushes (rewrites shared history)',
  },
];

/**
 * The policy used when there is no `policy.yaml`: the DEFAULT_* constants of this module.
 *
 * @returns a fresh object each call
 */
export function defaultPolicy(): Policy {
  return {
    budgets: {
      1: { ...DEFAULT_BUDGETS[1] },
      2: { ...DEFAULT_BUDGETS[2] },
      3: { ...DEFAULT_BUDGETS[3] },
    },
    budgetIgnore: [...DEFAULT_BUDGET_IGNORE],
    forbiddenPaths: [...DEFAULT_FORBIDDEN_PATHS],
    forbiddenCommands: DEFAULT_FORBIDDEN_COMMANDS.map((c) => ({ ...c })),
    weights: { ...DEFAULT_WEIGHTS },
    defaultWeight: DEFAULT_JUDGE_WEIGHT,
    thresholds: { ...DEFAULT_THRESHOLDS },
    maxReviseRounds: DEFAULT_MAX_REVISE_ROUNDS,
    verifyTimeoutMs: DEFAULT_VERIFY_TIMEOUT_MS,
  };
}

const globSchema = z
  .string({ error: 'expected a path glob such as "**/*.pem"' })
  .min(1, { error: 'expected a path glob such as "**/*.pem"' })
  .superRefine((g, ctx) => {
    const problem = globProblem(g);
    if (problem !== undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a valid glob (${problem})`,
        params: { showFound: true },
      });
    }
  });

const globsSchema = z.array(globSchema, { error: 'expected a list of path globs' });

const regexSchema = z
  .string({ error: 'expected a regular expression as a string' })
  .min(1, { error: 'expected a regular expression (not empty)' })
  .superRefine((p, ctx) => {
    try {
      new RegExp(p);
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a valid regular expression (${(err as Error).message})`,
        params: { showFound: true },
      });
    }
  });

const forbiddenCommandSchema = z.preprocess(
  (v) => (typeof v === 'string' ? { pattern: v } : v),
  strictFields(
    {
      pattern: regexSchema,
      reason: z.string({ error: 'expected the reason as a string' }).optional(),
    },
    'a forbidden command (a regular expression, or {pattern, reason})',
  ).transform((c): ForbiddenCommand => ({
    pattern: c.pattern,
    reason: c.reason ?? `matches /${c.pattern}/`,
  })),
);

const budgetSchema = strictFields(
  {
    max_files: intSchema('a whole number of files, 1 or more', 1).optional(),
    max_lines: intSchema('a whole number of lines, 1 or more', 1).optional(),
  },
  'a change budget',
);

const tiers = <T extends z.ZodType>(schema: T, what: string) =>
  strictFields({ 1: schema.optional(), 2: schema.optional(), 3: schema.optional() }, what);

const unit = (what: string) =>
  z
    .number({ error: `expected ${what}, a number from 0 to 1` })
    .min(0, { error: `expected ${what}, a number from 0 to 1` })
    .max(1, { error: `expected ${what}, a number from 0 to 1` });

/**
 * `policy.yaml` as written (snake_case), every field optional:
 * `budgets` (`1`/`2`/`3`: `{max_files, max_lines}`, merged field by field over the defaults),
 * `budget_ignore` (globs), `forbidden_paths` (globs), `forbidden_commands` (regular expressions or
 * `{pattern, reason}`), `weights` (judge name: 0..1), `default_weight`, `thresholds`
 * (`1`/`2`/`3`: 0..1), `max_revise_rounds` (0 or more), `verify_timeout` (a duration).
 * A list that is given replaces its default list. Outputs a {@link Policy}.
 */
export const policySchema = z.preprocess(
  (v) => (v === null || v === undefined ? {} : v),
  strictFields(
    {
      budgets: nullAsAbsent(tiers(budgetSchema, 'the budgets (by risk tier 1, 2, 3)')),
      budget_ignore: nullAsAbsent(globsSchema),
      forbidden_paths: nullAsAbsent(globsSchema),
      forbidden_commands: nullAsAbsent(
        z.array(forbiddenCommandSchema, { error: 'expected a list of regular expressions' }),
      ),
      weights: nullAsAbsent(
        z.record(z.string().min(1), unit('a weight'), {
          error: 'expected a map of judge weights (judge: weight), such as {constitution: 0.4}',
        }),
      ),
      default_weight: unit('a weight').optional(),
      thresholds: nullAsAbsent(tiers(unit('a threshold'), 'the thresholds (by risk tier 1, 2, 3)')),
      max_revise_rounds: intSchema('a whole number of rounds, 0 or more', 0).optional(),
      verify_timeout: durationSchema(true).optional(),
    },
    'a policy',
  ).transform((p): Policy => {
    const out = defaultPolicy();
    for (const tier of [1, 2, 3] as const) {
      const b = p.budgets?.[tier];
      if (b?.max_files !== undefined) out.budgets[tier].maxFiles = b.max_files;
      if (b?.max_lines !== undefined) out.budgets[tier].maxLines = b.max_lines;
      const t = p.thresholds?.[tier];
      if (t !== undefined) out.thresholds[tier] = t;
    }
    if (p.budget_ignore !== undefined) out.budgetIgnore = p.budget_ignore;
    if (p.forbidden_paths !== undefined) out.forbiddenPaths = p.forbidden_paths;
    if (p.forbidden_commands !== undefined) out.forbiddenCommands = p.forbidden_commands;
    if (p.weights !== undefined) out.weights = { ...out.weights, ...p.weights };
    if (p.default_weight !== undefined) out.defaultWeight = p.default_weight;
    if (p.max_revise_rounds !== undefined) out.maxReviseRounds = p.max_revise_rounds;
    if (p.verify_timeout !== undefined) out.verifyTimeoutMs = p.verify_timeout;
    return out;
  }),
);

/**
 * Validates a policy given as data (parsed YAML or JSON).
 *
 * @param value - the policy as data, snake_case; `null`/`undefined` give the defaults
 * @param where - what it is called in messages (default `policy`)
 * @returns the policy, defaults filled in
 * @throws ConfigError (code `CONFIG_INVALID`, context `{ problems }`) listing every problem as
 *   `<where>: <field path>: expected …, found …`
 */
export function parsePolicy(value: unknown, where = 'policy'): Policy {
  return validate(policySchema, value, { display: where }, 'policy');
}

/**
 * Validates a policy written as YAML text.
 *
 * @param yamlText - the YAML
 * @param file - the file as the user named it
 * @returns the policy
 * @throws ConfigError listing every problem as `file:line:col: path: expected …, found …`
 */
export function parsePolicyText(yamlText: string, file: string): Policy {
  return validateText(policySchema, yamlText, file, 'policy file');
}

/**
 * Reads a policy file.
 *
 * @param file - the path
 * @returns the policy
 * @throws NonRetryableError with code `CONFIG_NOT_FOUND` when the file does not exist
 * @throws ConfigError when it cannot be read or does not validate
 */
export async function loadPolicy(file: string): Promise<Policy> {
  return parsePolicyText(await readInputFile(file, 'policy file'), file);
}

/**
 * The weight of a judge under a policy.
 *
 * @param policy - the policy
 * @param judge - the judge's name
 * @returns `policy.weights[judge]`, else `policy.defaultWeight`
 */
export function judgeWeight(policy: Policy, judge: string): number {
  return policy.weights[judge] ?? policy.defaultWeight;
}

const compiled = new Map<string, RegExp>();

/**
 * The forbidden commands a line contains.
 *
 * @param policy - the policy
 * @param line - a command or a line of a script
 * @returns the entries that match, in policy order
 */
export function forbiddenCommandsIn(policy: Policy, line: string): ForbiddenCommand[] {
  return policy.forbiddenCommands.filter((c) => {
    let re = compiled.get(c.pattern);
    if (re === undefined) {
      re = new RegExp(c.pattern);
      compiled.set(c.pattern, re);
    }
    return re.test(line);
  });
}
