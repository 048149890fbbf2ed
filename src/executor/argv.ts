/**
 * The only file that knows iproute2, tc and nft words: typed ops in, command lines out, plus the
 * readers of the little tool output the fallback paths need. Everything here is checked against
 * iproute2 6.1 and nftables 1.0.6 (Debian 12); a fact that depends on a version says so.
 */
import { accessSync, constants } from 'node:fs';
import { isIP } from 'node:net';
import { AppError } from '../errors/app-error.js';
import { isLinkName, isNamespaceName, MAC_RE, ALIAS_RE } from '../names.js';
import {
  ADDRESS_SCOPES,
  HOST,
  PROBE_VETH,
  type AddrAddSpec,
  type KernelAddress,
  type KernelNeighbor,
  type KernelRoute,
  type KernelRule,
  type PortRange,
  RULE_ACTIONS,
  type NeighAddSpec,
  type RouteSpec,
  ruleOfSpec,
  ROUTE_SCOPES,
  ROUTE_TYPES,
  TABLE_LOCAL,
  TABLE_MAIN,
  type KernelLink,
  type LinkAddSpec,
  type LinkChange,
  type LinkCounters,
  type NftCommand,
  type Op,
  type PingSpec,
  type ProbeClassifier,
  type ProbeLinkFeature,
  type ProbeLinkKind,
  type ProbeQdisc,
  type KernelClass,
  type KernelFilter,
  type KernelQdisc,
  type QdiscCounters,
  type RootQdiscSpec,
  type U32FilterSpec,
} from './ops.js';

/**
 * `node` is this very Node binary (process.execPath: the TCP probe); `program` is an exec
 * request's own argv[0], an absolute path the service checked.
 */
export type Tool = 'ip' | 'tc' | 'nft' | 'ping' | 'ss' | 'conntrack' | 'node' | 'program';

/** One invocation of a tool, before it is turned into a spawn argv or a batch line. */
export interface Command {
  readonly tool: Tool;
  /** Run inside this named namespace; absent = the daemon's own (root) namespace. */
  readonly netns?: string;
  readonly args: readonly string[];
  /** Written to the tool's stdin (then closed); absent = no stdin. Only one-shot spawns take it. */
  readonly stdin?: string;
}

/** The probe veth's peer: the device the qdisc probes use, so they never touch nnp0's root qdisc. */
const PROBE_PEER = 'nnp1';
/** The short-lived link each link kind/feature probe creates and deletes again. */
const PROBE_LINK = 'nnpk';
/** Documentation addresses (RFC 5737): valid tunnel endpoints that route nowhere. */
const TEST_NET_A = '198.51.100.1';
const TEST_NET_B = '198.51.100.2';

/** Where distributions put the tools; checked in order. Never a PATH lookup per call. */
const TOOL_DIRS = ['/usr/sbin', '/sbin', '/usr/bin'] as const;
const toolPaths = new Map<Tool, string>();

/**
 * Absolute path of a tool: the first executable of /usr/sbin, /sbin, /usr/bin. A found path is
 * cached; a missing tool is looked for again next time (it may be installed meanwhile) and
 * answers `/usr/sbin/TOOL`, whose spawn then fails with ENOENT (TOOL_MISSING).
 */
export function toolPath(tool: Tool): string {
  if (tool === 'node') return process.execPath;
  if (tool === 'program') throw new AppError('INTERNAL', 'a program has no tool path');
  const cached = toolPaths.get(tool);
  if (cached !== undefined) return cached;
  for (const dir of TOOL_DIRS) {
    const file = `${dir}/${tool}`;
    try {
      accessSync(file, constants.X_OK);
      toolPaths.set(tool, file);
      return file;
    } catch {
      // not here: try the next directory
    }
  }
  return `${TOOL_DIRS[0]}/${tool}`;
}

/**
 * The argv of a one-shot spawn of `cmd`; element 0 is the file to execute.
 * `ip`/`tc` enter a namespace with `-n NS`; nft (1.0) has no such option, so it runs under
 * `ip netns exec NS`, which setns()es and then execs nft.
 */
export function spawnArgv(cmd: Command): readonly [string, ...string[]] {
  if (cmd.tool === 'program') {
    const [file, ...args] = cmd.args;
    if (file === undefined) throw new AppError('INTERNAL', 'an empty program argv');
    return cmd.netns === undefined ? [file, ...args] : [toolPath('ip'), 'netns', 'exec', cmd.netns, file, ...args];
  }
  const file = toolPath(cmd.tool);
  if (cmd.netns === undefined) return [file, ...cmd.args];
  // ss has its own `-N NS` (iproute2 6.1); ping, conntrack and node have none.
  if (cmd.tool === 'ss') return [file, '-N', cmd.netns, ...cmd.args];
  if (cmd.tool === 'nft' || cmd.tool === 'ping' || cmd.tool === 'conntrack' || cmd.tool === 'node') return [toolPath('ip'), 'netns', 'exec', cmd.netns, file, ...cmd.args];
  return [file, '-n', cmd.netns, ...cmd.args];
}

