import { describe, expect, it } from 'vitest';
import { openDb } from '../../src/store/db.js';
import { LinkRecords, hostNamespaceKey } from '../../src/store/link-records.js';

const rec = (nsKey: string, ifindex: number, kind = 'veth', labels: Record<string, string> = {}) => ({ nsKey, ifindex, kind, managed: true, createdAt: '2026-12-01T00:00:00.000Z', labels });

describe('LinkRecords', () => {
  it('answers a record only for the same namespace, ifindex and kind (a reused ifindex of another kind gets none)', () => {
    const r = new LinkRecords(openDb(':memory:'));
    r.put(rec('ns1', 5, 'veth', { a: '1' }));
    expect(r.get('ns1', 5, 'veth')?.labels).toEqual({ a: '1' });
    expect(r.get('ns1', 5, 'bridge')).toBeUndefined();
    expect(r.get('ns2', 5, 'veth')).toBeUndefined();
  });

  it('tells which links of a namespace had their records written since it was last asked, once', () => {
    const r = new LinkRecords(openDb(':memory:'));
    r.put(rec('ns1', 5));
    r.put(rec('ns1', 7));
    r.put(rec('ns2', 5));
    r.delete('ns1', 7);
    expect([...r.takeTouched('ns1')].sort()).toEqual([5, 7]);
    expect([...r.takeTouched('ns1')]).toEqual([]);
    r.move({ nsKey: 'ns2', ifindex: 5 }, { nsKey: 'ns3', ifindex: 9 }, 'veth');
    expect([...r.takeTouched('ns3')]).toEqual([9]);
  });

  it('writes both ends of a pair together with putAll, and neither when one cannot be written', () => {
    const db = openDb(':memory:');
    const r = new LinkRecords(db);
    r.putAll([rec('ns1', 5, 'veth', { a: '1' }), rec('ns2', 6)]);
    expect(r.get('ns1', 5, 'veth')?.labels).toEqual({ a: '1' });
    expect(new LinkRecords(db).get('ns1', 5, 'veth')?.labels).toEqual({ a: '1' });
    expect(new LinkRecords(db).get('ns2', 6, 'veth')).toBeDefined();
    // The second fails (a NOT NULL kind): the first is rolled back with it.
    expect(() => r.putAll([rec('ns3', 1), { ...rec('ns3', 2), kind: null as unknown as string }])).toThrow();
    expect(new LinkRecords(db).forNamespace('ns3').size).toBe(0);
    expect(r.get('ns3', 1, 'veth')).toBeUndefined();
    expect([...r.takeTouched('ns3')]).toEqual([]);
  });

  it('moves a record to another namespace and ifindex in one step', () => {
    const r = new LinkRecords(openDb(':memory:'));
    r.put(rec('ns1', 5, 'tap', { a: '1' }));
    r.move({ nsKey: 'ns1', ifindex: 5 }, { nsKey: 'ns2', ifindex: 9 }, 'tap');
    expect(r.get('ns1', 5, 'tap')).toBeUndefined();
    expect(r.get('ns2', 9, 'tap')).toMatchObject({ managed: true, labels: { a: '1' } });
  });

  it('prunes records of links that are gone or changed kind, and of namespaces that are gone', () => {
    const r = new LinkRecords(openDb(':memory:'));
    r.put(rec('ns1', 1));
    r.put(rec('ns1', 2));
    r.put(rec('ns1', 3));
    r.put(rec('old', 1));
    r.prune('ns1', new Map([[1, 'veth'], [3, 'bridge']]));
    expect([...r.forNamespace('ns1').keys()]).toEqual([1]);
    expect(r.pruneNamespaces(new Set(['ns1']))).toEqual(['old']);
    expect(r.forNamespace('old').size).toBe(0);
  });

  it('answers from its copy what the table holds after every put, delete, move and prune, read before or not', () => {
    const db = openDb(':memory:');
    const r = new LinkRecords(db);
    const table = (k: string, i: number) => db.prepare('SELECT labels FROM links WHERE ns_key = ? AND ifindex = ?').get(k, i) as { labels: string } | undefined;
    expect(r.get('ns1', 5, 'veth')).toBeUndefined(); // remembered as absent
    r.put(rec('ns1', 5, 'veth', { a: '1' }));
    expect(r.get('ns1', 5, 'veth')?.labels).toEqual({ a: '1' });
    r.put(rec('ns1', 5, 'veth', { a: '2' }));
    expect(r.get('ns1', 5, 'veth')?.labels).toEqual({ a: '2' });
    expect(JSON.parse(table('ns1', 5)!.labels)).toEqual({ a: '2' });
    expect(r.get('ns2', 9, 'veth')).toBeUndefined();
    r.move({ nsKey: 'ns1', ifindex: 5 }, { nsKey: 'ns2', ifindex: 9 }, 'veth');
    expect(r.get('ns1', 5, 'veth')).toBeUndefined();
    expect(r.get('ns2', 9, 'veth')?.labels).toEqual({ a: '2' });
    r.delete('ns2', 9);
    expect(r.get('ns2', 9, 'veth')).toBeUndefined();
    expect(table('ns2', 9)).toBeUndefined();
    r.put(rec('gone', 1));
    expect(r.get('gone', 1, 'veth')).toBeDefined();
    r.pruneNamespaces(new Set(['ns1', 'ns2']));
    expect(r.get('gone', 1, 'veth')).toBeUndefined();
  });

  it('hands out copies: changing an answer changes neither the store nor the next answer', () => {
    const r = new LinkRecords(openDb(':memory:'));
    r.put(rec('ns1', 5, 'veth', { a: '1' }));
    const got = r.get('ns1', 5, 'veth')!;
    (got.labels as Record<string, string>).a = 'changed';
    expect(r.get('ns1', 5, 'veth')?.labels).toEqual({ a: '1' });
  });

  it('keys host links by boot id (host ifindexes start again at every boot)', () => {
    expect(hostNamespaceKey()).toMatch(/^host(-[0-9a-f-]{36})?$/);
  });
});
