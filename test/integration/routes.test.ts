/**
 * Routes against the real kernel, through the API only (forwarding too, with the sysctls
 * endpoint). Namespaces come from nsName() and are removed after each test.
 * Addresses: 203.0.113.0/24, 198.51.100.0/24 and 2001:db8::/32 inside test namespaces only; the
 * host test uses a veth netnsd created and a /24 of 198.18.0.0/15 that no host route overlaps.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ip, nsName, ping, trackHostLink } from '../helpers/kernel.js';
import { adminClient, type RealApp, createNamespaces, startRealApp } from '../helpers/real-app.js';
import { overlaps, parsePrefix } from '../../src/ip-address.js';

let r: RealApp;
beforeAll(async () => {
  r = await startRealApp();
});
afterAll(async () => {
  await r?.close();
});


const { api, ok } = adminClient(() => r);

const namespaces = <T extends string[]>(...tags: T) => createNamespaces(r, ...tags);



/** a --(203.0.113.0/24)-- router --(198.51.100.0/24)-- b, forwarding on in the router. */
async function routed(): Promise<{ a: string; rt: string; b: string }> {
  const [a, rt, b] = (await namespaces('ra', 'rr', 'rb')) as [string, string, string];
  await ok('POST', `/v1/namespaces/${a}/links`, { name: 'ea', kind: 'veth', peer: { name: 'ra', namespace: rt }, up: true });
  await ok('POST', `/v1/namespaces/${b}/links`, { name: 'eb', kind: 'veth', peer: { name: 'rb', namespace: rt }, up: true });
  await ok('POST', `/v1/namespaces/${a}/addresses`, { link: 'ea', address: '203.0.113.1/24' });
  await ok('POST', `/v1/namespaces/${rt}/addresses`, { link: 'ra', address: '203.0.113.254/24' });
  await ok('POST', `/v1/namespaces/${rt}/addresses`, { link: 'rb', address: '198.51.100.254/24' });
  await ok('POST', `/v1/namespaces/${b}/addresses`, { link: 'eb', address: '198.51.100.1/24' });
  await ok('PATCH', `/v1/namespaces/${rt}/sysctls`, { 'net.ipv4.ip_forward': 1 }, 200);
  return { a, rt, b };
}