/** Characters ip's batch reader treats specially: whitespace splits, quotes group, `#` starts a comment, `\` continues a line. */
const BATCH_UNSAFE = /[\s"'#\\]/;

/**
 * The line an `ip|tc [-n NS] -force -batch -` worker reads for these args. Batch lines take no
 * `-n`: the caller picks the worker of the right namespace. Our args never need quoting, so an
 * arg that would (or an empty one, which the tokenizer would drop) is a bug: INTERNAL.
 */
export function batchLine(args: readonly string[]): string {
  if (args.length === 0) throw new AppError('INTERNAL', 'empty batch line');
  for (const a of args) {
    if (a === '' || BATCH_UNSAFE.test(a)) {
      throw new AppError('INTERNAL', 'a batch argument is empty or needs quoting', { cause: a });
    }
  }
  return args.join(' ');
}

/** A name that goes into argv: re-checked here whatever the schema said (defence in depth). */
function named(ns: string): string {
  if (ns === HOST || !isNamespaceName(ns)) throw new AppError('INTERNAL', 'bad namespace name in an op', { cause: ns });
  return ns;
}

/** Like named(), but `host` (the root namespace) is allowed and means "no -n". */
function namedOrHost(ns: string): string | undefined {
  return ns === HOST ? undefined : named(ns);
}

/** A link name that goes into argv, re-checked like namespace names. */
function link(name: string): string {
  if (!isLinkName(name)) throw new AppError('INTERNAL', 'bad link name in an op', { cause: name });
  return name;
}

function int(n: number, min: number, max: number): string {
  if (!Number.isInteger(n) || n < min || n > max) throw new AppError('INTERNAL', 'bad number in an op', { cause: n });
  return String(n);
}

function mac(m: string): string {
  if (!MAC_RE.test(m)) throw new AppError('INTERNAL', 'bad MAC address in an op', { cause: m });
  return m.toLowerCase();
}

function ipAddr(a: string): string {
  if (isIP(a) === 0) throw new AppError('INTERNAL', 'bad IP address in an op', { cause: a });
  return a;
}

/**
 * The `netns` argument that places a link in namespace `to`, seen from a process in namespace
 * `from`: nothing when they are the same; for `host` (the daemon's own namespace) the path of the
 * daemon's namespace file, since a process running inside another namespace cannot name it
 * otherwise (a plain number would be tried as /run/netns/NUMBER first, iproute2 6.1 netns_get_fd).
 */
function netnsArg(from: string, to: string): string[] {
  if (from === to) return [];
  return ['netns', to === HOST ? HOST_NETNS_PATH : named(to)];
}

/** The daemon's own network namespace, as a path any process on the machine can open. */
export const HOST_NETNS_PATH = `/proc/${process.pid}/ns/net`;

/** `mtu M address MAC [up]`: the options `ip link add` takes for every kind (`up`: veth and bridge specs only). */
function commonAddArgs(spec: LinkAddSpec): string[] {
  return [
    ...(spec.mtu === undefined ? [] : ['mtu', int(spec.mtu, 1, 0x7fffffff)]),
    ...(spec.mac === undefined ? [] : ['address', mac(spec.mac)]),
    ...((spec.linkKind === 'veth' || spec.linkKind === 'bridge') && spec.up ? ['up'] : []),
  ];
}

/**
 * `link add` for each kind. `link PARENT` comes before `type` (after it, 6.1 reads it as a kind
 * option). A vxlan always gets `dstport`: without it ip prints a warning on stderr for a line that
 * succeeded, which a batch worker would pin on the next failing line.
 */
function linkAdd(ns: string, spec: LinkAddSpec): Command[] {
  const netns = namedOrHost(ns);
  const name = link(spec.name);
  const common = commonAddArgs(spec);
  switch (spec.linkKind) {
    case 'veth':
      // The peer gets the same MTU: a veth whose ends differ drops what the smaller end cannot take.
      return [
        ip(netns, 'link', 'add', 'name', name, ...common, 'type', 'veth', 'peer', 'name', link(spec.peer.name),
          ...(spec.mtu === undefined ? [] : ['mtu', int(spec.mtu, 1, 0x7fffffff)]), ...netnsArg(ns, spec.peer.ns)),
      ];
    case 'bridge':
      return [
        ip(netns, 'link', 'add', 'name', name, ...common, 'type', 'bridge',
          ...(spec.stp === undefined ? [] : ['stp_state', spec.stp ? '1' : '0']),
          ...(spec.vlanFiltering === undefined ? [] : ['vlan_filtering', spec.vlanFiltering ? '1' : '0'])),
      ];
    case 'macvlan':
      return [ip(netns, 'link', 'add', 'link', link(spec.parent), 'name', name, ...common, 'type', 'macvlan', 'mode', spec.mode)];
    case 'vxlan': {
      const peerArgs = spec.remote !== undefined ? ['remote', ipAddr(spec.remote)] : spec.group !== undefined ? ['group', ipAddr(spec.group)] : [];
      return [
        ip(netns, 'link', 'add', 'name', name, ...common, 'type', 'vxlan', 'id', int(spec.vni, 0, 16777215),
          ...(spec.local === undefined ? [] : ['local', ipAddr(spec.local)]), ...peerArgs, 'dstport', int(spec.dstport, 0, 65535),
          ...(spec.parent === undefined ? [] : ['dev', link(spec.parent)])),
      ];
    }
    case 'vlan':
      return [ip(netns, 'link', 'add', 'link', link(spec.parent), 'name', name, ...common, 'type', 'vlan', 'id', int(spec.vlanId, 1, 4094))];
    case 'vrf':
      return [ip(netns, 'link', 'add', 'name', name, ...common, 'type', 'vrf', 'table', int(spec.table, 1, 0xffffffff))];
    case 'gre':
      return [ip(netns, 'link', 'add', 'name', name, ...common, 'type', 'gre', 'local', ipAddr(spec.local), 'remote', ipAddr(spec.remote))];
    case 'tun':
    case 'tap':
      // `ip tuntap add` takes neither mtu nor address: the service sets them as later steps.
      if (common.length > 0) throw new AppError('INTERNAL', 'tuntap add takes no mtu or address');
      return [ip(netns, 'tuntap', 'add', 'mode', spec.linkKind, 'name', name)];
    case 'ifb':
    case 'dummy':
    case 'bond':
    case 'wireguard':
      return [ip(netns, 'link', 'add', 'name', name, ...common, 'type', spec.linkKind)];
    default:
      return unreachable(spec);
  }
}

function linkSet(ns: string, name: string, change: LinkChange): Command {
  const dev = ['link', 'set', 'dev', link(name)];
  const netns = namedOrHost(ns);
  if ('up' in change) return ip(netns, ...dev, change.up ? 'up' : 'down');
  if ('mtu' in change) return ip(netns, ...dev, 'mtu', int(change.mtu, 1, 0x7fffffff));
  if ('mac' in change) return ip(netns, ...dev, 'address', mac(change.mac));
  if ('txqlen' in change) return ip(netns, ...dev, 'txqueuelen', int(change.txqlen, 0, 0xffffffff));
  if ('master' in change) return ip(netns, ...dev, ...(change.master === null ? ['nomaster'] : ['master', link(change.master)]));
  if ('alias' in change) {
    // An empty alias clears it. A batch line cannot carry an empty argument (batchLine refuses
    // it), so the executor runs this one as a process of its own.
    if (change.alias !== null && !ALIAS_RE.test(change.alias)) throw new AppError('INTERNAL', 'bad alias in an op', { cause: change.alias });
    return ip(netns, ...dev, 'alias', change.alias ?? '');
  }
  return unreachable(change);
}

/**
 * `address add`. The prefix goes on the peer when there is one (`LOCAL peer PEER/LEN`). A label
 * must be the device name or start with `NAME:`: ip 6.1 checks that itself and exits (even in a
 * `-force` batch), so it is checked again here.
 */
function addrAdd(ns: string, spec: AddrAddSpec): Command {
  const dev = link(spec.link);
  const len = int(spec.prefixLength, 0, spec.family === 4 ? 32 : 128);
  const where = spec.peer === undefined ? [`${ipAddr(spec.local)}/${len}`] : [ipAddr(spec.local), 'peer', `${ipAddr(spec.peer)}/${len}`];
  if (spec.label !== undefined && !(spec.label.length <= 15 && (spec.label === dev || (spec.label.startsWith(`${dev}:`) && ALIAS_RE.test(spec.label))))) {
    throw new AppError('INTERNAL', 'bad address label in an op', { cause: spec.label });
  }
  if (spec.scope !== undefined && !ADDRESS_SCOPES.includes(spec.scope)) throw new AppError('INTERNAL', 'bad scope in an op', { cause: spec.scope });
  return ip(
    namedOrHost(ns),
    'address', 'add', ...where, 'dev', dev,
    ...(spec.broadcast === undefined ? [] : ['broadcast', ipAddr(spec.broadcast)]),
    ...(spec.scope === undefined ? [] : ['scope', spec.scope]),
    ...(spec.label === undefined ? [] : ['label', spec.label]),
    ...(spec.nodad ? ['nodad'] : []),
  );
}

const ip = (netns: string | undefined, ...args: string[]): Command => (netns === undefined ? { tool: 'ip', args } : { tool: 'ip', netns, args });
const tc = (netns: string, ...args: string[]): Command => ({ tool: 'tc', netns, args });
/** tc in a namespace, `host` allowed (no -n). */
const tcIn = (ns: string, ...args: string[]): Command => {
  const netns = namedOrHost(ns);
  return netns === undefined ? { tool: 'tc', args } : { tool: 'tc', netns, args };
};

/** The handle major of netnsd's htb roots: classes are `1:MINOR`. */
export const HTB_MAJOR = 1;

/** A qdisc handle or class id as tc writes them (`1:`, `ffff:`, `1:10`: hex). */
function handle(h: string): string {
  if (!/^[0-9a-f]{1,4}:[0-9a-f]{0,4}$/.test(h)) throw new AppError('INTERNAL', 'bad tc handle in an op', { cause: h });
  return h;
}

/** `1:MINOR`; tc reads the minor as hex, so the API's `1:10` is minor 0x10. */
function classId(minor: number): string {
  return `${HTB_MAJOR}:${int(minor, 1, 0xffff) && minor.toString(16)}`;
}

/** A rate in bits per second as tc reads it (`1000000bit`); tc keeps bytes/s, so it divides by 8. */
function bits(n: number): string {
  return `${int(n, 8, 2 ** 53)}bit`;
}

/** A size in bytes (`32768b`: `b` is bytes to tc, `bit` bits). */
function bytes(n: number): string {
  return `${int(n, 1, 2 ** 32 - 1)}b`;
}

/** A time in microseconds (`50000us`). */
function micros(n: number): string {
  return `${int(n, 0, 2 ** 32 - 1)}us`;
}

/** A percentage with up to 4 decimals (`0.5%`). */
function percent(n: number): string {
  if (!Number.isFinite(n) || n < 0 || n > 100) throw new AppError('INTERNAL', 'bad percentage in an op', { cause: n });
  return `${Number(n.toFixed(4))}%`;
}

const PLAIN_QDISCS = new Set(['fq_codel', 'sfq', 'fq', 'cake', 'pfifo', 'bfifo', 'prio']);

/**
 * What follows `root` in `tc qdisc replace dev X root ...`. Only htb has a fixed handle (1:, its
 * classes hang under it); the others take the kernel's, so that `replace` may change a tbf in
 * place (same kind) or swap any qdisc for it atomically: replacing with a handle the old root has
 * but another kind fails ("Invalid qdisc name: must match existing qdisc", kernel 6.18).
 */
function rootQdiscArgs(spec: RootQdiscSpec): string[] {
  switch (spec.kind) {
    case 'tbf':
      return ['tbf', 'rate', bits(spec.rateBits), 'burst', bytes(spec.burstBytes), 'latency', micros(spec.latencyUs)];
    case 'htb':
      return ['handle', `${HTB_MAJOR}:`, 'htb', 'default', int(spec.defaultMinor, 1, 0xffff) && spec.defaultMinor.toString(16)];
    case 'netem': {
      const out = ['netem'];
      if (spec.delayUs !== undefined) out.push('delay', micros(spec.delayUs), ...(spec.jitterUs === undefined ? [] : [micros(spec.jitterUs)]));
      else if (spec.jitterUs !== undefined) throw new AppError('INTERNAL', 'netem jitter without delay');
      if (spec.lossPct !== undefined) out.push('loss', percent(spec.lossPct));
      if (spec.duplicatePct !== undefined) out.push('duplicate', percent(spec.duplicatePct));
      if (spec.reorderPct !== undefined) out.push('reorder', percent(spec.reorderPct));
      if (spec.corruptPct !== undefined) out.push('corrupt', percent(spec.corruptPct));
      if (spec.rateBits !== undefined) out.push('rate', bits(spec.rateBits));
      return out;
    }
    default:
      if (!PLAIN_QDISCS.has(spec.kind)) throw new AppError('INTERNAL', 'unknown qdisc kind in an op', { cause: spec });
      return [spec.kind];
  }
}

const IP_PROTO = { tcp: '6', udp: '17' } as const;

/**
 * `protocol ip|ipv6 prio N u32 match ... flowid 1:MINOR`. u32 matches at fixed offsets: `ip
 * sport/dport` assume an IPv4 header without options, `ip6 ...` one without extension headers
 * (tc-u32(8)); such packets fall through to the default class.
 */
function u32Args(prio: number, f: U32FilterSpec): string[] {
  const fam = f.family === 4 ? 'ip' : 'ip6';
  const out = ['protocol', f.family === 4 ? 'ip' : 'ipv6', 'prio', int(prio, 1, 0xffff), 'u32'];
  if (f.source !== undefined) out.push('match', fam, 'src', prefix(f.source, f.family));
  if (f.destination !== undefined) out.push('match', fam, 'dst', prefix(f.destination, f.family));
  if (f.protocol !== undefined) out.push('match', fam, 'protocol', IP_PROTO[f.protocol], '0xff');
  if ((f.sport !== undefined || f.dport !== undefined) && f.protocol === undefined) throw new AppError('INTERNAL', 'a port match without a protocol');
  if (f.sport !== undefined) out.push('match', fam, 'sport', int(f.sport, 1, 65535), '0xffff');
  if (f.dport !== undefined) out.push('match', fam, 'dport', int(f.dport, 1, 65535), '0xffff');
  // No match at all: u32 needs one; `match u32 0 0` matches every packet of the protocol.
  if (out.length === 5) out.push('match', 'u32', '0', '0');
  out.push('flowid', classId(f.classMinor));
  return out;
}

/** Kinds created with `link add [link PARENT] name X type KIND ARGS`. */
const LINK_KIND_ARGS: Record<Exclude<ProbeLinkKind, 'veth' | 'tun' | 'tap'>, { readonly parent?: true; readonly args: readonly string[] }> = {
  bridge: { args: [] },
  // `link PARENT` must come before `type`: after it, 6.1 reads it as a kind option and fails.
  macvlan: { parent: true, args: [] },
  macvtap: { parent: true, args: [] },
  ipvlan: { parent: true, args: [] },
  vlan: { parent: true, args: ['id', '10'] },
  vxlan: { args: ['id', '42', 'dstport', '4789'] },
  geneve: { args: ['id', '42', 'remote', TEST_NET_A] },
  ifb: { args: [] },
  dummy: { args: [] },
  vrf: { args: ['table', '10'] },
  bond: { args: [] },
  team: { args: [] },
  wireguard: { args: [] },
  gre: { args: ['local', TEST_NET_A, 'remote', TEST_NET_B] },
  gretap: { args: ['local', TEST_NET_A, 'remote', TEST_NET_B] },
  ipip: { args: ['local', TEST_NET_A, 'remote', TEST_NET_B] },
  sit: { args: ['local', TEST_NET_A, 'remote', TEST_NET_B] },
};

/**
 * Link kind probes. Checked on a kernel (6.18) that lacks many of these kinds: for those, ip
 * parsed the arguments and the kernel answered "Unknown device type", so only the kernel's side
 * of them is unverified. The same holds for the qdisc and classifier probes below.
 *
 * The veth stays (it is the parent of macvlan & co. and the qdisc probes'
 * device); every other probe link is deleted again so a probe can be repeated in one namespace.
 */
function linkKindProbe(ns: string, kind: ProbeLinkKind): readonly Command[] {
  if (kind === 'veth') return [ip(ns, 'link', 'add', PROBE_VETH, 'type', 'veth', 'peer', 'name', PROBE_PEER)];
  const del = ip(ns, 'link', 'del', PROBE_LINK);
  if (kind === 'tun' || kind === 'tap') return [ip(ns, 'tuntap', 'add', 'mode', kind, 'name', PROBE_LINK), del];
  const spec = LINK_KIND_ARGS[kind];
  const parent = spec.parent ? ['link', PROBE_VETH] : [];
  return [ip(ns, 'link', 'add', ...parent, 'name', PROBE_LINK, 'type', kind, ...spec.args), del];
}

/** `type ...` of each link feature probe. vlan_filtering needs CONFIG_BRIDGE_VLAN_FILTERING ("Operation not supported" without). */
const LINK_FEATURE_ARGS: Record<ProbeLinkFeature, readonly string[]> = {
  'bridge.vlan_filtering': ['type', 'bridge', 'vlan_filtering', '1'],
};

function linkFeatureProbe(ns: string, feature: ProbeLinkFeature): readonly Command[] {
  return [ip(ns, 'link', 'add', 'name', PROBE_LINK, ...LINK_FEATURE_ARGS[feature]), ip(ns, 'link', 'del', PROBE_LINK)];
}

/** The smallest arguments each qdisc accepts (tbf has no defaults for rate, burst, latency). */
const QDISC_ARGS: Record<Exclude<ProbeQdisc, 'ingress' | 'clsact'>, readonly string[]> = {
  pfifo: [],
  bfifo: [],
  tbf: ['rate', '1mbit', 'burst', '32kbit', 'latency', '400ms'],
  htb: [],
  prio: [],
  netem: ['delay', '1ms'],
  fq_codel: [],
  sfq: [],
  fq: [],
  cake: [],
};

/**
 * Qdisc probes: add then delete on the veth peer, leaving it as it was. (`qdisc replace` would not
 * do: replacing an htb root with an htb fails "Change operation not supported", kernel 6.18.)
 */
function qdiscProbe(ns: string, qdisc: ProbeQdisc): readonly Command[] {
  if (qdisc === 'ingress' || qdisc === 'clsact') {
    return [tc(ns, 'qdisc', 'add', 'dev', PROBE_PEER, qdisc), tc(ns, 'qdisc', 'del', 'dev', PROBE_PEER, qdisc)];
  }
  return [
    tc(ns, 'qdisc', 'add', 'dev', PROBE_PEER, 'root', qdisc, ...QDISC_ARGS[qdisc]),
    tc(ns, 'qdisc', 'del', 'dev', PROBE_PEER, 'root'),
  ];
}

const CLASSIFIER_ARGS: Record<ProbeClassifier, readonly string[]> = {
  u32: ['u32', 'match', 'ip', 'dst', '0.0.0.0/0', 'flowid', '1:1'],
  flower: ['flower', 'dst_ip', TEST_NET_A, 'flowid', '1:1'],
  matchall: ['matchall', 'classid', '1:1'],
  basic: ['basic', 'classid', '1:1'],
  fw: ['handle', '1', 'fw', 'classid', '1:1'],
  route: ['route', 'to', '1', 'classid', '1:1'],
};

/**
 * Classifier probes: a fresh `htb` root (handle 1:) on the probe veth, then one filter on it.
 * The pfifo step first resets the root, because replacing an htb 1: root by another htb 1: fails
 * ("Change operation not supported"); the new htb drops the previous probe's filters with it, so
 * probes can follow one another in any order, each on `prio 1`.
 */
function classifierProbe(ns: string, classifier: ProbeClassifier): readonly Command[] {
  return [
    tc(ns, 'qdisc', 'replace', 'dev', PROBE_VETH, 'root', 'pfifo'),
    tc(ns, 'qdisc', 'replace', 'dev', PROBE_VETH, 'root', 'handle', '1:', 'htb'),
    tc(ns, 'filter', 'add', 'dev', PROBE_VETH, 'parent', '1:', 'protocol', 'ip', 'prio', '1', ...CLASSIFIER_ARGS[classifier]),
  ];
}

/**
 * The commands that carry out `op`, in order; empty for work done in-process (/proc scans,
 * signals). Ops the native addon serves still map here: the fallback when it is not loaded, and
 * the audit record's "what this means". Validates every name again (INTERNAL when bad).
 */
export function commandsFor(op: Op): readonly Command[] {
  switch (op.kind) {
    case 'netns.add':
      return [ip(undefined, 'netns', 'add', named(op.ns))];
    case 'netns.delete':
      return [ip(undefined, 'netns', 'del', named(op.ns))];
    case 'netns.assignNsid':
      return [ip(undefined, 'netns', 'set', named(op.ns), 'auto')];
    case 'netns.getNsid':
      // `list-id` names only namespaces that have an nsid; `list` also tells a missing name.
      named(op.ns);
      return [ip(undefined, '-j', 'netns', 'list')];
    case 'netns.loopbackUp':
      return [ip(named(op.ns), 'link', 'set', 'lo', 'up')];
    case 'netns.linkNames':
      // JSON, not `-o`: the kernel allows `@` and `:` in names, which the text form uses as separators.
      return [ip(namedOrHost(op.ns), '-j', 'link', 'show')];
    case 'netns.pids':
    case 'netns.killPids':
      named(op.ns);
      return [];
    case 'sysctl.read':
    case 'sysctl.write':
      // In-process (native helper); the keys are checked here as every name is.
      namedOrHost(op.ns);
      for (const k of op.kind === 'sysctl.read' ? op.keys : op.entries.map(([key]) => key)) sysctlPath(k);
      if (op.kind === 'sysctl.write') for (const [, v] of op.entries) if (!/^-?[0-9]{1,10}$/.test(v)) throw new AppError('INTERNAL', 'refusing a sysctl value that is not an integer');
      return [];
    case 'probe.tools':
      return [
        { tool: 'ip', args: ['-V'] },
        { tool: 'tc', args: ['-V'] },
        { tool: 'nft', args: ['--version'] },
        { tool: 'conntrack', args: ['--version'] },
      ];
    case 'probe.linkKind':
      return linkKindProbe(named(op.ns), op.linkKind);
    case 'probe.linkFeature':
      return linkFeatureProbe(named(op.ns), op.feature);
    case 'probe.qdisc':
      return qdiscProbe(named(op.ns), op.qdisc);
    case 'probe.classifier':
      return classifierProbe(named(op.ns), op.classifier);
    case 'probe.nftables':
      // `add table` (unlike `create`) succeeds when the table exists: the probe can be repeated.
      return [{ tool: 'nft', netns: named(op.ns), args: ['add', 'table', 'inet', 'netnsd_probe'] }];
    case 'link.list':
      return [ip(namedOrHost(op.ns), '-j', '-d', 'link', 'show', ...(op.name === undefined ? [] : ['dev', link(op.name)]))];
    case 'link.nsids':
      return [ip(namedOrHost(op.ns), '-j', 'netns', 'list')];
    case 'link.stats':
      return [ip(namedOrHost(op.ns), '-s', '-s', '-j', 'link', 'show', 'dev', link(op.name))];
    case 'link.add':
      return linkAdd(op.ns, op.spec);
    case 'link.set':
      return [linkSet(op.ns, op.name, op.change)];
    case 'link.move':
      if (op.to === op.ns) throw new AppError('INTERNAL', 'a link move within one namespace');
      return [
        ip(namedOrHost(op.ns), 'link', 'set', 'dev', link(op.name), ...netnsArg(op.ns, op.to), ...(op.newName === undefined ? [] : ['name', link(op.newName)])),
      ];
    case 'link.delete':
      return [ip(namedOrHost(op.ns), 'link', 'del', 'dev', link(op.name))];
    case 'addr.list':
      return [ip(namedOrHost(op.ns), '-j', 'address', 'show', ...(op.link === undefined ? [] : ['dev', link(op.link)]))];
    case 'addr.add':
      return [addrAdd(op.ns, op.spec)];
    case 'addr.delete': {
      // IPv4 matches IFA_ADDRESS too: without `peer`, ip sends the local address there, which
      // does not match a point-to-point address.
      const where = op.peer === undefined ? [`${ipAddr(op.local)}/${int(op.prefixLength, 0, 128)}`] : [ipAddr(op.local), 'peer', `${ipAddr(op.peer)}/${int(op.prefixLength, 0, 128)}`];
      return [ip(namedOrHost(op.ns), 'address', 'del', ...where, 'dev', link(op.link))];
    }
    case 'route.list':
      return [ip(namedOrHost(op.ns), '-j', op.family === 4 ? '-4' : '-6', 'route', 'show', 'table', op.table === 'all' ? 'all' : int(op.table, 1, 0xffffffff))];
    case 'route.add':
      return [routeAdd(op.ns, op.spec, op.replace === true)];
    case 'route.delete': {
      const k = op.key;
      // No type: a delete without one matches a route of any type (iproute2 6.1 sends RTN_UNSPEC).
      return [
        ip(namedOrHost(op.ns), 'route', 'del', prefix(k.dst, k.family), ...(k.tos === null ? [] : ['tos', tos(k.tos)]),
          'table', int(k.table, 1, 0xffffffff), 'metric', int(k.metric, 0, 0xffffffff), ...(k.dev === undefined || k.dev === null ? [] : ['dev', link(k.dev)])),
      ];
    }
    case 'rule.list':
      return [ip(namedOrHost(op.ns), '-j', op.family === 4 ? '-4' : '-6', 'rule', 'show')];
    case 'rule.add':
      return [ruleCommand(op.ns, 'add', ruleOfSpec(op.spec))];
    case 'rule.delete':
      return [ruleCommand(op.ns, 'del', op.rule)];
    case 'neigh.list':
      // `nud all`: without it ip 6.1 leaves out noarp and none entries, which a lookup by id needs.
      return [ip(namedOrHost(op.ns), '-j', 'neigh', 'show', 'nud', 'all', ...(op.link === undefined ? [] : ['dev', link(op.link)]))];
    case 'neigh.add':
      return [neighAdd(op.ns, op.spec, op.replace === true)];
    case 'neigh.delete':
      return [ip(namedOrHost(op.ns), 'neigh', 'del', ipAddr(op.address), 'dev', link(op.link))];
    case 'qdisc.show':
      return [tcIn(op.ns, '-s', '-j', 'qdisc', 'show', 'dev', link(op.dev))];
    case 'qdisc.classes':
      // iproute2 6.1 prints htb classes as text even with -j (recorded: test/fixtures/stdout/tc-class-show.txt).
      return [tcIn(op.ns, '-s', 'class', 'show', 'dev', link(op.dev))];
    case 'qdisc.filters':
      return [tcIn(op.ns, '-j', 'filter', 'show', 'dev', link(op.dev), ...(op.parent === 'ingress' ? ['ingress'] : ['parent', handle(op.parent)]))];
    case 'qdisc.replaceRoot':
      return [tcIn(op.ns, 'qdisc', 'replace', 'dev', link(op.dev), 'root', ...rootQdiscArgs(op.spec))];
    case 'qdisc.deleteRoot':
      return [tcIn(op.ns, 'qdisc', 'del', 'dev', link(op.dev), 'root')];
    case 'qdisc.addClass':
      return [
        tcIn(op.ns, 'class', 'add', 'dev', link(op.dev), 'parent', `${HTB_MAJOR}:`, 'classid', classId(op.cls.minor),
          'htb', 'rate', bits(op.cls.rateBits), 'ceil', bits(op.cls.ceilBits)),
      ];
    case 'qdisc.addFilter':
      return [tcIn(op.ns, 'filter', 'add', 'dev', link(op.dev), 'parent', `${HTB_MAJOR}:`, ...u32Args(op.prio, op.filter))];
    case 'qdisc.addIngress':
      return [tcIn(op.ns, 'qdisc', 'add', 'dev', link(op.dev), 'handle', 'ffff:', 'ingress')];
    case 'qdisc.deleteIngress':
      return [tcIn(op.ns, 'qdisc', 'del', 'dev', link(op.dev), 'ingress')];
    case 'qdisc.addRedirect':
      // Match-all (`match u32 0 0`: this kernel has no matchall classifier), then steal the packet
      // onto the ifb's egress, where its root qdisc shapes it; the ifb hands it back to the stack.
      return [
        tcIn(op.ns, 'filter', 'add', 'dev', link(op.dev), 'parent', 'ffff:', 'protocol', 'all', 'prio', '1',
          'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', link(op.to)),
      ];
    case 'nft.list':
      // `-j`: JSON (libnftables-json(5)); handles are always in JSON output (no `-a` needed).
      return [{ tool: 'nft', ...nftNetns(op.ns), args: ['-j', 'list', 'ruleset'] }];
    case 'nft.apply':
      return [nftApply(op.ns, op.commands, op.check === true)];
    case 'route.get':
      if (isIP(op.dst) !== op.family || (op.from !== undefined && isIP(op.from) !== op.family)) throw new AppError('INTERNAL', 'bad address in route.get', { cause: op });
      return [
        ip(namedOrHost(op.ns), '-j', op.family === 4 ? '-4' : '-6', 'route', 'get', op.dst,
          ...(op.from === undefined ? [] : ['from', op.from]), ...(op.iif === undefined ? [] : ['iif', link(op.iif)])),
      ];
    case 'diag.ping':
      return [inNs(op.ns, 'ping', pingArgs(op.spec))];
    case 'diag.tcpConnect':
      // `--` ends node's options: what follows is the probe's argv, never read as a node flag.
      return [inNs(op.ns, 'node', ['-e', TCP_PROBE_SOURCE, '--', ipAddr(op.address), int(op.port, 1, 65535), int(op.timeoutMs, 1, 60_000)])];
    case 'diag.sockets':
      // -H no header, -n numeric, -a listening and not, -t -u TCP and UDP, -p processes, -O one line each.
      return [inNs(op.ns, 'ss', ['-H', '-n', '-a', '-t', '-u', '-p', '-O'])];
    case 'diag.conntrack':
      return [inNs(op.ns, 'conntrack', ['-L', '-o', 'extended'])];
    case 'diag.exec': {
      const [file] = op.argv;
      if (file === undefined || !file.startsWith('/') || op.argv.some((a) => a.includes('\0'))) throw new AppError('INTERNAL', 'bad exec argv', { cause: op.argv });
      return [inNs(op.ns, 'program', op.argv)];
    }
    default:
      return unreachable(op);
  }
}

/** nft 1.0.6 has no `-n`: a namespace other than host is entered with `ip netns exec` (spawnArgv). */
function nftNetns(ns: string): { netns?: string } {
  const netns = namedOrHost(ns);
  return netns === undefined ? {} : { netns };
}

/**
 * `nft -j [-c] -f -` with the document on stdin: nft reads a whole file as one transaction (all
 * or nothing, in the kernel), and `-c` sends it to the kernel and aborts it (so it checks what
 * the kernel would refuse too: a missing chain, a NAT statement in a filter chain). The document
 * is JSON that this process serializes, so no value in it can become an nft option or file.
 */
function nftApply(ns: string, commands: readonly NftCommand[], check: boolean): Command {
  if (commands.length === 0) throw new AppError('INTERNAL', 'an empty nft transaction');
  return { tool: 'nft', ...nftNetns(ns), args: ['-j', ...(check ? ['-c'] : []), '-f', '-'], stdin: JSON.stringify({ nftables: commands }) };
}

/**
 * The `nftables` array of `nft -j list ruleset` (nftables 1.0.6: `{"nftables":[{"metainfo":...},
 * {"table":...}, {"chain":...}, {"rule":...}, ...]}`; fixture test/fixtures/stdout/nft-ruleset.json).
 */
export function parseNftRuleset(stdout: string): NftCommand[] {
  try {
    const v = JSON.parse(stdout) as { nftables?: unknown };
    if (Array.isArray(v.nftables)) return v.nftables.filter((x): x is NftCommand => typeof x === 'object' && x !== null && !Array.isArray(x));
  } catch {
    // fall through: not JSON
  }
  throw new AppError('INTERNAL', 'unexpected nft output', { cause: stdout.slice(0, 200) });
}

const RULE_WORD = /^[a-z0-9][a-z0-9_/.-]{0,31}$/;

/**
 * `[-6] rule add|del [not] pref P from F to T ... ACTION`: every attribute the rule has, so that a
 * delete matches this rule and no other. An IPv6 rule starts with `-6`: batch lines cannot set the
 * family (iproute2 6.1 reads every batch line as IPv4), so the executor spawns those.
 */
function ruleCommand(ns: string, verb: 'add' | 'del', r: KernelRule): Command {
  if (!(RULE_ACTIONS as readonly string[]).includes(r.action)) throw new AppError('INTERNAL', 'bad rule action in an op', { cause: r.action });
  const word = (w: string): string => {
    if (!RULE_WORD.test(w)) throw new AppError('INTERNAL', 'bad word in a rule op', { cause: w });
    return w;
  };
  const ports = (p: PortRange): string => (p.start === p.end ? int(p.start, 0, 65535) : `${int(p.start, 0, 65535)}-${int(p.end, 0, 65535)}`);
  const opt = <T>(key: string, v: T | null, f: (v: T) => string): string[] => (v === null ? [] : [key, f(v)]);
  const u32 = (n: number): string => `0x${Number(int(n, 0, 0xffffffff)).toString(16)}`;
  return ip(
    namedOrHost(ns),
    ...(r.family === 6 ? ['-6'] : []), 'rule', verb,
    ...(r.not ? ['not'] : []),
    'pref', int(r.priority, 0, 0xffffffff),
    ...opt('from', r.from, (p) => prefix(p, r.family)),
    ...opt('to', r.to, (p) => prefix(p, r.family)),
    ...opt('tos', r.tos, tos),
    ...(r.fwmark === null ? [] : ['fwmark', r.fwmask === null ? u32(r.fwmark) : `${u32(r.fwmark)}/${u32(r.fwmask)}`]),
    ...opt('iif', r.iif, link),
    ...opt('oif', r.oif, link),
    ...opt('uidrange', r.uidrange, (u) => `${int(u.start, 0, 0xffffffff)}-${int(u.end, 0, 0xffffffff)}`),
    ...opt('ipproto', r.ipproto, word),
    ...opt('sport', r.sport, ports),
    ...opt('dport', r.dport, ports),
    ...(r.l3mdev ? ['l3mdev'] : []),
    ...opt('realms', r.realms, word),
    ...opt('protocol', r.protocol, word),
    ...(r.action === 'lookup' || r.action === 'goto' ? [] : [r.action]),
    ...opt('table', r.table, (t) => int(t, 1, 0xffffffff)),
    ...opt('goto', r.goto, (g) => int(g, 0, 0xffffffff)),
    ...opt('suppress_prefixlength', r.suppressPrefixLength, (n) => int(n, 0, 128)),
    ...opt('suppress_ifgroup', r.suppressIfgroup, word),
  );
}

/**
 * `neigh add|replace ADDR lladdr MAC nud permanent dev LINK [router]`. `nud permanent` is ip's
 * default for add and replace (6.1), written out so the line says what it makes.
 */
function neighAdd(ns: string, spec: NeighAddSpec, replace: boolean): Command {
  if (isIP(spec.address) !== spec.family) throw new AppError('INTERNAL', 'bad neighbour address in an op', { cause: spec.address });
  if (spec.router && spec.family !== 6) throw new AppError('INTERNAL', 'the router flag is for IPv6 neighbours');
  return ip(
    namedOrHost(ns),
    'neigh', replace ? 'replace' : 'add', spec.address, 'lladdr', mac(spec.mac), 'nud', 'permanent', 'dev', link(spec.link),
    ...(spec.router ? ['router'] : []),
  );
}

/** A CIDR that goes into argv, of the family the op says (the family then follows from it: `default` would not say it). */
function prefix(p: string, family: 4 | 6): string {
  const slash = p.indexOf('/');
  const a = slash < 0 ? '' : p.slice(0, slash);
  const len = slash < 0 ? NaN : Number(p.slice(slash + 1));
  if (isIP(a) !== family || !Number.isInteger(len) || len < 0 || len > (family === 4 ? 32 : 128)) throw new AppError('INTERNAL', 'bad prefix in an op', { cause: p });
  return `${a}/${len}`;
}

function tos(t: string): string {
  if (!/^0x[0-9a-f]{1,2}$/.test(t)) throw new AppError('INTERNAL', 'bad tos in an op', { cause: t });
  return t;
}

/**
 * `route add|replace [TYPE] DST ...`. The destination is always a CIDR (`0.0.0.0/0`, `::/0` for
 * default), so the family is never in doubt; nexthops go last (`nexthop via GW dev D weight W`).
 */
function routeAdd(ns: string, spec: RouteSpec, replace: boolean): Command {
  if (!ROUTE_TYPES.includes(spec.type) || (spec.scope !== undefined && !ROUTE_SCOPES.includes(spec.scope))) throw new AppError('INTERNAL', 'bad route in an op', { cause: spec });
  const gw = (a: string): string => {
    if (isIP(a) !== spec.family) throw new AppError('INTERNAL', 'bad gateway in an op', { cause: a });
    return a;
  };
  return ip(
    namedOrHost(ns),
    'route', replace ? 'replace' : 'add', ...(spec.type === 'unicast' ? [] : [spec.type]), prefix(spec.dst, spec.family),
    ...(spec.via === undefined ? [] : ['via', gw(spec.via)]),
    ...(spec.dev === undefined ? [] : ['dev', link(spec.dev)]),
    ...(spec.src === undefined ? [] : ['src', gw(spec.src)]),
    ...(spec.metric === undefined ? [] : ['metric', int(spec.metric, 0, 0xffffffff)]),
    'table', int(spec.table, 1, 0xffffffff),
    ...(spec.scope === undefined ? [] : ['scope', spec.scope]),
    ...(spec.mtu === undefined ? [] : ['mtu', int(spec.mtu, 68, 0xffffffff)]),
    ...(spec.nexthops ?? []).flatMap((n) => [
      'nexthop',
      ...(n.via === undefined ? [] : ['via', gw(n.via)]),
      ...(n.dev === undefined ? [] : ['dev', link(n.dev)]),
      ...(n.weight === undefined ? [] : ['weight', int(n.weight, 1, 256)]),
    ]),
  );
}

/** A command inside namespace `ns` (none for `host`). */
function inNs(ns: string, tool: Tool, args: readonly string[]): Command {
  const netns = namedOrHost(ns);
  return netns === undefined ? { tool, args } : { tool, netns, args };
}

/** Seconds with millisecond precision, as ping's -i and -W take them (iputils 20221126 parses decimals). */
function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

/**
 * `ping -n -4|-6 -c N -i S -s BYTES -W S TARGET`: exactly N requests, then at most -W for the
 * last reply, so the run takes at most (N - 1) * interval + timeout (the spec's deadlineMs; the
 * executor's own timeout, deadlineMs + 2 s, is the backstop). No -w: with a deadline, iputils
 * waits for N *replies* and keeps sending until the deadline (10 sent for `-c 3 -w 2`).
 */
function pingArgs(p: PingSpec): string[] {
  return [
    '-n', p.family === 4 ? '-4' : '-6', '-c', int(p.count, 1, 100), '-i', seconds(Number(int(p.intervalMs, 1, 60_000))),
    '-s', int(p.size, 0, 65507), '-W', seconds(Number(int(p.timeoutMs, 1, 60_000))),
    ipAddr(p.target),
  ];
}

/**
 * The TCP probe, run as `node -e SOURCE -- ADDRESS PORT TIMEOUT_MS` inside the namespace: one
 * connect, then one JSON line `{outcome, errno, elapsedMs}` on stdout. A process of its own,
 * because a socket must be made inside the namespace and the daemon's event loop must never wait
 * for a connect; the source is this constant (no user text in it), the values are argv.
 */
export const TCP_PROBE_SOURCE = [
  "const [host, port, ms] = process.argv.slice(1);",
  "const t0 = process.hrtime.bigint();",
  "const done = (outcome, errno) => { process.stdout.write(JSON.stringify({ outcome, errno: errno ?? null, elapsedMs: Number(process.hrtime.bigint() - t0) / 1e6 }) + '\\n'); process.exit(0); };",
  "const s = require('node:net').connect({ host, port: Number(port) });",
  "const timer = setTimeout(() => { s.destroy(); done('timeout'); }, Number(ms));",
  "s.on('connect', () => { clearTimeout(timer); s.destroy(); done('connected'); });",
  "s.on('error', (e) => { clearTimeout(timer); done(e.code === 'ECONNREFUSED' ? 'refused' : ['EHOSTUNREACH', 'ENETUNREACH'].includes(e.code) ? 'unreachable' : 'error', e.code); });",
].join('\n');

function unreachable(x: never): never {
  throw new AppError('INTERNAL', 'unknown op', { cause: x });
}

/**
 * The version in `ip -V` / `tc -V` (`ip utility, iproute2-6.1.0, libbpf 1.1.2` -> `6.1.0`) or
 * `nft --version` (`nftables v1.0.6 (Lester Gooch #5)` -> `1.0.6`) output; else its first line.
 */
export function parseToolVersion(stdout: string): string | null {
  const m = /iproute2-(?:ss)?(\d[\w.]*)|nftables v(\d[\w.]*)|conntrack v(\d[\w.]*)/.exec(stdout);
  const version = m?.[1] ?? m?.[2] ?? m?.[3] ?? stdout.trim().split('\n')[0];
  return version === undefined || version === '' ? null : version;
}

/**
 * The nsid of `name` from `ip -j netns list` (`[{"name":"a","id":0},{"name":"b"}]`; a name
 * without `id` has no nsid: -1), or undefined when no such name is listed.
 * iproute2 6.1 prints nothing at all, not `[]`, when there are no namespaces.
 */
export function parseNetnsList(stdout: string, name: string): number | undefined {
  const list = parseJsonArray(stdout) as Array<{ name?: unknown; id?: unknown }>;
  const entry = list.find((e) => e.name === name);
  if (entry === undefined) return undefined;
  return typeof entry.id === 'number' ? entry.id : -1;
}

/** Link names from `ip -j link show` (`[{"ifindex":1,"ifname":"lo",...}]`). */
export function parseLinkNames(stdout: string): string[] {
  return (parseJsonArray(stdout) as Array<{ ifname?: unknown }>).flatMap((l) => (typeof l.ifname === 'string' ? [l.ifname] : []));
}

function parseJsonArray(stdout: string): unknown[] {
  if (stdout.trim() === '') return [];
  try {
    const v: unknown = JSON.parse(stdout);
    if (Array.isArray(v)) return v;
  } catch {
    // fall through: not JSON
  }
  throw new AppError('INTERNAL', 'unexpected tool output', { cause: stdout.slice(0, 200) });
}

type Json = Record<string, unknown>;
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);

