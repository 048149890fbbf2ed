/**
 * Typed executor operations: the only way domain code asks for privileged work.
 *
 * `ns` names a namespace as netnsd does: a name under /run/netns, or `host` for the namespace the
 * daemon itself runs in. Names are validated (src/names.ts) before an op is built, so argv built
 * from them can never be read as an option or a path.
 */

/** The reserved name of the daemon's own (root) namespace. */
export const HOST = 'host';

export type Op =
  /** `ip netns add NAME` (the addon's netnsAdd in-process; without it, a root batch worker line). */
  | { readonly kind: 'netns.add'; readonly ns: string }
  /** `ip netns del NAME`: unmounts and removes the name; the kernel frees the stack later. */
  | { readonly kind: 'netns.delete'; readonly ns: string }
  /** Give the namespace an nsid in the daemon's namespace when it has none (`ip netns set NAME auto`). */
  | { readonly kind: 'netns.assignNsid'; readonly ns: string }
  /** Read the namespace's nsid, or -1 when it has none. */
  | { readonly kind: 'netns.getNsid'; readonly ns: string }
  /** Bring `lo` up inside the namespace. */
  | { readonly kind: 'netns.loopbackUp'; readonly ns: string }
  /** Names of the links inside the namespace (`host` allowed). */
  | { readonly kind: 'netns.linkNames'; readonly ns: string }
  /** Pids of the processes whose network namespace is this one (from /proc). */
  | { readonly kind: 'netns.pids'; readonly ns: string }
  /** SIGKILL these pids and wait (bounded) until they are gone. */
  | { readonly kind: 'netns.killPids'; readonly ns: string; readonly pids: readonly number[] }
  /** Read sysctls inside the namespace; keys are paths under /proc/sys/net (`ipv4/ip_forward`). */
  | { readonly kind: 'sysctl.read'; readonly ns: string; readonly keys: readonly string[] }
  /** Write sysctls inside the namespace, in order; stops at the first the kernel refuses. */
  | { readonly kind: 'sysctl.write'; readonly ns: string; readonly entries: readonly (readonly [string, string])[] }
  /** Versions of the system tools, or null where one is missing. */
  | { readonly kind: 'probe.tools' }
  /** Try to create a link of this kind inside the (scratch) namespace. */
  | { readonly kind: 'probe.linkKind'; readonly ns: string; readonly linkKind: ProbeLinkKind }
  /** Try a link feature inside the (scratch) namespace. */
  | { readonly kind: 'probe.linkFeature'; readonly ns: string; readonly feature: ProbeLinkFeature }
  /** Try a qdisc on the probe veth inside the (scratch) namespace. */
  | { readonly kind: 'probe.qdisc'; readonly ns: string; readonly qdisc: ProbeQdisc }
  /** Try a tc classifier on the probe veth inside the (scratch) namespace. */
  | { readonly kind: 'probe.classifier'; readonly ns: string; readonly classifier: ProbeClassifier }
  /** Try to add an nftables table inside the (scratch) namespace. */
  | { readonly kind: 'probe.nftables'; readonly ns: string }
  /** Every link of the namespace (`host` allowed), or only `name` (LINK_NOT_FOUND when missing), with details. */
  | { readonly kind: 'link.list'; readonly ns: string; readonly name?: string }
  /** The nsids the namespace has for the named namespaces (what its links' `link-netnsid` refer to). */
  | { readonly kind: 'link.nsids'; readonly ns: string }
  /** The 64-bit counters of one link. */
  | { readonly kind: 'link.stats'; readonly ns: string; readonly name: string }
  /** Create a link inside the namespace (a veth's peer may go to another namespace at once). */
  | { readonly kind: 'link.add'; readonly ns: string; readonly spec: LinkAddSpec }
  /** Change one attribute of a link (one op per attribute, so a failure names it). */
  | { readonly kind: 'link.set'; readonly ns: string; readonly name: string; readonly change: LinkChange }
  /** Move a link to another namespace (`host` allowed), renaming it there when `newName` is given. */
  | { readonly kind: 'link.move'; readonly ns: string; readonly name: string; readonly to: string; readonly newName?: string }
  /** Delete a link (both ends of a veth go). */
  | { readonly kind: 'link.delete'; readonly ns: string; readonly name: string }
  /** Every address of the namespace (`host` allowed), or only those of link `link` (LINK_NOT_FOUND when missing). */
  | {
      readonly kind: 'addr.list';
      readonly ns: string;
      readonly link?: string;
      /**
       * Read the kernel now, not a copy kept from its announcements: the read-back of an address
       * just added that was not there yet (IPv6 addresses are announced late, from a work queue).
       */
      readonly fresh?: boolean;
    }
  /** Add an address to a link. */
  | { readonly kind: 'addr.add'; readonly ns: string; readonly spec: AddrAddSpec }
  /** Delete an address, named by the kernel's key: link, local/prefix and (IPv4) the peer. */
  | { readonly kind: 'addr.delete'; readonly ns: string; readonly link: string; readonly local: string; readonly prefixLength: number; readonly peer?: string }
  /** The routes of one family in one table (a number) or in every table (`all`). */
  | { readonly kind: 'route.list'; readonly ns: string; readonly family: 4 | 6; readonly table: number | 'all' }
  /** Add a route (ROUTE_EXISTS when its key is taken); `replace` replaces the route of that key atomically (or adds it). */
  | { readonly kind: 'route.add'; readonly ns: string; readonly spec: RouteSpec; readonly replace?: boolean }
  /** Delete the route of this key. */
  | { readonly kind: 'route.delete'; readonly ns: string; readonly key: RouteKey }
  /** The policy rules of one family, in the kernel's order (priority, then age). */
  | { readonly kind: 'rule.list'; readonly ns: string; readonly family: 4 | 6 }
  /** Add a policy rule (RULE_EXISTS when one with the same priority, selector and action exists). */
  | { readonly kind: 'rule.add'; readonly ns: string; readonly spec: RuleSpec }
  /** Delete the rule that has exactly these attributes. */
  | { readonly kind: 'rule.delete'; readonly ns: string; readonly rule: KernelRule }
  /** Every neighbour (ARP/NDP) entry of the namespace in any state, or only those of link `link` (LINK_NOT_FOUND when missing). Proxy entries are not listed. */
  | { readonly kind: 'neigh.list'; readonly ns: string; readonly link?: string }
  /** Add a permanent neighbour entry (NEIGHBOR_EXISTS when the link has any entry for the address); `replace` replaces it atomically (or adds it). */
  | { readonly kind: 'neigh.add'; readonly ns: string; readonly spec: NeighAddSpec; readonly replace?: boolean }
  /** Delete the neighbour entry of this key (link and address), whatever its state. */
  | { readonly kind: 'neigh.delete'; readonly ns: string; readonly link: string; readonly address: string }
  /** The qdiscs of one link (root, ingress, the rest), with counters (LINK_NOT_FOUND when missing). */
  | { readonly kind: 'qdisc.show'; readonly ns: string; readonly dev: string }
  /** The classes of one link's qdiscs, with counters. */
  | { readonly kind: 'qdisc.classes'; readonly ns: string; readonly dev: string }
  /** The filters of one link under `parent` (`ingress` or a handle such as `1:`). */
  | { readonly kind: 'qdisc.filters'; readonly ns: string; readonly dev: string; readonly parent: string }
  /** Set the root qdisc (tc replace: atomic; htb roots get handle 1:, see argv.ts). */
  | { readonly kind: 'qdisc.replaceRoot'; readonly ns: string; readonly dev: string; readonly spec: RootQdiscSpec }
  /** Remove the root qdisc: the kernel attaches its default again. */
  | { readonly kind: 'qdisc.deleteRoot'; readonly ns: string; readonly dev: string }
  /** Add one htb class under the root htb (1:). */
  | { readonly kind: 'qdisc.addClass'; readonly ns: string; readonly dev: string; readonly cls: HtbClassSpec }
  /** Add one u32 filter on the root htb (1:) sending matching packets to a class; `prio` orders filters. */
  | { readonly kind: 'qdisc.addFilter'; readonly ns: string; readonly dev: string; readonly prio: number; readonly filter: U32FilterSpec }
  /** Add the ingress qdisc (handle ffff:). */
  | { readonly kind: 'qdisc.addIngress'; readonly ns: string; readonly dev: string }
  /** Remove the ingress qdisc and its filters. */
  | { readonly kind: 'qdisc.deleteIngress'; readonly ns: string; readonly dev: string }
  /** On the ingress qdisc: a u32 match-all filter redirecting every packet to the egress of `to` (an ifb). */
  | { readonly kind: 'qdisc.addRedirect'; readonly ns: string; readonly dev: string; readonly to: string }
  /** The namespace's whole nftables ruleset, every table of every family (`nft -j list ruleset`). */
  | { readonly kind: 'nft.list'; readonly ns: string }
  /**
   * One nftables transaction (`nft -j -f -`, the document on stdin): every command of `commands`
   * takes effect, or none does. `check: true` only asks the kernel (`nft -c`) and changes nothing.
   */
  | { readonly kind: 'nft.apply'; readonly ns: string; readonly commands: readonly NftCommand[]; readonly check?: boolean }
  /** The kernel's route lookup (`ip route get`): for a packet to `dst` (from `from`, arriving on `iif`). A refusal is an answer, not an error. */
  | { readonly kind: 'route.get'; readonly ns: string; readonly family: 4 | 6; readonly dst: string; readonly from?: string; readonly iif?: string }
  /** `ping` from inside the namespace; every number was checked against the caps by the service. */
  | { readonly kind: 'diag.ping'; readonly ns: string; readonly spec: PingSpec }
  /** A TCP connect from inside the namespace, by a short-lived node process (tcp-probe source in argv.ts). */
  | { readonly kind: 'diag.tcpConnect'; readonly ns: string; readonly address: string; readonly port: number; readonly timeoutMs: number }
  /** TCP and UDP sockets of the namespace, listening and connected, with their processes (`ss`). */
  | { readonly kind: 'diag.sockets'; readonly ns: string }
  /** The namespace's connection tracking table (`conntrack -L`). */
  | { readonly kind: 'diag.conntrack'; readonly ns: string }
  /** Run a program (argv, never a shell) inside the namespace, time- and output-bounded. */
  | { readonly kind: 'diag.exec'; readonly ns: string; readonly argv: readonly string[]; readonly timeoutMs: number; readonly maxOutputBytes: number; readonly stdin?: string };

