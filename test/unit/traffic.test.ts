/**
 * Traffic: the counter parser (a dump recorded by scripts/record-link-stats.ts, and constructed
 * messages), the rate math, the shared sampler over a fake counter source and a fake clock
 * (sampling only while needed, one read per namespace per tick, resets, links and namespaces that
 * come and go, backpressure), alerts (start, hold, clear, close, replace), and the event endpoint's
 * validation, status and wire format over the fake kernel.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parseLinkStats } from '../../src/executor/argv.js';
import type { LinkCounters } from '../../src/executor/ops.js';
import { EventBus, type Delivery, type Subscription } from '../../src/events/event-bus.js';
import { drain } from '../helpers/deliveries.js';
import { parseFilter } from '../../src/events/event-filter.js';
import * as M from '../../src/netlink/messages.js';
import { dumpMessages, parseAttrs } from '../../src/netlink/parse.js';
import { IFLA_STATS, IFLA_STATS64, linkCountersDumpRequest, linkCountersOf, readLinkCounters } from '../../src/netlink/stats.js';
import { openDb } from '../../src/store/db.js';
import { EventLog, type LoggedEvent } from '../../src/store/event-log.js';
import { type Clock, type CounterSource, TrafficSampler, trafficSample } from '../../src/traffic/traffic-sampler.js';
import type { TrafficSample } from '../../src/traffic/traffic-schema.js';
import { parseTrafficSpec } from '../../src/traffic/traffic-spec.js';
import { buildTestApp, expectProblem } from '../helpers/test-app.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'netlink');

const ZERO: LinkCounters = { rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0, rxErrors: 0, txErrors: 0, rxDropped: 0, txDropped: 0, multicast: 0, collisions: 0 };

/** An RTM_NEWLINK message with a name and the given attributes. */
function linkMessage(index: number, name: string, attrs: Buffer[], family = M.AF_UNSPEC, type = M.RTM_NEWLINK) {
  const ifi = Buffer.alloc(M.IFINFOMSG_LEN);
  ifi.writeUInt8(family, 0);
  ifi.writeInt32LE(index, 4);
  return { type, flags: 0, seq: 1, pid: 0, payload: Buffer.concat([ifi, M.attr(M.IFLA_IFNAME, Buffer.from(`${name}\0`)), ...attrs]) };
}

/** rtnl_link_stats64 (u64, 24 fields) or rtnl_link_stats (u32, 23 fields) with these leading values. */
function statsAttr(kind: 64 | 32, values: readonly number[]): Buffer {
  const size = kind === 64 ? 8 : 4;
  const b = Buffer.alloc(size * (kind === 64 ? 24 : 23));
  values.forEach((v, i) => (kind === 64 ? b.writeBigUInt64LE(BigInt(v), 8 * i) : b.writeUInt32LE(v, 4 * i)));
  return M.attr(kind === 64 ? IFLA_STATS64 : IFLA_STATS, b);
}

