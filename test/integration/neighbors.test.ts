/**
 * Neighbour entries against the real kernel, through the API only (sysctls too). Namespaces come
 * from nsName() and are removed after each test. Addresses: 203.0.113.0/24 and 2001:db8::/32
 * inside test namespaces only; the host test uses a veth netnsd created, with an entry for an
 * address of 198.18.0.0/15 on it, and touches no other host link.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ip, ping, trackHostLink } from '../helpers/kernel.js';
import { adminClient, type RealApp, createNamespaces, startRealApp } from '../helpers/real-app.js';

let r: RealApp;
beforeAll(async () => {
  r = await startRealApp();
});
afterAll(async () => {
  await r?.close();
});

const { api, ok } = adminClient(() => r);


/** Retries a ping a few times: a veth just brought up takes a moment (IPv6 especially). */
function pingSoon(ns: string, addr: string): boolean {
  for (let i = 0; i < 4; i++) if (ping(ns, addr)) return true;
  return false;
}

/** a --(veth ea/eb: 203.0.113.0/24, 2001:db8:1::/64)-- b; the MAC of eb. */
async function pair(): Promise<{ a: string; b: string; macB: string }> {
  const [a, b] = (await createNamespaces(r, 'na', 'nb')) as [string, string];
  await ok('POST', `/v1/namespaces/${a}/links`, { name: 'ea', kind: 'veth', peer: { name: 'eb', namespace: b }, up: true });
  await ok('POST', `/v1/namespaces/${a}/addresses`, { link: 'ea', address: '203.0.113.1/24' });
  await ok('POST', `/v1/namespaces/${b}/addresses`, { link: 'eb', address: '203.0.113.2/24' });
  await ok('POST', `/v1/namespaces/${a}/addresses`, { link: 'ea', address: '2001:db8:1::1/64', nodad: true });
  await ok('POST', `/v1/namespaces/${b}/addresses`, { link: 'eb', address: '2001:db8:1::2/64', nodad: true });
  const macB = (await ok('GET', `/v1/namespaces/${b}/links/eb`, undefined, 200)).mac as string;
  return { a, b, macB };
}

const WRONG_MAC = '02:00:00:00:00:99';

