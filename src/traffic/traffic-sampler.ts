/**
 * Traffic sampling, shared by every subscription that wants it. Subscriptions of the same
 * interval form a group with one timer; at each tick the group reads each namespace that any of
 * its subscriptions selects once (one rtnetlink link dump: every link's counters), makes one
 * sample per link, and hands it to each subscription that selects the link (samples go through
 * the subscriber's bounded queue, and are dropped when it is full) and to each subscription's
 * alerts. A namespace nobody selects is not read; a group without subscriptions stops its timer
 * and forgets its previous counters — counters are read only while someone needs them.
 *
 * Rates are over the time between a link's two reads on the monotonic clock (not the nominal
 * interval: a late tick does not inflate them). A link's first sample, and a sample whose
 * counters went backwards or whose ifindex changed (the link was made again under its name: a
 * reset), carry the counters with null rates. Namespaces that go away are skipped, logged once,
 * and their links' alerts clear with `gone`.
 */
import type { EventBus, Subscription } from '../events/event-bus.js';
import { namespacePasses } from '../events/event-filter.js';
import type { LinkCounters } from '../executor/ops.js';
import type { LinkCounterSample } from '../netlink/stats.js';
import type { NewEvent } from '../store/event-log.js';
import { AlertTracker, type SampleSpan } from './traffic-alerts.js';
import { TRAFFIC_COUNTERS, type SamplerStatus, type TrafficSample } from './traffic-schema.js';
import type { TrafficSpec } from './traffic-spec.js';

/** Every link of a namespace with its counters; throws (`code` ENOENT) when the namespace is gone. */
export type CounterSource = (namespace: string) => readonly LinkCounterSample[] | Promise<readonly LinkCounterSample[]>;

export interface Clock {
  /** Monotonic milliseconds (rates and `for` are measured on it). */
  now(): number;
  /** Wall-clock time, for `time` and `since`. */
  date(): Date;
  /** Calls fn every ms until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  date: () => new Date(),
  every: (ms, fn) => {
    const t = setInterval(fn, ms);
    t.unref();
    return () => clearInterval(t);
  },
};

interface Logger {
  debug(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface TrafficSamplerOptions {
  /** Undefined: counters cannot be read here (no native helper); subscriptions that need them are refused. */
  readonly source: CounterSource | undefined;
  /** Every namespace there is (`host` included when it may be sampled). */
  readonly namespaces: () => Promise<readonly string[]>;
  readonly bus: EventBus;
  readonly clock?: Clock;
  readonly log?: Logger;
  /** Namespaces read between two turns of the event loop (reads are synchronous). Default 16. */
  readonly readsPerSlice?: number;
}

/** Rounds a rate to a thousandth: more digits are noise, not precision. */
const round = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * One link's sample: its counters now, and the rates since `prev` (null without one, when no time
 * passed, or when any counter is lower than before: a reset, not a negative rate).
 */
export function trafficSample(
  namespace: string,
  link: string,
  interval: string,
  time: string,
  c: LinkCounters,
  prev?: { readonly counters: LinkCounters; readonly elapsedMs: number },
): TrafficSample {
  const ok = prev !== undefined && prev.elapsedMs > 0 && TRAFFIC_COUNTERS.every((k) => c[k] >= prev.counters[k]);
  const per = (now: number, before: number, scale: number): number | null => (ok ? round(((now - before) * scale * 1000) / prev.elapsedMs) : null);
  const p = prev?.counters;
  return {
    type: 'traffic',
    time,
    namespace,
    link,
    interval,
    rxBytes: c.rxBytes,
    txBytes: c.txBytes,
    rxPackets: c.rxPackets,
    txPackets: c.txPackets,
    rxErrors: c.rxErrors,
    txErrors: c.txErrors,
    rxDropped: c.rxDropped,
    txDropped: c.txDropped,
    rxBitsPerSecond: per(c.rxBytes, p?.rxBytes ?? 0, 8),
    txBitsPerSecond: per(c.txBytes, p?.txBytes ?? 0, 8),
    rxPacketsPerSecond: per(c.rxPackets, p?.rxPackets ?? 0, 1),
    txPacketsPerSecond: per(c.txPackets, p?.txPackets ?? 0, 1),
  };
}

interface Entry {
  readonly sub: Subscription;
  readonly spec: TrafficSpec;
  readonly alerts: AlertTracker;
}

interface Previous {
  readonly index: number;
  readonly counters: LinkCounters;
  readonly at: number;
}

interface Group {
  readonly intervalMs: number;
  readonly interval: string;
  readonly entries: Set<Entry>;
  readonly stop: () => void;
  running: boolean;
  tick: number;
  /** namespace -> link -> the last read (only of namespaces read at the last tick). */
  readonly prev: Map<string, Map<string, Previous>>;
}

/** Reads per second over the last 9 whole seconds (fewer, in the first 10 s of reading). */
class RateMeter {
  private readonly buckets = new Array<number>(10).fill(0);
  private readonly second = new Array<number>(10).fill(-1);
  private first: number | undefined;

  constructor(private readonly now: () => number) {}

