/** Endpoints of /v1/namespaces/{ns}/routes. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { withSeq } from '../paging.js';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { namespaceParam, opContext } from '../http/auth-hooks.js';
import { problemResponses } from '../http/problem.js';
import { RouteCreateSchema, RouteListQuerySchema, RouteListSchema, RouteNsParamsSchema, RouteParamsSchema, RouteSchema } from './route-schema.js';
import type { RouteService } from './route-service.js';

const byNs = namespaceParam('ns');

const location = (ns: string, id: string): string => `/v1/namespaces/${encodeURIComponent(ns)}/routes/${id}`;

const HOST_RULES =
  'In `host`, routes go only through links netnsd created (403 HOST_PROTECTED) and are never a default route, shorter than /16 (IPv6 /32), or overlapping a prefix — or with a gateway inside one — that host reaches through another link (409 HOST_ROUTE_CONFLICT).';

export function routeApi(service: RouteService) {
  return async function register(fastify: FastifyInstance): Promise<void> {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['routes'];

    app.get(
      '/v1/namespaces/:ns/routes',
      {
        config: { namespaceOf: byNs },
        schema: {
          tags,
          summary: 'List routes',
          description: 'The routes of one table (`table`: main by default, local, a number, or `all`), both families unless `family` says one; ordered by table, family, destination, metric.',
          params: RouteNsParamsSchema,
          querystring: RouteListQuerySchema,
          response: { 200: RouteListSchema, ...problemResponses(404) },
        },
      },
      async (req) => withSeq(req, await service.list(req.params.ns, { table: req.query.table, family: req.query.family, limit: req.query.limit, cursor: req.query.cursor })),
    );

    app.post(
      '/v1/namespaces/:ns/routes',
      {
        config: { action: 'route.create', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Create a route',
          description: `Answers 201 with the route and its \`Location\`. A route with the same table, destination and metric → 409 ROUTE_EXISTS; a gateway not reachable on any link → 422 NEXTHOP_UNREACHABLE. ${HOST_RULES}`,
          params: RouteNsParamsSchema,
          body: RouteCreateSchema,
          response: { 201: RouteSchema, ...problemResponses(404, 409, 413, 415, 422) },
        },
      },
      async (req, reply) => {
        const r = await service.create(req.params.ns, req.body, opContext(req));
        return reply.code(201).header('location', location(r.namespace, r.id)).send(r);
      },
    );

    app.get(
      '/v1/namespaces/:ns/routes/:id',
      {
        config: { namespaceOf: byNs },
        schema: { tags, summary: 'Get a route', params: RouteParamsSchema, response: { 200: RouteSchema, ...problemResponses(404) } },
      },
      async (req) => service.get(req.params.ns, req.params.id),
    );

    app.put(
      '/v1/namespaces/:ns/routes/:id',
      {
        config: { action: 'route.replace', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Replace a route',
          description: `Replaces the route atomically (\`ip route replace\`): traffic never finds it missing. The body is a whole route; its key (\`dst\`, \`table\`, \`metric\`) must stay the same (400 otherwise), so the id does too. ${HOST_RULES}`,
          params: RouteParamsSchema,
          body: RouteCreateSchema,
          response: { 200: RouteSchema, ...problemResponses(404, 409, 413, 415, 422) },
        },
      },
      async (req) => service.replace(req.params.ns, req.params.id, req.body, opContext(req)),
    );

    app.delete(
      '/v1/namespaces/:ns/routes/:id',
      {
        config: { action: 'route.delete', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Delete a route',
          description: 'Answers 204.',
          params: RouteParamsSchema,
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