export type OpKind = Op['kind'];

/**
 * One element of an nftables JSON document (libnftables-json(5), nftables 1.0.6): a command
 * (`{ "add": { "rule": {...} } }`, `{ "flush": { "ruleset": null } }`) or a bare object, which
 * nft reads as `add`. Built by the firewall service or given by an expert client (checked by the
 * schema for its shape; nft checks the rest).
 */
export type NftCommand = Readonly<Record<string, unknown>>;

/** What `diag.ping` sends. */
export interface PingSpec {
  readonly family: 4 | 6;
  readonly target: string;
  readonly count: number;
  readonly intervalMs: number;
  /** ICMP payload bytes (`-s`). */
  readonly size: number;
  /** How long to wait for each reply (`-W`). */
  readonly timeoutMs: number;
  /** The whole run ends after this (`-w`, in whole seconds, rounded up). */
  readonly deadlineMs: number;
}

/** One echo reply. */
export interface PingReply {
  readonly seq: number;
  readonly from: string;
  readonly ttl: number | null;
  readonly timeMs: number;
}

/** A ping run, parsed from ping's output (iputils 20221126). */
export interface PingResult {
  readonly sent: number;
  readonly received: number;
  readonly lossPercent: number;
  /** null when nothing answered. */
  readonly rtt: { readonly minMs: number; readonly avgMs: number; readonly maxMs: number; readonly mdevMs: number } | null;
  readonly replies: readonly PingReply[];
  /** ICMP errors and duplicates (`From 198.51.100.1 icmp_seq=1 Destination Host Unreachable`), as ping prints them. */
  readonly errors: readonly string[];
  /** Why ping could not send at all (`connect: Network is unreachable`), else null. */
  readonly failure: string | null;
}

