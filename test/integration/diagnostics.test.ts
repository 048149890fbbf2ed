import { spawn } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ip, nsName, until } from '../helpers/kernel.js';
import { overTcp, startRealApp, type RealApp } from '../helpers/real-app.js';

let r: RealApp;
beforeAll(async () => {
  r = await startRealApp({ config: { exec: { enabled: true, timeout: '5s', maxOutputBytes: 65536 } } });
});
afterAll(async () => {
  await r?.close();
});
const kids: Array<ReturnType<typeof spawn>> = [];
afterEach(() => {
  for (const k of kids.splice(0)) k.kill('SIGKILL');
});
const api = (method: string, path: string, body?: unknown) => overTcp(r.tcpUrl, method, path, body);

/** Two namespaces joined by a veth: a 198.51.100.1, b 198.51.100.2. */
async function pair(): Promise<[string, string]> {
  const [a, b] = [nsName('da'), nsName('db')];
  for (const name of [a, b]) expect((await api('POST', '/v1/namespaces', { name })).status).toBe(201);
  expect((await api('POST', `/v1/namespaces/${a}/links`, { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: b }, up: true })).status).toBe(201);
  ip('-n', b, 'link', 'set', 'vb', 'up');
  ip('-n', a, 'addr', 'add', '198.51.100.1/24', 'dev', 'va');
  ip('-n', b, 'addr', 'add', '198.51.100.2/24', 'dev', 'vb');
  return [a, b];
}

function listen(ns: string, port: number): void {
  const k = spawn('/usr/sbin/ip', ['netns', 'exec', ns, process.execPath, '-e', `require('net').createServer(()=>{}).listen(${port})`], { stdio: 'ignore' });
  kids.push(k);
}

describe('diagnostics against the real kernel', () => {
  it('pings between two namespaces and reports a missing route as a failure', async () => {
    const [a] = await pair();
    const ok = await api('POST', `/v1/namespaces/${a}/diagnostics/ping`, { target: '198.51.100.2', count: 2, interval: '100ms' });
    expect(ok.status).toBe(200);
    expect(ok.json()).toMatchObject({ sent: 2, received: 2, lossPercent: 0, failure: null });
    const none = await api('POST', `/v1/namespaces/${a}/diagnostics/ping`, { target: '203.0.113.9', count: 1 });
    expect(none.json()).toMatchObject({ received: 0, failure: 'connect: Network is unreachable' });
  });

  it('sends exactly count requests to an address nobody answers (not more until a deadline)', async () => {
    const [a] = await pair();
    const res = await api('POST', `/v1/namespaces/${a}/diagnostics/ping`, { target: '198.51.100.77', count: 3, interval: '200ms', timeout: '500ms' });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ sent: 3, received: 0, lossPercent: 100 });
  });

  it('tells connected, refused and (behind a drop rule) timeout apart, and lists the listener', async () => {
    const [a, b] = await pair();
    listen(b, 8080);
    await until(async () => (await api('GET', `/v1/namespaces/${b}/sockets?state=listening&protocol=tcp`)).json().items.some((s: { local: { port: number } }) => s.local.port === 8080), 5000, 'listener');
    const socks = (await api('GET', `/v1/namespaces/${b}/sockets?state=listening`)).json().items;
    expect(socks.find((s: { local: { port: number } }) => s.local.port === 8080)).toMatchObject({ protocol: 'tcp', state: 'LISTEN', processes: [expect.objectContaining({ name: 'node' })] });
    const tcp = (port: number) => api('POST', `/v1/namespaces/${a}/diagnostics/tcp-connect`, { address: '198.51.100.2', port, timeout: '500ms' });
    expect((await tcp(8080)).json()).toMatchObject({ connected: true, outcome: 'connected' });
    expect((await tcp(9)).json()).toMatchObject({ connected: false, outcome: 'refused' });
    ip('netns', 'exec', b, '/usr/sbin/nft', 'add table inet dgt; add chain inet dgt inp { type filter hook input priority 0; }; add rule inet dgt inp tcp dport 9 counter drop');
    expect((await tcp(9)).json()).toMatchObject({ connected: false, outcome: 'timeout' });
  });

  it('runs exec with the full argv audited, and kills a program at its timeout', async () => {
    const [a] = await pair();
    const res = await api('POST', `/v1/namespaces/${a}/exec`, { argv: ['/usr/sbin/ip', '-br', 'addr', 'show', 'dev', 'va'] });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ exitCode: 0, timedOut: false, truncated: false, stdout: expect.stringContaining('198.51.100.1/24') });
    const slow = await api('POST', `/v1/namespaces/${a}/exec`, { argv: ['/usr/bin/sleep', '5'], timeout: '200ms' });
    expect(slow.json()).toMatchObject({ timedOut: true, exitCode: null, signal: 'SIGKILL' });
    const audit = (await api('GET', '/v1/audit?limit=1000')).json();
    expect(JSON.stringify(audit)).toContain(`"netns","exec","${a}","/usr/sbin/ip","-br","addr","show","dev","va"`);
    expect((await api('POST', `/v1/namespaces/${a}/exec`, { argv: ['/nonexistent/prog'] })).json().code).toBe('EXEC_PROGRAM_NOT_FOUND');
  });

  it('lists conntrack entries of a namespace', async () => {
    const [a, b] = await pair();
    listen(b, 8081);
    await until(async () => (await api('POST', `/v1/namespaces/${a}/diagnostics/tcp-connect`, { address: '198.51.100.2', port: 8081, timeout: '500ms' })).json().connected === true, 5000, 'connect');
    // Without a ruleset nothing makes the kernel track connections here: add one that does.
    ip('netns', 'exec', b, '/usr/sbin/nft', 'add table inet dgc; add chain inet dgc inp { type filter hook input priority 0; }; add rule inet dgc inp ct state new counter accept');
    await api('POST', `/v1/namespaces/${a}/diagnostics/tcp-connect`, { address: '198.51.100.2', port: 8081, timeout: '500ms' });
    const res = await api('GET', `/v1/namespaces/${b}/conntrack`);
    expect(res.status).toBe(200);
    expect(res.json().items.some((e: { original: { dport: number } }) => e.original.dport === 8081)).toBe(true);
  });
});
