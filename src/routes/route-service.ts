/**
 * IP routes of every namespace, `host` included. What exists comes from the kernel (`route.list`,
 * one read per table and family per request until issue 4's inventory); a route's id is made from
 * the kernel's key for it (table, family, destination, metric, tos), so it needs no store.
 *
 * Host safety: unless `host.allowChanges`, routes in `host` go only through links netnsd created
 * (HOST_PROTECTED otherwise, and for blackhole & co., which go through none), and are never a
 * default route, shorter than /16 (IPv6 /32), or overlapping a prefix — or with a gateway inside
 * one — that the host reaches through a link netnsd did not create (HOST_ROUTE_CONFLICT).
 */
import { AppError, invalidFields } from '../errors/app-error.js';
import type { Executor, OpContext } from '../executor/executor.js';
import { HOST, TABLE_LOCAL, TABLE_MAIN, type KernelAddress, type KernelLink, type KernelRoute, type RouteKey, type RouteSpec } from '../executor/ops.js';
import { type Family, type IpPrefix, formatIp, formatPrefix, networkOf, overlaps, parseIp, parsePrefix } from '../ip-address.js';
import { type Page, paginate } from '../paging.js';
import type { LinkRecords } from '../store/link-records.js';
import { existingNamespace, type NetnsDirectory } from '../namespaces/netns-dir.js';
import type { Route, RouteCreate } from './route-schema.js';

export interface RouteServiceOptions {
  readonly executor: Executor;
  readonly records: LinkRecords;
  readonly dir: NetnsDirectory;
  readonly hostAllowChanges: boolean;
  readonly hostKey: string;
}

export interface RouteListFilter {
  readonly table?: string | undefined;
  readonly family?: Family | undefined;
  readonly limit?: number | undefined;
  readonly cursor?: string | undefined;
}

const HOST_MIN_PREFIX = { 4: 16, 6: 32 } as const;
const defaultMetric = (family: Family): number => (family === 6 ? 1024 : 0);

/**
 * Ids made before, by their key's text: a route's id is asked for again and again (the inventory
 * keys routes by it, every view and every re-read of a table has it), and a Buffer for each was
 * ~2% of the event loop while units were made. Emptied when full.
 */
const madeIds = new Map<string, string>();
const MADE_IDS_MAX = 10_000;

/** The id of a route: base64url of `TABLE|FAMILY|DST|METRIC|TOS`, plus `|DEV` for IPv6 (the kernel's key). */
export function routeId(k: RouteKey): string {
  const dev = k.family === 6 && k.dev ? `|${k.dev}` : '';
  const text = `${k.table}|${k.family}|${k.dst}|${k.metric}|${k.tos ?? 0}${dev}`;
  let id = madeIds.get(text);
  if (id === undefined) {
    if (madeIds.size >= MADE_IDS_MAX) madeIds.clear();
    id = Buffer.from(text, 'utf8').toString('base64url');
    madeIds.set(text, id);
  }
  return id;
}

/** The key of a listed route (its device counts for IPv6 only). */
export function routeKeyOf(r: KernelRoute): RouteKey {
  return { family: r.family, table: r.table, dst: r.dst, metric: r.metric, tos: r.tos, ...(r.family === 6 && r.dev !== null ? { dev: r.dev } : {}) };
}

/** The key in an id, or undefined when it is not one of ours. */
function decodeId(id: string): RouteKey | undefined {
  const parts = Buffer.from(id, 'base64url').toString('utf8').split('|');
  if (parts.length !== 5 && parts.length !== 6) return undefined;
  const [table, family, dst, metric, tos] = parts as [string, string, string, string, string];
  if (!/^\d{1,10}$/.test(table) || (family !== '4' && family !== '6') || !/^\d{1,10}$/.test(metric)) return undefined;
  const p = parsePrefix(dst);
  if (typeof p === 'string' || p.family !== Number(family)) return undefined;
  return { table: Number(table), family: Number(family) as Family, dst, metric: Number(metric), tos: tos === '0' ? null : tos };
}

