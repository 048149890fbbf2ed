/**
 * The alerts of one subscription, evaluated on its samples. Each (alert, namespace, link) is
 * watched on its own: when the condition holds it becomes pending from the start of the
 * interval whose value met it; once it has held for `for` (measured on the monotonic clock, to
 * the end of the latest interval that met it) it fires; the first sample that does not meet it
 * clears it. A sample without the value (a rate on a link's first sample or after a reset)
 * changes nothing. A watched link that is no longer sampled (it, or its namespace, went away, or
 * the subscription no longer selects it) clears with `gone`; ending the tracker clears the rest
 * with the reason given (`closed`, `replaced`).
 */
import type { NewEvent } from '../store/event-log.js';
import type { ClearReason, TrafficAlertEvent, TrafficSample } from './traffic-schema.js';
import type { ParsedAlert } from './traffic-spec.js';

/** The interval a sample covers: monotonic start and end (ms), and the start's wall time. */
export interface SampleSpan {
  readonly startAt: number;
  readonly endAt: number;
  readonly start: Date;
}

interface Watch {
  readonly alert: ParsedAlert;
  readonly namespace: string;
  readonly link: string;
  firing: boolean;
  /** Monotonic start of the first interval that met the condition, and its wall time. */
  readonly sinceAt: number;
  readonly since: string;
  value: number | null;
  /** The tick that last sampled the link. */
  tick: number;
}

export const TRAFFIC_ALERT = 'traffic.alert';

export class AlertTracker {
  private readonly watches = new Map<string, Watch>();

  constructor(
    /** The subscription's id, named in the events. */
    readonly subscription: number,
    readonly alerts: readonly ParsedAlert[],
  ) {}

  /** Whether any alert may watch links of this namespace (so it must be read). */
  watchesNamespace(namespace: string): boolean {
    return this.alerts.some((a) => a.namespace === undefined || a.namespace.test(namespace));
  }

  /** How many (alert, link) pairs are firing. */
  get firing(): number {
    let n = 0;
    for (const w of this.watches.values()) if (w.firing) n++;
    return n;
  }

  /** Evaluates the alerts that watch the sample's link; state changes are appended to `out` as events. */
  observe(sample: TrafficSample, span: SampleSpan, tick: number, out: NewEvent[]): void {
    for (const a of this.alerts) {
      if (!selects(a, sample.namespace, sample.link)) continue;
      const key = `${a.index}\0${sample.namespace}\0${sample.link}`;
      let w = this.watches.get(key);
      if (w) w.tick = tick;
      const value = sample[a.metric];
      if (value === null) continue;
      if (!a.holds(value)) {
        if (w?.firing) {
          w.value = value;
          out.push(this.event(w, 'cleared', 'recovered'));
        }
        this.watches.delete(key);
        continue;
      }
      if (!w) {
        w = { alert: a, namespace: sample.namespace, link: sample.link, firing: false, sinceAt: span.startAt, since: span.start.toISOString(), value, tick };
        this.watches.set(key, w);
      }
      w.value = value;
      if (!w.firing && span.endAt - w.sinceAt >= a.forMs) {
        w.firing = true;
        out.push(this.event(w, 'firing'));
      }
    }
  }

  /**
   * After a tick: watched links that tick did not sample are gone (cleared if firing), except in
   * namespaces that could not be read this time (`unreadable`: a timeout is not a departure).
   */
  endTick(tick: number, unreadable: ReadonlySet<string>, out: NewEvent[]): void {
    for (const [key, w] of this.watches) {
      if (w.tick === tick || unreadable.has(w.namespace)) continue;
      if (w.firing) out.push(this.event(w, 'cleared', 'gone'));
      this.watches.delete(key);
    }
  }

  /** Clears every firing alert with this reason and forgets the rest. */
  end(reason: ClearReason, out: NewEvent[]): void {
    for (const w of this.watches.values()) if (w.firing) out.push(this.event(w, 'cleared', reason));
    this.watches.clear();
  }

  private event(w: Watch, state: 'firing' | 'cleared', reason?: ClearReason): NewEvent {
    const a = w.alert.input;
    const object: TrafficAlertEvent = {
      subscription: this.subscription,
      alert: w.alert.index,
      link: w.link,
      metric: a.metric,
      ...('above' in a ? { above: a.above } : { below: a.below }),
      for: a.for ?? '0s',
      state,
      value: w.value,
      since: w.since,
      ...(reason === undefined ? {} : { reason }),
    };
    return { type: TRAFFIC_ALERT, namespace: w.namespace, object };
  }
}

function selects(a: ParsedAlert, namespace: string, link: string): boolean {
  return a.link.test(link) && (a.namespace === undefined || a.namespace.test(namespace));
}
