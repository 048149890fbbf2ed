/** What the event sources last saw, persisted: kind (`namespace`, ...) -> key -> the object as JSON. */
import type { Db } from './db.js';
import { SyncSink, type LogSink } from './log-sink.js';

export class EventInventory {
  private readonly allStmt;
  private readonly sink: LogSink;

  /** `db`: where it is read; `sink`: where it is written (default: at once, on `db`). */
  constructor(db: Db, sink?: LogSink) {
    this.allStmt = db.prepare<[string], { key: string; body: string }>('SELECT key, body FROM event_inventory WHERE kind = ?');
    this.sink = sink ?? new SyncSink(db);
  }

  /** Everything of one kind (read at start: what a deferred sink has not written yet is not in it). */
  all<T>(kind: string): Map<string, T> {
    return new Map(this.allStmt.all(kind).map((r) => [r.key, JSON.parse(r.body) as T]));
  }

  /** Applies puts and deletes in one transaction (with a deferred sink: later, in order). */
  apply(kind: string, puts: ReadonlyArray<readonly [string, unknown]>, deletes: readonly string[]): void {
    this.sink.write({ inventory: [[kind, puts.map(([k, v]) => [k, JSON.stringify(v)] as const), deletes]] });
  }
}
