import { describe, expect, it } from 'vitest';
import { Value } from '@sinclair/typebox/value';
import { DurationSchema, formatDuration, parseDuration } from '../../src/duration.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['1s', 1000],
    ['1.5s', 1500],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['0s', 0],
    ['0.5d', 43_200_000],
  ])('reads %s as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it('rounds to the nearest whole millisecond', () => {
    expect(parseDuration('1.6ms')).toBe(2);
    expect(parseDuration('0.0004s')).toBe(0);
  });

  it.each(['15', '', 's', '1 s', '1S', '-1s', '+1s', '1.s', '.5s', '1h30m', '1w', '1e3ms', ' 1s', '1s '])(
    'refuses %j with a message naming the accepted form',
    (text) => {
      expect(() => parseDuration(text)).toThrow(/is not a duration: write a number followed by one unit of ms, s, m, h or d/);
    },
  );

  it('refuses a duration too long to hold exactly', () => {
    expect(() => parseDuration('99999999999999999999d')).toThrow(/too long/);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [1500, '1500ms'],
    [1000, '1s'],
    [90_000, '90s'],
    [300_000, '5m'],
    [7_200_000, '2h'],
    [86_400_000, '1d'],
    [90_000_000, '25h'],
  ])('writes %d ms as %s, in the largest exact unit', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips through parseDuration', () => {
    for (const ms of [0, 1, 999, 1000, 61_000, 3_600_000, 86_400_000 * 3, 123_456_789]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });

  it('refuses negative and non-finite input', () => {
    expect(() => formatDuration(-1)).toThrow(/>= 0/);
    expect(() => formatDuration(Number.NaN)).toThrow(/>= 0/);
    expect(() => formatDuration(Number.POSITIVE_INFINITY)).toThrow(/>= 0/);
  });
});

describe('DurationSchema', () => {
  it('is named Duration and documented for OpenAPI', () => {
    expect(DurationSchema.$id).toBe('Duration');
    expect(DurationSchema.description).toMatch(/unit/);
    expect(DurationSchema.examples).toContain('500ms');
  });

  it('accepts exactly what parseDuration accepts', () => {
    for (const text of ['500ms', '1.5s', '5m', '2h', '1d', '15', '1 s', '1w', '.5s', '1h30m']) {
      let parses = true;
      try {
        parseDuration(text);
      } catch {
        parses = false;
      }
      expect(Value.Check(DurationSchema, text), text).toBe(parses);
    }
  });

  it('accepts its own examples', () => {
    for (const example of DurationSchema.examples as string[]) expect(Value.Check(DurationSchema, example)).toBe(true);
  });
});