/**
 * Links from `ip -j -d link show` (iproute2 6.1; fixtures in test/fixtures/stdout/links-*.json).
 * What it relies on:
 * - `linkinfo.info_kind` names the kind; tun and tap both say `tun`, with `info_data.type`.
 *   Devices without linkinfo are `loopback` (link_type) or plain `device` (eth0 & co.).
 * - IFLA_LINK (a veth's peer, a macvlan's lower device) is `"link": NAME` when it is in the same
 *   namespace, `"link_index"` + `"link_netnsid"` when it is in another, `"link": null` when unset.
 * - min_mtu/max_mtu of 0 mean "no limit" (lo, ifb).
 */
export function parseLinks(stdout: string): KernelLink[] {
  const raw = parseJsonArray(stdout) as Json[];
  const byName = new Map<string, number>();
  for (const l of raw) if (typeof l.ifname === 'string' && typeof l.ifindex === 'number') byName.set(l.ifname, l.ifindex);
  return raw.flatMap((l): KernelLink[] => {
    const index = num(l.ifindex);
    const name = str(l.ifname);
    if (index === null || name === null) return [];
    const flags = Array.isArray(l.flags) ? (l.flags as unknown[]) : [];
    const info = (l.linkinfo ?? {}) as Json;
    const data = (info.info_data ?? {}) as Json;
    let kind = str(info.info_kind) ?? (l.link_type === 'loopback' ? 'loopback' : 'device');
    if (kind === 'tun') kind = data.type === 'tap' ? 'tap' : 'tun';
    const linkIndex = num(l.link_index);
    const linkName = str(l.link);
    const lower =
      linkIndex !== null
        ? { index: linkIndex, name: null, netnsid: num(l.link_netnsid) }
        : linkName !== null
          ? { index: byName.get(linkName) ?? -1, name: linkName, netnsid: null }
          : null;
    const minMtu = num(l.min_mtu);
    const maxMtu = num(l.max_mtu);
    const base: KernelLink = {
      index,
      name,
      kind,
      up: flags.includes('UP'),
      operstate: str(l.operstate) ?? 'UNKNOWN',
      mtu: num(l.mtu) ?? 0,
      minMtu: minMtu === null || (minMtu === 0 && maxMtu === 0) ? null : minMtu,
      maxMtu: maxMtu === null || maxMtu === 0 ? null : maxMtu,
      mac: str(l.address),
      txqlen: num(l.txqlen),
      alias: str(l.ifalias),
      master: str(l.master),
      lower,
    };
    switch (kind) {
      case 'bridge':
        return [{ ...base, bridge: { stp: num(data.stp_state) === 1, vlanFiltering: num(data.vlan_filtering) === 1 } }];
      case 'macvlan':
        return [{ ...base, macvlan: { mode: str(data.mode) ?? 'vepa' } }];
      case 'vxlan':
        return [
          {
            ...base,
            vxlan: {
              vni: num(data.id) ?? 0,
              local: str(data.local) ?? str(data.local6),
              remote: str(data.remote) ?? str(data.remote6),
              group: str(data.group) ?? str(data.group6),
              dstport: num(data.port) ?? 0,
              parent: str(data.link),
            },
          },
        ];
      case 'tun':
      case 'tap':
        return [
          { ...base, tun: { persist: data.persist === true, multiQueue: data.multi_queue === true, vnetHdr: data.vnet_hdr === true, pi: data.pi === true } },
        ];
      default:
        return [base];
    }
  });
}

