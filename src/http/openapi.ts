/**
 * The OpenAPI 3 document, generated from the endpoints' TypeBox schemas by @fastify/swagger.
 * Schemas with an `$id` are hoisted into `components.schemas` and referenced, so the document
 * names them. `openapi/openapi.json` is this document, written by scripts/gen-openapi.ts.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

export const API_VERSION = '0.1.0';

type Json = unknown;

/** Replaces every object with an `$id` by a `$ref` to components.schemas, collecting them there. */
export function hoistIds(doc: Record<string, unknown>): Record<string, unknown> {
  const components = ((doc.components ??= {}) as Record<string, unknown>);
  const schemas = ((components.schemas ??= {}) as Record<string, Json>);
  const walk = (v: Json): Json => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== 'object') return v;
    const o = v as Record<string, Json>;
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(o)) if (k !== '$id') out[k] = walk(x);
    const id = o.$id;
    if (typeof id === 'string') {
      schemas[id] ??= out;
      return { $ref: `#/components/schemas/${id}` };
    }
    return out;
  };
  const paths = walk(doc.paths);
  const hoisted = walk(schemas) as Record<string, Json>;
  // Sort for a stable document (so the committed copy diffs cleanly).
  components.schemas = Object.fromEntries(Object.keys(hoisted).sort().map((k) => [k, hoisted[k]]));
  return { ...doc, paths };
}

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
        { name: 'system', description: 'Health, capabilities, audit' },
      ],
    },
    transformObject: (documentObject) => {
      if (!('openapiObject' in documentObject)) return documentObject.swaggerObject;
      return hoistIds(documentObject.openapiObject as Record<string, unknown>) as typeof documentObject.openapiObject;
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: false } });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
