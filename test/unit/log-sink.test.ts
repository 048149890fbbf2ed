import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { openDb, type Db } from '../../src/store/db.js';
import { dbReserve, EventLog, RESERVE_BLOCK, type NewEvent } from '../../src/store/event-log.js';
import { EventInventory } from '../../src/store/event-inventory.js';
import { openLogStore, SyncSink, WorkerSink, type LogBatch, type LogSink } from '../../src/store/log-sink.js';
import { EventBus, type Delivery } from '../../src/events/event-bus.js';
import { drain, seqs } from '../helpers/deliveries.js';
import { parseFilter } from '../../src/events/event-filter.js';

const link = (name: string): NewEvent => ({ type: 'link.added', namespace: 'a', object: { name } });
const opts = { retentionCount: 100_000, retentionAgeMs: 86_400_000 };

/** A sink written later, whose writes can be held back (a crash before they were committed). */
class HeldSink implements LogSink {
  readonly deferred = true;
  held: LogBatch[] = [];
  hold = false;
  private readonly inner: SyncSink;
  constructor(db: Db) {
    this.inner = new SyncSink(db);
  }
  get written(): number {
    return this.inner.written;
  }
  write(b: LogBatch): void {
    if (this.hold) this.held.push(b);
    else this.inner.write(b);
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync('/tmp/netnsd-logsink-');
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});


