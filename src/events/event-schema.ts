import { Type, type Static } from '@sinclair/typebox';
import { IntervalSchema, MAX_ALERTS, SamplerStatusSchema, SubscriberTrafficStatusSchema, TrafficAlertSchema } from '../traffic/traffic-schema.js';
import { EVENT_TYPES } from './event-filter.js';

const Glob = (description: string) => Type.String({ pattern: '^[A-Za-z0-9_.*?-]{1,64}$', description });

export const EventsQuerySchema = Type.Object(
  {
    types: Type.Optional(
      Type.String({
        maxLength: 1024,
        description: `Comma list of event types, \`*\` wildcards allowed (\`link.*\`, \`address.added\`); default every type but \`traffic\`. Known: ${EVENT_TYPES.join(', ')}. \`traffic\` (samples) is selected only by its own name, never by a wildcard. An unknown type is a 400.`,
        examples: ['link.*,address.*'],
      }),
    ),
    namespace: Type.Optional(Glob('Only events of namespaces whose name matches (a name, or a glob with `*` and `?`).')),
    link: Type.Optional(Glob('Only events about links whose name matches (a link\'s, an address\'s or neighbour\'s link, a route\'s dev); events about no link are then left out.')),
    labelSelector: Type.Optional(Type.String({ maxLength: 1024, description: 'Only events of namespaces whose labels match (`k=v,k2!=v2,k3,!k4`).' })),
    since: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Replay every retained event after this seq, then go on live. Older than retained: a `gap` first. SSE: the `Last-Event-ID` header does the same.' }),
    ),
    onOverflow: Type.Optional(
      Type.Union([Type.Literal('gap'), Type.Literal('close')], {
        description: 'When this subscriber\'s queue overflows: `gap` (default) drops events and sends a gap marker naming them; `close` closes the stream (WebSocket close code 4008).',
      }),
    ),
    ticket: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{16,64}$', description: 'A single-use ticket from POST /v1/events/tickets, instead of the Authorization header.' })),
    interval: Type.Optional(IntervalSchema),
    alerts: Type.Optional(
      Type.String({
        maxLength: 16384,
        description: `Traffic alerts: a JSON array of up to ${MAX_ALERTS} TrafficAlert objects (\`[{"link":"veth0","metric":"rxBitsPerSecond","above":1000,"for":"1s"}]\`). Their links are sampled at \`interval\` even without \`traffic\` in \`types\`, and \`traffic.alert\` is added to \`types\`.`,
      }),
    ),
  },
  { additionalProperties: false },
);
export type EventsQuery = Static<typeof EventsQuerySchema>;

/** What a WebSocket client may send to change its selection. */
export const SubscribeMessageSchema = Type.Object(
  {
    op: Type.Literal('subscribe'),
    types: EventsQuerySchema.properties.types,
    namespace: EventsQuerySchema.properties.namespace,
    link: EventsQuerySchema.properties.link,
    labelSelector: EventsQuerySchema.properties.labelSelector,
    since: EventsQuerySchema.properties.since,
    interval: EventsQuerySchema.properties.interval,
    alerts: Type.Optional(Type.Array(TrafficAlertSchema, { maxItems: MAX_ALERTS, description: 'Traffic alerts, as in the query parameter but as an array.' })),
  },
  { $id: 'SubscribeMessage', additionalProperties: false, description: 'Sent by a WebSocket client: replaces its selection, traffic sampling and alerts included (and replays from `since` when given).' },
);
export type SubscribeMessage = Static<typeof SubscribeMessageSchema>;

