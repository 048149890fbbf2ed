import { Type, type Static } from '@sinclair/typebox';
import { LINK_NAME_PATTERN, NamespaceNameSchema } from '../names.js';
import { ACTIONS, CT_STATES, FILTER_CHAINS, NAT_TYPES, PROTOCOLS } from './firewall-nft.js';

const linkName = (description: string) => Type.String({ pattern: LINK_NAME_PATTERN, minLength: 1, maxLength: 15, description });
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T, description: string) => Type.Union([t, Type.Null()], { description });
const literals = <T extends readonly string[]>(values: T, description: string) => Type.Unsafe<T[number]>({ type: 'string', enum: [...values], description });

/** The client's part of a rule's comment, in bytes: nft keeps at most 128, and netnsd's `netnsd:ID ` prefix takes up to 22. */
export const MAX_COMMENT_BYTES = 100;

const Port = Type.Union([Type.Integer({ minimum: 1, maximum: 65535 }), Type.String({ pattern: '^[0-9]{1,5}-[0-9]{1,5}$' })], {
  description: 'A port 1-65535 (`22`) or an inclusive range (`"1000-2000"`). Needs `protocol` tcp or udp.',
});
const Address = (description: string) => Type.String({ minLength: 1, maxLength: 64, description });
const Comment = Type.String({
  maxLength: MAX_COMMENT_BYTES,
  pattern: '^[^\\u0000-\\u001f\\u007f]*$',
  description: `Free text, at most ${MAX_COMMENT_BYTES} bytes (UTF-8), no control characters. Kept in the rule's nft comment after netnsd's id.`,
});
const Counters = Type.Object(
  { packets: Type.Integer({ minimum: 0 }), bytes: Type.Integer({ minimum: 0 }) },
  { additionalProperties: false, description: "The rule's counter: packets and bytes it matched since it was made." },
);

export const FirewallNsParamsSchema = Type.Object({ ns: NamespaceNameSchema }, { additionalProperties: false });
export const FirewallRuleParamsSchema = Type.Object(
  { ns: NamespaceNameSchema, id: Type.String({ pattern: '^fw-[a-z0-9]{8}$', description: 'A filter rule id (`fw-…`).' }) },
  { additionalProperties: false },
);
export const FirewallNatParamsSchema = Type.Object(
  { ns: NamespaceNameSchema, id: Type.String({ pattern: '^nat-[a-z0-9]{8}$', description: 'A NAT rule id (`nat-…`).' }) },
  { additionalProperties: false },
);

const matchFields = {
  protocol: Type.Optional(literals(PROTOCOLS, 'tcp, udp, icmp (IPv4 only) or icmpv6 (IPv6 only).')),
  source: Type.Optional(Address('The source: an address or a CIDR (host bits clear), IPv4 or IPv6.')),
  destination: Type.Optional(Address('The destination: an address or a CIDR, of the same family as `source`.')),
  sport: Type.Optional(Port),
  dport: Type.Optional(Port),
  iif: Type.Optional(linkName('The link packets arrive on, by name (`iifname`): it may name a link that does not exist yet.')),
  oif: Type.Optional(linkName('The link packets leave by, by name (`oifname`): it may name a link that does not exist yet.')),
};

export const FirewallRuleCreateSchema = Type.Object(
  {
    chain: literals(FILTER_CHAINS, 'input: packets to this namespace; forward: packets it routes; output: packets it sends.'),
    action: literals(ACTIONS, 'accept, drop, or reject: a tcp rule answers with a TCP reset, any other with ICMP(v6) port unreachable.'),
    ...matchFields,
    state: Type.Optional(
      Type.Array(literals(CT_STATES, 'A conntrack state.'), { minItems: 1, maxItems: CT_STATES.length, uniqueItems: true, description: 'Conntrack states, any of which matches (`["established","related"]`).' }),
    ),
    comment: Type.Optional(Comment),
    position: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 100000, description: "0-based index among the chain's rules: the rule goes before the rule now at that index (equal to the count: at the end). Default: at the end." }),
    ),
  },
  {
    $id: 'FirewallRuleCreate',
    additionalProperties: false,
    description: 'A filter rule in netnsd\'s table `inet netnsd`. Every given field must match (and); a field left out matches anything.',
    examples: [
      { chain: 'input', action: 'drop', protocol: 'icmp', source: '198.51.100.1' },
      { chain: 'input', action: 'accept', state: ['established', 'related'], position: 0 },
      { chain: 'forward', action: 'reject', protocol: 'tcp', dport: 22, iif: 'veth0', comment: 'no ssh through' },
    ],
  },
);
export type FirewallRuleCreate = Static<typeof FirewallRuleCreateSchema>;

