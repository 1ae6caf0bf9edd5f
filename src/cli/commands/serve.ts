/**
 * `smith serve`: own the home's engine and serve it over HTTP (REST v1, SSE, WebSocket chat).
 * `smith keys create|list|revoke`: the API keys of the home, or with SMITH_URL set of that server
 * (`/api/v1/keys`, an admin key).
 */
import { createRequire } from 'node:module';
import { SmithError } from '../../core/errors.js';
import { parseDuration } from '../../core/schema/index.js';
import type { Role } from '../../store/store.js';
import { createApiKey, KeyVerifier, loadPepper, revokeApiKey, ROLES } from '../../engine/api-keys.js';
import { openHomeStore } from '../../engine/home.js';
import { closeSession, mergedAgents, openSession } from '../../engine/session.js';
import { EXIT, type Context } from '../context.js';
import { apiKeyView } from '../../core/views.js';
import { table } from '../output.js';
import { remoteClient } from '../remote.js';

/** Options of `smith serve`. */
export interface ServeOptions {
  host?: string;
  port?: string;
}

function actor(): string {
  return `user:${process.env.USER ?? process.env.LOGNAME ?? 'unknown'}`;
}

function version(): string {
  const require = createRequire(import.meta.url);
  return (require('../../../package.json') as { version: string }).version;
}

