import { describe, expect, it, vi } from 'vitest';
import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { MIGRATIONS, openDb } from '../../src/store/db.js';
import { EventLog, type NewEvent } from '../../src/store/event-log.js';
import { EventBus, type Delivery, type SubscribeOptions } from '../../src/events/event-bus.js';
import { drain, seqs } from '../helpers/deliveries.js';
import { parseFilter, matches } from '../../src/events/event-filter.js';
import { TicketStore } from '../../src/events/tickets.js';
import { UNIX_PRINCIPAL } from '../../src/auth/tokens.js';

const ev = (type: string, namespace: string | null, object: unknown = {}): NewEvent => ({ type, namespace, object });
const link = (ns: string, name: string) => ev('link.added', ns, { name });

function bus(o: { retentionCount?: number; memoryCount?: number; labels?: Record<string, Record<string, string>> } = {}) {
  const db = openDb(':memory:');
  const log = new EventLog(db, { retentionCount: o.retentionCount ?? 1000, retentionAgeMs: 86_400_000, ...(o.memoryCount ? { memoryCount: o.memoryCount } : {}) });
  return { db, log, bus: new EventBus({ log, labelsOf: (ns) => o.labels?.[ns] ?? {}, maxSubscribers: 3 }) };
}

const sub = (b: EventBus, o: Partial<SubscribeOptions> = {}) =>
  b.subscribe({ filter: parseFilter({}), onOverflow: 'gap', queueSize: 100, actor: 't', transport: 'websocket', visible: () => true, ...o });


describe('the event log', () => {
  it('assigns growing seqs and keeps them across a reopen, never reusing one after pruning', () => {
    const dir = `/tmp/netnsd-evlog-${process.pid}-${Date.now()}`;
    const first = new EventLog(openDb(dir), { retentionCount: 2, retentionAgeMs: 86_400_000 });
    expect(first.append([link('a', 'x'), link('a', 'y'), link('a', 'z')]).map((e) => e.seq)).toEqual([1, 2, 3]);
    first.prune();
    expect([first.firstSeq, first.lastSeq]).toEqual([2, 3]);
    const again = new EventLog(openDb(dir), { retentionCount: 2, retentionAgeMs: 86_400_000 });
    expect([again.firstSeq, again.lastSeq]).toEqual([2, 3]);
    expect(again.append([link('a', 'w')])[0]?.seq).toBe(4);
    expect(again.read(0, 4, 10).map((e) => [e.seq, e.type, e.namespace, (e.object as { name: string }).name])).toEqual([[2, 'link.added', 'a', 'y'], [3, 'link.added', 'a', 'z'], [4, 'link.added', 'a', 'w']]);
  });

  it('prunes by age', () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const log = new EventLog(openDb(':memory:'), { retentionCount: 100, retentionAgeMs: 60_000, now: () => now });
    log.append([link('a', 'old')]);
    now += 120_000;
    log.append([link('a', 'new')]);
    log.prune();
    expect(log.read(0, 10, 10).map((e) => e.seq)).toEqual([2]);
  });

  it('never gives a seq twice, even after every event was pruned and the log reopened', () => {
    const dir = `/tmp/netnsd-evlog-${process.pid}-${Date.now()}-all`;
    let now = Date.parse('2026-01-01T00:00:00Z');
    const o = { retentionCount: 100, retentionAgeMs: 60_000, now: () => now };
    const first = new EventLog(openDb(dir), o);
    first.append([link('a', 'x'), link('a', 'y'), link('a', 'z')]);
    now += 120_000;
    first.prune();
    expect([first.firstSeq, first.lastSeq]).toEqual([4, 3]);
    const again = new EventLog(openDb(dir), o);
    expect(again.lastSeq).toBe(3);
    expect(again.append([link('a', 'w')])[0]?.seq).toBe(4);
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the seqs of a log made before seqs were its own (AUTOINCREMENT), and its highest', () => {
    const dir = `/tmp/netnsd-evlog-${process.pid}-${Date.now()}-old`;
    const path = `${dir}/netnsd.db`;
    openDb(dir).close();
    // The store as it was before the migration to events_high: events with AUTOINCREMENT, seqs 1-5 given, 4-5 left.
    const old = new Database(path);
    old.exec('DROP TABLE events; DROP TABLE events_high; DROP TABLE log_reserve;');
    const made = MIGRATIONS.find((m) => m.startsWith('CREATE TABLE events ('))!;
    old.exec(made.slice(0, made.indexOf('-- What the event sources')));
    const ins = old.prepare("INSERT INTO events (time, type, namespace, body) VALUES ('2026-01-01T00:00:00.000Z', 'link.added', 'a', '{}')");
    for (let i = 0; i < 5; i++) ins.run();
    old.exec('DELETE FROM events WHERE seq <= 3');
    old.pragma(`user_version = ${MIGRATIONS.findIndex((m) => m.startsWith('CREATE TABLE events_new'))}`);
    old.close();
    const log = new EventLog(openDb(dir), { retentionCount: 100, retentionAgeMs: 86_400_000 * 3650 });
    expect([log.firstSeq, log.lastSeq]).toEqual([4, 5]);
    expect(log.append([link('a', 'w')])[0]?.seq).toBe(6);
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the newest memoryCount events in memory while thousands are dropped from it', () => {
    const { log } = bus({ memoryCount: 10, retentionCount: 100_000 });
    for (let i = 1; i <= 3000; i++) log.append([link('a', `l${i}`)]);
    expect(log.read(2990, 3000, 100).map((e) => (e.object as { name: string }).name)).toEqual(Array.from({ length: 10 }, (_, i) => `l${2991 + i}`));
    expect(log.read(1500, 3000, 3).map((e) => e.seq)).toEqual([1501, 1502, 1503]);
    expect(log.firstSeq).toBe(1);
  });

  it('reads the same from memory and from disk', () => {
    const { log } = bus({ memoryCount: 3 });
    log.append(Array.from({ length: 10 }, (_, i) => link('a', `l${i}`)));
    expect(log.read(0, 10, 100).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(log.read(8, 10, 100).map((e) => e.seq)).toEqual([9, 10]);
    expect(log.read(2, 5, 2).map((e) => e.seq)).toEqual([3, 4]);
  });
});

