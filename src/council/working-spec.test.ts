import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, isSmithError } from '../core/errors.js';
import {
  REPO_SPEC_PATH,
  loadRepoWorkingSpec,
  loadWorkingSpec,
  parseWorkingSpec,
  parseWorkingSpecText,
} from './working-spec.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'smith-spec-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function write(name: string, lines: string[]): string {
  const file = path.join(dir, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

async function failure(p: Promise<unknown> | (() => unknown)): Promise<Error> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

describe('loadWorkingSpec', () => {
  it('reads snake_case YAML into the camelCase spec, durations in ms, defaults applied', async () => {
    const file = write('spec.yaml', [
      'id: FEAT-0012',
      'title: Add login rate limiting',
      'risk_tier: 1',
      'mode: feature # a CAWS field, accepted and ignored',
      'scope:',
      '  in: [src/auth/, "tests/**"]',
      '  out: [src/auth/legacy/**]',
      'invariants:',
      '  - passwords are never logged',
      'acceptance:',
      '  - id: A1',
      '    given: five failed logins',
      '    when: a sixth is tried',
      '    then: it is refused for a minute',
      '    command: npm test -- rate',
      '    timeout: 2m',
      'non_functional:',
      '  perf: {p95_ms: 100}',
      'verify:',
      '  - npm test',
      '  - {name: types, command: npx tsc --noEmit, timeout: 90s}',
    ]);
    const spec = await loadWorkingSpec(file);
    expect(spec).toEqual({
      id: 'FEAT-0012',
      title: 'Add login rate limiting',
      riskTier: 1,
      scope: { in: ['src/auth/', 'tests/**'], out: ['src/auth/legacy/**'] },
      invariants: ['passwords are never logged'],
      acceptance: [
        {
          id: 'A1',
          given: 'five failed logins',
          when: 'a sixth is tried',
          then: 'it is refused for a minute',
          command: 'npm test -- rate',
          timeoutMs: 120_000,
        },
      ],
      nonFunctional: { perf: { p95_ms: 100 } },
      verify: [
        { name: 'npm test', command: 'npm test' },
        { name: 'types', command: 'npx tsc --noEmit', timeoutMs: 90_000 },
      ],
      file,
    });
  });

  it('names the file, line, column and field of every problem', async () => {
    const file = write('bad.yaml', [
      'id: FEAT-1',
      'title: x',
      'risk_tier: 4',
      'scope:',
      '  inn: [src/**]',
      'verify:',
      '  - name: lint',
    ]);
    const err = await failure(loadWorkingSpec(file));
    expect(err).toBeInstanceOf(ConfigError);
    const lines = err.message.split('\n');
    expect(lines[0]).toBe(`${file} is not a valid working spec (3 problems):`);
    expect(lines).toContain(
      `  ${file}:3:12: risk_tier: expected a risk tier: 1 (critical), 2 (standard) or 3 (low), found 4`,
    );
    expect(lines).toContain(
      `  ${file}:5:3: scope.inn: unknown field "inn" in the scope; did you mean "in"? (fields: in, out)`,
    );
    expect(lines).toContain(
      `  ${file}:7:5: verify[0].command: required field missing; expected a shell command as a string`,
    );
  });

  it('refuses duplicate acceptance ids, naming the second', async () => {
    const file = write('dup.yaml', [
      'id: FEAT-1',
      'title: x',
      'risk_tier: 2',
      'acceptance:',
      '  - {id: A1, given: g, when: w, then: t}',
      '  - {id: A1, given: g, when: w, then: t}',
    ]);
    const err = await failure(loadWorkingSpec(file));
    expect(err.message).toContain(
      `${file}:6:10: acceptance[1].id: duplicate acceptance id "A1" (also acceptance[0]); expected unique ids`,
    );
  });

  it('reports YAML syntax errors with their line', () => {
    const err = (() => {
      try {
        parseWorkingSpecText('id: x\ntitle: [unclosed\n', 'spec.yaml');
      } catch (e) {
        return e as Error;
      }
      throw new Error('expected a failure');
    })();
    expect(err.message).toMatch(/spec\.yaml:\d+:\d+: YAML syntax error/);
  });

  it('says when the file does not exist', async () => {
    const err = await failure(loadWorkingSpec(path.join(dir, 'none.yaml')));
    expect(isSmithError(err, 'CONFIG_NOT_FOUND')).toBe(true);
    expect(err.message).toContain('none.yaml not found');
  });
});

describe('parseWorkingSpec (inline)', () => {
  it('names where the spec came from and each field', async () => {
    const err = await failure(() =>
      parseWorkingSpec({ id: 'x', risk_tier: '2', scope: { in: [] }, verify: [''] }, 'task "login" spec'),
    );
    const lines = err.message.split('\n');
    expect(lines[0]).toBe('task "login" spec is not a valid working spec (4 problems):');
    expect(lines).toContain(
      '  task "login" spec: title: required field missing; expected a title as a string',
    );
    expect(lines).toContain(
      '  task "login" spec: risk_tier: expected a risk tier: 1 (critical), 2 (standard) or 3 (low), found "2"',
    );
    expect(lines.some((l) => l.includes('scope.in: expected at least one glob'))).toBe(true);
    expect(lines.some((l) => l.includes('verify[0].command: expected a shell command (not empty)'))).toBe(
      true,
    );
  });

  it('leaves scope.in unset for the whole repository and defaults the lists', () => {
    expect(parseWorkingSpec({ id: 'T-1', title: 't', risk_tier: 3 }, 'spec')).toEqual({
      id: 'T-1',
      title: 't',
      riskTier: 3,
      scope: { out: [] },
      invariants: [],
      acceptance: [],
      verify: [],
    });
  });
});

describe('loadRepoWorkingSpec', () => {
  it('reads .smith/spec.yaml when there is one', async () => {
    expect(await loadRepoWorkingSpec(dir)).toBeUndefined();
    write(REPO_SPEC_PATH, ['id: REPO-1', 'title: repository rules', 'risk_tier: 2']);
    expect(await loadRepoWorkingSpec(dir)).toMatchObject({ id: 'REPO-1', riskTier: 2 });
  });
});