/** The counters of the one link in `ip -s -s -j link show dev NAME` (`stats64`). */
export function parseLinkStats(stdout: string): LinkCounters {
  const [l] = parseJsonArray(stdout) as Json[];
  const s = (l?.stats64 ?? l?.stats) as { rx?: Json; tx?: Json } | undefined;
  if (!s?.rx || !s.tx) throw new AppError('INTERNAL', 'no counters in the tool output', { cause: stdout.slice(0, 200) });
  const n = (v: unknown): number => num(v) ?? 0;
  return {
    rxBytes: n(s.rx.bytes),
    txBytes: n(s.tx.bytes),
    rxPackets: n(s.rx.packets),
    txPackets: n(s.tx.packets),
    rxErrors: n(s.rx.errors),
    txErrors: n(s.tx.errors),
    rxDropped: n(s.rx.dropped),
    txDropped: n(s.tx.dropped),
    multicast: n(s.rx.multicast),
    collisions: n(s.tx.collisions),
  };
}

/**
 * From `ip -n NS -j netns list`: the nsid NS has for each named namespace (names without `id`
 * have none there and are left out). These are NS's nsids, not the root namespace's.
 */
export function parseNsids(stdout: string): Array<{ nsid: number; name: string }> {
  return (parseJsonArray(stdout) as Json[]).flatMap((e) => (typeof e.name === 'string' && typeof e.id === 'number' ? [{ nsid: e.id, name: e.name }] : []));
}

