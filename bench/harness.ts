/**
 * What every benchmark shares: the machine's description, the loop that runs one method after
 * the other (setup, the timed phases with their untimed checks, teardown, removal of whatever of
 * this run is left, and the wait until the kernel has freed it, so one method's cleanup does not
 * slow the next), netnsd as a method's backend, and the parts of the report around the table.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon, daemonEntry } from './daemon.js';
import { type Client, call, closeClients, drive, RequestError } from './http-load.js';
import { listNamespaces, runPrefix, sweep, waitFreed } from './netns.js';
import { netnsDirLabel } from './netns-dir.js';
import { AbortedError, IP, runOk } from './proc.js';

/**
 * The four methods of every benchmark: (a) a shell loop of one `ip` per step, (b) one `ip -batch`
 * file, (c) netnsd over HTTP with many clients, (d) netnsd with one client.
 */
export const METHOD_IDS = ['a', 'b', 'c', 'd'] as const;
/** How (c) and (d) reach the daemon: `tcp` (127.0.0.1, a bearer token) or `unix` (its Unix socket). */
export type Transport = 'tcp' | 'unix';
export type MethodId = (typeof METHOD_IDS)[number];

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
  /** Where the namespaces are bound: a private tmpfs or the machine's /run/netns (netns-dir.ts). */
  readonly netnsDir: string;
}

export interface MethodResult {
  readonly id: string;
  readonly label: string;
  readonly ok: boolean;
  /** Wall time of each timed phase that finished, by phase name (ms). */
  readonly ms: Readonly<Record<string, number>>;
  /** Time the kernel took, after teardown and removal, to free the last of the namespaces. */
  readonly freedMs?: number;
  readonly error?: string;
  readonly notes: string[];
  /** With several rounds: each round's wall time of each phase (ms), in round order. */
  readonly perRound?: Readonly<Record<string, readonly number[]>>;
}

/** The namespaces a method made, to wait for the kernel to free them once they are deleted. */
export interface Made {
  readonly names: readonly string[];
  readonly nsids: readonly number[];
}

/** One way of doing the benchmark's work. */
export interface Method {
  readonly label: string;
  /** Untimed, before the timed phases. */
  setup?(): Promise<void>;
  /**
   * The timed phases and the untimed checks after each; each phase's wall time goes into `ms` as
   * soon as it is measured, so a later failure still reports it. Namespaces it leaves behind are
   * removed afterwards, untimed.
   */
  run(ms: Record<string, number>): Promise<Made>;
  /** Always called (after a failure too) before anything is removed; resolves with problems. */
  teardown?(): Promise<string[]>;
}

export interface RunOptions {
  readonly signal: AbortSignal;
  /** Progress lines (stderr). */
  readonly progress: (line: string) => void;
}

export interface BenchOptions extends RunOptions {
  /** Namespaces or units per method. */
  readonly n: number;
  /** Concurrent HTTP clients of (c). */
  readonly clients: number;
  readonly methods: readonly MethodId[];
  /** How (c) and (d) reach the daemon (default tcp). */
  readonly transport?: Transport;
  /** Times every method is run, in rounds of one run each (default 1); the report gives medians. */
  readonly rounds?: number;
}

export interface Report<B extends string> {
  readonly benchmark: B;
  readonly n: number;
  readonly clients: number;
  /** Rounds run (each ran every method once); with more than one, `results` holds medians. */
  readonly rounds: number;
  readonly env: Environment;
  readonly results: MethodResult[];
  readonly aborted: boolean;
}

/**
 * Runs a benchmark: checks that no name of this run exists yet, describes the machine, and runs
 * the methods, each made by `make` with a scratch directory (for scripts and batch files) that is
 * removed afterwards. Throws only for problems before any namespace was made.
 */
