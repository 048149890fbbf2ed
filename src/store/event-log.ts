/**
 * The persisted event log: every sequenced event, by seq, within a retention of count and age.
 * Seqs only grow, across restarts too: the log gives each the next one itself, and before a
 * prune deletes rows it writes the highest seq given to `events_high`, so that the next start
 * goes on from there even when every row was pruned (an AUTOINCREMENT column did the same at the
 * cost of a second page written per commit). The newest events
 * are also kept in memory (up to `memoryCount`), so a subscriber resuming from a recent seq is
 * served without touching the disk.
 */
import type { Db } from './db.js';

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
}

interface Row {
  seq: number;
  time: string;
  type: string;
  namespace: string | null;
  body: string;
}

const PRUNE_EVERY = 500;

export class EventLog {
  private readonly insertStmt;
  private readonly pageStmt;
  private readonly pruneCountStmt;
  private readonly pruneAgeStmt;
  private readonly firstStmt;
  private readonly highStmt;
  private readonly pruneAll: (cutoff: string) => void;
  private readonly recent: LoggedEvent[] = [];
  private readonly memoryCount: number;
  private readonly now: () => number;
  private appendedSincePrune = 0;
  private last: number;
  /** Inserts events in one transaction (made once: making one per append cost ~15 µs). */
  private readonly insertAll: (events: readonly NewEvent[], time: string) => LoggedEvent[];

  constructor(
    db: Db,
    private readonly o: EventLogOptions,
  ) {
    this.memoryCount = o.memoryCount ?? Math.min(o.retentionCount, 10000);
    this.now = o.now ?? Date.now;
    this.insertStmt = db.prepare('INSERT INTO events (seq, time, type, namespace, body) VALUES (?, ?, ?, ?, ?)');
    this.pageStmt = db.prepare<[number, number, number], Row>('SELECT seq, time, type, namespace, body FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?');
    this.pruneCountStmt = db.prepare('DELETE FROM events WHERE seq <= ?');
    // Rows are in time order by seq: delete up to the first one young enough (all when none is).
    this.pruneAgeStmt = db.prepare('DELETE FROM events WHERE seq < COALESCE((SELECT seq FROM events WHERE time >= ? ORDER BY seq LIMIT 1), ?)');
    this.firstStmt = db.prepare<[], { seq: number | null }>('SELECT MIN(seq) AS seq FROM events');
    this.highStmt = db.prepare('UPDATE events_high SET seq = MAX(seq, ?) WHERE id = 1');
    const lastStmt = db.prepare<[], { seq: number | null }>('SELECT MAX(m) AS seq FROM (SELECT MAX(seq) AS m FROM events UNION ALL SELECT seq FROM events_high)');
    this.last = lastStmt.get()?.seq ?? 0;
    this.insertAll = db.transaction((events: readonly NewEvent[], time: string) => {
      const out: LoggedEvent[] = [];
      let seq = this.last;
      for (const e of events) {
        const { type, namespace, ...rest } = e;
        this.insertStmt.run(++seq, time, type, namespace, JSON.stringify(rest));
        out.push({ seq, time, ...e });
      }
      return out;
    });
    this.pruneAll = db.transaction((cutoff: string) => {
      this.highStmt.run(this.last);
      this.pruneCountStmt.run(this.last - this.o.retentionCount);
      this.pruneAgeStmt.run(cutoff, this.last + 1);
    });
    this.prune();
    // Warm the memory copy with the newest retained events.
    const from = Math.max(0, this.last - this.memoryCount);
    for (const e of this.readDb(from, this.last, this.memoryCount)) this.recent.push(e);
  }

  /** The highest seq ever given (0 before the first event): the seq a list "reflects". */
  get lastSeq(): number {
    return this.last;
  }

  /** The oldest retained seq, or lastSeq + 1 when nothing is retained. */
  get firstSeq(): number {
    return this.firstStmt.get()?.seq ?? this.last + 1;
  }

  /** Appends events in one transaction, assigning seq and time; returns them as logged. */
  append(events: readonly NewEvent[]): LoggedEvent[] {
    if (events.length === 0) return [];
    const out = this.insertAll(events, new Date(this.now()).toISOString());
    this.last = out[out.length - 1]!.seq;
    this.recent.push(...out);
    if (this.recent.length > this.memoryCount) this.recent.splice(0, this.recent.length - this.memoryCount);
    this.appendedSincePrune += out.length;
    if (this.appendedSincePrune >= PRUNE_EVERY) this.prune();
    return out;
  }

  /** Retained events with afterSeq < seq <= untilSeq, oldest first, at most `limit`. */
  read(afterSeq: number, untilSeq: number, limit: number): LoggedEvent[] {
    const first = this.recent[0];
    if (first !== undefined && afterSeq + 1 >= first.seq) {
      let lo = 0;
      let hi = this.recent.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.recent[mid]!.seq <= afterSeq) lo = mid + 1;
        else hi = mid;
      }
      const out: LoggedEvent[] = [];
      for (let i = lo; i < this.recent.length && out.length < limit && this.recent[i]!.seq <= untilSeq; i++) out.push(this.recent[i]!);
      return out;
    }
    return this.readDb(afterSeq, untilSeq, limit);
  }

  /** Drops what is beyond the retention (count and age). */
  prune(): void {
    this.appendedSincePrune = 0;
    this.pruneAll(new Date(this.now() - this.o.retentionAgeMs).toISOString());
    const first = this.firstSeq;
    const drop = this.recent.findIndex((e) => e.seq >= first);
    this.recent.splice(0, drop < 0 ? this.recent.length : drop);
  }

  private readDb(afterSeq: number, untilSeq: number, limit: number): LoggedEvent[] {
    return this.pageStmt.all(afterSeq, untilSeq, limit).map((r) => {
      const body = JSON.parse(r.body) as Record<string, unknown>;
      return { seq: r.seq, time: r.time, type: r.type, namespace: r.namespace, ...body };
    });
  }
}
