/** Endpoints of /v1/namespaces/{ns}/addresses. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { withSeq } from '../paging.js';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { namespaceParam, opContext } from '../http/auth-hooks.js';
import { problemResponses } from '../http/problem.js';
import { AddressCreateSchema, AddressListQuerySchema, AddressListSchema, AddressNsParamsSchema, AddressParamsSchema, AddressSchema } from './address-schema.js';
import type { AddressService } from './address-service.js';

const byNs = namespaceParam('ns');

const location = (ns: string, id: string): string => `/v1/namespaces/${encodeURIComponent(ns)}/addresses/${id}`;

export function addressApi(service: AddressService) {
  return async function register(fastify: FastifyInstance): Promise<void> {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['addresses'];

    app.get(
      '/v1/namespaces/:ns/addresses',
      {
        config: { namespaceOf: byNs },
        schema: {
          tags,
          summary: 'List addresses',
          description: 'Every IP address in the namespace, ordered by link (ifindex), family and address. Filters: `link`, `family`.',
          params: AddressNsParamsSchema,
          querystring: AddressListQuerySchema,
          response: { 200: AddressListSchema, ...problemResponses(404) },
        },
      },
      async (req) => withSeq(req, await service.list(req.params.ns, { link: req.query.link, family: req.query.family, limit: req.query.limit, cursor: req.query.cursor })),
    );

    app.post(
      '/v1/namespaces/:ns/addresses',
      {
        config: { action: 'address.create', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Add an address',
          description:
            'Adds an IPv4 or IPv6 address to a link and answers 201 with it and its `Location`. An IPv6 address added without `nodad` is `tentative` for about 2 s (duplicate address detection). The same address on the link → 409 ADDRESS_EXISTS. In `host`, only on links netnsd created (403 HOST_PROTECTED), with a prefix of /16 (IPv6 /32) or longer that overlaps no subnet of another host link (409 HOST_ROUTE_CONFLICT).',
          params: AddressNsParamsSchema,
          body: AddressCreateSchema,
          response: { 201: AddressSchema, ...problemResponses(404, 409, 413, 415, 422) },
        },
      },
      async (req, reply) => {
        const a = await service.create(req.params.ns, req.body, opContext(req));
        return reply.code(201).header('location', location(a.namespace, a.id)).send(a);
      },
    );

    app.get(
      '/v1/namespaces/:ns/addresses/:id',
      {
        config: { namespaceOf: byNs },
        schema: { tags, summary: 'Get an address', params: AddressParamsSchema, response: { 200: AddressSchema, ...problemResponses(404) } },
      },
      async (req) => service.get(req.params.ns, req.params.id),
    );

    app.delete(
      '/v1/namespaces/:ns/addresses/:id',
      {
        config: { action: 'address.delete', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Delete an address',
          description: 'Answers 204. Routes that depended on it (its connected route, routes via a gateway in its subnet) go with it, as the kernel does.',
          params: AddressParamsSchema,
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
