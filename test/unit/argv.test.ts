import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Command, batchLine, commandsFor, parseLinkNames, parseNetnsList, parseToolVersion, spawnArgv, toolPath } from '../../src/executor/argv.js';
import { PROBE_CLASSIFIERS, PROBE_LINK_KINDS, PROBE_QDISCS, type Op } from '../../src/executor/ops.js';

const fixture = (name: string): string => readFileSync(join(import.meta.dirname, '..', 'fixtures', name), 'utf8');
const ip = (netns: string | undefined, line: string): Command => ({ tool: 'ip', ...(netns ? { netns } : {}), args: line.split(' ') });
const tc = (netns: string, line: string): Command => ({ tool: 'tc', netns, args: line.split(' ') });
const S = 'scratch';

const table: ReadonlyArray<readonly [Op, readonly Command[]]> = [
  [{ kind: 'netns.add', ns: 'blue' }, [ip(undefined, 'netns add blue')]],
  [{ kind: 'netns.delete', ns: 'blue' }, [ip(undefined, 'netns del blue')]],
  [{ kind: 'netns.assignNsid', ns: 'blue' }, [ip(undefined, 'netns set blue auto')]],
  [{ kind: 'netns.getNsid', ns: 'blue' }, [ip(undefined, '-j netns list')]],
  [{ kind: 'netns.loopbackUp', ns: 'blue' }, [ip('blue', 'link set lo up')]],
  [{ kind: 'netns.linkNames', ns: 'blue' }, [ip('blue', '-j link show')]],
  [{ kind: 'netns.linkNames', ns: 'host' }, [ip(undefined, '-j link show')]],
  [{ kind: 'netns.pids', ns: 'blue' }, []],
  [{ kind: 'netns.killPids', ns: 'blue', pids: [42] }, []],
  [{ kind: 'probe.tools' }, [ip(undefined, '-V'), { tool: 'tc', args: ['-V'] }, { tool: 'nft', args: ['--version'] }, { tool: 'conntrack', args: ['--version'] }]],
  [{ kind: 'probe.linkKind', ns: S, linkKind: 'veth' }, [ip(S, 'link add nnp0 type veth peer name nnp1')]],
  [{ kind: 'probe.linkKind', ns: S, linkKind: 'bridge' }, [ip(S, 'link add name nnpk type bridge'), ip(S, 'link del nnpk')]],
  [{ kind: 'probe.linkKind', ns: S, linkKind: 'macvlan' }, [ip(S, 'link add link nnp0 name nnpk type macvlan'), ip(S, 'link del nnpk')]],
  [{ kind: 'probe.linkKind', ns: S, linkKind: 'vlan' }, [ip(S, 'link add link nnp0 name nnpk type vlan id 10'), ip(S, 'link del nnpk')]],
  [{ kind: 'probe.linkKind', ns: S, linkKind: 'vxlan' }, [ip(S, 'link add name nnpk type vxlan id 42 dstport 4789'), ip(S, 'link del nnpk')]],
  [{ kind: 'probe.linkKind', ns: S, linkKind: 'geneve' }, [ip(S, 'link add name nnpk type geneve id 42 remote 198.51.100.1'), ip(S, 'link del nnpk')]],
  [{ kind: 'probe.linkKind', ns: S, linkKind: 'tap' }, [ip(S, 'tuntap add mode tap name nnpk'), ip(S, 'link del nnpk')]],
  [{ kind: 'probe.linkKind', ns: S, linkKind: 'vrf' }, [ip(S, 'link add name nnpk type vrf table 10'), ip(S, 'link del nnpk')]],
  [
    { kind: 'probe.linkKind', ns: S, linkKind: 'gre' },
    [ip(S, 'link add name nnpk type gre local 198.51.100.1 remote 198.51.100.2'), ip(S, 'link del nnpk')],
  ],
  [
    { kind: 'probe.linkFeature', ns: S, feature: 'bridge.vlan_filtering' },
    [ip(S, 'link add name nnpk type bridge vlan_filtering 1'), ip(S, 'link del nnpk')],
  ],
  [
    { kind: 'probe.qdisc', ns: S, qdisc: 'tbf' },
    [tc(S, 'qdisc add dev nnp1 root tbf rate 1mbit burst 32kbit latency 400ms'), tc(S, 'qdisc del dev nnp1 root')],
  ],
  [{ kind: 'probe.qdisc', ns: S, qdisc: 'netem' }, [tc(S, 'qdisc add dev nnp1 root netem delay 1ms'), tc(S, 'qdisc del dev nnp1 root')]],
  [{ kind: 'probe.qdisc', ns: S, qdisc: 'clsact' }, [tc(S, 'qdisc add dev nnp1 clsact'), tc(S, 'qdisc del dev nnp1 clsact')]],
  [
    { kind: 'probe.classifier', ns: S, classifier: 'u32' },
    [
      tc(S, 'qdisc replace dev nnp0 root pfifo'),
      tc(S, 'qdisc replace dev nnp0 root handle 1: htb'),
      tc(S, 'filter add dev nnp0 parent 1: protocol ip prio 1 u32 match ip dst 0.0.0.0/0 flowid 1:1'),
    ],
  ],
  [{ kind: 'probe.nftables', ns: S }, [{ tool: 'nft', netns: S, args: ['add', 'table', 'inet', 'netnsd_probe'] }]],
];

