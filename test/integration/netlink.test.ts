/**
 * src/netlink against the real kernel (root): parity of every dump with the ip-based parsers of
 * argv.ts on the same namespace, events as changes are made with `ip`, and overflow.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAddresses, parseLinks, parseRoutes, parseRules } from '../../src/executor/argv.js';
import { FIB_TABLE_MISSING } from '../../src/executor/iproute2-executor.js';
import type { KernelAddress, KernelRoute, KernelRule } from '../../src/executor/ops.js';
import * as M from '../../src/netlink/messages.js';
import { NetlinkNamespace, namespacePath } from '../../src/netlink/netlink.js';
import { dumpMessages, type NetlinkEvent } from '../../src/netlink/parse.js';
import { linkSetRequest } from '../../src/netlink/changes.js';
import { openDb } from '../../src/store/db.js';
import { openLogStore } from '../../src/store/log-sink.js';
import { ip, nsName, until } from '../helpers/kernel.js';
import { buildTopology } from '../helpers/netlink-topology.js';

const open = new Set<NetlinkNamespace>();
function netlink(ns: string): NetlinkNamespace {
  const nl = new NetlinkNamespace(namespacePath(ns));
  open.add(nl);
  return nl;
}
afterEach(() => {
  for (const nl of open) nl.close();
  open.clear();
});

/** Lifetimes count down: a dump and an `ip` a second apart may differ by one. */
function sameSecond(nl: KernelAddress[], ipList: KernelAddress[]): KernelAddress[] {
  return nl.map((a, i) => {
    const b = ipList[i];
    const near = (x: number | null, y: number | null | undefined): number | null => (x !== null && typeof y === 'number' && Math.abs(x - y) <= 1 ? y : x);
    return b ? { ...a, validLifetime: near(a.validLifetime, b.validLifetime), preferredLifetime: near(a.preferredLifetime, b.preferredLifetime) } : a;
  });
}

/** What the ip-based route.list answers: parseRoutes, or no routes for a table that does not exist. */
function ipRoutes(ns: string, family: 4 | 6, table: number | 'all'): KernelRoute[] {
  try {
    const out = execFileSync('/usr/sbin/ip', ['-n', ns, '-j', `-${family}`, 'route', 'show', 'table', String(table)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return parseRoutes(out, family, table);
  } catch (e) {
    if (FIB_TABLE_MISSING.test(String((e as { stderr?: unknown }).stderr))) return [];
    throw e;
  }
}

describe('dumps equal the ip-based parsers', () => {
  it('links, addresses, routes (v4/v6, all tables and single ones) and rules of a namespace with one of everything', () => {
    const ns = nsName('nl');
    buildTopology(ns, nsName('peer'), ip);
    const nl = netlink(ns);
    const j = (...args: string[]): string => ip('-n', ns, '-j', ...args);

    expect(nl.dumpLinks()).toEqual(parseLinks(j('-d', 'link', 'show')));
    const ipAddrs = parseAddresses(j('address', 'show'));
    expect(sameSecond(nl.dumpAddresses(), ipAddrs)).toEqual(ipAddrs);
    expect(sameSecond(nl.dumpAddresses(6), ipAddrs.filter((a) => a.family === 6))).toEqual(ipAddrs.filter((a) => a.family === 6));
    for (const family of [4, 6] as const) {
      for (const table of ['all', 254, 255, 100, 1000] as const) {
        expect(nl.dumpRoutes(family, table), `${family} ${table}`).toEqual(ipRoutes(ns, family, table));
      }
    }
    // The one difference: a fwmark of 0 (with a mask). ip prints it as "0", which parseRules
    // reads as no mark; the kernel's value is 0, which is what a delete has to name.
    const zeroMark = (r: KernelRule): KernelRule => (r.fwmark === 0 ? { ...r, fwmark: null } : r);
    const rules4 = nl.dumpRules(4);
    expect(rules4.find((r) => r.priority === 2200)?.fwmark).toBe(0);
    expect(rules4.map(zeroMark)).toEqual(parseRules(j('-4', 'rule', 'show'), 4));
    expect(nl.dumpRules(6)).toEqual(parseRules(j('-6', 'rule', 'show'), 6));

    const neigh = nl.dumpNeighbors(4);
    expect(neigh.find((n) => n.address === '198.51.100.9')).toMatchObject({ link: 'd0', mac: '02:00:00:00:00:09', state: ['PERMANENT'] });
    expect(nl.dumpNeighbors(6).find((n) => n.address === '2001:db8::9')).toMatchObject({ router: true });
  });

  it('gives the nsids a namespace has for others as `ip -n NS -j netns list` does', () => {
    const [a, b, c] = [nsName('nsa'), nsName('nsb'), nsName('nsc')];
    for (const n of [a, b, c]) ip('netns', 'add', n);
    ip('-n', a, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb', 'netns', b);
    const expected = (JSON.parse(ip('-n', a, '-j', 'netns', 'list') || '[]') as Array<{ name: string; id?: number }>).filter((e) => e.id !== undefined && [a, b, c].includes(e.name));
    expect(expected.map((e) => e.name)).toEqual([b]);
    const nl = new NetlinkNamespace(namespacePath(a));
    try {
      const got = [a, b, c].map((n) => {
        const fd = openSync(`/run/netns/${n}`, 'r');
        try {
          return [n, nl.nsidOf(fd)];
        } finally {
          closeSync(fd);
        }
      });
      expect(got).toEqual([[a, -1], [b, expected[0]!.id], [c, -1]]);
    } finally {
      nl.close();
    }
  });

  it('reads the daemon namespace too (host), by its own socket there', () => {
    const host = new NetlinkNamespace(namespacePath('host'));
    open.add(host);
    const names = host.dumpLinks().map((l) => l.name);
    expect(names).toContain('lo');
    expect(names).toContain('eth0');
    expect(host.dumpRules(4).map((r) => r.priority)).toContain(32766);
  });

  it('reports errors with the errno name: a missing namespace, a request the kernel refuses', () => {
    expect(() => new NetlinkNamespace('/run/netns/nnt-no-such-namespace').dumpLinks()).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    const ns = nsName('err');
    ip('netns', 'add', ns);
    const nl = netlink(ns);
    // Strict checking refuses a route dump whose rtmsg has a scope: EINVAL, with the kernel's text.
    const bad = (seq: number): Buffer => {
      const r = M.routeDumpRequest(seq, 4, 'all');
      r[16 + 6] = 200;
      return r;
    };
    expect(() => nl.dump(bad)).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringContaining('Invalid values in header for FIB dump request') }));
    expect(nl.dumpLinks().map((l) => l.name)).toEqual(['lo']);
  });
});

