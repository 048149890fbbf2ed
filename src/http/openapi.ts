/**
 * The OpenAPI 3 document, generated from the endpoints' TypeBox schemas by @fastify/swagger.
 * Nested schemas with an `$id` become named components. `openapi/openapi.json` is this document,
 * written by scripts/gen-openapi.ts.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

export const API_VERSION = '0.1.0';

export async function installOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'netnsd',
        version: API_VERSION,
        description:
          'Linux network namespaces as an API. Errors are RFC 9457 `application/problem+json` documents with a stable `code`.',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Needed on TCP listeners; the Unix socket is trusted by its file mode.' } },
      },
      security: [{ bearer: [] }],
      tags: [
        { name: 'namespaces', description: 'Network namespaces' },
        { name: 'links', description: 'Links (network interfaces) inside a namespace' },
        { name: 'addresses', description: 'IP addresses of the links of a namespace' },
        { name: 'routes', description: 'IP routes of a namespace' },
        { name: 'neighbors', description: 'Neighbour (ARP and NDP) entries of a namespace' },
        { name: 'sysctls', description: 'Per-namespace net.* settings' },
        { name: 'graph', description: 'The topology across namespaces' },
        { name: 'system', description: 'Health, capabilities, audit' },
      ],
    },
    // Name components after the schemas' `$id`s instead of def-0, def-1, ...
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: false } });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
