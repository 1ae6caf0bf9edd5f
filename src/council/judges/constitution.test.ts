import { describe, expect, it } from 'vitest';
import { findSecrets, isScriptFile, shannonEntropy } from './constitution.js';

// Secrets are built from parts so that this file holds none.
const AWS = 'AKIA' + 'IOSFODNN7EXAMPLE';
const GH = 'ghp_' + 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8';
const ANT = 'sk-ant-' + 'api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0Ed';
const OAI = 'sk-proj-' + 'Q1w2E3r4T5y6U7i8O9p0A1s2D3f4';
const SLACK = 'xoxb-' + '123456789012-1234567890123-AbCdEfGhIjKl';
const PEM = '-----BEGIN ' + 'OPENSSH PRIVATE KEY-----';

describe('findSecrets', () => {
  it.each([
    [`const id = "${AWS}";`, 'aws_access_key'],
    [`token: ${GH}`, 'github_token'],
    [`ANTHROPIC_API_KEY=${ANT}`, 'anthropic_key'],
    [`OPENAI_API_KEY=${OAI}`, 'openai_key'],
    [`slack = '${SLACK}'`, 'slack_token'],
    [PEM, 'private_key'],
    ['-----BEGIN ' + 'PGP PRIVATE KEY BLOCK-----', 'private_key'],
    [`api_key = "${'9fK2xQ7vLp3' + 'Zr8Tb1Nw6Yc'}"`, 'generic_secret'],
    [`"clientSecret": "${'a8F3k' + 'Q9z2Lm7Xv4Rp1Ws6'}"`, 'generic_secret'],
  ])('finds %s', (text, kind) => {
    const found = findSecrets(text);
    expect(found.map((f) => f.kind)).toEqual([kind]);
    expect(found[0]?.redacted).toMatch(/^.{4}…\(\d+ chars\)$/);
  });

  it.each([
    'const apiKey = process.env.OPENAI_API_KEY;',
    'api_key = "your-api-key-goes-here-1234"',
    'password: "changeme-please-123456"',
    'token = "aaaaaaaaaaaaaaaaaaaaaa1"',
    'const tokenizerModel = "bert-base-uncased-v2";',
    'const AKIA = 1; // AKIA prefix alone',
    'task-runner skip-the-tests-please-now',
    'author: "jane.doe2024@mail.example"',
    'see https://github.com/org/repo/blob/main/README.md',
  ])('ignores %s', (text) => {
    expect(findSecrets(text)).toEqual([]);
  });

  it('reports a span once (the specific rule wins over the generic one)', () => {
    expect(findSecrets(`aws_access_key_id = "${AWS}"`).map((f) => f.kind)).toEqual(['aws_access_key']);
  });

  it('measures entropy in bits per character', () => {
    expect(shannonEntropy('')).toBe(0);
    expect(shannonEntropy('aaaa')).toBe(0);
    expect(shannonEntropy('abcd')).toBe(2);
  });
});

describe('isScriptFile', () => {
  it.each([
    ['scripts/setup.sh', true],
    ['Makefile', true],
    ['docker/Dockerfile.dev', true],
    ['package.json', true],
    ['.github/workflows/ci.yml', true],
    ['.husky/pre-commit', true],
    ['src/index.ts', false],
    ['README.md', false],
  ])('%s → %s', (p, expected) => {
    expect(isScriptFile({ path: p, addedLines: [] })).toBe(expected);
  });

  it('knows a script by its shebang', () => {
    expect(isScriptFile({ path: 'bin/run', addedLines: [{ line: 1, text: '#!/usr/bin/env bash' }] })).toBe(
      true,
    );
    expect(isScriptFile({ path: 'bin/run', addedLines: [{ line: 1, text: '#!/usr/bin/env node' }] })).toBe(
      false,
    );
  });
});