function sortKey(r: KernelRoute): string {
  const p = parsePrefix(r.dst);
  const v = typeof p === 'string' ? 0n : p.value;
  const len = typeof p === 'string' ? 0 : p.prefixLength;
  return `${String(r.table).padStart(10, '0')}|${r.family}|${v.toString(16).padStart(32, '0')}|${String(len).padStart(3, '0')}|${String(r.metric).padStart(10, '0')}|${r.tos ?? ''}|${r.family === 6 ? (r.dev ?? '') : ''}`;
}

export class RouteService {
  private readonly ex: Executor;
  private readonly records: LinkRecords;
  private readonly dir: NetnsDirectory;
  private readonly hostAllowChanges: boolean;
  private readonly hostKey: string;

  constructor(o: RouteServiceOptions) {
    this.ex = o.executor;
    this.records = o.records;
    this.dir = o.dir;
    this.hostAllowChanges = o.hostAllowChanges;
    this.hostKey = o.hostKey;
  }

  async list(ns: string, f: RouteListFilter): Promise<Page<Route>> {
    await this.entry(ns);
    const t = f.table ?? 'main';
    const table = t === 'all' ? 'all' : t === 'main' ? TABLE_MAIN : t === 'local' ? TABLE_LOCAL : Number(t);
    const families: Family[] = f.family === undefined ? [4, 6] : [f.family];
    const all = (await Promise.all(families.map((family) => this.kernelRoutes(ns, family, table)))).flat();
    const items = all.map((r) => ({ key: sortKey(r), r })).sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
    const page = paginate(items, (x) => x.key, f.limit, f.cursor);
    return { ...page, items: page.items.map((x) => routeView(ns, x.r)) };
  }

  async get(ns: string, id: string): Promise<Route> {
    await this.entry(ns);
    return routeView(ns, await this.find(ns, id));
  }

  async create(ns: string, body: RouteCreate, ctx: OpContext): Promise<Route> {
    await this.entry(ns);
    const spec = toSpec(body);
    if (ns === HOST && !this.hostAllowChanges) await this.guardHost(spec, ctx);
    await this.ex.run({ kind: 'route.add', ns, spec }, ctx);
    return routeView(ns, await this.made(ns, spec, { ...ctx, continues: true }));
  }

  /** Replaces the route of this id atomically (`ip route replace`); the body must keep its key. */
  async replace(ns: string, id: string, body: RouteCreate, ctx: OpContext): Promise<Route> {
    await this.entry(ns);
    const old = await this.find(ns, id, ctx);
    const spec = toSpec(body);
    const errors: Array<{ field: string; message: string }> = [];
    const keep = `it is part of the route's key (a different one makes a different route: create that one and delete this)`;
    if (spec.family !== old.family) errors.push({ field: 'body.dst', message: `must stay an IPv${old.family} route` });
    else if (spec.dst !== old.dst) errors.push({ field: 'body.dst', message: `must stay ${viewDst(old)}: ${keep}` });
    if (spec.table !== old.table) errors.push({ field: 'body.table', message: `must stay ${old.table}: ${keep}` });
    if ((spec.metric ?? defaultMetric(spec.family)) !== old.metric) errors.push({ field: 'body.metric', message: `must stay ${old.metric}: ${keep}` });
    if (old.family === 6 && old.dev !== null && spec.dev !== old.dev) errors.push({ field: 'body.dev', message: `must stay ${old.dev}: for IPv6 ${keep}` });
    if (old.tos !== null) errors.push({ field: 'body', message: 'the route matches a tos, which netnsd cannot set: it cannot be replaced' });
    if (errors.length > 0) throw invalidFields(errors);
    if (ns === HOST && !this.hostAllowChanges) {
      await this.guardHostExisting(old, ctx);
      await this.guardHost(spec, ctx);
    }
    await this.ex.run({ kind: 'route.add', ns, spec: { ...spec, metric: old.metric }, replace: true }, ctx);
    return routeView(ns, await this.made(ns, spec, { ...ctx, continues: true }));
  }

