/** Policy-rule ops: argv, the reader of `ip -j rule show`, and classify, against output recorded on this machine. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Command, commandsFor, parseRules } from '../../src/executor/argv.js';
import { classify } from '../../src/executor/classify.js';
import { type KernelRule, type Op, type RuleSpec, ruleKeyText, ruleOfSpec } from '../../src/executor/ops.js';

const fixture = (name: string): string => readFileSync(join(import.meta.dirname, '..', 'fixtures', name), 'utf8');
const ip = (netns: string | undefined, line: string): Command => ({ tool: 'ip', ...(netns ? { netns } : {}), args: line.split(' ') });
const base: RuleSpec = { family: 4, priority: 1000, action: 'lookup', table: 100 };

describe('rule commands', () => {
  it.each([
    [{ kind: 'rule.list', ns: 'a', family: 4 }, [ip('a', '-j -4 rule show')]],
    [{ kind: 'rule.list', ns: 'host', family: 6 }, [ip(undefined, '-j -6 rule show')]],
    [{ kind: 'rule.add', ns: 'a', spec: { ...base, from: '203.0.113.5/32' } }, [ip('a', 'rule add pref 1000 from 203.0.113.5/32 table 100')]],
    [
      {
        kind: 'rule.add', ns: 'a',
        spec: { ...base, not: true, from: '198.18.0.0/16', to: '198.51.100.0/24', iif: 'va', oif: 'lo', fwmark: 16, fwmask: 255, ipproto: 'tcp', sport: { start: 1000, end: 2000 }, dport: { start: 443, end: 443 }, suppressPrefixLength: 0 },
      },
      [ip('a', 'rule add not pref 1000 from 198.18.0.0/16 to 198.51.100.0/24 fwmark 0x10/0xff iif va oif lo ipproto tcp sport 1000-2000 dport 443 table 100 suppress_prefixlength 0')],
    ],
    [{ kind: 'rule.add', ns: 'a', spec: { family: 4, priority: 5, action: 'goto', goto: 9 } }, [ip('a', 'rule add pref 5 goto 9')]],
    [{ kind: 'rule.add', ns: 'a', spec: { family: 4, priority: 5, action: 'blackhole', fwmark: 1 } }, [ip('a', 'rule add pref 5 fwmark 0x1 blackhole')]],
    // IPv6: `-6` first (a batch line cannot set the family, so the executor spawns it).
    [{ kind: 'rule.add', ns: 'a', spec: { family: 6, priority: 7, action: 'prohibit', to: '2001:db8:1::/48' } }, [ip('a', '-6 rule add pref 7 to 2001:db8:1::/48 prohibit')]],
  ] as Array<[Op, Command[]]>)('maps %j to its commands', (op, commands) => {
    expect(commandsFor(op)).toEqual(commands);
  });

  it('deletes a listed rule naming every attribute it has, those netnsd cannot set included', () => {
    const rules = parseRules(fixture('stdout/rules-v4.json'), 4);
    const line = (p: number) => commandsFor({ kind: 'rule.delete', ns: 'a', rule: rules.find((r) => r.priority === p)! })[0]!.args.join(' ');
    expect(line(1600)).toBe('rule del pref 1600 tos 0x10 uidrange 100-200 realms 1/2 protocol static table 5');
    expect(line(1800)).toBe('rule del pref 1800 l3mdev');
    expect(line(1400)).toBe('rule del pref 1400 nop');
    expect(line(0)).toBe('rule del pref 0 table 255');
  });

  it.each([
    ['an action netnsd does not know', { ...ruleOfSpec(base), action: 'to_tbl' }],
    ['a word that is not one', { ...ruleOfSpec(base), protocol: 'a b' }],
    ['a prefix of the other family', { ...ruleOfSpec(base), from: '2001:db8::/32' }],
    ['a port out of range', { ...ruleOfSpec(base), dport: { start: 1, end: 70000 } }],
  ] as Array<[string, KernelRule]>)('refuses %s (INTERNAL: the service never builds it)', (_what, rule) => {
    expect(() => commandsFor({ kind: 'rule.delete', ns: 'a', rule })).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

describe('parseRules', () => {
  const v4 = parseRules(fixture('stdout/rules-v4.json'), 4);
  const at = (p: number) => v4.filter((r) => r.priority === p);

  it('reads the built-in rules and two rules sharing a priority, in the kernel\'s order', () => {
    expect(v4.map((r) => r.priority)).toEqual([0, 1000, 1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800, 32766, 32767]);
    expect(v4[0]).toMatchObject({ action: 'lookup', table: 255, from: null, to: null });
    expect(at(1000).map((r) => r.from)).toEqual(['203.0.113.5/32', '203.0.113.6/32']);
    expect(at(32767)[0]?.table).toBe(253);
  });

  it('reads every selector, port ranges, hex marks and flags', () => {
    expect(at(1100)[0]).toMatchObject({
      not: true, from: '198.18.0.0/16', to: '198.51.100.0/24', iif: 'va', oif: 'lo', fwmark: 16, fwmask: 255, ipproto: 'tcp',
      sport: { start: 1000, end: 2000 }, dport: { start: 443, end: 443 }, table: 254, suppressPrefixLength: 0, flags: [],
    });
    expect(at(1200)[0]).toMatchObject({ action: 'unreachable', table: null, to: '198.18.1.0/24' });
    expect(at(1300)[0]).toMatchObject({ action: 'goto', goto: 1400, flags: [] });
    expect(at(1400)[0]).toMatchObject({ action: 'nop' });
    expect(at(1500)[0]).toMatchObject({ action: 'blackhole', fwmark: 1, fwmask: null });
    expect(at(1600)[0]).toMatchObject({ tos: '0x10', uidrange: { start: 100, end: 200 }, realms: '1/2', protocol: 'static', table: 5 });
    expect(at(1700)[0]).toMatchObject({ iif: 'nosuch', flags: ['iif_detached'] });
    expect(at(1800)[0]).toMatchObject({ l3mdev: true, action: 'lookup', table: null });
  });

  it('reads IPv6 rules', () => {
    expect(parseRules(fixture('stdout/rules-v6.json'), 6).map((r) => [r.priority, r.from, r.to, r.action, r.table])).toEqual([
      [0, null, null, 'lookup', 255], [1000, '2001:db8::/32', null, 'lookup', 100], [1100, null, '2001:db8:1::/48', 'prohibit', null], [32766, null, null, 'lookup', 254],
    ]);
  });

  it('gives a rule the same key text as the spec that made it', () => {
    expect(ruleKeyText(at(1000)[0]!)).toBe(ruleKeyText(ruleOfSpec({ ...base, from: '203.0.113.5/32' })));
  });

  it('reads nothing from empty output and refuses what is not JSON', () => {
    expect(parseRules('', 4)).toEqual([]);
    expect(() => parseRules('garbage', 4)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

describe('rule failures', () => {
  const add: Op = { kind: 'rule.add', ns: 'a', spec: base };
  const del: Op = { kind: 'rule.delete', ns: 'a', rule: ruleOfSpec(base) };
  it.each([
    ['rule-exists', add, 'RULE_EXISTS'],
    ['rule-del-missing', del, 'RULE_NOT_FOUND'],
    ['rule-goto-backward', add, 'REQUEST_INVALID'],
    ['netns-open-missing', add, 'NAMESPACE_NOT_FOUND'],
  ] as const)('maps %s to %s', (name, op, code) => {
    expect(classify(fixture(`stderr/${name}.txt`), 2, op).code).toBe(code);
  });

  it('does not read "No such file or directory" on an add as a missing rule', () => {
    expect(classify(fixture('stderr/rule-del-missing.txt'), 2, add).code).toBe('INTERNAL');
  });
});
