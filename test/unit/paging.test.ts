import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor, paginate } from '../../src/paging.js';

const items = Array.from({ length: 25 }, (_, i) => `n${String(i).padStart(2, '0')}`);

describe('paginate', () => {
  it('walks every item exactly once, page by page', () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = paginate(items, (s) => s, 10, cursor);
      seen.push(...page.items);
      cursor = page.next;
    } while (cursor);
    expect(seen).toEqual(items);
  });

  it('answers no next on the last page', () => {
    expect(paginate(items, (s) => s, 25).next).toBeUndefined();
    expect(paginate(items, (s) => s, 24).next).toBeDefined();
  });

  it('does not repeat or skip when an earlier item disappears between pages', () => {
    const first = paginate(items, (s) => s, 10);
    const shrunk = items.filter((s) => s !== 'n03');
    const second = paginate(shrunk, (s) => s, 10, first.next);
    expect(second.items[0]).toBe('n10');
  });

  it('round-trips cursors and rejects foreign ones with CURSOR_INVALID', () => {
    expect(decodeCursor(encodeCursor('abc'))).toBe('abc');
    expect(decodeCursor(encodeCursor(42))).toBe(42);
    expect(() => decodeCursor('bm9wZQ')).toThrowError(/CURSOR_INVALID/);
  });
});
