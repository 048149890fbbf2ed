/**
 * Regenerates test/fixtures/stderr/*.txt (and the few stdout samples in test/fixtures/stdout/)
 * from this machine's iproute2 and nft, in a scratch namespace that is always removed.
 * classify.test.ts and argv.test.ts read them. Run as root: `npx tsx scripts/record-stderr.ts`.
 * The privilege cases run the tool as uid/gid 65534 (nobody).
 * `--only=TEXT` records only the files whose name contains TEXT (`--only=neigh`), leaving every
 * other fixture as it is, and makes only the scratch namespaces those need.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', 'test', 'fixtures');
const IP = '/usr/sbin/ip';
const TC = '/usr/sbin/tc';
const NFT = '/usr/sbin/nft';
const NS = `nnx-rec-${process.pid}`;
const MISSING = `nnx-rec-missing-${process.pid}`;
const NO_NSID = `nnx-rec-noid-${process.pid}`;
/** The other end of the fixture veth (`nnv0` in NS, `nnv1` here). */
const PEER_NS = `nnx-rec-peer-${process.pid}`;
const NOBODY = 65534;
/**
 * The neighbour cases' two namespaces. Named like the tests' (`nnt-<pid in base 36>-`), so an
 * integration run's sweep on this machine spares them while this script runs.
 */
const NEIGH_A = `nnt-${process.pid.toString(36)}-rec-na`;
const NEIGH_B = `nnt-${process.pid.toString(36)}-rec-nb`;
const ONLY = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const wanted = (c: Case): boolean => ONLY === undefined || c.file.includes(ONLY);

interface Case {
  readonly file: string;
  readonly argv: readonly string[];
  readonly input?: string;
  readonly asNobody?: boolean;
  /** Record stdout instead of stderr. */
  readonly stdout?: boolean;
}

