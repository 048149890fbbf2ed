/**
 * How a benchmark of several rounds is reported (bench/harness.ts combineRounds): per method, the
 * median of each phase over the rounds, every round's figure in the notes, and a failure in any
 * round as the method's result.
 */
import { describe, expect, it } from 'vitest';
import { combineRounds, median, type MethodResult } from '../../bench/harness.js';
import { perRoundRatios } from '../../bench/units.js';

const run = (id: string, create: number, notes: string[] = [], extra: Partial<MethodResult> = {}): MethodResult => ({
  id,
  label: `method ${id}`,
  ok: true,
  ms: { create, delete: create / 2 },
  notes,
  ...extra,
});

describe('median', () => {
  it('takes the middle value, the mean of the two middle ones for an even count, and 0 for none', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBe(0);
  });
});

describe('combineRounds', () => {
  it('gives one round as it came', () => {
    const r = [run('a', 100), run('c', 20)];
    expect(combineRounds([r])).toEqual(r);
  });

  it("reports each phase's median over the rounds, each round's figure, and the notes of the round nearest the median", () => {
    const out = combineRounds([
      [run('a', 3000, ['a1']), run('c', 700, ['c1'], { freedMs: 5 })],
      [run('a', 2900, ['a2']), run('c', 560, ['c2'], { freedMs: 9 })],
      [run('a', 3100, ['a3']), run('c', 600, ['c3'], { freedMs: 7 })],
    ]);
    expect(out.map((x) => x.id)).toEqual(['a', 'c']);
    const c = out[1]!;
    expect(c.ok).toBe(true);
    expect(c.ms).toEqual({ create: 600, delete: 300 });
    expect(c.perRound).toEqual({ create: [700, 560, 600], delete: [350, 280, 300] });
    expect(c.freedMs).toBe(9);
    expect(c.notes).toEqual(['create per round: 0.700, 0.560, 0.600 s (median 0.600 s)', 'delete per round: 0.350, 0.280, 0.300 s (median 0.300 s)', 'round 3: c3']);
    expect(out[0]!.ms.create).toBe(3000);
  });

  it('reports a method that failed in any round as that failure, naming the round', () => {
    const out = combineRounds([
      [run('a', 3000), run('c', 600)],
      [run('a', 2900), run('c', 0, [], { ok: false, error: 'POST /v1/namespaces answered 500' })],
    ]);
    expect(out[0]!.ok).toBe(true);
    expect(out[1]).toMatchObject({ id: 'c', ok: false, error: 'in round 2 of 2: POST /v1/namespaces answered 500' });
  });

  it('keeps an interrupted method marked as interrupted', () => {
    const out = combineRounds([[run('c', 600)], [run('c', 0, [], { ok: false, error: 'interrupted' })]]);
    expect(out[0]).toMatchObject({ ok: false, error: 'interrupted' });
  });
});

describe('units: per-round ratios', () => {
  it('gives (c) against (b) and (a) within each round, with their medians', () => {
    const [a, b, c] = combineRounds([
      [run('a', 3000), run('b', 600), run('c', 500)],
      [run('a', 3300), run('b', 660), run('c', 600)],
      [run('a', 2900), run('b', 580), run('c', 580)],
    ]);
    expect(perRoundRatios([a!, b!, c!])).toEqual(['', '- per round, (c) vs (b): 0.83×, 0.91×, 1.00× (median 0.91×)', '- per round, (a) ÷ (c): 6.00×, 5.50×, 5.00× (median 5.50×)']);
  });

  it('gives nothing for one round', () => {
    expect(perRoundRatios([run('a', 3000), run('c', 500)])).toEqual([]);
  });
});
