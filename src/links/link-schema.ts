import { Type, type Static } from '@sinclair/typebox';
import { ALIAS_PATTERN, LABEL_PATTERN, LINK_NAME_PATTERN, LabelsSchema, LinkNameSchema, MAC_PATTERN, NAMESPACE_NAME_PATTERN, NamespaceNameSchema } from '../names.js';
import { NextSchema, PageQuerySchema, SeqSchema } from '../paging.js';
import { CREATABLE_LINK_KINDS, MACVLAN_MODES } from '../executor/ops.js';

/** A link name field with its own description. */
const linkName = (description: string) => Type.String({ pattern: LINK_NAME_PATTERN, minLength: 1, maxLength: 15, description });
/** A namespace name field with its own description. */
const nsName = (description: string) => Type.String({ pattern: NAMESPACE_NAME_PATTERN, minLength: 1, maxLength: 64, description });

const NullableString = (description: string, format?: string) =>
  Type.Union([Type.String(format ? { format } : {}), Type.Null()], { description });
const NullableInteger = (description: string) => Type.Union([Type.Integer(), Type.Null()], { description });

export const LinkRefSchema = Type.Object(
  {
    namespace: Type.Union([nsName('A namespace name.'), Type.Null()], {
      description: 'The namespace it is in (`host` for the root namespace); null when that namespace has no name netnsd can see.',
    }),
    name: Type.Union([Type.String(), Type.Null()], { description: 'Its name; null when its namespace has no name (netnsd cannot look inside).' }),
    index: Type.Integer({ description: 'Its ifindex in its own namespace.' }),
  },
  // No $id: it appears twice in a Link, which fast-json-stringify refuses for one $id.
  { additionalProperties: false, description: 'A link, possibly in another namespace.' },
);

const MtuSchema = Type.Integer({ minimum: 68, maximum: 2147483647, description: 'MTU in bytes (68 and up; the device decides its maximum).', examples: [1500] });
const MacSchema = Type.String({ pattern: MAC_PATTERN, description: 'A MAC address, `xx:xx:xx:xx:xx:xx` (unicast, not all zero).', examples: ['02:00:00:00:00:01'] });
const AliasSchema = Type.String({
  pattern: ALIAS_PATTERN,
  maxLength: 255,
  description: 'A free-form alias (`ip link ... alias`): 1-255 visible ASCII characters without quotes, `#` or `\\`.',
  examples: ['uplink-to-lab-a'],
});

export const LinkSchema = Type.Object(
  {
    name: Type.String({ description: 'Its name (as the kernel has it).' }),
    index: Type.Integer({ description: 'The ifindex, unique in its namespace.' }),
    namespace: nsName('The namespace it is in (`host` for the root namespace).'),
    kind: Type.String({
      description:
        'veth, bridge, macvlan, vxlan, tun, tap, ifb, loopback, `device` for a plain device (eth0 & co.), or whatever else the kernel says (`info_kind`).',
      examples: ['veth'],
    }),
    state: Type.Union([Type.Literal('up'), Type.Literal('down')], { description: 'The administrative state (the `UP` flag).' }),
    operstate: Type.String({ description: 'The operational state (RFC 2863): UP, DOWN, LOWERLAYERDOWN, UNKNOWN, ...', examples: ['UP'] }),
    mtu: Type.Integer(),
    mac: NullableString('The link-layer address; null for links without one.'),
    txqlen: NullableInteger('Transmit queue length.'),
    alias: NullableString('The alias, or null.'),
    master: NullableString('The bridge it is a port of (same namespace), or null.'),
    parent: Type.Union([LinkRefSchema, Type.Null()], { description: 'The lower device of a macvlan, vlan or vxlan, or null.' }),
    peer: Type.Union([LinkRefSchema, Type.Null()], {
      description: "A veth's other end, resolved across namespaces; null for other kinds.",
    }),
    managed: Type.Boolean({ description: 'true when netnsd created it.' }),
    labels: LabelsSchema,
    createdAt: NullableString('When netnsd created it; null for links it did not create.', 'date-time'),
    bridge: Type.Optional(Type.Object({ stp: Type.Boolean(), vlanFiltering: Type.Boolean() }, { additionalProperties: false })),
    macvlan: Type.Optional(Type.Object({ mode: Type.String() }, { additionalProperties: false })),
    vxlan: Type.Optional(
      Type.Object(
        {
          vni: Type.Integer(),
          local: NullableString('Source address, or null.'),
          remote: NullableString('Unicast remote, or null.'),
          group: NullableString('Multicast group, or null.'),
          dstport: Type.Integer(),
        },
        { additionalProperties: false },
      ),
    ),
    tun: Type.Optional(
      Type.Object(
        { persist: Type.Boolean(), multiQueue: Type.Boolean(), vnetHdr: Type.Boolean(), pi: Type.Boolean() },
        { additionalProperties: false, description: 'tun and tap devices.' },
      ),
    ),
  },
  { $id: 'Link', additionalProperties: false, description: 'A network interface in a namespace.' },
);
export type Link = Static<typeof LinkSchema>;

export const LinkListSchema = Type.Object({ items: Type.Array(LinkSchema), next: NextSchema, seq: SeqSchema }, { $id: 'LinkList', additionalProperties: false });

