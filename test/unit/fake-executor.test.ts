import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/app-error.js';
import { FakeExecutor } from '../../src/executor/fake-executor.js';

describe('FakeExecutor', () => {
  it('answers scripted replies in the order they were added, and records the calls', async () => {
    const fake = new FakeExecutor().expect('netns.getNsid', { nsid: 1 }).expect('netns.getNsid', { nsid: 2 });
    expect(await fake.run({ kind: 'netns.getNsid', ns: 'a' })).toEqual({ nsid: 1 });
    expect(await fake.run({ kind: 'netns.getNsid', ns: 'b' })).toEqual({ nsid: 2 });
    expect(fake.calls).toEqual([
      { kind: 'netns.getNsid', ns: 'a' },
      { kind: 'netns.getNsid', ns: 'b' },
    ]);
    fake.assertDone();
  });

  it('takes the first unused expectation whose matcher fits', async () => {
    const fake = new FakeExecutor()
      .expect('netns.getNsid', { ns: 'b' }, { nsid: 20 })
      .expect('netns.getNsid', (op) => op.ns === 'a', { nsid: 10 });
    expect(await fake.run({ kind: 'netns.getNsid', ns: 'a' })).toEqual({ nsid: 10 });
    expect(await fake.run({ kind: 'netns.getNsid', ns: 'b' })).toEqual({ nsid: 20 });
  });

  it('rejects with a scripted AppError, returned or thrown by a reply function', async () => {
    const fake = new FakeExecutor()
      .expect('netns.add', new AppError('NAMESPACE_EXISTS', 'x'))
      .expect('netns.add', () => new AppError('PRIVILEGE_REQUIRED', 'x'))
      .expect('netns.add', () => {
        throw new AppError('EXECUTOR_TIMEOUT', 'x');
      });
    await expect(fake.run({ kind: 'netns.add', ns: 'a' })).rejects.toMatchObject({ code: 'NAMESPACE_EXISTS' });
    await expect(fake.run({ kind: 'netns.add', ns: 'a' })).rejects.toMatchObject({ code: 'PRIVILEGE_REQUIRED' });
    await expect(fake.run({ kind: 'netns.add', ns: 'a' })).rejects.toMatchObject({ code: 'EXECUTOR_TIMEOUT' });
  });

  it('computes a reply from the op, also asynchronously', async () => {
    const fake = new FakeExecutor().default('netns.linkNames', async (op) => ({ names: [`${op.ns}0`] }));
    expect(await fake.run({ kind: 'netns.linkNames', ns: 'v' })).toEqual({ names: ['v0'] });
  });

  it('answers a default for every op of its kind that no expectation takes', async () => {
    const fake = new FakeExecutor().default('netns.pids', { pids: [] }).expect('netns.pids', { pids: [7] });
    expect(await fake.run({ kind: 'netns.pids', ns: 'a' })).toEqual({ pids: [7] });
    expect(await fake.run({ kind: 'netns.pids', ns: 'a' })).toEqual({ pids: [] });
    expect(await fake.run({ kind: 'netns.pids', ns: 'a' })).toEqual({ pids: [] });
  });

  it('rejects an op nothing was scripted for with INTERNAL naming its kind', async () => {
    await expect(new FakeExecutor().run({ kind: 'netns.delete', ns: 'a' })).rejects.toMatchObject({
      code: 'INTERNAL',
      detail: expect.stringContaining('netns.delete'),
    });
  });

  it('throws from assertDone while a scripted reply is unused', () => {
    const fake = new FakeExecutor().expect('netns.add', { ns: 'a' }, undefined);
    expect(() => fake.assertDone()).toThrow(/netns\.add/);
  });

  it('waits the configured delay before answering', async () => {
    const fake = new FakeExecutor({ delayMs: (op) => (op.kind === 'netns.add' ? 30 : 0) }).default('netns.add', undefined);
    const started = performance.now();
    await fake.run({ kind: 'netns.add', ns: 'a' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
  });

  it('keeps scripted order as call order even when delays overlap', async () => {
    const fake = new FakeExecutor({ delayMs: (op) => ('ns' in op && op.ns === 'slow' ? 20 : 0) })
      .expect('netns.getNsid', { nsid: 1 })
      .expect('netns.getNsid', { nsid: 2 });
    const [slow, fast] = await Promise.all([fake.run({ kind: 'netns.getNsid', ns: 'slow' }), fake.run({ kind: 'netns.getNsid', ns: 'fast' })]);
    expect([slow, fast]).toEqual([{ nsid: 1 }, { nsid: 2 }]);
  });

  it('fails ping with pingError, and refuses ops after close', async () => {
    const fake = new FakeExecutor();
    await fake.ping();
    fake.pingError = new AppError('EXECUTOR_UNAVAILABLE', 'down');
    await expect(fake.ping()).rejects.toMatchObject({ code: 'EXECUTOR_UNAVAILABLE' });
    await fake.close();
    expect(fake.closed).toBe(true);
    await expect(fake.run({ kind: 'probe.tools' })).rejects.toMatchObject({ code: 'EXECUTOR_UNAVAILABLE' });
  });
});

describe('FakeExecutor.kernel', () => {
  it('adds and deletes namespaces, with NAMESPACE_EXISTS and NAMESPACE_NOT_FOUND', async () => {
    const k = FakeExecutor.kernel();
    await k.run({ kind: 'netns.add', ns: 'a' });
    await expect(k.run({ kind: 'netns.add', ns: 'a' })).rejects.toMatchObject({ code: 'NAMESPACE_EXISTS' });
    expect(k.namespaceNames()).toEqual(['a']);
    await k.run({ kind: 'netns.delete', ns: 'a' });
    await expect(k.run({ kind: 'netns.delete', ns: 'a' })).rejects.toMatchObject({ code: 'NAMESPACE_NOT_FOUND' });
    await expect(k.run({ kind: 'netns.getNsid', ns: 'a' })).rejects.toMatchObject({ code: 'NAMESPACE_NOT_FOUND' });
  });

  it('assigns an nsid once and reads it back; a new namespace has none', async () => {
    const k = FakeExecutor.kernel().addNamespace('a').addNamespace('b');
    expect(await k.run({ kind: 'netns.getNsid', ns: 'a' })).toEqual({ nsid: -1 });
    expect(await k.run({ kind: 'netns.assignNsid', ns: 'a' })).toEqual({ nsid: 0 });
    expect(await k.run({ kind: 'netns.assignNsid', ns: 'a' })).toEqual({ nsid: 0 });
    expect(await k.run({ kind: 'netns.assignNsid', ns: 'b' })).toEqual({ nsid: 1 });
    expect(await k.run({ kind: 'netns.getNsid', ns: 'b' })).toEqual({ nsid: 1 });
  });

  it('tracks loopback, links, and processes that killPids removes', async () => {
    const k = FakeExecutor.kernel().addNamespace('a', { links: ['lo', 'veth0'] }).setPids('a', [10, 11]);
    await k.run({ kind: 'netns.loopbackUp', ns: 'a' });
    expect(k.namespace('a')?.loopbackUp).toBe(true);
    expect(await k.run({ kind: 'netns.linkNames', ns: 'a' })).toEqual({ names: ['lo', 'veth0'] });
    expect(await k.run({ kind: 'netns.linkNames', ns: 'host' })).toEqual({ names: ['lo', 'eth0'] });
    expect(await k.run({ kind: 'netns.pids', ns: 'a' })).toEqual({ pids: [10, 11] });
    await k.run({ kind: 'netns.killPids', ns: 'a', pids: [10] });
    expect(await k.run({ kind: 'netns.pids', ns: 'a' })).toEqual({ pids: [11] });
  });

  it('answers probes as supported and tools with versions', async () => {
    const k = FakeExecutor.kernel().addNamespace('p');
    expect(await k.run({ kind: 'probe.tools' })).toEqual({ ip: '6.1.0', tc: '6.1.0', nft: '1.0.6', conntrack: '1.4.7' });
    expect(await k.run({ kind: 'probe.qdisc', ns: 'p', qdisc: 'htb' })).toEqual({ supported: true });
  });

  it('refuses names the real executor would refuse, with INTERNAL', async () => {
    await expect(FakeExecutor.kernel().run({ kind: 'netns.add', ns: 'host' })).rejects.toMatchObject({ code: 'INTERNAL' });
    await expect(FakeExecutor.kernel().run({ kind: 'netns.add', ns: '../x' })).rejects.toMatchObject({ code: 'INTERNAL' });
  });

  it('lets a scripted reply override the simulation', async () => {
    const k = FakeExecutor.kernel().expect('netns.add', new AppError('PRIVILEGE_REQUIRED', 'no'));
    await expect(k.run({ kind: 'netns.add', ns: 'a' })).rejects.toMatchObject({ code: 'PRIVILEGE_REQUIRED' });
    await k.run({ kind: 'netns.add', ns: 'a' });
    expect(k.namespaceNames()).toEqual(['a']);
  });
});
