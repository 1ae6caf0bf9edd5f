/**
 * The constitution judge: the change respects the rules. Every changed path (both sides of a
 * rename) is inside the working spec's `scope.in` and outside its `scope.out` and the policy's
 * forbidden paths; no forbidden command was run (the agent's reported commands) or added to a
 * script; no secret was added in the diff or written in the agent's output. Any of these is a
 * critical violation and the decision is `reject`.
 */
import path from 'node:path';
import type { Json } from '../../core/types.js';
import { branchDiff } from '../git.js';
import type { ChangedFile } from '../git.js';
import { firstMatchingGlob, globMatcher } from '../globs.js';
import { makeVerdict } from '../judge.js';
import type { Judge, JudgeContext, Verdict, Violation } from '../judge.js';
import { forbiddenCommandsIn } from '../policy.js';

/** One secret found in text. */
export interface SecretFinding {
  /** Rule suffix: `aws_access_key`, `github_token`, `anthropic_key`, `openai_key`, `slack_token`, `slack_webhook`, `private_key`, `generic_secret`. */
  kind: string;
  /** What it is, in words. */
  label: string;
  /** Offset in the text. */
  index: number;
  /** The secret with all but its first 4 characters hidden (`AKIA…(20 chars)`): safe to log. */
  redacted: string;
}

interface SecretRule {
  kind: string;
  label: string;
  re: RegExp;
  /** Extra check on the match (the secret is group 1 when present, else the whole match). */
  accept?: (secret: string) => boolean;
}

/** At least one letter and one digit: real keys have both; prose and placeholders rarely do. */
const mixed = (s: string): boolean => /[A-Za-z]/.test(s) && /\d/.test(s);

