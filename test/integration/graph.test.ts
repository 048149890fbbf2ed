import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nsName } from '../helpers/kernel.js';
import { overTcp, startRealApp, type RealApp } from '../helpers/real-app.js';

let r: RealApp;
beforeAll(async () => {
  r = await startRealApp();
});
afterAll(async () => {
  await r?.close();
});

describe('the graph against the real kernel', () => {
  it('answers which namespace the other end of a veth is in, and shows bridge ports', async () => {
    const [a, hub] = [nsName('ga'), nsName('ghub')];
    for (const name of [a, hub]) expect((await overTcp(r.tcpUrl, 'POST', '/v1/namespaces', { name })).status).toBe(201);
    expect((await overTcp(r.tcpUrl, 'POST', `/v1/namespaces/${hub}/links`, { name: 'br0', kind: 'bridge', up: true })).status).toBe(201);
    const veth = await overTcp(r.tcpUrl, 'POST', `/v1/namespaces/${hub}/links`, { name: 'h0', kind: 'veth', peer: { name: 'v0', namespace: a }, master: 'br0', up: true });
    expect(veth.status).toBe(201);
    const g = (await overTcp(r.tcpUrl, 'GET', '/v1/graph')).json();
    const pair = g.edges.find((e: { type: string; from: string; to: string }) => e.type === 'veth' && [e.from, e.to].includes(`${hub}/h0`));
    expect([pair.from, pair.to].sort()).toEqual([`${a}/v0`, `${hub}/h0`].sort());
    expect(g.edges).toContainEqual({ type: 'bridge-port', from: `${hub}/h0`, to: `${hub}/br0` });
    const dot = await overTcp(r.tcpUrl, 'GET', '/v1/graph?format=dot');
    expect(dot.body).toContain(`"${hub}/h0"`);
  });
});