  add(): void {
    const s = Math.floor(this.now() / 1000);
    this.first ??= s;
    const i = s % 10;
    if (this.second[i] !== s) {
      this.second[i] = s;
      this.buckets[i] = 0;
    }
    this.buckets[i]!++;
  }

  perSecond(): number {
    const s = Math.floor(this.now() / 1000);
    let sum = 0;
    // Whole seconds only: not the current one, nor the (partial) one of the first read.
    const from = Math.max(s - 10, this.first ?? s);
    for (let i = 0; i < 10; i++) if (this.second[i]! > from && this.second[i]! < s) sum += this.buckets[i]!;
    const span = s - from - 1;
    return span <= 0 ? 0 : sum / span;
  }
}

/** Errors that mean the namespace is not there (any more, or not yet a mounted namespace). */
const GONE = new Set(['ENOENT', 'EINVAL']);

export class TrafficSampler {
  private readonly entries = new Map<Subscription, Entry>();
  private readonly groups = new Map<number, Group>();
  private readonly hooked = new WeakSet<Subscription>();
  private readonly clock: Clock;
  private readonly reads: RateMeter;
  private readonly inflight = new Set<Promise<void>>();
  /** Namespaces whose last read failed, with the errno name (logged once per change). */
  private readonly failing = new Map<string, string>();
  /** The namespaces read at each group's last tick (for status). */
  private readonly lastRead = new Map<number, ReadonlySet<string>>();
  private list: { at: number; names: Promise<readonly string[]> } | undefined;
  private readErrors = 0;
  private skippedTicks = 0;
  private closed = false;

  constructor(private readonly o: TrafficSamplerOptions) {
    this.clock = o.clock ?? systemClock;
    this.reads = new RateMeter(() => this.clock.now());
  }

  /** Whether counters can be read at all. */
  get available(): boolean {
    return this.o.source !== undefined;
  }

  /**
   * Samples for `sub` as `spec` says from now on (undefined: nothing). Giving a subscription a new
   * spec keeps its alerts' state when the alerts are the same, else clears the firing ones
   * (`replaced`). A closed subscription is detached by itself (its firing alerts clear: `closed`).
   */
  attach(sub: Subscription, spec: TrafficSpec | undefined): void {
    if (this.closed || sub.closed) return;
    const old = this.entries.get(sub);
    const sameAlerts = old !== undefined && spec !== undefined && JSON.stringify(old.spec.alerts.map((a) => a.input)) === JSON.stringify(spec.alerts.map((a) => a.input));
    this.detach(sub, sameAlerts ? undefined : 'replaced');
    if (spec === undefined) return;
    if (!this.hooked.has(sub)) {
      this.hooked.add(sub);
      sub.onClose(() => this.detach(sub, 'closed'));
    }
    const entry: Entry = { sub, spec, alerts: sameAlerts ? old.alerts : new AlertTracker(sub.id, spec.alerts) };
    this.entries.set(sub, entry);
    this.group(spec).entries.add(entry);
  }

  /** What status shows of a subscriber's sampling (null: none). */
  subscriberStatus(sub: Subscription) {
    const e = this.entries.get(sub);
    if (!e) return null;
    return {
      interval: e.spec.interval,
      samples: e.spec.samples,
      alerts: e.spec.alerts.map((a) => a.input),
      firing: e.alerts.firing,
      delivered: sub.samplesDelivered,
      dropped: sub.samplesDropped,
    };
  }

  status(): SamplerStatus {
    const sampled = new Set<string>();
    for (const names of this.lastRead.values()) for (const n of names) sampled.add(n);
    return {
      available: this.available,
      intervals: [...this.groups.values()]
        .sort((a, b) => a.intervalMs - b.intervalMs)
        .map((g) => ({ interval: g.interval, subscribers: g.entries.size, namespaces: this.lastRead.get(g.intervalMs)?.size ?? 0 })),
      namespacesSampled: sampled.size,
      readsPerSecond: this.reads.perSecond(),
      readErrors: this.readErrors,
      skippedTicks: this.skippedTicks,
    };
  }

  /** Resolves when the ticks under way have finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  /** Stops every timer and waits for the ticks under way; alerts still firing clear (`closed`). */
  async close(): Promise<void> {
    for (const sub of [...this.entries.keys()]) this.detach(sub, 'closed');
    this.closed = true;
    await this.idle();
  }

  private detach(sub: Subscription, reason: 'closed' | 'replaced' | undefined): void {
    const e = this.entries.get(sub);
    if (!e) return;
    this.entries.delete(sub);
    const g = this.groups.get(e.spec.intervalMs);
    g?.entries.delete(e);
    if (g && g.entries.size === 0) {
      g.stop();
      this.groups.delete(g.intervalMs);
      this.lastRead.delete(g.intervalMs);
    }
    if (reason !== undefined) {
      const out: NewEvent[] = [];
      e.alerts.end(reason, out);
      this.publish(out);
    }
  }

