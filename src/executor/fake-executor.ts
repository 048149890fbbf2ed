/**
 * Executors for unit tests (no root, no processes), after undici's MockAgent: scripted replies
 * consumed in order, repeatable defaults, a call history, and a check that nothing scripted was
 * left unused. `FakeExecutor.kernel()` adds an in-memory model of namespaces for service tests
 * and the OpenAPI generator.
 *
 * Neither calls `ctx.record`: the pool records ops an executor does not record itself.
 */
import { AppError } from '../errors/app-error.js';
import { commandsFor } from './argv.js';
import type { Executor } from './executor.js';
import { FakeAddressTable } from './fake-addresses.js';
import { FakeNeighborTable } from './fake-neighbors.js';
import { FakeRouteTable } from './fake-routes.js';
import { FakeRuleTable } from './fake-rules.js';
import { FakeQdiscTable } from './fake-qdiscs.js';
import { FakeNftTable } from './fake-nft.js';
import { type FakeLink, type FakeLinkSpace, FakeLinkTable } from './fake-links.js';
import { HOST, type KernelNeighbor, type Op, type OpKind, type OpOf, type OpResults, type ResultOf } from './ops.js';

/** A reply: the result, an AppError to reject with, or a function of the op giving either (or a promise of the result). */
export type FakeReply<K extends OpKind> =
  | OpResults[K]
  | AppError
  | ((op: OpOf<K>) => OpResults[K] | AppError | Promise<OpResults[K]>);

/** Which ops an expectation takes: fields that must be equal (===), or a predicate. */
export type FakeMatcher<K extends OpKind> = Partial<OpOf<K>> | ((op: OpOf<K>) => boolean);

export interface FakeExecutorOptions {
  /** Wait this long (ms) before answering each op, e.g. to make ops overlap in pool tests. */
  readonly delayMs?: number | ((op: Op) => number);
}

interface Expectation {
  readonly kind: OpKind;
  readonly matcher: FakeMatcher<OpKind> | undefined;
  readonly reply: FakeReply<OpKind>;
}

export class FakeExecutor implements Executor {
  /** Every op run, in the order run() was called. */
  readonly calls: Op[] = [];
  /** When set, ping() rejects with it. */
  pingError: AppError | undefined;
  private readonly expectations: Expectation[] = [];
  private readonly defaults = new Map<OpKind, FakeReply<OpKind>>();
  private readonly delayMs: FakeExecutorOptions['delayMs'];
  private isClosed = false;

  constructor(options: FakeExecutorOptions = {}) {
    this.delayMs = options.delayMs;
  }

  /** A FakeExecutor that also simulates namespaces (see FakeKernel). */
  static kernel(options: FakeExecutorOptions = {}): FakeKernel {
    return new FakeKernel(options);
  }

  /**
   * Scripts one reply for the next op of `kind` (matching `matcher`). Expectations are consumed
   * in the order they were added; the first unused one that matches answers.
   */
  expect<K extends OpKind>(kind: K, reply?: FakeReply<K>): this;
  expect<K extends OpKind>(kind: K, matcher: FakeMatcher<K> | undefined, reply: FakeReply<K>): this;
  expect<K extends OpKind>(kind: K, ...rest: [FakeReply<K>?] | [FakeMatcher<K> | undefined, FakeReply<K>]): this {
    const [matcher, reply] = rest.length === 2 ? rest : [undefined, rest[0]];
    this.expectations.push({ kind, matcher: matcher as FakeMatcher<OpKind> | undefined, reply: reply as FakeReply<OpKind> });
    return this;
  }

  /** The reply for every op of `kind` that no expectation takes. */
  default<K extends OpKind>(kind: K, reply: FakeReply<K>): this {
    this.defaults.set(kind, reply as FakeReply<OpKind>);
    return this;
  }

  /** Throws when a scripted reply was never used. */
  assertDone(): void {
    if (this.expectations.length > 0) {
      const left = this.expectations.map((e) => (e.matcher && typeof e.matcher === 'object' ? `${e.kind} ${JSON.stringify(e.matcher)}` : e.kind));
      throw new Error(`FakeExecutor: ${left.length} scripted replies were not used: ${left.join(', ')}`);
    }
  }

  get closed(): boolean {
    return this.isClosed;
  }

