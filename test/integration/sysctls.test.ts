import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ip, nsName, ping } from '../helpers/kernel.js';
import { overTcp, startRealApp, type RealApp } from '../helpers/real-app.js';

let r: RealApp;
beforeAll(async () => {
  r = await startRealApp();
});
afterAll(async () => {
  await r?.close();
});

const api = (method: string, path: string, body?: unknown) => overTcp(r.tcpUrl, method, path, body);
// Read with cat inside the namespace (procps' sysctl may be missing), and the host's from our own /proc.
const sysctlIn = (ns: string, key: string) =>
  execFileSync('/usr/sbin/ip', ['netns', 'exec', ns, 'cat', `/proc/sys/${key.replaceAll('.', '/')}`], { encoding: 'utf8' }).trim();
const hostForward = () => readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();

describe('sysctls against the real kernel', () => {
  it('sets forwarding inside a router namespace only, and traffic crosses it', async () => {
    const [a, rt, b] = [nsName('sa'), nsName('sr'), nsName('sb')];
    for (const name of [a, rt, b]) expect((await api('POST', '/v1/namespaces', { name })).status).toBe(201);
    expect((await api('POST', `/v1/namespaces/${rt}/links`, { name: 'ra', kind: 'veth', peer: { name: 'va', namespace: a }, up: true })).status).toBe(201);
    expect((await api('POST', `/v1/namespaces/${rt}/links`, { name: 'rb', kind: 'veth', peer: { name: 'vb', namespace: b }, up: true })).status).toBe(201);
    // Addresses and routes by hand here (their endpoints are tested on their own).
    ip('-n', a, 'addr', 'add', '198.51.100.2/24', 'dev', 'va');
    ip('-n', rt, 'addr', 'add', '198.51.100.1/24', 'dev', 'ra');
    ip('-n', rt, 'addr', 'add', '203.0.113.1/24', 'dev', 'rb');
    ip('-n', b, 'addr', 'add', '203.0.113.2/24', 'dev', 'vb');
    ip('-n', a, 'route', 'add', 'default', 'via', '198.51.100.1');
    ip('-n', b, 'route', 'add', 'default', 'via', '203.0.113.1');
    const hostBefore = hostForward();
    expect(ping(a, '203.0.113.2')).toBe(false);

    const res = await api('PATCH', `/v1/namespaces/${rt}/sysctls`, { 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.ra.rp_filter': 2 });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.ra.rp_filter': 2 });
    expect(sysctlIn(rt, 'net.ipv4.ip_forward')).toBe('1');
    expect(sysctlIn(a, 'net.ipv4.ip_forward')).toBe('0');
    expect(hostForward()).toBe(hostBefore);
    expect(ping(a, '203.0.113.2')).toBe(true);

    const got = (await api('GET', `/v1/namespaces/${rt}/sysctls`)).json();
    expect(got['net.ipv4.conf.rb.forwarding']).toBe(1);
    expect(got['net.ipv6.conf.ra.disable_ipv6']).toBe(0);
    expect((await api('PATCH', `/v1/namespaces/${rt}/sysctls`, { 'net.ipv4.ip_forward': 0 })).status).toBe(200);
    expect(ping(a, '203.0.113.2')).toBe(false);
  });

  it('refuses host changes with 403 HOST_PROTECTED and leaves the host value', async () => {
    const before = hostForward();
    const res = await api('PATCH', '/v1/namespaces/host/sysctls', { 'net.ipv4.ip_forward': before === '1' ? 0 : 1 });
    expect(res.status).toBe(403);
    expect(res.json().code).toBe('HOST_PROTECTED');
    expect(hostForward()).toBe(before);
  });
});