const cases: readonly Case[] = [
  { file: 'stderr/netns-add-exists.txt', argv: [IP, 'netns', 'add', NS] },
  { file: 'stderr/netns-del-missing.txt', argv: [IP, 'netns', 'del', MISSING] },
  { file: 'stderr/netns-open-missing.txt', argv: [IP, '-n', MISSING, 'link', 'set', 'lo', 'up'] },
  { file: 'stderr/netns-set-missing.txt', argv: [IP, 'netns', 'set', MISSING, 'auto'] },
  { file: 'stderr/netns-exec-missing.txt', argv: [IP, 'netns', 'exec', MISSING, NFT, '--version'] },
  { file: 'stderr/tc-open-missing.txt', argv: [TC, '-n', MISSING, 'qdisc', 'show'] },
  // The form `ip netns exec NS /usr/sbin/nft` takes when nft is not installed.
  { file: 'stderr/netns-exec-tool-missing.txt', argv: [IP, 'netns', 'exec', NS, '/usr/sbin/nnx-no-such-tool'] },
  { file: 'stderr/netns-set-has-nsid.txt', argv: [IP, 'netns', 'set', NS, 'auto'] },
  { file: 'stderr/eperm-netns-add.txt', argv: [IP, 'netns', 'add', MISSING], asNobody: true },
  { file: 'stderr/eacces-netns-del.txt', argv: [IP, 'netns', 'del', NS], asNobody: true },
  { file: 'stderr/eperm-setns.txt', argv: [IP, '-n', NS, 'link', 'set', 'lo', 'up'], asNobody: true },
  { file: 'stderr/eperm-netns-set.txt', argv: [IP, 'netns', 'set', NS, 'auto'], asNobody: true },
  { file: 'stderr/link-exists.txt', argv: [IP, '-n', NS, 'link', 'add', 'nnp0', 'type', 'veth', 'peer', 'name', 'nnp1'] },
  { file: 'stderr/link-not-found.txt', argv: [IP, '-n', NS, 'link', 'set', 'nnx-nosuch', 'up'] },
  { file: 'stderr/link-kind-unknown.txt', argv: [IP, '-n', NS, 'link', 'add', 'name', 'nnpk', 'type', 'nnxnosuch'] },
  { file: 'stderr/qdisc-kind-unknown.txt', argv: [TC, '-n', NS, 'qdisc', 'add', 'dev', 'nnp1', 'root', 'nnxnosuch'] },
  {
    file: 'stderr/batch-force.txt',
    argv: [IP, '-force', '-batch', '-'],
    input: `netns add ${NS}\nxyzzy\nnetns del ${MISSING}\nnetns add ${MISSING}\nnetns del ${MISSING}\nxyzzy\n`,
  },
  // An argument error that ends the batch even with -force (nothing after it runs).
  { file: 'stderr/batch-exit.txt', argv: [IP, '-n', NS, '-force', '-batch', '-'], input: 'address add 1.2.3.4/33 dev lo\nxyzzy\n' },
  { file: 'stdout/ip-version.txt', argv: [IP, '-V'], stdout: true },
  { file: 'stdout/tc-version.txt', argv: [TC, '-V'], stdout: true },
  { file: 'stdout/nft-version.txt', argv: [NFT, '--version'], stdout: true },
  { file: 'stdout/link-show.json', argv: [IP, '-n', NS, '-j', 'link', 'show'], stdout: true },
  // Links (the fixture links are made in linkSetup() below).
  { file: 'stderr/link-mtu-too-big.txt', argv: [IP, '-n', NS, 'link', 'set', 'dev', 'nnp0', 'mtu', '70000'] },
  { file: 'stderr/link-mtu-too-small.txt', argv: [IP, '-n', NS, 'link', 'set', 'dev', 'nnp0', 'mtu', '10'] },
  { file: 'stderr/link-mtu-above-parent.txt', argv: [IP, '-n', NS, 'link', 'set', 'dev', 'nnmv0', 'mtu', '9000'] },
  { file: 'stderr/link-mac-multicast.txt', argv: [IP, '-n', NS, 'link', 'set', 'dev', 'nnp0', 'address', '01:00:5e:00:00:01'] },
  { file: 'stderr/link-master-not-bridge.txt', argv: [IP, '-n', NS, 'link', 'set', 'dev', 'nnp0', 'master', 'nnp1'] },
  { file: 'stderr/link-master-self.txt', argv: [IP, '-n', NS, 'link', 'set', 'dev', 'nnbr0', 'master', 'nnbr0'] },
  { file: 'stderr/link-vni-in-use.txt', argv: [IP, '-n', NS, 'link', 'add', 'name', 'nnvx9', 'type', 'vxlan', 'id', '42', 'dstport', '4789'] },
  { file: 'stderr/link-netns-immutable.txt', argv: [IP, '-n', NS, 'link', 'set', 'dev', 'lo', 'netns', PEER_NS] },
  { file: 'stderr/link-delete-loopback.txt', argv: [IP, '-n', NS, 'link', 'del', 'dev', 'lo'] },
  { file: 'stderr/link-parent-busy.txt', argv: [IP, '-n', NS, 'link', 'add', 'link', 'nnv0', 'name', 'nnmv9', 'type', 'macvlan', 'mode', 'bridge'] },
  { file: 'stderr/tuntap-exists.txt', argv: [IP, '-n', NS, 'tuntap', 'add', 'mode', 'tap', 'name', 'nntap0'] },
  { file: 'stderr/link-show-missing.txt', argv: [IP, '-n', NS, '-j', '-d', 'link', 'show', 'dev', 'nnx-nosuch'] },
  { file: 'stderr/link-feature-eopnotsupp.txt', argv: [IP, '-n', NS, 'link', 'add', 'name', 'nnbr9', 'type', 'bridge', 'vlan_filtering', '1'] },
  // In a batch worker the messages are the same, followed by `Command failed -:LINE`.
  { file: 'stderr/batch-link-exists.txt', argv: [IP, '-n', NS, '-force', '-batch', '-'], input: 'link add name nnp0 type veth peer name nnp9\nxyzzy\n' },
  { file: 'stdout/links-detail.json', argv: [IP, '-n', NS, '-j', '-d', 'link', 'show'], stdout: true },
  { file: 'stdout/links-detail-peer.json', argv: [IP, '-n', PEER_NS, '-j', '-d', 'link', 'show'], stdout: true },
  { file: 'stdout/links-host-devices.json', argv: [IP, '-j', '-d', 'link', 'show', 'dev', 'eth0'], stdout: true },
  // Addresses (on nnp0, made in addrSetup() below).
  { file: 'stderr/addr-exists-v4.txt', argv: [IP, '-n', NS, 'address', 'add', '203.0.113.1/24', 'dev', 'nnp0'] },
  { file: 'stderr/addr-exists-v6.txt', argv: [IP, '-n', NS, 'address', 'add', '2001:db8::1/64', 'dev', 'nnp0', 'nodad'] },
  { file: 'stderr/addr-link-missing.txt', argv: [IP, '-n', NS, 'address', 'add', '203.0.113.9/24', 'dev', 'nnx-nosuch'] },
  { file: 'stderr/addr-show-missing.txt', argv: [IP, '-n', NS, '-j', 'address', 'show', 'dev', 'nnx-nosuch'] },
  { file: 'stderr/addr-del-missing-v4.txt', argv: [IP, '-n', NS, 'address', 'del', '203.0.113.9/24', 'dev', 'nnp0'] },
  { file: 'stderr/addr-del-missing-v6.txt', argv: [IP, '-n', NS, 'address', 'del', '2001:db8::9/64', 'dev', 'nnp0'] },
  // A secondary address (same subnet as a primary) with another scope.
  { file: 'stderr/addr-scope-mismatch.txt', argv: [IP, '-n', NS, 'address', 'add', '203.0.113.7/24', 'dev', 'nnp0', 'scope', 'link'] },
  { file: 'stderr/addr-multicast-v6.txt', argv: [IP, '-n', NS, 'address', 'add', 'ff02::5/64', 'dev', 'nnp0'] },
  { file: 'stderr/batch-addr-exists.txt', argv: [IP, '-n', NS, '-force', '-batch', '-'], input: 'address add 203.0.113.1/24 dev nnp0\nxyzzy\n' },
  { file: 'stdout/addresses.json', argv: [IP, '-n', NS, '-j', 'address', 'show'], stdout: true },
  // Routes (through nnr0, made in routeSetup() below).
  { file: 'stderr/route-exists.txt', argv: [IP, '-n', NS, 'route', 'add', '10.1.0.0/16', 'via', '203.0.113.254', 'metric', '10'] },
  { file: 'stderr/route-gateway-invalid.txt', argv: [IP, '-n', NS, 'route', 'add', '10.9.0.0/16', 'via', '10.99.99.1'] },
  { file: 'stderr/route-gateway-unreachable-v6.txt', argv: [IP, '-n', NS, 'route', 'add', '2001:db8:6::/48', 'via', '2001:db9::1'] },
  { file: 'stderr/route-del-missing.txt', argv: [IP, '-n', NS, 'route', 'del', '10.77.0.0/16', 'table', '254', 'metric', '0'] },
  { file: 'stderr/route-dev-missing.txt', argv: [IP, '-n', NS, 'route', 'add', '10.8.0.0/16', 'dev', 'nnx-nosuch'] },
  { file: 'stderr/route-prefsrc-invalid.txt', argv: [IP, '-n', NS, 'route', 'add', '10.7.0.0/16', 'via', '203.0.113.254', 'src', '10.99.0.1'] },
  { file: 'stderr/route-host-bits.txt', argv: [IP, '-n', NS, 'route', 'add', '10.13.0.1/16', 'via', '203.0.113.254'] },
  { file: 'stderr/route-nexthop-down.txt', argv: [IP, '-n', NS, 'route', 'add', '10.15.0.0/16', 'dev', 'nnp0'] },
  { file: 'stderr/route-table-missing.txt', argv: [IP, '-n', NS, '-j', '-6', 'route', 'show', 'table', '4242'] },
  { file: 'stderr/batch-route-exists.txt', argv: [IP, '-n', NS, '-force', '-batch', '-'], input: 'route add 10.1.0.0/16 via 203.0.113.254 metric 10 table 254\nxyzzy\n' },
  { file: 'stdout/routes-v4-main.json', argv: [IP, '-n', NS, '-j', '-4', 'route', 'show', 'table', 'main'], stdout: true },
  { file: 'stdout/routes-v4-all.json', argv: [IP, '-n', NS, '-j', '-4', 'route', 'show', 'table', 'all'], stdout: true },
  { file: 'stdout/routes-v6-main.json', argv: [IP, '-n', NS, '-j', '-6', 'route', 'show', 'table', 'main'], stdout: true },
  { file: 'stdout/link-stats.json', argv: [IP, '-n', NS, '-s', '-s', '-j', 'link', 'show', 'dev', 'nnp0'], stdout: true },
];