/** A lifetime in seconds; iproute2 prints forever as 4294967295 (INFINITY_LIFE_TIME). */
const lifetime = (v: unknown): number | null => (typeof v === 'number' && v !== 4294967295 ? v : null);
/** addr_info keys that are not flags. */
const ADDR_FIELDS = new Set(['family', 'local', 'address', 'prefixlen', 'broadcast', 'scope', 'label', 'valid_life_time', 'preferred_life_time', 'anycast', 'metric']);

/**
 * Addresses from `ip -j address show` (iproute2 6.1; fixture test/fixtures/stdout/addresses.json).
 * What it relies on: each link has `addr_info`; `local` is the address and `address` the peer
 * (present only for a point-to-point address); IFA_F_* flags are `"NAME": true` keys
 * (`tentative`, `nodad`, `dadfailed`, `secondary`, ...; `dynamic` when not permanent); IPv6
 * addresses have no `label`.
 */
export function parseAddresses(stdout: string): KernelAddress[] {
  return (parseJsonArray(stdout) as Json[]).flatMap((l) => {
    const ifindex = num(l.ifindex);
    const name = str(l.ifname);
    if (ifindex === null || name === null || !Array.isArray(l.addr_info)) return [];
    return (l.addr_info as Json[]).flatMap((a): KernelAddress[] => {
      const family = a.family === 'inet' ? 4 : a.family === 'inet6' ? 6 : null;
      const local = str(a.local);
      const prefixLength = num(a.prefixlen);
      if (family === null || local === null || prefixLength === null) return [];
      const peer = str(a.address);
      return [
        {
          ifindex,
          link: name,
          family,
          local,
          prefixLength,
          peer: peer === local ? null : peer,
          broadcast: str(a.broadcast),
          scope: str(a.scope) ?? 'global',
          label: str(a.label),
          flags: Object.keys(a).filter((k) => !ADDR_FIELDS.has(k) && a[k] === true).sort(),
          validLifetime: lifetime(a.valid_life_time),
          preferredLifetime: lifetime(a.preferred_life_time),
        },
      ];
    });
  });
}