/** How a TCP connect ended. */
export const TCP_OUTCOMES = ['connected', 'refused', 'timeout', 'unreachable', 'error'] as const;
export type TcpOutcome = (typeof TCP_OUTCOMES)[number];

export interface TcpConnectResult {
  readonly outcome: TcpOutcome;
  readonly elapsedMs: number;
  /** The errno name when it did not connect (ECONNREFUSED, EHOSTUNREACH, ...). */
  readonly errno: string | null;
}

/** The kernel's answer to `route.get`. */
export type RouteLookup =
  | {
      readonly ok: true;
      /** unicast, local, broadcast, multicast, ... (ip prints no type for unicast). */
      readonly type: string;
      readonly dst: string;
      readonly dev: string | null;
      readonly gateway: string | null;
      readonly prefsrc: string | null;
      readonly table: number | null;
    }
  | {
      readonly ok: false;
      /** ENETUNREACH (no route), EHOSTUNREACH (an unreachable route, or forwarding off for an `iif` lookup), EINVAL (a martian or rp_filter drop for an `iif` lookup), EACCES (prohibit), ... */
      readonly errno: string;
      readonly message: string;
    };

/** One socket as ss lists it. */
export interface KernelSocket {
  readonly protocol: 'tcp' | 'udp';
  /** ss's state word: LISTEN, ESTAB, UNCONN, TIME-WAIT, SYN-SENT, ... */
  readonly state: string;
  readonly recvQ: number;
  readonly sendQ: number;
  readonly local: SocketEnd;
  readonly peer: SocketEnd;
  readonly processes: readonly { readonly name: string; readonly pid: number; readonly fd: number }[];
}

export interface SocketEnd {
  /** The address (`*` for any), without brackets; an IPv4-mapped address stays as ss prints it. */
  readonly address: string;
  /** The port, or null for `*`. */
  readonly port: number | null;
  /** The link the address is scoped to (`%eth0`), or null. */
  readonly link: string | null;
}

/** One connection tracking entry (conntrack -L -o extended). */
export interface ConntrackEntry {
  readonly family: 4 | 6;
  readonly protocol: string;
  readonly timeoutSeconds: number | null;
  /** TCP state (ESTABLISHED, TIME_WAIT, ...) or null. */
  readonly state: string | null;
  readonly original: ConntrackTuple;
  readonly reply: ConntrackTuple;
  /** ASSURED, UNREPLIED, ... */
  readonly flags: readonly string[];
  readonly mark: number | null;
}

export interface ConntrackTuple {
  readonly src: string;
  readonly dst: string;
  readonly sport: number | null;
  readonly dport: number | null;
}

/** What `diag.exec` answers. */
export interface ExecResult {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Some output was cut at maxOutputBytes (and the program was killed). */
  readonly truncated: boolean;
  readonly timedOut: boolean;
  readonly durationMs: number;
}

export const ADDRESS_SCOPES = ['global', 'link', 'host', 'site'] as const;
export type AddressScope = (typeof ADDRESS_SCOPES)[number];

