/**
 * Neighbour entries (the ARP and NDP caches) of every namespace, `host` included. What exists
 * comes from the kernel (`neigh.list`, one read per request until issue 4's inventory); an
 * entry's id is made from the kernel's key for it (link, family, address), so it needs no store.
 *
 * netnsd makes permanent entries only. Creating one over an entry the kernel learnt (reachable,
 * stale, failed, ...) replaces it: that is what a user asking for a static entry wants; over a
 * static one (permanent, noarp) it is NEIGHBOR_EXISTS, and PUT replaces it.
 *
 * Host safety: unless `host.allowChanges`, entries in `host` are made, replaced and deleted only
 * on links netnsd created (HOST_PROTECTED otherwise); reading is free.
 */
import { AppError, invalidFields } from '../errors/app-error.js';
import type { Executor, OpContext } from '../executor/executor.js';
import { HOST, type KernelLink, type KernelNeighbor, type NeighAddSpec } from '../executor/ops.js';
import { type Family, formatIp, isMulticast, parseIp, sameIp } from '../ip-address.js';
import { isLinkName } from '../names.js';
import { type Page, paginate } from '../paging.js';
import type { LinkRecords } from '../store/link-records.js';
import { existingNamespace, type NetnsDirectory } from '../namespaces/netns-dir.js';
import type { Neighbor, NeighborCreate, NeighborListQuery } from './neighbor-schema.js';

export interface NeighborServiceOptions {
  readonly executor: Executor;
  readonly records: LinkRecords;
  readonly dir: NetnsDirectory;
  readonly hostAllowChanges: boolean;
  readonly hostKey: string;
}

export interface NeighborListFilter {
  readonly link?: string | undefined;
  readonly family?: Family | undefined;
  readonly state?: NeighborListQuery['state'];
  readonly limit?: number | undefined;
  readonly cursor?: string | undefined;
}

/** What identifies an entry to the kernel: the link and the address (whose family it is in). */
export interface NeighborKey {
  readonly link: string;
  readonly family: Family;
  /** Canonical text form (as iproute2 prints it). */
  readonly address: string;
}

/** The id of an entry: base64url of `LINK|FAMILY|ADDRESS`. */
export function neighborId(k: NeighborKey): string {
  return Buffer.from(`${k.link}|${k.family}|${k.address}`, 'utf8').toString('base64url');
}

/** The key in an id, or undefined when it is not one of ours. */
function decodeId(id: string): NeighborKey | undefined {
  const parts = Buffer.from(id, 'base64url').toString('utf8').split('|');
  if (parts.length !== 3) return undefined;
  const [link, family, address] = parts as [string, string, string];
  const a = parseIp(address);
  if (!isLinkName(link) || (family !== '4' && family !== '6') || !a || a.family !== Number(family)) return undefined;
  return { link, family: a.family, address: formatIp(a) };
}

/** A key that sorts as the list does (link, family, address value), for paging. */
function sortKey(n: KernelNeighbor): string {
  const v = parseIp(n.address)?.value ?? 0n;
  return `${n.link}|${n.family}|${v.toString(16).padStart(32, '0')}`;
}

/** A static entry: one made by hand (permanent) or by the kernel for an address without resolution (noarp). */
const isStatic = (n: KernelNeighbor): boolean => n.states.includes('permanent') || n.states.includes('noarp');

/** What `ip neigh show` shows without `nud`: every entry but noarp and none ones (iproute2 6.1). */
const shownByDefault = (n: KernelNeighbor): boolean => n.states.some((s) => s !== 'noarp' && s !== 'none');

export class NeighborService {
  private readonly ex: Executor;
  private readonly records: LinkRecords;
  private readonly dir: NetnsDirectory;
  private readonly hostAllowChanges: boolean;
  private readonly hostKey: string;

  constructor(o: NeighborServiceOptions) {
    this.ex = o.executor;
    this.records = o.records;
    this.dir = o.dir;
    this.hostAllowChanges = o.hostAllowChanges;
    this.hostKey = o.hostKey;
  }

