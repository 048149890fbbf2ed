/**
 * The benchmarks' HTTP client (bench/http-load.ts): HTTP/1.1 over kept-alive sockets, parsed by
 * hand, against a node:http server on the loopback.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, closeClients, drive, RequestError } from '../../bench/http-load.js';

let server: http.Server;
let base = '';
let connections = 0;
const seen: Array<{ method: string; url: string; auth: string | undefined; body: string }> = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (b: Buffer) => (body += b.toString('utf8')));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, body });
      if (req.url === '/chunked') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"part":');
        res.end('"two"}');
      } else if (req.url === '/empty') {
        res.writeHead(204).end();
      } else if (req.url === '/bad') {
        res.writeHead(409, { 'content-type': 'application/problem+json', 'x-request-id': 'r-9' }).end('{"code":"LINK_EXISTS","requestId":"r-9"}');
      } else if (req.url === '/close') {
        res.writeHead(200, { connection: 'close', 'content-length': '2' }).end('ok');
      } else {
        const out = JSON.stringify({ echo: body ? (JSON.parse(body) as unknown) : null });
        res.writeHead(201, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
      }
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  closeClients();
  await new Promise((r) => server.close(r));
});

const client = () => ({ base, token: 'tok', timeoutMs: 5000 });
const signal = new AbortController().signal;

describe('the benchmarks\' HTTP client', () => {
  it('sends the method, path, token and JSON body, and answers the body of the expected status', async () => {
    const text = await call(client(), 'POST', '/v1/namespaces?x=1', { name: 'ü' }, 201, signal);
    expect(JSON.parse(text)).toEqual({ echo: { name: 'ü' } });
    expect(seen.at(-1)).toEqual({ method: 'POST', url: '/v1/namespaces?x=1', auth: 'Bearer tok', body: '{"name":"ü"}' });
  });

  it('reads chunked and empty answers', async () => {
    expect(await call(client(), 'GET', '/chunked', undefined, 200, signal)).toBe('{"part":"two"}');
    expect(await call(client(), 'DELETE', '/empty', undefined, 204, signal)).toBe('');
  });

  it('fails with the status, the body and the request id when the status is not the expected one', async () => {
    const err = await call(client(), 'POST', '/bad', {}, 201, signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestError);
    expect(err).toMatchObject({ status: 409, requestId: 'r-9', body: '{"code":"LINK_EXISTS","requestId":"r-9"}' });
  });

  it('keeps one connection per request in flight, and reuses them', async () => {
    closeClients();
    const before = connections;
    await drive(Array.from({ length: 20 }, (_, i) => i), 4, signal, async () => void (await call(client(), 'POST', '/x', {}, 201, signal)));
    expect(connections - before).toBe(4);
  });

  it('opens a new connection once the server closed the one it had', async () => {
    closeClients();
    const before = connections;
    await call(client(), 'POST', '/x', {}, 201, signal);
    await call(client(), 'GET', '/close', undefined, 200, signal);
    expect(connections - before).toBe(1);
    await call(client(), 'POST', '/x', {}, 201, signal);
    expect(connections - before).toBe(2);
  });

  it('reaches a server on a Unix socket, without sending the token', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'netnsd-http-load-'));
    const path = join(dir, 's.sock');
    const unix = http.createServer(server.listeners('request')[0] as http.RequestListener);
    await new Promise<void>((r) => unix.listen(path, r));
    try {
      const text = await call({ ...client(), socketPath: path }, 'POST', '/v1/namespaces', { name: 'u' }, 201, signal);
      expect(JSON.parse(text)).toEqual({ echo: { name: 'u' } });
      expect(seen.at(-1)).toEqual({ method: 'POST', url: '/v1/namespaces', auth: undefined, body: '{"name":"u"}' });
    } finally {
      closeClients();
      await new Promise((r) => unix.close(r));
      await rm(dir, { recursive: true, force: true });
    }
  });
});
