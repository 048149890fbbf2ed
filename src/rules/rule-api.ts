/** Endpoints of /v1/namespaces/{ns}/rules. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { withSeq } from '../paging.js';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { namespaceParam, opContext } from '../http/auth-hooks.js';
import { problemResponses } from '../http/problem.js';
import { RuleCreateSchema, RuleListQuerySchema, RuleListSchema, RuleNsParamsSchema, RuleParamsSchema, RuleSchema } from './rule-schema.js';
import type { RuleService } from './rule-service.js';

const byNs = namespaceParam('ns');

const location = (ns: string, id: string): string => `/v1/namespaces/${encodeURIComponent(ns)}/rules/${id}`;

const HOST_RULES = 'The rules of `host` are read-only (403 HOST_PROTECTED) unless the configuration sets host.allowChanges.';

export function ruleApi(service: RuleService) {
  return async function register(fastify: FastifyInstance): Promise<void> {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['rules'];

    app.get(
      '/v1/namespaces/:ns/rules',
      {
        config: { namespaceOf: byNs },
        schema: {
          tags,
          summary: 'List policy rules',
          description: 'The rules of both families (IPv4 first) unless `family` says one, each family in the order the kernel tries them: by priority, then oldest first. `table` keeps the lookup rules of one table.',
          params: RuleNsParamsSchema,
          querystring: RuleListQuerySchema,
          response: { 200: RuleListSchema, ...problemResponses(404) },
        },
      },
      async (req) => withSeq(req, await service.list(req.params.ns, { family: req.query.family, table: req.query.table, limit: req.query.limit, cursor: req.query.cursor })),
    );

    app.post(
      '/v1/namespaces/:ns/rules',
      {
        config: { action: 'rule.create', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Create a policy rule',
          description: `Answers 201 with the rule and its \`Location\`. A rule identical to one that exists (priority, selector and action) → 409 RULE_EXISTS; rules that differ may share a priority. ${HOST_RULES}`,
          params: RuleNsParamsSchema,
          body: RuleCreateSchema,
          response: { 201: RuleSchema, ...problemResponses(404, 409, 413, 415) },
        },
      },
      async (req, reply) => {
        const r = await service.create(req.params.ns, req.body, opContext(req));
        return reply.code(201).header('location', location(r.namespace, r.id)).send(r);
      },
    );

    app.get(
      '/v1/namespaces/:ns/rules/:id',
      {
        config: { namespaceOf: byNs },
        schema: { tags, summary: 'Get a policy rule', params: RuleParamsSchema, response: { 200: RuleSchema, ...problemResponses(404) } },
      },
      async (req) => service.get(req.params.ns, req.params.id),
    );

    app.delete(
      '/v1/namespaces/:ns/rules/:id',
      {
        config: { action: 'rule.delete', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Delete a policy rule',
          description: `Answers 204. The built-in rules (local, main, default) can be deleted too: without \`local\` nothing reaches the namespace's own addresses. ${HOST_RULES}`,
          params: RuleParamsSchema,
          response: { 204: Type.Null({ description: 'Deleted.' }), ...problemResponses(404) },
        },
      },
      async (req, reply) => {
        await service.delete(req.params.ns, req.params.id, opContext(req));
        return reply.code(204).send(null);
      },
    );
  };
}
