/**
 * What the event benchmarks share: one clock for every thread, WebSocket subscribers of
 * `GET /v1/events`, a namespace with a bridge that the daemon's kernel monitor watches, an
 * `ip monitor` whose lines are timestamped on arrival, the daemon's memory and CPU from /proc, and
 * a summary of a `--cpu-prof` profile.
 */
import { readFileSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import WebSocket from 'ws';
import type { Daemon } from './daemon.js';
import { environment, errorText, type Environment } from './harness.js';
import { runPrefix, sweep } from './netns.js';
import { IP, runOk } from './proc.js';

/** The machine (harness's environment) and its load average: other users' work moves these figures. */
export type EventsEnvironment = Environment & { readonly loadavg: string };

export async function eventsEnvironment(): Promise<EventsEnvironment> {
  return { ...(await environment()), loadavg: loadavg().map((x) => x.toFixed(2)).join(' ') };
}

/**
 * Milliseconds on CLOCK_MONOTONIC (libuv's hrtime): the same clock in every thread and in the
 * child processes' exit events, so times taken in worker threads compare with the main thread's.
 */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Nearest-rank percentile of ascending numbers (p in [0, 1]); NaN for none. */
export function pct(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i]!;
}

export interface Stats {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export function stats(values: ArrayLike<number>): Stats {
  const a = Float64Array.from(values as ArrayLike<number>).sort();
  let sum = 0;
  for (const v of a) sum += v;
  return { n: a.length, min: a[0] ?? NaN, p50: pct(a, 0.5), p90: pct(a, 0.9), p99: pct(a, 0.99), max: a[a.length - 1] ?? NaN, mean: a.length ? sum / a.length : NaN };
}

/** `1.23` (ms, two decimals); `—` for NaN. */
export const ms2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '—');

/** Where a daemon listens and the admin token to use (what a worker thread gets of a Daemon). */
export interface Endpoint {
  /** `tcp://127.0.0.1:PORT` as the daemon logged it. */
  readonly url: string;
  readonly token: string;
  /** Connect to this Unix socket of the daemon instead (no token needed there). */
  readonly socketPath?: string | undefined;
}

/**
 * Opens `GET /v1/events?QUERY` as a WebSocket and resolves once the daemon's `subscribed` message
 * arrived (from then on every matching event is delivered). Every later message goes to
 * `onMessage` with the time it arrived in this thread (taken first thing in the handler).
 */
export function subscribe(
  ep: Endpoint,
  query: Record<string, string>,
  onMessage: (text: string, at: number) => void,
  opts: { timeoutMs?: number; onClose?: (code: number, reason: string) => void } = {},
): Promise<WebSocket> {
  const path = `/v1/events?${new URLSearchParams(query).toString()}`;
  const url = ep.socketPath ? `ws+unix://${ep.socketPath}:${path}` : `${ep.url.replace(/^tcp:/, 'ws:')}${path}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${ep.token}` }, perMessageDeflate: false });
    let subscribed = false;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`GET /v1/events?${new URLSearchParams(query).toString()}: no "subscribed" message within ${opts.timeoutMs ?? 15_000} ms`));
    }, opts.timeoutMs ?? 15_000);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const at = nowMs();
      const text = isBinary ? '' : data.toString('utf8');
      if (!subscribed) {
        if (text.startsWith('{"type":"subscribed"')) {
          subscribed = true;
          clearTimeout(timer);
          resolve(ws);
        } else {
          clearTimeout(timer);
          ws.terminate();
          reject(new Error(`GET /v1/events: expected "subscribed" first, got ${text.slice(0, 300)}`));
        }
        return;
      }
      onMessage(text, at);
    });
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString('utf8')));
      res.on('end', () => reject(new Error(`GET /v1/events: HTTP ${res.statusCode} ${body.slice(0, 400)}`)));
    });
    ws.on('error', (e) => {
      clearTimeout(timer);
      if (!subscribed) reject(e);
    });
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      if (!subscribed) reject(new Error(`GET /v1/events: closed (${code} ${reason.toString()}) before "subscribed"`));
      else opts.onClose?.(code, reason.toString());
    });
  });
}

/**
 * The daemon's newest seq (GET /v1/events/status): the difference over a run is every event it
 * published, including those of other namespaces on the machine (it watches all of them).
 */
export async function lastSeq(ep: Endpoint): Promise<number> {
  const res = await fetch(`${ep.url.replace(/^tcp:/, 'http:')}/v1/events/status`, { headers: { authorization: `Bearer ${ep.token}` } });
  if (res.status !== 200) throw new Error(`GET /v1/events/status: HTTP ${res.status}`);
  return ((await res.json()) as { retained: { last: number } }).retained.last;
}

