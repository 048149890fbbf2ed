/**
 * Links (network interfaces) of every namespace, `host` included. What exists comes from the
 * kernel (`link.list`, one read per request for now: issue 4's inventory replaces it); ownership
 * and labels come from the store, keyed by namespace identity + ifindex. Changes go through the
 * executor as one op per step, so a failure names its step and what was done before is undone.
 *
 * Host safety: unless `host.allowChanges`, links in `host` that netnsd did not create may be read
 * and labelled, but not changed, deleted, moved, or used as a parent or master (HOST_PROTECTED).
 */
import { isIP } from 'node:net';
import { AppError } from '../errors/app-error.js';
import { ChangeGate } from '../inventory/change-gate.js';
import type { Executor, OpContext } from '../executor/executor.js';
import {
  CREATABLE_LINK_KINDS,
  HOST,
  type KernelLink,
  type LinkAddSpec,
  type LinkChange,
  type LinkCounters,
} from '../executor/ops.js';
import { type LabelSelector, matchesSelector, mergeLabels } from '../labels.js';
import { type Page, paginate } from '../paging.js';
import type { LinkRecord, LinkRecords } from '../store/link-records.js';
import { existingNamespace, type NetnsDirectory, type NetnsEntry } from '../namespaces/netns-dir.js';
import type { Capabilities } from '../capabilities/capabilities-schema.js';
import type { Link, LinkCreate, LinkPatch } from './link-schema.js';

export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Where links point (a veth's peer, a macvlan's parent), from an inventory that watches the namespace. */
export interface LinkRefs {
  serves(ns: string): boolean;
  peerOf(ns: string, l: KernelLink): Link['peer'];
  parentOf(ns: string, l: KernelLink): Link['parent'];
}

export interface LinkServiceOptions {
  readonly executor: Executor;
  readonly records: LinkRecords;
  readonly dir: NetnsDirectory;
  readonly capabilities: () => Capabilities;
  /** `host.allowChanges`: changes to links in `host` that netnsd did not create. */
  readonly hostAllowChanges: boolean;
  /** The store key of the root namespace's links (hostNamespaceKey()). */
  readonly hostKey: string;
  readonly log: Logger;
  readonly now?: () => Date;
  /** Marks the namespaces a change is under way in, so their events wait for its records. */
  readonly gate?: ChangeGate;
}

export interface LinkListFilter {
  readonly kind?: string | undefined;
  readonly master?: string | undefined;
  readonly managed?: boolean | undefined;
  readonly selector: LabelSelector;
  readonly limit?: number | undefined;
  readonly cursor?: string | undefined;
}

/** One step of a change: what it does, and how to take it back (when it can be). */
interface Step {
  readonly name: string;
  readonly run: (ctx: OpContext) => Promise<void>;
  readonly undo?: (ctx: OpContext) => Promise<void>;
}

const VXLAN_DEFAULT_DSTPORT = 4789;

/** Fields of the create body that belong to some kinds only. */
const KIND_FIELDS: Record<string, readonly string[]> = {
  veth: ['peer'],
  bridge: ['stp', 'vlanFiltering'],
  macvlan: ['parent', 'mode'],
  vxlan: ['vni', 'local', 'remote', 'group', 'dstport', 'parent'],
  vlan: ['parent', 'vlanId'],
  vrf: ['table'],
  gre: ['local', 'remote'],
};
const ALL_KIND_FIELDS = [...new Set(Object.values(KIND_FIELDS).flat())];
/** Required fields by kind. */
const REQUIRED: Record<string, readonly string[]> = { veth: ['peer'], macvlan: ['parent'], vxlan: ['vni'], vlan: ['parent', 'vlanId'], vrf: ['table'], gre: ['local', 'remote'] };

export class LinkService {
  private readonly ex: Executor;
  private readonly records: LinkRecords;
  private readonly dir: NetnsDirectory;
  private readonly caps: () => Capabilities;
  private readonly hostAllowChanges: boolean;
  private readonly hostKey: string;
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly gate: ChangeGate;
  private refs: LinkRefs | undefined;

  constructor(o: LinkServiceOptions) {
    this.gate = o.gate ?? new ChangeGate();
    this.ex = o.executor;
    this.records = o.records;
    this.dir = o.dir;
    this.caps = o.capabilities;
    this.hostAllowChanges = o.hostAllowChanges;
    this.hostKey = o.hostKey;
    this.log = o.log;
    this.now = o.now ?? (() => new Date());
  }

