/**
 * WAL checkpoints off the event loop. A checkpoint copies the WAL into the database file and
 * fsyncs it: milliseconds, which SQLite's automatic checkpoint would spend inside whichever
 * commit crossed the threshold — an event's, holding up its delivery. So the daemon's connection
 * never checkpoints (`wal_autocheckpoint = 0`) and a worker thread with a connection of its own
 * runs a PASSIVE checkpoint every second (PASSIVE: it never waits for, nor blocks, the writer).
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import type { Db } from './db.js';

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.file);
db.pragma('busy_timeout = 1000');
const checkpoint = (mode) => { try { db.pragma('wal_checkpoint(' + mode + ')'); } catch { /* busy: next time */ } };
const timer = setInterval(() => checkpoint('PASSIVE'), workerData.everyMs);
parentPort.on('message', () => {
  clearInterval(timer);
  checkpoint('PASSIVE');
  db.close();
  parentPort.close();
});
`;

export interface Checkpointer {
  /** Runs a last checkpoint and ends the thread. */
  stop(): Promise<void>;
}

/** Starts checkpointing `db`'s file from a worker thread (nothing for an in-memory store). */
export function startCheckpointer(db: Db, everyMs = 1000): Checkpointer {
  if (db.memory) return { stop: async () => {} };
  db.pragma('wal_autocheckpoint = 0');
  const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER, { eval: true, workerData: { file: db.name, sqlite, everyMs } });
  worker.unref();
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.on('error', () => {
    // The thread died (it should not): let SQLite checkpoint by itself again.
    db.pragma('wal_autocheckpoint = 1000');
  });
  return {
    async stop() {
      // Referenced while it finishes: otherwise a loop with nothing else to do would exit first.
      worker.ref();
      worker.postMessage('stop');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
      await worker.terminate();
    },
  };
}