  async run<O extends Op>(op: O): Promise<ResultOf<O>> {
    if (this.isClosed) throw new AppError('EXECUTOR_UNAVAILABLE', 'the executor is closed');
    this.calls.push(op);
    // The reply is chosen now, so scripted order is call order even when delays overlap.
    const i = this.expectations.findIndex((e) => e.kind === op.kind && matches(e.matcher, op));
    const scripted = i >= 0 || this.defaults.has(op.kind);
    const reply = i >= 0 ? this.expectations.splice(i, 1)[0]?.reply : this.defaults.get(op.kind);
    const delay = typeof this.delayMs === 'function' ? this.delayMs(op) : this.delayMs;
    if (delay) await new Promise((r) => setTimeout(r, delay));
    if (!scripted) return this.simulate(op) as ResultOf<O>;
    const value = typeof reply === 'function' ? await (reply as (op: Op) => unknown)(op) : reply;
    if (value instanceof AppError) throw value;
    return value as ResultOf<O>;
  }

  async ping(): Promise<void> {
    if (this.pingError) throw this.pingError;
  }

  async close(): Promise<void> {
    this.isClosed = true;
  }

  /** Answers ops nothing was scripted for; the plain fake has no answer. */
  protected simulate(op: Op): unknown {
    throw new AppError('INTERNAL', `FakeExecutor: no reply scripted for ${op.kind}`);
  }
}

function matches(matcher: FakeMatcher<OpKind> | undefined, op: Op): boolean {
  if (matcher === undefined) return true;
  if (typeof matcher === 'function') return (matcher as (op: Op) => boolean)(op);
  return Object.entries(matcher).every(([k, v]) => (op as unknown as Record<string, unknown>)[k] === v);
}

/** One simulated namespace. */
export interface FakeNamespace {
  nsid: number;
  pids: number[];
  /** Names of its links (kept in step with the link table; given to addNamespace: plain devices). */
  links: string[];
  loopbackUp: boolean;
}

/**
 * Namespaces in memory, with the real executor's error codes: NAMESPACE_EXISTS on adding a name
 * twice, NAMESPACE_NOT_FOUND for a missing one, INTERNAL for a name argv.ts would refuse.
 * Probes answer "supported". Scripted expectations and defaults still take precedence, so a test
 * can make one op fail.
 */
export class FakeKernel extends FakeExecutor {
  private readonly namespaces = new Map<string, FakeNamespace & FakeLinkSpace>();
  private nextNsid = 0;
  private readonly hostSpace: FakeLinkSpace = { label: HOST, nsid: -1 };
  /** The links of every namespace (see fake-links.ts). */
  private readonly linkTable = new FakeLinkTable(this.hostSpace, (space) => {
    if (space.nsid < 0) space.nsid = this.nextNsid++;
    return space.nsid;
  });

  /** The addresses of every namespace's links (see fake-addresses.ts). */
  private readonly addrTable = new FakeAddressTable<FakeLinkSpace>();
  /** The routes of every namespace (see fake-routes.ts). */
  private readonly routeTable = new FakeRouteTable<FakeLinkSpace>();
  /** The policy rules of every namespace (see fake-rules.ts). */
  private readonly ruleTable = new FakeRuleTable<FakeLinkSpace>();
  /** The neighbour entries of every namespace (see fake-neighbors.ts). */
  private readonly neighTable = new FakeNeighborTable<FakeLinkSpace>();
  /** The qdiscs of every link (see fake-qdiscs.ts), by namespace name and link name. */
  private readonly qdiscTable = new FakeQdiscTable((ns, dev) => this.linkTable.find(this.space(ns), dev) !== undefined);
  /** The nftables rulesets of every namespace (see fake-nft.ts). */
  private readonly nftTable = new FakeNftTable<FakeLinkSpace>();

  constructor(options: FakeExecutorOptions = {}) {
    super(options);
    this.linkTable.addSpace(this.hostSpace, ['lo', 'eth0']);
  }

  /** Links of the root namespace (`host`): `lo` and `eth0` (up) to begin with. */
  get hostLinks(): string[] {
    return this.linkTable.names(this.hostSpace);
  }

  /** Adds a namespace as if something else had made it (unmanaged, no nsid unless given). */
  addNamespace(name: string, init: Partial<FakeNamespace> = {}): this {
    const ns = { nsid: -1, pids: [], links: ['lo'], loopbackUp: false, ...init, label: name };
    this.namespaces.set(name, ns);
    this.linkTable.addSpace(ns, ns.links);
    return this;
  }

  /** A simulated link (`host` allowed), e.g. to change its counters; undefined when missing. */
  link(ns: string, name: string): FakeLink | undefined {
    const space = ns === HOST ? this.hostSpace : this.namespaces.get(ns);
    return space ? this.linkTable.find(space, name) : undefined;
  }

  setPids(name: string, pids: readonly number[]): this {
    this.get(name).pids = [...pids];
    return this;
  }

  /** The simulated namespace, or undefined: the same object until the name is deleted and made again. */
  namespace(name: string): Readonly<FakeNamespace> | undefined {
    return this.namespaces.get(name);
  }

  namespaceNames(): string[] {
    return [...this.namespaces.keys()].sort();
  }