  async delete(ns: string, id: string, ctx: OpContext): Promise<void> {
    await this.entry(ns);
    const r = await this.find(ns, id, ctx);
    if (ns === HOST && !this.hostAllowChanges) await this.guardHostExisting(r, ctx);
    await this.ex.run({ kind: 'route.delete', ns, key: routeKeyOf(r) }, ctx);
  }

  // ------------------------------------------------------------------------------------------

  private async made(ns: string, spec: RouteSpec, ctx: OpContext): Promise<KernelRoute> {
    const metric = spec.metric ?? defaultMetric(spec.family);
    const r = (await this.kernelRoutes(ns, spec.family, spec.table, ctx)).find(
      (x) => x.dst === spec.dst && x.metric === metric && x.tos === null && (spec.family === 4 || spec.dev === undefined || x.dev === spec.dev),
    );
    if (!r) throw new AppError('INTERNAL', `the route to ${spec.dst} was added but is not listed`);
    return r;
  }

  private async find(ns: string, id: string, ctx?: OpContext): Promise<KernelRoute> {
    const key = decodeId(id);
    const r = key && (await this.kernelRoutes(ns, key.family, key.table, ctx)).find((x) => routeId(routeKeyOf(x)) === id);
    if (!r) throw new AppError('ROUTE_NOT_FOUND', `There is no route '${id}' in namespace '${ns}'`);
    return r;
  }

  private async entry(ns: string): Promise<void> {
    await existingNamespace(this.dir, ns);
  }

  private async kernelRoutes(ns: string, family: Family, table: number | 'all', ctx?: OpContext): Promise<readonly KernelRoute[]> {
    return (await this.ex.run({ kind: 'route.list', ns, family, table }, ctx)).routes;
  }

  private managed(link: KernelLink | undefined): boolean {
    return link !== undefined && this.records.get(this.hostKey, link.index, link.kind)?.managed === true;
  }

  /** An existing host route may be replaced or deleted only when it goes through netnsd's links alone. */
  private async guardHostExisting(r: KernelRoute, ctx: OpContext): Promise<void> {
    const links = (await this.ex.run({ kind: 'link.list', ns: HOST }, ctx)).links;
    const devs = r.nexthops ? r.nexthops.map((n) => n.dev) : [r.dev];
    for (const d of devs) {
      if (d === null || !this.managed(links.find((l) => l.name === d))) {
        throw new AppError('HOST_PROTECTED', `The route to ${viewDst(r)} in host ${d === null ? 'goes through no link' : `goes through link '${d}', which netnsd did not create`}: it may not be changed (set host.allowChanges to allow it)`, {
          meta: { dst: viewDst(r), ...(d === null ? {} : { link: d }) },
        });
      }
    }
  }

