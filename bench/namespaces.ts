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
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, daemonEntry } from './daemon.js';
import { call, drive, RequestError } from './http-load.js';
import { listNamespaces, namesFor, runPrefix, sweep, verifyCreated, verifyDeleted, waitFreed } from './netns.js';
import { AbortedError, IP, runOk } from './proc.js';

export const METHOD_IDS = ['a', 'b', 'c', 'd'] as const;
export type MethodId = (typeof METHOD_IDS)[number];

export interface Options {
  readonly n: number;
  readonly clients: number;
  readonly methods: readonly MethodId[];
  readonly signal: AbortSignal;
  /** Progress lines (stderr). */
  readonly progress: (line: string) => void;
}

export interface MethodResult {
  readonly id: MethodId;
  readonly label: string;
  readonly ok: boolean;
  readonly createMs?: number;
  readonly deleteMs?: number;
  /** Time the kernel took, after the delete phase, to free the last of the namespaces. */
  readonly freedMs?: number;
  readonly error?: string;
  readonly notes: string[];
}

export interface Environment {
  readonly date: string;
  readonly kernel: string;
  readonly iproute2: string;
  readonly node: string;
  readonly cpus: number;
  readonly cpuModel: string;
  readonly daemon: string;
  /** Named namespaces on the machine before the run (other users' ones slow `ip -n` down). */
  readonly namespacesBefore: number;
}

export interface Report {
  readonly benchmark: 'namespaces';
  readonly n: number;
  readonly clients: number;
  readonly env: Environment;
  readonly results: MethodResult[];
  readonly aborted: boolean;
}

/** One way of creating and deleting namespaces; each phase resolves with its wall time (ms). */
interface Method {
  readonly label: string;
  setup?(): Promise<void>;
  create(names: readonly string[]): Promise<number>;
  remove(names: readonly string[]): Promise<number>;
  /** Always called (after a failure too) before the namespaces are swept. */
  teardown?(): Promise<string[]>;
}

/**
 * (a) One `ip` process per step, as a shell script written to a file and run by bash, so the
 * timing includes exactly what a script pays: a fork+exec per step, and `ip -n` entering the
 * namespace (with its mount-table copy) each time. `set -e` makes the first failure fatal.
 */
function shellLoop(tmp: string, signal: AbortSignal): Method {
  const script = async (file: string, lines: string[]) => {
    const path = join(tmp, file);
    await writeFile(path, ['set -e', ...lines, ''].join('\n'));
    return (await runOk(['/bin/bash', path], { signal })).ms;
  };
  return {
    label: 'shell loop, one `ip` per step',
    create: (names) =>
      script(
        'create.sh',
        names.flatMap((n) => [`${IP} netns add ${n}`, `${IP} -n ${n} link set lo up`, `${IP} netns set ${n} auto`]),
      ),
    remove: (names) => script('delete.sh', names.map((n) => `${IP} netns del ${n}`)),
  };
}

/**
 * (b) One `ip -batch FILE`: one process for everything. Batch lines take no `-n` (iproute2 6.1),
 * so bringing loopback up inside the namespace is a `netns exec` line, which forks an `ip` per
 * namespace anyway; `netns add` and `netns set` run in the batch process itself. Without
 * `-force`, ip stops at the first failing line and exits non-zero.
 */
function ipBatch(tmp: string, signal: AbortSignal): Method {
  const batch = async (file: string, lines: string[]) => {
    const path = join(tmp, file);
    await writeFile(path, [...lines, ''].join('\n'));
    return (await runOk([IP, '-batch', path], { signal })).ms;
  };
  return {
    label: '`ip -batch` file',
    create: (names) =>
      batch(
        'create.batch',
        names.flatMap((n) => [`netns add ${n}`, `netns exec ${n} ${IP} link set lo up`, `netns set ${n} auto`]),
      ),
    remove: (names) => batch('delete.batch', names.map((n) => `netns del ${n}`)),
  };
}

/**
 * (c)/(d) netnsd over HTTP: a fresh daemon per method (its own data directory, so (d) does not
 * inherit (c)'s store), started untimed; one untimed authenticated GET checks the token and warms
 * one connection. Then POST /v1/namespaces per name (201, loopback up and nsid in the answer) and
 * DELETE /v1/namespaces/NAME (204) from `clients` workers.
 */