  async list(ns: string, f: NeighborListFilter): Promise<Page<Neighbor>> {
    await this.entry(ns);
    const state = f.state;
    const items = (await this.kernelNeighbors(ns, f.link))
      .filter((n) => f.family === undefined || n.family === f.family)
      .filter((n) => (state === undefined ? shownByDefault(n) : state === 'all' || n.states.includes(state)))
      .map((n) => ({ key: sortKey(n), n }))
      .sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
    const page = paginate(items, (x) => x.key, f.limit, f.cursor);
    return { ...page, items: page.items.map((x) => neighborView(ns, x.n)) };
  }

  async get(ns: string, id: string): Promise<Neighbor> {
    await this.entry(ns);
    return neighborView(ns, await this.find(ns, id));
  }

  /**
   * Makes a permanent entry. `neigh add` refuses an address the link has any entry for, so when
   * it does, the entry is read: a static one is NEIGHBOR_EXISTS, a learnt one is replaced.
   */
  async create(ns: string, body: NeighborCreate, ctx: OpContext): Promise<Neighbor> {
    await this.entry(ns);
    const spec = toSpec(body);
    await this.guardLink(ns, spec.link, ctx);
    try {
      await this.ex.run({ kind: 'neigh.add', ns, spec }, ctx);
    } catch (e) {
      if (!(e instanceof AppError) || e.code !== 'NEIGHBOR_EXISTS') throw e;
      const old = (await this.kernelNeighbors(ns, spec.link, { ...ctx, continues: true })).find((n) => n.address === spec.address);
      if (old && isStatic(old)) {
        const id = neighborId(old);
        throw new AppError('NEIGHBOR_EXISTS', `Link '${spec.link}' in namespace '${ns}' has a ${old.states.join(', ')} entry for ${spec.address}: replace it with PUT /v1/namespaces/${ns}/neighbors/${id}`, {
          cause: e,
          meta: { id },
        });
      }
      await this.ex.run({ kind: 'neigh.add', ns, spec, replace: true }, { ...ctx, continues: true });
    }
    return neighborView(ns, await this.made(ns, spec, { ...ctx, continues: true }));
  }

  /** Replaces the entry of this id atomically (`ip neigh replace`) with a permanent one; the body must keep its key. */
  async replace(ns: string, id: string, body: NeighborCreate, ctx: OpContext): Promise<Neighbor> {
    await this.entry(ns);
    const old = await this.find(ns, id, ctx);
    const spec = toSpec(body);
    const errors: Array<{ field: string; message: string }> = [];
    const keep = "it is part of the entry's key (a different one is a different entry: create that one and delete this)";
    if (spec.link !== old.link) errors.push({ field: 'body.link', message: `must stay '${old.link}': ${keep}` });
    if (spec.address !== old.address) errors.push({ field: 'body.address', message: `must stay ${old.address}: ${keep}` });
    if (errors.length > 0) throw invalidFields(errors);
    await this.guardLink(ns, spec.link, ctx);
    await this.ex.run({ kind: 'neigh.add', ns, spec, replace: true }, ctx);
    return neighborView(ns, await this.made(ns, spec, { ...ctx, continues: true }));
  }

  async delete(ns: string, id: string, ctx: OpContext): Promise<void> {
    await this.entry(ns);
    const n = await this.find(ns, id, ctx);
    if (ns === HOST && !this.hostAllowChanges) await this.guardLink(ns, n.link, ctx);
    await this.ex.run({ kind: 'neigh.delete', ns, link: n.link, address: n.address }, ctx);
  }

  // ------------------------------------------------------------------------------------------