export async function bench<B extends string>(benchmark: B, o: BenchOptions, make: (id: MethodId, tmp: string, notes: string[]) => Method): Promise<Report<B>> {
  await checkNoClash(o.progress);
  const env = await environment();
  const tmp = await mkdtemp(join(tmpdir(), 'netns-bench-'));
  const rounds = o.rounds ?? 1;
  try {
    const all: MethodResult[][] = [];
    let aborted = false;
    for (let r = 1; r <= rounds && !aborted; r++) {
      if (rounds > 1) o.progress(`round ${r} of ${rounds}`);
      const round = await runMethods(o.methods, (id, notes) => make(id, tmp, notes), o);
      aborted = round.aborted;
      // An interrupted round counts only when it is the first (there is nothing else to report).
      if (!aborted || all.length === 0) all.push(round.results);
    }
    return { benchmark, n: o.n, clients: o.clients, rounds: all.length, env, results: combineRounds(all), aborted };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The middle value (the mean of the two middle ones for an even count; 0 for none). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * One result per method from several rounds of runs: each phase's median wall time, each
 * round's in `perRound`, and the notes of the round whose first phase is nearest the median.
 * A method that failed in any round is reported as that failure (the first), with its round.
 */
export function combineRounds(rounds: readonly (readonly MethodResult[])[]): MethodResult[] {
  if (rounds.length === 1) return [...rounds[0]!];
  const ids = [...new Set(rounds.flatMap((r) => r.map((x) => x.id)))];
  return ids.map((id) => {
    const runs = rounds.flatMap((r, i) => r.filter((x) => x.id === id).map((x) => ({ x, round: i + 1 })));
    const failed = runs.find((r) => !r.x.ok);
    if (failed) return { ...failed.x, ...(failed.x.error === 'interrupted' ? {} : { error: `in round ${failed.round} of ${rounds.length}: ${failed.x.error ?? ''}` }) };
    const phases = Object.keys(runs[0]!.x.ms);
    const perRound = Object.fromEntries(phases.map((p) => [p, runs.map((r) => r.x.ms[p]!)]));
    const ms = Object.fromEntries(phases.map((p) => [p, median(perRound[p]!)]));
    const first = phases[0];
    const typical = first === undefined ? runs[0]! : runs.reduce((best, r) => (Math.abs(r.x.ms[first]! - ms[first]!) < Math.abs(best.x.ms[first]! - ms[first]!) ? r : best));
    const freed = runs.flatMap((r) => (r.x.freedMs === undefined ? [] : [r.x.freedMs]));
    return {
      id,
      label: typical.x.label,
      ok: true,
      ms,
      ...(freed.length ? { freedMs: Math.max(...freed) } : {}),
      notes: [
        ...phases.map((p) => `${p} per round: ${perRound[p]!.map((v) => (v / 1000).toFixed(3)).join(', ')} s (median ${(ms[p]! / 1000).toFixed(3)} s)`),
        ...typical.x.notes.map((n) => `round ${typical.round}: ${n}`),
      ],
      perRound,
    };
  });
}

/** Refuses to start when names of this run exist already; warns about other runs' ones. */
export async function checkNoClash(progress: (line: string) => void): Promise<void> {
  const prefix = runPrefix();
  const before = await listNamespaces();
  const clash = before.filter((n) => n.startsWith(prefix));
  if (clash.length) {
    // Not ours (this process has made nothing yet), so not ours to delete.
    throw new Error(`namespaces with this run's prefix ${prefix} already exist (${clash.slice(0, 3).join(' ')}...); remove them first`);
  }
  const stale = before.filter((n) => n.startsWith('nnb-'));
  if (stale.length) progress(`warning: ${stale.length} nnb-* namespaces of other runs exist (${stale.slice(0, 3).join(' ')}); not touching them`);
}

/**
 * Runs the methods in turn. After each one, whatever happened, every namespace of this run is
 * removed (untimed) before the next; after a success the kernel is given the time to free them.
 * Stops at an interrupt; throws only when namespaces could not be removed.
 */
export async function runMethods<Id extends string>(
  ids: readonly Id[],
  make: (id: Id, notes: string[]) => Method,
  o: RunOptions,
): Promise<{ results: MethodResult[]; aborted: boolean }> {
  const results: MethodResult[] = [];
  let aborted = false;
  for (const id of ids) {
    if (o.signal.aborted) break;
    const notes: string[] = [];
    const m = make(id, notes);
    const ms: Record<string, number> = {};
    let made: Made | undefined;
    let failure: { e: unknown } | undefined;
    try {
      await m.setup?.();
      made = await m.run(ms);
    } catch (e) {
      failure = { e };
    }
    // Always (stops the daemon, which lets work it started finish, before any removal).
    try {
      const problems = (await m.teardown?.()) ?? [];
      if (problems.length && !failure) failure = { e: new Error(problems.join('; ')) };
      else notes.push(...problems);
    } catch (e) {
      failure ??= { e };
    }
    const s = await sweep(runPrefix());
    if (s.failed.length) throw new Error(`could not remove namespaces: ${s.failed.join('; ')}`);
    if (s.removed.length) notes.push(failure ? `swept ${s.removed.length} namespaces left behind` : `deleted its ${s.removed.length} namespaces (untimed)`);
    let freedMs: number | undefined;
    if (!failure && made) {
      try {
        const freed = await waitFreed(made.nsids, made.names);
        freedMs = freed.ms;
        if (freed.pending) {
          notes.push(`the kernel still held ${freed.pending} deleted namespaces ${(freed.ms / 1000).toFixed(0)} s after they were deleted (pinned?)`);
        }
      } catch (e) {
        failure = { e };
      }
    }
    let error: string | undefined;
    if (failure) {
      if (failure.e instanceof AbortedError || o.signal.aborted) aborted = true;
      error = aborted ? 'interrupted' : errorText(failure.e);
      if (!aborted) o.progress(`(${id}) FAILED: ${error}`);
    }
    results.push({ id, label: m.label, ok: error === undefined, ms, ...(freedMs !== undefined ? { freedMs } : {}), ...(error !== undefined ? { error } : {}), notes });
    if (aborted) break;
  }
  return { results, aborted };
}

/** Writes lines (and a final newline) to the file `name` in dir; resolves with its path. */
export async function writeLines(dir: string, name: string, lines: readonly string[]): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, [...lines, ''].join('\n'));
  return path;
}

