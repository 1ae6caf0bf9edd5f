/**
 * Structured logs (pino) with secrets redacted: API keys in headers and bodies, tokens, passwords
 * and environment values never reach a log line.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';

/** Paths pino replaces with `[redacted]` (pino's `redact` syntax). */
export const REDACT_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'req.headers["sec-websocket-protocol"]',
  'headers["sec-websocket-protocol"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'token',
  '*.token',
  'apiKey',
  '*.apiKey',
  'secret',
  '*.secret',
  'password',
  '*.password',
  'env',
  '*.env',
  'pepper',
];

/**
 * A logger that writes JSON lines to `destination` (default stderr).
 * @param level - pino level (default `SMITH_LOG_LEVEL`, else `info`)
 */
export function createLogger(
  level: string = process.env.SMITH_LOG_LEVEL ?? 'info',
  destination: NodeJS.WritableStream = process.stderr,
): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'smith' },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
  };
  return pino(options, destination as pino.DestinationStream);
}