describe('event filters', () => {
  it.each([
    ['link.*', 'link.changed', true], ['link.*', 'address.added', false], ['address.added,route.*', 'route.removed', true],
    ['*', 'neighbor.changed', true], ['namespace.*', 'namespace.removed', true],
  ])('types=%s %s -> %s', (types, type, ok) => {
    expect(matches(parseFilter({ types }), { type, namespace: 'a' }, () => true, () => ({}))).toBe(ok);
  });

  it('answers 400 for an unknown type or a bad glob, naming the field', () => {
    expect(() => parseFilter({ types: 'link.*,bogus' })).toThrow(expect.objectContaining({ code: 'REQUEST_INVALID', meta: { errors: [expect.objectContaining({ field: 'querystring.types' })] } }));
    expect(() => parseFilter({ types: 'trafic' })).toThrow(/matches no event type/);
    expect(() => parseFilter({ namespace: 'a/b' })).toThrow(expect.objectContaining({ code: 'REQUEST_INVALID' }));
    expect(() => parseFilter({ labelSelector: '=x' })).toThrow(expect.objectContaining({ code: 'REQUEST_INVALID' }));
  });

  it('selects by namespace glob, link glob, labels and what the token may see', () => {
    const f = parseFilter({ namespace: 'lab-*', link: 'veth?' });
    const m = (e: Parameters<typeof matches>[1], visible = () => true) => matches(f, e, visible, (ns): Record<string, string> => (ns === 'lab-1' ? { team: 'x' } : {}));
    expect(m({ type: 'link.added', namespace: 'lab-1', object: { name: 'veth0' } })).toBe(true);
    expect(m({ type: 'link.added', namespace: 'lab-1', object: { name: 'veth10' } })).toBe(false);
    expect(m({ type: 'address.added', namespace: 'lab-1', object: { link: 'veth1' } })).toBe(true);
    expect(m({ type: 'route.added', namespace: 'lab-1', object: { dev: 'veth2' } })).toBe(true);
    expect(m({ type: 'namespace.added', namespace: 'lab-1', object: {} })).toBe(false); // about no link
    expect(m({ type: 'link.added', namespace: 'prod', object: { name: 'veth0' } })).toBe(false);
    expect(m({ type: 'link.added', namespace: 'lab-1', object: { name: 'veth0' } }, () => false)).toBe(false);
    const byLabel = parseFilter({ labelSelector: 'team=x' });
    expect(matches(byLabel, { type: 'namespace.added', namespace: 'lab-1' }, () => true, (ns): Record<string, string> => (ns === 'lab-1' ? { team: 'x' } : {}))).toBe(true);
    expect(matches(byLabel, { type: 'namespace.added', namespace: 'lab-2' }, () => true, () => ({}))).toBe(false);
  });

  it('selects namespace events by the labels they carry (a removed namespace has no record left)', () => {
    const f = parseFilter({ labelSelector: 'team=x', types: 'namespace.*' });
    expect(matches(f, { type: 'namespace.removed', namespace: 'gone', object: { labels: { team: 'x' } } }, () => true, () => ({}))).toBe(true);
    expect(matches(f, { type: 'namespace.removed', namespace: 'gone', object: { labels: {} } }, () => true, () => ({ team: 'x' }))).toBe(false);
  });

  it('keeps only the selection in a filter\'s input (never a ticket)', () => {
    expect(parseFilter({ types: 'link.*', ticket: 'secret' } as never).input).toEqual({ types: 'link.*' });
  });

  it('delivers a resync when any namespace it names passes', () => {
    const f = parseFilter({ namespace: 'b' });
    expect(matches(f, { type: 'resync', namespace: null, namespaces: ['a', 'b'] }, () => true, () => ({}))).toBe(true);
    expect(matches(f, { type: 'resync', namespace: null, namespaces: ['a'] }, () => true, () => ({}))).toBe(false);
  });
});

