import { describe, expect, it } from 'vitest';
import { seedDumpsUsable } from '../../src/inventory/monitor.js';

describe("the monitor's seed from the dumps a creation took", () => {
  const taken = { since: 100 };

  it('uses them when no event of the nsid was dropped since and the kernel dropped none', () => {
    expect(seedDumpsUsable(taken, 3, undefined, -Infinity)).toBe(true);
    // Dropped before the add began: an earlier namespace's of that nsid.
    expect(seedDumpsUsable(taken, 3, 99, 50)).toBe(true);
  });

  it('dumps again when an event of the nsid was read and dropped since they were taken', () => {
    expect(seedDumpsUsable(taken, 3, 100, -Infinity)).toBe(false);
    expect(seedDumpsUsable(taken, 3, 250, -Infinity)).toBe(false);
  });

  it('dumps again after events were lost since (an overflow, the socket failed), and for a namespace without an nsid', () => {
    expect(seedDumpsUsable(taken, 3, undefined, 120)).toBe(false);
    expect(seedDumpsUsable(taken, -1, undefined, -Infinity)).toBe(false);
  });
});