  protected override simulate(op: Op): unknown {
    commandsFor(op); // the real executor's name checks
    switch (op.kind) {
      case 'netns.add':
        if (this.namespaces.has(op.ns)) throw new AppError('NAMESPACE_EXISTS', `namespace "${op.ns}" already exists`);
        this.addNamespace(op.ns);
        return undefined;
      case 'netns.delete':
        this.addrTable.removeSpace(this.get(op.ns));
        this.routeTable.removeSpace(this.get(op.ns));
        this.ruleTable.removeSpace(this.get(op.ns));
        this.neighTable.removeSpace(this.get(op.ns));
        this.nftTable.removeSpace(this.get(op.ns));
        this.linkTable.removeSpace(this.get(op.ns));
        this.qdiscTable.forget(op.ns);
        this.namespaces.delete(op.ns);
        this.syncNames();
        return undefined;
      case 'netns.assignNsid': {
        const ns = this.get(op.ns);
        if (ns.nsid < 0) ns.nsid = this.nextNsid++;
        return { nsid: ns.nsid };
      }
      case 'netns.getNsid':
        return { nsid: this.get(op.ns).nsid };
      case 'netns.loopbackUp': {
        const ns = this.get(op.ns);
        ns.loopbackUp = true;
        const lo = this.linkTable.find(ns, 'lo');
        if (lo) lo.up = true;
        return undefined;
      }
      case 'netns.linkNames':
        return { names: this.linkTable.names(this.space(op.ns)) };
      case 'netns.pids':
        return { pids: [...this.get(op.ns).pids] };
      case 'sysctl.read': {
        const space = this.space(op.ns);
        const values = this.sysctlsOf(space);
        return { values: op.keys.map((k) => (this.sysctlExists(space, k) ? `${values.get(k) ?? '0'}\n` : null)) };
      }
      case 'sysctl.write': {
        const space = this.space(op.ns);
        for (const [k, v] of op.entries) {
          if (!this.sysctlExists(space, k)) throw new AppError('INTERNAL', `no sysctl ${k}`);
          this.sysctlsOf(space).set(k, v);
        }
        return undefined;
      }
      case 'netns.killPids': {
        const ns = this.get(op.ns);
        ns.pids = ns.pids.filter((p) => !op.pids.includes(p));
        return undefined;
      }
      case 'probe.tools':
        return { ip: '6.1.0', tc: '6.1.0', nft: '1.0.6', conntrack: '1.4.7' };
      case 'probe.linkKind':
      case 'probe.linkFeature':
      case 'probe.qdisc':
      case 'probe.classifier':
      case 'probe.nftables':
        this.get(op.ns);
        return { supported: true };
      case 'link.list':
        return { links: this.linkTable.list(this.space(op.ns), op.name) };
      case 'link.nsids':
        return { nsids: this.linkTable.nsids(this.space(op.ns), this.namespaces) };
      case 'link.stats':
        return this.linkTable.stats(this.space(op.ns), op.name);
      case 'link.add':
        this.linkTable.add(this.space(op.ns), op.spec, op.spec.linkKind === 'veth' ? this.space(op.spec.peer.ns) : undefined);
        this.syncNames();
        return undefined;
      case 'link.set':
        this.linkTable.set(this.space(op.ns), op.name, op.change);
        return undefined;
      case 'link.move':
        this.linkTable.move(this.space(op.ns), op.name, this.space(op.to), op.newName);
        this.qdiscTable.forget(op.ns, op.name);
        this.syncNames();
        return undefined;
      case 'link.delete':
        this.linkTable.delete(this.space(op.ns), op.name);
        this.qdiscTable.forget(op.ns, op.name);
        this.syncNames();
        return undefined;
      case 'addr.list':
        return { addresses: this.addrTable.list(this.space(op.ns), this.linkTable.list(this.space(op.ns)), op.link) };
      case 'addr.add':
        this.addrTable.add(this.space(op.ns), this.linkTable.list(this.space(op.ns)), op.spec);
        return undefined;
      case 'addr.delete':
        this.addrTable.delete(this.space(op.ns), this.linkTable.list(this.space(op.ns)), op.link, op.local, op.prefixLength, op.peer);
        return undefined;
      case 'route.list': {
        const sp = this.space(op.ns);
        const links = this.linkTable.list(sp);
        return { routes: this.routeTable.list(sp, links, this.addrTable.list(sp, links), op.family, op.table) };
      }
      case 'route.add': {
        const sp = this.space(op.ns);
        const links = this.linkTable.list(sp);
        this.routeTable.add(sp, links, this.addrTable.list(sp, links), op.spec, op.replace === true);
        return undefined;
      }
      case 'route.delete':
        this.routeTable.delete(this.space(op.ns), this.linkTable.list(this.space(op.ns)), op.key);
        return undefined;
      case 'rule.list':
        return { rules: this.ruleTable.list(this.space(op.ns), this.linkTable.list(this.space(op.ns)), op.family) };
      case 'rule.add':
        this.ruleTable.add(this.space(op.ns), op.spec);
        return undefined;
      case 'rule.delete':
        this.ruleTable.delete(this.space(op.ns), op.rule);
        return undefined;
      case 'neigh.list':
        return { neighbors: this.neighTable.list(this.space(op.ns), this.linkTable.list(this.space(op.ns)), op.link) };
      case 'neigh.add': {
        const sp = this.space(op.ns);
        const disabled = (link: string): boolean => ['all', link].some((x) => this.sysctlsOf(sp).get(`ipv6/conf/${x}/disable_ipv6`) === '1');
        this.neighTable.add(sp, this.linkTable.list(sp), op.spec, op.replace === true, disabled);
        return undefined;
      }
      case 'neigh.delete':
        this.neighTable.delete(this.space(op.ns), this.linkTable.list(this.space(op.ns)), op.link, op.address);
        return undefined;
      case 'nft.list':
        return { ruleset: this.nftTable.list(this.space(op.ns)) };
      case 'nft.apply':
        this.nftTable.apply(this.space(op.ns), op.commands, op.check === true);
        return undefined;
      case 'qdisc.show':
        return { qdiscs: this.qdiscTable.show(op.ns, op.dev) };
      case 'qdisc.classes':
        return { classes: this.qdiscTable.classes(op.ns, op.dev) };
      case 'qdisc.filters':
        return { filters: this.qdiscTable.filters(op.ns, op.dev, op.parent) };
      case 'qdisc.replaceRoot':
      case 'qdisc.deleteRoot':
      case 'qdisc.addClass':
      case 'qdisc.addFilter':
      case 'qdisc.addIngress':
      case 'qdisc.deleteIngress':
      case 'qdisc.addRedirect':
        this.space(op.ns);
        this.qdiscTable.change(op.ns, op);
        return undefined;
      case 'route.get':
      case 'diag.ping':
      case 'diag.tcpConnect':
      case 'diag.sockets':
      case 'diag.conntrack':
      case 'diag.exec':
        // No simulated network: tests script these (expect/default).
        this.space(op.ns);
        throw new AppError('INTERNAL', `FakeKernel: no reply scripted for ${op.kind}`);
      default: {
        const never: never = op;
        return never;
      }
    }
  }

