/**
 * events-latency: how long after a change an event reaches a WebSocket client of netnsd, next to
 * how long a plain `ip monitor` takes to see the same change, in the same run.
 *
 * One namespace made by hand for the run, with a bridge (down, no ports) in it. Each change is one
 * `ip -n NS link set dev br0 mtu M` process, spawned with argv, with a new MTU every time (so the
 * change, its `ip monitor` line and its event are matched by the MTU alone, and nothing that is
 * late can be mistaken for the next one); the clock starts at that process's `exit` event in this
 * process. Two receivers run in this process for the whole run: a WebSocket client subscribed with
 * `types=link.changed&namespace=NS`, and `ip -n NS -o monitor link` whose stdout lines are
 * timestamped on arrival. The next change starts once both received the last one (or 3 s passed)
 * and `--pause` ms have gone by. Warm-up changes go first and are not counted.
 */
import { Daemon } from './daemon.js';
import { checkNoClash, errorText } from './harness.js';
import { clockTicks, eventsEnvironment, type EventsEnvironment, finishRun, closeWs, cpuMs, type Endpoint, IpMonitor, memoryKb, mib, ms2, mtuOfMonitorLine, nowMs, type Stats, stats, lastSeq, subscribe, watchedBridge } from './event-stream.js';
import { runPrefix } from './netns.js';
import { IP } from './proc.js';
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** MTUs are MTU_BASE + change index: never the bridge's starting 1500, each one new. */
const MTU_BASE = 2000;
/** A bridge takes MTUs up to 65535. */
export const MAX_CHANGES = 60_000;
const RECEIVE_TIMEOUT_MS = 3000;
const BRIDGE = 'br0';

export interface LatencyOptions {
  readonly n: number;
  readonly warmup: number;
  /** Idle time between one change's last receipt and the next change. */
  readonly pauseMs: number;
  /** Run the daemon with node's --cpu-prof and summarize the profile. */
  readonly profile: boolean;
  /** Write every measured change's times (CSV, ms on the monotonic clock) to this file. */
  readonly raw?: string | undefined;
  /** How the WebSocket clients reach the daemon: its TCP listener (with the token) or a Unix socket. */
  readonly transport: 'tcp' | 'unix';
  readonly signal: AbortSignal;
  readonly progress: (line: string) => void;
}

export interface LatencyReport {
  readonly benchmark: 'events-latency';
  readonly n: number;
  readonly warmup: number;
  readonly pauseMs: number;
  readonly transport: 'tcp' | 'unix';
  readonly env: EventsEnvironment;
  readonly ok: boolean;
  readonly aborted: boolean;
  readonly error?: string;
  /** From the changing `ip`'s exit to the event's arrival at the WebSocket client (ms). */
  readonly netnsd?: Stats;
  /** From the changing `ip`'s exit to its line from `ip monitor` (ms). */
  readonly ipMonitor?: Stats;
  /** Per change: netnsd's arrival minus ip monitor's (ms). */
  readonly difference?: Stats;
  /** The changing `ip` process from spawn to exit (ms). */
  readonly ipProcess?: Stats;
  readonly missing?: { readonly netnsd: number; readonly ipMonitor: number };
  readonly daemon?: { readonly cpuMs: number; readonly wallMs: number; readonly rssKb: number; readonly hwmKb: number };
  readonly notes: string[];
}

interface Change {
  readonly mtu: number;
  spawnAt?: number;
  exitAt?: number;
  wsAt?: number;
  monAt?: number;
}

