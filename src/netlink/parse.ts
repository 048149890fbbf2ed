/**
 * rtnetlink datagrams -> messages -> the objects the ip-based parsers of src/executor/argv.ts
 * produce (KernelLink, KernelAddress, KernelRoute, KernelRule), with the same semantics: each
 * function here follows what iproute2 6.1 prints for a message (ip/ipaddress.c print_linkinfo and
 * print_addrinfo, ip/iproute.c print_route, ip/iprule.c print_rule) and what argv.ts then makes
 * of that JSON. Where the two would differ from the kernel's truth, the comment says which wins.
 *
 * Names that stand for ifindexes (a route's dev, an address's link, a master, a veth peer) are
 * resolved with an index -> name map of the SAME namespace, from its link dump or kept by its
 * watcher: an ifindex means nothing in another namespace.
 */
import { constants } from 'node:os';
import type { KernelAddress, KernelLink, KernelRoute, KernelRule, PortRange } from '../executor/ops.js';
import * as M from './messages.js';
import { defaultNames, type IpNames } from './names.js';

/** One netlink message: its header fields and its payload (after the 16-byte header). */
export interface NlMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  readonly payload: Buffer;
}

/** ifindex -> name within one namespace. */
export type IfNames = ReadonlyMap<number, string>;

/** A neighbour (ARP / NDP entry). */
export interface KernelNeighbor {
  readonly ifindex: number;
  readonly link: string;
  readonly family: 4 | 6;
  readonly address: string;
  readonly mac: string | null;
  /** NUD_* names (`PERMANENT`, `REACHABLE`, `STALE`, ...); `NONE` when no bit is set. */
  readonly state: readonly string[];
  /** NTF_* names other than router: use, self, master, proxy, extern_learn, offload, sticky. */
  readonly flags: readonly string[];
  readonly router: boolean;
}

/** A change the kernel announced: `new` is creation or change, `del` removal. */
export type NetlinkEvent =
  | { readonly kind: 'link'; readonly action: 'new' | 'del'; readonly link: KernelLink }
  | { readonly kind: 'address'; readonly action: 'new' | 'del'; readonly address: KernelAddress }
  | { readonly kind: 'route'; readonly action: 'new' | 'del'; readonly route: KernelRoute }
  | { readonly kind: 'rule'; readonly action: 'new' | 'del'; readonly rule: KernelRule }
  | { readonly kind: 'neighbor'; readonly action: 'new' | 'del'; readonly neighbor: KernelNeighbor }
  | { readonly kind: 'nsid'; readonly action: 'new' | 'del'; readonly nsid: number };

export class NetlinkError extends Error {
  /** The errno name (`EINVAL`, ...), as the native addon's errors carry it. */
  readonly code: string;
  readonly errno: number;
  /** The kernel's own words (the extended ACK's NLMSGERR_ATTR_MSG), when it gave any. */
  readonly extack: string | undefined;
  constructor(message: string, code: string, errno: number, extack?: string) {
    super(message);
    this.name = 'NetlinkError';
    this.code = code;
    this.errno = errno;
    this.extack = extack === '' ? undefined : extack;
  }
}

/** A link that a change names is not in the namespace (the name lookup before the change: ENODEV). */
export class MissingLinkError extends NetlinkError {
  constructor(readonly link: string) {
    super(`netlink: no link "${link}"`, 'ENODEV', 19);
    this.name = 'MissingLinkError';
  }
}

/** Another namespace that a change names (a veth's peer namespace) could not be opened. */
export class MissingNamespaceError extends Error {
  readonly code: string;
  constructor(readonly ns: string, cause: unknown) {
    super(`cannot open namespace ${ns}`, { cause });
    this.name = 'MissingNamespaceError';
    this.code = (cause as { code?: string } | null)?.code ?? 'ENOENT';
  }
}

// ---- framing ----

/** The messages of one datagram (several per datagram in dumps). */
export function splitDatagram(buf: Buffer): NlMessage[] {
  return messagesIn(buf, 0, buf.length);
}

/** The messages of the datagram at buf[from, to) (where the addon puts several back to back: NlBatch). */
export function messagesIn(buf: Buffer, from: number, to: number): NlMessage[] {
  const out: NlMessage[] = [];
  let off = from;
  while (off + M.NLMSG_HDRLEN <= to) {
    const len = buf.readUInt32LE(off);
    if (len < M.NLMSG_HDRLEN || off + len > to) break;
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + M.NLMSG_HDRLEN, off + len),
    });
    off += (len + 3) & ~3;
  }
  return out;
}

