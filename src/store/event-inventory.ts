/** What the event sources last saw, persisted: kind (`namespace`, ...) -> key -> the object as JSON. */
import type { Db } from './db.js';

export class EventInventory {
  private readonly allStmt;
  private readonly putStmt;
  private readonly delStmt;
  private readonly applyTx: (kind: string, puts: ReadonlyArray<readonly [string, unknown]>, deletes: readonly string[]) => void;

  constructor(db: Db) {
    this.allStmt = db.prepare<[string], { key: string; body: string }>('SELECT key, body FROM event_inventory WHERE kind = ?');
    this.putStmt = db.prepare('INSERT INTO event_inventory (kind, key, body) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body');
    this.delStmt = db.prepare('DELETE FROM event_inventory WHERE kind = ? AND key = ?');
    this.applyTx = db.transaction((kind: string, puts: ReadonlyArray<readonly [string, unknown]>, deletes: readonly string[]) => {
      for (const [k, v] of puts) this.putStmt.run(kind, k, JSON.stringify(v));
      for (const k of deletes) this.delStmt.run(kind, k);
    });
  }

  all<T>(kind: string): Map<string, T> {
    return new Map(this.allStmt.all(kind).map((r) => [r.key, JSON.parse(r.body) as T]));
  }

  /** Applies puts and deletes in one transaction. */
  apply(kind: string, puts: ReadonlyArray<readonly [string, unknown]>, deletes: readonly string[]): void {
    this.applyTx(kind, puts, deletes);
  }
}