/** `smith serve`. Runs until SIGINT or SIGTERM; @returns the exit code */
export async function serveCommand(ctx: Context, o: ServeOptions): Promise<number> {
  const host = o.host ?? ctx.config.server.host;
  const port = o.port !== undefined ? Number(o.port) : ctx.config.server.port;
  const pepper = loadPepper(ctx.home);
  const s = await openSession(ctx, mergedAgents(ctx.config));
  // Fastify, its plugins and pino load here, not when any other command starts
  const [{ buildServer }, { createLogger }] = await Promise.all([
    import('../../api/server.js'),
    import('../../observability/logging.js'),
  ]);
  const logger = createLogger();
  let app: Awaited<ReturnType<typeof buildServer>> | undefined;
  try {
    await s.engine.start();
    // finish what an earlier run of this home left unfinished
    for (const w of await s.store.listWorkflows(['running'])) await s.engine.resumeWorkflow(w.id, 'serve');
    // the first start makes an admin key, shown this once
    if ((await s.store.listApiKeys()).length === 0) {
      const made = await createApiKey(s.store, pepper, {
        role: 'admin',
        name: 'first admin key',
        createdBy: 'serve',
      });
      process.stderr.write(
        `smith serve: no API key existed, so this admin key was made. It is shown this once; keep it safe:\n\n  ${made.token}\n\n` +
          'Use it as "Authorization: Bearer <key>". Make more with "smith keys create --role viewer|operator|admin".\n',
      );
    }
    const keys = new KeyVerifier(s.store, pepper);
    app = await buildServer(
      {
        store: s.store,
        engine: s.engine,
        home: ctx.home,
        config: ctx.config,
        workdir: ctx.cwd,
        keys,
        pepper,
      },
      { logger, version: version() },
    );
    await app.listen({ host, port });
    const addr = app.server.address();
    const where =
      typeof addr === 'object' && addr
        ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`
        : String(addr);
    process.stderr.write(
      `smith serve: listening on ${where} (home ${ctx.home}); API docs at ${where}/api/v1/docs\n`,
    );
    if (ctx.json)
      process.stdout.write(JSON.stringify({ url: where, home: ctx.home, pid: process.pid }) + '\n');
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.stderr.write('smith serve: stopping\n');
        resolve();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      s.engine.on('engine:error', ({ error }) => {
        process.stderr.write(`smith serve: the engine stopped: ${(error as Error).message}\n`);
        resolve();
      });
    });
  } finally {
    await app?.close();
    await closeSession(s);
  }
  return s.engine.error !== undefined ? EXIT.store : EXIT.ok;
}

/** `smith keys create --role R [--name N] [--expires DURATION]`. */
export async function keysCreateCommand(
  ctx: Context,
  o: { role: string; name?: string; expires?: string },
): Promise<number> {
  if (!ROLES.includes(o.role as Role))
    throw new SmithError('INVALID_ARGUMENT', `--role ${o.role} is unknown; use one of ${ROLES.join(', ')}`);
  const expiresAt = o.expires !== undefined ? Date.now() + parseDuration(o.expires, '--expires') : null;
  const api = remoteClient();
  if (api) {
    const made = await api.post<KeyJson & { token: string }>('/api/v1/keys', {
      role: o.role,
      ...(o.name !== undefined ? { name: o.name } : {}),
      ...(o.expires !== undefined ? { expires_in: o.expires } : {}),
    });
    printMadeKey(ctx, made);
    return EXIT.ok;
  }
  const pepper = loadPepper(ctx.home);
  const store = await openHomeStore(ctx.home, { synchronous: ctx.config.store.synchronous });
  try {
    const made = await createApiKey(store, pepper, {
      role: o.role as Role,
      ...(o.name !== undefined ? { name: o.name } : {}),
      expiresAt,
      createdBy: actor(),
    });
    printMadeKey(ctx, { ...made.record, token: made.token });
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

/** Say a key was made and show its token (this once). */
function printMadeKey(ctx: Context, made: { id: string; role: string; name: string; token: string }): void {
  if (ctx.json) {
    process.stdout.write(
      JSON.stringify({ id: made.id, role: made.role, name: made.name, token: made.token }) + '\n',
    );
  } else {
    process.stderr.write(`API key ${made.id} (${made.role}) made; it is shown this once:\n`);
    process.stdout.write(`${made.token}\n`);
  }
}

/** A key as `smith keys list --json` prints it and (without `status`) the API answers it. */
interface KeyJson {
  id: string;
  role: Role;
  name: string;
  status?: string;
  created_by: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

/** A key's status at `now`: revoked, expired or active. */
function keyStatus(k: { revoked_at: string | null; expires_at: string | null }, now: number): string {
  return k.revoked_at !== null
    ? 'revoked'
    : k.expires_at !== null && Date.parse(k.expires_at) <= now
      ? 'expired'
      : 'active';
}

/** Print keys: a JSON array with --json, else a table. */
function printKeys(ctx: Context, keys: KeyJson[]): void {
  if (ctx.json) {
    process.stdout.write(JSON.stringify(keys) + '\n');
    return;
  }
  const rows = [['ID', 'ROLE', 'STATUS', 'NAME', 'CREATED', 'EXPIRES']];
  for (const k of keys)
    rows.push([
      k.id,
      k.role,
      k.status ?? '-',
      k.name,
      k.created_at.slice(0, 19),
      k.expires_at === null ? '-' : k.expires_at.slice(0, 19),
    ]);
  process.stdout.write(
    keys.length === 0
      ? 'no API keys (smith serve makes an admin key on its first start)\n'
      : table(rows) + '\n',
  );
}

/** `smith keys list`. */
export async function keysListCommand(ctx: Context): Promise<number> {
  const now = Date.now();
  const withStatus = (k: KeyJson): KeyJson => ({
    id: k.id,
    role: k.role,
    name: k.name,
    status: keyStatus(k, now),
    created_by: k.created_by,
    created_at: k.created_at,
    expires_at: k.expires_at,
    revoked_at: k.revoked_at,
  });
  const api = remoteClient();
  if (api) {
    const { keys } = await api.get<{ keys: KeyJson[] }>('/api/v1/keys');
    printKeys(ctx, keys.map(withStatus));
    return EXIT.ok;
  }
  const store = await openHomeStore(ctx.home, { readonly: true });
  try {
    const keys = await store.listApiKeys();
    printKeys(
      ctx,
      keys.map((k) => withStatus(apiKeyView(k))),
    );
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

/** `smith keys revoke ID`. */
export async function keysRevokeCommand(ctx: Context, id: string): Promise<number> {
  const api = remoteClient();
  if (api) {
    // a whole token names its key by the id inside it; the secret never goes into a URL
    const keyId = /^smk_([0-9a-f]{16})_/.exec(id)?.[1] ?? id;
    const k = await api.post<KeyJson>(`/api/v1/keys/${encodeURIComponent(keyId)}/revoke`);
    printRevokedKey(ctx, k);
    return EXIT.ok;
  }
  const store = await openHomeStore(ctx.home, { synchronous: ctx.config.store.synchronous });
  try {
    printRevokedKey(ctx, await revokeApiKey(store, id, actor()));
    return EXIT.ok;
  } finally {
    await store.close();
  }
}

/** Say a key was revoked. */
function printRevokedKey(ctx: Context, k: { id: string; role: string }): void {
  if (ctx.json) process.stdout.write(JSON.stringify({ id: k.id, role: k.role, revoked: true }) + '\n');
  else
    process.stdout.write(
      `API key ${k.id} (${k.role}) revoked; a running server refuses it within a second\n`,
    );
}