function daemonHttp(clients: number, signal: AbortSignal, notes: string[]): Method {
  let d: Daemon | undefined;
  const client = () => ({ base: d!.url.replace(/^tcp:/, 'http:'), token: d!.token, timeoutMs: 60_000 });
  /** Turns a failed request into a report with the daemon's own log lines for it. */
  const explain = async (e: unknown): Promise<never> => {
    if (e instanceof RequestError && d) {
      const lines = e.requestId ? d.linesFor(e.requestId) : [];
      // A request without an answer may mean the daemon died: say so if it did.
      const exit = e.status === undefined ? await d.exitWithin(500) : d.exit;
      throw new Error(
        [
          e.message,
          ...(e.requestId ? [`  requestId ${e.requestId}; daemon log lines for it:`, ...lines.map((l) => `    ${l}`)] : []),
          ...(exit ? [`  the daemon had exited (${exit.signal ?? exit.code}); log: ${d.logFile}`] : []),
        ].join('\n'),
        { cause: e },
      );
    }
    throw e;
  };
  return {
    label: `netnsd HTTP, ${clients} client${clients === 1 ? '' : 's'}`,
    async setup() {
      d = await Daemon.start({ signal });
      notes.push(`daemon (${d.entry}) listening after ${(d.startupMs / 1000).toFixed(2)} s (untimed)`);
      await call(client(), 'GET', '/v1/namespaces?limit=1', undefined, 200, signal).catch(explain);
    },
    create: (names) =>
      drive(names, clients, signal, async (name) => {
        const text = await call(client(), 'POST', '/v1/namespaces', { name }, 201, signal);
        const ns = JSON.parse(text) as { name?: string; nsid?: number | null };
        if (ns.name !== name || typeof ns.nsid !== 'number') {
          throw new Error(`POST /v1/namespaces {"name":"${name}"}: 201 but the body is not that namespace with an nsid: ${text.slice(0, 400)}`);
        }
      }).catch(explain),
    remove: (names) =>
      drive(names, clients, signal, async (name) => {
        await call(client(), 'DELETE', `/v1/namespaces/${encodeURIComponent(name)}`, undefined, 204, signal);
      }).catch(explain),
    async teardown() {
      if (!d) return [];
      const problems: string[] = [];
      const s = await d.stop();
      const warnings = d.warnings.length;
      // After stop: only then has every log line been read (an answer can beat its log line).
      for (const [what, method] of [['create', 'POST'], ['delete', 'DELETE']] as const) {
        const t = d.responseTimes(method);
        if (t.length) notes.push(`daemon-side ${what} time (fastify responseTime, ${t.length} requests): ${quantiles(t)}`);
      }
      if (s.died) problems.push(`the daemon died (${s.signal ?? `exit ${s.code}`}) before it was stopped; log: ${d.logFile}`);
      else if (s.killed) problems.push(`the daemon did not exit within 30 s of SIGTERM and was killed; log: ${d.logFile}`);
      else if (s.code !== 0) problems.push(`the daemon exited with ${s.signal ?? s.code} after SIGTERM; log: ${d.logFile}`);
      else notes.push(`daemon stopped by SIGTERM in ${(s.ms / 1000).toFixed(2)} s`);
      if (warnings) {
        notes.push(`daemon logged ${warnings} warning/error lines, e.g. ${d.warnings[0]!.raw.slice(0, 300)}`);
      }
      if (problems.length === 0 && warnings === 0) await rm(d.dir, { recursive: true, force: true });
      else {
        await rm(join(d.dir, 'tokens.json'), { force: true });
        notes.push(`daemon log and store kept in ${d.dir}`);
      }
      return problems;
    },
  };
}

