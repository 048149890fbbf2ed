/**
 * The netlink parsers against datagrams recorded from this machine's kernel (6.18) by
 * scripts/record-netlink.ts, and against what iproute2 6.1 printed about the same namespace at the
 * same moment (parsed by argv.ts): the two must agree, except where noted.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAddresses, parseLinks, parseRoutes, parseRules } from '../../src/executor/argv.js';
import type { KernelRule } from '../../src/executor/ops.js';
import * as M from '../../src/netlink/messages.js';
import { BUILTIN_NAMES, readTable, systemNames } from '../../src/netlink/names.js';
import {
  addressOf, dumpMessages, errorOf, eventOf, formatIpv6, linkNames, linkOf, neighborOf, routeOf, ruleOf, splitDatagram, type NetlinkEvent,
} from '../../src/netlink/parse.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'netlink');
const datagrams = (name: string): Buffer[] =>
  readFileSync(join(DIR, `${name}.b64`), 'utf8').trim().split('\n').map((l) => Buffer.from(l, 'base64'));
const dumped = (name: string) => dumpMessages(datagrams(name));
const ipJson = (name: string): string => readFileSync(join(DIR, `${name}.ip.json`), 'utf8');
/** The /etc/iproute2 tables of the machine the fixtures were recorded on. */
const N = systemNames(join(DIR, 'etc'));

const links = dumped('links');
const names = linkNames(links);
const allLinks = links.flatMap((m) => linkOf(m, names) ?? []);
const link = (name: string) => allLinks.find((l) => l.name === name);
const order = new Map([...names.keys()].map((k, i) => [k, i]));
const allAddresses = dumped('addresses')
  .flatMap((m) => addressOf(m, names, N) ?? [])
  .sort((a, b) => (order.get(a.ifindex) ?? 0) - (order.get(b.ifindex) ?? 0));
const routes = (name: string, family: 4 | 6, table: number | 'all') => dumped(name).flatMap((m) => routeOf(m, names, { family, table }, N) ?? []);
const rules = (name: string) => dumped(name).flatMap((m) => ruleOf(m, N) ?? []);

describe('framing', () => {
  it('splits datagrams into messages and ends a dump at NLMSG_DONE', () => {
    const raw = datagrams('links');
    const msgs = raw.flatMap(splitDatagram);
    expect(msgs.at(-1)?.type).toBe(M.NLMSG_DONE);
    expect(links.every((m) => m.type === M.RTM_NEWLINK)).toBe(true);
    expect(links).toHaveLength(msgs.length - 1);
  });

  it('turns NLMSG_ERROR into an error with the errno name and the extended-ack text', () => {
    const text = Buffer.from('Invalid header for route dump request\0');
    const tlv = M.attr(M.NLMSGERR_ATTR_MSG, text);
    const payload = Buffer.alloc(4 + 16);
    payload.writeInt32LE(-22, 0);
    payload.writeUInt32LE(16, 4);
    const err = errorOf({ type: M.NLMSG_ERROR, flags: M.NLM_F_CAPPED | M.NLM_F_ACK_TLVS, seq: 1, pid: 0, payload: Buffer.concat([payload, tlv]) });
    expect(err?.code).toBe('EINVAL');
    expect(err?.message).toBe('netlink: Invalid header for route dump request');
    const ack = Buffer.alloc(20);
    expect(errorOf({ type: M.NLMSG_ERROR, flags: 0, seq: 1, pid: 0, payload: ack })).toBeNull();
    const done = Buffer.alloc(20);
    done.writeUInt32LE(20, 0);
    done.writeUInt16LE(M.NLMSG_DONE, 4);
    done.writeInt32LE(-16, 16);
    expect(() => dumpMessages([done])).toThrow(expect.objectContaining({ code: 'EBUSY' }));
  });

  it('builds dump requests the kernel accepts under strict checking', () => {
    const r = M.routeDumpRequest(7, 6, 100);
    expect(r.toString('hex')).toBe(
      // nlmsghdr: len 36, RTM_GETROUTE, REQUEST|DUMP, seq 7, pid 0; rtmsg AF_INET6; RTA_TABLE 100
      '24000000' + '1a00' + '0103' + '07000000' + '00000000' + '0a0000000000000000000000' + '0800' + '0f00' + '64000000',
    );
    expect(M.routeDumpRequest(1, 4, 'all').length).toBe(28);
    expect(M.linkDumpRequest(1).subarray(32).toString('hex')).toBe('08001d0008000000');
    expect(M.addressDumpRequest(1, 4)[16]).toBe(M.AF_INET);
    expect(M.ruleDumpRequest(1, 6)[16]).toBe(M.AF_INET6);
    expect(M.neighborDumpRequest(1)[16]).toBe(M.AF_UNSPEC);
  });
});

