/**
 * The kernel monitor: one rtnetlink socket in the daemon's namespace with
 * NETLINK_LISTEN_ALL_NSID, which receives the link, address, route, rule and neighbour changes of
 * the host and of every namespace that has an nsid in the host — whoever makes them — in the
 * kernel's order, each tagged with the namespace's nsid. netnsd gives every namespace it watches
 * an nsid (the kernel's own allocation, as `ip netns set NAME auto` would).
 *
 * Why not a socket inside each namespace: an open socket keeps its namespace alive after
 * `ip netns del`, and with it every veth end in it — the host's peer would linger. This socket
 * pins nothing.
 *
 * Each watched namespace has a NamespaceStack (the inventory), seeded from dumps and kept current
 * from events; every difference becomes a sequenced event with the object as the REST API shows
 * it. The stacks are persisted, so at start the differences to what exists now (changes made
 * while netnsd was down) become one `resync` event; so do those found after an overflow (the
 * kernel dropped events) or a restart of the monitor (its socket failed).
 *
 * The kernel does not announce everything: IPv4 routes flushed because a link went down or was
 * removed, or an address went away, vanish silently. After such an event the namespace's IPv4
 * routes are re-read, and what vanished becomes `route.removed`.
 */
import type { Logger } from 'pino';
import type { Executor } from '../executor/executor.js';
import { HOST, type KernelLink, type NamespaceSnapshot } from '../executor/ops.js';
import type { LinkRefs, LinkService } from '../links/link-service.js';
import type { Link } from '../links/link-schema.js';
import type { NetnsDirectory, NetnsEntry } from '../namespaces/netns-dir.js';
import * as M from '../netlink/messages.js';
import { defaultNames, type IpNames } from '../netlink/names.js';
import { type NetlinkAddon, type NlBatch, NetlinkNamespace, namespacePath, type PrefetchedDumps } from '../netlink/netlink.js';
import { eventOf, linkNameOf, messagesIn, parseAttrs, type NlMessage } from '../netlink/parse.js';
import { addressView } from '../addresses/address-service.js';
import { neighborView } from '../neighbors/neighbor-service.js';
import { routeView } from '../routes/route-service.js';
import { ruleView } from '../rules/rule-service.js';
import type { EventInventory } from '../store/event-inventory.js';
import type { NewEvent } from '../store/event-log.js';
import type { EventBus } from '../events/event-bus.js';
import type { ChangeGate } from './change-gate.js';
import { NamespaceStack, type StackChange, type StackKind, type StackObjects, type StackSnapshot, keyOfObject, neighborFromNetlink } from './stack.js';

/** IFLA_NEW_NETNSID / IFLA_NEW_IFINDEX: on the RTM_DELLINK of a link that moves to another namespace. */
const IFLA_NEW_NETNSID = 45;
const IFLA_NEW_IFINDEX = 49;

/** How long events wait for netnsd's own change in their namespace to end (its records). */
const GATE_WAIT_MS = 2000;
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5000;
const PERSIST_KIND = 'stack';
const PERSIST_EVERY_MS = 200;

export interface MonitorOptions {
  readonly addon: NetlinkAddon;
  readonly executor: Executor;
  readonly dir: NetnsDirectory;
  readonly bus: EventBus;
  readonly store: EventInventory;
  readonly links: LinkService;
  readonly gate: ChangeGate;
  readonly log: Logger;
  readonly names?: IpNames;
  /** The event socket's receive buffer (default 8 MiB); tests make it tiny to provoke an overflow. */
  readonly rcvbuf?: number;
}

export interface MonitorStatus {
  readonly running: boolean;
  readonly restarts: number;
  readonly resyncs: number;
  readonly overflows: number;
  readonly namespaces: number;
}

/** A persisted object: which namespace identity it was seen in, and the kernel's object. */
interface Persisted {
  readonly nsId: string;
  readonly kind: StackKind;
  readonly key: string;
  readonly obj: unknown;
}

/** An event waiting to be published: its object is built when its namespace's change has ended. */
interface Pending {
  readonly ns: string;
  readonly build: () => NewEvent[];
}

/**
 * Whether dumps taken of a new namespace (since: before its nsid was given) still hold all of it:
 * no event of that nsid was read and dropped (not watched yet) since, and none was lost since
 * (`lostAt`: the kernel dropped events, or the monitor's socket failed).
 */
export function seedDumpsUsable(taken: { readonly since: number }, nsid: number, droppedAt: number | undefined, lostAt: number): boolean {
  return nsid >= 0 && (droppedAt ?? -Infinity) < taken.since && lostAt < taken.since;
}

/** A veth end announced before its far end existed: it says `@NONE` (IFLA_LINK 0). */
function staleEnd(x: KernelLink | undefined): boolean {
  return x?.kind === 'veth' && (!x.lower || x.lower.index === 0);
}

