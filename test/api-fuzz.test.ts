/**
 * Fuzzing every route of the API from its own schema (the OpenAPI document the server publishes):
 * requests that fit the schema, requests that almost fit (a wrong type, an unknown field, a missing
 * field) and garbage. No answer may be a 5xx, every error is JSON `{code, message}`, and the server
 * keeps serving. FUZZ_RUNS sets the requests per route (default 200; `npm run fuzz` sends 10,000).
 */
import { writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openServer, type TestServer } from './fixtures/smith-server.js';
import { Sandbox } from './fixtures/smith-cli.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : undefined;

/** The agents of the fuzzed home ignore their prompt: fuzzed prompts are never run as commands. */
const CONFIG = [
  'agents:',
  '  sh:',
  '    runtime: process',
  '    command: ["true"]',
  '    capabilities: [shell]',
  '    concurrency: 2',
  'server:',
  '  rate_limit: 100000000',
  '',
].join('\n');

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
}

interface Operation {
  parameters?: { in: string; name: string; required?: boolean; schema?: JsonSchema }[];
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
}

/** Values near the edges, and ids that exist, so fuzzed requests also reach past the lookups. */
let known: string[] = [];

/** A value that fits `s` (mostly), or near-misses of it. */
function fits(s: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!s || depth > 4) return fc.jsonValue({ maxDepth: 2 });
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  const alts = s.anyOf ?? s.oneOf;
  if (alts) return fc.oneof(...alts.map((a) => fits(a, depth + 1)));
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case 'object': {
      const props = s.properties ?? {};
      const required = [...new Set(s.required ?? [])].filter((k) => k in props);
      const rec: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, v] of Object.entries(props)) rec[k] = fits(v, depth + 1);
      const only: Record<string, fc.Arbitrary<unknown>> = {};
      for (const k of required) only[k] = rec[k]!;
      // just the required fields (most likely to pass), with one other field, or with any of them
      const optional = Object.keys(rec).filter((k) => !required.includes(k));
      const arbs: fc.WeightedArbitrary<unknown>[] = [
        { weight: 2, arbitrary: fc.record(only) },
        { weight: 3, arbitrary: fc.record(rec, { requiredKeys: required }) },
      ];
      if (optional.length > 0)
        arbs.push({
          weight: 3,
          arbitrary: fc.constantFrom(...optional).chain((k) => fc.record({ ...only, [k]: rec[k]! })),
        });
      return fc.oneof(...arbs);
    }
    case 'array':
      return fc.array(fits(s.items, depth + 1), { maxLength: Math.min(s.maxItems ?? 5, 5) });
    case 'string':
      return fc.oneof(
        {
          weight: 3,
          arbitrary: fc.constantFrom('sh', 'shell', 'true', 'admin', 'viewer', '10m', '1s', ...known),
        },
        {
          weight: 2,
          arbitrary: fc.string({
            minLength: Math.min(s.minLength ?? 0, 20),
            maxLength: Math.min(s.maxLength ?? 40, 40),
          }),
        },
        { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
      );
    case 'integer':
      return fc.oneof(
        fc.integer({ min: s.minimum ?? -1_000_000, max: s.maximum ?? 1_000_000 }),
        fc.constantFrom(0, -1, 1, 2 ** 31, Number.MAX_SAFE_INTEGER),
      );
    case 'number':
      return fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer());
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** A body for `s`: fitting, with an unknown field, with a wrong type somewhere, or any JSON. */
function body(s: JsonSchema | undefined): fc.Arbitrary<unknown> {
  const fit = fits(s);
  return fc.oneof(
    { weight: 5, arbitrary: fit },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fit, fc.string({ minLength: 1, maxLength: 10 }), fc.jsonValue({ maxDepth: 1 }))
        .map(([v, k, x]) => (v && typeof v === 'object' && !Array.isArray(v) ? { ...v, [k]: x } : v)),
    },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  );
}

interface FuzzRequest {
  path: string;
  query: string;
  body: string | undefined;
  contentType: string | undefined;
}

function requests(url: string, method: string, op: Operation | undefined): fc.Arbitrary<FuzzRequest> {
  const params = op?.parameters ?? [];
  const pathNames = [...url.matchAll(/:([A-Za-z_]+)/g)].map((m) => m[1]!);
  const pathArb = fc
    .tuple(
      ...pathNames.map(() =>
        fc.oneof(fc.constantFrom('x', ...known), fc.string({ minLength: 1, maxLength: 30 })),
      ),
    )
    .map((vals) => {
      let p = url;
      pathNames.forEach((n, i) => (p = p.replace(`:${n}`, encodeURIComponent(vals[i] as string))));
      return p.replace('*', encodeURIComponent(vals[0] ?? 'x'));
    });
  const queryParams = params.filter((p) => p.in === 'query');
  const queryArb = fc
    .tuple(
      ...queryParams.map((p) => fc.option(fits(p.schema), { nil: undefined })),
      fc.option(fc.tuple(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 8 })), {
        nil: undefined,
      }),
    )
    .map((vals) => {
      const q = new URLSearchParams();
      queryParams.forEach((p, i) => {
        const v = vals[i];
        if (v !== undefined) q.set(p.name, typeof v === 'string' ? v : JSON.stringify(v));
      });
      const extra = vals[queryParams.length] as [string, string] | undefined;
      if (extra) q.set(extra[0], extra[1]);
      return q.toString();
    });
  const schema = op?.requestBody?.content?.['application/json']?.schema;
  const bodyArb: fc.Arbitrary<{ body: string | undefined; contentType: string | undefined }> =
    method === 'GET' || method === 'DELETE'
      ? fc.constant({ body: undefined, contentType: undefined })
      : fc.oneof(
          {
            weight: 8,
            arbitrary: body(schema).map((b) => ({
              body: JSON.stringify(b ?? null),
              contentType: 'application/json',
            })),
          },
          {
            weight: 1,
            arbitrary: fc
              .string({ maxLength: 50 })
              .map((b) => ({ body: b, contentType: 'application/json' })),
          },
          {
            weight: 1,
            arbitrary: fc.string({ maxLength: 50 }).map((b) => ({ body: b, contentType: 'text/plain' })),
          },
          { weight: 1, arbitrary: fc.constant({ body: undefined, contentType: undefined }) },
        );
  const anyQuery = fc.oneof({ weight: 1, arbitrary: fc.constant('') }, { weight: 2, arbitrary: queryArb });
  return fc.tuple(pathArb, anyQuery, bodyArb).map(([path, query, b]) => ({ path, query, ...b }));
}

