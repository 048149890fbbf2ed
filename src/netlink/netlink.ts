/**
 * In-process rtnetlink for one namespace: dumps (synchronous, microseconds to a few ms), acked
 * requests (the executor's changes: src/netlink/changes.ts) and a watch of its change events,
 * through the native addon's sockets (native/netlink.c).
 *
 * Every socket is created inside the namespace and stays there, so the kernel answers about that
 * namespace only and every ifindex in its answers means a link of that namespace. Two sockets per
 * namespace: one for dumps and requests (kept until close()) and one per watch (joined to the
 * multicast groups), so events never interleave with replies. A socket open inside a namespace
 * keeps it alive after `ip netns del`: whoever opens one closes it before the namespace goes.
 */
import { closeSync, existsSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KernelAddress, KernelLink, KernelRoute, KernelRule } from '../executor/ops.js';
import { changeRequest, ifindexOf, linkGetRequest, linkNamesOf, linkSetRequest, namespacesOf, type NetlinkChangeOp } from './changes.js';
import * as M from './messages.js';
import { defaultNames, type IpNames } from './names.js';
import {
  addressOf, dumpMessages, eventOf, parseAttrs, linkNameOf, linkNames, linkOf, messagesIn, MissingLinkError, MissingNamespaceError, neighborOf, NetlinkError, routeOf, ruleOf,
  type KernelNeighbor, type NetlinkEvent, type NlMessage,
} from './parse.js';

/** What an event socket had pending, read at once (native/netlink.c, pending_batch). */
export interface NlBatch {
  /** The datagrams, back to back. */
  readonly data: Buffer;
  /**
   * Datagram i is data[index[3i], index[3i+1]), from the namespace of nsid index[3i+2] (sockets
   * opened with allNsid; -1: the socket's own namespace).
   */
  readonly index: Int32Array;
  /** The kernel dropped events (the receive queue was full): whoever keeps state must re-read it. */
  readonly overflow: boolean;
}

/** The addon's netlink functions (native/netlink.c). */
export interface NetlinkAddon {
  /** allNsid: NETLINK_LISTEN_ALL_NSID (the events of every namespace with an nsid here, tagged). */
  nlOpen(nsPath: string, groups: readonly number[], rcvbuf?: number, allNsid?: boolean): number;
  nlDump(fdOrNsPath: number | string, request: Buffer, timeoutMs?: number): { datagrams: Buffer[]; interrupted: boolean };
  /** Called with what is pending whenever the socket has datagrams or overflowed; (err, null): it failed and is no longer watched. */
  nlWatch(fd: number, callback: (err: (Error & { code?: string }) | null, batch: NlBatch | null) => void): void;
  /** Every datagram pending now, without waiting (null: none, and no overflow). */
  nlRead(fd: number): NlBatch | null;
  nlClose(fd: number): void;
  /**
   * One acked request on a socket made inside the namespace for it, sent and answered on the
   * addon's own thread (native/request.c): the reply's datagrams, up to the ACK or the error.
   */
  nlRequestAsync?(nsPath: string, request: Buffer, timeoutMs?: number): Promise<Buffer[]>;
  /** Makes thread `tid` of this process (default: the calling one) SCHED_BATCH (native/netns.c); whether that worked. */
  background?(tid?: number): boolean;
}

let addon: NetlinkAddon | undefined;
/** native/build/Release/netns.node from the package root (the nearest package.json above this file). */
export function loadNetlinkAddon(): NetlinkAddon {
  if (addon) return addon;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  const loaded = createRequire(import.meta.url)(join(dir, 'native', 'build', 'Release', 'netns.node')) as Partial<NetlinkAddon>;
  if (typeof loaded.nlOpen !== 'function') throw new Error('the native addon has no netlink functions: run `npm run build:native`');
  addon = loaded as NetlinkAddon;
  return addon;
}

/** One dump's answer: its datagrams, and whether the kernel marked it interrupted (NLM_F_DUMP_INTR). */
export interface DumpAnswer {
  readonly datagrams: Buffer[];
  readonly interrupted: boolean;
}