export class Monitor implements LinkRefs {
  private fd: number | undefined;
  private readonly stacks = new Map<string, NamespaceStack>();
  private readonly byNsid = new Map<number, string>();
  private readonly nsidOf = new Map<string, number>();
  /** The last view published of each link, by namespace then ifindex (for `changes` and removals). */
  private readonly linkViews = new Map<string, Map<number, Link>>();
  /** Links that left a namespace in this batch, until their arrival elsewhere is seen. */
  private moves: Array<{ from: string; view: Link | undefined; link: KernelLink; index: number }> = [];
  private readonly queue: Pending[] = [];
  private waiting = false;
  private readonly routeRecheck = new Set<string>();
  /** Namespaces whose links must be re-read: a veth's peer moved (the kernel says so of the mover only). */
  private readonly linkRecheck = new Set<string>();
  /**
   * Veth ends announced before their far end existed (IFLA_LINK 0: the kernel registers a new
   * pair's peer first), by namespace, then ifindex → the far end (namespace, ifindex). The kernel
   * announces such an end again, right, when it next changes (netnsd brings a new veth's peer up
   * at once), so it is re-read (settleStale) only if it is still stale when its namespace is read
   * or has its events built: a link dump on the event loop per veth made, which waits for the
   * rtnl lock while other veths are being made, is mostly saved. Meanwhile the far end's own
   * view finds its peer by this map (ref).
   */
  private readonly staleEnds = new Map<string, Map<number, { readonly ns: string; readonly index: number }>>();
  /** The dumps netnsd's creation of a namespace took of it (expect), by name, until it is seeded. */
  private readonly expected = new Map<string, { readonly id: string; readonly snapshot: NamespaceSnapshot }>();
  /** When an event of an nsid not watched (yet) was last read and dropped, by nsid (performance.now()). */
  private readonly droppedAt = new Map<number, number>();
  /** When events may last have been lost: the kernel dropped some, or the socket failed (performance.now()). */
  private lostAt = -Infinity;
  /**
   * Namespaces whose rules must be re-read: a rule's flags (`unresolved` goto, `iif_detached`)
   * change silently when its target rule or its link comes or goes.
   */
  private readonly ruleRecheck = new Set<string>();
  private readonly names: IpNames;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelay = RESTART_MIN_MS;
  private stopped = false;
  private readonly offGate: () => void;
  private readonly tracking = new Map<string, Promise<void>>();
  /** Inventory rows to write (null: delete), by key; see save(). */
  private readonly unsaved = new Map<string, Persisted | null>();
  private saveTimer: NodeJS.Timeout | undefined;
  private resyncing: Promise<void> | undefined;
  private resyncAgain: string | undefined;
  restarts = 0;
  overflows = 0;
  resyncs = 0;

  constructor(private readonly o: MonitorOptions) {
    this.names = o.names ?? defaultNames();
    this.offGate = o.gate.onReleased((ns) => this.released(ns));
  }

  get running(): boolean {
    return this.fd !== undefined;
  }

  status(): MonitorStatus {
    return { running: this.running, restarts: this.restarts, resyncs: this.resyncs, overflows: this.overflows, namespaces: this.stacks.size };
  }

  /** Whether reads of this namespace may be answered from the inventory. */
  serves(ns: string): boolean {
    return this.fd !== undefined && this.stacks.has(ns);
  }

  /** The ifindex of a link of a watched namespace as the caught-up inventory knows it (undefined: not known here). */
  linkIndex(ns: string, name: string): number | undefined {
    if (!this.serves(ns)) return undefined;
    // An index is right even for a stale veth end: no settleStale here.
    this.catchUp();
    return this.stacks.get(ns)?.linkNamed(name)?.index;
  }

  /** The inventory of a namespace, caught up with every event the kernel has sent so far. */
  stack(ns: string): NamespaceStack | undefined {
    this.catchUp();
    this.settleStale(ns);
    return this.stacks.get(ns);
  }

  /**
   * Opens the socket, seeds every namespace, and publishes one `resync` with the differences to
   * what was persisted (changes made while netnsd was down).
   */
  async start(): Promise<void> {
    this.open();
    const persisted = this.loadPersisted();
    const entries = await this.entries();
    const differences: NewEvent[] = [];
    for (const entry of entries) {
      const stack = await this.seed(entry, false).catch((e: unknown) => {
        this.o.log.warn({ err: e, namespace: entry.name }, 'could not watch a namespace (gone meanwhile?)');
        return undefined;
      });
      if (!stack) continue;
      const before = persisted.get(entry.name);
      if (!before || before.nsId !== entry.id) {
        // Not seen before (or a new namespace of the same name): namespace.added says it.
        continue;
      }
      // The old views are those of what was persisted, not the baseline seed() just took.
      this.linkViews.set(entry.name, new Map());
      differences.push(...this.eventsOf(entry.name, diffPersisted(before.objects, stack)));
      this.baseline(entry.name, stack);
    }
    // Persisted now: what each stack holds, and nothing else (objects gone, namespaces gone or
    // replaced — namespace.removed says those).
    const stale: string[] = [];
    for (const [name, p] of persisted) {
      const now = new Set<string>();
      const stack = this.stacks.get(name);
      if (stack && stack.id === p.nsId) for (const c of stack.entries()) now.add(`${c.kind}|${c.key}`);
      for (const k of p.keys) if (!now.has(k)) stale.push(`${name}|${k}`);
    }
    for (const k of stale) this.unsaved.set(k, null);
    for (const s of this.stacks.values()) this.persistAll(s);
    this.save();
    if (differences.length > 0) this.publishResync('start', differences);
  }

