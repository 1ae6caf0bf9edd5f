import { describe, expect, it } from 'vitest';
import {
  agentSpecSchema,
  configSchema,
  defaultConfig,
  didYouMean,
  smithErrorMap,
  unknownFieldMessage,
} from './config-schema.js';

function issues(input: unknown): { path: string; message: string }[] {
  const r = configSchema.safeParse(input, { error: smithErrorMap });
  if (r.success) throw new Error('expected the config to fail');
  return r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
}

describe('the council section', () => {
  it('reads command and model judges, and refuses a judge that is both or neither', () => {
    const c = configSchema.parse({
      mode: 'strict',
      council: {
        policy: 'policy.yaml',
        judges: [
          { name: 'lint', command: 'npm run lint', timeout: '2m' },
          { name: 'reviewer', model: 'gpt-4o-mini', base_url: 'http://127.0.0.1:9/v1', api_key_env: 'K' },
        ],
      },
    });
    expect(c.mode).toBe('strict');
    expect(c.council).toEqual({
      policy: 'policy.yaml',
      judges: [
        { name: 'lint', command: 'npm run lint', timeoutMs: 120_000 },
        { name: 'reviewer', model: 'gpt-4o-mini', baseUrl: 'http://127.0.0.1:9/v1', apiKeyEnv: 'K' },
      ],
    });
    expect(issues({ council: { judges: [{ name: 'x' }] } })[0]?.message).toMatch(/either "command"/);
    expect(issues({ council: { judges: [{ name: 'x', command: 'a', model: 'm' }] } })[0]?.message).toMatch(
      /either "command"/,
    );
    expect(issues({ mode: 'yolo' })[0]?.message).toMatch(/strict .* auto .* dry-run/);
  });
});

describe('budgets, prices and runtimes', () => {
  it('reads a budget, prices and runtime caps', () => {
    const config = configSchema.parse({
      budget: { usd: 5, tokens: 1_000_000 },
      prices: { 'claude-sonnet-4-5': { input: 3, output: 15, cache_read: 0.3 } },
      runtimes: { 'claude-code': { concurrency: 2 } },
      agents: { c: { runtime: 'claude-code', budget: { usd: 0.5 }, idle_timeout: '2m', max_turns: 4 } },
    });
    expect(config.budget).toEqual({ usd: 5, tokens: 1_000_000 });
    expect(config.prices['claude-sonnet-4-5']).toEqual({
      inputPerMTok: 3,
      outputPerMTok: 15,
      cacheReadPerMTok: 0.3,
      cacheWritePerMTok: 3,
    });
    expect(config.runtimes).toEqual({ 'claude-code': { concurrency: 2 } });
    expect(config.agents.c).toMatchObject({ budget: { usd: 0.5 }, idleTimeoutMs: 120_000, maxTurns: 4 });
  });

  it('names a bad budget and a missing url or model', () => {
    expect(issues({ budget: {} })).toEqual([
      {
        path: 'budget',
        message: 'expected a budget with "usd", "tokens" or both, such as {usd: 0.50, tokens: 200000}',
      },
    ]);
    expect(issues({ budget: { usd: -1 } })[0]?.path).toBe('budget.usd');
    expect(issues({ agents: { w: { runtime: 'http' } } })).toEqual([
      {
        path: 'agents.w.url',
        message: 'required for runtime "http": expected the worker URL, such as http://127.0.0.1:8080/run',
      },
    ]);
    expect(issues({ agents: { m: { runtime: 'llm' } } })[0]?.path).toBe('agents.m.model');
    expect(issues({ agents: { t: { runtime: 'tmux' } } })[0]?.path).toBe('agents.t.command');
  });
});

