import { Type, type Static } from '@sinclair/typebox';
import { DURATION_PATTERN } from '../duration.js';
import { LinkNameSchema, NamespaceNameSchema } from '../names.js';
import { QDISC_KINDS } from '../executor/ops.js';

/** Rates as tc writes them: bits (SI: `kbit` = 1000 bit) or bytes per second (`kbps` = 1000 bytes/s). */
export const RATE_PATTERN = '^[0-9]{1,12}(\\.[0-9]{1,6})?(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps)$';
/** Sizes as tc reads them: `b` bytes, `kb`/`kib` 1024 bytes, `mb`/`mib` 1048576 bytes. */
export const SIZE_PATTERN = '^[0-9]{1,12}(\\.[0-9]{1,6})?(b|kb|mb|kib|mib)$';
export const CLASS_ID_PATTERN = '^1:[0-9a-f]{1,4}$';

const Rate = (description: string) =>
  Type.String({ pattern: RATE_PATTERN, description: `${description} A number and a unit: bit, kbit, mbit, gbit, tbit (bits/s, powers of 1000) or bps, kbps, mbps, gbps (bytes/s, as tc reads them). 8bit to 100gbit.`, examples: ['10mbit', '1gbit'] });
const Size = (description: string) => Type.String({ pattern: SIZE_PATTERN, description: `${description} A number and a unit: b (bytes), kb or kib (1024 bytes), mb or mib (1048576 bytes).`, examples: ['32kb'] });
const Dur = (description: string) => Type.String({ pattern: DURATION_PATTERN, description: `${description} A duration with a unit (\`500ms\`, \`2s\`).` });
const Percent = (description: string) => Type.Number({ minimum: 0, maximum: 100, description: `${description} A percentage, 0-100.` });
const ClassId = (description: string) => Type.String({ pattern: CLASS_ID_PATTERN, description: `${description} \`1:MINOR\` with MINOR in hex as tc writes it (1:10 is minor 0x10), not 1:0.`, examples: ['1:10'] });

export const HtbClassSchema = Type.Object(
  {
    id: ClassId('The class id.'),
    rate: Rate('The rate the class is guaranteed.'),
    ceil: Type.Optional(Rate('The most the class may take by borrowing unused rate (default: its rate; at least its rate).')),
  },
  { additionalProperties: false },
);

export const U32FilterSchema = Type.Object(
  {
    class: ClassId('The class the matching packets go to (one of `classes`).'),
    source: Type.Optional(Type.String({ maxLength: 64, description: 'Source address or prefix (IPv4 or IPv6; host bits clear).' })),
    destination: Type.Optional(Type.String({ maxLength: 64, description: 'Destination address or prefix, of the same family as `source`.' })),
    protocol: Type.Optional(Type.Union([Type.Literal('tcp'), Type.Literal('udp')], { description: 'The transport protocol; needed by sport/dport.' })),
    sport: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Source port.' })),
    dport: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Destination port.' })),
  },
  {
    additionalProperties: false,
    description: 'A u32 match (this kernel has no other classifier). Without an address it matches both families (two u32 filters, IPv4 and IPv6). u32 reads ports at fixed offsets: IPv4 packets with options and IPv6 packets with extension headers do not match.',
  },
);