/**
 * Neighbour cases, in NEIGH_A (see neighSetup): nnn0 (203.0.113.65/26, 2001:db8:7::1/64) is a
 * veth to nnn1 in NEIGH_B (.66, ::2), which answers ARP and neighbour discovery.
 */
/** Traffic shaping (on the veth nnq0/nnq1 and the ifb nnq1-ifb, made in qdiscSetup() below; nnp0 keeps its default qdisc). */
const QDISC = (...args: string[]): string[] => [TC, '-n', NS, ...args];
const qdiscCases: readonly Case[] = [
  { file: 'stderr/qdisc-delete-default.txt', argv: QDISC('qdisc', 'del', 'dev', 'nnp0', 'root') },
  { file: 'stderr/qdisc-ingress-missing.txt', argv: QDISC('qdisc', 'del', 'dev', 'nnp0', 'ingress') },
  { file: 'stderr/qdisc-ingress-exists.txt', argv: QDISC('qdisc', 'add', 'dev', 'nnq1', 'handle', 'ffff:', 'ingress') },
  { file: 'stderr/qdisc-htb-replace.txt', argv: QDISC('qdisc', 'replace', 'dev', 'nnq1', 'root', 'handle', '1:', 'htb', 'default', '10') },
  { file: 'stderr/qdisc-kind-mismatch.txt', argv: QDISC('qdisc', 'replace', 'dev', 'nnq1', 'root', 'handle', '1:', 'tbf', 'rate', '1mbit', 'burst', '32kb', 'latency', '50ms') },
  { file: 'stderr/qdisc-parent-missing.txt', argv: QDISC('class', 'add', 'dev', 'nnp0', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '1mbit') },
  { file: 'stderr/qdisc-class-exists.txt', argv: QDISC('class', 'add', 'dev', 'nnq1', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '1mbit') },
  { file: 'stderr/qdisc-dev-missing.txt', argv: QDISC('qdisc', 'replace', 'dev', 'nnx-nosuch', 'root', 'tbf', 'rate', '1mbit', 'burst', '32kb', 'latency', '50ms') },
  { file: 'stderr/qdisc-netem-unknown.txt', argv: QDISC('qdisc', 'replace', 'dev', 'nnp0', 'root', 'netem', 'delay', '10ms') },
  { file: 'stdout/tc-qdisc-tbf.json', argv: QDISC('-s', '-j', 'qdisc', 'show', 'dev', 'nnq0'), stdout: true },
  { file: 'stdout/tc-qdisc-htb.json', argv: QDISC('-s', '-j', 'qdisc', 'show', 'dev', 'nnq1'), stdout: true },
  { file: 'stdout/tc-qdisc-default.json', argv: QDISC('-s', '-j', 'qdisc', 'show', 'dev', 'nnp0'), stdout: true },
  { file: 'stdout/tc-class-show.txt', argv: QDISC('-s', '-j', 'class', 'show', 'dev', 'nnq1'), stdout: true },
  { file: 'stdout/tc-filter-show.json', argv: QDISC('-j', 'filter', 'show', 'dev', 'nnq1', 'parent', '1:'), stdout: true },
  { file: 'stdout/tc-filter-ingress.json', argv: QDISC('-j', 'filter', 'show', 'dev', 'nnq1', 'ingress'), stdout: true },
];