describe('link counters over netlink', () => {
  it('reads the same counters as ip -s -s -j from a recorded dump, in the link.stats shape', () => {
    const datagrams = readFileSync(join(DIR, 'link-stats.b64'), 'utf8').trim().split('\n').map((l) => Buffer.from(l, 'base64'));
    const got = dumpMessages(datagrams).flatMap((m) => linkCountersOf(m) ?? []);
    const ip = JSON.parse(readFileSync(join(DIR, 'link-stats.ip.json'), 'utf8')) as Array<{ ifindex: number; ifname: string }>;
    expect(got.map((l) => [l.index, l.name])).toEqual(ip.map((l) => [l.ifindex, l.ifname]));
    for (const [i, l] of ip.entries()) expect(got[i]!.counters).toEqual(parseLinkStats(JSON.stringify([l])));
    expect(got.find((l) => l.name === 'va')!.counters.txPackets).toBeGreaterThan(0);
  });

  it('takes IFLA_STATS64 (full 64 bits), falls back to IFLA_STATS, and skips what is not a link with counters', () => {
    const big = 2 ** 40 + 7;
    const c64 = linkCountersOf(linkMessage(5, 'veth0', [statsAttr(32, [1, 2, 3, 4]), statsAttr(64, [10, 20, big, 40, 1, 2, 3, 4, 5, 6])]));
    expect(c64).toEqual({ index: 5, name: 'veth0', counters: { rxPackets: 10, txPackets: 20, rxBytes: big, txBytes: 40, rxErrors: 1, txErrors: 2, rxDropped: 3, txDropped: 4, multicast: 5, collisions: 6 } });
    const c32 = linkCountersOf(linkMessage(6, 'old0', [statsAttr(32, [10, 20, 4_000_000_000, 40, 0, 0, 9, 0, 0, 0])]));
    expect(c32?.counters).toMatchObject({ rxPackets: 10, rxBytes: 4_000_000_000, rxDropped: 9 });
    expect(linkCountersOf(linkMessage(7, 'nostats0', []))).toBeNull();
    expect(linkCountersOf(linkMessage(8, 'port0', [statsAttr(64, [1])], M.AF_BRIDGE))).toBeNull();
    expect(linkCountersOf(linkMessage(9, 'gone0', [statsAttr(64, [1])], M.AF_UNSPEC, M.RTM_DELLINK))).toBeNull();
  });

  it('asks for a link dump without RTEXT_FILTER_SKIP_STATS, and retries a dump the kernel marks interrupted', () => {
    const req = linkCountersDumpRequest(9);
    expect(req.readUInt16LE(4)).toBe(M.RTM_GETLINK);
    expect(req.readUInt16LE(6) & M.NLM_F_DUMP).toBe(M.NLM_F_DUMP);
    expect(parseAttrs(req, M.NLMSG_HDRLEN + M.IFINFOMSG_LEN).has(M.IFLA_EXT_MASK)).toBe(false);
    const done = Buffer.alloc(20);
    done.writeUInt32LE(20, 0);
    done.writeUInt16LE(M.NLMSG_DONE, 4);
    const msg = linkMessage(2, 'eth0', [statsAttr(64, [1, 1, 100, 100])]);
    const hdr = Buffer.alloc(16);
    hdr.writeUInt32LE(16 + msg.payload.length, 0);
    hdr.writeUInt16LE(M.RTM_NEWLINK, 4);
    const datagram = Buffer.concat([hdr, msg.payload, done]);
    const paths: string[] = [];
    let calls = 0;
    const addon = { nlDump: (p: string | number) => (paths.push(String(p)), { datagrams: [datagram], interrupted: calls++ < 2 }) };
    expect(readLinkCounters(addon, '/run/netns/x').map((l) => l.counters.rxBytes)).toEqual([100]);
    expect(paths).toEqual(['/run/netns/x', '/run/netns/x', '/run/netns/x']);
    const always = { nlDump: () => ({ datagrams: [datagram], interrupted: true }) };
    expect(() => readLinkCounters(always, '/run/netns/x', { retries: 1 })).toThrow(expect.objectContaining({ code: 'EINTR' }));
  });
});

describe('rates', () => {
  const c = (o: Partial<LinkCounters>): LinkCounters => ({ ...ZERO, ...o });

  it('has counters and null rates on a link\'s first sample', () => {
    const s = trafficSample('a', 'veth0', '1s', 't', c({ rxBytes: 500, txPackets: 3 }));
    expect(s).toMatchObject({ type: 'traffic', namespace: 'a', link: 'veth0', interval: '1s', rxBytes: 500, txPackets: 3, rxBitsPerSecond: null, txBitsPerSecond: null, rxPacketsPerSecond: null, txPacketsPerSecond: null });
    expect(s).not.toHaveProperty('seq');
  });

  it('computes bits and packets per second over the elapsed time', () => {
    const prev = { counters: c({ rxBytes: 1000, txBytes: 0, rxPackets: 10, txPackets: 4 }), elapsedMs: 500 };
    const s = trafficSample('a', 'veth0', '500ms', 't', c({ rxBytes: 2000, txBytes: 125, rxPackets: 20, txPackets: 5 }), prev);
    expect([s.rxBitsPerSecond, s.txBitsPerSecond, s.rxPacketsPerSecond, s.txPacketsPerSecond]).toEqual([16000, 2000, 20, 2]);
    const slow = trafficSample('a', 'veth0', '500ms', 't', c({ rxBytes: 2000 }), { counters: c({ rxBytes: 1000 }), elapsedMs: 3000 });
    expect(slow.rxBitsPerSecond).toBe(2666.667);
  });

  it('treats a counter that went backwards as a reset: null rates, never negative ones', () => {
    const s = trafficSample('a', 'veth0', '1s', 't', c({ rxBytes: 10, txBytes: 5000 }), { counters: c({ rxBytes: 900, txBytes: 4000 }), elapsedMs: 1000 });
    expect([s.rxBitsPerSecond, s.txBitsPerSecond, s.rxPacketsPerSecond, s.txPacketsPerSecond]).toEqual([null, null, null, null]);
    expect(s.rxBytes).toBe(10);
    expect(trafficSample('a', 'v', '1s', 't', c({}), { counters: c({}), elapsedMs: 0 }).rxBitsPerSecond).toBeNull();
  });
});