  /**
   * The link must exist (LINK_NOT_FOUND), have link-layer addresses — a tun or wireguard link has
   * none, and the kernel takes an entry on one but makes nonsense of it (6.18) — and, in host,
   * be netnsd's.
   */
  private async guardLink(ns: string, name: string, ctx: OpContext): Promise<void> {
    const link = (await this.ex.run({ kind: 'link.list', ns, name }, ctx)).links[0];
    if (!link) throw new AppError('LINK_NOT_FOUND', `There is no link '${name}' in namespace '${ns}'`);
    if (ns === HOST && !this.hostAllowChanges && !this.managed(link)) {
      throw new AppError('HOST_PROTECTED', `Link '${name}' in host was not created by netnsd: its neighbour entries may not be changed (set host.allowChanges to allow it)`, {
        meta: { link: name },
      });
    }
    if (link.mac === null) {
      throw new AppError('NEIGHBOR_LINK_UNSUPPORTED', `Link '${name}' in namespace '${ns}' has no link-layer addresses (a ${link.kind} link): it takes no neighbour entries`, {
        meta: { link: name },
      });
    }
  }

  private managed(link: KernelLink): boolean {
    return this.records.get(this.hostKey, link.index, link.kind)?.managed === true;
  }

  private async made(ns: string, spec: NeighAddSpec, ctx: OpContext): Promise<KernelNeighbor> {
    const n = (await this.kernelNeighbors(ns, spec.link, ctx)).find((x) => x.address === spec.address);
    if (!n) throw new AppError('INTERNAL', `the neighbour entry for ${spec.address} on link '${spec.link}' was made but is not listed`);
    return n;
  }

  private async find(ns: string, id: string, ctx?: OpContext): Promise<KernelNeighbor> {
    const key = decodeId(id);
    let n: KernelNeighbor | undefined;
    if (key) {
      try {
        n = (await this.kernelNeighbors(ns, key.link, ctx)).find((x) => x.family === key.family && x.address === key.address);
      } catch (e) {
        // The link of the id is gone, and its entries with it.
        if (!(e instanceof AppError) || e.code !== 'LINK_NOT_FOUND') throw e;
      }
    }
    if (!n) throw new AppError('NEIGHBOR_NOT_FOUND', `There is no neighbour entry '${id}' in namespace '${ns}'`);
    return n;
  }

  private async entry(ns: string): Promise<void> {
    await existingNamespace(this.dir, ns);
  }

  private async kernelNeighbors(ns: string, link?: string, ctx?: OpContext): Promise<readonly KernelNeighbor[]> {
    return (await this.ex.run({ kind: 'neigh.list', ns, ...(link === undefined ? {} : { link }) }, ctx)).neighbors;
  }
}

/** As the API shows it. */
export function neighborView(ns: string, n: KernelNeighbor): Neighbor {
  return {
    id: neighborId(n),
    namespace: ns,
    link: n.link,
    family: n.family,
    address: n.address,
    mac: n.mac,
    states: [...n.states],
    router: n.flags.includes('router'),
    flags: [...n.flags],
  };
}

/** Parses and checks a body (every failing field listed), giving the executor's spec. */
function toSpec(body: NeighborCreate): NeighAddSpec {
  const errors: Array<{ field: string; message: string }> = [];
  const err = (field: string, message: string): void => void errors.push({ field: `body.${field}`, message });
  const a = parseIp(body.address);
  if (!a) err('address', body.address.includes('/') ? 'is an address without a prefix length' : 'is not an IPv4 or IPv6 address');
  else if (a.value === 0n) err('address', 'is the unspecified address');
  else if (isMulticast(a)) err('address', 'is a multicast address (the kernel maps those to MAC addresses itself)');
  else if (a.family === 4 && sameIp(a, { family: 4, value: 0xffffffffn })) err('address', 'is the limited broadcast address');
  if (/^(00:){5}00$/.test(body.mac)) err('mac', 'is the all-zero MAC address');
  if (body.router === true && a?.family === 4) err('router', 'is for IPv6 neighbours only');
  if (errors.length > 0 || !a) throw invalidFields(errors);
  return {
    link: body.link,
    family: a.family,
    address: formatIp(a),
    mac: body.mac.toLowerCase(),
    ...(body.router ? { router: true } : {}),
  };
}
