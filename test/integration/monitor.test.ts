/**
 * The kernel monitor against the real kernel: changes made through the API and with `ip` by
 * hand arrive as events with the REST shape, in order; namespaces made by hand are watched; the
 * inventory that listings are served from agrees with the kernel; what changed while the daemon
 * was down, while the monitor was dead, or was lost to an overflow comes as `resync`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { ExecutorPool } from '../../src/executor/pool.js';
import { NetlinkNamespace, namespacePath, requestKey } from '../../src/netlink/netlink.js';
import { ip, nsName, until } from '../helpers/kernel.js';
import { ADMIN_TOKEN, type Msg, type RealApp, adminClient, createNamespaces, eventsClient, overTcp, startRealApp, useRealApp } from '../helpers/real-app.js';

const app = useRealApp();
const { api, ok } = adminClient(app);
/** The file's app, once started (its name reads like the helpers' other apps). */
let r: RealApp;
beforeAll(() => {
  r = app();
});

/** A WebSocket client of `a` keeping every message (events() leaves out the `subscribed` frames). */
const connect = (a: RealApp, query: string) => eventsClient(a, query);

const find = (m: Msg[], pred: (e: Msg) => boolean) => m.find(pred);
async function waitFor(m: Msg[], pred: (e: Msg) => boolean, what: string): Promise<Msg> {
  await until(() => find(m, pred) !== undefined, 5000, what);
  return find(m, pred)!;
}

/** What a fresh dump of the namespace says, for comparing with the listings. */
function kernelView(ns: string) {
  const nl = new NetlinkNamespace(namespacePath(ns));
  try {
    return {
      links: nl.dumpLinks().map((l) => l.name).sort(),
      addresses: nl.dumpAddresses().map((a) => `${a.link} ${a.local}/${a.prefixLength}`).sort(),
      routes: [...nl.dumpRoutes(4, 254), ...nl.dumpRoutes(6, 254)].map((x) => `${x.family} ${x.dst} ${x.dev ?? ''} ${x.via ?? ''}`).sort(),
    };
  } finally {
    nl.close();
  }
}

async function apiView(ns: string) {
  const links = (await ok('GET', `/v1/namespaces/${ns}/links`, undefined, 200)).items as Msg[];
  const addresses = (await ok('GET', `/v1/namespaces/${ns}/addresses`, undefined, 200)).items as Msg[];
  const routes = [
    ...(await ok('GET', `/v1/namespaces/${ns}/routes?family=4`, undefined, 200)).items,
    ...(await ok('GET', `/v1/namespaces/${ns}/routes?family=6`, undefined, 200)).items,
  ] as Msg[];
  const dst = (d: string, f: number) => (d === 'default' ? (f === 4 ? '0.0.0.0/0' : '::/0') : d);
  return {
    links: links.map((l) => l.name).sort(),
    addresses: addresses.map((a) => `${a.link} ${a.address}`).sort(),
    routes: routes.map((x) => `${x.family} ${dst(x.dst, x.family)} ${x.dev ?? ''} ${x.via ?? ''}`).sort(),
  };
}

