/**
 * IP addresses of every namespace's links, `host` included. What exists comes from the kernel
 * (`addr.list`, one read per request until issue 4's inventory); an address's id is made from the
 * kernel's key for it, so it needs no store and survives restarts.
 *
 * Host safety: unless `host.allowChanges`, addresses in `host` may be added and deleted only on
 * links netnsd created (HOST_PROTECTED), and an added address's prefix — the connected route the
 * kernel makes for it — must not be shorter than /16 (IPv6 /32) nor overlap a subnet of a link
 * netnsd did not create, nor a route of host through one (HOST_ROUTE_CONFLICT).
 */
import { AppError, invalidFields } from '../errors/app-error.js';
import type { Executor, OpContext } from '../executor/executor.js';
import { HOST, type AddrAddSpec, type KernelAddress, type KernelLink } from '../executor/ops.js';
import {
  broadcastOf,
  formatIp,
  formatPrefix,
  isMulticast,
  networkOf,
  overlaps,
  parseIp,
  parsePrefix,
  sameIp,
  type IpPrefix,
} from '../ip-address.js';
import { type Page, paginate } from '../paging.js';
import type { LinkRecords } from '../store/link-records.js';
import { existingNamespace, type NetnsDirectory } from '../namespaces/netns-dir.js';
import type { Address, AddressCreate } from './address-schema.js';

export interface AddressServiceOptions {
  readonly executor: Executor;
  readonly records: LinkRecords;
  readonly dir: NetnsDirectory;
  readonly hostAllowChanges: boolean;
  readonly hostKey: string;
}

export interface AddressListFilter {
  readonly link?: string | undefined;
  readonly family?: 4 | 6 | undefined;
  readonly limit?: number | undefined;
  readonly cursor?: string | undefined;
}

/** The shortest prefix a host address may have (its connected route covers the rest). */
const HOST_MIN_PREFIX = { 4: 16, 6: 32 } as const;

/** The id of an address: base64url of `IFINDEX|FAMILY|LOCAL/PREFIX[|PEER]` (the kernel's key). */
export function addressId(a: Pick<KernelAddress, 'ifindex' | 'family' | 'local' | 'prefixLength' | 'peer'>): string {
  return Buffer.from(`${a.ifindex}|${a.family}|${a.local}/${a.prefixLength}${a.peer === null ? '' : `|${a.peer}`}`, 'utf8').toString('base64url');
}

/** A key that sorts as the list does (link, family, address value, prefix), for paging. */
function sortKey(a: KernelAddress): string {
  const v = parseIp(a.local)?.value ?? 0n;
  return `${String(a.ifindex).padStart(10, '0')}|${a.family}|${v.toString(16).padStart(32, '0')}|${String(a.prefixLength).padStart(3, '0')}|${a.peer ?? ''}`;
}

export class AddressService {
  private readonly ex: Executor;
  private readonly records: LinkRecords;
  private readonly dir: NetnsDirectory;
  private readonly hostAllowChanges: boolean;
  private readonly hostKey: string;

  constructor(o: AddressServiceOptions) {
    this.ex = o.executor;
    this.records = o.records;
    this.dir = o.dir;
    this.hostAllowChanges = o.hostAllowChanges;
    this.hostKey = o.hostKey;
  }

  async list(ns: string, f: AddressListFilter): Promise<Page<Address>> {
    await this.entry(ns);
    const all = await this.kernelAddresses(ns, f.link);
    const items = all
      .filter((a) => f.family === undefined || a.family === f.family)
      .map((a) => ({ key: sortKey(a), a }))
      .sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
    const page = paginate(items, (x) => x.key, f.limit, f.cursor);
    return { ...page, items: page.items.map((x) => addressView(ns, x.a)) };
  }

  async get(ns: string, id: string): Promise<Address> {
    await this.entry(ns);
    return addressView(ns, this.find(ns, await this.kernelAddresses(ns), id));
  }

