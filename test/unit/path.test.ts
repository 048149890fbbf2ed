import { describe, expect, it } from 'vitest';
import type { Executor } from '../../src/executor/executor.js';
import type { Op, RouteLookup } from '../../src/executor/ops.js';
import { parseIp } from '../../src/ip-address.js';
import { PathTracer, type FirewallCounters } from '../../src/diagnostics/path.js';
import type { NetnsDirectory } from '../../src/namespaces/netns-dir.js';

/**
 * A scripted world: per namespace, route lookups by `dst|from|iif`, links, addresses, sysctls;
 * the probe's replies; firewall counters that move during the probe.
 */
interface World {
  routes: Record<string, Record<string, RouteLookup>>;
  links: Record<string, Array<{ name: string; kind: string; state: 'up' | 'down'; operstate: string; master?: string; peer?: { namespace: string; name: string } }>>;
  addrs: Record<string, string[]>;
  sysctls?: Record<string, Record<string, string>>;
  replies?: number;
}

const ok = (dev: string, gateway: string | null, type = 'unicast', prefsrc: string | null = null): RouteLookup => ({ ok: true, type, dst: '', dev, gateway, prefsrc, table: 254 });
const refused = (errno: string, message: string): RouteLookup => ({ ok: false, errno, message });

function tracer(w: World, firewall?: FirewallCounters): PathTracer {
  const ex = {
    async run(op: Op): Promise<unknown> {
      switch (op.kind) {
        case 'route.get': {
          const key = [op.dst, op.from ?? '', op.iif ?? ''].join('|');
          const r = w.routes[op.ns]?.[key] ?? w.routes[op.ns]?.[op.dst];
          if (!r) throw new Error(`no route.get scripted for ${op.ns} ${key}`);
          return r;
        }
        case 'addr.list':
          return { addresses: (w.addrs[op.ns] ?? []).map((local) => ({ link: 'x', family: local.includes(':') ? 6 : 4, local, prefixLength: 24, scope: 'global', flags: [] })) };
        case 'sysctl.read':
          return { values: op.keys.map((k) => (w.sysctls?.[op.ns]?.[k] ?? null)) };
        case 'diag.ping':
          return { sent: 3, received: w.replies ?? 0, lossPercent: w.replies ? 0 : 100, rtt: null, replies: [], errors: [], failure: null };
        default:
          throw new Error(`unexpected ${op.kind}`);
      }
    },
    ping: async () => undefined,
    close: async () => undefined,
  } as unknown as Executor;
  const links = {
    async list(ns: string) {
      return { items: (w.links[ns] ?? []).map((l) => ({ ...l, master: l.master ?? null, peer: l.peer ? { ...l.peer, index: 2 } : null })) as never };
    },
  };
  const dir = { stat: async (name: string) => ({ name, id: '1-1' }) } as unknown as NetnsDirectory;
  return new PathTracer({ executor: ex, dir, links, ...(firewall ? { firewall } : {}) });
}

const up = (name: string, peer?: { namespace: string; name: string }) => ({ name, kind: 'veth', state: 'up' as const, operstate: 'UP', ...(peer ? { peer } : {}) });
const D = parseIp('203.0.113.2')!;

/** a -va/ra- r -rb/vb- b. */
function line(extra: Partial<World> = {}): World {
  return {
    routes: {
      a: { '203.0.113.2': ok('va', '198.51.100.2', 'unicast', '198.51.100.1') },
      r: { '203.0.113.2|198.51.100.1|ra': ok('rb', null) },
      b: { '203.0.113.2|198.51.100.1|vb': ok('lo', null, 'local'), '198.51.100.1': ok('vb', '203.0.113.1', 'unicast', '203.0.113.2') },
      ...extra.routes,
    },
    links: { a: [up('va', { namespace: 'r', name: 'ra' })], r: [up('ra', { namespace: 'a', name: 'va' }), up('rb', { namespace: 'b', name: 'vb' })], b: [up('vb', { namespace: 'r', name: 'rb' })], ...extra.links },
    addrs: { a: ['198.51.100.1'], r: ['198.51.100.2', '203.0.113.1'], b: ['203.0.113.2'], ...extra.addrs },
    ...(extra.sysctls ? { sysctls: extra.sysctls } : {}),
    ...(extra.replies !== undefined ? { replies: extra.replies } : {}),
  };
}
// The way back for the walks that get there.
const back = { r: { '203.0.113.2|198.51.100.1|ra': ok('rb', null), '198.51.100.1|203.0.113.2|rb': ok('ra', null) }, a: { '203.0.113.2': ok('va', '198.51.100.2', 'unicast', '198.51.100.1'), '198.51.100.1|203.0.113.2|va': ok('lo', null, 'local') } };