describe('SLOs, alerting and webhooks', () => {
  it('reads SLOs with percentages or fractions, the alerting interval and webhooks with their defaults', () => {
    const c = configSchema.parse({
      slos: [
        { name: 'success', objective: '99%', sli: 'success_rate', window: '1h' },
        { name: 'latency', objective: 0.95, sli: 'latency', threshold: '30s', window: '30d', agent: 'sh' },
        { name: 'four-nines', objective: '99.99%', sli: 'success_rate', window: '4w' },
      ],
      alerting: { evaluate_every: '200ms' },
      webhooks: [
        {
          url: 'https://hooks.example.com/smith',
          events: ['alert.fired', 'task.failed', 'alert.fired'],
          secret_env: 'SMITH_WEBHOOK_SECRET',
        },
        { url: 'http://127.0.0.1:9/hook', timeout: '2s', max_attempts: 3 },
      ],
    });
    expect(c.slos).toStrictEqual([
      { name: 'success', objective: 0.99, sli: 'success_rate', windowMs: 3_600_000 },
      {
        name: 'latency',
        objective: 0.95,
        sli: 'latency',
        thresholdMs: 30_000,
        windowMs: 2_592_000_000,
        agent: 'sh',
      },
      { name: 'four-nines', objective: 0.9999, sli: 'success_rate', windowMs: 2_419_200_000 },
    ]);
    expect(c.alerting).toStrictEqual({ evaluateEveryMs: 200 });
    expect(c.webhooks).toStrictEqual([
      {
        url: 'https://hooks.example.com/smith',
        events: ['alert.fired', 'task.failed'],
        secretEnv: 'SMITH_WEBHOOK_SECRET',
        timeoutMs: 10_000,
        maxAttempts: 5,
      },
      {
        url: 'http://127.0.0.1:9/hook',
        events: [
          'alert.fired',
          'alert.acknowledged',
          'alert.resolved',
          'task.completed',
          'task.failed',
          'task.canceled',
          'task.rejected',
        ],
        timeoutMs: 2000,
        maxAttempts: 3,
      },
    ]);
  });

  it('names each bad SLO field with what it expects', () => {
    const slo = { name: 'ok', objective: '99%', sli: 'success_rate', window: '1h' };
    expect(issues({ slos: [{ ...slo, objective: '100%' }] })).toEqual([
      {
        path: 'slos.0.objective',
        message: expect.stringMatching(/^expected an objective above 0 and below 100%/),
      },
    ]);
    expect(issues({ slos: [{ ...slo, objective: 99 }] })[0]?.message).toMatch(/"99%".*0\.99/);
    expect(issues({ slos: [{ ...slo, window: '1y' }] })).toEqual([
      { path: 'slos.0.window', message: expect.stringMatching(/^expected an SLO window such as "30d"/) },
    ]);
    expect(issues({ slos: [{ ...slo, window: '400d' }] })[0]?.path).toBe('slos.0.window');
    expect(issues({ slos: [{ ...slo, sli: 'latency' }] })).toEqual([
      { path: 'slos.0.threshold', message: expect.stringMatching(/^required for sli "latency"/) },
    ]);
    expect(issues({ slos: [{ ...slo, threshold: '1s' }] })[0]?.message).toMatch(/only for sli "latency"/);
    expect(issues({ slos: [{ ...slo, sli: 'errors' }] })[0]?.message).toMatch(/success_rate .* or latency/);
    expect(issues({ slos: [slo, slo] })).toEqual([
      { path: 'slos.1.name', message: 'expected a name no other SLO has; "ok" is used twice' },
    ]);
    expect(issues({ slos: [{ ...slo, windw: '1h' }] })[0]?.message).toMatch(
      /unknown field "windw" in an SLO; did you mean "window"\?/,
    );
    expect(issues({ alerting: { evaluate_every: 0 } })[0]?.path).toBe('alerting.evaluate_every');
    expect(issues({ webhooks: [{ url: 'ftp://x.example/' }] })[0]).toEqual({
      path: 'webhooks.0.url',
      message: 'expected an http or https URL, such as https://hooks.example.com/smith',
    });
    expect(issues({ webhooks: [{ url: 'https://x.example/', events: ['alert.fire'] }] })[0]?.message).toMatch(
      /^expected an event name: alert\.fired, /,
    );
    expect(issues({ webhooks: [{ url: 'https://x.example/', events: [] }] })[0]?.message).toMatch(
      /at least one event/,
    );
    expect(issues({ webhooks: [{ url: 'https://x.example/', secret_env: 'not a name' }] })[0]?.path).toBe(
      'webhooks.0.secret_env',
    );
  });
});

/** What the sections a file leaves out come to (both tests below leave them all out). */
const UNSET_SECTIONS = {
  prices: {},
  runtimes: {},
  mode: 'auto',
  worktrees: {},
  council: { judges: [] },
  server: {
    host: '127.0.0.1',
    port: 7700,
    rateLimit: 1000,
    rateWindowMs: 60_000,
    bodyLimit: 1_048_576,
    corsOrigins: [],
  },
  slos: [],
  alerting: { evaluateEveryMs: 15_000 },
  webhooks: [],
};

