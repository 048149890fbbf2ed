/**
 * What traffic sampling puts on the wire: the unsequenced `traffic` sample frame, the alerts a
 * subscription may carry, the `object` of a sequenced `traffic.alert` event, and the sampler's
 * part of GET /v1/events/status. The README's "Traffic" section explains the semantics.
 */
import { Type, type Static } from '@sinclair/typebox';
import { DURATION_PATTERN } from '../duration.js';

/** The counters of a sample (64-bit, since the link was made), in wire order. */
export const TRAFFIC_COUNTERS = ['rxBytes', 'txBytes', 'rxPackets', 'txPackets', 'rxErrors', 'txErrors', 'rxDropped', 'txDropped'] as const;
/** The rates of a sample, over the time between it and the link's previous sample. */
export const TRAFFIC_RATES = ['rxBitsPerSecond', 'txBitsPerSecond', 'rxPacketsPerSecond', 'txPacketsPerSecond'] as const;
/** What an alert may watch. */
export const TRAFFIC_METRICS = [...TRAFFIC_COUNTERS, ...TRAFFIC_RATES] as const;

export type TrafficCounter = (typeof TRAFFIC_COUNTERS)[number];
export type TrafficRate = (typeof TRAFFIC_RATES)[number];
export type TrafficMetric = (typeof TRAFFIC_METRICS)[number];

/** Sampling intervals and alert durations, in milliseconds. */
export const MIN_INTERVAL_MS = 500;
export const MAX_INTERVAL_MS = 3_600_000;
export const DEFAULT_INTERVAL = '1s';
export const MAX_FOR_MS = 86_400_000;
export const MAX_ALERTS = 32;

const Glob = (description: string) => Type.String({ pattern: '^[A-Za-z0-9_.*?-]{1,64}$', description });

export const IntervalSchema = Type.String({
  pattern: DURATION_PATTERN,
  description: `How often each selected link is sampled: a duration (\`500ms\`, \`1s\`, \`5m\`), at least 500ms and at most 1h. Default ${DEFAULT_INTERVAL} when \`traffic\` is in \`types\` or alerts are given; without either it is a 400.`,
  examples: ['500ms', '1s', '5m'],
});

const alertFields = {
  namespace: Type.Optional(Glob('Only links of namespaces whose name matches (within what the subscription selects); default every namespace the subscription selects.')),
  link: Glob('The link(s) to watch: a name or a glob (`*`, `?`). The subscription\'s own `link` does not narrow it.'),
  metric: Type.Union(
    TRAFFIC_METRICS.map((m) => Type.Literal(m)),
    { description: 'A counter or a rate of the traffic sample.' },
  ),
  for: Type.Optional(
    Type.String({ pattern: DURATION_PATTERN, description: 'How long the condition must hold before the alert fires (default `0s`: at the first sample that meets it); at most 1d.', examples: ['5s'] }),
  ),
};

/**
 * One alert. Exactly one of `above` and `below`: the condition is `value > above` or
 * `value < below`, on each sample of a matching link.
 */
export const TrafficAlertSchema = Type.Union(
  [
    Type.Object({ ...alertFields, above: Type.Number({ description: 'Fires while the metric is greater than this.' }) }, { additionalProperties: false }),
    Type.Object({ ...alertFields, below: Type.Number({ description: 'Fires while the metric is less than this.' }) }, { additionalProperties: false }),
  ],
  {
    $id: 'TrafficAlert',
    description:
      'A condition on the traffic of the links it names, evaluated on each of the subscription\'s samples: a `traffic.alert` event (sequenced, retained) when it has held for `for` (`firing`) and when it no longer holds (`cleared`). Exactly one of `above` and `below`.',
    examples: [{ link: 'veth0', metric: 'rxBitsPerSecond', above: 50e6, for: '5s' }],
  },
);
export type TrafficAlert = Static<typeof TrafficAlertSchema>;

/** The same fields with `above` and `below` both optional: validated first, for field-by-field errors. */
export const TrafficAlertFieldsSchema = Type.Object(
  { ...alertFields, above: Type.Optional(Type.Number()), below: Type.Optional(Type.Number()) },
  { additionalProperties: false },
);

const counter = (description: string) => Type.Integer({ minimum: 0, description });
const rate = (description: string) =>
  Type.Union([Type.Number({ minimum: 0 }), Type.Null()], { description: `${description}; null on a link's first sample and after its counters went backwards (a reset).` });