describe('diagnostics/path reasoning', () => {
  it('is reachable when the probe gets replies, with the walk there and back', async () => {
    const a = await tracer(line({ routes: back, replies: 3 })).trace('a', D, {});
    expect(a).toMatchObject({ reachable: true, reason: 'reachable' });
    expect(a.steps.filter((s) => s.check === 'delivery').map((s) => `${s.direction} ${s.namespace}`)).toEqual(['forward b', 'return a']);
  });

  it('names rp_filter when the kernel refuses the lookup with EINVAL on arrival, with the sysctl values', async () => {
    const w = line({ routes: { r: { '203.0.113.2|198.51.100.1|ra': refused('EINVAL', 'Invalid argument') } }, sysctls: { r: { 'ipv4/conf/all/rp_filter': '1\n', 'ipv4/conf/ra/rp_filter': '1\n' } } });
    const a = await tracer(w).trace('a', D, {});
    expect(a.reason).toBe('rp-filter');
    expect(a.steps.find((s) => !s.ok)).toMatchObject({ namespace: 'r', check: 'route', link: 'ra', detail: expect.stringContaining('rp_filter all=1, ra=1') });
  });

  it('says forwarding is off when the lookup on arrival is unreachable and ip_forward is 0', async () => {
    const w = line({ routes: { r: { '203.0.113.2|198.51.100.1|ra': refused('EHOSTUNREACH', 'No route to host') } }, sysctls: { r: { 'ipv4/ip_forward': '0\n' } } });
    expect((await tracer(w).trace('a', D, {})).reason).toBe('forwarding-disabled');
  });

  it('says prohibited for EACCES and no-route for ENETUNREACH in the source', async () => {
    expect((await tracer(line({ routes: { a: { '203.0.113.2': refused('EACCES', 'Permission denied') } } })).trace('a', D, {})).reason).toBe('prohibited');
    expect((await tracer(line({ routes: { a: { '203.0.113.2': refused('ENETUNREACH', 'Network is unreachable') } } })).trace('a', D, {})).reason).toBe('no-route');
  });

  it('says next-hop-not-found when no namespace behind the link has the gateway', async () => {
    const a = await tracer(line({ addrs: { r: ['198.51.100.9'] } })).trace('a', D, {});
    expect(a.reason).toBe('next-hop-not-found');
  });

  it('follows a bridge to the veth port whose far end has the next hop', async () => {
    const w = line({
      routes: { ...back, a: { '203.0.113.2': ok('br0', '198.51.100.2', 'unicast', '198.51.100.1'), '198.51.100.1|203.0.113.2|br0': ok('lo', null, 'local') } },
      links: { a: [{ name: 'br0', kind: 'bridge', state: 'up', operstate: 'UP' }, { ...up('p1', { namespace: 'x', name: 'x0' }), master: 'br0' }, { ...up('p2', { namespace: 'r', name: 'ra' }), master: 'br0' }] },
      replies: 1,
    });
    const a = await tracer(w).trace('a', D, {});
    expect(a.steps.find((s) => s.check === 'peer')).toMatchObject({ ok: true, detail: expect.stringContaining("leads to 'r'") });
  });

  it('stops at a link kind it cannot follow, and lets the probe decide', async () => {
    const a = await tracer(line({ links: { a: [{ name: 'va', kind: 'vxlan', state: 'up', operstate: 'UNKNOWN' }] }, replies: 2 })).trace('a', D, {});
    expect(a).toMatchObject({ reachable: true, reason: 'reachable' });
    expect(a.steps.find((s) => s.check === 'peer')).toMatchObject({ ok: false, reason: 'unknown-link' });
  });

  it('blames a drop rule whose counter moved during the probe, else a drop policy, else no-reply', async () => {
    let probed = 0;
    const fw = (moves: boolean, policy: string): FirewallCounters => ({
      async ruleCounters(ns) {
        probed++;
        return ns === 'b' ? [{ family: 'inet', table: 'netnsd', chain: 'input', handle: 4, id: 'fw-abc', verdict: 'drop', text: 'ip protocol icmp counter drop', packets: moves && probed > 3 ? 3 : 0, bytes: 0 }] : [];
      },
      async chainPolicies(ns) {
        return ns === 'b' ? [{ family: 'inet', table: 'filter', chain: 'input', hook: 'input', policy }] : [];
      },
    });
    const drop = await tracer(line({ routes: back }), fw(true, 'accept')).trace('a', D, {});
    expect(drop.reason).toBe('firewall-drop');
    expect(drop.steps.find((s) => s.check === 'firewall')).toMatchObject({ namespace: 'b', rule: { id: 'fw-abc', packets: 3 } });
    probed = 0;
    expect((await tracer(line({ routes: back }), fw(false, 'drop')).trace('a', D, {})).reason).toBe('firewall-policy');
    probed = 0;
    expect((await tracer(line({ routes: back }), fw(false, 'accept')).trace('a', D, {})).reason).toBe('no-reply');
  });

  it('gives up after eight namespaces (a routing loop)', async () => {
    const loop: World = {
      routes: { a: { '203.0.113.2': ok('va', '198.51.100.2', 'unicast', '198.51.100.1'), '203.0.113.2|198.51.100.1|va': ok('va', '198.51.100.2') }, r: { '203.0.113.2|198.51.100.1|ra': ok('ra', '198.51.100.1') } },
      links: { a: [up('va', { namespace: 'r', name: 'ra' })], r: [up('ra', { namespace: 'a', name: 'va' })] },
      addrs: { a: ['198.51.100.1'], r: ['198.51.100.2'] },
    };
    expect((await tracer(loop).trace('a', D, {})).reason).toBe('hop-limit');
  });
});
