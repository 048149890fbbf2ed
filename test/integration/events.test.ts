/**
 * Events against the real kernel, with real WebSocket and SSE clients over TCP: namespaces made
 * through the API and by hand arrive in order, resume after a disconnect and after a restart,
 * a bad selection is refused before the upgrade, tickets work once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Value } from '@sinclair/typebox/value';
import { StreamErrorSchema, SubscribedSchema } from '../../src/events/event-schema.js';
import { ip, nsName, until } from '../helpers/kernel.js';
import { ADMIN_TOKEN, READ_TOKEN, type Msg, type RealApp, eventsClient, overTcp, startRealApp } from '../helpers/real-app.js';

let r: RealApp;
beforeAll(async () => {
  r = await startRealApp();
});
afterAll(async () => {
  await r?.close();
});

const connect = eventsClient;

/** Opens an upgrade and answers the HTTP status it was refused with (or 101). */
function upgradeStatus(app: RealApp, query: string, headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` }): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${app.tcpUrl.replace('http', 'ws')}/v1/events${query}`, { headers });
    ws.once('open', () => {
      ws.close();
      resolve({ status: 101, body: '' });
    });
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        req.destroy(); // the refused upgrade's connection: nobody else closes it
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
  });
}

const added = (m: Msg[], name: string) => m.find((e) => e.type === 'namespace.added' && e.namespace === name);