/** A clock that moves only when told; timers fire in order, and each tick is waited for. */
class FakeClock implements Clock {
  t = 0;
  private readonly base = Date.parse('2026-01-01T00:00:00.000Z');
  private readonly timers = new Set<{ ms: number; next: number; fn: () => void }>();
  now = (): number => this.t;
  date = (): Date => new Date(this.base + this.t);
  every = (ms: number, fn: () => void): (() => void) => {
    const timer = { ms, next: this.t + ms, fn };
    this.timers.add(timer);
    return () => this.timers.delete(timer);
  };
  get timerCount(): number {
    return this.timers.size;
  }
  iso(t: number): string {
    return new Date(this.base + t).toISOString();
  }
  async advance(ms: number, sampler: TrafficSampler): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.timers].filter((x) => x.next <= end).sort((a, b) => a.next - b.next)[0];
      if (!due) break;
      this.t = Math.max(this.t, due.next);
      due.next += due.ms;
      due.fn();
      await sampler.idle();
    }
    this.t = end;
  }
}

/** Namespaces of links with counters that tests change; every read is recorded. */
class FakeCounters {
  readonly spaces = new Map<string, Map<string, { index: number; counters: { -readonly [K in keyof LinkCounters]: number } }>>();
  /** Listed but unreadable (as a namespace deleted between listing and reading). */
  readonly vanishing = new Set<string>();
  readonly reads: string[] = [];
  /** Called during a read (e.g. to let the clock move: a slow read). */
  onRead: ((ns: string) => void) | undefined;
  private nextIndex = 1;

  source: CounterSource = (ns) => {
    this.reads.push(ns);
    this.onRead?.(ns);
    const m = this.spaces.get(ns);
    if (!m) throw Object.assign(new Error(`no namespace ${ns}`), { code: 'ENOENT' });
    return [...m].map(([name, v]) => ({ index: v.index, name, counters: { ...v.counters } }));
  };

  names = async (): Promise<string[]> => [...this.spaces.keys(), ...this.vanishing];

  link(ns: string, name: string, counters: Partial<LinkCounters> = {}): this {
    if (!this.spaces.has(ns)) this.spaces.set(ns, new Map());
    this.spaces.get(ns)!.set(name, { index: this.nextIndex++, counters: { ...ZERO, ...counters } });
    return this;
  }

  add(ns: string, name: string, d: Partial<LinkCounters>): void {
    const l = this.spaces.get(ns)!.get(name)!;
    for (const [k, v] of Object.entries(d) as [keyof LinkCounters, number][]) l.counters[k] += v;
  }

  set(ns: string, name: string, c: Partial<LinkCounters>): void {
    const l = this.spaces.get(ns)!.get(name)!;
    l.counters = { ...l.counters, ...c };
  }
}

