/**
 * Records what iproute2 sends for the change ops netnsd sends over rtnetlink itself, for
 * test/unit/netlink-changes.test.ts: for each op below it runs the command argv.ts writes for it
 * (`ip -n NS ...`) under `strace -e trace=sendmsg -xx` and keeps the last change request ip sent
 * (after its name lookups), with the ifindexes of the namespace's links. The test builds the same
 * op with src/netlink/changes.ts and compares the bytes (the sequence number zeroed).
 *
 * And refusals: ops the kernel refuses, run both ways, ip's stderr beside the kernel's answer
 * over netlink (errno, extended-ACK text), so the test can check that classifyNetlink reads the
 * netlink answer as classify() reads ip's stderr. Needs the native addon (npm run build:native).
 *
 * Run as root: `npx tsx scripts/record-netlink-changes.ts` (needs strace). Writes
 * test/fixtures/netlink/changes.json. The scratch namespace (nnt-<pid>-rec-chg) is removed at the
 * end, whatever happens. The kernel may refuse some of these (a delete of what is not there):
 * only the request matters.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commandsFor } from '../src/executor/argv.js';
import type { Op } from '../src/executor/ops.js';
import type { NetlinkChangeOp } from '../src/netlink/changes.js';
import { NetlinkNamespace, namespacePath } from '../src/netlink/netlink.js';
import { MissingLinkError, NetlinkError } from '../src/netlink/parse.js';
import { buildChangeScratch } from '../test/helpers/netlink-topology.js';

const OUT = join(import.meta.dirname, '..', 'test', 'fixtures', 'netlink', 'changes.json');
const IP = '/usr/sbin/ip';
const NS = `nnt-${process.pid.toString(36)}-rec-chg`;
/** The other end of the veths that cross namespaces. */
const PEER = `${NS}p`;

const v4 = { link: 'va', family: 4, local: '203.0.113.1', prefixLength: 24 } as const;
const v6 = { link: 'va', family: 6, local: '2001:db8::1', prefixLength: 64 } as const;
const r4 = { family: 4, type: 'unicast', dst: '198.19.0.0/16', table: 254 } as const;
const r6 = { family: 6, type: 'unicast', dst: '2001:db8:1::/48', table: 254 } as const;

