import { Type, type Static } from '@sinclair/typebox';
import { LINK_NAME_PATTERN, NamespaceNameSchema } from '../names.js';
import { NextSchema, PageQuerySchema, SeqSchema } from '../paging.js';
import { RULE_ACTIONS, RULE_IPPROTOS } from '../executor/ops.js';

const FamilySchema = Type.Unsafe<4 | 6>({ type: 'integer', enum: [4, 6], description: 'The IP version: 4 or 6.' });
const Nullable = <T extends ReturnType<typeof Type.String> | ReturnType<typeof Type.Integer>>(t: T, description: string) => Type.Union([t, Type.Null()], { description });
const Range = (description: string) =>
  Type.Union([Type.Object({ start: Type.Integer(), end: Type.Integer() }, { additionalProperties: false }), Type.Null()], { description });
const linkName = (description: string) => Type.String({ pattern: LINK_NAME_PATTERN, minLength: 1, maxLength: 15, description });
const U32 = 4294967295;

/** A rule id (see RuleSchema.id). */
export const RULE_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';

export const RuleSchema = Type.Object(
  {
    id: Type.String({
      description:
        "Opaque and URL-safe, made from the rule itself: its family, then a hash of its priority, selector and action (the kernel has no other key for a rule — two rules may share a priority, never all of these). The same rule keeps its id across restarts.",
      examples: ['4mC1b0sZ3Yq9n2r8TfXwJdA'],
    }),
    namespace: Type.String(),
    family: FamilySchema,
    priority: Type.Integer({ description: 'Rules are tried in priority order, lowest first (0 is `local`, 32766 `main`, 32767 `default`).' }),
    not: Type.Boolean({ description: 'The rule applies when its selector does NOT match.' }),
    from: Nullable(Type.String(), 'The source prefix it matches, or null for all.'),
    to: Nullable(Type.String(), 'The destination prefix it matches, or null for all.'),
    iif: Nullable(Type.String(), 'The link packets arrive on (`lo` for locally generated ones), or null.'),
    oif: Nullable(Type.String(), 'The link a socket is bound to, or null.'),
    fwmark: Nullable(Type.Integer(), 'The firewall mark it matches, or null.'),
    fwmask: Nullable(Type.Integer(), 'The mask applied to the mark before comparing; null for the whole mark.'),
    ipproto: Nullable(Type.String(), 'The IP protocol it matches (tcp, udp, ...), or null.'),
    sport: Range('The source port range it matches, or null.'),
    dport: Range('The destination port range it matches, or null.'),
    action: Type.String({ description: 'lookup (a table), goto (a later priority), nop, blackhole, unreachable, prohibit.' }),
    table: Nullable(Type.Integer(), 'lookup: the routing table (254 main, 255 local, 253 default).'),
    goto: Nullable(Type.Integer(), 'goto: the priority evaluation continues at.'),
    suppressPrefixLength: Nullable(Type.Integer(), 'lookup: a route found in the table with a prefix this long or shorter is ignored (0 ignores the default route).'),
    tos: Nullable(Type.String(), 'The type of service it matches (`0x10`), or null. Not settable through netnsd.'),
    uidrange: Range('The socket owner uids it matches, or null. Not settable through netnsd.'),
    l3mdev: Type.Boolean({ description: 'A VRF rule (lookup in the table of the l3 master device). Not settable through netnsd.' }),
    realms: Nullable(Type.String(), 'Realms (`FROM/TO`), or null. Not settable through netnsd.'),
    suppressIfgroup: Nullable(Type.String(), 'A link group whose routes are ignored, or null. Not settable through netnsd.'),
    protocol: Nullable(Type.String(), 'Who added it, when it says (`static`, ...); null otherwise.'),
    flags: Type.Array(Type.String(), {
      description: 'unresolved (a goto whose target priority has no rule: it then behaves like nop), iif_detached / oif_detached (the link it names does not exist: the rule matches nothing).',
    }),
  },
  { $id: 'Rule', additionalProperties: false, description: 'A policy routing rule: which table decides the route of the packets it selects.' },
);
export type Rule = Static<typeof RuleSchema>;

export const RuleListSchema = Type.Object({ items: Type.Array(RuleSchema), next: NextSchema, seq: SeqSchema }, { $id: 'RuleList', additionalProperties: false });

