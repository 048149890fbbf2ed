/** tc argv for every qdisc op, the parsers against tc 6.1 output recorded on this machine, and the classification of tc's refusals. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandsFor, parseClasses, parseFilters, parseQdiscs, spawnArgv } from '../../src/executor/argv.js';
import { classify } from '../../src/executor/classify.js';
import type { Op } from '../../src/executor/ops.js';

const fixture = (f: string): string => readFileSync(join(import.meta.dirname, '..', 'fixtures', f), 'utf8');
const argv = (op: Op): string[][] => commandsFor(op).map((c) => [...spawnArgv(c)].slice(1));

describe('qdisc argv', () => {
  const ns = 'a';
  const cases: Array<[string, Op, string[]]> = [
    ['qdisc.show', { kind: 'qdisc.show', ns, dev: 'ea' }, ['-n', 'a', '-s', '-j', 'qdisc', 'show', 'dev', 'ea']],
    ['qdisc.show in host (no -n)', { kind: 'qdisc.show', ns: 'host', dev: 'eth9' }, ['-s', '-j', 'qdisc', 'show', 'dev', 'eth9']],
    ['qdisc.classes', { kind: 'qdisc.classes', ns, dev: 'ea' }, ['-n', 'a', '-s', 'class', 'show', 'dev', 'ea']],
    ['qdisc.filters ingress', { kind: 'qdisc.filters', ns, dev: 'ea', parent: 'ingress' }, ['-n', 'a', '-j', 'filter', 'show', 'dev', 'ea', 'ingress']],
    ['qdisc.filters of 1:', { kind: 'qdisc.filters', ns, dev: 'ea', parent: '1:' }, ['-n', 'a', '-j', 'filter', 'show', 'dev', 'ea', 'parent', '1:']],
    ['tbf', { kind: 'qdisc.replaceRoot', ns, dev: 'ea', spec: { kind: 'tbf', rateBits: 1_000_000, burstBytes: 32768, latencyUs: 50_000 } },
      ['-n', 'a', 'qdisc', 'replace', 'dev', 'ea', 'root', 'tbf', 'rate', '1000000bit', 'burst', '32768b', 'latency', '50000us']],
    ['htb root (handle 1:, default in hex)', { kind: 'qdisc.replaceRoot', ns, dev: 'ea', spec: { kind: 'htb', defaultMinor: 0x20 } },
      ['-n', 'a', 'qdisc', 'replace', 'dev', 'ea', 'root', 'handle', '1:', 'htb', 'default', '20']],
    ['netem, every field', { kind: 'qdisc.replaceRoot', ns, dev: 'ea', spec: { kind: 'netem', delayUs: 100_000, jitterUs: 10_000, lossPct: 1.5, duplicatePct: 0, reorderPct: 25, corruptPct: 0.1, rateBits: 8_000_000 } },
      ['-n', 'a', 'qdisc', 'replace', 'dev', 'ea', 'root', 'netem', 'delay', '100000us', '10000us', 'loss', '1.5%', 'duplicate', '0%', 'reorder', '25%', 'corrupt', '0.1%', 'rate', '8000000bit']],
    ['netem, loss only', { kind: 'qdisc.replaceRoot', ns, dev: 'ea', spec: { kind: 'netem', lossPct: 2 } }, ['-n', 'a', 'qdisc', 'replace', 'dev', 'ea', 'root', 'netem', 'loss', '2%']],
    ['fq_codel with defaults', { kind: 'qdisc.replaceRoot', ns, dev: 'ea', spec: { kind: 'fq_codel' } }, ['-n', 'a', 'qdisc', 'replace', 'dev', 'ea', 'root', 'fq_codel']],
    ['delete root', { kind: 'qdisc.deleteRoot', ns, dev: 'ea' }, ['-n', 'a', 'qdisc', 'del', 'dev', 'ea', 'root']],
    ['htb class 1:10 (minor 0x10)', { kind: 'qdisc.addClass', ns, dev: 'ea', cls: { minor: 0x10, rateBits: 1_000_000, ceilBits: 2_000_000 } },
      ['-n', 'a', 'class', 'add', 'dev', 'ea', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '1000000bit', 'ceil', '2000000bit']],
    ['u32 IPv4 filter', { kind: 'qdisc.addFilter', ns, dev: 'ea', prio: 1, filter: { classMinor: 0x10, family: 4, source: '198.51.100.0/24', destination: '198.51.100.2/32', protocol: 'tcp', sport: 1000, dport: 5001 } },
      ['-n', 'a', 'filter', 'add', 'dev', 'ea', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'src', '198.51.100.0/24', 'match', 'ip', 'dst', '198.51.100.2/32',
        'match', 'ip', 'protocol', '6', '0xff', 'match', 'ip', 'sport', '1000', '0xffff', 'match', 'ip', 'dport', '5001', '0xffff', 'flowid', '1:10']],
    ['u32 IPv6 filter', { kind: 'qdisc.addFilter', ns, dev: 'ea', prio: 2, filter: { classMinor: 0x20, family: 6, destination: '2001:db8::/32', protocol: 'udp', dport: 53 } },
      ['-n', 'a', 'filter', 'add', 'dev', 'ea', 'parent', '1:', 'protocol', 'ipv6', 'prio', '2', 'u32', 'match', 'ip6', 'dst', '2001:db8::/32', 'match', 'ip6', 'protocol', '17', '0xff', 'match', 'ip6', 'dport', '53', '0xffff', 'flowid', '1:20']],
    ['u32 filter without matches (match-all)', { kind: 'qdisc.addFilter', ns, dev: 'ea', prio: 3, filter: { classMinor: 1, family: 4 } },
      ['-n', 'a', 'filter', 'add', 'dev', 'ea', 'parent', '1:', 'protocol', 'ip', 'prio', '3', 'u32', 'match', 'u32', '0', '0', 'flowid', '1:1']],
    ['ingress qdisc', { kind: 'qdisc.addIngress', ns, dev: 'ea' }, ['-n', 'a', 'qdisc', 'add', 'dev', 'ea', 'handle', 'ffff:', 'ingress']],
    ['delete ingress', { kind: 'qdisc.deleteIngress', ns, dev: 'ea' }, ['-n', 'a', 'qdisc', 'del', 'dev', 'ea', 'ingress']],
    ['ingress redirect to the ifb', { kind: 'qdisc.addRedirect', ns, dev: 'ea', to: 'ea-ifb' },
      ['-n', 'a', 'filter', 'add', 'dev', 'ea', 'parent', 'ffff:', 'protocol', 'all', 'prio', '1', 'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', 'ea-ifb']],
  ];
  it.each(cases)('%s', (_name, op, want) => {
    expect(argv(op)).toEqual([want]);
    expect(commandsFor(op)[0]!.tool).toBe('tc');
  });

  it('refuses values the service should never have let through (INTERNAL)', () => {
    const bad: Op[] = [
      { kind: 'qdisc.show', ns: 'a', dev: '-bad' },
      { kind: 'qdisc.replaceRoot', ns: 'a', dev: 'ea', spec: { kind: 'tbf', rateBits: 1.5, burstBytes: 1, latencyUs: 1 } },
      { kind: 'qdisc.replaceRoot', ns: 'a', dev: 'ea', spec: { kind: 'netem', jitterUs: 5 } },
      { kind: 'qdisc.replaceRoot', ns: 'a', dev: 'ea', spec: { kind: 'netem', lossPct: 101 } },
      { kind: 'qdisc.addClass', ns: 'a', dev: 'ea', cls: { minor: 0, rateBits: 8, ceilBits: 8 } },
      { kind: 'qdisc.addFilter', ns: 'a', dev: 'ea', prio: 1, filter: { classMinor: 1, family: 4, dport: 80 } },
      { kind: 'qdisc.addFilter', ns: 'a', dev: 'ea', prio: 1, filter: { classMinor: 1, family: 4, source: '2001:db8::/32' } },
      { kind: 'qdisc.filters', ns: 'a', dev: 'ea', parent: 'root; rm' },
    ];
    for (const op of bad) expect(() => commandsFor(op), JSON.stringify(op)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

describe('tc output parsers (iproute2 6.1, recorded)', () => {
  it('reads a tbf root with its options and counters', () => {
    const [q] = parseQdiscs(fixture('stdout/tc-qdisc-tbf.json'));
    expect(q).toMatchObject({ kind: 'tbf', root: true, parent: null, options: { rate: 125000, burst: 32768, lat: 50000 } });
    expect(q!.counters).toEqual({ bytes: 0, packets: 0, drops: 0, overlimits: 0, requeues: 0, backlog: 0, qlen: 0 });
  });

  it('reads an htb root and the ingress qdisc beside it', () => {
    expect(parseQdiscs(fixture('stdout/tc-qdisc-htb.json')).map((q) => [q.kind, q.handle, q.root, q.parent])).toEqual([
      ['htb', '1:', true, null], ['ingress', 'ffff:', false, 'ffff:fff1'],
    ]);
  });

  it('reads no qdisc at all for a link that was never up', () => {
    expect(parseQdiscs(fixture('stdout/tc-qdisc-default.json'))).toEqual([]);
  });

  it('reads htb classes from the text tc prints even with -j', () => {
    expect(parseClasses(fixture('stdout/tc-class-show.txt'))).toEqual([
      { kind: 'htb', id: '1:10', parent: null, rate: '1Mbit', ceil: '2Mbit', counters: { bytes: 0, packets: 0, drops: 0, overlimits: 0, requeues: 0, backlog: 0, qlen: 0 } },
      { kind: 'htb', id: '1:20', parent: null, rate: '10Mbit', ceil: '10Mbit', counters: { bytes: 0, packets: 0, drops: 0, overlimits: 0, requeues: 0, backlog: 0, qlen: 0 } },
    ]);
    const sent = 'class htb 1:10 parent 1:1 prio 0 rate 1Mbit ceil 2Mbit burst 1600b cburst 1600b \n Sent 4242 bytes 7 pkt (dropped 2, overlimits 5 requeues 1) \n backlog 300b 3p requeues 1\n';
    expect(parseClasses(sent)).toEqual([{ kind: 'htb', id: '1:10', parent: '1:1', rate: '1Mbit', ceil: '2Mbit', counters: { bytes: 4242, packets: 7, drops: 2, overlimits: 5, requeues: 1, backlog: 300, qlen: 3 } }]);
  });

  it('reads the filters, leaving out the u32 hash-table heads', () => {
    expect(parseFilters(fixture('stdout/tc-filter-show.json'))).toEqual([
      { kind: 'u32', protocol: 'ip', pref: 1, flowid: '1:10', redirectTo: null },
      { kind: 'u32', protocol: 'ipv6', pref: 2, flowid: '1:10', redirectTo: null },
    ]);
    expect(parseFilters(fixture('stdout/tc-filter-ingress.json'))).toEqual([{ kind: 'u32', protocol: 'all', pref: 1, flowid: null, redirectTo: 'nnq1-ifb' }]);
  });
});

describe('classifying tc refusals (stderr recorded from tc 6.1)', () => {
  const root: Op = { kind: 'qdisc.replaceRoot', ns: 'a', dev: 'nnp0', spec: { kind: 'htb', defaultMinor: 0x10 } };
  const cases: Array<[string, Op, string]> = [
    ['qdisc-kind-unknown.txt', root, 'QDISC_UNSUPPORTED'],
    ['qdisc-netem-unknown.txt', { ...root, spec: { kind: 'netem', delayUs: 10_000 } } as Op, 'QDISC_UNSUPPORTED'],
    ['qdisc-dev-missing.txt', root, 'LINK_NOT_FOUND'],
    ['qdisc-delete-default.txt', { kind: 'qdisc.deleteRoot', ns: 'a', dev: 'nnp0' }, 'QDISC_NOT_FOUND'],
    ['qdisc-ingress-missing.txt', { kind: 'qdisc.deleteIngress', ns: 'a', dev: 'nnp0' }, 'QDISC_NOT_FOUND'],
    ['qdisc-ingress-exists.txt', { kind: 'qdisc.addIngress', ns: 'a', dev: 'nnq1' }, 'QDISC_REFUSED'],
    ['qdisc-htb-replace.txt', root, 'QDISC_REFUSED'],
    ['qdisc-kind-mismatch.txt', { ...root, spec: { kind: 'tbf', rateBits: 1e6, burstBytes: 32768, latencyUs: 50_000 } } as Op, 'QDISC_REFUSED'],
    ['qdisc-parent-missing.txt', { kind: 'qdisc.addClass', ns: 'a', dev: 'nnp0', cls: { minor: 0x10, rateBits: 1e6, ceilBits: 1e6 } }, 'QDISC_REFUSED'],
    ['qdisc-class-exists.txt', { kind: 'qdisc.addClass', ns: 'a', dev: 'nnq1', cls: { minor: 0x10, rateBits: 1e6, ceilBits: 1e6 } }, 'QDISC_REFUSED'],
    ['tc-open-missing.txt', { kind: 'qdisc.show', ns: 'a', dev: 'nnp0' }, 'NAMESPACE_NOT_FOUND'],
  ];
  it.each(cases)('%s -> %s', (file, op, code) => {
    const e = classify(fixture(`stderr/${file}`), 2, op);
    expect(e.code).toBe(code);
    expect(e.detail).not.toContain('Error:');
  });

  it('names the step in the detail', () => {
    const e = classify(fixture('stderr/qdisc-class-exists.txt'), 2, { kind: 'qdisc.addClass', ns: 'a', dev: 'nnq1', cls: { minor: 0x10, rateBits: 1e6, ceilBits: 1e6 } });
    expect(e.detail).toContain('adding class 1:10 on link "nnq1" in namespace "a"');
  });
});
