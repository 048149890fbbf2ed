/**
 * Requests per second per client (token name, or `unix`): a token bucket that holds one second's
 * worth, so short bursts pass and a steady excess gets 429 RATE_LIMITED with `Retry-After`.
 * Health checks are never limited.
 */
import type { FastifyInstance } from 'fastify';
import { AppError } from '../errors/app-error.js';

interface Bucket {
  tokens: number;
  at: number;
}

export function installRateLimit(app: FastifyInstance, perSecond: number, now: () => number = Date.now): void {
  if (perSecond <= 0) return;
  const buckets = new Map<string, Bucket>();
  app.addHook('onRequest', async (req) => {
    if (req.routeOptions.config.auth === 'none') return;
    const who = req.principal.name;
    const t = now();
    const b = buckets.get(who) ?? { tokens: perSecond, at: t };
    b.tokens = Math.min(perSecond, b.tokens + ((t - b.at) / 1000) * perSecond);
    b.at = t;
    buckets.set(who, b);
    if (b.tokens < 1) {
      const wait = Math.ceil((1 - b.tokens) / perSecond);
      throw new AppError('RATE_LIMITED', `More than ${perSecond} requests per second; slow down`, {
        headers: { 'retry-after': String(Math.max(1, wait)) },
      });
    }
    b.tokens -= 1;
  });
}