export const EventSchema = Type.Object(
  {
    seq: Type.Integer({ minimum: 1, description: 'Position in the event log: grows by one per event, never reused, across restarts too.' }),
    time: Type.String({ format: 'date-time' }),
    type: Type.String({ description: EVENT_TYPES.join(', ') }),
    namespace: Type.Union([Type.String(), Type.Null()], { description: 'The namespace it happened in (null for resync).' }),
    object: Type.Optional(Type.Unknown({ description: 'The object as the REST API shows it (a namespace, link, address, route, rule, neighbour); for `*.removed` as it was. `traffic.alert`: a TrafficAlertEvent.' })),
    changes: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: '`*.changed`: the previous values of the fields that changed.' })),
    namespaces: Type.Optional(Type.Array(Type.String(), { description: 'resync: the namespaces that were re-read.' })),
    differences: Type.Optional(Type.Array(Type.Unknown(), { description: 'resync: what differed from what netnsd knew, as events without seq.' })),
    reason: Type.Optional(Type.String({ description: 'resync: why netnsd re-read (start, monitor restart, overflow).' })),
    link: Type.Optional(Type.String({ description: '`qdisc.changed`: the link whose shaping netnsd changed.' })),
    direction: Type.Optional(Type.String({ description: '`qdisc.changed`: `egress` or `ingress`.' })),
    spec: Type.Optional(Type.Unknown({ description: '`qdisc.changed`: the QdiscSpec now set, or null after a DELETE.' })),
    change: Type.Optional(Type.String({ description: '`firewall.changed`: rule.added, rule.removed, nat.added, nat.removed, policy or ruleset (a PUT of the whole ruleset).' })),
    id: Type.Optional(Type.String({ description: '`firewall.changed`: the managed rule added or removed.' })),
  },
  { $id: 'Event', description: 'One sequenced change.' },
);

export const GapSchema = Type.Object(
  {
    type: Type.Literal('gap'),
    from: Type.Integer({ description: 'The first seq this subscriber will not get.' }),
    to: Type.Integer({ description: 'The last seq this subscriber will not get (inclusive).' }),
  },
  { $id: 'Gap', additionalProperties: false, description: 'Events this subscriber will not get (lost to overflow, or older than retained): re-list to catch up.' },
);

export const SubscribedSchema = Type.Object(
  {
    type: Type.Literal('subscribed'),
    types: Type.Optional(Type.String()),
    namespace: Type.Optional(Type.String()),
    link: Type.Optional(Type.String()),
    labelSelector: Type.Optional(Type.String()),
    since: Type.Optional(Type.Integer()),
    seq: Type.Integer({ description: 'The newest seq when the selection took effect.' }),
  },
  { $id: 'Subscribed', description: 'WebSocket only: the selection in effect, first after connecting and after each `subscribe` message. Further fields echo the selection (traffic `interval`, `alerts`).' },
);

export const StreamErrorSchema = Type.Object(
  {
    type: Type.Literal('error'),
    code: Type.String({ description: 'A stable code of the error table (REQUEST_INVALID, ...).' }),
    detail: Type.String(),
    errors: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }), { description: 'Each bad field, as in a 400 problem.' })),
  },
  { $id: 'StreamError', additionalProperties: false, description: 'WebSocket only: a `subscribe` message was refused; the selection before it stays.' },
);

export const TicketSchema = Type.Object(
  {
    ticket: Type.String({ description: 'Pass as `?ticket=` to GET /v1/events. Valid once, for 30 s.' }),
    expiresAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'EventTicket', additionalProperties: false },
);

export const EventsStatusSchema = Type.Object(
  {
    retained: Type.Object(
      { first: Type.Integer({ description: 'The oldest retained seq (last + 1 when none is).' }), last: Type.Integer({ description: 'The newest seq ever given (0: none yet).' }) },
      { additionalProperties: false },
    ),
    subscribers: Type.Array(
      Type.Object(
        {
          id: Type.Integer(),
          actor: Type.String(),
          transport: Type.Union([Type.Literal('websocket'), Type.Literal('sse')]),
          connectedAt: Type.String({ format: 'date-time' }),
          filter: Type.Record(Type.String(), Type.Unknown()),
          queueDepth: Type.Integer(),
          delivered: Type.Integer(),
          dropped: Type.Integer({ description: 'Events lost to overflow.' }),
          gaps: Type.Integer({ description: 'Gap markers sent.' }),
          replaying: Type.Boolean(),
          traffic: SubscriberTrafficStatusSchema,
        },
        { additionalProperties: false },
      ),
    ),
    monitor: Type.Object(
      {
        running: Type.Boolean({ description: 'Whether the kernel monitor runs.' }),
        restarts: Type.Integer({ description: 'How often the kernel monitor was restarted.' }),
        resyncs: Type.Integer({ description: 'How often netnsd re-read state (start, restart, overflow).' }),
        overflows: Type.Integer({ description: 'How often the kernel dropped events because the monitor\'s socket queue was full (each one is followed by a resync).' }),
        namespaces: Type.Integer({ description: 'Namespaces the monitor watches (the host included).' }),
      },
      { additionalProperties: false },
    ),
    traffic: SamplerStatusSchema,
  },
  { $id: 'EventsStatus', additionalProperties: false },
);
export type EventsStatus = Static<typeof EventsStatusSchema>;
