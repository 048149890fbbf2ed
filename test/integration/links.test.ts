/**
 * Links against the real kernel, through the API only (addresses are added by hand with `ip`:
 * they are a later resource). Namespaces come from nsName() and are removed after each test;
 * host-side links are named `nnt…` and removed after each test too. Traffic uses 203.0.113.0/24
 * inside test namespaces only; nothing is ever addressed on a host-side link.
 */
import { readdirSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Iproute2Executor } from '../../src/executor/iproute2-executor.js';
import { ip, nsName, ping, trackHostLink, until } from '../helpers/kernel.js';
import { adminClient, type RealApp, createNamespaces, startRealApp } from '../helpers/real-app.js';

let r: RealApp;
beforeAll(async () => {
  r = await startRealApp();
});
afterAll(async () => {
  await r?.close();
});

let seq = 0;
/** A unique host-side link name (`nnt` + pid + counter, at most 15 characters), removed after the test. */
function hostLinkName(): string {
  const name = `nnt${(process.pid % 46656).toString(36)}${(seq++).toString(36)}`.slice(0, 15);
  trackHostLink(name);
  return name;
}

const { api } = adminClient(() => r);

/** Creates namespaces through the API (one per tag); as many names come back as tags went in. */
const namespaces = <T extends string[]>(...tags: T) => createNamespaces(r, ...tags);

async function create(ns: string, body: Record<string, unknown>): Promise<any> {
  const res = await api('POST', `/v1/namespaces/${ns}/links`, body);
  expect(res.status, res.body).toBe(201);
  return res.json();
}

function linkJson(ns: string | null, name: string): any {
  return JSON.parse(ns === null ? ip('-j', '-d', 'link', 'show', 'dev', name) : ip('-n', ns, '-j', '-d', 'link', 'show', 'dev', name))[0];
}


