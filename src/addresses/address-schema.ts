import { Type, type Static } from '@sinclair/typebox';
import { LINK_NAME_PATTERN, LinkNameSchema, NamespaceNameSchema } from '../names.js';
import { NextSchema, PageQuerySchema, SeqSchema } from '../paging.js';
import { ADDRESS_SCOPES } from '../executor/ops.js';

const FamilySchema = Type.Unsafe<4 | 6>({ type: 'integer', enum: [4, 6], description: 'The IP version: 4 or 6.' });
const Lifetime = (description: string) => Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description });

/** An address id: base64url (see the README, "Addresses"). */
export const ADDRESS_ID_PATTERN = '^[A-Za-z0-9_-]{1,256}$';

export const AddressSchema = Type.Object(
  {
    id: Type.String({
      description:
        'Opaque and URL-safe, made from the kernel\'s own key for the address (base64url of `IFINDEX|FAMILY|ADDRESS/PREFIX`, plus `|PEER` for a point-to-point address): the same address keeps its id across restarts, and an address removed and added again gets it back.',
      examples: ['Mnw0fDIwMy4wLjExMy4xLzI0'],
    }),
    namespace: Type.String({ description: 'The namespace it is in (`host` for the root namespace).' }),
    link: Type.String({ description: 'The link it is on.' }),
    family: FamilySchema,
    address: Type.String({ description: 'The address with its prefix length (CIDR).', examples: ['203.0.113.1/24'] }),
    prefixLength: Type.Integer(),
    peer: Type.Union([Type.String(), Type.Null()], { description: 'The other end of a point-to-point address, or null.' }),
    broadcast: Type.Union([Type.String(), Type.Null()], { description: 'IPv4: the broadcast address, when one was set.' }),
    scope: Type.String({ description: 'global, link, host, site, or a number.', examples: ['global'] }),
    label: Type.Union([Type.String(), Type.Null()], { description: 'IPv4: the label (the link name unless set); null for IPv6.' }),
    tentative: Type.Boolean({ description: 'IPv6: duplicate address detection is still running (about 2 s after adding without `nodad`); the address cannot be used yet.' }),
    flags: Type.Array(Type.String(), {
      description: 'The kernel\'s flags that are set, by iproute2\'s names: tentative, dadfailed, nodad, deprecated, secondary, dynamic (not permanent), optimistic, ...',
      examples: [['nodad']],
    }),
    validLifetime: Lifetime('Seconds it stays valid; null for forever.'),
    preferredLifetime: Lifetime('Seconds it stays preferred; null for forever.'),
  },
  { $id: 'Address', additionalProperties: false, description: 'An IP address on a link.' },
);
export type Address = Static<typeof AddressSchema>;

export const AddressListSchema = Type.Object({ items: Type.Array(AddressSchema), next: NextSchema, seq: SeqSchema }, { $id: 'AddressList', additionalProperties: false });

export const AddressListQuerySchema = Type.Object(
  {
    link: Type.Optional(Type.String({ pattern: LINK_NAME_PATTERN, minLength: 1, maxLength: 15, description: 'Only the addresses of this link (404 LINK_NOT_FOUND when there is none).' })),
    family: Type.Optional(FamilySchema),
    ...PageQuerySchema,
  },
  { additionalProperties: false },
);
export type AddressListQuery = Static<typeof AddressListQuerySchema>;

export const AddressNsParamsSchema = Type.Object({ ns: NamespaceNameSchema }, { additionalProperties: false });
export const AddressParamsSchema = Type.Object(
  { ns: NamespaceNameSchema, id: Type.String({ pattern: ADDRESS_ID_PATTERN, description: 'An address id, from a list or a creation.' }) },
  { additionalProperties: false },
);

export const AddressCreateSchema = Type.Object(
  {
    link: LinkNameSchema,
    address: Type.String({
      maxLength: 64,
      description:
        'The address and its prefix length: `203.0.113.1/24`, `2001:db8::1/64`. Refused (400): a prefix length out of range, the network or broadcast address of an IPv4 prefix of /30 or shorter, a multicast, unspecified or limited broadcast address. With `peer`, the prefix is the peer\'s.',
      examples: ['203.0.113.1/24'],
    }),
    peer: Type.Optional(Type.String({ maxLength: 45, description: 'The other end of a point-to-point link (same family).', examples: ['203.0.113.2'] })),
    broadcast: Type.Optional(Type.String({ maxLength: 15, description: 'IPv4: the broadcast address.', examples: ['203.0.113.255'] })),
    scope: Type.Optional(
      Type.Union(ADDRESS_SCOPES.map((s) => Type.Literal(s)), { description: 'IPv4: the scope (default global). IPv6 scopes follow from the address itself.' }),
    ),
    label: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,15}$', description: 'IPv4: a label, the link name or `LINK:` followed by anything (15 characters in all).', examples: ['veth0:web'] }),
    ),
    nodad: Type.Optional(Type.Boolean({ description: 'IPv6: skip duplicate address detection, so the address is usable at once (else it is `tentative` for about 2 s).' })),
  },
  {
    $id: 'AddressCreate',
    additionalProperties: false,
    examples: [
      { link: 'veth0', address: '203.0.113.1/24' },
      { link: 'veth0', address: '2001:db8::1/64', nodad: true },
      { link: 'tun0', address: '203.0.113.5/32', peer: '203.0.113.6' },
    ],
  },
);
export type AddressCreate = Static<typeof AddressCreateSchema>;