/** What `addr.add` adds; every value was parsed and checked by the service. */
export interface AddrAddSpec {
  readonly link: string;
  readonly family: 4 | 6;
  /** The address in its canonical text form. */
  readonly local: string;
  readonly prefixLength: number;
  /** The other end of a point-to-point link (then the prefix is the peer's). */
  readonly peer?: string;
  readonly broadcast?: string;
  readonly scope?: AddressScope;
  readonly label?: string;
  /** IPv6: skip duplicate address detection (the address is usable at once). */
  readonly nodad?: boolean;
}

export const ROUTE_TYPES = ['unicast', 'blackhole', 'unreachable', 'prohibit'] as const;
export type RouteType = (typeof ROUTE_TYPES)[number];
export const ROUTE_SCOPES = ['global', 'site', 'link', 'host'] as const;
export type RouteScope = (typeof ROUTE_SCOPES)[number];
/** Table ids the kernel names: main (254) and local (255). */
export const TABLE_MAIN = 254;
export const TABLE_LOCAL = 255;

/** What identifies a route to the kernel: table, family, destination, metric (priority) and tos. */
export interface RouteKey {
  readonly family: 4 | 6;
  readonly table: number;
  /** The destination prefix in canonical CIDR form (`0.0.0.0/0`, `::/0` for a default route). */
  readonly dst: string;
  readonly metric: number;
  /** The tos as iproute2 prints it (`0x10`), or null for 0. */
  readonly tos: string | null;
  /**
   * IPv6 only: the link. IPv6 keeps routes that differ only in their device apart (every link's
   * `fe80::/64`, metric 256, in main), so the device is part of the key; IPv4 routes never need it.
   */
  readonly dev?: string | null;
}

export interface RouteNexthop {
  readonly via?: string;
  readonly dev?: string;
  /** 1-256. */
  readonly weight?: number;
}

/** What `route.add` adds; every value was parsed and checked by the service. */
export interface RouteSpec {
  readonly family: 4 | 6;
  readonly type: RouteType;
  /** Canonical CIDR (`0.0.0.0/0` for default). */
  readonly dst: string;
  readonly table: number;
  readonly metric?: number;
  readonly via?: string;
  readonly dev?: string;
  readonly src?: string;
  readonly scope?: RouteScope;
  readonly mtu?: number;
  readonly nexthops?: readonly RouteNexthop[];
}

/** A route as `ip -j route show table ...` describes it (iproute2 6.1). */
export interface KernelRoute extends Omit<RouteKey, 'dev'> {
  /** unicast, blackhole, unreachable, prohibit, local, broadcast, multicast, anycast, throw, ... */
  readonly type: string;
  readonly via: string | null;
  readonly dev: string | null;
  /** The preferred source address (`prefsrc`). */
  readonly src: string | null;
  readonly scope: string;
  /** Who added it: kernel, boot (ip's default), static, dhcp, ... */
  readonly protocol: string;
  readonly mtu: number | null;
  readonly nexthops: ReadonlyArray<{ readonly via: string | null; readonly dev: string | null; readonly weight: number }> | null;
  readonly flags: readonly string[];
}

export const RULE_ACTIONS = ['lookup', 'goto', 'nop', 'blackhole', 'unreachable', 'prohibit'] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];
export const RULE_IPPROTOS = ['tcp', 'udp', 'sctp', 'icmp', 'ipv6-icmp'] as const;
export type RuleIpproto = (typeof RULE_IPPROTOS)[number];

/** An inclusive port range (`start === end` for one port). */
export interface PortRange {
  readonly start: number;
  readonly end: number;
}

/** What `rule.add` adds; every value was parsed and checked by the service. */
export interface RuleSpec {
  readonly family: 4 | 6;
  /** Always given: the service picks the kernel's default when the client did not. */
  readonly priority: number;
  /** Canonical CIDRs. */
  readonly from?: string;
  readonly to?: string;
  /** Match when the selector does NOT hold. */
  readonly not?: boolean;
  readonly iif?: string;
  readonly oif?: string;
  readonly fwmark?: number;
  readonly fwmask?: number;
  readonly ipproto?: RuleIpproto;
  readonly sport?: PortRange;
  readonly dport?: PortRange;
  readonly action: RuleAction;
  /** lookup: the table. */
  readonly table?: number;
  /** goto: the priority to continue at. */
  readonly goto?: number;
  /** lookup: ignore routes with a prefix this long or shorter. */
  readonly suppressPrefixLength?: number;
}

/**
 * A policy rule as `ip -j rule show` describes it (iproute2 6.1). The kernel has no id for a rule:
 * what identifies one is all of it (two rules may share a priority, never every attribute), so
 * `rule.delete` names every attribute it has, including the ones netnsd cannot create.
 */
export interface KernelRule {
  readonly family: 4 | 6;
  readonly priority: number;
  readonly not: boolean;
  /** Canonical CIDRs, or null for all. */
  readonly from: string | null;
  readonly to: string | null;
  readonly iif: string | null;
  readonly oif: string | null;
  readonly fwmark: number | null;
  /** null when the kernel matches the whole mark (0xffffffff). */
  readonly fwmask: number | null;
  /** As iproute2 prints it (`0x10`). */
  readonly tos: string | null;
  readonly ipproto: string | null;
  readonly sport: PortRange | null;
  readonly dport: PortRange | null;
  readonly uidrange: PortRange | null;
  readonly l3mdev: boolean;
  /** lookup, goto, nop, blackhole, unreachable, prohibit. */
  readonly action: string;
  readonly table: number | null;
  readonly goto: number | null;
  readonly suppressPrefixLength: number | null;
  readonly suppressIfgroup: string | null;
  /** `FROM/TO` realms as iproute2 prints them, or null. */
  readonly realms: string | null;
  /** Who added it, when not the default (`boot`): null. */
  readonly protocol: string | null;
  /** unresolved (a goto whose target does not exist), iif_detached, oif_detached. */
  readonly flags: readonly string[];
}

