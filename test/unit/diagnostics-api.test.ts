import { describe, expect, it } from 'vitest';
import { buildTestApp, expectProblem } from '../helpers/test-app.js';

const json = { 'content-type': 'application/json' };

async function withNamespace(config = {}) {
  const t = await buildTestApp({ config });
  await t.app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'a' } });
  return t;
}

describe('POST /v1/namespaces/{ns}/diagnostics/ping', () => {
  it('runs ping with the defaults and answers the parsed result', async () => {
    const { app, kernel } = await withNamespace();
    kernel.expect('diag.ping', (op) => ({ sent: op.spec.count, received: 3, lossPercent: 0, rtt: { minMs: 1, avgMs: 1, maxMs: 1, mdevMs: 0 }, replies: [], errors: [], failure: null }));
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces/a/diagnostics/ping', headers: json, payload: { target: '198.51.100.2' } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ target: '198.51.100.2', sent: 3, received: 3 });
    expect(kernel.calls.find((c) => c.kind === 'diag.ping')).toMatchObject({ spec: { family: 4, count: 3, intervalMs: 200, size: 56, timeoutMs: 1000, deadlineMs: 1400 } });
  });

  it.each([
    [{ target: 'example.org' }, 'body.target'],
    [{ target: '198.51.100.2', count: 21 }, 'body.count'],
    [{ target: '198.51.100.2', interval: '5ms' }, 'body.interval'],
    [{ target: '198.51.100.2', timeout: '11s' }, 'body.timeout'],
    [{ target: '198.51.100.2', timeout: '2' }, 'body.timeout'],
    [{ target: '198.51.100.2', size: 65508 }, 'body.size'],
    [{ target: '198.51.100.2', count: 20, interval: '5s' }, 'body.count'],
    [{ target: '198.51.100.2', bogus: 1 }, 'body'],
  ])('answers 400 REQUEST_INVALID naming the field for %j', async (payload, field) => {
    const { app, kernel } = await withNamespace();
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces/a/diagnostics/ping', headers: json, payload });
    const p = expectProblem(res, 'REQUEST_INVALID', 400);
    expect(JSON.stringify(p.errors)).toContain(field);
    expect(kernel.calls.some((c) => c.kind === 'diag.ping')).toBe(false);
  });

  it('answers 404 NAMESPACE_NOT_FOUND for a missing namespace', async () => {
    const { app } = await buildTestApp();
    expectProblem(await app.inject({ method: 'POST', url: '/v1/namespaces/nope/diagnostics/ping', headers: json, payload: { target: '198.51.100.2' } }), 'NAMESPACE_NOT_FOUND', 404);
  });
});

describe('POST /v1/namespaces/{ns}/diagnostics/tcp-connect', () => {
  it('says connected false with the outcome when refused', async () => {
    const { app, kernel } = await withNamespace();
    kernel.expect('diag.tcpConnect', { outcome: 'refused', errno: 'ECONNREFUSED', elapsedMs: 0.5 });
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces/a/diagnostics/tcp-connect', headers: json, payload: { address: '198.51.100.2', port: 9 } });
    expect(res.json()).toEqual({ connected: false, outcome: 'refused', errno: 'ECONNREFUSED', elapsedMs: 0.5 });
  });
  it.each([0, 65536])('refuses port %i with 400', async (port) => {
    const { app } = await withNamespace();
    expectProblem(await app.inject({ method: 'POST', url: '/v1/namespaces/a/diagnostics/tcp-connect', headers: json, payload: { address: '198.51.100.2', port } }), 'REQUEST_INVALID', 400);
  });
});

describe('GET /v1/namespaces/{ns}/sockets', () => {
  it('filters by state and protocol', async () => {
    const { app, kernel } = await withNamespace();
    const end = (address: string, port: number | null) => ({ address, port, link: null });
    kernel.default('diag.sockets', {
      sockets: [
        { protocol: 'tcp', state: 'LISTEN', recvQ: 0, sendQ: 0, local: end('*', 8080), peer: end('*', null), processes: [{ name: 'node', pid: 1, fd: 3 }] },
        { protocol: 'tcp', state: 'ESTAB', recvQ: 0, sendQ: 0, local: end('198.51.100.2', 8080), peer: end('198.51.100.1', 4000), processes: [] },
        { protocol: 'udp', state: 'UNCONN', recvQ: 0, sendQ: 0, local: end('0.0.0.0', 53), peer: end('0.0.0.0', null), processes: [] },
      ],
    });
    expect((await app.inject({ url: '/v1/namespaces/a/sockets?state=listening' })).json().items).toHaveLength(2);
    expect((await app.inject({ url: '/v1/namespaces/a/sockets?state=connected' })).json().items.map((s: { state: string }) => s.state)).toEqual(['ESTAB']);
    expect((await app.inject({ url: '/v1/namespaces/a/sockets?protocol=udp' })).json().items).toHaveLength(1);
    expectProblem(await app.inject({ url: '/v1/namespaces/a/sockets?state=bogus' }), 'REQUEST_INVALID', 400);
  });
});

describe('POST /v1/namespaces/{ns}/exec', () => {
  it('answers 403 EXEC_DISABLED by default and runs nothing', async () => {
    const { app, kernel } = await withNamespace();
    expectProblem(await app.inject({ method: 'POST', url: '/v1/namespaces/a/exec', headers: json, payload: { argv: ['/usr/sbin/ip', 'addr'] } }), 'EXEC_DISABLED', 403);
    expect(kernel.calls.some((c) => c.kind === 'diag.exec')).toBe(false);
  });
  it('runs argv when enabled, within exec.timeout, and audits the full argv', async () => {
    const { app, kernel, services } = await withNamespace({ exec: { enabled: true, timeout: '10s', maxOutputBytes: 1048576 } });
    kernel.expect('diag.exec', { exitCode: 0, signal: null, stdout: 'ok', stderr: '', truncated: false, timedOut: false, durationMs: 1 });
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces/a/exec', headers: json, payload: { argv: ['/usr/sbin/ip', '-br', 'addr'], timeout: '5s' } });
    expect(res.json()).toMatchObject({ exitCode: 0, stdout: 'ok' });
    expect(kernel.calls.find((c) => c.kind === 'diag.exec')).toMatchObject({ argv: ['/usr/sbin/ip', '-br', 'addr'], timeoutMs: 5000 });
    const audit = services.audit.page(0, 10).entries.find((e) => e.action === 'diagnostics.exec');
    expect(JSON.stringify(audit)).toContain('"/usr/sbin/ip","-br","addr"');
  });
  it.each([
    [{ argv: ['ip', 'addr'] }, 'body.argv.0'],
    [{ argv: ['/usr/sbin/ip'], timeout: '11s' }, 'body.timeout'],
    [{ argv: [] }, 'body.argv'],
  ])('answers 400 for %j', async (payload, field) => {
    const { app } = await withNamespace({ exec: { enabled: true, timeout: '10s', maxOutputBytes: 1048576 } });
    const p = expectProblem(await app.inject({ method: 'POST', url: '/v1/namespaces/a/exec', headers: json, payload }), 'REQUEST_INVALID', 400);
    expect(JSON.stringify(p.errors)).toContain(field);
  });
});
