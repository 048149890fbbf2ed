import { describe, expect, it } from 'vitest';
import { buildTestApp, expectProblem } from '../helpers/test-app.js';

const json = { 'content-type': 'application/json' };

async function topology() {
  const t = await buildTestApp();
  const post = (url: string, payload: Record<string, unknown>) => t.app.inject({ method: 'POST', url, headers: json, payload });
  for (const name of ['a', 'b', 'hub']) expect((await post('/v1/namespaces', { name })).statusCode).toBe(201);
  expect((await post('/v1/namespaces/hub/links', { name: 'br0', kind: 'bridge' })).statusCode).toBe(201);
  expect((await post('/v1/namespaces/hub/links', { name: 'ha', kind: 'veth', peer: { name: 'va', namespace: 'a' }, master: 'br0' })).statusCode).toBe(201);
  expect((await post('/v1/namespaces/hub/links', { name: 'hb', kind: 'veth', peer: { name: 'vb', namespace: 'b' }, master: 'br0' })).statusCode).toBe(201);
  return t;
}

describe('GET /v1/graph', () => {
  it('shows veth pairs across namespaces once each, and bridge ports', async () => {
    const { app } = await topology();
    const res = await app.inject({ url: '/v1/graph' });
    expect(res.statusCode).toBe(200);
    const g = res.json();
    expect(g.namespaces.map((n: { name: string }) => n.name)).toEqual(['a', 'b', 'host', 'hub']);
    expect(g.namespaces.find((n: { name: string }) => n.name === 'hub').links).toEqual(expect.arrayContaining(['hub/br0', 'hub/ha', 'hub/hb']));
    const veth = g.edges.filter((e: { type: string }) => e.type === 'veth').map((e: { from: string; to: string }) => [e.from, e.to].sort());
    expect(veth.sort()).toEqual([['a/va', 'hub/ha'], ['b/vb', 'hub/hb']]);
    const ports = g.edges.filter((e: { type: string }) => e.type === 'bridge-port');
    expect(ports).toEqual(expect.arrayContaining([{ type: 'bridge-port', from: 'hub/ha', to: 'hub/br0' }, { type: 'bridge-port', from: 'hub/hb', to: 'hub/br0' }]));
    expect(g.nodes.find((n: { id: string }) => n.id === 'a/va')).toMatchObject({ namespace: 'a', name: 'va', kind: 'veth' });
  });

  it('answers Graphviz text with ?format=dot', async () => {
    const { app } = await topology();
    const res = await app.inject({ url: '/v1/graph?format=dot' });
    expect(res.headers['content-type']).toMatch(/^text\/vnd\.graphviz/);
    expect(res.body).toMatch(/^graph netnsd \{/);
    expect(res.body).toContain('label="hub"');
    expect(res.body).toMatch(/"(a\/va|hub\/ha)" -- "(hub\/ha|a\/va)";/);
  });

  it('shows a limited token only its namespaces, with far ends elsewhere left anonymous', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const file = join(mkdtempSync(join(tmpdir(), 'netnsd-graph-')), 'tokens.json');
    writeFileSync(file, JSON.stringify({ tokens: [{ name: 'hubonly', token: 'hub-only-token-0123456789', scopes: ['read'], namespaces: ['hub'] }] }), { mode: 0o600 });
    const { FakeExecutor } = await import('../../src/executor/fake-executor.js');
    const kernel = FakeExecutor.kernel();
    // Build the topology over the trusted socket, then look through the limited token.
    const trusted = await buildTestApp({ kernel });
    const post = (url: string, payload: Record<string, unknown>) => trusted.app.inject({ method: 'POST', url, headers: json, payload });
    for (const name of ['a', 'hub']) await post('/v1/namespaces', { name });
    await post('/v1/namespaces/hub/links', { name: 'ha', kind: 'veth', peer: { name: 'va', namespace: 'a' } });
    const limited = await buildTestApp({ kernel, tokensFile: file });
    const g = (await limited.app.inject({ url: '/v1/graph', headers: { authorization: 'Bearer hub-only-token-0123456789' } })).json();
    expect(g.namespaces.map((n: { name: string }) => n.name)).toEqual(['hub']);
    const edge = g.edges.find((e: { type: string }) => e.type === 'veth');
    expect(edge.from).toBe('hub/ha');
    expect(g.nodes.find((n: { id: string }) => n.id === edge.to)).toMatchObject({ namespace: null, name: null });
    expect(JSON.stringify(g)).not.toContain('"a/va"');
  });

  it('returns 400 for an unknown format', async () => {
    const { app } = await buildTestApp();
    expectProblem(await app.inject({ url: '/v1/graph?format=svg' }), 'REQUEST_INVALID', 400);
  });
});