describe('formatting as iproute2 does', () => {
  it('prints IPv6 as glibc inet_ntop', () => {
    const v6 = (hex: string) => formatIpv6(Buffer.from(hex, 'hex'));
    expect(v6('00000000000000000000000000000000')).toBe('::');
    expect(v6('00000000000000000000000000000001')).toBe('::1');
    expect(v6('20010db8000000000000000000000001')).toBe('2001:db8::1');
    expect(v6('20010db8000100000000000000000000')).toBe('2001:db8:1::');
    expect(v6('00010000000000010000000000000001')).toBe('1:0:0:1::1');
    expect(v6('20010db8000000010000000000000001')).toBe('2001:db8:0:1::1');
    expect(v6('20010db800010001000100010001000a')).toBe('2001:db8:1:1:1:1:1:a');
    expect(v6('00000000000000000000ffffc6336401')).toBe('::ffff:198.51.100.1');
    expect(v6('000000000000000000000000c6336401')).toBe('::198.51.100.1');
  });

  it('reads iproute2 name tables like rtnl_tab_initialize', () => {
    const m = new Map<number, string>();
    readTable('# comment\n0x28\tAF11\n 4 static # trailing\nbad line\n300 toolarge\n', m);
    expect([...m]).toEqual([[0x28, 'AF11'], [4, 'static']]);
    expect(N.dsfield(0x28)).toBe('AF11');
    expect(N.dsfield(0x10)).toBe('0x10');
    expect(N.realm(0)).toBe('cosmos');
    expect(BUILTIN_NAMES.realm(0)).toBe('unknown');
    expect(N.protocol(186)).toBe('bgp');
    expect(N.protocol(77)).toBe('77');
    expect(N.ipproto(58)).toBe('ipv6-icmp');
    expect(N.ipproto(250)).toBe('ipproto-250');
    expect(N.group(0)).toBe('default');
  });
});

describe('links', () => {
  it('parses each kind with its details', () => {
    expect(link('lo')).toMatchObject({ index: 1, kind: 'loopback', up: true, operstate: 'UNKNOWN', mtu: 65536, minMtu: null, maxMtu: null, mac: '00:00:00:00:00:00' });
    expect(link('d0')).toMatchObject({ kind: 'veth', alias: 'uplink veth', txqlen: 2000, operstate: 'UP', lower: { index: 2, name: 'd0p', netnsid: null } });
    expect(link('vb')).toMatchObject({ master: 'br0', lower: { name: 'va', netnsid: null } });
    // The veth whose peer is in the other namespace: the peer's index there and the nsid, no name.
    expect(link('vx')?.lower).toEqual({ index: 2, name: null, netnsid: 0 });
    expect(link('vd')).toMatchObject({ up: true, operstate: 'LOWERLAYERDOWN' });
    expect(link('br0')).toMatchObject({ kind: 'bridge', bridge: { stp: true, vlanFiltering: false }, lower: null });
    expect(link('mv0')).toMatchObject({ kind: 'macvlan', macvlan: { mode: 'bridge' }, lower: { name: 'd0' } });
    expect(link('mv1')?.macvlan).toEqual({ mode: 'private' });
    expect(link('vxl0')?.vxlan).toEqual({ vni: 42, local: '198.51.100.1', remote: '198.51.100.2', group: null, dstport: 4789, parent: 'd0' });
    expect(link('vxl1')?.vxlan).toEqual({ vni: 43, local: null, remote: null, group: '239.1.1.1', dstport: 4790, parent: 'd0' });
    expect(link('vxl6')?.vxlan).toEqual({ vni: 44, local: '2001:db8::1', remote: '2001:db8::2', group: null, dstport: 4791, parent: null });
    expect(link('tun0')).toMatchObject({ kind: 'tun', mac: null, txqlen: 500, tun: { persist: true, multiQueue: false, vnetHdr: false, pi: false } });
    expect(link('tap0')).toMatchObject({ kind: 'tap', maxMtu: 65521, tun: { persist: true, multiQueue: true, vnetHdr: true, pi: false } });
    expect(link('nnifb')).toMatchObject({ kind: 'ifb', minMtu: null, maxMtu: null, txqlen: 32 });
  });

  it('equals parseLinks of `ip -j -d link show` of the same namespace', () => {
    expect(allLinks).toEqual(parseLinks(ipJson('links')));
  });

  it('names a lower device it cannot resolve ifN, keeping its index (ip: index -1)', () => {
    const d0 = links.find((m) => linkOf(m, names)?.name === 'd0');
    expect(d0 && linkOf(d0, new Map())?.lower).toEqual({ index: 2, name: 'if2', netnsid: null });
  });
});