describe('events', () => {
  it('announces new and deleted links, addresses, routes, rules and neighbours, parsed, with names of the namespace', async () => {
    const ns = nsName('ev');
    ip('netns', 'add', ns);
    const nl = netlink(ns);
    const events: NetlinkEvent[] = [];
    let overflows = 0;
    nl.watch((e) => events.push(e), () => overflows++);
    const n = (...args: string[]): string => ip('-n', ns, ...args);
    n('link', 'add', 'ev0', 'type', 'veth', 'peer', 'name', 'ev1');
    n('link', 'set', 'ev0', 'up');
    n('link', 'set', 'ev1', 'up');
    n('addr', 'add', '203.0.113.1/24', 'dev', 'ev0');
    n('route', 'add', '198.18.5.0/24', 'via', '203.0.113.254');
    n('rule', 'add', 'pref', '500', 'to', '198.18.5.0/24', 'table', '55');
    n('neigh', 'add', '203.0.113.7', 'lladdr', '02:00:00:00:00:07', 'dev', 'ev0', 'nud', 'permanent');
    n('link', 'set', 'ev1', 'name', 'ev2');
    const has = (pred: (e: NetlinkEvent) => boolean): boolean => events.some(pred);
    await until(() => has((e) => e.kind === 'link' && e.link.name === 'ev2'), 5000, 'the rename');
    expect(has((e) => e.kind === 'link' && e.action === 'new' && e.link.name === 'ev0' && e.link.up)).toBe(true);
    expect(has((e) => e.kind === 'address' && e.action === 'new' && e.address.local === '203.0.113.1' && e.address.link === 'ev0')).toBe(true);
    expect(has((e) => e.kind === 'route' && e.action === 'new' && e.route.dst === '198.18.5.0/24' && e.route.dev === 'ev0' && e.route.via === '203.0.113.254')).toBe(true);
    expect(has((e) => e.kind === 'rule' && e.action === 'new' && e.rule.priority === 500 && e.rule.table === 55)).toBe(true);
    expect(has((e) => e.kind === 'neighbor' && e.action === 'new' && e.neighbor.address === '203.0.113.7' && e.neighbor.state.includes('PERMANENT'))).toBe(true);

    events.length = 0;
    n('neigh', 'del', '203.0.113.7', 'dev', 'ev0');
    n('rule', 'del', 'pref', '500');
    n('route', 'del', '198.18.5.0/24');
    n('addr', 'del', '203.0.113.1/24', 'dev', 'ev0');
    n('link', 'del', 'ev0');
    await until(() => has((e) => e.kind === 'link' && e.action === 'del' && e.link.name === 'ev2'), 5000, 'the deletes');
    expect(has((e) => e.kind === 'neighbor' && e.action === 'del' && e.neighbor.address === '203.0.113.7')).toBe(true);
    expect(has((e) => e.kind === 'rule' && e.action === 'del' && e.rule.priority === 500)).toBe(true);
    expect(has((e) => e.kind === 'route' && e.action === 'del' && e.route.dst === '198.18.5.0/24' && e.route.dev === 'ev0')).toBe(true);
    expect(has((e) => e.kind === 'address' && e.action === 'del' && e.address.local === '203.0.113.1')).toBe(true);
    expect(has((e) => e.kind === 'link' && e.action === 'del' && e.link.name === 'ev0')).toBe(true);
    // IPv6 on the way: link-local addresses and their routes came and went with the links.
    expect(has((e) => e.kind === 'address' && e.action === 'del' && e.address.family === 6)).toBe(true);
    expect(overflows).toBe(0);
  });

  it('announces nsids the namespace gives to others', async () => {
    const ns = nsName('nsid');
    const other = nsName('other');
    ip('netns', 'add', ns);
    ip('netns', 'add', other);
    const events: NetlinkEvent[] = [];
    netlink(ns).watch((e) => events.push(e), () => {});
    ip('-n', ns, 'netns', 'set', other, '42');
    await until(() => events.some((e) => e.kind === 'nsid' && e.action === 'new' && e.nsid === 42), 5000, 'the nsid');
  });

  it('reports an overflow when events pile up unread, and goes on delivering afterwards', async () => {
    const ns = nsName('ovf');
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'add', 'o0', 'type', 'veth', 'peer', 'name', 'o1');
    const nl = netlink(ns);
    const events: NetlinkEvent[] = [];
    let overflows = 0;
    // The smallest receive buffer the kernel allows (a few KiB): a handful of events fill it.
    nl.watch((e) => events.push(e), () => overflows++, { rcvbuf: 1 });
    // One synchronous ip batch: the event loop cannot read meanwhile.
    const lines = Array.from({ length: 60 }, (_, i) => `address add 198.51.100.${i + 1}/32 dev o0`).join('\n');
    execFileSync('/usr/sbin/ip', ['-n', ns, '-batch', '-'], { input: lines + '\n' });
    await until(() => overflows > 0, 5000, 'the overflow');
    const before = events.length;
    expect(before).toBeLessThan(60);
    ip('-n', ns, 'link', 'set', 'o0', 'name', 'o9');
    await until(() => events.slice(before).some((e) => e.kind === 'link' && e.link.name === 'o9'), 5000, 'an event after the overflow');
    // After an overflow the index -> name map is read again: a later address names its link.
    ip('-n', ns, 'address', 'add', '203.0.113.5/32', 'dev', 'o9');
    await until(() => events.some((e) => e.kind === 'address' && e.address.local === '203.0.113.5' && e.address.link === 'o9'), 5000, 'the address');
  });

  it('stops delivering after close', async () => {
    const ns = nsName('close');
    ip('netns', 'add', ns);
    const events: NetlinkEvent[] = [];
    const w = netlink(ns).watch((e) => events.push(e), () => {});
    w.close();
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    await new Promise((r) => setTimeout(r, 200));
    expect(events).toEqual([]);
    w.close();
  });
});

