import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/app-error.js';
import { routeId } from '../../src/routes/route-service.js';
import { buildTestApp, expectProblem, testConfig, type TestApp } from '../helpers/test-app.js';

const json = { 'content-type': 'application/json' };

/** Namespace a with veth va (203.0.113.1/24, 2001:db8::1/64) to b. */
async function setup(o: Parameters<typeof buildTestApp>[0] = {}): Promise<TestApp> {
  const t = await buildTestApp(o);
  for (const name of ['a', 'b']) expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name } })).statusCode).toBe(201);
  expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces/a/links', headers: json, payload: { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'b' }, up: true } })).statusCode).toBe(201);
  for (const address of ['203.0.113.1/24', '2001:db8::1/64']) {
    expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces/a/addresses', headers: json, payload: { link: 'va', address, ...(address.includes(':') ? { nodad: true } : {}) } })).statusCode).toBe(201);
  }
  return t;
}

const post = (t: TestApp, ns: string, payload: unknown) => t.app.inject({ method: 'POST', url: `/v1/namespaces/${ns}/routes`, headers: json, payload: payload as object });
const put = (t: TestApp, path: string, payload: unknown) => t.app.inject({ method: 'PUT', url: path, headers: json, payload: payload as object });
const get = (t: TestApp, path: string) => t.app.inject({ url: path });
const del = (t: TestApp, path: string) => t.app.inject({ method: 'DELETE', url: path });
const routeOps = (t: TestApp, from: number) => t.kernel.calls.slice(from).filter((c) => c.kind === 'route.add' || c.kind === 'route.delete');

