/**
 * Integration harness: the real services (iproute2 + native executor, SQLite in a temp dir)
 * served over a real TCP port (with tokens) and a real Unix socket, in this process.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import WebSocket from 'ws';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildServer, buildServices, type ServiceDeps, type Services } from '../../src/app.js';
import { TokenStore } from '../../src/auth/tokens.js';
import { afterAll, beforeAll, expect } from 'vitest';
import { nsName } from './kernel.js';
import { testConfig } from './test-app.js';
import type { Config } from '../../src/config.js';

export const ADMIN_TOKEN = 'it-admin-token-0123456789';
export const READ_TOKEN = 'it-read-token-0123456789';

export interface RealApp {
  readonly services: Services;
  readonly tcpUrl: string;
  readonly socketPath: string;
  readonly dataDir: string;
  close(): Promise<void>;
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  json(): any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** `dir`: use (and keep) this directory, to start again on the same store (a restart). */
export async function startRealApp(o: { readonly dir?: string; readonly deps?: ServiceDeps; readonly config?: Partial<Config> } = {}): Promise<RealApp> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'netnsd-it-'));
  const tokensFile = join(dir, 'tokens.json');
  writeFileSync(
    tokensFile,
    JSON.stringify({ tokens: [{ name: 'admin', token: ADMIN_TOKEN, scopes: ['admin'] }, { name: 'reader', token: READ_TOKEN, scopes: ['read'] }] }),
    { mode: 0o600 },
  );
  const services = await buildServices(testConfig({ dataDir: join(dir, 'data'), ...o.config }), pino({ level: process.env.NETNSD_TEST_LOG ?? 'silent' }), o.deps);
  const tokens = new TokenStore(tokensFile);
  const tcp: FastifyInstance = await buildServer(services, { trust: { kind: 'tokens', tokens: () => tokens } });
  const unix: FastifyInstance = await buildServer(services, { trust: { kind: 'unix' } });
  const tcpUrl = await tcp.listen({ host: '127.0.0.1', port: 0 });
  const socketPath = join(dir, 'netnsd.sock');
  await unix.listen({ path: socketPath });
  return {
    services,
    tcpUrl,
    socketPath,
    dataDir: join(dir, 'data'),
    async close() {
      await Promise.allSettled([tcp.close(), unix.close()]);
      await services.close();
      if (o.dir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One real app for the test file: started before its tests, closed after them; the getter gives it. */
export function useRealApp(): () => RealApp {
  let app: RealApp | undefined;
  beforeAll(async () => {
    app = await startRealApp();
  });
  afterAll(async () => {
    await app?.close();
  });
  return () => {
    if (!app) throw new Error('the real app is not started (use it inside tests)');
    return app;
  };
}

function answer(status: number, headers: HttpAnswer['headers'], body: string): HttpAnswer {
  return { status, headers, body, json: () => JSON.parse(body) };
}

/** An HTTP request over the Unix socket. */
export function overSocket(socketPath: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      { socketPath, method, path, headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...headers } },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve(answer(res.statusCode ?? 0, res.headers, data)));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** An HTTP request over TCP with a bearer token (or none). */
export async function overTcp(base: string, method: string, path: string, body?: unknown, token: string | null = ADMIN_TOKEN, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const res = await fetch(base + path, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return answer(res.status, Object.fromEntries(res.headers), await res.text());
}

/** Creates fresh test namespaces (one per tag, via `nsName`) through the API; their names, in order. */
export async function createNamespaces<T extends string[]>(app: RealApp, ...tags: T): Promise<{ [K in keyof T]: string }> {
  const names = tags.map((t) => nsName(t));
  for (const name of names) expect((await overTcp(app.tcpUrl, 'POST', '/v1/namespaces', { name })).status).toBe(201);
  return names as { [K in keyof T]: string };
}

/**
 * Requests as admin over TCP to the app `app()` returns (read when called: the app is made in a
 * beforeAll), and `ok`: one that must answer `status` (default 201), giving its JSON.
 */
export function adminClient(app: () => RealApp) {
  const api = (method: string, path: string, body?: unknown) => overTcp(app().tcpUrl, method, path, body, ADMIN_TOKEN);
  async function ok(method: string, path: string, body: unknown, status = 201): Promise<any> {
    const res = await api(method, path, body);
    expect(res.status, res.body).toBe(status);
    return res.json();
  }
  return { api, ok };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Msg = Record<string, any>;

/**
 * A WebSocket client of GET /v1/events (`query` starts with `?`) that keeps every message it got
 * and when it got it (performance.now()); rejects with the HTTP status of a refused upgrade.
 */
export async function eventsClient(app: RealApp, query: string, headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` }) {
  const ws = new WebSocket(`${app.tcpUrl.replace('http', 'ws')}/v1/events${query}`, { headers });
  const got: Msg[] = [];
  const at = new WeakMap<Msg, number>();
  ws.on('message', (d) => {
    const m = JSON.parse(String(d)) as Msg;
    at.set(m, performance.now());
    got.push(m);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (req, res) => {
      req.destroy();
      reject(new Error(`HTTP ${res.statusCode}`));
    });
    ws.once('error', reject);
  });
  const events = (type?: string) => got.filter((m) => (type ? m.type === type : m.type !== 'subscribed'));
  return { ws, got, events, receivedAt: (m: Msg): number => at.get(m) ?? Number.NaN, close: () => ws.close() };
}