export const RuleListQuerySchema = Type.Object(
  {
    family: Type.Optional(FamilySchema),
    table: Type.Optional(Type.String({ pattern: '^(main|local|default|[1-9][0-9]{0,9})$', description: 'Only the rules that look up this table.' })),
    ...PageQuerySchema,
  },
  { additionalProperties: false },
);
export type RuleListQuery = Static<typeof RuleListQuerySchema>;

export const RuleNsParamsSchema = Type.Object({ ns: NamespaceNameSchema }, { additionalProperties: false });
export const RuleParamsSchema = Type.Object(
  { ns: NamespaceNameSchema, id: Type.String({ pattern: RULE_ID_PATTERN, description: 'A rule id, from a list or a creation.' }) },
  { additionalProperties: false },
);

const prefix = (description: string) => Type.String({ maxLength: 64, description });
const Port = Type.Union([Type.Integer({ minimum: 0, maximum: 65535 }), Type.String({ pattern: '^[0-9]{1,5}-[0-9]{1,5}$' })], {
  description: 'A port (`443`) or an inclusive range (`"1000-2000"`).',
});

export const RuleCreateSchema = Type.Object(
  {
    family: Type.Optional(FamilySchema),
    priority: Type.Optional(
      Type.Integer({ minimum: 0, maximum: U32, description: 'Default: just below the first rule after `local`, as `ip rule add` picks (so the newest rule without one comes first).' }),
    ),
    from: Type.Optional(prefix('The source: a prefix (host bits clear) or an address.')),
    to: Type.Optional(prefix('The destination: a prefix (host bits clear) or an address.')),
    not: Type.Optional(Type.Boolean({ description: 'Invert the selector.' })),
    iif: Type.Optional(linkName('The link packets arrive on; `lo` selects locally generated packets. It may name a link that does not exist yet.')),
    oif: Type.Optional(linkName('The link a socket is bound to.')),
    fwmark: Type.Optional(
      Type.Union([Type.Integer({ minimum: 0, maximum: U32 }), Type.String({ pattern: '^0x[0-9A-Fa-f]{1,8}$' })], { description: 'The firewall mark: a number, or hex text (`"0x10"`).' }),
    ),
    fwmask: Type.Optional(
      Type.Union([Type.Integer({ minimum: 0, maximum: U32 }), Type.String({ pattern: '^0x[0-9A-Fa-f]{1,8}$' })], { description: 'The mask for fwmark (default: the whole mark).' }),
    ),
    ipproto: Type.Optional(Type.Union(RULE_IPPROTOS.map((p) => Type.Literal(p)), { description: 'The IP protocol.' })),
    sport: Type.Optional(Port),
    dport: Type.Optional(Port),
    action: Type.Optional(
      Type.Union(RULE_ACTIONS.map((a) => Type.Literal(a)), {
        description: 'Default `lookup` (which needs `table`). `goto` needs `goto`; nop, blackhole, unreachable and prohibit take neither.',
      }),
    ),
    table: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: U32 }), Type.Literal('main'), Type.Literal('local'), Type.Literal('default')], {
        description: 'lookup: the table — a number 1-4294967295, `main`, `local` or `default`.',
      }),
    ),
    goto: Type.Optional(Type.Integer({ minimum: 1, maximum: U32, description: 'goto: a priority after this rule\'s.' })),
    suppressPrefixLength: Type.Optional(Type.Integer({ minimum: 0, maximum: 128, description: 'lookup: ignore routes of the table with a prefix this long or shorter.' })),
  },
  {
    $id: 'RuleCreate',
    additionalProperties: false,
    description: 'A policy rule. The family follows from `from`/`to`; give `family` for a rule without either (default 4).',
    examples: [
      { priority: 1000, from: '203.0.113.5', table: 100 },
      { priority: 1100, fwmark: '0x10', fwmask: '0xff', table: 200 },
      { family: 6, priority: 1200, to: '2001:db8:1::/48', action: 'unreachable' },
      { priority: 1300, ipproto: 'tcp', dport: 443, iif: 'veth0', table: 300 },
    ],
  },
);
export type RuleCreate = Static<typeof RuleCreateSchema>;
