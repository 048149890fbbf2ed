/**
 * The only file that knows iproute2, tc and nft words: typed ops in, command lines out, plus the
 * readers of the little tool output the fallback paths need. Everything here is checked against
 * iproute2 6.1 and nftables 1.0.6 (Debian 12); a fact that depends on a version says so.
 */
import { accessSync, constants } from 'node:fs';
import { AppError } from '../errors/app-error.js';
import { isNamespaceName } from '../names.js';
import {
  HOST,
  PROBE_VETH,
  type Op,
  type ProbeClassifier,
  type ProbeLinkFeature,
  type ProbeLinkKind,
  type ProbeQdisc,
} from './ops.js';

export type Tool = 'ip' | 'tc' | 'nft';

/** One invocation of a tool, before it is turned into a spawn argv or a batch line. */
export interface Command {
  readonly tool: Tool;
  /** Run inside this named namespace; absent = the daemon's own (root) namespace. */
  readonly netns?: string;
  readonly args: readonly string[];
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
  const file = toolPath(cmd.tool);
  if (cmd.netns === undefined) return [file, ...cmd.args];
  if (cmd.tool === 'nft') return [toolPath('ip'), 'netns', 'exec', cmd.netns, file, ...cmd.args];
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

const ip = (netns: string | undefined, ...args: string[]): Command => (netns === undefined ? { tool: 'ip', args } : { tool: 'ip', netns, args });
const tc = (netns: string, ...args: string[]): Command => ({ tool: 'tc', netns, args });

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
    case 'probe.tools':
      return [
        { tool: 'ip', args: ['-V'] },
        { tool: 'tc', args: ['-V'] },
        { tool: 'nft', args: ['--version'] },
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
    default:
      return unreachable(op);
  }
}

function unreachable(x: never): never {
  throw new AppError('INTERNAL', 'unknown op', { cause: x });
}

/**
 * The version in `ip -V` / `tc -V` (`ip utility, iproute2-6.1.0, libbpf 1.1.2` -> `6.1.0`) or
 * `nft --version` (`nftables v1.0.6 (Lester Gooch #5)` -> `1.0.6`) output; else its first line.
 */
export function parseToolVersion(stdout: string): string | null {
  const m = /iproute2-(?:ss)?(\d[\w.]*)|nftables v(\d[\w.]*)/.exec(stdout);
  const version = m?.[1] ?? m?.[2] ?? stdout.trim().split('\n')[0];
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
