import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildTestApp, expectProblem } from '../helpers/test-app.js';

const TOKENS = {
  reader: 'reader-token-0123456789',
  writer: 'writer-token-0123456789',
  admin: 'admin-token-0123456789ab',
  lab: 'lab-token-0123456789abcd',
  labhost: 'labhost-token-012345678',
  labadmin: 'labadmin-token-01234567',
};

function tokensFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'netnsd-tokens-'));
  const file = join(dir, 'tokens.json');
  writeFileSync(
    file,
    JSON.stringify({
      tokens: [
        { name: 'reader', token: TOKENS.reader, scopes: ['read'] },
        { name: 'writer', token: TOKENS.writer, scopes: ['write'] },
        { name: 'admin', token: TOKENS.admin, scopes: ['admin'] },
        { name: 'lab', token: TOKENS.lab, scopes: ['write'], namespaces: ['lab-*'] },
        { name: 'labhost', token: TOKENS.labhost, scopes: ['admin'], namespaces: ['lab-*', 'host'] },
        { name: 'labadmin', token: TOKENS.labadmin, scopes: ['admin'], namespaces: ['lab-*'] },
      ],
    }),
    { mode: 0o600 },
  );
  return file;
}

const as = (who: keyof typeof TOKENS) => ({ authorization: `Bearer ${TOKENS[who]}` });
const json = { 'content-type': 'application/json' };

describe('bearer tokens on TCP listeners', () => {
  it('lets /healthz and /readyz through without a token, and nothing else', async () => {
    const { app } = await buildTestApp({ tokensFile: tokensFile() });
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/readyz' })).statusCode).toBe(200);
    for (const url of ['/v1/namespaces', '/v1/capabilities', '/openapi.json', '/docs', '/v1/nothing']) {
      const res = await app.inject({ url });
      expectProblem(res, 'AUTH_REQUIRED', 401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
  });

  it('returns 401 AUTH_INVALID for an unknown token', async () => {
    const { app } = await buildTestApp({ tokensFile: tokensFile() });
    const res = await app.inject({ url: '/v1/namespaces', headers: { authorization: 'Bearer not-a-known-token-at-all' } });
    expectProblem(res, 'AUTH_INVALID', 401);
  });

  it('gives read tokens every GET, and refuses them changes with 403 SCOPE_INSUFFICIENT', async () => {
    const { app, kernel } = await buildTestApp({ tokensFile: tokensFile() });
    for (const url of ['/v1/namespaces', '/v1/capabilities', '/openapi.json', '/v1/namespaces/host']) {
      expect((await app.inject({ url, headers: as('reader') })).statusCode).toBe(200);
    }
    expect((await app.inject({ url: '/docs/', headers: as('reader') })).statusCode).toBe(200);
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: { ...as('reader'), ...json }, payload: { name: 'x' } });
    expectProblem(res, 'SCOPE_INSUFFICIENT', 403);
    expect(kernel.namespace('x')).toBeUndefined();
  });

  it('lets write tokens change but keeps audit, force and host changes for admin', async () => {
    const { app, kernel } = await buildTestApp({ tokensFile: tokensFile() });
    kernel.addNamespace('found');
    expect((await app.inject({ method: 'POST', url: '/v1/namespaces', headers: { ...as('writer'), ...json }, payload: { name: 'w' } })).statusCode).toBe(201);
    expectProblem(await app.inject({ url: '/v1/audit', headers: as('writer') }), 'SCOPE_INSUFFICIENT', 403);
    expectProblem(await app.inject({ method: 'DELETE', url: '/v1/namespaces/found?force=true', headers: as('writer') }), 'SCOPE_INSUFFICIENT', 403);
    expectProblem(
      await app.inject({ method: 'PATCH', url: '/v1/namespaces/host', headers: { ...as('writer'), ...json }, payload: { labels: { a: 'b' } } }),
      'SCOPE_INSUFFICIENT',
      403,
    );
    expect((await app.inject({ url: '/v1/audit', headers: as('admin') })).statusCode).toBe(200);
    expect((await app.inject({ method: 'DELETE', url: '/v1/namespaces/found?force=true', headers: as('admin') })).statusCode).toBe(204);
  });

  it('filters lists to the token namespace patterns and refuses others with 403 NAMESPACE_FORBIDDEN', async () => {
    const { app, kernel } = await buildTestApp({ tokensFile: tokensFile() });
    kernel.addNamespace('lab-1').addNamespace('lab-2').addNamespace('prod');
    const names = (await app.inject({ url: '/v1/namespaces', headers: as('lab') })).json().items.map((i: { name: string }) => i.name);
    expect(names).toEqual(['lab-1', 'lab-2']);
    expectProblem(await app.inject({ url: '/v1/namespaces/prod', headers: as('lab') }), 'NAMESPACE_FORBIDDEN', 403);
    expectProblem(await app.inject({ url: '/v1/namespaces/host', headers: as('lab') }), 'NAMESPACE_FORBIDDEN', 403);
    expectProblem(
      await app.inject({ method: 'POST', url: '/v1/namespaces', headers: { ...as('lab'), ...json }, payload: { name: 'prod-2' } }),
      'NAMESPACE_FORBIDDEN',
      403,
    );
    expect((await app.inject({ method: 'POST', url: '/v1/namespaces', headers: { ...as('lab'), ...json }, payload: { name: 'lab-3' } })).statusCode).toBe(201);
    // A pattern naming host makes it reachable.
    expect((await app.inject({ url: '/v1/namespaces/host', headers: as('labhost') })).statusCode).toBe(200);
    const withHost = (await app.inject({ url: '/v1/namespaces', headers: as('labhost') })).json().items.map((i: { name: string }) => i.name);
    expect(withHost).toContain('host');
    expect(withHost).not.toContain('prod');
  });

  it('shows an admin token limited to patterns only the audit entries of its namespaces', async () => {
    const { app } = await buildTestApp({ tokensFile: tokensFile() });
    for (const name of ['lab-a', 'secret-x', 'lab-b']) {
      await app.inject({ method: 'POST', url: '/v1/namespaces', headers: { ...as('admin'), ...json }, payload: { name } });
    }
    const all = (await app.inject({ url: '/v1/audit', headers: as('admin') })).json().items.map((e: { namespace: string }) => e.namespace);
    expect(all).toEqual(['lab-a', 'secret-x', 'lab-b']);
    const p1 = (await app.inject({ url: '/v1/audit?limit=1', headers: as('labadmin') })).json();
    const p2 = (await app.inject({ url: `/v1/audit?limit=1&cursor=${p1.next}`, headers: as('labadmin') })).json();
    expect([...p1.items, ...p2.items].map((e: { namespace: string }) => e.namespace)).toEqual(['lab-a', 'lab-b']);
  });

  it('trusts the Unix socket with every scope', async () => {
    const { app } = await buildTestApp();
    expect((await app.inject({ url: '/v1/audit' })).statusCode).toBe(200);
  });
});

describe('rate limit', () => {
  it('answers 429 RATE_LIMITED with Retry-After beyond limits.requestsPerSecond', async () => {
    const { testConfig } = await import('../helpers/test-app.js');
    const { app } = await buildTestApp({ config: { limits: { ...testConfig().limits, requestsPerSecond: 3 } } });
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await app.inject({ url: '/v1/namespaces' })).statusCode);
    expect(codes.slice(0, 3)).toEqual([200, 200, 200]);
    expect(codes).toContain(429);
    const res = await app.inject({ url: '/v1/namespaces' });
    expectProblem(res, 'RATE_LIMITED', 429);
    expect(res.headers['retry-after']).toBeDefined();
    expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
  });
});