  /**
   * Watches a namespace that appeared (namespace.added); its links and the rest are announced.
   * `made`: the namespace's identity and the nsid its creation gave it, used when the namespace
   * of this name is still that one (else an nsid is given, or read, first).
   */
  track(name: string, made?: { readonly id: string; readonly nsid: number }): Promise<void> {
    if (this.stacks.has(name) || this.stopped) return Promise.resolve();
    let p = this.tracking.get(name);
    if (!p) {
      p = (async () => {
        try {
          const entry = await this.o.dir.stat(name);
          const expected = this.expected.get(name);
          this.expected.delete(name);
          if (!entry || this.stacks.has(name)) return;
          await this.seed(entry, true, made?.id === entry.id ? made.nsid : undefined, expected?.id === entry.id ? expected.snapshot : undefined);
        } catch (e) {
          this.o.log.warn({ err: e, namespace: name }, 'could not watch a namespace');
        } finally {
          this.tracking.delete(name);
        }
      })();
      this.tracking.set(name, p);
    }
    return p;
  }

  /**
   * The dumps netnsd's creation of namespace `name` (identity `id`) took of it after giving it its
   * nsid (NamespaceSnapshot): its seed uses them instead of dumping it again, unless they may miss
   * a change (seedDumpsUsable: then it dumps, as for any namespace).
   */
  expect(name: string, id: string, snapshot: NamespaceSnapshot): void {
    if (this.stopped || this.stacks.has(name)) return;
    this.expected.set(name, { id, snapshot });
  }

  /** Forgets a namespace that is gone (namespace.removed says it; its objects go with it). */
  untrack(name: string): void {
    this.expected.delete(name);
    const stack = this.stacks.get(name);
    if (!stack) return;
    this.catchUp();
    this.stacks.delete(name);
    this.staleEnds.delete(name);
    this.linkViews.delete(name);
    const nsid = this.nsidOf.get(name);
    if (nsid !== undefined) this.byNsid.delete(nsid);
    this.nsidOf.delete(name);
    for (const c of stack.entries()) this.unsaved.set(`${name}|${c.kind}|${c.key}`, null);
    this.saveSoon();
  }

  /** Reads every event pending on the socket now (so a read after a change sees it). */
  catchUp(): void {
    if (this.fd === undefined) return;
    try {
      const batch = this.o.addon.nlRead(this.fd);
      if (batch) this.ingest(batch);
    } catch (e) {
      this.failed(e as Error);
    }
  }

  /**
   * The inventory of a namespace with one kind re-read from the kernel now (for what the kernel
   * announces late: a new IPv6 address). What differs is published as events. Synchronous from
   * the catch-up to the dump, so no event can fall between them.
   */
  reread(ns: string, kind: 'address'): NamespaceStack | undefined {
    this.catchUp();
    this.settleStale(ns);
    const stack = this.stacks.get(ns);
    if (!stack) return undefined;
    this.recheck(ns, kind);
    this.pump();
    return stack;
  }

  /** Waits until every event read so far is published (lists then reflect their seq). */
  async settled(): Promise<void> {
    // Namespaces that appeared and are being seeded: their first events come from the seed.
    while (this.tracking.size > 0) await Promise.all([...this.tracking.values()]);
    this.catchUp();
    while (this.queue.length > 0) await this.o.gate.idle(this.queue[0]!.ns).then(() => new Promise((r) => setImmediate(r)));
  }