function rig(o: { queueSize?: number; visible?: (ns: string) => boolean } = {}) {
  const log = new EventLog(openDb(':memory:'), { retentionCount: 1000, retentionAgeMs: 86_400_000 });
  const bus = new EventBus({ log, labelsOf: () => ({}), maxSubscribers: 10 });
  const clock = new FakeClock();
  const counters = new FakeCounters();
  const logged: Array<{ level: string; msg: string | undefined }> = [];
  const logger = { debug: (_o: object, msg?: string) => logged.push({ level: 'debug', msg }), warn: (_o: object, msg?: string) => logged.push({ level: 'warn', msg }) };
  const sampler = new TrafficSampler({ source: counters.source, namespaces: counters.names, bus, clock, log: logger });
  /** A subscription with the selection a query would give, attached to the sampler. */
  const subscribe = (q: { types?: string; namespace?: string; link?: string; interval?: string; alerts?: unknown[] } = {}): Subscription => {
    const filter = parseFilter(q);
    const spec = parseTrafficSpec({ samples: filter.types.has('traffic'), interval: q.interval, alerts: q.alerts }, '');
    const withAlerts = spec && spec.alerts.length > 0 ? { ...filter, types: new Set([...filter.types, 'traffic.alert' as const]) } : filter;
    const sub = bus.subscribe({ filter: withAlerts, onOverflow: 'gap', queueSize: o.queueSize ?? 100, actor: 't', transport: 'websocket', visible: o.visible ?? (() => true) });
    sampler.attach(sub, spec);
    return sub;
  };
  const advance = (ms: number) => clock.advance(ms, sampler);
  return { bus, log, clock, counters, sampler, subscribe, advance, logged };
}

const samples = (ds: Delivery[]) => ds.filter((d): d is TrafficSample => d.type === 'traffic');
const alerts = (ds: Delivery[]): Array<Record<string, any>> => // eslint-disable-line @typescript-eslint/no-explicit-any
  ds.filter((d): d is LoggedEvent => d.type === 'traffic.alert').map((e) => ({ seq: e.seq, namespace: e.namespace, ...(e.object as Record<string, unknown>) }));

