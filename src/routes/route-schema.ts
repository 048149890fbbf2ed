import { Type, type Static } from '@sinclair/typebox';
import { LINK_NAME_PATTERN, NamespaceNameSchema } from '../names.js';
import { NextSchema, PageQuerySchema, SeqSchema } from '../paging.js';
import { ROUTE_SCOPES, ROUTE_TYPES } from '../executor/ops.js';

const FamilySchema = Type.Unsafe<4 | 6>({ type: 'integer', enum: [4, 6], description: 'The IP version: 4 or 6.' });
const Nullable = <T extends ReturnType<typeof Type.String> | ReturnType<typeof Type.Integer>>(t: T, description: string) => Type.Union([t, Type.Null()], { description });
const linkName = (description: string) => Type.String({ pattern: LINK_NAME_PATTERN, minLength: 1, maxLength: 15, description });
const ip = (description: string) => Type.String({ maxLength: 45, description });

export const RouteSchema = Type.Object(
  {
    id: Type.String({
      description:
        "Opaque and URL-safe, made from the kernel's own key for the route (base64url of `TABLE|FAMILY|DST|METRIC|TOS`): the same route keeps its id across restarts and across a PUT.",
      examples: ['MjU0fDR8MTk4LjUxLjEwMC4wLzI0fDB8MA'],
    }),
    namespace: Type.String(),
    family: FamilySchema,
    dst: Type.String({ description: 'The destination prefix (CIDR), or `default`.', examples: ['198.51.100.0/24'] }),
    table: Type.Integer({ description: 'The routing table: 254 is main, 255 local, 253 default.' }),
    type: Type.String({ description: 'unicast, blackhole, unreachable, prohibit; in the local table also local, broadcast, anycast, multicast.' }),
    via: Nullable(Type.String(), 'The gateway, or null.'),
    dev: Nullable(Type.String(), 'The link it goes out of, or null.'),
    src: Nullable(Type.String(), 'The preferred source address, or null.'),
    metric: Type.Integer({ description: 'The metric (priority); IPv6 routes default to 1024, IPv4 to 0.' }),
    tos: Nullable(Type.String(), 'The type of service it matches (`0x10`), or null.'),
    scope: Type.String({ description: 'global, site, link, host.' }),
    protocol: Type.String({ description: 'Who added it: `kernel` for the route of an address, `boot` for netnsd and `ip`, static, dhcp, ...' }),
    mtu: Nullable(Type.Integer(), 'The path MTU it sets, or null.'),
    nexthops: Type.Union(
      [Type.Array(Type.Object({ via: Nullable(Type.String(), 'Gateway.'), dev: Nullable(Type.String(), 'Link.'), weight: Type.Integer() }, { additionalProperties: false })), Type.Null()],
      { description: 'A multipath route\'s next hops; null for a single path.' },
    ),
    flags: Type.Array(Type.String(), { description: 'The kernel\'s route flags (onlink, linkdown, ...).' }),
  },
  { $id: 'Route', additionalProperties: false, description: 'An IP route in a namespace.' },
);
export type Route = Static<typeof RouteSchema>;

export const RouteListSchema = Type.Object({ items: Type.Array(RouteSchema), next: NextSchema, seq: SeqSchema }, { $id: 'RouteList', additionalProperties: false });

export const RouteListQuerySchema = Type.Object(
  {
    table: Type.Optional(
      Type.String({ pattern: '^(all|main|local|[1-9][0-9]{0,9})$', default: 'main', description: '`main` (default), `local`, a table number, or `all` for every table.' }),
    ),
    family: Type.Optional(FamilySchema),
    ...PageQuerySchema,
  },
  { additionalProperties: false },
);
export type RouteListQuery = Static<typeof RouteListQuerySchema>;

export const RouteNsParamsSchema = Type.Object({ ns: NamespaceNameSchema }, { additionalProperties: false });
export const RouteParamsSchema = Type.Object(
  { ns: NamespaceNameSchema, id: Type.String({ pattern: '^[A-Za-z0-9_-]{1,256}$', description: 'A route id, from a list or a creation.' }) },
  { additionalProperties: false },
);

export const RouteCreateSchema = Type.Object(
  {
    dst: Type.String({ maxLength: 64, description: 'A prefix (`198.51.100.0/24`, host bits clear), an address (a host route), or `default`.', examples: ['198.51.100.0/24'] }),
    family: Type.Optional(FamilySchema),
    type: Type.Optional(Type.Union(ROUTE_TYPES.map((t) => Type.Literal(t)), { description: 'Default unicast. blackhole, unreachable and prohibit take no via, dev or nexthops.' })),
    via: Type.Optional(ip('The gateway; it must be reachable on a link (else 422 NEXTHOP_UNREACHABLE). An IPv6 link-local gateway needs `dev`.')),
    dev: Type.Optional(linkName('The link to go out of.')),
    src: Type.Optional(ip('The preferred source address: an address of this namespace.')),
    metric: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295, description: 'The metric (priority); part of the route\'s key.' })),
    table: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: 4294967295 }), Type.Literal('main'), Type.Literal('local')], { description: 'The table: a number 1-4294967295, `main` (default) or `local`.' }),
    ),
    scope: Type.Optional(Type.Union(ROUTE_SCOPES.map((s) => Type.Literal(s)), { description: 'Default: link for a route without a gateway, else global.' })),
    mtu: Type.Optional(Type.Integer({ minimum: 68, maximum: 65535, description: 'The path MTU for this destination.' })),
    nexthops: Type.Optional(
      Type.Array(
        Type.Object(
          {
            via: Type.Optional(ip('Gateway.')),
            dev: Type.Optional(linkName('Link.')),
            weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 256, description: 'Relative share of the traffic (default 1).' })),
          },
          { additionalProperties: false },
        ),
        { minItems: 1, maxItems: 32, description: 'Multipath: the next hops (instead of `via`/`dev`).' },
      ),
    ),
  },
  {
    $id: 'RouteCreate',
    additionalProperties: false,
    description: 'A route. The family follows from the addresses in it; give `family` only for a default route without any.',
    examples: [
      { dst: '198.51.100.0/24', via: '203.0.113.254' },
      { dst: 'default', via: '2001:db8::1', metric: 100 },
      { dst: '198.18.0.0/16', nexthops: [{ via: '203.0.113.1', weight: 2 }, { via: '203.0.113.2' }] },
      { dst: '192.0.2.0/24', type: 'blackhole', table: 100 },
    ],
  },
);
export type RouteCreate = Static<typeof RouteCreateSchema>;