describe('configSchema', () => {
  it('gives the defaults for an empty file', () => {
    const expected = {
      agents: {},
      defaults: { retries: 0, priority: 5 },
      engine: { concurrency: 16 },
      store: { synchronous: 'FULL' },
      ...UNSET_SECTIONS,
    };
    expect(configSchema.parse(null)).toStrictEqual(expected);
    expect(configSchema.parse(undefined)).toStrictEqual(expected);
    expect(configSchema.parse({})).toStrictEqual(expected);
    expect(defaultConfig()).toStrictEqual(expected);
  });

  it('treats sections left empty as absent', () => {
    expect(configSchema.parse({ agents: null, defaults: null, engine: null, store: null })).toStrictEqual(
      defaultConfig(),
    );
  });

  it('converts agents, defaults and sections', () => {
    const config = configSchema.parse({
      agents: {
        sh: {
          runtime: 'process',
          command: ['sh', '-c', '{prompt}'],
          capabilities: ['shell', 'shell', 'git'],
          concurrency: 4,
          env: { FOO: 'bar', N: 1, B: true },
          timeout: '5m',
          kill_grace: '2s',
          output_limit: '512KiB',
        },
        minimal: { command: ['true'] },
        fn: { runtime: 'function' },
      },
      defaults: { timeout: '30m', retries: 2, priority: 3 },
      engine: { concurrency: 8 },
      store: { synchronous: 'normal' },
    });
    expect(config).toStrictEqual({
      agents: {
        sh: {
          name: 'sh',
          runtime: 'process',
          command: ['sh', '-c', '{prompt}'],
          capabilities: ['shell', 'git'],
          concurrency: 4,
          env: { FOO: 'bar', N: '1', B: 'true' },
          timeoutMs: 300_000,
          killGraceMs: 2000,
          outputLimitBytes: 524_288,
        },
        minimal: {
          name: 'minimal',
          runtime: 'process',
          command: ['true'],
          capabilities: [],
          concurrency: 1,
          killGraceMs: 5000,
          outputLimitBytes: 1_048_576,
        },
        fn: {
          name: 'fn',
          runtime: 'function',
          capabilities: [],
          concurrency: 1,
          killGraceMs: 5000,
          outputLimitBytes: 1_048_576,
        },
      },
      defaults: { timeoutMs: 1_800_000, retries: 2, priority: 3 },
      engine: { concurrency: 8 },
      store: { synchronous: 'NORMAL' },
      ...UNSET_SECTIONS,
    });
  });

  it('reads the server section and names a bad field', () => {
    const c = configSchema.parse({
      server: {
        host: '0.0.0.0',
        port: 8080,
        rate_limit: 50,
        rate_window: '10s',
        body_limit: '64KiB',
        cors_origins: ['https://a.example'],
      },
    });
    expect(c.server).toStrictEqual({
      host: '0.0.0.0',
      port: 8080,
      rateLimit: 50,
      rateWindowMs: 10_000,
      bodyLimit: 65_536,
      corsOrigins: ['https://a.example'],
    });
    const bad = configSchema.safeParse({ server: { port: 70000 } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toEqual(['server', 'port']);
  });

  it('reports every problem, not just the first', () => {
    const found = issues({
      agents: { sh: { command: 'sh -c x', concurrency: 'four', retry: 1 }, 'bad name': { command: ['x'] } },
      defaults: { priority: 11, timeout: 0 },
      engine: { concurrency: 0 },
      store: { synchronous: 'OFF' },
      extra: true,
    });
    expect(found).toEqual(
      expect.arrayContaining([
        {
          path: 'agents.sh.command',
          message: 'expected the argv as a list, such as ["sh", "-c", "{prompt}"]',
        },
        { path: 'agents.sh.concurrency', message: 'expected a positive integer' },
        { path: 'agents.sh', message: expect.stringContaining('unknown field "retry" in an agent') },
        { path: 'agents.bad name', message: expect.stringContaining('expected an agent name') },
        { path: 'defaults.priority', message: 'expected an integer from 1 (highest) to 10 (lowest)' },
        { path: 'defaults.timeout', message: expect.stringContaining('greater than 0') },
        { path: 'engine.concurrency', message: 'expected a positive integer' },
        { path: 'store.synchronous', message: 'expected FULL or NORMAL' },
        { path: '', message: expect.stringContaining('unknown field "extra" in smith.yaml') },
      ]),
    );
    expect(found).toHaveLength(9);
  });

  it('requires a command for process agents', () => {
    const r = agentSpecSchema.safeParse({ capabilities: ['x'] });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['command']);
    expect(r.error?.issues[0]?.message).toMatch(/required for runtime "process"/);
  });

  it('accepts numbers in argv as strings', () => {
    expect(agentSpecSchema.parse({ command: ['sleep', 5] }).command).toEqual(['sleep', '5']);
  });
});

describe('didYouMean', () => {
  const taskFields = [
    'agent',
    'capabilities',
    'prompt',
    'needs',
    'timeout',
    'retries',
    'priority',
    'workdir',
    'env',
  ];
  it.each([
    ['need', 'needs'],
    ['retry', 'retries'],
    ['depends_on', 'needs'],
    ['cwd', 'workdir'],
    ['promt', 'prompt'],
    ['capabilites', 'capabilities'],
    ['Timeout', 'timeout'],
  ])('%s -> %s', (word, expected) => {
    expect(didYouMean(word, taskFields)).toBe(expected);
  });

  it('suggests nothing for unrelated or very short words', () => {
    expect(didYouMean('color', taskFields)).toBeUndefined();
    expect(didYouMean('b', ['a', 'c'])).toBeUndefined();
    expect(didYouMean('agent', taskFields)).toBeUndefined();
  });

  it('matches camelCase to snake_case', () => {
    expect(didYouMean('killGrace', ['kill_grace', 'output_limit'])).toBe('kill_grace');
  });

  it('words unknown fields with the allowed ones', () => {
    expect(unknownFieldMessage('need', ['needs', 'prompt'], 'a task')).toBe(
      'unknown field "need" in a task; did you mean "needs"? (fields: needs, prompt)',
    );
  });
});