export async function benchEventsLatency(o: LatencyOptions): Promise<LatencyReport> {
  await checkNoClash(o.progress);
  const env = await eventsEnvironment();
  await clockTicks();
  const notes: string[] = [];
  const ns = `${runPrefix()}lat`;
  const profDir = o.profile ? await mkdtemp(join(tmpdir(), 'netnsd-prof-')) : undefined;
  let daemon: Daemon | undefined;
  let ws: Awaited<ReturnType<typeof subscribe>> | undefined;
  let mon: IpMonitor | undefined;
  const total = o.warmup + o.n;
  const changes: Change[] = Array.from({ length: total }, (_, i) => ({ mtu: MTU_BASE + i }));
  const byMtu = new Map(changes.map((c) => [c.mtu, c]));
  let current: Change | undefined;
  let wake: (() => void) | undefined;
  const arrived = (c: Change | undefined) => {
    if (c && c === current && c.wsAt !== undefined && c.monAt !== undefined) wake?.();
  };
  let stray = { ws: 0, mon: 0 };
  let result: Partial<LatencyReport> = {};
  let window: { fromMs: number; toMs: number } | undefined;
  let error: string | undefined;
  try {
    daemon = await Daemon.start({ signal: o.signal, ...(profDir ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir] } : {}), unixSocket: o.transport === 'unix' });
    notes.push(`daemon (${daemon.entry}) listening after ${(daemon.startupMs / 1000).toFixed(2)} s; it watches every named namespace it can see (${env.namespacesBefore} before the run)`);
    const ep: Endpoint = { url: daemon.url, token: daemon.token, socketPath: daemon.socketPath };
    const readyMs = await watchedBridge(ep, ns, BRIDGE, o.signal);
    notes.push(`namespace ${ns} made with \`ip netns add\` and its bridge ${BRIDGE} announced by the daemon after ${readyMs.toFixed(0)} ms (untimed)`);

    ws = await subscribe(ep, { types: 'link.changed', namespace: ns }, (text, at) => {
      const e = JSON.parse(text) as { type: string; object?: { name?: string; mtu?: number } };
      const c = e.type === 'link.changed' && e.object?.name === BRIDGE && e.object.mtu !== undefined ? byMtu.get(e.object.mtu) : undefined;
      if (!c || c.wsAt !== undefined) return void stray.ws++;
      c.wsAt = at;
      arrived(c);
    });
    mon = IpMonitor.start(ns, (line, at) => {
      const mtu = mtuOfMonitorLine(line);
      const c = line.includes(` ${BRIDGE}: `) && mtu !== undefined ? byMtu.get(mtu) : undefined;
      if (!c || c.monAt !== undefined) return void stray.mon++;
      c.monAt = at;
      arrived(c);
    });
    // ip monitor has subscribed once it prints something: repeat a probe until it does.
    await probeMonitor(ns, () => stray.mon > 0, o.signal);
    stray = { ws: 0, mon: 0 };

    o.progress(`events-latency: ${o.warmup} warm-up changes, then ${o.n} measured, one \`ip link set dev ${BRIDGE} mtu M\` each`);
    let seq0 = 0;
    let cpu0 = 0;
    let t0 = 0;
    for (let i = 0; i < total; i++) {
      if (o.signal.aborted) throw new Error('aborted');
      if (i === o.warmup) {
        seq0 = await lastSeq(ep);
        cpu0 = cpuMs(daemon.pid);
        t0 = nowMs();
      }
      const c = changes[i]!;
      current = c;
      const got = new Promise<void>((r) => (wake = r));
      await change(ns, c);
      let timer: NodeJS.Timeout | undefined;
      if (c.wsAt === undefined || c.monAt === undefined) await Promise.race([got, new Promise<void>((r) => (timer = setTimeout(r, RECEIVE_TIMEOUT_MS)))]);
      clearTimeout(timer);
      if (o.pauseMs > 0) await new Promise((r) => setTimeout(r, o.pauseMs));
      if ((i + 1 - o.warmup) % 250 === 0 && i >= o.warmup) o.progress(`events-latency: ${i + 1 - o.warmup}/${o.n}`);
    }
    const wallMs = nowMs() - t0;
    window = { fromMs: t0, toMs: t0 + wallMs };
    const daemonCpu = cpuMs(daemon.pid) - cpu0;
    const mem = memoryKb(daemon.pid);
    const published = (await lastSeq(ep)) - seq0;
    if (published > o.n) notes.push(`the daemon published ${published} events during the measured changes, ${published - o.n} of them not ours (other namespaces on the machine: it watches all of them)`);

    const measured = changes.slice(o.warmup);
    const both = measured.filter((c) => c.wsAt !== undefined && c.monAt !== undefined);
    result = {
      netnsd: stats(measured.filter((c) => c.wsAt !== undefined).map((c) => c.wsAt! - c.exitAt!)),
      ipMonitor: stats(measured.filter((c) => c.monAt !== undefined).map((c) => c.monAt! - c.exitAt!)),
      difference: stats(both.map((c) => c.wsAt! - c.monAt!)),
      ipProcess: stats(measured.map((c) => c.exitAt! - c.spawnAt!)),
      missing: { netnsd: measured.filter((c) => c.wsAt === undefined).length, ipMonitor: measured.filter((c) => c.monAt === undefined).length },
      daemon: { cpuMs: daemonCpu, wallMs, rssKb: mem.rss, hwmKb: mem.hwm },
    };
    if (o.raw) {
      const csv = ['index,mtu,spawn,exit,websocket,ip_monitor', ...measured.map((c, k) => [k, c.mtu, c.spawnAt, c.exitAt, c.wsAt, c.monAt].map((v) => (v === undefined ? '' : typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(3) : String(v))).join(','))];
      await writeFile(o.raw, `${csv.join('\n')}\n`);
      notes.push(`every change's times written to ${o.raw}`);
    }
    if (stray.ws || stray.mon) notes.push(`messages that matched no change: ${stray.ws} on the WebSocket, ${stray.mon} from ip monitor`);
    if (result.missing!.netnsd || result.missing!.ipMonitor) {
      error = `not every change was received within ${RECEIVE_TIMEOUT_MS} ms: netnsd missed ${result.missing!.netnsd}, ip monitor ${result.missing!.ipMonitor}`;
    }
  } catch (e) {
    error = o.signal.aborted ? 'interrupted' : errorText(e);
  } finally {
    if (ws) await closeWs(ws);
    await mon?.stop();
    error = await finishRun(daemon, error, o, notes, profDir, window);
  }
  return {
    benchmark: 'events-latency', n: o.n, warmup: o.warmup, pauseMs: o.pauseMs, transport: o.transport, env,
    ok: error === undefined, aborted: o.signal.aborted, ...(error !== undefined ? { error } : {}), ...result, notes,
  };
}

