/**
 * The change requests netnsd sends over rtnetlink instead of a batch line: each builder makes the
 * message that iproute2 6.1 sends for the command argv.ts writes for the same op, byte for byte
 * (attributes in ip's order; test/unit/netlink-changes.test.ts compares them with requests
 * recorded from `ip` by scripts/record-netlink-changes.ts). Only the lookup of names differs: ip
 * asks the kernel for each link name first, netnsd does too (linkGetRequest) and hands the
 * builders the ifindexes.
 *
 * The ops were validated by argv.ts (commandsFor) before they get here; what is checked again is
 * only what a wrong value would turn into different bytes (an address of the wrong family).
 */
import { AppError } from '../errors/app-error.js';
import { parseIp } from '../ip-address.js';
import type { AddressScope, AddrAddSpec, LinkAddSpec, LinkChange, Op, RouteKey, RouteScope, RouteSpec, RouteType } from '../executor/ops.js';
import * as M from './messages.js';

export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

/** RT_SCOPE_* (linux/rtnetlink.h) by the names netnsd and iproute2 use. */
export const SCOPES: Readonly<Record<AddressScope | RouteScope, number>> = { global: 0, site: 200, link: 253, host: 254 };
const RT_SCOPE_NOWHERE = 255;

/** RTN_* of the route types netnsd creates. */
const ROUTE_TYPE: Readonly<Record<RouteType, number>> = { unicast: 1, blackhole: 6, unreachable: 7, prohibit: 8 };
const RTPROT_BOOT = 3;

/** IFLA_EXT_MASK of ip's name lookups: no VF details, no counters. */
const LOOKUP_EXT_MASK = M.RTEXT_FILTER_VF | M.RTEXT_FILTER_SKIP_STATS;