/** Closes a WebSocket and resolves once it is closed (terminated after 2 s). */
export function closeWs(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => ws.terminate(), 2000);
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.close(1000, 'bench done');
  });
}

interface EventMessage {
  readonly type: string;
  readonly namespace?: string | null;
  readonly object?: { readonly name?: string; readonly mtu?: number };
}

/**
 * Makes the namespace `ns` by hand (`ip netns add`, as any other tool would) with a bridge `link`
 * in it (down, no ports: an MTU change is exactly one RTM_NEWLINK and nothing else), and waits
 * until the daemon's monitor watches it: the monitor announces a namespace it starts watching with
 * `link.added` for what is in it (lo), and the bridge made afterwards must arrive as `link.added`
 * too. Resolves with how long that took.
 */
export async function watchedBridge(ep: Endpoint, ns: string, link: string, signal: AbortSignal, timeoutMs = 20_000): Promise<number> {
  const t0 = nowMs();
  const seen = new Set<string>();
  let wake: (() => void) | undefined;
  const ws = await subscribe(ep, { types: 'link.added', namespace: ns }, (text) => {
    const e = JSON.parse(text) as EventMessage;
    if (e.type === 'link.added' && e.namespace === ns && e.object?.name) seen.add(e.object.name);
    wake?.();
  });
  const waitFor = async (name: string, what: string): Promise<void> => {
    const until = nowMs() + timeoutMs;
    while (!seen.has(name)) {
      if (signal.aborted) throw new Error('aborted');
      const left = until - nowMs();
      if (left <= 0) throw new Error(`the daemon did not announce ${what} within ${timeoutMs} ms (link.added ${name} in ${ns})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  };
  try {
    await runOk([IP, 'netns', 'add', ns], { signal });
    await waitFor('lo', `the namespace's loopback (it watches ${ns})`);
    await runOk([IP, '-n', ns, 'link', 'add', link, 'type', 'bridge'], { signal });
    await waitFor(link, `the bridge ${link}`);
  } finally {
    await closeWs(ws);
  }
  return nowMs() - t0;
}

/**
 * `ip -n NS -o monitor link` as a child: every line it prints, with the time its chunk arrived
 * here. iproute2 6.1 flushes stdout after every message even into a pipe (measured: each change's
 * line arrives on its own, before the changing `ip` has exited), so no `stdbuf` is needed; `-o`
 * makes each message one line.
 */
export class IpMonitor {
  private buf = '';
  private constructor(
    private readonly child: ReturnType<typeof spawn>,
    private readonly closed: Promise<void>,
  ) {}

  static start(ns: string, onLine: (line: string, at: number) => void): IpMonitor {
    const child = spawn(IP, ['-n', ns, '-o', 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    const closed = new Promise<void>((r) => child.on('close', () => r()));
    const m = new IpMonitor(child, closed);
    child.stdout!.on('data', (b: Buffer) => {
      const at = nowMs();
      m.buf += b.toString('utf8');
      let i: number;
      while ((i = m.buf.indexOf('\n')) >= 0) {
        const line = m.buf.slice(0, i);
        m.buf = m.buf.slice(i + 1);
        if (line) onLine(line, at);
      }
    });
    child.stderr!.on('data', (b: Buffer) => process.stderr.write(`ip monitor: ${b.toString('utf8')}`));
    return m;
  }

  get pid(): number {
    return this.child.pid!;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.closed;
  }
}

/** The MTU an `ip -o monitor link` line shows (`... mtu 1400 qdisc ...`). */
export function mtuOfMonitorLine(line: string): number | undefined {
  const m = / mtu (\d+) /.exec(line);
  return m ? Number(m[1]) : undefined;
}

// ---- /proc ----

let clkTck: number | undefined;

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (`getconf CLK_TCK`). */
export async function clockTicks(): Promise<number> {
  clkTck ??= Number((await runOk(['/usr/bin/getconf', 'CLK_TCK'])).stdout.trim()) || 100;
  return clkTck;
}

/** CPU time (user + system, ms) the process has used so far; clockTicks() must have run. */
export function cpuMs(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.system;
}

/** User and system CPU time (ms) of the process (all its threads) so far. */
export function cpuTimes(pid: number): { user: number; system: number } {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command (which may hold spaces), from field 3 on: utime is 14, stime 15.
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const tick = 1000 / (clkTck ?? 100);
  return { user: Number(f[11]) * tick, system: Number(f[12]) * tick };
}

/** VmRSS and VmHWM (peak RSS since the process started) in KiB. */
export function memoryKb(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Samples a process's VmRSS every `everyMs` and keeps the highest. */
export class RssSampler {
  peakKb = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(
    private readonly pid: number,
    everyMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): void {
    try {
      this.peakKb = Math.max(this.peakKb, memoryKb(this.pid).rss);
    } catch {
      // exited
    }
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peakKb;
  }
}

export const mib = (kb: number): string => (Number.isFinite(kb) ? (kb / 1024).toFixed(1) : '—');

// ---- CPU profiles ----

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

/** The `.cpuprofile` files node's `--cpu-prof` wrote into dir. */
export async function profilesIn(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(dir, f));
}

/**
 * Self time of a `--cpu-prof` profile, by function and by where the code lives (netnsd's own
 * directories, each package in node_modules, node's internals, GC, idle), as Markdown lines.
 * With `window` (nowMs() times), only the samples taken in it: V8 stamps samples with
 * CLOCK_MONOTONIC microseconds, the clock of nowMs().
 */
export async function profileSummary(path: string, window?: { readonly fromMs: number; readonly toMs: number }, top = 15): Promise<string[]> {
  const p = JSON.parse(await readFile(path, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (window && (t < window.fromMs * 1000 || t > window.toMs * 1000)) continue;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + dt);
  }
  const byFn = new Map<string, number>();
  const byPlace = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)?.callFrame;
    if (!cf) continue;
    total += us;
    const place = placeOf(cf.url, cf.functionName);
    const fn = `${cf.functionName || '(anonymous)'} ${cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : ''}`.trim();
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    byPlace.set(place, (byPlace.get(place) ?? 0) + us);
  }
  const busy = total - (byPlace.get('(idle)') ?? 0);
  const line = ([k, us]: [string, number]) => `  - ${(us / 1000).toFixed(0)} ms (${((100 * us) / busy).toFixed(1)}% of busy) ${k}`;
  const sorted = (m: Map<string, number>) => [...m].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]);
  return [
    `profile ${path}${window ? ` (the ${((window.toMs - window.fromMs) / 1000).toFixed(1)} s of the measured changes)` : ''}: ${(total / 1000).toFixed(0)} ms sampled, ${(busy / 1000).toFixed(0)} ms not idle; self time by place:`,
    ...sorted(byPlace).slice(0, 12).map(line),
    `top ${top} functions by self time:`,
    ...sorted(byFn).slice(0, top).map(line),
  ];
}