  /** Drops the link records of namespaces that are gone (called once at start). */
  async reconcile(): Promise<{ dropped: string[] }> {
    const live = new Set([this.hostKey, ...(await this.dir.list()).map((e) => e.id)]);
    const dropped = this.records.pruneNamespaces(live);
    if (dropped.length > 0) this.log.info({ namespaces: dropped.length }, 'dropped link records of namespaces that are gone');
    return { dropped };
  }

  // ------------------------------------------------------------------------------------------
  // Reads
  // ------------------------------------------------------------------------------------------

  async list(ns: string, f: LinkListFilter): Promise<Page<Link>> {
    const entry = await this.entry(ns);
    const links = await this.kernelLinks(ns);
    const recs = this.recordsOf(entry, links, true);
    const views = await this.views(entry, links, recs);
    const items = views
      .filter((l) => (f.kind === undefined || l.kind === f.kind) && (f.master === undefined || l.master === f.master))
      .filter((l) => (f.managed === undefined || l.managed === f.managed) && matchesSelector(l.labels, f.selector))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return paginate(items, (l) => l.name, f.limit, f.cursor);
  }

  async get(ns: string, name: string): Promise<Link> {
    const entry = await this.entry(ns);
    const links = await this.kernelLinks(ns);
    return this.viewOf(entry, links, this.find(ns, links, name));
  }

  async stats(ns: string, name: string): Promise<LinkCounters> {
    await this.entry(ns);
    return this.ex.run({ kind: 'link.stats', ns, name });
  }

  // ------------------------------------------------------------------------------------------
  // Create
  // ------------------------------------------------------------------------------------------

  async create(ns: string, body: LinkCreate, ctx: OpContext): Promise<Link> {
    return this.gate.around([ns, ...(body.peer?.namespace !== undefined ? [body.peer.namespace] : [])], () => this.createNow(ns, body, ctx));
  }

