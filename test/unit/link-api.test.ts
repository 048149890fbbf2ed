import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/app-error.js';
import { FakeExecutor } from '../../src/executor/fake-executor.js';
import type { Op } from '../../src/executor/ops.js';
import { buildTestApp, expectProblem, testConfig, type TestApp } from '../helpers/test-app.js';

const json = { 'content-type': 'application/json' };

async function withNamespaces(...names: string[]): Promise<TestApp> {
  const t = await buildTestApp();
  for (const name of names) {
    const res = await t.app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name } });
    expect(res.statusCode).toBe(201);
  }
  return t;
}

const post = (t: TestApp, ns: string, payload: unknown) => t.app.inject({ method: 'POST', url: `/v1/namespaces/${ns}/links`, headers: json, payload: payload as object });
const patch = (t: TestApp, ns: string, name: string, payload: unknown, type = 'application/json') =>
  t.app.inject({ method: 'PATCH', url: `/v1/namespaces/${ns}/links/${name}`, headers: { 'content-type': type }, payload: payload as object });
const get = (t: TestApp, path: string) => t.app.inject({ url: path });
const changes = (t: TestApp, from: number): Op[] => t.kernel.calls.slice(from).filter((c) => ['link.add', 'link.set', 'link.move', 'link.delete'].includes(c.kind));

