/**
 * The persisted event log: every sequenced event, by seq, within a retention of count and age.
 * Seqs only grow, across restarts too: the log gives each the next one itself, and before a
 * prune deletes rows it writes the highest seq given to `events_high`, so that the next start
 * goes on from there even when every row was pruned (an AUTOINCREMENT column did the same at the
 * cost of a second page written per commit). The newest events
 * are also kept in memory (up to `memoryCount`), so a subscriber resuming from a recent seq is
 * served without touching the disk.
 *
 * Rows go through a LogSink (log-sink.ts). With a deferred one (a writer thread) an event is
 * handed out before its row is committed: it stays in memory until it is, and seqs are reserved
 * ahead (`reserve`, RESERVE_BLOCK at a time, committed before any of them is given), so that
 * after a crash the next start goes on past every seq that may have been seen; those without a
 * row are a gap to whoever resumes across them (a replay reports missing seqs as a gap).
 */
import type { Db } from './db.js';
import { SyncSink, type EventRow, type LogSink } from './log-sink.js';

/** An event as the log keeps it: the wire form without `seq` and `time`, which the log assigns. */
export interface NewEvent {
  readonly type: string;
  readonly namespace: string | null;
  readonly [key: string]: unknown;
}

export interface LoggedEvent extends NewEvent {
  readonly seq: number;
  readonly time: string;
}

export interface EventLogOptions {
  readonly retentionCount: number;
  readonly retentionAgeMs: number;
  /** Newest events kept in memory too. Default min(retentionCount, 10000). */
  readonly memoryCount?: number;
  readonly now?: () => number;
  /** Where rows are written (default: at once, on `db`). */
  readonly sink?: LogSink;
  /** The seq reservation, needed with a deferred sink. */
  readonly reserve?: SeqReserve;
}

/** A seq every handed-out seq is at most, kept where it is committed at once (netnsd.db). */
export interface SeqReserve {
  get(): number;
  set(seq: number): void;
}

/** The reservation of a log in netnsd.db's `log_reserve`. */
export function dbReserve(db: Db, name: string): SeqReserve {
  const get = db.prepare<[string], { seq: number }>('SELECT seq FROM log_reserve WHERE name = ?');
  const set = db.prepare('INSERT INTO log_reserve (name, seq) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq');
  return { get: () => get.get(name)?.seq ?? 0, set: (seq) => void set.run(name, seq) };
}

interface Row {
  seq: number;
  time: string;
  type: string;
  namespace: string | null;
  body: string;
}

const PRUNE_EVERY = 500;
/**
 * Seqs reserved at a time with a deferred sink: one commit to netnsd.db per this many events. A
 * crash skips at most this many seqs, which the retention by count then counts as events.
 */
export const RESERVE_BLOCK = 1000;

export class EventLog {
  private readonly pageStmt;
  private readonly firstStmt;
  private readonly youngStmt;
  /** Seqs below this are pruned (with a deferred sink, their rows may still be there a moment). */
  private floor = 0;
  private readonly recent = new Recent();
  private readonly memoryCount: number;
  private readonly now: () => number;
  private readonly sink: LogSink;
  private appendedSincePrune = 0;
  private last: number;
  /** With a deferred sink: every seq up to this one may be handed out (committed in `reserve`). */
  private reserved = 0;

  constructor(
    db: Db,
    private readonly o: EventLogOptions,
  ) {
    this.memoryCount = o.memoryCount ?? Math.min(o.retentionCount, 10000);
    this.now = o.now ?? Date.now;
    this.sink = o.sink ?? new SyncSink(db);
    if (this.sink.deferred && !o.reserve) throw new Error('an event log written later needs a seq reservation');
    this.pageStmt = db.prepare<[number, number, number], Row>('SELECT seq, time, type, namespace, body FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?');
    this.firstStmt = db.prepare<[], { seq: number | null }>('SELECT MIN(seq) AS seq FROM events');
    // Walks from the oldest row (seq order is time order): as far as there is to prune.
    this.youngStmt = db.prepare<[string], { seq: number }>('SELECT seq FROM events WHERE time >= ? ORDER BY seq LIMIT 1');
    const lastStmt = db.prepare<[], { seq: number | null }>('SELECT MAX(m) AS seq FROM (SELECT MAX(seq) AS m FROM events UNION ALL SELECT seq FROM events_high)');
    const stored = lastStmt.get()?.seq ?? 0;
    // After a crash the reservation is ahead of the rows: go on past it (the seqs between are a gap).
    this.last = Math.max(stored, this.sink.deferred ? o.reserve!.get() : 0);
    this.reserved = this.last;
    // Warm the memory copy with the newest stored events, then prune both.
    const from = Math.max(0, stored - this.memoryCount);
    this.recent.push(this.readDb(from, stored, this.memoryCount));
    this.prune();
  }

  /** The highest seq ever given (0 before the first event): the seq a list "reflects". */
  get lastSeq(): number {
    return this.last;
  }