  async create(ns: string, body: AddressCreate, ctx: OpContext): Promise<Address> {
    await this.entry(ns);
    const spec = toSpec(body);
    if (ns === HOST && !this.hostAllowChanges) await this.guardHostAdd(body.link, spec, ctx);
    await this.ex.run({ kind: 'addr.add', ns, spec }, ctx);
    const local = parseIp(spec.local);
    const rest = { ...ctx, continues: true };
    const isMade = (a: KernelAddress) => a.prefixLength === spec.prefixLength && local !== undefined && sameIp(parseIp(a.local) ?? { family: 4, value: -1n }, local);
    // An IPv4 address is announced before the kernel acknowledges it; an IPv6 one may be
    // announced later: then the kernel is read again.
    const made = (await this.kernelAddresses(ns, spec.link, rest)).find(isMade) ?? (await this.kernelAddresses(ns, spec.link, rest, true)).find(isMade);
    if (!made) throw new AppError('INTERNAL', `the address ${spec.local}/${spec.prefixLength} was added but is not listed`);
    return addressView(ns, made);
  }

  async delete(ns: string, id: string, ctx: OpContext): Promise<void> {
    await this.entry(ns);
    const a = this.find(ns, await this.kernelAddresses(ns, undefined, ctx), id);
    if (ns === HOST && !this.hostAllowChanges) {
      const links = (await this.ex.run({ kind: 'link.list', ns }, ctx)).links;
      const link = links.find((l) => l.index === a.ifindex);
      if (!link || !this.isManaged(link)) throw protectedLink(a.link);
    }
    await this.ex.run(
      { kind: 'addr.delete', ns, link: a.link, local: a.local, prefixLength: a.prefixLength, ...(a.peer === null ? {} : { peer: a.peer }) },
      ctx,
    );
  }

  private async guardHostAdd(linkName: string, spec: AddrAddSpec, ctx: OpContext): Promise<void> {
    const links = (await this.ex.run({ kind: 'link.list', ns: HOST }, ctx)).links;
    const link = links.find((l) => l.name === linkName);
    if (!link) throw new AppError('LINK_NOT_FOUND', `There is no link '${linkName}' in namespace 'host'`);
    if (!this.isManaged(link)) throw protectedLink(linkName);
    const p: IpPrefix = { ...(parseIp(spec.peer ?? spec.local) as NonNullable<ReturnType<typeof parseIp>>), prefixLength: spec.prefixLength };
    const min = HOST_MIN_PREFIX[spec.family];
    if (p.prefixLength < min) {
      throw new AppError('HOST_ROUTE_CONFLICT', `An address in host may not have a prefix shorter than /${min}: its connected route would cover ${formatPrefix(networkOf(p))}`, {
        meta: { prefix: formatPrefix(networkOf(p)) },
      });
    }
    const unmanaged = new Set(links.filter((l) => !this.isManaged(l)).map((l) => l.index));
    // Routes through links netnsd did not create (the default route aside: everything is under it).
    const unmanagedDev = (dev: string | null): boolean => dev === null || !links.some((l) => l.name === dev && this.isManaged(l));
    for (const r of (await this.ex.run({ kind: 'route.list', ns: HOST, family: spec.family, table: 'all' }, ctx)).routes) {
      if (r.type !== 'unicast' || !(r.nexthops ? r.nexthops.some((n) => unmanagedDev(n.dev)) : unmanagedDev(r.dev))) continue;
      const theirs = parsePrefix(r.dst);
      if (typeof theirs === 'string' || theirs.prefixLength === 0 || !overlaps(p, theirs)) continue;
      const through = r.dev ?? r.nexthops?.map((n) => n.dev).join(', ') ?? '';
      throw new AppError('HOST_ROUTE_CONFLICT', `${formatPrefix(p)} overlaps ${r.dst}, which host reaches through link '${through}', which netnsd did not create`, {
        meta: { overlaps: r.dst, link: through },
      });
    }
    for (const a of await this.kernelAddresses(HOST, undefined, ctx)) {
      if (!unmanaged.has(a.ifindex)) continue;
      const theirs = parsePrefix(`${a.peer ?? a.local}/${a.prefixLength}`);
      if (typeof theirs === 'string' || !overlaps(p, theirs)) continue;
      const net = formatPrefix(networkOf(theirs));
      throw new AppError('HOST_ROUTE_CONFLICT', `${formatPrefix(p)} overlaps ${net}, reached through link '${a.link}', which netnsd did not create`, {
        meta: { overlaps: net, link: a.link },
      });
    }
  }

  private isManaged(link: KernelLink): boolean {
    return this.records.get(this.hostKey, link.index, link.kind)?.managed === true;
  }

  private async entry(ns: string): Promise<void> {
    await existingNamespace(this.dir, ns);
  }

