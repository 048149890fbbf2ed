/** What netnsd adds to fastify's request and route config. */
import type { Principal, Scope } from '../auth/tokens.js';
import type { ErrorCode } from '../errors/codes.js';
import type { OpRecord } from '../executor/executor.js';

/** `none`: no token needed (health checks only). */
export type RouteAuth = Scope | 'none';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is asking: a token's principal, or the Unix socket's. */
    principal: Principal;
    /** The executor ops this request ran, for its audit record. */
    ops: OpRecord[];
    /** The error code it answered with, for the audit record. */
    errorCode?: ErrorCode;
    /** Whether the response is a stored one (idempotency replay). */
    replayed?: boolean;
  }
  interface FastifyContextConfig {
    /** The scope this endpoint needs; default: `read` for GET/HEAD, `write` otherwise. */
    auth?: RouteAuth;
    /** The audited action name of a change, e.g. `namespace.create`. */
    action?: string;
    /** A `?ticket=` may stand in for the Authorization header (event streams). */
    ticketAuth?: boolean;
    /** The namespace a request acts on, for token namespace limits and host protection. */
    namespaceOf?: (req: FastifyRequest) => string | undefined;
  }
}