describe('the kernel monitor', () => {
  it('streams link, address and route changes made through the API and by hand, in order, with the REST shape', async () => {
    const [a, b] = await createNamespaces(r, 'mon-a', 'mon-b');
    const c = await connect(r, `?types=link.*,address.*,route.*&namespace=${a}`);
    await ok('POST', `/v1/namespaces/${a}/links`, { name: 'v0', kind: 'veth', peer: { name: 'v1', namespace: b }, labels: { role: 'uplink' } });
    const add = await waitFor(c.got, (e) => e.type === 'link.added' && e.object.name === 'v0', 'link.added v0');
    const rest = await ok('GET', `/v1/namespaces/${a}/links/v0`, undefined, 200);
    // Built once netnsd's change had ended: managed, labelled, its peer resolved.
    expect(add).toMatchObject({ seq: expect.any(Number), namespace: a, object: { managed: true, labels: { role: 'uplink' }, peer: { namespace: b, name: 'v1' } } });
    expect(add.object).toEqual(rest);

    ip('-n', a, 'link', 'set', 'v0', 'up');
    ip('-n', a, 'address', 'add', '198.51.100.1/24', 'dev', 'v0');
    ip('-n', a, 'link', 'set', 'v0', 'mtu', '1400');
    const up = await waitFor(c.got, (e) => e.type === 'link.changed' && e.object.state === 'up', 'link.changed up');
    expect(up.changes).toMatchObject({ state: 'down' });
    const addr = await waitFor(c.got, (e) => e.type === 'address.added', 'address.added');
    expect(addr.object).toEqual(await ok('GET', `/v1/namespaces/${a}/addresses/${addr.object.id}`, undefined, 200));
    const mtu = await waitFor(c.got, (e) => e.type === 'link.changed' && e.object.mtu === 1400, 'link.changed mtu');
    expect(mtu.changes).toEqual({ mtu: 1500 });
    expect(addr.seq).toBeGreaterThan(up.seq);
    expect(mtu.seq).toBeGreaterThan(addr.seq);
    // The connected route the address brings (the link is up).
    const route = await waitFor(c.got, (e) => e.type === 'route.added' && e.object.dst === '198.51.100.0/24' && e.object.table === 254, 'route.added');
    expect(route.object).toMatchObject({ namespace: a, dev: 'v0', protocol: 'kernel' });

    // Taking the link down flushes its IPv4 routes without a word from the kernel: netnsd re-reads them.
    ip('-n', a, 'link', 'set', 'v0', 'down');
    await waitFor(c.got, (e) => e.type === 'route.removed' && e.object.dst === '198.51.100.0/24' && e.object.table === 254, 'route.removed after down');
    ip('-n', a, 'address', 'del', '198.51.100.1/24', 'dev', 'v0');
    await waitFor(c.got, (e) => e.type === 'address.removed' && e.object.id === addr.object.id, 'address.removed');
    await api('DELETE', `/v1/namespaces/${a}/links/v0`);
    const removed = await waitFor(c.got, (e) => e.type === 'link.removed' && e.object.name === 'v0', 'link.removed');
    // As it was: still managed and labelled.
    expect(removed.object).toMatchObject({ managed: true, labels: { role: 'uplink' } });
    const seqs = c.events().map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
    c.close();
  });

  it('announces a label change as link.changed with the previous labels', async () => {
    const [a] = await createNamespaces(r, 'mon-lbl');
    await ok('POST', `/v1/namespaces/${a}/links`, { name: 'br0', kind: 'bridge' });
    const c = await connect(r, `?types=link.changed&namespace=${a}`);
    await ok('PATCH', `/v1/namespaces/${a}/links/br0`, { labels: { tier: 'core' } }, 200);
    const e = await waitFor(c.got, (x) => x.type === 'link.changed' && x.object.labels.tier === 'core', 'label change');
    expect(e.changes).toEqual({ labels: {} });
    c.close();
  });

  it('watches a namespace made by hand: its links arrive, and its later changes', async () => {
    const c = await connect(r, `?types=namespace.added,link.*&namespace=nnt-*`);
    const name = nsName('mon-hand');
    ip('netns', 'add', name);
    await waitFor(c.got, (e) => e.type === 'namespace.added' && e.namespace === name, 'namespace.added');
    await waitFor(c.got, (e) => e.type === 'link.added' && e.namespace === name && e.object.name === 'lo', 'its lo');
    ip('-n', name, 'link', 'add', 'hb0', 'type', 'bridge');
    ip('-n', name, 'link', 'set', 'hb0', 'name', 'hb1');
    const added = await waitFor(c.got, (e) => e.type === 'link.added' && e.namespace === name && e.object.name === 'hb0', 'link.added hb0');
    expect(added.object).toMatchObject({ kind: 'bridge', managed: false });
    const renamed = await waitFor(c.got, (e) => e.type === 'link.changed' && e.namespace === name && e.object.name === 'hb1', 'rename');
    expect(renamed.changes).toEqual({ name: 'hb0' });
    const nsAdded = find(c.got, (e) => e.type === 'namespace.added' && e.namespace === name)!;
    expect(added.seq).toBeGreaterThan(nsAdded.seq);
    c.close();
  });

  it('announces a link moved to another namespace as link.changed there, naming where it came from', async () => {
    const [a, b] = await createNamespaces(r, 'mon-mva', 'mon-mvb');
    await ok('POST', `/v1/namespaces/${a}/links`, { name: 'm0', kind: 'veth', peer: { name: 'm1', namespace: a } });
    const c = await connect(r, `?types=link.*&namespace=nnt-*`);
    ip('-n', a, 'link', 'set', 'm1', 'netns', b);
    const moved = await waitFor(c.got, (e) => e.type === 'link.changed' && e.namespace === b && e.object.name === 'm1', 'moved');
    expect(moved.changes).toMatchObject({ namespace: a });
    expect(moved.object.peer).toMatchObject({ namespace: a, name: 'm0' });
    // The end that stayed: its peer is elsewhere now.
    const stayed = await waitFor(c.got, (e) => e.type === 'link.changed' && e.namespace === a && e.object.name === 'm0', 'peer moved');
    expect(stayed.object.peer).toMatchObject({ namespace: b, name: 'm1' });
    expect(c.got.some((e) => e.type === 'link.removed' && e.object.name === 'm1')).toBe(false);
    c.close();
  });

  it('watches a namespace it made by the nsid the creation gave, without giving or reading one again', async () => {
    const run = vi.spyOn(ExecutorPool.prototype, 'run');
    try {
      const [a] = await createNamespaces(r, 'mon-nsid');
      await until(() => r.services.monitor?.serves(a) === true, 5000, 'the monitor to watch it');
      const nsidOps = run.mock.calls.map(([op]) => op).filter((op) => (op.kind === 'netns.assignNsid' || op.kind === 'netns.getNsid') && op.ns === a);
      expect(nsidOps).toEqual([]);
    } finally {
      run.mockRestore();
    }
  });

  it('seeds a namespace it made from the dumps its creation took, without dumping it again, as the kernel has it', async () => {
    // Dumps of each namespace asked of the kernel (not answered from dumps taken before).
    const asked: string[] = [];
    const dumpRaw = NetlinkNamespace.prototype.dumpRaw;
    const spy = vi.spyOn(NetlinkNamespace.prototype, 'dumpRaw').mockImplementation(function (this: NetlinkNamespace, build) {
      const prefetched = (this as unknown as { prefetched?: Map<string, unknown> }).prefetched;
      if (!prefetched?.has(requestKey(build(0)))) asked.push(this.nsPath);
      return dumpRaw.call(this, build);
    });
    try {
      const [a] = await createNamespaces(r, 'mon-seed');
      await until(() => r.services.monitor?.serves(a) === true, 5000, 'the monitor to watch it');
      expect(asked.filter((p) => p === namespacePath(a))).toEqual([]);
    } finally {
      spy.mockRestore();
    }
    const [b] = await createNamespaces(r, 'mon-seed2');
    ip('-n', b, 'link', 'add', 'sb0', 'type', 'bridge');
    await until(async () => JSON.stringify(await apiView(b)) === JSON.stringify(kernelView(b)), 5000, 'listed as the kernel has it').catch(() => undefined);
    expect(await apiView(b)).toEqual(kernelView(b));
  });

  it("resolves a veth's far end, announced before its peer existed, in reads and in the events of both ends", async () => {
    const [a, b] = await createNamespaces(r, 'mon-far-a', 'mon-far-b');
    const c = await connect(r, `?types=link.*&namespace=nnt-*`);
    // Made by hand and left down: the kernel never announces the far end again.
    ip('-n', a, 'link', 'add', 'y0', 'type', 'veth', 'peer', 'name', 'y1', 'netns', b);
    expect(await ok('GET', `/v1/namespaces/${b}/links/y1`, undefined, 200)).toMatchObject({ peer: { namespace: a, name: 'y0' } });
    expect(await ok('GET', `/v1/namespaces/${a}/links/y0`, undefined, 200)).toMatchObject({ peer: { namespace: b, name: 'y1' } });
    await until(async () => c.got.some((e) => e.namespace === b && e.object.name === 'y1' && e.object.peer?.name === 'y0'), 5000, 'y1 announced with its peer');
    // Made through the API, its peer brought up at once: that announcement of the peer is right.
    await ok('POST', `/v1/namespaces/${a}/links`, { name: 'z0', kind: 'veth', up: true, peer: { name: 'z1', namespace: b } });
    const z1 = await waitFor(c.got, (e) => e.namespace === b && e.object.name === 'z1' && e.object.state !== 'down', 'z1 up');
    expect(z1.object.peer).toMatchObject({ namespace: a, name: 'z0' });
    const z0 = await waitFor(c.got, (e) => e.namespace === a && e.object.name === 'z0', 'z0');
    expect(z0.object.peer).toMatchObject({ namespace: b, name: 'z1' });
    expect(await ok('GET', `/v1/namespaces/${b}/links/z1`, undefined, 200)).toMatchObject({ peer: { namespace: a, name: 'z0' } });
    c.close();
  });

  it('answers listings from the inventory, agreeing with the kernel after changes by hand', async () => {
    const [a, b] = await createNamespaces(r, 'mon-inv-a', 'mon-inv-b');
    ip('-n', a, 'link', 'add', 'x0', 'type', 'veth', 'peer', 'name', 'x1', 'netns', b);
    ip('-n', a, 'link', 'set', 'x0', 'up');
    ip('-n', b, 'link', 'set', 'x1', 'up');
    ip('-n', a, 'address', 'add', '203.0.113.1/24', 'dev', 'x0');
    ip('-n', a, 'address', 'add', '2001:db8:5::1/64', 'dev', 'x0', 'nodad');
    ip('-n', a, 'route', 'add', '198.18.10.0/24', 'via', '203.0.113.2');
    ip('-n', a, 'link', 'add', 'br9', 'type', 'bridge');
    ip('-n', a, 'link', 'set', 'br9', 'name', 'br8');
    // The kernel adds link-local addresses on its own time (addrconf): compare until both settle.
    for (const ns of [a, b, 'host']) {
      await until(async () => JSON.stringify(await apiView(ns)) === JSON.stringify(kernelView(ns)), 5000, `${ns} listed as the kernel has it`).catch(() => undefined);
      expect(await apiView(ns)).toEqual(kernelView(ns));
    }
    // Right after a change: the read catches up with the kernel's announcement first.
    ip('-n', a, 'route', 'del', '198.18.10.0/24');
    expect((await apiView(a)).routes).toEqual(kernelView(a).routes);
    expect(r.services.monitor?.serves(a)).toBe(true);
  });

  it('resyncs after the monitor dies: what changed meanwhile comes as differences, and nothing is lost', async () => {
    const [a] = await createNamespaces(r, 'mon-kill');
    await ok('POST', `/v1/namespaces/${a}/links`, { name: 'k0', kind: 'bridge' });
    const c = await connect(r, `?types=resync,link.*`);
    const monitor = r.services.monitor!;
    const restarts = monitor.restarts;
    monitor.failed(new Error('killed by the test'));
    expect(monitor.running).toBe(false);
    ip('-n', a, 'link', 'set', 'k0', 'mtu', '1300');
    const resync = await waitFor(c.got, (e) => e.type === 'resync' && e.reason === 'monitor restart', 'resync');
    expect(monitor.restarts).toBe(restarts + 1);
    expect(resync.namespaces).toContain(a);
    expect(resync.differences).toContainEqual(expect.objectContaining({ type: 'link.changed', namespace: a, object: expect.objectContaining({ name: 'k0', mtu: 1300 }), changes: { mtu: 1500 } }));
    expect((await ok('GET', `/v1/namespaces/${a}/links/k0`, undefined, 200)).mtu).toBe(1300);
    // And it goes on watching.
    ip('-n', a, 'link', 'set', 'k0', 'mtu', '1200');
    await waitFor(c.got, (e) => e.type === 'link.changed' && e.object.mtu === 1200, 'later change');
    const status = (await ok('GET', '/v1/events/status', undefined, 200)).monitor;
    expect(status).toMatchObject({ running: true, restarts: restarts + 1 });
    c.close();
  });
});