/**
 * (a)'s runner: lines as a bash script file (`set -e`: the first failure is fatal), so the timing
 * includes exactly what a script pays: a fork+exec per step, and `ip -n` entering the namespace
 * (with its mount-table copy) each time. Resolves with bash's wall time from spawn to exit.
 */
export async function bashScript(dir: string, name: string, lines: readonly string[], signal: AbortSignal): Promise<number> {
  return (await runOk(['/bin/bash', await writeLines(dir, name, ['set -e', ...lines])], { signal })).ms;
}

/**
 * (b)'s runner: one `ip -batch FILE`. Without `-force`, ip stops at the first failing line and
 * exits non-zero. Resolves with ip's wall time from spawn to exit.
 */
export async function ipBatchFile(dir: string, name: string, lines: readonly string[], signal: AbortSignal): Promise<number> {
  return (await runOk([IP, '-batch', await writeLines(dir, name, lines)], { signal })).ms;
}

/** A namespace as netnsd makes one (added, loopback up, nsid set), as shell lines. */
export function shellNamespaceLines(ns: string): string[] {
  return [`${IP} netns add ${ns}`, `${IP} -n ${ns} link set lo up`, `${IP} netns set ${ns} auto`];
}

/**
 * The same as batch lines. Batch lines take no `-n` (iproute2 6.1), so bringing loopback up inside
 * the namespace is a `netns exec` line, which forks an `ip`; the others run in the batch process.
 */
