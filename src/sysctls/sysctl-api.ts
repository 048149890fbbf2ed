/** GET/PATCH /v1/namespaces/{ns}/sysctls. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { namespaceParam, opContext } from '../http/auth-hooks.js';
import { problemResponses } from '../http/problem.js';
import { NamespaceNameSchema } from '../names.js';
import type { SysctlService } from './sysctl-service.js';

const KEY_PATTERN = '^net\\.[A-Za-z0-9_./-]{1,120}$';

const SysctlsSchema = Type.Record(Type.String({ pattern: KEY_PATTERN }), Type.Integer(), {
  $id: 'Sysctls',
  additionalProperties: false,
  description: 'Sysctl names (sysctl(8) form; a `.` in a link name is written `/`) and their integer values.',
  examples: [{ 'net.ipv4.ip_forward': 1, 'net.ipv6.conf.all.forwarding': 1, 'net.ipv4.conf.veth0.rp_filter': 2 }],
});

const Params = Type.Object({ ns: NamespaceNameSchema }, { additionalProperties: false });
const byNs = namespaceParam('ns');

export function sysctlApi(service: SysctlService) {
  return async function register(fastify: FastifyInstance): Promise<void> {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['sysctls'];
    app.get(
      '/v1/namespaces/:ns/sysctls',
      {
        config: { namespaceOf: byNs },
        schema: {
          tags,
          summary: "The namespace's allowed net.* sysctls",
          description:
            'Every allowed key (namespace-wide ones, and `net.ipv4.conf.X.*` / `net.ipv6.conf.X.*` for `all`, `default` and each link) with its value, read inside the namespace. `?keys=` limits the answer.',
          params: Params,
          querystring: Type.Object(
            { keys: Type.Optional(Type.String({ maxLength: 8192, description: 'Comma-separated sysctl names.' })) },
            { additionalProperties: false },
          ),
          response: { 200: SysctlsSchema, ...problemResponses(404) },
        },
      },
      async (req) => service.get(req.params.ns, req.query.keys?.split(',').filter(Boolean), opContext(req)),
    );
    app.patch(
      '/v1/namespaces/:ns/sysctls',
      {
        config: { action: 'sysctl.update', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Set sysctls (all or nothing)',
          description:
            'Sets the given keys inside the namespace. Every key must be allowed and every value in its range (else 400 naming each); when the kernel refuses one (422 SYSCTL_REFUSED) the keys written before it get their old values back. `host` needs the admin scope and `host.allowChanges`. Answers every allowed key, as GET does.',
          params: Params,
          body: Type.Record(Type.String({ pattern: KEY_PATTERN }), Type.Integer(), { additionalProperties: false, minProperties: 1, maxProperties: 256 }),
          response: { 200: SysctlsSchema, ...problemResponses(404, 413, 415, 422) },
        },
      },
      async (req) => service.update(req.params.ns, req.body, opContext(req)),
    );
  };
}
