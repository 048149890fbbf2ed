/**
 * netns.add in Iproute2Executor: the addon's netnsAdd when it has one (in-process, a promise),
 * the root batch worker's line otherwise. The addon is a stand-in here (no root needed); the real
 * one is exercised in test/integration/namespaces.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { OpRecord } from '../../src/executor/executor.js';
import { Iproute2Executor } from '../../src/executor/iproute2-executor.js';
import { snapshotRequests } from '../../src/netlink/netlink.js';

const errno = (message: string, code: string): Error => Object.assign(new Error(message), { code });

/** A stand-in for the root batch worker, so no `ip` process is started. */
function stubBatch(ex: Iproute2Executor): ReturnType<typeof vi.fn> {
  const submit = vi.fn(async (_args: readonly string[]) => ({ ok: true as const }));
  (ex as unknown as { root: { submit: typeof submit } }).root.submit = submit;
  return submit;
}

const made: Iproute2Executor[] = [];
function executor(options: ConstructorParameters<typeof Iproute2Executor>[0]): Iproute2Executor {
  const ex = new Iproute2Executor(options);
  made.push(ex);
  return ex;
}

afterEach(async () => {
  await Promise.all(made.splice(0).map((ex) => ex.close()));
});

describe('netns.add', () => {
  it('creates the namespace with the addon at /run/netns/NAME and records an in-process op (no argv)', async () => {
    const netnsAdd = vi.fn(async (_path: string) => {});
    const ex = executor({ addon: { netnsAdd } });
    const batch = stubBatch(ex);
    const records: OpRecord[] = [];
    await ex.run({ kind: 'netns.add', ns: 'blue' }, { record: (r) => records.push(r) });
    // With the requests of the namespace's snapshot, answered from inside it after its nsid.
    expect(netnsAdd).toHaveBeenCalledWith('/run/netns/blue', true, true, snapshotRequests());
    expect(batch).not.toHaveBeenCalled();
    expect(records).toEqual([expect.objectContaining({ kind: 'netns.add', ns: 'blue', argv: [], ok: true })]);
  });

  it('has the addon bring lo up as it creates the namespace, so the loopbackUp that follows does nothing more', async () => {
    const loopbackUp = vi.fn();
    const ex = executor({ addon: { netnsAdd: async () => true, loopbackUp }, netlinkReads: false });
    await ex.run({ kind: 'netns.add', ns: 'blue' });
    await ex.run({ kind: 'netns.loopbackUp', ns: 'blue' });
    expect(loopbackUp).not.toHaveBeenCalled();
    // Only the one right after its creation: another loopbackUp is done again.
    await ex.run({ kind: 'netns.loopbackUp', ns: 'blue' });
    expect(loopbackUp).toHaveBeenCalledWith('/run/netns/blue');
  });

  it('answers the nsid and link names the addon read at creation, and leaves out what it could not read', async () => {
    const loopbackUp = vi.fn();
    const ex = executor({ addon: { netnsAdd: async () => ({ loopbackUp: true, nsid: 4, linkNames: ['lo'] }), loopbackUp }, netlinkReads: false });
    expect(await ex.run({ kind: 'netns.add', ns: 'blue' })).toEqual({ nsid: 4, linkNames: ['lo'] });
    await ex.run({ kind: 'netns.loopbackUp', ns: 'blue' });
    expect(loopbackUp).not.toHaveBeenCalled();
    const partial = executor({ addon: { netnsAdd: async () => ({ loopbackUp: false, nsid: -1, linkNames: null }), loopbackUp }, netlinkReads: false });
    expect(await partial.run({ kind: 'netns.add', ns: 'red' })).toEqual({});
    await partial.run({ kind: 'netns.loopbackUp', ns: 'red' });
    expect(loopbackUp).toHaveBeenCalledWith('/run/netns/red');
  });

  it('brings lo up the usual way when the addon could not do it at creation', async () => {
    const loopbackUp = vi.fn();
    const ex = executor({ addon: { netnsAdd: async () => false, loopbackUp }, netlinkReads: false });
    await ex.run({ kind: 'netns.add', ns: 'blue' });
    await ex.run({ kind: 'netns.loopbackUp', ns: 'blue' });
    expect(loopbackUp).toHaveBeenCalledWith('/run/netns/blue');
  });

  it('answers NAMESPACE_EXISTS when the addon finds the name taken, and records the failure', async () => {
    const ex = executor({ addon: { netnsAdd: async () => Promise.reject(errno('create namespace file: File exists', 'EEXIST')) } });
    const records: OpRecord[] = [];
    const err = await ex.run({ kind: 'netns.add', ns: 'blue' }, { record: (r) => records.push(r) }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NAMESPACE_EXISTS', detail: 'namespace "blue" already exists' });
    expect(records).toEqual([expect.objectContaining({ ok: false, code: 'NAMESPACE_EXISTS' })]);
  });

  it('answers PRIVILEGE_REQUIRED when the kernel refuses the mount (not root)', async () => {
    const ex = executor({ addon: { netnsAdd: async () => Promise.reject(errno('mount --make-shared netns directory: Operation not permitted', 'EPERM')) } });
    await expect(ex.run({ kind: 'netns.add', ns: 'blue' })).rejects.toMatchObject({ code: 'PRIVILEGE_REQUIRED' });
  });

  it('runs several creations at once (none waits for another to finish)', async () => {
    const pending: (() => void)[] = [];
    const netnsAdd = vi.fn((_path: string) => new Promise<void>((resolve) => pending.push(resolve)));
    const ex = executor({ addon: { netnsAdd } });
    const runs = ['a', 'b', 'c'].map((ns) => ex.run({ kind: 'netns.add', ns }));
    await vi.waitFor(() => expect(netnsAdd).toHaveBeenCalledTimes(3));
    for (const resolve of pending) resolve();
    await Promise.all(runs);
  });

  it('refuses a name that is not one before calling the addon', async () => {
    const netnsAdd = vi.fn(async (_path: string) => {});
    const ex = executor({ addon: { netnsAdd } });
    await expect(ex.run({ kind: 'netns.add', ns: '../etc' })).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(netnsAdd).not.toHaveBeenCalled();
  });

  it.each([
    ['the addon has no netnsAdd (an older build)', { addon: {} }],
    ['netnsAdd is turned off', { addon: { netnsAdd: async () => {} }, nativeNetnsAdd: false }],
  ])('uses the root batch worker line `netns add NAME` when %s', async (_what, options) => {
    const ex = executor(options);
    const batch = stubBatch(ex);
    const records: OpRecord[] = [];
    await ex.run({ kind: 'netns.add', ns: 'blue' }, { record: (r) => records.push(r) });
    expect(batch).toHaveBeenCalledWith(['netns', 'add', 'blue']);
    expect(records[0]?.argv).toEqual([[expect.stringMatching(/\/ip$/), 'netns', 'add', 'blue']]);
  });
});
