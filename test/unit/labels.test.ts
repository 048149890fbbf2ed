import { describe, expect, it } from 'vitest';
import { matchesSelector, mergeLabels, parseLabelSelector } from '../../src/labels.js';
import { AppError } from '../../src/errors/app-error.js';

describe('label selectors', () => {
  it('matches when every requirement holds', () => {
    const sel = parseLabelSelector('lab=a,tier!=edge,owner,!temp');
    expect(matchesSelector({ lab: 'a', owner: 'ci' }, sel)).toBe(true);
    expect(matchesSelector({ lab: 'a', owner: 'ci', tier: 'edge' }, sel)).toBe(false);
    expect(matchesSelector({ lab: 'b', owner: 'ci' }, sel)).toBe(false);
    expect(matchesSelector({ lab: 'a' }, sel)).toBe(false);
    expect(matchesSelector({ lab: 'a', owner: 'x', temp: '1' }, sel)).toBe(false);
  });

  it('matches everything when empty or absent', () => {
    expect(matchesSelector({}, parseLabelSelector(undefined))).toBe(true);
    expect(matchesSelector({ a: 'b' }, parseLabelSelector(''))).toBe(true);
  });

  it.each(['a=', '=b', 'a=b=c', 'a b=c', 'a=b,,c=d', 'k=v;x', 'ä=1'])('rejects %j with REQUEST_INVALID naming the term', (text) => {
    try {
      parseLabelSelector(text);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(AppError);
      expect((e as AppError).code).toBe('REQUEST_INVALID');
      expect((e as AppError).meta).toMatchObject({ errors: [{ field: 'querystring.labelSelector' }] });
    }
  });
});

describe('mergeLabels (RFC 7396)', () => {
  it('sets given keys, removes null ones, keeps the rest', () => {
    expect(mergeLabels({ a: '1', b: '2', c: '3' }, { a: '9', b: null, d: '4' })).toEqual({ a: '9', c: '3', d: '4' });
  });
  it('does not change the input', () => {
    const cur = { a: '1' };
    mergeLabels(cur, { a: null });
    expect(cur).toEqual({ a: '1' });
  });
});