/** An address's bytes in network order; INTERNAL when it is not one of `family`. */
export function ipBytes(text: string, family: 4 | 6): Buffer {
  const a = parseIp(text);
  if (!a || a.family !== family) throw new AppError('INTERNAL', 'bad address in a netlink request', { cause: text });
  const out = Buffer.alloc(family === 4 ? 4 : 16);
  for (let i = out.length - 1, v = a.value; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

/** A string attribute with its NUL, as iproute2's addattr_l(..., strlen + 1) writes it. */
function attrString(type: number, s: string): Buffer {
  return M.attr(type, Buffer.from(`${s}\0`, 'utf8'));
}

/** `CIDR` -> [address bytes, length]. */
function prefixBytes(cidr: string, family: 4 | 6): [Buffer, number] {
  const slash = cidr.indexOf('/');
  return [ipBytes(cidr.slice(0, slash), family), Number(cidr.slice(slash + 1))];
}

/**
 * RTM_GETLINK of one link by name, as ip's name lookup sends it (acked, so the reply ends): the
 * answer is that link's RTM_NEWLINK, or ENODEV when there is none.
 */
export function linkGetRequest(seq: number, name: string): Buffer {
  return M.message(M.RTM_GETLINK, M.NLM_F_REQUEST | M.NLM_F_ACK, seq, Buffer.alloc(M.IFINFOMSG_LEN), [
    M.attrU32(M.IFLA_EXT_MASK, LOOKUP_EXT_MASK),
    attrString(M.IFLA_IFNAME, name),
  ]);
}

/** The ifindex in an RTM_NEWLINK reply. */
export function ifindexOf(payload: Buffer): number {
  return payload.readInt32LE(4);
}

/** What addr.add / addr.delete name: the address key, and for an add its options. */
export type AddrRequest = Omit<AddrAddSpec, 'link'>;

/**
 * `ip address add|del LOCAL[/LEN] [peer PEER/LEN] dev D [broadcast B] [scope S] [label L] [nodad]`:
 * RTM_NEWADDR (create, exclusive) or RTM_DELADDR. IFA_LOCAL is the address, IFA_ADDRESS the
 * peer or the address again. Flags that fit in a byte go in ifa_flags (ip 6.1 uses IFA_FLAGS
 * only for larger ones). Without a scope, ip gives an add of 127/8 host scope, everything else 0.
 */
export function addrRequest(seq: number, kind: 'add' | 'delete', a: AddrRequest, ifindex: number): Buffer {
  const local = ipBytes(a.local, a.family);
  const ifa = Buffer.alloc(M.IFADDRMSG_LEN);
  ifa.writeUInt8(M.familyOf(a.family), 0);
  ifa.writeUInt8(a.prefixLength, 1);
  ifa.writeUInt8(kind === 'add' && a.nodad ? M.IFA_F_NODAD : 0, 2);
  const scope = a.scope !== undefined ? SCOPES[a.scope] : kind === 'add' && a.family === 4 && local[0] === 127 ? SCOPES.host : 0;
  ifa.writeUInt8(scope, 3);
  ifa.writeInt32LE(ifindex, 4);
  // ip's order: the words as they come (the peer follows the address), then IFA_ADDRESS = the
  // address itself when there was no peer.
  const attrs = [M.attr(M.IFA_LOCAL, local), ...(a.peer === undefined ? [] : [M.attr(M.IFA_ADDRESS, ipBytes(a.peer, a.family))])];
  if (kind === 'add') {
    if (a.broadcast !== undefined) attrs.push(M.attr(M.IFA_BROADCAST, ipBytes(a.broadcast, 4)));
    if (a.label !== undefined) attrs.push(attrString(M.IFA_LABEL, a.label));
  }
  if (a.peer === undefined) attrs.push(M.attr(M.IFA_ADDRESS, local));
  const flags = M.NLM_F_REQUEST | M.NLM_F_ACK | (kind === 'add' ? NLM_F_CREATE | NLM_F_EXCL : 0);
  return M.message(kind === 'add' ? M.RTM_NEWADDR : M.RTM_DELADDR, flags, seq, ifa, attrs);
}

/** The rtmsg of a route request. Tables above 255 go in RTA_TABLE, with rtm_table 0 (RT_TABLE_UNSPEC). */
function rtmsg(family: 4 | 6, dstLen: number, table: number, protocol: number, scope: number, type: number, tos = 0): Buffer {
  const rtm = Buffer.alloc(M.RTMSG_LEN);
  rtm.writeUInt8(M.familyOf(family), 0);
  rtm.writeUInt8(dstLen, 1);
  rtm.writeUInt8(tos, 3);
  rtm.writeUInt8(table < 256 ? table : M.RT_TABLE_UNSPEC, 4);
  rtm.writeUInt8(protocol, 5);
  rtm.writeUInt8(scope, 6);
  rtm.writeUInt8(type, 7);
  return rtm;
}

const tableAttr = (table: number): Buffer[] => (table < 256 ? [] : [M.attrU32(M.RTA_TABLE, table)]);

/**
 * `ip route add|replace [TYPE] DST [via G] [dev D] [src S] [metric M] table T [scope S] [mtu U]
 * [nexthop ...]...`: RTM_NEWROUTE, create + exclusive (add) or create + replace (replace),
 * protocol boot. Attributes in ip's order: those of the words as they come (RTA_DST, RTA_GATEWAY,
 * RTA_PREFSRC, RTA_PRIORITY, RTA_TABLE), then RTA_OIF, RTA_METRICS and RTA_MULTIPATH, which ip
 * adds after reading every word. ip's scope when none is given: a unicast IPv4 route without a
 * gateway is on-link (`link`), every other route `global`.
 */
export function routeAddRequest(seq: number, spec: RouteSpec, replace: boolean, ifindex: (name: string) => number): Buffer {
  const [dst, dstLen] = prefixBytes(spec.dst, spec.family);
  const onLink = spec.family === 4 && spec.type === 'unicast' && spec.via === undefined && spec.nexthops === undefined;
  const scope = spec.scope !== undefined ? SCOPES[spec.scope] : onLink ? SCOPES.link : SCOPES.global;
  const rtm = rtmsg(spec.family, dstLen, spec.table, RTPROT_BOOT, scope, ROUTE_TYPE[spec.type]);
  const attrs = [M.attr(M.RTA_DST, dst)];
  if (spec.via !== undefined) attrs.push(M.attr(M.RTA_GATEWAY, ipBytes(spec.via, spec.family)));
  if (spec.src !== undefined) attrs.push(M.attr(M.RTA_PREFSRC, ipBytes(spec.src, spec.family)));
  if (spec.metric !== undefined) attrs.push(M.attrU32(M.RTA_PRIORITY, spec.metric));
  attrs.push(...tableAttr(spec.table));
  if (spec.dev !== undefined) attrs.push(M.attrU32(M.RTA_OIF, ifindex(spec.dev)));
  if (spec.mtu !== undefined) attrs.push(M.attr(M.RTA_METRICS, M.attrU32(M.RTAX_MTU, spec.mtu)));
  if (spec.nexthops !== undefined) {
    // struct rtnexthop { u16 len; u8 flags; u8 hops (weight - 1); s32 ifindex } + its attributes.
    const hops = spec.nexthops.map((n) => {
      const gw = n.via === undefined ? [] : [M.attr(M.RTA_GATEWAY, ipBytes(n.via, spec.family))];
      const rtnh = Buffer.alloc(M.RTNH_LEN);
      rtnh.writeUInt16LE(M.RTNH_LEN + gw.reduce((s, b) => s + b.length, 0), 0);
      rtnh.writeUInt8((n.weight ?? 1) - 1, 3);
      rtnh.writeInt32LE(n.dev === undefined ? 0 : ifindex(n.dev), 4);
      return Buffer.concat([rtnh, ...gw]);
    });
    attrs.push(M.attr(M.RTA_MULTIPATH, Buffer.concat(hops)));
  }
  const flags = M.NLM_F_REQUEST | M.NLM_F_ACK | NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL);
  return M.message(M.RTM_NEWROUTE, flags, seq, rtm, attrs);
}

/**
 * `ip route del DST [tos T] table T metric M [dev D]`: RTM_DELROUTE with no type and no protocol,
 * which the kernel reads as "of any type, by anyone"; scope `nowhere` for IPv4 (any scope), 0 for
 * IPv6, as ip sends them.
 */
export function routeDeleteRequest(seq: number, key: RouteKey, ifindex: (name: string) => number): Buffer {
  const [dst, dstLen] = prefixBytes(key.dst, key.family);
  const tos = key.tos === null ? 0 : Number.parseInt(key.tos, 16);
  const rtm = rtmsg(key.family, dstLen, key.table, 0, key.family === 4 ? RT_SCOPE_NOWHERE : SCOPES.global, 0, tos);
  const attrs = [M.attr(M.RTA_DST, dst), ...tableAttr(key.table), M.attrU32(M.RTA_PRIORITY, key.metric)];
  if (key.dev !== undefined && key.dev !== null) attrs.push(M.attrU32(M.RTA_OIF, ifindex(key.dev)));
  return M.message(M.RTM_DELROUTE, M.NLM_F_REQUEST | M.NLM_F_ACK, seq, rtm, attrs);
}

/** `aa:bb:cc:dd:ee:ff` -> 6 bytes. */
function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => Number.parseInt(h, 16)));
}

