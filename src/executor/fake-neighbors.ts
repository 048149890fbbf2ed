/**
 * The neighbour (ARP/NDP) entries of FakeKernel's namespaces, with the kernel's rules that matter
 * to the service (kernel 6.18): an entry's key is (link, address); `add` of an address the link
 * has an entry for, in any state, is NEIGHBOR_EXISTS, `replace` overwrites it (mac, router flag,
 * state permanent); deleting a missing one is NEIGHBOR_NOT_FOUND; a missing link is
 * LINK_NOT_FOUND; an IPv6 entry on a link with IPv6 disabled is NEIGHBOR_LINK_UNSUPPORTED.
 * Entries of links that are gone (deleted, moved) are dropped when next read, as the kernel
 * drops them with the link. Dynamic entries (reachable, stale, ...) exist only when a test
 * `learn`s one, standing in for ARP.
 */
import { AppError } from '../errors/app-error.js';
import type { KernelLink, KernelNeighbor, NeighAddSpec } from './ops.js';

interface Entry extends KernelNeighbor {
  readonly ifindex: number;
}

export class FakeNeighborTable<Space> {
  private readonly bySpace = new Map<Space, Entry[]>();

  /** The entries in `space` whose link (by ifindex and name) is still there, in the order made. */
  list(space: Space, links: readonly KernelLink[], link?: string): KernelNeighbor[] {
    const live = this.prune(space, links);
    if (link !== undefined && !links.some((l) => l.name === link)) throw noLink(link);
    return live.filter((n) => link === undefined || n.link === link).map(({ ifindex: _ifindex, ...n }) => ({ ...n, states: [...n.states], flags: [...n.flags] }));
  }

  /** `ipv6Disabled(link)`: whether net.ipv6.conf.LINK.disable_ipv6 is set. */
  add(space: Space, links: readonly KernelLink[], spec: NeighAddSpec, replace: boolean, ipv6Disabled: (link: string) => boolean): void {
    const l = links.find((x) => x.name === spec.link);
    if (!l) throw noLink(spec.link);
    if (spec.family === 6 && ipv6Disabled(l.name)) throw new AppError('NEIGHBOR_LINK_UNSUPPORTED', `IPv6 is disabled on link "${l.name}"`);
    const entry: Entry = {
      ifindex: l.index,
      link: l.name,
      family: spec.family,
      address: spec.address,
      mac: spec.mac.toLowerCase(),
      states: ['permanent'],
      flags: spec.router ? ['router'] : [],
    };
    this.put(space, links, entry, replace);
  }

  /** A dynamic entry, as ARP or neighbour discovery would make it (tests only). */
  learn(space: Space, links: readonly KernelLink[], n: Omit<KernelNeighbor, 'flags'> & { readonly flags?: readonly string[] }): void {
    const l = links.find((x) => x.name === n.link);
    if (!l) throw noLink(n.link);
    this.put(space, links, { ifindex: l.index, flags: [], ...n }, true);
  }

  delete(space: Space, links: readonly KernelLink[], link: string, address: string): void {
    const l = links.find((x) => x.name === link);
    if (!l) throw noLink(link);
    const live = this.prune(space, links);
    const i = live.findIndex((n) => n.ifindex === l.index && n.address === address);
    if (i < 0) throw new AppError('NEIGHBOR_NOT_FOUND', `there is no neighbour entry for ${address} on link "${link}"`);
    live.splice(i, 1);
  }

  removeSpace(space: Space): void {
    this.bySpace.delete(space);
  }

  private put(space: Space, links: readonly KernelLink[], entry: Entry, replace: boolean): void {
    const live = this.prune(space, links);
    const i = live.findIndex((n) => n.ifindex === entry.ifindex && n.address === entry.address);
    if (i >= 0 && !replace) throw new AppError('NEIGHBOR_EXISTS', `the neighbour entry for ${entry.address} on link "${entry.link}" exists`);
    if (i >= 0) live.splice(i, 1, entry);
    else live.push(entry);
  }

  private prune(space: Space, links: readonly KernelLink[]): Entry[] {
    const kept = (this.bySpace.get(space) ?? []).filter((n) => links.some((l) => l.index === n.ifindex && l.name === n.link));
    this.bySpace.set(space, kept);
    return kept;
  }
}

function noLink(name: string): AppError {
  return new AppError('LINK_NOT_FOUND', `there is no link "${name}"`);
}
