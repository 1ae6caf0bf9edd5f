import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, isSmithError } from '../../core/errors.js';
import { defaultConfig } from '../../core/schema/index.js';
import { loadConfig, parseConfigText } from './load-config.js';
import { parseWorkflowText } from './load-workflow.js';
import { STARTER_CONFIG } from './starter-config.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'smith-config-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

describe('loadConfig', () => {
  it('returns the defaults when there is no smith.yaml and no --config', async () => {
    expect(await loadConfig({ cwd: dir })).toStrictEqual({ config: defaultConfig(), file: null });
  });

  it('fails with CONFIG_NOT_FOUND naming the path when --config does not exist', async () => {
    const err = await failure(loadConfig({ cwd: dir, file: 'nope.yaml' }));
    expect(isSmithError(err, 'CONFIG_NOT_FOUND')).toBe(true);
    expect(err.message).toContain('config file nope.yaml not found');
    expect(err.message).toContain(path.join(dir, 'nope.yaml'));
    expect((err as ConfigError).context['file']).toBe(path.join(dir, 'nope.yaml'));
  });

  it('reads smith.yaml from cwd', async () => {
    await writeFile(
      path.join(dir, 'smith.yaml'),
      'agents:\n  sh:\n    command: [sh, -c, "{prompt}"]\n    capabilities: [shell]\nengine:\n  concurrency: 2\n',
    );
    const { config, file } = await loadConfig({ cwd: dir });
    expect(file).toBe(path.join(dir, 'smith.yaml'));
    expect(config.engine.concurrency).toBe(2);
    expect(config.agents['sh']).toStrictEqual({
      name: 'sh',
      runtime: 'process',
      command: ['sh', '-c', '{prompt}'],
      capabilities: ['shell'],
      concurrency: 1,
      killGraceMs: 5000,
      outputLimitBytes: 1_048_576,
    });
  });

  it('reads an explicit --config relative to cwd', async () => {
    await mkdir(path.join(dir, 'conf'));
    await writeFile(path.join(dir, 'conf', 'team.yaml'), 'defaults: {retries: 3}\n');
    const { config, file } = await loadConfig({ cwd: dir, file: 'conf/team.yaml' });
    expect(file).toBe(path.join(dir, 'conf', 'team.yaml'));
    expect(config.defaults).toStrictEqual({ retries: 3, priority: 5 });
  });

  it('treats an empty or comment-only file as the defaults', async () => {
    await writeFile(path.join(dir, 'smith.yaml'), '# nothing yet\n');
    expect((await loadConfig({ cwd: dir })).config).toStrictEqual(defaultConfig());
  });

  it('names file, line:column, field path, found and expected for each problem', async () => {
    const text = [
      'agents:', //                               1
      '  sh:', //                                 2
      '    command: ["sh", "-c", "{prompt}"]', // 3
      '    concurrency: four', //                 4
      '    capabilites: [shell]', //              5
      'store:', //                                6
      '  synchronous: OFF', //                    7
    ].join('\n');
    await writeFile(path.join(dir, 'smith.yaml'), text);
    const err = await failure(loadConfig({ cwd: dir }));
    expect(err).toBeInstanceOf(ConfigError);
    expect(isSmithError(err, 'CONFIG_INVALID')).toBe(true);
    const lines = err.message.split('\n');
    expect(lines[0]).toBe('smith.yaml is not a valid config file (3 problems):');
    expect(lines).toContain(
      '  smith.yaml:4:18: agents.sh.concurrency: expected a positive integer, found "four"',
    );
    expect(lines).toContain(
      '  smith.yaml:5:5: agents.sh.capabilites: unknown field "capabilites" in an agent; did you mean "capabilities"? ' +
        '(fields: runtime, command, capabilities, concurrency, env, timeout, kill_grace, output_limit, budget, ' +
        'model, args, allowed_tools, disallowed_tools, permission_mode, max_turns, max_budget_usd, mcp_config, ' +
        'append_system_prompt, system_prompt, idle_timeout, isolate_home, url, base_url, headers, provider, ' +
        'api_key_env, output_schema, env_files, setup)',
    );
    expect(lines).toContain('  smith.yaml:7:16: store.synchronous: expected FULL or NORMAL, found "OFF"');
    expect((err as ConfigError).context['file']).toBe(path.join(dir, 'smith.yaml'));
    expect((err as ConfigError).context['problems']).toHaveLength(3);
  });

  it('names the file and line of a YAML syntax error', async () => {
    await writeFile(path.join(dir, 'smith.yaml'), 'agents:\n  sh:\n    command: [sh, -c\nengine: {}\n');
    const err = await failure(loadConfig({ cwd: dir }));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/^smith\.yaml is not a valid config file/);
    expect(err.message).toMatch(/smith\.yaml:\d+:\d+: YAML syntax error: /);
    expect(err.message).toContain('check the indentation');
  });

  it('reports a duplicate key as a YAML error at its line', async () => {
    await writeFile(path.join(dir, 'smith.yaml'), 'engine: {}\nengine: {}\n');
    const err = await failure(loadConfig({ cwd: dir }));
    expect(err.message).toMatch(/smith\.yaml:2:1: YAML syntax error: Map keys must be unique/);
  });

  it('says when --config is a directory', async () => {
    const err = await failure(loadConfig({ cwd: dir, file: '.' }));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toContain('is a directory');
  });
});

describe('STARTER_CONFIG', () => {
  it('validates and defines a shell agent', async () => {
    await writeFile(path.join(dir, 'smith.yaml'), STARTER_CONFIG);
    const { config } = await loadConfig({ cwd: dir });
    expect(config.agents['sh']).toStrictEqual({
      name: 'sh',
      runtime: 'process',
      command: ['sh', '-c', '{prompt}'],
      capabilities: ['shell'],
      concurrency: 4,
      killGraceMs: 5000,
      outputLimitBytes: 1_048_576,
    });
    expect(Object.keys(config.agents)).toEqual(['sh', 'claude']);
    expect(config.defaults).toStrictEqual({ retries: 0, priority: 5 });
    expect(config.engine).toStrictEqual({ concurrency: 16 });
    expect(config.store).toStrictEqual({ synchronous: 'FULL' });
  });

  it('explains each field with a comment', () => {
    const uncommented = STARTER_CONFIG.split('\n').filter(
      (l) => l.trim() !== '' && !l.trim().startsWith('#'),
    );
    expect(uncommented.length).toBeGreaterThan(10);
    for (const field of ['runtime', 'command', 'capabilities', 'concurrency', 'kill_grace', 'output_limit']) {
      expect(STARTER_CONFIG).toMatch(new RegExp(`#[^\\n]*\\n(\\s*#[^\\n]*\\n)*\\s*${field}:`));
    }
  });

  it('routes a shell workflow', () => {
    const config = parseConfigText(STARTER_CONFIG, 'smith.yaml');
    const wf = parseWorkflowText(
      'tasks:\n  hi:\n    capabilities: [shell]\n    prompt: echo hi\n',
      'hi.yaml',
      config,
    );
    expect(wf.tasks[0]?.capabilities).toEqual(['shell']);
  });
});
