/**
 * In-process rtnetlink dumps (src/netlink) against spawning `ip -j` for the same data, in one run:
 * a namespace with `--links` links (veth pairs, an address on each), each read `--n` times both
 * ways, one after the other (no overlap). Root; the namespace (nnt-<pid>-bench) is removed at the
 * end. Run: `npx tsx bench/netlink-dump.ts [--n 100] [--links 20]`.
 *
 * Timed: for ip, the spawn to exit of `ip -n NS -j ...` plus parsing its JSON with argv.ts; for
 * netlink, the dump(s) plus parsing (a dump of addresses or routes includes the link dump it needs
 * for names). "fresh socket" opens a socket in the namespace for each dump (a pthread that
 * setns()es), "cached" reuses one.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { parseAddresses, parseLinks, parseRoutes } from '../src/executor/argv.js';
import * as M from '../src/netlink/messages.js';
import { loadNetlinkAddon, NetlinkNamespace, namespacePath } from '../src/netlink/netlink.js';
import { dumpMessages, linkNames, linkOf } from '../src/netlink/parse.js';

const IP = '/usr/sbin/ip';
const run = promisify(execFile);
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('n', 100);
const LINKS = arg('links', 20);
const ns = `nnt-${process.pid.toString(36)}-bench`;

async function time(label: string, f: () => unknown | Promise<unknown>): Promise<void> {
  await f(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint();
    await f();
    samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  samples.sort((a, b) => a - b);
  const total = samples.reduce((a, b) => a + b, 0);
  const q = (p: number): string => (samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? 0).toFixed(3);
  console.log(`${label.padEnd(44)} mean ${(total / N).toFixed(3)} ms  p50 ${q(0.5)}  p99 ${q(0.99)}  total ${total.toFixed(0)} ms`);
}

async function main(): Promise<void> {
  execFileSync(IP, ['netns', 'add', ns]);
  // lo, veth pairs (an address on one end), an ifb when the count is even.
  const lines = ['link set lo up'];
  const pairs = Math.floor((LINKS - 1) / 2);
  for (let i = 0; i < pairs; i++) lines.push(`link add b${i} type veth peer name c${i}`, `address add 198.18.${i}.1/24 dev b${i}`);
  if ((LINKS - 1) % 2 === 1) lines.push('link add nnbifb type ifb');
  execFileSync(IP, ['-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n' });
  const nl = new NetlinkNamespace(namespacePath(ns));
  const count = nl.dumpLinks().length;
  console.log(`namespace with ${count} links, ${N} repetitions each, kernel ${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}`);
  const ip = async (...args: string[]): Promise<string> => (await run(IP, ['-n', ns, '-j', ...args], { encoding: 'utf8' })).stdout;

  await time('links: ip -j -d link show + parseLinks', async () => parseLinks(await ip('-d', 'link', 'show')));
  await time('links: netlink dump + parse (cached socket)', () => nl.dumpLinks());
  await time('links: netlink dump only (cached socket)', () => nl.dumpRaw((s) => M.linkDumpRequest(s)));
  const addon = loadNetlinkAddon();
  await time('links: netlink dump + parse (fresh socket)', () => {
    const msgs = dumpMessages(addon.nlDump(namespacePath(ns), M.linkDumpRequest(1)).datagrams);
    const names = linkNames(msgs);
    return msgs.map((m) => linkOf(m, names));
  });
  await time('addresses: ip -j address show + parse', async () => parseAddresses(await ip('address', 'show')));
  await time('addresses: netlink (links + addresses)', () => nl.dumpAddresses());
  await time('routes v4 all: ip -j route show + parse', async () => parseRoutes(await ip('-4', 'route', 'show', 'table', 'all'), 4, 'all'));
  await time('routes v4 all: netlink (links + routes)', () => nl.dumpRoutes(4, 'all'));
  nl.close();
}

try {
  await main();
} finally {
  if (existsSync(`/run/netns/${ns}`)) execFileSync(IP, ['netns', 'del', ns]);
}