export const TrafficSampleSchema = Type.Object(
  {
    type: Type.Literal('traffic'),
    time: Type.String({ format: 'date-time', description: 'When the counters were read.' }),
    namespace: Type.String(),
    link: Type.String(),
    interval: Type.String({ description: 'The subscription\'s sampling interval.' }),
    rxBytes: counter('Bytes received since the link was made (64-bit).'),
    txBytes: counter('Bytes sent.'),
    rxPackets: counter('Packets received.'),
    txPackets: counter('Packets sent.'),
    rxErrors: counter('Receive errors.'),
    txErrors: counter('Send errors.'),
    rxDropped: counter('Received packets dropped.'),
    txDropped: counter('Packets to send dropped.'),
    rxBitsPerSecond: rate('Bits received per second since the previous sample'),
    txBitsPerSecond: rate('Bits sent per second'),
    rxPacketsPerSecond: rate('Packets received per second'),
    txPacketsPerSecond: rate('Packets sent per second'),
  },
  {
    $id: 'TrafficSample',
    additionalProperties: false,
    description: 'One link\'s counters and rates (`types=traffic`): no `seq`, not retained, never replayed; a subscriber that does not keep up loses samples (counted in status), not events.',
  },
);
export type TrafficSample = Static<typeof TrafficSampleSchema>;

export const ALERT_STATES = ['firing', 'cleared'] as const;
export const CLEAR_REASONS = ['recovered', 'gone', 'closed', 'replaced'] as const;
export type ClearReason = (typeof CLEAR_REASONS)[number];

/** The `object` of a `traffic.alert` event. */
export const TrafficAlertEventSchema = Type.Object(
  {
    subscription: Type.Integer({ description: 'The id of the subscription that carries the alert (as in GET /v1/events/status).' }),
    alert: Type.Integer({ minimum: 0, description: 'The alert\'s position in the subscription\'s `alerts`.' }),
    link: Type.String({ description: 'The link it is about.' }),
    metric: alertFields.metric,
    above: Type.Optional(Type.Number()),
    below: Type.Optional(Type.Number()),
    for: Type.String(),
    state: Type.Union(ALERT_STATES.map((s) => Type.Literal(s)), { description: '`firing`: the condition has held for `for`; `cleared`: it no longer does (or can no longer be watched: `reason`).' }),
    value: Type.Union([Type.Number(), Type.Null()], { description: 'The metric in the sample that changed the state (cleared for a reason other than `recovered`: the last one seen).' }),
    since: Type.String({ format: 'date-time', description: 'When the condition began to hold (the start of the first interval that met it); the same in `firing` and its `cleared`.' }),
    reason: Type.Optional(
      Type.Union(CLEAR_REASONS.map((r) => Type.Literal(r)), {
        description: 'cleared: `recovered` (the condition no longer holds), `gone` (the link or its namespace went away), `closed` (the subscription ended), `replaced` (the subscription was given other alerts).',
      }),
    ),
  },
  { $id: 'TrafficAlertEvent', additionalProperties: false, examples: [{ subscription: 3, alert: 0, link: 'veth0', metric: 'rxBitsPerSecond', above: 50e6, for: '5s', state: 'firing', value: 61234567.5, since: '2026-12-02T10:00:00.000Z' }] },
);
export type TrafficAlertEvent = Static<typeof TrafficAlertEventSchema>;

/** A subscriber's traffic part in GET /v1/events/status (null: it samples nothing). */
export const SubscriberTrafficStatusSchema = Type.Union([
  Type.Object(
    {
      interval: Type.String(),
      samples: Type.Boolean({ description: 'Whether it receives `traffic` samples (else it samples for its alerts only).' }),
      alerts: Type.Array(TrafficAlertSchema),
      firing: Type.Integer({ description: 'Alerts firing now (each alert counts once per link).' }),
      delivered: Type.Integer({ description: 'Samples sent.' }),
      dropped: Type.Integer({ description: 'Samples dropped because its queue was full (they are not retained: no gap).' }),
    },
    { additionalProperties: false },
  ),
  Type.Null(),
]);

export const SamplerStatusSchema = Type.Object(
  {
    available: Type.Boolean({ description: 'Whether counters can be read (they need the native helper).' }),
    intervals: Type.Array(
      Type.Object(
        {
          interval: Type.String(),
          subscribers: Type.Integer(),
          namespaces: Type.Integer({ description: 'Namespaces read at the last tick.' }),
        },
        { additionalProperties: false },
      ),
      { description: 'One timer per distinct interval: subscribers of an interval share one counter read per namespace per tick.' },
    ),
    namespacesSampled: Type.Integer({ description: 'Distinct namespaces read at the last tick of each interval.' }),
    readsPerSecond: Type.Number({ description: 'Namespace counter reads per second, over the last 9 whole seconds.' }),
    readErrors: Type.Integer({ description: 'Reads that failed (a namespace that went away, a timeout), since start.' }),
    skippedTicks: Type.Integer({ description: 'Ticks left out because the previous one of the interval had not finished.' }),
  },
  { additionalProperties: false },
);
export type SamplerStatus = Static<typeof SamplerStatusSchema>;