describe('the traffic sampler', () => {
  it('reads nothing while nobody needs counters, and stops reading when the last subscriber leaves', async () => {
    const r = rig();
    r.counters.link('a', 'veth0').link('b', 'veth0');
    const plain = r.subscribe({ types: '*' });
    await r.advance(5000);
    expect(r.counters.reads).toEqual([]);
    expect(r.clock.timerCount).toBe(0);
    const s = r.subscribe({ types: 'traffic', namespace: 'a', interval: '1s' });
    await r.advance(3000);
    expect(r.counters.reads).toEqual(['a', 'a', 'a']);
    s.close();
    plain.close();
    expect(r.clock.timerCount).toBe(0);
    await r.advance(5000);
    expect(r.counters.reads).toHaveLength(3);
    expect(r.sampler.status()).toMatchObject({ available: true, intervals: [], namespacesSampled: 0 });
  });

  it('reads each namespace once per tick for all subscribers of an interval, and on its own timer for another interval', async () => {
    const r = rig();
    r.counters.link('a', 'veth0').link('b', 'veth1');
    const one = r.subscribe({ types: 'traffic', namespace: 'a' });
    const two = r.subscribe({ types: 'traffic' });
    const fast = r.subscribe({ types: 'traffic', namespace: 'b', interval: '500ms' });
    await r.advance(1000);
    // 500 ms: b for `fast`; 1000 ms: a and b once for `one` and `two`, b again for `fast`.
    expect([...r.counters.reads].sort()).toEqual(['a', 'b', 'b', 'b']);
    expect(samples(drain(one)).map((x) => x.link)).toEqual(['veth0']);
    expect(samples(drain(two)).map((x) => `${x.namespace}/${x.link}`)).toEqual(['a/veth0', 'b/veth1']);
    expect(samples(drain(fast)).map((x) => x.interval)).toEqual(['500ms', '500ms']);
    expect(r.sampler.status()).toMatchObject({ intervals: [{ interval: '500ms', subscribers: 1, namespaces: 1 }, { interval: '1s', subscribers: 2, namespaces: 2 }], namespacesSampled: 2 });
  });

  it('reports the namespace reads per second in status', async () => {
    const r = rig();
    r.counters.link('a', 'veth0').link('b', 'veth0');
    r.subscribe({ types: 'traffic', interval: '500ms' });
    await r.advance(4000);
    expect(r.sampler.status().readsPerSecond).toBe(4); // 2 namespaces, twice a second
    await r.advance(20_000);
    expect(r.sampler.status().readsPerSecond).toBe(4);
  });

  it('delivers rates over the time actually elapsed between reads, null on the first sample', async () => {
    const r = rig();
    r.counters.link('a', 'veth0');
    const s = r.subscribe({ types: 'traffic' });
    await r.advance(1000);
    r.counters.add('a', 'veth0', { rxBytes: 1000, txBytes: 500, rxPackets: 10, txPackets: 5 });
    await r.advance(1000);
    // The third read is 250 ms late (a slow read before it): 1250 ms since the second.
    r.counters.add('a', 'veth0', { rxBytes: 1250 });
    r.counters.onRead = () => (r.clock.t += 250);
    await r.advance(1000);
    const got = samples(drain(s));
    expect(got.map((x) => [x.time, x.rxBitsPerSecond, x.txBitsPerSecond, x.rxPacketsPerSecond, x.txPacketsPerSecond])).toEqual([
      [r.clock.iso(1000), null, null, null, null],
      [r.clock.iso(2000), 8000, 4000, 10, 5],
      [r.clock.iso(3250), 8000, 0, 0, 0],
    ]);
    expect(got[2]).toMatchObject({ rxBytes: 2250, txBytes: 500, rxPackets: 10, txPackets: 5 });
  });

  it('reports a reset (counters lower, or the link made again) with null rates, then rates again', async () => {
    const r = rig();
    r.counters.link('a', 'veth0', { rxBytes: 5000 });
    const s = r.subscribe({ types: 'traffic' });
    await r.advance(1000);
    r.counters.set('a', 'veth0', { rxBytes: 100 });
    await r.advance(1000);
    r.counters.add('a', 'veth0', { rxBytes: 125 });
    await r.advance(1000);
    r.counters.link('a', 'veth0', { rxBytes: 9999 }); // a new ifindex under the same name
    await r.advance(1000);
    expect(samples(drain(s)).map((x) => [x.rxBytes, x.rxBitsPerSecond])).toEqual([[5000, null], [100, null], [225, 1000], [9999, null]]);
  });

  it('samples links that appear, drops those that go, and selects by link glob and by what the token may see', async () => {
    const r = rig({ visible: (ns) => ns !== 'secret' });
    r.counters.link('a', 'veth0').link('a', 'eth0').link('secret', 'veth0');
    const s = r.subscribe({ types: 'traffic', link: 'veth*' });
    await r.advance(1000);
    r.counters.link('a', 'veth1');
    r.counters.spaces.get('a')!.delete('veth0');
    await r.advance(1000);
    expect(samples(drain(s)).map((x) => [x.link, x.rxBitsPerSecond])).toEqual([['veth0', null], ['veth1', null]]);
    expect(r.counters.reads).not.toContain('secret');
  });

  it('skips a namespace that went away without failing the others, and logs it once', async () => {
    const r = rig();
    r.counters.link('a', 'veth0');
    r.counters.vanishing.add('gone');
    const s = r.subscribe({ types: 'traffic' });
    await r.advance(3000);
    expect(samples(drain(s)).map((x) => x.namespace)).toEqual(['a', 'a', 'a']);
    expect(r.logged).toEqual([{ level: 'debug', msg: 'traffic: namespace went away while it was sampled' }]);
    expect(r.sampler.status().readErrors).toBe(3);
  });

  it('drops samples that do not fit a slow subscriber\'s queue (no gap), and lets events take their place', async () => {
    const r = rig({ queueSize: 3 });
    for (const l of ['v0', 'v1', 'v2', 'v3', 'v4']) r.counters.link('a', l);
    const s = r.subscribe({ types: 'traffic,namespace.*' });
    await r.advance(1000);
    expect([s.queueDepth, s.samplesDropped]).toEqual([3, 2]);
    r.bus.publish([{ type: 'namespace.added', namespace: 'a', object: { name: 'a' } }]);
    const got = drain(s);
    expect(got.map((d) => (d.type === 'traffic' ? d.link : d.type))).toEqual(['v1', 'v2', 'namespace.added']);
    expect([s.samplesDropped, s.samplesDelivered, s.dropped, s.gaps]).toEqual([3, 2, 0, 0]);
  });
});

