/**
 * Shared input handling of the council's files (working specs, policies, waivers): YAML text with
 * positions, zod validation, and one {@link ConfigError} listing every problem as
 * `file:line:col: path: expected …, found …`. Not part of the public API.
 *
 * Reuses the loaders' helpers (`src/core/schema/yaml-source.ts`), which depend on
 * `core/` only.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { ConfigError, NonRetryableError } from '../core/errors.js';
import { smithErrorMap } from '../core/schema/index.js';
import { invalidFileError, issuesToProblems, parseYaml, problemLines } from '../core/schema/yaml-source.js';
import type { ProblemPlace } from '../core/schema/yaml-source.js';

/** Where input came from, for messages. */
export interface InputPlace extends ProblemPlace {
  /** The absolute file, for error context. */
  absFile?: string;
}

/**
 * Validates data against a schema.
 *
 * @param schema - the zod schema
 * @param data - the input
 * @param place - where it came from
 * @param kind - what it is (`working spec`, `policy file`)
 * @returns the schema's output
 * @throws ConfigError (code `CONFIG_INVALID`, context `{ file, problems }`) listing every problem
 */
export function validate<S extends z.ZodType>(
  schema: S,
  data: unknown,
  place: InputPlace,
  kind: string,
): z.output<S> {
  const r = schema.safeParse(data, { error: smithErrorMap });
  if (r.success) return r.data;
  const problems = problemLines(place, issuesToProblems(r.error.issues, data));
  throw invalidFileError(place.display ?? 'input', kind, place.absFile, problems);
}

/**
 * Parses YAML text and validates it.
 *
 * @param schema - the zod schema
 * @param text - the YAML
 * @param file - the file as the user named it
 * @param kind - what it is (`working spec`)
 * @returns the schema's output
 * @throws ConfigError for YAML syntax errors and schema problems, each with its line and column
 */
export function validateText<S extends z.ZodType>(
  schema: S,
  text: string,
  file: string,
  kind: string,
): z.output<S> {
  const absFile = path.resolve(file);
  const src = parseYaml(text, file, kind, absFile);
  return validate(schema, src.data, { display: file, locate: src.locate, absFile }, kind);
}

/**
 * Reads a file's text.
 *
 * @param file - the path as the user named it
 * @param kind - what it is, for messages
 * @returns the text
 * @throws NonRetryableError with code `CONFIG_NOT_FOUND` (context `{ file }`) when it does not exist
 * @throws ConfigError when it cannot be read
 */
export async function readInputFile(file: string, kind: string): Promise<string> {
  const abs = path.resolve(file);
  try {
    return await readFile(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new NonRetryableError(
        'CONFIG_NOT_FOUND',
        `${kind} ${file} not found (looked at ${abs}); check the path`,
        {
          cause: err,
          context: { file: abs },
        },
      );
    }
    throw new ConfigError(`cannot read ${kind} ${file} (${abs}): ${(err as Error).message}`, {
      cause: err,
      context: { file: abs },
    });
  }
}