describe('addresses', () => {
  const addr = (local: string) => allAddresses.find((a) => a.local === local);

  it('parses peers, labels, secondaries, lifetimes and IPv6 flags', () => {
    expect(addr('198.51.100.1')).toEqual({
      ifindex: 3, link: 'd0', family: 4, local: '198.51.100.1', prefixLength: 24, peer: null, broadcast: null, scope: 'global', label: 'd0',
      flags: [], validLifetime: null, preferredLifetime: null,
    });
    expect(addr('198.51.100.5')?.flags).toEqual(['secondary']);
    expect(addr('198.51.100.7')).toMatchObject({ label: 'd0:lab', flags: ['secondary'] });
    expect(addr('203.0.113.1')).toMatchObject({ link: 'va', prefixLength: 32, peer: '203.0.113.2' });
    expect(addr('198.18.0.1')).toMatchObject({ flags: ['dynamic'], validLifetime: 3600, preferredLifetime: 1800 });
    expect(addr('2001:db8::1')).toMatchObject({ family: 6, label: null, flags: ['nodad'] });
    expect(addr('2001:db8:1::1')?.flags).toEqual(['nodad', 'noprefixroute']);
    expect(addr('::1')).toMatchObject({ scope: 'host', prefixLength: 128 });
    expect(allAddresses.filter((a) => a.scope === 'link').every((a) => a.local.startsWith('fe80::'))).toBe(true);
  });

  it('equals parseAddresses of `ip -j address show`, grouped by link in link order', () => {
    expect(allAddresses).toEqual(parseAddresses(ipJson('addresses')));
  });
});

describe('routes', () => {
  const v4 = routes('routes-v4-all', 4, 'all');
  const v6 = routes('routes-v6-all', 6, 'all');
  const r4 = (dst: string, tos: string | null = null) => v4.find((r) => r.dst === dst && r.tos === tos);
  const r6 = (dst: string) => v6.find((r) => r.dst === dst);

  it('parses types, tables, metrics, tos, multipath, mtu, protocols and flags', () => {
    expect(r4('0.0.0.0/0')).toEqual({
      family: 4, table: 254, dst: '0.0.0.0/0', metric: 0, tos: null, type: 'unicast', via: '198.51.100.254', dev: 'd0', src: null, scope: 'global',
      protocol: 'boot', mtu: 1400, nexthops: null, flags: [],
    });
    expect(r4('198.18.1.0/24')?.metric).toBe(10);
    expect(r4('198.18.2.0/24')).toMatchObject({ type: 'blackhole', dev: null, via: null });
    expect(r4('198.18.3.0/24')).toMatchObject({ type: 'unreachable', table: 100 });
    expect(r4('198.18.4.0/24')?.type).toBe('prohibit');
    expect(r4('198.18.5.0/24')).toMatchObject({ via: null, dev: null, nexthops: [{ via: '198.51.100.253', dev: 'd0', weight: 2 }, { via: '198.51.100.252', dev: 'd0', weight: 1 }] });
    expect(r4('198.18.6.0/24', '0x10')?.via).toBe('198.51.100.254');
    expect(r4('198.18.6.0/24', 'AF11')?.via).toBe('198.51.100.254');
    expect(r4('198.18.7.1/32')).toMatchObject({ scope: 'link', dev: 'd0' });
    expect(r4('198.18.8.0/24')).toMatchObject({ src: '198.51.100.1', protocol: 'static' });
    expect(r4('198.18.9.0/24')).toMatchObject({ dev: 'vd', flags: ['linkdown'] });
    expect(r4('198.18.12.0/24')).toMatchObject({ table: 1000, protocol: 'bird' });
    expect(r4('198.18.13.0/24')).toMatchObject({ type: 'throw', table: 100 });
    expect(r4('198.18.14.0/24')?.flags).toEqual(['onlink']);
    expect(r4('198.51.100.255/32')).toMatchObject({ type: 'broadcast', table: 255, scope: 'link', protocol: 'kernel' });
    expect(r6('2001:db8:100::/48')).toMatchObject({ via: '2001:db8::ff', metric: 100 });
    expect(r6('2001:db8:200::/48')).toMatchObject({ type: 'blackhole', dev: 'lo', metric: 1024 });
    expect(r6('2001:db8:300::/48')?.nexthops).toEqual([{ via: '2001:db8::fe', dev: 'd0', weight: 1 }, { via: '2001:db8::fd', dev: 'd0', weight: 3 }]);
    expect(r6('2001:db8:400::/48')).toMatchObject({ type: 'unreachable', table: 100 });
    expect(r6('2001:db8:500::/48')?.mtu).toBe(1300);
    expect(r6('2001:db8:600::1/128')?.dev).toBe('va');
    expect(v6.filter((r) => r.dst === 'fe80::/64').map((r) => r.dev)).toEqual(['d0p', 'd0', 'vb', 'va']);
  });

  it('equals parseRoutes of `ip -j route show table T`', () => {
    expect(v4).toEqual(parseRoutes(ipJson('routes-v4-all'), 4, 'all'));
    expect(v6).toEqual(parseRoutes(ipJson('routes-v6-all'), 6, 'all'));
    expect(routes('routes-v4-main', 4, 254)).toEqual(parseRoutes(ipJson('routes-v4-main'), 4, 254));
    expect(routes('routes-v4-100', 4, 100)).toEqual(parseRoutes(ipJson('routes-v4-100'), 4, 100));
  });
});

