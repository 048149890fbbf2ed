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

/** The audit trail in the store; the oldest entries beyond `retention` are pruned. */
export class AuditLog {
  private readonly insertStmt;
  private readonly pageStmt;
  private readonly pruneStmt;
  private inserted = 0;

  constructor(
    db: Db,
    private readonly retention: number,
  ) {
    this.insertStmt = db.prepare(
      `INSERT INTO audit (time, request_id, actor, action, method, path, namespace, status, code, outcome, ops, duration_ms)
       VALUES (@time, @requestId, @actor, @action, @method, @path, @namespace, @status, @code, @outcome, @ops, @durationMs)`,
    );
    this.pageStmt = db.prepare<[number, number], Row>('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?');
    this.pruneStmt = db.prepare('DELETE FROM audit WHERE seq <= (SELECT MAX(seq) FROM audit) - ?');
  }

  append(e: NewAuditEntry): number {
    const r = this.insertStmt.run({ ...e, ops: JSON.stringify(e.ops) });
    // Prune now and then rather than on every insert.
    if (++this.inserted % 100 === 0) this.pruneStmt.run(this.retention);
    return Number(r.lastInsertRowid);
  }

  /** Entries after `afterSeq`, oldest first; one more than asked tells whether there is more. */
  page(afterSeq: number, limit: number): { entries: AuditEntry[]; more: boolean } {
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