describe('traffic alerts', () => {
  const alert = { link: 'veth0', metric: 'rxBitsPerSecond', above: 1000, for: '2s' };

  it('fires once the condition has held for `for`, and clears when it no longer holds, as sequenced events', async () => {
    const r = rig();
    r.counters.link('a', 'veth0').link('a', 'veth1');
    const s = r.subscribe({ types: 'traffic.alert', alerts: [alert] });
    await r.advance(1000); // first sample: no rate
    r.counters.add('a', 'veth0', { rxBytes: 1000 }); // 8000 bit/s over (1 s, 2 s]
    r.counters.add('a', 'veth1', { rxBytes: 1000 }); // not watched
    await r.advance(1000);
    expect(alerts(drain(s))).toEqual([]); // held for 1 s of the 2 s
    r.counters.add('a', 'veth0', { rxBytes: 1000 });
    await r.advance(1000);
    const firing = alerts(drain(s));
    expect(firing).toEqual([
      { seq: expect.any(Number), namespace: 'a', subscription: s.id, alert: 0, link: 'veth0', metric: 'rxBitsPerSecond', above: 1000, for: '2s', state: 'firing', value: 8000, since: r.clock.iso(1000) },
    ]);
    r.counters.add('a', 'veth0', { rxBytes: 1000 });
    await r.advance(1000);
    expect(alerts(drain(s))).toEqual([]); // still firing: no repeat
    r.counters.add('a', 'veth0', { rxBytes: 10 }); // 80 bit/s
    await r.advance(1000);
    const cleared = alerts(drain(s));
    expect(cleared).toEqual([{ ...firing[0], seq: firing[0]!.seq + 1, state: 'cleared', value: 80, reason: 'recovered' }]);
    expect(r.log.read(0, 100, 100).map((e) => e.type)).toEqual(['traffic.alert', 'traffic.alert']);
    expect(samples(drain(s))).toEqual([]); // alerts only: no samples delivered
  });

  it('does not fire when the condition stops holding before `for`, and watches `below` too', async () => {
    const r = rig();
    r.counters.link('a', 'veth0');
    const s = r.subscribe({ alerts: [alert, { link: 'veth*', metric: 'txPacketsPerSecond', below: 1 }] });
    await r.advance(1000);
    r.counters.add('a', 'veth0', { rxBytes: 1000, txPackets: 5 });
    await r.advance(1000);
    r.counters.add('a', 'veth0', { rxBytes: 1, txPackets: 5 });
    await r.advance(1000);
    r.counters.add('a', 'veth0', { rxBytes: 1000 });
    await r.advance(1000);
    expect(alerts(drain(s)).map((a) => [a.alert, a.state, a.value])).toEqual([[1, 'firing', 0]]);
  });

  it('clears a firing alert when its subscription closes, when its link goes, and when the alerts are replaced', async () => {
    const r = rig();
    r.counters.link('a', 'veth0').link('b', 'veth0');
    const now = { link: 'veth0', metric: 'rxBytes', above: 10 };
    const closing = r.subscribe({ namespace: 'a', alerts: [now] });
    const replacing = r.subscribe({ namespace: 'a', alerts: [now] });
    const losing = r.subscribe({ namespace: 'b', alerts: [now] });
    const watcher = r.subscribe({ types: 'traffic.alert' });
    r.counters.add('a', 'veth0', { rxBytes: 100 });
    r.counters.add('b', 'veth0', { rxBytes: 100 });
    await r.advance(1000);
    expect(alerts(drain(watcher)).map((a) => [a.subscription, a.state])).toEqual([[closing.id, 'firing'], [replacing.id, 'firing'], [losing.id, 'firing']]);
    closing.close();
    r.sampler.attach(replacing, parseTrafficSpec({ samples: false, alerts: [now] }, '')); // the same alerts: kept
    r.sampler.attach(replacing, parseTrafficSpec({ samples: false, alerts: [{ ...now, above: 1e9 }] }, ''));
    r.counters.spaces.get('b')!.delete('veth0');
    await r.advance(1000);
    expect(alerts(drain(watcher)).map((a) => [a.subscription, a.state, a.reason])).toEqual([
      [closing.id, 'cleared', 'closed'], [replacing.id, 'cleared', 'replaced'], [losing.id, 'cleared', 'gone'],
    ]);
  });
});