/** Table names iproute2 prints (from /etc/iproute2/rt_tables); a table without a name is its number. */
const TABLE_NAMES: Record<string, number> = { main: TABLE_MAIN, local: TABLE_LOCAL, default: 253 };

/**
 * Routes from `ip -j -4|-6 route show table T` (iproute2 6.1; fixtures test/fixtures/stdout/routes-*.json).
 * What it relies on: `dst` is `default`, a CIDR, or a bare address (a host route); `table` is
 * left out for main when one table was asked for, and is a name or a number string otherwise;
 * `type` is left out for unicast; `metric` is left out when 0; `gateway` is the via, `prefsrc`
 * the src; `metrics: [{ mtu }]`; multipath routes have `nexthops` instead of gateway/dev.
 */
export function parseRoutes(stdout: string, family: 4 | 6, table: number | 'all'): KernelRoute[] {
  const bits = family === 4 ? 32 : 128;
  return (parseJsonArray(stdout) as Json[]).flatMap((r): KernelRoute[] => {
    const d = str(r.dst);
    if (d === null) return [];
    const dst = d === 'default' ? (family === 4 ? '0.0.0.0/0' : '::/0') : d.includes('/') ? d : `${d}/${bits}`;
    const t = r.table;
    const tableId = t === undefined ? (table === 'all' ? TABLE_MAIN : table) : typeof t === 'string' ? (TABLE_NAMES[t] ?? Number(t)) : num(t) ?? TABLE_MAIN;
    const metrics = Array.isArray(r.metrics) ? (r.metrics as Json[]) : [];
    const mtu = metrics.map((m) => num(m.mtu)).find((m) => m !== null) ?? null;
    const nexthops = Array.isArray(r.nexthops)
      ? (r.nexthops as Json[]).map((n) => ({ via: str(n.gateway), dev: str(n.dev), weight: num(n.weight) ?? 1 }))
      : null;
    return [
      {
        family,
        table: tableId,
        dst,
        metric: num(r.metric) ?? 0,
        tos: str(r.tos),
        type: str(r.type) ?? 'unicast',
        via: str(r.gateway),
        dev: str(r.dev),
        src: str(r.prefsrc),
        scope: str(r.scope) ?? 'global',
        protocol: str(r.protocol) ?? 'boot',
        mtu,
        nexthops,
        flags: Array.isArray(r.flags) ? (r.flags as unknown[]).filter((f): f is string => typeof f === 'string') : [],
      },
    ];
  });
}

