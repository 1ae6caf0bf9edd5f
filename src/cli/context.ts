/**
 * What every command shares: global options, the home, the config, and mapping errors to exit codes
 * (only `cli/` knows exit codes).
 */
import { isSmithError, type SmithError } from '../core/errors.js';
import { defaultConfig, type SmithConfig } from '../core/schema/index.js';
import { resolveHome } from '../engine/home.js';
import { loadConfig } from '../engine/loader/index.js';

/** Global options (before or after the verb). */
export interface GlobalOptions {
  home?: string;
  config?: string;
  json?: boolean;
}

/** Exit codes. 0 ok; 1 a task or workflow failed; 2 bad input; 3 busy or locked; 4 store trouble; 130 interrupted. */
export const EXIT = { ok: 0, failed: 1, usage: 2, busy: 3, store: 4, interrupted: 130 } as const;

/** The exit code for an error. */
export function exitCodeFor(err: unknown): number {
  if (!isSmithError(err)) return EXIT.failed;
  switch ((err as SmithError).code) {
    case 'CONFIG_INVALID':
    case 'CONFIG_NOT_FOUND':
    case 'WORKFLOW_INVALID':
    case 'INVALID_ARGUMENT':
    case 'QUERY_REJECTED':
    case 'TASK_NOT_FOUND':
    case 'WORKFLOW_NOT_FOUND':
    case 'AGENT_NOT_FOUND':
    case 'KEY_NOT_FOUND':
    case 'ALERT_NOT_FOUND':
    case 'NO_CAPABLE_AGENT':
    case 'RUNTIME_NOT_FOUND':
    case 'INVALID_TRANSITION':
      return EXIT.usage;
    case 'LEASE_HELD':
    case 'STORE_LOCKED':
      return EXIT.busy;
    case 'STORE_NOT_WRITABLE':
    case 'STORE_FAILED':
      return EXIT.store;
    default:
      return EXIT.failed;
  }
}

/** Print an error the way every command does: `smith: <message>` (JSON with --json). */
export function printError(err: unknown, json: boolean): void {
  const code = isSmithError(err) ? err.code : 'ERROR';
  const message = err instanceof Error ? err.message : String(err);
  if (json) process.stdout.write(JSON.stringify({ error: { code, message } }) + '\n');
  process.stderr.write(`smith: ${message}\n`);
  if (!isSmithError(err) && err instanceof Error && process.env.SMITH_DEBUG)
    process.stderr.write(`${err.stack}\n`);
}

/** The resolved home and config of a command. */
export interface Context {
  cwd: string;
  home: string;
  config: SmithConfig;
  configFile: string | null;
  json: boolean;
}

/** Resolve home and config from global options. @throws ConfigError */
export async function context(opts: GlobalOptions): Promise<Context> {
  const cwd = process.cwd();
  const { config, file } = await loadConfig({ cwd, file: opts.config });
  return { cwd, home: resolveHome(cwd, opts.home), config, configFile: file, json: Boolean(opts.json) };
}

/**
 * The context of a read-only command: the home only. smith.yaml is not read, so a broken config
 * never stops a person from looking at what was recorded.
 */
export function readOnlyContext(opts: GlobalOptions): Context {
  const cwd = process.cwd();
  return {
    cwd,
    home: resolveHome(cwd, opts.home),
    config: defaultConfig(),
    configFile: null,
    json: Boolean(opts.json),
  };
}
