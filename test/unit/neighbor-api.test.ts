import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/app-error.js';
import { neighborId } from '../../src/neighbors/neighbor-service.js';
import { buildTestApp, expectProblem, testConfig, type TestApp } from '../helpers/test-app.js';

const json = { 'content-type': 'application/json' };

/** Namespaces a and b with a veth va (in a) <-> vb (in b), both up. */
async function setup(o: Parameters<typeof buildTestApp>[0] = {}): Promise<TestApp> {
  const t = await buildTestApp(o);
  for (const name of ['a', 'b']) expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name } })).statusCode).toBe(201);
  expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces/a/links', headers: json, payload: { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'b' }, up: true } })).statusCode).toBe(201);
  return t;
}

const base = '/v1/namespaces/a/neighbors';
const post = (t: TestApp, ns: string, payload: unknown) => t.app.inject({ method: 'POST', url: `/v1/namespaces/${ns}/neighbors`, headers: json, payload: payload as object });
const put = (t: TestApp, path: string, payload: unknown) => t.app.inject({ method: 'PUT', url: path, headers: json, payload: payload as object });
const get = (t: TestApp, path: string) => t.app.inject({ url: path });
const del = (t: TestApp, path: string) => t.app.inject({ method: 'DELETE', url: path });
const neighOps = (t: TestApp, from: number) => t.kernel.calls.slice(from).filter((c) => c.kind === 'neigh.add' || c.kind === 'neigh.delete');
const learnt = (link: string, address: string, states = ['reachable']) =>
  ({ link, family: address.includes(':') ? 6 : 4, address, mac: states.includes('failed') ? null : '02:99:00:00:00:01', states }) as const;

