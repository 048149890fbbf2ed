/** Neighbour ops: argv (a table), the reader of `ip -j neigh show`, and classify, against output recorded on this machine. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Command, commandsFor, parseNeighbors } from '../../src/executor/argv.js';
import { classify } from '../../src/executor/classify.js';
import type { NeighAddSpec, Op } from '../../src/executor/ops.js';

const fixture = (name: string): string => readFileSync(join(import.meta.dirname, '..', 'fixtures', name), 'utf8');
const ip = (netns: string | undefined, line: string): Command => ({ tool: 'ip', ...(netns ? { netns } : {}), args: line.split(' ') });
const v4: NeighAddSpec = { link: 'va', family: 4, address: '203.0.113.9', mac: '02:00:00:00:00:09' };

const table: ReadonlyArray<readonly [Op, readonly Command[]]> = [
  [{ kind: 'neigh.list', ns: 'a' }, [ip('a', '-j neigh show nud all')]],
  [{ kind: 'neigh.list', ns: 'host', link: 'va' }, [ip(undefined, '-j neigh show nud all dev va')]],
  [{ kind: 'neigh.add', ns: 'a', spec: v4 }, [ip('a', 'neigh add 203.0.113.9 lladdr 02:00:00:00:00:09 nud permanent dev va')]],
  [{ kind: 'neigh.add', ns: 'a', spec: { ...v4, mac: '02:AB:00:00:00:09' }, replace: true }, [ip('a', 'neigh replace 203.0.113.9 lladdr 02:ab:00:00:00:09 nud permanent dev va')]],
  [
    { kind: 'neigh.add', ns: 'host', spec: { link: 'nnh0', family: 6, address: '2001:db8::9', mac: '02:00:00:00:00:09', router: true } },
    [ip(undefined, 'neigh add 2001:db8::9 lladdr 02:00:00:00:00:09 nud permanent dev nnh0 router')],
  ],
  [{ kind: 'neigh.delete', ns: 'a', link: 'va', address: '2001:db8::9' }, [ip('a', 'neigh del 2001:db8::9 dev va')]],
];

describe('neighbour commands', () => {
  it.each(table)('maps %j to its commands', (op, commands) => {
    expect(commandsFor(op)).toEqual(commands);
  });

  it.each([
    ['an address of the other family', { ...v4, address: '2001:db8::9' }],
    ['an address that is not one', { ...v4, address: '203.0.113.9/24' }],
    ['a MAC that is not one', { ...v4, mac: '02:00:00:00:00' }],
    ['a link name that could be an option', { ...v4, link: '-n' }],
    ['the router flag on IPv4', { ...v4, router: true }],
  ])('refuses %s (INTERNAL)', (_what, spec) => {
    expect(() => commandsFor({ kind: 'neigh.add', ns: 'a', spec })).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });

  it('refuses a delete of an address that is not one (INTERNAL)', () => {
    expect(() => commandsFor({ kind: 'neigh.delete', ns: 'a', link: 'va', address: 'lladdr' })).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

describe('parseNeighbors', () => {
  it('reads the recorded entries: learnt, permanent, failed (no lladdr), the kernel\'s noarp ones, an IPv6 router', () => {
    const all = parseNeighbors(fixture('stdout/neighbors.json'));
    const by = (address: string) => all.find((n) => n.address === address);
    expect(by('203.0.113.66')).toEqual({ link: 'nnn0', family: 4, address: '203.0.113.66', mac: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/), states: ['reachable'], flags: [] });
    expect(by('203.0.113.70')).toEqual({ link: 'nnn0', family: 4, address: '203.0.113.70', mac: '02:00:00:00:00:70', states: ['permanent'], flags: [] });
    expect(by('203.0.113.80')).toEqual({ link: 'nnn0', family: 4, address: '203.0.113.80', mac: null, states: ['failed'], flags: [] });
    expect(by('0.0.0.0')).toMatchObject({ link: 'lo', states: ['noarp'] });
    expect(by('ff02::2')).toMatchObject({ link: 'nnn0', family: 6, mac: '33:33:00:00:00:02', states: ['noarp'] });
    expect(by('2001:db8:7::2')).toMatchObject({ family: 6, states: ['reachable'] });
    expect(by('2001:db8:7::fe')).toEqual({ link: 'nnn0', family: 6, address: '2001:db8:7::fe', mac: '02:00:00:00:00:fe', states: ['permanent'], flags: ['router'] });
    expect(all).toHaveLength(10);
  });

  it('takes the link from the request when ip leaves `dev` out (`show dev LINK`)', () => {
    const one = parseNeighbors(fixture('stdout/neighbors-dev.json'), 'nnn0');
    expect(one.map((n) => n.link)).toEqual(Array(9).fill('nnn0'));
    expect(one.map((n) => n.address)).toEqual(parseNeighbors(fixture('stdout/neighbors.json')).filter((n) => n.link === 'nnn0').map((n) => n.address));
  });

  it('reads an empty answer as no entries and skips entries without an address or a link', () => {
    expect(parseNeighbors('')).toEqual([]);
    expect(parseNeighbors('[]')).toEqual([]);
    expect(parseNeighbors('[{"dev":"va","state":["STALE"]},{"dst":"203.0.113.1","state":["STALE"]}]')).toEqual([]);
  });
});

describe('classify neighbour errors', () => {
  const add: Op = { kind: 'neigh.add', ns: 'a', spec: v4 };
  const replace: Op = { kind: 'neigh.add', ns: 'a', spec: v4, replace: true };
  const del: Op = { kind: 'neigh.delete', ns: 'a', link: 'va', address: '203.0.113.99' };
  const list: Op = { kind: 'neigh.list', ns: 'a', link: 'nnx-nosuch' };
  it.each([
    ['neigh-exists', add, 'NEIGHBOR_EXISTS'],
    ['neigh-exists-learnt', add, 'NEIGHBOR_EXISTS'],
    ['batch-neigh-exists', add, 'NEIGHBOR_EXISTS'],
    ['neigh-del-missing', del, 'NEIGHBOR_NOT_FOUND'],
    ['neigh-del-missing-v6', del, 'NEIGHBOR_NOT_FOUND'],
    ['neigh-dev-missing', add, 'LINK_NOT_FOUND'],
    ['neigh-dev-missing', del, 'LINK_NOT_FOUND'],
    ['neigh-show-dev-missing', list, 'LINK_NOT_FOUND'],
    ['neigh-lladdr-short', add, 'NEIGHBOR_MAC_INVALID'],
    ['neigh-ipv6-disabled', replace, 'NEIGHBOR_LINK_UNSUPPORTED'],
    ['netns-open-missing', add, 'NAMESPACE_NOT_FOUND'],
  ] as const)('classifies %s for %s as %s', (name, op, code) => {
    const err = classify(fixture(`stderr/${name}.txt`), 2, op);
    expect(err.code).toBe(code);
    expect(err.detail).not.toMatch(/RTNETLINK|Error:/);
  });

  it('names the address and the link in the detail', () => {
    expect(classify(fixture('stderr/neigh-exists.txt'), 2, add).detail).toMatch(/203\.0\.113\.9 on link "va"/);
    expect(classify(fixture('stderr/neigh-del-missing.txt'), 2, del).detail).toMatch(/no neighbour entry for 203\.0\.113\.99 on link "va"/);
  });

  it('does not read "File exists" on a replace, nor "No such file" on an add, as those codes', () => {
    expect(classify(fixture('stderr/neigh-exists.txt'), 2, replace).code).toBe('INTERNAL');
    expect(classify(fixture('stderr/neigh-del-missing.txt'), 2, add).code).toBe('INTERNAL');
  });
});