/**
 * Whether the kernel, asked to delete rule `t` (every attribute of `t` given), would take rule `c`
 * if it came first: it compares only the attributes the request sets (net/core/fib_rules.c
 * rule_find, fib4/6_rule_compare), never the `not` flag. So `c` matches when it has every
 * attribute `t` sets, whatever else it has.
 */
export function kernelDeleteMatches(c: KernelRule, t: KernelRule): boolean {
  const same = <T>(a: T | null, b: T | null): boolean => b === null || JSON.stringify(a) === JSON.stringify(b);
  return (
    c.family === t.family && c.priority === t.priority && c.action === t.action && same(c.table, t.table) && same(c.goto, t.goto) &&
    same(c.from, t.from) && same(c.to, t.to) && same(c.tos, t.tos) && same(c.iif, t.iif) && same(c.oif, t.oif) &&
    (t.fwmark === null || t.fwmark === 0 || c.fwmark === t.fwmark) && same(c.fwmask, t.fwmask) && same(c.ipproto, t.ipproto) &&
    same(c.sport, t.sport) && same(c.dport, t.dport) && same(c.uidrange, t.uidrange) && (!t.l3mdev || c.l3mdev) &&
    same(c.suppressPrefixLength, t.suppressPrefixLength) && same(c.suppressIfgroup, t.suppressIfgroup) && same(c.protocol, t.protocol)
  );
}

/** The rule a RuleSpec makes, as the kernel will list it (flags aside). */
export function ruleOfSpec(s: RuleSpec): KernelRule {
  return {
    family: s.family, priority: s.priority, not: s.not === true, from: s.from ?? null, to: s.to ?? null, iif: s.iif ?? null, oif: s.oif ?? null,
    fwmark: s.fwmark ?? null, fwmask: s.fwmask ?? null, tos: null, ipproto: s.ipproto ?? null, sport: s.sport ?? null, dport: s.dport ?? null,
    uidrange: null, l3mdev: false, action: s.action, table: s.table ?? null, goto: s.goto ?? null, suppressPrefixLength: s.suppressPrefixLength ?? null,
    suppressIfgroup: null, realms: null, protocol: null, flags: [],
  };
}

/**
 * Every attribute of a rule as one text (flags aside: they are state, not identity). Two rules
 * with the same text cannot both exist (the kernel answers EEXIST), so this is the rule's key.
 */
export function ruleKeyText(r: KernelRule): string {
  const range = (p: PortRange | null): string => (p === null ? '' : `${p.start}-${p.end}`);
  const n = (v: number | string | null): string => (v === null ? '' : String(v));
  return [
    r.family, r.priority, r.not ? 'not' : '', n(r.from), n(r.to), n(r.iif), n(r.oif), n(r.fwmark), n(r.fwmask), n(r.tos), n(r.ipproto),
    range(r.sport), range(r.dport), range(r.uidrange), r.l3mdev ? 'l3mdev' : '', r.action, n(r.table), n(r.goto), n(r.suppressPrefixLength),
    n(r.suppressIfgroup), n(r.realms), n(r.protocol),
  ].join('|');
}

/** What `neigh.add` adds (always `nud permanent`); every value was parsed and checked by the service. */
export interface NeighAddSpec {
  readonly link: string;
  readonly family: 4 | 6;
  /** The IP address in its canonical text form. */
  readonly address: string;
  /** The link-layer address, six lower-case hex pairs. */
  readonly mac: string;
  /** IPv6: the neighbour is a router (NTF_ROUTER, the IsRouter flag of neighbour discovery). */
  readonly router?: boolean;
}

/** A neighbour entry as `ip -j neigh show nud all` describes it (iproute2 6.1). Its key is (link, family, address). */
export interface KernelNeighbor {
  readonly link: string;
  readonly family: 4 | 6;
  /** The IP address as iproute2 prints it (canonical). */
  readonly address: string;
  /** The link-layer address, or null when there is none (incomplete, failed). */
  readonly mac: string | null;
  /** The NUD states that are set, lower case: permanent, noarp, reachable, stale, delay, probe, incomplete, failed, none. */
  readonly states: readonly string[];
  /** The NTF_* flags that are set, by iproute2's names: router, extern_learn, offload, managed, ... */
  readonly flags: readonly string[];
}

/** Qdisc kinds netnsd can set as a root (whether this kernel has them is capabilities' answer). */
export const QDISC_KINDS = ['tbf', 'htb', 'netem', 'fq_codel', 'sfq', 'fq', 'cake', 'pfifo', 'bfifo', 'prio'] as const;
export type QdiscKind = (typeof QDISC_KINDS)[number];