export const QdiscBodySchema = Type.Object(
  {
    kind: Type.Union(QDISC_KINDS.map((k) => Type.Literal(k)), {
      description: 'tbf (rate, burst, latency), htb (default, classes, filters), netem (delay, jitter, loss, duplicate, reorder, corrupt, rate), or fq_codel, sfq, fq, cake, pfifo, bfifo, prio with the kernel\'s defaults. A kind this kernel lacks (see /v1/capabilities `qdiscs`) is 422 QDISC_UNSUPPORTED.',
    }),
    rate: Type.Optional(Rate('tbf (required), netem: the rate.')),
    burst: Type.Optional(Size('tbf (required): the bucket size, at least 1514b (one full frame) and sent in at most 60s at the rate.')),
    latency: Type.Optional(Dur('tbf (required): how long a packet may wait, 1ms-60s.')),
    default: Type.Optional(ClassId('htb (required): the class of packets no filter matches.')),
    classes: Type.Optional(Type.Array(HtbClassSchema, { minItems: 1, maxItems: 64, description: 'htb (required): the classes, all under the root.' })),
    filters: Type.Optional(Type.Array(U32FilterSchema, { maxItems: 64, description: 'htb: the filters, tried in order.' })),
    delay: Type.Optional(Dur('netem: the added delay, up to 60s.')),
    jitter: Type.Optional(Dur('netem: the delay varies by up to this much (needs delay).')),
    loss: Type.Optional(Percent('netem: packets dropped at random.')),
    duplicate: Type.Optional(Percent('netem: packets sent twice.')),
    reorder: Type.Optional(Percent('netem: packets sent at once, ahead of the delayed ones (needs delay).')),
    corrupt: Type.Optional(Percent('netem: packets with a flipped bit.')),
  },
  {
    $id: 'QdiscSpec',
    additionalProperties: false,
    description: 'The shaping to set. Fields that do not belong to the kind are refused (400).',
    examples: [
      { kind: 'tbf', rate: '1mbit', burst: '32kb', latency: '50ms' },
      { kind: 'htb', default: '1:20', classes: [{ id: '1:10', rate: '1mbit' }, { id: '1:20', rate: '100mbit' }], filters: [{ class: '1:10', protocol: 'tcp', dport: 5001 }] },
      { kind: 'netem', delay: '100ms', jitter: '10ms', loss: 1 },
    ],
  },
);
export type QdiscBody = Static<typeof QdiscBodySchema>;

const CountersSchema = Type.Object(
  {
    bytes: Type.Integer(),
    packets: Type.Integer(),
    drops: Type.Integer(),
    overlimits: Type.Integer({ description: 'Times a packet had to wait (over the rate).' }),
    requeues: Type.Integer(),
    backlog: Type.Integer({ description: 'Bytes queued now.' }),
    qlen: Type.Integer({ description: 'Packets queued now.' }),
  },
  { additionalProperties: false, description: "The kernel's counters (`tc -s`), since the qdisc was set." },
);

export const QdiscSchema = Type.Object(
  {
    namespace: Type.String(),
    link: Type.String(),
    direction: Type.Union([Type.Literal('egress'), Type.Literal('ingress')]),
    managed: Type.Boolean({ description: 'netnsd set it (spec is what it was given); false: the kernel\'s default or a qdisc set by someone else.' }),
    kind: Type.String({ description: 'The kind of the root qdisc as the kernel says (`noqueue` when none is set on a veth; for ingress, the ifb\'s root).' }),
    handle: Type.Union([Type.String(), Type.Null()], { description: 'Its handle (`0:` for the kernel\'s default), null when the link has no qdisc at all (a link that was never up).' }),
    spec: Type.Union([QdiscBodySchema, Type.Null()], { description: 'What netnsd was asked to set; null when unmanaged.' }),
    ifb: Type.Union([Type.String(), Type.Null()], { description: 'ingress: the ifb device the incoming packets are redirected to.' }),
    options: Type.Record(Type.String(), Type.Unknown(), { description: 'The qdisc\'s options as `tc -j` prints them (rates in bytes/s, times in µs): what the kernel made of the spec, or a hand-made qdisc\'s raw settings.' }),
    stats: CountersSchema,
    classes: Type.Array(
      Type.Object({ id: Type.String(), rate: Type.Union([Type.String(), Type.Null()]), ceil: Type.Union([Type.String(), Type.Null()]), stats: CountersSchema }, { additionalProperties: false }),
      { description: 'htb: the classes with their counters (rates as tc prints them).' },
    ),
    filters: Type.Array(
      Type.Object({ protocol: Type.String(), pref: Type.Integer(), class: Type.Union([Type.String(), Type.Null()]) }, { additionalProperties: false }),
      { description: 'htb: the u32 filters the kernel has, in order (their matches are in spec).' },
    ),
    setAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { $id: 'Qdisc', additionalProperties: false, description: 'The traffic shaping of one direction of a link, with its counters.' },
);
export type Qdisc = Static<typeof QdiscSchema>;

export const QdiscParamsSchema = Type.Object({ ns: NamespaceNameSchema, name: LinkNameSchema }, { additionalProperties: false });