/** Words that mark an example value rather than a secret. */
const PLACEHOLDER_VALUE =
  /example|sample|dummy|placeholder|changeme|change[_-]me|your[_-]|xxxx|<|>|\$\{|\{\{|process\.env|os\.environ/i;

/**
 * Shannon entropy of a string in bits per character (H = -Σ p·log2 p over its characters).
 *
 * @param s - the string
 * @returns 0 for an empty string; about 4.7+ for random base-62 text of 32+ characters
 */
export function shannonEntropy(s: string): number {
  if (s.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) {
    const p = n / s.length;
    h -= p * Math.log2(p);
  }
  return h;
}

/** Least entropy (bits per character) of a generic `api_key = "…"` value to count as a secret. */
export const GENERIC_SECRET_MIN_ENTROPY = 3.5;

/**
 * Secret patterns. Sources: AWS access key ids (AWS IAM docs, "Understanding unique ID prefixes":
 * AKIA, ASIA), GitHub token formats (github.blog 2021-04-05 "Behind GitHub's new authentication
 * token formats": ghp_, gho_, ghu_, ghs_, ghr_; github_pat_), Anthropic (`sk-ant-`), OpenAI (`sk-`,
 * `sk-proj-`), Slack (api.slack.com/authentication/token-types: xoxb-, xoxp-, xoxa-, xoxr-, xoxs-;
 * incoming webhooks), PEM private keys (RFC 7468 labels `PRIVATE KEY`, `RSA PRIVATE KEY`, …,
 * OpenSSH, PGP).
 */
const SECRET_RULES: readonly SecretRule[] = [
  { kind: 'aws_access_key', label: 'an AWS access key id', re: /\b((?:AKIA|ASIA)[0-9A-Z]{16})\b/g },
  { kind: 'github_token', label: 'a GitHub token', re: /\b(gh[pousr]_[A-Za-z0-9]{36,})\b/g },
  { kind: 'github_token', label: 'a GitHub token', re: /\b(github_pat_[A-Za-z0-9_]{40,})\b/g },
  { kind: 'anthropic_key', label: 'an Anthropic API key', re: /\b(sk-ant-[A-Za-z0-9_-]{20,})/g },
  {
    kind: 'openai_key',
    label: 'an OpenAI API key',
    re: /\b(sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})/g,
    accept: (s) => mixed(s.slice(3)),
  },
  {
    kind: 'slack_token',
    label: 'a Slack token',
    re: /\b(xox[abposr]-[A-Za-z0-9-]{10,})/g,
    accept: (s) => mixed(s),
  },
  {
    kind: 'slack_webhook',
    label: 'a Slack webhook URL',
    re: /(https:\/\/hooks\.slack\.com\/services\/T[A-Za-z0-9]+\/B[A-Za-z0-9]+\/[A-Za-z0-9]{8,})/g,
  },
  {
    kind: 'private_key',
    label: 'a private key block',
    re: /(-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)/g,
  },
  {
    kind: 'generic_secret',
    label: 'a hard-coded secret (a long random value assigned to a key, secret, token or password)',
    // The key must end with the secret word (`OPENAI_API_KEY`, `client_secret`, `authToken`).
    re: /\b[A-Za-z0-9_.-]*(?:api[_-]?key|apikey|secret(?:[_-]?key)?|token|passw(?:or)?d|access[_-]?key(?:[_-]?id)?|private[_-]?key)["']?\s*(?::=|=>|=|:)\s*["'`]([^"'`\s]{16,})["'`]/gi,
    accept: (s) => !PLACEHOLDER_VALUE.test(s) && mixed(s) && shannonEntropy(s) >= GENERIC_SECRET_MIN_ENTROPY,
  },
];

/**
 * Redacts a secret for messages and evidence.
 *
 * @param secret - the secret
 * @returns its first 4 characters, `…`, and its length
 */
export function redact(secret: string): string {
  return `${secret.slice(0, 4)}…(${secret.length} chars)`;
}

/**
 * Finds secrets in text (see the patterns' sources on {@link SECRET_RULES}). A span found by one
 * rule is not reported again by a later, more generic one.
 *
 * @param text - one line, or a whole output
 * @returns the findings in rule order, secrets redacted
 */
export function findSecrets(text: string): SecretFinding[] {
  const found: SecretFinding[] = [];
  const taken: [number, number][] = [];
  for (const rule of SECRET_RULES) {
    rule.re.lastIndex = 0;
    for (const m of text.matchAll(rule.re)) {
      const secret = m[1] ?? m[0];
      const index = (m.index ?? 0) + m[0].indexOf(secret);
      if (rule.accept !== undefined && !rule.accept(secret)) continue;
      const end = index + secret.length;
      if (taken.some(([a, b]) => index < b && end > a)) continue;
      taken.push([index, end]);
      found.push({ kind: rule.kind, label: rule.label, index, redacted: redact(secret) });
    }
  }
  return found;
}

const SCRIPT_EXT = new Set(['.sh', '.bash', '.zsh', '.ksh', '.fish', '.mk', '.ps1', '.bat', '.cmd']);
const SCRIPT_NAMES = new Set([
  'makefile',
  'gnumakefile',
  'justfile',
  'dockerfile',
  'containerfile',
  'package.json',
  '.gitlab-ci.yml',
  'procfile',
  'vagrantfile',
]);

/**
 * Whether a changed file is a script whose added lines are checked for forbidden commands: shell
 * and batch files, Makefiles, Dockerfiles, Justfiles, `package.json` (scripts), CI workflows
 * (`.github/workflows/*`, `.gitlab-ci.yml`), git hooks (`.husky/*`, `.githooks/*`), and any file
 * whose added first line is a shell shebang.
 *
 * @param file - the changed file
 * @returns true when its added lines are shell
 */
export function isScriptFile(file: Pick<ChangedFile, 'path' | 'addedLines'>): boolean {
  const p = file.path;
  const base = path.posix.basename(p).toLowerCase();
  if (SCRIPT_EXT.has(path.posix.extname(base))) return true;
  if (SCRIPT_NAMES.has(base) || base.startsWith('dockerfile.')) return true;
  if (/^\.github\/workflows\/[^/]+\.ya?ml$/.test(p)) return true;
  if (/^\.(?:husky|githooks)\//.test(p)) return true;
  const first = file.addedLines[0];
  return first !== undefined && first.line === 1 && /^#!.*\b(?:ba|da|k|z)?sh\b/.test(first.text);
}

/** Most violations reported per rule family before "and N more" (the rest are counted). */
const MAX_PER_RULE = 100;

/**
 * Builds the constitution judge.
 *
 * @returns a judge named `constitution`
 */
export function constitutionJudge(): Judge {
  return { name: 'constitution', evaluate: evaluateConstitution };
}

async function evaluateConstitution(ctx: JudgeContext): Promise<Verdict> {
  const diff = await branchDiff(ctx.repo, ctx.base, ctx.head, ctx.signal);
  const violations: Violation[] = [];
  const reasons: string[] = [];
  const counts = new Map<string, number>();
  const add = (v: Violation, reason: string): void => {
    const family = v.rule.split('.')[0] ?? v.rule;
    const n = (counts.get(family) ?? 0) + 1;
    counts.set(family, n);
    if (n > MAX_PER_RULE) return;
    violations.push(v);
    reasons.push(reason);
  };

  const scopeIn = ctx.spec.scope.in;
  const inScope = scopeIn === undefined ? () => true : globMatcher(scopeIn);
  const outOfScope = globMatcher(ctx.spec.scope.out);
  const forbidden = globMatcher(ctx.policy.forbiddenPaths);

  for (const f of diff.files) {
    for (const p of f.oldPath === undefined ? [f.path] : [f.oldPath, f.path]) {
      const what = f.oldPath === undefined ? `${f.status} ${p}` : `renamed ${f.oldPath} → ${f.path} (${p})`;
      if (!inScope(p)) {
        add(
          {
            rule: 'scope.outside',
            severity: 'critical',
            location: p,
            suggestion: `leave ${p} unchanged, or widen scope.in of spec ${ctx.spec.id} (a person decides)`,
          },
          `${what}: ${p} is outside the spec's scope.in (${(scopeIn ?? []).join(', ')})`,
        );
      }
      if (outOfScope(p)) {
        const glob = firstMatchingGlob(ctx.spec.scope.out, p) ?? '';
        add(
          {
            rule: 'scope.excluded',
            severity: 'critical',
            location: p,
            suggestion: `leave ${p} unchanged: spec ${ctx.spec.id} excludes it (scope.out "${glob}")`,
          },
          `${what}: ${p} is in the spec's scope.out ("${glob}")`,
        );
      }
      if (forbidden(p)) {
        const glob = firstMatchingGlob(ctx.policy.forbiddenPaths, p) ?? '';
        add(
          {
            rule: 'forbidden.path',
            severity: 'critical',
            location: p,
            suggestion: `never change ${p}: the policy forbids "${glob}"`,
          },
          `${what}: ${p} is a forbidden path ("${glob}")`,
        );
      }
    }
  }

  (ctx.commands ?? []).forEach((cmd, i) => {
    for (const c of forbiddenCommandsIn(ctx.policy, cmd)) {
      add(
        {
          rule: 'forbidden.command',
          severity: 'critical',
          location: `commands[${i}]`,
          suggestion: `do not run it: ${c.reason}`,
        },
        `the agent ran a forbidden command (${c.reason}): ${cmd.length > 200 ? `${cmd.slice(0, 200)}…` : cmd}`,
      );
    }
  });

  for (const f of diff.files) {
    const script = isScriptFile(f);
    for (const l of f.addedLines) {
      if (script) {
        for (const c of forbiddenCommandsIn(ctx.policy, l.text)) {
          add(
            {
              rule: 'forbidden.command',
              severity: 'critical',
              location: `${f.path}:${l.line}`,
              suggestion: `remove it from ${f.path}: ${c.reason}`,
            },
            `${f.path}:${l.line} adds a forbidden command (${c.reason})`,
          );
        }
      }
      for (const s of findSecrets(l.text)) {
        add(
          {
            rule: `secret.${s.kind}`,
            severity: 'critical',
            location: `${f.path}:${l.line}`,
            suggestion: `remove it from the history (not just the file), rotate it, and read it from the environment instead`,
          },
          `${f.path}:${l.line} adds ${s.label} (${s.redacted})`,
        );
      }
    }
  }

  const outLines = ctx.output.split('\n');
  outLines.forEach((text, i) => {
    for (const s of findSecrets(text)) {
      add(
        {
          rule: `secret.${s.kind}`,
          severity: 'critical',
          location: outLines.length > 1 ? `output:${i + 1}` : 'output',
          suggestion: 'never print secrets; rotate it',
        },
        `the agent's output contains ${s.label} (${s.redacted}) on line ${i + 1}`,
      );
    }
  });

  for (const [family, n] of counts) {
    if (n > MAX_PER_RULE) reasons.push(`… and ${n - MAX_PER_RULE} more ${family} violations`);
  }

  const evidence: Json[] = [
    {
      kind: 'diff',
      base: ctx.base,
      head: ctx.head,
      mergeBase: diff.mergeBase,
      headCommit: diff.head,
      files: diff.files.length,
      added: diff.added,
      deleted: diff.deleted,
      paths: diff.files
        .slice(0, 200)
        .map((f) => (f.oldPath === undefined ? f.path : `${f.oldPath} -> ${f.path}`)),
    },
  ];
  if (violations.length > 0) {
    return makeVerdict('constitution', 'reject', { reasons, violations, evidence });
  }
  const scopeText = scopeIn === undefined ? 'the whole repository' : scopeIn.join(', ');
  return makeVerdict('constitution', 'approve', {
    reasons: [
      `${diff.files.length} changed file(s) within scope (${scopeText}); no forbidden path or command; no secret added`,
    ],
    evidence,
  });
}
