/**
 * Policy rules against the real kernel, through the API only. Namespaces come from nsName() and
 * are removed after each test. Addresses: 203.0.113.0/24, 198.18.0.0/15, 2001:db8::/32, inside
 * test namespaces only.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ip } from '../helpers/kernel.js';
import { adminClient, type RealApp, createNamespaces, startRealApp } from '../helpers/real-app.js';

let r: RealApp;
beforeAll(async () => {
  r = await startRealApp();
});
afterAll(async () => {
  await r?.close();
});

const { api, ok } = adminClient(() => r);


/** Whether one ping from `src` inside the namespace gets an answer within a second. */
function pingFrom(ns: string, src: string, addr: string): boolean {
  try {
    execFileSync('/usr/sbin/ip', ['netns', 'exec', ns, 'ping', '-c1', '-W1', '-I', src, addr], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('policy rules against the real kernel', () => {
  it('a rule sends traffic from one source through a second table; deleting it stops that', async () => {
    // a --va1/vb (203.0.113.0/30)-- b ;  a --va2/vc (203.0.113.4/30)-- c ; b and c both own 198.18.0.1.
    const [a, b, c] = (await createNamespaces(r, 'pa', 'pb', 'pc')) as [string, string, string];
    await ok('POST', `/v1/namespaces/${a}/links`, { name: 'va1', kind: 'veth', peer: { name: 'vb', namespace: b }, up: true });
    await ok('POST', `/v1/namespaces/${a}/links`, { name: 'va2', kind: 'veth', peer: { name: 'vc', namespace: c }, up: true });
    await ok('POST', `/v1/namespaces/${a}/addresses`, { link: 'va1', address: '203.0.113.1/30' });
    await ok('POST', `/v1/namespaces/${b}/addresses`, { link: 'vb', address: '203.0.113.2/30' });
    await ok('POST', `/v1/namespaces/${a}/addresses`, { link: 'va2', address: '203.0.113.5/30' });
    await ok('POST', `/v1/namespaces/${c}/addresses`, { link: 'vc', address: '203.0.113.6/30' });
    for (const ns of [b, c]) await ok('POST', `/v1/namespaces/${ns}/addresses`, { link: 'lo', address: '198.18.0.1/32' });
    await ok('POST', `/v1/namespaces/${a}/routes`, { dst: '198.18.0.1', via: '203.0.113.2' });
    await ok('POST', `/v1/namespaces/${a}/routes`, { dst: '198.18.0.1', via: '203.0.113.6', table: 100 });

    const sent = async () => (await ok('GET', `/v1/namespaces/${a}/links/va2/stats`, undefined, 200)).txPackets as number;
    expect(pingFrom(a, '203.0.113.1', '198.18.0.1')).toBe(true); // main: through b
    // From .5, main still sends it to b, which has no way back to 203.0.113.4/30.
    expect(pingFrom(a, '203.0.113.5', '198.18.0.1')).toBe(false);

    const rule = await ok('POST', `/v1/namespaces/${a}/rules`, { priority: 1000, from: '203.0.113.5', table: 100 });
    expect(rule).toMatchObject({ namespace: a, family: 4, priority: 1000, from: '203.0.113.5/32', action: 'lookup', table: 100, flags: [] });
    expect(ip('-n', a, 'rule', 'show', 'pref', '1000')).toContain('from 203.0.113.5 lookup 100');
    const before = await sent();
    expect(pingFrom(a, '203.0.113.5', '198.18.0.1')).toBe(true); // table 100: through c
    expect(await sent()).toBeGreaterThan(before);
    expect(pingFrom(a, '203.0.113.1', '198.18.0.1')).toBe(true); // other sources keep main

    expect((await api('DELETE', `/v1/namespaces/${a}/rules/${rule.id}`)).status).toBe(204);
    expect(pingFrom(a, '203.0.113.5', '198.18.0.1')).toBe(false);
    expect((await api('DELETE', `/v1/namespaces/${a}/rules/${rule.id}`)).json().code).toBe('RULE_NOT_FOUND');
  });

  it('creates, lists and deletes rules of every selector and action, IPv4 and IPv6, as the kernel lists them', async () => {
    const [a] = (await createNamespaces(r, 'rk')) as [string];
    const bodies = [
      { priority: 1100, not: true, from: '198.18.0.0/16', to: '203.0.113.0/24', iif: 'lo', oif: 'lo', fwmark: '0x10', fwmask: '0xff', ipproto: 'tcp', sport: '1000-2000', dport: 443, table: 'main', suppressPrefixLength: 0 },
      { priority: 1200, to: '198.18.1.0/24', action: 'unreachable' },
      { priority: 1300, action: 'goto', goto: 1400 },
      { priority: 1400, action: 'nop' },
      { priority: 1500, fwmark: 1, action: 'blackhole' },
      { priority: 1600, iif: 'nosuch', table: 7 },
      { priority: 1700, ipproto: 'udp', dport: '53-54', table: 'default' },
      { family: 6, priority: 1000, from: '2001:db8::/32', table: 100 },
      { priority: 1100, to: '2001:db8:1::/48', action: 'prohibit' },
      { family: 6, priority: 1200, fwmark: 7, fwmask: 15, table: 200 },
      { family: 6, priority: 1300, action: 'goto', goto: 1000000 },
    ];
    const made = [];
    for (const body of bodies) made.push(await ok('POST', `/v1/namespaces/${a}/rules`, body));
    expect(made.find((x) => x.priority === 1600 && x.family === 4)?.flags).toEqual(['iif_detached']);
    expect(made.at(-1)).toMatchObject({ family: 6, action: 'goto', goto: 1000000, flags: ['unresolved'] });
    const listed = (await ok('GET', `/v1/namespaces/${a}/rules`, undefined, 200)).items;
    // The goto to 1400 was unresolved until the rule at 1400 was made; everything else lists as made.
    expect(made.find((x) => x.priority === 1300 && x.family === 4)?.flags).toEqual(['unresolved']);
    for (const m of made) expect(listed).toContainEqual(m.priority === 1300 && m.family === 4 ? { ...m, flags: [] } : m);
    expect(ip('-n', a, '-6', 'rule', 'show', 'pref', '1100')).toContain('to 2001:db8:1::/48 prohibit');

    for (const m of made) expect((await api('DELETE', `/v1/namespaces/${a}/rules/${m.id}`)).status, m.id).toBe(204);
    const left = (await ok('GET', `/v1/namespaces/${a}/rules`, undefined, 200)).items;
    expect(left.map((x: any) => [x.family, x.priority])).toEqual([[4, 0], [4, 32766], [4, 32767], [6, 0], [6, 32766]]);
  });

  it('picks the default priority as ip does, answers 409 RULE_EXISTS for a twin and 400 for a backward goto', async () => {
    const [a] = (await createNamespaces(r, 'rd')) as [string];
    const first = await ok('POST', `/v1/namespaces/${a}/rules`, { from: '198.18.4.0/24', table: 10 });
    expect(first.priority).toBe(32765);
    expect((await ok('POST', `/v1/namespaces/${a}/rules`, { from: '198.18.4.0/24', table: 10 })).priority).toBe(32764);
    const twin = await api('POST', `/v1/namespaces/${a}/rules`, { priority: 32765, from: '198.18.4.0/24', table: 10 });
    expect([twin.status, twin.json().code]).toEqual([409, 'RULE_EXISTS']);
    const back = await api('POST', `/v1/namespaces/${a}/rules`, { priority: 500, action: 'goto', goto: 400 });
    expect([back.status, back.json().code]).toEqual([400, 'REQUEST_INVALID']);
  });

  it('refuses to delete a rule the kernel would confuse with an earlier, more specific one at the same priority', async () => {
    const [a] = (await createNamespaces(r, 'ra')) as [string];
    // (With `from` instead of `iif` the kernel refuses the second rule as existing: RULE_EXISTS.)
    const specific = await ok('POST', `/v1/namespaces/${a}/rules`, { priority: 100, iif: 'lo', table: 10 });
    const loose = await ok('POST', `/v1/namespaces/${a}/rules`, { priority: 100, table: 10 });
    const res = await api('DELETE', `/v1/namespaces/${a}/rules/${loose.id}`);
    expect([res.status, res.json().code, res.json().shadowedBy]).toEqual([409, 'RULE_AMBIGUOUS', specific.id]);
    expect(ip('-n', a, 'rule', 'show', 'pref', '100').trim().split('\n')).toHaveLength(2);
    expect((await api('DELETE', `/v1/namespaces/${a}/rules/${specific.id}`)).status).toBe(204);
    expect(ip('-n', a, 'rule', 'show', 'pref', '100')).toContain('from all lookup 10');
    expect((await api('DELETE', `/v1/namespaces/${a}/rules/${loose.id}`)).status).toBe(204);
    expect(ip('-n', a, 'rule', 'show', 'pref', '100').trim()).toBe('');
  });

  it('lists host rules, and answers 403 HOST_PROTECTED to a host rule without touching host', async () => {
    const before = ip('rule', 'show');
    const host = (await ok('GET', '/v1/namespaces/host/rules?family=4', undefined, 200)).items;
    expect(host.map((x: any) => x.priority)).toContain(32766);
    const res = await api('POST', '/v1/namespaces/host/rules', { priority: 5, from: '198.18.0.0/16', table: 100 });
    expect([res.status, res.json().code]).toEqual([403, 'HOST_PROTECTED']);
    expect((await api('DELETE', `/v1/namespaces/host/rules/${host[0].id}`)).status).toBe(403);
    expect(ip('rule', 'show')).toBe(before);
  });
});