/** A number iproute2 prints in hex (`"0x10"`). */
const hex = (v: unknown): number | null => (typeof v === 'string' && /^0x[0-9a-f]{1,8}$/i.test(v) ? parseInt(v.slice(2), 16) : num(v));

/**
 * Rules from `ip -j -4|-6 rule show` (iproute2 6.1; fixtures test/fixtures/stdout/rules-*.json).
 * What it relies on: `src`/`dst` are `all` or an address with `srclen`/`dstlen` (absent for a
 * host); `table` is a name (local, main, default) or a number string; `action` is absent for
 * lookup and goto (`goto: N`); a flag the kernel sets is a key with a null value (`not`, `nop`,
 * `l3mdev`, `unresolved`, `iif_detached`); a port range is `sport_start`/`sport_end`, or `sport`
 * for one port; `fwmask` is absent for the whole mark.
 */
export function parseRules(stdout: string, family: 4 | 6): KernelRule[] {
  const bits = family === 4 ? 32 : 128;
  const flag = (r: Json, k: string): boolean => k in r;
  const cidr = (a: unknown, len: unknown): string | null => {
    const s = str(a);
    return s === null || s === 'all' ? null : `${s}/${num(len) ?? bits}`;
  };
  const range = (r: Json, k: string): PortRange | null => {
    const one = num(r[k]);
    if (one !== null) return { start: one, end: one };
    const start = num(r[`${k}_start`]);
    const end = num(r[`${k}_end`]);
    return start === null || end === null ? null : { start, end };
  };
  return (parseJsonArray(stdout) as Json[]).flatMap((r): KernelRule[] => {
    const priority = num(r.priority);
    if (priority === null) return [];
    const t = str(r.table);
    const table = t === null ? null : (TABLE_NAMES[t] ?? (/^\d+$/.test(t) ? Number(t) : null));
    const g = num(r.goto);
    const action = str(r.action) ?? (flag(r, 'nop') ? 'nop' : g !== null ? 'goto' : 'lookup');
    const uid = range(r, 'uid');
    const realms = str(r.flow_from) !== null || str(r.flow_to) !== null ? `${str(r.flow_from) ?? '0'}/${str(r.flow_to) ?? '0'}` : null;
    return [
      {
        family, priority, not: flag(r, 'not'), from: cidr(r.src, r.srclen), to: cidr(r.dst, r.dstlen), iif: str(r.iif), oif: str(r.oif),
        fwmark: hex(r.fwmark), fwmask: hex(r.fwmask), tos: str(r.tos), ipproto: str(r.ipproto), sport: range(r, 'sport'), dport: range(r, 'dport'),
        uidrange: uid, l3mdev: flag(r, 'l3mdev'), action, table, goto: g, suppressPrefixLength: num(r.suppress_prefixlen),
        suppressIfgroup: str(r.suppress_ifgroup), realms, protocol: str(r.protocol),
        flags: ['unresolved', 'iif_detached', 'oif_detached'].filter((f) => flag(r, f)),
      },
    ];
  });
}