  private async createNow(ns: string, body: LinkCreate, ctx: OpContext): Promise<Link> {
    const entry = await this.entry(ns);
    this.checkKind(body);
    checkFields(body);
    const links = await this.kernelLinks(ns, ctx);
    if (links.some((l) => l.name === body.name)) throw new AppError('LINK_EXISTS', `There is already a link '${body.name}' in namespace '${ns}'`);
    const byName = new Map(links.map((l) => [l.name, l]));
    if (body.parent !== undefined) {
      const parent = byName.get(body.parent);
      if (!parent) throw new AppError('LINK_PARENT_NOT_FOUND', `There is no link '${body.parent}' in namespace '${ns}' to be the parent`);
      this.guardHost(ns, entry, parent, 'be used as a parent');
    }
    if (body.master !== undefined) this.checkMaster(ns, entry, byName, body.master, body.name);

    let peerEntry: NetnsEntry | undefined;
    const peerNs = body.peer?.namespace ?? ns;
    if (body.kind === 'veth' && body.peer) {
      peerEntry = peerNs === ns ? entry : ((await this.dir.stat(peerNs)) ?? undefined);
      if (!peerEntry) throw new AppError('TARGET_NAMESPACE_NOT_FOUND', `There is no namespace '${peerNs}' for the veth's peer`);
      if (peerNs === ns && body.peer.name === body.name) {
        throw invalid('body.peer.name', 'must differ from name when both ends are in one namespace');
      }
      const peerLinks = peerNs === ns ? links : await this.kernelLinks(peerNs, ctx);
      if (peerLinks.some((l) => l.name === body.peer?.name)) {
        throw new AppError('LINK_EXISTS', `There is already a link '${body.peer.name}' in namespace '${peerNs}' (the veth's peer)`, { meta: { step: 'check' } });
      }
    }

    // Created up in the one request when nothing has to be set before `up` (alias, master come first).
    const upAtCreate = body.up === true && (body.kind === 'veth' || body.kind === 'bridge') && body.alias === undefined && body.master === undefined;
    const spec = toSpec(body, peerNs, upAtCreate);
    const isTun = body.kind === 'tun' || body.kind === 'tap';
    const set = (change: LinkChange, where = ns, name = body.name): Step['run'] => (c) => this.ex.run({ kind: 'link.set', ns: where, name, change }, c);
    const steps: Step[] = [];
    if (isTun && body.mtu !== undefined) steps.push({ name: 'mtu', run: set({ mtu: body.mtu }) });
    if (isTun && body.mac !== undefined) steps.push({ name: 'mac', run: set({ mac: body.mac }) });
    if (body.alias !== undefined) steps.push({ name: 'alias', run: set({ alias: body.alias }) });
    if (body.master !== undefined) steps.push({ name: 'master', run: set({ master: body.master }) });
    if (body.up && !upAtCreate) steps.push({ name: 'up', run: set({ up: true }) });
    // A veth peer cannot be created up (ENOTCONN): it comes up inside its own namespace.
    if (body.up && body.kind === 'veth' && body.peer) steps.push({ name: 'peerUp', run: set({ up: true }, peerNs, body.peer.name) });

    await this.ex.run({ kind: 'link.add', ns, spec }, ctx).catch((e: unknown) => {
      throw stepError(e, 'create', `Creating link '${body.name}' in namespace '${ns}'`, false);
    });
    const rest: OpContext = { ...ctx, continues: true };
    let step = 'create';
    try {
      for (const s of steps) {
        step = s.name;
        await s.run(rest);
      }
      step = 'record';
      const after = await this.kernelLinks(ns, rest);
      const made = this.find(ns, after, body.name);
      const createdAt = this.now().toISOString();
      const recs: LinkRecord[] = [{ nsKey: this.keyOf(entry), ifindex: made.index, kind: made.kind, managed: true, createdAt, labels: body.labels ?? {} }];
      let peer: Link['peer'] | undefined;
      if (body.kind === 'veth' && body.peer && peerEntry) {
        const peerLinks = peerNs === ns ? after : await this.kernelLinks(peerNs, rest);
        const p = this.find(peerNs, peerLinks, body.peer.name);
        recs.push({ nsKey: this.keyOf(peerEntry), ifindex: p.index, kind: p.kind, managed: true, createdAt, labels: {} });
        // The pair just made: the peer is the link of that name there, when its index is the one ours points at.
        if (made.lower?.index === p.index) peer = { namespace: peerNs, name: p.name, index: p.index };
      }
      // Both ends' records together, in one commit.
      this.records.putAll(recs);
      return await this.viewOf(entry, after, made, rest, peer);
    } catch (e) {
      const undone = await this.ex.run({ kind: 'link.delete', ns, name: body.name }, rest).then(
        () => true,
        (undoErr: unknown) => {
          this.log.warn({ namespace: ns, link: body.name, err: undoErr }, 'could not remove a half-created link');
          return false;
        },
      );
      throw stepError(e, step, `Creating link '${body.name}' in namespace '${ns}'`, undone, undone ? 'it was removed again' : 'it could not be removed again');
    }
  }

  // ------------------------------------------------------------------------------------------
  // Change
  // ------------------------------------------------------------------------------------------

  /**
   * Applies a patch: the move first (the other fields then apply in the new namespace: a move
   * detaches the link from its bridge and brings it down), then mtu, mac, txqlen, alias, master,
   * up; labels last. A failing step undoes the steps before it (set back to the values read
   * first; a move is moved back). Undo is best effort: what could not be undone is logged and the
   * problem says `undone: false`.
   */
  async update(ns: string, name: string, patch: LinkPatch, ctx: OpContext): Promise<Link> {
    return this.gate.around([ns, ...(patch.namespace !== undefined ? [patch.namespace] : [])], () => this.updateNow(ns, name, patch, ctx));
  }