describe('POST /v1/namespaces/{ns}/routes', () => {
  it('creates a route via a gateway: 201, Location, the kernel\'s view with its id', async () => {
    const t = await setup();
    const from = t.kernel.calls.length;
    const res = await post(t, 'a', { dst: '198.51.100.0/24', via: '203.0.113.254' });
    expect(res.statusCode).toBe(201);
    const r = res.json();
    expect(r).toEqual({
      id: routeId({ family: 4, table: 254, dst: '198.51.100.0/24', metric: 0, tos: null }), namespace: 'a', family: 4, dst: '198.51.100.0/24', table: 254,
      type: 'unicast', via: '203.0.113.254', dev: 'va', src: null, metric: 0, tos: null, scope: 'global', protocol: 'boot', mtu: null, nexthops: null, flags: [],
    });
    expect(res.headers.location).toBe(`/v1/namespaces/a/routes/${r.id}`);
    expect((await get(t, res.headers.location as string)).json()).toEqual(r);
    expect(routeOps(t, from)).toEqual([{ kind: 'route.add', ns: 'a', spec: { family: 4, type: 'unicast', dst: '198.51.100.0/24', table: 254, via: '203.0.113.254' } }]);
  });

  it('creates default (IPv4 and IPv6, family from the gateway), blackhole in a table, multipath, with metric/src/mtu/scope', async () => {
    const t = await setup();
    expect((await post(t, 'a', { dst: 'default', via: '203.0.113.254', src: '203.0.113.1', mtu: 1400 })).json()).toMatchObject({ dst: 'default', family: 4, src: '203.0.113.1', mtu: 1400 });
    expect((await post(t, 'a', { dst: 'default', via: '2001:DB8::fe' })).json()).toMatchObject({ dst: 'default', family: 6, via: '2001:db8::fe', metric: 1024 });
    expect((await post(t, 'a', { dst: '198.18.0.0/24', type: 'blackhole', table: 100 })).json()).toMatchObject({ type: 'blackhole', table: 100, dev: null });
    expect((await post(t, 'a', { dst: '198.18.1.0/24', type: 'unreachable', table: 'local', metric: 7 })).json()).toMatchObject({ type: 'unreachable', table: 255, metric: 7 });
    const mp = (await post(t, 'a', { dst: '198.18.2.0/24', nexthops: [{ via: '203.0.113.9', weight: 3 }, { via: '203.0.113.10' }] })).json();
    expect(mp.nexthops).toEqual([{ via: '203.0.113.9', dev: 'va', weight: 3 }, { via: '203.0.113.10', dev: 'va', weight: 1 }]);
    expect((await post(t, 'a', { dst: '198.18.3.7', dev: 'va', scope: 'link' })).json()).toMatchObject({ dst: '198.18.3.7/32', scope: 'link' });
  });

  it.each([
    [{ dst: '198.51.100.1/24', via: '203.0.113.254' }, 'body.dst', /host bits set: did you mean 198\.51\.100\.0\/24/],
    [{ dst: '198.51.100.0/33', via: '203.0.113.254' }, 'body.dst', /out of range/],
    [{ dst: 'nowhere', via: '203.0.113.254' }, 'body.dst', /not a prefix/],
    [{ dst: '198.51.100.0/24' }, 'body.via', /or dev or nexthops is required/],
    [{ dst: '198.51.100.0/24', via: '2001:db8::9' }, 'body.via', /IPv4/],
    [{ dst: '198.51.100.0/24', via: '203.0.113.300' }, 'body.via', /not an IPv4 or IPv6/],
    [{ dst: '198.51.100.0/24', via: '203.0.113.9', src: '2001:db8::1' }, 'body.src', /IPv4/],
    [{ dst: '198.51.100.0/24', type: 'blackhole', via: '203.0.113.9' }, 'body.via', /not taken by a blackhole/],
    [{ dst: '198.51.100.0/24', via: '203.0.113.9', nexthops: [{ via: '203.0.113.10' }] }, 'body.via', /cannot be given with nexthops/],
    [{ dst: '198.51.100.0/24', nexthops: [{ weight: 2 }] }, 'body.nexthops/0', /needs via or dev/],
    [{ dst: '2001:db8:5::/48', via: 'fe80::1' }, 'body.dev', /link-local/],
    [{ dst: '198.51.100.0/24', family: 6, via: '203.0.113.9' }, 'body.family', /does not match dst/],
  ])('refuses %j with 400 naming the field', async (body, field, message) => {
    const t = await setup();
    const p = expectProblem(await post(t, 'a', body), 'REQUEST_INVALID', 400);
    expect(p.errors).toEqual(expect.arrayContaining([{ field, message: expect.stringMatching(message) }]));
    expect(routeOps(t, 0)).toEqual([]);
  });

  it.each([
    [{ dst: '198.51.100.0/24', via: '203.0.113.9', table: 0 }],
    [{ dst: '198.51.100.0/24', via: '203.0.113.9', table: 'default' }],
    [{ dst: '198.51.100.0/24', via: '203.0.113.9', type: 'nat' }],
    [{ dst: '198.51.100.0/24', nexthops: [{ via: '203.0.113.9', weight: 257 }] }],
    [{ dst: '198.51.100.0/24', via: '203.0.113.9', metric: -1 }],
    [{ dst: '198.51.100.0/24', via: '203.0.113.9', gw: 'x' }],
  ])('refuses %j by schema (400)', async (body) => {
    const t = await setup();
    expectProblem(await post(t, 'a', body), 'REQUEST_INVALID', 400);
  });

  it('answers 409 ROUTE_EXISTS, 422 NEXTHOP_UNREACHABLE, 404 LINK_NOT_FOUND, 422 ROUTE_SOURCE_INVALID, 404 NAMESPACE_NOT_FOUND', async () => {
    const t = await setup();
    await post(t, 'a', { dst: '198.51.100.0/24', via: '203.0.113.254' });
    expectProblem(await post(t, 'a', { dst: '198.51.100.0/24', via: '203.0.113.9' }), 'ROUTE_EXISTS', 409);
    expect((await post(t, 'a', { dst: '198.51.100.0/24', via: '203.0.113.9', metric: 5 })).statusCode).toBe(201);
    expectProblem(await post(t, 'a', { dst: '198.18.0.0/24', via: '10.9.9.9' }), 'NEXTHOP_UNREACHABLE', 422);
    expectProblem(await post(t, 'a', { dst: '198.18.0.0/24', dev: 'nope' }), 'LINK_NOT_FOUND', 404);
    expectProblem(await post(t, 'a', { dst: '198.18.0.0/24', via: '203.0.113.9', src: '10.1.1.1' }), 'ROUTE_SOURCE_INVALID', 422);
    expectProblem(await post(t, 'zz', { dst: '198.18.0.0/24', via: '203.0.113.9' }), 'NAMESPACE_NOT_FOUND', 404);
  });
});