/** Answers to dumps taken before (by netnsAdd, of a namespace it made), by requestKey. */
export type PrefetchedDumps = Map<string, DumpAnswer>;

/** A request without its seq and port id: what makes two dump requests ask the same. */
export function requestKey(req: Buffer): string {
  const k = Buffer.from(req);
  k.fill(0, 8, 16);
  return k.toString('base64');
}

/** The dumps of a whole namespace (the monitor's snapshot of it: NamespaceSnapshot.dumps), in its order. */
export function snapshotRequests(): Buffer[] {
  return [
    M.linkDumpRequest(0),
    M.addressDumpRequest(0),
    M.routeDumpRequest(0, 4, 'all'),
    M.routeDumpRequest(0, 6, 'all'),
    M.ruleDumpRequest(0, 4),
    M.ruleDumpRequest(0, 6),
    M.neighborDumpRequest(0),
  ];
}

export interface NetlinkOptions {
  /** Names for numbers as iproute2 prints them (default: this machine's /etc/iproute2). */
  readonly names?: IpNames;
  /** A dump that takes longer fails with ETIMEDOUT (default 5000 ms). */
  readonly timeoutMs?: number;
  /** How often a dump the kernel marks interrupted (NLM_F_DUMP_INTR) is retried (default 5). */
  readonly retries?: number;
  readonly addon?: NetlinkAddon;
  /** Dumps answered already: taken (once each) instead of asking the kernel; the rest are asked. */
  readonly prefetched?: PrefetchedDumps;
}

export interface WatchOptions {
  /** RTNLGRP_* groups to join (default: DEFAULT_GROUPS). */
  readonly groups?: readonly number[];
  /** Receive buffer in bytes (default 8 MiB); tests make it tiny to provoke an overflow. */
  readonly rcvbuf?: number;
  /** Every message as it came, before parsing (for recording fixtures). */
  readonly onRaw?: (msg: NlMessage, datagram: Buffer) => void;
  /** The socket failed; it is no longer watched. */
  readonly onError?: (err: Error) => void;
}

export interface Watch {
  /** Stops watching and closes the event socket. */
  close(): void;
}

/** The path a namespace's name is bound at (`host`: the daemon's own namespace). */
export function namespacePath(ns: string): string {
  return ns === 'host' ? '/proc/self/ns/net' : `/run/netns/${ns}`;
}

let nextSeq = 0;

/** The ifindex of every namespace's loopback (the kernel's LOOPBACK_IFINDEX). */
const LOOPBACK_IFINDEX = 1;

export class NetlinkNamespace {
  private dumpFd: number | undefined;
  private readonly watches = new Set<Watch>();
  private readonly addon: NetlinkAddon;
  private readonly names: IpNames;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly prefetched: PrefetchedDumps | undefined;

  /** `nsPath`: a namespace file (/run/netns/NAME, /proc/self/ns/net); see namespacePath(). */
  constructor(
    readonly nsPath: string,
    opts: NetlinkOptions = {},
  ) {
    this.addon = opts.addon ?? loadNetlinkAddon();
    this.names = opts.names ?? defaultNames();
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.retries = opts.retries ?? 5;
    this.prefetched = opts.prefetched;
  }

  /**
   * The datagrams of one dump, retried while the kernel says the dump was interrupted (its
   * tables changed meanwhile, so it may have missed or doubled an object).
   */
  dumpRaw(build: (seq: number) => Buffer): Buffer[] {
    if (this.prefetched && this.prefetched.size > 0) {
      const key = requestKey(build(0));
      const answer = this.prefetched.get(key);
      this.prefetched.delete(key);
      if (answer && !answer.interrupted) return answer.datagrams;
    }
    this.dumpFd ??= this.addon.nlOpen(this.nsPath, [], 1024 * 1024);
    for (let attempt = 0; ; attempt++) {
      nextSeq = (nextSeq % 0xfffffffe) + 1;
      const seq = nextSeq;
      const r = this.addon.nlDump(this.dumpFd, build(seq), this.timeoutMs);
      if (!r.interrupted) return r.datagrams;
      if (attempt >= this.retries) throw new NetlinkError('netlink dump interrupted again and again (the namespace keeps changing)', 'EINTR', 4);
    }
  }