  /** The socket failed or was closed under us: reopen it shortly and resync (tests call this to kill it). */
  failed(err: Error): void {
    this.lostAt = performance.now();
    if (this.stopped || this.restartTimer) return;
    this.o.log.error({ err }, 'the kernel monitor failed; restarting it');
    this.close();
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.restart('monitor restart');
    }, this.restartDelay);
    this.restartDelay = Math.min(this.restartDelay * 2, RESTART_MAX_MS);
  }

  stop(): void {
    if (this.pumpTimer) {
      clearImmediate(this.pumpTimer);
      this.pumpTimer = undefined;
      this.pump();
    }
    this.stopped = true;
    this.expected.clear();
    clearTimeout(this.restartTimer);
    this.offGate();
    this.close();
    this.save();
  }

  // ------------------------------------------------------------------------------------------

  private open(): void {
    this.fd = this.o.addon.nlOpen(namespacePath(HOST), M.DEFAULT_GROUPS, this.o.rcvbuf, true);
    // What changed before now was heard by no socket of ours: dumps taken before are not enough.
    this.lostAt = performance.now();
    this.o.addon.nlWatch(this.fd, (err, batch) => {
      if (err || !batch) return this.failed(err ?? new Error('netlink event socket failed'));
      this.ingest(batch);
    });
  }

  private close(): void {
    if (this.fd === undefined) return;
    try {
      this.o.addon.nlClose(this.fd);
    } catch {
      // already gone
    }
    this.fd = undefined;
  }

  private async restart(reason: string): Promise<void> {
    if (this.stopped) return;
    try {
      this.open();
      this.restarts++;
      await this.resyncAll(reason);
      this.restartDelay = RESTART_MIN_MS;
    } catch (e) {
      this.failed(e as Error);
    }
  }

  private async entries(): Promise<NetnsEntry[]> {
    const host = await this.o.dir.stat(HOST);
    return [...(host ? [host] : []), ...(await this.o.dir.list()).filter((e) => e.name !== HOST)];
  }

  /**
   * Gives the namespace an nsid (so the socket hears it), then dumps it. Everything between is
   * in the dump; everything after arrives as events and applies on top (a repeat changes nothing).
   * With `announce`, what the dump holds is published as additions (a namespace that appeared).
   */
  private async seed(entry: NetnsEntry, announce: boolean, knownNsid?: number, taken?: NamespaceSnapshot): Promise<NamespaceStack | undefined> {
    let nsid = -1;
    if (entry.name !== HOST) {
      nsid = knownNsid !== undefined && knownNsid >= 0 ? knownNsid : (await this.o.executor.run({ kind: 'netns.assignNsid', ns: entry.name })).nsid;
      if (nsid < 0) throw new Error(`namespace ${entry.name} got no nsid`);
      if (this.stopped) return undefined; // stopped meanwhile: the store may be closed already
    }
    this.catchUp();
    if (this.stacks.has(entry.name)) return this.stacks.get(entry.name);
    // Dumps taken by the add after it gave the nsid hold all but what changed since; that arrives
    // as events (applied on top) unless one was read before now and dropped, or events may have
    // been lost (seedDumpsUsable): then they may miss it, and the namespace is dumped now.
    const usable = taken !== undefined && seedDumpsUsable(taken, nsid, this.droppedAt.get(nsid), this.lostAt);
    const snapshot = this.dump(entry.name, usable ? taken.dumps : undefined);
    const stack = new NamespaceStack(entry.name, entry.id);
    const changes = stack.replace(snapshot);
    // The nsid may be an old one's, reused by the kernel: it is this namespace's now.
    const previous = this.byNsid.get(nsid);
    if (previous !== undefined && previous !== entry.name) this.untrack(previous);
    this.stacks.set(entry.name, stack);
    if (nsid >= 0) {
      this.byNsid.set(nsid, entry.name);
      this.nsidOf.set(entry.name, nsid);
    }
    this.linkViews.set(entry.name, new Map());
    if (announce) {
      for (const l of stack.links()) this.farEnds(entry.name, l);
      this.persistAll(stack);
      this.enqueue(entry.name, () => this.eventsOf(entry.name, changes));
      this.runRechecks();
      this.pump();
    } else {
      this.baseline(entry.name, stack);
    }
    return stack;
  }

  /** Views of the links that have none yet: what later changes are compared with. */
  private baseline(ns: string, stack: NamespaceStack): void {
    const views = this.linkViews.get(ns);
    for (const l of stack.links()) if (!views?.has(l.index)) this.linkView(ns, l);
  }

  /** `prefetched`: dumps of it taken already (see seed), used instead of asking again. */
  private dump(ns: string, prefetched?: PrefetchedDumps): StackSnapshot {
    const nl = new NetlinkNamespace(namespacePath(ns), { names: this.names, addon: this.o.addon, ...(prefetched ? { prefetched } : {}) });
    try {
      const links = nl.dumpLinks();
      const names = new Map(links.map((l) => [l.index, l.name]));
      return {
        links,
        addresses: nl.dumpAddresses(undefined, names),
        routes: [...nl.dumpRoutes(4, 'all', names), ...nl.dumpRoutes(6, 'all', names)],
        rules: [...nl.dumpRules(4), ...nl.dumpRules(6)],
        neighbors: nl.dumpNeighbors(undefined, names).map(neighborFromNetlink),
      };
    } finally {
      nl.close();
    }
  }

  /** Re-reads every namespace and publishes what differed as one `resync`; calls made while one runs make one more. */
  private resyncAll(reason: string): Promise<void> {
    if (this.resyncing) {
      this.resyncAgain = reason;
      return this.resyncing;
    }
    this.resyncing = (async () => {
      try {
        let next: string | undefined = reason;
        while (next !== undefined && !this.stopped) {
          this.resyncAgain = undefined;
          await this.resyncOnce(next);
          next = this.resyncAgain;
        }
      } finally {
        this.resyncing = undefined;
      }
    })();
    return this.resyncing;
  }

  private async resyncOnce(reason: string): Promise<void> {
    const differences: NewEvent[] = [];
    for (const [name, stack] of [...this.stacks]) {
      let snapshot: StackSnapshot;
      try {
        snapshot = this.dump(name);
      } catch {
        continue; // going away: namespace.removed will say it
      }
      const changes = stack.replace(snapshot);
      this.staleEnds.delete(name);
      this.persist(name, changes);
      differences.push(...this.eventsOf(name, changes));
    }
    this.catchUp();
    // Namespaces that appeared while the socket was down.
    for (const entry of await this.entries()) if (!this.stacks.has(entry.name)) await this.track(entry.name);
    this.publishResync(reason, differences);
  }

  private publishResync(reason: string, differences: NewEvent[]): void {
    this.resyncs++;
    const namespaces = [...new Set(differences.map((d) => d.namespace as string))].sort();
    this.enqueue(null, () => [{ type: 'resync', namespace: null, reason, namespaces, differences }]);
    this.pump();
  }

  /** Datagrams from the socket (or a catch-up read): apply, queue events, publish what is ready. */
  private ingest({ data, index, overflow }: NlBatch): void {
    for (let i = 0; i < index.length; i += 3) {
      const nsid = index[i + 2]!;
      const ns = nsid < 0 ? HOST : this.byNsid.get(nsid);
      const stack = ns === undefined ? undefined : this.stacks.get(ns);
      if (!stack || ns === undefined) {
        // A namespace not watched (yet): its seed dump covers it (a dump taken earlier does not: see seed).
        if (nsid >= 0) this.droppedAt.set(nsid, performance.now());
        continue;
      }
      for (const m of messagesIn(data, index[i]!, index[i + 1]!)) this.message(ns, stack, m);
    }
    this.settleMoves();
    this.runRechecks();
    this.pump();
    if (overflow) {
      this.lostAt = performance.now();
      this.overflows++;
      this.o.log.warn({}, 'the kernel dropped events (netlink overflow); re-reading every namespace');
      this.resyncAll('overflow').catch((e: unknown) => this.o.log.error({ err: e }, 're-reading after an overflow failed'));
    }
  }

  private message(ns: string, stack: NamespaceStack, m: NlMessage): void {
    const isLink = (m.type === M.RTM_NEWLINK || m.type === M.RTM_DELLINK) && m.payload.length >= M.IFINFOMSG_LEN && m.payload.readUInt8(0) === M.AF_UNSPEC;
    const named = isLink ? linkNameOf(m) : null;
    if (named && m.type === M.RTM_NEWLINK) stack.names.set(named.index, named.name);
    const e = eventOf(m, stack.names, this.names);
    if (!e) return;
    if (e.kind === 'link' && (e.action === 'del' || !staleEnd(e.link))) this.freshEnd(ns, e.link.index);
    if (e.kind === 'link' && e.action === 'del') {
      const a = parseAttrs(m.payload, M.IFINFOMSG_LEN);
      const newNsid = a.get(IFLA_NEW_NETNSID);
      const newIndex = a.get(IFLA_NEW_IFINDEX);
      if (newNsid && newNsid.length >= 4) {
        // Moving away: link.changed where it lands, when that namespace is watched.
        stack.apply(e);
        this.persist(ns, [{ kind: 'link', key: String(e.link.index), before: e.link }]);
        const view = this.linkViews.get(ns)?.get(e.link.index);
        this.linkViews.get(ns)?.delete(e.link.index);
        // Links pointing at it (its veth peer) now point elsewhere, unannounced.
        this.linkRecheck.add(ns);
        if (view?.peer?.namespace) this.linkRecheck.add(view.peer.namespace);
        // Matched by its new ifindex where it lands (IFLA_NEW_NETNSID is an nsid of this namespace's, not the host's).
        this.moves.push({ from: ns, view, link: e.link, index: newIndex && newIndex.length >= 4 ? newIndex.readInt32LE(0) : e.link.index });
        this.routeRecheck.add(ns);
        return;
      }
    }
    if (e.kind === 'link' && e.action === 'new' && !stack.link(e.link.index)) {
      const i = this.moves.findIndex((mv) => mv.index === e.link.index && mv.from !== ns);
      if (i >= 0) {
        const [mv] = this.moves.splice(i, 1);
        const changes = stack.apply(e);
        this.persist(ns, changes);
        this.enqueue(ns, () => {
          const now = this.linkView(ns, e.link);
          const before = mv!.view ?? now;
          return [{ type: 'link.changed', namespace: ns, object: now, changes: diffFields(before, now) }];
        });
        return;
      }
    }
    const changes = stack.apply(e);
    if (changes.length === 0) return;
    this.persist(ns, changes);
    if (e.kind === 'link' && (e.action === 'del' || (changes[0]?.before as KernelLink | undefined)?.up === true && !e.link.up)) this.routeRecheck.add(ns);
    if (e.kind === 'address' && e.action === 'del' && e.address.family === 4) this.routeRecheck.add(ns);
    if (e.kind === 'rule' && stack.rules().some((r) => r.action === 'goto')) this.ruleRecheck.add(ns);
    if (e.kind === 'link' && e.action === 'new' && changes[0]?.before === undefined) this.farEnds(ns, e.link);
    const renamedOrNew = e.kind === 'link' && (e.action === 'del' || (changes[0]?.before as KernelLink | undefined)?.name !== e.link.name);
    if (renamedOrNew && stack.rules().some((r) => r.iif !== null || r.oif !== null)) this.ruleRecheck.add(ns);
    this.enqueue(ns, () => this.eventsOf(ns, changes));
  }

  /**
   * A veth's far end in another namespace was announced before this end existed (or before this
   * namespace was watched): its IFLA_LINK is right only now, so its namespace's links are re-read.
   */
  private farEnds(ns: string, l: KernelLink): void {
    if (l.kind !== 'veth' || !l.lower) return;
    // Announced first, the far end said `@NONE` (IFLA_LINK 0): only such an end needs re-reading.
    const index = l.lower.index;
    const mark = (at: string) => {
      let ends = this.staleEnds.get(at);
      if (!ends) this.staleEnds.set(at, (ends = new Map()));
      ends.set(index, { ns, index: l.index });
    };
    if (l.lower.netnsid === null) {
      if (staleEnd(this.stacks.get(ns)?.link(index))) mark(ns);
      return;
    }
    for (const [name, s] of this.stacks) if (name !== ns && staleEnd(s.link(index))) mark(name);
  }

  /** A link of `ns` announced right (or gone): no longer a stale end. */
  private freshEnd(ns: string, index: number): void {
    const ends = this.staleEnds.get(ns);
    if (ends?.delete(index) && ends.size === 0) this.staleEnds.delete(ns);
  }

  /** Re-reads the links of `ns` when it has a stale veth end (see staleEnds). */
  private settleStale(ns: string): void {
    if (this.staleEnds.has(ns)) this.recheck(ns, 'link');
  }

  /** Re-reads what the rechecks named (see ingest). */
  private runRechecks(): void {
    for (const ns of this.linkRecheck) this.recheck(ns, 'link');
    this.linkRecheck.clear();
    for (const ns of this.routeRecheck) this.recheck(ns, 'route');
    this.routeRecheck.clear();
    for (const ns of this.ruleRecheck) this.recheck(ns, 'rule');
    this.ruleRecheck.clear();
  }

  /** Links that left and did not land in a watched namespace: removed. */
  private settleMoves(): void {
    for (const mv of this.moves.splice(0)) {
      const view = mv.view;
      this.enqueue(mv.from, () => [{ type: 'link.removed', namespace: mv.from, object: view ?? this.viewless(mv.from, mv.link) }]);
    }
  }

  /** Re-reads a namespace's links, or its IPv4 routes, and publishes what the kernel did not announce. */
  private recheck(ns: string, what: 'link' | 'route' | 'rule' | 'address'): void {
    const stack = this.stacks.get(ns);
    if (!stack) return;
    if (what === 'link') this.staleEnds.delete(ns);
    let nl;
    try {
      nl = new NetlinkNamespace(namespacePath(ns), { names: this.names, addon: this.o.addon });
      const changes =
        what === 'link'
          ? stack.replaceKind('link', nl.dumpLinks())
          : what === 'rule'
            ? stack.replaceKind('rule', [...nl.dumpRules(4), ...nl.dumpRules(6)])
            : what === 'address'
              ? stack.replaceKind('address', nl.dumpAddresses())
              : stack.replaceKind('route', nl.dumpRoutes(4, 'all'), (r) => r.family === 4);
      if (changes.length === 0) return;
      this.persist(ns, changes);
      this.enqueue(ns, () => this.eventsOf(ns, changes));
    } catch {
      // the namespace is going away
    } finally {
      nl?.close();
    }
  }

  // ---- events ----

  /** Queues events; pump() publishes them (ingest pumps once its rechecks are done, so objects show the batch's end). */
  private enqueue(ns: string | null, build: () => NewEvent[]): void {
    this.queue.push({ ns: ns ?? '', build });
  }

  private pumpTimer: NodeJS.Immediate | undefined;
  /**
   * pump() once the changes that end in this turn of the event loop have all queued their
   * events, so they go to the store in one transaction (with 16 clients, a pump per release
   * was ~1300 transactions for 200 units, ~5% of the run). stop() pumps what is still waiting.
   */
  private pumpSoon(): void {
    this.pumpTimer ??= setImmediate(() => {
      this.pumpTimer = undefined;
      this.pump();
    });
  }

  /** Publishes queued events in order; stops at one whose namespace has a change of netnsd's under way. */
  private pump(): void {
    if (this.waiting) return;
    const out: NewEvent[] = [];
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.ns !== '' && this.o.gate.busy(head.ns)) {
        this.waiting = true;
        const timer = setTimeout(() => go(), GATE_WAIT_MS);
        const go = () => {
          clearTimeout(timer);
          if (!this.waiting) return;
          this.waiting = false;
          this.pump();
        };
        void this.o.gate.idle(head.ns).then(go);
        break;
      }
      this.queue.shift();
      // A stale veth end is re-read before an event of its namespace is built.
      if (head.ns !== '') this.settleStale(head.ns);
      try {
        out.push(...head.build());
      } catch (e) {
        this.o.log.error({ err: e }, 'could not build an event');
      }
    }
    if (out.length > 0) this.o.bus.publish(out);
  }

  /** netnsd's change in `ns` ended: the records it wrote may make its links' views differ (managed, labels). */
  private released(ns: string): void {
    const stack = this.stacks.get(ns);
    if (!stack) return this.pumpSoon();
    const touched = this.o.links.touchedLinks({ name: ns, id: stack.id });
    if (touched.size === 0) return this.pumpSoon();
    this.enqueue(ns, () =>
      [...touched].flatMap((index) => stack.link(index) ?? []).flatMap((l) => {
        const before = this.linkViews.get(ns)?.get(l.index);
        const now = this.linkView(ns, l);
        if (!before) return [];
        const changes = diffFields(before, now);
        return Object.keys(changes).length > 0 ? [{ type: 'link.changed', namespace: ns, object: now, changes }] : [];
      }),
    );
    this.pumpSoon();
  }

  /** Events (or, for resync, differences) for changes of one namespace. */
  private eventsOf(ns: string, changes: readonly StackChange[]): NewEvent[] {
    return changes.flatMap((c): NewEvent[] => {
      const action = c.before === undefined ? 'added' : c.after === undefined ? 'removed' : 'changed';
      if (c.kind === 'link') {
        const views = this.linkViews.get(ns);
        if (action === 'removed') {
          const before = views?.get(c.before!.index) ?? this.viewless(ns, c.before!);
          views?.delete(c.before!.index);
          return [{ type: 'link.removed', namespace: ns, object: before }];
        }
        const old = action === 'changed' ? (views?.get(c.after!.index) ?? this.viewless(ns, c.before!)) : undefined;
        const now = this.linkView(ns, c.after!);
        if (!old) return [{ type: 'link.added', namespace: ns, object: now }];
        const changes = diffFields(old, now);
        return Object.keys(changes).length > 0 ? [{ type: 'link.changed', namespace: ns, object: now, changes }] : [];
      }
      const view = (o: unknown) => objectView(ns, c.kind, o);
      if (action === 'removed') return [{ type: `${c.kind}.removed`, namespace: ns, object: view(c.before) }];
      if (action === 'added') return [{ type: `${c.kind}.added`, namespace: ns, object: view(c.after) }];
      // Changed in place: neighbours and routes say how; an address (flags: DAD done) is not an event.
      if (c.kind === 'address' || c.kind === 'rule') return [];
      const before = view(c.before) as Record<string, unknown>;
      const now = view(c.after) as Record<string, unknown>;
      const changes = diffFields(before, now);
      return Object.keys(changes).length > 0 ? [{ type: `${c.kind}.changed`, namespace: ns, object: now, changes }] : [];
    });
  }

  /** The view of a link now (records read now), remembered as its last published view. */
  private linkView(ns: string, l: KernelLink): Link {
    const stack = this.stacks.get(ns);
    const entry = { name: ns, id: stack?.id ?? '' };
    const view = this.o.links.inventoryView(entry, l, this.peerOf(ns, l), this.parentOf(ns, l));
    let views = this.linkViews.get(ns);
    if (!views) this.linkViews.set(ns, (views = new Map()));
    views.set(l.index, view);
    return view;
  }

  /** A link's view without remembering it (one that is gone). */
  private viewless(ns: string, l: KernelLink): Link {
    return this.o.links.inventoryView({ name: ns, id: this.stacks.get(ns)?.id ?? '' }, l, this.peerOf(ns, l), this.parentOf(ns, l));
  }

  /** A link's veth peer, resolved from the inventory (LinkRefs). */
  peerOf(ns: string, l: KernelLink): Link['peer'] {
    if (l.kind !== 'veth' || !l.lower) return null;
    return this.ref(ns, l, l.lower, true);
  }

  /** A link's parent (lower device), resolved from the inventory (LinkRefs). */
  parentOf(ns: string, l: KernelLink): Link['parent'] {
    if (l.vxlan) {
      const p = l.vxlan.parent;
      return p === null ? null : { namespace: ns, name: p, index: this.stacks.get(ns)?.links().find((x) => x.name === p)?.index ?? -1 };
    }
    if (l.kind === 'veth' || !l.lower) return null;
    return this.ref(ns, l, l.lower, false);
  }

  /**
   * Where IFLA_LINK points: in this namespace, or — by the nsid this namespace has for another —
   * to a link of another watched namespace. Told apart from the inventory: the other end of a
   * veth is the veth there whose own IFLA_LINK is this link; when that leaves several candidates,
   * the namespace is asked which nsid it has for each.
   */
  private ref(ns: string, l: KernelLink, lower: NonNullable<KernelLink['lower']>, veth: boolean): NonNullable<Link['peer']> {
    const here = this.stacks.get(ns);
    if (lower.netnsid === null) return { namespace: ns, name: lower.name ?? here?.link(lower.index)?.name ?? null, index: lower.index };
    const candidates: Array<[string, KernelLink]> = [];
    for (const [name, s] of this.stacks) {
      if (name === ns) continue;
      const x = s.link(lower.index);
      if (!x) continue;
      // A far end still stale (staleEnds) points nowhere yet; it was marked by the link it belongs to.
      const mark = this.staleEnds.get(name)?.get(lower.index);
      const farEnd = x.kind === 'veth' && ((x.lower?.index === l.index && x.lower.netnsid !== null) || (mark?.ns === ns && mark.index === l.index));
      if (veth && !farEnd) continue;
      candidates.push([name, x]);
    }
    let found = candidates.length === 1 ? candidates[0] : undefined;
    if (candidates.length > 1) found = candidates.find(([name]) => this.peerNsid(ns, name) === lower.netnsid);
    return found ? { namespace: found[0], name: found[1].name, index: lower.index } : { namespace: null, name: null, index: lower.index };
  }

  /** The nsid namespace `ns` has for namespace `other` (-1: none). */
  private peerNsid(ns: string, other: string): number {
    const nl = new NetlinkNamespace(namespacePath(ns), { names: this.names, addon: this.o.addon });
    try {
      return nl.nsidOfFile(namespacePath(other));
    } catch {
      return -1;
    } finally {
      nl.close();
    }
  }

  // ---- persistence ----

  /**
   * Persisting is deferred and batched (PERSIST_EVERY_MS): it is only read at the next start, and
   * an event must not wait for it. stop() writes what is pending.
   */
  private persist(ns: string, changes: readonly StackChange[]): void {
    const stack = this.stacks.get(ns);
    if (!stack || changes.length === 0) return;
    for (const c of changes) {
      if (c.before !== undefined) this.unsaved.set(`${ns}|${c.kind}|${c.key}`, null);
      if (c.after !== undefined) {
        // A rename re-keys IPv6 routes and neighbours: the key is the object's own.
        const key = keyOfObject[c.kind](c.after as never);
        this.unsaved.set(`${ns}|${c.kind}|${key}`, { nsId: stack.id, kind: c.kind, key, obj: c.after });
      }
    }
    this.saveSoon();
  }

  private persistAll(stack: NamespaceStack): void {
    for (const c of stack.entries()) this.unsaved.set(`${stack.name}|${c.kind}|${c.key}`, { nsId: stack.id, kind: c.kind, key: c.key, obj: c.after });
    this.saveSoon();
  }

  private saveSoon(): void {
    this.saveTimer ??= setTimeout(() => this.save(), PERSIST_EVERY_MS);
  }

  /** Writes what is pending, in one transaction. */
  private save(): void {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    if (this.unsaved.size === 0) return;
    const puts: Array<[string, Persisted]> = [];
    const deletes: string[] = [];
    for (const [k, v] of this.unsaved) {
      if (v === null) deletes.push(k);
      else puts.push([k, v]);
    }
    this.unsaved.clear();
    try {
      this.o.store.apply(PERSIST_KIND, puts, deletes);
    } catch (e) {
      this.o.log.error({ err: e }, 'could not persist the inventory (the next start may report differences that were not)');
    }
  }

  private loadPersisted(): Map<string, { nsId: string; objects: Persisted[]; keys: string[] }> {
    const out = new Map<string, { nsId: string; objects: Persisted[]; keys: string[] }>();
    for (const [k, p] of this.o.store.all<Persisted>(PERSIST_KIND)) {
      const ns = k.slice(0, k.indexOf('|'));
      let e = out.get(ns);
      if (!e) out.set(ns, (e = { nsId: p.nsId, objects: [], keys: [] }));
      e.keys.push(k.slice(ns.length + 1));
      if (p.nsId === e.nsId) e.objects.push(p);
    }
    return out;
  }
}

