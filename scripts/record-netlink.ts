/**
 * Records rtnetlink fixtures for test/unit/netlink-parse.test.ts from this machine's kernel:
 * builds the namespace of test/helpers/netlink-topology.ts, dumps links, addresses, routes
 * (v4/v6, every table), rules (v4/v6) and neighbours over netlink, records what `ip -j` says about
 * the same namespace right after, then watches it while changes are made and records the events.
 *
 * Run as root: `npx tsx scripts/record-netlink.ts` (after `npm run build:native`). Writes
 * test/fixtures/netlink/*.b64 (one datagram per line, base64) and *.ip.json. The namespaces it
 * makes (nnt-<pid>-rec-*) are removed at the end, whatever happens.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as M from '../src/netlink/messages.js';
import { NetlinkNamespace, namespacePath } from '../src/netlink/netlink.js';
import { buildTopology, ipOutputs, runIp } from '../test/helpers/netlink-topology.js';

const OUT = join(import.meta.dirname, '..', 'test', 'fixtures', 'netlink');
const tag = process.pid.toString(36);
const ns = `nnt-${tag}-rec-a`;
const peer = `nnt-${tag}-rec-b`;
const third = `nnt-${tag}-rec-c`;

const write = (name: string, datagrams: readonly Buffer[]): void =>
  writeFileSync(join(OUT, `${name}.b64`), datagrams.map((d) => d.toString('base64')).join('\n') + '\n');

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  buildTopology(ns, peer);
  const nl = new NetlinkNamespace(namespacePath(ns));
  write('links', nl.dumpRaw((s) => M.linkDumpRequest(s)));
  write('addresses', nl.dumpRaw((s) => M.addressDumpRequest(s)));
  write('routes-v4-all', nl.dumpRaw((s) => M.routeDumpRequest(s, 4, 'all')));
  write('routes-v6-all', nl.dumpRaw((s) => M.routeDumpRequest(s, 6, 'all')));
  write('routes-v4-main', nl.dumpRaw((s) => M.routeDumpRequest(s, 4, 254)));
  write('routes-v4-100', nl.dumpRaw((s) => M.routeDumpRequest(s, 4, 100)));
  write('rules-v4', nl.dumpRaw((s) => M.ruleDumpRequest(s, 4)));
  write('rules-v6', nl.dumpRaw((s) => M.ruleDumpRequest(s, 6)));
  write('neighbors', nl.dumpRaw((s) => M.neighborDumpRequest(s)));
  for (const [name, text] of Object.entries(ipOutputs(ns))) writeFileSync(join(OUT, `${name}.ip.json`), text.trim() + '\n');

  // Events: a link, an address, a route, a rule, a neighbour and an nsid come and go.
  const datagrams = new Set<Buffer>();
  const watch = nl.watch(() => {}, () => {}, { onRaw: (_m, d) => datagrams.add(d) });
  const n = (...args: string[]): string => runIp('-n', ns, ...args);
  n('link', 'add', 'ev0', 'type', 'veth', 'peer', 'name', 'ev1');
  n('link', 'set', 'ev0', 'up');
  n('addr', 'add', '203.0.113.77/24', 'dev', 'ev0');
  n('route', 'add', '198.18.77.0/24', 'via', '203.0.113.254', 'dev', 'ev0');
  n('rule', 'add', 'pref', '7777', 'from', '198.18.77.0/24', 'table', '77');
  n('neigh', 'add', '203.0.113.78', 'lladdr', '02:00:00:00:00:78', 'dev', 'ev0', 'nud', 'permanent');
  runIp('netns', 'add', third);
  n('netns', 'set', third, '77');
  n('neigh', 'del', '203.0.113.78', 'dev', 'ev0');
  n('rule', 'del', 'pref', '7777');
  n('route', 'del', '198.18.77.0/24');
  n('addr', 'del', '203.0.113.77/24', 'dev', 'ev0');
  n('link', 'del', 'ev0');
  runIp('netns', 'del', third);
  await new Promise((r) => setTimeout(r, 500));
  watch.close();
  write('events', [...datagrams]);
  nl.close();
  console.log(`recorded into ${OUT}`);
}

try {
  await main();
} finally {
  for (const name of [ns, peer, third]) {
    if (!existsSync(`/run/netns/${name}`)) continue;
    try {
      runIp('netns', 'del', name);
    } catch {
      // gone meanwhile
    }
  }
}