describe('POST /v1/namespaces/{ns}/links', () => {
  it('creates a veth with its peer in another namespace, both up, and resolves the peer both ways', async () => {
    const t = await withNamespaces('a', 'b');
    const res = await post(t, 'a', { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'b' }, up: true, labels: { lab: 'x' } });
    expect(res.statusCode).toBe(201);
    expect(res.headers.location).toBe('/v1/namespaces/a/links/va');
    expect(res.json()).toMatchObject({
      name: 'va', namespace: 'a', kind: 'veth', state: 'up', operstate: 'UP', managed: true, labels: { lab: 'x' },
      peer: { namespace: 'b', name: 'vb' }, parent: null, master: null,
    });
    expect(res.json().createdAt).toMatch(/^\d{4}-/);
    const vb = (await get(t, '/v1/namespaces/b/links/vb')).json();
    expect(vb).toMatchObject({ name: 'vb', state: 'up', managed: true, labels: {}, peer: { namespace: 'a', name: 'va', index: res.json().index } });
    expect(t.kernel.namespace('b')?.links).toEqual(['lo', 'vb']);
  });

  it('creates a veth with one end in host and resolves host as the peer namespace', async () => {
    const t = await withNamespaces('a');
    const res = await post(t, 'a', { name: 'va', kind: 'veth', peer: { name: 'nnh0', namespace: 'host' } });
    expect(res.statusCode).toBe(201);
    expect(res.json().peer).toMatchObject({ namespace: 'host', name: 'nnh0' });
    expect((await get(t, '/v1/namespaces/host/links/nnh0')).json()).toMatchObject({ managed: true, peer: { namespace: 'a', name: 'va' } });
  });

  it('creates a veth with both ends in one namespace when peer.namespace is left out', async () => {
    const t = await withNamespaces('a');
    const res = await post(t, 'a', { name: 'v0', kind: 'veth', peer: { name: 'v1' } });
    expect(res.json().peer).toMatchObject({ namespace: 'a', name: 'v1' });
  });

  it('creates a bridge, a port attached at creation, a macvlan and a vxlan on a parent, tun, tap and ifb', async () => {
    const t = await withNamespaces('a');
    expect((await post(t, 'a', { name: 'br0', kind: 'bridge', stp: true, up: true })).json()).toMatchObject({ kind: 'bridge', bridge: { stp: true, vlanFiltering: false }, state: 'up' });
    const port = await post(t, 'a', { name: 'p0', kind: 'veth', peer: { name: 'p1' }, master: 'br0', mtu: 9000 });
    expect(port.json()).toMatchObject({ master: 'br0', mtu: 9000 });
    expect((await get(t, '/v1/namespaces/a/links/p1')).json().mtu).toBe(9000);
    expect((await post(t, 'a', { name: 'mv0', kind: 'macvlan', parent: 'p1', mode: 'private' })).json()).toMatchObject({ kind: 'macvlan', macvlan: { mode: 'private' }, parent: { namespace: 'a', name: 'p1' } });
    expect((await post(t, 'a', { name: 'vx0', kind: 'vxlan', vni: 42, local: '203.0.113.1', remote: '203.0.113.2', parent: 'p1' })).json()).toMatchObject({
      kind: 'vxlan', vxlan: { vni: 42, local: '203.0.113.1', remote: '203.0.113.2', group: null, dstport: 4789 }, parent: { namespace: 'a', name: 'p1' },
    });
    expect((await post(t, 'a', { name: 'tun0', kind: 'tun', mtu: 1400, mac: '02:00:00:00:00:09' })).json()).toMatchObject({ kind: 'tun', mtu: 1400, tun: { persist: true } });
    expect((await post(t, 'a', { name: 'tap0', kind: 'tap' })).json()).toMatchObject({ kind: 'tap' });
    expect((await post(t, 'a', { name: 'ifb0', kind: 'ifb', alias: 'mirror' })).json()).toMatchObject({ kind: 'ifb', alias: 'mirror' });
    const ports = (await get(t, '/v1/namespaces/a/links?master=br0')).json().items.map((l: { name: string }) => l.name);
    expect(ports).toEqual(['p0']);
  });

  it('sets the mtu and mac of a tun as steps after creating it (ip tuntap takes neither)', async () => {
    const t = await withNamespaces('a');
    const from = t.kernel.calls.length;
    await post(t, 'a', { name: 'tun0', kind: 'tun', mtu: 1400 });
    expect(changes(t, from)).toEqual([
      { kind: 'link.add', ns: 'a', spec: { name: 'tun0', linkKind: 'tun' } },
      { kind: 'link.set', ns: 'a', name: 'tun0', change: { mtu: 1400 } },
    ]);
  });

  it('creates the local end of a veth up in the same request, then brings the peer up inside its own namespace', async () => {
    const t = await withNamespaces('a', 'b');
    const from = t.kernel.calls.length;
    const res = await post(t, 'a', { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'b' }, up: true });
    expect(res.json()).toMatchObject({ name: 'va', state: 'up' });
    const made = changes(t, from);
    expect(made.map((c) => [c.kind, 'ns' in c ? c.ns : ''])).toEqual([['link.add', 'a'], ['link.set', 'b']]);
    expect(made[0]).toMatchObject({ spec: { linkKind: 'veth', up: true } });
    expect(made[1]).toMatchObject({ name: 'vb', change: { up: true } });
  });

  it('sets alias and master before bringing a new link up, so then up is a step of its own', async () => {
    const t = await withNamespaces('a');
    await post(t, 'a', { name: 'br0', kind: 'bridge' });
    const from = t.kernel.calls.length;
    await post(t, 'a', { name: 'br1', kind: 'bridge', alias: 'x', up: true });
    const made = changes(t, from);
    expect(made.map((c) => c.kind)).toEqual(['link.add', 'link.set', 'link.set']);
    expect(made[0]).not.toMatchObject({ spec: { up: true } });
    expect(made.slice(1).map((c) => ('change' in c ? c.change : undefined))).toEqual([{ alias: 'x' }, { up: true }]);
  });

  it('returns 409 LINK_EXISTS for a taken name and for a taken peer name, changing nothing', async () => {
    const t = await withNamespaces('a', 'b');
    await post(t, 'a', { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'b' } });
    const from = t.kernel.calls.length;
    expectProblem(await post(t, 'a', { name: 'va', kind: 'bridge' }), 'LINK_EXISTS', 409);
    const body = expectProblem(await post(t, 'a', { name: 'vc', kind: 'veth', peer: { name: 'vb', namespace: 'b' } }), 'LINK_EXISTS', 409);
    expect(body.detail).toContain("'vb' in namespace 'b'");
    expect(changes(t, from)).toEqual([]);
  });

  it('returns 409 LINK_EXISTS from the kernel when the name was taken meanwhile', async () => {
    const t = await withNamespaces('a');
    t.kernel.expect('link.add', new AppError('LINK_EXISTS', 'a link "x" exists'));
    const body = expectProblem(await post(t, 'a', { name: 'x', kind: 'bridge' }), 'LINK_EXISTS', 409);
    expect(body.step).toBe('create');
  });

  it.each(['dummy', 'vlan', 'vrf', 'bond', 'wireguard', 'gre'])('returns 422 LINK_KIND_UNSUPPORTED naming the kinds that work for %s when the kernel lacks it', async (kind) => {
    const kernel = FakeExecutor.kernel().default('probe.linkKind', (op) => ({ supported: ['veth', 'bridge', 'macvlan', 'vxlan', 'tun', 'tap', 'ifb'].includes(op.linkKind) }));
    const t = await buildTestApp({ kernel });
    await t.app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'a' } });
    const body = expectProblem(await post(t, 'a', { name: 'x0', kind, parent: 'lo', vlanId: 5, table: 10, local: '198.51.100.1', remote: '198.51.100.2' }), 'LINK_KIND_UNSUPPORTED', 422);
    expect(body.supportedKinds).toEqual(['veth', 'bridge', 'macvlan', 'vxlan', 'tun', 'tap', 'ifb']);
    expect(body.detail).toContain('veth, bridge, macvlan, vxlan, tun, tap, ifb');
  });

  it('creates a dummy where the kernel has it', async () => {
    const t = await withNamespaces('a');
    expect((await post(t, 'a', { name: 'd0', kind: 'dummy' })).json()).toMatchObject({ kind: 'dummy' });
  });

  it('returns 422 LINK_FEATURE_UNSUPPORTED for vlanFiltering when the kernel lacks it', async () => {
    const kernel = FakeExecutor.kernel().default('probe.linkFeature', { supported: false, reason: 'Operation not supported' });
    const t = await buildTestApp({ kernel });
    await t.app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'a' } });
    const body = expectProblem(await post(t, 'a', { name: 'br0', kind: 'bridge', vlanFiltering: true }), 'LINK_FEATURE_UNSUPPORTED', 422);
    expect(body.feature).toBe('bridge.vlan_filtering');
  });

  it.each([
    [{ name: 'x', kind: 'nosuchkind' }, 'body.kind'],
    [{ name: 'a;b', kind: 'bridge' }, 'body.name'],
    [{ name: '-n', kind: 'bridge' }, 'body.name'],
    [{ name: 'x'.repeat(16), kind: 'bridge' }, 'body.name'],
    [{ name: 'x', kind: 'bridge', mtu: 67 }, 'body.mtu'],
    [{ name: 'x', kind: 'bridge', mtu: 2 ** 31 }, 'body.mtu'],
    [{ name: 'x', kind: 'bridge', mac: '02:00:00:00:00' }, 'body.mac'],
    [{ name: 'x', kind: 'bridge', mac: 'zz:00:00:00:00:00' }, 'body.mac'],
    [{ name: 'x', kind: 'bridge', alias: 'has space' }, 'body.alias'],
    [{ name: 'x', kind: 'bridge', colour: 'red' }, 'body.colour'],
    [{ name: 'x', kind: 'veth' }, 'body.peer'],
    [{ name: 'x', kind: 'veth', peer: { name: 'y', namespace: '../etc' } }, 'body.peer.namespace'],
    [{ name: 'x', kind: 'bridge', parent: 'lo' }, 'body.parent'],
    [{ name: 'x', kind: 'macvlan' }, 'body.parent'],
    [{ name: 'x', kind: 'macvlan', parent: 'lo', mode: 'weird' }, 'body.mode'],
    [{ name: 'x', kind: 'vxlan' }, 'body.vni'],
    [{ name: 'x', kind: 'vxlan', vni: 16777216 }, 'body.vni'],
    [{ name: 'x', kind: 'vxlan', vni: 1, remote: 'not-an-ip' }, 'body.remote'],
    [{ name: 'x', kind: 'vxlan', vni: 1, remote: '203.0.113.2', group: '239.1.1.1', parent: 'lo' }, 'body.group'],
    [{ name: 'x', kind: 'vxlan', vni: 1, group: '203.0.113.2', parent: 'lo' }, 'body.group'],
    [{ name: 'x', kind: 'vxlan', vni: 1, dstport: 70000 }, 'body.dstport'],
    [{ name: 'x', kind: 'veth', peer: { name: 'x' } }, 'body.peer.name'],
  ])('returns 400 REQUEST_INVALID for %j naming %s, changing nothing', async (payload, field) => {
    const t = await withNamespaces('a');
    const from = t.kernel.calls.length;
    const body = expectProblem(await post(t, 'a', payload), 'REQUEST_INVALID', 400);
    expect(body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field })]));
    expect(changes(t, from)).toEqual([]);
  });

  it('returns 404 NAMESPACE_NOT_FOUND for a missing namespace and 422 for a missing peer namespace, parent or master', async () => {
    const t = await withNamespaces('a');
    expectProblem(await post(t, 'nope', { name: 'x', kind: 'bridge' }), 'NAMESPACE_NOT_FOUND', 404);
    expectProblem(await post(t, 'a', { name: 'x', kind: 'veth', peer: { name: 'y', namespace: 'nope' } }), 'TARGET_NAMESPACE_NOT_FOUND', 422);
    expectProblem(await post(t, 'a', { name: 'x', kind: 'macvlan', parent: 'nope0' }), 'LINK_PARENT_NOT_FOUND', 422);
    expectProblem(await post(t, 'a', { name: 'x', kind: 'bridge', master: 'nobr' }), 'LINK_MASTER_NOT_FOUND', 422);
    await post(t, 'a', { name: 'v0', kind: 'veth', peer: { name: 'v1' } });
    const body = expectProblem(await post(t, 'a', { name: 'x', kind: 'tap', master: 'v0' }), 'LINK_MASTER_INVALID', 422);
    expect(body.detail).toContain('is a veth, not a bridge');
    expect(t.kernel.namespace('a')?.links).toEqual(['lo', 'v0', 'v1']);
  });

  it.each([
    ['alias', { alias: 'x' }],
    ['master', { master: 'br0' }],
    ['up', { up: true }],
  ])('removes the link again and names the step when %s fails', async (step, extra) => {
    const t = await withNamespaces('a', 'b');
    await post(t, 'a', { name: 'br0', kind: 'bridge' });
    t.kernel.expect('link.set', (op) => step in op.change, new AppError('LINK_CHANGE_UNSUPPORTED', 'no'));
    const body = expectProblem(await post(t, 'a', { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'b' }, alias: 'y', master: 'br0', up: true, ...extra }), 'LINK_CHANGE_UNSUPPORTED', 422);
    expect(body).toMatchObject({ step, undone: true });
    expect(body.detail).toContain(`failed at step ${step}`);
    expect(t.kernel.namespace('a')?.links).toEqual(['lo', 'br0']);
    expect(t.kernel.namespace('b')?.links).toEqual(['lo']);
    expect((await get(t, '/v1/namespaces/a/links')).json().items.map((l: { name: string }) => l.name)).toEqual(['br0', 'lo']);
    t.kernel.assertDone();
  });

  it('removes both ends when bringing the peer up fails, and runs the undo even when the queue is full', async () => {
    const t = await withNamespaces('a', 'b');
    t.kernel.expect('link.set', (op) => op.ns === 'b', new AppError('EXECUTOR_TIMEOUT', 'slow'));
    const body = expectProblem(await post(t, 'a', { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'b' }, up: true }), 'EXECUTOR_TIMEOUT', 504);
    expect(body.step).toBe('peerUp');
    expect(t.kernel.namespace('b')?.links).toEqual(['lo']);
    expect(t.kernel.namespace('a')?.links).toEqual(['lo']);
  });

  it('says when a half-created link could not be removed', async () => {
    const t = await withNamespaces('a');
    t.kernel.expect('link.set', new AppError('LINK_CHANGE_UNSUPPORTED', 'no')).expect('link.delete', new AppError('EXECUTOR_TIMEOUT', 'slow'));
    const body = expectProblem(await post(t, 'a', { name: 'br0', kind: 'bridge', alias: 'x', up: true }), 'LINK_CHANGE_UNSUPPORTED', 422);
    expect(body).toMatchObject({ step: 'alias', undone: false });
    expect(body.detail).toContain('could not be removed');
  });

  it('maps a rejected MTU to 422 LINK_MTU_INVALID at the create step', async () => {
    const t = await withNamespaces('a');
    const body = expectProblem(await post(t, 'a', { name: 'br0', kind: 'bridge', mtu: 70000 }), 'LINK_MTU_INVALID', 422);
    expect(body.step).toBe('create');
  });

  it('maps a rejected MAC to 422 LINK_MAC_INVALID', async () => {
    const t = await withNamespaces('a');
    expectProblem(await post(t, 'a', { name: 'br0', kind: 'bridge', mac: '01:00:5e:00:00:01' }), 'LINK_MAC_INVALID', 422);
  });
});