const neighCases: readonly Case[] = [
  { file: 'stdout/neighbors.json', argv: [IP, '-n', NEIGH_A, '-j', 'neigh', 'show', 'nud', 'all'], stdout: true },
  // With `dev`, ip leaves `dev` out of every entry.
  { file: 'stdout/neighbors-dev.json', argv: [IP, '-n', NEIGH_A, '-j', 'neigh', 'show', 'nud', 'all', 'dev', 'nnn0'], stdout: true },
  { file: 'stderr/neigh-exists.txt', argv: [IP, '-n', NEIGH_A, 'neigh', 'add', '203.0.113.70', 'lladdr', '02:00:00:00:00:08', 'nud', 'permanent', 'dev', 'nnn0'] },
  // The kernel refuses `add` over a learnt (reachable) entry just the same.
  { file: 'stderr/neigh-exists-learnt.txt', argv: [IP, '-n', NEIGH_A, 'neigh', 'add', '203.0.113.66', 'lladdr', '02:00:00:00:00:08', 'nud', 'permanent', 'dev', 'nnn0'] },
  { file: 'stderr/neigh-del-missing.txt', argv: [IP, '-n', NEIGH_A, 'neigh', 'del', '203.0.113.99', 'dev', 'nnn0'] },
  { file: 'stderr/neigh-del-missing-v6.txt', argv: [IP, '-n', NEIGH_A, 'neigh', 'del', '2001:db8:7::99', 'dev', 'nnn0'] },
  { file: 'stderr/neigh-dev-missing.txt', argv: [IP, '-n', NEIGH_A, 'neigh', 'add', '203.0.113.71', 'lladdr', '02:00:00:00:00:08', 'nud', 'permanent', 'dev', 'nnx-nosuch'] },
  { file: 'stderr/neigh-show-dev-missing.txt', argv: [IP, '-n', NEIGH_A, '-j', 'neigh', 'show', 'nud', 'all', 'dev', 'nnx-nosuch'] },
  // A link-layer address shorter than the link's (the kernel takes a longer one, truncated).
  { file: 'stderr/neigh-lladdr-short.txt', argv: [IP, '-n', NEIGH_A, 'neigh', 'add', '203.0.113.72', 'lladdr', '02:00:00', 'nud', 'permanent', 'dev', 'nnn0'] },
  { file: 'stderr/neigh-ipv6-disabled.txt', argv: [IP, '-n', NEIGH_A, 'neigh', 'add', '2001:db8:7::9', 'lladdr', '02:00:00:00:00:08', 'nud', 'permanent', 'dev', 'nnn2'] },
  // Unlike other objects, a refused `neigh` line ends the batch process (status 2): its message
  // alone, no `Command failed -:1`, and the sentinel after it is never answered.
  { file: 'stderr/batch-neigh-exists.txt', argv: [IP, '-n', NEIGH_A, '-force', '-batch', '-'], input: 'neigh add 203.0.113.70 lladdr 02:00:00:00:00:08 nud permanent dev nnn0\nxyzzy\n' },
];

