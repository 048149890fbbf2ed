/**
 * Records the link-counter fixture for test/unit/traffic.test.ts from this machine's kernel: two
 * namespaces joined by a veth pair (198.51.100.1/24 and .2), a few pings across, then a link dump
 * with counters (src/netlink/stats.ts) and `ip -s -s -j link show` of the same namespace. The dump
 * is taken between two `ip` runs that print the same, so both saw the same counters.
 *
 * Run as root: `npx tsx scripts/record-link-stats.ts` (after `npm run build:native`). Writes
 * test/fixtures/netlink/link-stats.b64 (one datagram per line, base64) and link-stats.ip.json.
 * The namespaces it makes (nnt-<pid>-rs-*) are removed at the end, whatever happens.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadNetlinkAddon, namespacePath } from '../src/netlink/netlink.js';
import { linkCountersDumpRequest } from '../src/netlink/stats.js';
import { runIp } from '../test/helpers/netlink-topology.js';

const OUT = join(import.meta.dirname, '..', 'test', 'fixtures', 'netlink');
const tag = process.pid.toString(36);
const a = `nnt-${tag}-rs-a`;
const b = `nnt-${tag}-rs-b`;

function main(): void {
  runIp('netns', 'add', a);
  runIp('netns', 'add', b);
  runIp('-n', a, 'link', 'set', 'lo', 'up');
  runIp('-n', a, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb', 'netns', b);
  runIp('-n', a, 'address', 'add', '198.51.100.1/24', 'dev', 'va');
  runIp('-n', b, 'address', 'add', '198.51.100.2/24', 'dev', 'vb');
  runIp('-n', a, 'link', 'set', 'va', 'up');
  runIp('-n', b, 'link', 'set', 'vb', 'up');
  execFileSync('/usr/sbin/ip', ['netns', 'exec', a, 'ping', '-c', '3', '-i', '0.2', '-W', '1', '198.51.100.2'], { stdio: 'ignore' });
  const addon = loadNetlinkAddon();
  for (let attempt = 0; attempt < 50; attempt++) {
    const before = runIp('-n', a, '-s', '-s', '-j', 'link', 'show');
    const { datagrams } = addon.nlDump(namespacePath(a), linkCountersDumpRequest(1), 2000);
    const after = runIp('-n', a, '-s', '-s', '-j', 'link', 'show');
    if (before !== after) continue; // IPv6 autoconfiguration still sends now and then
    writeFileSync(join(OUT, 'link-stats.b64'), datagrams.map((d) => d.toString('base64')).join('\n') + '\n');
    writeFileSync(join(OUT, 'link-stats.ip.json'), after.trim() + '\n');
    console.log(`recorded into ${OUT}`);
    return;
  }
  throw new Error('the counters kept changing');
}

try {
  main();
} finally {
  for (const name of [a, b]) if (existsSync(`/run/netns/${name}`)) runIp('netns', 'del', name);
}
