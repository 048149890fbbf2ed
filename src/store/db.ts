/**
 * The embedded store: one SQLite file in the data dir, WAL mode, schema migrations applied in
 * order at open. netnsd's own facts live here (labels and ownership, audit, idempotency keys);
 * the kernel stays the source of truth for what exists. The event log and the event sources'
 * inventory live in netnsd-log.db beside it, written by a thread of their own (log-sink.ts).
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Db = Database.Database;

/** Each entry runs once, in order; the applied count is kept in `PRAGMA user_version`. */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE namespaces (
     name       TEXT PRIMARY KEY,
     id         TEXT NOT NULL,
     managed    INTEGER NOT NULL,
     created_at TEXT,
     labels     TEXT NOT NULL DEFAULT '{}'
   );
   CREATE TABLE audit (
     seq         INTEGER PRIMARY KEY AUTOINCREMENT,
     time        TEXT NOT NULL,
     request_id  TEXT NOT NULL,
     actor       TEXT NOT NULL,
     action      TEXT NOT NULL,
     method      TEXT NOT NULL,
     path        TEXT NOT NULL,
     namespace   TEXT,
     status      INTEGER NOT NULL,
     code        TEXT,
     outcome     TEXT NOT NULL,
     ops         TEXT NOT NULL,
     duration_ms REAL NOT NULL
   );
   CREATE TABLE idempotency (
     actor       TEXT NOT NULL,
     key         TEXT NOT NULL,
     fingerprint TEXT NOT NULL,
     state       TEXT NOT NULL,
     status      INTEGER,
     headers     TEXT,
     body        TEXT,
     created_at  INTEGER NOT NULL,
     PRIMARY KEY (actor, key)
   );
   CREATE INDEX idempotency_created ON idempotency (created_at);`,
  // Links: keyed by the namespace's identity and the ifindex, so a renamed link keeps its record
  // and a new link under an old name does not inherit one. `kind` guards against a reused ifindex.
  `CREATE TABLE links (
     ns_key     TEXT NOT NULL,
     ifindex    INTEGER NOT NULL,
     kind       TEXT NOT NULL,
     managed    INTEGER NOT NULL,
     created_at TEXT,
     labels     TEXT NOT NULL DEFAULT '{}',
     PRIMARY KEY (ns_key, ifindex)
   );`,
  // The event log. AUTOINCREMENT: a seq is never reused, even after the newest rows were pruned
  // or the daemon restarted (SQLite keeps the highest seq ever given in sqlite_sequence). Replaced
  // by the last migration below.
  `CREATE TABLE events (
     seq       INTEGER PRIMARY KEY AUTOINCREMENT,
     time      TEXT NOT NULL,
     type      TEXT NOT NULL,
     namespace TEXT,
     body      TEXT NOT NULL
   );
   CREATE INDEX events_time ON events (time);
   -- What the event sources last saw (by kind and key), so that at start the differences to
   -- what the kernel has now become a resync event.
   CREATE TABLE event_inventory (
     kind TEXT NOT NULL,
     key  TEXT NOT NULL,
     body TEXT NOT NULL,
     PRIMARY KEY (kind, key)
   );`,
  // Traffic shaping netnsd set: the spec as the client gave it (the kernel cannot give all of it
  // back: u32 matches are folded in tc's JSON), by link identity and direction. `root_kind` is
  // the kind of the qdisc netnsd put at the root, so one changed by hand is told apart.
  `CREATE TABLE qdiscs (
     ns_key     TEXT NOT NULL,
     ifindex    INTEGER NOT NULL,
     direction  TEXT NOT NULL,
     root_kind  TEXT NOT NULL,
     spec       TEXT NOT NULL,
     ifb        TEXT,
     set_at     TEXT NOT NULL,
     PRIMARY KEY (ns_key, ifindex, direction)
   );`,
  // The event log without AUTOINCREMENT and without the index on time: each commit of events
  // wrote the sqlite_sequence row and the index's page besides the events' own (~28 against ~15
  // µs per commit of three events). EventLog gives seqs itself; `events_high` keeps the highest
  // seq ever given, written before a prune deletes rows, so a seq is still never given twice.
  // Pruning by age walks from the oldest row (seq order is time order).
  `CREATE TABLE events_new (
     seq       INTEGER PRIMARY KEY,
     time      TEXT NOT NULL,
     type      TEXT NOT NULL,
     namespace TEXT,
     body      TEXT NOT NULL
   );
   INSERT INTO events_new (seq, time, type, namespace, body) SELECT seq, time, type, namespace, body FROM events;
   CREATE TABLE events_high (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
   INSERT INTO events_high (id, seq) VALUES (1, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0));
   DROP TABLE events;
   ALTER TABLE events_new RENAME TO events;`,
  // Seqs handed out ahead of their rows (the event log's rows are written by a thread of their
  // own, in netnsd-log.db: src/store/log-sink.ts): every seq up to `seq` may have been published.
  `CREATE TABLE log_reserve (
     name TEXT PRIMARY KEY,
     seq  INTEGER NOT NULL
   );`,
];

/** Opens (creating when missing) `netnsd.db` in dataDir, or an in-memory store for `:memory:`. */
export function openDb(dataDir: string): Db {
  let file = ':memory:';
  if (dataDir !== ':memory:') {
    mkdirSync(dataDir, { recursive: true, mode: 0o750 });
    file = join(dataDir, 'netnsd.db');
  }
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

function migrate(db: Db): void {
  const applied = db.pragma('user_version', { simple: true }) as number;
  for (let i = applied; i < MIGRATIONS.length; i++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[i]!);
      db.pragma(`user_version = ${i + 1}`);
    })();
  }
}
