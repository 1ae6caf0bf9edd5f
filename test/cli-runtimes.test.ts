/**
 * End-to-end: the `http` and `llm` runtimes through `smith run` (the registry, the engine and the
 * CLI together), against a real local HTTP worker and a local server speaking the OpenAI chat API.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Sandbox, byKey, lastJson, taskDetail, type RunSummaryJson } from './fixtures/smith-cli.js';
import { startHttpWorker, type HttpWorker } from './fixtures/http-worker.js';
import { startFakeOpenAiChat, type FakeOpenAiChat } from './fixtures/fake-openai-chat.js';

let box: Sandbox;
let worker: HttpWorker | undefined;
let chat: FakeOpenAiChat | undefined;
beforeEach(() => {
  box = new Sandbox();
});
afterEach(async () => {
  await worker?.close();
  await chat?.close();
  worker = undefined;
  chat = undefined;
  await box.cleanup();
});

type TaskJson = RunSummaryJson['tasks'][number] & {
  cost_usd: number;
  tokens: number;
  session_id: string | null;
};

describe('smith run with http and llm agents', () => {
  it('runs a workflow where an http worker feeds a model, records the spend, and prices the tokens', async () => {
    worker = await startHttpWorker({
      kind: 'json',
      answer: (task) => ({ output: `facts about ${String(task.prompt)}`, session_id: 'w-1' }),
    });
    chat = await startFakeOpenAiChat({ apiKey: 'test-key' });
    box.write('smith.yaml', ['prices:', '  tiny-model: {input: 1000, output: 2000}', ''].join('\n'));
    box.write(
      'wf.yaml',
      [
        'name: mixed-runtimes',
        'agents:',
        '  worker:',
        '    runtime: http',
        `    url: ${worker.url}`,
        '  model:',
        '    runtime: llm',
        '    model: tiny-model',
        `    base_url: ${chat.baseUrl}`,
        '    api_key_env: TEST_OPENAI_KEY',
        '    system_prompt: You are terse.',
        'tasks:',
        '  gather:',
        '    agent: worker',
        '    prompt: the repo',
        '  summarize:',
        '    agent: model',
        '    needs: [gather]',
        '    prompt: "Summarize: {needs.gather.output}"',
        '',
      ].join('\n'),
    );
    const r = await box.run(['run', 'wf.yaml', '--json'], { env: { TEST_OPENAI_KEY: 'test-key' } });
    expect(r.code, r.stderr).toBe(0);
    const t = byKey(lastJson<RunSummaryJson>(r)) as Record<string, TaskJson>;
    expect(t.gather).toMatchObject({ state: 'completed', output: 'facts about the repo', session_id: 'w-1' });
    expect(t.summarize!.state).toBe('completed');
    expect(t.summarize!.output).toBe('Hello from tiny-model.\nSecond line.');
    // the model saw the worker's output in its prompt
    const sent = JSON.stringify(chat.requests[0]!.body);
    expect(sent).toContain('Summarize: facts about the repo');
    expect(t.summarize!.tokens).toBeGreaterThan(0);
    expect(t.summarize!.cost_usd).toBeGreaterThan(0);
    const detail = await taskDetail(box, t.summarize!.id);
    expect(detail.events.some((e: { type: string }) => e.type === 'usage')).toBe(true);
  });

  it('does not retry an attempt whose credentials were refused, and says why', async () => {
    chat = await startFakeOpenAiChat({ apiKey: 'right-key' });
    box.write(
      'wf.yaml',
      [
        'name: refused',
        'agents:',
        '  model:',
        '    runtime: llm',
        '    model: tiny-model',
        `    base_url: ${chat.baseUrl}`,
        '    api_key_env: TEST_OPENAI_KEY',
        'tasks:',
        '  ask:',
        '    agent: model',
        '    retries: 3',
        '    prompt: hello',
        '',
      ].join('\n'),
    );
    const r = await box.run(['run', 'wf.yaml', '--json'], { env: { TEST_OPENAI_KEY: 'wrong-key' } });
    expect(r.code).toBe(1);
    const t = byKey(lastJson<RunSummaryJson>(r)).ask!;
    expect(t).toMatchObject({ state: 'failed', attempts: 1 });
    expect(t.reason).toMatch(/401|API key|auth/i);
    expect(chat.requests).toHaveLength(1);
  });
});

describe('smith run with a claude-code agent (the real CLI against a local Messages API)', () => {
  it('the agent edits a file; smith records its session, cost and tool calls', async () => {
    const { FakeAnthropic } = await import('./fixtures/fake-anthropic.js');
    const { mkdtempSync, readFileSync } = await import('node:fs');
    const { join, resolve } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const fake = new FakeAnthropic({
      turns: [
        {
          content: [
            { type: 'text', text: 'Writing the note.' },
            {
              type: 'tool_use',
              name: 'Write',
              input: { file_path: join(box.dir, 'NOTE.md'), content: 'hi\n' },
            },
          ],
        },
        { content: [{ type: 'text', text: 'Wrote NOTE.md.' }] },
      ],
    });
    const url = await fake.start();
    try {
      const claude = resolve(__dirname, '..', 'node_modules', '.bin', 'claude');
      box.write(
        'wf.yaml',
        [
          'name: coder',
          'agents:',
          '  claude:',
          '    runtime: claude-code',
          `    command: [${JSON.stringify(claude)}]`,
          '    model: claude-sonnet-4-5',
          `    base_url: ${url}`,
          '    permission_mode: bypassPermissions',
          'tasks:',
          '  note:',
          '    agent: claude',
          '    prompt: Write NOTE.md saying hi',
          '    budget: {usd: 5}',
          '',
        ].join('\n'),
      );
      const home = mkdtempSync(join(tmpdir(), 'smith-claude-home-'));
      const r = await box.run(['run', 'wf.yaml', '--json'], {
        env: { HOME: home, ANTHROPIC_API_KEY: 'test-key', CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' },
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const t = byKey(lastJson<RunSummaryJson>(r)).note as TaskJson;
      expect(t.state).toBe('completed');
      expect(t.output).toBe('Wrote NOTE.md.');
      expect(readFileSync(join(box.dir, 'NOTE.md'), 'utf8')).toBe('hi\n');
      expect(t.session_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(t.cost_usd).toBeGreaterThan(0);
      const detail = await taskDetail(box, t.id);
      const types = new Set(detail.events.map((e: { type: string }) => e.type));
      for (const type of ['session', 'text', 'tool_use', 'tool_result', 'file_change', 'usage']) {
        expect(types, type).toContain(type);
      }
    } finally {
      await fake.close();
    }
  });
});
