/**
 * Changes over rtnetlink (addr.add/delete, route.add/delete, link.set, link.add of veths and
 * bridges) against the real kernel:
 * what they make, checked with `ip -j`, and every refusal answered with the code the same op gets
 * as a batch line (an executor with netlinkChanges: false, in the same namespace, one after the
 * other). Namespaces are `nnx-<pid>-...`, removed after each test.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { OpRecord } from '../../src/executor/executor.js';
import { Iproute2Executor } from '../../src/executor/iproute2-executor.js';
import type { Op } from '../../src/executor/ops.js';
import { buildChangeScratch } from '../helpers/netlink-topology.js';

const IP = '/usr/sbin/ip';
let seq = 0;
const made = new Set<string>();

function name(tag = 'c'): string {
  const n = `nnx-${process.pid}-${tag}${seq++}`;
  made.add(n);
  return n;
}

const ip = (...args: string[]): string => execFileSync(IP, args, { encoding: 'utf8', env: { LC_ALL: 'C' } });
const json = (ns: string, ...args: string[]): any[] => JSON.parse(ip('-n', ns, '-j', ...args) || '[]');

afterEach(() => {
  for (const n of made) {
    try {
      execFileSync(IP, ['netns', 'del', n], { stdio: 'ignore' });
    } catch {
      // never made, or deleted by the test
    }
  }
  made.clear();
});

/** A fresh namespace as buildChangeScratch() makes it. */
function scratch(): string {
  const ns = name();
  buildChangeScratch(ns, ip);
  return ns;
}