export const FirewallRuleSchema = Type.Object(
  {
    id: Type.String({ description: "netnsd's id, kept in the rule's nft comment: it survives restarts and an expert PUT that keeps the rule." }),
    namespace: Type.String(),
    chain: Type.String({ description: 'input, forward or output.' }),
    action: Type.Union([Type.String(), Type.Null()], { description: 'accept, drop or reject (null when an expert PUT changed the rule into something else).' }),
    protocol: Nullable(Type.String(), 'tcp, udp, icmp, icmpv6, or null for any.'),
    source: Nullable(Type.String(), 'Address or CIDR, or null for any.'),
    destination: Nullable(Type.String(), 'Address or CIDR, or null for any.'),
    sport: Type.Union([Type.Integer(), Type.String(), Type.Null()], { description: 'Port or range, or null for any.' }),
    dport: Type.Union([Type.Integer(), Type.String(), Type.Null()], { description: 'Port or range, or null for any.' }),
    iif: Nullable(Type.String(), 'Link name, or null for any.'),
    oif: Nullable(Type.String(), 'Link name, or null for any.'),
    state: Type.Union([Type.Array(Type.String()), Type.Null()], { description: 'Conntrack states, or null for any.' }),
    comment: Nullable(Type.String(), "The client's comment, or null."),
    position: Type.Integer({ description: "Its 0-based index among the chain's rules now." }),
    counters: Counters,
    handle: Type.Integer({ description: "nft's handle of the rule (changes when an expert PUT re-creates it)." }),
  },
  { $id: 'FirewallRule', additionalProperties: false, description: 'A managed filter rule.' },
);
export type FirewallRule = Static<typeof FirewallRuleSchema>;
export const FirewallRuleListSchema = Type.Object({ items: Type.Array(FirewallRuleSchema) }, { $id: 'FirewallRuleList', additionalProperties: false });

export const NatRuleCreateSchema = Type.Object(
  {
    type: literals(NAT_TYPES, 'masquerade (source NAT to the address of the outgoing link; needs oif), snat (needs to), dnat (needs protocol, dport, to).'),
    protocol: Type.Optional(literals(['tcp', 'udp'] as const, 'tcp or udp: needed by dport and by a port in `to`.')),
    source: matchFields.source,
    destination: matchFields.destination,
    dport: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'dnat: the destination port that is forwarded.' })),
    iif: matchFields.iif,
    oif: matchFields.oif,
    to: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'snat/dnat: the new address, optionally with a port: `198.51.100.2`, `198.51.100.2:80`, `[2001:db8::2]:80`.' }),
    ),
    comment: Type.Optional(Comment),
  },
  {
    $id: 'NatRuleCreate',
    additionalProperties: false,
    description: 'A NAT rule in `inet netnsd`: dnat in the prerouting chain (packets arriving from other namespaces; not locally generated ones), masquerade and snat in postrouting.',
    examples: [
      { type: 'masquerade', oif: 'wan0' },
      { type: 'snat', source: '198.51.100.0/24', to: '203.0.113.1' },
      { type: 'dnat', protocol: 'tcp', dport: 8080, to: '198.51.100.2:80' },
    ],
  },
);
export type NatRuleCreate = Static<typeof NatRuleCreateSchema>;

