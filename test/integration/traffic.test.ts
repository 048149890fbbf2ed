/**
 * Traffic against the real kernel: two namespaces joined by a veth pair made through the API
 * (198.51.100.0/24), ping between them while a real WebSocket client receives samples and alerts;
 * counters over netlink against `ip -s -s -j`; a sampled namespace deleted under the sampler.
 */
import { execFileSync, spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ip, nsidOf, until } from '../helpers/kernel.js';
import { adminClient, createNamespaces, eventsClient, type Msg, useRealApp } from '../helpers/real-app.js';

const app = useRealApp();
const { api, ok } = adminClient(app);

const connect = (query: string) => eventsClient(app(), query);

const q = (o: Record<string, string>) => `?${new URLSearchParams(o)}`;

/** Two namespaces joined by veth0 <-> veth0, up, 198.51.100.1/24 in the first and .2 in the second. */
async function pair(): Promise<[string, string]> {
  const [a, b] = await createNamespaces(app(), 'tr-a', 'tr-b');
  await ok('POST', `/v1/namespaces/${a}/links`, { name: 'veth0', kind: 'veth', peer: { name: 'veth0', namespace: b }, up: true });
  await ok('POST', `/v1/namespaces/${a}/addresses`, { link: 'veth0', address: '198.51.100.1/24' });
  await ok('POST', `/v1/namespaces/${b}/addresses`, { link: 'veth0', address: '198.51.100.2/24' });
  return [a, b];
}

/** Runs ping inside `ns`; resolves with the moment it exited (performance.now()) once it has. */
function pingFrom(ns: string, to: string, ...args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/sbin/ip', ['netns', 'exec', ns, 'ping', ...args, to], { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(performance.now()) : reject(new Error(`ping exited with ${code}`))));
  });
}