/**
 * NEIGH_A's entries: learnt ones for nnn1's addresses (reachable after a ping), a failed one
 * (a ping to an address nobody has, ~3 s of probes), a permanent IPv4 one, a permanent IPv6
 * router; the kernel's own noarp entries for multicast come with IPv6. nnn2 (a second veth,
 * both ends in NEIGH_A) has IPv6 disabled.
 */
function neighSetup(): void {
  must([IP, 'netns', 'add', NEIGH_A]);
  must([IP, 'netns', 'add', NEIGH_B]);
  const a = (...args: string[]): void => must([IP, '-n', NEIGH_A, ...args]);
  const b = (...args: string[]): void => must([IP, '-n', NEIGH_B, ...args]);
  a('link', 'add', 'name', 'nnn0', 'type', 'veth', 'peer', 'name', 'nnn1', 'netns', NEIGH_B);
  a('link', 'add', 'name', 'nnn2', 'type', 'veth', 'peer', 'name', 'nnn3');
  must([IP, 'netns', 'exec', NEIGH_A, '/usr/sbin/sysctl', '-qw', 'net.ipv6.conf.nnn2.disable_ipv6=1']);
  a('address', 'add', '203.0.113.65/26', 'dev', 'nnn0');
  a('address', 'add', '2001:db8:7::1/64', 'dev', 'nnn0', 'nodad');
  b('address', 'add', '203.0.113.66/26', 'dev', 'nnn1');
  b('address', 'add', '2001:db8:7::2/64', 'dev', 'nnn1', 'nodad');
  a('link', 'set', 'dev', 'nnn0', 'up');
  b('link', 'set', 'dev', 'nnn1', 'up');
  a('neigh', 'add', '203.0.113.70', 'lladdr', '02:00:00:00:00:70', 'nud', 'permanent', 'dev', 'nnn0');
  a('neigh', 'add', '2001:db8:7::fe', 'lladdr', '02:00:00:00:00:fe', 'nud', 'permanent', 'dev', 'nnn0', 'router');
  // A veth just brought up takes a moment before IPv6 answers: a few tries.
  for (const dst of ['203.0.113.66', '2001:db8:7::2']) {
    const ping = [IP, 'netns', 'exec', NEIGH_A, '/usr/bin/ping', '-c1', '-W1', dst] as const;
    for (let i = 0; i < 5 && run(ping).status !== 0; i++);
    must(ping);
  }
  run([IP, 'netns', 'exec', NEIGH_A, '/usr/bin/ping', '-c1', '-W1', '203.0.113.80']);
  // Until the kernel gives up probing (3 probes, 1 s apart): then it is `failed`, not `incomplete`.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3500);
}

