/**
 * Changes sent from the addon's request thread (nlRequestAsync) behind the executor pool: the
 * pool starts a namespace's next change once the running one is queued there, so the executor
 * keeps what must still come after it in order. The addon is a stand-in (no root needed); the
 * real one is exercised in test/integration/netlink.test.ts and netlink-changes.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Iproute2Executor } from '../../src/executor/iproute2-executor.js';
import type { Op } from '../../src/executor/ops.js';
import { ExecutorPool } from '../../src/executor/pool.js';

/** An NLMSG_ERROR answer to the request (error 0: the ACK; else -errno). */
function ack(request: Buffer, errno = 0): Buffer {
  const b = Buffer.alloc(36);
  b.writeUInt32LE(36, 0);
  b.writeUInt16LE(2, 4); // NLMSG_ERROR
  b.writeUInt32LE(request.readUInt32LE(8), 8); // the request's seq
  b.writeInt32LE(-errno, 16);
  request.copy(b, 20, 0, 16);
  return b;
}

/** The addon: requests wait in `queued` until the test answers them; link lookups fail (ENODEV). */
function standIn() {
  const queued: Array<{ request: Buffer; answer: () => void }> = [];
  const addon = {
    nlOpen: () => 1000,
    nlClose: () => {},
    nlRead: () => null,
    nlWatch: () => {},
    nlDump: (_fd: number | string, request: Buffer) => ({ datagrams: [ack(request, 19)], interrupted: false }),
    nlRequestAsync: (_path: string, request: Buffer) => new Promise<Buffer[]>((resolve) => queued.push({ request, answer: () => resolve([ack(request)]) })),
  };
  return { addon, queued };
}

const made: Iproute2Executor[] = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((ex) => ex.close()));
});

const tick = () => new Promise((r) => setTimeout(r, 5));
const bridge = (name: string): Op => ({ kind: 'link.add', ns: 'a', spec: { name, linkKind: 'bridge' } });

describe('changes on the request thread, behind the pool', () => {
  it('queues a namespace\'s next change behind the running one without waiting for its answer', async () => {
    const { addon, queued } = standIn();
    const ex = new Iproute2Executor({ addon });
    made.push(ex);
    const pool = new ExecutorPool(ex);
    const done = Promise.all([pool.run(bridge('br0')), pool.run(bridge('br1'))]);
    await tick();
    expect(queued).toHaveLength(2);
    for (const q of queued) q.answer();
    await done;
  });

  it('runs a change of the namespace that goes another way (a batch line) only after those queued have run', async () => {
    const { addon, queued } = standIn();
    const ex = new Iproute2Executor({ addon });
    made.push(ex);
    const inNamespace = vi.fn(async () => undefined);
    (ex as unknown as { inNamespace: typeof inNamespace }).inNamespace = inNamespace;
    const pool = new ExecutorPool(ex);
    const first = pool.run(bridge('br0'));
    const second = pool.run({ kind: 'link.delete', ns: 'a', name: 'br0' });
    await tick();
    expect(queued).toHaveLength(1);
    expect(inNamespace).not.toHaveBeenCalled();
    queued[0]!.answer();
    await Promise.all([first, second]);
    expect(inNamespace).toHaveBeenCalledTimes(1);
  });

  it('looks a link up again once the changes queued before have run, when it was not there yet', async () => {
    const { addon, queued } = standIn();
    const ex = new Iproute2Executor({ addon });
    made.push(ex);
    const indexes = new Map<string, number>();
    ex.useLinkIndexes((_ns, name) => indexes.get(name));
    const pool = new ExecutorPool(ex);
    const first = pool.run(bridge('br0'));
    const second = pool.run({ kind: 'link.set', ns: 'a', name: 'br0', change: { up: true } });
    await tick();
    expect(queued).toHaveLength(1); // br0 up waits: br0 was not found
    indexes.set('br0', 7);
    queued[0]!.answer();
    await tick();
    expect(queued).toHaveLength(2);
    expect(queued[1]!.request.readInt32LE(16 + 4)).toBe(7); // ifinfomsg.ifi_index
    queued[1]!.answer();
    await Promise.all([first, second]);
  });

  it('answers LINK_NOT_FOUND when the link is still not there after them', async () => {
    const { addon, queued } = standIn();
    const ex = new Iproute2Executor({ addon });
    made.push(ex);
    const pool = new ExecutorPool(ex);
    const first = pool.run(bridge('br0'));
    const second = pool.run({ kind: 'link.set', ns: 'a', name: 'nope', change: { up: true } });
    await tick();
    queued[0]!.answer();
    await first;
    await expect(second).rejects.toMatchObject({ code: 'LINK_NOT_FOUND' });
  });
});