export const LinkListQuerySchema = Type.Object(
  {
    kind: Type.Optional(Type.String({ pattern: '^[a-z0-9_-]{1,32}$', description: 'Only links of this kind.', examples: ['veth'] })),
    master: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,15}$', description: 'Only ports of this bridge.' })),
    managed: Type.Optional(Type.Boolean({ description: 'Only links netnsd created (true) or found (false).' })),
    labelSelector: Type.Optional(
      Type.String({ maxLength: 4096, description: 'Comma-separated requirements, all of which must hold: `k=v`, `k!=v`, `k`, `!k`.' }),
    ),
    ...PageQuerySchema,
  },
  { additionalProperties: false },
);
export type LinkListQuery = Static<typeof LinkListQuerySchema>;

export const LinkParamsSchema = Type.Object({ ns: NamespaceNameSchema, name: LinkNameSchema }, { additionalProperties: false });
export const LinkNsParamsSchema = Type.Object({ ns: NamespaceNameSchema }, { additionalProperties: false });

export const LinkCreateSchema = Type.Object(
  {
    name: LinkNameSchema,
    kind: Type.Union(
      CREATABLE_LINK_KINDS.map((k) => Type.Literal(k)),
      { description: 'What to create. Kinds this kernel lacks (see GET /v1/capabilities) answer 422 LINK_KIND_UNSUPPORTED.' },
    ),
    mtu: Type.Optional(MtuSchema),
    mac: Type.Optional(MacSchema),
    up: Type.Optional(Type.Boolean({ description: 'Bring it up (a veth: both ends).', default: false })),
    alias: Type.Optional(AliasSchema),
    master: Type.Optional(linkName('A bridge in the same namespace to attach to.')),
    labels: Type.Optional(LabelsSchema),
    peer: Type.Optional(
      Type.Object(
        {
          name: LinkNameSchema,
          namespace: Type.Optional(nsName('Where the other end goes (`host` allowed); default: the same namespace.')),
        },
        { additionalProperties: false, description: 'veth: the other end.' },
      ),
    ),
    stp: Type.Optional(Type.Boolean({ description: 'bridge: spanning tree on.' })),
    vlanFiltering: Type.Optional(Type.Boolean({ description: 'bridge: VLAN filtering (needs `linkFeatures["bridge.vlan_filtering"]`).' })),
    parent: Type.Optional(linkName('macvlan, vlan (required), vxlan (optional): the lower device, in the same namespace.')),
    mode: Type.Optional(Type.Union(MACVLAN_MODES.map((m) => Type.Literal(m)), { description: 'macvlan mode; default `bridge`.' })),
    vni: Type.Optional(Type.Integer({ minimum: 0, maximum: 16777215, description: 'vxlan: the VXLAN network identifier (required).' })),
    local: Type.Optional(Type.String({ maxLength: 45, description: 'vxlan, gre: source IP address.' })),
    remote: Type.Optional(Type.String({ maxLength: 45, description: 'vxlan (or `group`), gre: the remote IP address.' })),
    group: Type.Optional(Type.String({ maxLength: 45, description: 'vxlan: multicast group (instead of `remote`).' })),
    dstport: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'vxlan: UDP port; default 4789 (IANA).' })),
    vlanId: Type.Optional(Type.Integer({ minimum: 1, maximum: 4094, description: 'vlan: the VLAN id (required).' })),
    table: Type.Optional(Type.Integer({ minimum: 1, maximum: 4294967295, description: 'vrf: the routing table (required).' })),
  },
  {
    $id: 'LinkCreate',
    additionalProperties: false,
    description: 'A link to create. Fields that do not belong to the kind are refused (400).',
    examples: [
      { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'b' }, up: true },
      { name: 'br0', kind: 'bridge', stp: false, up: true },
      { name: 'vx0', kind: 'vxlan', vni: 42, remote: '203.0.113.2', parent: 'eth1' },
    ],
  },
);
export type LinkCreate = Static<typeof LinkCreateSchema>;

export const LinkPatchSchema = Type.Object(
  {
    up: Type.Optional(Type.Boolean()),
    mtu: Type.Optional(MtuSchema),
    mac: Type.Optional(MacSchema),
    alias: Type.Optional(Type.Union([AliasSchema, Type.Null()], { description: 'The alias; null clears it.' })),
    master: Type.Optional(Type.Union([linkName('A bridge in the same namespace.'), Type.Null()], { description: 'A bridge in the same namespace to attach to; null detaches.' })),
    txqlen: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295, description: 'Transmit queue length.' })),
    namespace: Type.Optional(
      nsName('Move the link to this namespace (`host` allowed). It goes down and loses its addresses and its master; the other fields then apply there.'),
    ),
    name: Type.Optional(linkName('With `namespace`: its name in the new namespace.')),
    labels: Type.Optional(
      Type.Record(Type.String({ pattern: LABEL_PATTERN }), Type.Union([Type.String({ pattern: LABEL_PATTERN }), Type.Null()]), {
        additionalProperties: false,
        maxProperties: 64,
        description: 'JSON merge patch (RFC 7396) of the labels.',
      }),
    ),
  },
  { $id: 'LinkPatch', additionalProperties: false, examples: [{ mtu: 9000, up: true }, { master: null }, { namespace: 'c', name: 'eth1' }] },
);
export type LinkPatch = Static<typeof LinkPatchSchema>;

export const LinkStatsSchema = Type.Object(
  {
    rxBytes: Type.Integer(),
    txBytes: Type.Integer(),
    rxPackets: Type.Integer(),
    txPackets: Type.Integer(),
    rxErrors: Type.Integer(),
    txErrors: Type.Integer(),
    rxDropped: Type.Integer(),
    txDropped: Type.Integer(),
    multicast: Type.Integer({ description: 'Multicast packets received.' }),
    collisions: Type.Integer(),
  },
  { $id: 'LinkStats', additionalProperties: false, description: "The link's 64-bit counters (`stats64`) since it was created." },
);
