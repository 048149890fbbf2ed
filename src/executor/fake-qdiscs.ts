/**
 * Qdiscs of the fake kernel: per link, the root (the kernel's default `noqueue`, handle 0:, until
 * one is set), htb classes and filters, and an ingress qdisc with its redirect. Refusals use the
 * real executor's codes for the same situations (classify.ts, stderr recorded from tc 6.1).
 */
import { AppError } from '../errors/app-error.js';
import type { HtbClassSpec, KernelClass, KernelFilter, KernelQdisc, OpOf, QdiscCounters, RootQdiscSpec, U32FilterSpec } from './ops.js';

const ZERO: QdiscCounters = { bytes: 0, packets: 0, drops: 0, overlimits: 0, requeues: 0, backlog: 0, qlen: 0 };

interface LinkQdiscs {
  root: { spec: RootQdiscSpec; handle: string } | null;
  classes: HtbClassSpec[];
  filters: Array<{ prio: number; filter: U32FilterSpec }>;
  ingress: { redirectTo: string | null } | null;
}

export class FakeQdiscTable {
  private readonly byLink = new Map<string, LinkQdiscs>();
  private nextHandle = 0x8001;

  /** `exists(dev)` tells whether the link is there (LINK_NOT_FOUND otherwise). */
  constructor(private readonly exists: (space: string, dev: string) => boolean) {}

  /** Forgets a link's qdiscs (the link was deleted or moved). */
  forget(space: string, dev?: string): void {
    for (const k of [...this.byLink.keys()]) if (dev === undefined ? k.startsWith(`${space}\0`) : k === `${space}\0${dev}`) this.byLink.delete(k);
  }

  private of(space: string, dev: string): LinkQdiscs {
    if (!this.exists(space, dev)) throw new AppError('LINK_NOT_FOUND', `there is no link "${dev}" in namespace "${space}"`);
    const k = `${space}\0${dev}`;
    let q = this.byLink.get(k);
    if (!q) this.byLink.set(k, (q = { root: null, classes: [], filters: [], ingress: null }));
    return q;
  }

  show(space: string, dev: string): KernelQdisc[] {
    const q = this.of(space, dev);
    const out: KernelQdisc[] = [];
    if (q.root === null) out.push({ kind: 'noqueue', handle: '0:', root: true, parent: null, options: {}, counters: ZERO });
    else out.push({ kind: q.root.spec.kind, handle: q.root.handle, root: true, parent: null, options: optionsOf(q.root.spec), counters: ZERO });
    if (q.ingress) out.push({ kind: 'ingress', handle: 'ffff:', root: false, parent: 'ffff:fff1', options: {}, counters: ZERO });
    return out;
  }

  classes(space: string, dev: string): KernelClass[] {
    return this.of(space, dev).classes.map((c) => ({
      kind: 'htb', id: `1:${c.minor.toString(16)}`, parent: null, rate: `${c.rateBits}bit`, ceil: `${c.ceilBits}bit`, counters: ZERO,
    }));
  }

  filters(space: string, dev: string, parent: string): KernelFilter[] {
    const q = this.of(space, dev);
    if (parent === 'ingress') return q.ingress?.redirectTo ? [{ kind: 'u32', protocol: 'all', pref: 1, flowid: null, redirectTo: q.ingress.redirectTo }] : [];
    return q.filters.map((f) => ({ kind: 'u32', protocol: f.filter.family === 4 ? 'ip' : 'ipv6', pref: f.prio, flowid: `1:${f.filter.classMinor.toString(16)}`, redirectTo: null }));
  }

  change(space: string, op: OpOf<'qdisc.replaceRoot' | 'qdisc.deleteRoot' | 'qdisc.addClass' | 'qdisc.addFilter' | 'qdisc.addIngress' | 'qdisc.deleteIngress' | 'qdisc.addRedirect'>): void {
    const q = this.of(space, op.dev);
    switch (op.kind) {
      case 'qdisc.replaceRoot': {
        // As the kernel: an htb root keeps handle 1:, which another htb 1: cannot replace.
        if (op.spec.kind === 'htb' && q.root?.handle === '1:') throw new AppError('QDISC_REFUSED', 'Change operation not supported by specified qdisc');
        const same = q.root !== null && q.root.spec.kind === op.spec.kind;
        q.root = { spec: op.spec, handle: op.spec.kind === 'htb' ? '1:' : same ? q.root!.handle : `${(this.nextHandle++).toString(16)}:` };
        q.classes = [];
        q.filters = [];
        return;
      }
      case 'qdisc.deleteRoot':
        if (q.root === null) throw new AppError('QDISC_NOT_FOUND', 'Cannot delete qdisc with handle of zero');
        q.root = null;
        q.classes = [];
        q.filters = [];
        return;
      case 'qdisc.addClass':
        if (q.root?.spec.kind !== 'htb') throw new AppError('QDISC_REFUSED', "Parent Qdisc doesn't exists");
        if (q.classes.some((c) => c.minor === op.cls.minor)) throw new AppError('QDISC_REFUSED', 'class exists');
        q.classes.push(op.cls);
        return;
      case 'qdisc.addFilter':
        if (q.root?.spec.kind !== 'htb') throw new AppError('QDISC_REFUSED', "Parent Qdisc doesn't exists");
        q.filters.push({ prio: op.prio, filter: op.filter });
        return;
      case 'qdisc.addIngress':
        if (q.ingress) throw new AppError('QDISC_REFUSED', 'Exclusivity flag on, cannot modify');
        q.ingress = { redirectTo: null };
        return;
      case 'qdisc.deleteIngress':
        if (!q.ingress) throw new AppError('QDISC_NOT_FOUND', 'Invalid handle');
        q.ingress = null;
        return;
      case 'qdisc.addRedirect':
        if (!q.ingress) throw new AppError('QDISC_REFUSED', "Parent Qdisc doesn't exists");
        if (!this.exists(space, op.to)) throw new AppError('LINK_NOT_FOUND', `there is no link "${op.to}" in namespace "${space}"`);
        q.ingress.redirectTo = op.to;
        return;
    }
  }
}

/** The options `tc -j` prints for these kinds (bytes/s, µs). */
function optionsOf(spec: RootQdiscSpec): Record<string, unknown> {
  switch (spec.kind) {
    case 'tbf':
      return { rate: Math.floor(spec.rateBits / 8), burst: spec.burstBytes, lat: spec.latencyUs };
    case 'htb':
      return { r2q: 10, default: `0x${spec.defaultMinor.toString(16)}`, direct_packets_stat: 0, direct_qlen: 1000 };
    default:
      return {};
  }
}