const ops: ReadonlyArray<readonly [string, Op]> = [
  ['addr add v4', { kind: 'addr.add', ns: NS, spec: v4 }],
  ['addr add v4 broadcast scope label', { kind: 'addr.add', ns: NS, spec: { ...v4, local: '203.0.113.2', broadcast: '203.0.113.255', scope: 'link', label: 'va:1' } }],
  ['addr add v4 peer', { kind: 'addr.add', ns: NS, spec: { ...v4, local: '203.0.113.5', prefixLength: 32, peer: '203.0.113.6' } }],
  ['addr add v4 loopback range (host scope)', { kind: 'addr.add', ns: NS, spec: { link: 'lo', family: 4, local: '127.0.0.2', prefixLength: 8 } }],
  ['addr add v4 scope host given', { kind: 'addr.add', ns: NS, spec: { ...v4, local: '203.0.113.9', scope: 'host' } }],
  ['addr add v6', { kind: 'addr.add', ns: NS, spec: v6 }],
  ['addr add v6 nodad', { kind: 'addr.add', ns: NS, spec: { ...v6, local: '2001:db8::2', nodad: true } }],
  ['addr add v6 scope site', { kind: 'addr.add', ns: NS, spec: { ...v6, local: 'fec0::3', scope: 'site' } }],
  ['addr add v6 peer', { kind: 'addr.add', ns: NS, spec: { ...v6, local: '2001:db8::4', prefixLength: 128, peer: '2001:db8::5' } }],
  ['addr delete v4', { kind: 'addr.delete', ns: NS, link: 'va', local: '203.0.113.1', prefixLength: 24 }],
  ['addr delete v4 peer', { kind: 'addr.delete', ns: NS, link: 'va', local: '203.0.113.5', prefixLength: 32, peer: '203.0.113.6' }],
  ['addr delete v6', { kind: 'addr.delete', ns: NS, link: 'va', local: '2001:db8::1', prefixLength: 64 }],
  ['route add via dev', { kind: 'route.add', ns: NS, spec: { ...r4, via: '203.0.113.254', dev: 'va' } }],
  ['route add via', { kind: 'route.add', ns: NS, spec: { ...r4, via: '203.0.113.254' } }],
  ['route add dev only (on-link scope)', { kind: 'route.add', ns: NS, spec: { ...r4, dst: '198.20.0.0/16', dev: 'va' } }],
  ['route add default', { kind: 'route.add', ns: NS, spec: { ...r4, dst: '0.0.0.0/0', via: '203.0.113.254' } }],
  ['route add every option', { kind: 'route.add', ns: NS, spec: { ...r4, dst: '198.21.0.0/16', via: '203.0.113.254', dev: 'va', src: '203.0.113.1', metric: 7, table: 100, scope: 'global', mtu: 1400 } }],
  ['route add table above 255', { kind: 'route.add', ns: NS, spec: { ...r4, via: '203.0.113.254', table: 1000, mtu: 1400 } }],
  ['route add scope link given', { kind: 'route.add', ns: NS, spec: { ...r4, dst: '198.22.0.0/16', dev: 'va', scope: 'host' } }],
  ['route add blackhole', { kind: 'route.add', ns: NS, spec: { ...r4, type: 'blackhole', dst: '198.23.0.0/16', metric: 5 } }],
  ['route add unreachable', { kind: 'route.add', ns: NS, spec: { ...r4, type: 'unreachable', dst: '198.24.0.0/16' } }],
  ['route add prohibit', { kind: 'route.add', ns: NS, spec: { ...r4, type: 'prohibit', dst: '198.25.0.0/16', table: 300 } }],
  ['route add multipath', { kind: 'route.add', ns: NS, spec: { ...r4, dst: '198.26.0.0/16', nexthops: [{ via: '203.0.113.253', dev: 'va', weight: 2 }, { via: '203.0.113.252' }, { dev: 'vb' }] } }],
  ['route replace', { kind: 'route.add', ns: NS, spec: { ...r4, via: '203.0.113.254' }, replace: true }],
  ['route add v6 via', { kind: 'route.add', ns: NS, spec: { ...r6, via: '2001:db8::ff' } }],
  ['route add v6 dev only', { kind: 'route.add', ns: NS, spec: { ...r6, dst: '2001:db8:2::/48', dev: 'va', metric: 1024 } }],
  ['route add v6 default', { kind: 'route.add', ns: NS, spec: { ...r6, dst: '::/0', via: '2001:db8::ff', dev: 'va' } }],
  ['route add v6 blackhole', { kind: 'route.add', ns: NS, spec: { ...r6, type: 'blackhole', dst: '2001:db8:3::/48' } }],
  ['route add v6 multipath', { kind: 'route.add', ns: NS, spec: { ...r6, dst: '2001:db8:4::/48', nexthops: [{ via: '2001:db8::fe', dev: 'va' }, { via: '2001:db8::fd', dev: 'va', weight: 3 }] } }],
  ['route delete v4', { kind: 'route.delete', ns: NS, key: { family: 4, table: 254, dst: '198.19.0.0/16', metric: 0, tos: null } }],
  ['route delete v4 tos', { kind: 'route.delete', ns: NS, key: { family: 4, table: 254, dst: '198.19.0.0/16', metric: 10, tos: '0x10' } }],
  ['route delete table above 255', { kind: 'route.delete', ns: NS, key: { family: 4, table: 1000, dst: '198.19.0.0/16', metric: 0, tos: null } }],
  ['route delete v6 dev', { kind: 'route.delete', ns: NS, key: { family: 6, table: 254, dst: '2001:db8::/64', metric: 256, tos: null, dev: 'va' } }],
  ['route delete v6 default', { kind: 'route.delete', ns: NS, key: { family: 6, table: 254, dst: '::/0', metric: 1024, tos: null, dev: null } }],
  ['link set up', { kind: 'link.set', ns: NS, name: 'va', change: { up: true } }],
  ['link set down', { kind: 'link.set', ns: NS, name: 'vb', change: { up: false } }],
  ['link set mtu', { kind: 'link.set', ns: NS, name: 'va', change: { mtu: 1400 } }],
  ['link set mac', { kind: 'link.set', ns: NS, name: 'va', change: { mac: '02:00:00:0a:bc:01' } }],
  ['link set txqlen', { kind: 'link.set', ns: NS, name: 'va', change: { txqlen: 500 } }],
  ['link set alias', { kind: 'link.set', ns: NS, name: 'va', change: { alias: 'uplink-to-hub' } }],
  ['link set alias cleared', { kind: 'link.set', ns: NS, name: 'va', change: { alias: null } }],
  ['link set master', { kind: 'link.set', ns: NS, name: 'vb', change: { master: 'br0' } }],
  ['link set nomaster', { kind: 'link.set', ns: NS, name: 'vb', change: { master: null } }],
  ['link add veth', { kind: 'link.add', ns: NS, spec: { name: 've0', linkKind: 'veth', peer: { name: 've1', ns: NS } } }],
  ['link add veth into another namespace, mtu, mac', { kind: 'link.add', ns: NS, spec: { name: 've2', linkKind: 'veth', mtu: 1400, mac: '02:00:00:0a:bc:02', peer: { name: 've3', ns: PEER } } }],
  ['link add bridge', { kind: 'link.add', ns: NS, spec: { name: 'br1', linkKind: 'bridge' } }],
  ['link add bridge stp', { kind: 'link.add', ns: NS, spec: { name: 'br2', linkKind: 'bridge', stp: true, mtu: 1400 } }],
  ['link add bridge stp off, no vlan filtering', { kind: 'link.add', ns: NS, spec: { name: 'br3', linkKind: 'bridge', stp: false, vlanFiltering: false } }],
];

