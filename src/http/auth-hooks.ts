/**
 * Who may do what. The Unix socket is trusted through its file permissions (as Docker's is);
 * TCP listeners need bearer tokens. Each endpoint names the scope it needs in its config
 * (default: `read` for GET, `write` for changes); the namespace a request acts on is checked
 * against the token's namespace patterns after validation, and changes in `host` need `admin`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type Principal, type TokenStore, UNIX_PRINCIPAL, requireNamespace, requireScope } from '../auth/tokens.js';
import { HOST } from '../executor/ops.js';
import type { OpContext } from '../executor/executor.js';
import './types.js';

export type Trust = { readonly kind: 'unix' } | { readonly kind: 'tokens'; readonly tokens: () => TokenStore };

/** Redeems a `?ticket=` (event streams) for the principal that asked for it. */
export interface TicketRedeemer {
  redeem(ticket: string): Principal;
}

/** The principal of requests to endpoints that need no token, over TCP. */
export const ANONYMOUS: Principal = { name: 'anonymous', scopes: new Set(), namespaces: [], via: 'tcp' };

export function isChange(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
}

export function installAuth(app: FastifyInstance, trust: Trust, tickets?: TicketRedeemer): void {
  app.decorateRequest('principal', null as unknown as Principal);
  app.decorateRequest('ops', null as unknown as []);
  app.addHook('onRequest', async (req) => {
    req.ops = [];
    if (trust.kind === 'unix') {
      req.principal = UNIX_PRINCIPAL;
      return;
    }
    const auth = req.routeOptions.config.auth ?? (isChange(req.method) ? 'write' : 'read');
    if (auth === 'none') {
      req.principal = ANONYMOUS;
      return;
    }
    const ticket = (req.query as Record<string, unknown> | undefined)?.ticket;
    if (req.routeOptions.config.ticketAuth === true && tickets && typeof ticket === 'string' && req.headers.authorization === undefined) {
      req.principal = tickets.redeem(ticket);
    } else {
      req.principal = trust.tokens().authenticate(req.headers.authorization, req.raw.socket);
    }
    requireScope(req.principal, auth);
  });
  // After validation, so the namespace named in params or body is a valid name.
  app.addHook('preHandler', async (req) => {
    const ns = req.routeOptions.config.namespaceOf?.(req);
    if (ns === undefined) return;
    requireNamespace(req.principal, ns);
    if (ns === HOST && isChange(req.method)) requireScope(req.principal, 'admin');
  });
}

/** A route's `namespaceOf`: the namespace named by path parameter `key` (`/v1/namespaces/:ns/...`). */
export function namespaceParam(key: 'ns' | 'name'): (req: FastifyRequest) => string | undefined {
  return (req) => (req.params as Record<string, string | undefined>)[key];
}

/** The executor context of a request: every op it runs lands in its audit record. */
export function opContext(req: FastifyRequest): OpContext {
  return { record: (rec) => req.ops.push(rec) };
}
