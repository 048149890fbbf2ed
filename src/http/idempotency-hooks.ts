/**
 * Idempotency, the convention for every change: a POST, PUT, PATCH or DELETE with an
 * `Idempotency-Key` header is stored with its response; a retry with the same key and request gets
 * the stored response with `Idempotency-Replayed: true`; the same key with another request is 422
 * IDEMPOTENCY_KEY_REUSED. Keys are per actor. A 5xx is not stored, so the retry runs again.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../errors/app-error.js';
import type { IdempotencyStore } from '../store/idempotency-store.js';
import { isChange } from './auth-hooks.js';

const KEY_RE = /^[\x21-\x7e]{1,255}$/;
/** Response headers a replay repeats. */
const KEPT_HEADERS = ['content-type', 'location'] as const;

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

function fingerprint(req: FastifyRequest): string {
  return createHash('sha256')
    .update(`${req.method} ${req.routeOptions.url ?? req.url}\n${canonical(req.params)}\n${canonical(req.query)}\n${canonical(req.body)}`)
    .digest('hex');
}

const claimed = new WeakMap<FastifyRequest, { actor: string; key: string }>();

export function installIdempotency(app: FastifyInstance, store: IdempotencyStore): void {
  app.addHook('preHandler', async (req, reply) => {
    if (!isChange(req.method)) return;
    const key = req.headers['idempotency-key'];
    if (key === undefined) return;
    if (typeof key !== 'string' || !KEY_RE.test(key)) {
      throw new AppError('IDEMPOTENCY_KEY_INVALID', 'Idempotency-Key must be 1-255 visible ASCII characters, sent once', {
        meta: { errors: [{ field: 'headers.idempotency-key', message: 'must be 1-255 visible ASCII characters' }] },
      });
    }
    const actor = req.principal.name;
    const claim = store.claim(actor, key, fingerprint(req));
    switch (claim.kind) {
      case 'new':
        claimed.set(req, { actor, key });
        return;
      case 'mismatch':
        throw new AppError('IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was used with another request; use a new key for a new request');
      case 'in-progress':
        throw new AppError('IDEMPOTENCY_KEY_IN_PROGRESS', 'The first request with this Idempotency-Key is still running; retry shortly', {
          headers: { 'retry-after': '1' },
        });
      case 'replay': {
        req.replayed = true;
        const r = claim.response;
        reply.code(r.status).headers(r.headers).header('idempotency-replayed', 'true');
        return reply.send(r.body === '' ? undefined : r.body);
      }
    }
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const c = claimed.get(req);
    if (!c) return payload;
    claimed.delete(req);
    if (reply.statusCode >= 500) {
      store.release(c.actor, c.key);
      return payload;
    }
    const headers: Record<string, string> = {};
    for (const h of KEPT_HEADERS) {
      const v = reply.getHeader(h);
      if (v !== undefined) headers[h] = String(v);
    }
    store.complete(c.actor, c.key, { status: reply.statusCode, headers, body: typeof payload === 'string' ? payload : '' });
    return payload;
  });
}
