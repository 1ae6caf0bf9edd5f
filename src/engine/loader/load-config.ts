/**
 * Reads `smith.yaml`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { configSchema, defaultConfig, smithErrorMap } from '../../core/schema/index.js';
import type { SmithConfig } from '../../core/schema/index.js';
import { ConfigError, NonRetryableError } from '../../core/errors.js';
import {
  invalidFileError,
  issuesToProblems,
  parseYaml,
  problemLines,
} from '../../core/schema/yaml-source.js';

/** The config file looked for in the working directory when no `--config` is given. */
export const CONFIG_FILE_NAME = 'smith.yaml';

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** The directory to look for `smith.yaml` in and to resolve `file` against. */
  cwd: string;
  /** An explicit config file (`--config`); it must exist. */
  file?: string;
}

/**
 * Validates the text of a config file.
 *
 * @param text - YAML; empty text (or only comments) gives the defaults
 * @param file - the file as the user should see it in messages (its absolute path is
 *   `path.resolve(file)`)
 * @returns the config with defaults applied
 * @throws ConfigError (code `CONFIG_INVALID`, context `{ file, problems }`) listing every YAML syntax
 *   error, or else every schema problem, one per line as `file:line:col: path: expected …, found …`
 */
export function parseConfigText(text: string, file: string): SmithConfig {
  return validateConfigText(text, file, path.resolve(file));
}

function validateConfigText(text: string, display: string, abs: string): SmithConfig {
  const src = parseYaml(text, display, 'config file', abs);
  const r = configSchema.safeParse(src.data, { error: smithErrorMap });
  if (r.success) return r.data;
  const place = { display, locate: src.locate };
  const problems = problemLines(place, issuesToProblems(r.error.issues, src.data));
  throw invalidFileError(display, 'config file', abs, problems);
}

/**
 * Loads the config: the explicit `file` if given, else `smith.yaml` in `cwd` if it exists, else the
 * defaults (see `defaultConfig`).
 *
 * @param opts - `cwd` and the optional explicit `file`
 * @returns the config, and the absolute path it came from (`null` when the defaults were used)
 * @throws NonRetryableError with code `CONFIG_NOT_FOUND` (context `{ file }`) when an explicit
 *   `file` does not exist
 * @throws ConfigError (code `CONFIG_INVALID`) when the file cannot be read or does not validate;
 *   see {@link parseConfigText}
 */
export async function loadConfig(
  opts: LoadConfigOptions,
): Promise<{ config: SmithConfig; file: string | null }> {
  const explicit = opts.file !== undefined;
  const abs = path.resolve(opts.cwd, opts.file ?? CONFIG_FILE_NAME);
  const display = opts.file ?? CONFIG_FILE_NAME;
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return { config: defaultConfig(), file: null };
    if (code === 'ENOENT') {
      throw new NonRetryableError(
        'CONFIG_NOT_FOUND',
        `config file ${display} not found (looked at ${abs}); check the --config path, or run "smith init" to write a starter ${CONFIG_FILE_NAME}`,
        { cause: err, context: { file: abs } },
      );
    }
    if (code === 'EISDIR') {
      throw new ConfigError(`config file ${display} is a directory (${abs}); give the path of a YAML file`, {
        cause: err,
        context: { file: abs },
      });
    }
    throw new ConfigError(`cannot read config file ${display} (${abs}): ${(err as Error).message}`, {
      cause: err,
      context: { file: abs },
    });
  }
  return { config: validateConfigText(text, display, abs), file: abs };
}
