/**
 * Working specs, after CAWS (the Coding-Agent Working Standard,
 * https://github.com/Paths-Design/coding-agent-working-standard): what a task may change (scope),
 * what must stay true (invariants), how to tell it is done (acceptance criteria, verify commands),
 * and how risky it is (risk tier 1..3). YAML input is snake_case; the parsed type is camelCase.
 *
 * A spec comes from a file (`spec: FILE` on a task, or `.smith/spec.yaml` of a repository) or
 * inline (an object). Errors name the file, line and field.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Json } from '../core/types.js';
import { durationSchema, intSchema, nullAsAbsent, strictFields } from '../core/schema/config-schema.js';
import { globProblem } from './globs.js';
import { readInputFile, validate, validateText } from './source.js';

/** Risk tier: 1 (critical: auth, billing, migrations) .. 3 (low: docs, internal tooling). */
export type RiskTier = 1 | 2 | 3;

/** A command the verification judge runs in the worktree with `sh -c`. */
export interface VerifyCommand {
  /** A short name (default: the command itself). */
  name: string;
  /** Shell text, run with `sh -c` in the worktree. */
  command: string;
  /** Timeout in ms; default the policy's `verifyTimeoutMs` (10 min). */
  timeoutMs?: number;
}

/** An acceptance criterion in Given/When/Then form, optionally checked by a command. */
export interface AcceptanceCriterion {
  /** `A1`, `AC-2`, …. */
  id: string;
  given: string;
  when: string;
  then: string;
  /** Shell text that exits 0 when the criterion holds (run by the quality judge). */
  command?: string;
  /** Timeout of `command` in ms; default the policy's `verifyTimeoutMs`. */
  timeoutMs?: number;
}

/** A validated working spec. */
export interface WorkingSpec {
  /** `FEAT-0012`, `FIX-42`, …. */
  id: string;
  title: string;
  riskTier: RiskTier;
  scope: {
    /** Globs of the paths the change may touch; undefined = the whole repository. */
    in?: string[];
    /** Globs of paths it must not touch, even inside `in`. Default `[]`. */
    out: string[];
  };
  /** Things that must stay true (for people and model judges). Default `[]`. */
  invariants: string[];
  /** Default `[]`. */
  acceptance: AcceptanceCriterion[];
  /** Free-form non-functional requirements (a map or a list), kept as written. */
  nonFunctional?: Json;
  /** Default `[]`. */
  verify: VerifyCommand[];
  /** Absolute file it came from, when it came from a file. */
  file?: string;
}

/** Where a repository keeps its working spec, relative to its root. */
export const REPO_SPEC_PATH = '.smith/spec.yaml';

/** What ids look like: a letter or digit, then letters, digits, `.`, `_`, `-`. */
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const text = (what: string) =>
  z
    .string({ error: `expected ${what} as a string` })
    .trim()
    .min(1, { error: `expected ${what} (not empty)` });

const globSchema = z
  .string({ error: 'expected a path glob such as "src/**"' })
  .min(1, { error: 'expected a path glob such as "src/**"' })
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

const globsSchema = z.array(globSchema, { error: 'expected a list of path globs such as ["src/**"]' });

const timeoutSchema = durationSchema(true);

const verifyItemSchema = z.preprocess(
  // A bare string is the command itself.
  (v) => (typeof v === 'string' ? { command: v } : v),
  strictFields(
    {
      name: text('a name').optional(),
      command: text('a shell command'),
      timeout: timeoutSchema.optional(),
    },
    'a verify command (a shell command as a string, or {name, command, timeout})',
  ).transform((v): VerifyCommand => {
    const out: VerifyCommand = { name: v.name ?? v.command, command: v.command };
    if (v.timeout !== undefined) out.timeoutMs = v.timeout;
    return out;
  }),
);

const acceptanceSchema = strictFields(
  {
    id: text('an id such as "A1"'),
    given: text('the situation ("given")'),
    when: text('the action ("when")'),
    then: text('the outcome ("then")'),
    command: text('a shell command').optional(),
    timeout: timeoutSchema.optional(),
  },
  'an acceptance criterion',
).transform((a): AcceptanceCriterion => {
  const out: AcceptanceCriterion = { id: a.id, given: a.given, when: a.when, then: a.then };
  if (a.command !== undefined) out.command = a.command;
  if (a.timeout !== undefined) out.timeoutMs = a.timeout;
  return out;
});

/** CAWS fields accepted for compatibility and ignored (smith takes budgets from the policy). */
const IGNORED_CAWS_FIELDS = [
  'mode',
  'blast_radius',
  'operational_rollback_slo',
  'contracts',
  'observability',
  'migrations',
  'rollback',
  'threats',
] as const;

const ignored = Object.fromEntries(IGNORED_CAWS_FIELDS.map((k) => [k, z.unknown().optional()])) as Record<
  (typeof IGNORED_CAWS_FIELDS)[number],
  z.ZodOptional<z.ZodUnknown>
>;