/** A tbf: rate in bits/s, sizes in bytes, times in microseconds, parsed and range-checked by the service. */
export interface TbfSpec {
  readonly kind: 'tbf';
  /** Bits per second (tc's `bit`; the kernel keeps bytes per second). */
  readonly rateBits: number;
  readonly burstBytes: number;
  readonly latencyUs: number;
}

/** One htb class: `1:minor`. */
export interface HtbClassSpec {
  readonly minor: number;
  /** Bits per second. */
  readonly rateBits: number;
  readonly ceilBits: number;
}

/** A u32 filter of an htb tree. Addresses are canonical CIDRs; ports need `protocol`. */
export interface U32FilterSpec {
  /** The class minor (`1:minor`). */
  readonly classMinor: number;
  readonly family: 4 | 6;
  readonly source?: string;
  readonly destination?: string;
  readonly protocol?: 'tcp' | 'udp';
  readonly sport?: number;
  readonly dport?: number;
}

/** The root htb qdisc (classes and filters are ops of their own). */
export interface HtbRootSpec {
  readonly kind: 'htb';
  /** The minor of the default class. */
  readonly defaultMinor: number;
}

/** A netem: delays in microseconds, percentages 0-100, rate in bits/s. */
export interface NetemSpec {
  readonly kind: 'netem';
  readonly delayUs?: number;
  readonly jitterUs?: number;
  readonly lossPct?: number;
  readonly duplicatePct?: number;
  readonly reorderPct?: number;
  readonly corruptPct?: number;
  /** Bits per second. */
  readonly rateBits?: number;
}

/** A qdisc without parameters, set with the kernel's defaults. */
export interface PlainQdiscSpec {
  readonly kind: Exclude<QdiscKind, 'tbf' | 'htb' | 'netem'>;
}

export type RootQdiscSpec = TbfSpec | HtbRootSpec | NetemSpec | PlainQdiscSpec;

/** Counters of a qdisc or class (`tc -s`). */
export interface QdiscCounters {
  readonly bytes: number;
  readonly packets: number;
  readonly drops: number;
  readonly overlimits: number;
  readonly requeues: number;
  /** Bytes queued now. */
  readonly backlog: number;
  /** Packets queued now. */
  readonly qlen: number;
}

/** A qdisc as `tc -s -j qdisc show dev X` describes it (iproute2 6.1). */
export interface KernelQdisc {
  readonly kind: string;
  /** `1:`, `800b:`, `0:` for the kernel's default, `ffff:` for ingress. */
  readonly handle: string;
  readonly root: boolean;
  /** The parent handle (`ffff:fff1` for ingress), null for the root. */
  readonly parent: string | null;
  /** The qdisc's options as tc prints them (rates in bytes/s, times in µs). */
  readonly options: Readonly<Record<string, unknown>>;
  readonly counters: QdiscCounters;
}

/** A class as `tc -s class show dev X` prints it (6.1 prints text even with -j). */
export interface KernelClass {
  readonly kind: string;
  /** `1:10`. */
  readonly id: string;
  /** The parent class, null under the qdisc itself. */
  readonly parent: string | null;
  /** As tc prints them (`1Mbit`), null when it prints none. */
  readonly rate: string | null;
  readonly ceil: string | null;
  readonly counters: QdiscCounters;
}

/** A filter as `tc -j filter show` describes it: only the entries that are rules (not the hash-table heads). */
export interface KernelFilter {
  readonly kind: string;
  readonly protocol: string;
  readonly pref: number;
  /** The class it sends to (`1:10`), or null. */
  readonly flowid: string | null;
  /** `mirred` redirect target device, or null. */
  readonly redirectTo: string | null;
}

/** An address as `ip -j address show` describes it (iproute2 6.1). */
export interface KernelAddress {
  readonly ifindex: number;
  readonly link: string;
  readonly family: 4 | 6;
  readonly local: string;
  readonly prefixLength: number;
  readonly peer: string | null;
  readonly broadcast: string | null;
  readonly scope: string;
  readonly label: string | null;
  /** The IFA_F_* flags that are set, by iproute2's names: tentative, nodad, dadfailed, deprecated, secondary, dynamic, ... */
  readonly flags: readonly string[];
  /** Seconds; null for forever. */
  readonly validLifetime: number | null;
  readonly preferredLifetime: number | null;
}

/** Link kinds netnsd can create (whether this kernel has them is capabilities' answer). */
export const CREATABLE_LINK_KINDS = [
  'veth', 'bridge', 'macvlan', 'vxlan', 'tun', 'tap', 'ifb', 'dummy', 'vlan', 'vrf', 'bond', 'wireguard', 'gre',
] as const;
export type CreatableLinkKind = (typeof CREATABLE_LINK_KINDS)[number];

export const MACVLAN_MODES = ['private', 'vepa', 'bridge', 'passthru', 'source'] as const;
export type MacvlanMode = (typeof MACVLAN_MODES)[number];

/** Options every kind takes when it is created. */
interface LinkAddCommon {
  readonly name: string;
  readonly mtu?: number;
  readonly mac?: string;
}

