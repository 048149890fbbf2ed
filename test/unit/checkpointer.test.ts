import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startCheckpointer } from '../../src/store/checkpointer.js';
import { openDb } from '../../src/store/db.js';

describe('the WAL checkpointer', () => {
  it('moves the WAL into the database file from its thread, while the daemon connection never checkpoints', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netnsd-ckpt-'));
    try {
      const db = openDb(dir);
      const ckpt = startCheckpointer(db, 50);
      expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
      const file = join(dir, 'netnsd.db');
      const before = statSync(file).size;
      const insert = db.prepare('INSERT INTO events (time, type, namespace, body) VALUES (?, ?, ?, ?)');
      db.transaction(() => {
        for (let i = 0; i < 2000; i++) insert.run('2026-12-02T00:00:00.000Z', 'link.added', 'a', JSON.stringify({ i, pad: 'x'.repeat(200) }));
      })();
      // Committed: in the WAL only, until the thread checkpoints it.
      const deadline = Date.now() + 5000;
      while (statSync(file).size <= before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      expect(statSync(file).size).toBeGreaterThan(before);
      await ckpt.stop();
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves an in-memory store as it is (no file, no thread)', async () => {
    const db = openDb(':memory:');
    const ckpt = startCheckpointer(db);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    await ckpt.stop();
    db.close();
  });
});