describe('the kernel monitor across restarts and overflows', () => {
  it('reports a link changed while the daemon was down in the start resync', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netnsd-mon-'));
    let app = await startRealApp({ dir });
    try {
      const a = nsName('mon-down');
      expect((await overTcp(app.tcpUrl, 'POST', '/v1/namespaces', { name: a })).status).toBe(201);
      expect((await overTcp(app.tcpUrl, 'POST', `/v1/namespaces/${a}/links`, { name: 'd0', kind: 'bridge' })).status).toBe(201);
      // Seeded (the namespace is watched) and every event published: all of it is persisted at stop.
      await until(() => app.services.monitor!.serves(a), 5000, 'the monitor to watch it');
      await app.services.monitor!.settled();
      const last = app.services.events.log.lastSeq;
      await app.close();
      ip('-n', a, 'link', 'set', 'd0', 'mtu', '1280');
      ip('-n', a, 'link', 'add', 'd1', 'type', 'bridge');
      app = await startRealApp({ dir });
      const c = await connect(app, `?since=${last}&types=resync`);
      const resync = await waitFor(c.got, (e) => e.type === 'resync' && e.reason === 'start' && e.namespaces.includes(a), 'start resync');
      expect(resync.differences).toContainEqual(expect.objectContaining({ type: 'link.changed', namespace: a, changes: { mtu: 1500 } }));
      expect(resync.differences).toContainEqual(expect.objectContaining({ type: 'link.added', namespace: a, object: expect.objectContaining({ name: 'd1' }) }));
      c.close();
    } finally {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('re-reads every namespace after a netlink overflow and says so with a resync', async () => {
    // A receive buffer too small for a burst: the kernel drops events and says ENOBUFS.
    const app = await startRealApp({ deps: { monitorRcvbuf: 4096 } });
    try {
      const a = nsName('mon-ovf');
      expect((await overTcp(app.tcpUrl, 'POST', '/v1/namespaces', { name: a })).status).toBe(201);
      await until(() => app.services.monitor!.serves(a), 5000, 'watched');
      const c = await connect(app, `?types=resync`);
      const batch = Array.from({ length: 200 }, (_, i) => `address add 198.18.${Math.floor(i / 200)}.${(i % 200) + 1}/32 dev lo`).join('\n');
      execFileSync('/usr/sbin/ip', ['-n', a, '-batch', '-'], { input: `${batch}\n` });
      const resync = await waitFor(c.got, (e) => e.type === 'resync' && e.reason === 'overflow', 'overflow resync');
      expect(resync.namespaces).toContain(a);
      expect(app.services.monitor!.overflows).toBeGreaterThan(0);
      const listed = (await overTcp(app.tcpUrl, 'GET', `/v1/namespaces/${a}/addresses?link=lo&limit=1000`)).json().items as Msg[];
      expect(listed.filter((x) => x.family === 4 && x.address.startsWith('198.18.')).length).toBe(200);
      c.close();
    } finally {
      await app.close();
    }
  });

  it('answers a since older than what is retained with a gap, then goes on', async () => {
    const base = await startRealApp({ config: { events: { ...(await import('../helpers/test-app.js')).testConfig().events, retentionCount: 5 } } });
    try {
      const a = nsName('mon-ret');
      expect((await overTcp(base.tcpUrl, 'POST', '/v1/namespaces', { name: a })).status).toBe(201);
      expect((await overTcp(base.tcpUrl, 'POST', `/v1/namespaces/${a}/links`, { name: 'r0', kind: 'bridge' })).status).toBe(201);
      for (let i = 0; i < 12; i++) ip('-n', a, 'link', 'set', 'r0', 'mtu', String(1400 + i));
      await until(() => base.services.events.log.lastSeq >= 12, 5000, 'events');
      await base.services.monitor!.settled();
      base.services.events.log.prune();
      const first = base.services.events.log.firstSeq;
      expect(first).toBeGreaterThan(2);
      const c = await connect(base, `?since=1`);
      await until(() => c.events().length >= 2, 5000, 'gap and events');
      expect(c.events()[0]).toEqual({ type: 'gap', from: 2, to: first - 1 });
      expect(c.events()[1]).toMatchObject({ seq: first });
      c.close();
    } finally {
      await base.close();
    }
  });

  it('gives a subscriber that does not read gap markers (or closes it with 4008), keeps its queue bounded, and others get everything', async () => {
    const cfg = (await import('../helpers/test-app.js')).testConfig().events;
    const app = await startRealApp({ config: { events: { ...cfg, subscriberQueue: 256 } } });
    try {
      const a = nsName('mon-slow');
      expect((await overTcp(app.tcpUrl, 'POST', '/v1/namespaces', { name: a })).status).toBe(201);
      expect((await overTcp(app.tcpUrl, 'POST', `/v1/namespaces/${a}/links`, { name: 's0', kind: 'bridge' })).status).toBe(201);
      const url = `${app.tcpUrl.replace('http', 'ws')}/v1/events?types=link.changed&namespace=${a}`;
      const open = (q = '') =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(url + q, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        });
      const slow = await open();
      const closing = await open('&onOverflow=close');
      const fast = await connect(app, `?types=link.changed&namespace=${a}`);
      const slowGot: Msg[] = [];
      slow.on('message', (d) => slowGot.push(JSON.parse(String(d))));
      let closeCode = 0;
      closing.on('close', (code) => (closeCode = code));
      // Neither reads from its socket: their queues fill once the TCP buffers are full.
      (slow as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
      (closing as unknown as { _socket: { pause(): void } })._socket.pause();
      // Paced, so one read of the monitor's socket (one publish) stays well under the queue size:
      // a reader that keeps up then never overflows.
      const N = 12000;
      for (let done = 0; done < N; done += 100) {
        const lines = Array.from({ length: 100 }, (_, i) => `link set dev s0 mtu ${1300 + ((done + i) % 2)}`).join('\n');
        execFileSync('/usr/sbin/ip', ['-n', a, '-batch', '-'], { input: `${lines}\n` });
        await new Promise((res) => setTimeout(res, 10));
      }
      await until(() => fast.events().filter((e) => e.type === 'link.changed').length >= N, 30_000, 'every event at the reading subscriber').catch((e) => {
        throw new Error(`${(e as Error).message}: got ${fast.events().length}, gaps ${JSON.stringify(fast.events().filter((x) => x.type === 'gap'))}, overflows ${app.services.monitor!.overflows}`);
      });
      const st = (await overTcp(app.tcpUrl, 'GET', '/v1/events/status')).json().subscribers as Msg[];
      // At most the queue size of events, and the one gap marker that stands for what was dropped.
      for (const s of st) expect(s.queueDepth).toBeLessThanOrEqual(256 + 1);
      expect(st.some((s) => s.dropped > 0)).toBe(true);
      (slow as unknown as { _socket: { resume(): void } })._socket.resume();
      await until(() => slowGot.some((m) => m.type === 'gap'), 10_000, 'a gap at the slow subscriber');
      const gap = slowGot.find((m) => m.type === 'gap')!;
      expect(gap.to).toBeGreaterThanOrEqual(gap.from);
      expect(fast.events().some((e) => e.type === 'gap')).toBe(false);
      const seqs = fast.events().map((e) => e.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      (closing as unknown as { _socket: { resume(): void } })._socket.resume();
      await until(() => closeCode !== 0, 10_000, 'the closing subscriber closed');
      expect(closeCode).toBe(4008);
      slow.close();
      fast.close();
    } finally {
      await app.close();
    }
  }, 60_000);
});

