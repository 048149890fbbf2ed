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
  /** `ip netns add NAME` (root batch worker). */
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
  | { readonly kind: 'probe.nftables'; readonly ns: string };

export type OpKind = Op['kind'];
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
}

export interface ProbeResult {
  readonly supported: boolean;
  /** The tool's message when unsupported (for the log and capabilities). */
  readonly reason?: string;
}

/** What each op kind resolves to. */
export interface OpResults {
  'netns.add': void;
  'netns.delete': void;
  'netns.assignNsid': { readonly nsid: number };
  'netns.getNsid': { readonly nsid: number };
  'netns.loopbackUp': void;
  'netns.linkNames': { readonly names: readonly string[] };
  'netns.pids': { readonly pids: readonly number[] };
  'netns.killPids': void;
  'probe.tools': ToolVersions;
  'probe.linkKind': ProbeResult;
  'probe.linkFeature': ProbeResult;
  'probe.qdisc': ProbeResult;
  'probe.classifier': ProbeResult;
  'probe.nftables': ProbeResult;
}

export type ResultOf<O extends Op> = OpResults[O['kind']];

/** The namespace an op acts in: the pool's FIFO key. */
export function opNamespace(op: Op): string {
  return 'ns' in op ? op.ns : HOST;
}

/** Ops that only read: they may be answered while the pool drains, and are not audited. */
export function isReadOp(op: Op): boolean {
  return (
    op.kind === 'netns.getNsid' ||
    op.kind === 'netns.linkNames' ||
    op.kind === 'netns.pids' ||
    op.kind === 'probe.tools'
  );
}