describe('GET /v1/namespaces/{ns}/routes', () => {
  it('lists main by default (both families, connected routes too), one table, every table, one family; pages', async () => {
    const t = await setup();
    await post(t, 'a', { dst: '198.51.100.0/24', via: '203.0.113.254' });
    await post(t, 'a', { dst: '198.18.0.0/24', type: 'blackhole', table: 100 });
    await post(t, 'a', { dst: '2001:db8:5::/48', via: '2001:db8::fe' });
    const dsts = async (q: string) => (await get(t, `/v1/namespaces/a/routes${q}`)).json().items.map((r: { dst: string }) => r.dst);
    expect(await dsts('')).toEqual(['198.51.100.0/24', '203.0.113.0/24', '2001:db8::/64', '2001:db8:5::/48']);
    expect(await dsts('?table=100')).toEqual(['198.18.0.0/24']);
    expect(await dsts('?table=all&family=4')).toEqual(['198.18.0.0/24', '198.51.100.0/24', '203.0.113.0/24']);
    expect(await dsts('?family=6')).toEqual(['2001:db8::/64', '2001:db8:5::/48']);
    const p1 = (await get(t, '/v1/namespaces/a/routes?limit=3')).json();
    const p2 = (await get(t, `/v1/namespaces/a/routes?limit=3&cursor=${p1.next}`)).json();
    expect([...p1.items, ...p2.items].map((r: { dst: string }) => r.dst)).toEqual(await dsts(''));
  });

  it('answers 400 for a table it does not know, 404 ROUTE_NOT_FOUND for an id that is not a route', async () => {
    const t = await setup();
    expectProblem(await get(t, '/v1/namespaces/a/routes?table=bogus'), 'REQUEST_INVALID', 400);
    expectProblem(await get(t, '/v1/namespaces/a/routes?table=0'), 'REQUEST_INVALID', 400);
    expectProblem(await get(t, `/v1/namespaces/a/routes/${routeId({ family: 4, table: 254, dst: '10.0.0.0/8', metric: 0, tos: null })}`), 'ROUTE_NOT_FOUND', 404);
    expectProblem(await get(t, '/v1/namespaces/a/routes/bm90LWEtcm91dGU'), 'ROUTE_NOT_FOUND', 404);
  });
});

describe('PUT and DELETE /v1/namespaces/{ns}/routes/{id}', () => {
  it('replaces a route atomically (one `route replace`), keeping its id', async () => {
    const t = await setup();
    const r = (await post(t, 'a', { dst: '198.51.100.0/24', via: '203.0.113.254', metric: 10 })).json();
    const from = t.kernel.calls.length;
    const res = await put(t, `/v1/namespaces/a/routes/${r.id}`, { dst: '198.51.100.0/24', via: '203.0.113.9', metric: 10, mtu: 1300 });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: r.id, via: '203.0.113.9', mtu: 1300 });
    expect(routeOps(t, from)).toEqual([
      { kind: 'route.add', ns: 'a', replace: true, spec: { family: 4, type: 'unicast', dst: '198.51.100.0/24', table: 254, metric: 10, via: '203.0.113.9', mtu: 1300 } },
    ]);
  });

  it('refuses a PUT that changes the key (dst, table, metric) and one of an unknown id', async () => {
    const t = await setup();
    const r = (await post(t, 'a', { dst: '198.51.100.0/24', via: '203.0.113.254' })).json();
    const p = expectProblem(await put(t, `/v1/namespaces/a/routes/${r.id}`, { dst: '198.51.100.0/25', via: '203.0.113.9', table: 7, metric: 3 }), 'REQUEST_INVALID', 400);
    expect((p.errors as Array<{ field: string }>).map((e) => e.field)).toEqual(['body.dst', 'body.table', 'body.metric']);
    await del(t, `/v1/namespaces/a/routes/${r.id}`);
    expectProblem(await put(t, `/v1/namespaces/a/routes/${r.id}`, { dst: '198.51.100.0/24', via: '203.0.113.9' }), 'ROUTE_NOT_FOUND', 404);
  });

  it('deletes by id (IPv6 with its device), then 404', async () => {
    const t = await setup();
    const r = (await post(t, 'a', { dst: '2001:db8:5::/48', via: '2001:db8::fe' })).json();
    const from = t.kernel.calls.length;
    expect((await del(t, `/v1/namespaces/a/routes/${r.id}`)).statusCode).toBe(204);
    expect(routeOps(t, from)).toEqual([{ kind: 'route.delete', ns: 'a', key: { family: 6, table: 254, dst: '2001:db8:5::/48', metric: 1024, tos: null, dev: 'va' } }]);
    expectProblem(await del(t, `/v1/namespaces/a/routes/${r.id}`), 'ROUTE_NOT_FOUND', 404);
  });

  it('answers 404 ROUTE_NOT_FOUND, not 414, for an id of 256 characters', async () => {
    const t = await setup();
    expectProblem(await get(t, `/v1/namespaces/a/routes/${'A'.repeat(256)}`), 'ROUTE_NOT_FOUND', 404);
  });

  it('passes a kernel refusal of the delete on', async () => {
    const t = await setup();
    const r = (await post(t, 'a', { dst: '198.51.100.0/24', via: '203.0.113.254' })).json();
    t.kernel.expect('route.delete', new AppError('ROUTE_NOT_FOUND', 'gone meanwhile'));
    expectProblem(await del(t, `/v1/namespaces/a/routes/${r.id}`), 'ROUTE_NOT_FOUND', 404);
  });
});