describe('GET /v1/namespaces/{ns}/links', () => {
  it('lists host links (read-only ones too) with kind, state and managed: false', async () => {
    const t = await buildTestApp();
    const items = (await get(t, '/v1/namespaces/host/links')).json().items;
    expect(items.map((l: { name: string; kind: string; managed: boolean }) => [l.name, l.kind, l.managed])).toEqual([
      ['eth0', 'device', false],
      ['lo', 'loopback', false],
    ]);
  });

  it('filters by kind, managed and labelSelector, and pages', async () => {
    const t = await withNamespaces('a');
    await post(t, 'a', { name: 'br0', kind: 'bridge', labels: { tier: 'core' } });
    await post(t, 'a', { name: 'br1', kind: 'bridge', labels: { tier: 'edge' } });
    await post(t, 'a', { name: 'tap0', kind: 'tap' });
    const names = async (q: string) => (await get(t, `/v1/namespaces/a/links?${q}`)).json().items.map((l: { name: string }) => l.name);
    expect(await names('kind=bridge')).toEqual(['br0', 'br1']);
    expect(await names('labelSelector=tier=core')).toEqual(['br0']);
    expect(await names('labelSelector=!tier')).toEqual(['lo', 'tap0']);
    expect(await names('managed=false')).toEqual(['lo']);
    const p1 = (await get(t, '/v1/namespaces/a/links?limit=3')).json();
    const p2 = (await get(t, `/v1/namespaces/a/links?limit=3&cursor=${p1.next}`)).json();
    expect([...p1.items, ...p2.items].map((l: { name: string }) => l.name)).toEqual(['br0', 'br1', 'lo', 'tap0']);
  });

  it('returns 404 NAMESPACE_NOT_FOUND and LINK_NOT_FOUND, and 400 for bad names and queries', async () => {
    const t = await withNamespaces('a');
    expectProblem(await get(t, '/v1/namespaces/nope/links'), 'NAMESPACE_NOT_FOUND', 404);
    expectProblem(await get(t, '/v1/namespaces/a/links/nope0'), 'LINK_NOT_FOUND', 404);
    expectProblem(await get(t, '/v1/namespaces/a/links/nope0/stats'), 'LINK_NOT_FOUND', 404);
    expectProblem(await get(t, '/v1/namespaces/a/links/x%20y'), 'REQUEST_INVALID', 400);
    expectProblem(await get(t, '/v1/namespaces/a/links?bogus=1'), 'REQUEST_INVALID', 400);
  });

  it('shows a peer in a namespace without a name as namespace null', async () => {
    const t = await withNamespaces('a', 'b');
    await post(t, 'a', { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'b' } });
    t.kernel.default('link.nsids', { nsids: [] });
    expect((await get(t, '/v1/namespaces/a/links/va')).json().peer).toMatchObject({ namespace: null, name: null });
  });

  it('answers the counters of a link', async () => {
    const t = await withNamespaces('a');
    await post(t, 'a', { name: 'br0', kind: 'bridge' });
    Object.assign(t.kernel.link('a', 'br0')!.counters, { rxBytes: 2 ** 40, txPackets: 7 });
    expect((await get(t, '/v1/namespaces/a/links/br0/stats')).json()).toEqual({
      rxBytes: 2 ** 40, txBytes: 0, rxPackets: 0, txPackets: 7, rxErrors: 0, txErrors: 0, rxDropped: 0, txDropped: 0, multicast: 0, collisions: 0,
    });
  });
});

