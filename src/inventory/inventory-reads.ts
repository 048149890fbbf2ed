/**
 * Reads from the inventory: an Executor in front of the pool that answers link, address, route
 * and rule listings of a watched namespace from the monitor's stacks — no dump, no process —
 * after catching up with every event the kernel has sent (so a read right after a change sees
 * it: the kernel announces a change before it acknowledges it). Anything else, or a namespace the
 * monitor does not watch (yet), goes to the pool. Address read-backs of a change re-read the
 * namespace's addresses into the inventory first (see run()).
 */
import { AppError } from '../errors/app-error.js';
import type { Executor, OpContext } from '../executor/executor.js';
import type { Op, ResultOf } from '../executor/ops.js';
import type { Monitor } from './monitor.js';

export class InventoryReads implements Executor {
  constructor(
    private readonly inner: Executor,
    private readonly monitor: () => Monitor | undefined,
  ) {}

  run<O extends Op>(op: O, ctx?: OpContext): Promise<ResultOf<O>> {
    const answer = this.fromInventory(op);
    if (answer === undefined) return this.inner.run(op, ctx);
    const t0 = performance.now();
    ctx?.record?.({ kind: op.kind, ns: (op as { ns: string }).ns, argv: [], ok: true, durationMs: performance.now() - t0 });
    return Promise.resolve(answer as ResultOf<O>);
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private fromInventory(op: Op): unknown {
    const m = this.monitor();
    if (!m) return undefined;
    switch (op.kind) {
      case 'link.list':
      case 'addr.list':
      case 'route.list':
      case 'rule.list':
        break;
      default:
        return undefined;
    }
    if (!m.serves(op.ns)) return undefined;
    // A fresh read: IPv6 addresses are announced only once DAD starts (later, from a kernel work
    // queue), so a read-back that missed one re-reads the namespace's addresses now; what the
    // dump shows first is announced from it. (Only on request: a dump of a hub's N addresses per
    // read-back made N address changes cost N².)
    const s = op.kind === 'addr.list' && op.fresh === true ? m.reread(op.ns, 'address') : m.stack(op.ns);
    if (!s || !m.serves(op.ns)) return undefined;
    const noLink = (name: string) => new AppError('LINK_NOT_FOUND', `there is no link "${name}" in namespace "${op.ns}"`);
    switch (op.kind) {
      case 'link.list': {
        if (op.name === undefined) return { links: s.links() };
        const l = s.linkNamed(op.name);
        if (!l) throw noLink(op.name);
        return { links: [l] };
      }
      case 'addr.list': {
        if (op.link === undefined) return { addresses: s.addresses() };
        if (!s.linkNamed(op.link)) throw noLink(op.link);
        return { addresses: s.addresses(op.link) };
      }
      case 'route.list':
        return { routes: s.routes().filter((r) => r.family === op.family && (op.table === 'all' || r.table === op.table)) };
      case 'rule.list':
        return { rules: s.rules().filter((r) => r.family === op.family) };
    }
  }
}
