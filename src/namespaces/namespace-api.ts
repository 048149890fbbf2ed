/** Endpoints of /v1/namespaces. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { withSeq } from '../paging.js';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { canUseNamespace, requireScope } from '../auth/tokens.js';
import { parseLabelSelector } from '../labels.js';
import { namespaceParam, opContext } from '../http/auth-hooks.js';
import { problemResponses } from '../http/problem.js';
import {
  NamespaceCreateSchema,
  NamespaceDeleteQuerySchema,
  NamespaceListQuerySchema,
  NamespaceListSchema,
  NamespaceParamsSchema,
  NamespacePatchSchema,
  NamespaceSchema,
} from './namespace-schema.js';
import type { NamespaceService } from './namespace-service.js';

const byParam = namespaceParam('name');
const byBody = (req: FastifyRequest): string | undefined => (req.body as { name?: string } | undefined)?.name;

export function namespaceApi(service: NamespaceService) {
  return async function register(fastify: FastifyInstance): Promise<void> {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['namespaces'];

    app.get(
      '/v1/namespaces',
      {
        schema: {
          tags,
          summary: 'List namespaces',
          description:
            'Every network namespace on the machine that the caller may see: those netnsd created (`managed: true`), those it found under /run/netns, and the root namespace as `host`. Ordered by name.',
          querystring: NamespaceListQuerySchema,
          response: { 200: NamespaceListSchema, ...problemResponses() },
        },
      },
      async (req) =>
        withSeq(req, await service.list({
          selector: parseLabelSelector(req.query.labelSelector),
          managed: req.query.managed,
          visible: (name) => canUseNamespace(req.principal, name),
          limit: req.query.limit,
          cursor: req.query.cursor,
        })),
    );

    app.post(
      '/v1/namespaces',
      {
        config: { action: 'namespace.create', namespaceOf: byBody },
        schema: {
          tags,
          summary: 'Create a namespace',
          description:
            'Creates a network namespace with loopback up and an nsid assigned. Answers 201 with the namespace and its `Location`.',
          body: NamespaceCreateSchema,
          response: { 201: NamespaceSchema, ...problemResponses(409, 413, 415, 422) },
        },
      },
      async (req, reply) => {
        const ns = await service.create(req.body.name, req.body.labels ?? {}, opContext(req));
        return reply.code(201).header('location', `/v1/namespaces/${encodeURIComponent(ns.name)}`).send(ns);
      },
    );

    app.get(
      '/v1/namespaces/:name',
      {
        config: { namespaceOf: byParam },
        schema: {
          tags,
          summary: 'Get a namespace',
          params: NamespaceParamsSchema,
          response: { 200: NamespaceSchema, ...problemResponses(404) },
        },
      },
      async (req) => service.get(req.params.name),
    );

    app.patch(
      '/v1/namespaces/:name',
      {
        config: { action: 'namespace.update', namespaceOf: byParam },
        schema: {
          tags,
          summary: "Change a namespace's labels",
          description:
            'A JSON merge patch (RFC 7396) of the labels, sent as `application/merge-patch+json` or `application/json`. Labels are netnsd\'s own, so unmanaged namespaces can be labelled too (`host` needs the admin scope).',
          params: NamespaceParamsSchema,
          body: NamespacePatchSchema,
          response: { 200: NamespaceSchema, ...problemResponses(404, 413, 415, 422) },
        },
      },
      async (req) => service.updateLabels(req.params.name, req.body.labels === undefined ? {} : req.body.labels, opContext(req)),
    );

    app.delete(
      '/v1/namespaces/:name',
      {
        config: { action: 'namespace.delete', namespaceOf: byParam },
        schema: {
          tags,
          summary: 'Delete a namespace',
          description:
            'Answers 204 once the name is removed and no process is left inside; the kernel frees the stack (and every link in it) asynchronously, and the name can be reused at once. With processes inside: 409 NAMESPACE_BUSY listing their `pids`, unless `force=true` (admin), which kills them first. A namespace netnsd did not create needs `force=true` too. `host` can never be deleted.',
          params: NamespaceParamsSchema,
          querystring: NamespaceDeleteQuerySchema,
          response: { 204: Type.Null({ description: 'Deleted.' }), ...problemResponses(404, 409, 422) },
        },
      },
      async (req, reply) => {
        const force = req.query.force === true;
        if (force) requireScope(req.principal, 'admin');
        await service.delete(req.params.name, { force }, opContext(req));
        return reply.code(204).send(null);
      },
    );
  };
}