export function batchNamespaceLines(ns: string): string[] {
  return [`netns add ${ns}`, `netns exec ${ns} ${IP} link set lo up`, `netns set ${ns} auto`];
}

/** Runs fn as a timed phase: its wall time goes into ms[phase]. */
export async function phase(ms: Record<string, number>, name: string, fn: () => Promise<number>): Promise<number> {
  const t = await fn();
  ms[name] = t;
  return t;
}

/**
 * netnsd as a method's backend: a fresh daemon (its own data directory, so one method does not
 * inherit another's store), started untimed; one untimed authenticated GET checks the token and
 * warms one connection. A failed request is reported with the daemon's log lines for it.
 */
export class DaemonBackend {
  private d: Daemon | undefined;

  constructor(
    private readonly signal: AbortSignal,
    private readonly notes: string[],
    /** How the clients reach the daemon: its Unix socket (a second listener) or TCP with the token. */
    private readonly transport: Transport = 'tcp',
  ) {}

  get daemon(): Daemon {
    if (!this.d) throw new Error('the daemon is not running');
    return this.d;
  }

  async start(): Promise<void> {
    this.d = await Daemon.start({ signal: this.signal, unixSocket: this.transport === 'unix' });
    this.notes.push(`daemon (${this.d.entry}) listening after ${(this.d.startupMs / 1000).toFixed(2)} s (untimed)`);
    await this.call('GET', '/v1/namespaces?limit=1', undefined, 200);
  }

  private client(): Client {
    const d = this.daemon;
    return { base: d.url.replace(/^tcp:/, 'http:'), token: d.token, timeoutMs: 60_000, ...(this.transport === 'unix' ? { socketPath: d.socketPath } : {}) };
  }

  /** One request; a failure is explained with the daemon's log. */
  call(method: string, path: string, body: unknown, expect: number): Promise<string> {
    return call(this.client(), method, path, body, expect, this.signal).catch((e: unknown) => this.explain(e));
  }

  /** fn for every item from `clients` workers sharing one queue (http-load's drive); the wall time. */
  drive<T>(items: readonly T[], clients: number, fn: (item: T) => Promise<void>): Promise<number> {
    return drive(items, clients, this.signal, fn).catch((e: unknown) => this.explain(e));
  }

  /** Turns a failed request into a report with the daemon's own log lines for it. */
  private async explain(e: unknown): Promise<never> {
    const d = this.d;
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
  }

  /**
   * Stops the daemon (SIGTERM; it must exit 0) and resolves with problems. `summarize` turns the
   * complete log (only complete after the stop: an answer can beat its log line) into notes. The
   * daemon's directory is removed unless anything went wrong, else kept without the token.
   */
  async stop(summarize: (d: Daemon) => string[] = () => []): Promise<string[]> {
    const d = this.d;
    if (!d) return [];
    const problems: string[] = [];
    closeClients();
    const s = await d.stop();
    const warnings = d.warnings.length;
    this.notes.push(...summarize(d));
    if (s.died) problems.push(`the daemon died (${s.signal ?? `exit ${s.code}`}) before it was stopped; log: ${d.logFile}`);
    else if (s.killed) problems.push(`the daemon did not exit within 30 s of SIGTERM and was killed; log: ${d.logFile}`);
    else if (s.code !== 0) problems.push(`the daemon exited with ${s.signal ?? s.code} after SIGTERM; log: ${d.logFile}`);
    else this.notes.push(`daemon stopped by SIGTERM in ${(s.ms / 1000).toFixed(2)} s`);
    if (warnings) this.notes.push(`daemon logged ${warnings} warning/error lines, e.g. ${d.warnings[0]!.raw.slice(0, 300)}`);
    if (problems.length === 0 && warnings === 0) await rm(d.dir, { recursive: true, force: true });
    else {
      await rm(join(d.dir, 'tokens.json'), { force: true });
      this.notes.push(`daemon log and store kept in ${d.dir}`);
    }
    return problems;
  }
}

