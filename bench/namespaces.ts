/**
 * The namespace benchmark: create N namespaces (loopback up, nsid set) and delete them again, four
 * ways in one run, so that every figure comes from the same machine in the same state:
 *
 *   (a) a shell loop, one `ip` process per step — what a script does;
 *   (b) one `ip -batch` file — iproute2's own fastest path, the baseline of the ratios;
 *   (c) netnsd over HTTP with `clients` concurrent callers;
 *   (d) netnsd over HTTP with one caller (the per-request latency, no overlap).
 *
 * Each method does the same work per namespace (checked after creation for every namespace, not
 * timed), and the kernel is left to finish freeing the deleted namespaces before the next method
 * starts, so one method's cleanup does not slow the next.
 */
import type { Daemon } from './daemon.js';
import {
  bashScript,
  batchNamespaceLines,
  bench,
  type BenchOptions,
  cell,
  DaemonBackend,
  environmentLines,
  failureMark,
  httpLabel,
  ipBatchFile,
  type Method,
  type MethodId,
  notesLines,
  phase,
  quantiles,
  type Report as HarnessReport,
  shellNamespaceLines,
  type Transport,
} from './harness.js';
import { namesFor, verifyCreated, verifyDeleted } from './netns.js';
import { IP } from './proc.js';

export type Options = BenchOptions;

/** `ms.create` and `ms.delete`: the wall time of each phase. */
export type Report = HarnessReport<'namespaces'>;

/** One way of creating and deleting namespaces; each phase resolves with its wall time (ms). */
interface Way {
  readonly label: string;
  setup?(): Promise<void>;
  create(names: readonly string[]): Promise<number>;
  remove(names: readonly string[]): Promise<number>;
  /** Always called (after a failure too) before the namespaces are swept. */
  teardown?(): Promise<string[]>;
}

/** (a) One `ip` process per step, as a bash script (harness bashScript). */
function shellLoop(tmp: string, signal: AbortSignal): Way {
  return {
    label: 'shell loop, one `ip` per step',
    create: (names) => bashScript(tmp, 'create.sh', names.flatMap(shellNamespaceLines), signal),
    remove: (names) => bashScript(tmp, 'delete.sh', names.map((n) => `${IP} netns del ${n}`), signal),
  };
}

/**
 * (b) One `ip -batch FILE`: one process for everything, but for the `netns exec` line per
 * namespace that brings loopback up (batch lines take no `-n`), which forks an `ip` anyway.
 */
function ipBatch(tmp: string, signal: AbortSignal): Way {
  return {
    label: '`ip -batch` file',
    create: (names) => ipBatchFile(tmp, 'create.batch', names.flatMap(batchNamespaceLines), signal),
    remove: (names) => ipBatchFile(tmp, 'delete.batch', names.map((n) => `netns del ${n}`), signal),
  };
}

/**
 * (c)/(d) netnsd over HTTP (a DaemonBackend: fresh daemon per method, started untimed): POST
 * /v1/namespaces per name (201, loopback up and nsid in the answer) and DELETE
 * /v1/namespaces/NAME (204) from `clients` workers.
 */
function daemonHttp(clients: number, transport: Transport, signal: AbortSignal, notes: string[]): Way {
  const api = new DaemonBackend(signal, notes, transport);
  return {
    label: httpLabel(clients, transport),
    setup: () => api.start(),
    create: (names) =>
      api.drive(names, clients, async (name) => {
        const text = await api.call('POST', '/v1/namespaces', { name }, 201);
        const ns = JSON.parse(text) as { name?: string; nsid?: number | null };
        if (ns.name !== name || typeof ns.nsid !== 'number') {
          throw new Error(`POST /v1/namespaces {"name":"${name}"}: 201 but the body is not that namespace with an nsid: ${text.slice(0, 400)}`);
        }
      }),
    remove: (names) =>
      api.drive(names, clients, async (name) => {
        await api.call('DELETE', `/v1/namespaces/${encodeURIComponent(name)}`, undefined, 204);
      }),
    teardown: () => api.stop(responseTimeNotes),
  };
}

/** The daemon's own time per create and delete request (the audit record's durationMs: fastify's elapsed time at the answer). */
function responseTimeNotes(d: Daemon): string[] {
  return (
    [
      ['create', 'POST'],
      ['delete', 'DELETE'],
    ] as const
  ).flatMap(([what, method]) => {
    const t = d.responseTimes(method);
    return t.length ? [`daemon-side ${what} time (the daemon's time to answer, ${t.length} requests): ${quantiles(t)}`] : [];
  });
}

/** A way as a method of the harness: create, check, delete, check. */
function asMethod(w: Way, id: MethodId, n: number, progress: (line: string) => void): Method {
  return {
    label: w.label,
    ...(w.setup ? { setup: () => w.setup!() } : {}),
    ...(w.teardown ? { teardown: () => w.teardown!() } : {}),
    async run(ms) {
      const names = namesFor(id, n);
      progress(`(${id}) ${w.label}: creating ${n} namespaces`);
      const createMs = await phase(ms, 'create', () => w.create(names));
      const nsids = await verifyCreated(names);
      progress(`(${id}) created in ${(createMs / 1000).toFixed(2)} s, verified; deleting`);
      const deleteMs = await phase(ms, 'delete', () => w.remove(names));
      await verifyDeleted(names);
      progress(`(${id}) deleted in ${(deleteMs / 1000).toFixed(2)} s, verified`);
      return { names, nsids };
    },
  };
}

/** Runs the benchmark. Throws only for problems before any namespace was made. */
export function benchNamespaces(o: Options): Promise<Report> {
  return bench('namespaces', o, (id, tmp, notes) => {
    const w = id === 'a' ? shellLoop(tmp, o.signal) : id === 'b' ? ipBatch(tmp, o.signal) : daemonHttp(id === 'c' ? o.clients : 1, o.transport ?? 'tcp', o.signal, notes);
    return asMethod(w, id, o.n, o.progress);
  });
}

/** The report as Markdown: the environment, the table, and notes (failures in full). */
export function toMarkdown(r: Report): string {
  const base = r.results.find((x) => x.id === 'b' && x.ok)?.ms;
  const { seconds: s, ratio } = cell;
  const per = (ms?: number) => cell.per(ms, r.n);
  const out = [
    `## namespaces: create and delete ${r.n} (loopback up, nsid set)`,
    '',
    ...environmentLines(r.env, r.clients, r.rounds),
    '',
    '| method | create (s) | ms/ns | delete (s) | ms/ns | create vs (b) | delete vs (b) |',
    '|---|---:|---:|---:|---:|---:|---:|',
    // A failed method shows what it measured before failing, marked as such.
    ...r.results.map(
      (x) =>
        `| (${x.id}) ${x.label}${failureMark(x)} | ${s(x.ms.create)} | ${per(x.ms.create)} | ${s(x.ms.delete)} | ${per(x.ms.delete)} | ${ratio(x.ms.create, base?.create)} | ${ratio(x.ms.delete, base?.delete)} |`,
    ),
    '',
    'Ratios are wall time divided by that of (b): above 1 is slower than one `ip -batch`.',
    ...notesLines(r.results, r.aborted),
  ];
  return `${out.join('\n')}\n`;
}
