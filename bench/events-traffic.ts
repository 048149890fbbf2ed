/**
 * The events-traffic benchmark: what traffic sampling costs the daemon. N namespaces with two links
 * each (lo, and one end of a veth pair joining namespaces 2k and 2k+1, both ends up), made with one
 * `ip -batch` file; the real daemon as a child process; one WebSocket subscribed with
 * `types=traffic&interval=I` over all of them. The daemon's CPU time (utime + stime from
 * /proc/<pid>/stat) is measured over `seconds` twice: idle (no subscriber, the baseline) and
 * while the subscriber receives every sample. Reported as % of one core, with the samples per
 * second the subscriber received and the reads per second the sampler says it made.
 *
 * Nothing is timed but CPU; the run checks that samples for every link arrived (2N per tick).
 * Names are `nnb-<pid>-t<i>`; run.ts removes every namespace of the run at the end, whatever happens.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { parseDuration } from '../src/duration.js';
import { Daemon } from './daemon.js';
import { checkNoClash, type Environment, environment, errorText, writeLines } from './harness.js';
import { namesFor, runPrefix } from './netns.js';
import { AbortedError, IP, runOk } from './proc.js';

export const MAX_NAMESPACES = 10_000;

export interface Options {
  /** Namespaces (an even number: veth pairs join them two by two). */
  readonly n: number;
  /** Measuring time of each phase, in seconds. */
  readonly seconds: number;
  /** The subscription's interval (`1s`). */
  readonly interval: string;
  readonly signal: AbortSignal;
  readonly progress: (line: string) => void;
}

/** CPU over one phase. */
export interface Phase {
  /** The daemon's CPU time over the phase as % of one core. */
  readonly cpuPercent: number;
  readonly seconds: number;
  /** The daemon's resident memory at the end (MiB). */
  readonly rssMiB: number;
}

export interface Report {
  readonly benchmark: 'events-traffic';
  readonly n: number;
  readonly links: number;
  readonly interval: string;
  readonly env: Environment;
  readonly idle?: Phase;
  readonly sampling?: Phase & { readonly samplesPerSecond: number; readonly expectedSamplesPerSecond: number; readonly readsPerSecond: number; readonly droppedSamples: number };
  readonly results: ReadonlyArray<{ readonly ok: boolean; readonly error?: string }>;
  readonly notes: string[];
  readonly aborted: boolean;
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on Linux for x86-64 and arm64). */
const USER_HZ = 100;

/** utime + stime of a process, in seconds. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: state is field 3.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / USER_HZ;
}

async function rssMiB(pid: number): Promise<number> {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new AbortedError());
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new AbortedError());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The daemon's CPU use over `seconds` (wall time measured here, CPU from /proc). */
async function measure(pid: number, seconds: number, signal: AbortSignal): Promise<Phase> {
  const c0 = await cpuSeconds(pid);
  const t0 = performance.now();
  await sleep(seconds * 1000, signal);
  const c1 = await cpuSeconds(pid);
  const wall = (performance.now() - t0) / 1000;
  return { cpuPercent: (100 * (c1 - c0)) / wall, seconds: wall, rssMiB: await rssMiB(pid) };
}

/** The namespaces and their links, from one `ip -batch` file (the links brought up from inside). */
async function makeNamespaces(dir: string, names: readonly string[], signal: AbortSignal): Promise<void> {
  const lines = names.map((ns) => `netns add ${ns}`);
  for (let k = 0; 2 * k + 1 < names.length; k++) {
    const [a, b] = [names[2 * k]!, names[2 * k + 1]!];
    lines.push(`link add t${k}a netns ${a} type veth peer name t${k}b netns ${b}`);
    lines.push(`netns exec ${a} ${IP} link set dev t${k}a up`, `netns exec ${b} ${IP} link set dev t${k}b up`);
  }
  await runOk([IP, '-batch', await writeLines(dir, 'traffic-setup.batch', lines)], { signal });
}

type Sample = { type: string; namespace?: string; link?: string };

