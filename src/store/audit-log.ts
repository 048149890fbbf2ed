import type { Db } from './db.js';
import type { OpRecord } from '../executor/executor.js';
import type { AuditEntry } from './audit-schema.js';

export type { AuditEntry };

/** What a caller appends: the store assigns `seq`. */
export type NewAuditEntry = Omit<AuditEntry, 'seq' | 'ops'> & { readonly ops: readonly OpRecord[] };

interface Row {
  seq: number;
  time: string;
  request_id: string;
  actor: string;
  action: string;
  method: string;
  path: string;
  namespace: string | null;
  status: number;
  code: string | null;
  outcome: AuditEntry['outcome'];
  ops: string;
  duration_ms: number;
}

/** Told when an appended entry is written: its seq, or why it could not be. */
export type AuditWritten = (seq: number | undefined, err?: Error) => void;

/**
 * The audit trail in the store; the oldest entries beyond `retention` are pruned.
 *
 * Entries are written in batches: `append` queues one, and the entries of up to WRITE_EVERY_MS
 * go to SQLite together in one transaction, each told its seq then. One commit per change
 * request was a WAL write of its own (~45 µs each); one per turn of the event loop still cost the
 * loop ~20 µs a commit, 600 of them while 200 units were made with 16 clients. Reading (`page`)
 * and `flush` (at close) write what is queued first, so a read sees every entry appended before
 * it. The price: the entries of changes answered in the last WRITE_EVERY_MS before the process is
 * killed (not stopped: stopping flushes) are lost; their answers were on their way.
 */
/** How long an appended entry may wait for the others of its batch (as the event log's writer waits: log-sink.ts). */
export const WRITE_EVERY_MS = 10;

export class AuditLog {
  private readonly insertStmt;
  private readonly pageStmt;
  private readonly pruneStmt;
  private readonly insertAll: (batch: readonly NewAuditEntry[]) => number[];
  private queued: Array<{ readonly e: NewAuditEntry; readonly then: AuditWritten | undefined }> = [];
  private scheduled: NodeJS.Timeout | undefined;
  private inserted = 0;

  constructor(
    db: Db,
    private readonly retention: number,
  ) {
    this.insertStmt = db.prepare(
      `INSERT INTO audit (time, request_id, actor, action, method, path, namespace, status, code, outcome, ops, duration_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.pageStmt = db.prepare<[number, number], Row>('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?');
    this.pruneStmt = db.prepare('DELETE FROM audit WHERE seq <= (SELECT MAX(seq) FROM audit) - ?');
    this.insertAll = db.transaction((batch: readonly NewAuditEntry[]) => {
      const seqs = batch.map((e) => Number(this.insertStmt.run(e.time, e.requestId, e.actor, e.action, e.method, e.path, e.namespace, e.status, e.code, e.outcome, JSON.stringify(e.ops), e.durationMs).lastInsertRowid));
      // Prune now and then rather than on every insert.
      const before = this.inserted;
      this.inserted += batch.length;
      if (Math.floor(this.inserted / 100) > Math.floor(before / 100)) this.pruneStmt.run(this.retention);
      return seqs;
    });
  }

  /** Queues an entry; `then` is told its seq once it is written (see the class comment). */
  append(e: NewAuditEntry, then?: AuditWritten): void {
    this.queued.push({ e, then });
    this.scheduled ??= setTimeout(() => this.flush(), WRITE_EVERY_MS);
  }

  /** Writes every queued entry now. */
  flush(): void {
    if (this.scheduled) clearTimeout(this.scheduled);
    this.scheduled = undefined;
    const batch = this.queued;
    if (batch.length === 0) return;
    this.queued = [];
    let seqs: Array<number | Error>;
    try {
      seqs = this.insertAll(batch.map((q) => q.e));
    } catch {
      // One bad entry must not take the others with it: each on its own then.
      seqs = batch.map((q) => {
        try {
          return this.insertAll([q.e])[0]!;
        } catch (err) {
          return err as Error;
        }
      });
    }
    batch.forEach((q, i) => {
      const r = seqs[i]!;
      try {
        if (typeof r === 'number') q.then?.(r);
        else q.then?.(undefined, r);
      } catch {
        // a listener's own failure is not the store's, nor the other entries'
      }
    });
  }

  /** Entries after `afterSeq`, oldest first; one more than asked tells whether there is more. */
  page(afterSeq: number, limit: number): { entries: AuditEntry[]; more: boolean } {
    this.flush();
    const rows = this.pageStmt.all(afterSeq, limit + 1);
    const more = rows.length > limit;
    return {
      more,
      entries: rows.slice(0, limit).map((r) => ({
        seq: r.seq,
        time: r.time,
        requestId: r.request_id,
        actor: r.actor,
        action: r.action,
        method: r.method,
        path: r.path,
        namespace: r.namespace,
        status: r.status,
        code: r.code,
        outcome: r.outcome,
        ops: JSON.parse(r.ops) as AuditEntry['ops'],
        durationMs: r.duration_ms,
      })),
    };
  }
}