/** What `link.add` creates; every name and value was validated by the schema. */
export type LinkAddSpec = LinkAddCommon &
  (
    // up: created up (IFF_UP in the request), one request fewer than a `link.set` after it. A
    // veth's peer cannot be (the kernel sets it up before the pair is tied: ENOTCONN).
    | { readonly linkKind: 'veth'; readonly peer: { readonly name: string; readonly ns: string }; readonly up?: true }
    | { readonly linkKind: 'bridge'; readonly stp?: boolean; readonly vlanFiltering?: boolean; readonly up?: true }
    | { readonly linkKind: 'macvlan'; readonly parent: string; readonly mode: MacvlanMode }
    | {
        readonly linkKind: 'vxlan';
        readonly vni: number;
        readonly dstport: number;
        readonly local?: string;
        readonly remote?: string;
        readonly group?: string;
        readonly parent?: string;
      }
    | { readonly linkKind: 'vlan'; readonly parent: string; readonly vlanId: number }
    | { readonly linkKind: 'vrf'; readonly table: number }
    | { readonly linkKind: 'gre'; readonly local: string; readonly remote: string }
    | { readonly linkKind: 'tun' | 'tap' | 'ifb' | 'dummy' | 'bond' | 'wireguard' }
  );

/** One attribute change of `link.set`. `master: null` detaches from the bridge. */
export type LinkChange =
  | { readonly up: boolean }
  | { readonly mtu: number }
  | { readonly mac: string }
  | { readonly alias: string | null }
  | { readonly master: string | null }
  | { readonly txqlen: number };

/**
 * A link as `ip -j -d link show` describes it (iproute2 6.1), before netnsd adds what only it
 * knows (labels, ownership) and resolves what refers to other namespaces.
 */
export interface KernelLink {
  readonly index: number;
  readonly name: string;
  /** `info_kind` (tun and tap both say `tun`: told apart by their type), else `loopback` or `device`. */
  readonly kind: string;
  /** The administrative flag (`UP`). */
  readonly up: boolean;
  readonly operstate: string;
  readonly mtu: number;
  readonly minMtu: number | null;
  readonly maxMtu: number | null;
  readonly mac: string | null;
  readonly txqlen: number | null;
  readonly alias: string | null;
  /** The master (bridge) in the same namespace, by name. */
  readonly master: string | null;
  /**
   * The other device a link is tied to (IFLA_LINK): a veth's peer, a macvlan's lower device.
   * `netnsid` is null when it is in the same namespace, else the nsid this namespace has for the
   * other one; `name` only when it is in the same namespace.
   */
  readonly lower: { readonly index: number; readonly name: string | null; readonly netnsid: number | null } | null;
  readonly bridge?: { readonly stp: boolean; readonly vlanFiltering: boolean };
  readonly macvlan?: { readonly mode: string };
  readonly vxlan?: {
    readonly vni: number;
    readonly local: string | null;
    readonly remote: string | null;
    readonly group: string | null;
    readonly dstport: number;
    /** The underlying device (`dev`), by name in the vxlan's namespace. */
    readonly parent: string | null;
  };
  readonly tun?: { readonly persist: boolean; readonly multiQueue: boolean; readonly vnetHdr: boolean; readonly pi: boolean };
}

/** 64-bit link counters (`stats64`). Values above 2^53 lose precision in JSON.parse. */
export interface LinkCounters {
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly rxPackets: number;
  readonly txPackets: number;
  readonly rxErrors: number;
  readonly txErrors: number;
  readonly rxDropped: number;
  readonly txDropped: number;
  readonly multicast: number;
  readonly collisions: number;
}
export type OpOf<K extends OpKind> = Extract<Op, { kind: K }>;

/** Link kinds probed at start. `veth` must be probed first: it is the parent of the others. */
export const PROBE_LINK_KINDS = [
  'veth', 'bridge', 'macvlan', 'macvtap', 'ipvlan', 'vxlan', 'geneve', 'tun', 'tap', 'ifb',
  'dummy', 'vlan', 'vrf', 'bond', 'team', 'wireguard', 'gre', 'gretap', 'ipip', 'sit',
] as const;
export type ProbeLinkKind = (typeof PROBE_LINK_KINDS)[number];

export const PROBE_LINK_FEATURES = ['bridge.vlan_filtering'] as const;
export type ProbeLinkFeature = (typeof PROBE_LINK_FEATURES)[number];

export const PROBE_QDISCS = [
  'pfifo', 'bfifo', 'tbf', 'htb', 'prio', 'netem', 'fq_codel', 'sfq', 'fq', 'cake', 'ingress', 'clsact',
] as const;
export type ProbeQdisc = (typeof PROBE_QDISCS)[number];

export const PROBE_CLASSIFIERS = ['u32', 'flower', 'matchall', 'basic', 'fw', 'route'] as const;
export type ProbeClassifier = (typeof PROBE_CLASSIFIERS)[number];

/** Name of the veth the link/qdisc/classifier probes use inside the scratch namespace. */
export const PROBE_VETH = 'nnp0';

export interface ToolVersions {
  readonly ip: string | null;
  readonly tc: string | null;
  readonly nft: string | null;
  /** conntrack-tools (GET .../conntrack). */
  readonly conntrack: string | null;
}