describe('events against the real kernel', () => {
  it('streams namespaces made through the API and by hand over a WebSocket, in order, with the REST shape', async () => {
    const c = await connect(r, `?types=namespace.*&namespace=nnt-*`);
    const viaApi = nsName('ev-api');
    const byHand = nsName('ev-hand');
    expect((await overTcp(r.tcpUrl, 'POST', '/v1/namespaces', { name: viaApi })).status).toBe(201);
    ip('netns', 'add', byHand);
    await until(() => added(c.got, viaApi) !== undefined && added(c.got, byHand) !== undefined, 5000, 'both namespace.added events');
    const a = added(c.got, viaApi)!;
    const b = added(c.got, byHand)!;
    expect(a).toMatchObject({ seq: expect.any(Number), time: expect.any(String), type: 'namespace.added', namespace: viaApi, object: { name: viaApi, managed: true } });
    expect(b.object).toMatchObject({ name: byHand, managed: false });
    expect(b.seq).toBeGreaterThan(a.seq);
    const rest = (await overTcp(r.tcpUrl, 'GET', `/v1/namespaces/${viaApi}`)).json();
    expect(a.object).toEqual(rest);
    ip('netns', 'del', byHand);
    await until(() => c.got.some((e) => e.type === 'namespace.removed' && e.namespace === byHand), 5000, 'namespace.removed');
    const seqs = c.events().map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    c.close();
  });

  it('streams Server-Sent Events and resumes from Last-Event-ID with nothing lost or repeated', async () => {
    const first = nsName('sse-1');
    const second = nsName('sse-2');
    const ac = new AbortController();
    const res = await fetch(`${r.tcpUrl}/v1/events?types=namespace.added&namespace=nnt-*`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}`, accept: 'text/event-stream' }, signal: ac.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(Number(res.headers.get('x-netnsd-seq'))).toBeGreaterThanOrEqual(0);
    const reader = res.body!.getReader();
    let text = '';
    ip('netns', 'add', first);
    while (!text.includes(first)) {
      const { value, done } = await reader.read();
      if (done) throw new Error('the SSE stream ended');
      text += new TextDecoder().decode(value);
    }
    ac.abort();
    const frame = text.split('\n\n').find((f) => f.includes(first))!;
    const id = Number(/^id: (\d+)$/m.exec(frame)![1]);
    expect(frame).toMatch(/^event: namespace\.added$/m);
    expect(JSON.parse(/^data: (.*)$/m.exec(frame)![1]!)).toMatchObject({ seq: id, type: 'namespace.added', namespace: first });

    // While nobody listens: another namespace. Resuming from the last id gets it, and only it.
    ip('netns', 'add', second);
    await until(() => r.services.events.log.read(id, Number.MAX_SAFE_INTEGER, 1000).some((e) => e.namespace === second), 5000, 'the event to be logged');
    const c = await connect(r, `?types=namespace.added&namespace=nnt-*&since=${id}`);
    await until(() => added(c.got, second) !== undefined, 5000, 'the replayed event');
    expect(c.events().filter((e) => e.namespace === first)).toEqual([]);
    expect(c.events().filter((e) => e.namespace === second)).toHaveLength(1);
    c.close();
  });

  it('refuses a bad selection with a 400 problem before the upgrade (401 without a token), and a plain GET with 406', async () => {
    const bad = await upgradeStatus(r, '?types=link.*,bogus');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ code: 'REQUEST_INVALID', errors: [expect.objectContaining({ field: 'querystring.types' })] });
    expect((await upgradeStatus(r, `?since=${r.services.events.log.lastSeq + 100}`)).status).toBe(400);
    expect((await upgradeStatus(r, '', {})).status).toBe(401);
    expect((await overTcp(r.tcpUrl, 'GET', '/v1/events')).json().code).toBe('NOT_ACCEPTABLE');
  });

  it('accepts a single-use ticket instead of the Authorization header', async () => {
    const t = await overTcp(r.tcpUrl, 'POST', '/v1/events/tickets', undefined, READ_TOKEN);
    expect(t.status).toBe(201);
    const { ticket } = t.json();
    const c = await connect(r, `?ticket=${ticket}`, {});
    expect(c.got.length === 0 || c.got[0]?.type === 'subscribed').toBe(true);
    c.close();
    expect((await upgradeStatus(r, `?ticket=${ticket}`, {})).status).toBe(401);
  });

  it('changes the selection after a WebSocket subscribe message, and shows subscribers in status', async () => {
    const c = await connect(r, '?types=address.*');
    c.ws.send(JSON.stringify({ op: 'subscribe', types: 'namespace.added', namespace: 'nnt-*' }));
    await until(() => c.got.filter((m) => m.type === 'subscribed').length === 2, 5000, 'the second subscribed message');
    const name = nsName('resub');
    ip('netns', 'add', name);
    await until(() => added(c.got, name) !== undefined, 5000, 'the event under the new selection');
    c.ws.send('{"op":"subscribe","types":"nope"}');
    await until(() => c.got.some((m) => m.type === 'error'), 5000, 'an error message');
    expect(c.got.find((m) => m.type === 'error')).toMatchObject({ code: 'REQUEST_INVALID' });
    // Both frames are as openapi/events.schema.json describes them.
    expect(Value.Check(StreamErrorSchema, c.got.find((m) => m.type === 'error'))).toBe(true);
    for (const m of c.got.filter((x) => x.type === 'subscribed')) expect(Value.Check(SubscribedSchema, m), JSON.stringify(m)).toBe(true);
    const status = (await overTcp(r.tcpUrl, 'GET', '/v1/events/status')).json();
    expect(status.subscribers.some((s: Msg) => s.transport === 'websocket' && s.filter.types === 'namespace.added')).toBe(true);
    // Other namespaces on the machine may change meanwhile: the newest seq only grows.
    expect(status.retained.last).toBeGreaterThanOrEqual(added(c.got, name)!.seq);
    expect(status.retained.last).toBeLessThanOrEqual(r.services.events.log.lastSeq);
    expect((await overTcp(r.tcpUrl, 'GET', '/v1/events/status', undefined, READ_TOKEN)).status).toBe(403);
    c.close();
  });

  it('after a restart, resuming from the last seq gets a resync naming a namespace made while netnsd was down', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netnsd-it-restart-'));
    try {
      const one = await startRealApp({ dir });
      const last = one.services.events.log.lastSeq;
      await one.close();
      const name = nsName('while-down');
      ip('netns', 'add', name);
      const two = await startRealApp({ dir });
      try {
        expect(two.services.events.log.lastSeq).toBeGreaterThan(last);
        const c = await connect(two, `?since=${last}`);
        // The namespace watcher's resync (the kernel monitor may publish one of its own first).
        const isIt = (m: Msg) => m.type === 'resync' && m.namespaces.includes(name);
        await until(() => c.got.some(isIt), 5000, 'the resync event');
        const resync = c.got.find(isIt)!;
        expect(resync).toMatchObject({ seq: expect.any(Number), reason: 'start' });
        expect(resync.seq).toBeGreaterThan(last);
        expect(resync.differences).toContainEqual(expect.objectContaining({ type: 'namespace.added', namespace: name }));
        c.close();
      } finally {
        await two.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