describe('commandsFor', () => {
  it.each(table)('maps %j to its commands', (op, commands) => {
    expect(commandsFor(op)).toEqual(commands);
  });

  it('has a probe for every link kind, qdisc and classifier', () => {
    for (const linkKind of PROBE_LINK_KINDS) expect(commandsFor({ kind: 'probe.linkKind', ns: S, linkKind }).length).toBeGreaterThan(0);
    for (const qdisc of PROBE_QDISCS) expect(commandsFor({ kind: 'probe.qdisc', ns: S, qdisc })).toHaveLength(2);
    for (const classifier of PROBE_CLASSIFIERS) expect(commandsFor({ kind: 'probe.classifier', ns: S, classifier })).toHaveLength(3);
  });

  it.each([
    { kind: 'netns.add', ns: '-n' },
    { kind: 'netns.add', ns: '../etc' },
    { kind: 'netns.delete', ns: 'a/b' },
    { kind: 'netns.add', ns: 'host' },
    { kind: 'netns.getNsid', ns: 'host' },
    { kind: 'netns.loopbackUp', ns: '.' },
    { kind: 'netns.killPids', ns: 'host', pids: [1] },
    { kind: 'probe.linkKind', ns: 'host', linkKind: 'dummy' },
    { kind: 'probe.nftables', ns: 'x y' },
  ] as Op[])('refuses a bad or host namespace name with INTERNAL: %j', (op) => {
    expect(() => commandsFor(op)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

describe('spawnArgv', () => {
  it('puts ip and tc into a namespace with -n', () => {
    expect(spawnArgv(ip('blue', 'link set lo up'))).toEqual([toolPath('ip'), '-n', 'blue', 'link', 'set', 'lo', 'up']);
    expect(spawnArgv(tc('blue', 'qdisc show'))).toEqual([toolPath('tc'), '-n', 'blue', 'qdisc', 'show']);
  });

  it('runs nft inside a namespace through ip netns exec with the full nft path', () => {
    expect(spawnArgv({ tool: 'nft', netns: 'blue', args: ['list', 'ruleset'] })).toEqual([
      toolPath('ip'), 'netns', 'exec', 'blue', toolPath('nft'), 'list', 'ruleset',
    ]);
  });

  it('runs root-namespace commands as they are', () => {
    expect(spawnArgv(ip(undefined, 'netns add blue'))).toEqual([toolPath('ip'), 'netns', 'add', 'blue']);
  });
});

describe('toolPath', () => {
  it('answers an absolute path under a system directory', () => {
    expect(toolPath('ip')).toMatch(/^\/(usr\/)?s?bin\/ip$/);
  });
});

describe('batchLine', () => {
  it('joins args with single spaces', () => {
    expect(batchLine(['netns', 'add', 'blue'])).toBe('netns add blue');
  });

  it.each([[['netns', 'add', 'a b']], [['x\ny']], [['"q"']], [["it's"]], [['#c']], [['back\\slash']], [['']], [[]]])(
    'refuses args the batch tokenizer would split, group, drop or comment out: %j',
    (args) => {
      expect(() => batchLine(args)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    },
  );
});

describe('output readers', () => {
  it('reads the versions of ip, tc, nft and conntrack', () => {
    expect(parseToolVersion(fixture('stdout/ip-version.txt'))).toBe('6.1.0');
    expect(parseToolVersion(fixture('stdout/tc-version.txt'))).toBe('6.1.0');
    expect(parseToolVersion(fixture('stdout/nft-version.txt'))).toBe('1.0.6');
    expect(parseToolVersion(fixture('stdout/conntrack-version.txt'))).toBe('1.4.7');
    expect(parseToolVersion('')).toBeNull();
  });

  it('reads an nsid from ip -j netns list, -1 for none, undefined for a missing name', () => {
    const out = fixture('stdout/netns-list.json');
    expect(parseNetnsList(out, 'nnx-rec-PID')).toBeGreaterThanOrEqual(0);
    expect(parseNetnsList(out, 'nnx-rec-noid-PID')).toBe(-1);
    expect(parseNetnsList(out, 'other')).toBeUndefined();
    // iproute2 6.1 prints nothing when there are no namespaces.
    expect(parseNetnsList('', 'other')).toBeUndefined();
  });

  it('reads link names from ip -j link show', () => {
    expect(parseLinkNames(fixture('stdout/link-show.json'))).toEqual(['lo', 'nnp1', 'nnp0']);
  });

  it('rejects output that is not a JSON array with INTERNAL', () => {
    expect(() => parseLinkNames('1: lo: <LOOPBACK>')).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});