  /** The oldest retained seq, or lastSeq + 1 when nothing is retained. */
  get firstSeq(): number {
    const stored = this.firstStmt.get()?.seq ?? null;
    // Rows not committed yet are in memory; rows pruned from memory may still be stored a moment.
    const held = this.recent.at(0)?.seq;
    const first = stored === null ? (held ?? this.last + 1) : held === undefined ? stored : Math.min(stored, held);
    return Math.max(first, this.floor);
  }

  /** Appends events (one transaction), assigning seq and time; returns them as logged. */
  append(events: readonly NewEvent[]): LoggedEvent[] {
    if (events.length === 0) return [];
    const time = new Date(this.now()).toISOString();
    if (this.sink.deferred && this.last + events.length > this.reserved) {
      this.reserved = this.last + events.length + RESERVE_BLOCK;
      this.o.reserve!.set(this.reserved);
    }
    const out: LoggedEvent[] = [];
    const rows: EventRow[] = [];
    let seq = this.last;
    for (const e of events) {
      const { type, namespace, ...rest } = e;
      rows.push([++seq, time, type, namespace, JSON.stringify(rest)]);
      out.push({ seq, time, ...e });
    }
    this.sink.write({ events: rows });
    this.last = seq;
    this.recent.push(out);
    this.trim();
    this.appendedSincePrune += out.length;
    if (this.appendedSincePrune >= PRUNE_EVERY) this.prune();
    return out;
  }

  /**
   * Keeps the newest memoryCount events in memory, and every event whose row is not committed
   * yet (it can be read from nowhere else).
   */
  private trim(): void {
    const over = this.recent.length - this.memoryCount;
    if (over <= 0) return;
    const written = this.sink.written;
    let n = 0;
    while (n < over && this.recent.at(n)!.seq <= written) n++;
    this.recent.drop(n);
  }

  /** Every row written (before a clean stop); the reservation is then exactly the last seq. */
  async close(): Promise<void> {
    await this.sink.flush();
    if (this.sink.deferred && this.reserved !== this.last) {
      this.reserved = this.last;
      this.o.reserve!.set(this.last);
    }
  }

  /** Retained events with afterSeq < seq <= untilSeq, oldest first, at most `limit`. */
  read(afterSeq: number, untilSeq: number, limit: number): LoggedEvent[] {
    if (afterSeq < this.floor - 1) afterSeq = this.floor - 1;
    const first = this.recent.at(0);
    if (first !== undefined && afterSeq + 1 >= first.seq) {
      let lo = 0;
      let hi = this.recent.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.recent.at(mid)!.seq <= afterSeq) lo = mid + 1;
        else hi = mid;
      }
      const out: LoggedEvent[] = [];
      for (let i = lo; i < this.recent.length && out.length < limit && this.recent.at(i)!.seq <= untilSeq; i++) out.push(this.recent.at(i)!);
      return out;
    }
    return this.readDb(afterSeq, untilSeq, limit);
  }

  /** Drops what is beyond the retention (count and age), here and (through the sink) in the store. */
  prune(): void {
    this.appendedSincePrune = 0;
    const countCutoff = this.last - this.o.retentionCount;
    const ageCutoff = new Date(this.now() - this.o.retentionAgeMs).toISOString();
    // The oldest event young enough: stored, else (not written yet) in memory, else none.
    const young = this.youngStmt.get(ageCutoff)?.seq ?? this.recent.find((e) => e.time >= ageCutoff)?.seq ?? this.last + 1;
    this.floor = Math.max(this.floor, countCutoff + 1, young);
    this.sink.write({ prune: { high: this.last, countCutoff, ageCutoff } });
    let drop = 0;
    while (drop < this.recent.length && this.recent.at(drop)!.seq < this.floor) drop++;
    this.recent.drop(drop);
  }

  private readDb(afterSeq: number, untilSeq: number, limit: number): LoggedEvent[] {
    return this.pageStmt.all(afterSeq, untilSeq, limit).map((r) => {
      const body = JSON.parse(r.body) as Record<string, unknown>;
      return { seq: r.seq, time: r.time, type: r.type, namespace: r.namespace, ...body };
    });
  }
}

/**
 * The events kept in memory, oldest first: an array read from `head` on, so that dropping the
 * oldest (once per append when full) costs nothing; compacted when half of it is dropped.
 */
class Recent {
  private items: LoggedEvent[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  at(i: number): LoggedEvent | undefined {
    return this.items[this.head + i];
  }

  /** The oldest one that `match`es. */
  find(match: (e: LoggedEvent) => boolean): LoggedEvent | undefined {
    for (let i = this.head; i < this.items.length; i++) if (match(this.items[i]!)) return this.items[i];
    return undefined;
  }

  push(events: readonly LoggedEvent[]): void {
    for (const e of events) this.items.push(e);
  }

  drop(n: number): void {
    if (n <= 0) return;
    this.head += n;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