/** Answers by route and status (written to the file FUZZ_REPORT names, when set). */
const statuses: Record<string, Record<number, number>> = {};

let box: Sandbox;
let srv: TestServer;
let doc: { paths: Record<string, Record<string, Operation>> };

beforeAll(async () => {
  box = new Sandbox('smith-fuzz-');
  srv = await openServer(box, CONFIG);
  doc = (await (await srv.fetch('/api/v1/openapi.json')).json()) as typeof doc;
  const made = (await (
    await srv.fetch('/api/v1/tasks', { method: 'POST', json: { agent: 'sh', prompt: 'x' } })
  ).json()) as {
    id: string;
    workflow_id: string;
  };
  const session = (await (
    await srv.fetch('/api/v1/chat/sessions', { method: 'POST', json: { agent: 'sh' } })
  ).json()) as { id: string };
  const query = (await (
    await srv.fetch('/api/v1/queries', {
      method: 'POST',
      json: { name: 'states', sql: 'SELECT state FROM tasks' },
    })
  ).json()) as { id: string };
  known = [made.id, made.workflow_id, 'sh', session.id, query.id, 'SELECT 1'];
});

afterAll(async () => {
  await srv?.close();
  await box?.cleanup();
});

/** Send one request; read the body unless it is a stream (SSE), which is only checked for its status. */
async function send(method: string, r: FuzzRequest): Promise<{ status: number; text: string; type: string }> {
  const ctrl = new AbortController();
  const headers: Record<string, string> = { authorization: `Bearer ${srv.token}` };
  if (r.contentType) headers['content-type'] = r.contentType;
  const res = await fetch(`${srv.url}${r.path}${r.query ? `?${r.query}` : ''}`, {
    method,
    headers,
    signal: ctrl.signal,
    ...(r.body !== undefined ? { body: r.body } : {}),
  });
  const type = res.headers.get('content-type') ?? '';
  if (type.startsWith('text/event-stream')) {
    ctrl.abort();
    return { status: res.status, text: '', type };
  }
  return { status: res.status, text: await res.text(), type };
}

describe('fuzzing every route from its schema', () => {
  it('finds the routes to fuzz', () => {
    expect(srv.app.routeTable.length).toBeGreaterThan(15);
  });

  it(
    'never answers 5xx, answers every error as JSON {code, message}, and keeps serving',
    async () => {
      const routes = srv.app.routeTable.filter((r) => !r.url.startsWith('/api/v1/docs/'));
      const openapiPath = (u: string): string => u.replace(/:([A-Za-z_]+)/g, '{$1}');
      for (const route of routes) {
        const op = doc.paths[openapiPath(route.url)]?.[route.method.toLowerCase()];
        await fc.assert(
          fc.asyncProperty(requests(route.url, route.method, op), async (r) => {
            const res = await send(route.method, r);
            const k = `${route.method} ${route.url}`;
            (statuses[k] ??= {})[res.status] = (statuses[k]![res.status] ?? 0) + 1;
            const where = `${route.method} ${r.path}?${r.query} body=${String(r.body).slice(0, 200)} -> ${res.status} ${res.text.slice(0, 300)}`;
            expect(res.status, where).toBeLessThan(500);
            if (res.status >= 400) {
              const b = JSON.parse(res.text) as { code?: unknown; message?: unknown };
              expect(typeof b.code, where).toBe('string');
              expect(typeof b.message, where).toBe('string');
            }
          }),
          { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}) },
        );
        const health = await fetch(`${srv.url}/health`);
        expect(health.status, `after fuzzing ${route.method} ${route.url}`).toBe(200);
      }
      // schema-fitting requests get through: most routes answer some requests with success
      const succeeded = Object.values(statuses).filter((byStatus) =>
        Object.keys(byStatus).some((c) => Number(c) < 300),
      );
      if (process.env.FUZZ_REPORT) writeFileSync(process.env.FUZZ_REPORT, JSON.stringify(statuses, null, 1));
      expect(succeeded.length, JSON.stringify(statuses)).toBeGreaterThan(routes.length / 2);
    },
    Math.max(300_000, RUNS * 100 * 20),
  );
});