describe('PATCH /v1/namespaces/{ns}/links/{name}', () => {
  it('changes mtu, mac, alias, txqlen and state, as json or merge-patch+json', async () => {
    const t = await withNamespaces('a');
    await post(t, 'a', { name: 'br0', kind: 'bridge', alias: 'old' });
    let res = await patch(t, 'a', 'br0', { mtu: 9000, mac: '02:AA:00:00:00:01', txqlen: 500, up: true }, 'application/merge-patch+json');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ mtu: 9000, mac: '02:aa:00:00:00:01', txqlen: 500, state: 'up', alias: 'old' });
    res = await patch(t, 'a', 'br0', { alias: null, up: false });
    expect(res.json()).toMatchObject({ alias: null, state: 'down' });
  });

  it('attaches to a bridge and detaches with master: null', async () => {
    const t = await withNamespaces('a');
    await post(t, 'a', { name: 'br0', kind: 'bridge' });
    await post(t, 'a', { name: 'v0', kind: 'veth', peer: { name: 'v1' } });
    expect((await patch(t, 'a', 'v0', { master: 'br0' })).json().master).toBe('br0');
    expect((await patch(t, 'a', 'v0', { master: null })).json().master).toBeNull();
    expectProblem(await patch(t, 'a', 'v0', { master: 'v1' }), 'LINK_MASTER_INVALID', 422);
    expectProblem(await patch(t, 'a', 'v0', { master: 'nobr' }), 'LINK_MASTER_NOT_FOUND', 422);
  });

  it('moves a link to another namespace with a new name, keeping its labels, and answers its new Location', async () => {
    const t = await withNamespaces('a', 'b', 'c');
    await post(t, 'a', { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'b' }, labels: { k: 'v' } });
    const res = await patch(t, 'a', 'va', { namespace: 'c', name: 'eth1', up: true });
    expect(res.statusCode).toBe(200);
    expect(res.headers.location).toBe('/v1/namespaces/c/links/eth1');
    expect(res.json()).toMatchObject({ name: 'eth1', namespace: 'c', state: 'up', managed: true, labels: { k: 'v' }, peer: { namespace: 'b', name: 'vb' } });
    expect((await get(t, '/v1/namespaces/b/links/vb')).json().peer).toMatchObject({ namespace: 'c', name: 'eth1' });
    expectProblem(await get(t, '/v1/namespaces/a/links/va'), 'LINK_NOT_FOUND', 404);
  });

  it('gives a new link under an old name no labels (records follow the ifindex, not the name)', async () => {
    const t = await withNamespaces('a');
    await post(t, 'a', { name: 'br0', kind: 'bridge', labels: { k: 'v' } });
    await t.app.inject({ method: 'DELETE', url: '/v1/namespaces/a/links/br0' });
    const res = await post(t, 'a', { name: 'br0', kind: 'bridge' });
    expect(res.json().labels).toEqual({});
  });

  it('refuses a move onto a taken name (409), into a missing namespace (422), and a rename without a move (400)', async () => {
    const t = await withNamespaces('a', 'b');
    await post(t, 'a', { name: 'x0', kind: 'tap' });
    await post(t, 'b', { name: 'x0', kind: 'tap' });
    expectProblem(await patch(t, 'a', 'x0', { namespace: 'b' }), 'LINK_EXISTS', 409);
    expectProblem(await patch(t, 'a', 'x0', { namespace: 'nope' }), 'TARGET_NAMESPACE_NOT_FOUND', 422);
    expectProblem(await patch(t, 'a', 'x0', { name: 'x1' }), 'REQUEST_INVALID', 400);
  });

  it('undoes the steps before a failing one and names it', async () => {
    const t = await withNamespaces('a');
    await post(t, 'a', { name: 'br0', kind: 'bridge' });
    t.kernel.expect('link.set', (op) => 'up' in op.change, new AppError('LINK_CHANGE_UNSUPPORTED', 'no'));
    const body = expectProblem(await patch(t, 'a', 'br0', { mtu: 9000, alias: 'new', up: true }), 'LINK_CHANGE_UNSUPPORTED', 422);
    expect(body).toMatchObject({ step: 'up', undone: true });
    expect((await get(t, '/v1/namespaces/a/links/br0')).json()).toMatchObject({ mtu: 1500, alias: null, state: 'down' });
  });

  it('moves a link back when a step after the move fails', async () => {
    const t = await withNamespaces('a', 'b');
    await post(t, 'a', { name: 'tap0', kind: 'tap' });
    const body = expectProblem(await patch(t, 'a', 'tap0', { namespace: 'b', name: 'tap9', mtu: 70000 }), 'LINK_MTU_INVALID', 422);
    expect(body).toMatchObject({ step: 'mtu', undone: true });
    expect(t.kernel.namespace('a')?.links).toEqual(['lo', 'tap0']);
    expect(t.kernel.namespace('b')?.links).toEqual(['lo']);
  });

  it('returns 400 for bad fields', async () => {
    const t = await withNamespaces('a');
    await post(t, 'a', { name: 'br0', kind: 'bridge' });
    for (const [payload, field] of [[{ mtu: 10 }, 'body.mtu'], [{ mac: 'x' }, 'body.mac'], [{ txqlen: -1 }, 'body.txqlen'], [{ state: 'up' }, 'body.state'], [{ namespace: 'a/b' }, 'body.namespace']] as const) {
      const body = expectProblem(await patch(t, 'a', 'br0', payload), 'REQUEST_INVALID', 400);
      expect(body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field })]));
    }
  });

  it('merges a labels patch without any kernel change', async () => {
    const t = await withNamespaces('a');
    await post(t, 'a', { name: 'br0', kind: 'bridge', labels: { a: '1', b: '2' } });
    const from = t.kernel.calls.length;
    expect((await patch(t, 'a', 'br0', { labels: { a: null, c: '3' } })).json().labels).toEqual({ b: '2', c: '3' });
    expect(changes(t, from)).toEqual([]);
  });
});

