import { describe, expect, it } from 'vitest';
import { openDb } from '../../src/store/db.js';
import { IdempotencyStore } from '../../src/store/idempotency-store.js';
import { NamespaceRecords } from '../../src/store/namespace-records.js';
import { AuditLog, WRITE_EVERY_MS } from '../../src/store/audit-log.js';

describe('IdempotencyStore', () => {
  const make = (now: { t: number }) => new IdempotencyStore(openDb(':memory:'), 1000, () => now.t);

  it('claims a new key, then replays its stored response for the same request', () => {
    const now = { t: 0 };
    const s = make(now);
    expect(s.claim('ci', 'k1', 'fp')).toEqual({ kind: 'new' });
    expect(s.claim('ci', 'k1', 'fp')).toEqual({ kind: 'in-progress' });
    s.complete('ci', 'k1', { status: 201, headers: { location: '/x' }, body: '{"a":1}' });
    expect(s.claim('ci', 'k1', 'fp')).toEqual({ kind: 'replay', response: { status: 201, headers: { location: '/x' }, body: '{"a":1}' } });
  });

  it('answers mismatch for the same key with another request', () => {
    const s = make({ t: 0 });
    s.claim('ci', 'k1', 'fp1');
    s.complete('ci', 'k1', { status: 201, headers: {}, body: '' });
    expect(s.claim('ci', 'k1', 'fp2')).toEqual({ kind: 'mismatch' });
  });

  it('keeps keys per actor', () => {
    const s = make({ t: 0 });
    s.claim('a', 'k', 'fp1');
    expect(s.claim('b', 'k', 'fp2')).toEqual({ kind: 'new' });
  });

  it('forgets claims left pending by a daemon that stopped mid-request', () => {
    const s = make({ t: 0 });
    s.claim('ci', 'k1', 'fp');
    s.claim('ci', 'k2', 'fp');
    s.complete('ci', 'k2', { status: 201, headers: {}, body: '' });
    expect(s.releaseAllPending()).toBe(1);
    expect(s.claim('ci', 'k1', 'fp')).toEqual({ kind: 'new' });
    expect(s.claim('ci', 'k2', 'fp').kind).toBe('replay');
  });

  it('forgets released and expired keys', () => {
    const now = { t: 0 };
    const s = make(now);
    s.claim('ci', 'k1', 'fp');
    s.release('ci', 'k1');
    expect(s.claim('ci', 'k1', 'other')).toEqual({ kind: 'new' });
    s.complete('ci', 'k1', { status: 200, headers: {}, body: '' });
    now.t = 5000;
    expect(s.claim('ci', 'k1', 'third')).toEqual({ kind: 'new' });
    now.t = 10_000;
    expect(s.expire()).toBe(1);
  });
});

describe('NamespaceRecords', () => {
  it('stores, updates and deletes records with their labels', () => {
    const r = new NamespaceRecords(openDb(':memory:'));
    r.put({ name: 'a', id: '1-2', managed: true, createdAt: '2026-01-01T00:00:00.000Z', labels: { x: 'y' } });
    expect(r.get('a')).toEqual({ name: 'a', id: '1-2', managed: true, createdAt: '2026-01-01T00:00:00.000Z', labels: { x: 'y' } });
    r.put({ name: 'a', id: '1-2', managed: true, createdAt: '2026-01-01T00:00:00.000Z', labels: {} });
    expect(r.get('a')?.labels).toEqual({});
    expect(r.all()).toHaveLength(1);
    r.delete('a');
    expect(r.get('a')).toBeUndefined();
  });
});

describe('AuditLog', () => {
  it('pages entries oldest first and prunes beyond retention', () => {
    const log = new AuditLog(openDb(':memory:'), 150);
    for (let i = 0; i < 200; i++) {
      log.append({
        time: new Date(0).toISOString(), requestId: `r${i}`, actor: 'unix', action: 'namespace.create', method: 'POST',
        path: '/v1/namespaces', namespace: `n${i}`, status: 201, code: null, outcome: 'success', ops: [], durationMs: 1,
      });
    }
    const first = log.page(0, 10);
    expect(first.more).toBe(true);
    // 200 appended, pruned at the 200th down to the newest 150.
    expect(first.entries[0]?.requestId).toBe('r50');
    const after = log.page(first.entries[9]!.seq, 1000);
    expect(after.entries).toHaveLength(140);
    expect(after.more).toBe(false);
  });

  const entry = (requestId: string) => ({
    time: new Date(0).toISOString(), requestId, actor: 'unix', action: 'namespace.create', method: 'POST',
    path: '/v1/namespaces', namespace: 'n', status: 201, code: null, outcome: 'success' as const, ops: [], durationMs: 1,
  });

  const later = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('writes the entries appended within WRITE_EVERY_MS together, then, and tells each its seq', async () => {
    const log = new AuditLog(openDb(':memory:'), 150);
    const told: Array<number | undefined> = [];
    log.append(entry('a'), (seq) => told.push(seq));
    await new Promise((r) => setImmediate(r));
    log.append(entry('b'), (seq) => told.push(seq));
    await new Promise((r) => setImmediate(r));
    expect(told).toEqual([]); // a turn later: not yet
    await later(WRITE_EVERY_MS + 5);
    expect(told).toEqual([1, 2]);
    expect(log.page(0, 10).entries.map((e) => e.requestId)).toEqual(['a', 'b']);
  });

  it('lets a read see every entry appended before it, written or queued', () => {
    const log = new AuditLog(openDb(':memory:'), 150);
    log.append(entry('a'));
    expect(log.page(0, 10).entries.map((e) => [e.seq, e.requestId])).toEqual([[1, 'a']]);
  });

  it('writes the other entries of a batch when one cannot be written, and tells that one why', async () => {
    const log = new AuditLog(openDb(':memory:'), 150);
    const told: string[] = [];
    log.append(entry('a'), (seq) => told.push(`a ${seq}`));
    log.append({ ...entry('b'), status: 'bad' as unknown as number, requestId: null as unknown as string }, (seq, err) => told.push(`b ${seq} ${err ? 'error' : ''}`));
    log.append(entry('c'), () => {
      throw new Error('a listener that throws');
    });
    log.append(entry('d'), (seq) => told.push(`d ${seq}`));
    await later(WRITE_EVERY_MS + 5);
    expect(told).toEqual(['a 1', 'b undefined error', 'd 3']);
    expect(log.page(0, 10).entries.map((e) => e.requestId)).toEqual(['a', 'c', 'd']);
  });

  it('tells each entry of a batch that could not be written why', () => {
    const db = openDb(':memory:');
    const log = new AuditLog(db, 150);
    const errors: string[] = [];
    log.append(entry('a'), (_seq, err) => errors.push(err?.message ?? 'no error'));
    db.close();
    log.flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/not open/);
  });
});
