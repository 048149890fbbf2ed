import { describe, expect, it } from 'vitest';
import { type KernelAddress, type KernelLink, type KernelRoute, ruleOfSpec } from '../../src/executor/ops.js';
import { ChangeGate } from '../../src/inventory/change-gate.js';
import { diffFields } from '../../src/inventory/monitor.js';
import { NamespaceStack, neighborFromNetlink } from '../../src/inventory/stack.js';

const link = (index: number, name: string, over: Partial<KernelLink> = {}): KernelLink => ({
  index, name, kind: 'bridge', up: false, operstate: 'DOWN', mtu: 1500, minMtu: 68, maxMtu: 65535, mac: '02:00:00:00:00:01', txqlen: 1000, alias: null, master: null, lower: null, ...over,
});
const addr = (ifindex: number, linkName: string, local: string, over: Partial<KernelAddress> = {}): KernelAddress => ({
  ifindex, link: linkName, family: local.includes(':') ? 6 : 4, local, prefixLength: 24, peer: null, broadcast: null, scope: 'global', label: null, flags: [], validLifetime: null, preferredLifetime: null, ...over,
});
const route = (dst: string, dev: string | null, over: Partial<KernelRoute> = {}): KernelRoute => ({
  family: dst.includes(':') ? 6 : 4, table: 254, dst, metric: 0, tos: null, type: 'unicast', via: null, dev, src: null, scope: 'link', protocol: 'kernel', mtu: null, nexthops: null, flags: [], ...over,
});
const ev = <K extends 'link' | 'address' | 'route'>(kind: K, action: 'new' | 'del', obj: unknown) => ({ kind, action, [kind]: obj }) as never;

describe('a namespace stack (the inventory of one namespace)', () => {
  it('turns events into changes, and a repeated event into none', () => {
    const s = new NamespaceStack('a', 'id');
    expect(s.apply(ev('link', 'new', link(2, 'br0')))).toEqual([{ kind: 'link', key: '2', after: link(2, 'br0') }]);
    expect(s.apply(ev('link', 'new', link(2, 'br0')))).toEqual([]);
    const up = link(2, 'br0', { up: true, operstate: 'UP' });
    expect(s.apply(ev('link', 'new', up))).toEqual([{ kind: 'link', key: '2', before: link(2, 'br0'), after: up }]);
    expect(s.apply(ev('link', 'del', up))).toEqual([{ kind: 'link', key: '2', before: up }]);
    expect(s.apply(ev('link', 'del', up))).toEqual([]);
    expect(s.links()).toEqual([]);
  });

  it('renames what refers to a renamed link: addresses, routes (re-keyed for IPv6), ports', () => {
    const s = new NamespaceStack('a', 'id');
    s.replace({ links: [link(2, 'br0'), link(3, 'p0', { master: 'br0' })], addresses: [addr(2, 'br0', '198.51.100.1')], routes: [route('198.51.100.0/24', 'br0'), route('2001:db8::/64', 'br0')], rules: [], neighbors: [] });
    s.apply(ev('link', 'new', link(2, 'br1')));
    expect(s.addresses().map((a) => a.link)).toEqual(['br1']);
    expect(s.routes().map((r) => r.dev)).toEqual(['br1', 'br1']);
    expect(s.links().find((l) => l.index === 3)?.master).toBe('br1');
    expect(s.names.get(2)).toBe('br1');
    // The IPv6 route's key has its device: deleting it by the new name's key works.
    expect(s.apply(ev('route', 'del', route('2001:db8::/64', 'br1')))).toHaveLength(1);
  });

  it('diffs a dump against what it held (resync), keeping the rest of a kind when told to', () => {
    const s = new NamespaceStack('a', 'id');
    s.replace({ links: [link(1, 'lo')], addresses: [], routes: [route('198.51.100.0/24', 'lo'), route('2001:db8::/64', 'lo')], rules: [], neighbors: [] });
    const changes = s.replaceKind('route', [], (r) => r.family === 4);
    expect(changes).toEqual([{ kind: 'route', key: expect.any(String), before: route('198.51.100.0/24', 'lo') }]);
    expect(s.routes().map((r) => r.dst)).toEqual(['2001:db8::/64']);
  });

  it('does not call a countdown of address lifetimes a change, and counts them down when read', () => {
    let now = 0;
    const s = new NamespaceStack('a', 'id', () => now);
    s.replace({ links: [link(2, 'br0')], addresses: [addr(2, 'br0', '2001:db8::1', { validLifetime: 100, preferredLifetime: 50 })], routes: [], rules: [], neighbors: [] });
    expect(s.apply(ev('address', 'new', addr(2, 'br0', '2001:db8::1', { validLifetime: 99, preferredLifetime: 49 })))).toEqual([]);
    now = 10_500;
    expect(s.addresses()[0]).toMatchObject({ validLifetime: 89, preferredLifetime: 39 });
  });

  it('orders rules by priority, keeping the order of those of one priority', () => {
    const s = new NamespaceStack('a', 'id');
    const rule = (priority: number, table: number) => ruleOfSpec({ family: 4, priority, table, action: 'lookup' });
    s.replace({ links: [], addresses: [], routes: [], rules: [rule(32766, 254), rule(0, 255), rule(100, 7), rule(100, 8)], neighbors: [] });
    expect(s.rules().map((r) => [r.priority, r.table])).toEqual([[0, 255], [100, 7], [100, 8], [32766, 254]]);
  });

  it('gives neighbours the REST layer shape', () => {
    expect(neighborFromNetlink({ ifindex: 2, link: 'v0', family: 4, address: '198.51.100.2', mac: '02:00:00:00:00:02', state: ['REACHABLE'], flags: [], router: true })).toEqual({
      link: 'v0', family: 4, address: '198.51.100.2', mac: '02:00:00:00:00:02', states: ['reachable'], flags: ['router'],
    });
  });
});

describe('event details', () => {
  it('names the previous values of the fields that changed', () => {
    expect(diffFields({ mtu: 1500, name: 'a', labels: {} }, { mtu: 1400, name: 'a', labels: { x: '1' } })).toEqual({ mtu: 1500, labels: {} });
    expect(diffFields({ a: 1 }, { a: 1, b: 2 })).toEqual({ b: null });
  });

  it('holds a namespace while changes are under way in it, and says when the last one ends', async () => {
    const g = new ChangeGate();
    const ended: string[] = [];
    g.onReleased((ns) => ended.push(ns));
    const one = g.hold(['a', 'b']);
    const two = g.hold(['a']);
    expect([g.busy('a'), g.busy('b'), g.busy('c')]).toEqual([true, true, false]);
    let idle = false;
    void g.idle('a').then(() => (idle = true));
    one();
    one(); // a second call changes nothing
    expect(ended).toEqual(['b']);
    await Promise.resolve();
    expect(idle).toBe(false);
    two();
    await Promise.resolve();
    expect(idle).toBe(true);
    expect(ended).toEqual(['b', 'a']);
  });
});