/**
 * Refusals: each op is run as ip (its stderr kept) and sent over netlink (the kernel's errno and
 * extended-ACK text kept, or the link whose lookup failed), in the scratch namespace as set up.
 * Each stderr is that of a case of scripts/record-stderr.ts or one more.
 */
const rv4 = { link: 'va', family: 4, local: '203.0.113.1', prefixLength: 24 } as const;
const refusals: ReadonlyArray<readonly [string, Op]> = [
  ['addr exists v4', { kind: 'addr.add', ns: NS, spec: rv4 }],
  ['addr exists v6', { kind: 'addr.add', ns: NS, spec: { link: 'va', family: 6, local: '2001:db8::1', prefixLength: 64 } }],
  ['addr link missing', { kind: 'addr.add', ns: NS, spec: { ...rv4, link: 'nnx-nosuch' } }],
  ['addr scope mismatch', { kind: 'addr.add', ns: NS, spec: { ...rv4, local: '203.0.113.7', scope: 'link' } }],
  ['addr multicast v6', { kind: 'addr.add', ns: NS, spec: { link: 'va', family: 6, local: 'ff02::5', prefixLength: 64 } }],
  ['addr delete missing v4', { kind: 'addr.delete', ns: NS, link: 'va', local: '203.0.113.9', prefixLength: 24 }],
  ['addr delete missing v6', { kind: 'addr.delete', ns: NS, link: 'va', local: '2001:db8::9', prefixLength: 64 }],
  ['route exists', { kind: 'route.add', ns: NS, spec: { ...r4, dst: '198.18.1.0/24', via: '203.0.113.254', metric: 10 } }],
  ['route gateway on no link', { kind: 'route.add', ns: NS, spec: { ...r4, dst: '198.18.9.0/24', via: '198.51.100.1' } }],
  ['route gateway on no link v6', { kind: 'route.add', ns: NS, spec: { ...r6, dst: '2001:db8:6::/48', via: '2001:db8:ffff::1' } }],
  ['route link down', { kind: 'route.add', ns: NS, spec: { ...r4, dst: '198.18.9.0/24', dev: 'dn0' } }],
  ['route link missing', { kind: 'route.add', ns: NS, spec: { ...r4, dst: '198.18.9.0/24', dev: 'nnx-nosuch' } }],
  ['route prefsrc invalid', { kind: 'route.add', ns: NS, spec: { ...r4, dst: '198.18.9.0/24', via: '203.0.113.254', src: '198.51.100.1' } }],
  ['route host bits', { kind: 'route.add', ns: NS, spec: { ...r4, dst: '198.18.9.1/24', via: '203.0.113.254' } }],
  ['route delete missing', { kind: 'route.delete', ns: NS, key: { family: 4, table: 254, dst: '198.18.77.0/24', metric: 0, tos: null } }],
  ['route delete missing v6', { kind: 'route.delete', ns: NS, key: { family: 6, table: 254, dst: '2001:db8:77::/48', metric: 1024, tos: null } }],
  ['route delete table missing', { kind: 'route.delete', ns: NS, key: { family: 4, table: 4242, dst: '198.18.77.0/24', metric: 0, tos: null } }],
  ['link missing', { kind: 'link.set', ns: NS, name: 'nnx-nosuch', change: { up: true } }],
  ['link mtu too big', { kind: 'link.set', ns: NS, name: 'va', change: { mtu: 70000 } }],
  ['link mtu too small', { kind: 'link.set', ns: NS, name: 'va', change: { mtu: 10 } }],
  ['link mtu above parent', { kind: 'link.set', ns: NS, name: 'mv0', change: { mtu: 9000 } }],
  ['link mac multicast', { kind: 'link.set', ns: NS, name: 'va', change: { mac: '01:00:5e:00:00:01' } }],
  ['link mac unsupported', { kind: 'link.set', ns: NS, name: 'dn0', change: { mac: '02:00:00:00:00:01' } }],
  ['link master not a bridge', { kind: 'link.set', ns: NS, name: 'va', change: { master: 'vb' } }],
  ['link master itself', { kind: 'link.set', ns: NS, name: 'br0', change: { master: 'br0' } }],
  ['link add exists', { kind: 'link.add', ns: NS, spec: { name: 'va', linkKind: 'bridge' } }],
  ['link add veth peer exists', { kind: 'link.add', ns: NS, spec: { name: 've9', linkKind: 'veth', peer: { name: 'pv0', ns: PEER } } }],
  ['link add veth mtu too big', { kind: 'link.add', ns: NS, spec: { name: 've9', linkKind: 'veth', mtu: 70000, peer: { name: 've8', ns: NS } } }],
  ['link add veth mac multicast', { kind: 'link.add', ns: NS, spec: { name: 've9', linkKind: 'veth', mac: '01:00:5e:00:00:01', peer: { name: 've8', ns: NS } } }],
  ['link add bridge vlan filtering unsupported', { kind: 'link.add', ns: NS, spec: { name: 'br9', linkKind: 'bridge', vlanFiltering: true } }],
];

