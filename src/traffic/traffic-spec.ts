/**
 * A subscription's traffic selection, checked: its sampling interval and its alerts. Everything
 * wrong is a REQUEST_INVALID naming each bad field (`querystring.interval`,
 * `querystring.alerts.0.metric`; in a WebSocket `subscribe` message without the `querystring.`).
 */
import { Value } from '@sinclair/typebox/value';
import { formatDuration, parseDuration } from '../duration.js';
import { invalidFields } from '../errors/app-error.js';
import { globToRegExp } from '../events/event-filter.js';
import {
  DEFAULT_INTERVAL, MAX_ALERTS, MAX_FOR_MS, MAX_INTERVAL_MS, MIN_INTERVAL_MS, TrafficAlertFieldsSchema,
  TRAFFIC_METRICS, type TrafficAlert, type TrafficMetric,
} from './traffic-schema.js';

export interface ParsedAlert {
  /** Its position in the subscription's `alerts`. */
  readonly index: number;
  /** As the client gave it (echoed in status and in events). */
  readonly input: TrafficAlert;
  readonly namespace: RegExp | undefined;
  readonly link: RegExp;
  readonly metric: TrafficMetric;
  /** `value > above` or `value < below`. */
  readonly holds: (value: number) => boolean;
  readonly forMs: number;
}

export interface TrafficSpec {
  readonly intervalMs: number;
  /** The interval as frames and status show it (`formatDuration`: `1000ms` is `1s`). */
  readonly interval: string;
  /** Whether `traffic` samples are delivered (else the sampling serves the alerts only). */
  readonly samples: boolean;
  readonly alerts: readonly ParsedAlert[];
}

export interface TrafficInput {
  /** Whether the subscription's types take `traffic`. */
  readonly samples: boolean;
  readonly interval?: string | undefined;
  /** An array of alerts (already JSON-decoded), or undefined. */
  readonly alerts?: unknown;
}

interface FieldError {
  readonly field: string;
  readonly message: string;
}

/** A duration in [min, max] ms, or a field error. */
function durationIn(text: string, field: string, min: number, max: number, errors: FieldError[]): number {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (e) {
    errors.push({ field, message: (e as Error).message });
    return 0;
  }
  if (ms < min || ms > max) errors.push({ field, message: `must be from ${formatDuration(min)} to ${formatDuration(max)}, not ${text}` });
  return ms;
}

/** TypeBox's path (`/0/metric`) as a field name (`.0.metric`). */
const dotted = (path: string): string => path.replaceAll('/', '.');

/** TypeBox's messages in the words the other field errors use. */
function alertFieldMessage(path: string, message: string): string {
  if (message === 'Unexpected property') return 'is not a known field';
  if (message === 'Expected required property') return 'is required';
  if (path === '/metric') return `must be one of ${TRAFFIC_METRICS.join(', ')}`;
  if (path === '/link' || path === '/namespace') return 'must be a name or a glob (* and ?) of 1-64 characters of [A-Za-z0-9_.-]';
  if (path === '/for') return 'must be a duration: a number and a unit of ms, s, m, h or d (5s)';
  return message;
}

function parseAlerts(value: unknown, field: string, errors: FieldError[]): ParsedAlert[] {
  if (!Array.isArray(value)) {
    errors.push({ field, message: 'must be an array of alerts' });
    return [];
  }
  if (value.length > MAX_ALERTS) errors.push({ field, message: `must have at most ${MAX_ALERTS} alerts` });
  const out: ParsedAlert[] = [];
  value.forEach((raw: unknown, index) => {
    const at = `${field}.${index}`;
    if (!Value.Check(TrafficAlertFieldsSchema, raw)) {
      const seen = new Set<string>();
      for (const e of Value.Errors(TrafficAlertFieldsSchema, raw)) {
        const f = `${at}${dotted(e.path)}`;
        if (seen.has(f)) continue; // TypeBox reports a missing field twice (required, then its type)
        seen.add(f);
        errors.push({ field: f, message: alertFieldMessage(e.path, e.message) });
      }
      return;
    }
    const hasAbove = raw.above !== undefined;
    if (hasAbove === (raw.below !== undefined)) {
      errors.push({ field: at, message: hasAbove ? 'give one of above and below, not both' : 'needs above or below' });
      return;
    }
    const forMs = raw.for === undefined ? 0 : durationIn(raw.for, `${at}.for`, 0, MAX_FOR_MS, errors);
    // The fields schema and the one-of check together are the union schema clients see.
    const input = raw as TrafficAlert;
    const limit = hasAbove ? (raw.above as number) : (raw.below as number);
    out.push({
      index,
      input,
      namespace: raw.namespace === undefined ? undefined : globToRegExp(raw.namespace),
      link: globToRegExp(raw.link),
      metric: raw.metric,
      holds: hasAbove ? (v) => v > limit : (v) => v < limit,
      forMs,
    });
  });
  return out;
}

/**
 * The checked traffic selection, or undefined when the subscription samples nothing (no
 * `traffic` in its types and no alerts). `prefix` goes before field names (`querystring.`).
 */
export function parseTrafficSpec(input: TrafficInput, prefix: string): TrafficSpec | undefined {
  const errors: FieldError[] = [];
  const alerts = input.alerts === undefined ? [] : parseAlerts(input.alerts, `${prefix}alerts`, errors);
  const wanted = input.samples || (Array.isArray(input.alerts) && input.alerts.length > 0);
  if (!wanted && input.interval !== undefined) {
    errors.push({ field: `${prefix}interval`, message: 'applies to traffic samples and alerts: add traffic to types, or give alerts' });
  }
  const intervalMs = durationIn(input.interval ?? DEFAULT_INTERVAL, `${prefix}interval`, MIN_INTERVAL_MS, MAX_INTERVAL_MS, errors);
  if (errors.length > 0) throw invalidFields(errors);
  if (!wanted) return undefined;
  return { intervalMs, interval: formatDuration(intervalMs), samples: input.samples, alerts };
}

/** `alerts` as a query parameter: a JSON array in a string. */
export function alertsFromQuery(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw invalidFields([{ field: 'querystring.alerts', message: 'must be a JSON array of alerts, e.g. [{"link":"veth0","metric":"rxBitsPerSecond","above":1000,"for":"1s"}]' }]);
  }
}