/** `p50 X ms, p95 Y ms, max Z ms` of a list of milliseconds. */
export function quantiles(ms: readonly number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(1);
  return `p50 ${q(0.5)} ms, p95 ${q(0.95)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms`;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function environment(): Promise<Environment> {
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
    netnsDir: netnsDirLabel(),
  };
}

/** The environment as Markdown list lines. */
export function environmentLines(env: Environment, clients: number, rounds = 1): string[] {
  return [
    `- date: ${env.date}`,
    `- kernel: ${env.kernel}`,
    `- iproute2: ${env.iproute2}`,
    `- node: ${env.node}`,
    `- CPUs: ${env.cpus} (${env.cpuModel})`,
    `- daemon: ${env.daemon}; (c) uses ${clients} concurrent clients`,
    `- named namespaces on the machine before the run: ${env.namespacesBefore}`,
    `- namespaces bound in: ${env.netnsDir}`,
    ...(rounds > 1 ? [`- rounds: ${rounds}, each running every method once in turn; times are each method's median over the rounds, ratios are of medians`] : []),
  ];
}

/**
 * CPU time a process has had so far, in ms, from the kernel's per-thread accounting
 * (/proc/PID/task/TID/schedstat, ns on a CPU): in all, and its main thread's (an event loop).
 */
export async function cpuOf(pid: number): Promise<{ all: number; main: number }> {
  const dir = `/proc/${pid}/task`;
  let all = 0;
  let main = 0;
  for (const tid of await readdir(dir)) {
    const ns = await readFile(`${dir}/${tid}/schedstat`, 'utf8').then((t) => Number(t.split(' ')[0]), () => 0);
    all += ns / 1e6;
    if (tid === String(pid)) main = ns / 1e6;
  }
  return { all, main };
}

/** A method's label in the table: `netnsd HTTP, 16 clients` (`, Unix socket` when not over TCP). */
export function httpLabel(clients: number, transport: Transport): string {
  return `netnsd HTTP, ${clients} client${clients === 1 ? '' : 's'}${transport === 'unix' ? ', Unix socket' : ''}`;
}

/** Table cells: seconds, milliseconds per item, and a ratio; `—` for what was not measured. */
export const cell = {
  seconds: (ms?: number): string => (ms === undefined ? '—' : (ms / 1000).toFixed(3)),
  per: (ms: number | undefined, n: number): string => (ms === undefined ? '—' : (ms / n).toFixed(2)),
  ratio: (a?: number, b?: number): string => (a === undefined || b === undefined ? '—' : `${(a / b).toFixed(2)}×`),
};

/** ` (interrupted)` or ` **FAILED**` after a method's label, for a method that did not pass. */
export function failureMark(x: MethodResult): string {
  return x.ok ? '' : x.error === 'interrupted' ? ' (interrupted)' : ' **FAILED**';
}

/** Failures in full, each method's notes, and the interrupt, as Markdown after the table. */
export function notesLines(results: readonly MethodResult[], aborted: boolean): string[] {
  const notes = results.flatMap((x) => [
    ...(x.error && x.error !== 'interrupted' ? [`- (${x.id}) FAILED: ${x.error.replace(/\n/g, '\n  ')}`] : []),
    ...x.notes.map((n) => `- (${x.id}) ${n}`),
    ...(x.freedMs !== undefined ? [`- (${x.id}) the kernel had freed every deleted namespace ${x.freedMs.toFixed(0)} ms after they were deleted${x.perRound ? ' (the slowest round)' : ''}${x.id === 'c' || x.id === 'd' ? ' and the daemon stopped' : ''}`] : []),
  ]);
  return [...(notes.length ? ['', 'Notes:', ...notes] : []), ...(aborted ? ['', '**Interrupted**: the namespaces of this run were removed.'] : [])];
}