  /** Adds a dynamic neighbour entry (`host` allowed), as ARP or neighbour discovery would. */
  learnNeighbor(ns: string, n: Omit<KernelNeighbor, 'flags'> & { readonly flags?: readonly string[] }): this {
    const sp = this.space(ns);
    this.neighTable.learn(sp, this.linkTable.list(sp), n);
    return this;
  }

  /** Moves the counter of the nftables rule with this handle (`host` allowed), as traffic would. */
  countNft(ns: string, handle: number, packets: number, bytes: number): this {
    this.nftTable.count(this.space(ns), handle, packets, bytes);
    return this;
  }

  /** Simulated sysctl values (default 0) of each namespace. */
  private readonly sysctlValues = new WeakMap<FakeLinkSpace, Map<string, string>>();

  private sysctlsOf(space: FakeLinkSpace): Map<string, string> {
    let m = this.sysctlValues.get(space);
    if (!m) this.sysctlValues.set(space, (m = new Map()));
    return m;
  }

  /** Per-link keys (`ipv4/conf/NAME/...`) exist for `all`, `default` and the namespace's links. */
  private sysctlExists(space: FakeLinkSpace, key: string): boolean {
    const m = /^ipv[46]\/conf\/([^/]+)\//.exec(key);
    return !m || m[1] === 'all' || m[1] === 'default' || this.linkTable.names(space).includes(m[1]!);
  }

  /** Sets a simulated sysctl, as `sysctl -w` by hand would (key as a /proc/sys/net path). */
  setSysctl(ns: string, key: string, value: string): this {
    this.sysctlsOf(this.space(ns)).set(key, value);
    return this;
  }

  private space(name: string): FakeLinkSpace {
    return name === HOST ? this.hostSpace : this.get(name);
  }

  /** Keeps each FakeNamespace's `links` in step with the link table. */
  private syncNames(): void {
    for (const ns of this.namespaces.values()) ns.links = this.linkTable.names(ns);
  }

  private get(name: string): FakeNamespace & FakeLinkSpace {
    const ns = this.namespaces.get(name);
    if (!ns) throw new AppError('NAMESPACE_NOT_FOUND', `namespace "${name}" does not exist`);
    return ns;
  }
}