/**
 * `ip link set dev D up|down|mtu M|address A|txqueuelen Q|master B|nomaster|alias X`: RTM_NEWLINK
 * on the link's ifindex, without NLM_F_CREATE (so it changes only a link that exists). up/down
 * is IFF_UP in ifi_flags with IFF_UP in ifi_change; an alias goes without its NUL (an empty one
 * clears it); nomaster is IFLA_MASTER 0. `master` is the master's ifindex.
 */
export function linkSetRequest(seq: number, ifindex: number, change: LinkChange, master?: number): Buffer {
  const ifi = Buffer.alloc(M.IFINFOMSG_LEN);
  ifi.writeInt32LE(ifindex, 4);
  const attrs: Buffer[] = [];
  if ('up' in change) {
    ifi.writeUInt32LE(change.up ? M.IFF_UP : 0, 8);
    ifi.writeUInt32LE(M.IFF_UP, 12);
  } else if ('mtu' in change) attrs.push(M.attrU32(M.IFLA_MTU, change.mtu));
  else if ('mac' in change) attrs.push(M.attr(M.IFLA_ADDRESS, macBytes(change.mac)));
  else if ('txqlen' in change) attrs.push(M.attrU32(M.IFLA_TXQLEN, change.txqlen));
  else if ('master' in change) {
    if (change.master !== null && master === undefined) throw new AppError('INTERNAL', 'a master without its ifindex');
    attrs.push(M.attrU32(M.IFLA_MASTER, change.master === null ? 0 : (master as number)));
  }
  else attrs.push(M.attr(M.IFLA_IFALIAS, Buffer.from(change.alias ?? '', 'utf8')));
  return M.message(M.RTM_NEWLINK, M.NLM_F_REQUEST | M.NLM_F_ACK, seq, ifi, attrs);
}

