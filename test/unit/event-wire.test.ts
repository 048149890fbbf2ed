import { describe, expect, it } from 'vitest';
import { wire, wireBytes, wireText } from '../../src/events/event-api.js';
import type { Delivery } from '../../src/events/event-bus.js';
import type { LoggedEvent } from '../../src/store/event-log.js';

const event = (seq: number, name: string): LoggedEvent => ({ object: { name }, type: 'link.changed', namespace: 'a', seq, time: '2026-01-01T00:00:00.000Z', changes: { mtu: 1500 } });

describe('the wire text of a delivery', () => {
  it('is the JSON of its wire form, seq, time, type and namespace first, and its bytes the UTF-8 of that', () => {
    const e = event(1, 'bridge-é');
    expect(wireText(e)).toBe(JSON.stringify(wire(e)));
    expect(Object.keys(JSON.parse(wireText(e)) as object).slice(0, 4)).toEqual(['seq', 'time', 'type', 'namespace']);
    expect(wireBytes(e).equals(Buffer.from(JSON.stringify(wire(e)), 'utf8'))).toBe(true);
  });

  it('is made once for an event sent to many subscribers, and anew for the next one', () => {
    const a = event(2, 'x');
    const first = wireBytes(a);
    expect(wireBytes(a)).toBe(first);
    const b = event(3, 'y');
    expect(JSON.parse(wireText(b)).seq).toBe(3);
    expect(JSON.parse(wireBytes(b).toString('utf8')).seq).toBe(3);
    // Back to a (a replay interleaved with live events): still a's own text.
    expect(JSON.parse(wireText(a)).seq).toBe(2);
  });

  it('is not kept for gaps and resyncs (shaped per subscriber)', () => {
    const gap: Delivery = { type: 'gap', from: 4, to: 9 };
    expect(wireText(gap)).toBe('{"type":"gap","from":4,"to":9}');
    const resync = { seq: 10, time: '2026-01-01T00:00:00.000Z', type: 'resync', namespace: null, reason: 'start', namespaces: ['a'], differences: [] } as LoggedEvent;
    expect(JSON.parse(wireText(resync)).namespaces).toEqual(['a']);
    const shaped = { ...resync, namespaces: [] };
    expect(JSON.parse(wireText(shaped)).namespaces).toEqual([]);
  });
});