describe('DELETE /v1/namespaces/{ns}/links/{name}', () => {
  it('deletes both ends of a veth and answers 204', async () => {
    const t = await withNamespaces('a', 'b');
    await post(t, 'a', { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'b' } });
    const res = await t.app.inject({ method: 'DELETE', url: '/v1/namespaces/b/links/vb' });
    expect(res.statusCode).toBe(204);
    expect(t.kernel.namespace('a')?.links).toEqual(['lo']);
    expect(t.kernel.namespace('b')?.links).toEqual(['lo']);
  });

  it('returns 404 LINK_NOT_FOUND for a missing link', async () => {
    const t = await withNamespaces('a');
    expectProblem(await t.app.inject({ method: 'DELETE', url: '/v1/namespaces/a/links/nope0' }), 'LINK_NOT_FOUND', 404);
  });
});

describe('host safety', () => {
  it.each([
    ['PATCH eth0', (t: TestApp) => patch(t, 'host', 'eth0', { mtu: 1400 })],
    ['PATCH lo down', (t: TestApp) => patch(t, 'host', 'lo', { up: false })],
    ['DELETE eth0', (t: TestApp) => t.app.inject({ method: 'DELETE', url: '/v1/namespaces/host/links/eth0' })],
    ['move eth0', (t: TestApp) => patch(t, 'host', 'eth0', { namespace: 'a' })],
    ['eth0 as a macvlan parent', (t: TestApp) => post(t, 'host', { name: 'mv0', kind: 'macvlan', parent: 'eth0' })],
    ['eth0 as a vxlan parent', (t: TestApp) => post(t, 'host', { name: 'vx0', kind: 'vxlan', vni: 5, remote: '203.0.113.2', parent: 'eth0' })],
  ])('returns 403 HOST_PROTECTED for %s and changes nothing', async (_what, call) => {
    const t = await withNamespaces('a');
    const from = t.kernel.calls.length;
    expectProblem(await call(t), 'HOST_PROTECTED', 403);
    expect(changes(t, from)).toEqual([]);
  });

  it("allows changes to netnsd's own host links, and labels on any host link", async () => {
    const t = await withNamespaces('a');
    await post(t, 'a', { name: 'va', kind: 'veth', peer: { name: 'nnh0', namespace: 'host' } });
    expect((await patch(t, 'host', 'nnh0', { mtu: 1400, up: true })).json()).toMatchObject({ mtu: 1400, state: 'up' });
    expect((await patch(t, 'host', 'eth0', { labels: { role: 'uplink' } })).json().labels).toEqual({ role: 'uplink' });
    expect((await post(t, 'host', { name: 'nnbr0', kind: 'bridge' })).statusCode).toBe(201);
    expect((await patch(t, 'host', 'nnh0', { master: 'nnbr0' })).json().master).toBe('nnbr0');
    expect((await t.app.inject({ method: 'DELETE', url: '/v1/namespaces/host/links/nnh0' })).statusCode).toBe(204);
    expect(t.kernel.namespace('a')?.links).toEqual(['lo']);
  });

  it('allows changes to every host link with host.allowChanges', async () => {
    const t = await buildTestApp({ config: { host: { ...testConfig().host, allowChanges: true } } });
    expect((await patch(t, 'host', 'eth0', { alias: 'uplink' })).json().alias).toBe('uplink');
  });
});

