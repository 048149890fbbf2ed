/**
 * Where the write-behind part of the store goes: the event log's rows and the event sources'
 * inventory (event_inventory). Both are written often (tens of rows per namespace made) and read
 * back only in bulk (a subscriber resuming from an old seq, the next start), so with a data
 * directory they live in a database file of their own, `netnsd-log.db`, written by a thread of
 * its own (WorkerSink): the event loop hands the rows over, every SEND_EVERY_MS, and goes on.
 * Written on the loop, they cost a units run (issue 3) ~15% of its wall time; a second file,
 * because SQLite locks a whole file for a write and a second writer of netnsd.db would make the
 * loop's own writes (labels, link records, idempotency keys) wait.
 *
 * What that changes, and what makes up for it:
 * - An event is published before its row is committed. So that a crash can never hand out a seq
 *   twice, the log reserves seqs ahead in netnsd.db (EventLog: `log_reserve`, one small commit per
 *   RESERVE_BLOCK events); after a crash the next start goes on past the reservation, and the
 *   seqs between the last row written and it are a `gap` for whoever resumes across them.
 * - Until its row is committed, an event is served from the log's memory (it stays there).
 * - A crash loses the inventory rows of the last turns: the next start reports their objects
 *   as differences (one `resync`), as it already did for the up to 200 ms the monitor batches.
 *
 * Without a data directory (`:memory:`, tests) SyncSink writes at once on the same connection.
 */
import Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Db } from './db.js';

/** One event row: seq, time, type, namespace, body (the rest of the event as JSON). */
export type EventRow = readonly [number, string, string, string | null, string];

/** What one transaction writes. */
export interface LogBatch {
  events?: EventRow[];
  /** event_inventory changes: kind, puts (key, body as JSON), deletes (keys). */
  inventory?: Array<readonly [string, ReadonlyArray<readonly [string, string]>, readonly string[]]>;
  /** Prune the event log: remember `high` as the highest seq given, delete seq <= countCutoff and rows older than ageCutoff. */
  prune?: { readonly high: number; readonly countCutoff: number; readonly ageCutoff: string };
}

export interface LogSink {
  /** True when writes are committed later (WorkerSink): the event log then reserves its seqs. */
  readonly deferred: boolean;
  /** Queues a batch (SyncSink: writes it now; throws what SQLite throws). */
  write(batch: LogBatch): void;
  /** The highest event seq committed so far. */
  readonly written: number;
  /** Resolves once everything queued before the call is committed. */
  flush(): Promise<void>;
  /** Flushes and ends the writer; later writes are not kept. */
  close(): Promise<void>;
}

/**
 * The writer itself, for either side: a function of a connection that returns the function
 * applying one LogBatch in one transaction. Self-contained (no imports, no closures over this
 * module) because the writer thread runs its source text.
 */
function logWriter(db: Db): (b: LogBatch) => number {
  const insert = db.prepare('INSERT INTO events (seq, time, type, namespace, body) VALUES (?, ?, ?, ?, ?)');
  const put = db.prepare('INSERT INTO event_inventory (kind, key, body) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body');
  const del = db.prepare('DELETE FROM event_inventory WHERE kind = ? AND key = ?');
  const high = db.prepare('UPDATE events_high SET seq = MAX(seq, ?) WHERE id = 1');
  const pruneCount = db.prepare('DELETE FROM events WHERE seq <= ?');
  // Rows are in time order by seq: delete up to the first one young enough (all when none is).
  const pruneAge = db.prepare('DELETE FROM events WHERE seq < COALESCE((SELECT seq FROM events WHERE time >= ? ORDER BY seq LIMIT 1), ?)');
  let last = 0;
  return db.transaction((b: LogBatch) => {
    for (const r of b.events ?? []) {
      insert.run(r[0], r[1], r[2], r[3], r[4]);
      last = r[0];
    }
    for (const [kind, puts, deletes] of b.inventory ?? []) {
      for (const [k, v] of puts) put.run(kind, k, v);
      for (const k of deletes) del.run(kind, k);
    }
    if (b.prune) {
      high.run(b.prune.high);
      pruneCount.run(b.prune.countCutoff);
      pruneAge.run(b.prune.ageCutoff, b.prune.high + 1);
    }
    return last;
  });
}