describe('POST /v1/namespaces/{ns}/neighbors', () => {
  it('creates a permanent entry: 201, Location, the kernel\'s view with its id', async () => {
    const t = await setup();
    const from = t.kernel.calls.length;
    const res = await post(t, 'a', { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09' });
    expect(res.statusCode).toBe(201);
    const n = res.json();
    expect(n).toEqual({
      id: neighborId({ link: 'va', family: 4, address: '203.0.113.9' }), namespace: 'a', link: 'va', family: 4, address: '203.0.113.9',
      mac: '02:00:00:00:00:09', states: ['permanent'], router: false, flags: [],
    });
    expect(res.headers.location).toBe(`${base}/${n.id}`);
    expect((await get(t, res.headers.location as string)).json()).toEqual(n);
    expect(neighOps(t, from)).toEqual([{ kind: 'neigh.add', ns: 'a', spec: { link: 'va', family: 4, address: '203.0.113.9', mac: '02:00:00:00:00:09' } }]);
  });

  it('creates an IPv6 router entry, in canonical form (address and MAC lower case, zeros compressed)', async () => {
    const t = await setup();
    const res = await post(t, 'a', { link: 'va', address: '2001:DB8:0:0::9', mac: '02:AB:CD:00:00:09', router: true });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ family: 6, address: '2001:db8::9', mac: '02:ab:cd:00:00:09', router: true, flags: ['router'], id: neighborId({ link: 'va', family: 6, address: '2001:db8::9' }) });
  });

  it.each([
    [{ address: '203.0.113.300' }, 'body.address', /not an IPv4 or IPv6 address/],
    [{ address: '203.0.113.9/24' }, 'body.address', /without a prefix length/],
    [{ address: 'fe80::9%va' }, 'body.address', /not an IPv4 or IPv6 address/],
    [{ address: '0.0.0.0' }, 'body.address', /unspecified/],
    [{ address: '::' }, 'body.address', /unspecified/],
    [{ address: '224.0.0.5' }, 'body.address', /multicast/],
    [{ address: 'ff02::1' }, 'body.address', /multicast/],
    [{ address: '255.255.255.255' }, 'body.address', /limited broadcast/],
    [{ mac: '00:00:00:00:00:00' }, 'body.mac', /all-zero/],
    [{ router: true }, 'body.router', /IPv6 neighbours only/],
  ])('refuses %j with 400 naming the field', async (over, field, message) => {
    const t = await setup();
    const p = expectProblem(await post(t, 'a', { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09', ...over }), 'REQUEST_INVALID', 400);
    expect(p.errors).toEqual([{ field, message: expect.stringMatching(message) }]);
    expect(neighOps(t, 0)).toEqual([]);
  });

  it.each([
    [{ link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00' }, 'mac'],
    [{ link: 'va', address: '203.0.113.9', mac: '02-00-00-00-00-09' }, 'mac'],
    [{ link: 'va', address: '203.0.113.9' }, 'mac'],
    [{ link: '-n', address: '203.0.113.9', mac: '02:00:00:00:00:09' }, 'link'],
    [{ link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09', state: 'noarp' }, 'state'],
    [{ link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09', router: 'yes' }, 'router'],
  ])('refuses %j by schema (400 naming %s)', async (body, field) => {
    const t = await setup();
    const p = expectProblem(await post(t, 'a', body), 'REQUEST_INVALID', 400);
    expect(JSON.stringify(p.errors)).toContain(field);
  });

  it('returns 409 NEIGHBOR_EXISTS when a permanent entry exists for the address, naming its id', async () => {
    const t = await setup();
    const first = (await post(t, 'a', { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09' })).json();
    const p = expectProblem(await post(t, 'a', { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:10' }), 'NEIGHBOR_EXISTS', 409);
    expect(p).toMatchObject({ id: first.id, detail: expect.stringContaining(`PUT /v1/namespaces/a/neighbors/${first.id}`) });
    expect((await get(t, `${base}/${first.id}`)).json().mac).toBe('02:00:00:00:00:09');
  });

  it('returns 409 NEIGHBOR_EXISTS for the kernel\'s own noarp entry too', async () => {
    const t = await setup();
    t.kernel.learnNeighbor('a', learnt('va', '203.0.113.9', ['noarp']));
    expectProblem(await post(t, 'a', { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09' }), 'NEIGHBOR_EXISTS', 409);
  });

  it.each([['reachable'], ['stale'], ['failed'], ['incomplete']])('replaces a learnt %s entry with the permanent one (201)', async (state) => {
    const t = await setup();
    t.kernel.learnNeighbor('a', learnt('va', '203.0.113.9', [state]));
    const from = t.kernel.calls.length;
    const res = await post(t, 'a', { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09' });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ mac: '02:00:00:00:00:09', states: ['permanent'] });
    const spec = { link: 'va', family: 4, address: '203.0.113.9', mac: '02:00:00:00:00:09' };
    expect(neighOps(t, from)).toEqual([{ kind: 'neigh.add', ns: 'a', spec }, { kind: 'neigh.add', ns: 'a', spec, replace: true }]);
  });

  it('returns 404 LINK_NOT_FOUND for a missing link and 404 NAMESPACE_NOT_FOUND for a missing namespace', async () => {
    const t = await setup();
    expectProblem(await post(t, 'a', { link: 'nope', address: '203.0.113.9', mac: '02:00:00:00:00:09' }), 'LINK_NOT_FOUND', 404);
    expectProblem(await post(t, 'zz', { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09' }), 'NAMESPACE_NOT_FOUND', 404);
    expect(neighOps(t, 0)).toEqual([]);
  });

  it('returns 422 NEIGHBOR_LINK_UNSUPPORTED for a link without link-layer addresses and for IPv6 on a link with IPv6 disabled', async () => {
    const t = await setup();
    const [va] = (await t.kernel.run({ kind: 'link.list', ns: 'a', name: 'va' })).links;
    t.kernel.expect('link.list', { ns: 'a', name: 'va' }, { links: [{ ...va!, kind: 'tun', mac: null }] });
    const p = expectProblem(await post(t, 'a', { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09' }), 'NEIGHBOR_LINK_UNSUPPORTED', 422);
    expect(p.detail).toMatch(/no link-layer addresses \(a tun link\)/);
    expect(neighOps(t, 0)).toEqual([]);
    t.kernel.setSysctl('a', 'ipv6/conf/va/disable_ipv6', '1');
    expectProblem(await post(t, 'a', { link: 'va', address: '2001:db8::9', mac: '02:00:00:00:00:09' }), 'NEIGHBOR_LINK_UNSUPPORTED', 422);
    expect((await post(t, 'a', { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09' })).statusCode).toBe(201);
  });

  it('passes a kernel refusal of the MAC on (422 NEIGHBOR_MAC_INVALID)', async () => {
    const t = await setup();
    t.kernel.expect('neigh.add', new AppError('NEIGHBOR_MAC_INVALID', 'the link takes longer addresses'));
    expectProblem(await post(t, 'a', { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09' }), 'NEIGHBOR_MAC_INVALID', 422);
  });
});

describe('GET /v1/namespaces/{ns}/neighbors', () => {
  async function filled(): Promise<TestApp> {
    const t = await setup();
    expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces/a/links', headers: json, payload: { name: 'vc', kind: 'veth', peer: { name: 'vd', namespace: 'b' } } })).statusCode).toBe(201);
    for (const [link, address] of [['vc', '198.51.100.7'], ['va', '2001:db8::9'], ['va', '203.0.113.20'], ['va', '203.0.113.9']] as const) {
      expect((await post(t, 'a', { link, address, mac: '02:00:00:00:00:09' })).statusCode).toBe(201);
    }
    t.kernel.learnNeighbor('a', learnt('va', '203.0.113.2'));
    t.kernel.learnNeighbor('a', learnt('va', '203.0.113.3', ['failed']));
    t.kernel.learnNeighbor('a', learnt('va', 'ff02::2', ['noarp']));
    t.kernel.learnNeighbor('a', learnt('lo', '0.0.0.0', ['noarp']));
    return t;
  }
  const addrs = async (t: TestApp, q = '') => (await get(t, `${base}${q}`)).json().items.map((n: { link: string; address: string }) => `${n.link} ${n.address}`);

  it('lists by link, family, address; without `state` leaves out noarp entries, as `ip neigh show` does', async () => {
    const t = await filled();
    expect(await addrs(t)).toEqual(['va 203.0.113.2', 'va 203.0.113.3', 'va 203.0.113.9', 'va 203.0.113.20', 'va 2001:db8::9', 'vc 198.51.100.7']);
    const failed = (await get(t, `${base}?state=failed`)).json().items;
    expect(failed).toEqual([{ id: neighborId({ link: 'va', family: 4, address: '203.0.113.3' }), namespace: 'a', link: 'va', family: 4, address: '203.0.113.3', mac: null, states: ['failed'], router: false, flags: [] }]);
  });

  it('filters by state (`all` too), family and link; pages', async () => {
    const t = await filled();
    expect(await addrs(t, '?state=noarp')).toEqual(['lo 0.0.0.0', 'va ff02::2']);
    expect(await addrs(t, '?state=all')).toHaveLength(8);
    expect(await addrs(t, '?state=permanent&family=4')).toEqual(['va 203.0.113.9', 'va 203.0.113.20', 'vc 198.51.100.7']);
    expect(await addrs(t, '?family=6')).toEqual(['va 2001:db8::9']);
    expect(await addrs(t, '?link=vc')).toEqual(['vc 198.51.100.7']);
    const p1 = (await get(t, `${base}?limit=4`)).json();
    const p2 = (await get(t, `${base}?limit=4&cursor=${p1.next}`)).json();
    expect(p2.next).toBeUndefined();
    expect([...p1.items, ...p2.items].map((n: { address: string }) => n.address)).toEqual((await addrs(t)).map((s: string) => s.split(' ')[1]));
  });

  it('answers 404 LINK_NOT_FOUND for ?link= of a missing link, 400 for an unknown state or family, 404 NAMESPACE_NOT_FOUND', async () => {
    const t = await filled();
    expectProblem(await get(t, `${base}?link=nope`), 'LINK_NOT_FOUND', 404);
    expectProblem(await get(t, `${base}?state=bogus`), 'REQUEST_INVALID', 400);
    expectProblem(await get(t, `${base}?family=5`), 'REQUEST_INVALID', 400);
    expectProblem(await get(t, '/v1/namespaces/zz/neighbors'), 'NAMESPACE_NOT_FOUND', 404);
  });

  it('answers 404 NEIGHBOR_NOT_FOUND for an id of no entry, of a link that is gone, or that is not an id', async () => {
    const t = await filled();
    expectProblem(await get(t, `${base}/${neighborId({ link: 'va', family: 4, address: '203.0.113.99' })}`), 'NEIGHBOR_NOT_FOUND', 404);
    expectProblem(await get(t, `${base}/${neighborId({ link: 'gone', family: 4, address: '203.0.113.9' })}`), 'NEIGHBOR_NOT_FOUND', 404);
    expectProblem(await get(t, `${base}/bm90LWFuLWlk`), 'NEIGHBOR_NOT_FOUND', 404);
    expectProblem(await get(t, `${base}/${Buffer.from('va|6|203.0.113.9').toString('base64url')}`), 'NEIGHBOR_NOT_FOUND', 404);
  });

  it('reads a learnt entry by id, and the entries of a link go with it', async () => {
    const t = await filled();
    const id = neighborId({ link: 'vc', family: 4, address: '198.51.100.7' });
    expect((await get(t, `${base}/${id}`)).json()).toMatchObject({ link: 'vc', states: ['permanent'] });
    expect((await del(t, '/v1/namespaces/a/links/vc')).statusCode).toBe(204);
    expectProblem(await get(t, `${base}/${id}`), 'NEIGHBOR_NOT_FOUND', 404);
    expect(await addrs(t)).not.toContain('vc 198.51.100.7');
  });
});

describe('PUT and DELETE /v1/namespaces/{ns}/neighbors/{id}', () => {
  it('replaces an entry atomically (one `neigh replace`), keeping its id; a router left out is cleared', async () => {
    const t = await setup();
    const n = (await post(t, 'a', { link: 'va', address: '2001:db8::9', mac: '02:00:00:00:00:09', router: true })).json();
    const from = t.kernel.calls.length;
    // Another spelling of the same address is the same key.
    const res = await put(t, `${base}/${n.id}`, { link: 'va', address: '2001:DB8:0::0:9', mac: '02:00:00:00:00:0a' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ...n, mac: '02:00:00:00:00:0a', router: false, flags: [] });
    expect(neighOps(t, from)).toEqual([{ kind: 'neigh.add', ns: 'a', replace: true, spec: { link: 'va', family: 6, address: '2001:db8::9', mac: '02:00:00:00:00:0a' } }]);
  });

  it('makes a learnt entry permanent', async () => {
    const t = await setup();
    t.kernel.learnNeighbor('a', learnt('va', '203.0.113.2', ['stale']));
    const id = neighborId({ link: 'va', family: 4, address: '203.0.113.2' });
    expect((await put(t, `${base}/${id}`, { link: 'va', address: '203.0.113.2', mac: '02:00:00:00:00:02' })).json()).toMatchObject({ id, states: ['permanent'], mac: '02:00:00:00:00:02' });
  });

  it('refuses a PUT that changes the key (link, address) with 400 naming each, and one of an unknown id with 404', async () => {
    const t = await setup();
    expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces/a/links', headers: json, payload: { name: 'vc', kind: 'veth', peer: { name: 'vd', namespace: 'b' } } })).statusCode).toBe(201);
    const n = (await post(t, 'a', { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09' })).json();
    const p = expectProblem(await put(t, `${base}/${n.id}`, { link: 'vc', address: '203.0.113.10', mac: '02:00:00:00:00:09' }), 'REQUEST_INVALID', 400);
    expect((p.errors as Array<{ field: string }>).map((e) => e.field)).toEqual(['body.link', 'body.address']);
    expect((await put(t, `${base}/${n.id}`, { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:0b' })).statusCode).toBe(200);
    expect((await del(t, `${base}/${n.id}`)).statusCode).toBe(204);
    expectProblem(await put(t, `${base}/${n.id}`, { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09' }), 'NEIGHBOR_NOT_FOUND', 404);
  });

  it('deletes a permanent and a learnt entry by id (204), then 404 NEIGHBOR_NOT_FOUND', async () => {
    const t = await setup();
    const n = (await post(t, 'a', { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09' })).json();
    t.kernel.learnNeighbor('a', learnt('va', '2001:db8::2'));
    const from = t.kernel.calls.length;
    expect((await del(t, `${base}/${n.id}`)).statusCode).toBe(204);
    expect((await del(t, `${base}/${neighborId({ link: 'va', family: 6, address: '2001:db8::2' })}`)).statusCode).toBe(204);
    expect(neighOps(t, from)).toEqual([
      { kind: 'neigh.delete', ns: 'a', link: 'va', address: '203.0.113.9' },
      { kind: 'neigh.delete', ns: 'a', link: 'va', address: '2001:db8::2' },
    ]);
    expectProblem(await del(t, `${base}/${n.id}`), 'NEIGHBOR_NOT_FOUND', 404);
    expect((await get(t, `${base}?state=all`)).json().items).toEqual([]);
  });

  it('passes a kernel refusal of the delete on (gone meanwhile: 404)', async () => {
    const t = await setup();
    const n = (await post(t, 'a', { link: 'va', address: '203.0.113.9', mac: '02:00:00:00:00:09' })).json();
    t.kernel.expect('neigh.delete', new AppError('NEIGHBOR_NOT_FOUND', 'gone meanwhile'));
    expectProblem(await del(t, `${base}/${n.id}`), 'NEIGHBOR_NOT_FOUND', 404);
  });
});

describe('neighbours in host', () => {
  /** A veth a/vh <-> host/nnh0 (netnsd's); eth0 (unmanaged) has a learnt entry for 192.0.2.1. */
  async function withHostVeth(o: Parameters<typeof buildTestApp>[0] = {}): Promise<TestApp> {
    const t = await setup(o);
    expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces/a/links', headers: json, payload: { name: 'vh', kind: 'veth', peer: { name: 'nnh0', namespace: 'host' }, up: true } })).statusCode).toBe(201);
    t.kernel.learnNeighbor('host', learnt('eth0', '192.0.2.1'));
    return t;
  }
  const hbase = '/v1/namespaces/host/neighbors';
  const eth0Id = neighborId({ link: 'eth0', family: 4, address: '192.0.2.1' });

  it('reads every entry of host, and makes, replaces and deletes entries on netnsd\'s own link', async () => {
    const t = await withHostVeth();
    expect((await get(t, hbase)).json().items.map((n: { link: string }) => n.link)).toEqual(['eth0']);
    expect((await get(t, `${hbase}/${eth0Id}`)).statusCode).toBe(200);
    const res = await post(t, 'host', { link: 'nnh0', address: '198.18.7.2', mac: '02:00:00:00:00:09' });
    expect(res.statusCode).toBe(201);
    expect((await put(t, res.headers.location as string, { link: 'nnh0', address: '198.18.7.2', mac: '02:00:00:00:00:0a' })).statusCode).toBe(200);
    expect((await del(t, res.headers.location as string)).statusCode).toBe(204);
  });

  it('answers 403 HOST_PROTECTED for making, replacing or deleting an entry on a link netnsd did not create', async () => {
    const t = await withHostVeth();
    const p = expectProblem(await post(t, 'host', { link: 'eth0', address: '192.0.2.9', mac: '02:00:00:00:00:09' }), 'HOST_PROTECTED', 403);
    expect(p).toMatchObject({ link: 'eth0' });
    expectProblem(await put(t, `${hbase}/${eth0Id}`, { link: 'eth0', address: '192.0.2.1', mac: '02:00:00:00:00:09' }), 'HOST_PROTECTED', 403);
    expectProblem(await del(t, `${hbase}/${eth0Id}`), 'HOST_PROTECTED', 403);
    expect(neighOps(t, 0)).toEqual([]);
  });

  it('allows entries on any host link with host.allowChanges', async () => {
    const t = await withHostVeth({ config: { host: { ...testConfig().host, allowChanges: true } } });
    expect((await post(t, 'host', { link: 'eth0', address: '192.0.2.9', mac: '02:00:00:00:00:09' })).statusCode).toBe(201);
    expect((await del(t, `${hbase}/${eth0Id}`)).statusCode).toBe(204);
  });
});