describe('rules', () => {
  const v4 = rules('rules-v4');
  const v6 = rules('rules-v6');
  const at = (list: KernelRule[], p: number) => list.find((r) => r.priority === p);

  it('parses selectors, actions and flags', () => {
    expect(at(v4, 0)).toMatchObject({ action: 'lookup', table: 255, from: null, protocol: null });
    expect(at(v4, 1000)).toMatchObject({ from: '198.51.100.5/32', table: 100 });
    expect(at(v4, 1100)).toEqual({
      family: 4, priority: 1100, not: true, from: '198.18.0.0/16', to: '198.51.100.0/24', iif: 'va', oif: 'lo', fwmark: 16, fwmask: 255, tos: null,
      ipproto: 'tcp', sport: { start: 1000, end: 2000 }, dport: { start: 443, end: 443 }, uidrange: null, l3mdev: false, action: 'lookup', table: 254,
      goto: null, suppressPrefixLength: 0, suppressIfgroup: null, realms: null, protocol: null, flags: [],
    });
    expect(at(v4, 1200)).toMatchObject({ to: '198.18.1.0/24', action: 'unreachable', table: null });
    expect(at(v4, 1300)).toMatchObject({ action: 'goto', goto: 1400, flags: [] });
    expect(at(v4, 1400)?.action).toBe('nop');
    expect(at(v4, 1500)).toMatchObject({ fwmark: 1, fwmask: null, action: 'blackhole' });
    expect(at(v4, 1600)).toMatchObject({ tos: '0x10', uidrange: { start: 100, end: 200 }, table: 5, realms: '1/2', protocol: 'static' });
    expect(at(v4, 1700)).toMatchObject({ iif: 'nosuch', flags: ['iif_detached'] });
    expect(at(v4, 1800)).toMatchObject({ l3mdev: true, table: null });
    expect(at(v4, 1900)).toMatchObject({ goto: 1950, flags: ['unresolved'] });
    expect(at(v4, 2000)).toMatchObject({ action: 'prohibit', ipproto: 'udp', dport: { start: 53, end: 53 } });
    expect(at(v4, 2100)).toMatchObject({ realms: '0/3', suppressIfgroup: 'default', table: 8 });
    expect(at(v4, 2200)).toMatchObject({ fwmark: 0, fwmask: 255 });
    expect(v4.map((r) => r.priority).slice(-2)).toEqual([32766, 32767]);
    expect(at(v6, 1000)?.from).toBe('2001:db8::/32');
    expect(at(v6, 1100)).toMatchObject({ to: '2001:db8:1::/48', action: 'prohibit' });
    expect(at(v6, 1200)).toMatchObject({ ipproto: 'ipv6-icmp', oif: 'va', table: 254 });
  });

  it('equals parseRules of `ip -j rule show`, but keeps a fwmark of 0 (ip prints "0", which parseRules drops)', () => {
    const ip4 = parseRules(ipJson('rules-v4'), 4);
    expect(at(ip4, 2200)?.fwmark).toBeNull();
    expect(v4.map((r) => (r.priority === 2200 ? { ...r, fwmark: null } : r))).toEqual(ip4);
    expect(v6).toEqual(parseRules(ipJson('rules-v6'), 6));
  });
});

