/** Link ops: argv (a table), the readers of `ip -j` output, and classify, against output recorded on this machine. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Command, HOST_NETNS_PATH, commandsFor, parseLinkStats, parseLinks, parseNsids } from '../../src/executor/argv.js';
import { classify } from '../../src/executor/classify.js';
import type { Op } from '../../src/executor/ops.js';

const fixture = (name: string): string => readFileSync(join(import.meta.dirname, '..', 'fixtures', name), 'utf8');
const ip = (netns: string | undefined, line: string): Command => ({ tool: 'ip', ...(netns ? { netns } : {}), args: line.split(' ') });

const table: ReadonlyArray<readonly [Op, readonly Command[]]> = [
  [{ kind: 'link.list', ns: 'a' }, [ip('a', '-j -d link show')]],
  [{ kind: 'link.list', ns: 'host', name: 'eth0' }, [ip(undefined, '-j -d link show dev eth0')]],
  [{ kind: 'link.nsids', ns: 'a' }, [ip('a', '-j netns list')]],
  [{ kind: 'link.stats', ns: 'a', name: 'va' }, [ip('a', '-s -s -j link show dev va')]],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'va', linkKind: 'veth', peer: { name: 'vb', ns: 'b' } } }, [ip('a', 'link add name va type veth peer name vb netns b')]],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'va', linkKind: 'veth', peer: { name: 'vb', ns: 'a' } } }, [ip('a', 'link add name va type veth peer name vb')]],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'va', mtu: 1400, linkKind: 'veth', peer: { name: 'vb', ns: 'b' }, up: true } }, [ip('a', 'link add name va mtu 1400 up type veth peer name vb mtu 1400 netns b')]],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'br0', linkKind: 'bridge', up: true } }, [ip('a', 'link add name br0 up type bridge')]],
  [
    { kind: 'link.add', ns: 'a', spec: { name: 'va', mtu: 9000, mac: '02:AA:00:00:00:01', linkKind: 'veth', peer: { name: 'vb', ns: 'host' } } },
    [ip('a', `link add name va mtu 9000 address 02:aa:00:00:00:01 type veth peer name vb mtu 9000 netns ${HOST_NETNS_PATH}`)],
  ],
  [{ kind: 'link.add', ns: 'host', spec: { name: 'nnh0', linkKind: 'veth', peer: { name: 'vb', ns: 'b' } } }, [ip(undefined, 'link add name nnh0 type veth peer name vb netns b')]],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'br0', linkKind: 'bridge', stp: true, vlanFiltering: false } }, [ip('a', 'link add name br0 type bridge stp_state 1 vlan_filtering 0')]],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'mv0', linkKind: 'macvlan', parent: 'eth1', mode: 'bridge' } }, [ip('a', 'link add link eth1 name mv0 type macvlan mode bridge')]],
  [
    { kind: 'link.add', ns: 'a', spec: { name: 'vx0', linkKind: 'vxlan', vni: 42, dstport: 4789, local: '203.0.113.1', remote: '203.0.113.2', parent: 'eth1' } },
    [ip('a', 'link add name vx0 type vxlan id 42 local 203.0.113.1 remote 203.0.113.2 dstport 4789 dev eth1')],
  ],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'vx1', linkKind: 'vxlan', vni: 0, dstport: 0, group: '239.1.1.1', parent: 'eth1' } }, [ip('a', 'link add name vx1 type vxlan id 0 group 239.1.1.1 dstport 0 dev eth1')]],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'tun0', linkKind: 'tun' } }, [ip('a', 'tuntap add mode tun name tun0')]],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'tap0', linkKind: 'tap' } }, [ip('a', 'tuntap add mode tap name tap0')]],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'ifb0', linkKind: 'ifb', mtu: 1400 } }, [ip('a', 'link add name ifb0 mtu 1400 type ifb')]],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'd0', linkKind: 'dummy' } }, [ip('a', 'link add name d0 type dummy')]],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'v10', linkKind: 'vlan', parent: 'eth1', vlanId: 10 } }, [ip('a', 'link add link eth1 name v10 type vlan id 10')]],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'vrf1', linkKind: 'vrf', table: 10 } }, [ip('a', 'link add name vrf1 type vrf table 10')]],
  [{ kind: 'link.add', ns: 'a', spec: { name: 'gre1', linkKind: 'gre', local: '198.51.100.1', remote: '198.51.100.2' } }, [ip('a', 'link add name gre1 type gre local 198.51.100.1 remote 198.51.100.2')]],
  [{ kind: 'link.set', ns: 'a', name: 'va', change: { up: true } }, [ip('a', 'link set dev va up')]],
  [{ kind: 'link.set', ns: 'a', name: 'va', change: { up: false } }, [ip('a', 'link set dev va down')]],
  [{ kind: 'link.set', ns: 'a', name: 'va', change: { mtu: 1400 } }, [ip('a', 'link set dev va mtu 1400')]],
  [{ kind: 'link.set', ns: 'a', name: 'va', change: { mac: '02:00:00:00:00:01' } }, [ip('a', 'link set dev va address 02:00:00:00:00:01')]],
  [{ kind: 'link.set', ns: 'a', name: 'va', change: { txqlen: 500 } }, [ip('a', 'link set dev va txqueuelen 500')]],
  [{ kind: 'link.set', ns: 'a', name: 'va', change: { master: 'br0' } }, [ip('a', 'link set dev va master br0')]],
  [{ kind: 'link.set', ns: 'a', name: 'va', change: { master: null } }, [ip('a', 'link set dev va nomaster')]],
  [{ kind: 'link.set', ns: 'a', name: 'va', change: { alias: 'to-b' } }, [ip('a', 'link set dev va alias to-b')]],
  [{ kind: 'link.set', ns: 'a', name: 'va', change: { alias: null } }, [{ tool: 'ip', netns: 'a', args: ['link', 'set', 'dev', 'va', 'alias', ''] }]],
  [{ kind: 'link.move', ns: 'a', name: 'va', to: 'b' }, [ip('a', 'link set dev va netns b')]],
  [{ kind: 'link.move', ns: 'a', name: 'va', to: 'host', newName: 'nnh1' }, [ip('a', `link set dev va netns ${HOST_NETNS_PATH} name nnh1`)]],
  [{ kind: 'link.move', ns: 'host', name: 'nnh1', to: 'a', newName: 'va' }, [ip(undefined, 'link set dev nnh1 netns a name va')]],
  [{ kind: 'link.delete', ns: 'a', name: 'va' }, [ip('a', 'link del dev va')]],
  [{ kind: 'link.delete', ns: 'host', name: 'nnh1' }, [ip(undefined, 'link del dev nnh1')]],
];

describe('commandsFor (links)', () => {
  it.each(table)('maps %j to its commands', (op, commands) => {
    expect(commandsFor(op)).toEqual(commands);
  });

  it('names host by the daemon namespace file, never by a bare number', () => {
    expect(HOST_NETNS_PATH).toBe(`/proc/${process.pid}/ns/net`);
  });

  it.each<Op>([
    { kind: 'link.set', ns: 'a', name: '-n', change: { up: true } },
    { kind: 'link.set', ns: 'a', name: 'a b', change: { up: true } },
    { kind: 'link.delete', ns: '../x', name: 'va' },
    { kind: 'link.move', ns: 'a', name: 'va', to: 'a' },
    { kind: 'link.set', ns: 'a', name: 'va', change: { mac: '02:00:00:00:00:01 up' } },
    { kind: 'link.set', ns: 'a', name: 'va', change: { alias: 'a b' } },
    { kind: 'link.set', ns: 'a', name: 'va', change: { mtu: 1.5 } },
    { kind: 'link.add', ns: 'a', spec: { name: 'vx', linkKind: 'vxlan', vni: 2 ** 24, dstport: 4789 } },
    { kind: 'link.add', ns: 'a', spec: { name: 'vx', linkKind: 'vxlan', vni: 1, dstport: 4789, remote: 'example.com' } },
    { kind: 'link.add', ns: 'a', spec: { name: 'tun0', linkKind: 'tun', mtu: 1400 } },
    { kind: 'link.add', ns: 'a', spec: { name: 'va', linkKind: 'veth', peer: { name: 'vb', ns: '-x' } } },
  ])('refuses %j with INTERNAL (names and values are checked again)', (op) => {
    expect(() => commandsFor(op)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

describe('parseLinks (recorded ip -j -d link show)', () => {
  const links = parseLinks(fixture('stdout/links-detail.json'));
  const by = (name: string) => links.find((l) => l.name === name)!;

  it('reads every link with its kind', () => {
    expect(links.map((l) => [l.name, l.kind])).toEqual([
      ['lo', 'loopback'], ['nnp1', 'veth'], ['nnp0', 'veth'], ['nnv0', 'veth'], ['nnbr0', 'bridge'], ['nnmv0', 'macvlan'],
      ['nnvx0', 'vxlan'], ['nnvx1', 'vxlan'], ['nntun0', 'tun'], ['nntap0', 'tap'], ['nnifb0', 'ifb'],
    ]);
  });

  it('reads a veth whose peer is in another namespace (link_index + link_netnsid), its master, alias and state', () => {
    expect(by('nnv0')).toMatchObject({ up: true, master: 'nnbr0', alias: 'to-peer', lower: { index: 2, name: null, netnsid: 0 }, mtu: 1500, minMtu: 68, maxMtu: 65535 });
    expect(by('nnv0').mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  });

  it('reads a veth whose peer is in the same namespace by name and index', () => {
    expect(by('nnp0')).toMatchObject({ up: false, operstate: 'DOWN', txqlen: 500, lower: { name: 'nnp1', index: by('nnp1').index, netnsid: null } });
  });

  it('reads kind attributes of bridge, macvlan, vxlan, tun and tap', () => {
    expect(by('nnbr0').bridge).toEqual({ stp: true, vlanFiltering: false });
    expect(by('nnmv0')).toMatchObject({ macvlan: { mode: 'private' }, lower: { name: 'nnp1' } });
    expect(by('nnvx0').vxlan).toEqual({ vni: 42, local: '203.0.113.1', remote: '203.0.113.2', group: null, dstport: 4789, parent: 'nnp1' });
    expect(by('nnvx1').vxlan).toEqual({ vni: 43, local: null, remote: null, group: '239.1.1.1', dstport: 4790, parent: 'nnp1' });
    expect(by('nntap0').tun).toEqual({ persist: true, multiQueue: false, vnetHdr: false, pi: false });
    expect(by('lo')).toMatchObject({ minMtu: null, maxMtu: null, mtu: 65536, lower: null });
  });

  it('reads the peer side and a plain host device', () => {
    const [lo, peer] = parseLinks(fixture('stdout/links-detail-peer.json'));
    expect(lo?.kind).toBe('loopback');
    expect(peer).toMatchObject({ name: 'nnv1', kind: 'veth', up: true, operstate: 'UP', lower: { index: by('nnv0').index, netnsid: 0 } });
    expect(parseLinks(fixture('stdout/links-host-devices.json'))).toEqual([expect.objectContaining({ name: 'eth0', kind: 'device', master: null, lower: null })]);
    expect(parseLinks('')).toEqual([]);
  });

  it('reads 64-bit counters and the nsid table seen from inside a namespace', () => {
    const s = parseLinkStats(fixture('stdout/link-stats.json'));
    expect(Object.keys(s)).toEqual(['rxBytes', 'txBytes', 'rxPackets', 'txPackets', 'rxErrors', 'txErrors', 'rxDropped', 'txDropped', 'multicast', 'collisions']);
    expect(Object.values(s).every((v) => Number.isInteger(v) && v >= 0)).toBe(true);
    expect(parseNsids(fixture('stdout/netns-list-in-ns.json'))).toEqual([{ nsid: 0, name: 'nnx-rec-peer-PID' }]);
    expect(() => parseLinkStats('[{"ifname":"x"}]')).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

describe('classify (links, recorded stderr)', () => {
  const stderr = (name: string): string => fixture(`stderr/${name}.txt`);
  const add: Op = { kind: 'link.add', ns: 'a', spec: { name: 'x', linkKind: 'bridge' } };
  const set = (change: object): Op => ({ kind: 'link.set', ns: 'a', name: 'x', change } as Op);
  it.each<[string, Op, string]>([
    ['link-exists', add, 'LINK_EXISTS'],
    ['batch-link-exists', add, 'LINK_EXISTS'],
    ['tuntap-exists', { kind: 'link.add', ns: 'a', spec: { name: 'x', linkKind: 'tap' } }, 'LINK_EXISTS'],
    ['link-not-found', set({ up: true }), 'LINK_NOT_FOUND'],
    ['link-show-missing', { kind: 'link.list', ns: 'a', name: 'x' }, 'LINK_NOT_FOUND'],
    ['link-kind-unknown', add, 'LINK_KIND_UNSUPPORTED'],
    ['link-feature-eopnotsupp', add, 'LINK_KIND_UNSUPPORTED'],
    ['link-mtu-too-big', set({ mtu: 70000 }), 'LINK_MTU_INVALID'],
    ['link-mtu-too-small', set({ mtu: 10 }), 'LINK_MTU_INVALID'],
    ['link-mtu-above-parent', set({ mtu: 9000 }), 'LINK_MTU_INVALID'],
    ['link-mac-multicast', set({ mac: '01:00:5e:00:00:01' }), 'LINK_MAC_INVALID'],
    ['link-master-not-bridge', set({ master: 'nnp1' }), 'LINK_MASTER_INVALID'],
    ['link-master-self', set({ master: 'x' }), 'LINK_MASTER_INVALID'],
    ['link-vni-in-use', add, 'LINK_VNI_IN_USE'],
    ['link-netns-immutable', { kind: 'link.move', ns: 'a', name: 'lo', to: 'b' }, 'LINK_CHANGE_UNSUPPORTED'],
    ['link-delete-loopback', { kind: 'link.delete', ns: 'a', name: 'lo' }, 'LINK_CHANGE_UNSUPPORTED'],
    ['link-parent-busy', { kind: 'link.add', ns: 'a', spec: { name: 'x', linkKind: 'macvlan', parent: 'p', mode: 'bridge' } }, 'LINK_BUSY'],
    ['netns-open-missing', set({ up: true }), 'NAMESPACE_NOT_FOUND'],
    ['eperm-setns', set({ up: true }), 'PRIVILEGE_REQUIRED'],
  ])('classifies %s for %j as %s', (name, op, code) => {
    expect(classify(stderr(name), null, op).code).toBe(code);
  });

  it('names the missing device and the namespace, and keeps stderr out of the detail', () => {
    const err = classify(stderr('link-not-found'), null, set({ up: true }));
    expect(err.detail).toBe('there is no link "nnx-nosuch" in namespace "a"');
    expect(err.cause).toBe(stderr('link-not-found').trim());
  });

  it('reads an EINVAL without an MTU in the op as a refused change, not an MTU error', () => {
    expect(classify(stderr('link-mtu-above-parent'), null, set({ txqlen: 1 })).code).toBe('LINK_CHANGE_UNSUPPORTED');
  });
});
