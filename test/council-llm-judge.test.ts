/**
 * The `llm` judge on a real git repository, against a local server speaking the OpenAI chat API
 * (structured output): the model sees the spec and the diff, and its verdict is read; a model that
 * answers nonsense or refuses the key makes the judge abstain, never approve.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { llmJudge, parseWorkingSpec, defaultPolicy, type JudgeContext } from '../src/council/index.js';
import { startFakeOpenAiChat, type FakeOpenAiChat } from './fixtures/fake-openai-chat.js';

const ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'T',
  GIT_AUTHOR_EMAIL: 't@localhost',
  GIT_COMMITTER_NAME: 'T',
  GIT_COMMITTER_EMAIL: 't@localhost',
};
let repo: string;
let chat: FakeOpenAiChat;

function git(...args: string[]): void {
  execFileSync('git', args, { cwd: repo, env: ENV });
}

beforeEach(() => {
  repo = mkdtempSync(join(tmpdir(), 'smith-llm-judge-'));
  git('init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'a.txt'), 'one\n');
  git('add', '-A');
  git('commit', '-q', '-m', 'base');
  git('checkout', '-q', '-b', 'task');
  writeFileSync(join(repo, 'a.txt'), 'one\ntwo\n');
  git('commit', '-q', '-am', 'add two');
});
afterEach(async () => {
  await chat?.close();
  rmSync(repo, { recursive: true, force: true });
});

function ctx(): JudgeContext {
  return {
    repo,
    base: 'main',
    head: 'task',
    spec: parseWorkingSpec({ id: 'T-1', title: 'count to two', risk_tier: 2 }, 'test'),
    policy: defaultPolicy(),
    output: 'I added the second line.',
    approvedBranches: [],
    waivers: [],
    now: Date.now(),
  };
}

function judge(baseUrl: string) {
  return llmJudge({
    name: 'reviewer',
    model: { model: 'judge-model', baseUrl, apiKeyEnv: 'JUDGE_KEY' },
    env: { JUDGE_KEY: 'k' },
  });
}

describe('llm judge', () => {
  it("reads the model's verdict; the model saw the spec, the agent's answer and the diff", async () => {
    const verdict = {
      decision: 'revise',
      confidence: 0.7,
      reasons: ['the count stops at two'],
      violations: [
        { rule: 'spec.acceptance', severity: 'major', location: 'a.txt:2', suggestion: 'add three' },
      ],
    };
    chat = await startFakeOpenAiChat({ apiKey: 'k', answer: () => ({ content: JSON.stringify(verdict) }) });
    const v = await judge(chat.baseUrl).evaluate(ctx());
    expect(v).toMatchObject({
      judge: 'reviewer',
      decision: 'revise',
      confidence: 0.7,
      reasons: ['the count stops at two'],
      violations: [
        { rule: 'spec.acceptance', severity: 'major', location: 'a.txt:2', suggestion: 'add three' },
      ],
    });
    const sent = JSON.stringify(chat.requests[0]!.body);
    expect(sent).toContain('count to two');
    expect(sent).toContain('I added the second line.');
    expect(sent).toContain('+2: two');
  });

  it('abstains when the answer is not a verdict, or the key is refused', async () => {
    chat = await startFakeOpenAiChat({ apiKey: 'k', answer: () => ({ content: '{"decision":"ship it"}' }) });
    const bad = await judge(chat.baseUrl).evaluate(ctx());
    expect(bad.decision).toBe('abstain');
    await chat.close();
    chat = await startFakeOpenAiChat({ apiKey: 'other-key' });
    const refused = await judge(chat.baseUrl).evaluate(ctx());
    expect(refused.decision).toBe('abstain');
    expect(refused.reasons[0]).toMatch(/could not judge/);
  });
});