  private async updateNow(ns: string, name: string, patch: LinkPatch, ctx: OpContext): Promise<Link> {
    const entry = await this.entry(ns);
    const links = await this.kernelLinks(ns, ctx);
    const link = this.find(ns, links, name);
    const rec = this.recordOf(entry, link);
    const kernelFields = (['up', 'mtu', 'mac', 'alias', 'master', 'txqlen', 'namespace', 'name'] as const).filter((k) => patch[k] !== undefined);
    if (patch.name !== undefined && (patch.namespace === undefined || patch.namespace === ns)) {
      throw invalid('body.name', 'renames a link only together with a move (`namespace`)');
    }
    const moveTo = patch.namespace !== undefined && patch.namespace !== ns ? patch.namespace : undefined;
    if (kernelFields.length > 0) this.guardHost(ns, entry, link, 'be changed');

    let where = ns;
    let whereEntry = entry;
    let current = name;
    let targetLinks = links;
    if (moveTo !== undefined) {
      const to = await this.dir.stat(moveTo);
      if (!to) throw new AppError('TARGET_NAMESPACE_NOT_FOUND', `There is no namespace '${moveTo}' to move the link to`);
      targetLinks = await this.kernelLinks(moveTo, ctx);
      const newName = patch.name ?? name;
      if (targetLinks.some((l) => l.name === newName)) throw new AppError('LINK_EXISTS', `There is already a link '${newName}' in namespace '${moveTo}'`);
      where = moveTo;
      whereEntry = to;
      current = newName;
    }
    const targetByName = new Map(targetLinks.map((l) => [l.name, l]));
    if (typeof patch.master === 'string') this.checkMaster(where, whereEntry, targetByName, patch.master, current);

    const steps: Step[] = [];
    const set = (change: LinkChange): Step['run'] => (c) => this.ex.run({ kind: 'link.set', ns: where, name: current, change }, c);
    if (moveTo !== undefined) {
      steps.push({
        name: 'move',
        run: (c) => this.ex.run({ kind: 'link.move', ns, name, to: moveTo, ...(patch.name === undefined ? {} : { newName: patch.name }) }, c),
        undo: (c) => this.ex.run({ kind: 'link.move', ns: moveTo, name: current, to: ns, ...(current === name ? {} : { newName: name }) }, c),
      });
    }
    // After a move the link is down and has no master, whatever it had before.
    const was = { up: moveTo === undefined ? link.up : false, master: moveTo === undefined ? link.master : null };
    if (patch.mtu !== undefined && patch.mtu !== link.mtu) steps.push({ name: 'mtu', run: set({ mtu: patch.mtu }), undo: set({ mtu: link.mtu }) });
    if (patch.mac !== undefined && patch.mac.toLowerCase() !== link.mac) {
      const old = link.mac;
      steps.push({ name: 'mac', run: set({ mac: patch.mac }), ...(old ? { undo: set({ mac: old }) } : {}) });
    }
    if (patch.txqlen !== undefined && patch.txqlen !== link.txqlen) {
      const old = link.txqlen;
      steps.push({ name: 'txqlen', run: set({ txqlen: patch.txqlen }), ...(old === null ? {} : { undo: set({ txqlen: old }) }) });
    }
    if (patch.alias !== undefined && patch.alias !== link.alias) steps.push({ name: 'alias', run: set({ alias: patch.alias }), undo: set({ alias: link.alias }) });
    if (patch.master !== undefined && patch.master !== was.master) steps.push({ name: 'master', run: set({ master: patch.master }), undo: set({ master: was.master }) });
    if (patch.up !== undefined && patch.up !== was.up) steps.push({ name: 'up', run: set({ up: patch.up }), undo: set({ up: was.up }) });

    const done: Step[] = [];
    let c: OpContext = ctx;
    for (const s of steps) {
      try {
        await s.run(c);
        done.push(s);
        c = { ...ctx, continues: true };
      } catch (e) {
        const undone = await this.undo(done, c, ns, name);
        throw stepError(e, s.name, `Changing link '${name}' in namespace '${ns}'`, undone, done.length === 0 ? 'nothing was changed' : undone ? 'the steps before it were undone' : 'some steps before it could not be undone');
      }
    }

    const after = where === ns && moveTo === undefined && steps.length === 0 ? links : await this.kernelLinks(where, c);
    const now = this.find(where, after, current);
    let record: LinkRecord | undefined = rec;
    if (moveTo !== undefined) {
      this.records.move({ nsKey: this.keyOf(entry), ifindex: link.index }, { nsKey: this.keyOf(whereEntry), ifindex: now.index }, now.kind);
      record = this.records.get(this.keyOf(whereEntry), now.index, now.kind);
    }
    if (patch.labels !== undefined) {
      const labels = mergeLabels(record?.labels ?? {}, patch.labels);
      this.records.put({ nsKey: this.keyOf(whereEntry), ifindex: now.index, kind: now.kind, managed: record?.managed ?? false, createdAt: record?.createdAt ?? null, labels });
    }
    return this.viewOf(whereEntry, after, now, c);
  }

