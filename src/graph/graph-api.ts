/** GET /v1/graph: the topology as JSON, or Graphviz with ?format=dot. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { canUseNamespace } from '../auth/tokens.js';
import { problemResponses } from '../http/problem.js';
import { GraphQuerySchema, GraphSchema } from './graph-schema.js';
import { type GraphService, toDot } from './graph-service.js';

export function graphApi(service: GraphService) {
  return async function register(fastify: FastifyInstance): Promise<void> {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    app.get(
      '/v1/graph',
      {
        schema: {
          tags: ['graph'],
          summary: 'The topology: namespaces, links, and what connects them',
          description:
            'Every namespace the caller may see as a node group, every link as a node, and edges for veth pairs (across namespaces), bridge ports and lower devices (macvlan/vxlan parents). A veth whose other end is in a namespace the caller may not see, or one without a name, ends in a node without details. `?format=dot` answers Graphviz text.',
          querystring: GraphQuerySchema,
          response: {
            200: {
              description: 'The graph',
              content: {
                'application/json': { schema: GraphSchema },
                'text/vnd.graphviz': { schema: Type.String() },
              },
            },
            ...problemResponses(),
          },
        },
      },
      async (req, reply) => {
        const g = await service.graph((name) => canUseNamespace(req.principal, name));
        if (req.query.format === 'dot') return reply.type('text/vnd.graphviz').send(toDot(g));
        return reply.type('application/json').send(g);
      },
    );
  };
}