describe('the calling thread enters a namespace only within one call', () => {
  it('leaves the event-loop thread in the daemon namespace after sockets, dumps, loopbackUp, linkNames and sysctls, failing ones too', () => {
    const home = readlinkSync('/proc/thread-self/ns/net');
    const ns = nsName('home');
    ip('netns', 'add', ns);
    const addon = createRequire(import.meta.url)('../../native/build/Release/netns.node') as {
      loopbackUp(p: string): void;
      linkNames(p: string): string[];
      sysctls(p: string, keys: string[], values?: string[]): Array<string | null> | undefined;
    };
    const path = namespacePath(ns);
    const nl = netlink(ns);
    expect(nl.dumpLinks().map((l) => l.name)).toEqual(['lo']);
    addon.loopbackUp(path);
    expect(addon.linkNames(path)).toEqual(['lo']);
    expect(addon.sysctls(path, ['ipv4/ip_forward'])).toEqual(['0\n']);
    // Inside the namespace: a key it does not have fails after the thread entered it.
    expect(() => addon.sysctls(path, ['ipv4/conf/nosuchlink/forwarding'], ['1'])).toThrow(/sysctl/);
    expect(() => addon.linkNames('/run/netns/nnt-no-such-namespace')).toThrow(/open namespace/);
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(home);
    // And the answers were about the namespace: the daemon's own has more links than lo.
    expect(addon.linkNames('/proc/self/ns/net').length).toBeGreaterThan(1);
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(home);
  });
});