describe('routes in host', () => {
  /** A veth a/vh <-> host/nnh0 (netnsd's), with 198.18.7.1/24 on nnh0; eth0 (unmanaged) has 192.0.2.10/24. */
  async function withHostVeth(o: Parameters<typeof buildTestApp>[0] = {}): Promise<TestApp> {
    const t = await setup(o);
    expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces/a/links', headers: json, payload: { name: 'vh', kind: 'veth', peer: { name: 'nnh0', namespace: 'host' }, up: true } })).statusCode).toBe(201);
    t.kernel.link('host', 'nnh0')!.up = true;
    expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces/host/addresses', headers: json, payload: { link: 'nnh0', address: '198.18.7.1/24' } })).statusCode).toBe(201);
    return t;
  }
  const eth0Routes = { family: 4 as const, table: 254, metric: 0, tos: null, type: 'unicast', src: null, scope: 'global', protocol: 'boot', mtu: null, nexthops: null, flags: [] };
  function hostRoutes(t: TestApp): void {
    t.kernel.default('route.list', (op) => {
      if (op.ns !== 'host' || op.family !== 4) return { routes: [] };
      return {
        routes: [
          { ...eth0Routes, dst: '0.0.0.0/0', via: '192.0.2.1', dev: 'eth0' },
          { ...eth0Routes, dst: '192.0.2.0/24', via: null, dev: 'eth0', protocol: 'kernel', scope: 'link' },
          { ...eth0Routes, dst: '198.18.7.0/24', via: null, dev: 'nnh0', protocol: 'kernel', scope: 'link' },
          { ...eth0Routes, dst: '10.10.0.0/16', via: '192.0.2.1', dev: 'eth0' },
          { ...eth0Routes, dst: '198.18.7.2/32', via: '198.18.7.9', dev: 'nnh0' },
        ],
      };
    });
  }

  it('adds and deletes a route through netnsd\'s own link', async () => {
    const t = await withHostVeth();
    const res = await post(t, 'host', { dst: '198.18.8.0/24', via: '198.18.7.2' });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ dev: 'nnh0' });
    expect((await del(t, res.headers.location as string)).statusCode).toBe(204);
  });

  it.each([
    ['a default route', { dst: 'default', via: '198.18.7.2' }, /never adds a default route/],
    ['a prefix shorter than /16', { dst: '198.0.0.0/8', via: '198.18.7.2' }, /shorter than \/16/],
    ['an IPv6 prefix shorter than /32', { dst: '2001:db8::/31', dev: 'nnh0' }, /shorter than \/32/],
    ['a prefix overlapping a subnet of eth0', { dst: '192.0.2.128/25', via: '198.18.7.2' }, /overlaps 192\.0\.2\.0\/24.*eth0/],
    ['a prefix inside a route through eth0', { dst: '10.10.5.0/24', via: '198.18.7.2' }, /overlaps 10\.10\.0\.0\/16.*eth0/],
    ['a gateway inside a prefix reached through eth0', { dst: '198.18.9.0/24', via: '192.0.2.7', dev: 'nnh0' }, /gateway 192\.0\.2\.7 is inside 192\.0\.2\.0\/24/],
  ])('answers 409 HOST_ROUTE_CONFLICT for %s', async (_what, body, detail) => {
    const t = await withHostVeth();
    hostRoutes(t);
    const p = expectProblem(await post(t, 'host', body), 'HOST_ROUTE_CONFLICT', 409);
    expect(p.detail).toMatch(detail);
    expect(routeOps(t, 0)).toEqual([]);
  });

  it('answers 403 HOST_PROTECTED for a route through an unmanaged link, a blackhole, and for changing a route through eth0', async () => {
    const t = await withHostVeth();
    hostRoutes(t);
    expectProblem(await post(t, 'host', { dst: '198.18.9.0/24', dev: 'eth0' }), 'HOST_PROTECTED', 403);
    expectProblem(await post(t, 'host', { dst: '198.18.9.0/24', type: 'blackhole' }), 'HOST_PROTECTED', 403);
    const theirs = routeId({ family: 4, table: 254, dst: '10.10.0.0/16', metric: 0, tos: null });
    expectProblem(await del(t, `/v1/namespaces/host/routes/${theirs}`), 'HOST_PROTECTED', 403);
    expectProblem(await put(t, `/v1/namespaces/host/routes/${theirs}`, { dst: '10.10.0.0/16', via: '198.18.7.2' }), 'HOST_PROTECTED', 403);
    expect(routeOps(t, 0)).toEqual([]);
  });

  it('allows host routes freely with host.allowChanges', async () => {
    const t = await withHostVeth({ config: { host: { ...testConfig().host, allowChanges: true } } });
    expect((await post(t, 'host', { dst: '198.18.0.0/15', via: '198.18.7.2' })).statusCode).toBe(201);
  });
});