describe('routes against the real kernel', () => {
  it('routes across a router namespace both ways; ping stops when a route is deleted', async () => {
    const { a, b } = await routed();
    expect(ping(a, '198.51.100.1')).toBe(false);
    const ra = await ok('POST', `/v1/namespaces/${a}/routes`, { dst: '198.51.100.0/24', via: '203.0.113.254' });
    expect(ra).toMatchObject({ namespace: a, family: 4, dst: '198.51.100.0/24', table: 254, type: 'unicast', via: '203.0.113.254', dev: 'ea', metric: 0 });
    const rb = await ok('POST', `/v1/namespaces/${b}/routes`, { dst: 'default', via: '198.51.100.254' });
    expect(rb).toMatchObject({ dst: 'default', via: '198.51.100.254', dev: 'eb' });
    expect(ip('-n', a, 'route', 'show', '198.51.100.0/24')).toContain('via 203.0.113.254');
    expect(ping(a, '198.51.100.1')).toBe(true);
    expect(ping(b, '203.0.113.1')).toBe(true);

    expect(await ok('GET', `/v1/namespaces/${a}/routes/${ra.id}`, undefined, 200)).toEqual(ra);
    const main = (await ok('GET', `/v1/namespaces/${a}/routes?family=4`, undefined, 200)).items;
    expect(main.map((x: any) => x.dst)).toEqual(['198.51.100.0/24', '203.0.113.0/24']);
    expect(main[1]).toMatchObject({ protocol: 'kernel', scope: 'link', src: '203.0.113.1' });

    expect((await api('DELETE', `/v1/namespaces/${b}/routes/${rb.id}`)).status).toBe(204);
    expect(ping(a, '198.51.100.1')).toBe(false);
    expect((await api('DELETE', `/v1/namespaces/${b}/routes/${rb.id}`)).json().code).toBe('ROUTE_NOT_FOUND');
  });

  it('PUT replaces a route atomically, keeping its id; a changed key is refused', async () => {
    const { a, rt, b } = await routed();
    await ok('POST', `/v1/namespaces/${b}/routes`, { dst: 'default', via: '198.51.100.254' });
    // A wrong gateway first: no traffic.
    await ok('POST', `/v1/namespaces/${rt}/addresses`, { link: 'ra', address: '203.0.113.253/24' });
    const bad = await ok('POST', `/v1/namespaces/${a}/routes`, { dst: '198.51.100.0/24', via: '203.0.113.77', metric: 10 });
    expect(ping(a, '198.51.100.1')).toBe(false);
    const good = await ok('PUT', `/v1/namespaces/${a}/routes/${bad.id}`, { dst: '198.51.100.0/24', via: '203.0.113.254', metric: 10, mtu: 1400 }, 200);
    expect(good).toMatchObject({ id: bad.id, via: '203.0.113.254', metric: 10, mtu: 1400 });
    expect(ip('-n', a, 'route', 'show', '198.51.100.0/24').trim().split('\n')).toHaveLength(1);
    expect(ping(a, '198.51.100.1')).toBe(true);
    const moved = await api('PUT', `/v1/namespaces/${a}/routes/${bad.id}`, { dst: '198.51.100.0/25', via: '203.0.113.254', metric: 10 });
    expect([moved.status, moved.json().errors?.[0]?.field]).toEqual([400, 'body.dst']);
  });

  it('answers ROUTE_EXISTS, NEXTHOP_UNREACHABLE (IPv4 and IPv6), LINK_NOT_FOUND, ROUTE_SOURCE_INVALID from the real kernel; adds blackhole, table and multipath routes', async () => {
    const { a, rt } = await routed();
    await ok('POST', `/v1/namespaces/${a}/addresses`, { link: 'ea', address: '2001:db8::1/64', nodad: true });
    await ok('POST', `/v1/namespaces/${a}/routes`, { dst: '198.51.100.0/24', via: '203.0.113.254' });
    const dup = await api('POST', `/v1/namespaces/${a}/routes`, { dst: '198.51.100.0/24', via: '203.0.113.9' });
    expect([dup.status, dup.json().code]).toEqual([409, 'ROUTE_EXISTS']);
    const far = await api('POST', `/v1/namespaces/${a}/routes`, { dst: '198.18.9.0/24', via: '192.168.77.1' });
    expect([far.status, far.json().code, far.json().detail]).toEqual([422, 'NEXTHOP_UNREACHABLE', expect.stringContaining('not reachable on any link')]);
    const far6 = await api('POST', `/v1/namespaces/${a}/routes`, { dst: '2001:db8:5::/48', via: '2001:db9::1' });
    expect([far6.status, far6.json().code]).toEqual([422, 'NEXTHOP_UNREACHABLE']);
    const nodev = await api('POST', `/v1/namespaces/${a}/routes`, { dst: '198.18.9.0/24', dev: 'nope' });
    expect([nodev.status, nodev.json().code]).toEqual([404, 'LINK_NOT_FOUND']);
    const src = await api('POST', `/v1/namespaces/${a}/routes`, { dst: '198.18.9.0/24', via: '203.0.113.254', src: '198.18.1.1' });
    expect([src.status, src.json().code]).toEqual([422, 'ROUTE_SOURCE_INVALID']);
    const bits = await api('POST', `/v1/namespaces/${a}/routes`, { dst: '198.18.9.1/24', via: '203.0.113.254' });
    expect([bits.status, bits.json().errors]).toEqual([400, [{ field: 'body.dst', message: expect.stringContaining('198.18.9.0/24') }]]);

    expect(await ok('POST', `/v1/namespaces/${a}/routes`, { dst: '198.18.10.0/24', type: 'blackhole', table: 100 })).toMatchObject({ type: 'blackhole', table: 100 });
    expect((await ok('GET', `/v1/namespaces/${a}/routes?table=100`, undefined, 200)).items).toHaveLength(1);
    await ok('POST', `/v1/namespaces/${rt}/addresses`, { link: 'ra', address: '203.0.113.253/24' });
    const mp = await ok('POST', `/v1/namespaces/${a}/routes`, { dst: '198.18.11.0/24', nexthops: [{ via: '203.0.113.254', weight: 2 }, { via: '203.0.113.253' }] });
    expect(mp.nexthops).toEqual([{ via: '203.0.113.254', dev: 'ea', weight: 2 }, { via: '203.0.113.253', dev: 'ea', weight: 1 }]);
    const v6 = await ok('POST', `/v1/namespaces/${a}/routes`, { dst: '2001:db8:5::/48', via: '2001:db8::fe' });
    expect(v6).toMatchObject({ family: 6, metric: 1024 });
    expect((await api('DELETE', `/v1/namespaces/${a}/routes/${v6.id}`)).status).toBe(204);
  });

  it('in host: a route through netnsd\'s own veth is added and removed; default, short, and unmanaged ones are refused', async () => {
    const [a] = (await namespaces('ha')) as [string];
    const hostEnd = `nnt${(process.pid % 46656).toString(36)}r`;
    trackHostLink(hostEnd);
    await ok('POST', `/v1/namespaces/${a}/links`, { name: 'va', kind: 'veth', peer: { name: hostEnd, namespace: 'host' }, up: true });
    await ok('PATCH', `/v1/namespaces/host/links/${hostEnd}`, { up: true }, 200);
    const routes = [...JSON.parse(ip('-j', 'route', 'show', 'table', 'all'))];
    const taken = routes.flatMap((rt: any) => {
      const p = parsePrefix(rt.dst === 'default' ? '0.0.0.0/0' : rt.dst.includes('/') ? rt.dst : `${rt.dst}/32`);
      return typeof p === 'string' || p.prefixLength === 0 ? [] : [p];
    });
    const free = [...Array(100).keys()].map((i) => [`198.18.${2 * i + 100}.0/24`, `198.18.${2 * i + 101}.0/24`]).find((pair) => pair.every((c) => !taken.some((t) => overlaps(t, parsePrefix(c) as any))));
    expect(free).toBeDefined();
    const [link, far] = free!;
    await ok('POST', '/v1/namespaces/host/addresses', { link: hostEnd, address: link!.replace('.0/24', '.1/24') });
    await ok('POST', `/v1/namespaces/${a}/addresses`, { link: 'va', address: link!.replace('.0/24', '.2/24') });
    const route = await ok('POST', '/v1/namespaces/host/routes', { dst: far, via: link!.replace('.0/24', '.2') });
    expect(route).toMatchObject({ dev: hostEnd });
    expect(ip('route', 'show', far!)).toContain(hostEnd);
    expect((await api('DELETE', `/v1/namespaces/host/routes/${route.id}`)).status).toBe(204);
    expect(ip('route', 'show', far!)).toBe('');

    for (const body of [{ dst: 'default', via: link!.replace('.0/24', '.2') }, { dst: '198.18.0.0/15', via: link!.replace('.0/24', '.2') }]) {
      const res = await api('POST', '/v1/namespaces/host/routes', body);
      expect([res.status, res.json().code]).toEqual([409, 'HOST_ROUTE_CONFLICT']);
    }
    const eth0 = await api('POST', '/v1/namespaces/host/routes', { dst: far, dev: 'eth0' });
    expect([eth0.status, eth0.json().code]).toEqual([403, 'HOST_PROTECTED']);
  });
});