/** `p50 X ms, p95 Y ms, max Z ms` of a list of milliseconds. */
function quantiles(ms: readonly number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(1);
  return `p50 ${q(0.5)} ms, p95 ${q(0.95)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms`;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function environment(): Promise<Environment> {
  const v = await runOk([IP, '-V']);
  return {
    date: new Date().toISOString(),
    kernel: release(),
    iproute2: v.stdout.trim(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    daemon: daemonEntry().label,
    namespacesBefore: (await listNamespaces()).length,
  };
}

/** Runs the benchmark. Throws only for problems before any namespace was made. */
export async function benchNamespaces(o: Options): Promise<Report> {
  const prefix = runPrefix();
  const before = await listNamespaces();
  const clash = before.filter((n) => n.startsWith(prefix));
  if (clash.length) {
    // Not ours (this process has made nothing yet), so not ours to delete.
    throw new Error(`namespaces with this run's prefix ${prefix} already exist (${clash.slice(0, 3).join(' ')}...); remove them first`);
  }
  const stale = before.filter((n) => n.startsWith('nnb-'));
  if (stale.length) o.progress(`warning: ${stale.length} nnb-* namespaces of other runs exist (${stale.slice(0, 3).join(' ')}); not touching them`);

  const env = await environment();
  const tmp = await mkdtemp(join(tmpdir(), 'netns-bench-'));
  const results: MethodResult[] = [];
  let aborted = false;
  try {
    for (const id of o.methods) {
      if (o.signal.aborted) break;
      const notes: string[] = [];
      const m =
        id === 'a'
          ? shellLoop(tmp, o.signal)
          : id === 'b'
            ? ipBatch(tmp, o.signal)
            : daemonHttp(id === 'c' ? o.clients : 1, o.signal, notes);
      const names = namesFor(id, o.n);
      let createMs: number | undefined;
      let deleteMs: number | undefined;
      let freedMs: number | undefined;
      let error: string | undefined;
      let nsids: number[] = [];
      let failure: { e: unknown } | undefined;
      try {
        await m.setup?.();
        o.progress(`(${id}) ${m.label}: creating ${o.n} namespaces`);
        createMs = await m.create(names);
        nsids = await verifyCreated(names);
        o.progress(`(${id}) created in ${(createMs / 1000).toFixed(2)} s, verified; deleting`);
        deleteMs = await m.remove(names);
        await verifyDeleted(names);
        o.progress(`(${id}) deleted in ${(deleteMs / 1000).toFixed(2)} s, verified`);
      } catch (e) {
        failure = { e };
      }
      // Always (stops the daemon, which lets work it started finish, before any sweep).
      try {
        const problems = (await m.teardown?.()) ?? [];
        if (problems.length && !failure) failure = { e: new Error(problems.join('; ')) };
        else notes.push(...problems);
      } catch (e) {
        failure ??= { e };
      }
      if (!failure) {
        try {
          const freed = await waitFreed(nsids, names);
          freedMs = freed.ms;
          if (freed.pending) {
            notes.push(`the kernel still held ${freed.pending} deleted namespaces ${(freed.ms / 1000).toFixed(0)} s after the delete phase (pinned?)`);
          }
        } catch (e) {
          failure = { e };
        }
      }
      if (failure) {
        if (failure.e instanceof AbortedError || o.signal.aborted) aborted = true;
        error = aborted ? 'interrupted' : errorText(failure.e);
        if (!aborted) o.progress(`(${id}) FAILED: ${error}`);
      }
      // After a failure or an interrupt, remove what this method made before going on.
      if (error !== undefined) {
        const s = await sweep(prefix);
        if (s.removed.length) notes.push(`swept ${s.removed.length} namespaces left behind`);
        if (s.failed.length) throw new Error(`could not remove namespaces: ${s.failed.join('; ')}`);
      }
      results.push({
        id,
        label: m.label,
        ok: error === undefined,
        ...(createMs !== undefined ? { createMs } : {}),
        ...(deleteMs !== undefined ? { deleteMs } : {}),
        ...(freedMs !== undefined ? { freedMs } : {}),
        ...(error !== undefined ? { error } : {}),
        notes,
      });
      if (aborted) break;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { benchmark: 'namespaces', n: o.n, clients: o.clients, env, results, aborted };
}

/** The report as Markdown: the environment, the table, and notes (failures in full). */
export function toMarkdown(r: Report): string {
  const base = r.results.find((x) => x.id === 'b' && x.ok);
  const s = (ms?: number) => (ms === undefined ? '—' : (ms / 1000).toFixed(3));
  const per = (ms?: number) => (ms === undefined ? '—' : (ms / r.n).toFixed(2));
  const ratio = (ms?: number, b?: number) => (ms === undefined || b === undefined ? '—' : `${(ms / b).toFixed(2)}×`);
  const out = [
    `## namespaces: create and delete ${r.n} (loopback up, nsid set)`,
    '',
    `- date: ${r.env.date}`,
    `- kernel: ${r.env.kernel}`,
    `- iproute2: ${r.env.iproute2}`,
    `- node: ${r.env.node}`,
    `- CPUs: ${r.env.cpus} (${r.env.cpuModel})`,
    `- daemon: ${r.env.daemon}; (c) uses ${r.clients} concurrent clients`,
    `- named namespaces on the machine before the run: ${r.env.namespacesBefore}`,
    '',
    '| method | create (s) | ms/ns | delete (s) | ms/ns | create vs (b) | delete vs (b) |',
    '|---|---:|---:|---:|---:|---:|---:|',
    // A failed method shows what it measured before failing, marked as such.
    ...r.results.map((x) => {
      const mark = x.ok ? '' : x.error === 'interrupted' ? ' (interrupted)' : ' **FAILED**';
      return `| (${x.id}) ${x.label}${mark} | ${s(x.createMs)} | ${per(x.createMs)} | ${s(x.deleteMs)} | ${per(x.deleteMs)} | ${ratio(x.createMs, base?.createMs)} | ${ratio(x.deleteMs, base?.deleteMs)} |`;
    }),
    '',
    'Ratios are wall time divided by that of (b): above 1 is slower than one `ip -batch`.',
  ];
  const notes = r.results.flatMap((x) => [
    ...(x.error && x.error !== 'interrupted' ? [`- (${x.id}) FAILED: ${x.error.replace(/\n/g, '\n  ')}`] : []),
    ...x.notes.map((n) => `- (${x.id}) ${n}`),
    ...(x.freedMs !== undefined ? [`- (${x.id}) the kernel had freed every deleted namespace ${x.freedMs.toFixed(0)} ms after the delete phase${x.id === 'c' || x.id === 'd' ? ' and the daemon stopped' : ''}`] : []),
  ]);
  if (notes.length) out.push('', 'Notes:', ...notes);
  if (r.aborted) out.push('', '**Interrupted**: the namespaces of this run were removed.');
  return `${out.join('\n')}\n`;
}
