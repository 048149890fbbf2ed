import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/app-error.js';
import { addressId } from '../../src/addresses/address-service.js';
import { buildTestApp, expectProblem, testConfig, type TestApp } from '../helpers/test-app.js';

const json = { 'content-type': 'application/json' };

async function setup(): Promise<TestApp> {
  const t = await buildTestApp();
  for (const name of ['a', 'b']) expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name } })).statusCode).toBe(201);
  const res = await t.app.inject({ method: 'POST', url: '/v1/namespaces/a/links', headers: json, payload: { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'b' }, up: true } });
  expect(res.statusCode).toBe(201);
  return t;
}

const add = (t: TestApp, ns: string, payload: unknown) => t.app.inject({ method: 'POST', url: `/v1/namespaces/${ns}/addresses`, headers: json, payload: payload as object });
const get = (t: TestApp, path: string) => t.app.inject({ url: path });
const del = (t: TestApp, path: string) => t.app.inject({ method: 'DELETE', url: path });
const addrOps = (t: TestApp, from: number) => t.kernel.calls.slice(from).filter((c) => c.kind === 'addr.add' || c.kind === 'addr.delete');

describe('POST /v1/namespaces/{ns}/addresses', () => {
  it('adds an IPv4 address and answers 201 with it, its id and Location', async () => {
    const t = await setup();
    const res = await add(t, 'a', { link: 'va', address: '203.0.113.1/24' });
    expect(res.statusCode).toBe(201);
    const a = res.json();
    expect(a).toEqual({
      id: expect.stringMatching(/^[A-Za-z0-9_-]+$/), namespace: 'a', link: 'va', family: 4, address: '203.0.113.1/24', prefixLength: 24,
      peer: null, broadcast: null, scope: 'global', label: 'va', tentative: false, flags: [], validLifetime: null, preferredLifetime: null,
    });
    expect(Buffer.from(a.id, 'base64url').toString()).toMatch(/^\d+\|4\|203\.0\.113\.1\/24$/);
    expect(res.headers.location).toBe(`/v1/namespaces/a/addresses/${a.id}`);
    expect((await get(t, res.headers.location as string)).json()).toEqual(a);
  });

  it('passes peer, broadcast, scope and label on, canonical', async () => {
    const t = await setup();
    const from = t.kernel.calls.length;
    expect((await add(t, 'a', { link: 'va', address: '203.0.113.1/24', broadcast: '203.0.113.255', scope: 'link', label: 'va:web' })).json()).toMatchObject({
      broadcast: '203.0.113.255', scope: 'link', label: 'va:web',
    });
    expect((await add(t, 'a', { link: 'va', address: '198.51.100.5/32', peer: '198.51.100.6' })).json()).toMatchObject({ peer: '198.51.100.6', address: '198.51.100.5/32' });
    expect(addrOps(t, from)).toEqual([
      { kind: 'addr.add', ns: 'a', spec: { link: 'va', family: 4, local: '203.0.113.1', prefixLength: 24, broadcast: '203.0.113.255', scope: 'link', label: 'va:web' } },
      { kind: 'addr.add', ns: 'a', spec: { link: 'va', family: 4, local: '198.51.100.5', prefixLength: 32, peer: '198.51.100.6' } },
    ]);
  });

  it('adds IPv6: tentative without nodad, not with it; the address is written canonically', async () => {
    const t = await setup();
    const slow = await add(t, 'a', { link: 'va', address: '2001:DB8:0:0::2/64' });
    expect(slow.json()).toMatchObject({ family: 6, address: '2001:db8::2/64', tentative: true, flags: ['tentative'], label: null });
    const fast = await add(t, 'a', { link: 'va', address: '2001:db8::1/64', nodad: true });
    expect(fast.json()).toMatchObject({ tentative: false, flags: ['nodad'] });
  });

  it.each([
    [{ address: '203.0.113.1' }, 'body.address', /prefix length/],
    [{ address: '203.0.113.1/33' }, 'body.address', /out of range/],
    [{ address: '2001:db8::1/129' }, 'body.address', /out of range/],
    [{ address: '203.0.113.0/24' }, 'body.address', /network address of 203\.0\.113\.0\/24/],
    [{ address: '203.0.113.255/24' }, 'body.address', /broadcast address of 203\.0\.113\.0\/24/],
    [{ address: '203.0.113.256/24' }, 'body.address', /not an IPv4 or IPv6/],
    [{ address: 'fe80::1%va/64' }, 'body.address', /not an IPv4 or IPv6/],
    [{ address: 'ff02::5/64' }, 'body.address', /multicast/],
    [{ address: '239.1.1.1/24' }, 'body.address', /multicast/],
    [{ address: '0.0.0.0/8' }, 'body.address', /unspecified/],
    [{ address: '203.0.113.1/24', peer: '2001:db8::1' }, 'body.peer', /IPv4/],
    [{ address: '2001:db8::1/64', broadcast: '203.0.113.255' }, 'body.broadcast', /IPv4 addresses only/],
    [{ address: '2001:db8::1/64', scope: 'link' }, 'body.scope', /IPv4 addresses only/],
    [{ address: '203.0.113.1/24', label: 'eth0:x' }, 'body.label', /must be the link name/],
    [{ address: '203.0.113.1/24', nodad: true }, 'body.nodad', /IPv6 addresses only/],
  ])('refuses %j with 400 REQUEST_INVALID naming the field', async (body, field, message) => {
    const t = await setup();
    const res = await add(t, 'a', { link: 'va', ...body });
    const p = expectProblem(res, 'REQUEST_INVALID', 400);
    expect(p.errors).toEqual(expect.arrayContaining([{ field, message: expect.stringMatching(message) }]));
    expect(addrOps(t, 0)).toEqual([]);
  });

  it('accepts the network and broadcast address of a /31 and a /32', async () => {
    const t = await setup();
    expect((await add(t, 'a', { link: 'va', address: '203.0.113.0/31' })).statusCode).toBe(201);
    expect((await add(t, 'a', { link: 'va', address: '203.0.113.255/32' })).statusCode).toBe(201);
  });

  it('refuses a body field it does not know and a scope it does not know (400)', async () => {
    const t = await setup();
    expectProblem(await add(t, 'a', { link: 'va', address: '203.0.113.1/24', lable: 'x' }), 'REQUEST_INVALID', 400);
    expectProblem(await add(t, 'a', { link: 'va', address: '203.0.113.1/24', scope: 'universe' }), 'REQUEST_INVALID', 400);
  });

  it('answers 409 ADDRESS_EXISTS for an address the link has', async () => {
    const t = await setup();
    await add(t, 'a', { link: 'va', address: '203.0.113.1/24' });
    expectProblem(await add(t, 'a', { link: 'va', address: '203.0.113.1/24' }), 'ADDRESS_EXISTS', 409);
  });

  it('answers 404 LINK_NOT_FOUND and NAMESPACE_NOT_FOUND', async () => {
    const t = await setup();
    expectProblem(await add(t, 'a', { link: 'nope', address: '203.0.113.1/24' }), 'LINK_NOT_FOUND', 404);
    expectProblem(await add(t, 'zz', { link: 'va', address: '203.0.113.1/24' }), 'NAMESPACE_NOT_FOUND', 404);
  });

  it('passes a kernel refusal on (422 ADDRESS_SCOPE_INVALID)', async () => {
    const t = await setup();
    t.kernel.expect('addr.add', new AppError('ADDRESS_SCOPE_INVALID', 'secondary with another scope'));
    expectProblem(await add(t, 'a', { link: 'va', address: '203.0.113.7/24', scope: 'link' }), 'ADDRESS_SCOPE_INVALID', 422);
  });
});

