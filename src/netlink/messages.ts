/**
 * rtnetlink constants (values from the kernel's uapi headers: linux/netlink.h, rtnetlink.h,
 * if_link.h, if_addr.h, fib_rules.h, neighbour.h, net_namespace.h) and the dump requests netnsd
 * sends. Every structure is little-endian host order on the machines netnsd runs on (x86-64,
 * arm64); attributes marked "be" in the comments are network order.
 */

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;

export const familyOf = (f: 4 | 6): number => (f === 4 ? AF_INET : AF_INET6);

// ---- netlink (linux/netlink.h) ----
export const NLMSG_HDRLEN = 16;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
export const NLM_F_ECHO = 0x08;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP_FILTERED = 0x20;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
/** On NLMSG_ERROR: the request was not echoed in full / extended-ack TLVs follow. */
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;

export const NLMSGERR_ATTR_MSG = 1;
export const NLMSGERR_ATTR_OFFS = 2;

/** Attribute type bits that are flags, not the type. */
export const NLA_TYPE_MASK = 0x3fff;

// ---- rtnetlink message types (linux/rtnetlink.h) ----
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
export const RTM_NEWNEIGH = 28;
export const RTM_DELNEIGH = 29;
export const RTM_GETNEIGH = 30;
export const RTM_NEWRULE = 32;
export const RTM_DELRULE = 33;
export const RTM_GETRULE = 34;
export const RTM_NEWNSID = 88;
export const RTM_DELNSID = 89;
export const RTM_GETNSID = 90;

/** Multicast groups (enum rtnetlink_groups): what nlOpen joins for events. */
export const RTNLGRP_LINK = 1;
export const RTNLGRP_NOTIFY = 2;
export const RTNLGRP_NEIGH = 3;
export const RTNLGRP_TC = 4;
export const RTNLGRP_IPV4_IFADDR = 5;
export const RTNLGRP_IPV4_ROUTE = 7;
export const RTNLGRP_IPV4_RULE = 8;
export const RTNLGRP_IPV6_IFADDR = 9;
export const RTNLGRP_IPV6_ROUTE = 11;
export const RTNLGRP_IPV6_IFINFO = 12;
export const RTNLGRP_IPV6_PREFIX = 18;
export const RTNLGRP_IPV6_RULE = 19;
export const RTNLGRP_IPV4_NETCONF = 24;
export const RTNLGRP_IPV6_NETCONF = 25;
export const RTNLGRP_NSID = 28;

/** The groups a namespace watcher joins by default: every object netnsd shows. */
export const DEFAULT_GROUPS: readonly number[] = [
  RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE,
  RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_RULE, RTNLGRP_NEIGH, RTNLGRP_NSID,
];

// ---- links (linux/if_link.h, linux/if.h) ----
export const IFINFOMSG_LEN = 16;
export const IFLA_ADDRESS = 1;
export const IFLA_BROADCAST = 2;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_LINK = 5;
export const IFLA_QDISC = 6;
export const IFLA_MASTER = 10;
export const IFLA_TXQLEN = 13;
export const IFLA_OPERSTATE = 16;
export const IFLA_LINKMODE = 17;
export const IFLA_LINKINFO = 18;
export const IFLA_IFALIAS = 20;
export const IFLA_GROUP = 27;
export const IFLA_EXT_MASK = 29;
export const IFLA_PROMISCUITY = 30;
export const IFLA_LINK_NETNSID = 37;
export const IFLA_MIN_MTU = 50;
export const IFLA_MAX_MTU = 51;
export const IFLA_ALT_IFNAME = 53;
export const IFLA_PERM_ADDRESS = 54;

export const IFLA_NET_NS_FD = 28;

export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const IFLA_INFO_SLAVE_KIND = 4;

/** VETH_INFO_PEER (linux/veth.h): an ifinfomsg and the peer's IFLA_* attributes. */
export const VETH_INFO_PEER = 1;

export const IFLA_BR_STP_STATE = 5;
export const IFLA_BR_VLAN_FILTERING = 7;

export const IFLA_MACVLAN_MODE = 1;
export const MACVLAN_MODES: Readonly<Record<number, string>> = { 1: 'private', 2: 'vepa', 4: 'bridge', 8: 'passthru', 16: 'source' };

export const IFLA_VXLAN_ID = 1;
export const IFLA_VXLAN_GROUP = 2;
export const IFLA_VXLAN_LINK = 3;
export const IFLA_VXLAN_LOCAL = 4;
/** be16 */
export const IFLA_VXLAN_PORT = 15;
export const IFLA_VXLAN_GROUP6 = 16;
export const IFLA_VXLAN_LOCAL6 = 17;

