/** Endpoints of /v1/namespaces/{ns}/links. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { withSeq } from '../paging.js';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { requireNamespace, requireScope } from '../auth/tokens.js';
import { HOST } from '../executor/ops.js';
import { namespaceParam, opContext } from '../http/auth-hooks.js';
import { problemResponses } from '../http/problem.js';
import { parseLabelSelector } from '../labels.js';
import {
  LinkCreateSchema,
  LinkListQuerySchema,
  LinkListSchema,
  LinkNsParamsSchema,
  LinkParamsSchema,
  LinkPatchSchema,
  LinkSchema,
  LinkStatsSchema,
} from './link-schema.js';
import type { LinkService } from './link-service.js';

const byNs = namespaceParam('ns');

/**
 * A change that also acts on a second namespace (a veth's peer, a move's target): the token must
 * be allowed there too, and `host` needs the admin scope, as for the namespace in the path.
 */
function requireOther(req: FastifyRequest, ns: string | undefined): void {
  if (ns === undefined) return;
  requireNamespace(req.principal, ns);
  if (ns === HOST) requireScope(req.principal, 'admin');
}

const location = (ns: string, name: string): string => `/v1/namespaces/${encodeURIComponent(ns)}/links/${encodeURIComponent(name)}`;

export function linkApi(service: LinkService) {
  return async function register(fastify: FastifyInstance): Promise<void> {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['links'];

    app.get(
      '/v1/namespaces/:ns/links',
      {
        config: { namespaceOf: byNs },
        schema: {
          tags,
          summary: 'List links',
          description: 'Every link (interface) in the namespace, ordered by name. Filters: `kind`, `master` (ports of a bridge), `managed`, `labelSelector`.',
          params: LinkNsParamsSchema,
          querystring: LinkListQuerySchema,
          response: { 200: LinkListSchema, ...problemResponses(404) },
        },
      },
      async (req) =>
        withSeq(req, await service.list(req.params.ns, {
          kind: req.query.kind,
          master: req.query.master,
          managed: req.query.managed,
          selector: parseLabelSelector(req.query.labelSelector),
          limit: req.query.limit,
          cursor: req.query.cursor,
        })),
    );

    app.post(
      '/v1/namespaces/:ns/links',
      {
        config: { action: 'link.create', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Create a link',
          description:
            'Creates a veth (its `peer` may go to another namespace, `host` included, in the same call), bridge, macvlan, vxlan, tun, tap or ifb — or dummy, vlan, vrf, bond, wireguard, gre where the kernel has them (else 422 LINK_KIND_UNSUPPORTED naming the kinds that work). Answers 201 with the link and its `Location`. With `up`, both ends of a veth come up. A creation that fails part-way (alias, master, up, peer up) removes the link again, and the problem names the `step`.',
          params: LinkNsParamsSchema,
          body: LinkCreateSchema,
          response: { 201: LinkSchema, ...problemResponses(404, 409, 413, 415, 422) },
        },
      },
      async (req, reply) => {
        if (req.body.kind === 'veth') requireOther(req, req.body.peer?.namespace);
        const link = await service.create(req.params.ns, req.body, opContext(req));
        return reply.code(201).header('location', location(link.namespace, link.name)).send(link);
      },
    );

    app.get(
      '/v1/namespaces/:ns/links/:name',
      {
        config: { namespaceOf: byNs },
        schema: { tags, summary: 'Get a link', params: LinkParamsSchema, response: { 200: LinkSchema, ...problemResponses(404) } },
      },
      async (req) => service.get(req.params.ns, req.params.name),
    );

    app.get(
      '/v1/namespaces/:ns/links/:name/stats',
      {
        config: { namespaceOf: byNs },
        schema: {
          tags,
          summary: "A link's counters",
          description: '64-bit counters (bytes, packets, errors, drops, multicast, collisions) since the link was created.',
          params: LinkParamsSchema,
          response: { 200: LinkStatsSchema, ...problemResponses(404) },
        },
      },
      async (req) => service.stats(req.params.ns, req.params.name),
    );

    app.patch(
      '/v1/namespaces/:ns/links/:name',
      {
        config: { action: 'link.update', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Change a link',
          description:
            '`up`, `mtu`, `mac`, `alias` (null clears), `master` (a bridge in the same namespace; null detaches), `txqlen`, `namespace` (move it, optionally renaming it with `name`: the link goes down and loses its addresses and bridge; the other fields then apply in the new namespace), and `labels` (JSON merge patch). All or nothing: when a step fails, the steps before it are undone and the problem names the `step`. Sent as `application/json` or `application/merge-patch+json`.',
          params: LinkParamsSchema,
          body: LinkPatchSchema,
          response: { 200: LinkSchema, ...problemResponses(404, 409, 413, 415, 422) },
        },
      },
      async (req, reply) => {
        if (req.body.namespace !== undefined && req.body.namespace !== req.params.ns) requireOther(req, req.body.namespace);
        const link = await service.update(req.params.ns, req.params.name, req.body, opContext(req));
        if (link.namespace !== req.params.ns || link.name !== req.params.name) reply.header('location', location(link.namespace, link.name));
        return link;
      },
    );

    app.delete(
      '/v1/namespaces/:ns/links/:name',
      {
        config: { action: 'link.delete', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Delete a link',
          description: 'Answers 204. Deleting either end of a veth removes both ends (wherever the other end is); deleting a link removes the macvlans and vlans on it too.',
          params: LinkParamsSchema,
          response: { 204: Type.Null({ description: 'Deleted.' }), ...problemResponses(404, 422) },
        },
      },
      async (req, reply) => {
        await service.delete(req.params.ns, req.params.name, opContext(req));
        return reply.code(204).send(null);
      },
    );
  };
}