describe('GET /v1/namespaces/{ns}/addresses', () => {
  it('lists in link, family, address order; filters by link and family; pages', async () => {
    const t = await setup();
    const ids: string[] = [];
    for (const address of ['203.0.113.9/24', '2001:db8::1/64', '203.0.113.10/24']) ids.push((await add(t, 'a', { link: 'va', address, ...(address.includes(':') ? { nodad: true } : {}) })).json().id);
    await t.app.inject({ method: 'POST', url: '/v1/namespaces/a/links', headers: json, payload: { name: 'd0', kind: 'veth', peer: { name: 'd1' } } });
    await add(t, 'a', { link: 'd0', address: '198.51.100.1/24' });
    const all = (await get(t, '/v1/namespaces/a/addresses')).json();
    expect(all.items.map((a: { address: string }) => a.address)).toEqual(['203.0.113.9/24', '203.0.113.10/24', '2001:db8::1/64', '198.51.100.1/24']);
    expect((await get(t, '/v1/namespaces/a/addresses?link=d0')).json().items).toHaveLength(1);
    expect((await get(t, '/v1/namespaces/a/addresses?family=6')).json().items.map((a: { id: string }) => a.id)).toEqual([ids[1]]);
    const p1 = (await get(t, '/v1/namespaces/a/addresses?limit=3')).json();
    expect(p1.items).toHaveLength(3);
    const p2 = (await get(t, `/v1/namespaces/a/addresses?limit=3&cursor=${p1.next}`)).json();
    expect(p2.items.map((a: { address: string }) => a.address)).toEqual(['198.51.100.1/24']);
    expect(p2.next).toBeUndefined();
  });

  it('answers 400 for a family other than 4 or 6, 404 LINK_NOT_FOUND for ?link= of a missing link', async () => {
    const t = await setup();
    expectProblem(await get(t, '/v1/namespaces/a/addresses?family=5'), 'REQUEST_INVALID', 400);
    expectProblem(await get(t, '/v1/namespaces/a/addresses?link=nope'), 'LINK_NOT_FOUND', 404);
  });

  it('answers 404 ADDRESS_NOT_FOUND for an unknown id', async () => {
    const t = await setup();
    expectProblem(await get(t, `/v1/namespaces/a/addresses/${addressId({ ifindex: 9, family: 4, local: '203.0.113.1', prefixLength: 24, peer: null })}`), 'ADDRESS_NOT_FOUND', 404);
  });

  it('drops the addresses of a link that is deleted', async () => {
    const t = await setup();
    await add(t, 'a', { link: 'va', address: '203.0.113.1/24' });
    await del(t, '/v1/namespaces/a/links/va');
    expect((await get(t, '/v1/namespaces/a/addresses')).json().items).toEqual([]);
  });
});