function shortUrl(url: string): string {
  const i = url.lastIndexOf('/node_modules/');
  if (i >= 0) return url.slice(i + '/node_modules/'.length);
  const d = url.indexOf('/dist/');
  if (d >= 0) return url.slice(d + 1);
  const s = url.indexOf('/src/');
  if (s >= 0) return url.slice(s + 1);
  return url.replace(/^file:\/\//, '');
}

function placeOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0] === 'internal' ? url.slice(5).split('/').slice(0, 2).join('/') : url.slice(5)}`;
  const i = url.lastIndexOf('/node_modules/');
  if (i >= 0) {
    const rest = url.slice(i + '/node_modules/'.length).split('/');
    return `node_modules/${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const m = /\/(dist|src)\/(?:([^/]+)\/)?([^/]+)$/.exec(url);
  if (m) return `netnsd ${m[1]}/${m[2] ?? m[3]}`;
  return shortUrl(url);
}

/**
 * The end of an event benchmark: stops the daemon (its log and store are kept when something
 * went wrong), summarizes the CPU profiles, removes this run's namespaces. Returns the run's
 * error, or the first one the clean-up found.
 */
export async function finishRun(
  daemon: Daemon | undefined, error: string | undefined, o: { readonly signal: AbortSignal }, notes: string[],
  profDir: string | undefined, window: { readonly fromMs: number; readonly toMs: number } | undefined,
): Promise<string | undefined> {
  if (daemon) {
    const s = await daemon.stop();
    if (s.died) error ??= `the daemon died (${s.signal ?? s.code}); log: ${daemon.logFile}`;
    else if (s.code !== 0) error ??= `the daemon exited with ${s.signal ?? s.code} after SIGTERM; log: ${daemon.logFile}`;
    if (daemon.warnings.length) notes.push(`daemon logged ${daemon.warnings.length} warning/error lines, e.g. ${daemon.warnings[0]!.raw.slice(0, 300)}`);
    // Kept when something went wrong (not for an interrupt: the daemon got the Ctrl-C too).
    if ((error === undefined || o.signal.aborted) && daemon.warnings.length === 0) await rm(daemon.dir, { recursive: true, force: true });
    else {
      await rm(join(daemon.dir, 'tokens.json'), { force: true });
      notes.push(`daemon log and store kept in ${daemon.dir}`);
    }
  }
  if (profDir) {
    for (const p of await profilesIn(profDir).catch(() => [])) notes.push(...(await profileSummary(p, window).catch((e: unknown) => [`profile ${p}: ${errorText(e)}`])));
  }
  const s = await sweep(runPrefix());
  if (s.failed.length) error ??= `could not remove: ${s.failed.join('; ')}`;
  return error;
}