/** What the kernel said to the op over netlink: a name lookup that failed, or its refusal. */
function netlinkAnswer(op: NetlinkChangeOp): { missingLink: string } | { code: string; errno: number; extack: string | null } | { ok: true } {
  const nl = new NetlinkNamespace(namespacePath(NS));
  try {
    nl.change(op);
    return { ok: true };
  } catch (e) {
    if (e instanceof MissingLinkError) return { missingLink: e.link };
    if (!(e instanceof NetlinkError)) throw e;
    return { code: e.code, errno: e.errno, extack: e.extack ?? null };
  } finally {
    nl.close();
  }
}

/** Change requests only (ip's name lookups, RTM_GETLINK, come first). */
const CHANGE_TYPES = new Set([16, 20, 21, 24, 25]);
const FLAG_NAMES: Readonly<Record<string, number>> = {
  NLM_F_REQUEST: 0x1, NLM_F_MULTI: 0x2, NLM_F_ACK: 0x4, NLM_F_ECHO: 0x8, NLM_F_REPLACE: 0x100, NLM_F_EXCL: 0x200, NLM_F_CREATE: 0x400, NLM_F_APPEND: 0x800,
};

/** The messages of ip's sendmsg calls in strace's `-xx` output, as bytes (header rebuilt from strace's decoding). */
function requests(trace: string): Buffer[] {
  const out: Buffer[] = [];
  const re = /\{nlmsg_len=(\d+), nlmsg_type=(0x[0-9a-f]+|[A-Z_]+)[^,]*, nlmsg_flags=([^,]+), nlmsg_seq=\d+, nlmsg_pid=(\d+)\}, "((?:\\x[0-9a-f]{2})*)"/g;
  for (const m of trace.matchAll(re)) {
    const [, len, type, flags, pid, body] = m as unknown as [string, string, string, string, string, string];
    if (!type.startsWith('0x')) continue;
    const h = Buffer.alloc(16);
    h.writeUInt32LE(Number(len), 0);
    h.writeUInt16LE(Number(type), 4);
    h.writeUInt16LE(flags.split('|').reduce((f, w) => f | (w.startsWith('0x') ? Number(w) : (FLAG_NAMES[w] ?? NaN)), 0), 6);
    h.writeUInt32LE(Number(pid), 12);
    const payload = Buffer.from(body.replaceAll('\\x', ''), 'hex');
    out.push(Buffer.concat([h, payload]));
  }
  return out;
}