  /** The messages of one dump (see dumpRaw); throws the kernel's error as a NetlinkError. */
  dump(build: (seq: number) => Buffer): NlMessage[] {
    return dumpMessages(this.dumpRaw(build));
  }

  /**
   * Sends one request that asks for an ACK (a change, or a get of one object) and returns the
   * messages of the answer before the ACK; throws the kernel's refusal as a NetlinkError (with
   * its extended-ACK text). Never repeated: a change must not run twice.
   */
  request(build: (seq: number) => Buffer): NlMessage[] {
    this.dumpFd ??= this.addon.nlOpen(this.nsPath, [], 1024 * 1024);
    nextSeq = (nextSeq % 0xfffffffe) + 1;
    return dumpMessages(this.addon.nlDump(this.dumpFd, build(nextSeq), this.timeoutMs).datagrams);
  }

  /** The ifindex of the link called `name` (RTM_GETLINK by name); MissingLinkError when there is none. */
  linkIndex(name: string): number {
    let reply: NlMessage | undefined;
    try {
      reply = this.request((s) => linkGetRequest(s, name)).find((m) => m.type === M.RTM_NEWLINK && m.payload.length >= M.IFINFOMSG_LEN);
    } catch (e) {
      if (e instanceof NetlinkError && e.code === 'ENODEV') throw new MissingLinkError(name);
      throw e;
    }
    if (!reply) throw new MissingLinkError(name);
    return ifindexOf(reply.payload);
  }

  /**
   * Carries out a change op (src/netlink/changes.ts) as ip would: looks up each link it names
   * (in `known` first: an inventory kept from the kernel's announcements),
   * opens each other namespace it names (closed again before this returns: an fd kept would keep
   * that namespace alive), sends the request. Throws the kernel's refusal as a NetlinkError, a
   * link that is not there as a MissingLinkError, a namespace that cannot be opened as a
   * MissingNamespaceError.
   */
  change(op: NetlinkChangeOp, known?: (name: string) => number | undefined): void {
    const fds = this.changeFds(op);
    try {
      const request = this.changeRequestOf(op, known, fds);
      this.request(() => request);
    } finally {
      for (const fd of fds.values()) closeSync(fd);
    }
  }

  /**
   * change(), with the request sent and answered on the addon's thread (nlRequestAsync) instead
   * of this one: the kernel's work for it (a veth made, a link brought up) does not hold up the
   * event loop. Falls back to change() when the addon has no nlRequestAsync. `sent` is called
   * once the request is in the thread's FIFO (which sends requests in the order they came).
   */
  async changeAsync(op: NetlinkChangeOp, known?: (name: string) => number | undefined, sent?: () => void): Promise<void> {
    if (!this.addon.nlRequestAsync) return this.change(op, known);
    const fds = this.changeFds(op);
    try {
      await this.requestAsync(this.changeRequestOf(op, known, fds), sent);
    } finally {
      for (const fd of fds.values()) closeSync(fd);
    }
  }

  /**
   * `ip link set lo up`: RTM_NEWLINK with IFF_UP on ifindex 1, which the kernel gives the loopback
   * of every namespace (LOOPBACK_IFINDEX), so no lookup is needed; from the addon's thread when it can.
   */
  async loopbackUp(): Promise<void> {
    nextSeq = (nextSeq % 0xfffffffe) + 1;
    await this.requestAsync(linkSetRequest(nextSeq, LOOPBACK_IFINDEX, { up: true }));
  }

