/**
 * events-fanout: many WebSocket subscribers of netnsd, a steady rate of kernel changes, and
 * whether every subscriber gets every event, how late, and what it costs the daemon.
 *
 * One namespace made by hand for the run with a bridge (down, no ports) in it. `--subscribers`
 * WebSocket clients, all subscribed with `types=link.changed&namespace=NS`, run in `--workers`
 * worker threads of this process (so parsing their messages does not delay the driver's clock).
 * The driver, on the main thread, feeds one persistent `ip -n NS -batch -` process one line per
 * change, `link set dev br0 mtu M` with a new MTU every time (change i sets MTU_BASE + i, which
 * is how a subscriber matches an event to its change), `--rate` lines a second for `--seconds`.
 * A change is "issued" just before its line is written to ip's stdin (the write is in the pipe
 * when it returns); ip still has to read and apply it, so the latencies are upper bounds by that
 * (the `ip monitor` reference row shows how long until the kernel announced it). A `--rate`
 * second of warm-up changes goes first (checked, not counted), then one idle second.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Daemon } from './daemon.js';
import { checkNoClash, errorText } from './harness.js';
import { clockTicks, eventsEnvironment, type EventsEnvironment, finishRun, cpuTimes, type Endpoint, IpMonitor, memoryKb, mib, ms2, mtuOfMonitorLine, nowMs, RssSampler, type Stats, stats, lastSeq, watchedBridge } from './event-stream.js';
import type { FanoutWorkerData, FromWorker, SubscriberResult } from './events-fanout-worker.js';
import { runPrefix } from './netns.js';
import { IP } from './proc.js';

const MTU_BASE = 2000;
/** A bridge takes MTUs up to 65535: warm-up plus measured changes stay below. */
export const MAX_CHANGES = 60_000;
const BRIDGE = 'br0';
/** The daemon's default events.maxSubscribers. */
const DEFAULT_MAX_SUBSCRIBERS = 1000;
/** After the last change, how long the subscribers may take to receive everything. */
const DRAIN_MS = 15_000;

export interface FanoutOptions {
  readonly subscribers: number;
  readonly rate: number;
  readonly seconds: number;
  readonly workers: number;
  readonly profile: boolean;
  /** How the WebSocket clients reach the daemon: its TCP listener (with the token) or a Unix socket. */
  readonly transport: 'tcp' | 'unix';
  readonly signal: AbortSignal;
  readonly progress: (line: string) => void;
}

export interface FanoutReport {
  readonly benchmark: 'events-fanout';
  readonly subscribers: number;
  readonly rate: number;
  readonly seconds: number;
  readonly workers: number;
  readonly transport: 'tcp' | 'unix';
  readonly env: EventsEnvironment;
  readonly ok: boolean;
  readonly aborted: boolean;
  readonly error?: string;
  /** Measured changes issued, and warm-up ones before them. */
  readonly changes?: number;
  readonly warmup?: number;
  /** Measured events each subscriber received (min, max), and totals over all subscribers. */
  readonly received?: { readonly min: number; readonly max: number; readonly missing: number; readonly gaps: number; readonly gapSeqs: number; readonly duplicates: number; readonly outOfOrder: number; readonly other: number; readonly closedEarly: number };
  /** From the batch line's write to the arrival at a subscriber (ms): every delivery, the first and the last subscriber per change. */
  readonly latency?: { readonly all: Stats; readonly first: Stats; readonly last: Stats };
  /** From the batch line's write to `ip monitor`'s line (ms). */
  readonly ipMonitor?: Stats;
  /** From the batch line's write to the event's `time` (the daemon publishing it; ±0.5 ms). */
  readonly published?: Stats;
  /** The driver: changes per second achieved, and how late writes were against the schedule (ms). */
  readonly driver?: { readonly rate: number; readonly late: Stats };
  readonly daemon?: { readonly rssBeforeKb: number; readonly rssSubscribedKb: number; readonly rssPeakSampledKb: number; readonly hwmKb: number; readonly cpuMs: number; readonly systemMs: number; readonly wallMs: number; readonly status?: { readonly dropped: number; readonly gaps: number; readonly maxQueueDepth: number } };
  readonly bench?: { readonly cpuMs: number; readonly connectMs: number };
  readonly notes: string[];
}

