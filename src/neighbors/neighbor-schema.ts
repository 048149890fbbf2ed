import { Type, type Static } from '@sinclair/typebox';
import { LINK_NAME_PATTERN, LinkNameSchema, MAC_PATTERN, NamespaceNameSchema } from '../names.js';
import { NextSchema, PageQuerySchema, SeqSchema } from '../paging.js';

const FamilySchema = Type.Unsafe<4 | 6>({ type: 'integer', enum: [4, 6], description: 'The IP version: 4 (ARP) or 6 (neighbour discovery).' });

/** The NUD states the kernel has (include/uapi/linux/neighbour.h), by iproute2's names in lower case. */
export const NEIGHBOR_STATES = ['permanent', 'noarp', 'reachable', 'stale', 'delay', 'probe', 'incomplete', 'failed', 'none'] as const;

/** A neighbour id: base64url (see the README, "Neighbours"). */
export const NEIGHBOR_ID_PATTERN = '^[A-Za-z0-9_-]{1,256}$';

export const NeighborSchema = Type.Object(
  {
    id: Type.String({
      description:
        "Opaque and URL-safe, made from the kernel's own key for the entry (base64url of `LINK|FAMILY|ADDRESS`): the same entry keeps its id across restarts and across a PUT, and an entry removed and made again (by netnsd or by ARP) gets it back. A link renamed gives its entries new ids.",
      examples: ['dmF8NHwyMDMuMC4xMTMuOQ'],
    }),
    namespace: Type.String({ description: 'The namespace it is in (`host` for the root namespace).' }),
    link: Type.String({ description: 'The link it is on.' }),
    family: FamilySchema,
    address: Type.String({ description: 'The neighbour\'s IP address.', examples: ['203.0.113.9'] }),
    mac: Type.Union([Type.String(), Type.Null()], {
      description: 'Its link-layer (MAC) address, or null when the kernel has none (an incomplete or failed resolution).',
      examples: ['02:00:00:00:00:09'],
    }),
    states: Type.Array(Type.String(), {
      description:
        'The kernel\'s NUD states that are set (usually one): `permanent` (static, made by netnsd or `ip neigh`), `noarp` (static, made by the kernel: multicast, loopback), and the states of a learnt entry: `reachable`, `stale`, `delay`, `probe`, `incomplete`, `failed`, `none`.',
      examples: [['permanent']],
    }),
    router: Type.Boolean({ description: 'IPv6: the neighbour is a router (the IsRouter flag of neighbour discovery).' }),
    flags: Type.Array(Type.String(), { description: 'The kernel\'s entry flags that are set, by iproute2\'s names: router, extern_learn, offload, managed, ...', examples: [[]] }),
  },
  { $id: 'Neighbor', additionalProperties: false, description: 'A neighbour entry (ARP for IPv4, neighbour discovery for IPv6): which link-layer address an IP address on a link has.' },
);
export type Neighbor = Static<typeof NeighborSchema>;

export const NeighborListSchema = Type.Object({ items: Type.Array(NeighborSchema), next: NextSchema, seq: SeqSchema }, { $id: 'NeighborList', additionalProperties: false });

export const NeighborListQuerySchema = Type.Object(
  {
    link: Type.Optional(Type.String({ pattern: LINK_NAME_PATTERN, minLength: 1, maxLength: 15, description: 'Only the entries of this link (404 LINK_NOT_FOUND when there is none).' })),
    family: Type.Optional(FamilySchema),
    state: Type.Optional(
      Type.Union([...NEIGHBOR_STATES.map((s) => Type.Literal(s)), Type.Literal('all')], {
        description: 'Only entries in this state, or `all`. Without it, as `ip neigh show`: every entry but the kernel\'s own `noarp` ones (multicast, loopback) and `none` ones.',
      }),
    ),
    ...PageQuerySchema,
  },
  { additionalProperties: false },
);
export type NeighborListQuery = Static<typeof NeighborListQuerySchema>;

export const NeighborNsParamsSchema = Type.Object({ ns: NamespaceNameSchema }, { additionalProperties: false });
export const NeighborParamsSchema = Type.Object(
  { ns: NamespaceNameSchema, id: Type.String({ pattern: NEIGHBOR_ID_PATTERN, description: 'A neighbour id, from a list or a creation.' }) },
  { additionalProperties: false },
);

export const NeighborCreateSchema = Type.Object(
  {
    link: LinkNameSchema,
    address: Type.String({
      maxLength: 45,
      description: 'The neighbour\'s IPv4 or IPv6 address (no prefix length, no zone id). Refused (400): the unspecified, a multicast, or the limited broadcast address.',
      examples: ['203.0.113.9'],
    }),
    mac: Type.String({
      pattern: MAC_PATTERN,
      description: 'Its link-layer (MAC) address: six hex pairs separated by `:`. Not all zero; a multicast MAC is taken (some clusters answer on one).',
      examples: ['02:00:00:00:00:09'],
    }),
    router: Type.Optional(Type.Boolean({ description: 'IPv6 only: mark the neighbour as a router (default false).' })),
  },
  {
    $id: 'NeighborCreate',
    additionalProperties: false,
    description: 'A permanent neighbour entry: the kernel sends to this MAC without asking (no ARP or neighbour solicitation), until the entry is deleted.',
    examples: [
      { link: 'veth0', address: '203.0.113.9', mac: '02:00:00:00:00:09' },
      { link: 'veth0', address: '2001:db8::9', mac: '02:00:00:00:00:09', router: true },
    ],
  },
);
export type NeighborCreate = Static<typeof NeighborCreateSchema>;