  private async kernelAddresses(ns: string, link?: string, ctx?: OpContext, fresh = false): Promise<readonly KernelAddress[]> {
    return (await this.ex.run({ kind: 'addr.list', ns, ...(link === undefined ? {} : { link }), ...(fresh ? { fresh } : {}) }, ctx)).addresses;
  }

  private find(ns: string, all: readonly KernelAddress[], id: string): KernelAddress {
    const a = all.find((x) => addressId(x) === id);
    if (!a) throw new AppError('ADDRESS_NOT_FOUND', `There is no address '${id}' in namespace '${ns}'`);
    return a;
  }
}

function protectedLink(name: string): AppError {
  return new AppError('HOST_PROTECTED', `Link '${name}' in host was not created by netnsd: its addresses may not be changed (set host.allowChanges to allow it)`, {
    meta: { link: name },
  });
}

/** As the API shows it. */
export function addressView(ns: string, a: KernelAddress): Address {
  return {
    id: addressId(a),
    namespace: ns,
    link: a.link,
    family: a.family,
    address: `${a.local}/${a.prefixLength}`,
    prefixLength: a.prefixLength,
    peer: a.peer,
    broadcast: a.broadcast,
    scope: a.scope,
    label: a.label,
    tentative: a.flags.includes('tentative'),
    flags: [...a.flags],
    validLifetime: a.validLifetime,
    preferredLifetime: a.preferredLifetime,
  };
}

/** Parses and checks a creation body (every failing field listed), giving the executor's spec. */
function toSpec(body: AddressCreate): AddrAddSpec {
  const errors: Array<{ field: string; message: string }> = [];
  const err = (field: string, message: string): void => void errors.push({ field: `body.${field}`, message });
  const p = parsePrefix(body.address);
  if (typeof p === 'string') {
    err('address', p);
    throw invalidFields(errors);
  }
  const v4 = p.family === 4;
  if (p.value === 0n) err('address', 'is the unspecified address');
  else if (isMulticast(p)) err('address', 'is a multicast address');
  else if (v4 && p.value === 0xffffffffn) err('address', 'is the limited broadcast address');
  else if (v4 && body.peer === undefined && p.prefixLength <= 30) {
    if (p.value === networkOf(p).value) err('address', `is the network address of ${formatPrefix(networkOf(p))} (use a host address, e.g. ${formatIp({ family: 4, value: p.value + 1n })}/${p.prefixLength})`);
    else if (p.value === broadcastOf(p)) err('address', `is the broadcast address of ${formatPrefix(networkOf(p))}`);
  }
  let peer: string | undefined;
  if (body.peer !== undefined) {
    const q = parseIp(body.peer);
    if (!q) err('peer', 'is not an IPv4 or IPv6 address');
    else if (q.family !== p.family) err('peer', `must be an IPv${p.family} address like the address`);
    else if (isMulticast(q) || q.value === 0n) err('peer', 'must be a unicast address');
    else peer = formatIp(q);
  }
  let broadcast: string | undefined;
  if (body.broadcast !== undefined) {
    const b = parseIp(body.broadcast);
    if (!v4) err('broadcast', 'is for IPv4 addresses only');
    else if (!b || b.family !== 4) err('broadcast', 'is not an IPv4 address');
    else broadcast = formatIp(b);
  }
  if (body.scope !== undefined && !v4) err('scope', 'is for IPv4 addresses only (an IPv6 scope follows from the address)');
  if (body.label !== undefined) {
    if (!v4) err('label', 'is for IPv4 addresses only');
    else if (body.label !== body.link && !body.label.startsWith(`${body.link}:`)) err('label', `must be the link name or start with '${body.link}:'`);
  }
  if (body.nodad !== undefined && v4) err('nodad', 'is for IPv6 addresses only (IPv4 has no duplicate address detection)');
  if (errors.length > 0) throw invalidFields(errors);
  return {
    link: body.link,
    family: p.family,
    local: formatIp(p),
    prefixLength: p.prefixLength,
    ...(peer === undefined ? {} : { peer }),
    ...(broadcast === undefined ? {} : { broadcast }),
    ...(body.scope === undefined ? {} : { scope: body.scope }),
    ...(body.label === undefined ? {} : { label: body.label }),
    ...(body.nodad ? { nodad: true } : {}),
  };
}