/** One change: `ip -n NS link set dev br0 mtu M`; its spawn and `exit` times go into c. */
function change(ns: string, c: Change): Promise<void> {
  return new Promise((resolve, reject) => {
    const argv = ['-n', ns, 'link', 'set', 'dev', BRIDGE, 'mtu', String(c.mtu)];
    c.spawnAt = nowMs();
    const child = spawn(IP, argv, { stdio: 'ignore', env: { ...process.env, LC_ALL: 'C' } });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      c.exitAt = nowMs();
      if (code === 0) resolve();
      else reject(new Error(`${IP} ${argv.join(' ')} exited with ${signal ?? code}`));
    });
  });
}

/** Toggles loopback until `seen()` says ip monitor printed (it has opened its socket then). */
async function probeMonitor(ns: string, seen: () => boolean, signal: AbortSignal): Promise<void> {
  for (let i = 0; i < 50 && !seen(); i++) {
    if (signal.aborted) throw new Error('aborted');
    await new Promise<void>((resolve, reject) => {
      const child = spawn(IP, ['-n', ns, 'link', 'set', 'dev', 'lo', i % 2 === 0 ? 'up' : 'down'], { stdio: 'ignore' });
      child.on('error', reject);
      child.on('exit', () => resolve());
    });
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!seen()) throw new Error('ip monitor printed nothing for 5 s of loopback changes');
}

function row(label: string, s: Stats | undefined, n: number): string {
  if (!s) return `| ${label} | — | — | — | — | — |`;
  return `| ${label} | ${s.n}/${n} | ${ms2(s.p50)} | ${ms2(s.p99)} | ${ms2(s.max)} | ${ms2(s.min)} |`;
}

export function toMarkdown(r: LatencyReport): string {
  const d = r.daemon;
  const p99gap = r.netnsd && r.ipMonitor ? r.netnsd.p99 - r.ipMonitor.p99 : NaN;
  const lines = [
    `# events-latency: ${r.n} changes (after ${r.warmup} warm-up), ${r.pauseMs} ms apart`,
    '',
    `- date: ${r.env.date}`,
    `- kernel: ${r.env.kernel}; ${r.env.iproute2}; node ${r.env.node}; ${r.env.cpus} CPUs (${r.env.cpuModel})`,
    `- daemon: ${r.env.daemon}; named namespaces on the machine before the run: ${r.env.namespacesBefore}; namespaces bound in: ${r.env.netnsDir}`,
    `- WebSocket over ${r.transport === 'tcp' ? 'TCP (127.0.0.1, bearer token)' : 'the Unix socket'}; load average before the run: ${r.env.loadavg}`,
    '',
    'From the changing `ip` process\'s `exit` event to the arrival in this process (ms; negative: seen before `exit` was):',
    '',
    '| receiver | received | p50 | p99 | max | min |',
    '|---|---:|---:|---:|---:|---:|',
    row('`ip -n NS -o monitor link` (stdout line)', r.ipMonitor, r.n),
    row('netnsd WebSocket `types=link.changed&namespace=NS`', r.netnsd, r.n),
    row('per change: netnsd − ip monitor', r.difference, r.n),
    '',
    `- p99 of netnsd − p99 of ip monitor: **${ms2(p99gap)} ms** (target: within 2 ms): ${Number.isFinite(p99gap) ? (p99gap <= 2 ? '**met**' : '**missed**') : '—'}`,
    ...(r.ipProcess ? [`- the changing \`ip\` process, spawn to exit: p50 ${ms2(r.ipProcess.p50)} ms, p99 ${ms2(r.ipProcess.p99)} ms`] : []),
    ...(d ? [`- daemon during the measured changes: ${((100 * d.cpuMs) / d.wallMs).toFixed(1)}% of one CPU (${d.cpuMs.toFixed(0)} ms in ${(d.wallMs / 1000).toFixed(1)} s); RSS ${mib(d.rssKb)} MiB, peak (VmHWM) ${mib(d.hwmKb)} MiB`] : []),
    ...(r.error ? [r.aborted ? '- **Interrupted**: the namespaces of this run were removed.' : `- **FAILED**: ${r.error}`] : []),
    ...(r.notes.length ? ['', 'Notes:', ...r.notes.map((n) => (n.startsWith('  ') ? n : `- ${n}`))] : []),
    '',
  ];
  return lines.join('\n');
}