/** The link kinds created over rtnetlink; the others stay batch lines. */
export type NetlinkLinkSpec = Extract<LinkAddSpec, { linkKind: 'veth' | 'bridge' }>;

export function isNetlinkLinkSpec(spec: LinkAddSpec): spec is NetlinkLinkSpec {
  return spec.linkKind === 'veth' || spec.linkKind === 'bridge';
}

/**
 * `ip link add name N [mtu M] [address A] [up] type veth peer name P [mtu M] [netns NS]` and
 * `ip link add name N [mtu M] [address A] [up] type bridge [stp_state S] [vlan_filtering V]`:
 * RTM_NEWLINK, create + exclusive, in the socket's own namespace (never IFLA_TARGET_NETNSID,
 * DESIGN.md 7). ip's order: the words' attributes, then IFLA_IFNAME, then IFLA_LINKINFO (the kind
 * without its NUL; IFLA_INFO_DATA only when options follow the kind). The veth's peer is an
 * ifinfomsg with its own attributes, its namespace given as IFLA_NET_NS_FD: `peerNsFd`, an open
 * namespace file of this process (absent: the peer stays in the same namespace).
 */
export function linkAddRequest(seq: number, spec: NetlinkLinkSpec, peerNsFd?: number): Buffer {
  const mtu = spec.mtu === undefined ? [] : [M.attrU32(M.IFLA_MTU, spec.mtu)];
  const attrs = [...mtu, ...(spec.mac === undefined ? [] : [M.attr(M.IFLA_ADDRESS, macBytes(spec.mac))]), attrString(M.IFLA_IFNAME, spec.name)];
  let data: Buffer[] = [];
  if (spec.linkKind === 'veth') {
    const peer = [Buffer.alloc(M.IFINFOMSG_LEN), ...mtu, ...(peerNsFd === undefined ? [] : [M.attrU32(M.IFLA_NET_NS_FD, peerNsFd)]), attrString(M.IFLA_IFNAME, spec.peer.name)];
    data = [M.attr(M.VETH_INFO_PEER, Buffer.concat(peer))];
  } else {
    if (spec.stp !== undefined) data.push(M.attrU32(M.IFLA_BR_STP_STATE, spec.stp ? 1 : 0));
    if (spec.vlanFiltering !== undefined) data.push(M.attr(M.IFLA_BR_VLAN_FILTERING, Buffer.from([spec.vlanFiltering ? 1 : 0])));
  }
  const info = [M.attr(M.IFLA_INFO_KIND, Buffer.from(spec.linkKind, 'utf8')), ...(data.length === 0 ? [] : [M.attr(M.IFLA_INFO_DATA, Buffer.concat(data))])];
  attrs.push(M.attr(M.IFLA_LINKINFO, Buffer.concat(info)));
  const ifi = Buffer.alloc(M.IFINFOMSG_LEN);
  if (spec.up) {
    // As `ip link add ... up`: ifi_flags and ifi_change both IFF_UP (applied once the link exists).
    ifi.writeUInt32LE(M.IFF_UP, 8);
    ifi.writeUInt32LE(M.IFF_UP, 12);
  }
  return M.message(M.RTM_NEWLINK, M.NLM_F_REQUEST | M.NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, ifi, attrs);
}