  private async undo(done: readonly Step[], ctx: OpContext, ns: string, name: string): Promise<boolean> {
    let ok = true;
    for (const s of [...done].reverse()) {
      if (!s.undo) {
        ok = false;
        continue;
      }
      try {
        await s.undo({ ...ctx, continues: true });
      } catch (e) {
        ok = false;
        this.log.warn({ namespace: ns, link: name, step: s.name, err: e }, 'could not undo a step of a failed link change');
      }
    }
    return ok;
  }

  // ------------------------------------------------------------------------------------------
  // Delete
  // ------------------------------------------------------------------------------------------

  /** Deletes a link; deleting either end of a veth removes both. */
  async delete(ns: string, name: string, ctx: OpContext): Promise<void> {
    // The peer's namespace is not known yet: its link.removed then shows the peer as it was.
    return this.gate.around([ns], () => this.deleteNow(ns, name, ctx));
  }

  private async deleteNow(ns: string, name: string, ctx: OpContext): Promise<void> {
    const entry = await this.entry(ns);
    const links = await this.kernelLinks(ns, ctx);
    const link = this.find(ns, links, name);
    this.guardHost(ns, entry, link, 'be deleted');
    const peer = link.kind === 'veth' ? await this.resolve(entry, links, link, ctx).catch(() => null) : null;
    await this.ex.run({ kind: 'link.delete', ns, name }, ctx);
    this.records.delete(this.keyOf(entry), link.index);
    if (peer?.namespace) {
      const peerEntry = peer.namespace === ns ? entry : await this.dir.stat(peer.namespace);
      if (peerEntry) this.records.delete(this.keyOf(peerEntry), peer.index);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Helpers
  // ------------------------------------------------------------------------------------------

  private entry(name: string): Promise<NetnsEntry> {
    return existingNamespace(this.dir, name);
  }

  private keyOf(entry: NetnsEntry): string {
    return entry.name === HOST ? this.hostKey : entry.id;
  }

  private async kernelLinks(ns: string, ctx?: OpContext): Promise<readonly KernelLink[]> {
    return (await this.ex.run({ kind: 'link.list', ns }, ctx)).links;
  }

  private find(ns: string, links: readonly KernelLink[], name: string): KernelLink {
    const l = links.find((x) => x.name === name);
    if (!l) throw new AppError('LINK_NOT_FOUND', `There is no link '${name}' in namespace '${ns}'`);
    return l;
  }

  private recordOf(entry: NetnsEntry, link: KernelLink): LinkRecord | undefined {
    return this.records.get(this.keyOf(entry), link.index, link.kind);
  }

  /** Records by ifindex (kind-checked); with `prune`, drops those of links that are gone. */
  private recordsOf(entry: NetnsEntry, links: readonly KernelLink[], prune: boolean): Map<number, LinkRecord> {
    const key = this.keyOf(entry);
    if (prune) this.records.prune(key, new Map(links.map((l) => [l.index, l.kind])));
    const all = this.records.forNamespace(key);
    const out = new Map<number, LinkRecord>();
    for (const l of links) {
      const r = all.get(l.index);
      if (r && r.kind === l.kind) out.set(l.index, r);
    }
    return out;
  }

  /** HOST_PROTECTED for a change to a link in `host` that netnsd did not create. */
  private guardHost(ns: string, entry: NetnsEntry, link: KernelLink, what: string): void {
    if (ns !== HOST || this.hostAllowChanges) return;
    if (this.recordOf(entry, link)?.managed) return;
    throw new AppError(
      'HOST_PROTECTED',
      `Link '${link.name}' in host was not created by netnsd and may not ${what} (set host.allowChanges to allow it)`,
      { meta: { link: link.name } },
    );
  }

  private checkMaster(ns: string, entry: NetnsEntry, byName: ReadonlyMap<string, KernelLink>, master: string, self: string): void {
    const m = byName.get(master);
    if (!m) throw new AppError('LINK_MASTER_NOT_FOUND', `There is no bridge '${master}' in namespace '${ns}'`);
    if (m.kind !== 'bridge') throw new AppError('LINK_MASTER_INVALID', `'${master}' in namespace '${ns}' is a ${m.kind}, not a bridge`);
    if (master === self) throw new AppError('LINK_MASTER_INVALID', `A bridge cannot be a port of itself`);
    this.guardHost(ns, entry, m, 'be used as a master');
  }

  private checkKind(body: LinkCreate): void {
    const caps = this.caps();
    const supported = CREATABLE_LINK_KINDS.filter((k) => caps.linkKinds.supported.includes(k));
    if (!supported.includes(body.kind)) {
      throw new AppError('LINK_KIND_UNSUPPORTED', `This kernel cannot create ${body.kind} links; it can create: ${supported.join(', ')}`, {
        meta: { supportedKinds: supported },
      });
    }
    if (body.kind === 'bridge' && body.vlanFiltering === true && caps.linkFeatures['bridge.vlan_filtering'] !== true) {
      throw new AppError('LINK_FEATURE_UNSUPPORTED', 'This kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)', {
        meta: { feature: 'bridge.vlan_filtering' },
      });
    }
  }

  /** Resolve peers and parents from the monitor's inventory when it watches the namespace (no reads). */
  useInventory(refs: LinkRefs): void {
    this.refs = refs;
  }

  /**
   * The inventory's resolver when it watches the namespace, falling back to reads (Resolver) for
   * a reference into another namespace that the inventory cannot place: the other namespace may
   * not be watched yet (a namespace is seeded asynchronously after it appears, and a veth into it
   * can be made within a millisecond of its creation over netlink).
   */
  private resolverFor(entry: NetnsEntry, links: readonly KernelLink[], ctx?: OpContext): Pick<Resolver, 'peer' | 'parent'> {
    const refs = this.refs;
    let reads: Resolver | undefined;
    const fallback = (): Resolver => (reads ??= new Resolver(this, entry, links, ctx));
    if (refs?.serves(entry.name)) {
      const unplaced = (r: Link['peer'], l: KernelLink): boolean => r !== null && r.namespace === null && l.lower?.netnsid != null;
      return {
        peer: async (l) => {
          const r = refs.peerOf(entry.name, l);
          return unplaced(r, l) ? fallback().peer(l) : r;
        },
        parent: async (l) => {
          const r = refs.parentOf(entry.name, l);
          return unplaced(r, l) ? fallback().parent(l) : r;
        },
      };
    }
    return fallback();
  }

  private async views(entry: NetnsEntry, links: readonly KernelLink[], recs: ReadonlyMap<number, LinkRecord>, ctx?: OpContext): Promise<Link[]> {
    const resolver = this.resolverFor(entry, links, ctx);
    return Promise.all(links.map(async (l) => this.toView(entry, l, recs.get(l.index), await resolver.peer(l), await resolver.parent(l))));
  }

  /** `peer`: the veth's other end when the caller knows it (it just made the pair), so nothing is resolved. */
  private async viewOf(entry: NetnsEntry, links: readonly KernelLink[], link: KernelLink, ctx?: OpContext, peer?: Link['peer']): Promise<Link> {
    const resolver = this.resolverFor(entry, links, ctx);
    return this.toView(entry, link, this.recordOf(entry, link), peer ?? (await resolver.peer(link)), await resolver.parent(link));
  }

  private async resolve(entry: NetnsEntry, links: readonly KernelLink[], link: KernelLink, ctx?: OpContext): Promise<Link['peer']> {
    return this.resolverFor(entry, links, ctx).peer(link);
  }

  /**
   * The view of a link the inventory holds (its record read now; peer and parent resolved by
   * the caller from the inventory), for events.
   */
  /** The ifindexes of the namespace whose records changed since the last call (see LinkRecords.takeTouched). */
  touchedLinks(entry: NetnsEntry): ReadonlySet<number> {
    return this.records.takeTouched(this.keyOf(entry));
  }

  inventoryView(entry: NetnsEntry, l: KernelLink, peer: Link['peer'], parent: Link['parent']): Link {
    return this.toView(entry, l, this.recordOf(entry, l), peer, parent);
  }

  private toView(entry: NetnsEntry, l: KernelLink, rec: LinkRecord | undefined, peer: Link['peer'], parent: Link['parent']): Link {
    return {
      name: l.name,
      index: l.index,
      namespace: entry.name,
      kind: l.kind,
      state: l.up ? 'up' : 'down',
      operstate: l.operstate,
      mtu: l.mtu,
      mac: l.mac,
      txqlen: l.txqlen,
      alias: l.alias,
      master: l.master,
      parent,
      peer,
      managed: rec?.managed ?? false,
      labels: { ...(rec?.labels ?? {}) },
      createdAt: rec?.createdAt ?? null,
      ...(l.bridge ? { bridge: { ...l.bridge } } : {}),
      ...(l.macvlan ? { macvlan: { ...l.macvlan } } : {}),
      ...(l.vxlan ? { vxlan: { vni: l.vxlan.vni, local: l.vxlan.local, remote: l.vxlan.remote, group: l.vxlan.group, dstport: l.vxlan.dstport } } : {}),
      ...(l.tun ? { tun: { ...l.tun } } : {}),
    };
  }

  /** For Resolver: reads that may fail (a namespace deleted meanwhile) answer undefined. */
  async tryLinks(ns: string, ctx?: OpContext): Promise<readonly KernelLink[] | undefined> {
    return this.kernelLinks(ns, ctx).catch(() => undefined);
  }

  async tryNsids(ns: string, ctx?: OpContext): Promise<ReadonlyArray<{ nsid: number; name: string }>> {
    return (await this.ex.run({ kind: 'link.nsids', ns }, ctx).catch(() => ({ nsids: [] }))).nsids;
  }

  async tryRootNsid(ns: string, ctx?: OpContext): Promise<number> {
    return (await this.ex.run({ kind: 'netns.getNsid', ns }, ctx).catch(() => ({ nsid: -1 }))).nsid;
  }
}

/**
 * Resolves IFLA_LINK references of one namespace's links to `{ namespace, name, index }`, with
 * the reads each needs done once: the namespace's nsid table (`link-netnsid` is an nsid *this*
 * namespace has for the other one), and the links of each namespace a reference points into.
 * `host` has no name under /run/netns: a veth whose peer is not in a named namespace is checked
 * against the host's veths (the one whose peer is this link is its other end).
 */
class Resolver {
  private nsids: Promise<ReadonlyArray<{ nsid: number; name: string }>> | undefined;
  private readonly linksOf = new Map<string, Promise<readonly KernelLink[] | undefined>>();

  constructor(
    private readonly svc: LinkService,
    private readonly entry: NetnsEntry,
    private readonly own: readonly KernelLink[],
    private readonly ctx: OpContext | undefined,
  ) {}

  async peer(l: KernelLink): Promise<Link['peer']> {
    if (l.kind !== 'veth' || !l.lower) return null;
    return this.ref(l, l.lower, true);
  }

  async parent(l: KernelLink): Promise<Link['parent']> {
    if (l.vxlan) return l.vxlan.parent === null ? null : { namespace: this.entry.name, name: l.vxlan.parent, index: this.own.find((x) => x.name === l.vxlan?.parent)?.index ?? -1 };
    if (l.kind === 'veth' || !l.lower) return null;
    return this.ref(l, l.lower, false);
  }

  private async ref(l: KernelLink, lower: NonNullable<KernelLink['lower']>, veth: boolean): Promise<NonNullable<Link['peer']>> {
    if (lower.netnsid === null) {
      return { namespace: this.entry.name, name: lower.name ?? this.own.find((x) => x.index === lower.index)?.name ?? null, index: lower.index };
    }
    const ns = (await this.nsidTable()).find((e) => e.nsid === lower.netnsid)?.name;
    if (ns !== undefined) {
      const there = await this.links(ns);
      return { namespace: ns, name: there?.find((x) => x.index === lower.index)?.name ?? null, index: lower.index };
    }
    if (veth && this.entry.name !== HOST) {
      // Is the other end in host? Its peer must be this very link, seen from host by our nsid.
      const [hostLinks, ourNsid] = await Promise.all([this.links(HOST), this.svc.tryRootNsid(this.entry.name, this.ctx)]);
      const h = hostLinks?.find((x) => x.index === lower.index && x.kind === 'veth' && x.lower?.index === l.index && x.lower.netnsid === ourNsid);
      if (h && ourNsid >= 0) return { namespace: HOST, name: h.name, index: h.index };
    }
    return { namespace: null, name: null, index: lower.index };
  }

  private nsidTable(): Promise<ReadonlyArray<{ nsid: number; name: string }>> {
    this.nsids ??= this.svc.tryNsids(this.entry.name, this.ctx);
    return this.nsids;
  }

  private links(ns: string): Promise<readonly KernelLink[] | undefined> {
    let p = this.linksOf.get(ns);
    if (!p) {
      p = ns === this.entry.name ? Promise.resolve(this.own) : this.svc.tryLinks(ns, this.ctx);
      this.linksOf.set(ns, p);
    }
    return p;
  }
}

function invalid(field: string, message: string): AppError {
  return new AppError('REQUEST_INVALID', `The request is not valid: ${field} ${message}`, { meta: { errors: [{ field, message }] } });
}

/** Kind-dependent field rules the schema cannot say: which fields a kind takes and needs. */
function checkFields(body: LinkCreate): void {
  const errors: Array<{ field: string; message: string }> = [];
  const b = body as unknown as Record<string, unknown>;
  const allowed = KIND_FIELDS[body.kind] ?? [];
  for (const f of ALL_KIND_FIELDS) if (b[f] !== undefined && !allowed.includes(f)) errors.push({ field: `body.${f}`, message: `is not a field of kind ${body.kind}` });
  for (const f of REQUIRED[body.kind] ?? []) if (b[f] === undefined) errors.push({ field: `body.${f}`, message: `is required for kind ${body.kind}` });
  for (const f of ['local', 'remote', 'group'] as const) {
    const v = body[f];
    if (v !== undefined && isIP(v) === 0) errors.push({ field: `body.${f}`, message: 'must be an IPv4 or IPv6 address' });
  }
  if (body.remote !== undefined && body.group !== undefined) errors.push({ field: 'body.group', message: 'cannot be given with remote' });
  if (body.group !== undefined && isIP(body.group) !== 0 && !isMulticast(body.group)) errors.push({ field: 'body.group', message: 'must be a multicast address' });
  if (body.group !== undefined && body.parent === undefined && body.kind === 'vxlan') errors.push({ field: 'body.parent', message: 'is required with group (the device to join the group on)' });
  if (errors.length > 0) {
    throw new AppError('REQUEST_INVALID', `The request is not valid: ${errors.map((e) => `${e.field} ${e.message}`).join('; ')}`, { meta: { errors } });
  }
}

function isMulticast(a: string): boolean {
  if (isIP(a) === 4) {
    const first = Number(a.split('.')[0]);
    return first >= 224 && first <= 239;
  }
  return a.toLowerCase().startsWith('ff');
}

/** The executor's spec for a validated body (checkFields ran). tun/tap take mtu/mac as later steps. */
function toSpec(body: LinkCreate, peerNs: string, up: boolean): LinkAddSpec {
  const isTun = body.kind === 'tun' || body.kind === 'tap';
  const common = {
    name: body.name,
    ...(body.mtu === undefined || isTun ? {} : { mtu: body.mtu }),
    ...(body.mac === undefined || isTun ? {} : { mac: body.mac }),
  };
  switch (body.kind) {
    case 'veth':
      return { ...common, linkKind: 'veth', peer: { name: body.peer!.name, ns: peerNs }, ...(up ? { up: true } : {}) };
    case 'bridge':
      return {
        ...common,
        linkKind: 'bridge',
        ...(body.stp === undefined ? {} : { stp: body.stp }),
        ...(body.vlanFiltering === undefined ? {} : { vlanFiltering: body.vlanFiltering }),
        ...(up ? { up: true } : {}),
      };
    case 'macvlan':
      return { ...common, linkKind: 'macvlan', parent: body.parent!, mode: body.mode ?? 'bridge' };
    case 'vxlan':
      return {
        ...common,
        linkKind: 'vxlan',
        vni: body.vni!,
        dstport: body.dstport ?? VXLAN_DEFAULT_DSTPORT,
        ...(body.local === undefined ? {} : { local: body.local }),
        ...(body.remote === undefined ? {} : { remote: body.remote }),
        ...(body.group === undefined ? {} : { group: body.group }),
        ...(body.parent === undefined ? {} : { parent: body.parent }),
      };
    case 'vlan':
      return { ...common, linkKind: 'vlan', parent: body.parent!, vlanId: body.vlanId! };
    case 'vrf':
      return { ...common, linkKind: 'vrf', table: body.table! };
    case 'gre':
      return { ...common, linkKind: 'gre', local: body.local!, remote: body.remote! };
    default:
      return { ...common, linkKind: body.kind };
  }
}

/** The error of a failed step: its code, with the step and what was undone in detail and meta. */
function stepError(e: unknown, step: string, what: string, undone: boolean, tail?: string): unknown {
  if (!(e instanceof AppError)) return e;
  return new AppError(e.code, `${what} failed at step ${step}: ${e.detail}${tail ? `; ${tail}` : ''}`, {
    cause: e,
    meta: { ...e.meta, step, ...(tail ? { undone } : {}) },
    ...(e.headers ? { headers: e.headers } : {}),
  });
}
