/** Endpoints of /v1/namespaces/{ns}/firewall. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { namespaceParam, opContext } from '../http/auth-hooks.js';
import { problemResponses } from '../http/problem.js';
import {
  FirewallNatParamsSchema,
  FirewallNsParamsSchema,
  FirewallPolicySchema,
  FirewallPolicyUpdateSchema,
  FirewallRuleCreateSchema,
  FirewallRuleListSchema,
  FirewallRuleParamsSchema,
  FirewallRuleSchema,
  FirewallSchema,
  NatRuleCreateSchema,
  NatRuleListSchema,
  NatRuleSchema,
  NftRulesetSchema,
} from './firewall-schema.js';
import type { FirewallService } from './firewall-service.js';

const byNs = namespaceParam('ns');
const base = (ns: string): string => `/v1/namespaces/${encodeURIComponent(ns)}/firewall`;

const HOST_FW = 'Changes to the firewall of `host` are 403 HOST_PROTECTED unless the configuration sets host.allowChanges (and need the admin scope).';
const UNAVAILABLE = 'Without a working nftables (see GET /v1/capabilities) every endpoint answers 503 FIREWALL_UNAVAILABLE.';

export function firewallApi(service: FirewallService) {
  return async function register(fastify: FastifyInstance): Promise<void> {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['firewall'];

    app.get(
      '/v1/namespaces/:ns/firewall',
      {
        config: { namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Get the firewall',
          description: `The namespace's whole nftables ruleset (\`nft -j list ruleset\`: every table, not only netnsd's), the policies of netnsd's chains, and the managed filter and NAT rules with their counters. ${UNAVAILABLE}`,
          params: FirewallNsParamsSchema,
          response: { 200: FirewallSchema, ...problemResponses(404) },
        },
      },
      async (req) => service.get(req.params.ns),
    );

    app.put(
      '/v1/namespaces/:ns/firewall',
      {
        config: { action: 'firewall.replace', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Replace the whole ruleset',
          description: `For experts: an nftables JSON document replaces the namespace's **whole** ruleset — every table, netnsd's and others' — in one transaction (\`flush ruleset\` first, then the document; all or nothing), checked with \`nft -c\` before. Managed rules it does not keep are gone (their ids answer 404); rules it keeps with their \`netnsd:ID\` comment keep their ids. A document nft refuses is 400 FIREWALL_RULESET_INVALID with nft's complaints in \`errors\` (\`message\`, and \`command\`: the index in \`nftables\` when nft names one), and the ruleset before it stays. ${HOST_FW}`,
          params: FirewallNsParamsSchema,
          body: NftRulesetSchema,
          response: { 200: FirewallSchema, ...problemResponses(404, 413, 415) },
        },
      },
      async (req) => service.replace(req.params.ns, req.body, opContext(req)),
    );

    app.put(
      '/v1/namespaces/:ns/firewall/policy',
      {
        config: { action: 'firewall.policy', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Set chain policies',
          description: `Sets the policy of netnsd's input, forward and output chains (made when missing). A drop policy in netnsd's table drops what other tables accept: netfilter drops a packet that any base chain on the hook drops. ${HOST_FW}`,
          params: FirewallNsParamsSchema,
          body: FirewallPolicyUpdateSchema,
          response: { 200: FirewallPolicySchema, ...problemResponses(404, 413, 415, 422) },
        },
      },
      async (req) => service.setPolicy(req.params.ns, req.body, opContext(req)),
    );

    app.get(
      '/v1/namespaces/:ns/firewall/rules',
      {
        config: { namespaceOf: byNs },
        schema: { tags, summary: 'List managed filter rules', description: 'Chain by chain, in evaluation order, with counters.', params: FirewallNsParamsSchema, response: { 200: FirewallRuleListSchema, ...problemResponses(404) } },
      },
      async (req) => ({ items: await service.listRules(req.params.ns) }),
    );

    app.post(
      '/v1/namespaces/:ns/firewall/rules',
      {
        config: { action: 'firewall.rule.create', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Add a filter rule',
          description: `Answers 201 with the rule (id, counters, handle, position) and its \`Location\`. \`position\` beyond the chain's end is 422 FIREWALL_POSITION_INVALID. ${HOST_FW}`,
          params: FirewallNsParamsSchema,
          body: FirewallRuleCreateSchema,
          response: { 201: FirewallRuleSchema, ...problemResponses(404, 413, 415, 422) },
        },
      },
      async (req, reply) => {
        const r = await service.addRule(req.params.ns, req.body, opContext(req));
        return reply.code(201).header('location', `${base(r.namespace)}/rules/${r.id}`).send(r);
      },
    );

    app.get(
      '/v1/namespaces/:ns/firewall/rules/:id',
      {
        config: { namespaceOf: byNs },
        schema: { tags, summary: 'Get a managed filter rule', params: FirewallRuleParamsSchema, response: { 200: FirewallRuleSchema, ...problemResponses(404) } },
      },
      async (req) => service.getRule(req.params.ns, req.params.id),
    );

    app.delete(
      '/v1/namespaces/:ns/firewall/rules/:id',
      {
        config: { action: 'firewall.rule.delete', namespaceOf: byNs },
        schema: { tags, summary: 'Delete a managed filter rule', description: `Answers 204. ${HOST_FW}`, params: FirewallRuleParamsSchema, response: { 204: Type.Null({ description: 'Deleted.' }), ...problemResponses(404, 422) } },
      },
      async (req, reply) => {
        await service.deleteRule(req.params.ns, req.params.id, opContext(req));
        return reply.code(204).send(null);
      },
    );

    app.get(
      '/v1/namespaces/:ns/firewall/nat',
      {
        config: { namespaceOf: byNs },
        schema: { tags, summary: 'List managed NAT rules', params: FirewallNsParamsSchema, response: { 200: NatRuleListSchema, ...problemResponses(404) } },
      },
      async (req) => ({ items: await service.listNat(req.params.ns) }),
    );

    app.post(
      '/v1/namespaces/:ns/firewall/nat',
      {
        config: { action: 'firewall.nat.create', namespaceOf: byNs },
        schema: {
          tags,
          summary: 'Add a NAT rule',
          description: `Answers 201 with the rule and its \`Location\`. dnat goes to the prerouting chain (packets arriving from other namespaces), masquerade and snat to postrouting. ${HOST_FW}`,
          params: FirewallNsParamsSchema,
          body: NatRuleCreateSchema,
          response: { 201: NatRuleSchema, ...problemResponses(404, 413, 415, 422) },
        },
      },
      async (req, reply) => {
        const r = await service.addNat(req.params.ns, req.body, opContext(req));
        return reply.code(201).header('location', `${base(r.namespace)}/nat/${r.id}`).send(r);
      },
    );

    app.get(
      '/v1/namespaces/:ns/firewall/nat/:id',
      {
        config: { namespaceOf: byNs },
        schema: { tags, summary: 'Get a managed NAT rule', description: 'The rule and its counters (the `Location` of its creation).', params: FirewallNatParamsSchema, response: { 200: NatRuleSchema, ...problemResponses(404) } },
      },
      async (req) => service.getNat(req.params.ns, req.params.id),
    );

    app.delete(
      '/v1/namespaces/:ns/firewall/nat/:id',
      {
        config: { action: 'firewall.nat.delete', namespaceOf: byNs },
        schema: { tags, summary: 'Delete a managed NAT rule', description: `Answers 204. ${HOST_FW}`, params: FirewallNatParamsSchema, response: { 204: Type.Null({ description: 'Deleted.' }), ...problemResponses(404, 422) } },
      },
      async (req, reply) => {
        await service.deleteNat(req.params.ns, req.params.id, opContext(req));
        return reply.code(204).send(null);
      },
    );
  };
}