describe('traffic selection', () => {
  const fields = (f: () => unknown): string[] => {
    try {
      f();
    } catch (e) {
      return ((e as { meta?: { errors?: Array<{ field: string }> } }).meta?.errors ?? []).map((x) => x.field);
    }
    return [];
  };

  it('selects traffic samples only by name, never by a wildcard', () => {
    expect(parseFilter({}).types.has('traffic')).toBe(false);
    expect(parseFilter({ types: '*' }).types.has('traffic.alert')).toBe(true);
    expect([...parseFilter({ types: 'traffic.*' }).types]).toEqual(['traffic.alert']);
    expect([...parseFilter({ types: 'traffic' }).types]).toEqual(['traffic']);
  });

  it('defaults the interval to 1s, and refuses an interval that samples nothing or is out of range, naming the field', () => {
    expect(parseTrafficSpec({ samples: true }, '')).toMatchObject({ intervalMs: 1000, interval: '1s', samples: true, alerts: [] });
    expect(parseTrafficSpec({ samples: true, interval: '1500ms' }, '')?.interval).toBe('1500ms');
    expect(parseTrafficSpec({ samples: false }, '')).toBeUndefined();
    expect(fields(() => parseTrafficSpec({ samples: false, interval: '1s' }, 'querystring.'))).toEqual(['querystring.interval']);
    expect(fields(() => parseTrafficSpec({ samples: true, interval: '499ms' }, 'querystring.'))).toEqual(['querystring.interval']);
    expect(fields(() => parseTrafficSpec({ samples: true, interval: '2h' }, ''))).toEqual(['interval']);
  });

  it('refuses bad alerts field by field', () => {
    const bad = (alerts: unknown) => fields(() => parseTrafficSpec({ samples: false, alerts }, 'querystring.'));
    expect(bad({})).toEqual(['querystring.alerts']);
    expect(bad([{ link: 'veth0', metric: 'rxBits', above: 1 }])).toEqual(['querystring.alerts.0.metric']);
    expect(bad([{ link: 'veth0', metric: 'rxBytes', above: 1 }, { link: 'veth0', metric: 'rxBytes', above: 1, below: 2 }])).toEqual(['querystring.alerts.1']);
    expect(bad([{ link: 'veth0', metric: 'rxBytes' }])).toEqual(['querystring.alerts.0']);
    expect(bad([{ link: 'a/b', metric: 'rxBytes', above: 1, bogus: true }])).toEqual(['querystring.alerts.0.bogus', 'querystring.alerts.0.link']);
    expect(bad([{ metric: 'rxBytes', above: '1' }])).toEqual(['querystring.alerts.0.link', 'querystring.alerts.0.above']);
    expect(bad([{ link: 'v', metric: 'rxBytes', above: 1, for: '2d' }])).toEqual(['querystring.alerts.0.for']);
    expect(bad(Array.from({ length: 33 }, () => ({ link: 'v', metric: 'rxBytes', above: 1 })))).toEqual(['querystring.alerts']);
  });
});

