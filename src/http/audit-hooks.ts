/**
 * Every change is audited: who (token name, or `unix`), what, the ops it ran, the outcome and
 * how long it took — to the store (GET /v1/audit) and to the log. Refused changes are audited too.
 */
import type { FastifyInstance } from 'fastify';
import type { AuditLog } from '../store/audit-log.js';
import { ANONYMOUS, isChange } from './auth-hooks.js';
import { pathOf } from './error-handler.js';

/** Requests whose audit line is logged: it says all their access line would (see app.ts). */
const audited = new WeakSet<object>();

/** Whether this request is audited (its `audit` line stands for its access line). */
export function isAudited(req: object): boolean {
  return audited.has(req);
}

export function installAudit(app: FastifyInstance, audit: AuditLog): void {
  // onSend, not onResponse: fastify skips onResponse when the client hung up, and a change that
  // ran to its end must be audited all the same.
  app.addHook('onSend', async (req, reply, payload) => {
    // Requests that never got past authentication have no actor: the access log has them.
    if (!isChange(req.method) || !req.principal || req.principal === ANONYMOUS) return payload;
    const cfg = req.routeOptions.config;
    let namespace: string | null = null;
    try {
      namespace = cfg.namespaceOf?.(req) ?? null;
    } catch {
      namespace = null;
    }
    const entry = {
      time: new Date().toISOString(),
      requestId: req.id,
      actor: req.principal.name,
      action: cfg.action ?? `${req.method} ${req.routeOptions.url ?? pathOf(req)}`,
      method: req.method,
      path: pathOf(req),
      namespace,
      status: reply.statusCode,
      code: req.errorCode ?? null,
      outcome: req.replayed ? ('replayed' as const) : reply.statusCode < 400 ? ('success' as const) : ('failure' as const),
      ops: req.ops,
      durationMs: Math.round(reply.elapsedTime * 1000) / 1000,
    };
    // Written with the other changes of the next few ms (AuditLog); logged then, with its seq.
    audited.add(req);
    audit.append(entry, (seq, err) => {
      if (err) req.log.error({ err, audit: entry }, 'audit record not written to the store');
      else req.log.info({ audit: { seq, ...entry } }, 'audit');
    });
    return payload;
  });
}
