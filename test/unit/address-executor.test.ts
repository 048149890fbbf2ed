/** Address ops: argv (a table), the reader of `ip -j address show`, classify, and the IP parsing they rest on. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Command, commandsFor, parseAddresses } from '../../src/executor/argv.js';
import { classify } from '../../src/executor/classify.js';
import type { Op } from '../../src/executor/ops.js';
import { formatIp, overlaps, parseIp, parsePrefix } from '../../src/ip-address.js';

const fixture = (name: string): string => readFileSync(join(import.meta.dirname, '..', 'fixtures', name), 'utf8');
const ip = (netns: string | undefined, line: string): Command => ({ tool: 'ip', ...(netns ? { netns } : {}), args: line.split(' ') });
const v4 = { link: 'va', family: 4, local: '203.0.113.1', prefixLength: 24 } as const;

const table: ReadonlyArray<readonly [Op, readonly Command[]]> = [
  [{ kind: 'addr.list', ns: 'a' }, [ip('a', '-j address show')]],
  [{ kind: 'addr.list', ns: 'host', link: 'nnh0' }, [ip(undefined, '-j address show dev nnh0')]],
  [{ kind: 'addr.add', ns: 'a', spec: v4 }, [ip('a', 'address add 203.0.113.1/24 dev va')]],
  [
    { kind: 'addr.add', ns: 'a', spec: { ...v4, broadcast: '203.0.113.255', scope: 'link', label: 'va:1' } },
    [ip('a', 'address add 203.0.113.1/24 dev va broadcast 203.0.113.255 scope link label va:1')],
  ],
  [{ kind: 'addr.add', ns: 'a', spec: { ...v4, prefixLength: 32, peer: '203.0.113.2' } }, [ip('a', 'address add 203.0.113.1 peer 203.0.113.2/32 dev va')]],
  [{ kind: 'addr.add', ns: 'a', spec: { link: 'va', family: 6, local: '2001:db8::1', prefixLength: 64, nodad: true } }, [ip('a', 'address add 2001:db8::1/64 dev va nodad')]],
  [{ kind: 'addr.delete', ns: 'a', link: 'va', local: '203.0.113.1', prefixLength: 24 }, [ip('a', 'address del 203.0.113.1/24 dev va')]],
  [{ kind: 'addr.delete', ns: 'a', link: 'va', local: '203.0.113.1', prefixLength: 32, peer: '203.0.113.2' }, [ip('a', 'address del 203.0.113.1 peer 203.0.113.2/32 dev va')]],
];

describe('address commands', () => {
  it.each(table)('maps %j to its commands', (op, commands) => {
    expect(commandsFor(op)).toEqual(commands);
  });

  it.each([
    ['a label that ip would refuse (and exit the batch)', { ...v4, label: 'eth0:1' }],
    ['a label that is too long', { ...v4, label: 'va:0123456789abc' }],
    ['an address that is not one', { ...v4, local: '-n' }],
    ['a prefix out of range', { ...v4, prefixLength: 33 }],
    ['a bad link name', { ...v4, link: '-x' }],
  ])('refuses %s (INTERNAL)', (_what, spec) => {
    expect(() => commandsFor({ kind: 'addr.add', ns: 'a', spec: spec as typeof v4 })).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

describe('parseAddresses', () => {
  it('reads the recorded `ip -j address show`', () => {
    const all = parseAddresses(fixture('stdout/addresses.json'));
    const nnp0 = all.filter((a) => a.link === 'nnp0');
    expect(nnp0).toEqual([
      { ifindex: nnp0[0]?.ifindex, link: 'nnp0', family: 4, local: '198.51.100.1', prefixLength: 24, peer: null, broadcast: null, scope: 'link', label: 'nnp0', flags: [], validLifetime: null, preferredLifetime: null },
      { ifindex: nnp0[0]?.ifindex, link: 'nnp0', family: 4, local: '203.0.113.1', prefixLength: 24, peer: null, broadcast: '203.0.113.255', scope: 'global', label: 'nnp0', flags: [], validLifetime: null, preferredLifetime: null },
      { ifindex: nnp0[0]?.ifindex, link: 'nnp0', family: 4, local: '203.0.113.5', prefixLength: 32, peer: '203.0.113.6', broadcast: null, scope: 'global', label: 'nnp0:1', flags: [], validLifetime: null, preferredLifetime: null },
      { ifindex: nnp0[0]?.ifindex, link: 'nnp0', family: 6, local: '2001:db8::2', prefixLength: 64, peer: null, broadcast: null, scope: 'global', label: null, flags: ['tentative'], validLifetime: null, preferredLifetime: null },
      { ifindex: nnp0[0]?.ifindex, link: 'nnp0', family: 6, local: '2001:db8::1', prefixLength: 64, peer: null, broadcast: null, scope: 'global', label: null, flags: ['nodad'], validLifetime: null, preferredLifetime: null },
    ]);
    expect(all.find((a) => a.link === 'nnv0')).toMatchObject({ family: 6, scope: 'link', flags: ['tentative'] });
  });

  it('reads finite lifetimes and an empty answer', () => {
    const out = JSON.stringify([{ ifindex: 3, ifname: 'x', addr_info: [{ family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link', dynamic: true, valid_life_time: 86400, preferred_life_time: 14400 }] }]);
    expect(parseAddresses(out)[0]).toMatchObject({ flags: ['dynamic'], validLifetime: 86400, preferredLifetime: 14400 });
    expect(parseAddresses('')).toEqual([]);
  });
});

describe('classify address errors', () => {
  const stderr = (name: string): string => fixture(`stderr/${name}.txt`);
  const add: Op = { kind: 'addr.add', ns: 'a', spec: v4 };
  const del: Op = { kind: 'addr.delete', ns: 'a', link: 'va', local: '203.0.113.9', prefixLength: 24 };
  it.each([
    ['addr-exists-v4', add, 'ADDRESS_EXISTS'],
    ['addr-exists-v6', add, 'ADDRESS_EXISTS'],
    ['batch-addr-exists', add, 'ADDRESS_EXISTS'],
    ['addr-link-missing', add, 'LINK_NOT_FOUND'],
    ['addr-show-missing', { kind: 'addr.list', ns: 'a', link: 'nnx-nosuch' }, 'LINK_NOT_FOUND'],
    ['addr-del-missing-v4', del, 'ADDRESS_NOT_FOUND'],
    ['addr-del-missing-v6', del, 'ADDRESS_NOT_FOUND'],
    ['addr-scope-mismatch', add, 'ADDRESS_SCOPE_INVALID'],
    ['addr-multicast-v6', add, 'REQUEST_INVALID'],
    ['netns-open-missing', add, 'NAMESPACE_NOT_FOUND'],
  ] as const)('classifies %s for %s as %s', (name, op, code) => {
    const err = classify(stderr(name), null, op);
    expect(err.code).toBe(code);
    expect(err.detail).not.toContain('Error:');
  });
});

describe('ip-address', () => {
  it.each([
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::', 'fe80::'],
    ['2001:0:0:1:0:0:0:0', '2001:0:0:1::'],
    ['1:0:1:0:1:0:1:0', '1:0:1:0:1:0:1:0'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
    ['203.0.113.7', '203.0.113.7'],
  ])('parses %s and writes it as %s', (text, canonical) => {
    const a = parseIp(text);
    expect(a && formatIp(a)).toBe(canonical);
  });

  it('refuses what is not an address, and prefixes with bad lengths', () => {
    for (const s of ['1.2.3', '01.2.3.4', '1.2.3.4.5', 'fe80::1%eth0', '::g', 'x']) expect(parseIp(s)).toBeUndefined();
    expect(parsePrefix('1.2.3.4')).toMatch(/prefix length/);
    expect(parsePrefix('1.2.3.4/x')).toMatch(/not a number/);
    expect(parsePrefix('::1/129')).toMatch(/0-128/);
  });

  it('tells overlapping prefixes', () => {
    const p = (s: string) => parsePrefix(s) as Exclude<ReturnType<typeof parsePrefix>, string>;
    expect(overlaps(p('192.0.2.0/24'), p('192.0.2.77/28'))).toBe(true);
    expect(overlaps(p('10.0.0.0/8'), p('10.200.0.0/16'))).toBe(true);
    expect(overlaps(p('198.18.0.0/24'), p('198.18.1.0/24'))).toBe(false);
    expect(overlaps(p('2001:db8::/32'), p('2001:db8:1::/48'))).toBe(true);
    expect(overlaps(p('0.0.0.0/0'), p('2001:db8::/32'))).toBe(false);
  });
});