export async function benchTraffic(o: Options): Promise<Report> {
  if (o.n % 2 !== 0) throw new Error('--n must be even (veth pairs join the namespaces two by two)');
  await checkNoClash(o.progress);
  const env = await environment();
  const names = namesFor('t', o.n);
  const notes: string[] = [];
  const base = { benchmark: 'events-traffic' as const, n: o.n, links: 2 * o.n, interval: o.interval, env, notes };
  const tmp = await mkdtemp(join(tmpdir(), 'netns-bench-'));
  let daemon: Daemon | undefined;
  let ws: WebSocket | undefined;
  let idle: Phase | undefined;
  let sampling: Report['sampling'];
  try {
    o.progress(`making ${o.n} namespaces with ${2 * o.n} links (one ip -batch file)`);
    await makeNamespaces(tmp, names, o.signal);
    daemon = await Daemon.start({ signal: o.signal });
    notes.push(`daemon (${daemon.entry}) listening after ${(daemon.startupMs / 1000).toFixed(2)} s`);
    const d = daemon;
    const url = d.url.replace(/^tcp:/, 'http:');
    // Let startup work (the namespace watcher's first scan) settle before the baseline.
    await sleep(3000, o.signal);
    o.progress(`idle: measuring the daemon's CPU for ${o.seconds} s`);
    idle = await measure(d.pid, o.seconds, o.signal);

    const query = new URLSearchParams({ types: 'traffic', namespace: `${runPrefix()}t*`, interval: o.interval });
    let received = 0;
    const seen = new Set<string>();
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/events?${query}`, { headers: { authorization: `Bearer ${d.token}` } });
    ws = socket;
    socket.on('message', (data) => {
      const m = JSON.parse(String(data)) as Sample;
      if (m.type !== 'traffic') return;
      received++;
      seen.add(`${m.namespace}/${m.link}`);
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('unexpected-response', (_req, res) => reject(new Error(`subscribing failed: HTTP ${res.statusCode}`)));
      socket.once('error', reject);
    });
    // Two ticks first: the first samples (no rates yet) and the sampler's timer settle.
    await sleep(2500, o.signal);
    if (seen.size !== 2 * o.n) throw new Error(`samples of ${seen.size} links arrived, not of all ${2 * o.n}`);
    o.progress(`sampling: measuring the daemon's CPU for ${o.seconds} s with one subscriber at ${o.interval}`);
    const before = received;
    const t0 = performance.now();
    const phase = await measure(d.pid, o.seconds, o.signal);
    const samplesPerSecond = (received - before) / ((performance.now() - t0) / 1000);
    const status = JSON.parse(await (await fetch(`${url}/v1/events/status`, { headers: { authorization: `Bearer ${d.token}` } })).text()) as {
      traffic: { readsPerSecond: number };
      subscribers: Array<{ traffic: { dropped: number } | null }>;
    };
    const intervalSeconds = parseDuration(o.interval) / 1000;
    sampling = {
      ...phase,
      samplesPerSecond,
      expectedSamplesPerSecond: (2 * o.n) / intervalSeconds,
      readsPerSecond: status.traffic.readsPerSecond,
      droppedSamples: status.subscribers[0]?.traffic?.dropped ?? 0,
    };
    return { ...base, idle, sampling, results: [{ ok: true }], aborted: false };
  } catch (e) {
    const aborted = e instanceof AbortedError || o.signal.aborted;
    return { ...base, ...(idle ? { idle } : {}), ...(sampling ? { sampling } : {}), results: [{ ok: false, error: aborted ? 'interrupted' : errorText(e) }], aborted };
  } finally {
    ws?.close();
    if (daemon) {
      const s = await daemon.stop();
      if (s.code !== 0) notes.push(`the daemon exited with ${s.signal ?? s.code} after SIGTERM; log: ${daemon.logFile}`);
      else await rm(daemon.dir, { recursive: true, force: true });
    }
    await rm(tmp, { recursive: true, force: true });
  }
}

export function toMarkdown(r: Report): string {
  const pct = (p?: Phase) => (p ? p.cpuPercent.toFixed(1) : '—');
  const s = r.sampling;
  const lines = [
    `# events-traffic: ${r.n} namespaces × 2 links, one subscriber, interval ${r.interval}`,
    '',
    `- date: ${r.env.date}`,
    `- kernel: ${r.env.kernel}; node: ${r.env.node}; CPUs: ${r.env.cpus} (${r.env.cpuModel})`,
    `- daemon: ${r.env.daemon}; named namespaces on the machine before the run: ${r.env.namespacesBefore}; namespaces bound in: ${r.env.netnsDir}`,
    '',
    '| phase | daemon CPU (% of one core) | samples/s received | namespace reads/s | RSS (MiB) |',
    '|---|---:|---:|---:|---:|',
    `| idle (no subscriber) | ${pct(r.idle)} | — | — | ${r.idle ? r.idle.rssMiB.toFixed(0) : '—'} |`,
    `| sampling ${2 * r.n} links at ${r.interval} | ${pct(s)} | ${s ? `${s.samplesPerSecond.toFixed(0)} (expected ${s.expectedSamplesPerSecond.toFixed(0)})` : '—'} | ${s ? s.readsPerSecond.toFixed(0) : '—'} | ${s ? s.rssMiB.toFixed(0) : '—'} |`,
    '',
    `Sampling cost: ${s && r.idle ? `${(s.cpuPercent - r.idle.cpuPercent).toFixed(1)}% of one core above idle` : '—'} (target: the sampling phase under 10%).${s ? ` Samples dropped (subscriber queue full): ${s.droppedSamples}.` : ''}`,
    ...r.results.flatMap((x) => (x.error ? ['', `**${x.error === 'interrupted' ? 'Interrupted' : `FAILED: ${x.error}`}**`] : [])),
    ...(r.notes.length ? ['', 'Notes:', ...r.notes.map((n) => `- ${n}`)] : []),
    '',
  ];
  return lines.join('\n');
}