describe('the event bus', () => {
  it('delivers live events in order to each subscriber whose filter takes them', () => {
    const { bus: b } = bus();
    const all = sub(b);
    const links = sub(b, { filter: parseFilter({ types: 'link.*', namespace: 'a' }) });
    b.publish([link('a', 'x'), ev('address.added', 'a', { link: 'x' }), link('b', 'y')]);
    expect(seqs(drain(all))).toEqual([1, 2, 3]);
    expect(seqs(drain(links))).toEqual([1]);
  });

  it('replays from since, then goes on live, with nothing lost or repeated', () => {
    const { bus: b } = bus();
    b.publish([link('a', '1'), link('a', '2'), link('a', '3')]);
    const s = sub(b, { since: 1 });
    b.publish([link('a', '4')]); // while the replay has not begun
    expect(seqs(drain(s))).toEqual([2, 3, 4]);
    b.publish([link('a', '5')]);
    expect(seqs(drain(s))).toEqual([5]);
  });

  it('sends a gap first when since is older than what is retained', () => {
    const { bus: b, log } = bus({ retentionCount: 2 });
    b.publish([link('a', '1'), link('a', '2'), link('a', '3'), link('a', '4')]);
    log.prune();
    const s = sub(b, { since: 0 });
    expect(drain(s).map((d) => ('seq' in d ? d.seq : d))).toEqual([{ type: 'gap', from: 1, to: 2 }, 3, 4]);
  });

  it('gives a slow subscriber one gap naming what it lost, bounded memory, others unaffected', () => {
    const { bus: b } = bus();
    const slow = sub(b, { queueSize: 3 });
    const fast = sub(b, { queueSize: 1000 });
    b.publish(Array.from({ length: 10 }, (_, i) => link('a', `l${i}`)));
    expect(slow.queueDepth).toBe(4);
    expect(seqs(drain(slow))).toEqual([1, 2, 3, 'gap 4-10']);
    expect([slow.dropped, slow.gaps]).toEqual([7, 1]);
    expect(seqs(drain(fast))).toHaveLength(10);
    b.publish([link('a', 'after')]);
    expect(seqs(drain(slow))).toEqual([11]);
  });

  it('closes a slow subscriber with 4008 when it asked for onOverflow=close', () => {
    const { bus: b } = bus();
    const s = sub(b, { queueSize: 2, onOverflow: 'close' });
    b.publish([link('a', '1'), link('a', '2'), link('a', '3')]);
    expect(s.closed).toEqual({ code: 4008, reason: expect.stringMatching(/overflow/) });
    expect(b.subscribers).not.toContain(s);
  });

  it('changes a subscription\'s filter, replaying from since when given', () => {
    const { bus: b } = bus();
    const s = sub(b, { filter: parseFilter({ types: 'address.*' }) });
    b.publish([link('a', '1')]);
    expect(drain(s)).toEqual([]);
    s.refilter(parseFilter({ types: 'link.*' }), 0);
    expect(seqs(drain(s))).toEqual([1]);
  });

  it('replays under a new filter without repeating what was queued', () => {
    const { bus: b } = bus();
    const s = sub(b);
    b.publish([link('a', '1'), link('a', '2'), link('a', '3')]);
    s.refilter(parseFilter({ types: 'link.*' }), 1);
    expect(seqs(drain(s))).toEqual([2, 3]);
  });

  it('drops queued events a new filter does not take when no since is given', () => {
    const { bus: b } = bus();
    const s = sub(b);
    b.publish([link('a', '1'), ev('address.added', 'a', { link: 'x' })]);
    s.refilter(parseFilter({ types: 'address.*' }));
    expect(seqs(drain(s))).toEqual([2]);
  });

  it('sends a gap for events pruned while a subscriber replays them', () => {
    const { bus: b, log } = bus({ retentionCount: 5, memoryCount: 5 });
    b.publish(Array.from({ length: 5 }, (_, i) => link('a', `l${i}`)));
    const s = sub(b, { since: 0 });
    b.publish(Array.from({ length: 5 }, (_, i) => link('a', `m${i}`)));
    log.prune(); // 1-5 go before the subscriber read them
    expect(seqs(drain(s))).toEqual(['gap 1-5', 6, 7, 8, 9, 10]);
  });

  it('takes live events that overflow the queue during a replay from the log instead of dropping them', () => {
    const { bus: b } = bus();
    b.publish([link('a', '1')]);
    const s = sub(b, { since: 0, queueSize: 2 });
    b.publish(Array.from({ length: 6 }, (_, i) => link('a', `l${i}`)));
    expect(seqs(drain(s))).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(s.dropped).toBe(0);
  });

  it('shows a limited subscriber only its namespaces of a resync', () => {
    const { bus: b } = bus();
    const s = sub(b, { visible: (ns) => ns === 'mine' });
    b.publish([{ type: 'resync', namespace: null, reason: 'start', namespaces: ['mine', 'theirs'], differences: [ev('namespace.added', 'mine'), ev('namespace.added', 'theirs')] }]);
    const [r] = drain(s) as Array<Record<string, unknown>>;
    expect(r).toMatchObject({ type: 'resync', namespaces: ['mine'], differences: [expect.objectContaining({ namespace: 'mine' })] });
  });

  it('wakes a waiting reader when an event arrives', async () => {
    const { bus: b } = bus();
    const s = sub(b);
    const ready = s.ready();
    b.publish([link('a', '1')]);
    await ready;
    expect(seqs(drain(s))).toEqual([1]);
  });

  it('reports when the subscriber limit is reached', () => {
    const { bus: b } = bus();
    sub(b);
    sub(b);
    expect(b.full).toBe(false);
    sub(b);
    expect(b.full).toBe(true);
  });
});

