/** Reading what an event subscription delivers, in unit tests. */
import type { Delivery } from '../../src/events/event-bus.js';

/** Everything the subscription has queued, taken now. */
export function drain(s: { take(): Delivery | undefined }): Delivery[] {
  const out: Delivery[] = [];
  for (let d = s.take(); d !== undefined; d = s.take()) out.push(d);
  return out;
}

/** Each delivery as its seq, or `gap FROM-TO`, or its type. */
export const seqs = (ds: Delivery[]) => ds.map((d) => ('seq' in d ? d.seq : d.type === 'gap' ? `gap ${d.from}-${d.to}` : d.type));
