import { afterEach, describe, expect, it } from 'vitest';
import { nsName } from '../helpers/kernel.js';
import { adminClient, useRealApp } from '../helpers/real-app.js';

const app = useRealApp();
const { api, ok } = adminClient(app);
const made: string[] = [];
afterEach(async () => {
  for (const name of made.splice(0)) await api('DELETE', `/v1/namespaces/${name}?force=true`);
});

/**
 * a —(va|ra)— r —(rb|vb)— b, all through the API: a 198.51.100.1/30, r 198.51.100.2/30 and
 * 203.0.113.1/30, b 203.0.113.2/30; a's default route and b's route back go through r, which
 * forwards.
 */
async function line(): Promise<{ a: string; r: string; b: string }> {
  const [a, rt, b] = [nsName('pa'), nsName('pr'), nsName('pb')];
  for (const name of [a, rt, b]) {
    await ok('POST', '/v1/namespaces', { name });
    made.push(name);
  }
  await ok('POST', `/v1/namespaces/${a}/links`, { name: 'va', kind: 'veth', peer: { name: 'ra', namespace: rt }, up: true });
  await ok('POST', `/v1/namespaces/${b}/links`, { name: 'vb', kind: 'veth', peer: { name: 'rb', namespace: rt }, up: true });
  for (const l of ['ra', 'rb']) await ok('PATCH', `/v1/namespaces/${rt}/links/${l}`, { up: true }, 200);
  await ok('POST', `/v1/namespaces/${a}/addresses`, { link: 'va', address: '198.51.100.1/30' });
  await ok('POST', `/v1/namespaces/${rt}/addresses`, { link: 'ra', address: '198.51.100.2/30' });
  await ok('POST', `/v1/namespaces/${rt}/addresses`, { link: 'rb', address: '203.0.113.1/30' });
  await ok('POST', `/v1/namespaces/${b}/addresses`, { link: 'vb', address: '203.0.113.2/30' });
  await ok('POST', `/v1/namespaces/${a}/routes`, { dst: 'default', via: '198.51.100.2' });
  await ok('POST', `/v1/namespaces/${b}/routes`, { dst: '198.51.100.0/30', via: '203.0.113.1' });
  await ok('PATCH', `/v1/namespaces/${rt}/sysctls`, { 'net.ipv4.ip_forward': 1 }, 200);
  return { a, r: rt, b };
}

const path = async (from: string, to: string) => (await ok('POST', '/v1/diagnostics/path', { from, to }, 200)).items;

describe('diagnostics/path against the real kernel', () => {
  it('follows a working path through a router namespace and back, and the probe gets replies', async () => {
    const t = await line();
    const [answer] = await path(t.a, t.b);
    expect(answer).toMatchObject({ from: t.a, to: '203.0.113.2', reachable: true, reason: 'reachable' });
    const where = answer.steps.map((s: { direction: string; namespace: string; check: string; ok: boolean }) => `${s.direction} ${s.namespace} ${s.check} ${s.ok}`);
    expect(where).toEqual(expect.arrayContaining([`forward ${t.a} route true`, `forward ${t.r} route true`, `forward ${t.b} delivery true`, `return ${t.b} route true`, `return ${t.a} delivery true`]));
    expect(answer.probe.received).toBeGreaterThan(0);
  });

  it('explains a missing route: the router has none to the destination', async () => {
    const t = await line();
    const [answer] = await path(t.a, '198.18.0.1');
    expect(answer).toMatchObject({ reachable: false, reason: 'no-route' });
    expect(answer.steps.find((s: { ok: boolean }) => !s.ok)).toMatchObject({ namespace: t.r, check: 'route', reason: 'no-route' });
    expect(answer.verdict).toContain(t.r);
  });

  it('explains a missing route back: the destination has no route to the source', async () => {
    const t = await line();
    const routes = (await ok('GET', `/v1/namespaces/${t.b}/routes`, undefined, 200)).items as Array<{ id: string; dst: string }>;
    expect((await api('DELETE', `/v1/namespaces/${t.b}/routes/${routes.find((x) => x.dst === '198.51.100.0/30')!.id}`)).status).toBe(204);
    const [answer] = await path(t.a, t.b);
    expect(answer).toMatchObject({ reachable: false, reason: 'no-return-route' });
    expect(answer.steps.find((s: { ok: boolean }) => !s.ok)).toMatchObject({ direction: 'return', namespace: t.b, check: 'route' });
  });

  it('names the firewall rule that drops the probe, by its counter', async () => {
    const t = await line();
    const rule = await ok('POST', `/v1/namespaces/${t.b}/firewall/rules`, { chain: 'input', action: 'drop', protocol: 'icmp', comment: 'no pings' });
    const [answer] = await path(t.a, '203.0.113.2');
    expect(answer).toMatchObject({ reachable: false, reason: 'firewall-drop' });
    const hit = answer.steps.find((s: { check: string }) => s.check === 'firewall');
    expect(hit).toMatchObject({ namespace: t.b, ok: false, rule: { table: 'netnsd', chain: 'input', id: rule.id, verdict: 'drop' } });
    expect(hit.rule.packets).toBeGreaterThan(0);
  });

  it('says the router does not forward when ip_forward is off', async () => {
    const t = await line();
    await ok('PATCH', `/v1/namespaces/${t.r}/sysctls`, { 'net.ipv4.ip_forward': 0 }, 200);
    const [answer] = await path(t.a, '203.0.113.2');
    expect(answer).toMatchObject({ reachable: false, reason: 'forwarding-disabled' });
    expect(answer.steps.find((s: { ok: boolean }) => !s.ok)).toMatchObject({ namespace: t.r, check: 'route', link: 'ra' });
  });

  it('says the link on the way has no carrier when its veth peer is down', async () => {
    const t = await line();
    await ok('PATCH', `/v1/namespaces/${t.r}/links/ra`, { up: false }, 200);
    const [answer] = await path(t.a, '203.0.113.2');
    expect(answer).toMatchObject({ reachable: false, reason: 'no-carrier' });
    expect(answer.steps.find((s: { ok: boolean }) => !s.ok)).toMatchObject({ namespace: t.a, check: 'link', link: 'va' });
  });

  it('answers 422 TARGET_NAMESPACE_NOT_FOUND for an unknown target namespace and 400 for a malformed one', async () => {
    const t = await line();
    expect((await api('POST', '/v1/diagnostics/path', { from: t.a, to: nsName('nope') })).json().code).toBe('TARGET_NAMESPACE_NOT_FOUND');
    expect((await api('POST', '/v1/diagnostics/path', { from: t.a, to: 'not an address!' })).status).toBe(400);
    expect((await api('POST', '/v1/diagnostics/path', { from: t.a, to: t.b, extra: 1 })).status).toBe(400);
  });
});