/** One worker thread of subscribers, loaded through tsx (a worker does not inherit its hooks). */
class ClientThread {
  private readonly w: Worker;
  readonly ready: Promise<number>;
  readonly complete: Promise<void>;
  readonly result: Promise<{ subscribers: SubscriberResult[]; publishedAt: Float64Array }>;
  private done = false;

  constructor(data: FanoutWorkerData) {
    const api = import.meta.resolve('tsx/esm/api');
    const url = new URL('./events-fanout-worker.ts', import.meta.url).href;
    const src = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(url)}); })`;
    this.w = new Worker(src, { eval: true, workerData: data });
    let fail: (e: Error) => void = () => {};
    const deferred = <T>() => {
      let resolve!: (v: T) => void;
      let reject!: (e: Error) => void;
      const p = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
      p.catch(() => {}); // observed by whoever awaits it
      return { p, resolve, reject };
    };
    const ready = deferred<number>();
    const complete = deferred<void>();
    const result = deferred<{ subscribers: SubscriberResult[]; publishedAt: Float64Array }>();
    this.ready = ready.p;
    this.complete = complete.p;
    this.result = result.p;
    fail = (e) => {
      ready.reject(e);
      complete.reject(e);
      result.reject(e);
    };
    this.w.on('message', (m: FromWorker) => {
      if (m.type === 'ready') ready.resolve(m.connectMs);
      else if (m.type === 'complete') complete.resolve();
      else if (m.type === 'result') {
        this.done = true;
        result.resolve({ subscribers: m.subscribers, publishedAt: m.publishedAt });
      } else fail(new Error(`subscriber thread: ${m.message}`));
    });
    this.w.on('error', (e) => fail(e));
    this.w.on('exit', (code) => {
      if (!this.done) fail(new Error(`subscriber thread exited (${code}) before its results`));
    });
  }

  finish(): void {
    this.w.postMessage({ type: 'finish' });
  }

  async terminate(): Promise<void> {
    await this.w.terminate();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Rejects after ms (with what), unless p settles first. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export async function benchEventsFanout(o: FanoutOptions): Promise<FanoutReport> {
  await checkNoClash(o.progress);
  const env = await eventsEnvironment();
  await clockTicks();
  const notes: string[] = [];
  const ns = `${runPrefix()}fan`;
  const warmup = o.rate;
  const measured = o.rate * o.seconds;
  const total = warmup + measured;
  const profDir = o.profile ? await mkdtemp(join(tmpdir(), 'netnsd-prof-')) : undefined;
  const writeAt = new Float64Array(total).fill(NaN);
  const monAt = new Float64Array(total).fill(NaN);
  const late: number[] = [];
  let daemon: Daemon | undefined;
  let threads: ClientThread[] = [];
  let mon: IpMonitor | undefined;
  let batch: ChildProcess | undefined;
  let sampler: RssSampler | undefined;
  let result: Partial<FanoutReport> = {};
  let window: { fromMs: number; toMs: number } | undefined;
  let error: string | undefined;
  try {
    // The default cap is 1000 subscribers; raised only when the run needs more.
    const config = o.subscribers + 8 > DEFAULT_MAX_SUBSCRIBERS ? { events: { maxSubscribers: o.subscribers + 8 } } : undefined;
    if (config) notes.push(`events.maxSubscribers raised to ${o.subscribers + 8} (config file) for ${o.subscribers} subscribers; every other setting is the default (events.subscriberQueue 1024)`);
    else notes.push(`the daemon runs with the default settings (events.maxSubscribers ${DEFAULT_MAX_SUBSCRIBERS}, events.subscriberQueue 1024)`);
    daemon = await Daemon.start({ signal: o.signal, ...(config ? { config } : {}), ...(profDir ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir] } : {}), unixSocket: o.transport === 'unix' });
    notes.push(`daemon (${daemon.entry}) listening after ${(daemon.startupMs / 1000).toFixed(2)} s; it watches every named namespace it can see (${env.namespacesBefore} before the run)`);
    const ep: Endpoint = { url: daemon.url, token: daemon.token, socketPath: daemon.socketPath };
    const readyMs = await watchedBridge(ep, ns, BRIDGE, o.signal);
    notes.push(`namespace ${ns} made with \`ip netns add\` and its bridge announced by the daemon after ${readyMs.toFixed(0)} ms (untimed)`);
    const rssBeforeKb = memoryKb(daemon.pid).rss;
    sampler = new RssSampler(daemon.pid, 100);

    // Subscribers, round-robin over the threads.
    o.progress(`events-fanout: connecting ${o.subscribers} WebSocket subscribers from ${o.workers} worker thread(s)`);
    const t0 = nowMs();
    threads = Array.from({ length: o.workers }, (_, w) => {
      const ids = Array.from({ length: o.subscribers }, (_, i) => i).filter((i) => i % o.workers === w);
      return new ClientThread({ ep, query: { types: 'link.changed', namespace: ns }, ids, changes: total, mtuBase: MTU_BASE, link: BRIDGE, connectConcurrency: 16 });
    });
    await within(Promise.all(threads.map((t) => t.ready)), 120_000, 'subscribers connecting');
    const connectMs = nowMs() - t0;
    const rssSubscribedKb = memoryKb(daemon.pid).rss;
    o.progress(`events-fanout: ${o.subscribers} subscribed in ${(connectMs / 1000).toFixed(1)} s`);

    let monStray = 0;
    mon = IpMonitor.start(ns, (line, at) => {
      const mtu = mtuOfMonitorLine(line);
      const i = line.includes(` ${BRIDGE}: `) && mtu !== undefined ? mtu - MTU_BASE : -1;
      if (i >= 0 && i < total && Number.isNaN(monAt[i]!)) monAt[i] = at;
      else monStray++;
    });
    await sleep(300); // ip monitor's socket is open well before this

    const b = spawn(IP, ['-n', ns, '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    batch = b;
    let batchErr = '';
    b.stderr!.on('data', (x: Buffer) => (batchErr += x.toString('utf8')));
    const batchExit = new Promise<string>((r) => b.on('exit', (code, sig) => r(`${sig ?? code}`)));
    let batchGone: string | undefined;
    void batchExit.then((how) => (batchGone = how));

    const drive = async (from: number, count: number): Promise<void> => {
      const period = 1000 / o.rate;
      const start = nowMs();
      for (let k = 0; k < count; k++) {
        if (o.signal.aborted) throw new Error('aborted');
        if (batchGone !== undefined) throw new Error(`ip -batch exited (${batchGone}) during the run: ${batchErr.trim().slice(0, 400)}`);
        const target = start + k * period;
        const wait = target - nowMs();
        if (wait >= 1) await sleep(wait);
        const i = from + k;
        const t = nowMs();
        writeAt[i] = t;
        if (from >= warmup) late.push(t - target);
        b.stdin!.write(`link set dev ${BRIDGE} mtu ${MTU_BASE + i}\n`);
      }
    };

    o.progress(`events-fanout: ${warmup} warm-up changes, then ${measured} at ${o.rate}/s for ${o.seconds} s`);
    await drive(0, warmup);
    await sleep(1000);
    const seq0 = await lastSeq(ep);
    const cpu0 = cpuTimes(daemon.pid);
    const bench0 = process.cpuUsage();
    const w0 = nowMs();
    // Wall clock minus this clock (sub-ms), to place the events' `time` on this clock.
    const wallOffset = performance.timeOrigin + performance.now() - nowMs();
    const rssWarm = sampler.stop();
    sampler = new RssSampler(daemon.pid, 100);
    await drive(warmup, measured);
    const lastWrite = nowMs();
    const allComplete = Promise.all(threads.map((t) => t.complete));
    let completed = true;
    try {
      await within(allComplete, DRAIN_MS, 'every subscriber receiving every event');
    } catch {
      completed = false;
    }
    const wallMs = nowMs() - w0;
    window = { fromMs: w0, toMs: w0 + wallMs };
    const cpu1 = cpuTimes(daemon.pid);
    const daemonCpu = cpu1.user + cpu1.system - cpu0.user - cpu0.system;
    const daemonSys = cpu1.system - cpu0.system;
    const benchCpu = process.cpuUsage(bench0);
    const rssPeakSampledKb = sampler.stop();
    sampler = undefined;
    const hwmKb = memoryKb(daemon.pid).hwm;
    const publishedCount = (await lastSeq(ep)) - seq0;
    if (publishedCount > measured) notes.push(`the daemon published ${publishedCount} events during the measured changes, ${publishedCount - measured} of them not ours (other namespaces on the machine: it watches all of them, and sends them to nobody here)`);
    if (!completed) o.progress(`events-fanout: not every subscriber had every event ${DRAIN_MS / 1000} s after the last change`);
    else o.progress(`events-fanout: every subscriber had every event ${(nowMs() - lastWrite).toFixed(0)} ms after the last change`);

    // The daemon's own counters of our subscribers.
    let status: NonNullable<FanoutReport['daemon']>['status'];
    try {
      const res = await fetch(`${daemon.url.replace(/^tcp:/, 'http:')}/v1/events/status`, { headers: { authorization: `Bearer ${daemon.token}` } });
      const st = (await res.json()) as { subscribers: Array<{ dropped: number; gaps: number; queueDepth: number }> };
      status = {
        dropped: st.subscribers.reduce((a, s) => a + s.dropped, 0),
        gaps: st.subscribers.reduce((a, s) => a + s.gaps, 0),
        maxQueueDepth: st.subscribers.reduce((a, s) => Math.max(a, s.queueDepth), 0),
      };
    } catch (e) {
      notes.push(`GET /v1/events/status failed: ${errorText(e)}`);
    }

    for (const t of threads) t.finish();
    const results = await within(Promise.all(threads.map((t) => t.result)), 60_000, 'results from the subscriber threads');
    const subs = results.flatMap((x) => x.subscribers);
    // The event's `time` is the daemon's wall clock when it published it (ms, truncated):
    // on this clock, publication happened within [time, time + 1) ms.
    const published = new Float64Array(total).fill(NaN);
    for (const x of results) for (let i = 0; i < total; i++) if (!Number.isNaN(x.publishedAt[i]!)) published[i] = x.publishedAt[i]! - wallOffset;

    // Every delivery's latency, and per change the first and the last subscriber's.
    const all = new Float64Array(subs.length * measured);
    let n = 0;
    const first = new Float64Array(measured).fill(Infinity);
    const lastA = new Float64Array(measured).fill(-Infinity);
    const per: number[] = [];
    let warmMissing = 0;
    for (const s of subs) {
      let got = 0;
      for (let i = 0; i < warmup; i++) if (Number.isNaN(s.arrivals[i]!)) warmMissing++;
      for (let k = 0; k < measured; k++) {
        const at = s.arrivals[warmup + k]!;
        if (Number.isNaN(at)) continue;
        got++;
        const l = at - writeAt[warmup + k]!;
        all[n++] = l;
        if (l < first[k]!) first[k] = l;
        if (l > lastA[k]!) lastA[k] = l;
      }
      per.push(got);
    }
    const complete = (a: Float64Array) => [...a].filter((v) => Number.isFinite(v));
    const sum = (f: (s: SubscriberResult) => number) => subs.reduce((a, s) => a + f(s), 0);
    const min = Math.min(...per);
    const max = Math.max(...per);
    result = {
      changes: measured,
      warmup,
      received: {
        min, max, missing: subs.length * measured - n, gaps: sum((s) => s.gaps), gapSeqs: sum((s) => s.gapSeqs), duplicates: sum((s) => s.duplicates),
        outOfOrder: sum((s) => s.outOfOrder), other: sum((s) => s.other), closedEarly: subs.filter((s) => s.closed).length,
      },
      latency: { all: stats(all.subarray(0, n)), first: stats(complete(first)), last: stats(complete(lastA)) },
      ipMonitor: stats(complete(monAt.subarray(warmup).map((v, k) => v - writeAt[warmup + k]!))),
      // +0.5: `time` is truncated to the ms.
      published: stats(complete(published.subarray(warmup).map((v, k) => v + 0.5 - writeAt[warmup + k]!))),
      driver: { rate: (measured - 1) / ((writeAt[total - 1]! - writeAt[warmup]!) / 1000), late: stats(late) },
      daemon: { rssBeforeKb, rssSubscribedKb, rssPeakSampledKb: Math.max(rssPeakSampledKb, rssWarm), hwmKb, cpuMs: daemonCpu, systemMs: daemonSys, wallMs, ...(status ? { status } : {}) },
      bench: { cpuMs: (benchCpu.user + benchCpu.system) / 1000, connectMs },
    };
    if (monStray) notes.push(`${monStray} ip monitor lines matched no change`);
    if (warmMissing) notes.push(`${warmMissing} warm-up events did not arrive`);
    const r = result.received!;
    const problems = [
      ...(r.missing ? [`${r.missing} deliveries missing (per subscriber ${min}-${max} of ${measured})`] : []),
      ...(r.gaps ? [`${r.gaps} gap messages (${r.gapSeqs} seqs lost)`] : []),
      ...(r.duplicates ? [`${r.duplicates} duplicate events`] : []),
      ...(r.outOfOrder ? [`${r.outOfOrder} events out of seq order`] : []),
      ...(r.closedEarly ? [`${r.closedEarly} subscribers closed by the daemon, e.g. ${subs.find((s) => s.closed)?.closed}`] : []),
      ...(warmMissing ? [`${warmMissing} warm-up deliveries missing`] : []),
    ];
    if (problems.length) error = problems.join('; ');
  } catch (e) {
    error = o.signal.aborted ? 'interrupted' : errorText(e);
  } finally {
    sampler?.stop();
    if (batch) {
      batch.stdin?.end();
      if (batch.exitCode === null && batch.signalCode === null) await new Promise((r) => batch!.once('exit', r));
    }
    await mon?.stop();
    await Promise.all(threads.map((t) => t.terminate()));
    error = await finishRun(daemon, error, o, notes, profDir, window);
  }
  return {
    benchmark: 'events-fanout', subscribers: o.subscribers, rate: o.rate, seconds: o.seconds, workers: o.workers, transport: o.transport, env,
    ok: error === undefined, aborted: o.signal.aborted, ...(error !== undefined ? { error } : {}), ...result, notes,
  };
}