function record(c: Case): void {
  const r = run(c.argv, c);
  const text = (c.stdout ? r.stdout : r.stderr).replaceAll(String(process.pid), 'PID');
  writeFileSync(join(ROOT, c.file), text);
  console.log(`${c.file}: exit ${r.status}, ${text.length} bytes`);
}

/**
 * The fixture links in NS: a veth nnv0 (port of bridge nnbr0, alias, up) whose peer nnv1 is in
 * PEER_NS, the probe veth nnp0/nnp1 (both here), a macvlan and a vxlan on nnp1, a multicast
 * vxlan, tun, tap and ifb.
 */
/** nnq0 with a tbf; nnq1 with an htb tree (two classes, two u32 filters) and ingress redirected to the ifb nnq1-ifb. */
function qdiscSetup(): void {
  const l = (...args: string[]): void => must([IP, '-n', NS, ...args]);
  const t = (...args: string[]): void => must(QDISC(...args));
  l('link', 'add', 'nnq0', 'type', 'veth', 'peer', 'name', 'nnq1');
  l('link', 'add', 'nnq1-ifb', 'type', 'ifb');
  t('qdisc', 'replace', 'dev', 'nnq0', 'root', 'tbf', 'rate', '1000000bit', 'burst', '32768b', 'latency', '50000us');
  t('qdisc', 'replace', 'dev', 'nnq1', 'root', 'handle', '1:', 'htb', 'default', '20');
  t('class', 'add', 'dev', 'nnq1', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '1000000bit', 'ceil', '2000000bit');
  t('class', 'add', 'dev', 'nnq1', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', '10000000bit', 'ceil', '10000000bit');
  t('filter', 'add', 'dev', 'nnq1', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'dst', '198.51.100.2/32', 'match', 'ip', 'protocol', '6', '0xff', 'match', 'ip', 'dport', '5001', '0xffff', 'flowid', '1:10');
  t('filter', 'add', 'dev', 'nnq1', 'parent', '1:', 'protocol', 'ipv6', 'prio', '2', 'u32', 'match', 'ip6', 'src', '2001:db8::/32', 'flowid', '1:10');
  t('qdisc', 'add', 'dev', 'nnq1', 'handle', 'ffff:', 'ingress');
  t('filter', 'add', 'dev', 'nnq1', 'parent', 'ffff:', 'protocol', 'all', 'prio', '1', 'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', 'nnq1-ifb');
}

function linkSetup(): void {
  must([IP, 'netns', 'add', PEER_NS]);
  must([IP, 'netns', 'set', PEER_NS, 'auto']);
  const l = (...args: string[]): void => must([IP, '-n', NS, ...args]);
  l('link', 'add', 'name', 'nnv0', 'type', 'veth', 'peer', 'name', 'nnv1', 'netns', PEER_NS);
  l('link', 'add', 'name', 'nnbr0', 'type', 'bridge', 'stp_state', '1');
  l('link', 'set', 'dev', 'nnv0', 'master', 'nnbr0', 'alias', 'to-peer');
  l('link', 'set', 'dev', 'nnv0', 'up');
  must([IP, '-n', PEER_NS, 'link', 'set', 'dev', 'nnv1', 'up']);
  l('link', 'add', 'link', 'nnp1', 'name', 'nnmv0', 'type', 'macvlan', 'mode', 'private');
  l('link', 'add', 'name', 'nnvx0', 'type', 'vxlan', 'id', '42', 'local', '203.0.113.1', 'remote', '203.0.113.2', 'dstport', '4789', 'dev', 'nnp1');
  l('link', 'add', 'name', 'nnvx1', 'type', 'vxlan', 'id', '43', 'group', '239.1.1.1', 'dstport', '4790', 'dev', 'nnp1');
  l('tuntap', 'add', 'mode', 'tun', 'name', 'nntun0');
  l('tuntap', 'add', 'mode', 'tap', 'name', 'nntap0');
  l('link', 'add', 'name', 'nnifb0', 'type', 'ifb');
  l('link', 'set', 'dev', 'nnp0', 'txqueuelen', '500');
}

/** Addresses on nnp0: a primary, a point-to-point one with a label, IPv6 with and without DAD (nnp0 is down: tentative). */
function addrSetup(): void {
  const a = (...args: string[]): void => must([IP, '-n', NS, 'address', 'add', ...args]);
  a('203.0.113.1/24', 'dev', 'nnp0', 'broadcast', '203.0.113.255');
  a('203.0.113.5', 'peer', '203.0.113.6/32', 'dev', 'nnp0', 'label', 'nnp0:1');
  a('198.51.100.1/24', 'dev', 'nnp0', 'scope', 'link');
  a('2001:db8::1/64', 'dev', 'nnp0', 'nodad');
  a('2001:db8::2/64', 'dev', 'nnp0');
}

/** A veth nnr0/nnr1 (both up, in NS) with addresses, and routes of every kind through it. */
function routeSetup(): void {
  const l = (...args: string[]): void => must([IP, '-n', NS, ...args]);
  l('link', 'add', 'name', 'nnr0', 'type', 'veth', 'peer', 'name', 'nnr1');
  l('link', 'set', 'dev', 'nnr0', 'up');
  l('link', 'set', 'dev', 'nnr1', 'up');
  l('address', 'add', '203.0.113.129/25', 'dev', 'nnr0');
  l('address', 'add', '2001:db8:1::1/64', 'dev', 'nnr0', 'nodad');
  l('route', 'add', '10.1.0.0/16', 'via', '203.0.113.254', 'metric', '10');
  l('route', 'add', 'blackhole', '10.2.0.0/16');
  l('route', 'add', 'unreachable', '10.3.0.0/16', 'table', '100');
  l('route', 'add', '10.4.0.0/16', 'nexthop', 'via', '203.0.113.253', 'dev', 'nnr0', 'weight', '2', 'nexthop', 'via', '203.0.113.252', 'dev', 'nnr0');
  l('route', 'add', 'default', 'via', '203.0.113.254', 'src', '203.0.113.129', 'mtu', '1400');
  l('route', 'add', '10.5.0.0/16', 'via', '203.0.113.254', 'tos', '0x10');
  l('route', 'add', '10.6.0.1', 'dev', 'nnr0');
  l('route', 'add', '2001:db8:5::/48', 'via', '2001:db8:1::fe');
}

function run(argv: readonly string[], opts: { input?: string; asNobody?: boolean } = {}): { status: number | null; stdout: string; stderr: string } {
  const [file, ...args] = argv;
  const r = spawnSync(file as string, args, {
    encoding: 'utf8',
    input: opts.input ?? '',
    env: { LC_ALL: 'C', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    ...(opts.asNobody ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function must(argv: readonly string[]): void {
  const r = run(argv);
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
}

mkdirSync(join(ROOT, 'stderr'), { recursive: true });
mkdirSync(join(ROOT, 'stdout'), { recursive: true });
if (cases.some(wanted) || qdiscCases.some(wanted)) {
  must([IP, 'netns', 'add', NS]);
  must([IP, 'netns', 'add', NO_NSID]);
  try {
    must([IP, 'netns', 'set', NS, 'auto']);
    must([IP, '-n', NS, 'link', 'add', 'nnp0', 'type', 'veth', 'peer', 'name', 'nnp1']);
    linkSetup();
    addrSetup();
    routeSetup();
    for (const c of cases.filter(wanted)) record(c);
    if (qdiscCases.some(wanted)) {
      qdiscSetup();
      for (const c of qdiscCases.filter(wanted)) record(c);
    }
    if (ONLY === undefined) {
      // `ip -j netns list` lists every namespace on the machine: keep only our two entries (one
      // with an nsid, one without), as printed.
      const list = JSON.parse(run([IP, '-j', 'netns', 'list']).stdout) as Array<{ name: string }>;
      const ours = list.filter((e) => e.name === NS || e.name === NO_NSID);
      writeFileSync(join(ROOT, 'stdout/netns-list.json'), JSON.stringify(ours).replaceAll(String(process.pid), 'PID'));
      // The same list seen from inside NS: the nsid NS has for PEER_NS (what link-netnsid refers to).
      const inside = (JSON.parse(run([IP, '-n', NS, '-j', 'netns', 'list']).stdout) as Array<{ name: string }>).filter((e) => [NS, PEER_NS].includes(e.name));
      writeFileSync(join(ROOT, 'stdout/netns-list-in-ns.json'), JSON.stringify(inside).replaceAll(String(process.pid), 'PID'));
    }
  } finally {
    run([IP, 'netns', 'del', PEER_NS]);
    run([IP, 'netns', 'del', NO_NSID]);
    run([IP, 'netns', 'del', NS]);
    run([IP, 'netns', 'del', MISSING]);
  }
}
if (neighCases.some(wanted)) {
  try {
    neighSetup();
    for (const c of neighCases.filter(wanted)) record(c);
  } finally {
    run([IP, 'netns', 'del', NEIGH_B]);
    run([IP, 'netns', 'del', NEIGH_A]);
  }
}