describe('neighbours against the real kernel', () => {
  it('a permanent entry with a wrong MAC stops ping, PUT with the right one brings it back, DELETE returns to ARP', async () => {
    const { a, macB } = await pair();
    expect(pingSoon(a, '203.0.113.2')).toBe(true);
    const learnt = (await ok('GET', `/v1/namespaces/${a}/neighbors?link=ea&family=4`, undefined, 200)).items;
    expect(learnt).toEqual([expect.objectContaining({ link: 'ea', address: '203.0.113.2', mac: macB, states: [expect.stringMatching(/^(reachable|stale|delay|probe)$/)] })]);

    // Over the learnt entry: replaced, not 409.
    const res = await api('POST', `/v1/namespaces/${a}/neighbors`, { link: 'ea', address: '203.0.113.2', mac: WRONG_MAC });
    expect(res.status, res.body).toBe(201);
    const n = res.json();
    expect(n).toEqual({ id: learnt[0].id, namespace: a, link: 'ea', family: 4, address: '203.0.113.2', mac: WRONG_MAC, states: ['permanent'], router: false, flags: [] });
    expect(res.headers.location).toBe(`/v1/namespaces/${a}/neighbors/${n.id}`);
    expect(ip('-n', a, 'neigh', 'show', '203.0.113.2', 'dev', 'ea')).toContain(`lladdr ${WRONG_MAC} PERMANENT`);
    expect(ping(a, '203.0.113.2')).toBe(false);

    const fixed = await ok('PUT', `/v1/namespaces/${a}/neighbors/${n.id}`, { link: 'ea', address: '203.0.113.2', mac: macB.toUpperCase() }, 200);
    expect(fixed).toEqual({ ...n, mac: macB });
    expect(ping(a, '203.0.113.2')).toBe(true);
    expect(await ok('GET', `/v1/namespaces/${a}/neighbors/${n.id}`, undefined, 200)).toEqual(fixed);
    // Still permanent after traffic: the kernel does not relearn it.
    expect((await ok('GET', `/v1/namespaces/${a}/neighbors?state=permanent`, undefined, 200)).items).toEqual([fixed]);

    await ok('PUT', `/v1/namespaces/${a}/neighbors/${n.id}`, { link: 'ea', address: '203.0.113.2', mac: WRONG_MAC }, 200);
    expect(ping(a, '203.0.113.2')).toBe(false);
    expect((await api('DELETE', `/v1/namespaces/${a}/neighbors/${n.id}`)).status).toBe(204);
    expect(ping(a, '203.0.113.2')).toBe(true);
    const after = await ok('GET', `/v1/namespaces/${a}/neighbors/${n.id}`, undefined, 200);
    expect(after).toMatchObject({ mac: macB, states: [expect.not.stringMatching(/permanent/)] });
  });

  it('IPv6: a router entry with a wrong MAC stops ping until it is deleted; PUT without router clears the flag', async () => {
    const { a, macB } = await pair();
    const n = await ok('POST', `/v1/namespaces/${a}/neighbors`, { link: 'ea', address: '2001:DB8:1::2', mac: WRONG_MAC, router: true });
    expect(n).toMatchObject({ family: 6, address: '2001:db8:1::2', router: true, flags: ['router'], states: ['permanent'] });
    expect(ip('-n', a, 'neigh', 'show', '2001:db8:1::2', 'dev', 'ea')).toContain('router PERMANENT');
    expect(ping(a, '2001:db8:1::2')).toBe(false);
    const plain = await ok('PUT', `/v1/namespaces/${a}/neighbors/${n.id}`, { link: 'ea', address: '2001:db8:1::2', mac: macB }, 200);
    expect(plain).toMatchObject({ id: n.id, router: false, flags: [], mac: macB });
    expect(pingSoon(a, '2001:db8:1::2')).toBe(true);
    await ok('PUT', `/v1/namespaces/${a}/neighbors/${n.id}`, { link: 'ea', address: '2001:db8:1::2', mac: WRONG_MAC }, 200);
    expect(ping(a, '2001:db8:1::2')).toBe(false);
    expect((await api('DELETE', `/v1/namespaces/${a}/neighbors/${n.id}`)).status).toBe(204);
    expect(pingSoon(a, '2001:db8:1::2')).toBe(true);
    // The kernel's own noarp entries (IPv6 multicast) are listed on request only.
    expect((await ok('GET', `/v1/namespaces/${a}/neighbors?family=6`, undefined, 200)).items.every((x: any) => !x.states.includes('noarp'))).toBe(true);
    const noarp = (await ok('GET', `/v1/namespaces/${a}/neighbors?family=6&state=noarp`, undefined, 200)).items;
    expect(noarp.length).toBeGreaterThan(0);
    expect(noarp.every((x: any) => x.address.startsWith('ff02::'))).toBe(true);
  });

  it('answers NEIGHBOR_EXISTS, LINK_NOT_FOUND, NEIGHBOR_LINK_UNSUPPORTED (tun, IPv6 disabled), NEIGHBOR_NOT_FOUND, NAMESPACE_NOT_FOUND from the real kernel', async () => {
    const { a } = await pair();
    const n = await ok('POST', `/v1/namespaces/${a}/neighbors`, { link: 'ea', address: '203.0.113.9', mac: '02:00:00:00:00:09' });
    const dup = await api('POST', `/v1/namespaces/${a}/neighbors`, { link: 'ea', address: '203.0.113.9', mac: '02:00:00:00:00:10' });
    expect([dup.status, dup.json().code, dup.json().id]).toEqual([409, 'NEIGHBOR_EXISTS', n.id]);
    const nolink = await api('POST', `/v1/namespaces/${a}/neighbors`, { link: 'nope', address: '203.0.113.9', mac: '02:00:00:00:00:09' });
    expect([nolink.status, nolink.json().code]).toEqual([404, 'LINK_NOT_FOUND']);
    expect((await api('GET', `/v1/namespaces/${a}/neighbors?link=nope`)).json().code).toBe('LINK_NOT_FOUND');

    await ok('POST', `/v1/namespaces/${a}/links`, { name: 'tun0', kind: 'tun' });
    const tun = await api('POST', `/v1/namespaces/${a}/neighbors`, { link: 'tun0', address: '203.0.113.10', mac: '02:00:00:00:00:09' });
    expect([tun.status, tun.json().code]).toEqual([422, 'NEIGHBOR_LINK_UNSUPPORTED']);
    await ok('PATCH', `/v1/namespaces/${a}/sysctls`, { 'net.ipv6.conf.ea.disable_ipv6': 1 }, 200);
    const v6off = await api('POST', `/v1/namespaces/${a}/neighbors`, { link: 'ea', address: '2001:db8:1::9', mac: '02:00:00:00:00:09' });
    expect([v6off.status, v6off.json().code]).toEqual([422, 'NEIGHBOR_LINK_UNSUPPORTED']);

    const bad = await api('POST', `/v1/namespaces/${a}/neighbors`, { link: 'ea', address: '224.0.0.5', mac: '00:00:00:00:00:00', router: true });
    expect([bad.status, bad.json().errors.map((e: any) => e.field)]).toEqual([400, ['body.address', 'body.mac', 'body.router']]);

    expect((await api('DELETE', `/v1/namespaces/${a}/neighbors/${n.id}`)).status).toBe(204);
    expect((await api('DELETE', `/v1/namespaces/${a}/neighbors/${n.id}`)).json().code).toBe('NEIGHBOR_NOT_FOUND');
    expect((await api('GET', `/v1/namespaces/nnt-no-such-ns/neighbors`)).json().code).toBe('NAMESPACE_NOT_FOUND');
  });

  it('the executor answers the kernel\'s own refusals with their codes, and its worker stays usable', async () => {
    const { a } = await pair();
    const ex = r.services.executor;
    const spec = { link: 'ea', family: 4 as const, address: '203.0.113.9', mac: '02:00:00:00:00:09' };
    await ex.run({ kind: 'neigh.add', ns: a, spec });
    await expect(ex.run({ kind: 'neigh.add', ns: a, spec })).rejects.toMatchObject({ code: 'NEIGHBOR_EXISTS' });
    await expect(ex.run({ kind: 'neigh.delete', ns: a, link: 'ea', address: '203.0.113.99' })).rejects.toMatchObject({ code: 'NEIGHBOR_NOT_FOUND' });
    await expect(ex.run({ kind: 'neigh.add', ns: a, spec: { ...spec, link: 'nope' } })).rejects.toMatchObject({ code: 'LINK_NOT_FOUND' });
    await expect(ex.run({ kind: 'neigh.add', ns: 'nnt-no-such-ns', spec })).rejects.toMatchObject({ code: 'NAMESPACE_NOT_FOUND' });
    // A change through the namespace's batch worker right after: nothing of the above broke it.
    await ok('POST', `/v1/namespaces/${a}/addresses`, { link: 'ea', address: '198.51.100.1/24' });
    await ex.run({ kind: 'neigh.delete', ns: a, link: 'ea', address: '203.0.113.9' });
    expect(ip('-n', a, 'neigh', 'show', '203.0.113.9', 'dev', 'ea')).toBe('');
  });

  it('in host: an entry on netnsd\'s own veth is made and removed; one on a link netnsd did not create is refused', async () => {
    const [a] = (await createNamespaces(r, 'nh')) as [string];
    const hostEnd = `nnt${(process.pid % 46656).toString(36)}n`;
    trackHostLink(hostEnd);
    await ok('POST', `/v1/namespaces/${a}/links`, { name: 'va', kind: 'veth', peer: { name: hostEnd, namespace: 'host' }, up: true });
    const n = await ok('POST', '/v1/namespaces/host/neighbors', { link: hostEnd, address: '198.18.254.2', mac: '02:00:00:00:00:09' });
    expect(n).toMatchObject({ namespace: 'host', link: hostEnd, states: ['permanent'] });
    expect(ip('neigh', 'show', 'dev', hostEnd)).toContain('198.18.254.2 lladdr 02:00:00:00:00:09 PERMANENT');
    expect((await ok('GET', `/v1/namespaces/host/neighbors?link=${hostEnd}`, undefined, 200)).items).toEqual([n]);
    expect((await api('DELETE', `/v1/namespaces/host/neighbors/${n.id}`)).status).toBe(204);
    expect(ip('neigh', 'show', 'dev', hostEnd)).not.toContain('198.18.254.2');

    const eth0 = await api('POST', '/v1/namespaces/host/neighbors', { link: 'eth0', address: '198.18.254.3', mac: '02:00:00:00:00:09' });
    expect([eth0.status, eth0.json().code]).toEqual([403, 'HOST_PROTECTED']);
    expect(ip('neigh', 'show', '198.18.254.3')).toBe('');
    expect((await api('GET', '/v1/namespaces/host/neighbors')).status).toBe(200);
  });
});
