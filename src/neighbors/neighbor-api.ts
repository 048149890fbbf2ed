/** Endpoints of /v1/namespaces/{ns}/neighbors. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { withSeq } from '../paging.js';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { namespaceParam, opContext } from '../http/auth-hooks.js';
import { problemResponses } from '../http/problem.js';
import { NeighborCreateSchema, NeighborListQuerySchema, NeighborListSchema, NeighborNsParamsSchema, NeighborParamsSchema, NeighborSchema } from './neighbor-schema.js';
import type { NeighborService } from './neighbor-service.js';

const byNs = namespaceParam('ns');

const location = (ns: string, id: string): string => `/v1/namespaces/${encodeURIComponent(ns)}/neighbors/${id}`;

const HOST_RULES = 'In `host`, entries are changed only on links netnsd created (403 HOST_PROTECTED).';
const LINK_RULES =
  'A missing link → 404 LINK_NOT_FOUND; a link without link-layer addresses (tun, wireguard), or an IPv6 entry on a link with IPv6 disabled → 422 NEIGHBOR_LINK_UNSUPPORTED.';

export function neighborApi(service: NeighborService) {
  return async function register(fastify: FastifyInstance): Promise<void> {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['neighbors'];

    app.get(
      '/v1/namespaces/:ns/neighbors',
      {
        config: { namespaceOf: byNs },
        schema: {
          tags,
          summary: 'List neighbour entries',
          description: 'The ARP and NDP entries, ordered by link, family, address. Without `state`, as `ip neigh show`: every entry but the kernel\'s own noarp and none ones.',
          params: NeighborNsParamsSchema,
          querystring: NeighborListQuerySchema,
          response: { 200: NeighborListSchema, ...problemResponses(404) },
        },
      },
      async (req) =>
        withSeq(req, await service.list(req.params.ns, { link: req.query.link, family: req.query.family, state: req.query.state, limit: req.query.limit, cursor: req.query.cursor })),
    );

    app.post(
      '/v1/namespaces/:ns/neighbors',
      {
        config: { action: 'neighbor.create', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Create a permanent neighbour entry',
          description: `Answers 201 with the entry and its \`Location\`. An entry the kernel learnt for the address (reachable, stale, failed, ...) is replaced; a static one (permanent, noarp) → 409 NEIGHBOR_EXISTS, whose \`id\` names it for a PUT. ${LINK_RULES} ${HOST_RULES}`,
          params: NeighborNsParamsSchema,
          body: NeighborCreateSchema,
          response: { 201: NeighborSchema, ...problemResponses(404, 409, 413, 415, 422) },
        },
      },
      async (req, reply) => {
        const n = await service.create(req.params.ns, req.body, opContext(req));
        return reply.code(201).header('location', location(n.namespace, n.id)).send(n);
      },
    );

    app.get(
      '/v1/namespaces/:ns/neighbors/:id',
      {
        config: { namespaceOf: byNs },
        schema: { tags, summary: 'Get a neighbour entry', params: NeighborParamsSchema, response: { 200: NeighborSchema, ...problemResponses(404) } },
      },
      async (req) => service.get(req.params.ns, req.params.id),
    );

    app.put(
      '/v1/namespaces/:ns/neighbors/:id',
      {
        config: { action: 'neighbor.replace', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Replace a neighbour entry',
          description: `Replaces the entry atomically (\`ip neigh replace\`) with a permanent one: traffic never finds it missing. The body is a whole entry (a \`router\` left out clears the flag); its key (\`link\`, \`address\`) must stay the same (400 otherwise), so the id does too. ${LINK_RULES} ${HOST_RULES}`,
          params: NeighborParamsSchema,
          body: NeighborCreateSchema,
          response: { 200: NeighborSchema, ...problemResponses(404, 413, 415, 422) },
        },
      },
      async (req) => service.replace(req.params.ns, req.params.id, req.body, opContext(req)),
    );

    app.delete(
      '/v1/namespaces/:ns/neighbors/:id',
      {
        config: { action: 'neighbor.delete', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Delete a neighbour entry',
          description: `Answers 204. Any entry may be deleted, a learnt one too (the kernel resolves the address again when next needed). ${HOST_RULES}`,
          params: NeighborParamsSchema,
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