/**
 * Neighbour entries from `ip -j neigh show nud all [dev LINK]` (iproute2 6.1; fixtures
 * test/fixtures/stdout/neighbors*.json). What it relies on: `dst` is the address; `dev` is left
 * out when one link was asked for (then `link` names it); `lladdr` is left out when there is none
 * (incomplete, failed); `state` is a list of upper-case NUD names; NTF_* flags are keys whose
 * value is null (`"router": null`, `"extern_learn": null`, ...). Entries of other families
 * (bridge fdb entries are not listed here) are skipped.
 */
export function parseNeighbors(stdout: string, link?: string): KernelNeighbor[] {
  return (parseJsonArray(stdout) as Json[]).flatMap((n): KernelNeighbor[] => {
    const address = str(n.dst);
    const dev = str(n.dev) ?? link ?? null;
    const family = address === null ? 0 : isIP(address);
    if (address === null || dev === null || (family !== 4 && family !== 6)) return [];
    const states = (Array.isArray(n.state) ? (n.state as unknown[]) : [])
      .filter((x): x is string => typeof x === 'string')
      .map((x) => x.toLowerCase());
    return [
      {
        link: dev,
        family,
        address,
        mac: str(n.lladdr),
        states,
        flags: Object.keys(n).filter((k) => n[k] === null).sort(),
      },
    ];
  });
}

const counters = (q: Json): QdiscCounters => ({
  bytes: num(q.bytes) ?? 0,
  packets: num(q.packets) ?? 0,
  drops: num(q.drops) ?? 0,
  overlimits: num(q.overlimits) ?? 0,
  requeues: num(q.requeues) ?? 0,
  backlog: num(q.backlog) ?? 0,
  qlen: num(q.qlen) ?? 0,
});

/** `tc -s -j qdisc show dev X` (iproute2 6.1): rates in bytes/s, times in µs, counters beside. */
export function parseQdiscs(stdout: string): KernelQdisc[] {
  return (parseJsonArray(stdout) as Json[]).flatMap((q): KernelQdisc[] => {
    const kind = str(q.kind);
    const h = str(q.handle);
    if (kind === null || h === null) return [];
    const options = q.options !== null && typeof q.options === 'object' ? (q.options as Json) : {};
    return [{ kind, handle: h, root: q.root === true, parent: str(q.parent), options, counters: counters(q) }];
  });
}

const CLASS_HEAD = /^class (\S+) (\S+) (?:root|parent (\S+))(.*)$/;
const CLASS_SENT = /^\s*Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+) requeues (\d+)\)/;
const CLASS_BACKLOG = /^\s*backlog (\d+)b (\d+)p/;

/**
 * `tc -s class show dev X`, which iproute2 6.1 prints as text even with -j: a block per class,
 * `class htb 1:10 root prio 0 rate 1Mbit ceil 2Mbit ...`, then `Sent N bytes M pkt (dropped D,
 * overlimits O requeues R)` and `backlog Bb Pp requeues R`.
 */
export function parseClasses(stdout: string): KernelClass[] {
  const out: Array<{ -readonly [K in keyof KernelClass]: KernelClass[K] }> = [];
  for (const line of stdout.split('\n')) {
    const head = CLASS_HEAD.exec(line);
    if (head) {
      const rest = head[4] ?? '';
      out.push({
        kind: head[1]!, id: head[2]!, parent: head[3] ?? null,
        rate: / rate (\S+)/.exec(rest)?.[1] ?? null, ceil: / ceil (\S+)/.exec(rest)?.[1] ?? null,
        counters: { bytes: 0, packets: 0, drops: 0, overlimits: 0, requeues: 0, backlog: 0, qlen: 0 },
      });
      continue;
    }
    const cur = out[out.length - 1];
    if (!cur) continue;
    const sent = CLASS_SENT.exec(line);
    if (sent) cur.counters = { ...cur.counters, bytes: Number(sent[1]), packets: Number(sent[2]), drops: Number(sent[3]), overlimits: Number(sent[4]), requeues: Number(sent[5]) };
    const backlog = CLASS_BACKLOG.exec(line);
    if (backlog) cur.counters = { ...cur.counters, backlog: Number(backlog[1]), qlen: Number(backlog[2]) };
  }
  return out;
}

/**
 * `tc -j filter show dev X parent P|ingress` (iproute2 6.1): the u32 hash-table heads come first
 * (no `flowid`, no actions) and are left out. A u32 rule's `match` keys repeat in one object,
 * which JSON.parse folds to the last: the matches are not read from here (netnsd keeps what it set).
 */
export function parseFilters(stdout: string): KernelFilter[] {
  return (parseJsonArray(stdout) as Json[]).flatMap((f): KernelFilter[] => {
    const o = f.options !== null && typeof f.options === 'object' ? (f.options as Json) : undefined;
    if (!o) return [];
    const actions = Array.isArray(o.actions) ? (o.actions as Json[]) : [];
    const flowid = str(o.flowid) ?? str(o.classid);
    const redirect = actions.find((a) => a.kind === 'mirred');
    if (flowid === null && actions.length === 0) return [];
    return [{ kind: str(f.kind) ?? '?', protocol: str(f.protocol) ?? 'all', pref: num(f.pref) ?? 0, flowid, redirectTo: redirect ? str(redirect.to_dev) : null }];
  });
}

/** A sysctl key as a path under /proc/sys/net: letters, digits, `_ - .` and `/` separators, no `..`. */
export function sysctlPath(key: string): string {
  if (!/^(ipv4|ipv6|core)\/[A-Za-z0-9_./-]{1,200}$/.test(key) || key.includes('..') || key.includes('//')) {
    throw new AppError('INTERNAL', 'refusing a sysctl key outside /proc/sys/net');
  }
  return key;
}