/** The differences between what was persisted of a namespace and its stack now. */
function diffPersisted(before: readonly Persisted[], stack: NamespaceStack): StackChange[] {
  const now = new Map<string, StackChange>();
  for (const c of stack.entries()) now.set(`${c.kind}|${c.key}`, c);
  const out: StackChange[] = [];
  const seen = new Set<string>();
  for (const p of before) {
    const k = `${p.kind}|${p.key}`;
    seen.add(k);
    const c = now.get(k);
    if (!c) out.push({ kind: p.kind, key: p.key, before: p.obj } as StackChange);
    else if (JSON.stringify(stripLifetimes(p.obj)) !== JSON.stringify(stripLifetimes(c.after))) out.push({ kind: p.kind, key: p.key, before: p.obj, after: c.after } as StackChange);
  }
  for (const [k, c] of now) if (!seen.has(k)) out.push(c);
  return out;
}

function stripLifetimes(o: unknown): unknown {
  if (o && typeof o === 'object' && 'validLifetime' in o) {
    const { validLifetime: _v, preferredLifetime: _p, ...rest } = o as Record<string, unknown>;
    return rest;
  }
  return o;
}

function objectView(ns: string, kind: Exclude<StackKind, 'link'>, o: unknown): unknown {
  switch (kind) {
    case 'address':
      return addressView(ns, o as StackObjects['address']);
    case 'route':
      return routeView(ns, o as StackObjects['route']);
    case 'rule':
      return ruleView(ns, o as StackObjects['rule']);
    case 'neighbor':
      return neighborView(ns, o as StackObjects['neighbor']);
  }
}

/** The previous values of the top-level fields that differ. */
export function diffFields(before: object, now: object): Record<string, unknown> {
  const b = before as Record<string, unknown>;
  const n = now as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of new Set([...Object.keys(b), ...Object.keys(n)])) {
    if (JSON.stringify(b[k]) !== JSON.stringify(n[k])) out[k] = b[k] ?? null;
  }
  return out;
}
