import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  findRollout,
  prepareAttemptHomes,
  pruneCodexHomes,
  readRolloutUsage,
  releaseAttemptHomes,
  taskDirName,
} from './codex-home.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'smith-codex-home-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

const tokenCount = (input: number, output: number): string =>
  JSON.stringify({
    timestamp: '2026-01-01T00:00:00Z',
    type: 'event_msg',
    payload: {
      type: 'token_count',
      info: {
        total_token_usage: {
          input_tokens: input,
          cached_input_tokens: 1,
          output_tokens: output,
          total_tokens: input + output,
        },
        last_token_usage: { input_tokens: 1, cached_input_tokens: 0, output_tokens: 1, total_tokens: 2 },
      },
    },
  });

describe('codex homes', () => {
  it('names task directories safely and distinctly', () => {
    expect(taskDirName('01JABCDEF')).toBe('01JABCDEF');
    expect(taskDirName('../etc')).not.toContain('/');
    expect(taskDirName('a/b')).not.toBe(taskDirName('a_b'));
    expect(taskDirName('..')).not.toBe('..');
  });

  it('keeps only the sessions of a task between attempts, and removes the attempt HOME', () => {
    const homes = prepareAttemptHomes(root, 'task-1');
    expect(homes.codexHome).toBe(path.join(root, 'task-1', 'codex-home'));
    mkdirSync(path.join(homes.codexHome, 'sessions', '2026', '01', '01'), { recursive: true });
    writeFileSync(path.join(homes.codexHome, 'state_5.sqlite'), 'x');
    mkdirSync(path.join(homes.codexHome, 'skills'));
    writeFileSync(path.join(homes.home, 'junk'), 'x');
    releaseAttemptHomes(homes);
    expect(existsSync(homes.home)).toBe(false);
    expect(readdirSync(homes.codexHome)).toEqual(['sessions']);
    // the next attempt of the task gets the same CODEX_HOME and a new HOME
    const again = prepareAttemptHomes(root, 'task-1');
    expect(again.codexHome).toBe(homes.codexHome);
    expect(again.home).not.toBe(homes.home);
  });

  it('prunes task directories unused for longer than the keep time, except the one in use', () => {
    const old = prepareAttemptHomes(root, 'old').taskDir;
    const inUse = prepareAttemptHomes(root, 'in-use').taskDir;
    const fresh = prepareAttemptHomes(root, 'fresh').taskDir;
    const longAgo = new Date(Date.now() - 30 * 24 * 3600 * 1000);
    utimesSync(old, longAgo, longAgo);
    utimesSync(inUse, longAgo, longAgo);
    expect(pruneCodexHomes(root, 7 * 24 * 3600 * 1000, inUse)).toEqual([old]);
    expect(readdirSync(root).sort()).toEqual(['fresh', 'in-use']);
    expect(existsSync(fresh)).toBe(true);
    expect(pruneCodexHomes(path.join(root, 'missing'), 0)).toEqual([]);
  });

  it('finds a thread rollout under sessions/YYYY/MM/DD and reads its last token totals', () => {
    const id = '01a20907-f978-7893-875a-9f978eb38fad';
    const day = path.join(root, 'sessions', '2026', '11', '23');
    mkdirSync(day, { recursive: true });
    mkdirSync(path.join(root, 'sessions', '2025', '01', '02'), { recursive: true });
    const file = path.join(day, `rollout-2026-11-23T15-30-47-${id}.jsonl`);
    writeFileSync(
      file,
      [
        JSON.stringify({ type: 'session_meta', payload: { id } }),
        tokenCount(100, 5),
        JSON.stringify({ type: 'response_item', payload: { type: 'message' } }),
        tokenCount(600, 30),
        JSON.stringify({ type: 'event_msg', payload: { type: 'task_complete' } }),
        '{"type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":', // cut short
      ].join('\n'),
    );
    expect(findRollout(root, id)).toBe(file);
    expect(findRollout(root, '01a20907-0000-0000-0000-000000000000')).toBeNull();
    expect(findRollout(root, '../x')).toBeNull();
    expect(findRollout(path.join(root, 'nowhere'), id)).toBeNull();
    expect(readRolloutUsage(file)).toEqual({
      inputTokens: 600,
      cachedInputTokens: 1,
      cacheWriteInputTokens: 0,
      outputTokens: 30,
    });
    expect(readRolloutUsage(path.join(root, 'missing.jsonl'))).toBeNull();
  });
});