  private async guardHost(spec: RouteSpec, ctx: OpContext): Promise<void> {
    const dst = parsePrefix(spec.dst) as IpPrefix;
    if (dst.prefixLength === 0) throw new AppError('HOST_ROUTE_CONFLICT', 'netnsd never adds a default route to host', { meta: { overlaps: spec.dst } });
    const min = HOST_MIN_PREFIX[spec.family];
    if (dst.prefixLength < min) throw new AppError('HOST_ROUTE_CONFLICT', `A route in host may not be shorter than /${min} (${spec.dst})`, { meta: { prefix: spec.dst } });
    if (spec.type !== 'unicast') {
      throw new AppError('HOST_PROTECTED', `A ${spec.type} route in host goes through no link netnsd created (set host.allowChanges to allow it)`);
    }
    const links = (await this.ex.run({ kind: 'link.list', ns: HOST }, ctx)).links;
    const addrs = (await this.ex.run({ kind: 'addr.list', ns: HOST }, ctx)).addresses;
    const routes = await this.kernelRoutes(HOST, spec.family, 'all', ctx);
    const unmanaged = (dev: string | null): boolean => dev === null || !this.managed(links.find((l) => l.name === dev));
    // What the host reaches through links netnsd did not create (the default route aside: everything is under it).
    const theirs = routes
      .filter((r) => (r.nexthops ? r.nexthops.some((n) => unmanaged(n.dev)) : unmanaged(r.dev)))
      .map((r) => ({ r, p: parsePrefix(r.dst) }))
      .filter((x): x is { r: KernelRoute; p: IpPrefix } => typeof x.p !== 'string' && x.p.prefixLength > 0);
    for (const { r, p } of theirs) {
      if (overlaps(dst, p)) throw conflict(`${spec.dst} overlaps ${formatPrefix(networkOf(p))}`, r);
    }
    const hops = spec.nexthops ?? [{ ...(spec.via === undefined ? {} : { via: spec.via }), ...(spec.dev === undefined ? {} : { dev: spec.dev }) }];
    for (const h of hops) {
      if (h.via !== undefined) {
        const gw = parseIp(h.via)!;
        const g: IpPrefix = { ...gw, prefixLength: spec.family === 4 ? 32 : 128 };
        const hit = theirs.find((x) => overlaps(g, x.p));
        if (hit) throw conflict(`the gateway ${h.via} is inside ${formatPrefix(networkOf(hit.p))}`, hit.r);
      }
      const dev = h.dev ?? (h.via === undefined ? undefined : onLink(addrs, h.via));
      if (dev === undefined) throw new AppError('NEXTHOP_UNREACHABLE', `The gateway ${h.via} is not reachable on any link in host`);
      if (unmanaged(dev)) {
        throw new AppError('HOST_PROTECTED', `A route in host may go only through links netnsd created; '${dev}' is not one (set host.allowChanges to allow it)`, { meta: { link: dev } });
      }
    }
  }
}

/** The link whose address subnet holds the gateway. */
function onLink(addrs: readonly KernelAddress[], via: string): string | undefined {
  const gw = parseIp(via);
  if (!gw) return undefined;
  return addrs.find((a) => {
    const p = parsePrefix(`${a.peer ?? a.local}/${a.prefixLength}`);
    return typeof p !== 'string' && overlaps(p, { ...gw, prefixLength: gw.family === 4 ? 32 : 128 });
  })?.link;
}

function conflict(what: string, r: KernelRoute): AppError {
  const through = r.dev ?? r.nexthops?.map((n) => n.dev).filter((d) => d !== null).join(', ') ?? null;
  return new AppError('HOST_ROUTE_CONFLICT', `${what}, which host reaches ${through ? `through link '${through}'` : `by a ${r.type} route`}, not a link netnsd created`, {
    meta: { overlaps: formatPrefix(networkOf(parsePrefix(r.dst) as IpPrefix)), ...(through ? { link: through } : {}) },
  });
}

const viewDst = (r: { dst: string }): string => (r.dst.endsWith('/0') ? 'default' : r.dst);

/** A route as the API shows it. */
export function routeView(ns: string, r: KernelRoute): Route {
  return {
    id: routeId(routeKeyOf(r)),
    namespace: ns,
    family: r.family,
    dst: viewDst(r),
    table: r.table,
    type: r.type,
    via: r.via,
    dev: r.dev,
    src: r.src,
    metric: r.metric,
    tos: r.tos,
    scope: r.scope,
    protocol: r.protocol,
    mtu: r.mtu,
    nexthops: r.nexthops ? r.nexthops.map((n) => ({ ...n })) : null,
    flags: [...r.flags],
  };
}

