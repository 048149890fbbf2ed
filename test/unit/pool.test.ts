import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/app-error.js';
import type { Executor, OpContext, OpRecord } from '../../src/executor/executor.js';
import { FakeExecutor } from '../../src/executor/fake-executor.js';
import type { Op, ResultOf } from '../../src/executor/ops.js';
import { ExecutorPool } from '../../src/executor/pool.js';

/** A fake whose netns.add ops each wait for the test to release them, logging start and end. */
function gated() {
  const fake = new FakeExecutor();
  const log: string[] = [];
  const gates = new Map<string, () => void>();
  let running = 0;
  let maxRunning = 0;
  fake.default('netns.add', async (op) => {
    log.push(`start ${op.ns}`);
    running++;
    maxRunning = Math.max(maxRunning, running);
    await new Promise<void>((r) => gates.set(op.ns, r));
    running--;
    log.push(`end ${op.ns}`);
    return undefined;
  });
  return {
    fake,
    log,
    /** Lets the running op on `ns` finish, and waits a moment for the pool to move on. */
    async release(ns: string) {
      const open = gates.get(ns);
      if (!open) throw new Error(`no op running as ${ns}`);
      gates.delete(ns);
      open();
      await settle();
    },
    get maxRunning() {
      return maxRunning;
    },
  };
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

const add = (ns: string): Op => ({ kind: 'netns.add', ns });

describe('ExecutorPool', () => {
  it('runs ops on one namespace one at a time, in the order they came', async () => {
    const fake = new FakeExecutor();
    const order: string[] = [];
    let inside = 0;
    const step = (name: string) => async () => {
      inside++;
      expect(inside).toBe(1);
      order.push(`start ${name}`);
      await settle();
      order.push(`end ${name}`);
      inside--;
      return { nsid: 1 };
    };
    fake.expect('netns.assignNsid', step('1')).expect('netns.loopbackUp', step('2') as never).expect('netns.assignNsid', step('3'));
    const pool = new ExecutorPool(fake);
    await Promise.all([
      pool.run({ kind: 'netns.assignNsid', ns: 'a' }),
      pool.run({ kind: 'netns.loopbackUp', ns: 'a' }),
      pool.run({ kind: 'netns.assignNsid', ns: 'a' }),
    ]);
    expect(order).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
    fake.assertDone();
  });

  it('starts a namespace\'s next change once the backend says the running one is sequenced, before that one ends', async () => {
    const log: string[] = [];
    const ends = new Map<string, () => void>();
    const backend: Executor = {
      run: async <O extends Op>(op: O, ctx?: OpContext): Promise<ResultOf<O>> => {
        const name = (op as { ns: string }).ns + (op.kind === 'netns.add' ? ' add' : ' up');
        log.push(`start ${name}`);
        ctx?.sequenced?.();
        await new Promise<void>((r) => ends.set(name, r));
        log.push(`end ${name}`);
        return undefined as ResultOf<O>;
      },
      ping: async () => {},
      close: async () => {},
    };
    const pool = new ExecutorPool(backend);
    const done = Promise.all([pool.run({ kind: 'netns.add', ns: 'a' }), pool.run({ kind: 'netns.loopbackUp', ns: 'a' })]);
    await settle();
    expect(log).toEqual(['start a add', 'start a up']);
    ends.get('a add')!();
    ends.get('a up')!();
    await done;
    expect(pool.stats()).toEqual({ running: 0, queued: 0 });
  });

  it('runs reads of a namespace beside its running change, not behind it', async () => {
    const g = gated();
    g.fake.default('netns.getNsid', { nsid: 3 });
    const pool = new ExecutorPool(g.fake);
    const change = pool.run(add('a'));
    const read = pool.run({ kind: 'netns.getNsid', ns: 'a' });
    await settle();
    await expect(read).resolves.toEqual({ nsid: 3 });
    expect(g.log).toEqual(['start a']);
    await g.release('a');
    await change;
  });

  it('runs ops on different namespaces in parallel', async () => {
    const g = gated();
    const pool = new ExecutorPool(g.fake);
    const done = Promise.all([pool.run(add('a')), pool.run(add('b'))]);
    await settle();
    expect(g.log).toEqual(['start a', 'start b']);
    await g.release('b');
    await g.release('a');
    await done;
    expect(g.log).toEqual(['start a', 'start b', 'end b', 'end a']);
  });

  it('starts an op on an idle namespace while an earlier op waits for its busy namespace', async () => {
    const g = gated();
    const pool = new ExecutorPool(g.fake, { concurrency: 2 });
    const runs = [pool.run(add('a')), pool.run(add('a')), pool.run(add('b'))];
    await settle();
    expect(g.log).toEqual(['start a', 'start b']);
    await g.release('a');
    expect(g.log.at(-1)).toBe('start a');
    await g.release('a');
    await g.release('b');
    await Promise.all(runs);
  });

  it('with one slot, starts waiting ops in arrival order', async () => {
    const g = gated();
    const pool = new ExecutorPool(g.fake, { concurrency: 1 });
    const runs = [pool.run(add('a')), pool.run(add('b')), pool.run(add('a')), pool.run(add('c'))];
    await settle();
    for (const n of ['a', 'b', 'a', 'c']) await g.release(n);
    await Promise.all(runs);
    expect(g.log.filter((l) => l.startsWith('start'))).toEqual(['start a', 'start b', 'start a', 'start c']);
  });

  it('never runs more ops at once than its concurrency', async () => {
    const g = gated();
    const pool = new ExecutorPool(g.fake, { concurrency: 2 });
    const names = ['a', 'b', 'c', 'd', 'e'];
    const runs = names.map((n) => pool.run(add(n)));
    await settle();
    expect(pool.stats()).toEqual({ running: 2, queued: 3 });
    for (const n of names) await g.release(n);
    await Promise.all(runs);
    expect(g.maxRunning).toBe(2);
    expect(pool.stats()).toEqual({ running: 0, queued: 0 });
  });

  it('rejects with EXECUTOR_BUSY and Retry-After when the queue is full', async () => {
    const g = gated();
    const pool = new ExecutorPool(g.fake, { concurrency: 1, queueLimit: 2 });
    const runs = [pool.run(add('a')), pool.run(add('b')), pool.run(add('c'))];
    await settle();
    const err = await pool.run(add('d')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ code: 'EXECUTOR_BUSY', headers: { 'Retry-After': '1' }, retryable: true });
    expect(g.fake.calls.map((op) => 'ns' in op && op.ns)).toEqual(['a']);
    for (const n of ['a', 'b', 'c']) await g.release(n);
    await Promise.all(runs);
  });

  it('never refuses an op that continues a started change, even with the queue full', async () => {
    const g = gated();
    const pool = new ExecutorPool(g.fake, { concurrency: 1, queueLimit: 1 });
    const runs = [pool.run(add('a')), pool.run(add('b'))];
    await settle();
    await expect(pool.run(add('c'))).rejects.toMatchObject({ code: 'EXECUTOR_BUSY' });
    const next = pool.run(add('d'), { continues: true });
    for (const n of ['a', 'b', 'd']) await g.release(n);
    await Promise.all([...runs, next]);
    expect(g.fake.calls.map((op) => 'ns' in op && op.ns)).toEqual(['a', 'b', 'd']);
  });

  it('drains queued and running ops on close, then closes the inner executor and refuses new ops', async () => {
    const g = gated();
    const pool = new ExecutorPool(g.fake, { concurrency: 1 });
    const runs = [pool.run(add('a')), pool.run(add('b'))];
    await settle();
    let closed = false;
    const closing = pool.close().then(() => (closed = true));
    await expect(pool.run(add('c'))).rejects.toMatchObject({ code: 'EXECUTOR_UNAVAILABLE' });
    await expect(pool.ping()).rejects.toMatchObject({ code: 'EXECUTOR_UNAVAILABLE' });
    await g.release('a');
    expect(closed).toBe(false);
    await g.release('b');
    await closing;
    await Promise.all(runs);
    expect(g.fake.closed).toBe(true);
    expect(g.log).toEqual(['start a', 'end a', 'start b', 'end b']);
  });

  it('closes at once when idle, and close is idempotent', async () => {
    const fake = new FakeExecutor();
    const pool = new ExecutorPool(fake);
    await Promise.all([pool.close(), pool.close()]);
    expect(fake.closed).toBe(true);
  });

  it('keeps running an op whose caller stopped waiting for it', async () => {
    const g = gated();
    const pool = new ExecutorPool(g.fake);
    void pool.run(add('a')); // the caller walks away (a client that hung up)
    await settle();
    await g.release('a');
    expect(g.log).toEqual(['start a', 'end a']);
  });

  it('records each op once, with the argv it stands for, its outcome and code', async () => {
    const fake = new FakeExecutor().expect('netns.add', undefined).expect('netns.delete', new AppError('NAMESPACE_NOT_FOUND', 'gone'));
    const pool = new ExecutorPool(fake);
    const records: OpRecord[] = [];
    const ctx = { record: (r: OpRecord) => records.push(r) };
    await pool.run({ kind: 'netns.add', ns: 'a' }, ctx);
    await expect(pool.run({ kind: 'netns.delete', ns: 'a' }, ctx)).rejects.toMatchObject({ code: 'NAMESPACE_NOT_FOUND' });
    expect(records).toHaveLength(2);
    expect(records[0]).toMatchObject({ kind: 'netns.add', ns: 'a', ok: true });
    expect(records[0]?.argv).toEqual([[expect.stringMatching(/\/ip$/), 'netns', 'add', 'a']]);
    expect(records[1]).toMatchObject({ kind: 'netns.delete', ns: 'a', ok: false, code: 'NAMESPACE_NOT_FOUND' });
    expect(records[0]?.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('records in-process ops with no argv', async () => {
    const pool = new ExecutorPool(new FakeExecutor().expect('netns.pids', { pids: [] }));
    const records: OpRecord[] = [];
    await pool.run({ kind: 'netns.pids', ns: 'a' }, { record: (r) => records.push(r) });
    expect(records).toEqual([expect.objectContaining({ kind: 'netns.pids', argv: [], ok: true })]);
  });

  it("prefers the inner executor's own record, which knows what really ran", async () => {
    const own: OpRecord = { kind: 'netns.loopbackUp', ns: 'a', argv: [], ok: true, durationMs: 0.1 };
    class Recording implements Executor {
      async run<O extends Op>(_op: O, ctx?: OpContext): Promise<ResultOf<O>> {
        ctx?.record?.(own);
        return undefined as ResultOf<O>;
      }
      async ping(): Promise<void> {}
      async close(): Promise<void> {}
    }
    const records: OpRecord[] = [];
    await new ExecutorPool(new Recording()).run({ kind: 'netns.loopbackUp', ns: 'a' }, { record: (r) => records.push(r) });
    expect(records).toEqual([own]);
  });

  it('turns a non-AppError failure of the inner executor into INTERNAL', async () => {
    const pool = new ExecutorPool(
      new FakeExecutor().expect('netns.getNsid', () => {
        throw new TypeError('bug');
      }),
    );
    await expect(pool.run({ kind: 'netns.getNsid', ns: 'a' })).rejects.toMatchObject({ code: 'INTERNAL' });
  });
});