  private group(spec: TrafficSpec): Group {
    let g = this.groups.get(spec.intervalMs);
    if (!g) {
      const created: Group = {
        intervalMs: spec.intervalMs,
        interval: spec.interval,
        entries: new Set(),
        running: false,
        tick: 0,
        prev: new Map(),
        stop: this.clock.every(spec.intervalMs, () => this.startTick(created)),
      };
      g = created;
      this.groups.set(spec.intervalMs, g);
    }
    return g;
  }

  private startTick(g: Group): void {
    if (g.running) {
      this.skippedTicks++;
      return;
    }
    g.running = true;
    const p = this.tick(g)
      .catch((e: unknown) => this.o.log?.warn({ err: e, interval: g.interval }, 'traffic sampling tick failed'))
      .finally(() => {
        g.running = false;
        this.inflight.delete(p);
      });
    this.inflight.add(p);
  }

  /** The namespace list, shared by the groups that tick at about the same time. */
  private namespaceList(): Promise<readonly string[]> {
    const now = this.clock.now();
    if (!this.list || now - this.list.at > 100) this.list = { at: now, names: this.o.namespaces() };
    return this.list.names;
  }

  private live(g: Group): boolean {
    return !this.closed && this.groups.get(g.intervalMs) === g;
  }

  private async tick(g: Group): Promise<void> {
    const source = this.o.source;
    if (!source) return;
    const tick = ++g.tick;
    const names = await this.namespaceList();
    for (const n of this.failing.keys()) if (!names.includes(n)) this.failing.delete(n);
    const wanted = new Map<string, Entry[]>();
    for (const ns of names) {
      const es = [...g.entries].filter((e) => this.wants(e, ns));
      if (es.length > 0) wanted.set(ns, es);
    }
    const unreadable = new Set<string>();
    const out: NewEvent[] = [];
    const slice = this.o.readsPerSlice ?? 16;
    let n = 0;
    for (const [ns, es] of wanted) {
      if (n > 0 && n % slice === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      n++;
      if (!this.live(g)) return;
      let rows: readonly LinkCounterSample[];
      try {
        rows = await source(ns);
      } catch (e) {
        if (!this.readFailed(ns, e)) unreadable.add(ns);
        g.prev.delete(ns);
        continue;
      }
      this.failing.delete(ns);
      this.reads.add();
      this.deliver(g, ns, rows, es, tick, out);
    }
    if (!this.live(g)) return;
    for (const ns of g.prev.keys()) if (!wanted.has(ns)) g.prev.delete(ns);
    this.lastRead.set(g.intervalMs, new Set(wanted.keys()));
    for (const e of g.entries) e.alerts.endTick(tick, unreadable, out);
    this.publish(out);
  }

  /** One namespace's read: a sample per link to every entry that selects it, and to their alerts. */
  private deliver(g: Group, ns: string, rows: readonly LinkCounterSample[], es: readonly Entry[], tick: number, out: NewEvent[]): void {
    const at = this.clock.now();
    const date = this.clock.date();
    const time = date.toISOString();
    const before = g.prev.get(ns);
    const now = new Map<string, Previous>();
    for (const r of rows) {
      const p = before?.get(r.name);
      const prev = p && p.index === r.index ? { counters: p.counters, elapsedMs: at - p.at } : undefined;
      const sample = trafficSample(ns, r.name, g.interval, time, r.counters, prev);
      now.set(r.name, { index: r.index, counters: r.counters, at });
      const span: SampleSpan = prev ? { startAt: p!.at, endAt: at, start: new Date(date.getTime() - prev.elapsedMs) } : { startAt: at, endAt: at, start: date };
      for (const e of es) {
        // Detached while the namespace was read (the group keeps running for the others).
        if (this.entries.get(e.sub) !== e) continue;
        const link = e.sub.filter.link;
        if (e.spec.samples && (link === undefined || link.test(r.name))) e.sub.offerSample(sample);
        e.alerts.observe(sample, span, tick, out);
      }
    }
    g.prev.set(ns, now);
  }

  private wants(e: Entry, ns: string): boolean {
    if (!namespacePasses(e.sub.filter, ns, e.sub.visible, this.o.bus.labelsOf)) return false;
    return e.spec.samples || e.alerts.watchesNamespace(ns);
  }

  /**
   * Counts and logs a failed read (once per namespace and error: a namespace that is gone would
   * otherwise log at every tick). Returns whether the namespace is gone.
   */
  private readFailed(ns: string, e: unknown): boolean {
    this.readErrors++;
    const code = String((e as { code?: unknown } | null)?.code ?? 'EUNKNOWN');
    const gone = GONE.has(code);
    if (this.failing.get(ns) !== code) {
      this.failing.set(ns, code);
      const fields = { namespace: ns, code, err: e instanceof Error ? e.message : String(e) };
      if (gone) this.o.log?.debug(fields, 'traffic: namespace went away while it was sampled');
      else this.o.log?.warn(fields, 'traffic: cannot read the counters of a namespace');
    }
    return gone;
  }

  /** `traffic.alert` events into the log and to the subscribers (not after close: the store may be gone). */
  private publish(out: readonly NewEvent[]): void {
    if (out.length > 0 && !this.closed) this.o.bus.publish(out);
  }
}