/**
 * The attributes of a message, by type (flag bits such as NLA_F_NESTED masked off). Offsets only:
 * a Buffer for an attribute is made when it is asked for, since a link message has ~50 attributes
 * and the parsers read a dozen (allocating all of them made a link dump's parse 3x slower).
 */
/** Attribute types kept in the array (IFLA_* reach 67 in Linux 6.18). */
const SMALL = 80;

export class Attrs {
  /**
   * [start, end] of each type below SMALL (undefined: absent); others in a Map. Holey: made
   * filled with zeros it cost 2.5x as much (~0.4 us), and a veth unit's messages make ~100.
   */
  private readonly small: Array<number | undefined> = new Array<number | undefined>(2 * SMALL);
  private large: Map<number, readonly [number, number]> | undefined;

  constructor(
    private readonly buf: Buffer,
    start = 0,
  ) {
    let off = start;
    const n = buf.length;
    while (off + 4 <= n) {
      const len = (buf[off] as number) | ((buf[off + 1] as number) << 8);
      const type = ((buf[off + 2] as number) | ((buf[off + 3] as number) << 8)) & M.NLA_TYPE_MASK;
      if (len < 4 || off + len > n) break;
      // Like iproute2's parse_rtattr, a later attribute of a type replaces an earlier one.
      if (type < SMALL) {
        this.small[2 * type] = off + 4;
        this.small[2 * type + 1] = off + len;
      } else {
        (this.large ??= new Map()).set(type, [off + 4, off + len]);
      }
      off += (len + 3) & ~3;
    }
  }

  has(type: number): boolean {
    return type < SMALL ? this.small[2 * type] !== undefined : (this.large?.has(type) ?? false);
  }

  get(type: number): Buffer | undefined {
    if (type < SMALL) {
      const s = this.small[2 * type];
      return s === undefined ? undefined : this.buf.subarray(s, this.small[2 * type + 1]);
    }
    const r = this.large?.get(type);
    return r && this.buf.subarray(r[0], r[1]);
  }
}

/** The attributes from `start` to the end of `buf`. */
export function parseAttrs(buf: Buffer, start = 0): Attrs {
  return new Attrs(buf, start);
}

const NO_ATTRS = new Attrs(Buffer.alloc(0));

const errnoNames = new Map<number, string>();
for (const [k, v] of Object.entries(constants.errno)) if (!errnoNames.has(v)) errnoNames.set(v, k);

/** The errno name of a number (`EEXIST`), `EUNKNOWN` when unknown. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? 'EUNKNOWN';
}

/** The error of an NLMSG_ERROR message (null for an ACK), with the extended-ack text when given. */
export function errorOf(msg: NlMessage): NetlinkError | null {
  const p = msg.payload;
  if (p.length < 4) return new NetlinkError('short netlink error message', 'EPROTO', 71);
  const err = -p.readInt32LE(0);
  if (err === 0) return null;
  let text: string | undefined;
  if (msg.flags & M.NLM_F_ACK_TLVS && p.length >= 4 + M.NLMSG_HDRLEN) {
    // The request follows the error: only its header when capped, else all of it.
    const reqLen = msg.flags & M.NLM_F_CAPPED ? M.NLMSG_HDRLEN : p.readUInt32LE(4);
    const tlvs = parseAttrs(p, 4 + ((reqLen + 3) & ~3));
    const m = tlvs.get(M.NLMSGERR_ATTR_MSG);
    if (m) text = cString(m);
  }
  return new NetlinkError(`netlink: ${text ?? errnoName(err)}`, errnoName(err), err, text);
}

/** The messages of a dump (NLMSG_DONE and NOOP dropped); throws the dump's error, if any. */
export function dumpMessages(datagrams: readonly Buffer[]): NlMessage[] {
  const out: NlMessage[] = [];
  for (const d of datagrams) {
    for (const m of splitDatagram(d)) {
      if (m.type === M.NLMSG_DONE) {
        // NLMSG_DONE carries the dump's final status (0, or -errno when it failed half-way).
        // With NLM_F_ACK_TLVS the extended ack (the kernel's text) follows it.
        const status = m.payload.length >= 4 ? -m.payload.readInt32LE(0) : 0;
        if (status > 0) {
          const text = m.flags & M.NLM_F_ACK_TLVS ? parseAttrs(m.payload, 4).get(M.NLMSGERR_ATTR_MSG) : undefined;
          throw new NetlinkError(`netlink dump failed: ${text ? cString(text) : errnoName(status)}`, errnoName(status), status, text && cString(text));
        }
        return out;
      }
      if (m.type === M.NLMSG_ERROR) {
        const e = errorOf(m);
        if (e) throw e;
        continue;
      }
      if (m.type === M.NLMSG_NOOP) continue;
      out.push(m);
    }
  }
  return out;
}

