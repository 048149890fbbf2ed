/**
 * Link counters over rtnetlink, without a process: a link dump that does not set
 * RTEXT_FILTER_SKIP_STATS carries each link's counters in IFLA_STATS64 (struct
 * rtnl_link_stats64, u64 fields) and IFLA_STATS (struct rtnl_link_stats, the same fields as u32,
 * wrapping at 4 GiB); IFLA_STATS64 is preferred, IFLA_STATS is the fallback for a kernel or a
 * message that has only it. Both structures begin with the same ten fields in the same order
 * (linux/if_link.h, unchanged since 2.6.35), which are all netnsd reads.
 *
 * A namespace is read with the addon's `nlDump(nsPath, ...)` string form: the socket is made
 * inside the namespace on a short-lived thread and closed once the dump is read, so nothing is
 * left open in the namespace (an open netlink socket keeps a namespace alive after
 * `ip netns del`).
 */
import type { LinkCounters } from '../executor/ops.js';
import * as M from './messages.js';
import { loadNetlinkAddon, namespacePath, type NetlinkAddon } from './netlink.js';
import { cString, dumpMessages, NetlinkError, parseAttrs, type NlMessage } from './parse.js';

/** struct rtnl_link_stats (u32 fields). */
export const IFLA_STATS = 7;
/** struct rtnl_link_stats64 (u64 fields). */
export const IFLA_STATS64 = 23;

/**
 * The leading fields both structures share, by position: rx_packets, tx_packets, rx_bytes,
 * tx_bytes, rx_errors, tx_errors, rx_dropped, tx_dropped, multicast, collisions.
 */
const FIELDS = 10;

/** One link's counters, with its ifindex (a link removed and made again under its name gets a new one). */
export interface LinkCounterSample {
  readonly index: number;
  readonly name: string;
  readonly counters: LinkCounters;
}

/** Every link with its counters: RTM_GETLINK dump, no IFLA_EXT_MASK (so no RTEXT_FILTER_SKIP_STATS). */
export function linkCountersDumpRequest(seq: number): Buffer {
  return M.message(M.RTM_GETLINK, M.NLM_F_REQUEST | M.NLM_F_DUMP, seq, Buffer.alloc(M.IFINFOMSG_LEN));
}

/**
 * The counters of an RTM_NEWLINK message (ifi_family AF_UNSPEC), or null when it is not a link
 * or carries no counters (a dump made with RTEXT_FILTER_SKIP_STATS). u64 values above 2^53 lose
 * precision as numbers (8 PiB: JSON cannot carry more anyway).
 */
export function linkCountersOf(msg: NlMessage): LinkCounterSample | null {
  const p = msg.payload;
  if (msg.type !== M.RTM_NEWLINK || p.length < M.IFINFOMSG_LEN || p.readUInt8(0) !== M.AF_UNSPEC) return null;
  const a = parseAttrs(p, M.IFINFOMSG_LEN);
  const name = a.get(M.IFLA_IFNAME);
  if (!name) return null;
  const s64 = a.get(IFLA_STATS64);
  const s32 = a.get(IFLA_STATS);
  let v: (i: number) => number;
  if (s64 && s64.length >= 8 * FIELDS) v = (i) => Number(s64.readBigUInt64LE(8 * i));
  else if (s32 && s32.length >= 4 * FIELDS) v = (i) => s32.readUInt32LE(4 * i);
  else return null;
  return {
    index: p.readInt32LE(4),
    name: cString(name),
    counters: {
      rxBytes: v(2), txBytes: v(3), rxPackets: v(0), txPackets: v(1), rxErrors: v(4), txErrors: v(5), rxDropped: v(6), txDropped: v(7), multicast: v(8), collisions: v(9),
    },
  };
}

export interface ReadCountersOptions {
  /** A dump taking longer fails with ETIMEDOUT (default 2000 ms). */
  readonly timeoutMs?: number;
  /** How often a dump the kernel marks interrupted (NLM_F_DUMP_INTR) is retried (default 3). */
  readonly retries?: number;
}

let nextSeq = 0;

/**
 * The counters of every link in the namespace at `nsPath` (see namespacePath()), in ifindex
 * order. Throws the addon's error (`code` ENOENT: the namespace is gone) or a NetlinkError.
 */
export function readLinkCounters(addon: Pick<NetlinkAddon, 'nlDump'>, nsPath: string, o: ReadCountersOptions = {}): LinkCounterSample[] {
  const retries = o.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    nextSeq = (nextSeq % 0xfffffffe) + 1;
    const r = addon.nlDump(nsPath, linkCountersDumpRequest(nextSeq), o.timeoutMs ?? 2000);
    if (!r.interrupted) return dumpMessages(r.datagrams).flatMap((m) => linkCountersOf(m) ?? []);
    if (attempt >= retries) throw new NetlinkError('netlink dump interrupted again and again (the namespace keeps changing)', 'EINTR', 4);
  }
}

/**
 * A reader of a namespace's counters by name (`host`: the daemon's own), or undefined when the
 * native addon is not built.
 */
export function netlinkCounterReader(o: ReadCountersOptions = {}): ((ns: string) => LinkCounterSample[]) | undefined {
  let addon: NetlinkAddon;
  try {
    addon = loadNetlinkAddon();
  } catch {
    return undefined;
  }
  return (ns) => readLinkCounters(addon, namespacePath(ns), o);
}
