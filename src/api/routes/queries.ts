/**
 * `/api/v1/queries` (admin): the database explorer. Run one read-only SQL statement over the
 * home's database, keep saved queries (create, list, read, change, delete, run), and list the
 * tables and columns. Every run, save and delete is an audit record. Rules and limits:
 * docs/queries.md.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isSmithError } from '../../core/errors.js';
import { ID_PREFIX, ulid } from '../../core/ids.js';
import type { Json } from '../../core/types.js';
import { checkReadOnlySql } from '../../store/sqlite/read-only-query.js';
import type { QueryResult, SavedQueryRecord } from '../../store/store.js';
import { actorOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError } from '../errors.js';
import { errorBody } from '../schemas.js';

/** Rows a run returns when it names no `max_rows`. */
export const DEFAULT_MAX_ROWS = 1000;
/** The most rows a run may ask for. */
export const MAX_ROWS_LIMIT = 10_000;
/** A run's time limit when it names no `timeout_ms`, in ms. */
export const DEFAULT_TIMEOUT_MS = 5000;
/** The longest time limit a run may ask for, in ms. */
export const MAX_TIMEOUT_MS = 60_000;
/** The longest SQL text accepted, in characters. */
const MAX_SQL_CHARS = 100_000;

/** Prefix of saved query ids (`q_` and a ULID). */
const QUERY_PREFIX = ID_PREFIX.query;
const ID_SHAPE = /^q_[0-9A-HJKMNP-TV-Z]{26}$/;
/** Names that are routes of their own under /api/v1/queries. */
const RESERVED_NAMES = new Set(['run', 'schema']);

const limits = {
  max_rows: z
    .number()
    .int()
    .min(1)
    .max(MAX_ROWS_LIMIT)
    .optional()
    .describe(`rows at most (default ${DEFAULT_MAX_ROWS}); more set "truncated"`),
  timeout_ms: z
    .number()
    .int()
    .min(1)
    .max(MAX_TIMEOUT_MS)
    .optional()
    .describe(`time limit in ms (default ${DEFAULT_TIMEOUT_MS}); past it the query is stopped`),
};

const sqlText = z
  .string()
  .min(1)
  .max(MAX_SQL_CHARS)
  .describe('one read-only statement: SELECT, WITH, VALUES, EXPLAIN or a reading PRAGMA');

const queryName = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9 _.-]*$/, {
    error: 'a name starts with a letter or digit and holds letters, digits, spaces, "_", "." and "-"',
  })
  .refine((n) => !RESERVED_NAMES.has(n.toLowerCase()) && !ID_SHAPE.test(n), {
    error: `"run", "schema" and names shaped like a saved query id (${QUERY_PREFIX}…) are taken`,
  });

const runBody = z.strictObject({ sql: sqlText, ...limits });
const runSavedBody = z.strictObject(limits).nullish();
const createBody = z.strictObject({
  name: queryName,
  sql: sqlText,
  description: z.string().max(10_000).optional(),
});
const updateBody = z
  .strictObject({
    name: queryName.optional(),
    sql: sqlText.optional(),
    description: z.string().max(10_000).optional(),
  })
  .refine((b) => b.name !== undefined || b.sql !== undefined || b.description !== undefined, {
    error: 'give at least one of "name", "sql", "description"',
  });
const idParams = z.strictObject({ id: z.string().min(1).max(200).describe('the id or the name') });

const resultSchema = z.object({
  columns: z.array(z.string()),
  rows: z
    .array(z.array(z.unknown()))
    .describe(
      'values in column order: numbers, strings, null; integers beyond 2^53-1 as strings, blobs as base64',
    ),
  truncated: z.boolean().describe('rows were left out (the row limit, or 16 MiB of answer)'),
  elapsed_ms: z.number().describe('time the database spent on the query, in ms'),
});

