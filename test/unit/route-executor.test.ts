/** Route ops: argv (a table), the reader of `ip -j route show`, and classify, against output recorded on this machine. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Command, commandsFor, parseRoutes } from '../../src/executor/argv.js';
import { classify } from '../../src/executor/classify.js';
import { FIB_TABLE_MISSING } from '../../src/executor/iproute2-executor.js';
import type { Op, RouteSpec } from '../../src/executor/ops.js';

const fixture = (name: string): string => readFileSync(join(import.meta.dirname, '..', 'fixtures', name), 'utf8');
const ip = (netns: string | undefined, line: string): Command => ({ tool: 'ip', ...(netns ? { netns } : {}), args: line.split(' ') });
const base: RouteSpec = { family: 4, type: 'unicast', dst: '198.51.100.0/24', table: 254 };

const table: ReadonlyArray<readonly [Op, readonly Command[]]> = [
  [{ kind: 'route.list', ns: 'a', family: 4, table: 254 }, [ip('a', '-j -4 route show table 254')]],
  [{ kind: 'route.list', ns: 'host', family: 6, table: 'all' }, [ip(undefined, '-j -6 route show table all')]],
  [{ kind: 'route.add', ns: 'a', spec: { ...base, via: '203.0.113.254' } }, [ip('a', 'route add 198.51.100.0/24 via 203.0.113.254 table 254')]],
  [
    { kind: 'route.add', ns: 'a', spec: { ...base, dst: '0.0.0.0/0', via: '203.0.113.254', dev: 'va', src: '203.0.113.1', metric: 10, scope: 'global', mtu: 1400 }, replace: true },
    [ip('a', 'route replace 0.0.0.0/0 via 203.0.113.254 dev va src 203.0.113.1 metric 10 table 254 scope global mtu 1400')],
  ],
  [{ kind: 'route.add', ns: 'a', spec: { ...base, type: 'blackhole', table: 100 } }, [ip('a', 'route add blackhole 198.51.100.0/24 table 100')]],
  [{ kind: 'route.add', ns: 'a', spec: { family: 6, type: 'unicast', dst: '::/0', table: 254, via: '2001:db8::1' } }, [ip('a', 'route add ::/0 via 2001:db8::1 table 254')]],
  [
    { kind: 'route.add', ns: 'a', spec: { ...base, nexthops: [{ via: '203.0.113.1', weight: 2 }, { via: '203.0.113.2', dev: 'va' }] } },
    [ip('a', 'route add 198.51.100.0/24 table 254 nexthop via 203.0.113.1 weight 2 nexthop via 203.0.113.2 dev va')],
  ],
  [{ kind: 'route.delete', ns: 'a', key: { family: 4, table: 254, dst: '198.51.100.0/24', metric: 0, tos: null } }, [ip('a', 'route del 198.51.100.0/24 table 254 metric 0')]],
  [{ kind: 'route.delete', ns: 'a', key: { family: 4, table: 100, dst: '10.5.0.0/16', metric: 5, tos: '0x10' } }, [ip('a', 'route del 10.5.0.0/16 tos 0x10 table 100 metric 5')]],
  [{ kind: 'route.delete', ns: 'a', key: { family: 6, table: 254, dst: 'fe80::/64', metric: 256, tos: null, dev: 'va' } }, [ip('a', 'route del fe80::/64 table 254 metric 256 dev va')]],
];

describe('route commands', () => {
  it.each(table)('maps %j to its commands', (op, commands) => {
    expect(commandsFor(op)).toEqual(commands);
  });

  it.each([
    ['a gateway of the other family', { ...base, via: '2001:db8::1' }],
    ['a destination that is not a CIDR', { ...base, dst: 'default' }],
    ['a destination of the other family', { ...base, dst: '::/0' }],
    ['a weight out of range', { ...base, nexthops: [{ via: '203.0.113.1', weight: 300 }] }],
    ['a table of 0', { ...base, table: 0 }],
    ['a type it does not know', { ...base, type: 'nat' as 'unicast' }],
  ])('refuses %s (INTERNAL)', (_what, spec) => {
    expect(() => commandsFor({ kind: 'route.add', ns: 'a', spec })).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

describe('parseRoutes', () => {
  it('reads the recorded main table: default, metric, blackhole, multipath, tos, host and connected routes', () => {
    const routes = parseRoutes(fixture('stdout/routes-v4-main.json'), 4, 254);
    const common = { family: 4, table: 254, tos: null, src: null, mtu: null, nexthops: null, flags: [], protocol: 'boot', scope: 'global', metric: 0, type: 'unicast' };
    expect(routes).toEqual([
      { ...common, dst: '0.0.0.0/0', via: '203.0.113.254', dev: 'nnr0', src: '203.0.113.129', mtu: 1400 },
      { ...common, dst: '10.1.0.0/16', via: '203.0.113.254', dev: 'nnr0', metric: 10 },
      { ...common, dst: '10.2.0.0/16', type: 'blackhole', via: null, dev: null },
      { ...common, dst: '10.4.0.0/16', via: null, dev: null, nexthops: [{ via: '203.0.113.253', dev: 'nnr0', weight: 2 }, { via: '203.0.113.252', dev: 'nnr0', weight: 1 }] },
      { ...common, dst: '10.5.0.0/16', tos: '0x10', via: '203.0.113.254', dev: 'nnr0' },
      { ...common, dst: '10.6.0.1/32', via: null, dev: 'nnr0', scope: 'link' },
      { ...common, dst: '203.0.113.128/25', via: null, dev: 'nnr0', scope: 'link', protocol: 'kernel', src: '203.0.113.129' },
    ]);
  });

  it('reads table ids of every table (names and numbers) from `table all`', () => {
    const routes = parseRoutes(fixture('stdout/routes-v4-all.json'), 4, 'all');
    expect(routes.find((r) => r.dst === '10.3.0.0/16')).toMatchObject({ table: 100, type: 'unreachable' });
    expect(routes.find((r) => r.dst === '10.1.0.0/16')).toMatchObject({ table: 254 });
    expect(routes.find((r) => r.dst === '203.0.113.129/32')).toMatchObject({ table: 255, type: 'local', scope: 'host' });
  });

  it('reads IPv6 routes with their metrics', () => {
    const routes = parseRoutes(fixture('stdout/routes-v6-main.json'), 6, 254);
    expect(routes.find((r) => r.dst === '2001:db8:5::/48')).toMatchObject({ family: 6, via: '2001:db8:1::fe', dev: 'nnr0', metric: 1024 });
    expect(routes.filter((r) => r.dst === 'fe80::/64').map((r) => r.dev).sort()).toEqual(['nnr0', 'nnr1', 'nnv0']);
  });
});

describe('classify route errors', () => {
  const add: Op = { kind: 'route.add', ns: 'a', spec: { ...base, via: '203.0.113.254' } };
  const del: Op = { kind: 'route.delete', ns: 'a', key: { family: 4, table: 254, dst: '10.77.0.0/16', metric: 0, tos: null } };
  it.each([
    ['route-exists', add, 'ROUTE_EXISTS'],
    ['batch-route-exists', add, 'ROUTE_EXISTS'],
    ['route-gateway-invalid', add, 'NEXTHOP_UNREACHABLE'],
    ['route-gateway-unreachable-v6', add, 'NEXTHOP_UNREACHABLE'],
    ['route-nexthop-down', add, 'NEXTHOP_UNREACHABLE'],
    ['route-del-missing', del, 'ROUTE_NOT_FOUND'],
    ['route-dev-missing', add, 'LINK_NOT_FOUND'],
    ['route-prefsrc-invalid', add, 'ROUTE_SOURCE_INVALID'],
    ['route-host-bits', add, 'REQUEST_INVALID'],
    ['netns-open-missing', add, 'NAMESPACE_NOT_FOUND'],
  ] as const)('classifies %s for %s as %s', (name, op, code) => {
    const err = classify(fixture(`stderr/${name}.txt`), null, op);
    expect(err.code).toBe(code);
    expect(err.detail).not.toMatch(/RTNETLINK|Error:/);
  });

  it('says "not reachable on any link" for an unreachable gateway', () => {
    expect(classify(fixture('stderr/route-gateway-invalid.txt'), null, add).detail).toMatch(/not reachable on any link/);
  });

  it('tells a table the kernel has no route of (an empty list, not an error)', () => {
    expect(FIB_TABLE_MISSING.test(fixture('stderr/route-table-missing.txt'))).toBe(true);
  });
});