/** The ops sent as one rtnetlink request (with a name lookup or two before it). */
export type NetlinkChangeOp =
  | Extract<Op, { kind: 'addr.add' | 'addr.delete' | 'route.add' | 'route.delete' | 'link.set' }>
  | (Extract<Op, { kind: 'link.add' }> & { readonly spec: NetlinkLinkSpec });

/** Whether the executor sends `op` over rtnetlink (when the addon has it). */
export function isNetlinkChange(op: Op): op is NetlinkChangeOp {
  return (
    op.kind === 'addr.add' || op.kind === 'addr.delete' || op.kind === 'route.add' || op.kind === 'route.delete' || op.kind === 'link.set' ||
    (op.kind === 'link.add' && isNetlinkLinkSpec(op.spec))
  );
}

/** What a request needs resolved first: links by name (RTM_GETLINK), namespaces as open files. */
export interface Resolved {
  ifindex(name: string): number;
  nsFd(ns: string): number;
}

/** Other namespaces an op's request names (a veth's peer namespace), to be opened for IFLA_NET_NS_FD. */
export function namespacesOf(op: NetlinkChangeOp): string[] {
  return op.kind === 'link.add' && op.spec.linkKind === 'veth' && op.spec.peer.ns !== op.ns ? [op.spec.peer.ns] : [];
}

/** Link names an op's request needs ifindexes for, in the order ip looks them up. */
export function linkNamesOf(op: NetlinkChangeOp): string[] {
  switch (op.kind) {
    case 'addr.add':
      return [op.spec.link];
    case 'addr.delete':
      return [op.link];
    case 'route.add':
      return [...(op.spec.dev === undefined ? [] : [op.spec.dev]), ...(op.spec.nexthops ?? []).flatMap((n) => (n.dev === undefined ? [] : [n.dev]))];
    case 'route.delete':
      return op.key.dev === undefined || op.key.dev === null ? [] : [op.key.dev];
    case 'link.set':
      return [op.name, ...('master' in op.change && op.change.master !== null ? [op.change.master] : [])];
    case 'link.add':
      return [];
  }
}

/** The request that carries out `op`, with what linkNamesOf() and namespacesOf() list resolved. */
export function changeRequest(op: NetlinkChangeOp, seq: number, resolved: Resolved): Buffer {
  const ifindex = (name: string): number => resolved.ifindex(name);
  switch (op.kind) {
    case 'link.add':
      return linkAddRequest(seq, op.spec, op.spec.linkKind === 'veth' && op.spec.peer.ns !== op.ns ? resolved.nsFd(op.spec.peer.ns) : undefined);
    case 'addr.add': {
      const { link, ...a } = op.spec;
      return addrRequest(seq, 'add', a, ifindex(link));
    }
    case 'addr.delete':
      return addrRequest(seq, 'delete', { family: op.local.includes(':') ? 6 : 4, local: op.local, prefixLength: op.prefixLength, ...(op.peer === undefined ? {} : { peer: op.peer }) }, ifindex(op.link));
    case 'route.add':
      return routeAddRequest(seq, op.spec, op.replace === true, ifindex);
    case 'route.delete':
      return routeDeleteRequest(seq, op.key, ifindex);
    case 'link.set':
      return linkSetRequest(seq, ifindex(op.name), op.change, 'master' in op.change && op.change.master !== null ? ifindex(op.change.master) : undefined);
  }
}
