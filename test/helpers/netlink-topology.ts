/**
 * A namespace with one of (nearly) everything the netlink parsers read: link kinds, addresses,
 * routes and rules of many shapes, neighbours. Used by scripts/record-netlink.ts (fixtures) and
 * test/integration/netlink.test.ts (parity with iproute2). No vitest imports: the script uses it.
 * Addresses only from 198.51.100.0/24, 203.0.113.0/24, 198.18.0.0/15 and 2001:db8::/32.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const IP = existsSync('/usr/sbin/ip') ? '/usr/sbin/ip' : '/sbin/ip';

export type Ip = (...args: string[]) => string;

export const runIp: Ip = (...args) => execFileSync(IP, args, { encoding: 'utf8', env: { LC_ALL: 'C', PATH: process.env.PATH ?? '' } });

/**
 * Builds the topology in `ns` (created here), with the cross-namespace veth's other end in `peer`
 * (created here). DAD is off, so no address is `tentative` at one moment and not the next.
 */
export function buildTopology(ns: string, peer: string, ip: Ip = runIp): void {
  ip('netns', 'add', ns);
  ip('netns', 'add', peer);
  const n = (...args: string[]): string => ip('-n', ns, ...args);
  for (const k of ['all', 'default']) ip('netns', 'exec', ns, 'sysctl', '-q', '-w', `net.ipv6.conf.${k}.accept_dad=0`);
  n('link', 'set', 'lo', 'up');
  // links
  // The uplink is a veth (this machine's kernel has no dummy module), its peer up for a carrier.
  n('link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd0p');
  n('link', 'set', 'd0', 'alias', 'uplink veth', 'txqlen', '2000', 'up');
  n('link', 'set', 'd0p', 'up');
  n('link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb');
  // no vlan_filtering: this kernel lacks it (EOPNOTSUPP)
  n('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '1');
  n('link', 'set', 'vb', 'master', 'br0');
  for (const l of ['va', 'vb', 'br0']) n('link', 'set', l, 'up');
  n('link', 'add', 'vd', 'type', 'veth', 'peer', 'name', 've'); // ve stays down: vd has no carrier
  n('link', 'set', 'vd', 'up');
  n('link', 'add', 'vx', 'type', 'veth', 'peer', 'name', 'vy', 'netns', peer);
  n('link', 'set', 'vx', 'up');
  n('link', 'add', 'link', 'd0', 'name', 'mv0', 'type', 'macvlan', 'mode', 'bridge');
  n('link', 'add', 'link', 'd0', 'name', 'mv1', 'type', 'macvlan', 'mode', 'private');
  n('link', 'add', 'vxl0', 'type', 'vxlan', 'id', '42', 'local', '198.51.100.1', 'remote', '198.51.100.2', 'dstport', '4789', 'dev', 'd0');
  n('link', 'add', 'vxl1', 'type', 'vxlan', 'id', '43', 'group', '239.1.1.1', 'dstport', '4790', 'dev', 'd0');
  n('link', 'add', 'vxl6', 'type', 'vxlan', 'id', '44', 'local', '2001:db8::1', 'remote', '2001:db8::2', 'dstport', '4791');
  n('tuntap', 'add', 'mode', 'tun', 'name', 'tun0');
  n('tuntap', 'add', 'mode', 'tap', 'name', 'tap0', 'multi_queue', 'vnet_hdr');
  n('link', 'add', 'nnifb', 'type', 'ifb');
  // addresses
  n('addr', 'add', '198.51.100.1/24', 'dev', 'd0');
  n('addr', 'add', '198.51.100.5/24', 'dev', 'd0'); // secondary
  n('addr', 'add', '198.51.100.7/24', 'dev', 'd0', 'label', 'd0:lab');
  n('addr', 'add', '203.0.113.1', 'peer', '203.0.113.2/32', 'dev', 'va');
  n('addr', 'add', '198.18.0.1/24', 'dev', 'br0', 'valid_lft', '3600', 'preferred_lft', '1800');
  n('addr', 'add', '2001:db8::1/64', 'dev', 'd0', 'nodad');
  n('addr', 'add', '2001:db8:1::1/64', 'dev', 'va', 'nodad', 'noprefixroute');
  n('addr', 'add', '203.0.113.9/24', 'dev', 'vd');
  // routes, IPv4
  n('route', 'add', 'default', 'via', '198.51.100.254', 'dev', 'd0', 'mtu', '1400');
  n('route', 'add', '198.18.1.0/24', 'via', '198.51.100.254', 'metric', '10');
  n('route', 'add', 'blackhole', '198.18.2.0/24');
  n('route', 'add', 'unreachable', '198.18.3.0/24', 'table', '100');
  n('route', 'add', 'prohibit', '198.18.4.0/24');
  n('route', 'add', '198.18.5.0/24', 'nexthop', 'via', '198.51.100.253', 'dev', 'd0', 'weight', '2', 'nexthop', 'via', '198.51.100.252', 'dev', 'd0');
  n('route', 'add', '198.18.6.0/24', 'tos', '0x10', 'via', '198.51.100.254');
  n('route', 'add', '198.18.6.0/24', 'tos', 'AF11', 'via', '198.51.100.254');
  n('route', 'add', '198.18.7.1', 'dev', 'd0', 'scope', 'link');
  n('route', 'add', '198.18.8.0/24', 'via', '198.51.100.254', 'src', '198.51.100.1', 'proto', 'static');
  n('route', 'add', '198.18.9.0/24', 'dev', 'vd');
  n('route', 'add', '198.18.11.0/24', 'via', '198.51.100.254', 'table', '100');
  n('route', 'add', '198.18.12.0/24', 'via', '198.51.100.254', 'table', '1000', 'proto', 'bird');
  n('route', 'add', 'throw', '198.18.13.0/24', 'table', '100');
  n('route', 'add', '198.18.14.0/24', 'via', '198.18.200.1', 'dev', 'd0', 'onlink');
  // routes, IPv6
  n('-6', 'route', 'add', '2001:db8:100::/48', 'via', '2001:db8::ff', 'dev', 'd0', 'metric', '100');
  n('-6', 'route', 'add', 'blackhole', '2001:db8:200::/48');
  n('-6', 'route', 'add', '2001:db8:300::/48', 'nexthop', 'via', '2001:db8::fe', 'dev', 'd0', 'nexthop', 'via', '2001:db8::fd', 'dev', 'd0', 'weight', '3');
  n('-6', 'route', 'add', 'unreachable', '2001:db8:400::/48', 'table', '100');
  n('-6', 'route', 'add', '2001:db8:500::/48', 'via', '2001:db8::ff', 'mtu', '1300');
  n('-6', 'route', 'add', '2001:db8:600::1', 'dev', 'va');
  // rules, IPv4
  n('rule', 'add', 'pref', '1000', 'from', '198.51.100.5', 'table', '100');
  n('rule', 'add', 'pref', '1100', 'not', 'from', '198.18.0.0/16', 'to', '198.51.100.0/24', 'fwmark', '0x10/0xff', 'iif', 'va', 'oif', 'lo',
    'ipproto', 'tcp', 'sport', '1000-2000', 'dport', '443', 'table', 'main', 'suppress_prefixlength', '0');
  n('rule', 'add', 'pref', '1200', 'to', '198.18.1.0/24', 'unreachable');
  n('rule', 'add', 'pref', '1300', 'goto', '1400');
  n('rule', 'add', 'pref', '1400', 'nop');
  n('rule', 'add', 'pref', '1500', 'fwmark', '1', 'blackhole');
  n('rule', 'add', 'pref', '1600', 'tos', '0x10', 'uidrange', '100-200', 'table', '5', 'realms', '1/2', 'proto', 'static');
  n('rule', 'add', 'pref', '1700', 'iif', 'nosuch', 'table', '7');
  n('rule', 'add', 'pref', '1800', 'l3mdev');
  n('rule', 'add', 'pref', '1900', 'goto', '1950'); // no rule at 1950: unresolved
  n('rule', 'add', 'pref', '2000', 'prohibit', 'ipproto', 'udp', 'dport', '53');
  n('rule', 'add', 'pref', '2100', 'realms', '3', 'table', '8', 'suppress_ifgroup', '0');
  n('rule', 'add', 'pref', '2200', 'fwmark', '0/0xff', 'table', '9');
  // rules, IPv6
  n('-6', 'rule', 'add', 'pref', '1000', 'from', '2001:db8::/32', 'table', '100');
  n('-6', 'rule', 'add', 'pref', '1100', 'to', '2001:db8:1::/48', 'prohibit');
  n('-6', 'rule', 'add', 'pref', '1200', 'ipproto', 'ipv6-icmp', 'oif', 'va', 'table', 'main');
  // neighbours
  n('neigh', 'add', '198.51.100.9', 'lladdr', '02:00:00:00:00:09', 'dev', 'd0', 'nud', 'permanent');
  n('-6', 'neigh', 'add', '2001:db8::9', 'lladdr', '02:00:00:00:00:0a', 'dev', 'd0', 'nud', 'permanent', 'router');
  n('neigh', 'add', '198.51.100.10', 'lladdr', '02:00:00:00:00:10', 'dev', 'd0', 'nud', 'stale');
}

/** `ip -n NS -j ...` outputs that the argv.ts parsers read, for the same data as the dumps. */
export function ipOutputs(ns: string, ip: Ip = runIp): Record<string, string> {
  const n = (...args: string[]): string => ip('-n', ns, '-j', ...args);
  return {
    links: n('-d', 'link', 'show'),
    addresses: n('address', 'show'),
    'routes-v4-all': n('-4', 'route', 'show', 'table', 'all'),
    'routes-v6-all': n('-6', 'route', 'show', 'table', 'all'),
    'routes-v4-main': n('-4', 'route', 'show', 'table', '254'),
    'routes-v4-100': n('-4', 'route', 'show', 'table', '100'),
    'rules-v4': n('-4', 'rule', 'show'),
    'rules-v6': n('-6', 'rule', 'show'),
  };
}

/**
 * The namespace the netlink change tests work in (scripts/record-netlink-changes.ts records in
 * the same): va/vb a veth, both ends here and up; va has 203.0.113.1/24 and 2001:db8::1/64; a
 * route 198.18.1.0/24 via 203.0.113.254 metric 10; br0 a bridge (up); mv0 a macvlan on va (its
 * mtu capped by va's); dn0 an ifb that stays down (this kernel has no dummy). Creates `ns`.
 */
export function buildChangeScratch(ns: string, ip: Ip = runIp): void {
  ip('netns', 'add', ns);
  const n = (...args: string[]): string => ip('-n', ns, ...args);
  n('link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb');
  n('link', 'add', 'br0', 'type', 'bridge');
  n('link', 'add', 'link', 'va', 'name', 'mv0', 'type', 'macvlan', 'mode', 'bridge');
  n('link', 'add', 'dn0', 'type', 'ifb');
  for (const l of ['lo', 'va', 'vb', 'br0']) n('link', 'set', l, 'up');
  n('address', 'add', '203.0.113.1/24', 'dev', 'va');
  n('address', 'add', '2001:db8::1/64', 'dev', 'va', 'nodad');
  n('route', 'add', '198.18.1.0/24', 'via', '203.0.113.254', 'metric', '10');
}