describe('neighbours', () => {
  const all = dumped('neighbors').flatMap((m) => neighborOf(m, names) ?? []);

  it('parses address, link, mac, state and the router flag', () => {
    expect(all.find((n) => n.address === '198.51.100.9')).toEqual({
      ifindex: 3, link: 'd0', family: 4, address: '198.51.100.9', mac: '02:00:00:00:00:09', state: ['PERMANENT'], flags: [], router: false,
    });
    expect(all.find((n) => n.address === '2001:db8::9')).toMatchObject({ family: 6, mac: '02:00:00:00:00:0a', state: ['PERMANENT'], router: true });
    expect(all.find((n) => n.address === '198.51.100.10')?.state).toEqual(['STALE']);
    expect(all.filter((n) => n.state.includes('NOARP')).every((n) => n.address.startsWith('ff02::') || n.address.startsWith('224.'))).toBe(true);
  });
});

describe('events', () => {
  it('parses the recorded changes in order, as new or del, names resolved as they come and go', () => {
    const map = new Map(names);
    const events: NetlinkEvent[] = [];
    for (const d of datagrams('events')) {
      for (const m of splitDatagram(d)) {
        const e = eventOf(m, map, N);
        if (e?.kind === 'link' && e.action === 'new') map.set(e.link.index, e.link.name);
        if (e) events.push(e);
      }
    }
    const summary = events.map((e) => {
      switch (e.kind) {
        case 'link':
          return `${e.action} link ${e.link.name}${e.link.up ? ' up' : ''}`;
        case 'address':
          return `${e.action} address ${e.address.local}/${e.address.prefixLength} ${e.address.link}`;
        case 'route':
          return `${e.action} route ${e.route.table} ${e.route.type} ${e.route.dst} ${e.route.dev}`;
        case 'rule':
          return `${e.action} rule ${e.rule.priority} ${e.rule.from} ${e.rule.table}`;
        case 'neighbor':
          return `${e.action} neighbor ${e.neighbor.address} ${e.neighbor.link} ${e.neighbor.state.join(',')}`;
        case 'nsid':
          return `${e.action} nsid ${e.nsid}`;
      }
    });
    expect(summary).toEqual([
      'new link ev1',
      'new link ev0',
      'new link ev0 up',
      'new address 203.0.113.77/24 ev0',
      'new route 255 local 203.0.113.77/32 ev0',
      'new route 254 unicast 203.0.113.0/24 ev0',
      'new route 255 broadcast 203.0.113.255/32 ev0',
      'new route 254 unicast 198.18.77.0/24 ev0',
      'new rule 7777 198.18.77.0/24 77',
      'new neighbor 203.0.113.78 ev0 PERMANENT',
      'new nsid 77',
      // ip neigh del: the kernel first marks the entry failed, then removes it
      'new neighbor 203.0.113.78 ev0 FAILED',
      'del neighbor 203.0.113.78 ev0 FAILED',
      'del rule 7777 198.18.77.0/24 77',
      'del route 254 unicast 198.18.77.0/24 ev0',
      'del address 203.0.113.77/24 ev0',
      'del route 254 unicast 203.0.113.0/24 ev0',
      'del route 255 broadcast 203.0.113.255/32 ev0',
      'del route 255 local 203.0.113.77/32 ev0',
      'new link ev0',
      'del link ev0',
      'del link ev1',
      'del nsid 77',
    ]);
    const del = events.find((e) => e.kind === 'link' && e.action === 'del');
    expect(del?.kind === 'link' && del.link).toMatchObject({ name: 'ev0', kind: 'veth' });
  });
});
