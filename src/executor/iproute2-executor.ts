/**
 * The real backend. Where each op goes, fastest first:
 *
 * - netns.add: the native addon's netnsAdd (native/netns.c: what `ip netns add` does, as a
 *   promise, on threads of its own), so the event loop never waits and several namespaces are
 *   made at once. A line of one serial `ip` process was ~1 ms alone but ~10 ms each under the
 *   units benchmark's concurrent link and address changes (kernel locks, CPU), and every client
 *   queued behind it. Without the addon: a line of the root batch worker, as netns.delete.
 * - netns.delete: one long-lived root `ip -force -batch -` worker (no spawn per op).
 *   It may both create and delete: `netns add` leaves no fd behind in the worker (measured,
 *   iproute2 6.1), so it never pins what it created.
 * - netns.assignNsid / getNsid / loopbackUp / linkNames: the native addon (native/netns.c), in
 *   microseconds; without it, one-shot spawns of the argv.ts commands.
 * - netns.pids / killPids: /proc and signals, in-process.
 * - probe.*: one-shot spawns (startup only); a tool's refusal is an answer, not an error.
 * - addr.add / delete, route.add / delete, link.set, and link.add of a veth or a bridge: one
 *   rtnetlink request in-process (netlinkChange): the message ip would send (src/netlink/
 *   changes.ts, compared byte for byte with recorded ones), after the same name lookups, on a
 *   socket made inside the namespace for the op and closed after it (~0.2 ms an op, ~60 µs of
 *   it the socket); a veth's peer namespace is an fd opened for the op. Nothing stays open
 *   inside a namespace, so nothing keeps a deleted one alive. The kernel's refusals are rendered
 *   as ip prints them and classified by the same rules (classifyNetlink). Without the addon's
 *   netlink functions (or with netlinkChanges: false) they are batch lines, as below.
 * - link.add of other kinds, link.move / delete, rule.add / delete: the namespace's own batch
 *   worker (netns-workers.ts), started on first use and closed when idle, and always before that
 *   namespace is deleted (IPv6 rules excepted: a batch line cannot say `-6`, so they are
 *   one-shot spawns).
 * - neigh.add / delete: one-shot spawns. iproute2 6.1 ends the whole process (exit 2) when the
 *   kernel refuses an `ip neigh` change, `-force -batch` or not, without the `Command failed -:N`
 *   line that tells whose the message is (recorded: test/fixtures/stderr/batch-neigh-exists.txt),
 *   so a batch worker would lose the answer and restart. A spawn has its own stderr and status.
 * - link.list, addr.list, route.list, rule.list: netlink dumps through the native addon
 *   (src/netlink), in-process; without it, one-shot `ip -j` spawns.
 * - link.nsids: RTM_GETNSID per named namespace, over netlink from inside the namespace asked about.
 * - link.stats: a netlink link dump with counters (src/netlink/stats.ts) through a socket made
 *   inside the namespace for that read and closed after it; without the addon, `ip -s -s -j`.
 * - neigh.list: one-shot `ip -j` spawns.
 * - qdisc.*: one-shot `tc` spawns, one per step (a qdisc change is 1-10 steps of ~2-4 ms each,
 *   measured with iproute2 6.1): each step keeps its own exit status and stderr, so a failure
 *   names its step and the service can restore what was there before. (A `tc -batch` worker
 *   would save the spawns; it would need stdin on Command and the `Command failed -:N` bookkeeping
 *   the ip workers have, for a resource that is changed rarely.)
 * - nft.list / nft.apply: one-shot `nft -j` spawns (under `ip netns exec NS`: nft 1.0.6 has no
 *   `-n`); a transaction's document goes on stdin, so a change is one nft process and one kernel
 *   transaction.
 *
 * Only this file and batch-worker.ts start processes (netns-workers.ts owns BatchWorkers).
 */