function statsRow(label: string, s: Stats | undefined): string {
  return s ? `| ${label} | ${s.n} | ${ms2(s.p50)} | ${ms2(s.p90)} | ${ms2(s.p99)} | ${ms2(s.max)} |` : `| ${label} | — | — | — | — | — |`;
}

export function toMarkdown(r: FanoutReport): string {
  const d = r.daemon;
  const rc = r.received;
  const p99 = r.latency?.all.p99 ?? NaN;
  const lines = [
    `# events-fanout: ${r.subscribers} subscribers, ${r.rate} changes/s for ${r.seconds} s`,
    '',
    `- date: ${r.env.date}`,
    `- kernel: ${r.env.kernel}; ${r.env.iproute2}; node ${r.env.node}; ${r.env.cpus} CPUs (${r.env.cpuModel})`,
    `- daemon: ${r.env.daemon}; named namespaces on the machine before the run: ${r.env.namespacesBefore}; namespaces bound in: ${r.env.netnsDir}`,
    `- subscribers in ${r.workers} worker thread(s) of the bench process, over ${r.transport === 'tcp' ? 'TCP (127.0.0.1, bearer token)' : 'the Unix socket'}; changes from one \`ip -n NS -batch -\``,
    `- load average before the run: ${r.env.loadavg}`,
    '',
    '| subscribers | changes | events per subscriber (min–max) | gaps | p50 (ms) | p99 (ms) | max (ms) | daemon peak RSS (MiB) | daemon CPU |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    `| ${r.subscribers} | ${r.changes ?? '—'} | ${rc ? `${rc.min}–${rc.max}` : '—'} | ${rc ? rc.gaps : '—'} | ${ms2(r.latency?.all.p50 ?? NaN)} | ${ms2(p99)} | ${ms2(r.latency?.all.max ?? NaN)} | ${d ? mib(d.hwmKb) : '—'} | ${d ? `${((100 * d.cpuMs) / d.wallMs).toFixed(0)}%` : '—'} |`,
    '',
    'Latency from writing the change\'s batch line to its arrival (ms):',
    '',
    '| what | count | p50 | p90 | p99 | max |',
    '|---|---:|---:|---:|---:|---:|',
    statsRow('every delivery (subscribers × changes)', r.latency?.all),
    statsRow('per change, the first subscriber to get it', r.latency?.first),
    statsRow('per change, the last subscriber to get it', r.latency?.last),
    statsRow('`ip -n NS -o monitor link` (reference: the kernel announced it)', r.ipMonitor),
    statsRow('the event\'s `time` (the daemon published it; ±0.5 ms)', r.published),
    '',
    `- p99 delivery latency **${ms2(p99)} ms** (target: under 50 ms): ${Number.isFinite(p99) ? (p99 < 50 ? '**met**' : '**missed**') : '—'}; every subscriber got every event: ${rc ? (rc.missing === 0 && rc.gaps === 0 && rc.duplicates === 0 ? '**yes**' : `**no** (${rc.missing} missing, ${rc.gaps} gaps, ${rc.duplicates} duplicates)`) : '—'}`,
    ...(rc ? [`- out of seq order: ${rc.outOfOrder}; other messages: ${rc.other}; closed by the daemon: ${rc.closedEarly}`] : []),
    ...(r.driver ? [`- driver: ${r.driver.rate.toFixed(1)} changes/s achieved; writes late against the schedule p50 ${ms2(r.driver.late.p50)} ms, p99 ${ms2(r.driver.late.p99)} ms`] : []),
    ...(d
      ? [
          `- daemon memory: RSS ${mib(d.rssBeforeKb)} MiB before the subscribers, ${mib(d.rssSubscribedKb)} MiB with them, ${mib(d.rssPeakSampledKb)} MiB highest sampled (VmRSS every 100 ms) during the changes; VmHWM (peak since start) ${mib(d.hwmKb)} MiB`,
          `- daemon CPU from the first measured change until every subscriber had every event: ${d.cpuMs.toFixed(0)} ms in ${(d.wallMs / 1000).toFixed(1)} s = ${((100 * d.cpuMs) / d.wallMs).toFixed(0)}% of one CPU (${((100 * d.systemMs) / d.cpuMs).toFixed(0)}% of it in the kernel); ${r.changes ? ((1000 * d.cpuMs) / (r.changes * r.subscribers)).toFixed(1) : '—'} µs per delivery`,
          ...(d.status ? [`- the daemon's own counters (GET /v1/events/status) afterwards: dropped ${d.status.dropped}, gaps ${d.status.gaps}, deepest queue ${d.status.maxQueueDepth}`] : []),
        ]
      : []),
    ...(r.bench ? [`- bench process (driver + ${r.workers} subscriber thread(s)) CPU in the same window: ${d ? ((100 * r.bench.cpuMs) / d.wallMs).toFixed(0) : '—'}% of one CPU; connecting the subscribers took ${(r.bench.connectMs / 1000).toFixed(1)} s`] : []),
    ...(r.error ? [r.aborted ? '- **Interrupted**: the namespaces of this run were removed.' : `- **FAILED**: ${r.error}`] : []),
    ...(r.notes.length ? ['', 'Notes:', ...r.notes.map((n) => (n.startsWith('  ') ? n : `- ${n}`))] : []),
    '',
  ];
  return lines.join('\n');
}