describe('token namespace limits', () => {
  function tokens(): string {
    const dir = mkdtempSync(join(tmpdir(), 'netnsd-links-'));
    const file = join(dir, 'tokens.json');
    writeFileSync(file, JSON.stringify({ tokens: [
      { name: 'lab', token: 'lab-token-0123456789', scopes: ['write'], namespaces: ['lab-*'] },
      { name: 'labhost', token: 'labhost-token-0123456789', scopes: ['write'], namespaces: ['lab-*', 'host'] },
    ] }));
    return file;
  }
  const auth = (token: string) => ({ ...json, authorization: `Bearer ${token}` });

  it('refuses a veth whose peer goes to a namespace the token may not use', async () => {
    const t = await buildTestApp({ tokensFile: tokens() });
    t.kernel.addNamespace('lab-a').addNamespace('other');
    const res = await t.app.inject({ method: 'POST', url: '/v1/namespaces/lab-a/links', headers: auth('lab-token-0123456789'), payload: { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'other' } } });
    expectProblem(res, 'NAMESPACE_FORBIDDEN', 403);
    expect(t.kernel.namespace('lab-a')?.links).toEqual(['lo']);
    const ok = await t.app.inject({ method: 'POST', url: '/v1/namespaces/lab-a/links', headers: auth('lab-token-0123456789'), payload: { name: 'va', kind: 'veth', peer: { name: 'vb' } } });
    expect(ok.statusCode).toBe(201);
  });

  it('needs the admin scope for a veth peer in host and for a move into host', async () => {
    const t = await buildTestApp({ tokensFile: tokens() });
    t.kernel.addNamespace('lab-a');
    const res = await t.app.inject({ method: 'POST', url: '/v1/namespaces/lab-a/links', headers: auth('labhost-token-0123456789'), payload: { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'host' } } });
    expectProblem(res, 'SCOPE_INSUFFICIENT', 403);
    await t.app.inject({ method: 'POST', url: '/v1/namespaces/lab-a/links', headers: auth('labhost-token-0123456789'), payload: { name: 't0', kind: 'tap' } });
    const mv = await t.app.inject({ method: 'PATCH', url: '/v1/namespaces/lab-a/links/t0', headers: auth('labhost-token-0123456789'), payload: { namespace: 'host' } });
    expectProblem(mv, 'SCOPE_INSUFFICIENT', 403);
  });

  it('refuses a move to a namespace the token may not use', async () => {
    const t = await buildTestApp({ tokensFile: tokens() });
    t.kernel.addNamespace('lab-a').addNamespace('other');
    await t.app.inject({ method: 'POST', url: '/v1/namespaces/lab-a/links', headers: auth('lab-token-0123456789'), payload: { name: 't0', kind: 'tap' } });
    const mv = await t.app.inject({ method: 'PATCH', url: '/v1/namespaces/lab-a/links/t0', headers: auth('lab-token-0123456789'), payload: { namespace: 'other' } });
    expectProblem(mv, 'NAMESPACE_FORBIDDEN', 403);
    expect(t.kernel.namespace('lab-a')?.links).toEqual(['lo', 't0']);
  });

  it('refuses links of a namespace the token may not use, and host changes without admin', async () => {
    const t = await buildTestApp({ tokensFile: tokens() });
    t.kernel.addNamespace('other');
    expectProblem(await t.app.inject({ url: '/v1/namespaces/other/links', headers: auth('lab-token-0123456789') }), 'NAMESPACE_FORBIDDEN', 403);
    expectProblem(await t.app.inject({ method: 'POST', url: '/v1/namespaces/host/links', headers: auth('labhost-token-0123456789'), payload: { name: 'b0', kind: 'bridge' } }), 'SCOPE_INSUFFICIENT', 403);
  });
});
