/**
 * What netnsd knows of one namespace's network stack, kept current from the kernel's change
 * events: links, addresses, routes, policy rules and neighbours, as the executor's reads describe
 * them (KernelLink, ...). Applying an event or a fresh dump returns the changes it made, so events
 * are the differences the inventory saw — a notification that changes nothing (the kernel repeats
 * itself, or an event races the dump that already had it) is no event.
 *
 * Keys are the REST ids (addressId, routeId, ruleId, neighborId) and a link's ifindex.
 */
import { addressId } from '../addresses/address-service.js';
import type { KernelAddress, KernelLink, KernelNeighbor, KernelRoute, KernelRule } from '../executor/ops.js';
import type { KernelNeighbor as NetlinkNeighbor, NetlinkEvent } from '../netlink/parse.js';
import { neighborId } from '../neighbors/neighbor-service.js';
import { routeId, routeKeyOf } from '../routes/route-service.js';
import { ruleId } from '../rules/rule-service.js';

export type StackKind = 'link' | 'address' | 'route' | 'rule' | 'neighbor';

export interface StackObjects {
  link: KernelLink;
  address: KernelAddress;
  route: KernelRoute;
  rule: KernelRule;
  neighbor: KernelNeighbor;
}

/** One difference: `before` is absent for an addition, `after` for a removal. */
export type StackChange = {
  [K in StackKind]: { readonly kind: K; readonly key: string; readonly before?: StackObjects[K]; readonly after?: StackObjects[K] };
}[StackKind];

/** A namespace's whole state, as dumps give it. */
export interface StackSnapshot {
  readonly links: readonly KernelLink[];
  readonly addresses: readonly KernelAddress[];
  readonly routes: readonly KernelRoute[];
  readonly rules: readonly KernelRule[];
  readonly neighbors: readonly KernelNeighbor[];
}

/** The neighbour shape of the REST layer (ops.ts) from the netlink parser's. */
export function neighborFromNetlink(n: NetlinkNeighbor): KernelNeighbor {
  return {
    link: n.link,
    family: n.family,
    address: n.address,
    mac: n.mac,
    states: n.state.map((s) => s.toLowerCase()),
    flags: [...(n.router ? ['router'] : []), ...n.flags],
  };
}

export const keyOfObject = {
  link: (l: KernelLink) => String(l.index),
  address: (a: KernelAddress) => addressId(a),
  route: (r: KernelRoute) => routeId(routeKeyOf(r)),
  rule: (r: KernelRule) => ruleId(r),
  neighbor: (n: KernelNeighbor) => neighborId(n),
} satisfies { [K in StackKind]: (o: StackObjects[K]) => string };

/** Address lifetimes count down by themselves: they are not a change. */
function comparable(kind: StackKind, o: unknown): string {
  if (kind === 'address') {
    const { validLifetime: _v, preferredLifetime: _p, ...rest } = o as KernelAddress;
    return JSON.stringify(rest);
  }
  return JSON.stringify(o);
}

interface Stored<T> {
  readonly obj: T;
  /** When it was read (ms, monotonic), for lifetimes. */
  readonly at: number;
}

export class NamespaceStack {
  private readonly maps: { [K in StackKind]: Map<string, Stored<StackObjects[K]>> } = {
    link: new Map(), address: new Map(), route: new Map(), rule: new Map(), neighbor: new Map(),
  };
  /** ifindex -> name, for parsing this namespace's events. */
  readonly names = new Map<number, string>();

  constructor(
    readonly name: string,
    /** The namespace's identity (NetnsEntry.id) when it was seeded. */
    readonly id: string,
    private readonly now: () => number = () => performance.now(),
  ) {}

  links(): KernelLink[] {
    return [...this.maps.link.values()].map((s) => s.obj).sort((a, b) => a.index - b.index);
  }

  link(index: number): KernelLink | undefined {
    return this.maps.link.get(String(index))?.obj;
  }

  /** The link of this name (no sorting, no copy). */
  linkNamed(name: string): KernelLink | undefined {
    for (const s of this.maps.link.values()) if (s.obj.name === name) return s.obj;
    return undefined;
  }

  /**
   * Addresses grouped by link in ifindex order, each link's in the kernel's order; lifetimes as of
   * now. With `link`, only that link's (without copying the others: a hub has many).
   */
  addresses(link?: string): KernelAddress[] {
    const now = this.now();
    const all = [...this.maps.address.values()];
    const out = (link === undefined ? all : all.filter((s) => s.obj.link === link)).map(({ obj, at }) => {
      if (obj.validLifetime === null && obj.preferredLifetime === null) return obj;
      const gone = Math.floor((now - at) / 1000);
      const left = (v: number | null) => (v === null ? null : Math.max(0, v - gone));
      return { ...obj, validLifetime: left(obj.validLifetime), preferredLifetime: left(obj.preferredLifetime) };
    });
    return out.sort((a, b) => a.ifindex - b.ifindex);
  }

  routes(): KernelRoute[] {
    return [...this.maps.route.values()].map((s) => s.obj);
  }

  /** Rules in the kernel's order: by priority, and in the order they came within one. */
  rules(): KernelRule[] {
    return [...this.maps.rule.values()].map((s) => s.obj).sort((a, b) => a.priority - b.priority);
  }

  neighbors(): KernelNeighbor[] {
    return [...this.maps.neighbor.values()].map((s) => s.obj);
  }

  /** Every object, for persisting: kind, key, object. */
  *entries(): Generator<StackChange> {
    for (const kind of Object.keys(this.maps) as StackKind[]) {
      for (const [key, s] of this.maps[kind]) yield { kind, key, after: s.obj } as StackChange;
    }
  }

