/** Health, readiness, capabilities and the audit trail. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../errors/app-error.js';
import type { Executor } from '../executor/executor.js';
import type { CapabilitiesService } from '../capabilities/capabilities-service.js';
import { CapabilitiesSchema } from '../capabilities/capabilities-schema.js';
import type { AuditLog } from '../store/audit-log.js';
import { type AuditEntry, AuditEntrySchema } from '../store/audit-schema.js';
import { canUseNamespace } from '../auth/tokens.js';
import type { Db } from '../store/db.js';
import { decodeCursor, encodeCursor, NextSchema, PageQuerySchema, DEFAULT_LIMIT } from '../paging.js';
import { problemResponses } from './problem.js';

const StatusSchema = Type.Object(
  {
    status: Type.String(),
    checks: Type.Optional(Type.Record(Type.String(), Type.String())),
  },
  { additionalProperties: false },
);

export interface SystemDeps {
  readonly db: Db;
  readonly executor: Executor;
  readonly capabilities: CapabilitiesService;
  readonly audit: AuditLog;
}

export function systemApi(d: SystemDeps) {
  return async function register(fastify: FastifyInstance): Promise<void> {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

    app.get(
      '/healthz',
      {
        config: { auth: 'none' },
        schema: { tags: ['system'], summary: 'Liveness: the daemon answers', response: { 200: StatusSchema } },
      },
      async () => ({ status: 'ok' }),
    );

    app.get(
      '/readyz',
      {
        config: { auth: 'none' },
        schema: {
          tags: ['system'],
          summary: 'Readiness: the store is open and the executor answers',
          response: { 200: StatusSchema, 503: problemResponses()[503] },
        },
      },
      async () => {
        const checks: Record<string, string> = {};
        try {
          d.db.prepare('SELECT 1').get();
          checks.store = 'ok';
        } catch (e) {
          throw new AppError('NOT_READY', 'The store does not answer', { cause: e, meta: { checks: { store: 'failed' } } });
        }
        try {
          await d.executor.ping();
          checks.executor = 'ok';
        } catch (e) {
          throw new AppError('NOT_READY', 'The executor does not answer', { cause: e, meta: { checks: { ...checks, executor: 'failed' } } });
        }
        return { status: 'ready', checks };
      },
    );

    app.get(
      '/v1/capabilities',
      {
        schema: {
          tags: ['system'],
          summary: 'What this kernel and these tools can do',
          description: 'Probed once at start in a scratch namespace that is removed again.',
          response: { 200: CapabilitiesSchema, ...problemResponses() },
        },
      },
      async () => d.capabilities.get(),
    );

    app.get(
      '/v1/audit',
      {
        config: { auth: 'admin' },
        schema: {
          tags: ['system'],
          summary: 'The audit trail of changes, oldest first',
          querystring: Type.Object({ ...PageQuerySchema }, { additionalProperties: false }),
          response: {
            200: Type.Object({ items: Type.Array(AuditEntrySchema), next: NextSchema }, { additionalProperties: false }),
            ...problemResponses(),
          },
        },
      },
      async (req) => {
        const limit = req.query.limit ?? DEFAULT_LIMIT;
        let after = 0;
        if (req.query.cursor !== undefined) {
          const k = decodeCursor(req.query.cursor);
          if (typeof k !== 'number') throw new AppError('CURSOR_INVALID', 'The cursor was not made by this endpoint');
          after = k;
        }
        // A token limited to namespace patterns sees only the entries of its namespaces.
        const p = req.principal;
        const visible = (e: AuditEntry) => p.namespaces === null || (e.namespace !== null && canUseNamespace(p, e.namespace));
        const items: AuditEntry[] = [];
        let more = true;
        while (items.length < limit && more) {
          const page = d.audit.page(after, Math.max(limit, 100));
          let i = 0;
          for (; i < page.entries.length && items.length < limit; i++) {
            const e = page.entries[i]!;
            after = e.seq;
            if (visible(e)) items.push(e);
          }
          more = page.more || i < page.entries.length;
        }
        return { items, ...(more ? { next: encodeCursor(after) } : {}) };
      },
    );
  };
}