describe('changes sent from the addon\'s own thread (nlRequestAsync)', () => {
  const addon = () =>
    createRequire(import.meta.url)('../../native/build/Release/netns.node') as { nlRequestAsync(p: string, req: Buffer, timeoutMs?: number): Promise<Buffer[]> };

  it('brings a link up inside the namespace and answers with the kernel\'s ACK; the loop thread stays home', async () => {
    const home = readlinkSync('/proc/thread-self/ns/net');
    const ns = nsName('async');
    ip('netns', 'add', ns);
    const answer = addon().nlRequestAsync(namespacePath(ns), linkSetRequest(4242, 1, { up: true }));
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(home);
    const datagrams = await answer;
    expect(datagrams.length).toBe(1);
    expect(dumpMessages(datagrams)).toEqual([]);
    expect(netlink(ns).dumpLinks().find((l) => l.name === 'lo')?.up).toBe(true);
    // The daemon's own namespace was not touched: its lo was up already, and no link of it was changed here.
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(home);
  });

  it('rejects with the errno and the step for a namespace that is not there, and gives a refusal as the kernel\'s error ACK', async () => {
    await expect(addon().nlRequestAsync('/run/netns/nnt-no-such-namespace', linkSetRequest(1, 1, { up: true }))).rejects.toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringContaining('open namespace') }),
    );
    const ns = nsName('asyncerr');
    ip('netns', 'add', ns);
    const datagrams = await addon().nlRequestAsync(namespacePath(ns), linkSetRequest(2, 9999, { up: true }));
    expect(() => dumpMessages(datagrams)).toThrow(expect.objectContaining({ code: 'ENODEV' }));
  });

  it('answers many requests in flight at once, each with its own ACK', async () => {
    const ns = nsName('asyncmany');
    ip('netns', 'add', ns);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => addon().nlRequestAsync(namespacePath(ns), linkSetRequest(1000 + i, 1, { up: i % 2 === 0 }))));
    for (const [i, d] of answers.entries()) {
      expect(d).toHaveLength(1);
      expect(d[0]!.readUInt32LE(8)).toBe(1000 + i); // the reply's seq is the request's
      expect(dumpMessages(d)).toEqual([]);
    }
    expect(netlink(ns).dumpLinks().find((l) => l.name === 'lo')?.up).toBe(false); // the last (49th) took it down
  });
});

describe('the addon in a worker thread', () => {
  it('lets a worker that loaded it end, and the process exit cleanly', () => {
    // The addon's handles are closed after its env ends; that once jumped into the unloaded library.
    const file = createRequire(import.meta.url).resolve('../../native/build/Release/netns.node');
    const script = `const { Worker } = require('node:worker_threads');
      const w = new Worker(${JSON.stringify(`const a = require(${JSON.stringify(file)}); a.nlClose(a.nlOpen('/proc/self/ns/net', [1], 65536));`)}, { eval: true });
      w.on('exit', (code) => { console.log('worker ended ' + code); });`;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(out.trim()).toBe('worker ended 0');
  });
});

describe('background threads', () => {
  /** The scheduling policy of thread tid of this process (field 41 of its stat; 3: SCHED_BATCH). */
  const policy = (tid: number) => Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[38]);

  it('makes the event log writer thread SCHED_BATCH through the addon, and nothing else', async () => {
    const addon = createRequire(import.meta.url)('../../native/build/Release/netns.node') as { background(tid?: number): boolean };
    const dir = mkdtempSync('/tmp/netnsd-bg-');
    const db = openDb(dir);
    let writer: number | undefined;
    const store = openLogStore(db, (e) => { throw e; }, (tid) => { writer = tid; addon.background(tid); });
    try {
      store.sink.write({ events: [[1, new Date().toISOString(), 'link.added', 'a', '{}']] });
      await store.sink.flush();
      expect(writer).toBeDefined();
      expect(policy(writer!)).toBe(3);
      expect(policy(process.pid)).toBe(0); // the event loop's own thread stays SCHED_OTHER
    } finally {
      await store.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
