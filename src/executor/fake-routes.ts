/**
 * The routes of FakeKernel's namespaces, with the kernel's rules that matter to the service: the
 * key is (table, family, destination, metric, tos) — ROUTE_EXISTS on `add`, replaced by
 * `replace`, ROUTE_NOT_FOUND on deleting a missing one; a gateway must lie in the subnet of an
 * address (on `dev`, when given: NEXTHOP_UNREACHABLE), `src` must be an address of the namespace
 * (ROUTE_SOURCE_INVALID), `dev` must exist (LINK_NOT_FOUND). Each address's connected route is
 * listed in main (protocol kernel), and routes through a link that is gone disappear.
 */
import { AppError } from '../errors/app-error.js';
import { formatPrefix, networkOf, overlaps, parseIp, parsePrefix, type IpPrefix } from '../ip-address.js';
import { TABLE_MAIN, type KernelAddress, type KernelLink, type KernelRoute, type RouteKey, type RouteSpec } from './ops.js';

const sameKey = (a: RouteKey, b: RouteKey): boolean =>
  a.family === b.family && a.table === b.table && a.dst === b.dst && a.metric === b.metric && a.tos === b.tos && (a.family === 4 || (a.dev ?? null) === (b.dev ?? null));

export class FakeRouteTable<Space> {
  private readonly bySpace = new Map<Space, KernelRoute[]>();

  list(space: Space, links: readonly KernelLink[], addrs: readonly KernelAddress[], family: 4 | 6, table: number | 'all'): KernelRoute[] {
    const own = this.prune(space, links);
    const connected = addrs
      .filter((a) => a.family === family && links.some((l) => l.index === a.ifindex && l.up))
      .map((a): KernelRoute => {
        const p = parsePrefix(`${a.peer ?? a.local}/${a.prefixLength}`) as IpPrefix;
        return {
          family, table: TABLE_MAIN, dst: formatPrefix(networkOf(p)), metric: family === 6 ? 256 : 0, tos: null, type: 'unicast', via: null, dev: a.link,
          src: family === 4 ? a.local : null, scope: 'link', protocol: 'kernel', mtu: null, nexthops: null, flags: [],
        };
      });
    return [...connected, ...own].filter((r) => r.family === family && (table === 'all' || r.table === table)).map((r) => ({ ...r }));
  }

  add(space: Space, links: readonly KernelLink[], addrs: readonly KernelAddress[], spec: RouteSpec, replace: boolean): void {
    const own = this.prune(space, links);
    const reach = (via: string | undefined, dev: string | undefined): string | null => {
      if (dev !== undefined && !links.some((l) => l.name === dev)) throw new AppError('LINK_NOT_FOUND', `there is no link "${dev}"`);
      if (via === undefined) return dev ?? null;
      const gw = parseIp(via);
      const on = addrs.find((a) => {
        const p = parsePrefix(`${a.peer ?? a.local}/${a.prefixLength}`);
        return typeof p !== 'string' && gw !== undefined && (dev === undefined || a.link === dev) && overlaps(p, { ...gw, prefixLength: gw.family === 4 ? 32 : 128 });
      });
      if (!on) throw new AppError('NEXTHOP_UNREACHABLE', `the gateway ${via} is not reachable`);
      return on.link;
    };
    if (spec.src !== undefined && !addrs.some((a) => a.local === spec.src)) throw new AppError('ROUTE_SOURCE_INVALID', `${spec.src} is not an address here`);
    const nexthops = spec.nexthops?.map((n) => ({ via: n.via ?? null, dev: reach(n.via, n.dev), weight: n.weight ?? 1 })) ?? null;
    const dev = spec.type === 'unicast' && nexthops === null ? reach(spec.via, spec.dev) : null;
    const route: KernelRoute = {
      family: spec.family, table: spec.table, dst: spec.dst, metric: spec.metric ?? (spec.family === 6 ? 1024 : 0), tos: null, type: spec.type,
      via: spec.via ?? null, dev, src: spec.src ?? null, scope: spec.scope ?? (spec.via === undefined && spec.type === 'unicast' && nexthops === null ? 'link' : 'global'),
      protocol: 'boot', mtu: spec.mtu ?? null, nexthops, flags: [],
    };
    const i = own.findIndex((r) => sameKey(r, route));
    if (i >= 0 && !replace) throw new AppError('ROUTE_EXISTS', `the route to ${spec.dst} exists`);
    if (i >= 0) own.splice(i, 1, route);
    else own.push(route);
  }

  delete(space: Space, links: readonly KernelLink[], key: RouteKey): void {
    const own = this.prune(space, links);
    const i = own.findIndex((r) => sameKey(r, key));
    if (i < 0) throw new AppError('ROUTE_NOT_FOUND', `there is no route to ${key.dst}`);
    own.splice(i, 1);
  }

  removeSpace(space: Space): void {
    this.bySpace.delete(space);
  }

  private prune(space: Space, links: readonly KernelLink[]): KernelRoute[] {
    const has = (dev: string | null): boolean => dev === null || links.some((l) => l.name === dev);
    const kept = (this.bySpace.get(space) ?? []).filter((r) => has(r.dev) && (r.nexthops ?? []).every((n) => has(n.dev)));
    this.bySpace.set(space, kept);
    return kept;
  }
}