describe('the event log written by a thread of its own', () => {
  it('writes its rows in netnsd-log.db from the thread and has them after a clean reopen, the reservation back at the last seq', async () => {
    const dir = tmp();
    let db = openDb(dir);
    let store = openLogStore(db, (e) => { throw e; });
    let log = new EventLog(store.db, { ...opts, sink: store.sink, reserve: dbReserve(db, 'events') });
    expect(log.append([link('x'), link('y')]).map((e) => e.seq)).toEqual([1, 2]);
    expect(log.append([link('z')]).map((e) => e.seq)).toEqual([3]);
    // Reserved ahead, before any of them was handed out.
    expect(dbReserve(db, 'events').get()).toBe(2 + RESERVE_BLOCK);
    await log.close();
    await store.close();
    expect(dbReserve(db, 'events').get()).toBe(3);
    db.close();
    const file = new Database(join(dir, 'netnsd-log.db'));
    expect(file.prepare('SELECT seq, type FROM events ORDER BY seq').all()).toEqual([
      { seq: 1, type: 'link.added' },
      { seq: 2, type: 'link.added' },
      { seq: 3, type: 'link.added' },
    ]);
    file.close();
    db = openDb(dir);
    store = openLogStore(db, (e) => { throw e; });
    log = new EventLog(store.db, { ...opts, sink: store.sink, reserve: dbReserve(db, 'events') });
    expect([log.firstSeq, log.lastSeq]).toEqual([1, 3]);
    expect(log.append([link('w')])[0]?.seq).toBe(4);
    expect(log.read(0, 4, 10).map((e) => (e.object as { name: string }).name)).toEqual(['x', 'y', 'z', 'w']);
    await log.close();
    await store.close();
    db.close();
  });

  it('after a crash goes on past the reservation, and a subscriber resuming across the lost seqs gets a gap', () => {
    const db = openDb(':memory:');
    const sink = new HeldSink(db);
    const first = new EventLog(db, { ...opts, sink, reserve: dbReserve(db, 'events') });
    first.append([link('x'), link('y')]);
    sink.hold = true;
    // Handed out (a subscriber may have seen seq 3), never committed: the process died.
    first.append([link('z')]);
    const again = new EventLog(db, { ...opts, sink: new HeldSink(db), reserve: dbReserve(db, 'events') });
    expect(again.lastSeq).toBe(2 + RESERVE_BLOCK);
    expect(again.append([link('w')])[0]?.seq).toBe(3 + RESERVE_BLOCK);
    const bus = new EventBus({ log: again, labelsOf: () => ({}), maxSubscribers: 3 });
    const s = bus.subscribe({ filter: parseFilter({}), since: 1, onOverflow: 'gap', queueSize: 100, actor: 't', transport: 'websocket', visible: () => true });
    expect(seqs(drain(s))).toEqual([2, `gap 3-${2 + RESERVE_BLOCK}`, 3 + RESERVE_BLOCK]);
  });

  it('keeps in memory every event whose row is not committed yet, beyond memoryCount', () => {
    const db = openDb(':memory:');
    const sink = new HeldSink(db);
    sink.hold = true;
    const log = new EventLog(db, { ...opts, memoryCount: 2, sink, reserve: dbReserve(db, 'events') });
    log.append([1, 2, 3, 4, 5].map((i) => link(`l${i}`)));
    expect(log.read(0, 5, 10).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(log.firstSeq).toBe(1);
  });

  it('refuses a deferred sink without a seq reservation', () => {
    const db = openDb(':memory:');
    expect(() => new EventLog(db, { ...opts, sink: new HeldSink(db) })).toThrow(/reservation/);
  });

  it('moves the events and inventory an older netnsd kept in netnsd.db into netnsd-log.db', async () => {
    const dir = tmp();
    const db = openDb(dir);
    db.prepare("INSERT INTO events (seq, time, type, namespace, body) VALUES (7, ?, 'link.added', 'a', '{}')").run(new Date().toISOString());
    db.prepare('UPDATE events_high SET seq = 9 WHERE id = 1').run();
    db.prepare("INSERT INTO event_inventory (kind, key, body) VALUES ('namespace', 'a', '{\"id\":\"1-2\"}')").run();
    const store = openLogStore(db, (e) => { throw e; });
    expect(db.prepare('SELECT COUNT(*) AS n FROM events').get()).toEqual({ n: 0 });
    expect(db.prepare('SELECT COUNT(*) AS n FROM event_inventory').get()).toEqual({ n: 0 });
    const log = new EventLog(store.db, { ...opts, sink: store.sink, reserve: dbReserve(db, 'events') });
    expect([log.firstSeq, log.lastSeq]).toEqual([7, 9]);
    expect(new EventInventory(store.db, store.sink).all('namespace')).toEqual(new Map([['a', { id: '1-2' }]]));
    await log.close();
    await store.close();
    db.close();
  });

  it('writes the inventory through the thread; after a flush it is read back', async () => {
    const dir = tmp();
    const db = openDb(dir);
    const store = openLogStore(db, (e) => { throw e; });
    const inv = new EventInventory(store.db, store.sink);
    inv.apply('namespace', [['a', { id: 1 }], ['b', { id: 2 }]], []);
    inv.apply('namespace', [], ['a']);
    await store.sink.flush();
    expect(inv.all('namespace')).toEqual(new Map([['b', { id: 2 }]]));
    await store.close();
    db.close();
  });

  it('tells `background` the tid of its writer thread, a thread of this process', async () => {
    const dir = tmp();
    const db = openDb(dir);
    let told: number | undefined;
    const store = openLogStore(db, (e) => { throw e; }, (tid) => (told = tid));
    store.sink.write({ events: [[1, new Date().toISOString(), 'link.added', 'a', '{}']] });
    await store.sink.flush();
    expect(told).toBeGreaterThan(process.pid);
    expect(existsSync(`/proc/self/task/${told}`)).toBe(true);
    await store.close();
    db.close();
  });

  it('writes here what its thread had not written when the thread died, and everything after', async () => {
    const dir = tmp();
    const db = openDb(dir);
    const store = openLogStore(db, () => {});
    const log = new EventLog(store.db, { ...opts, sink: store.sink, reserve: dbReserve(db, 'events') });
    log.append([link('x')]);
    await (store.sink as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    log.append([link('y')]);
    await store.sink.flush();
    const file = new Database(join(dir, 'netnsd-log.db'));
    expect(file.prepare('SELECT seq FROM events ORDER BY seq').all()).toEqual([{ seq: 1 }, { seq: 2 }]);
    file.close();
    expect(store.sink).toBeInstanceOf(WorkerSink);
    await log.close();
    await store.close();
    db.close();
  });
});
