/**
 * Authentication and roles. One `onRequest` hook, which runs before the body is read, checks the
 * API key of every request but `GET /health`, and the role the route asks for (its
 * `config.role`, `admin` when a route names none). The role matrix is in docs/api.md.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { roleAllows, type KeyVerifier } from '../engine/api-keys.js';
import type { ApiKeyRecord, Role } from '../store/store.js';
import { ApiError } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The least role that may call the route. Default `admin`. */
    role?: Role;
    /** No API key needed (only `/health`). */
    public?: boolean;
  }
  interface FastifyRequest {
    /** The key that authenticated the request (unset on public routes). */
    apiKey?: ApiKeyRecord;
  }
}

/**
 * The subprotocol prefix that carries an API key on a WebSocket handshake
 * (`Sec-WebSocket-Protocol: smith.chat.v1, smith.bearer.<key>`), for browsers, which cannot set
 * headers on a WebSocket.
 */
export const BEARER_PROTOCOL_PREFIX = 'smith.bearer.';

/**
 * The bearer token of a request: `Authorization: Bearer …`, else `X-API-Key`, else a
 * `smith.bearer.<key>` value of `Sec-WebSocket-Protocol`.
 */
export function requestToken(req: FastifyRequest): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m ? m[1] : auth;
  }
  const x = req.headers['x-api-key'];
  if (typeof x === 'string') return x;
  const protocols = req.headers['sec-websocket-protocol'];
  if (typeof protocols !== 'string') return undefined;
  for (const p of protocols.split(','))
    if (p.trim().startsWith(BEARER_PROTOCOL_PREFIX)) return p.trim().slice(BEARER_PROTOCOL_PREFIX.length);
  return undefined;
}

/** Who did it, for audit records: `key:<id>`. */
export function actorOf(req: FastifyRequest): string {
  return req.apiKey ? `key:${req.apiKey.id}` : 'anonymous';
}

/** Add the authentication hook to `app` (before any route). */
export function installAuth(app: FastifyInstance, verifier: KeyVerifier): void {
  app.decorateRequest('apiKey', undefined);
  app.addHook('onRequest', async (req) => {
    const config = req.routeOptions.config;
    if (config?.public === true) return;
    const result = await verifier.verify(requestToken(req));
    if ('reason' in result)
      throw new ApiError(401, 'UNAUTHENTICATED', result.reason, { 'www-authenticate': 'Bearer' });
    req.apiKey = result.key;
    const needed: Role = config?.role ?? 'admin';
    if (!roleAllows(result.key.role, needed)) {
      throw new ApiError(
        403,
        'FORBIDDEN',
        `${req.method} ${req.routeOptions.url ?? req.url} needs the ${needed} role; this key (${result.key.id}) is ${result.key.role}`,
      );
    }
  });
}
