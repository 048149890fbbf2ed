import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ip, namedNetns, netnsExists, nsName, nsidOf, sleepIn, until } from '../helpers/kernel.js';
import { ADMIN_TOKEN, READ_TOKEN, overSocket, overTcp, startRealApp, type RealApp } from '../helpers/real-app.js';

let r: RealApp;
beforeAll(async () => {
  r = await startRealApp();
});
afterAll(async () => {
  await r?.close();
});

const tcp = (method: string, path: string, body?: unknown, token: string | null = ADMIN_TOKEN, headers: Record<string, string> = {}) =>
  overTcp(r.tcpUrl, method, path, body, token, headers);
const sock = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => overSocket(r.socketPath, method, path, body, headers);

describe('namespaces against the real kernel', () => {
  it('creates a namespace with loopback up and an nsid, over TCP', async () => {
    const name = nsName('create');
    const res = await tcp('POST', '/v1/namespaces', { name, labels: { lab: 'it' } });
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe(`/v1/namespaces/${name}`);
    const ns = res.json();
    expect(ns).toMatchObject({ name, managed: true, labels: { lab: 'it' }, linkCount: 1 });
    expect(netnsExists(name)).toBe(true);
    expect(ip('-n', name, 'link', 'show', 'lo')).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
    expect(nsidOf(name)).toBe(ns.nsid);
    expect(ns.id).toMatch(/^\d+-\d+$/);
  });

  it('works over the Unix socket without a token', async () => {
    const name = nsName('sock');
    expect((await sock('POST', '/v1/namespaces', { name })).status).toBe(201);
    expect((await sock('GET', `/v1/namespaces/${name}`)).json()).toMatchObject({ name, managed: true });
    expect((await sock('DELETE', `/v1/namespaces/${name}`)).status).toBe(204);
    expect(netnsExists(name)).toBe(false);
  });

  it('lists host, managed namespaces and ones made by hand (unmanaged)', async () => {
    const mine = nsName('mine');
    const found = nsName('found');
    await tcp('POST', '/v1/namespaces', { name: mine });
    ip('netns', 'add', found);
    // The monitor gives every namespace it watches an nsid (so its socket hears it).
    await until(() => r.services.monitor?.serves(found) === true, 5000, 'the monitor to watch it');
    const items = (await tcp('GET', '/v1/namespaces')).json().items as Array<{ name: string; managed: boolean; nsid: number | null; linkCount: number }>;
    const byName = new Map(items.map((i) => [i.name, i]));
    expect(byName.get('host')).toMatchObject({ managed: false, nsid: null });
    expect(byName.get('host')!.linkCount).toBeGreaterThanOrEqual(2);
    expect(byName.get(mine)).toMatchObject({ managed: true });
    expect(byName.get(found)).toMatchObject({ managed: false, nsid: expect.any(Number), linkCount: 1 });
    // Everything `ip netns list` knows is listed.
    for (const n of namedNetns()) if (/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(n) && n.length <= 64) expect(byName.has(n)).toBe(true);
    const onlyManaged = (await tcp('GET', '/v1/namespaces?managed=true&labelSelector=nothing-has-this')).json().items;
    expect(onlyManaged).toEqual([]);
  });

  it('returns 409 NAMESPACE_EXISTS when the name was taken by hand, and changes nothing', async () => {
    const name = nsName('taken');
    ip('netns', 'add', name);
    const before = ip('-n', name, 'link', 'show', 'lo');
    const res = await tcp('POST', '/v1/namespaces', { name });
    expect(res.status).toBe(409);
    expect(res.json().code).toBe('NAMESPACE_EXISTS');
    expect(ip('-n', name, 'link', 'show', 'lo')).toBe(before);
  });

  it('refuses bad names with 400 and nothing changes on the machine', async () => {
    const before = namedNetns();
    for (const name of ['a;b', '../x', '$(id)', '-n', '.', '', 'x'.repeat(300), 'nnt-é']) {
      const res = await tcp('POST', '/v1/namespaces', { name });
      expect(res.status).toBe(400);
      expect(res.json().code).toBe('REQUEST_INVALID');
    }
    expect((await tcp('GET', '/v1/namespaces/..%2Fetc')).status).toBe(400);
    expect(namedNetns()).toEqual(before);
  });

  it('patches labels and keeps them', async () => {
    const name = nsName('labels');
    await tcp('POST', '/v1/namespaces', { name, labels: { a: '1' } });
    const res = await tcp('PATCH', `/v1/namespaces/${name}`, { labels: { a: null, b: '2' } }, ADMIN_TOKEN, { 'content-type': 'application/merge-patch+json' });
    expect(res.status).toBe(200);
    expect((await tcp('GET', `/v1/namespaces/${name}`)).json().labels).toEqual({ b: '2' });
  });

  it('returns 409 NAMESPACE_BUSY with the pid of a process inside, and force kills it', async () => {
    const name = nsName('busy');
    await tcp('POST', '/v1/namespaces', { name });
    const child = sleepIn(name);
    await until(() => child.pid !== undefined && ip('netns', 'pids', name).trim() !== '', 5000, 'sleep to enter the namespace');
    const res = await tcp('DELETE', `/v1/namespaces/${name}`);
    expect(res.status).toBe(409);
    expect(res.json()).toMatchObject({ code: 'NAMESPACE_BUSY', pids: [child.pid] });
    expect(netnsExists(name)).toBe(true);
    const reader = await tcp('DELETE', `/v1/namespaces/${name}?force=true`, undefined, READ_TOKEN);
    expect(reader.status).toBe(403);
    const forced = await tcp('DELETE', `/v1/namespaces/${name}?force=true`);
    expect(forced.status).toBe(204);
    expect(netnsExists(name)).toBe(false);
    await until(() => child.exitCode !== null || child.signalCode !== null, 3000, 'the sleep to die');
    expect(child.signalCode).toBe('SIGKILL');
  });

  it('deletes and lets the same name be created again at once, with a new id', async () => {
    const name = nsName('again');
    const first = (await tcp('POST', '/v1/namespaces', { name })).json();
    expect((await tcp('DELETE', `/v1/namespaces/${name}`)).status).toBe(204);
    const second = await tcp('POST', '/v1/namespaces', { name });
    expect(second.status).toBe(201);
    expect(second.json().id).not.toBe(first.id);
  });

  it('needs force to delete a namespace it did not create', async () => {
    const name = nsName('foreign');
    ip('netns', 'add', name);
    expect((await tcp('DELETE', `/v1/namespaces/${name}`)).json().code).toBe('NAMESPACE_UNMANAGED');
    expect((await tcp('DELETE', `/v1/namespaces/${name}?force=true`)).status).toBe(204);
    expect(netnsExists(name)).toBe(false);
  });

  it('notices a namespace deleted behind its back', async () => {
    const name = nsName('behind');
    await tcp('POST', '/v1/namespaces', { name });
    ip('netns', 'del', name);
    expect((await tcp('GET', `/v1/namespaces/${name}`)).json().code).toBe('NAMESPACE_NOT_FOUND');
    const names = (await tcp('GET', '/v1/namespaces')).json().items.map((i: { name: string }) => i.name);
    expect(names).not.toContain(name);
  });

  it('gives each of many concurrent creations its own result', async () => {
    const names = Array.from({ length: 40 }, (_, i) => nsName(`c${i}`));
    const taken = names[7]!;
    ip('netns', 'add', taken);
    const results = await Promise.all(names.map((name) => tcp('POST', '/v1/namespaces', { name })));
    results.forEach((res, i) => expect(res.status, names[i]).toBe(names[i] === taken ? 409 : 201));
    for (const name of names) expect(netnsExists(name)).toBe(true);
    const dels = await Promise.all(names.filter((n) => n !== taken).map((name) => tcp('DELETE', `/v1/namespaces/${name}`)));
    expect(dels.every((d) => d.status === 204)).toBe(true);
  });

  it('creates 50 namespaces at once, each a distinct namespace with lo up, that `ip netns del` frees', async () => {
    const names = Array.from({ length: 50 }, (_, i) => nsName(`m${i}`));
    const results = await Promise.all(names.map((name) => tcp('POST', '/v1/namespaces', { name })));
    results.forEach((res, i) => expect(res.status, names[i]).toBe(201));
    const ids = results.map((res) => res.json().id as string);
    expect(new Set(ids).size).toBe(50);
    const listed = new Set(namedNetns());
    for (const name of names) {
      expect(listed.has(name)).toBe(true);
      expect(ip('-n', name, 'link', 'show', 'lo')).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
    }
    for (const name of names) ip('netns', 'del', name);
    for (const name of names) expect(netnsExists(name)).toBe(false);
    await until(async () => (await Promise.all(names.map(async (n) => (await tcp('GET', `/v1/namespaces/${n}`)).status))).every((s) => s === 404), 5000, 'the daemon to see them gone');
  });

  it('replays an idempotent creation instead of failing with NAMESPACE_EXISTS', async () => {
    const name = nsName('idem');
    const key = { 'idempotency-key': `it-${name}` };
    const first = await tcp('POST', '/v1/namespaces', { name }, ADMIN_TOKEN, key);
    const retry = await tcp('POST', '/v1/namespaces', { name }, ADMIN_TOKEN, key);
    expect([first.status, retry.status]).toEqual([201, 201]);
    expect(retry.headers['idempotency-replayed']).toBe('true');
    expect(retry.json()).toEqual(first.json());
  });

  it('audits real changes with the command lines they ran', async () => {
    const name = nsName('audit');
    await tcp('POST', '/v1/namespaces', { name });
    expect((await tcp('DELETE', `/v1/namespaces/${name}`)).status).toBe(204);
    let items: Array<{ namespace: string; action: string; actor: string; ops: Array<{ kind: string; argv: string[][] }> }> = [];
    let cursor: string | undefined;
    do {
      const page = (await tcp('GET', `/v1/audit?limit=500${cursor ? `&cursor=${cursor}` : ''}`)).json();
      items = items.concat(page.items);
      cursor = page.next;
    } while (cursor);
    const entry = items.find((e) => e.namespace === name && e.action === 'namespace.create');
    expect(entry).toMatchObject({ actor: 'admin' });
    // Made in-process by the native addon (netnsAdd): no command line ran.
    expect(entry!.ops.find((o) => o.kind === 'netns.add')!.argv).toEqual([]);
    const deleted = items.find((e) => e.namespace === name && e.action === 'namespace.delete');
    expect(deleted!.ops.find((o) => o.kind === 'netns.delete')!.argv[0]!.slice(-3)).toEqual(['netns', 'del', name]);
  });

  it('reports this kernel in capabilities and is ready', async () => {
    const caps = (await tcp('GET', '/v1/capabilities', undefined, READ_TOKEN)).json();
    expect(caps.tools.ip).toMatch(/^\d+\.\d+/);
    expect(caps.linkKinds.supported).toEqual(expect.arrayContaining(['veth', 'bridge']));
    expect(caps.nativeHelper).toBe(true);
    expect(namedNetns().some((n) => n.startsWith('netnsd-probe-'))).toBe(false);
    expect((await tcp('GET', '/readyz', undefined, null)).json()).toEqual({ status: 'ready', checks: { store: 'ok', executor: 'ok' } });
  });
});
