/**
 * The addresses of FakeKernel's links, with the kernel's rules that matter to the service: an
 * IPv4 address is the same when local address and prefix length match, an IPv6 one when the
 * address matches (ADDRESS_EXISTS); a new IPv6 address without `nodad` is tentative; deleting a
 * missing one is ADDRESS_NOT_FOUND. Addresses of links that are gone (deleted, moved) are dropped
 * when next read, as the kernel drops them with the link.
 */
import { AppError } from '../errors/app-error.js';
import type { AddrAddSpec, KernelAddress, KernelLink } from './ops.js';

export class FakeAddressTable<Space> {
  private readonly bySpace = new Map<Space, KernelAddress[]>();

  /** The addresses in `space` whose link (by ifindex and name) is still there. */
  list(space: Space, links: readonly KernelLink[], link?: string): KernelAddress[] {
    const live = this.prune(space, links);
    if (link !== undefined && !links.some((l) => l.name === link)) throw noLink(link);
    return live.filter((a) => link === undefined || a.link === link).map((a) => ({ ...a, flags: [...a.flags] }));
  }

  add(space: Space, links: readonly KernelLink[], spec: AddrAddSpec): void {
    const l = links.find((x) => x.name === spec.link);
    if (!l) throw noLink(spec.link);
    const live = this.prune(space, links);
    const dup = live.some((a) => a.ifindex === l.index && a.family === spec.family && a.local === spec.local && (spec.family === 6 || a.prefixLength === spec.prefixLength));
    if (dup) throw new AppError('ADDRESS_EXISTS', `${spec.local}/${spec.prefixLength} on link "${spec.link}" exists`);
    live.push({
      ifindex: l.index,
      link: l.name,
      family: spec.family,
      local: spec.local,
      prefixLength: spec.prefixLength,
      peer: spec.peer ?? null,
      broadcast: spec.broadcast ?? null,
      scope: spec.scope ?? (spec.family === 6 && spec.local.startsWith('fe80:') ? 'link' : 'global'),
      label: spec.family === 4 ? (spec.label ?? l.name) : null,
      flags: spec.family === 6 ? (spec.nodad ? ['nodad'] : ['tentative']) : [],
      validLifetime: null,
      preferredLifetime: null,
    });
  }

  delete(space: Space, links: readonly KernelLink[], link: string, local: string, prefixLength: number, peer?: string): void {
    const l = links.find((x) => x.name === link);
    if (!l) throw noLink(link);
    const live = this.prune(space, links);
    const i = live.findIndex((a) => a.ifindex === l.index && a.local === local && a.prefixLength === prefixLength && (a.family === 6 || (a.peer ?? undefined) === peer));
    if (i < 0) throw new AppError('ADDRESS_NOT_FOUND', `there is no address ${local}/${prefixLength} on link "${link}"`);
    live.splice(i, 1);
  }

  removeSpace(space: Space): void {
    this.bySpace.delete(space);
  }

  private prune(space: Space, links: readonly KernelLink[]): KernelAddress[] {
    const kept = (this.bySpace.get(space) ?? []).filter((a) => links.some((l) => l.index === a.ifindex && l.name === a.link));
    this.bySpace.set(space, kept);
    return kept;
  }
}

function noLink(name: string): AppError {
  return new AppError('LINK_NOT_FOUND', `there is no link "${name}"`);
}