export const IFLA_TUN_TYPE = 3;
export const IFLA_TUN_PI = 4;
export const IFLA_TUN_VNET_HDR = 5;
export const IFLA_TUN_PERSIST = 6;
export const IFLA_TUN_MULTI_QUEUE = 7;
export const IFF_TUN = 1;
export const IFF_TAP = 2;

export const IFF_UP = 0x1;
export const IFF_RUNNING = 0x40;
export const ARPHRD_LOOPBACK = 772;

/** IFLA_EXT_MASK bits: leave the counters out of link dumps (netnsd reads them separately). */
export const RTEXT_FILTER_VF = 1 << 0;
export const RTEXT_FILTER_SKIP_STATS = 1 << 3;

/** IF_OPER_* as iproute2 names them (ip/ipaddress.c oper_states). */
export const OPER_STATES = ['UNKNOWN', 'NOTPRESENT', 'DOWN', 'LOWERLAYERDOWN', 'TESTING', 'DORMANT', 'UP'] as const;

// ---- addresses (linux/if_addr.h) ----
export const IFADDRMSG_LEN = 8;
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_LABEL = 3;
export const IFA_BROADCAST = 4;
export const IFA_ANYCAST = 5;
export const IFA_CACHEINFO = 6;
export const IFA_FLAGS = 8;
export const IFA_RT_PRIORITY = 9;

export const IFA_F_SECONDARY = 0x01;
export const IFA_F_NODAD = 0x02;
export const IFA_F_OPTIMISTIC = 0x04;
export const IFA_F_DADFAILED = 0x08;
export const IFA_F_HOMEADDRESS = 0x10;
export const IFA_F_DEPRECATED = 0x20;
export const IFA_F_TENTATIVE = 0x40;
export const IFA_F_PERMANENT = 0x80;
export const IFA_F_MANAGETEMPADDR = 0x100;
export const IFA_F_NOPREFIXROUTE = 0x200;
export const IFA_F_MCAUTOJOIN = 0x400;
export const IFA_F_STABLE_PRIVACY = 0x800;
/** ifa_cacheinfo lifetimes: forever. */
export const INFINITY_LIFE_TIME = 0xffffffff;

// ---- routes (linux/rtnetlink.h) ----
export const RTMSG_LEN = 12;
export const RTA_DST = 1;
export const RTA_SRC = 2;
export const RTA_IIF = 3;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_PREFSRC = 7;
export const RTA_METRICS = 8;
export const RTA_MULTIPATH = 9;
export const RTA_FLOW = 11;
export const RTA_CACHEINFO = 12;
export const RTA_TABLE = 15;
export const RTA_MARK = 16;
export const RTA_VIA = 18;
export const RTA_PREF = 20;
export const RTA_EXPIRES = 23;
export const RTA_NH_ID = 30;
export const RTAX_MTU = 2;

export const RTNH_LEN = 8;
export const RTNH_F_DEAD = 1;
export const RTNH_F_PERVASIVE = 2;
export const RTNH_F_ONLINK = 4;
export const RTNH_F_OFFLOAD = 8;
export const RTNH_F_LINKDOWN = 16;
export const RTNH_F_UNRESOLVED = 32;
export const RTNH_F_TRAP = 64;
export const RTM_F_NOTIFY = 0x100;
export const RTM_F_CLONED = 0x200;
export const RTM_F_OFFLOAD = 0x4000;
export const RTM_F_TRAP = 0x8000;
export const RTM_F_OFFLOAD_FAILED = 0x20000000;

export const RT_TABLE_UNSPEC = 0;
export const RT_TABLE_MAIN = 254;

/** RTN_* as iproute2 names them (lib/rt_names.c rtnl_rtntype_n2a); others print as a number. */
export const RTN_NAMES: readonly string[] = [
  'none', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'xresolve',
];

// ---- policy rules (linux/fib_rules.h) ----
export const FIB_RULE_HDR_LEN = 12;
export const FRA_DST = 1;
export const FRA_SRC = 2;
export const FRA_IIFNAME = 3;
export const FRA_GOTO = 4;
export const FRA_PRIORITY = 6;
export const FRA_FWMARK = 10;
export const FRA_FLOW = 11;
export const FRA_SUPPRESS_IFGROUP = 13;
export const FRA_SUPPRESS_PREFIXLEN = 14;
export const FRA_TABLE = 15;
export const FRA_FWMASK = 16;
export const FRA_OIFNAME = 17;
export const FRA_L3MDEV = 19;
export const FRA_UID_RANGE = 20;
export const FRA_PROTOCOL = 21;
export const FRA_IP_PROTO = 22;
export const FRA_SPORT_RANGE = 23;
export const FRA_DPORT_RANGE = 24;

export const FIB_RULE_PERMANENT = 0x1;
export const FIB_RULE_INVERT = 0x2;
export const FIB_RULE_UNRESOLVED = 0x4;
export const FIB_RULE_IIF_DETACHED = 0x8;
export const FIB_RULE_OIF_DETACHED = 0x10;