const savedView = z.object({
  id: z.string(),
  name: z.string(),
  sql: z.string(),
  description: z.string(),
  created_by: z.string(),
  created_at: z.string().describe('ISO 8601 time'),
  updated_at: z.string().describe('ISO 8601 time'),
});

/** A saved query as the API shows it. */
export function savedQueryView(q: SavedQueryRecord): z.infer<typeof savedView> {
  return {
    id: q.id,
    name: q.name,
    sql: q.sql,
    description: q.description,
    created_by: q.createdBy,
    created_at: new Date(q.createdAt).toISOString(),
    updated_at: new Date(q.updatedAt).toISOString(),
  };
}

/** Register the query routes. */
export function queryRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  async function mustGet(idOrName: string): Promise<SavedQueryRecord> {
    const q = await ctx.store.getSavedQuery(idOrName);
    if (!q)
      throw new ApiError(
        404,
        'QUERY_NOT_FOUND',
        `no saved query has the id or name "${idOrName}"; list them with GET /api/v1/queries`,
      );
    return q;
  }

  async function ensureNameFree(name: string, self?: string): Promise<void> {
    const other = await ctx.store.getSavedQuery(name);
    if (other && other.id !== self)
      throw new ApiError(
        409,
        'QUERY_NAME_TAKEN',
        `a saved query named "${name}" exists already (${other.id}); choose another name or change that one with PUT /api/v1/queries/${other.id}`,
      );
  }

  /** Check SQL before it is saved: the rules a run applies. */
  function checkSql(sql: string): void {
    checkReadOnlySql(sql);
  }

  async function save(q: SavedQueryRecord, actor: string, created: boolean): Promise<void> {
    try {
      await ctx.store.commit([
        { op: 'putSavedQuery', query: q },
        {
          op: 'audit',
          actor,
          action: 'query.saved',
          subject: `query:${q.id}`,
          data: { name: q.name, sql: q.sql, description: q.description, created },
        },
      ]);
    } catch (err) {
      // two saves of one name at once: the store's unique name refuses the second
      await ensureNameFree(q.name, q.id);
      throw err;
    }
  }

  /** Run and audit (`query.run`) whatever the outcome. */
  async function runAudited(
    sql: string,
    opts: { max_rows?: number | undefined; timeout_ms?: number | undefined },
    actor: string,
    saved: SavedQueryRecord | undefined,
  ): Promise<z.infer<typeof resultSchema>> {
    const maxRows = opts.max_rows ?? DEFAULT_MAX_ROWS;
    const timeoutMs = opts.timeout_ms ?? DEFAULT_TIMEOUT_MS;
    let result: QueryResult | undefined;
    let failure: unknown;
    try {
      result = await ctx.store.readOnlyQuery(sql, { maxRows, timeoutMs });
    } catch (err) {
      failure = err;
    }
    const data: Record<string, Json> = {
      sql,
      saved: saved?.id ?? null,
      max_rows: maxRows,
      timeout_ms: timeoutMs,
      outcome: result ? 'ok' : isSmithError(failure) ? failure.code : 'error',
    };
    if (result) {
      data.rows = result.rows.length;
      data.truncated = result.truncated;
      data.elapsed_ms = result.elapsedMs;
    } else if (isSmithError(failure)) {
      data.message = failure.message;
    }
    await ctx.store.commit([
      { op: 'audit', actor, action: 'query.run', subject: `query:${saved?.id ?? 'adhoc'}`, data },
    ]);
    if (!result) throw failure;
    return {
      columns: result.columns,
      rows: result.rows,
      truncated: result.truncated,
      elapsed_ms: result.elapsedMs,
    };
  }

  const runErrors = { 400: errorBody, 403: errorBody, 404: errorBody, 422: errorBody, 503: errorBody };

  r.post(
    '/api/v1/queries/run',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['queries'],
        summary: 'Run one read-only SQL statement over the database (audited)',
        body: runBody,
        response: { 200: resultSchema, ...runErrors },
      },
    },
    async (req) => runAudited(req.body.sql, req.body, actorOf(req), undefined),
  );

  r.get(
    '/api/v1/queries/schema',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['queries'],
        summary: 'Tables and views of the database with their columns',
        response: {
          200: z.object({
            tables: z.array(
              z.object({
                table: z.string(),
                columns: z.array(z.object({ name: z.string(), type: z.string() })),
              }),
            ),
          }),
        },
      },
    },
    async () => ({ tables: await ctx.store.describeSchema() }),
  );

  r.get(
    '/api/v1/queries',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['queries'],
        summary: 'Saved queries, by name',
        response: { 200: z.object({ queries: z.array(savedView) }) },
      },
    },
    async () => ({ queries: (await ctx.store.listSavedQueries()).map(savedQueryView) }),
  );

  r.post(
    '/api/v1/queries',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['queries'],
        summary: 'Save a query (its SQL is checked as a run would check it)',
        body: createBody,
        response: { 201: savedView, 400: errorBody, 409: errorBody },
      },
    },
    async (req, reply) => {
      const b = req.body;
      checkSql(b.sql);
      await ensureNameFree(b.name);
      const now = Date.now();
      const actor = actorOf(req);
      const q: SavedQueryRecord = {
        id: QUERY_PREFIX + ulid(now),
        name: b.name,
        sql: b.sql,
        description: b.description ?? '',
        createdBy: actor,
        createdAt: now,
        updatedAt: now,
      };
      await save(q, actor, true);
      return reply.code(201).send(savedQueryView(q));
    },
  );

  r.get(
    '/api/v1/queries/:id',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['queries'],
        summary: 'A saved query, by id or name',
        params: idParams,
        response: { 200: savedView, 404: errorBody },
      },
    },
    async (req) => savedQueryView(await mustGet(req.params.id)),
  );

  r.put(
    '/api/v1/queries/:id',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['queries'],
        summary: 'Change a saved query (fields left out keep their values)',
        params: idParams,
        body: updateBody,
        response: { 200: savedView, 400: errorBody, 404: errorBody, 409: errorBody },
      },
    },
    async (req) => {
      const before = await mustGet(req.params.id);
      const b = req.body;
      if (b.sql !== undefined) checkSql(b.sql);
      if (b.name !== undefined) await ensureNameFree(b.name, before.id);
      const q: SavedQueryRecord = {
        ...before,
        ...(b.name !== undefined ? { name: b.name } : {}),
        ...(b.sql !== undefined ? { sql: b.sql } : {}),
        ...(b.description !== undefined ? { description: b.description } : {}),
        updatedAt: Math.max(Date.now(), before.updatedAt),
      };
      await save(q, actorOf(req), false);
      return savedQueryView(q);
    },
  );

  r.delete(
    '/api/v1/queries/:id',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['queries'],
        summary: 'Delete a saved query; answers with what was deleted',
        params: idParams,
        response: { 200: savedView, 404: errorBody },
      },
    },
    async (req) => {
      const q = await mustGet(req.params.id);
      await ctx.store.commit([
        { op: 'deleteSavedQuery', id: q.id },
        {
          op: 'audit',
          actor: actorOf(req),
          action: 'query.deleted',
          subject: `query:${q.id}`,
          data: { name: q.name, sql: q.sql },
        },
      ]);
      return savedQueryView(q);
    },
  );

  r.post(
    '/api/v1/queries/:id/run',
    {
      config: { role: 'admin' },
      schema: {
        tags: ['queries'],
        summary: 'Run a saved query (audited)',
        params: idParams,
        body: runSavedBody,
        response: { 200: resultSchema, ...runErrors },
      },
    },
    async (req) => {
      const q = await mustGet(req.params.id);
      return runAudited(q.sql, req.body ?? {}, actorOf(req), q);
    },
  );
}