function ipIn(...args: string[]): string {
  return execFileSync(IP, ['-n', NS, ...args], { encoding: 'utf8', env: { LC_ALL: 'C' } });
}

function main(): void {
  // The integration test's scratch namespace (test/integration/netlink-changes.test.ts).
  buildChangeScratch(NS);
  execFileSync(IP, ['netns', 'add', PEER]);
  execFileSync(IP, ['-n', PEER, 'link', 'add', 'pv0', 'type', 'ifb']);
  const refused = refusals.map(([name, op]) => {
    const [cmd] = commandsFor(op);
    if (!cmd) throw new Error(`${name}: no command`);
    const r = spawnSync(IP, ['-n', NS, ...cmd.args], { encoding: 'utf8', env: { LC_ALL: 'C' } });
    if (r.status === 0) throw new Error(`${name}: ip did not refuse it`);
    return { name, op, stderr: r.stderr.trim(), netlink: netlinkAnswer(op as NetlinkChangeOp) };
  });
  const links = Object.fromEntries((JSON.parse(ipIn('-j', 'link', 'show')) as Array<{ ifname: string; ifindex: number }>).map((l) => [l.ifname, l.ifindex]));
  const cases = ops.map(([name, op]) => {
    const [cmd] = commandsFor(op);
    if (!cmd) throw new Error(`${name}: no command`);
    const r = spawnSync('strace', ['-f', '-e', 'trace=sendmsg,openat', '-xx', '-s', '65536', IP, '-n', NS, ...cmd.args], { encoding: 'utf8', env: { LC_ALL: 'C' } });
    const sent = requests(r.stderr).filter((b) => CHANGE_TYPES.has(b.readUInt16LE(4)));
    const last = sent.at(-1);
    if (!last) throw new Error(`${name}: ip sent no change request:\n${r.stderr}`);
    // The fd ip opened the peer's namespace file as (its IFLA_NET_NS_FD); -xx writes the path in hex.
    const text = r.stderr.replace(/\\x([0-9a-f]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
    const fd = new RegExp(`openat\\(AT_FDCWD, "/run/netns/${PEER}", [^)]*\\) = (\\d+)`).exec(text)?.[1];
    return { name, op, argv: ['ip', ...cmd.args], request: last.toString('hex'), ...(fd === undefined ? {} : { peerNsFd: Number(fd) }) };
  });
  const version = execFileSync(IP, ['-V'], { encoding: 'utf8' }).trim();
  const kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
  // The namespaces' names as placeholders (the test puts its own in).
  const text = JSON.stringify({ recordedWith: version, kernel, links, cases, refusals: refused }, null, 1).replaceAll(PEER, 'PEER').replaceAll(NS, 'NS');
  writeFileSync(OUT, `${text}\n`);
  console.log(`wrote ${cases.length} requests and ${refused.length} refusals to ${OUT}`);
}

try {
  main();
} finally {
  spawnSync(IP, ['netns', 'del', NS]);
  spawnSync(IP, ['netns', 'del', PEER]);
}
