/**
 * The event bus: sequenced events go into the log, then to every subscriber whose filter takes
 * them. Each subscriber has a bounded queue; a subscriber that falls behind gets a `gap` marker
 * naming the seqs it lost (or, with onOverflow=close, is closed), so memory stays bounded and
 * nobody else waits for it.
 *
 * Traffic samples (unsequenced, not logged) share the queue: a sample that finds it full is
 * dropped and counted, never a gap, and an event that finds it full takes the place of the oldest
 * queued sample before it would become a gap, so samples never cost a subscriber events.
 *
 * Resume without loss or duplicates: subscribing with `since` takes the log's last seq L at that
 * moment (publishing is synchronous, so no event can slip in between); events after L reach the
 * queue live, events in (since, L] are read from the log as the subscriber drains, page by page.
 */
import type { Labels } from '../labels.js';
import type { EventLog, LoggedEvent, NewEvent } from '../store/event-log.js';
import type { TrafficSample } from '../traffic/traffic-schema.js';
import { type EventFilter, matches } from './event-filter.js';

export interface Gap {
  readonly type: 'gap';
  readonly from: number;
  readonly to: number;
}

export type Delivery = LoggedEvent | Gap | TrafficSample;

const isSample = (d: Delivery): d is TrafficSample => d.type === 'traffic';

export type OverflowPolicy = 'gap' | 'close';

export interface SubscribeOptions {
  readonly filter: EventFilter;
  readonly since?: number | undefined;
  readonly onOverflow: OverflowPolicy;
  readonly queueSize: number;
  /** Who subscribes (token name) and how, for status. */
  readonly actor: string;
  readonly transport: 'websocket' | 'sse';
  /** Namespaces the subscriber's token may see. */
  readonly visible: (ns: string) => boolean;
}

const REPLAY_PAGE = 256;

export class Subscription {
  readonly id: number;
  readonly actor: string;
  readonly transport: 'websocket' | 'sse';
  readonly connectedAt = new Date().toISOString();
  filter: EventFilter;
  /** Whether the subscriber's token may see a namespace. */
  readonly visible: (ns: string) => boolean;
  delivered = 0;
  dropped = 0;
  gaps = 0;
  /** Traffic samples sent, and dropped because the queue was full. */
  samplesDelivered = 0;
  samplesDropped = 0;
  /** Set when closed: why (for the transport's close frame). */
  closed: { readonly code: number; readonly reason: string } | undefined;
  private readonly queue: Delivery[] = [];
  /** How many of the queued deliveries are samples. */
  private queuedSamples = 0;
  /** Replay state: seqs in (after, until] are still to be read from the log; `page` holds read ones. */
  private replay: { after: number; until: number; gapFirst: Gap | undefined; page: LoggedEvent[] } | undefined;
  private wake: (() => void) | undefined;
  private closeListeners: Array<() => void> = [];

  constructor(
    id: number,
    private readonly bus: EventBus,
    private readonly o: SubscribeOptions,
  ) {
    this.id = id;
    this.actor = o.actor;
    this.transport = o.transport;
    this.filter = o.filter;
    this.visible = o.visible;
  }

  get queueDepth(): number {
    return this.queue.length;
  }

  get replaying(): boolean {
    return this.replay !== undefined;
  }

  /**
   * Changes what the subscriber receives from now on. With `since`, everything after it is
   * replayed under the new filter (what was queued is dropped: the replay covers it); without,
   * queued events the new filter does not take are dropped. Queued samples are dropped either
   * way (they were taken under the old selection).
   */
  refilter(filter: EventFilter, since?: number): void {
    this.filter = filter;
    this.queuedSamples = 0;
    if (since !== undefined) {
      this.queue.length = 0;
      this.startReplay(since);
    } else {
      const kept = this.queue.filter((d) => d.type === 'gap' || (!isSample(d) && this.accepts(d as LoggedEvent)));
      this.queue.splice(0, this.queue.length, ...kept);
    }
    this.notify();
  }