export const NatRuleSchema = Type.Object(
  {
    id: Type.String({ description: "netnsd's id, kept in the rule's nft comment." }),
    namespace: Type.String(),
    type: Type.Union([Type.String(), Type.Null()], { description: 'masquerade, snat or dnat (null when an expert PUT changed the rule into something else).' }),
    chain: Type.String({ description: 'prerouting (dnat) or postrouting (masquerade, snat).' }),
    protocol: Nullable(Type.String(), 'tcp or udp, or null.'),
    source: Nullable(Type.String(), 'Address or CIDR, or null.'),
    destination: Nullable(Type.String(), 'Address or CIDR, or null.'),
    dport: Type.Union([Type.Integer(), Type.String(), Type.Null()], { description: 'The forwarded port, or null.' }),
    iif: Nullable(Type.String(), 'Link name, or null.'),
    oif: Nullable(Type.String(), 'Link name, or null.'),
    to: Nullable(Type.String(), 'The new address (and port), or null for masquerade.'),
    comment: Nullable(Type.String(), "The client's comment, or null."),
    counters: Counters,
    handle: Type.Integer({ description: "nft's handle of the rule." }),
  },
  { $id: 'NatRule', additionalProperties: false, description: 'A managed NAT rule.' },
);
export type NatRule = Static<typeof NatRuleSchema>;
export const NatRuleListSchema = Type.Object({ items: Type.Array(NatRuleSchema) }, { $id: 'NatRuleList', additionalProperties: false });

const PolicyValue = literals(['accept', 'drop'] as const, 'accept or drop.');
export const FirewallPolicySchema = Type.Object(
  { input: PolicyValue, forward: PolicyValue, output: PolicyValue },
  {
    $id: 'FirewallPolicy',
    additionalProperties: false,
    description: "The policies of netnsd's base chains (accept while the table or chain does not exist). A drop here drops what every other table accepts: netfilter drops a packet that any base chain of the hook drops.",
  },
);
export type FirewallPolicy = Static<typeof FirewallPolicySchema>;
export const FirewallPolicyUpdateSchema = Type.Object(
  { input: Type.Optional(PolicyValue), forward: Type.Optional(PolicyValue), output: Type.Optional(PolicyValue) },
  { $id: 'FirewallPolicyUpdate', additionalProperties: false, minProperties: 1, description: 'The policies to set; chains left out keep theirs.', examples: [{ input: 'drop', forward: 'drop' }] },
);
export type FirewallPolicyUpdate = Static<typeof FirewallPolicyUpdateSchema>;

/** Every object and command word of libnftables-json(5) (nftables 1.0.6): one per element. */
const NFT_KEYS = [
  'metainfo', 'table', 'chain', 'rule', 'set', 'map', 'element', 'flowtable', 'counter', 'quota', 'ct helper', 'limit', 'ct timeout', 'ct expectation',
  'secmark', 'synproxy', 'add', 'create', 'insert', 'replace', 'delete', 'destroy', 'flush', 'rename', 'reset',
] as const;

export const NftRulesetSchema = Type.Object(
  {
    nftables: Type.Array(
      // A pattern, not a union of literals: TypeBox makes a literal-keyed record require every key.
      Type.Record(Type.String({ pattern: `^(${NFT_KEYS.join('|')})$` }), Type.Unknown(), {
        additionalProperties: false,
        minProperties: 1,
        maxProperties: 1,
        description: 'One object (`{"table":{...}}`, read as add) or one command (`{"add":{"rule":{...}}}`), as libnftables-json(5) says.',
      }),
      { maxItems: 10000, description: 'The elements, in order.' },
    ),
  },
  {
    $id: 'NftRuleset',
    additionalProperties: false,
    description: 'An nftables JSON document (libnftables-json(5)), such as `nft -j list ruleset` prints: the `ruleset` of GET .../firewall can be sent back as it is.',
  },
);
export type NftRuleset = Static<typeof NftRulesetSchema>;

export const FirewallSchema = Type.Object(
  {
    namespace: Type.String(),
    ruleset: NftRulesetSchema,
    policy: FirewallPolicySchema,
    rules: Type.Array(FirewallRuleSchema, { description: 'The managed filter rules, chain by chain in evaluation order.' }),
    nat: Type.Array(NatRuleSchema, { description: 'The managed NAT rules.' }),
  },
  { $id: 'Firewall', additionalProperties: false, description: "The namespace's whole nftables ruleset (every table, not only netnsd's), and netnsd's managed rules with their counters." },
);
export type Firewall = Static<typeof FirewallSchema>;