describe('tickets', () => {
  it('work once, within 30 s', () => {
    let now = 0;
    const t = new TicketStore(() => now);
    const a = t.issue(UNIX_PRINCIPAL);
    expect(t.redeem(a.ticket)).toBe(UNIX_PRINCIPAL);
    expect(() => t.redeem(a.ticket)).toThrow(expect.objectContaining({ code: 'AUTH_INVALID' }));
    const b = t.issue(UNIX_PRINCIPAL);
    now += 30_001;
    expect(() => t.redeem(b.ticket)).toThrow(expect.objectContaining({ code: 'AUTH_INVALID' }));
  });
});

describe('event endpoints', () => {
  it('answers 400 to a ticket asked for over the Unix socket, whose trust must not reach TCP', async () => {
    const { buildTestApp, expectProblem } = await import('../helpers/test-app.js');
    const t = await buildTestApp();
    const p = expectProblem(await t.app.inject({ method: 'POST', url: '/v1/events/tickets' }), 'REQUEST_INVALID', 400);
    expect(p.detail).toMatch(/Unix socket/);
  });

  it('answers 406 NOT_ACCEPTABLE to a GET without an upgrade or Accept: text/event-stream, and 400 to an unknown type first', async () => {
    const { buildTestApp, expectProblem } = await import('../helpers/test-app.js');
    const t = await buildTestApp();
    expectProblem(await t.app.inject({ url: '/v1/events' }), 'NOT_ACCEPTABLE', 406);
    expectProblem(await t.app.inject({ url: '/v1/events?types=bogus' }), 'REQUEST_INVALID', 400);
    expectProblem(await t.app.inject({ url: '/v1/events?since=99' }), 'REQUEST_INVALID', 400);
    expectProblem(await t.app.inject({ url: '/v1/events?onOverflow=explode' }), 'REQUEST_INVALID', 400);
  });

  it('shows the retained range and no subscribers in status', async () => {
    const { buildTestApp } = await import('../helpers/test-app.js');
    const t = await buildTestApp();
    const s = (await t.app.inject({ url: '/v1/events/status' })).json();
    expect(s).toMatchObject({ subscribers: [], monitor: { running: false, restarts: 0 } });
    expect(s.retained.first).toBeGreaterThanOrEqual(1);
  });
});

