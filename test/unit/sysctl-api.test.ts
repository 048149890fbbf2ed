import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/app-error.js';
import { resolveSysctl } from '../../src/sysctls/sysctl-allowlist.js';
import { buildTestApp, expectProblem, testConfig } from '../helpers/test-app.js';

const json = { 'content-type': 'application/json' };

async function withNamespace() {
  const t = await buildTestApp();
  await t.app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'r' } });
  return t;
}

describe('sysctl allowlist', () => {
  it('maps sysctl(8) names to /proc/sys/net paths, with / standing for . in link names', () => {
    expect(resolveSysctl('net.ipv4.ip_forward')?.path).toBe('ipv4/ip_forward');
    expect(resolveSysctl('net.ipv4.conf.veth0.rp_filter')).toMatchObject({ path: 'ipv4/conf/veth0/rp_filter', link: 'veth0' });
    expect(resolveSysctl('net.ipv4.conf.eth0/100.rp_filter')).toMatchObject({ path: 'ipv4/conf/eth0.100/rp_filter', link: 'eth0.100' });
    expect(resolveSysctl('net.ipv6.conf.all.forwarding')).toMatchObject({ path: 'ipv6/conf/all/forwarding', link: null });
    expect(resolveSysctl('net.ipv6.conf.lo.disable_ipv6')?.path).toBe('ipv6/conf/lo/disable_ipv6');
  });

  it('resolves every key it lists', async () => {
    const { allKeys } = await import('../../src/sysctls/sysctl-allowlist.js');
    expect(allKeys(['lo', 'veth0', 'eth0.100']).filter((k) => resolveSysctl(k) === null)).toEqual([]);
  });

  it.each(['net.core.somaxconn', 'kernel.hostname', 'net.ipv4.conf.veth0.bogus', 'net.ipv4.conf.../rp_filter', 'net.ipv4.conf.-x.rp_filter'])(
    'refuses %s',
    (key) => expect(resolveSysctl(key)).toBeNull(),
  );
});

describe('GET/PATCH /v1/namespaces/{ns}/sysctls', () => {
  it('reads every allowed key of the namespace, per link too', async () => {
    const { app } = await withNamespace();
    const res = await app.inject({ url: '/v1/namespaces/r/sysctls' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ 'net.ipv4.ip_forward': 0, 'net.ipv4.conf.lo.rp_filter': 0, 'net.ipv6.conf.default.accept_ra': 0 });
  });

  it('sets values inside the namespace and answers the new state', async () => {
    const { app, kernel } = await withNamespace();
    const res = await app.inject({ method: 'PATCH', url: '/v1/namespaces/r/sysctls', headers: json, payload: { 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 2 } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 2 });
    const write = kernel.calls.find((c) => c.kind === 'sysctl.write');
    expect(write).toEqual({ kind: 'sysctl.write', ns: 'r', entries: [['ipv4/ip_forward', '1'], ['ipv4/conf/all/rp_filter', '2']] });
    expect((await app.inject({ url: '/v1/namespaces/r/sysctls?keys=net.ipv4.ip_forward' })).json()).toEqual({ 'net.ipv4.ip_forward': 1 });
  });

  it('returns 400 naming every key that is not allowed or out of range, and writes nothing', async () => {
    const { app, kernel } = await withNamespace();
    const res = await app.inject({ method: 'PATCH', url: '/v1/namespaces/r/sysctls', headers: json, payload: { 'net.ipv4.ip_forward': 1, 'net.core.somaxconn': 5, 'net.ipv6.conf.all.foo': 1 } });
    const body = expectProblem(res, 'REQUEST_INVALID', 400);
    expect((body.errors as Array<{ field: string }>).map((e) => e.field)).toEqual(['body.net.core.somaxconn', 'body.net.ipv6.conf.all.foo']);
    const range = await app.inject({ method: 'PATCH', url: '/v1/namespaces/r/sysctls', headers: json, payload: { 'net.ipv4.conf.all.rp_filter': 9 } });
    expect(expectProblem(range, 'REQUEST_INVALID', 400).errors).toEqual([{ field: 'body.net.ipv4.conf.all.rp_filter', message: 'must be an integer from 0 to 2' }]);
    expect(kernel.calls.some((c) => c.kind === 'sysctl.write')).toBe(false);
  });

  it('returns 404 LINK_NOT_FOUND for a per-link key of a link that is not there', async () => {
    const { app } = await withNamespace();
    expectProblem(
      await app.inject({ method: 'PATCH', url: '/v1/namespaces/r/sysctls', headers: json, payload: { 'net.ipv4.conf.veth9.rp_filter': 1 } }),
      'LINK_NOT_FOUND',
      404,
    );
  });

  it('puts back what it wrote when the kernel refuses a later value', async () => {
    const { app, kernel } = await withNamespace();
    kernel.setSysctl('r', 'ipv4/ip_forward', '0');
    kernel.expect('sysctl.write', new AppError('SYSCTL_REFUSED', 'refused', { meta: { key: 'ipv4/conf/all/rp_filter' } }));
    const res = await app.inject({ method: 'PATCH', url: '/v1/namespaces/r/sysctls', headers: json, payload: { 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': 1 } });
    const body = expectProblem(res, 'SYSCTL_REFUSED', 422);
    expect(body.key).toBe('net.ipv4.conf.all.rp_filter');
    const undo = kernel.calls.filter((c) => c.kind === 'sysctl.write').at(-1);
    expect(undo).toEqual({ kind: 'sysctl.write', ns: 'r', entries: [['ipv4/ip_forward', '0']] });
  });

  it('protects the host namespace unless host.allowChanges', async () => {
    const { app } = await buildTestApp();
    expectProblem(await app.inject({ method: 'PATCH', url: '/v1/namespaces/host/sysctls', headers: json, payload: { 'net.ipv4.ip_forward': 1 } }), 'HOST_PROTECTED', 403);
    expect((await app.inject({ url: '/v1/namespaces/host/sysctls?keys=net.ipv4.ip_forward' })).statusCode).toBe(200);
    const allowed = await buildTestApp({ config: { host: { ...testConfig().host, allowChanges: true } } });
    expect((await allowed.app.inject({ method: 'PATCH', url: '/v1/namespaces/host/sysctls', headers: json, payload: { 'net.ipv4.ip_forward': 1 } })).statusCode).toBe(200);
  });

  it('returns 404 NAMESPACE_NOT_FOUND and 400 for a non-integer value', async () => {
    const { app } = await withNamespace();
    expectProblem(await app.inject({ url: '/v1/namespaces/nope/sysctls' }), 'NAMESPACE_NOT_FOUND', 404);
    expectProblem(await app.inject({ method: 'PATCH', url: '/v1/namespaces/r/sysctls', headers: json, payload: { 'net.ipv4.ip_forward': '1' } }), 'REQUEST_INVALID', 400);
  });
});
