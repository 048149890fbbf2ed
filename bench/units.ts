/**
 * The units benchmark: N "units", each a namespace (loopback up, nsid set) with a veth pair into
 * it from one shared hub namespace, an address on each end and a route inside, made four ways in
 * one run so that every figure comes from the same machine in the same state:
 *
 *   (a) a shell loop, one `ip` process per step — what a script does;
 *   (b) one `ip -batch` file — iproute2's own fastest path, the baseline of the ratios;
 *   (c) netnsd over HTTP with `clients` concurrent callers, five requests per unit;
 *   (d) netnsd over HTTP with one caller (the per-request latency, no overlap).
 *
 * The hub is made before timing starts, by each method its own way. Only the creation of the
 * units is timed; afterwards every unit is checked (untimed) in both namespaces, and then every
 * namespace is deleted (untimed) and the kernel left to free them before the next method.
 *
 * Addresses come only from 198.18.0.0/15 (RFC 2544, benchmarking): unit i has the /30 at
 * 198.18.0.0 + 4i, the hub end .1 and the unit end .2, and inside the unit a route to
 * 198.19.0.0/16 via the hub end. Nothing is ever put in the root namespace.
 */
import { appendFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { AuditRecord } from './daemon.js';
import {
  bashScript,
  batchNamespaceLines,
  bench,
  type BenchOptions,
  cell,
  cpuOf,
  DaemonBackend,
  environmentLines,
  failureMark,
  httpLabel,
  ipBatchFile,
  median,
  type Method,
  type MethodId,
  type MethodResult,
  notesLines,
  phase,
  quantiles,
  type Report as HarnessReport,
  type Transport,
  shellNamespaceLines,
  writeLines,
} from './harness.js';
import { namesFor, runPrefix, verifyCreated, VerifyError, waitFreed } from './netns.js';
import { IP, mapLimit, runOk } from './proc.js';

/** /30s in 198.18.0.0/16; the route's destination is the other half of 198.18.0.0/15. */
export const MAX_UNITS = 16384;
const ROUTE_DST = '198.19.0.0/16';
/** The unit end's name (the same in every unit: each is its own namespace). */
const UNIT_LINK = 'u0';

export interface Options extends BenchOptions {
  /** Units (c) and (d) make and delete before the timed run, in rounds of n (default 10·n; 0: a cold daemon). */
  readonly warmup?: number;
}

/** `ms.create`: the wall time of making every unit (the hub exists before). */
export type Report = HarnessReport<'units'>;

/** One unit: its namespace, the hub end's name, and the /30 between them. */
export interface Unit {
  readonly ns: string;
  /** The veth end in the hub, `h<i>`. */
  readonly hubLink: string;
  /** `198.18.x.y/30` addresses of the hub end and of the unit end. */
  readonly hubAddress: string;
  readonly unitAddress: string;
  /** The hub end's address without prefix: the unit's gateway. */
  readonly gateway: string;
}

export function unitsFor(method: string, n: number): { hub: string; units: Unit[] } {
  if (n > MAX_UNITS) throw new Error(`at most ${MAX_UNITS} units (a /30 each in 198.18.0.0/16)`);
  const units = namesFor(method, n).map((ns, i) => {
    const quad = (k: number) => `198.18.${(4 * i + k) >> 8}.${(4 * i + k) & 255}`;
    return { ns, hubLink: `h${i}`, hubAddress: `${quad(1)}/30`, unitAddress: `${quad(2)}/30`, gateway: quad(1) };
  });
  return { hub: `${runPrefix()}${method}hub`, units };
}

/** One way of making the units; `create` resolves with its wall time (ms). */
interface Way {
  readonly label: string;
  /** Untimed: makes the hub (loopback up, nsid set), and whatever else the way needs first. */
  setup(hub: string): Promise<void>;
  create(hub: string, units: readonly Unit[]): Promise<number>;
  teardown?(): Promise<string[]>;
}

/**
 * (a) One `ip` process per step, as a bash script (harness bashScript): per unit nine, the
 * namespace's three as in the namespaces benchmark, then the veth made from inside the hub, its
 * hub end up and addressed, its unit end up and addressed, and the route.
 */
function shellLoop(tmp: string, signal: AbortSignal): Way {
  return {
    label: 'shell loop, one `ip` per step',
    setup: async (hub) => void (await bashScript(tmp, 'hub.sh', shellNamespaceLines(hub), signal)),
    create: (hub, units) =>
      bashScript(
        tmp,
        'create.sh',
        units.flatMap((u) => [
          ...shellNamespaceLines(u.ns),
          `${IP} -n ${hub} link add ${u.hubLink} type veth peer name ${UNIT_LINK} netns ${u.ns}`,
          `${IP} -n ${hub} link set ${u.hubLink} up`,
          `${IP} -n ${hub} address add ${u.hubAddress} dev ${u.hubLink}`,
          `${IP} -n ${u.ns} link set ${UNIT_LINK} up`,
          `${IP} -n ${u.ns} address add ${u.unitAddress} dev ${UNIT_LINK}`,
          `${IP} -n ${u.ns} route add ${ROUTE_DST} via ${u.gateway}`,
        ]),
        signal,
      ),
  };
}

/**
 * (b) One `ip -batch FILE` (harness ipBatchFile). Batch lines take no `-n` (iproute2 6.1), so what
 * must run inside a namespace is a `netns exec` line, which forks: the fewest forks are one for
 * the hub and one per unit, each running a small `ip -batch` file of its own (written before
 * timing starts). From the root the batch adds the namespaces, sets their nsids and makes each
 * veth with both ends already in place (`link add h<i> netns HUB type veth peer name u0 netns U`).
 */
function ipBatch(tmp: string, signal: AbortSignal): Way {
  return {
    label: '`ip -batch` file',
    setup: async (hub) => void (await ipBatchFile(tmp, 'hub.batch', batchNamespaceLines(hub), signal)),
    async create(hub, units) {
      const hubFile = await writeLines(tmp, 'in-hub.batch', units.flatMap((u) => [`link set ${u.hubLink} up`, `address add ${u.hubAddress} dev ${u.hubLink}`]));
      const unitFiles = await mapLimit(units, 8, (u) =>
        writeLines(tmp, `in-${u.ns}.batch`, ['link set lo up', `link set ${UNIT_LINK} up`, `address add ${u.unitAddress} dev ${UNIT_LINK}`, `route add ${ROUTE_DST} via ${u.gateway}`]),
      );
      return ipBatchFile(
        tmp,
        'create.batch',
        [
          ...units.flatMap((u) => [`netns add ${u.ns}`, `netns set ${u.ns} auto`]),
          ...units.map((u) => `link add ${u.hubLink} netns ${hub} type veth peer name ${UNIT_LINK} netns ${u.ns}`),
          `netns exec ${hub} ${IP} -batch ${hubFile}`,
          ...units.map((u, i) => `netns exec ${u.ns} ${IP} -batch ${unitFiles[i]}`),
        ],
        signal,
      );
    },
  };
}

/**
 * (c)/(d) netnsd over HTTP (a fresh daemon per method, started untimed; the hub made through it
 * untimed too). Per unit five requests in order, the units taken from one queue by `clients`
 * workers: the namespace, the veth from the hub (`up` brings both ends up), the address of the
 * hub end, the address of the unit end, the route inside the unit.
 *
 * `warmup` units are made the same way first (untimed), in rounds of at most N (each round made,
 * deleted through the API, and the kernel left to free it), so that the daemon is in the state of
 * one that has served a while: V8 compiles a function with its optimizing compiler only once it
 * has run often, and a fresh daemon runs the request path in the interpreter while compiling it on
 * the other CPU with the clock running. Measured here with N = 200: (c) took ~1.5× as long after
 * no warm-up as after 2000 units, ~1.2× after 200. `--warmup 0` measures the cold daemon.
 */
function daemonHttp(id: MethodId, clients: number, size: number, warmup: number, transport: Transport, signal: AbortSignal, notes: string[]): Way {
  const api = new DaemonBackend(signal, notes, transport);
  let hubName = '';
  /** Audit records before the timed run (the hub's, the warm-up's): left out of the breakdown. */
  let untimed = 0;
  /** Changes sent so far: each has an audit record, which reaches us a moment after its answer. */
  let changes = 0;
  const post = (path: string, body: unknown) => (changes++, api.call('POST', path, body, 201));
  const del = (path: string) => (changes++, api.call('DELETE', path, undefined, 204));
  const nsPath = (ns: string, what: string) => `/v1/namespaces/${encodeURIComponent(ns)}/${what}`;
  /** One unit, five requests; the unit namespace's nsid (from its creation's answer). */
  const make = async (hub: string, u: Unit): Promise<number> => {
    const { nsid } = JSON.parse(await post('/v1/namespaces', { name: u.ns })) as { nsid: number };
    await post(nsPath(hub, 'links'), { name: u.hubLink, kind: 'veth', peer: { name: UNIT_LINK, namespace: u.ns }, up: true });
    await post(nsPath(hub, 'addresses'), { link: u.hubLink, address: u.hubAddress });
    await post(nsPath(u.ns, 'addresses'), { link: UNIT_LINK, address: u.unitAddress });
    await post(nsPath(u.ns, 'routes'), { dst: ROUTE_DST, via: u.gateway });
    return nsid;
  };
  return {
    label: httpLabel(clients, transport),
    async setup(hub) {
      hubName = hub;
      await api.start();
      await post('/v1/namespaces', { name: hub });
      await warm(hub);
      // Every untimed change's audit line in (each is logged just after its answer), then count them.
      for (let waited = 0; api.daemon.audits().length < changes && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
      untimed = api.daemon.audits().length;
    },
    async create(hub, units) {
      // The CPU the daemon and this process (the clients) take while the units are made.
      const [d0, c0] = [await cpuOf(api.daemon.pid), process.cpuUsage()];
      const ms = await api.drive(units, clients, async (u) => void (await make(hub, u)));
      const [d1, c1] = [await cpuOf(api.daemon.pid), process.cpuUsage(c0)];
      const s = (x: number) => (x / 1000).toFixed(3);
      notes.push(
        `CPU while the units were made (${s(ms)} s on ${cpus().length} CPUs): the daemon ${s(d1.all - d0.all)} s, ${s(d1.main - d0.main)} s of it its event loop; ` +
          `the clients (this process) ${s((c1.user + c1.system) / 1000)} s`,
      );
      return ms;
    },
    teardown: () => api.stop((d) => breakdown(d.audits().slice(untimed), hubName)),
  };

  /** The warm-up: `warmup` units in rounds of at most N, each made, deleted and freed. */
  async function warm(hub: string): Promise<void> {
    if (warmup === 0) return;
    const t0 = performance.now();
    for (let round = 0, done = 0; done < warmup; round++) {
      // Names of their own; the same addresses and hub link names, free again once deleted.
      const { units } = unitsFor(`${id}w${round}-`, Math.min(size, warmup - done));
      const nsids: number[] = [];
      await api.drive(units, clients, async (u) => void nsids.push(await make(hub, u)));
      await api.drive(units, clients, async (u) => void (await del(`/v1/namespaces/${encodeURIComponent(u.ns)}`)));
      const freed = await waitFreed(nsids, units.map((u) => u.ns));
      if (freed.pending > 0) throw new Error(`warm-up: the kernel had not freed ${freed.pending} of its namespaces after ${(freed.ms / 1000).toFixed(0)} s`);
      done += units.length;
    }
    notes.push(`warm-up (untimed): the daemon made ${warmup} units the same way, in rounds of at most ${size}, and deleted them, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

/** Op kinds the executor serves with a one-shot `ip -j ...` process (iproute2-executor.ts). */
const ONE_SHOT = new Set(['link.list', 'link.nsids', 'link.stats', 'addr.list', 'route.list']);

/** How an op ran: a process of its own, a line to a long-lived batch worker, or in-process. */
function how(kind: string, argv: readonly unknown[]): string {
  return argv.length === 0 ? 'in-process' : ONE_SHOT.has(kind) ? 'spawn' : 'batch line';
}

/**
 * Where the daemon's time went in the timed run, from its audit records: per kind of request (the hub's and the
 * units' addresses apart), its own time, and per op kind how many ran per request, how (spawn,
 * batch line, in-process) and how long (from the executor starting it: not its wait in the
 * pool's queue, which is part of the rest, with HTTP, validation and the store).
 */
function breakdown(timed: readonly AuditRecord[], hub: string): string[] {
  const groups = new Map<string, AuditRecord[]>();
  for (const a of timed) {
    const key = `${a.action}${a.action === 'address.create' ? (a.namespace === hub ? ' (hub end)' : ' (unit end)') : ''}`;
    groups.set(key, [...(groups.get(key) ?? []), a]);
  }
  return [...groups].map(([key, recs]) => {
    // By op kind and where it ran: a list of the hub (which fills up) is not one of a unit.
    const kinds = new Map<string, { how: string; ms: number[] }>();
    for (const r of recs) {
      for (const op of r.ops) {
        const key = `${op.kind} in ${op.ns === hub ? 'hub' : op.ns === 'host' ? 'host' : 'unit'}`;
        const k = kinds.get(key) ?? { how: how(op.kind, op.argv), ms: [] };
        k.ms.push(op.durationMs);
        kinds.set(key, k);
      }
    }
    const opsMs = recs.map((r) => r.ops.reduce((t, op) => t + op.durationMs, 0));
    const rest = recs.map((r, i) => r.durationMs - opsMs[i]!);
    const spawns = [...kinds.values()].filter((k) => k.how === 'spawn').reduce((t, k) => t + k.ms.length, 0) / recs.length;
    const perKind = [...kinds]
      .map(([kind, k]) => `${kind} ×${(k.ms.length / recs.length).toFixed(1)} ${k.how} p50 ${median(k.ms).toFixed(1)} ms`)
      .join('; ');
    return (
      `daemon-side ${key}, ${recs.length} requests: ${quantiles(recs.map((r) => r.durationMs))}; ` +
      `per request ${spawns.toFixed(1)} spawned \`ip\` processes; ops ${perKind}; ` +
      `ops sum p50 ${median(opsMs).toFixed(1)} ms, rest (pool queue, HTTP, store) p50 ${median(rest).toFixed(1)} ms`
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Verification (untimed)
// ---------------------------------------------------------------------------------------------

interface IpLink {
  ifindex: number;
  ifname: string;
  flags?: string[];
  link_index?: number;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string };
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

async function ipJson<T>(argv: string[]): Promise<T> {
  const r = await runOk(argv);
  return (r.stdout.trim() ? JSON.parse(r.stdout) : []) as T;
}

/** What is wrong with one veth end (kind, UP, its one IPv4 address, its peer's ifindex), or ''. */
function endProblem(where: string, l: IpLink | undefined, address: string, peerIndex: number | undefined): string {
  if (!l) return `${where}: missing`;
  if (l.linkinfo?.info_kind !== 'veth') return `${where}: not a veth`;
  if (!l.flags?.includes('UP')) return `${where}: not UP`;
  const v4 = (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
  if (v4.length !== 1 || v4[0] !== address) return `${where}: addresses ${v4.join(',') || 'none'}, not ${address}`;
  if (peerIndex !== undefined && l.link_index !== peerIndex) return `${where}: peer ifindex ${l.link_index}, not ${peerIndex}`;
  return '';
}

/**
 * Every unit, in full: the namespaces exist with loopback UP and an nsid (as the namespaces
 * benchmark checks them); in the hub each `h<i>` is an UP veth with its /30 whose peer is in that
 * unit's namespace (its link-netnsid is the unit's nsid in the hub); in the unit `u0` is an UP veth with
 * its /30 and the hub end as its peer; the route goes via the hub end over `u0`. Returns the
 * nsids (to watch the kernel free them).
 */
export async function verifyUnits(hub: string, units: readonly Unit[]): Promise<number[]> {
  const nsids = await verifyCreated([hub, ...units.map((u) => u.ns)]);
  const hubLinks = new Map((await ipJson<IpLink[]>([IP, '-n', hub, '-j', '-d', 'address', 'show'])).map((l) => [l.ifname, l]));
  // name -> nsid as the hub sees them (`ip netns list` in the hub; not `list-id`, which lists at
  // most 134).
  const inHub = new Map((await ipJson<{ name: string; id?: number }[]>([IP, '-n', hub, '-j', 'netns', 'list'])).map((x) => [x.name, x.id]));
  const problems: string[] = [];
  await mapLimit(units, 4, async (u) => {
    const [end] = await ipJson<IpLink[]>([IP, '-n', u.ns, '-j', '-d', 'address', 'show', 'dev', UNIT_LINK]).catch(() => [undefined]);
    const h = hubLinks.get(u.hubLink);
    const p = [endProblem(`hub ${u.hubLink}`, h, u.hubAddress, end?.ifindex), endProblem(`${u.ns} ${UNIT_LINK}`, end, u.unitAddress, h?.ifindex)];
    if (h && (h.link_netnsid === undefined || h.link_netnsid !== inHub.get(u.ns))) {
      p.push(`hub ${u.hubLink}: peer in the namespace of nsid ${h.link_netnsid}, not ${u.ns} (${inHub.get(u.ns) ?? 'no nsid'} in the hub)`);
    }
    const routes = await ipJson<{ dst?: string; gateway?: string; dev?: string }[]>([IP, '-n', u.ns, '-j', '-4', 'route', 'show', ROUTE_DST]);
    if (!routes.some((r) => r.dst === ROUTE_DST && r.gateway === u.gateway && r.dev === UNIT_LINK)) p.push(`${u.ns}: no route ${ROUTE_DST} via ${u.gateway} dev ${UNIT_LINK}`);
    problems.push(...p.filter(Boolean));
  });
  if (problems.length) throw new VerifyError(`${problems.length} problems with the units, e.g. ${problems.slice(0, 3).join('; ')}`);
  return nsids;
}

// ---------------------------------------------------------------------------------------------

function asMethod(w: Way, id: MethodId, n: number, progress: (line: string) => void): Method {
  const { hub, units } = unitsFor(id, n);
  return {
    label: w.label,
    setup: () => w.setup(hub),
    ...(w.teardown ? { teardown: () => w.teardown!() } : {}),
    async run(ms) {
      progress(`(${id}) ${w.label}: making ${n} units from hub ${hub}`);
      const from = process.hrtime.bigint();
      const t = await phase(ms, 'create', () => w.create(hub, units));
      markWindow(id, from, process.hrtime.bigint());
      const nsids = await verifyUnits(hub, units);
      progress(`(${id}) made in ${(t / 1000).toFixed(2)} s, verified`);
      return { names: [hub, ...units.map((u) => u.ns)], nsids };
    },
  };
}

/**
 * With BENCH_MARKS=FILE: appends `ID START END`, the timed window in seconds of CLOCK_MONOTONIC
 * (what `perf record -k mono` and a daemon's `--cpu-prof` timestamps count), so that a profile can
 * be cut to exactly the timed run.
 */
function markWindow(id: MethodId, from: bigint, to: bigint): void {
  const file = process.env.BENCH_MARKS;
  if (file) appendFileSync(file, `${id} ${Number(from) / 1e9} ${Number(to) / 1e9}\n`);
}

/** Runs the benchmark. Throws only for problems before any namespace was made. */
export function benchUnits(o: Options): Promise<Report> {
  return bench('units', o, (id, tmp, notes) => {
    const w = id === 'a' ? shellLoop(tmp, o.signal) : id === 'b' ? ipBatch(tmp, o.signal) : daemonHttp(id, id === 'c' ? o.clients : 1, o.n, o.warmup ?? 10 * o.n, o.transport ?? 'tcp', o.signal, notes);
    return asMethod(w, id, o.n, o.progress);
  });
}

/** With several rounds: (c) against (b) and (a) within each round (methods of one round ran minutes apart at most). */
export function perRoundRatios(results: readonly MethodResult[]): string[] {
  const rounds = (id: string) => results.find((x) => x.id === id && x.ok)?.perRound?.create;
  const [a, b, c] = [rounds('a'), rounds('b'), rounds('c')];
  if (!c) return [];
  const ratios = (xs: readonly number[]) => `${xs.map((x) => `${x.toFixed(2)}×`).join(', ')} (median ${median(xs).toFixed(2)}×)`;
  return [
    '',
    ...(b?.length === c.length ? [`- per round, (c) vs (b): ${ratios(c.map((v, i) => v / b[i]!))}`] : []),
    ...(a?.length === c.length ? [`- per round, (a) ÷ (c): ${ratios(a.map((v, i) => v / c[i]!))}`] : []),
  ];
}

/** The report as Markdown: the environment, the table, and notes (failures in full). */
export function toMarkdown(r: Report): string {
  const ms = (id: string) => r.results.find((x) => x.id === id && x.ok)?.ms.create;
  const [shell, batch] = [ms('a'), ms('b')];
  const { seconds: s, ratio } = cell;
  const per = (t?: number) => cell.per(t, r.n);
  const out = [
    `## units: ${r.n} namespaces, each with a veth from one hub, an address on each end and a route`,
    '',
    ...environmentLines(r.env, r.clients, r.rounds),
    '',
    '| method | create (s) | ms/unit | vs (b) | (a) ÷ this |',
    '|---|---:|---:|---:|---:|',
    ...r.results.map((x) => `| (${x.id}) ${x.label}${failureMark(x)} | ${s(x.ms.create)} | ${per(x.ms.create)} | ${ratio(x.ms.create, batch)} | ${ratio(shell, x.ms.create)} |`),
    '',
    '"vs (b)" is wall time divided by that of one `ip -batch` (target for (c): at most 1.5×); "(a) ÷ this" is how many times faster than the shell loop (target for (c): at least 5×).',
    ...perRoundRatios(r.results),
    ...notesLines(r.results, r.aborted),
  ];
  return `${out.join('\n')}\n`;
}