describe('namespace events', () => {
  it('publish a namespace netnsd creates once it is finished: managed, with its labels', async () => {
    const { buildTestApp } = await import('../helpers/test-app.js');
    const t = await buildTestApp();
    const before = t.services.events.log.lastSeq;
    const res = await t.app.inject({ method: 'POST', url: '/v1/namespaces', headers: { 'content-type': 'application/json' }, payload: { name: 'lab', labels: { team: 'x' } } });
    expect(res.statusCode).toBe(201);
    await t.services.namespaceWatcher.rescan();
    const added = t.services.events.log.read(before, Number.MAX_SAFE_INTEGER, 10).filter((e) => e.type === 'namespace.added' && e.namespace === 'lab');
    expect(added).toHaveLength(1);
    expect(added[0]?.object).toMatchObject({ name: 'lab', managed: true, labels: { team: 'x' } });
    expect((await t.app.inject({ method: 'DELETE', url: '/v1/namespaces/lab' })).statusCode).toBe(204);
    await t.services.namespaceWatcher.rescan();
    expect(t.services.events.log.read(before, Number.MAX_SAFE_INTEGER, 10).map((e) => e.type)).toEqual(['namespace.added', 'namespace.removed']);
  });

  it('leave a name netnsd is still creating for the rescan after it', async () => {
    const { buildTestApp } = await import('../helpers/test-app.js');
    const t = await buildTestApp();
    t.kernel.addNamespace('busy-one');
    const before = t.services.events.log.lastSeq;
    const spy = vi.spyOn(t.services.namespaces, 'isCreating').mockImplementation((n) => n === 'busy-one');
    await t.services.namespaceWatcher.rescan();
    expect(t.services.events.log.read(before, Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
    spy.mockRestore();
    await t.services.namespaceWatcher.rescan();
    expect(t.services.events.log.read(before, Number.MAX_SAFE_INTEGER, 10).map((e) => e.namespace)).toEqual(['busy-one']);
  });
});

describe('namespace events from named rescans', () => {
  it('look only at the names a directory change names: an addition, a removal, a name made again', async () => {
    const { buildTestApp } = await import('../helpers/test-app.js');
    const t = await buildTestApp();
    t.kernel.addNamespace('one');
    t.kernel.addNamespace('two');
    const before = t.services.events.log.lastSeq;
    await t.services.namespaceWatcher.rescan(['one']);
    // 'two' exists too, but no change named it: it waits for its own (or a full) rescan.
    expect(t.services.events.log.read(before, Number.MAX_SAFE_INTEGER, 10).map((e) => `${e.type} ${e.namespace}`)).toEqual(['namespace.added one']);
    await t.kernel.run({ kind: 'netns.delete', ns: 'one' });
    await t.services.namespaceWatcher.rescan(['one', 'nothing-here']);
    t.kernel.addNamespace('one');
    await t.services.namespaceWatcher.rescan(['one']);
    await t.services.namespaceWatcher.rescan();
    expect(t.services.events.log.read(before, Number.MAX_SAFE_INTEGER, 10).map((e) => `${e.type} ${e.namespace}`)).toEqual([
      'namespace.added one',
      'namespace.removed one',
      'namespace.added one',
      'namespace.added two',
    ]);
  });
});

describe('lists and the event log', () => {
  it('gives every list the seq it reflects, in the body and the X-Netnsd-Seq header', async () => {
    const { buildTestApp } = await import('../helpers/test-app.js');
    const t = await buildTestApp();
    t.services.events.publish([link('x', 'a'), link('x', 'b')]);
    const last = t.services.events.log.lastSeq;
    for (const url of ['/v1/namespaces', '/v1/namespaces/host/links', '/v1/namespaces/host/addresses', '/v1/namespaces/host/routes', '/v1/namespaces/host/rules', '/v1/namespaces/host/neighbors']) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.json().seq, url).toBe(last);
      expect(res.headers['x-netnsd-seq'], url).toBe(String(last));
    }
    // Not on a single object.
    const one = await t.app.inject({ method: 'GET', url: '/v1/namespaces/host' });
    expect(one.headers['x-netnsd-seq']).toBeUndefined();
    expect(one.json().seq).toBeUndefined();
  });
});
