import type { Db } from './db.js';

/** Which way the shaping applies: `egress` (the link's root qdisc) or `ingress` (through an ifb). */
export type QdiscDirection = 'egress' | 'ingress';

/**
 * What netnsd set on a link: the spec as the API took it, keyed like LinkRecords by the
 * namespace's key and the link's ifindex (stable across renames), plus the direction.
 */
export interface QdiscRecord {
  readonly nsKey: string;
  readonly ifindex: number;
  readonly direction: QdiscDirection;
  /** The kind of the qdisc netnsd put at the root (of the link, or of the ifb for ingress). */
  readonly rootKind: string;
  readonly spec: unknown;
  /** ingress: the ifb netnsd made for it. */
  readonly ifb: string | null;
  readonly setAt: string;
}

interface Row {
  ns_key: string;
  ifindex: number;
  direction: string;
  root_kind: string;
  spec: string;
  ifb: string | null;
  set_at: string;
}

const fromRow = (r: Row): QdiscRecord => ({
  nsKey: r.ns_key, ifindex: r.ifindex, direction: r.direction as QdiscDirection, rootKind: r.root_kind, spec: JSON.parse(r.spec) as unknown, ifb: r.ifb, setAt: r.set_at,
});

export class QdiscRecords {
  private readonly getStmt;
  private readonly putStmt;
  private readonly delStmt;
  private readonly keysStmt;
  private readonly delNsStmt;

  constructor(db: Db) {
    this.getStmt = db.prepare<[string, number, string], Row>('SELECT * FROM qdiscs WHERE ns_key = ? AND ifindex = ? AND direction = ?');
    this.putStmt = db.prepare(
      `INSERT INTO qdiscs (ns_key, ifindex, direction, root_kind, spec, ifb, set_at) VALUES (@nsKey, @ifindex, @direction, @rootKind, @spec, @ifb, @setAt)
       ON CONFLICT (ns_key, ifindex, direction) DO UPDATE SET root_kind = excluded.root_kind, spec = excluded.spec, ifb = excluded.ifb, set_at = excluded.set_at`,
    );
    this.delStmt = db.prepare('DELETE FROM qdiscs WHERE ns_key = ? AND ifindex = ? AND direction = ?');
    this.keysStmt = db.prepare<[], { ns_key: string }>('SELECT DISTINCT ns_key FROM qdiscs');
    this.delNsStmt = db.prepare('DELETE FROM qdiscs WHERE ns_key = ?');
  }

  get(nsKey: string, ifindex: number, direction: QdiscDirection): QdiscRecord | undefined {
    const r = this.getStmt.get(nsKey, ifindex, direction);
    return r ? fromRow(r) : undefined;
  }

  put(rec: QdiscRecord): void {
    this.putStmt.run({ ...rec, spec: JSON.stringify(rec.spec) });
  }

  delete(nsKey: string, ifindex: number, direction: QdiscDirection): void {
    this.delStmt.run(nsKey, ifindex, direction);
  }

  /** Drops the records of namespaces whose key is not in `live` (their qdiscs went with them). */
  pruneNamespaces(live: ReadonlySet<string>): string[] {
    const gone = this.keysStmt.all().map((r) => r.ns_key).filter((k) => !live.has(k));
    for (const k of gone) this.delNsStmt.run(k);
    return gone;
  }
}
