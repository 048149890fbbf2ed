/**
 * Addresses against the real kernel, through the API only. Namespaces come from nsName() and are
 * removed after each test. Addresses: 203.0.113.0/24, 198.51.100.0/24 and 2001:db8::/32 inside
 * test namespaces only; the one host-side test uses a veth netnsd created, a /24 of 198.18.0.0/15
 * that no host route overlaps (checked first), and removes everything.
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


const { api } = adminClient(() => r);

const namespaces = <T extends string[]>(...tags: T) => createNamespaces(r, ...tags);

async function veth(a: string, b: string, na = 'va', nb = 'vb'): Promise<void> {
  const res = await api('POST', `/v1/namespaces/${a}/links`, { name: na, kind: 'veth', peer: { name: nb, namespace: b }, up: true });
  expect(res.status, res.body).toBe(201);
}

async function addAddress(ns: string, body: Record<string, unknown>): Promise<any> {
  const res = await api('POST', `/v1/namespaces/${ns}/addresses`, body);
  expect(res.status, res.body).toBe(201);
  return res.json();
}


describe('addresses against the real kernel', () => {
  it('addresses both ends of a veth: ping works both ways; the item matches the kernel; delete removes it', async () => {
    const [a, b] = await namespaces('aa', 'ab') as [string, string];
    await veth(a, b);
    const x = await addAddress(a, { link: 'va', address: '203.0.113.1/24' });
    const y = await addAddress(b, { link: 'vb', address: '203.0.113.2/24', broadcast: '203.0.113.255', label: 'vb:1' });
    expect(x).toMatchObject({ namespace: a, link: 'va', family: 4, address: '203.0.113.1/24', scope: 'global', label: 'va', tentative: false });
    expect(y).toMatchObject({ broadcast: '203.0.113.255', label: 'vb:1' });
    const kernel = JSON.parse(ip('-n', a, '-j', 'address', 'show', 'dev', 'va'))[0].addr_info;
    expect(kernel).toEqual(expect.arrayContaining([expect.objectContaining({ family: 'inet', local: '203.0.113.1', prefixlen: 24 })]));
    expect(ping(a, '203.0.113.2')).toBe(true);
    expect(ping(b, '203.0.113.1')).toBe(true);

    expect((await api('GET', `/v1/namespaces/${a}/addresses/${x.id}`)).json()).toEqual(x);
    const list = (await api('GET', `/v1/namespaces/${a}/addresses?link=va&family=4`)).json().items;
    expect(list.map((i: any) => i.id)).toEqual([x.id]);

    expect((await api('DELETE', `/v1/namespaces/${a}/addresses/${x.id}`)).status).toBe(204);
    expect(ip('-n', a, '-j', 'address', 'show', 'dev', 'va')).not.toContain('203.0.113.1');
    expect(ping(b, '203.0.113.1')).toBe(false);
    expect((await api('DELETE', `/v1/namespaces/${a}/addresses/${x.id}`)).json().code).toBe('ADDRESS_NOT_FOUND');
  });

  it('IPv6 with nodad is usable at once; without it the address is tentative first', async () => {
    const [a, b] = await namespaces('6a', '6b') as [string, string];
    await veth(a, b);
    const x = await addAddress(a, { link: 'va', address: '2001:db8:0:0::1/64', nodad: true });
    expect(x).toMatchObject({ family: 6, address: '2001:db8::1/64', tentative: false, flags: expect.arrayContaining(['nodad']) });
    const slow = await addAddress(a, { link: 'va', address: '2001:db8::11/64' });
    expect(slow.tentative).toBe(true);
    await addAddress(b, { link: 'vb', address: '2001:db8::2/64', nodad: true });
    expect(ping(a, '2001:db8::2')).toBe(true);
    expect(ping(b, '2001:db8::1')).toBe(true);
  });

  it('answers ADDRESS_EXISTS, LINK_NOT_FOUND, ADDRESS_SCOPE_INVALID and validation errors from the real kernel', async () => {
    const [a, b] = await namespaces('ea', 'eb') as [string, string];
    await veth(a, b);
    await addAddress(a, { link: 'va', address: '198.51.100.1/24' });
    await addAddress(a, { link: 'va', address: '2001:db8::1/64', nodad: true });
    const dup = await api('POST', `/v1/namespaces/${a}/addresses`, { link: 'va', address: '198.51.100.1/24' });
    expect([dup.status, dup.json().code]).toEqual([409, 'ADDRESS_EXISTS']);
    const dup6 = await api('POST', `/v1/namespaces/${a}/addresses`, { link: 'va', address: '2001:db8::1/64' });
    expect([dup6.status, dup6.json().code]).toEqual([409, 'ADDRESS_EXISTS']);
    const missing = await api('POST', `/v1/namespaces/${a}/addresses`, { link: 'nope', address: '198.51.100.2/24' });
    expect([missing.status, missing.json().code]).toEqual([404, 'LINK_NOT_FOUND']);
    const scope = await api('POST', `/v1/namespaces/${a}/addresses`, { link: 'va', address: '198.51.100.7/24', scope: 'link' });
    expect([scope.status, scope.json().code]).toEqual([422, 'ADDRESS_SCOPE_INVALID']);
    const net = await api('POST', `/v1/namespaces/${a}/addresses`, { link: 'va', address: '198.51.100.0/24' });
    expect([net.status, net.json().errors]).toEqual([400, [{ field: 'body.address', message: expect.stringContaining('network address') }]]);
    // The worker is still fine after its refusals.
    await addAddress(a, { link: 'va', address: '198.51.100.9/24' });
  });

  it('in host: adds and deletes on a veth end netnsd created; refuses unmanaged links', async () => {
    const [a] = await namespaces('ha') as [string];
    const hostEnd = `nnt${(process.pid % 46656).toString(36)}a`;
    trackHostLink(hostEnd);
    await veth(a, 'host', 'va', hostEnd);
    // A /24 of 198.18.0.0/15 that no host route overlaps.
    const routes = [...JSON.parse(ip('-j', 'route', 'show', 'table', 'all')), ...JSON.parse(ip('-j', '-6', 'route', 'show', 'table', 'all'))];
    const taken = routes.flatMap((rt: any) => {
      const p = parsePrefix(rt.dst === 'default' ? '0.0.0.0/0' : rt.dst.includes('/') ? rt.dst : `${rt.dst}/${rt.dst.includes(':') ? 128 : 32}`);
      return typeof p === 'string' ? [] : [p];
    });
    const free = [...Array(200).keys()].map((i) => `198.18.${i + 40}.0/24`).find((c) => !taken.some((t) => t.prefixLength > 0 && overlaps(t, parsePrefix(c) as any)));
    expect(free).toBeDefined();
    const addr = free!.replace('.0/24', '.1/24');
    const x = await addAddress('host', { link: hostEnd, address: addr });
    expect(ip('-j', 'address', 'show', 'dev', hostEnd)).toContain(addr.split('/')[0]);
    expect((await api('DELETE', `/v1/namespaces/host/addresses/${x.id}`)).status).toBe(204);
    expect(ip('-j', 'address', 'show', 'dev', hostEnd)).not.toContain(addr.split('/')[0]);

    const eth0 = await api('POST', '/v1/namespaces/host/addresses', { link: 'eth0', address: addr });
    expect([eth0.status, eth0.json().code]).toEqual([403, 'HOST_PROTECTED']);
    const wide = await api('POST', '/v1/namespaces/host/addresses', { link: hostEnd, address: '198.18.0.1/15' });
    expect([wide.status, wide.json().code]).toEqual([409, 'HOST_ROUTE_CONFLICT']);
  });
});