/** Parses and checks a route body (every failing field listed), giving the executor's spec. */
function toSpec(body: RouteCreate): RouteSpec {
  const errors: Array<{ field: string; message: string }> = [];
  const err = (field: string, message: string): void => void errors.push({ field: `body.${field}`, message });
  const ips: Array<[string, string]> = [];
  if (body.via !== undefined) ips.push(['via', body.via]);
  if (body.src !== undefined) ips.push(['src', body.src]);
  body.nexthops?.forEach((n, i) => n.via !== undefined && ips.push([`nexthops/${i}/via`, n.via]));
  const parsed = new Map<string, ReturnType<typeof parseIp>>(ips.map(([f, v]) => [f, parseIp(v)]));
  for (const [f, v] of parsed) if (!v) err(f, 'is not an IPv4 or IPv6 address');

  let dst: IpPrefix | undefined;
  let family: Family | undefined = body.family;
  if (body.dst === 'default') {
    family ??= [...parsed.values()].find((v) => v !== undefined)?.family ?? 4;
    dst = { family, value: 0n, prefixLength: 0 };
  } else {
    const p = body.dst.includes('/') ? parsePrefix(body.dst) : parsePrefix(`${body.dst}/${parseIp(body.dst)?.family === 6 ? 128 : 32}`);
    if (typeof p === 'string') err('dst', p === 'is not an IPv4 or IPv6 address' ? "is not a prefix, an address or 'default'" : p);
    else if (networkOf(p).value !== p.value) err('dst', `has host bits set: did you mean ${formatPrefix(networkOf(p))}?`);
    else if (family !== undefined && p.family !== family) err('family', `does not match dst (an IPv${p.family} prefix)`);
    else {
      dst = p;
      family = p.family;
    }
  }
  if (family !== undefined) for (const [f, v] of parsed) if (v && v.family !== family) err(f, `must be an IPv${family} address like dst`);

  const type = body.type ?? 'unicast';
  const hasPath = body.via !== undefined || body.dev !== undefined || body.nexthops !== undefined;
  if (type !== 'unicast') {
    for (const f of ['via', 'dev', 'nexthops', 'src'] as const) if (body[f] !== undefined) err(f, `is not taken by a ${type} route`);
  } else if (!hasPath) err('via', 'or dev or nexthops is required');
  if (body.nexthops !== undefined) {
    for (const f of ['via', 'dev'] as const) if (body[f] !== undefined) err(f, 'cannot be given with nexthops (give each next hop its own)');
    body.nexthops.forEach((n, i) => n.via === undefined && n.dev === undefined && err(`nexthops/${i}`, 'needs via or dev'));
  }
  const linkLocal = (v: ReturnType<typeof parseIp>): boolean => v?.family === 6 && v.value >> 118n === 0x3fan;
  if (linkLocal(parsed.get('via')) && body.dev === undefined) err('dev', 'is required with an IPv6 link-local gateway');
  body.nexthops?.forEach((n, i) => linkLocal(parsed.get(`nexthops/${i}/via`)) && n.dev === undefined && err(`nexthops/${i}/dev`, 'is required with an IPv6 link-local gateway'));
  if (errors.length > 0 || dst === undefined || family === undefined) throw invalidFields(errors);

  const canon = (f: string): string => formatIp(parsed.get(f)!);
  const table = body.table === undefined || body.table === 'main' ? TABLE_MAIN : body.table === 'local' ? TABLE_LOCAL : body.table;
  return {
    family,
    type,
    dst: formatPrefix(dst),
    table,
    ...(body.metric === undefined ? {} : { metric: body.metric }),
    ...(body.via === undefined ? {} : { via: canon('via') }),
    ...(body.dev === undefined ? {} : { dev: body.dev }),
    ...(body.src === undefined ? {} : { src: canon('src') }),
    ...(body.scope === undefined ? {} : { scope: body.scope }),
    ...(body.mtu === undefined ? {} : { mtu: body.mtu }),
    ...(body.nexthops === undefined
      ? {}
      : {
          nexthops: body.nexthops.map((n, i) => ({
            ...(n.via === undefined ? {} : { via: canon(`nexthops/${i}/via`) }),
            ...(n.dev === undefined ? {} : { dev: n.dev }),
            ...(n.weight === undefined ? {} : { weight: n.weight }),
          })),
        }),
  };
}