import { existsSync } from 'node:fs';
import { type FileHandle, mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { AppError, isAppError } from '../errors/app-error.js';
import { type Command, commandsFor, parseAddresses, parseClasses, parseFilters, parseLinkNames, parseLinkStats, parseLinks, parseNeighbors, parseNetnsList, parseNftRuleset, parseNsids, parseQdiscs, parseRoutes, parseRules, parseToolVersion, spawnArgv } from './argv.js';
import { BatchWorker, type Logger, silentLogger, TOOL_ENV } from './batch-worker.js';
import { classify, classifyNative, classifyNetlink, classifySpawnError } from './classify.js';
import type { Executor, OpContext } from './executor.js';
import { NetnsWorkers } from './netns-workers.js';
import { isNetlinkChange, type NetlinkChangeOp } from '../netlink/changes.js';
import { type NetlinkAddon, NetlinkNamespace, namespacePath, type PrefetchedDumps, requestKey, snapshotRequests } from '../netlink/netlink.js';
import { MissingLinkError } from '../netlink/parse.js';
import { readLinkCounters } from '../netlink/stats.js';
import { DEFAULT_NETNS_DIR } from '../namespaces/netns-dir.js';
import { parseConntrack, parsePing, parseRouteGet, parseRouteGetError, parseSockets } from './diagnostics-parse.js';
import { HOST, type ExecResult, type TcpOutcome, type Op, type OpResults, type ProbeResult, type ResultOf, type ToolVersions, isReadOp, opNamespace } from './ops.js';

export type { Logger } from './batch-worker.js';

export interface Iproute2ExecutorOptions {
  /** One op (a batch line or a spawn) taking longer fails with EXECUTOR_TIMEOUT. Default 30 s. */
  readonly opTimeoutMs?: number;
  /** Root batch worker: start a fresh process after this many requests. Default 100. */
  readonly recycleAfter?: number;
  /** Use the native addon: `true` = must load, `false` = never, `'auto'` (default) = when it loads. */
  readonly native?: boolean | 'auto';
  /** Tests: the addon to use instead of loading native/build (wins over `native`). */
  readonly addon?: object;
  /** Create namespaces with the addon's netnsAdd when it has one (default true); else root batch lines. */
  readonly nativeNetnsAdd?: boolean;
  /** Read links, addresses, routes and rules over netlink when the addon has it (default true); else `ip -j` spawns. */
  readonly netlinkReads?: boolean;
  /**
   * Send addr.add/delete, route.add/delete and link.set over netlink when the addon has it
   * (default: as netlinkReads); else they are lines of the namespace's batch worker.
   */
  readonly netlinkChanges?: boolean;
  /** A namespace's batch worker is closed after this long without work. Default 30 s. */
  readonly workerIdleMs?: number;
  /** netns.killPids gives up (INTERNAL) when processes are still inside after this. Default 2 s. */
  readonly killWaitMs?: number;
  readonly log?: Logger;
}

/** The ifindex of a link by namespace and name, when known without asking the kernel. */
export type LinkIndexLookup = (ns: string, name: string) => number | undefined;

/** native/netns.c. Paths are /run/netns/NAME, or /proc/self/ns/net for our own namespace. */
interface NetnsAddon {
  loopbackUp(path: string): void;
  linkNames(path: string): string[];
  assignNsid(path: string): number;
  getNsid(path: string): number;
  /** Reads (no values) or writes (values) sysctls under /proc/sys/net inside the namespace. */
  sysctls(path: string, keys: readonly string[], values?: readonly string[]): (string | null)[] | undefined;
  /** `ip netns add` in-process: creates a namespace bound at path; rejects with an errno-coded Error. (Older builds lack it.) */
  /** With loopbackUp: brings lo up too (from the same thread) and says whether that worked. */
  /** With more as well: also gives it an nsid in ours and reads its links' names (-1 / null when that failed), and answers `dumps` from inside it. */
  netnsAdd?(path: string, loopbackUp?: boolean, more?: boolean, dumps?: readonly Buffer[]): Promise<boolean | undefined | NetnsAdded>;
}

/** netnsAdd's answer with `more` (native/netns.c). */
interface NetnsAdded {
  readonly loopbackUp: boolean;
  readonly nsid: number;
  readonly linkNames: string[] | null;
  /** With dumps: each one's answer, or null when it failed. */
  readonly dumps?: ReadonlyArray<{ datagrams: Buffer[]; interrupted: boolean } | null>;
}

/** `ip route show table N` of a table the kernel has none of (stderr recorded in test/fixtures/stderr/route-table-missing.txt). */
export const FIB_TABLE_MISSING = /^Error: ipv[46]: FIB table does not exist\.$/m;

/** Stdout/stderr kept from a one-shot spawn. */
const MAX_OUTPUT = 4 * 1024 * 1024;
const KILL_POLL_MS = 20;

/** Probe failures that make the probe's answer meaningless: thrown, not reported as "unsupported". */
const PROBE_FATAL = new Set(['NAMESPACE_NOT_FOUND', 'PRIVILEGE_REQUIRED']);

interface Spawned {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class Iproute2Executor implements Executor {
  /** Whether the native addon is in use (reported in capabilities). */
  readonly nativeAvailable: boolean;
  private readonly native: NetnsAddon | undefined;
  /** The addon's netnsAdd, when it has one and it is not turned off. */
  private readonly netnsAdd: NetnsAddon['netnsAdd'];
  /**
   * Namespaces whose lo netnsAdd brought up as it made them (the thread that made a namespace is
   * inside it already): their netns.loopbackUp, which follows, has nothing left to do.
   */
  private readonly loopbackUpAtAdd = new Set<string>();
  /** The addon's netlink functions, for reads without a process (see netlinkRead). */
  private readonly netlink: NetlinkAddon | undefined;
  /** The same, for changes without a batch line (see netlinkChange). */
  private readonly netlinkChanges: NetlinkAddon | undefined;
  private readonly root: BatchWorker;
  private readonly workers: NetnsWorkers;
  private readonly log: Logger;
  private readonly opTimeoutMs: number;
  private readonly killWaitMs: number;
  /** Pids of our one-shot children, never reported as a namespace's processes. */
  private readonly children = new Set<number>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private closing: Promise<void> | undefined;
  /** A /proc scan scheduled but not yet begun, for callers to share (see procScan). */
  private pendingScan: Promise<Map<string, number[]>> | undefined;

  private linkIndexLookup: LinkIndexLookup | undefined;
  /** By namespace: its last change on the request thread, settled when it has run (see dispatch). */
  private readonly queuedChanges = new Map<string, Promise<void>>();

  constructor(options: Iproute2ExecutorOptions = {}) {
    this.log = options.log ?? silentLogger;
    this.opTimeoutMs = options.opTimeoutMs ?? 30_000;
    this.killWaitMs = options.killWaitMs ?? 2_000;
    this.native = options.addon ? (options.addon as NetnsAddon) : loadNative(options.native ?? 'auto', this.log);
    this.nativeAvailable = this.native !== undefined;
    const add = this.native?.netnsAdd;
    this.netnsAdd = options.nativeNetnsAdd !== false && typeof add === 'function' ? add.bind(this.native) : undefined;
    const nl = this.native as Partial<NetlinkAddon> | undefined;
    const addon = typeof nl?.nlOpen === 'function' ? (nl as NetlinkAddon) : undefined;
    this.netlink = options.netlinkReads !== false ? addon : undefined;
    this.netlinkChanges = (options.netlinkChanges ?? options.netlinkReads) !== false ? addon : undefined;
    this.root = new BatchWorker({ tool: 'ip', timeoutMs: this.opTimeoutMs, recycleAfter: options.recycleAfter ?? 100, log: this.log });
    this.workers = new NetnsWorkers({
      timeoutMs: this.opTimeoutMs,
      recycleAfter: options.recycleAfter ?? 100,
      log: this.log,
      ...(options.workerIdleMs === undefined ? {} : { idleMs: options.workerIdleMs }),
    });
  }

  /** Namespaces (`host` included) that have a batch worker running now. */
  get workerNamespaces(): string[] {
    return this.workers.namespaces;
  }

  run<O extends Op>(op: O, ctx: OpContext = {}): Promise<ResultOf<O>> {
    if (this.closing) return Promise.reject(new AppError('EXECUTOR_UNAVAILABLE', 'the executor is closing'));
    const work = this.runRecorded(op, ctx);
    this.inFlight.add(work);
    void work.catch(() => {}).finally(() => this.inFlight.delete(work));
    return work;
  }

  /** Answers when the root batch worker answers a sentinel (starting it if needed). */
  async ping(): Promise<void> {
    if (this.closing) throw new AppError('EXECUTOR_UNAVAILABLE', 'the executor is closing');
    await this.root.ping();
  }

  /** Refuses new work, waits for the ops in flight, then lets the workers exit. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([...this.inFlight]);
      await Promise.all([this.root.close(), this.workers.close()]);
    })();
    return this.closing;
  }

  /** Runs op and records it once (argv actually run: empty for in-process work). */
  private async runRecorded<O extends Op>(op: O, ctx: OpContext): Promise<ResultOf<O>> {
    const argv: string[][] = [];
    const started = performance.now();
    const rec = (ok: boolean, code?: AppError['code']): void =>
      ctx.record?.({ kind: op.kind, ns: opNamespace(op), argv, ok, ...(code ? { code } : {}), durationMs: performance.now() - started });
    try {
      const result = (await this.dispatch(op, argv, ctx)) as ResultOf<O>;
      rec(true);
      return result;
    } catch (e) {
      const err = isAppError(e) ? e : new AppError('INTERNAL', `${op.kind} failed`, { cause: e });
      rec(false, err.code);
      throw err;
    }
  }

  private async dispatch(op: Op, argv: string[][], ctx: OpContext = {}): Promise<OpResults[Op['kind']]> {
    // Every op's names are checked here, whichever path serves it.
    const commands = commandsFor(op);
    // A change sent some other way than the request thread waits for the namespace's changes
    // still queued there: the pool let it start once they were queued (OpContext.sequenced), and
    // the kernel must see them first.
    if (!isReadOp(op) && !(this.netlinkChanges && isNetlinkChange(op))) {
      const queued = this.queuedChanges.get(opNamespace(op));
      if (queued) await queued;
    }
    switch (op.kind) {
      case 'netns.add':
        if (this.netnsAdd) return this.nativeAdd(op, this.netnsAdd);
        return this.batch(commands, op, argv);
      case 'netns.delete':
        this.loopbackUpAtAdd.delete(op.ns);
        // Our workers inside it, or holding an fd to it, would keep it alive after the unmount.
        await this.workers.release(op.ns);
        return this.batch(commands, op, argv);
      case 'netns.assignNsid':
        if (this.native) return { nsid: this.nativeCall(op, (n) => n.assignNsid(namespacePath(op.ns))) };
        return { nsid: await this.assignNsidSpawned(op, argv) };
      case 'netns.getNsid':
        if (this.native) return { nsid: this.nativeCall(op, (n) => n.getNsid(namespacePath(op.ns))) };
        return { nsid: await this.getNsidSpawned(op, argv) };
      case 'netns.loopbackUp':
        if (this.loopbackUpAtAdd.delete(op.ns)) return;
        // Over netlink, from the addon's thread (bringing lo up starts IPv4 and IPv6 on it).
        if (this.netlinkChanges?.nlRequestAsync) return this.netlinkAsync(op, (nl) => nl.loopbackUp());
        if (this.native) return this.nativeCall(op, (n) => n.loopbackUp(namespacePath(op.ns)));
        await this.oneShot(only(commands), op, argv);
        return;
      case 'netns.linkNames':
        if (this.native) return { names: this.nativeCall(op, (n) => n.linkNames(namespacePath(op.ns))) };
        return { names: parseLinkNames(await this.oneShot(only(commands), op, argv)) };
      case 'netns.pids':
        return { pids: await this.pidsIn(op) };
      case 'netns.killPids':
        return this.killPids(op);
      case 'sysctl.read':
        return { values: this.sysctlCall(op, (n, path) => n.sysctls(path, op.keys) ?? []) };
      case 'sysctl.write':
        this.sysctlCall(op, (n, path) => n.sysctls(path, op.entries.map(([k]) => k), op.entries.map(([, v]) => v)));
        return;
      case 'probe.tools':
        return this.toolVersions(commands, op, argv);
      case 'probe.linkKind':
      case 'probe.linkFeature':
      case 'probe.qdisc':
      case 'probe.classifier':
      case 'probe.nftables':
        return this.probe(commands, op, argv);
      case 'link.list':
        if (this.netlink) {
          return {
            links: this.netlinkRead(op, (nl) => {
              const links = nl.dumpLinks();
              return op.name === undefined ? links : [this.named(op, links.find((l) => l.name === op.name), op.name)];
            }),
          };
        }
        return { links: parseLinks(await this.oneShot(only(commands), op, argv)) };
      case 'link.nsids':
        if (this.netlink) {
          const names = await readdir(DEFAULT_NETNS_DIR).catch(() => [] as string[]);
          return { nsids: this.netlinkRead(op, (nl) => names.flatMap((name) => {
            try {
              const nsid = nl.nsidOfFile(join(DEFAULT_NETNS_DIR, name));
              return nsid < 0 ? [] : [{ nsid, name }];
            } catch {
              return []; // gone meanwhile, or not a namespace (yet)
            }
          })) };
        }
        return { nsids: parseNsids(await this.oneShot(only(commands), op, argv)) };
      case 'link.stats':
        if (this.netlink) {
          const links = this.nativeCall(op, () => readLinkCounters(this.netlink!, namespacePath(op.ns)));
          return this.named(op, links.find((l) => l.name === op.name), op.name).counters;
        }
        return parseLinkStats(await this.oneShot(only(commands), op, argv));
      case 'addr.list':
        if (this.netlink) {
          return {
            addresses: this.netlinkRead(op, (nl) => {
              const all = nl.dumpAddresses();
              if (op.link === undefined) return all;
              this.named(op, [...nl.linkNames().values()].find((n) => n === op.link), op.link);
              return all.filter((a) => a.link === op.link);
            }),
          };
        }
        return { addresses: parseAddresses(await this.oneShot(only(commands), op, argv)) };
      case 'route.list': {
        if (this.netlink) return { routes: this.netlinkRead(op, (nl) => nl.dumpRoutes(op.family, op.table)) };
        const r = await this.spawnOnce(only(commands), argv);
        // A table that has no route of this family does not exist (kernel 6.18): it is empty.
        if (r.exitCode !== 0 && FIB_TABLE_MISSING.test(r.stderr)) return { routes: [] };
        if (r.exitCode !== 0) throw classify(r.stderr, r.exitCode, op);
        return { routes: parseRoutes(r.stdout, op.family, op.table) };
      }
      case 'rule.list':
        if (this.netlink) return { rules: this.netlinkRead(op, (nl) => nl.dumpRules(op.family)) };
        return { rules: parseRules(await this.oneShot(only(commands), op, argv), op.family) };
      case 'neigh.list':
        return { neighbors: parseNeighbors(await this.oneShot(only(commands), op, argv), op.link) };
      case 'link.add':
      case 'link.set':
      case 'addr.add':
      case 'addr.delete':
      case 'route.add':
      case 'route.delete':
        // Veths, bridges and every simple change over netlink; other link kinds as batch lines.
        if (this.netlinkChanges && isNetlinkChange(op)) return this.netlinkChange(op, ctx.sequenced);
        return this.inNamespace(commands, op, argv);
      case 'link.move':
      case 'link.delete':
      case 'rule.add':
      case 'rule.delete':
        return this.inNamespace(commands, op, argv);
      case 'neigh.add':
      case 'neigh.delete':
        await this.oneShot(only(commands), op, argv);
        return;
      case 'nft.list':
        return { ruleset: parseNftRuleset(await this.oneShot(only(commands), op, argv)) };
      case 'nft.apply':
        // One process per transaction: nft reads the whole document, then commits or aborts it.
      case 'qdisc.show':
        return { qdiscs: parseQdiscs(await this.oneShot(only(commands), op, argv)) };
      case 'qdisc.classes':
        return { classes: parseClasses(await this.oneShot(only(commands), op, argv)) };
      case 'qdisc.filters':
        return { filters: parseFilters(await this.oneShot(only(commands), op, argv)) };
      case 'qdisc.replaceRoot':
      case 'qdisc.deleteRoot':
      case 'qdisc.addClass':
      case 'qdisc.addFilter':
      case 'qdisc.addIngress':
      case 'qdisc.deleteIngress':
      case 'qdisc.addRedirect':
        await this.oneShot(only(commands), op, argv);
        return;
      case 'route.get': {
        const r = await this.spawnOnce(only(commands), argv);
        if (r.exitCode === 0) return parseRouteGet(r.stdout);
        // No way to the destination is the answer, not a failure of the op.
        const refused = parseRouteGetError(r.stderr);
        if (refused && r.exitCode === 2) return refused;
        throw classify(r.stderr, r.exitCode, op);
      }
      case 'diag.ping': {
        const r = await this.spawnOnce(only(commands), argv, op.spec.deadlineMs + 2_000);
        // Exit 1: sent, no reply; exit 2: could not send (no route). Both are answers.
        const missing = classify(r.stderr, r.exitCode, op);
        if (missing.code === 'NAMESPACE_NOT_FOUND' || missing.code === 'TOOL_MISSING' || missing.code === 'PRIVILEGE_REQUIRED') throw missing;
        return parsePing(r.stdout, r.stderr);
      }
      case 'diag.tcpConnect': {
        const stdout = await this.oneShot(only(commands), op, argv, op.timeoutMs + 5_000);
        const res = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { outcome?: string; errno?: string | null; elapsedMs?: number };
        if (typeof res.outcome !== 'string') throw new AppError('INTERNAL', 'the TCP probe printed no result', { cause: stdout });
        return { outcome: res.outcome as TcpOutcome, errno: res.errno ?? null, elapsedMs: Math.round((res.elapsedMs ?? 0) * 1000) / 1000 };
      }
      case 'diag.sockets':
        return { sockets: parseSockets(await this.oneShot(only(commands), op, argv)) };
      case 'diag.conntrack': {
        const r = await this.spawnOnce(only(commands), argv);
        if (r.exitCode === 0) return { entries: parseConntrack(r.stdout) };
        // nf_conntrack not loaded / not in this kernel: conntrack cannot open its netlink family.
        if (/Protocol not supported|Operation not supported|No such file or directory.*conntrack|can't open handler/i.test(r.stderr) && !/Cannot open network namespace|exec of/.test(r.stderr)) {
          throw new AppError('CONNTRACK_UNAVAILABLE', 'Connection tracking is not available in this kernel', { cause: r.stderr });
        }
        throw classify(r.stderr, r.exitCode, op);
      }
      case 'diag.exec':
        return this.execProgram(only(commands), op, argv);
      default: {
        const never: never = op;
        throw new AppError('INTERNAL', 'unknown op', { cause: never });
      }
    }
  }

  private async batch(commands: readonly Command[], op: Op, argv: string[][]): Promise<void> {
    for (const cmd of commands) {
      argv.push([...spawnArgv(cmd)]);
      const r = await this.root.submit(cmd.args);
      if (!r.ok) throw classify(r.stderr, null, op);
    }
  }

  /**
   * Runs a change's commands in the batch worker of its namespace. A command with an empty
   * argument (clearing an alias) or an option (`-6`: batch lines cannot set one) cannot be a
   * batch line and runs as a process of its own.
   */
  private async inNamespace(
    commands: readonly Command[],
    op: Extract<Op, { kind: 'link.add' | 'link.set' | 'link.move' | 'link.delete' | 'addr.add' | 'addr.delete' | 'route.add' | 'route.delete' | 'rule.add' | 'rule.delete' }>,
    argv: string[][],
  ): Promise<void> {
    const names = op.kind === 'link.add' && op.spec.linkKind === 'veth' ? [op.spec.peer.ns] : op.kind === 'link.move' ? [op.to] : [];
    for (const cmd of commands) {
      if (cmd.args.includes('') || cmd.args[0]?.startsWith('-')) {
        await this.oneShot(cmd, op, argv);
        continue;
      }
      argv.push([...spawnArgv(cmd)]);
      let r;
      try {
        r = await this.workers.submit(op.ns, cmd.args, names);
      } catch (e) {
        // A worker for a namespace that is gone exits at once ("Cannot open network namespace").
        if (isAppError(e) && e.code === 'EXECUTOR_UNAVAILABLE' && op.ns !== HOST && !existsSync(namespacePath(op.ns))) {
          throw new AppError('NAMESPACE_NOT_FOUND', `namespace "${op.ns}" does not exist`, { cause: e });
        }
        throw e;
      }
      if (!r.ok) throw classify(r.stderr, null, op);
    }
  }

  /**
   * Sysctls have no iproute2 path: reading another namespace's /proc/sys/net needs a task inside
   * it, which only the native helper does without a process. A value the kernel refuses is
   * SYSCTL_REFUSED naming the key.
   */
  private sysctlCall<T>(op: Extract<Op, { kind: 'sysctl.read' | 'sysctl.write' }>, call: (addon: NetnsAddon, path: string) => T): T {
    const addon = this.native;
    if (!addon) throw new AppError('NATIVE_HELPER_REQUIRED', 'Sysctls need the native helper (npm run build:native)');
    try {
      return call(addon, namespacePath(op.ns));
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { index?: number };
      if (op.kind === 'sysctl.write' && typeof err.index === 'number' && err.message.includes('sysctl')) {
        const key = op.entries[err.index]?.[0] ?? '?';
        throw new AppError('SYSCTL_REFUSED', `The kernel refused the value for ${key} (${err.code ?? 'error'})`, { cause: e, meta: { key } });
      }
      throw classifyNative(e, op);
    }
  }

  /**
   * A read over netlink, in microseconds instead of a process. The socket is opened for this read
   * and closed after it: a socket kept inside a namespace would keep that namespace (and the
   * far ends of its veths) alive after `ip netns del`.
   */
  private netlinkRead<T>(op: Op, read: (nl: NetlinkNamespace) => T): T {
    let nl: NetlinkNamespace | undefined;
    try {
      nl = new NetlinkNamespace(namespacePath(opNamespace(op)), { addon: this.netlink! });
      return read(nl);
    } catch (e) {
      throw isAppError(e) ? e : classifyNative(e, op);
    } finally {
      nl?.close();
    }
  }

  /**
   * Where netlink changes look a link's ifindex up instead of asking the kernel (one RTM_GETLINK
   * per name): the ifindex of `name` in `ns` as a kept, caught-up inventory knows it, or
   * undefined (then the kernel is asked). Set once the inventory exists (it is made after the
   * executor).
   */
  useLinkIndexes(lookup: LinkIndexLookup | undefined): void {
    this.linkIndexLookup = lookup;
  }

  /**
   * A change over rtnetlink instead of a batch line: the ifindex of every link the op names (one
   * RTM_GETLINK by name each, as ip looks them up), then the request that ip would send
   * (src/netlink/changes.ts), acked, on a socket made inside the namespace for this op and closed
   * after it, so none is ever left open in a namespace that may be deleted next. The kernel
   * handles an rtnetlink change within the send: that part runs on the addon's own thread
   * (NetlinkNamespace.changeAsync; measured under load ~0.7 ms for a veth, ~0.3 ms to bring a
   * link up, which the loop spent waiting before). The pool keeps one namespace's changes in order.
   */
  private async netlinkChange(op: NetlinkChangeOp, sequenced?: () => void): Promise<void> {
    let nl: NetlinkNamespace | undefined;
    try {
      nl = new NetlinkNamespace(namespacePath(op.ns), { addon: this.netlinkChanges! });
      const lookup = this.linkIndexLookup;
      const known = lookup && ((name: string) => lookup(op.ns, name));
      const earlier = this.queuedChanges.get(op.ns);
      // A link this change names may be one an earlier change still queued is making (the pool
      // let this one start once that was queued): when it is not found, look again after it.
      const change = nl.changeAsync(op, known, sequenced).catch(async (e: unknown) => {
        if (!(e instanceof MissingLinkError) || !earlier) throw e;
        await earlier;
        return nl!.changeAsync(op, known, sequenced);
      });
      const settled = change.then(
        () => undefined,
        () => undefined,
      );
      this.queuedChanges.set(op.ns, settled);
      void settled.then(() => {
        if (this.queuedChanges.get(op.ns) === settled) this.queuedChanges.delete(op.ns);
      });
      await change;
    } catch (e) {
      throw isAppError(e) ? e : classifyNetlink(e, op);
    } finally {
      nl?.close();
    }
  }

  /** A change of the op's namespace sent from the addon's thread (nlRequestAsync): no socket is left open. */
  private async netlinkAsync<T>(op: Op, call: (nl: NetlinkNamespace) => Promise<T>): Promise<T> {
    try {
      return await call(new NetlinkNamespace(namespacePath(opNamespace(op)), { addon: this.netlinkChanges! }));
    } catch (e) {
      throw isAppError(e) ? e : classifyNetlink(e, op);
    }
  }

  /** `found`, or LINK_NOT_FOUND naming the link (as the ip-based reads answer). */
  private named<T>(op: Op, found: T | undefined, name: string): T {
    if (found === undefined) throw new AppError('LINK_NOT_FOUND', `there is no link "${name}" in namespace "${opNamespace(op)}"`);
    return found;
  }

  /**
   * `ip netns add` in-process (native/netns.c netnsAdd). A promise: the syscalls (mount, unshare)
   * run off the event loop, so a slow one under load delays only its own namespace.
   */
  private async nativeAdd(op: Extract<Op, { kind: 'netns.add' }>, add: NonNullable<NetnsAddon['netnsAdd']>): Promise<OpResults['netns.add']> {
    this.loopbackUpAtAdd.delete(op.ns);
    const since = performance.now();
    const requests = snapshotRequests();
    let answer;
    try {
      answer = await add(namespacePath(op.ns), true, true, requests);
    } catch (e) {
      throw classifyNative(e, op);
    }
    // An older build answers a boolean (lo up or not) and reads nothing more.
    const added = typeof answer === 'object' && answer !== null ? answer : undefined;
    if (added ? added.loopbackUp : answer === true) this.loopbackUpAtAdd.add(op.ns);
    if (!added) return undefined;
    const dumps: PrefetchedDumps = new Map();
    added.dumps?.forEach((d, i) => {
      if (d && requests[i]) dumps.set(requestKey(requests[i]), d);
    });
    return {
      ...(added.nsid >= 0 ? { nsid: added.nsid } : {}),
      ...(added.linkNames ? { linkNames: added.linkNames } : {}),
      ...(dumps.size > 0 ? { snapshot: { since, dumps } } : {}),
    };
  }

  private nativeCall<T>(op: Op, call: (addon: NetnsAddon) => T): T {
    try {
      return call(this.native as NetnsAddon);
    } catch (e) {
      throw classifyNative(e, op);
    }
  }

  private async getNsidSpawned(op: Extract<Op, { kind: 'netns.getNsid' | 'netns.assignNsid' }>, argv: string[][]): Promise<number> {
    const list = only(commandsFor({ kind: 'netns.getNsid', ns: op.ns }));
    const nsid = parseNetnsList(await this.oneShot(list, op, argv), op.ns);
    if (nsid === undefined) throw new AppError('NAMESPACE_NOT_FOUND', `namespace "${op.ns}" does not exist`);
    return nsid;
  }

  /** Read first: `ip netns set NAME auto` fails ("Peer netns already has a nsid assigned") when it has one. */
  private async assignNsidSpawned(op: Extract<Op, { kind: 'netns.assignNsid' }>, argv: string[][]): Promise<number> {
    const nsid = await this.getNsidSpawned(op, argv);
    if (nsid >= 0) return nsid;
    await this.oneShot(only(commandsFor(op)), op, argv);
    return this.getNsidSpawned(op, argv);
  }

  /** Processes whose network namespace is the one bound at /run/netns/NAME (same nsfs inode). */
  private async pidsIn(op: Extract<Op, { ns: string }>): Promise<number[]> {
    const target = await this.nsInode(op);
    const byNs = await this.procScan();
    const own = new Set([process.pid, ...this.root.pids, ...this.workers.pids, ...this.children]);
    return (byNs.get(`${target.dev}:${target.ino}`) ?? []).filter((pid) => !own.has(pid));
  }

  /**
   * One pass over /proc mapping each network namespace (`dev:ino`) to the pids inside, sorted.
   * Callers that arrive while a pass is scheduled but has not begun reading share it: it still
   * sees every process that entered a namespace before they asked. A pass that has begun is not
   * joined (it may have read past a process that entered since), so the next caller starts one.
   * Many concurrent deletes thus cost one scan instead of one each (~200 stats apiece here).
   */
  private procScan(): Promise<Map<string, number[]>> {
    if (this.pendingScan) return this.pendingScan;
    const scan = new Promise<void>((r) => setImmediate(r)).then(async () => {
      this.pendingScan = undefined;
      const byNs = new Map<string, number[]>();
      const pids = (await readdir('/proc')).map(Number).filter((p) => Number.isInteger(p));
      await Promise.all(
        pids.map(async (pid) => {
          for (const key of await netnsKeysOf(pid)) {
            const list = byNs.get(key);
            if (list) list.push(pid);
            else byNs.set(key, [pid]);
          }
        }),
      );
      for (const list of byNs.values()) list.sort((a, b) => a - b);
      return byNs;
    });
    this.pendingScan = scan;
    return scan;
  }

  /**
   * SIGKILL each pid that is (still) inside the namespace, then wait until none is. A pid that is
   * no longer inside is left alone: it may have been reused by an unrelated process.
   */
  private async killPids(op: Extract<Op, { kind: 'netns.killPids' }>): Promise<void> {
    const target = await this.nsInode(op);
    const own = new Set([process.pid, ...this.root.pids, ...this.workers.pids, ...this.children]);
    for (const pid of op.pids) {
      if (!Number.isInteger(pid) || pid <= 1 || own.has(pid)) throw new AppError('INTERNAL', 'refusing to kill this pid', { cause: pid });
    }
    let left = [...op.pids];
    const deadline = performance.now() + this.killWaitMs;
    for (let first = true; ; first = false) {
      const inside = await Promise.all(left.map((pid) => isInside(pid, target)));
      left = left.filter((_, i) => inside[i]);
      if (left.length === 0) return;
      if (!first && performance.now() > deadline) {
        throw new AppError('INTERNAL', `${left.length} processes did not exit after SIGKILL`, { meta: { pids: left } });
      }
      if (first) for (const pid of left) signal(pid, op);
      await new Promise((r) => setTimeout(r, KILL_POLL_MS));
    }
  }

  private async nsInode(op: Extract<Op, { ns: string }>): Promise<NsInode> {
    try {
      const s = await stat(namespacePath(op.ns));
      return { dev: s.dev, ino: s.ino };
    } catch (e) {
      throw classifyNative(e, op);
    }
  }

  /** A missing tool gives a null version; probe.tools never fails for that. */
  private async toolVersions(commands: readonly Command[], op: Op, argv: string[][]): Promise<ToolVersions> {
    const version = async (tool: Command['tool']): Promise<string | null> => {
      const cmd = commands.find((c) => c.tool === tool) as Command;
      try {
        return parseToolVersion(await this.oneShot(cmd, op, argv));
      } catch (e) {
        if (isAppError(e) && e.code === 'TOOL_MISSING') return null;
        throw e;
      }
    };
    return { ip: await version('ip'), tc: await version('tc'), nft: await version('nft'), conntrack: await version('conntrack') };
  }

  /**
   * Runs the probe's commands in order. A refusal, a missing tool or a hang is
   * `{ supported: false, reason }`; only a missing scratch namespace or privilege throws.
   */
  private async probe(commands: readonly Command[], op: Op, argv: string[][]): Promise<ProbeResult> {
    for (const cmd of commands) {
      let r: Spawned;
      try {
        r = await this.spawnOnce(cmd, argv);
      } catch (e) {
        if (isAppError(e) && (e.code === 'TOOL_MISSING' || e.code === 'EXECUTOR_TIMEOUT')) return { supported: false, reason: e.detail };
        throw e;
      }
      if (r.exitCode !== 0) {
        const err = classify(r.stderr, r.exitCode, op);
        if (PROBE_FATAL.has(err.code)) throw err;
        return { supported: false, reason: err.code === 'INTERNAL' ? firstLine(r.stderr) : err.detail };
      }
    }
    return { supported: true };
  }

  /**
   * An exec request: its own timeout and output cap (the program is killed when either is hit, and
   * what it printed so far is answered), stdin when given. `ip netns exec` prints
   * `exec of "X" failed: ...` and exits 1 (measured, iproute2 6.1; 255 in older ones) when the program cannot be started: EXEC_PROGRAM_NOT_FOUND.
   */
  private async execProgram(cmd: Command, op: Extract<Op, { kind: 'diag.exec' }>, argv: string[][]): Promise<ExecResult> {
    const [file, ...args] = spawnArgv(cmd);
    argv.push([file, ...args]);
    const started = performance.now();
    const child = execa(file, args, {
      env: TOOL_ENV,
      extendEnv: false,
      ...(op.stdin === undefined ? { stdin: 'ignore' as const } : { input: op.stdin }),
      reject: false,
      timeout: op.timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: op.maxOutputBytes,
      encoding: 'buffer',
    });
    const pid = child.pid;
    if (pid !== undefined) this.children.add(pid);
    try {
      const r = await child;
      const text = (b: unknown): string => (b instanceof Uint8Array ? Buffer.from(b).subarray(0, op.maxOutputBytes).toString('utf8') : '');
      const stderr = text(r.stderr);
      if ((r.exitCode === 1 || r.exitCode === 255) && /^exec of "[^"]*" failed: [^\n]*\n?$/.test(stderr)) {
        throw new AppError('EXEC_PROGRAM_NOT_FOUND', `${op.argv[0]} cannot be run in namespace "${op.ns}"`, { cause: stderr });
      }
      if (r.exitCode === undefined && !r.timedOut && !r.isMaxBuffer && r.signal === undefined) throw classifySpawnError(r, file);
      return {
        exitCode: r.exitCode ?? null,
        signal: r.signal ?? null,
        stdout: text(r.stdout),
        stderr,
        truncated: r.isMaxBuffer,
        timedOut: r.timedOut,
        durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      };
    } finally {
      if (pid !== undefined) this.children.delete(pid);
    }
  }

  /** Spawn cmd; stdout on success, a classified AppError otherwise. */
  private async oneShot(cmd: Command, op: Op, argv: string[][], timeoutMs?: number): Promise<string> {
    const r = await this.spawnOnce(cmd, argv, timeoutMs);
    if (r.exitCode !== 0) throw classify(r.stderr, r.exitCode, op);
    return r.stdout;
  }

  /**
   * Spawn cmd and collect its output; rejects only when it could not run to an exit status.
   * A command's stdin is written to a private temporary file whose descriptor becomes the tool's
   * stdin: nft reads `-f -` by opening /dev/stdin (nftables 1.0.6), which fails with ENXIO on the
   * socket pair Node gives a child for a pipe.
   */
  private async spawnOnce(cmd: Command, argv: string[][], timeoutMs = this.opTimeoutMs): Promise<Spawned> {
    if (cmd.stdin === undefined) return this.spawnWith(cmd, argv, 'ignore', timeoutMs);
    const dir = await mkdtemp(join(tmpdir(), 'netnsd-stdin-'));
    const path = join(dir, 'stdin');
    let fh: FileHandle | undefined;
    try {
      await writeFile(path, cmd.stdin, { mode: 0o600 });
      fh = await open(path, 'r');
      return await this.spawnWith(cmd, argv, fh.fd, timeoutMs);
    } finally {
      await fh?.close();
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async spawnWith(cmd: Command, argv: string[][], stdin: 'ignore' | number, timeoutMs: number): Promise<Spawned> {
    const [file, ...args] = spawnArgv(cmd);
    argv.push([file, ...args]);
    const child = execa(file, args, {
      env: TOOL_ENV,
      extendEnv: false,
      // A descriptor is handed to the child as it is (no stream in between); execa 9 takes any fd
      // at run time, though its types name only 3-9 for stdin.
      stdin: stdin as 'ignore',
      reject: false,
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: MAX_OUTPUT,
    });
    const pid = child.pid;
    if (pid !== undefined) this.children.add(pid);
    try {
      const r = await child;
      if (r.timedOut) throw new AppError('EXECUTOR_TIMEOUT', `${cmd.tool} did not finish within ${timeoutMs} ms`);
      if (r.isMaxBuffer) throw new AppError('INTERNAL', `${cmd.tool} printed more than ${MAX_OUTPUT} bytes`);
      if (r.exitCode === undefined) throw classifySpawnError(r, file);
      return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
    } finally {
      if (pid !== undefined) this.children.delete(pid);
    }
  }
}

interface NsInode {
  readonly dev: number;
  readonly ino: number;
}


/**
 * Whether pid's network namespace is `target`. A process that is gone, a zombie (whose ns links
 * are gone once it exited) or one we may not inspect counts as not inside.
 */
async function isInside(pid: number, target: NsInode): Promise<boolean> {
  return (await netnsKeysOf(pid)).has(`${target.dev}:${target.ino}`);
}

/**
 * The network namespaces (`dev:ino`) of every thread of pid: setns() moves one thread only, so
 * a process whose main thread stayed outside may still have a thread inside. Empty for a process
 * that is gone, a zombie, or one we may not inspect.
 */
async function netnsKeysOf(pid: number): Promise<Set<string>> {
  const keys = new Set<string>();
  let tids: string[];
  try {
    tids = await readdir(`/proc/${pid}/task`);
  } catch {
    return keys;
  }
  await Promise.all(
    tids.map(async (tid) => {
      try {
        const st = await stat(`/proc/${pid}/task/${tid}/ns/net`);
        keys.add(`${st.dev}:${st.ino}`);
      } catch {
        // the thread exited meanwhile
      }
    }),
  );
  return keys;
}

function signal(pid: number, op: Op): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return; // exited meanwhile
    throw classifyNative(e, op);
  }
}

function only(commands: readonly Command[]): Command {
  if (commands.length !== 1 || commands[0] === undefined) throw new AppError('INTERNAL', 'expected exactly one command');
  return commands[0];
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0]?.slice(0, 200) ?? '';
}

/**
 * Loads native/build/Release/netns.node from the package root (the nearest package.json above
 * this file), which is the same place whether this runs from src/ (tsx, vitest) or dist/.
 */
function loadNative(mode: boolean | 'auto', log: Logger): NetnsAddon | undefined {
  if (mode === false) return undefined;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  const file = join(dir, 'native', 'build', 'Release', 'netns.node');
  try {
    const addon = createRequire(import.meta.url)(file) as NetnsAddon;
    log.debug({ file }, 'native addon loaded');
    return addon;
  } catch (e) {
    if (mode === true) throw new AppError('INTERNAL', 'the native addon could not be loaded', { cause: e });
    log.warn({ err: e, file }, 'native addon not loaded: namespace ops will spawn ip (slower); run `npm run build:native`');
    return undefined;
  }
}