describe('links against the real kernel', () => {
  it('creates a veth between two namespaces, up, resolves the peer both ways, and carries traffic', async () => {
    const [a, b] = await namespaces('va', 'vb');
    const va = await create(a, { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: b }, up: true, labels: { t: '1' } });
    expect(va).toMatchObject({ name: 'va', namespace: a, kind: 'veth', state: 'up', managed: true, labels: { t: '1' }, peer: { namespace: b, name: 'vb' } });
    expect(linkJson(a, 'va').flags).toContain('UP');
    expect(linkJson(b, 'vb').flags).toContain('UP');
    expect(() => ip('link', 'show', 'dev', 'vb')).toThrow();
    const vb = (await api('GET', `/v1/namespaces/${b}/links/vb`)).json();
    expect(vb).toMatchObject({ state: 'up', operstate: 'UP', managed: true, peer: { namespace: a, name: 'va', index: va.index } });

    ip('-n', a, 'addr', 'add', '203.0.113.1/24', 'dev', 'va');
    ip('-n', b, 'addr', 'add', '203.0.113.2/24', 'dev', 'vb');
    expect(ping(a, '203.0.113.2')).toBe(true);
    expect(ping(b, '203.0.113.1')).toBe(true);

    const stats = (await api('GET', `/v1/namespaces/${a}/links/va/stats`)).json();
    expect(stats.txPackets).toBeGreaterThan(0);
    expect(stats.rxBytes).toBeGreaterThan(0);
    ping(a, '203.0.113.2');
    expect((await api('GET', `/v1/namespaces/${a}/links/va/stats`)).json().txPackets).toBeGreaterThan(stats.txPackets);

    // Deleting one end removes both.
    expect((await api('DELETE', `/v1/namespaces/${b}/links/vb`)).status).toBe(204);
    expect(() => ip('-n', a, 'link', 'show', 'dev', 'va')).toThrow();
    expect(() => ip('-n', b, 'link', 'show', 'dev', 'vb')).toThrow();
  });

  it('joins three namespaces on a bridge (master at creation and by PATCH); a detached port stops reaching the others', async () => {
    const [hub, n1, n2, n3] = await namespaces('hub', 'n1', 'n2', 'n3');
    await create(hub, { name: 'br0', kind: 'bridge', stp: false, up: true });
    await create(hub, { name: 'p1', kind: 'veth', peer: { name: 'e0', namespace: n1 }, master: 'br0', up: true });
    await create(hub, { name: 'p2', kind: 'veth', peer: { name: 'e0', namespace: n2 }, master: 'br0', up: true });
    await create(hub, { name: 'p3', kind: 'veth', peer: { name: 'e0', namespace: n3 }, up: true });
    const attached = await api('PATCH', `/v1/namespaces/${hub}/links/p3`, { master: 'br0' });
    expect(attached.json().master).toBe('br0');
    expect(linkJson(hub, 'p3').master).toBe('br0');
    const ports = (await api('GET', `/v1/namespaces/${hub}/links?master=br0`)).json().items.map((l: { name: string }) => l.name);
    expect(ports).toEqual(['p1', 'p2', 'p3']);
    [n1, n2, n3].forEach((ns, i) => ip('-n', ns, 'addr', 'add', `203.0.113.${i + 1}/24`, 'dev', 'e0'));
    expect(ping(n1, '203.0.113.2')).toBe(true);
    expect(ping(n1, '203.0.113.3')).toBe(true);
    expect(ping(n2, '203.0.113.3')).toBe(true);

    expect((await api('PATCH', `/v1/namespaces/${hub}/links/p3`, { master: null })).json().master).toBeNull();
    expect(linkJson(hub, 'p3').master).toBeUndefined();
    expect(ping(n1, '203.0.113.3')).toBe(false);
    expect(ping(n1, '203.0.113.2')).toBe(true);
  });

  it('creates macvlan and vxlan on a parent inside a namespace, and tun, tap and ifb', async () => {
    const [a] = await namespaces('kinds');
    await create(a, { name: 'p0', kind: 'veth', peer: { name: 'p1' } });
    const mv = await create(a, { name: 'mv0', kind: 'macvlan', parent: 'p1', mode: 'private' });
    expect(mv).toMatchObject({ kind: 'macvlan', macvlan: { mode: 'private' }, parent: { namespace: a, name: 'p1' } });
    expect(linkJson(a, 'mv0').linkinfo.info_data.mode).toBe('private');
    const vx = await create(a, { name: 'vx0', kind: 'vxlan', vni: 4242, local: '203.0.113.1', remote: '203.0.113.2', parent: 'p1' });
    expect(vx).toMatchObject({ vxlan: { vni: 4242, remote: '203.0.113.2', dstport: 4789 }, parent: { name: 'p1' } });
    expect(linkJson(a, 'vx0').linkinfo.info_data).toMatchObject({ id: 4242, port: 4789, link: 'p1' });
    const vni = await api('POST', `/v1/namespaces/${a}/links`, { name: 'vx1', kind: 'vxlan', vni: 4242, remote: '203.0.113.3' });
    expect(vni.json().code).toBe('LINK_VNI_IN_USE');
    expect((await create(a, { name: 'tun0', kind: 'tun', mtu: 1400 })).mtu).toBe(1400);
    expect(linkJson(a, 'tun0').mtu).toBe(1400);
    expect((await create(a, { name: 'tap0', kind: 'tap', mac: '02:00:00:00:00:42' })).mac).toBe('02:00:00:00:00:42');
    expect((await create(a, { name: 'ifb0', kind: 'ifb' })).kind).toBe('ifb');
    const kinds = (await api('GET', `/v1/namespaces/${a}/links`)).json().items.map((l: { name: string; kind: string }) => `${l.name}:${l.kind}`);
    expect(kinds).toEqual(['ifb0:ifb', 'lo:loopback', 'mv0:macvlan', 'p0:veth', 'p1:veth', 'tap0:tap', 'tun0:tun', 'vx0:vxlan']);
    const dummy = await api('POST', `/v1/namespaces/${a}/links`, { name: 'd0', kind: 'dummy' });
    const caps = (await api('GET', '/v1/capabilities')).json();
    if (!caps.linkKinds.supported.includes('dummy')) {
      expect(dummy.json()).toMatchObject({ code: 'LINK_KIND_UNSUPPORTED', supportedKinds: expect.arrayContaining(['veth', 'bridge']) });
    }
  });

  it('patches mtu, mac, alias, txqlen, up and down, and moves a link with a rename', async () => {
    const [a, b] = await namespaces('pa', 'pb');
    await create(a, { name: 'x0', kind: 'veth', peer: { name: 'x1' }, labels: { keep: 'me' } });
    let res = await api('PATCH', `/v1/namespaces/${a}/links/x0`, { mtu: 9000, mac: '02:00:00:00:01:01', alias: 'patched', txqlen: 321, up: true });
    expect(res.status, res.body).toBe(200);
    expect(res.json()).toMatchObject({ mtu: 9000, mac: '02:00:00:00:01:01', alias: 'patched', txqlen: 321, state: 'up' });
    const k = linkJson(a, 'x0');
    expect(k).toMatchObject({ mtu: 9000, address: '02:00:00:00:01:01', ifalias: 'patched', txqlen: 321 });
    expect(k.flags).toContain('UP');
    res = await api('PATCH', `/v1/namespaces/${a}/links/x0`, { up: false, alias: null });
    expect(res.json()).toMatchObject({ state: 'down', alias: null });
    expect(linkJson(a, 'x0').ifalias).toBeUndefined();
    expect((await api('PATCH', `/v1/namespaces/${a}/links/x0`, { mtu: 70000 })).json()).toMatchObject({ code: 'LINK_MTU_INVALID', step: 'mtu' });

    res = await api('PATCH', `/v1/namespaces/${a}/links/x0`, { namespace: b, name: 'moved0', up: true });
    expect(res.status, res.body).toBe(200);
    expect(res.headers.location).toBe(`/v1/namespaces/${b}/links/moved0`);
    expect(res.json()).toMatchObject({ name: 'moved0', namespace: b, state: 'up', labels: { keep: 'me' }, managed: true, peer: { namespace: a, name: 'x1' } });
    expect(() => ip('-n', a, 'link', 'show', 'dev', 'x0')).toThrow();
    expect(linkJson(b, 'moved0').mtu).toBe(9000);
    expect((await api('GET', `/v1/namespaces/${a}/links/x1`)).json().peer).toMatchObject({ namespace: b, name: 'moved0' });
  });

  it('undoes a creation whose later step fails, and says which step', async () => {
    const [a] = await namespaces('undo');
    await create(a, { name: 'br0', kind: 'bridge' });
    // The macvlan's MTU is checked at creation: above its parent's, the kernel refuses it.
    await create(a, { name: 'p0', kind: 'veth', peer: { name: 'p1' } });
    const res = await api('POST', `/v1/namespaces/${a}/links`, { name: 'mv0', kind: 'macvlan', parent: 'p1', mtu: 9000 });
    expect(res.status).toBe(422);
    expect(res.json()).toMatchObject({ code: 'LINK_MTU_INVALID', step: 'create' });
    // A tap's mac is a later step: a multicast one fails there, and the tap is removed again.
    const tap = await api('POST', `/v1/namespaces/${a}/links`, { name: 'tap0', kind: 'tap', mac: '01:00:5e:00:00:01', up: true });
    expect(tap.json()).toMatchObject({ code: 'LINK_MAC_INVALID', step: 'mac', undone: true });
    expect(() => ip('-n', a, 'link', 'show', 'dev', 'tap0')).toThrow();
  });

  it('creates a veth with one end in host (no address on it), and removes both ends', async () => {
    const [a] = await namespaces('host');
    const h = hostLinkName();
    const va = await create(a, { name: 'va', kind: 'veth', peer: { name: h, namespace: 'host' }, up: true });
    expect(va.peer).toMatchObject({ namespace: 'host', name: h });
    expect(linkJson(null, h).flags).toContain('UP');
    const hv = (await api('GET', `/v1/namespaces/host/links/${h}`)).json();
    expect(hv, JSON.stringify(hv)).toMatchObject({ managed: true, peer: { namespace: a, name: "va" } });
    expect((await api('PATCH', `/v1/namespaces/host/links/${h}`, { mtu: 1400 })).json().mtu).toBe(1400);
    expect((await api('DELETE', `/v1/namespaces/host/links/${h}`)).status).toBe(204);
    expect(() => ip('link', 'show', 'dev', h)).toThrow();
    expect(() => ip('-n', a, 'link', 'show', 'dev', 'va')).toThrow();
  });

  it('refuses changes to lo and eth0 in host with 403 HOST_PROTECTED, and leaves them as they were', async () => {
    const before = ip('-j', 'link', 'show');
    for (const [method, path, body] of [
      ['PATCH', '/v1/namespaces/host/links/lo', { up: false }],
      ['PATCH', '/v1/namespaces/host/links/eth0', { mtu: 1280 }],
      ['DELETE', '/v1/namespaces/host/links/eth0', undefined],
      ['POST', '/v1/namespaces/host/links', { name: hostLinkName(), kind: 'macvlan', parent: 'eth0' }],
    ] as const) {
      const res = await api(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.json().code).toBe('HOST_PROTECTED');
    }
    expect(ip('-j', 'link', 'show')).toBe(before);
    expect((await api('GET', '/v1/namespaces/host/links/eth0')).json()).toMatchObject({ kind: 'device', managed: false });
  });

  it('deletes a namespace that has a worker inside it (its worker is closed first, not counted as a process)', async () => {
    const [a, b] = await namespaces('wa', 'wb');
    await create(a, { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: b }, up: true });
    expect(r.services.executor).toBeDefined();
    expect((await api('DELETE', `/v1/namespaces/${b}`)).status).toBe(204);
    expect((await api('DELETE', `/v1/namespaces/${a}`)).status).toBe(204);
    expect(ip('netns', 'list')).not.toContain(a);
  });
});