describe('netlink changes', () => {
  let nl: Iproute2Executor;
  let batch: Iproute2Executor;
  beforeAll(() => {
    nl = new Iproute2Executor({ native: true });
    batch = new Iproute2Executor({ native: true, netlinkChanges: false });
  });
  afterAll(async () => {
    await Promise.all([nl.close(), batch.close()]);
  });

  it('add and delete addresses as ip does; no worker, no argv, no fd left', async () => {
    const ns = scratch();
    const fds = readdirSync('/proc/self/fd').length;
    const records: OpRecord[] = [];
    const run = (op: Op) => nl.run(op, { record: (r) => records.push(r) });
    await run({ kind: 'addr.add', ns, spec: { link: 'vb', family: 4, local: '203.0.113.2', prefixLength: 24, broadcast: '203.0.113.255', label: 'vb:1' } });
    await run({ kind: 'addr.add', ns, spec: { link: 'vb', family: 4, local: '203.0.113.5', prefixLength: 32, peer: '203.0.113.6', scope: 'link' } });
    await run({ kind: 'addr.add', ns, spec: { link: 'vb', family: 6, local: '2001:db8::2', prefixLength: 64, nodad: true } });
    const vb = json(ns, 'address', 'show', 'dev', 'vb')[0].addr_info as any[];
    expect(vb).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ family: 'inet', local: '203.0.113.2', prefixlen: 24, broadcast: '203.0.113.255', label: 'vb:1', scope: 'global' }),
        expect.objectContaining({ family: 'inet', local: '203.0.113.5', address: '203.0.113.6', prefixlen: 32, scope: 'link' }),
        expect.objectContaining({ family: 'inet6', local: '2001:db8::2', prefixlen: 64, nodad: true }),
      ]),
    );
    expect(vb.find((a) => a.local === '2001:db8::2').tentative).toBeUndefined();
    await run({ kind: 'addr.delete', ns, link: 'vb', local: '203.0.113.5', prefixLength: 32, peer: '203.0.113.6' });
    await run({ kind: 'addr.delete', ns, link: 'vb', local: '2001:db8::2', prefixLength: 64 });
    expect(json(ns, 'address', 'show', 'dev', 'vb')[0].addr_info.map((a: any) => a.local)).not.toEqual(expect.arrayContaining(['203.0.113.5']));
    expect(ip('-n', ns, 'address', 'show', 'dev', 'vb')).not.toContain('2001:db8::2');
    expect(records.map((r) => [r.kind, r.ok, r.argv])).toEqual([
      ['addr.add', true, []], ['addr.add', true, []], ['addr.add', true, []], ['addr.delete', true, []], ['addr.delete', true, []],
    ]);
    expect(nl.workerNamespaces).toEqual([]);
    expect(readdirSync('/proc/self/fd').length).toBe(fds);
  });

  it('add, replace and delete routes of every shape', async () => {
    const ns = scratch();
    await nl.run({ kind: 'route.add', ns, spec: { family: 4, type: 'unicast', dst: '198.18.2.0/24', table: 100, via: '203.0.113.254', dev: 'va', src: '203.0.113.1', metric: 7, mtu: 1400 } });
    await nl.run({ kind: 'route.add', ns, spec: { family: 4, type: 'unicast', dst: '198.18.3.0/24', table: 254, dev: 'va' } });
    await nl.run({ kind: 'route.add', ns, spec: { family: 4, type: 'blackhole', dst: '198.18.4.0/24', table: 1000 } });
    await nl.run({ kind: 'route.add', ns, spec: { family: 4, type: 'unicast', dst: '198.18.5.0/24', table: 254, nexthops: [{ via: '203.0.113.253', dev: 'va', weight: 2 }, { via: '203.0.113.252' }] } });
    await nl.run({ kind: 'route.add', ns, spec: { family: 6, type: 'unicast', dst: '2001:db8:5::/48', table: 254, via: '2001:db8::fe', dev: 'va' } });
    await nl.run({ kind: 'route.add', ns, spec: { family: 4, type: 'unicast', dst: '198.18.1.0/24', table: 254, metric: 10, via: '203.0.113.253' }, replace: true });
    expect(json(ns, 'route', 'show', 'table', '100')).toEqual([expect.objectContaining({ dst: '198.18.2.0/24', gateway: '203.0.113.254', dev: 'va', prefsrc: '203.0.113.1', metric: 7, metrics: [{ mtu: 1400 }] })]);
    expect(json(ns, 'route', 'show', 'table', '1000')).toEqual([expect.objectContaining({ type: 'blackhole', dst: '198.18.4.0/24' })]);
    const main = json(ns, 'route', 'show');
    expect(main).toEqual(expect.arrayContaining([
      expect.objectContaining({ dst: '198.18.3.0/24', dev: 'va', scope: 'link' }),
      expect.objectContaining({ dst: '198.18.1.0/24', gateway: '203.0.113.253', metric: 10 }),
      expect.objectContaining({ dst: '198.18.5.0/24', nexthops: [expect.objectContaining({ gateway: '203.0.113.253', weight: 2 }), expect.objectContaining({ gateway: '203.0.113.252', weight: 1 })] }),
    ]));
    expect(main.filter((r) => r.dst === '198.18.1.0/24')).toHaveLength(1);
    expect(json(ns, '-6', 'route', 'show', '2001:db8:5::/48')).toEqual([expect.objectContaining({ gateway: '2001:db8::fe', dev: 'va' })]);
    await nl.run({ kind: 'route.delete', ns, key: { family: 4, table: 100, dst: '198.18.2.0/24', metric: 7, tos: null } });
    await nl.run({ kind: 'route.delete', ns, key: { family: 4, table: 1000, dst: '198.18.4.0/24', metric: 0, tos: null } });
    await nl.run({ kind: 'route.delete', ns, key: { family: 6, table: 254, dst: '2001:db8:5::/48', metric: 1024, tos: null, dev: 'va' } });
    expect(json(ns, 'route', 'show', 'table', '100')).toEqual([]);
    expect(ip('-n', ns, 'route', 'show', 'table', 'all')).not.toContain('198.18.4.0');
    expect(json(ns, '-6', 'route', 'show', '2001:db8:5::/48')).toEqual([]);
  });

  it('set a link up and down, its mtu, mac, txqlen, alias and master', async () => {
    const ns = scratch();
    const link = (l: string): any => json(ns, '-d', 'link', 'show', 'dev', l)[0];
    const set = (l: string, change: Extract<Op, { kind: 'link.set' }>['change']) => nl.run({ kind: 'link.set', ns, name: l, change });
    await set('dn0', { up: true });
    expect(link('dn0').flags).toContain('UP');
    await set('dn0', { up: false });
    expect(link('dn0').flags).not.toContain('UP');
    await set('vb', { mtu: 1400 });
    await set('vb', { mac: '02:00:00:0a:bc:01' });
    await set('vb', { txqlen: 500 });
    await set('vb', { alias: 'to-the-hub' });
    expect(link('vb')).toMatchObject({ mtu: 1400, address: '02:00:00:0a:bc:01', txqlen: 500, ifalias: 'to-the-hub' });
    await set('vb', { alias: null });
    expect(link('vb').ifalias).toBeUndefined();
    await set('vb', { master: 'br0' });
    expect(link('vb').master).toBe('br0');
    await set('vb', { master: null });
    expect(link('vb').master).toBeUndefined();
    expect(nl.workerNamespaces).toEqual([]);
  });

  it('create veths (into another namespace, into host) and bridges; no worker, no fd left', async () => {
    const ns = scratch();
    const peer = name('p');
    ip('netns', 'add', peer);
    const fds = readdirSync('/proc/self/fd').length;
    await nl.run({ kind: 'link.add', ns, spec: { name: 've0', linkKind: 'veth', mtu: 1400, mac: '02:00:00:0a:bc:02', peer: { name: 've1', ns: peer } } });
    await nl.run({ kind: 'link.add', ns, spec: { name: 've2', linkKind: 'veth', peer: { name: 've3', ns } } });
    await nl.run({ kind: 'link.add', ns, spec: { name: 'br1', linkKind: 'bridge', stp: true } });
    await nl.run({ kind: 'link.add', ns, spec: { name: 'br2', linkKind: 'bridge', stp: false } });
    await nl.run({ kind: 'link.add', ns, spec: { name: 've4', linkKind: 'veth', peer: { name: 've5', ns: peer }, up: true } });
    await nl.run({ kind: 'link.add', ns, spec: { name: 'br3', linkKind: 'bridge', up: true } });
    // Created up: the local end and the bridge are up, the veth's peer stays down (so no carrier).
    expect(json(ns, 'link', 'show', 'dev', 've4')[0].flags).toContain('UP');
    expect(json(peer, 'link', 'show', 'dev', 've5')[0].flags).not.toContain('UP');
    expect(json(ns, 'link', 'show', 'dev', 'br3')[0].flags).toContain('UP');
    expect(json(ns, 'link', 'show', 'dev', 'br2')[0].flags).not.toContain('UP');
    const ve0 = json(ns, '-d', 'link', 'show', 'dev', 've0')[0];
    expect(ve0).toMatchObject({ mtu: 1400, address: '02:00:00:0a:bc:02', linkinfo: { info_kind: 'veth' } });
    expect(ve0.link_netnsid).toBeDefined();
    expect(json(peer, '-d', 'link', 'show', 'dev', 've1')[0]).toMatchObject({ mtu: 1400, linkinfo: { info_kind: 'veth' } });
    expect(json(ns, 'link', 'show', 'dev', 've3')[0].link).toBe('ve2');
    expect(json(ns, '-d', 'link', 'show', 'dev', 'br1')[0].linkinfo).toMatchObject({ info_kind: 'bridge', info_data: { stp_state: 1 } });
    expect(json(ns, '-d', 'link', 'show', 'dev', 'br2')[0].linkinfo).toMatchObject({ info_kind: 'bridge', info_data: { stp_state: 0 } });
    expect(nl.workerNamespaces).toEqual([]);
    expect(readdirSync('/proc/self/fd').length).toBe(fds);
    // Nothing holds the peer's namespace: deleting it takes ve0 away with ve1.
    ip('netns', 'del', peer);
    const end = Date.now() + 5000;
    while (ip('-n', ns, 'link', 'show').includes('ve0@') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(ip('-n', ns, 'link', 'show')).not.toContain('ve0@');
  });

  it('answers TARGET_NAMESPACE_NOT_FOUND for a veth whose peer namespace is gone', async () => {
    const ns = scratch();
    await expect(nl.run({ kind: 'link.add', ns, spec: { name: 've0', linkKind: 'veth', peer: { name: 've1', ns: name('gone') } } })).rejects.toMatchObject({ code: 'TARGET_NAMESPACE_NOT_FOUND' });
  });

  const v4 = { link: 'va', family: 4, local: '203.0.113.1', prefixLength: 24 } as const;
  const r4 = { family: 4, type: 'unicast', table: 254 } as const;
  /** Refusals, each answered alike by both paths (and with this code). */
  const refusals: ReadonlyArray<readonly [string, string, (ns: string) => Op]> = [
    ['an IPv4 address that exists', 'ADDRESS_EXISTS', (ns) => ({ kind: 'addr.add', ns, spec: v4 })],
    ['an IPv6 address that exists', 'ADDRESS_EXISTS', (ns) => ({ kind: 'addr.add', ns, spec: { link: 'va', family: 6, local: '2001:db8::1', prefixLength: 64 } })],
    ['an address on a missing link', 'LINK_NOT_FOUND', (ns) => ({ kind: 'addr.add', ns, spec: { ...v4, link: 'nnx-nosuch' } })],
    ['a secondary address of another scope', 'ADDRESS_SCOPE_INVALID', (ns) => ({ kind: 'addr.add', ns, spec: { ...v4, local: '203.0.113.7', scope: 'link' } })],
    ['a multicast IPv6 address', 'REQUEST_INVALID', (ns) => ({ kind: 'addr.add', ns, spec: { link: 'va', family: 6, local: 'ff02::5', prefixLength: 64 } })],
    ['deleting a missing IPv4 address', 'ADDRESS_NOT_FOUND', (ns) => ({ kind: 'addr.delete', ns, link: 'va', local: '203.0.113.9', prefixLength: 24 })],
    ['deleting a missing IPv6 address', 'ADDRESS_NOT_FOUND', (ns) => ({ kind: 'addr.delete', ns, link: 'va', local: '2001:db8::9', prefixLength: 64 })],
    ['deleting an address of a missing link', 'LINK_NOT_FOUND', (ns) => ({ kind: 'addr.delete', ns, link: 'nnx-nosuch', local: '203.0.113.1', prefixLength: 24 })],
    ['a route that exists', 'ROUTE_EXISTS', (ns) => ({ kind: 'route.add', ns, spec: { ...r4, dst: '198.18.1.0/24', via: '203.0.113.254', metric: 10 } })],
    ['a gateway on no link', 'NEXTHOP_UNREACHABLE', (ns) => ({ kind: 'route.add', ns, spec: { ...r4, dst: '198.18.9.0/24', via: '198.51.100.1' } })],
    ['an IPv6 gateway on no link', 'NEXTHOP_UNREACHABLE', (ns) => ({ kind: 'route.add', ns, spec: { family: 6, type: 'unicast', table: 254, dst: '2001:db8:6::/48', via: '2001:db8:ffff::1' } })],
    ['a route through a link that is down', 'NEXTHOP_UNREACHABLE', (ns) => ({ kind: 'route.add', ns, spec: { ...r4, dst: '198.18.9.0/24', dev: 'dn0' } })],
    ['a route through a missing link', 'LINK_NOT_FOUND', (ns) => ({ kind: 'route.add', ns, spec: { ...r4, dst: '198.18.9.0/24', dev: 'nnx-nosuch' } })],
    ['a src that is no address here', 'ROUTE_SOURCE_INVALID', (ns) => ({ kind: 'route.add', ns, spec: { ...r4, dst: '198.18.9.0/24', via: '203.0.113.254', src: '198.51.100.1' } })],
    ['a destination with host bits', 'REQUEST_INVALID', (ns) => ({ kind: 'route.add', ns, spec: { ...r4, dst: '198.18.9.1/24', via: '203.0.113.254' } })],
    ['deleting a missing route', 'ROUTE_NOT_FOUND', (ns) => ({ kind: 'route.delete', ns, key: { family: 4, table: 254, dst: '198.18.77.0/24', metric: 0, tos: null } })],
    // The kernel's `ipv4: FIB table does not exist` (ENOENT) matches no rule: INTERNAL, on both paths.
    ['deleting a route of a missing table', 'INTERNAL', (ns) => ({ kind: 'route.delete', ns, key: { family: 4, table: 4242, dst: '198.18.77.0/24', metric: 0, tos: null } })],
    ['setting a missing link', 'LINK_NOT_FOUND', (ns) => ({ kind: 'link.set', ns, name: 'nnx-nosuch', change: { up: true } })],
    ['an mtu above the maximum', 'LINK_MTU_INVALID', (ns) => ({ kind: 'link.set', ns, name: 'va', change: { mtu: 70000 } })],
    ['an mtu below the minimum', 'LINK_MTU_INVALID', (ns) => ({ kind: 'link.set', ns, name: 'va', change: { mtu: 10 } })],
    ['an mtu above the parent\'s', 'LINK_MTU_INVALID', (ns) => ({ kind: 'link.set', ns, name: 'mv0', change: { mtu: 9000 } })],
    ['a multicast mac', 'LINK_MAC_INVALID', (ns) => ({ kind: 'link.set', ns, name: 'va', change: { mac: '01:00:5e:00:00:01' } })],
    ['a mac on a link that cannot change it', 'LINK_CHANGE_UNSUPPORTED', (ns) => ({ kind: 'link.set', ns, name: 'dn0', change: { mac: '02:00:00:00:00:01' } })],
    ['a master that is no bridge', 'LINK_MASTER_INVALID', (ns) => ({ kind: 'link.set', ns, name: 'va', change: { master: 'vb' } })],
    ['a bridge as its own master', 'LINK_MASTER_INVALID', (ns) => ({ kind: 'link.set', ns, name: 'br0', change: { master: 'br0' } })],
    ['a link whose name is taken', 'LINK_EXISTS', (ns) => ({ kind: 'link.add', ns, spec: { name: 'va', linkKind: 'bridge' } })],
    ['a veth whose peer name is taken', 'LINK_EXISTS', (ns) => ({ kind: 'link.add', ns, spec: { name: 've9', linkKind: 'veth', peer: { name: 'vb', ns } } })],
    ['a veth with an mtu above the maximum', 'LINK_MTU_INVALID', (ns) => ({ kind: 'link.add', ns, spec: { name: 've9', linkKind: 'veth', mtu: 70000, peer: { name: 've8', ns } } })],
    ['a veth with a multicast mac', 'LINK_MAC_INVALID', (ns) => ({ kind: 'link.add', ns, spec: { name: 've9', linkKind: 'veth', mac: '01:00:5e:00:00:01', peer: { name: 've8', ns } } })],
    ['a bridge with vlan filtering (not in this kernel)', 'LINK_KIND_UNSUPPORTED', (ns) => ({ kind: 'link.add', ns, spec: { name: 'br9', linkKind: 'bridge', vlanFiltering: true } })],
    ['a change in a namespace that does not exist', 'NAMESPACE_NOT_FOUND', () => ({ kind: 'link.set', ns: name('gone'), name: 'lo', change: { up: true } })],
    ['an address in a namespace that does not exist', 'NAMESPACE_NOT_FOUND', () => ({ kind: 'addr.add', ns: name('gone'), spec: { ...v4, link: 'lo' } })],
  ];

  it.each(refusals)('refuses %s with %s, as a batch line does', async (_what, code, make) => {
    const ns = scratch();
    const op = make(ns);
    const viaBatch = await batch.run(op).then(() => 'ok', (e: { code: string }) => e.code);
    const viaNetlink = await nl.run(op).then(() => 'ok', (e: { code: string }) => e.code);
    expect([viaNetlink, viaBatch]).toEqual([code, code]);
  });

  it('puts the kernel\'s own words in the detail', async () => {
    const ns = scratch();
    await expect(nl.run({ kind: 'addr.add', ns, spec: v4 })).rejects.toMatchObject({
      code: 'ADDRESS_EXISTS',
      detail: expect.stringContaining('(the kernel: "ipv4: Address already assigned")'),
    });
  });

  // Where a batch line could not answer: ip exits on these (the worker dies: EXECUTOR_UNAVAILABLE).
  it('answers LINK_MASTER_NOT_FOUND for a missing master and LINK_NOT_FOUND for a nexthop\'s missing link', async () => {
    const ns = scratch();
    await expect(nl.run({ kind: 'link.set', ns, name: 'va', change: { master: 'nnx-nosuch' } })).rejects.toMatchObject({ code: 'LINK_MASTER_NOT_FOUND' });
    await expect(nl.run({ kind: 'route.add', ns, spec: { ...r4, dst: '198.18.9.0/24', nexthops: [{ via: '203.0.113.254', dev: 'nnx-nosuch' }] } })).rejects.toMatchObject({ code: 'LINK_NOT_FOUND' });
  });

  it('leaves nothing in a namespace: deleting it frees it at once', async () => {
    const ns = scratch();
    const peer = name('p');
    ip('netns', 'add', peer);
    ip('-n', ns, 'link', 'add', 'vx', 'type', 'veth', 'peer', 'name', 'vy', 'netns', peer);
    await nl.run({ kind: 'link.set', ns: peer, name: 'vy', change: { up: true } });
    await nl.run({ kind: 'addr.add', ns: peer, spec: { link: 'vy', family: 4, local: '198.51.100.2', prefixLength: 24 } });
    ip('netns', 'del', peer);
    // vx goes with its peer once nothing holds the peer's namespace (the kernel frees it asynchronously).
    const end = Date.now() + 5000;
    while (ip('-n', ns, 'link', 'show').includes('vx@') && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(ip('-n', ns, 'link', 'show')).not.toContain('vx@');
  });
});
