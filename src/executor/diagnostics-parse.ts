/**
 * Readers of the diagnostic tools' output, each tested against output recorded on this machine
 * (test/fixtures/stdout): iputils ping 20221126, ss (iproute2 6.1), conntrack-tools 1.4.7,
 * `ip -j route get` (iproute2 6.1).
 */
import type { ConntrackEntry, ConntrackTuple, KernelSocket, PingResult, PingReply, RouteLookup, SocketEnd } from './ops.js';

const REPLY_RE = /^\d+ bytes from ([^\s:]+|[0-9a-f:]+): icmp_seq=(\d+)(?: ttl=(\d+))? time=([\d.]+) ms/;
const STATS_RE = /^(\d+) packets transmitted, (\d+) received,(?: \+\d+ duplicates,)?(?: \+\d+ errors,)? ([\d.]+)% packet loss/m;
const RTT_RE = /^rtt min\/avg\/max\/mdev = ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms$/m;

/** `ping -n` stdout and stderr. A run that could not send (`ping: connect: Network is unreachable`, exit 2) has `failure`. */
export function parsePing(stdout: string, stderr: string): PingResult {
  const replies: PingReply[] = [];
  const errors: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = REPLY_RE.exec(line);
    if (m) replies.push({ from: m[1]!.replace(/:$/, ''), seq: Number(m[2]), ttl: m[3] === undefined ? null : Number(m[3]), timeMs: Number(m[4]) });
    else if (line.startsWith('From ')) errors.push(line.trim());
  }
  const stats = STATS_RE.exec(stdout);
  const rtt = RTT_RE.exec(stdout);
  const failure = stats ? null : (stderr.trim().split('\n')[0]?.replace(/^(?:\S*\/)?ping: /, '') || 'ping printed no statistics');
  return {
    sent: stats ? Number(stats[1]) : 0,
    received: stats ? Number(stats[2]) : 0,
    lossPercent: stats ? Number(stats[3]) : 100,
    rtt: rtt ? { minMs: Number(rtt[1]), avgMs: Number(rtt[2]), maxMs: Number(rtt[3]), mdevMs: Number(rtt[4]) } : null,
    replies,
    errors,
    failure,
  };
}

/** `RTNETLINK answers: X` -> errno name (what `ip route get` says when the kernel finds no way). */
const ROUTE_ERRNO: Readonly<Record<string, string>> = {
  'Network is unreachable': 'ENETUNREACH',
  'No route to host': 'EHOSTUNREACH',
  'Invalid argument': 'EINVAL',
  'Permission denied': 'EACCES',
  'Invalid cross-device link': 'EXDEV',
};

/** The kernel's refusal in `ip route get` stderr, or undefined when stderr is something else. */
export function parseRouteGetError(stderr: string): RouteLookup | undefined {
  const m = /^RTNETLINK answers: (.+)$/m.exec(stderr);
  if (!m) return undefined;
  const message = m[1]!.trim();
  return { ok: false, errno: ROUTE_ERRNO[message] ?? 'EUNKNOWN', message };
}

/** `ip -j route get` stdout: one object. */
export function parseRouteGet(stdout: string): RouteLookup {
  const [r] = JSON.parse(stdout) as Array<Record<string, unknown>>;
  const str = (k: string): string | null => (typeof r?.[k] === 'string' ? (r[k] as string) : null);
  return {
    ok: true,
    type: str('type') ?? 'unicast',
    dst: str('dst') ?? '',
    dev: str('dev'),
    gateway: str('gateway'),
    prefsrc: str('prefsrc'),
    table: typeof r?.table === 'number' ? r.table : null,
  };
}

/** `ADDR:PORT`, `[V6]:PORT`, `*:*`, `[fe80::1%eth0]:123`, `0.0.0.0%lo:53`. */
function socketEnd(text: string): SocketEnd {
  const i = text.lastIndexOf(':');
  let addr = text.slice(0, i);
  const portText = text.slice(i + 1);
  if (addr.startsWith('[') && addr.endsWith(']')) addr = addr.slice(1, -1);
  const pct = addr.indexOf('%');
  const link = pct < 0 ? null : addr.slice(pct + 1);
  if (pct >= 0) addr = addr.slice(0, pct);
  return { address: addr, port: portText === '*' ? null : Number(portText), link };
}

const PROC_RE = /\("([^"]*)",pid=(\d+),fd=(\d+)\)/g;

/** `ss -H -n -a -t -u -p -O` stdout: `Netid State Recv-Q Send-Q Local Peer [users:((...))]`. */
export function parseSockets(stdout: string): KernelSocket[] {
  const out: KernelSocket[] = [];
  for (const line of stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || (f[0] !== 'tcp' && f[0] !== 'udp')) continue;
    const users = line.slice(line.indexOf('users:') >= 0 ? line.indexOf('users:') : line.length);
    out.push({
      protocol: f[0],
      state: f[1]!,
      recvQ: Number(f[2]),
      sendQ: Number(f[3]),
      local: socketEnd(f[4]!),
      peer: socketEnd(f[5]!),
      processes: [...users.matchAll(PROC_RE)].map((m) => ({ name: m[1]!, pid: Number(m[2]), fd: Number(m[3]) })),
    });
  }
  return out;
}

/** `conntrack -L -o extended` stdout: `ipv4 2 tcp 6 109 TIME_WAIT src=… dst=… sport=… dport=… src=… … [ASSURED] mark=0 use=1`. */
export function parseConntrack(stdout: string): ConntrackEntry[] {
  const out: ConntrackEntry[] = [];
  for (const line of stdout.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || (f[0] !== 'ipv4' && f[0] !== 'ipv6')) continue;
    const protocol = f[2]!;
    const timeout = Number(f[4]);
    let i = 5;
    const state = f[i] !== undefined && !f[i]!.includes('=') && !f[i]!.startsWith('[') ? f[i++]! : null;
    const tuples: Array<Record<string, string>> = [];
    const flags: string[] = [];
    let mark: number | null = null;
    for (; i < f.length; i++) {
      const w = f[i]!;
      if (w.startsWith('[')) {
        flags.push(w.slice(1, -1));
        continue;
      }
      const [k, v = ''] = w.split('=', 2) as [string, string?];
      if (k === 'src') tuples.push({});
      if (k === 'mark') mark = Number(v);
      else if (['src', 'dst', 'sport', 'dport'].includes(k) && tuples.length) tuples[tuples.length - 1]![k] = v;
    }
    const tuple = (t: Record<string, string> | undefined): ConntrackTuple => ({
      src: t?.src ?? '',
      dst: t?.dst ?? '',
      sport: t?.sport === undefined ? null : Number(t.sport),
      dport: t?.dport === undefined ? null : Number(t.dport),
    });
    out.push({ family: f[0] === 'ipv4' ? 4 : 6, protocol, timeoutSeconds: Number.isFinite(timeout) ? timeout : null, state, original: tuple(tuples[0]), reply: tuple(tuples[1]), flags, mark });
  }
  return out;
}

const VERDICT_RE = /(?:^|\s)(drop|reject(?: with .*)?|accept|queue|return|continue|(?:jump|goto) \S+|masquerade|snat to \S+|dnat to \S+|redirect)(?:\s|$)/;