/**
 * Pids of processes holding an fd to this namespace file (`ip` opens /run/netns/NAME: the fd's
 * link shows that path, so compare the inode behind it).
 */
function holders(ns: { dev: number; ino: number }): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const st = statSync(`/proc/${pid}/fd/${fd}`);
        if (st.ino === ns.ino && st.dev === ns.dev) out.push(Number(pid));
      } catch {
        // closed meanwhile
      }
    }
  }
  return out;
}

describe('per-namespace batch workers', () => {
  it('run changes inside the namespace, are not its processes, and are closed (with every worker that named it) before it is deleted', async () => {
    // Batch workers are the fallback for veths and link sets (and the path of link.move, link.delete
    // and other kinds): netlinkChanges: false makes every change here a batch line.
    const ex = new Iproute2Executor({ workerIdleMs: 60_000, netlinkChanges: false });
    try {
      const [a, b] = [nsName('wka'), nsName('wkb')];
      await ex.run({ kind: 'netns.add', ns: a });
      await ex.run({ kind: 'netns.add', ns: b });
      const nsB = statSync(`/run/netns/${b}`);
      await ex.run({ kind: 'link.add', ns: a, spec: { name: 'va', linkKind: 'veth', peer: { name: 'vb', ns: b } } });
      await ex.run({ kind: 'link.set', ns: b, name: 'vb', change: { up: true } });
      expect(ex.workerNamespaces).toEqual([a, b].sort());
      expect((await ex.run({ kind: 'netns.pids', ns: a })).pids).toEqual([]);
      expect((await ex.run({ kind: 'netns.pids', ns: b })).pids).toEqual([]);
      // a's worker named b (`netns b`) and holds an fd to it.
      expect(holders(nsB).length).toBeGreaterThan(0);
      await ex.run({ kind: 'netns.delete', ns: b });
      expect(ex.workerNamespaces).toEqual([]);
      expect(holders(nsB)).toEqual([]);
      // A later change in a starts a fresh worker.
      await ex.run({ kind: 'link.add', ns: a, spec: { name: 'br0', linkKind: 'bridge' } });
      expect(ex.workerNamespaces).toEqual([a]);
    } finally {
      await ex.close();
    }
  });

  it('closes an idle worker', async () => {
    const ex = new Iproute2Executor({ workerIdleMs: 100 });
    try {
      const a = nsName('idle');
      await ex.run({ kind: 'netns.add', ns: a });
      // A tap is made by a batch line (veths and bridges go over netlink).
      await ex.run({ kind: 'link.add', ns: a, spec: { name: 'tp0', linkKind: 'tap' } });
      expect(ex.workerNamespaces).toEqual([a]);
      await until(() => ex.workerNamespaces.length === 0, 3000, 'the idle worker to close');
    } finally {
      await ex.close();
    }
  });

  it('moves a link into host and back through the API (host named by the daemon namespace file)', async () => {
    const [a] = await namespaces('mvh');
    const h = hostLinkName();
    await create(a, { name: 't0', kind: 'tap' });
    let res = await api('PATCH', `/v1/namespaces/${a}/links/t0`, { namespace: 'host', name: h });
    expect(res.status, res.body).toBe(200);
    expect(res.json()).toMatchObject({ namespace: 'host', name: h, managed: true });
    expect(linkJson(null, h).linkinfo.info_kind).toBe('tun');
    res = await api('PATCH', `/v1/namespaces/host/links/${h}`, { namespace: a, name: 't1' });
    expect(res.json()).toMatchObject({ namespace: a, name: 't1', managed: true });
    expect(() => ip('link', 'show', 'dev', h)).toThrow();
  });
});
