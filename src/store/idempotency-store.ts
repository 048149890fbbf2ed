import type { Db } from './db.js';

/** A stored response, replayed for a retry with the same key and request. */
export interface StoredResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export type Claim =
  | { readonly kind: 'new' }
  | { readonly kind: 'replay'; readonly response: StoredResponse }
  | { readonly kind: 'mismatch' }
  | { readonly kind: 'in-progress' };

interface Row {
  fingerprint: string;
  state: 'pending' | 'done';
  status: number | null;
  headers: string | null;
  body: string | null;
  created_at: number;
}

/**
 * Idempotency keys, per actor: a key is claimed before the change runs (so a concurrent retry
 * sees it in progress) and completed with the response afterwards. Keys live `ttlMs`.
 */
export class IdempotencyStore {
  private readonly getStmt;
  private readonly claimStmt;
  private readonly completeStmt;
  private readonly releaseStmt;
  private readonly expireStmt;
  private readonly releasePendingStmt;
  private readonly claimTx;

  constructor(
    db: Db,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.getStmt = db.prepare<[string, string], Row>('SELECT * FROM idempotency WHERE actor = ? AND key = ?');
    this.claimStmt = db.prepare(
      `INSERT OR REPLACE INTO idempotency (actor, key, fingerprint, state, created_at) VALUES (?, ?, ?, 'pending', ?)`,
    );
    this.completeStmt = db.prepare(
      `UPDATE idempotency SET state = 'done', status = ?, headers = ?, body = ? WHERE actor = ? AND key = ?`,
    );
    this.releaseStmt = db.prepare('DELETE FROM idempotency WHERE actor = ? AND key = ?');
    this.expireStmt = db.prepare('DELETE FROM idempotency WHERE created_at < ?');
    this.releasePendingStmt = db.prepare("DELETE FROM idempotency WHERE state = 'pending'");
    this.claimTx = db.transaction((actor: string, key: string, fingerprint: string): Claim => {
      const row = this.getStmt.get(actor, key);
      if (row && row.created_at >= this.now() - this.ttlMs) {
        if (row.fingerprint !== fingerprint) return { kind: 'mismatch' };
        if (row.state === 'pending') return { kind: 'in-progress' };
        return {
          kind: 'replay',
          response: { status: row.status ?? 200, headers: JSON.parse(row.headers ?? '{}') as Record<string, string>, body: row.body ?? '' },
        };
      }
      this.claimStmt.run(actor, key, fingerprint, this.now());
      return { kind: 'new' };
    });
  }

  /** Looks the key up and, when it is new (or expired), claims it for this request. */
  claim(actor: string, key: string, fingerprint: string): Claim {
    return this.claimTx(actor, key, fingerprint);
  }

  complete(actor: string, key: string, res: StoredResponse): void {
    this.completeStmt.run(res.status, JSON.stringify(res.headers), res.body, actor, key);
  }

  /** Forgets a claim whose request failed in a way worth retrying (5xx). */
  release(actor: string, key: string): void {
    this.releaseStmt.run(actor, key);
  }

  /**
   * Forgets claims left pending by a daemon that stopped mid-request (call at start, when nothing
   * can be in progress), so their retries run instead of answering IN_PROGRESS for a day.
   */
  releaseAllPending(): number {
    return this.releasePendingStmt.run().changes;
  }

  /** Removes expired keys; returns how many. */
  expire(): number {
    return this.expireStmt.run(this.now() - this.ttlMs).changes;
  }
}
