import type { Db } from './db.js';
import type { Labels } from '../labels.js';

/** What netnsd knows of a namespace that the kernel does not: ownership, labels, creation. */
export interface NamespaceRecord {
  readonly name: string;
  /** The namespace's identity (see namespace-service: inode plus nsfs ctime). */
  readonly id: string;
  readonly managed: boolean;
  readonly createdAt: string | null;
  readonly labels: Labels;
}

interface Row {
  name: string;
  id: string;
  managed: number;
  created_at: string | null;
  labels: string;
}

function fromRow(r: Row): NamespaceRecord {
  return { name: r.name, id: r.id, managed: r.managed === 1, createdAt: r.created_at, labels: JSON.parse(r.labels) as Labels };
}

/** Namespace records in the store, keyed by name. */
export class NamespaceRecords {
  private readonly getStmt;
  private readonly allStmt;
  private readonly putStmt;
  private readonly delStmt;

  constructor(db: Db) {
    this.getStmt = db.prepare<[string], Row>('SELECT * FROM namespaces WHERE name = ?');
    this.allStmt = db.prepare<[], Row>('SELECT * FROM namespaces');
    this.putStmt = db.prepare(
      `INSERT INTO namespaces (name, id, managed, created_at, labels) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET id = excluded.id, managed = excluded.managed,
         created_at = excluded.created_at, labels = excluded.labels`,
    );
    this.delStmt = db.prepare('DELETE FROM namespaces WHERE name = ?');
  }

  get(name: string): NamespaceRecord | undefined {
    const r = this.getStmt.get(name);
    return r ? fromRow(r) : undefined;
  }

  all(): NamespaceRecord[] {
    return this.allStmt.all().map(fromRow);
  }

  put(rec: NamespaceRecord): void {
    this.putStmt.run(rec.name, rec.id, rec.managed ? 1 : 0, rec.createdAt, JSON.stringify(rec.labels));
  }

  delete(name: string): void {
    this.delStmt.run(name);
  }
}
