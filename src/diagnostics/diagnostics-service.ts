/**
 * Troubleshooting: ping, TCP connect, sockets, conntrack and (opt-in) exec inside a namespace.
 * Every number is capped here (see CAPS) so that no request runs for long, and at most
 * MAX_RUNNING diagnostics run at once (DIAGNOSTICS_BUSY beyond), so they never take every slot
 * of the executor pool. `diagnostics/path` follows a packet through the namespaces (path.ts).
 */
import { AppError } from '../errors/app-error.js';
import type { Executor, OpContext } from '../executor/executor.js';
import type { ConntrackEntry, ExecResult, KernelSocket, PingResult, TcpConnectResult } from '../executor/ops.js';
import { parseDuration } from '../duration.js';
import { parseIp } from '../ip-address.js';
import { existingNamespace, type NetnsDirectory } from '../namespaces/netns-dir.js';
import { PathTracer, type FirewallCounters, type LinkLister, type PathAnswer } from './path.js';

/** The caps (documented in the README). */
export const CAPS = {
  count: { min: 1, max: 20 },
  intervalMs: { min: 10, max: 5_000 },
  size: { min: 0, max: 65_507 },
  replyTimeoutMs: { min: 1, max: 10_000 },
  /** A whole ping run: (count - 1) * interval + timeout, at most. */
  deadlineMs: 30_000,
  tcpTimeoutMs: { min: 1, max: 10_000 },
  /** exec output is kept at least this much per stream, so a tool's own error line is never cut. */
  execMinOutputBytes: 4096,
} as const;
const MAX_RUNNING = 4;
/** A namespace target with more global addresses is traced to its first ones only (each trace probes for ~1.4 s). */
export const MAX_PATH_TARGETS = 4;

export interface PingRequest { readonly target: string; readonly count?: number; readonly interval?: string; readonly size?: number; readonly timeout?: string }
export interface ExecConfig { readonly enabled: boolean; readonly timeout: string; readonly maxOutputBytes: number }

type FieldError = { field: string; message: string };

export class DiagnosticsService {
  private running = 0;
  private readonly tracer: PathTracer | undefined;
  constructor(
    private readonly ex: Executor,
    private readonly dir: NetnsDirectory,
    private readonly exec: ExecConfig,
    paths?: { readonly links: LinkLister; readonly firewall?: FirewallCounters },
  ) {
    this.tracer = paths && new PathTracer({ executor: ex, dir, links: paths.links, ...(paths.firewall ? { firewall: paths.firewall } : {}) });
  }

  /**
   * Why `from` can or cannot reach `to` (an address, or each global address of a namespace, of
   * `family` when given): one answer per destination. Counts as one running diagnostic.
   */
  async path(req: { from: string; to: string; family?: 4 | 6 }, ctx: OpContext): Promise<PathAnswer[]> {
    if (!this.tracer) throw new AppError('INTERNAL', 'path tracing is not wired');
    await existingNamespace(this.dir, req.from);
    const targets = await this.tracer.targets(req.to, req.family);
    return this.bounded(async () => {
      const out: PathAnswer[] = [];
      for (const t of targets.slice(0, MAX_PATH_TARGETS)) out.push(await this.tracer!.trace(req.from, t, ctx));
      return out;
    });
  }

  async ping(ns: string, req: PingRequest, ctx: OpContext): Promise<PingResult & { target: string }> {
    const errors: FieldError[] = [];
    const target = parseIp(req.target);
    if (!target) errors.push({ field: 'body.target', message: 'must be an IPv4 or IPv6 address' });
    const count = req.count ?? 3;
    const intervalMs = ms(req.interval ?? '200ms', 'body.interval', CAPS.intervalMs, errors);
    const timeoutMs = ms(req.timeout ?? '1s', 'body.timeout', CAPS.replyTimeoutMs, errors);
    const size = req.size ?? 56;
    const deadlineMs = (count - 1) * intervalMs + timeoutMs;
    if (errors.length === 0 && deadlineMs > CAPS.deadlineMs) errors.push({ field: 'body.count', message: `(count - 1) * interval + timeout must be at most ${CAPS.deadlineMs / 1000}s` });
    invalid(errors);
    await existingNamespace(this.dir, ns);
    return { target: req.target, ...(await this.bounded(() => this.ex.run({ kind: 'diag.ping', ns, spec: { family: target!.family, target: req.target, count, intervalMs, size, timeoutMs, deadlineMs } }, ctx))) };
  }