export interface ProbeResult {
  readonly supported: boolean;
  /** The tool's message when unsupported (for the log and capabilities). */
  readonly reason?: string;
}

/**
 * A new namespace's dumps (src/netlink/netlink.ts snapshotRequests), taken by netnsAdd after it
 * gave the namespace its nsid, by request key (PrefetchedDumps); `since`: performance.now() before
 * the add began (no event of the namespace can have been read before).
 */
export interface NamespaceSnapshot {
  readonly since: number;
  readonly dumps: Map<string, { readonly datagrams: Buffer[]; readonly interrupted: boolean }>;
}

/** What each op kind resolves to. */
export interface OpResults {
  /**
   * What the addon read of the new namespace on the add's own threads, off the event loop: the
   * nsid it gave it in ours and its links' names (absent without the addon, or when that failed:
   * netns.assignNsid and netns.linkNames read them then), and its dumps for the monitor's seed.
   */
  'netns.add': { readonly nsid?: number; readonly linkNames?: readonly string[]; readonly snapshot?: NamespaceSnapshot } | undefined;
  'netns.delete': void;
  'netns.assignNsid': { readonly nsid: number };
  'netns.getNsid': { readonly nsid: number };
  'netns.loopbackUp': void;
  'netns.linkNames': { readonly names: readonly string[] };
  'netns.pids': { readonly pids: readonly number[] };
  'netns.killPids': void;
  /** Each key's text, or null when the namespace has no such sysctl. */
  'sysctl.read': { readonly values: readonly (string | null)[] };
  'sysctl.write': void;
  'probe.tools': ToolVersions;
  'probe.linkKind': ProbeResult;
  'probe.linkFeature': ProbeResult;
  'probe.qdisc': ProbeResult;
  'probe.classifier': ProbeResult;
  'probe.nftables': ProbeResult;
  'link.list': { readonly links: readonly KernelLink[] };
  'link.nsids': { readonly nsids: ReadonlyArray<{ readonly nsid: number; readonly name: string }> };
  'link.stats': LinkCounters;
  'link.add': void;
  'link.set': void;
  'link.move': void;
  'link.delete': void;
  'addr.list': { readonly addresses: readonly KernelAddress[] };
  'addr.add': void;
  'addr.delete': void;
  'route.list': { readonly routes: readonly KernelRoute[] };
  'route.add': void;
  'route.delete': void;
  'rule.list': { readonly rules: readonly KernelRule[] };
  'rule.add': void;
  'rule.delete': void;
  'neigh.list': { readonly neighbors: readonly KernelNeighbor[] };
  'neigh.add': void;
  'neigh.delete': void;
  'qdisc.show': { readonly qdiscs: readonly KernelQdisc[] };
  'qdisc.classes': { readonly classes: readonly KernelClass[] };
  'qdisc.filters': { readonly filters: readonly KernelFilter[] };
  'qdisc.replaceRoot': void;
  'qdisc.deleteRoot': void;
  'qdisc.addClass': void;
  'qdisc.addFilter': void;
  'qdisc.addIngress': void;
  'qdisc.deleteIngress': void;
  'qdisc.addRedirect': void;
  /** The `nftables` array of `nft -j list ruleset` (metainfo first). */
  'nft.list': { readonly ruleset: readonly NftCommand[] };
  'nft.apply': void;
  'route.get': RouteLookup;
  'diag.ping': PingResult;
  'diag.tcpConnect': TcpConnectResult;
  'diag.sockets': { readonly sockets: readonly KernelSocket[] };
  'diag.conntrack': { readonly entries: readonly ConntrackEntry[] };
  'diag.exec': ExecResult;
}

export type ResultOf<O extends Op> = OpResults[O['kind']];

/** The namespace an op acts in: the pool's FIFO key. */
export function opNamespace(op: Op): string {
  return 'ns' in op ? op.ns : HOST;
}

/**
 * Ops that only read: the pool never refuses them for a full queue (they are cheap, and one list
 * makes two per namespace, which would otherwise fill the queue and starve everything).
 */
export function isReadOp(op: Op): boolean {
  return (
    op.kind === 'netns.getNsid' ||
    op.kind === 'netns.linkNames' ||
    op.kind === 'netns.pids' ||
    op.kind === 'probe.tools' ||
    op.kind === 'link.list' ||
    op.kind === 'link.nsids' ||
    op.kind === 'link.stats' ||
    op.kind === 'addr.list' ||
    op.kind === 'route.list' ||
    op.kind === 'rule.list' ||
    op.kind === 'neigh.list' ||
    op.kind === 'qdisc.show' ||
    op.kind === 'qdisc.classes' ||
    op.kind === 'qdisc.filters' ||
    op.kind === 'nft.list' ||
    op.kind === 'sysctl.read' ||
    isDiagnosticOp(op)
  );
}

/**
 * Diagnostics: they read (or, for exec, do whatever the program does) and may take seconds. They
 * take no turn in their namespace's FIFO, so a 10-second ping never holds up that namespace's
 * changes; the diagnostics service bounds how many run at once.
 */
export function isDiagnosticOp(op: Op): boolean {
  return op.kind === 'route.get' || op.kind.startsWith('diag.');
}