  /**
   * request(), from the addon's thread when it has nlRequestAsync (`sent`: once the request is in
   * that thread's FIFO), else on this one.
   */
  private async requestAsync(request: Buffer, sent?: () => void): Promise<NlMessage[]> {
    const send = this.addon.nlRequestAsync;
    if (!send) return this.request(() => request);
    const answer = send.call(this.addon, this.nsPath, request, this.timeoutMs);
    sent?.();
    return dumpMessages(await answer);
  }

  /** An fd of every namespace the op names besides its own (a veth's peer, a move's target). */
  private changeFds(op: NetlinkChangeOp): Map<string, number> {
    const fds = new Map<string, number>();
    try {
      for (const ns of namespacesOf(op)) {
        try {
          fds.set(ns, openSync(namespacePath(ns), 'r'));
        } catch (e) {
          throw new MissingNamespaceError(ns, e);
        }
      }
    } catch (e) {
      for (const fd of fds.values()) closeSync(fd);
      throw e;
    }
    return fds;
  }

  private changeRequestOf(op: NetlinkChangeOp, known: ((name: string) => number | undefined) | undefined, fds: Map<string, number>): Buffer {
    const indexes = new Map<string, number>();
    for (const name of linkNamesOf(op)) if (!indexes.has(name)) indexes.set(name, known?.(name) ?? this.linkIndex(name));
    nextSeq = (nextSeq % 0xfffffffe) + 1;
    return changeRequest(op, nextSeq, { ifindex: (n) => indexes.get(n) as number, nsFd: (n) => fds.get(n) as number });
  }

  private linkMessages(): NlMessage[] {
    return this.dump((s) => M.linkDumpRequest(s));
  }

  /** ifindex -> name of every link, now. */
  linkNames(): Map<number, string> {
    return linkNames(this.linkMessages());
  }


  /** Every link, in the kernel's (ifindex) order: parseLinks of `ip -j -d link show`. */
  dumpLinks(): KernelLink[] {
    const msgs = this.linkMessages();
    const names = linkNames(msgs);
    return msgs.flatMap((m) => linkOf(m, names) ?? []);
  }

  /**
   * Every address (of one family, or both), grouped by link in link order as `ip -j address show`
   * lists them (the kernel dumps every IPv4 address before any IPv6 one). `links` (ifindex ->
   * name, in ifindex order), here and in the other dumps: taken from a link dump just made,
   * instead of dumping the links again.
   */
  dumpAddresses(family?: 4 | 6, links?: ReadonlyMap<number, string>): KernelAddress[] {
    const names = links ?? this.linkNames();
    const order = new Map<number, number>();
    for (const i of names.keys()) order.set(i, order.size);
    const out = this.dump((s) => M.addressDumpRequest(s, family)).flatMap((m) => addressOf(m, names, this.names) ?? []);
    // Array.prototype.sort is stable: within a link, the kernel's order stays.
    return out.sort((a, b) => (order.get(a.ifindex) ?? Infinity) - (order.get(b.ifindex) ?? Infinity));
  }

  /** The routes of one family in one table or in all: parseRoutes of `ip -j -4|-6 route show table T`. */
  dumpRoutes(family: 4 | 6, table: number | 'all', links?: ReadonlyMap<number, string>): KernelRoute[] {
    const names = links ?? this.linkNames();
    let msgs: NlMessage[];
    try {
      msgs = this.dump((s) => M.routeDumpRequest(s, family, table));
    } catch (e) {
      // A table that has no route of this family does not exist (`FIB table does not exist`,
      // ENOENT, kernel 6.18): it is empty, as the ip-based route.list treats it.
      if (table !== 'all' && e instanceof NetlinkError && e.code === 'ENOENT') return [];
      throw e;
    }
    return msgs.flatMap((m) => routeOf(m, names, { family, table }, this.names) ?? []);
  }

  /** The policy rules of one family in the kernel's order: parseRules of `ip -j -4|-6 rule show`. */
  dumpRules(family: 4 | 6): KernelRule[] {
    return this.dump((s) => M.ruleDumpRequest(s, family)).flatMap((m) => {
      const r = ruleOf(m, this.names);
      return r && r.family === family ? [r] : [];
    });
  }