  async tcpConnect(ns: string, req: { address: string; port: number; timeout?: string }, ctx: OpContext): Promise<TcpConnectResult & { connected: boolean }> {
    const errors: FieldError[] = [];
    if (!parseIp(req.address)) errors.push({ field: 'body.address', message: 'must be an IPv4 or IPv6 address' });
    const timeoutMs = ms(req.timeout ?? '2s', 'body.timeout', CAPS.tcpTimeoutMs, errors);
    invalid(errors);
    await existingNamespace(this.dir, ns);
    const r = await this.bounded(() => this.ex.run({ kind: 'diag.tcpConnect', ns, address: req.address, port: req.port, timeoutMs }, ctx));
    return { connected: r.outcome === 'connected', ...r };
  }

  async sockets(ns: string, filter: { state?: 'listening' | 'connected'; protocol?: 'tcp' | 'udp' }): Promise<KernelSocket[]> {
    await existingNamespace(this.dir, ns);
    const { sockets } = await this.ex.run({ kind: 'diag.sockets', ns });
    return sockets.filter((s) => (filter.protocol === undefined || s.protocol === filter.protocol) && (filter.state === undefined || (filter.state === 'listening') === isListening(s)));
  }

  async conntrack(ns: string): Promise<readonly ConntrackEntry[]> {
    await existingNamespace(this.dir, ns);
    return (await this.ex.run({ kind: 'diag.conntrack', ns })).entries;
  }

  async execute(ns: string, req: { argv: readonly string[]; timeout?: string; stdin?: string }, ctx: OpContext): Promise<ExecResult> {
    if (!this.exec.enabled) throw new AppError('EXEC_DISABLED', 'The exec endpoint is off; set exec.enabled in the configuration to offer it');
    const errors: FieldError[] = [];
    if (!req.argv[0]?.startsWith('/')) errors.push({ field: 'body.argv.0', message: 'must be an absolute path (no PATH lookup, no shell)' });
    const max = parseDuration(this.exec.timeout);
    const timeoutMs = ms(req.timeout ?? this.exec.timeout, 'body.timeout', { min: 1, max }, errors);
    invalid(errors);
    await existingNamespace(this.dir, ns);
    const maxOutputBytes = Math.max(this.exec.maxOutputBytes, CAPS.execMinOutputBytes);
    return this.bounded(() => this.ex.run({ kind: 'diag.exec', ns, argv: req.argv, timeoutMs, maxOutputBytes, ...(req.stdin === undefined ? {} : { stdin: req.stdin }) }, ctx));
  }

  private async bounded<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= MAX_RUNNING) throw new AppError('DIAGNOSTICS_BUSY', `${MAX_RUNNING} diagnostics are running; try again shortly`, { headers: { 'Retry-After': '1' } });
    this.running++;
    try {
      return await work();
    } finally {
      this.running--;
    }
  }
}

function isListening(s: KernelSocket): boolean {
  return s.state === 'LISTEN' || (s.protocol === 'udp' && s.state === 'UNCONN' && s.peer.port === null);
}

function ms(text: string, field: string, range: { min: number; max: number }, errors: FieldError[]): number {
  let v: number;
  try {
    v = parseDuration(text);
  } catch (e) {
    errors.push({ field, message: (e as Error).message });
    return range.min;
  }
  if (v < range.min || v > range.max) errors.push({ field, message: `must be from ${range.min}ms to ${range.max}ms` });
  return v;
}

function invalid(errors: readonly FieldError[]): void {
  if (errors.length) throw new AppError('REQUEST_INVALID', `Invalid: ${errors.map((e) => e.field).join(', ')}`, { meta: { errors } });
}