describe('traffic on GET /v1/events', () => {
  it('answers 400 naming the field for a bad interval or bad alerts, before anything is streamed', async () => {
    const t = await buildTestApp();
    const field = async (query: string) => (expectProblem(await t.app.inject({ url: `/v1/events?${query}` }), 'REQUEST_INVALID', 400).errors as Array<{ field: string }>).map((e) => e.field);
    expect(await field('types=traffic&interval=100ms')).toEqual(['querystring.interval']);
    expect(await field('types=traffic&interval=1')).toEqual(['querystring.interval']);
    expect(await field('types=link.*&interval=1s')).toEqual(['querystring.interval']);
    expect(await field('alerts=nope')).toEqual(['querystring.alerts']);
    expect(await field(`alerts=${encodeURIComponent(JSON.stringify([{ link: 'veth0', metric: 'rxBitsPerSecond', above: 1, below: 2 }]))}`)).toEqual(['querystring.alerts.0']);
    // A good selection gets as far as the transport check.
    expectProblem(await t.app.inject({ url: `/v1/events?types=traffic&interval=500ms&alerts=${encodeURIComponent(JSON.stringify([{ link: 'veth0', metric: 'rxBitsPerSecond', above: 1 }]))}` }), 'NOT_ACCEPTABLE', 406);
  });

  it('answers 503 NATIVE_HELPER_REQUIRED to traffic where counters cannot be read', async () => {
    const t = await buildTestApp({ counters: null });
    expectProblem(await t.app.inject({ url: '/v1/events?types=traffic' }), 'NATIVE_HELPER_REQUIRED', 503);
    expectProblem(await t.app.inject({ url: '/v1/events?types=namespace.*' }), 'NOT_ACCEPTABLE', 406);
  });

  it('streams samples without seq over a WebSocket, takes alerts in a subscribe message, and shows both in status', async () => {
    const t = await buildTestApp();
    await t.app.inject({ method: 'POST', url: '/v1/namespaces', payload: { name: 'a' } });
    await t.app.inject({ method: 'POST', url: '/v1/namespaces/a/links', payload: { name: 'veth0', kind: 'veth', peer: { name: 'veth1' } } });
    const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/events?types=traffic&namespace=a&link=veth0&interval=500ms`);
    const got: Array<Record<string, unknown>> = [];
    ws.on('message', (d) => got.push(JSON.parse(String(d))));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const until = async (pred: () => boolean) => {
      while (!pred()) await new Promise((r) => setTimeout(r, 20));
    };
    await until(() => got.filter((m) => m.type === 'traffic').length >= 2);
    expect(got[0]).toMatchObject({ type: 'subscribed', types: 'traffic', interval: '500ms' });
    const sample = got.find((m) => m.type === 'traffic')!;
    expect(Object.keys(sample)).toEqual(['type', 'time', 'namespace', 'link', 'interval', 'rxBytes', 'txBytes', 'rxPackets', 'txPackets', 'rxErrors', 'txErrors', 'rxDropped', 'txDropped', 'rxBitsPerSecond', 'txBitsPerSecond', 'rxPacketsPerSecond', 'txPacketsPerSecond']);
    expect(sample).toMatchObject({ namespace: 'a', link: 'veth0', interval: '500ms' });

    ws.send(JSON.stringify({ op: 'subscribe', types: 'traffic', alerts: [{ link: 'veth0', metric: 'rxBytes', above: 1, bogus: 1 }] }));
    await until(() => got.some((m) => m.type === 'error'));
    expect(got.find((m) => m.type === 'error')).toMatchObject({ code: 'REQUEST_INVALID', errors: [{ field: 'alerts.0.bogus' }] });
    const alert = { link: 'veth0', metric: 'rxBytes', above: 1000 };
    ws.send(JSON.stringify({ op: 'subscribe', namespace: 'a', interval: '1s', alerts: [alert] }));
    await until(() => got.filter((m) => m.type === 'subscribed').length === 2);
    expect(got.filter((m) => m.type === 'subscribed')[1]).toMatchObject({ namespace: 'a', interval: '1s', alerts: [alert] });
    t.kernel.link('a', 'veth0')!.counters.rxBytes = 5000;
    await until(() => got.some((m) => m.type === 'traffic.alert'));
    expect(got.find((m) => m.type === 'traffic.alert')).toMatchObject({ seq: expect.any(Number), namespace: 'a', object: { link: 'veth0', state: 'firing', value: 5000 } });

    const status = (await t.app.inject({ url: '/v1/events/status' })).json();
    expect(status.subscribers[0].traffic).toEqual({ interval: '1s', samples: false, alerts: [alert], firing: 1, delivered: expect.any(Number), dropped: 0 });
    expect(status.traffic).toMatchObject({ available: true, intervals: [{ interval: '1s', subscribers: 1, namespaces: 1 }], namespacesSampled: 1, readErrors: 0 });
    const closed = new Promise((resolve) => ws.once('close', resolve));
    ws.close();
    await closed;
    await until(() => t.services.events.log.read(0, 1e9, 100).some((e) => (e.object as { state?: string }).state === 'cleared'));
    expect(t.services.events.log.read(0, 1e9, 100).map((e) => [e.type, (e.object as { state?: string; reason?: string }).state, (e.object as { reason?: string }).reason]).filter(([ty]) => ty === 'traffic.alert')).toEqual([
      ['traffic.alert', 'firing', undefined], ['traffic.alert', 'cleared', 'closed'],
    ]);
  });

  it('sends samples over SSE without an id: line', async () => {
    const t = await buildTestApp();
    const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const ac = new AbortController();
    const res = await fetch(`${url}/v1/events?types=traffic,namespace.*&namespace=host&link=eth0&interval=500ms`, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('event: traffic\n')) text += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    const frame = text.split('\n\n').find((f) => f.includes('event: traffic'))!;
    expect(frame).not.toMatch(/^id:/m);
    expect(JSON.parse(/^data: (.*)$/m.exec(frame)![1]!)).toMatchObject({ type: 'traffic', namespace: 'host', link: 'eth0' });
  });
});