/**
 * A working spec as written (snake_case): `id`, `title`, `risk_tier` (1..3), `scope` (`in`, `out`:
 * path globs), `invariants` (strings), `acceptance` (`{id, given, when, then, command?, timeout?}`),
 * `non_functional` (a map or a list, free-form), `verify` (shell commands, or
 * `{name, command, timeout}`). The CAWS fields `mode`, `blast_radius`, `operational_rollback_slo`,
 * `contracts`, `observability`, `migrations`, `rollback` and `threats` are accepted and ignored.
 * Outputs a {@link WorkingSpec}.
 */
export const workingSpecSchema = strictFields(
  {
    id: z
      .string({ error: 'expected an id such as "FEAT-0012"' })
      .regex(ID_PATTERN, { error: 'expected an id such as "FEAT-0012" (letters, digits, ".", "_", "-")' }),
    title: text('a title'),
    risk_tier: intSchema('a risk tier: 1 (critical), 2 (standard) or 3 (low)', 1, 3),
    scope: nullAsAbsent(
      strictFields(
        {
          in: nullAsAbsent(
            globsSchema.min(1, {
              error: 'expected at least one glob; leave "in" out to allow the whole repository',
            }),
          ),
          out: nullAsAbsent(globsSchema),
        },
        'the scope',
      ),
    ),
    invariants: nullAsAbsent(
      z.array(text('an invariant'), { error: 'expected a list of invariants (strings)' }),
    ),
    acceptance: nullAsAbsent(z.array(acceptanceSchema, { error: 'expected a list of acceptance criteria' })),
    non_functional: nullAsAbsent(
      z.union([z.record(z.string(), z.unknown()), z.array(z.unknown())], {
        error: 'expected a map or a list of non-functional requirements',
      }),
    ),
    verify: nullAsAbsent(z.array(verifyItemSchema, { error: 'expected a list of verify commands' })),
    ...ignored,
  },
  'a working spec',
)
  .superRefine((s, ctx) => {
    const seen = new Map<string, number>();
    (s.acceptance ?? []).forEach((a, i) => {
      const first = seen.get(a.id);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['acceptance', i, 'id'],
          message: `duplicate acceptance id "${a.id}" (also acceptance[${first}]); expected unique ids`,
        });
      } else {
        seen.set(a.id, i);
      }
    });
  })
  .transform((s): WorkingSpec => {
    const scope: WorkingSpec['scope'] = { out: s.scope?.out ?? [] };
    if (s.scope?.in !== undefined) scope.in = s.scope.in;
    const spec: WorkingSpec = {
      id: s.id,
      title: s.title,
      riskTier: s.risk_tier as RiskTier,
      scope,
      invariants: s.invariants ?? [],
      acceptance: s.acceptance ?? [],
      verify: s.verify ?? [],
    };
    if (s.non_functional !== undefined) spec.nonFunctional = s.non_functional as Json;
    return spec;
  });

/**
 * Validates an inline working spec (an object, as from a task's `spec:` map or a JSON request).
 *
 * @param value - the spec as data, snake_case
 * @param where - what it is called in messages (`task "fix-login" spec`, `POST /v1/tasks body.spec`)
 * @returns the validated spec
 * @throws ConfigError (code `CONFIG_INVALID`, context `{ problems }`) listing every problem as
 *   `<where>: <field path>: expected …, found …`
 */
export function parseWorkingSpec(value: unknown, where: string): WorkingSpec {
  return validate(workingSpecSchema, value ?? {}, { display: where }, 'working spec');
}

/**
 * Validates a working spec written as YAML text.
 *
 * @param yamlText - the YAML
 * @param file - the file as the user named it (messages show it as given)
 * @returns the validated spec with `file` set (absolute)
 * @throws ConfigError listing every YAML syntax error, or else every schema problem, one per line as
 *   `file:line:col: path: expected …, found …`
 */
export function parseWorkingSpecText(yamlText: string, file: string): WorkingSpec {
  const spec = validateText(workingSpecSchema, yamlText, file, 'working spec');
  return { ...spec, file: path.resolve(file) };
}

/**
 * Reads a working spec file (YAML or JSON).
 *
 * @param file - the path, relative to the process's working directory or absolute
 * @returns the validated spec with `file` set (absolute)
 * @throws NonRetryableError with code `CONFIG_NOT_FOUND` (context `{ file }`) when it does not exist
 * @throws ConfigError when it cannot be read or does not validate (`file:line:col: path: …`)
 */
export async function loadWorkingSpec(file: string): Promise<WorkingSpec> {
  const yamlText = await readInputFile(file, 'working spec');
  return parseWorkingSpecText(yamlText, file);
}

/**
 * Reads a repository's own working spec, `.smith/spec.yaml`, if it has one.
 *
 * @param repo - the repository's root (or worktree)
 * @returns the spec, or undefined when the file does not exist
 * @throws ConfigError when it exists but does not validate
 */
export async function loadRepoWorkingSpec(repo: string): Promise<WorkingSpec | undefined> {
  const file = path.join(repo, REPO_SPEC_PATH);
  try {
    await access(file);
  } catch {
    return undefined;
  }
  return loadWorkingSpec(file);
}