describe('traffic against the real kernel', () => {
  it('delivers positive rx/tx rates on both veth ends while ping runs, and an alert that fires during it and clears after', async () => {
    const [a, b] = await pair();
    const alert = { namespace: a, link: 'veth0', metric: 'rxPacketsPerSecond', above: 2, for: '1s' };
    const c = await connect(q({ types: 'traffic', namespace: 'nnt-*', link: 'veth0', interval: '500ms', alerts: JSON.stringify([alert]) }));
    expect(c.got[0]).toMatchObject({ type: 'subscribed', interval: '500ms', alerts: [alert] });
    const startedAt = performance.now();
    const pingEnded = await pingFrom(a, '198.51.100.2', '-c', '20', '-i', '0.2', '-W', '1');
    const samples = (ns: string) => c.got.filter((m) => m.type === 'traffic' && m.namespace === ns && c.receivedAt(m) > startedAt && c.receivedAt(m) <= pingEnded);
    for (const ns of [a, b]) {
      const busy = samples(ns).filter((m) => m.rxBitsPerSecond > 0 && m.txBitsPerSecond > 0 && m.rxPacketsPerSecond > 0 && m.txPacketsPerSecond > 0);
      expect(busy.length, `samples of ${ns}: ${JSON.stringify(samples(ns))}`).toBeGreaterThan(0);
      expect(busy[0]).toMatchObject({ link: 'veth0', interval: '500ms' });
      expect(busy[0]).not.toHaveProperty('seq');
    }
    const alerts = () => c.got.filter((m) => m.type === 'traffic.alert');
    await until(() => alerts().some((m) => m.object.state === 'cleared'), 10_000, 'the alert to clear after the ping');
    expect(alerts()).toHaveLength(2);
    const [firing, cleared] = alerts() as [Msg, Msg];
    expect(firing).toMatchObject({ seq: expect.any(Number), namespace: a, object: { link: 'veth0', metric: 'rxPacketsPerSecond', above: 2, for: '1s', state: 'firing' } });
    expect(firing.object.value).toBeGreaterThan(2);
    expect(c.receivedAt(firing)).toBeLessThan(pingEnded);
    expect(cleared).toMatchObject({ seq: expect.any(Number), namespace: a, object: { state: 'cleared', reason: 'recovered', since: firing.object.since } });
    expect(cleared.seq).toBeGreaterThan(firing.seq);
    expect(c.receivedAt(cleared)).toBeGreaterThan(pingEnded);
    // Retained: the log has both.
    const logged = (seq: number) => app().services.events.log.read(seq - 1, seq, 1)[0];
    expect([logged(firing.seq), logged(cleared.seq)].map((e) => [e?.type, (e?.object as { state?: string } | undefined)?.state])).toEqual([['traffic.alert', 'firing'], ['traffic.alert', 'cleared']]);
    c.close();
  });

  it('serves GET .../links/{name}/stats from netlink with the same counters ip -s -s -j shows', async () => {
    const [a] = await pair();
    await pingFrom(a, '198.51.100.2', '-c', '3', '-i', '0.2', '-W', '1');
    const show = () => JSON.parse(ip('-n', a, '-s', '-s', '-j', 'link', 'show', 'dev', 'veth0'))[0].stats64;
    let checked = false;
    // Between two `ip` runs that agree (IPv6 autoconfiguration may still send now and then).
    for (let attempt = 0; attempt < 50 && !checked; attempt++) {
      const before = show();
      const stats = await ok('GET', `/v1/namespaces/${a}/links/veth0/stats`, undefined, 200);
      if (JSON.stringify(show()) !== JSON.stringify(before)) continue;
      expect(stats).toEqual({
        rxBytes: before.rx.bytes, txBytes: before.tx.bytes, rxPackets: before.rx.packets, txPackets: before.tx.packets,
        rxErrors: before.rx.errors, txErrors: before.tx.errors, rxDropped: before.rx.dropped, txDropped: before.tx.dropped,
        multicast: before.rx.multicast, collisions: before.tx.collisions,
      });
      expect(stats.txPackets).toBeGreaterThanOrEqual(3);
      checked = true;
    }
    expect(checked).toBe(true);
  });

  it('goes on sampling when a sampled namespace is deleted, clears its alerts as gone, and does not keep it alive', async () => {
    const [a, b] = await pair();
    const nsid = nsidOf(b);
    expect(nsid).toBeDefined();
    const c = await connect(q({ types: 'traffic', namespace: 'nnt-*', interval: '500ms', alerts: JSON.stringify([{ namespace: b, link: 'lo', metric: 'rxBytes', above: -1 }]) }));
    await until(() => c.got.some((m) => m.type === 'traffic.alert' && m.object.state === 'firing'), 5000, 'the alert on the namespace to fire');
    expect((await api('DELETE', `/v1/namespaces/${b}`)).status).toBe(204);
    const deletedAt = performance.now();
    await until(() => c.got.some((m) => m.type === 'traffic.alert' && m.object.state === 'cleared'), 5000, 'the alert to clear');
    expect(c.got.find((m) => m.type === 'traffic.alert' && m.object.state === 'cleared')).toMatchObject({ namespace: b, object: { link: 'lo', reason: 'gone' } });
    await until(() => c.got.filter((m) => m.type === 'traffic' && m.namespace === a && c.receivedAt(m) > deletedAt).length >= 2, 5000, 'samples of the other namespace');
    // The kernel frees the deleted namespace (its nsid is released): no socket of ours pins it.
    // Held without a name means not freed yet; a freed nsid may at once be given to someone
    // else's new namespace, which then shows its name.
    const held = (): boolean => {
      try {
        const out = execFileSync('/usr/sbin/ip', ['netns', 'list-id', 'nsid', String(nsid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        return out.includes(`nsid ${nsid}`) && !out.includes('netns name:');
      } catch {
        return false; // "Peer netns reference is invalid": freed
      }
    };
    await until(() => !held(), 10_000, 'the kernel to free the deleted namespace');
    const status = await ok('GET', '/v1/events/status', undefined, 200);
    expect(status.traffic).toMatchObject({ available: true, intervals: [{ interval: '500ms', subscribers: 1 }] });
    c.close();
  });
});
