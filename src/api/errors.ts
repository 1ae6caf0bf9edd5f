/**
 * The one table that maps error codes to HTTP statuses, and the error handler that answers every
 * failure with a JSON body `{code, message}` (plus `details` for validation problems). Only `api/`
 * knows HTTP (CONVENTIONS.md, "Errors").
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { isSmithError, type ErrorCode } from '../core/errors.js';

/** An error the API raises itself (auth, roles, routing), with its HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** HTTP status of each SmithError code; codes not listed answer 500. */
export const STATUS_BY_CODE: Readonly<Partial<Record<ErrorCode, number>>> = {
  CONFIG_INVALID: 400,
  WORKFLOW_INVALID: 422,
  INVALID_ARGUMENT: 400,
  QUERY_REJECTED: 400,
  // 422, not 408: clients and proxies may resend a request answered 408, and a query that ran past
  // its limit would only run past it again (docs/queries.md)
  QUERY_TIMEOUT: 422,
  TASK_NOT_FOUND: 404,
  WORKFLOW_NOT_FOUND: 404,
  AGENT_NOT_FOUND: 404,
  KEY_NOT_FOUND: 404,
  ALERT_NOT_FOUND: 404,
  CONFIG_NOT_FOUND: 404,
  NO_CAPABLE_AGENT: 422,
  RUNTIME_NOT_FOUND: 422,
  INVALID_TRANSITION: 409,
  STALE_EPOCH: 409,
  LEASE_HELD: 409,
  STORE_LOCKED: 503,
  STORE_NOT_WRITABLE: 503,
  STORE_FAILED: 503,
  SHUTTING_DOWN: 503,
};

/** The JSON body of every error. */
export interface ErrorBody {
  code: string;
  message: string;
  details?: unknown;
}

/** Fastify's own codes (body limits, content types, routing) as ours. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_BODY',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_BODY',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_BODY',
  FST_ERR_VALIDATION: 'INVALID_REQUEST',
};

/**
 * Turn any error into a status and a body. Messages of unexpected errors are not shown (they may
 * carry internals); they are logged instead.
 */
export function errorResponse(err: unknown): {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
} {
  if (err instanceof ApiError)
    return { status: err.status, body: { code: err.code, message: err.message }, headers: err.headers };
  if (hasZodFastifySchemaValidationErrors(err)) {
    const issues = err.validation.map((v) => ({
      path: `${err.validationContext ?? 'body'}${v.instancePath.replace(/\//g, '.')}`.replace(/\.$/, ''),
      message: v.message ?? 'invalid',
    }));
    return {
      status: 400,
      body: {
        code: 'INVALID_REQUEST',
        message: issues.map((i) => `${i.path}: ${i.message}`).join('; '),
        details: issues,
      },
      headers: {},
    };
  }
  if (isSmithError(err)) {
    return {
      status: STATUS_BY_CODE[err.code] ?? 500,
      body: { code: err.code, message: err.message },
      headers: {},
    };
  }
  const fe = err as Partial<FastifyError>;
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code =
      (fe.code && FASTIFY_CODES[fe.code]) ?? (fe.statusCode === 429 ? 'RATE_LIMITED' : 'BAD_REQUEST');
    return { status: fe.statusCode, body: { code, message: fe.message ?? 'bad request' }, headers: {} };
  }
  return {
    status: 500,
    body: { code: 'INTERNAL', message: 'internal error; the server logged it (look for the request id)' },
    headers: {},
  };
}

/** Fastify error handler: JSON `{code, message}` for everything. */
export function errorHandler(err: unknown, req: FastifyRequest, reply: FastifyReply): void {
  const r = errorResponse(err);
  if (r.status >= 500) req.log.error({ err }, 'request failed');
  void reply.code(r.status).headers(r.headers).send(r.body);
}
