/** Endpoints of /v1/namespaces/{ns}/links/{name}/qdisc (egress) and .../qdisc/ingress. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { namespaceParam, opContext } from '../http/auth-hooks.js';
import { problemResponses } from '../http/problem.js';
import type { QdiscDirection } from '../store/qdisc-records.js';
import { QdiscBodySchema, QdiscParamsSchema, QdiscSchema } from './qdisc-schema.js';
import type { QdiscService } from './qdisc-service.js';

const byNs = namespaceParam('ns');

const HOST_NOTE = 'Links in `host` that netnsd did not create: 403 HOST_PROTECTED unless the configuration sets host.allowChanges.';

const ABOUT: Record<QdiscDirection, { path: string; what: string }> = {
  egress: { path: '/v1/namespaces/:ns/links/:name/qdisc', what: 'the packets the link sends (its root qdisc)' },
  ingress: {
    path: '/v1/namespaces/:ns/links/:name/qdisc/ingress',
    what: 'the packets the link receives, through an ifb link netnsd creates beside it (`LINK-ifb`, labelled `netnsd.io/ifb-for`), an ingress qdisc and a u32 + mirred redirect',
  },
};

export function qdiscApi(service: QdiscService) {
  return async function register(fastify: FastifyInstance): Promise<void> {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['qdisc'];
    for (const direction of ['egress', 'ingress'] as const) {
      const { path, what } = ABOUT[direction];
      app.get(
        path,
        {
          config: { namespaceOf: byNs },
          schema: {
            tags,
            summary: `Get the ${direction} traffic shaping of a link`,
            description: `The shaping of ${what}, with the kernel's counters. \`managed: false\` is the kernel's default (egress) or a qdisc someone else set: its kind, handle and raw options are shown.${direction === 'ingress' ? ' 404 QDISC_NOT_FOUND when the link has no ingress qdisc.' : ''}`,
            params: QdiscParamsSchema,
            response: { 200: QdiscSchema, ...problemResponses(404) },
          },
        },
        async (req) => service.get(req.params.ns, req.params.name, direction),
      );
      app.put(
        path,
        {
          config: { action: `qdisc.set`, namespaceOf: byNs },
          schema: {
            tags,
            summary: `Set the ${direction} traffic shaping of a link`,
            description: `Shapes ${what}. Answers 200 with the result. A kind the kernel lacks: 422 QDISC_UNSUPPORTED. A qdisc netnsd did not set is in the way: 409 QDISC_UNMANAGED (DELETE it first). A failure leaves the previous setup in place (the problem's \`step\` and \`restored\` say what failed and whether that held). Raises \`qdisc.changed\`. ${HOST_NOTE}`,
            params: QdiscParamsSchema,
            body: QdiscBodySchema,
            response: { 200: QdiscSchema, ...problemResponses(404, 409, 413, 415, 422) },
          },
        },
        async (req) => service.set(req.params.ns, req.params.name, direction, req.body, opContext(req)),
      );
      app.delete(
        path,
        {
          config: { action: `qdisc.delete`, namespaceOf: byNs },
          schema: {
            tags,
            summary: `Remove the ${direction} traffic shaping of a link`,
            description: `Restores the kernel's default${direction === 'ingress' ? ' (removes the ingress qdisc, its redirect and the ifb netnsd made)' : ''}, whoever set the qdisc. Answers 204, also when nothing was set (idempotent). Raises \`qdisc.changed\` with \`spec: null\` when something was removed. ${HOST_NOTE}`,
            params: QdiscParamsSchema,
            response: { 204: Type.Null({ description: 'Removed (or nothing was set).' }), ...problemResponses(404) },
          },
        },
        async (req, reply) => {
          await service.delete(req.params.ns, req.params.name, direction, opContext(req));
          return reply.code(204).send(null);
        },
      );
    }
  };
}
