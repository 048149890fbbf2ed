import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { killAll, runOnce, startDaemon } from '../helpers/daemon.js';
import { ip, nsName } from '../helpers/kernel.js';
import { overSocket, overTcp } from '../helpers/real-app.js';

const TOKEN = 'daemon-test-token-0123456789';
let dir: string;
let tokens: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'netnsd-daemon-'));
  tokens = join(dir, 'tokens.json');
  writeFileSync(tokens, JSON.stringify({ tokens: [{ name: 'ci', token: TOKEN, scopes: ['admin'] }] }), { mode: 0o600 });
});
afterEach(() => killAll());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function args(data: string, sock: string, extra: string[] = []): string[] {
  return ['--listen', `unix://${sock}`, '--listen', 'tcp://127.0.0.1:0', '--tokens', tokens, '--data-dir', data, ...extra];
}
const tcpBase = (url: string) => url.replace(/^tcp:/, 'http:');

describe('the netnsd daemon', () => {
  it('documents every flag and environment variable in --help', async () => {
    const r = await runOnce(['--help']);
    expect(r.code).toBe(0);
    for (const w of ['--config', '--listen', '--data-dir', '--tokens', '--log-level', 'NETNSD_CONFIG', 'NETNSD_LISTEN', 'NETNSD_DATA_DIR', 'NETNSD_TOKENS', 'NETNSD_LOG_LEVEL']) {
      expect(r.stdout).toContain(w);
    }
  });

  it('refuses to start with bad configuration, naming every bad setting', async () => {
    const r = await runOnce(['--listen', 'tcp://127.0.0.1:0', '--log-level', 'loud', '--data-dir', join(dir, 'never')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/tokens/);
    expect(r.stderr).toMatch(/logLevel|log-level/);
  });

  it('listens on a Unix socket (mode 0660, no token) and TCP (token), logs its URLs, and stops on SIGTERM', async () => {
    const sock = join(dir, 'a.sock');
    const d = await startDaemon(args(join(dir, 'data-a'), sock), 2);
    expect(d.urls[0]).toBe(`unix://${sock}`);
    expect(d.urls[1]).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    expect(statSync(sock).mode & 0o777).toBe(0o660);
    expect((await overSocket(sock, 'GET', '/v1/namespaces')).status).toBe(200);
    const base = tcpBase(d.urls[1]!);
    expect((await overTcp(base, 'GET', '/v1/namespaces', undefined, null)).status).toBe(401);
    expect((await overTcp(base, 'GET', '/healthz', undefined, null)).status).toBe(200);
    expect((await overTcp(base, 'GET', '/v1/namespaces', undefined, TOKEN)).status).toBe(200);
    // A second daemon must not take over the socket of a live one.
    const second = await runOnce(['--listen', `unix://${sock}`, '--data-dir', join(dir, 'data-a2')]);
    expect(second.code).toBe(1);
    expect(second.stdout).toContain('another process listens on');
    expect((await overSocket(sock, 'GET', '/healthz')).status).toBe(200);
    expect(await d.stop('SIGTERM')).toBe(0);
    expect(d.logs.some((l) => l.msg === 'stopped')).toBe(true);
  });

  it('refuses a listen path that holds a regular file, and leaves the file alone', async () => {
    const path = join(dir, 'not-a-socket');
    writeFileSync(path, 'precious');
    const r = await runOnce(['--listen', `unix://${path}`, '--data-dir', join(dir, 'data-f')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('is not a socket');
    expect(statSync(path).isFile()).toBe(true);
  });

  it('keeps labels across a restart, and notices changes made while it was down', async () => {
    const sock = join(dir, 'b.sock');
    const data = join(dir, 'data-b');
    const kept = nsName('kept');
    const gone = nsName('gone');
    const replaced = nsName('replaced');
    let d = await startDaemon(args(data, sock), 2);
    for (const name of [kept, gone, replaced]) {
      expect((await overSocket(sock, 'POST', '/v1/namespaces', { name, labels: { run: 'b' } })).status).toBe(201);
    }
    expect(await d.stop()).toBe(0);
    // While the daemon is down: one namespace is deleted, another replaced by one of the same name.
    ip('netns', 'del', gone);
    ip('netns', 'del', replaced);
    ip('netns', 'add', replaced);
    d = await startDaemon(args(data, sock), 2);
    expect((await overSocket(sock, 'GET', `/v1/namespaces/${kept}`)).json()).toMatchObject({ managed: true, labels: { run: 'b' } });
    expect((await overSocket(sock, 'GET', `/v1/namespaces/${gone}`)).status).toBe(404);
    expect((await overSocket(sock, 'GET', `/v1/namespaces/${replaced}`)).json()).toMatchObject({ managed: false, labels: {} });
    const dropped = d.logs.filter((l) => typeof l.namespace === 'string' && /while netnsd was down/.test(String(l.msg))).map((l) => l.namespace);
    expect(dropped.sort()).toEqual([gone, replaced].sort());
    expect(await d.stop('SIGINT')).toBe(0);
  });

  it('re-reads the tokens file on SIGHUP', async () => {
    const sock = join(dir, 'c.sock');
    const file = join(dir, 'tokens-c.json');
    writeFileSync(file, JSON.stringify({ tokens: [{ name: 'old', token: 'old-token-0123456789abc', scopes: ['read'] }] }), { mode: 0o600 });
    const d = await startDaemon(['--listen', `unix://${sock}`, '--listen', 'tcp://127.0.0.1:0', '--tokens', file, '--data-dir', join(dir, 'data-c')], 2);
    const base = tcpBase(d.urls[1]!);
    expect((await overTcp(base, 'GET', '/v1/namespaces', undefined, 'new-token-0123456789abc')).status).toBe(401);
    writeFileSync(file, JSON.stringify({ tokens: [{ name: 'new', token: 'new-token-0123456789abc', scopes: ['read'] }] }), { mode: 0o600 });
    d.child.kill('SIGHUP');
    await d.waitForLog((l) => l.msg === 'tokens reloaded');
    expect((await overTcp(base, 'GET', '/v1/namespaces', undefined, 'new-token-0123456789abc')).status).toBe(200);
    expect((await overTcp(base, 'GET', '/v1/namespaces', undefined, 'old-token-0123456789abc')).status).toBe(401);
    expect(await d.stop()).toBe(0);
  });

  it('reads a YAML config file, serves HTTPS with its tls setting, and lets flags win over it', async () => {
    const sock = join(dir, 'e.sock');
    const tls = new URL('../fixtures/tls/', import.meta.url).pathname;
    const cfg = join(dir, 'netnsd.yaml');
    writeFileSync(
      cfg,
      [
        'listen: ["tcp://127.0.0.1:0"]',
        `tokensFile: ${tokens}`,
        `dataDir: ${join(dir, 'data-e')}`,
        'logLevel: warn',
        `tls: { cert: ${tls}cert.pem, key: ${tls}key.pem }`,
      ].join('\n'),
    );
    // --listen replaces the file's list; --log-level wins over the file's.
    const d = await startDaemon(['--config', cfg, '--listen', 'tcp://127.0.0.1:0', '--listen', `unix://${sock}`, '--log-level', 'info'], 2);
    expect(d.urls[0]).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const { request } = await import('node:https');
    const { readFileSync } = await import('node:fs');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${d.urls[0]}/v1/namespaces`, { ca: readFileSync(`${tls}cert.pem`), headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(200);
    expect(await d.stop()).toBe(0);
  });

  it('takes its settings from NETNSD_* variables', async () => {
    const sock = join(dir, 'd.sock');
    const d = await startDaemon([], 1, { NETNSD_LISTEN: `unix://${sock}`, NETNSD_DATA_DIR: join(dir, 'data-d'), NETNSD_LOG_LEVEL: 'debug' });
    expect(d.urls).toEqual([`unix://${sock}`]);
    expect(d.logs.some((l) => l.level === 20)).toBe(true);
    expect(await d.stop()).toBe(0);
  });
});