/** Writes each batch at once, on the caller's connection. */
export class SyncSink implements LogSink {
  readonly deferred = false;
  written = 0;
  private readonly apply: (b: LogBatch) => number;

  constructor(db: Db) {
    this.apply = logWriter(db);
  }

  write(batch: LogBatch): void {
    const last = this.apply(batch);
    if (last > this.written) this.written = last;
  }

  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

/** How long writes gather before they go to the thread (measured: 10 ms beat one turn and 50 ms). */
const SEND_EVERY_MS = 10;

const THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
// Which thread this is (/proc/thread-self is PID/task/TID), for the loop to make it a background one.
try { parentPort.postMessage({ tid: Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()) }); } catch {}
const Database = require(workerData.sqlite);
const db = new Database(workerData.file);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = 5000');
const apply = (${logWriter.toString()})(db);
parentPort.on('message', (m) => {
  if (m === 'stop') {
    try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
    db.close();
    parentPort.close();
    return;
  }
  try {
    parentPort.postMessage({ id: m.id, written: apply(m.batch) });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
  }
});
`;

/**
 * What is written within SEND_EVERY_MS goes to the writer thread as one message (one
 * transaction there): a message per turn of the event loop cost a units run (issue 3) ~7% more.
 * If the thread fails, what it had not written is written on this thread, and so is everything
 * after (SyncSink on a connection of this thread's own).
 */
export class WorkerSink implements LogSink {
  readonly deferred = true;
  written = 0;
  private worker: Worker | undefined;
  private queued: LogBatch = {};
  private scheduled: NodeJS.Timeout | undefined;
  private nextId = 1;
  /** Sent and not yet answered, by id: the batch (written here should the thread fail) and who waits. */
  private readonly inFlight = new Map<number, { batch: LogBatch; done: Array<() => void> }>();
  private fallback: SyncSink | undefined;
  private closed = false;
  private readonly exited: Promise<void>;

  /**
   * `background`: told the writer thread's tid once it runs, to make it a background thread
   * (the addon's `background`): handing it a batch then never preempts the event loop, which a
   * thread woken from the loop's CPU otherwise does at once. Measured in the units benchmark with
   * the libuv pool's threads made so too: the loop's CPU 5% less, (c) 5% faster.
   */
  constructor(
    private readonly file: string,
    private readonly onError: (err: Error) => void,
    background?: (tid: number) => void,
  ) {
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(THREAD, { eval: true, workerData: { file, sqlite } });
    this.worker = worker;
    worker.unref();
    this.exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (m: { id: number; written?: number; error?: string; tid?: number }) => {
      if (m.tid !== undefined) {
        if (Number.isInteger(m.tid) && m.tid > 0) background?.(m.tid);
        return;
      }
      const f = this.inFlight.get(m.id);
      this.inFlight.delete(m.id);
      if (m.error !== undefined) this.onError(new Error(`writing the event log failed: ${m.error}`));
      else if (m.written !== undefined && m.written > this.written) this.written = m.written;
      for (const d of f?.done ?? []) d();
    });
    worker.on('error', (e) => this.failed(e));
    worker.on('exit', () => {
      if (!this.closed) this.failed(new Error('the event log writer thread exited'));
    });
  }

  write(batch: LogBatch): void {
    if (this.closed) return;
    if (this.fallback) {
      this.fallback.write(batch);
      this.written = this.fallback.written;
      return;
    }
    const q = this.queued;
    if (batch.events) (q.events ??= []).push(...batch.events);
    if (batch.inventory) (q.inventory ??= []).push(...batch.inventory);
    if (batch.prune) q.prune = batch.prune;
    this.scheduled ??= setTimeout(() => this.send(), SEND_EVERY_MS);
  }

  flush(): Promise<void> {
    this.send();
    const last = [...this.inFlight.values()].at(-1);
    if (!last) return Promise.resolve();
    return new Promise<void>((resolve) => last.done.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Referenced while it finishes: otherwise a loop with nothing else to do would exit first.
    this.worker?.ref();
    await this.flush();
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    if (!w) return;
    w.postMessage('stop');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    await w.terminate();
  }

  private send(): void {
    if (this.scheduled) clearTimeout(this.scheduled);
    this.scheduled = undefined;
    const batch = this.queued;
    if (!batch.events && !batch.inventory && !batch.prune) return;
    this.queued = {};
    if (this.fallback || !this.worker) return this.write(batch);
    const id = this.nextId++;
    this.inFlight.set(id, { batch, done: [] });
    this.worker.postMessage({ id, batch });
  }

  /** The thread is gone: write here what it had not answered, and from now on everything. */
  private failed(err: Error): void {
    if (this.fallback || this.closed) return;
    this.onError(err);
    this.worker = undefined;
    try {
      const db = new Database(this.file);
      db.pragma('busy_timeout = 5000');
      this.fallback = new SyncSink(db);
    } catch (e) {
      // Nowhere to write (the data directory is gone): what is queued is lost, and so is the rest.
      this.onError(e as Error);
      this.closed = true;
    }
    for (const [id, f] of [...this.inFlight]) {
      this.inFlight.delete(id);
      try {
        this.fallback?.write(f.batch);
      } catch (e) {
        this.onError(e as Error);
      }
      for (const d of f.done) d();
    }
    if (!this.fallback) return;
    this.written = Math.max(this.written, this.fallback.written);
    this.send();
  }
}

/** The log's schema (the same tables as netnsd.db's migrations made for them). */
const LOG_SCHEMA = `
  CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY,
    time      TEXT NOT NULL,
    type      TEXT NOT NULL,
    namespace TEXT,
    body      TEXT NOT NULL
  );
  CREATE TABLE IF NOT EXISTS events_high (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
  INSERT OR IGNORE INTO events_high (id, seq) VALUES (1, 0);
  CREATE TABLE IF NOT EXISTS event_inventory (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, key)
  );`;

export interface LogStore {
  /** The connection the log is read with (never written through while a WorkerSink runs). */
  readonly db: Db;
  readonly sink: LogSink;
  /** Flushes, ends the writer and closes the read connection (the main db is the caller's). */
  close(): Promise<void>;
}

/**
 * The log's store for netnsd.db `main`: in memory, the same connection written at once; else
 * `netnsd-log.db` beside it, with a writer thread. What an older netnsd left in netnsd.db's own
 * tables moves over first (copied, then deleted there; a repeat after a crash in between copies
 * nothing twice).
 */
export function openLogStore(main: Db, onError: (err: Error) => void, background?: (tid: number) => void): LogStore {
  if (main.memory) return { db: main, sink: new SyncSink(main), close: async () => {} };
  const file = join(main.name.slice(0, main.name.lastIndexOf('/')) || '.', 'netnsd-log.db');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.exec(LOG_SCHEMA);
  moveOver(main, file);
  const sink = new WorkerSink(file, onError, background);
  return {
    db,
    sink,
    async close() {
      await sink.close();
      db.close();
    },
  };
}

/** Moves the rows of netnsd.db's events, events_high and event_inventory into the log file. */
function moveOver(main: Db, file: string): void {
  const has = (sql: string) => main.prepare(sql).get() !== undefined;
  if (!has('SELECT 1 FROM events LIMIT 1') && !has('SELECT 1 FROM event_inventory LIMIT 1') && !has('SELECT 1 FROM events_high WHERE seq > 0')) return;
  main.prepare('ATTACH DATABASE ? AS log').run(file);
  try {
    main.transaction(() => {
      main.exec(`
        INSERT OR IGNORE INTO log.events (seq, time, type, namespace, body) SELECT seq, time, type, namespace, body FROM main.events;
        UPDATE log.events_high SET seq = MAX(seq, (SELECT seq FROM main.events_high WHERE id = 1)) WHERE id = 1;
        INSERT OR IGNORE INTO log.event_inventory (kind, key, body) SELECT kind, key, body FROM main.event_inventory;
        DELETE FROM main.events;
        UPDATE main.events_high SET seq = 0;
        DELETE FROM main.event_inventory;`);
    })();
  } finally {
    main.exec('DETACH DATABASE log');
  }
}
