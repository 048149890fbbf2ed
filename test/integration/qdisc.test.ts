/**
 * Traffic shaping against the real kernel, with real traffic: a bulk TCP transfer (node itself,
 * inside the namespaces) over a veth, measured from the link's counters over ~2.5 s. Rates are
 * asserted with generous tolerances (the cap must hold, and lifting it must make a large
 * difference), never timings. Namespaces come from nsName(); senders and listeners are killed
 * after each test. Addresses: 198.51.100.0/24 inside the test namespaces only.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ip } from '../helpers/kernel.js';
import { adminClient, type RealApp, createNamespaces, eventsClient, startRealApp } from '../helpers/real-app.js';

let r: RealApp;
beforeAll(async () => {
  r = await startRealApp();
});
afterAll(async () => {
  await r?.close();
});

const { api, ok } = adminClient(() => r);
const IP = '/usr/sbin/ip';
const procs: ChildProcess[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill('SIGKILL');
});

/** Runs a node script inside the namespace (killed after the test). */
function nodeIn(ns: string, code: string): ChildProcess {
  const child = spawn(IP, ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: 'ignore' });
  procs.push(child);
  return child;
}

/** A listener that discards what it gets, on each port. */
const sink = (ports: number[]): string =>
  `const net=require('net');for(const p of ${JSON.stringify(ports)})net.createServer(c=>{c.on('data',()=>{});c.on('error',()=>{})}).listen(p,'0.0.0.0');`;
/** A sender writing as fast as TCP lets it, reconnecting until the listener is there. */
const blast = (host: string, port: number): string =>
  `const net=require('net');const b=Buffer.alloc(65536);(function go(){const s=net.connect(${port},'${host}',()=>{const w=()=>{while(s.write(b));};s.on('drain',w);w();});s.on('error',()=>setTimeout(go,100));})();`;

const TC = '/usr/sbin/tc';
function tc(ns: string, ...args: string[]): string {
  return execFileSync(TC, ['-n', ns, ...args], { encoding: 'utf8', env: { LC_ALL: 'C' } });
}

function txBytes(ns: string, dev: string): number {
  return (JSON.parse(ip('-n', ns, '-s', '-j', 'link', 'show', 'dev', dev)) as Array<{ stats64: { tx: { bytes: number } } }>)[0]!.stats64.tx.bytes;
}
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

/** Bits per second `dev` sent over `ms`, after a second to let TCP settle. */
async function txRate(ns: string, dev: string, ms = 2500): Promise<number> {
  await sleep(1000);
  const before = txBytes(ns, dev);
  const t0 = performance.now();
  await sleep(ms);
  return ((txBytes(ns, dev) - before) * 8) / ((performance.now() - t0) / 1000);
}

/** a --(veth ea 198.51.100.1 / eb 198.51.100.2)-- b. */
async function pair(): Promise<{ a: string; b: string }> {
  const [a, b] = (await createNamespaces(r, 'qa', 'qb')) as [string, string];
  await ok('POST', `/v1/namespaces/${a}/links`, { name: 'ea', kind: 'veth', peer: { name: 'eb', namespace: b }, up: true });
  await ok('POST', `/v1/namespaces/${a}/addresses`, { link: 'ea', address: '198.51.100.1/24' });
  await ok('POST', `/v1/namespaces/${b}/addresses`, { link: 'eb', address: '198.51.100.2/24' });
  return { a, b };
}

const MBIT = 1e6;