export const FR_ACT_TO_TBL = 1;
export const FR_ACT_GOTO = 2;
export const FR_ACT_NOP = 3;

// ---- neighbours (linux/neighbour.h) ----
export const NDMSG_LEN = 12;
export const NDA_DST = 1;
export const NDA_LLADDR = 2;
export const NDA_CACHEINFO = 3;
export const NDA_PROBES = 4;
export const NDA_VLAN = 5;
export const NDA_MASTER = 9;

/** NUD_* states by bit, as `ip neigh` names them. */
export const NUD_STATES: ReadonlyArray<readonly [number, string]> = [
  [0x01, 'INCOMPLETE'], [0x02, 'REACHABLE'], [0x04, 'STALE'], [0x08, 'DELAY'], [0x10, 'PROBE'], [0x20, 'FAILED'], [0x40, 'NOARP'], [0x80, 'PERMANENT'],
];
/** NTF_* flags by bit (NTF_ROUTER is reported as `router`). */
export const NTF_FLAGS: ReadonlyArray<readonly [number, string]> = [
  [0x01, 'use'], [0x02, 'self'], [0x04, 'master'], [0x08, 'proxy'], [0x10, 'extern_learn'], [0x20, 'offload'], [0x40, 'sticky'],
];
export const NTF_ROUTER = 0x80;

// ---- nsid (linux/net_namespace.h) ----
export const NETNSA_NSID = 1;
export const NETNSA_FD = 3;

// ---- building requests ----

/** One attribute: header, payload, padding to 4 bytes. */
export function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

export function attrU32(type: number, value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0, 0);
  return attr(type, b);
}

/** A request message: nlmsghdr, the family header, attributes. */
export function message(type: number, flags: number, seq: number, header: Buffer, attrs: readonly Buffer[] = []): Buffer {
  const body = Buffer.concat([header, ...attrs]);
  const h = Buffer.alloc(NLMSG_HDRLEN);
  h.writeUInt32LE(NLMSG_HDRLEN + body.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq >>> 0, 8);
  h.writeUInt32LE(0, 12);
  return Buffer.concat([h, body]);
}

/*
 * Dump requests. The sockets have NETLINK_GET_STRICT_CHK on, so the kernel checks that the
 * family header is zero except for what it filters on, and honours the filters (a route dump
 * filtered by RTA_TABLE returns that table only) — as iproute2 6.1 does since it sets the same.
 */

/** Every link, without counters. */
/** RTM_GETNSID for the namespace behind an fd of this process: the nsid the asking socket's namespace has for it (acked, so the reply ends). */
export function nsidRequest(seq: number, fd: number): Buffer {
  return message(RTM_GETNSID, NLM_F_REQUEST | NLM_F_ACK, seq, Buffer.alloc(4), [attrU32(NETNSA_FD, fd)]);
}

export function linkDumpRequest(seq: number): Buffer {
  const ifi = Buffer.alloc(IFINFOMSG_LEN);
  return message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, ifi, [attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)]);
}

/** Every address of one family, or of both (AF_UNSPEC dumps IPv4 then IPv6). */
export function addressDumpRequest(seq: number, family?: 4 | 6): Buffer {
  const ifa = Buffer.alloc(IFADDRMSG_LEN);
  ifa.writeUInt8(family === undefined ? AF_UNSPEC : familyOf(family), 0);
  return message(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, ifa);
}

/**
 * The routes of one family in one table, or in all (`all`). `cloned` asks for the cache
 * (exceptions: PMTU, redirects) instead of the FIB, as `ip route show cache` does.
 */
export function routeDumpRequest(seq: number, family: 4 | 6, table: number | 'all', cloned = false): Buffer {
  const rtm = Buffer.alloc(RTMSG_LEN);
  rtm.writeUInt8(familyOf(family), 0);
  if (cloned) rtm.writeUInt32LE(RTM_F_CLONED, 8);
  const attrs = table === 'all' ? [] : [attrU32(RTA_TABLE, table)];
  return message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, rtm, attrs);
}

/** The policy rules of one family. */
export function ruleDumpRequest(seq: number, family: 4 | 6): Buffer {
  const frh = Buffer.alloc(FIB_RULE_HDR_LEN);
  frh.writeUInt8(familyOf(family), 0);
  return message(RTM_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, seq, frh);
}

/** The neighbours (ARP / NDP caches) of one family, or of both. */
export function neighborDumpRequest(seq: number, family?: 4 | 6): Buffer {
  const nd = Buffer.alloc(NDMSG_LEN);
  nd.writeUInt8(family === undefined ? AF_UNSPEC : familyOf(family), 0);
  return message(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, seq, nd);
}
