import { readFileSync } from 'node:fs';
import type { Db } from './db.js';
import type { Labels } from '../labels.js';

/**
 * What netnsd knows of a link that the kernel does not: ownership and labels. Keyed by the
 * namespace's key (see hostNamespaceKey; a named namespace's id otherwise) and the ifindex, which
 * a link keeps when renamed; `kind` must match too, so a reused ifindex does not inherit a record.
 */
export interface LinkRecord {
  readonly nsKey: string;
  readonly ifindex: number;
  readonly kind: string;
  readonly managed: boolean;
  readonly createdAt: string | null;
  readonly labels: Labels;
}

interface Row {
  ns_key: string;
  ifindex: number;
  kind: string;
  managed: number;
  created_at: string | null;
  labels: string;
}

function fromRow(r: Row): LinkRecord {
  return { nsKey: r.ns_key, ifindex: r.ifindex, kind: r.kind, managed: r.managed === 1, createdAt: r.created_at, labels: JSON.parse(r.labels) as Labels };
}

/**
 * The key of the root namespace's links: its ifindexes start again at every boot, so the key is
 * the boot id (the nsfs inode of the root namespace is the same number at every boot).
 */
export function hostNamespaceKey(): string {
  try {
    return `host-${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}`;
  } catch {
    return 'host';
  }
}

/** Entries the read cache holds at most before it is dropped (see LinkRecords.cache). */
const CACHE_MAX = 50_000;

export class LinkRecords {
  private readonly getStmt;
  private readonly nsStmt;
  private readonly putStmt;
  private readonly delStmt;
  private readonly keysStmt;
  private readonly delNsStmt;
  private readonly putMany: (recs: readonly LinkRecord[]) => void;
  private readonly touched = new Map<string, Set<number>>();
  /**
   * What get() read or put() wrote, by namespace key then ifindex (null: no row). This class is
   * the table's only writer, so the copy stays true; views read a link's record for every event
   * and list (~2200 reads for 200 benchmark units, each a SQLite query before). Dropped whole
   * when it holds CACHE_MAX entries (namespaces come and go; it is only a copy).
   */
  private readonly cache = new Map<string, Map<number, LinkRecord | null>>();
  private cached = 0;

  constructor(private readonly db: Db) {
    this.getStmt = db.prepare<[string, number], Row>('SELECT * FROM links WHERE ns_key = ? AND ifindex = ?');
    this.nsStmt = db.prepare<[string], Row>('SELECT * FROM links WHERE ns_key = ?');
    this.putStmt = db.prepare(
      `INSERT INTO links (ns_key, ifindex, kind, managed, created_at, labels) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (ns_key, ifindex) DO UPDATE SET kind = excluded.kind, managed = excluded.managed,
         created_at = excluded.created_at, labels = excluded.labels`,
    );
    this.delStmt = db.prepare('DELETE FROM links WHERE ns_key = ? AND ifindex = ?');
    this.keysStmt = db.prepare<[], { ns_key: string }>('SELECT DISTINCT ns_key FROM links');
    this.delNsStmt = db.prepare('DELETE FROM links WHERE ns_key = ?');
    this.putMany = db.transaction((recs: readonly LinkRecord[]) => recs.forEach((r) => this.write(r)));
  }

  /** The record of this link, when its kind matches. */
  get(nsKey: string, ifindex: number, kind: string): LinkRecord | undefined {
    let rec = this.cache.get(nsKey)?.get(ifindex);
    if (rec === undefined) {
      const r = this.getStmt.get(nsKey, ifindex);
      rec = r ? fromRow(r) : null;
      this.remember(nsKey, ifindex, rec);
    }
    // A copy: the cached record is never handed out to be changed.
    return rec && rec.kind === kind ? { ...rec, labels: { ...rec.labels } } : undefined;
  }

  private remember(nsKey: string, ifindex: number, rec: LinkRecord | null): void {
    if (this.cached >= CACHE_MAX) {
      this.cache.clear();
      this.cached = 0;
    }
    let ns = this.cache.get(nsKey);
    if (!ns) this.cache.set(nsKey, (ns = new Map()));
    if (!ns.has(ifindex)) this.cached++;
    ns.set(ifindex, rec);
  }

  /** Every record of a namespace, by ifindex. */
  forNamespace(nsKey: string): Map<number, LinkRecord> {
    return new Map(this.nsStmt.all(nsKey).map((r) => [r.ifindex, fromRow(r)]));
  }

  put(rec: LinkRecord): void {
    this.write(rec);
    this.written(rec);
  }

  /** Several records in one transaction (one commit): a veth's two ends. All or none are written. */
  putAll(recs: readonly LinkRecord[]): void {
    this.putMany(recs);
    // Into the copy once committed: a rolled-back row must not be answered from it.
    recs.forEach((r) => this.written(r));
  }

  private write(rec: LinkRecord): void {
    this.putStmt.run(rec.nsKey, rec.ifindex, rec.kind, rec.managed ? 1 : 0, rec.createdAt, JSON.stringify(rec.labels));
  }

  private written(rec: LinkRecord): void {
    this.remember(rec.nsKey, rec.ifindex, { ...rec, labels: { ...rec.labels } });
    this.touch(rec.nsKey, rec.ifindex);
  }

  delete(nsKey: string, ifindex: number): void {
    this.delStmt.run(nsKey, ifindex);
    this.remember(nsKey, ifindex, null);
    this.touch(nsKey, ifindex);
  }

  /**
   * The ifindexes of a namespace whose records were written or deleted since the last call, and
   * forgets them: the monitor re-views only those links when a change ends (re-viewing every link
   * of a hub after each of N changes was N²).
   */
  takeTouched(nsKey: string): ReadonlySet<number> {
    const t = this.touched.get(nsKey);
    this.touched.delete(nsKey);
    return t ?? new Set();
  }

  private touch(nsKey: string, ifindex: number): void {
    let t = this.touched.get(nsKey);
    if (!t) this.touched.set(nsKey, (t = new Set()));
    t.add(ifindex);
  }

  /** Moves a record (a link that changed namespace, and maybe ifindex), in one transaction. */
  move(from: { nsKey: string; ifindex: number }, to: { nsKey: string; ifindex: number }, kind: string): void {
    this.db.transaction(() => {
      const r = this.getStmt.get(from.nsKey, from.ifindex);
      this.delStmt.run(from.nsKey, from.ifindex);
      if (r) this.put({ ...fromRow(r), nsKey: to.nsKey, ifindex: to.ifindex, kind });
    })();
    if (from.nsKey !== to.nsKey || from.ifindex !== to.ifindex) this.remember(from.nsKey, from.ifindex, null);
  }

  /** Drops the records of a namespace's links that no longer exist (or whose ifindex holds another kind). */
  prune(nsKey: string, live: ReadonlyMap<number, string>): void {
    for (const [ifindex, rec] of this.forNamespace(nsKey)) if (live.get(ifindex) !== rec.kind) this.delete(nsKey, ifindex);
  }

  /** Drops every record of namespaces whose key is not in `live` (namespaces that are gone). */
  pruneNamespaces(live: ReadonlySet<string>): string[] {
    const gone = this.keysStmt.all().map((r) => r.ns_key).filter((k) => !live.has(k));
    for (const k of gone) {
      this.delNsStmt.run(k);
      this.touched.delete(k);
      this.cached -= this.cache.get(k)?.size ?? 0;
      this.cache.delete(k);
    }
    return gone;
  }
}