  /** Resolves once the subscription is closed. */
  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.onClose(resolve));
  }

  /** Calls fn (synchronously, once) when the subscription closes. */
  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closeListeners.push(fn);
  }

  /** The next delivery, or undefined when there is none yet (then `ready` resolves when there is). */
  take(): Delivery | undefined {
    if (this.closed) return undefined;
    if (this.replay) {
      const r = this.replay;
      if (r.gapFirst) {
        const g = r.gapFirst;
        r.gapFirst = undefined;
        return g;
      }
      while (r.after < r.until) {
        if (r.page.length === 0) r.page = this.bus.log.read(r.after, r.until, REPLAY_PAGE);
        // Seqs the log does not have — pruned while this subscriber replayed, or given and never
        // written (a crash: see EventLog) — are a gap, not a silent loss.
        const next = r.page[0]?.seq ?? r.until + 1;
        if (next > r.after + 1) {
          const g: Gap = { type: 'gap', from: r.after + 1, to: Math.min(next - 1, r.until) };
          r.after = g.to;
          this.gaps++;
          return g;
        }
        const e = r.page.shift()!;
        r.after = e.seq;
        if (this.accepts(e)) {
          this.delivered++;
          return this.shape(e);
        }
      }
      this.replay = undefined;
    }
    const next = this.queue.shift();
    if (next === undefined) return undefined;
    if (isSample(next)) {
      this.queuedSamples--;
      this.samplesDelivered++;
      return next;
    }
    this.delivered++;
    return next.type === 'gap' ? next : this.shape(next as LoggedEvent);
  }

  /**
   * What this subscriber may see of an event: a resync names only the namespaces (and carries only
   * the differences) that its token may see and its filter takes.
   */
  private shape(e: LoggedEvent): LoggedEvent {
    if (e.type !== 'resync') return e;
    const ok = (ns: unknown): boolean => typeof ns === 'string' && this.accepts({ ...e, type: 'namespace.added', namespace: ns, namespaces: undefined } as unknown as LoggedEvent, true);
    const namespaces = ((e.namespaces as unknown[] | undefined) ?? []).filter(ok);
    const differences = ((e.differences as Array<{ namespace?: unknown }> | undefined) ?? []).filter((d) => ok(d.namespace));
    return { ...e, namespaces, differences };
  }

  /** Resolves when take() may have something (or the subscription closed). */
  ready(): Promise<void> {
    if (this.closed || this.replay || this.queue.length > 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  close(code = 1000, reason = 'closed'): void {
    if (this.closed) return;
    this.closed = { code, reason };
    this.queue.length = 0;
    this.queuedSamples = 0;
    this.replay = undefined;
    this.bus.remove(this);
    this.notify();
    for (const l of this.closeListeners.splice(0)) l();
  }

  /**
   * A traffic sample for this subscriber (the sampler has checked that it selects the link).
   * Dropped and counted when the queue is full: samples are not retained, so there is no gap.
   */
  offerSample(s: TrafficSample): void {
    if (this.closed) return;
    if (this.queue.length >= this.o.queueSize) {
      this.samplesDropped++;
      return;
    }
    this.queue.push(s);
    this.queuedSamples++;
    this.notify();
  }

  /** Called by the bus for every published event. */
  offer(e: LoggedEvent): void {
    if (this.closed || !this.accepts(e)) return;
    if (this.replay && this.queue.length >= this.o.queueSize) {
      // Still replaying: the log has these events, so the replay takes them over instead of
      // dropping them as a gap.
      this.replay.until = e.seq;
      this.queue.length = 0;
      this.samplesDropped += this.queuedSamples;
      this.queuedSamples = 0;
      return;
    }
    if (this.queue.length >= this.o.queueSize && this.queuedSamples > 0) {
      // An event outranks a sample: the oldest queued sample makes room.
      this.queue.splice(this.queue.findIndex(isSample), 1);
      this.queuedSamples--;
      this.samplesDropped++;
    }
    if (this.queue.length >= this.o.queueSize) {
      this.dropped++;
      if (this.o.onOverflow === 'close') {
        this.close(4008, `queue overflow: more than ${this.o.queueSize} events waiting`);
        return;
      }
      const tail = this.queue[this.queue.length - 1];
      if (tail?.type === 'gap') this.queue[this.queue.length - 1] = { type: 'gap', from: (tail as Gap).from, to: e.seq } satisfies Gap;
      else {
        this.gaps++;
        this.queue.push({ type: 'gap', from: e.seq, to: e.seq } satisfies Gap);
      }
      return;
    }
    this.queue.push(e);
    this.notify();
  }

  startReplay(since: number): void {
    const until = this.bus.log.lastSeq;
    const first = this.bus.log.firstSeq;
    const gapFirst: Gap | undefined = since + 1 < first ? { type: 'gap', from: since + 1, to: Math.min(first - 1, until) } : undefined;
    if (gapFirst) this.gaps++;
    this.replay = { after: Math.max(since, first - 1), until, gapFirst, page: [] };
  }

  /** `typesAside`: only whether the namespace passes (for the parts of a resync). */
  private accepts(e: LoggedEvent, typesAside = false): boolean {
    return matches(typesAside ? { ...this.filter, types: new Set([e.type as never]) } : this.filter, e, this.o.visible, this.bus.labelsOf);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

export interface EventBusOptions {
  readonly log: EventLog;
  /** The labels of a namespace (for labelSelector). */
  readonly labelsOf: (ns: string) => Labels;
  readonly maxSubscribers: number;
}

export class EventBus {
  readonly log: EventLog;
  readonly labelsOf: (ns: string) => Labels;
  private readonly subs = new Map<number, Subscription>();
  private nextId = 1;
  private readonly maxSubscribers: number;
  private readonly listeners = new Set<(e: LoggedEvent) => void>();
  /** resync events published since start. */
  resyncs = 0;

  constructor(o: EventBusOptions) {
    this.log = o.log;
    this.labelsOf = o.labelsOf;
    this.maxSubscribers = o.maxSubscribers;
  }

  get subscribers(): readonly Subscription[] {
    return [...this.subs.values()];
  }

  get full(): boolean {
    return this.subs.size >= this.maxSubscribers;
  }

  /** Logs the events (assigning seq and time) and hands them to every subscriber. */
  publish(events: readonly NewEvent[]): LoggedEvent[] {
    const logged = this.log.append(events);
    for (const e of logged) {
      if (e.type === 'resync') this.resyncs++;
      for (const s of this.subs.values()) s.offer(e);
      for (const l of this.listeners) l(e);
    }
    return logged;
  }

  /** Calls `l` with every event published from now on (in-process consumers: alerts, tests). */
  onEvent(l: (e: LoggedEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  subscribe(o: SubscribeOptions): Subscription {
    const s = new Subscription(this.nextId++, this, o);
    if (o.since !== undefined) s.startReplay(o.since);
    this.subs.set(s.id, s);
    return s;
  }

  remove(s: Subscription): void {
    this.subs.delete(s.id);
  }

  closeAll(code: number, reason: string): void {
    for (const s of [...this.subs.values()]) s.close(code, reason);
  }
}