  /** Applies one event; returns what changed (nothing when the stack already was so). */
  apply(e: NetlinkEvent): StackChange[] {
    switch (e.kind) {
      case 'link':
        return e.action === 'new' ? this.putLink(e.link) : this.remove('link', keyOfObject.link(e.link));
      case 'address':
        return e.action === 'new' ? this.put('address', e.address) : this.remove('address', keyOfObject.address(e.address));
      case 'route':
        return e.action === 'new' ? this.put('route', e.route) : this.remove('route', keyOfObject.route(e.route));
      case 'rule':
        return e.action === 'new' ? this.put('rule', e.rule) : this.remove('rule', keyOfObject.rule(e.rule));
      case 'neighbor': {
        const n = neighborFromNetlink(e.neighbor);
        return e.action === 'new' ? this.put('neighbor', n) : this.remove('neighbor', keyOfObject.neighbor(n));
      }
      case 'nsid':
        return [];
    }
  }

  /** Makes the stack what a dump says (seeding, resync); returns the differences. */
  replace(s: StackSnapshot): StackChange[] {
    const changes: StackChange[] = [];
    const sets: { [K in StackKind]: readonly StackObjects[K][] } = { link: s.links, address: s.addresses, route: s.routes, rule: s.rules, neighbor: s.neighbors };
    for (const kind of Object.keys(sets) as StackKind[]) changes.push(...this.replaceKind(kind, sets[kind] as readonly StackObjects[typeof kind][]));
    return changes;
  }

  /** Makes one kind what a dump says (IPv4 routes after a link went down: the kernel flushes them silently). */
  replaceKind<K extends StackKind>(kind: K, objs: readonly StackObjects[K][], only?: (o: StackObjects[K]) => boolean): StackChange[] {
    const map = this.maps[kind] as Map<string, Stored<StackObjects[K]>>;
    const changes: StackChange[] = [];
    const fresh = new Map<string, Stored<StackObjects[K]>>();
    const at = this.now();
    for (const o of objs) fresh.set(keyOfObject[kind](o as never), { obj: o, at });
    for (const [key, s] of map) {
      if (only && !only(s.obj)) continue;
      if (!fresh.has(key)) changes.push({ kind, key, before: s.obj } as StackChange);
    }
    for (const [key, s] of fresh) {
      const old = map.get(key);
      if (!old) changes.push({ kind, key, after: s.obj } as StackChange);
      else if (comparable(kind, old.obj) !== comparable(kind, s.obj)) changes.push({ kind, key, before: old.obj, after: s.obj } as StackChange);
    }
    // Rebuilt in the dump's order (rules of one priority keep the kernel's order).
    const kept = only ? [...map].filter(([, s]) => !only(s.obj)) : [];
    map.clear();
    for (const [k, s] of kept) map.set(k, s);
    for (const [k, s] of fresh) map.set(k, s);
    if (kind === 'link') {
      this.names.clear();
      for (const l of objs as readonly KernelLink[]) this.names.set(l.index, l.name);
    }
    return changes;
  }

  private put<K extends StackKind>(kind: K, obj: StackObjects[K]): StackChange[] {
    const map = this.maps[kind] as Map<string, Stored<StackObjects[K]>>;
    const key = keyOfObject[kind](obj as never);
    const old = map.get(key);
    map.set(key, { obj, at: this.now() });
    if (!old) return [{ kind, key, after: obj } as StackChange];
    if (comparable(kind, old.obj) === comparable(kind, obj)) return [];
    return [{ kind, key, before: old.obj, after: obj } as StackChange];
  }

  private remove(kind: StackKind, key: string): StackChange[] {
    const map = this.maps[kind];
    const old = map.get(key);
    if (!old) return [];
    map.delete(key);
    if (kind === 'link') this.names.delete((old.obj as KernelLink).index);
    return [{ kind, key, before: old.obj } as StackChange];
  }

  /**
   * A new or changed link. A rename changes what the namespace's other objects call it (an
   * address's link, a route's dev, a neighbour's link, a port's master) without events of their
   * own: they are renamed here too, and those that are keyed by the name (IPv6 routes,
   * neighbours) re-keyed. Those follow-on changes are not returned: the link's own event says it.
   */
  private putLink(l: KernelLink): StackChange[] {
    const old = this.link(l.index);
    this.names.set(l.index, l.name);
    const changes = this.put('link', l);
    if (old && old.name !== l.name) this.renamed(old.name, l.name);
    return changes;
  }

  private renamed(from: string, to: string): void {
    const rename = (n: string | null): string | null => (n === from ? to : n);
    this.rewrite('address', (a) => (a.link === from ? { ...a, link: to } : a));
    this.rewrite('route', (r) =>
      r.dev === from || r.nexthops?.some((h) => h.dev === from) ? { ...r, dev: rename(r.dev), nexthops: r.nexthops?.map((h) => ({ ...h, dev: rename(h.dev) })) ?? null } : r,
    );
    this.rewrite('neighbor', (n) => (n.link === from ? { ...n, link: to } : n));
    this.rewrite('link', (x) =>
      x.master === from || x.lower?.name === from ? { ...x, master: rename(x.master), lower: x.lower && { ...x.lower, name: rename(x.lower.name) } } : x,
    );
  }

  private rewrite<K extends StackKind>(kind: K, f: (o: StackObjects[K]) => StackObjects[K]): void {
    const map = this.maps[kind] as Map<string, Stored<StackObjects[K]>>;
    const next: Array<[string, Stored<StackObjects[K]>]> = [];
    for (const [k, s] of map) {
      const o = f(s.obj);
      next.push(o === s.obj ? [k, s] : [keyOfObject[kind](o as never), { obj: o, at: s.at }]);
    }
    map.clear();
    for (const [k, s] of next) map.set(k, s);
  }
}