  /**
   * The nsid this namespace has for the namespace behind `fd` (an open namespace file of this
   * process), or -1 when it has none. What `ip -n NS netns list` shows, one namespace at a time.
   */
  nsidOf(fd: number): number {
    const reply = this.dump((s) => M.nsidRequest(s, fd)).find((m) => m.type === M.RTM_NEWNSID);
    const nsid = reply && reply.payload.length >= 8 ? parseAttrs(reply.payload, 4).get(M.NETNSA_NSID) : undefined;
    return nsid && nsid.length >= 4 ? nsid.readInt32LE(0) : -1;
  }

  /** nsidOf() for a namespace file (a path: /run/netns/NAME), opened for the question; throws when it cannot be. */
  nsidOfFile(path: string): number {
    const fd = openSync(path, 'r');
    try {
      return this.nsidOf(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** The neighbours (ARP / NDP entries, any state) of one family or both. */
  dumpNeighbors(family?: 4 | 6, links?: ReadonlyMap<number, string>): KernelNeighbor[] {
    const names = links ?? this.linkNames();
    return this.dump((s) => M.neighborDumpRequest(s, family)).flatMap((m) => neighborOf(m, names) ?? []);
  }

  /**
   * Watches the namespace's changes: `onEvent` gets each parsed event in the kernel's order;
   * `onOverflow` is called when the kernel dropped events (the socket's queue overflowed), after
   * which the caller must resync from dumps. The ifindex -> name map that events are resolved
   * with is seeded from a link dump taken after the event socket exists (so no change falls in
   * between) and kept from link events; an overflow re-seeds it.
   */
  watch(onEvent: (e: NetlinkEvent) => void, onOverflow: () => void, opts: WatchOptions = {}): Watch {
    const fd = this.addon.nlOpen(this.nsPath, opts.groups ?? M.DEFAULT_GROUPS, opts.rcvbuf);
    let names: Map<number, string>;
    try {
      names = this.linkNames();
    } catch (e) {
      this.addon.nlClose(fd);
      throw e;
    }
    let closed = false;
    const watch: Watch = {
      close: () => {
        if (closed) return;
        closed = true;
        this.watches.delete(watch);
        this.addon.nlClose(fd);
      },
    };
    this.addon.nlWatch(fd, (err, batch) => {
      if (closed) return;
      if (err || !batch) {
        closed = true;
        this.watches.delete(watch);
        try {
          this.addon.nlClose(fd);
        } catch {
          // already unusable
        }
        opts.onError?.(err ?? new Error('netlink event socket failed'));
        return;
      }
      const { data, index, overflow } = batch;
      for (let i = 0; i < index.length; i += 3) {
        for (const m of messagesIn(data, index[i]!, index[i + 1]!)) {
          opts.onRaw?.(m, data.subarray(index[i]!, index[i + 1]!));
          // The map follows the links: a new (or renamed) link is named before its own event is
          // parsed, a deleted one forgotten after.
          const link = m.type === M.RTM_NEWLINK || m.type === M.RTM_DELLINK ? linkNameOf(m) : null;
          const isLink = link !== null && m.payload.readUInt8(0) === M.AF_UNSPEC;
          if (isLink && m.type === M.RTM_NEWLINK) names.set(link.index, link.name);
          const e = eventOf(m, names, this.names);
          if (isLink && m.type === M.RTM_DELLINK) names.delete(link.index);
          if (e) onEvent(e);
          if (closed) return;
        }
      }
      if (overflow) {
        try {
          names = this.linkNames();
        } catch {
          // the namespace may be going away; the next events or the caller's resync will tell
        }
        onOverflow();
      }
    });
    this.watches.add(watch);
    return watch;
  }

  /** Closes the dump socket and every watch. */
  close(): void {
    for (const w of [...this.watches]) w.close();
    if (this.dumpFd !== undefined) {
      this.addon.nlClose(this.dumpFd);
      this.dumpFd = undefined;
    }
  }
}