// ---- value formatting, as iproute2 prints values ----

/** A NUL-terminated string attribute as text. */
export function cString(b: Buffer): string {
  const z = b.indexOf(0);
  return b.toString('utf8', 0, z < 0 ? b.length : z);
}

const u8 = (b: Buffer | undefined): number | null => (b && b.length >= 1 ? b.readUInt8(0) : null);
const u32 = (b: Buffer | undefined): number | null => (b && b.length >= 4 ? b.readUInt32LE(0) : null);
const s32 = (b: Buffer | undefined): number | null => (b && b.length >= 4 ? b.readInt32LE(0) : null);

/** inet_ntop(AF_INET6) as glibc does it: longest (first) zero run of 2+ groups, `::ffff:a.b.c.d`. */
export function formatIpv6(b: Buffer, off = 0): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push(b.readUInt16BE(off + 2 * i));
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (bestLen < 2) best = -1;
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (best >= 0 && i >= best && i < best + bestLen) {
      if (i === best) s += ':';
      continue;
    }
    if (i !== 0) s += ':';
    if (i === 6 && best === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff))) {
      s += `${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
      return s;
    }
    s += (w[i] as number).toString(16);
  }
  if (best >= 0 && best + bestLen === 8) s += ':';
  return s;
}

/** An address attribute as text by its length (4: IPv4, 16: IPv6), as rt_addr_n2a prints it. */
export function formatAddr(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length === 16) return formatIpv6(b);
  return b.toString('hex');
}

/** ll_addr_n2a: `aa:bb:...`, or an IP address for IP tunnels (ARPHRD_TUNNEL/SIT/IPGRE, TUNNEL6/IP6GRE). */
export function formatLladdr(b: Buffer, ifType: number): string {
  if (b.length === 4 && (ifType === 768 || ifType === 776 || ifType === 778)) return formatAddr(b);
  if (b.length === 16 && (ifType === 769 || ifType === 823)) return formatAddr(b);
  const parts: string[] = [];
  for (let i = 0; i < Math.max(b.length, 1); i++) parts.push((b[i] ?? 0).toString(16).padStart(2, '0'));
  return parts.join(':');
}

/** ll_index_to_name: the name in this namespace, or `ifN` when it has none. */
const ifName = (names: IfNames, index: number): string => names.get(index) ?? `if${index}`;

const familyOf = (af: number): 4 | 6 | null => (af === M.AF_INET ? 4 : af === M.AF_INET6 ? 6 : null);

// ---- links ----

/** ifindex and name of an RTM_NEWLINK/DELLINK message (for the index -> name map), or null. */
export function linkNameOf(msg: NlMessage): { index: number; name: string } | null {
  if (msg.payload.length < M.IFINFOMSG_LEN) return null;
  const a = parseAttrs(msg.payload, M.IFINFOMSG_LEN);
  const name = a.get(M.IFLA_IFNAME);
  return name ? { index: msg.payload.readInt32LE(4), name: cString(name) } : null;
}

/** index -> name of every link in a link dump. */
export function linkNames(msgs: readonly NlMessage[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const m of msgs) {
    if (m.type !== M.RTM_NEWLINK) continue;
    const n = linkNameOf(m);
    if (n) out.set(n.index, n.name);
  }
  return out;
}

/**
 * A link from RTM_NEWLINK/DELLINK (ifi_family AF_UNSPEC; AF_BRIDGE port messages are not links),
 * as parseLinks makes it of `ip -j -d link show`.
 */
export function linkOf(msg: NlMessage, names: IfNames): KernelLink | null {
  const p = msg.payload;
  if ((msg.type !== M.RTM_NEWLINK && msg.type !== M.RTM_DELLINK) || p.length < M.IFINFOMSG_LEN) return null;
  if (p.readUInt8(0) !== M.AF_UNSPEC) return null;
  const ifType = p.readUInt16LE(2);
  const index = p.readInt32LE(4);
  const ifFlags = p.readUInt32LE(8);
  const a = parseAttrs(p, M.IFINFOMSG_LEN);
  const nameAttr = a.get(M.IFLA_IFNAME);
  if (!nameAttr) return null;
  const li = a.get(M.IFLA_LINKINFO);
  const info = li ? parseAttrs(li) : NO_ATTRS;
  const di = info.get(M.IFLA_INFO_DATA);
  const data = di ? parseAttrs(di) : NO_ATTRS;
  const kindAttr = info.get(M.IFLA_INFO_KIND);
  let kind = kindAttr ? cString(kindAttr) : ifType === M.ARPHRD_LOOPBACK ? 'loopback' : 'device';
  if (kind === 'tun') kind = u8(data.get(M.IFLA_TUN_TYPE)) === M.IFF_TAP ? 'tap' : 'tun';

  // IFLA_LINK: 0 means none (`"link": null`); with IFLA_LINK_NETNSID the other end is in another
  // namespace and only its index is meaningful. ip prints `ifN` for an index it cannot name (and
  // parseLinks then gives index -1); here the index is kept, which is the kernel's truth.
  const iflink = s32(a.get(M.IFLA_LINK));
  const linkNetnsid = s32(a.get(M.IFLA_LINK_NETNSID));
  const lower =
    iflink === null || iflink === 0
      ? null
      : linkNetnsid !== null
        ? { index: iflink, name: null, netnsid: linkNetnsid }
        : { index: iflink, name: ifName(names, iflink), netnsid: null };
  const master = u32(a.get(M.IFLA_MASTER));
  const operstate = u8(a.get(M.IFLA_OPERSTATE));
  const minMtu = u32(a.get(M.IFLA_MIN_MTU));
  const maxMtu = u32(a.get(M.IFLA_MAX_MTU));
  // ip prints qlen only when it is not 0.
  const txqlen = u32(a.get(M.IFLA_TXQLEN));
  const address = a.get(M.IFLA_ADDRESS);
  const alias = a.get(M.IFLA_IFALIAS);
  const base: KernelLink = {
    index,
    name: cString(nameAttr),
    kind,
    up: (ifFlags & M.IFF_UP) !== 0,
    operstate: operstate === null ? 'UNKNOWN' : (M.OPER_STATES[operstate] ?? 'UNKNOWN'),
    mtu: u32(a.get(M.IFLA_MTU)) ?? 0,
    minMtu: minMtu === null || (minMtu === 0 && maxMtu === 0) ? null : minMtu,
    maxMtu: maxMtu === null || maxMtu === 0 ? null : maxMtu,
    mac: address ? formatLladdr(address, ifType) : null,
    txqlen: txqlen === null || txqlen === 0 ? null : txqlen,
    alias: alias ? cString(alias) : null,
    master: master === null ? null : ifName(names, master),
    lower,
  };
  switch (kind) {
    case 'bridge':
      return { ...base, bridge: { stp: u32(data.get(M.IFLA_BR_STP_STATE)) === 1, vlanFiltering: u8(data.get(M.IFLA_BR_VLAN_FILTERING)) === 1 } };
    case 'macvlan': {
      const mode = u32(data.get(M.IFLA_MACVLAN_MODE));
      return { ...base, macvlan: { mode: mode === null ? 'vepa' : (M.MACVLAN_MODES[mode] ?? 'unknown') } };
    }
    case 'vxlan':
      return { ...base, vxlan: vxlanOf(data, names) };
    case 'tun':
    case 'tap': {
      const on = (t: number): boolean => (u8(data.get(t)) ?? 0) !== 0;
      return { ...base, tun: { persist: on(M.IFLA_TUN_PERSIST), multiQueue: on(M.IFLA_TUN_MULTI_QUEUE), vnetHdr: on(M.IFLA_TUN_VNET_HDR), pi: on(M.IFLA_TUN_PI) } };
    }
    default:
      return base;
  }
}

/**
 * ip/iplink_vxlan.c: IFLA_VXLAN_GROUP(6) is the group when multicast and the remote otherwise;
 * an all-zero address is not printed; the device is named with if_indextoname in the vxlan's
 * namespace (null when it has no name there).
 */
function vxlanOf(data: Attrs, names: IfNames): NonNullable<KernelLink['vxlan']> {
  let group: string | null = null;
  let remote: string | null = null;
  let local: string | null = null;
  const g4 = data.get(M.IFLA_VXLAN_GROUP);
  const g6 = data.get(M.IFLA_VXLAN_GROUP6);
  if (g4 && g4.length === 4) {
    if (g4.readUInt32BE(0) !== 0) {
      if ((g4[0] as number) >= 224 && (g4[0] as number) <= 239) group = formatAddr(g4);
      else remote = formatAddr(g4);
    }
  } else if (g6 && g6.length === 16 && !g6.every((x) => x === 0)) {
    if (g6[0] === 0xff) group = formatAddr(g6);
    else remote = formatAddr(g6);
  }
  const l4 = data.get(M.IFLA_VXLAN_LOCAL);
  const l6 = data.get(M.IFLA_VXLAN_LOCAL6);
  if (l4 && l4.length === 4) {
    if (l4.readUInt32BE(0) !== 0) local = formatAddr(l4);
  } else if (l6 && l6.length === 16 && !l6.every((x) => x === 0)) {
    local = formatAddr(l6);
  }
  const link = u32(data.get(M.IFLA_VXLAN_LINK));
  const port = data.get(M.IFLA_VXLAN_PORT);
  return {
    vni: u32(data.get(M.IFLA_VXLAN_ID)) ?? 0,
    local,
    remote,
    group,
    dstport: port && port.length >= 2 ? port.readUInt16BE(0) : 0,
    parent: link ? (names.get(link) ?? null) : null,
  };
}

// ---- addresses ----

/**
 * print_ifa_flags of iproute2 6.1, in its order: each flag once; SECONDARY is `temporary` for
 * IPv6; PERMANENT is reported by its absence (`dynamic`). Unknown bits are left out (ip prints
 * them as a hex `flags` string, which parseAddresses ignores).
 */
const IFA_FLAG_NAMES: ReadonlyArray<readonly [number, string]> = [
  [M.IFA_F_SECONDARY, 'secondary'], [M.IFA_F_NODAD, 'nodad'], [M.IFA_F_OPTIMISTIC, 'optimistic'], [M.IFA_F_DADFAILED, 'dadfailed'],
  [M.IFA_F_HOMEADDRESS, 'home'], [M.IFA_F_DEPRECATED, 'deprecated'], [M.IFA_F_TENTATIVE, 'tentative'], [M.IFA_F_PERMANENT, 'permanent'],
  [M.IFA_F_MANAGETEMPADDR, 'mngtmpaddr'], [M.IFA_F_NOPREFIXROUTE, 'noprefixroute'], [M.IFA_F_MCAUTOJOIN, 'autojoin'],
  [M.IFA_F_STABLE_PRIVACY, 'stable-privacy'],
];

function addressFlags(flags: number, family: 4 | 6): string[] {
  const out: string[] = [];
  for (const [mask, name] of IFA_FLAG_NAMES) {
    if (mask === M.IFA_F_PERMANENT) {
      if (!(flags & mask)) out.push('dynamic');
    } else if (flags & mask) {
      out.push(mask === M.IFA_F_SECONDARY && family === 6 ? 'temporary' : name);
    }
  }
  return out.sort();
}

/** An address from RTM_NEWADDR/DELADDR, as parseAddresses makes it of `ip -j address show`. */
export function addressOf(msg: NlMessage, names: IfNames, n: IpNames = defaultNames()): KernelAddress | null {
  const p = msg.payload;
  if ((msg.type !== M.RTM_NEWADDR && msg.type !== M.RTM_DELADDR) || p.length < M.IFADDRMSG_LEN) return null;
  const family = familyOf(p.readUInt8(0));
  if (family === null) return null;
  const prefixLength = p.readUInt8(1);
  const scope = p.readUInt8(3);
  const ifindex = p.readUInt32LE(4);
  const a = parseAttrs(p, M.IFADDRMSG_LEN);
  // print_addrinfo: IFA_LOCAL defaults to IFA_ADDRESS and the other way round; a peer is an
  // IFA_ADDRESS different from IFA_LOCAL.
  const localAttr = a.get(M.IFA_LOCAL) ?? a.get(M.IFA_ADDRESS);
  const addrAttr = a.get(M.IFA_ADDRESS) ?? localAttr;
  if (!localAttr) return null;
  const local = formatAddr(localAttr);
  const peer = addrAttr && !addrAttr.equals(localAttr) ? formatAddr(addrAttr) : null;
  const flags = u32(a.get(M.IFA_FLAGS)) ?? p.readUInt8(2);
  const ci = a.get(M.IFA_CACHEINFO);
  const life = (v: number | undefined): number | null => (v === undefined || v === M.INFINITY_LIFE_TIME ? null : v);
  const broadcast = a.get(M.IFA_BROADCAST);
  const label = a.get(M.IFA_LABEL);
  return {
    ifindex,
    link: ifName(names, ifindex),
    family,
    local,
    prefixLength,
    peer: peer === local ? null : peer,
    broadcast: broadcast ? formatAddr(broadcast) : null,
    scope: n.scope(scope),
    label: label ? cString(label) : null,
    flags: addressFlags(flags, family),
    validLifetime: ci && ci.length >= 8 ? life(ci.readUInt32LE(4)) : null,
    preferredLifetime: ci && ci.length >= 8 ? life(ci.readUInt32LE(0)) : null,
  };
}

// ---- routes ----

/** print_rt_flags of iproute2 6.1, in its order. */
const ROUTE_FLAG_NAMES: ReadonlyArray<readonly [number, string]> = [
  [M.RTNH_F_DEAD, 'dead'], [M.RTNH_F_ONLINK, 'onlink'], [M.RTNH_F_PERVASIVE, 'pervasive'], [M.RTNH_F_OFFLOAD, 'offload'], [M.RTNH_F_TRAP, 'trap'],
  [M.RTM_F_NOTIFY, 'notify'], [M.RTNH_F_LINKDOWN, 'linkdown'], [M.RTNH_F_UNRESOLVED, 'unresolved'], [M.RTM_F_OFFLOAD, 'rt_offload'],
  [M.RTM_F_TRAP, 'rt_trap'], [M.RTM_F_OFFLOAD_FAILED, 'rt_offload_failed'],
];
const routeFlags = (flags: number): string[] => ROUTE_FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, n]) => n);

export const rtnType = (t: number): string => M.RTN_NAMES[t] ?? String(t);

export interface RouteFilter {
  /** Keep only this table (`all`: every table). The kernel filters too, with strict checking. */
  readonly table?: number | 'all';
  readonly family?: 4 | 6;
}

/**
 * A route from RTM_NEWROUTE/DELROUTE, as parseRoutes makes it of `ip -j route show table T`;
 * null for what that listing leaves out: other families and cache (RTM_F_CLONED) entries.
 */
export function routeOf(msg: NlMessage, names: IfNames, filter: RouteFilter = {}, n: IpNames = defaultNames()): KernelRoute | null {
  const p = msg.payload;
  if ((msg.type !== M.RTM_NEWROUTE && msg.type !== M.RTM_DELROUTE) || p.length < M.RTMSG_LEN) return null;
  const family = familyOf(p.readUInt8(0));
  if (family === null || (filter.family !== undefined && filter.family !== family)) return null;
  const dstLen = p.readUInt8(1);
  const tos = p.readUInt8(3);
  const rtmTable = p.readUInt8(4);
  const protocol = p.readUInt8(5);
  const scope = p.readUInt8(6);
  const type = p.readUInt8(7);
  const flags = p.readUInt32LE(8);
  if (flags & M.RTM_F_CLONED) return null;
  const a = parseAttrs(p, M.RTMSG_LEN);
  const table = u32(a.get(M.RTA_TABLE)) ?? rtmTable;
  if (filter.table !== undefined && filter.table !== 'all' && filter.table !== table) return null;
  const dstAttr = a.get(M.RTA_DST);
  const dst = dstAttr ? `${formatAddr(dstAttr)}/${dstLen}` : dstLen ? `0/${dstLen}` : family === 4 ? '0.0.0.0/0' : '::/0';
  const gw = a.get(M.RTA_GATEWAY);
  const oif = u32(a.get(M.RTA_OIF));
  const prefsrc = a.get(M.RTA_PREFSRC);
  let mtu: number | null = null;
  const metrics = a.get(M.RTA_METRICS);
  if (metrics) mtu = u32(parseAttrs(metrics).get(M.RTAX_MTU));
  let nexthops: KernelRoute['nexthops'] = null;
  const mp = a.get(M.RTA_MULTIPATH);
  if (mp) {
    const hops: Array<{ via: string | null; dev: string | null; weight: number }> = [];
    let off = 0;
    while (off + M.RTNH_LEN <= mp.length) {
      const len = mp.readUInt16LE(off);
      if (len < M.RTNH_LEN || off + len > mp.length) break;
      const hopsField = mp.readUInt8(off + 3);
      const ifindex = mp.readInt32LE(off + 4);
      const na = parseAttrs(mp.subarray(off, off + len), M.RTNH_LEN);
      const ngw = na.get(M.RTA_GATEWAY);
      hops.push({ via: ngw ? formatAddr(ngw) : null, dev: ifindex ? ifName(names, ifindex) : null, weight: hopsField + 1 });
      off += (len + 3) & ~3;
    }
    nexthops = hops;
  }
  return {
    family,
    table,
    dst,
    metric: u32(a.get(M.RTA_PRIORITY)) ?? 0,
    tos: tos ? n.dsfield(tos) : null,
    type: rtnType(type),
    via: gw ? formatAddr(gw) : null,
    dev: oif === null ? null : ifName(names, oif),
    src: prefsrc ? formatAddr(prefsrc) : null,
    scope: n.scope(scope),
    protocol: n.protocol(protocol),
    mtu,
    nexthops,
    flags: routeFlags(flags),
  };
}

// ---- rules ----

/** A policy rule from RTM_NEWRULE/DELRULE, as parseRules makes it of `ip -j rule show`. */
export function ruleOf(msg: NlMessage, n: IpNames = defaultNames()): KernelRule | null {
  const p = msg.payload;
  if ((msg.type !== M.RTM_NEWRULE && msg.type !== M.RTM_DELRULE) || p.length < M.FIB_RULE_HDR_LEN) return null;
  const family = familyOf(p.readUInt8(0));
  if (family === null) return null;
  const dstLen = p.readUInt8(1);
  const srcLen = p.readUInt8(2);
  const tos = p.readUInt8(3);
  const hdrTable = p.readUInt8(4);
  const action = p.readUInt8(7);
  const flags = p.readUInt32LE(8);
  const a = parseAttrs(p, M.FIB_RULE_HDR_LEN);
  const cidr = (attr: Buffer | undefined, len: number): string | null => (attr ? `${formatAddr(attr)}/${len}` : len ? `0/${len}` : null);
  const range = (b: Buffer | undefined): PortRange | null => (b && b.length >= 4 ? { start: b.readUInt16LE(0), end: b.readUInt16LE(2) } : null);
  const str = (b: Buffer | undefined): string | null => (b ? cString(b) : null);

  // fwmark/fwmask: printed when either attribute is there; the mask only when not all ones.
  // Unlike ip (which prints a mark of 0 as "0", which parseRules reads as no mark), a mark of 0
  // with a mask is kept as 0: the rule matches it and `rule.delete` must name it.
  const fwmarkAttr = a.get(M.FRA_FWMARK);
  const fwmaskAttr = a.get(M.FRA_FWMASK);
  let fwmark: number | null = null;
  let fwmask: number | null = null;
  if (fwmarkAttr || fwmaskAttr) {
    fwmark = u32(fwmarkAttr) ?? 0;
    const mask = u32(fwmaskAttr);
    if (mask !== null && mask !== 0xffffffff) fwmask = mask;
  }
  const table = u32(a.get(M.FRA_TABLE)) ?? hdrTable;
  let suppressPrefixLength: number | null = null;
  let suppressIfgroup: string | null = null;
  if (table) {
    const pl = s32(a.get(M.FRA_SUPPRESS_PREFIXLEN));
    if (pl !== null && pl !== -1) suppressPrefixLength = pl;
    const g = s32(a.get(M.FRA_SUPPRESS_IFGROUP));
    if (g !== null && g !== -1) suppressIfgroup = n.group(g);
  }
  const flow = u32(a.get(M.FRA_FLOW));
  const realms = flow === null ? null : `${flow >>> 16 ? n.realm(flow >>> 16) : '0'}/${n.realm(flow & 0xffff)}`;
  const iif = str(a.get(M.FRA_IIFNAME));
  const oif = str(a.get(M.FRA_OIFNAME));
  const gotoTarget = u32(a.get(M.FRA_GOTO));
  const actionName =
    action === M.FR_ACT_GOTO ? (gotoTarget === null ? 'lookup' : 'goto') : action === M.FR_ACT_NOP ? 'nop' : action === M.FR_ACT_TO_TBL ? 'lookup' : rtnType(action);
  const proto = u8(a.get(M.FRA_PROTOCOL));
  const ipproto = u8(a.get(M.FRA_IP_PROTO));
  const ruleFlags: string[] = [];
  if (action === M.FR_ACT_GOTO && flags & M.FIB_RULE_UNRESOLVED) ruleFlags.push('unresolved');
  if (iif !== null && flags & M.FIB_RULE_IIF_DETACHED) ruleFlags.push('iif_detached');
  if (oif !== null && flags & M.FIB_RULE_OIF_DETACHED) ruleFlags.push('oif_detached');
  return {
    family,
    priority: u32(a.get(M.FRA_PRIORITY)) ?? 0,
    not: (flags & M.FIB_RULE_INVERT) !== 0,
    from: cidr(a.get(M.FRA_SRC), srcLen),
    to: cidr(a.get(M.FRA_DST), dstLen),
    iif,
    oif,
    fwmark,
    fwmask,
    tos: tos ? n.dsfield(tos) : null,
    ipproto: ipproto === null ? null : n.ipproto(ipproto),
    sport: range(a.get(M.FRA_SPORT_RANGE)),
    dport: range(a.get(M.FRA_DPORT_RANGE)),
    uidrange: (() => {
      const u = a.get(M.FRA_UID_RANGE);
      return u && u.length >= 8 ? { start: u.readUInt32LE(0), end: u.readUInt32LE(4) } : null;
    })(),
    l3mdev: (u8(a.get(M.FRA_L3MDEV)) ?? 0) !== 0,
    action: actionName,
    table: table || null,
    goto: action === M.FR_ACT_GOTO ? gotoTarget : null,
    suppressPrefixLength,
    suppressIfgroup,
    realms,
    // ip prints the protocol only when it is neither unspec (0) nor kernel.
    protocol: proto !== null && proto !== 0 && proto !== 2 ? n.protocol(proto) : null,
    flags: ruleFlags,
  };
}

// ---- neighbours ----

/** A neighbour from RTM_NEWNEIGH/DELNEIGH (IPv4 and IPv6 only; bridge fdb entries are not neighbours). */
export function neighborOf(msg: NlMessage, names: IfNames): KernelNeighbor | null {
  const p = msg.payload;
  if ((msg.type !== M.RTM_NEWNEIGH && msg.type !== M.RTM_DELNEIGH) || p.length < M.NDMSG_LEN) return null;
  const family = familyOf(p.readUInt8(0));
  if (family === null) return null;
  const ifindex = p.readInt32LE(4);
  const state = p.readUInt16LE(8);
  const flags = p.readUInt8(10);
  const a = parseAttrs(p, M.NDMSG_LEN);
  const dst = a.get(M.NDA_DST);
  if (!dst) return null;
  const ll = a.get(M.NDA_LLADDR);
  const states = M.NUD_STATES.filter(([bit]) => (state & bit) !== 0).map(([, s]) => s);
  return {
    ifindex,
    link: ifName(names, ifindex),
    family,
    address: formatAddr(dst),
    mac: ll && ll.length > 0 ? formatLladdr(ll, 1) : null,
    state: states.length ? states : ['NONE'],
    flags: M.NTF_FLAGS.filter(([bit]) => (flags & bit) !== 0).map(([, f]) => f),
    router: (flags & M.NTF_ROUTER) !== 0,
  };
}

// ---- events ----

/**
 * The event one message announces, or null for what is not one of netnsd's objects (AF_BRIDGE
 * link messages, cache routes, other families). `names` must hold this namespace's links as of
 * the message (the watcher keeps it current from link events).
 */
export function eventOf(msg: NlMessage, names: IfNames, n: IpNames = defaultNames()): NetlinkEvent | null {
  switch (msg.type) {
    case M.RTM_NEWLINK:
    case M.RTM_DELLINK: {
      const link = linkOf(msg, names);
      return link && { kind: 'link', action: msg.type === M.RTM_NEWLINK ? 'new' : 'del', link };
    }
    case M.RTM_NEWADDR:
    case M.RTM_DELADDR: {
      const address = addressOf(msg, names, n);
      return address && { kind: 'address', action: msg.type === M.RTM_NEWADDR ? 'new' : 'del', address };
    }
    case M.RTM_NEWROUTE:
    case M.RTM_DELROUTE: {
      const route = routeOf(msg, names, {}, n);
      return route && { kind: 'route', action: msg.type === M.RTM_NEWROUTE ? 'new' : 'del', route };
    }
    case M.RTM_NEWRULE:
    case M.RTM_DELRULE: {
      const rule = ruleOf(msg, n);
      return rule && { kind: 'rule', action: msg.type === M.RTM_NEWRULE ? 'new' : 'del', rule };
    }
    case M.RTM_NEWNEIGH:
    case M.RTM_DELNEIGH: {
      const neighbor = neighborOf(msg, names);
      return neighbor && { kind: 'neighbor', action: msg.type === M.RTM_NEWNEIGH ? 'new' : 'del', neighbor };
    }
    case M.RTM_NEWNSID:
    case M.RTM_DELNSID: {
      // rtgenmsg (1 byte, padded to 4), then NETNSA_*.
      const nsid = s32(parseAttrs(msg.payload, 4).get(M.NETNSA_NSID));
      return nsid === null ? null : { kind: 'nsid', action: msg.type === M.RTM_NEWNSID ? 'new' : 'del', nsid };
    }
    default:
      return null;
  }
}