describe('DELETE /v1/namespaces/{ns}/addresses/{id}', () => {
  it('deletes by id (with the peer, for a point-to-point address), then 404', async () => {
    const t = await setup();
    const a = (await add(t, 'a', { link: 'va', address: '203.0.113.5/32', peer: '203.0.113.6' })).json();
    const from = t.kernel.calls.length;
    expect((await del(t, `/v1/namespaces/a/addresses/${a.id}`)).statusCode).toBe(204);
    expect(addrOps(t, from)).toEqual([{ kind: 'addr.delete', ns: 'a', link: 'va', local: '203.0.113.5', prefixLength: 32, peer: '203.0.113.6' }]);
    expectProblem(await del(t, `/v1/namespaces/a/addresses/${a.id}`), 'ADDRESS_NOT_FOUND', 404);
  });
});

describe('addresses in host', () => {
  async function withHostVeth(): Promise<TestApp> {
    const t = await setup();
    const res = await t.app.inject({ method: 'POST', url: '/v1/namespaces/a/links', headers: json, payload: { name: 'vh', kind: 'veth', peer: { name: 'nnh0', namespace: 'host' } } });
    expect(res.statusCode).toBe(201);
    return t;
  }

  it('adds and deletes on a link netnsd created', async () => {
    const t = await withHostVeth();
    const res = await add(t, 'host', { link: 'nnh0', address: '198.18.7.1/24' });
    expect(res.statusCode).toBe(201);
    expect((await del(t, res.headers.location as string)).statusCode).toBe(204);
  });

  it('answers 403 HOST_PROTECTED for a host link netnsd did not create, for adding and deleting', async () => {
    const t = await withHostVeth();
    expectProblem(await add(t, 'host', { link: 'eth0', address: '198.18.7.1/24' }), 'HOST_PROTECTED', 403);
    t.kernel.expect('addr.list', { addresses: [{ ifindex: 2, link: 'eth0', family: 4, local: '192.0.2.10', prefixLength: 24, peer: null, broadcast: null, scope: 'global', label: 'eth0', flags: [], validLifetime: null, preferredLifetime: null }] });
    const id = addressId({ ifindex: 2, family: 4, local: '192.0.2.10', prefixLength: 24, peer: null });
    expectProblem(await del(t, `/v1/namespaces/host/addresses/${id}`), 'HOST_PROTECTED', 403);
    expect(addrOps(t, 0)).toEqual([]);
  });

  it('answers 409 HOST_ROUTE_CONFLICT for a prefix shorter than /16 (IPv6 /32) or overlapping an unmanaged link\'s subnet', async () => {
    const t = await withHostVeth();
    t.kernel.default('addr.list', { addresses: [{ ifindex: 2, link: 'eth0', family: 4, local: '192.0.2.10', prefixLength: 24, peer: null, broadcast: null, scope: 'global', label: 'eth0', flags: [], validLifetime: null, preferredLifetime: null }] });
    const wide = expectProblem(await add(t, 'host', { link: 'nnh0', address: '198.18.0.1/15' }), 'HOST_ROUTE_CONFLICT', 409);
    expect(wide.detail).toMatch(/\/16/);
    expectProblem(await add(t, 'host', { link: 'nnh0', address: '2001:db8::1/31' }), 'HOST_ROUTE_CONFLICT', 409);
    const p = expectProblem(await add(t, 'host', { link: 'nnh0', address: '192.0.2.77/28' }), 'HOST_ROUTE_CONFLICT', 409);
    expect(p.detail).toMatch(/192\.0\.2\.0\/24.*eth0/);
    expect(addrOps(t, 0)).toEqual([]);
  });

  it('answers 409 HOST_ROUTE_CONFLICT for a prefix overlapping a host route through an unmanaged link', async () => {
    const t = await withHostVeth();
    const r = { family: 4 as const, table: 254, metric: 0, tos: null, type: 'unicast', src: null, scope: 'global', protocol: 'boot', mtu: null, nexthops: null, flags: [] };
    t.kernel.default('route.list', (op) =>
      op.ns === 'host' && op.family === 4
        ? { routes: [{ ...r, dst: '0.0.0.0/0', via: '192.0.2.1', dev: 'eth0' }, { ...r, dst: '10.10.0.0/16', via: '192.0.2.1', dev: 'eth0' }] }
        : { routes: [] },
    );
    const p = expectProblem(await add(t, 'host', { link: 'nnh0', address: '10.10.5.1/24' }), 'HOST_ROUTE_CONFLICT', 409);
    expect(p.detail).toMatch(/overlaps 10\.10\.0\.0\/16.*eth0/);
    // The default route through eth0 alone is no conflict.
    expect((await add(t, 'host', { link: 'nnh0', address: '198.18.7.1/24' })).statusCode).toBe(201);
  });

  it('allows any host link with host.allowChanges', async () => {
    const t = await buildTestApp({ config: { host: { ...testConfig().host, allowChanges: true } } });
    expect((await add(t, 'host', { link: 'eth0', address: '198.18.7.1/24' })).statusCode).toBe(201);
  });
});