describe('traffic shaping against the real kernel', () => {
  it('a 1mbit tbf keeps a bulk transfer under 1 mbit/s (within tolerance); DELETE lifts the cap', async () => {
    const { a, b } = await pair();
    const before = await ok('GET', `/v1/namespaces/${a}/links/ea/qdisc`, undefined, 200);
    expect(before).toMatchObject({ managed: false, kind: 'noqueue', handle: '0:', spec: null, direction: 'egress' });

    const events = await eventsClient(r, `?types=qdisc.changed&namespace=${a}`);
    try {
      const spec = { kind: 'tbf', rate: '1mbit', burst: '32kb', latency: '50ms' };
      const set = await ok('PUT', `/v1/namespaces/${a}/links/ea/qdisc`, spec, 200);
      expect(set).toMatchObject({ managed: true, kind: 'tbf', spec, options: { rate: 125000, burst: 32768, lat: 50000 } });
      expect(tc(a, 'qdisc', 'show', 'dev', 'ea')).toMatch(/^qdisc tbf .* rate 1Mbit burst 32Kb lat 50ms/);

      nodeIn(b, sink([5001]));
      nodeIn(a, blast('198.51.100.2', 5001));
      const capped = await txRate(a, 'ea');
      // tbf lets the bucket (32 KiB) out at once, then the rate: at most ~1.1 mbit/s over 2.5 s.
      expect(capped).toBeLessThan(1.3 * MBIT);
      expect(capped).toBeGreaterThan(0.5 * MBIT);
      const stats = (await ok('GET', `/v1/namespaces/${a}/links/ea/qdisc`, undefined, 200)).stats;
      expect(stats.bytes).toBeGreaterThan(100_000);
      expect(stats.overlimits).toBeGreaterThan(0);

      expect((await api('DELETE', `/v1/namespaces/${a}/links/ea/qdisc`)).status).toBe(204);
      // Idempotent: nothing left to remove is 204 too (and raises no event).
      expect((await api('DELETE', `/v1/namespaces/${a}/links/ea/qdisc`)).status).toBe(204);
      expect((await ok('GET', `/v1/namespaces/${a}/links/ea/qdisc`, undefined, 200)).kind).toBe('noqueue');
      const free = await txRate(a, 'ea');
      expect(free).toBeGreaterThan(20 * MBIT);

      const seen = events.events('qdisc.changed');
      expect(seen.map((e) => [e.link, e.direction, e.spec])).toEqual([['ea', 'egress', spec], ['ea', 'egress', null]]);
    } finally {
      events.close();
    }
  });

  it('an htb tree with a u32 filter on one dport puts that flow in the slow class', async () => {
    const { a, b } = await pair();
    const spec = {
      kind: 'htb',
      default: '1:20',
      classes: [{ id: '1:10', rate: '1mbit', ceil: '1mbit' }, { id: '1:20', rate: '200mbit' }],
      filters: [{ class: '1:10', protocol: 'tcp', dport: 5001, destination: '198.51.100.2' }],
    };
    const set = await ok('PUT', `/v1/namespaces/${a}/links/ea/qdisc`, spec, 200);
    expect(set).toMatchObject({ managed: true, kind: 'htb', handle: '1:', spec });
    expect(set.classes.map((c: { id: string }) => c.id)).toEqual(['1:10', '1:20']);
    expect(set.filters).toEqual([expect.objectContaining({ protocol: 'ip', pref: 1, class: '1:10' })]);

    nodeIn(b, sink([5001, 5002]));
    nodeIn(a, blast('198.51.100.2', 5001));
    nodeIn(a, blast('198.51.100.2', 5002));
    await txRate(a, 'ea', 2000);
    const got = await ok('GET', `/v1/namespaces/${a}/links/ea/qdisc`, undefined, 200);
    const slow = got.classes.find((c: { id: string }) => c.id === '1:10').stats.bytes as number;
    const fast = got.classes.find((c: { id: string }) => c.id === '1:20').stats.bytes as number;
    // 3 s at 1 mbit is ~375 kB (plus a burst); the other flow runs far faster.
    expect(slow).toBeGreaterThan(50_000);
    expect(slow).toBeLessThan(800_000);
    expect(fast).toBeGreaterThan(5 * slow);

    // A new tree replaces the old one (htb over htb needs the old root removed first).
    const again = await ok('PUT', `/v1/namespaces/${a}/links/ea/qdisc`, { ...spec, filters: [] }, 200);
    expect(again.filters).toEqual([]);
  });

  it('ingress shaping through an ifb caps what the link receives; DELETE removes the ifb', async () => {
    const { a, b } = await pair();
    await expect(api('GET', `/v1/namespaces/${b}/links/eb/qdisc/ingress`).then((x) => x.status)).resolves.toBe(404);
    const spec = { kind: 'tbf', rate: '1mbit', burst: '32kb', latency: '100ms' };
    const set = await ok('PUT', `/v1/namespaces/${b}/links/eb/qdisc/ingress`, spec, 200);
    expect(set).toMatchObject({ direction: 'ingress', managed: true, kind: 'tbf', ifb: 'eb-ifb', spec });
    const ifb = await ok('GET', `/v1/namespaces/${b}/links/eb-ifb`, undefined, 200);
    expect(ifb).toMatchObject({ kind: 'ifb', managed: true, state: 'up', labels: { 'netnsd.io/ifb-for': 'eb' } });
    expect(tc(b, 'qdisc', 'show', 'dev', 'eb')).toContain('qdisc ingress ffff:');

    nodeIn(b, sink([5001]));
    nodeIn(a, blast('198.51.100.2', 5001));
    // What the ifb passes on is what b lets in (the sender's own counter also counts the
    // retransmissions of what the ifb's tbf dropped).
    const capped = await txRate(b, 'eb-ifb');
    expect(capped).toBeLessThan(1.3 * MBIT);
    expect(capped).toBeGreaterThan(0.5 * MBIT);
    const stats = (await ok('GET', `/v1/namespaces/${b}/links/eb/qdisc/ingress`, undefined, 200)).stats;
    expect(stats.bytes).toBeGreaterThan(100_000);

    expect((await api('DELETE', `/v1/namespaces/${b}/links/eb/qdisc/ingress`)).status).toBe(204);
    expect((await api('GET', `/v1/namespaces/${b}/links/eb-ifb`)).status).toBe(404);
    expect(tc(b, 'qdisc', 'show', 'dev', 'eb')).not.toContain('ingress');
    expect(await txRate(a, 'ea')).toBeGreaterThan(20 * MBIT);
  });

  it('refuses netem on this kernel with 422 QDISC_UNSUPPORTED and leaves the tbf in place', async () => {
    const { a } = await pair();
    const caps = await ok('GET', '/v1/capabilities', undefined, 200);
    if (caps.qdiscs.supported.includes('netem')) {
      console.log('skipped: this kernel has netem');
      return;
    }
    await ok('PUT', `/v1/namespaces/${a}/links/ea/qdisc`, { kind: 'tbf', rate: '10mbit', burst: '32kb', latency: '50ms' }, 200);
    const res = await api('PUT', `/v1/namespaces/${a}/links/ea/qdisc`, { kind: 'netem', delay: '100ms', loss: 1 });
    expect(res.status, res.body).toBe(422);
    expect(res.json().code).toBe('QDISC_UNSUPPORTED');
    expect((await ok('GET', `/v1/namespaces/${a}/links/ea/qdisc`, undefined, 200)).kind).toBe('tbf');
  });

  it('answers 409 QDISC_UNMANAGED for a qdisc set by hand, shows it, and DELETE removes it', async () => {
    const { a } = await pair();
    tc(a, 'qdisc', 'add', 'dev', 'ea', 'root', 'handle', '5:', 'pfifo', 'limit', '100');
    const shown = await ok('GET', `/v1/namespaces/${a}/links/ea/qdisc`, undefined, 200);
    expect(shown).toMatchObject({ managed: false, kind: 'pfifo', handle: '5:', spec: null, options: { limit: 100 } });
    const res = await api('PUT', `/v1/namespaces/${a}/links/ea/qdisc`, { kind: 'tbf', rate: '1mbit', burst: '32kb', latency: '50ms' });
    expect(res.status).toBe(409);
    expect(res.json()).toMatchObject({ code: 'QDISC_UNMANAGED' });
    expect((await api('DELETE', `/v1/namespaces/${a}/links/ea/qdisc`)).status).toBe(204);
    expect((await ok('GET', `/v1/namespaces/${a}/links/ea/qdisc`, undefined, 200)).kind).toBe('noqueue');
  });
});
