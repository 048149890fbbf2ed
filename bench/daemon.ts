/**
 * The real daemon as a child process, as a user would run it: a TCP listener on a free loopback
 * port, a bearer token with the admin scope, and a fresh data directory (so one method's store
 * does not carry into the next). Its stdout and stderr (pino JSON lines) go straight to a log
 * file, as a supervisor's would; the file is read for the `listening` line that names the port,
 * and later, when asked, for the other lines. Read from a pipe, thousands of lines a second were
 * this process's work, taken from the CPUs the clients and the daemon share (~20% of the
 * clients' time in `units`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortedError } from './proc.js';

export const REPO = new URL('..', import.meta.url).pathname.replace(/\/$/, '');

/** One parsed log line; `raw` is the line as the daemon wrote it. */
export interface LogLine {
  readonly level?: number;
  readonly msg?: string;
  readonly requestId?: string | undefined;
  /** The "request completed" line (of a request that is not a change) carries the method and the time (ms). */
  readonly method?: string | undefined;
  readonly responseTime?: number | undefined;
  /** The audit record of a change (its "audit" line): what it was and which ops it ran. */
  readonly audit?: AuditRecord | undefined;
  readonly raw: string;
}

/** One op of an audit record as the executor recorded it (src/executor/executor.ts OpRecord). */
export interface AuditOp {
  readonly kind: string;
  readonly ns: string;
  /** The command lines it ran (batch lines are recorded as the argv they stand for); empty in-process. */
  readonly argv: readonly (readonly string[])[];
  readonly ok: boolean;
  /** From the executor starting it to its result: not the time it waited in the pool's queue. */
  readonly durationMs: number;
}

export interface AuditRecord {
  /** `link.create`, `address.create`, ... */
  readonly action: string;
  readonly method: string;
  readonly namespace: string | null;
  readonly status: number;
  readonly ops: readonly AuditOp[];
  /** The request's time until its answer was sent. */
  readonly durationMs: number;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function auditRecord(v: unknown): AuditRecord | undefined {
  const a = v as Partial<Record<keyof AuditRecord, unknown>> | undefined;
  if (!a || typeof a.action !== 'string' || !Array.isArray(a.ops) || typeof a.durationMs !== 'number') return undefined;
  return { action: a.action, method: str(a.method) ?? '', namespace: str(a.namespace) ?? null, status: num(a.status) ?? 0, ops: a.ops as AuditOp[], durationMs: a.durationMs };
}

/** One log line, parsed (a line that is not JSON is kept as raw text only). */
function parseLine(raw: string): LogLine & { readonly url?: string | undefined } {
  try {
    const j = JSON.parse(raw) as Record<string, unknown>;
    // fastify labels the request id `reqId` unless told otherwise; netnsd's problem bodies and
    // audit records call it `requestId`. Accept either label.
    const rid = typeof j.requestId === 'string' ? j.requestId : typeof j.reqId === 'string' ? j.reqId : undefined;
    return {
      raw,
      level: num(j.level),
      msg: str(j.msg),
      requestId: rid,
      responseTime: num(j.responseTime),
      method: str((j.req as { method?: unknown } | undefined)?.method),
      audit: j.msg === 'audit' ? auditRecord(j.audit) : undefined,
      url: str(j.url),
    };
  } catch {
    return { raw };
  }
}

/** Newest mtime of any file under dir (0 when it has none). */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * How to start the daemon: the compiled `dist/main.js` when it exists and is newer than every file
 * under src/ (what `npm start` runs: no compile at startup), otherwise `src/main.ts` through tsx's
 * loader (always what is in the tree right now). The timed phases run after startup, so either
 * way the per-request cost is the same code; only the startup time differs.
 */
export function daemonEntry(): { args: string[]; label: string } {
  const dist = join(REPO, 'dist', 'main.js');
  const src = join(REPO, 'src', 'main.ts');
  const [file, args, shown] =
    existsSync(dist) && statSync(dist).mtimeMs > newestMtime(join(REPO, 'src')) ? [dist, [dist], 'dist/main.js'] : [src, ['--import', 'tsx', src], '--import tsx src/main.ts'];
  const flags = nodeFlagsOf(file);
  return { args: [...flags, ...args], label: ['node', ...flags, shown].join(' ') };
}

/**
 * The node options an entry's `#!/usr/bin/env -S node FLAGS` line gives it: what the `netnsd`
 * bin runs with (and `npm start`, and the Dockerfile), so that the daemon is measured as run.
 */
export function nodeFlagsOf(file: string): string[] {
  const first = readFileSync(file, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env -S node((?: +-[^ ]+)*) *$/.exec(first);
  return m ? m[1]!.trim().split(/ +/).filter(Boolean) : [];
}

/** The lines of a log file as it grows: each read takes what was appended since the last. */
class LogReader {
  private offset = 0;
  private partial = '';
  private closed = false;
  readonly raws: string[] = [];

  constructor(private readonly fd: number) {}

  /** Reads what was appended since the last read: its complete lines go to `raws` (nothing once closed). */
  read(): void {
    if (this.closed) return;
    const size = fstatSync(this.fd).size;
    if (size <= this.offset) return;
    const buf = Buffer.alloc(size - this.offset);
    const n = readSync(this.fd, buf, 0, buf.length, this.offset);
    this.offset += n;
    const text = this.partial + buf.subarray(0, n).toString('utf8');
    const parts = text.split('\n');
    this.partial = parts.pop()!;
    this.raws.push(...parts);
  }

  /** Reads the rest (a last line without its newline too) and closes the file; again, nothing. */
  close(): void {
    this.read();
    if (this.closed) return;
    this.closed = true;
    if (this.partial) this.raws.push(this.partial);
    this.partial = '';
    closeSync(this.fd);
  }
}

export class Daemon {
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly parsed: LogLine[] = [];
  private constructor(
    private readonly child: ChildProcess,
    /** The daemon's log file, read when asked (see `lines`). */
    private readonly log: LogReader,
    readonly url: string,
    readonly token: string,
    readonly dir: string,
    readonly logFile: string,
    readonly startupMs: number,
    readonly entry: string,
    exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  ) {
    this.exited = exited.then((x) => (this.exitInfo = x));
  }

  /**
   * Every line the daemon logged so far, parsed. Read and parsed here, when asked (after a timed
   * phase), not as they come: this process's clients share the CPUs with the daemon.
   */
  get lines(): readonly LogLine[] {
    this.log.read();
    const raws = this.log.raws;
    for (let i = this.parsed.length; i < raws.length; i++) this.parsed.push(parseLine(raws[i]!));
    return this.parsed;
  }

  /** The lines at level warn (40) or above. */
  get warnings(): LogLine[] {
    return this.lines.filter((l) => (l.level ?? 0) >= 40);
  }

  /** The daemon's process id (to read its CPU time from /proc). */
  get pid(): number {
    return this.child.pid!;
  }

  /** Whether the daemon has exited (it should not, until stop()). */
  get exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    return this.exitInfo;
  }

  /**
   * The daemon's own time per request (fastify's `responseTime`: from the request's arrival to
   * its answer), for requests of this method — what the server spent, without the client side.
   */
  responseTimes(method: string): number[] {
    // A change's audit line stands for its access line (one line per request).
    const audited = this.audits().filter((a) => a.method === method).map((a) => a.durationMs);
    const byId = new Map<string, string>();
    for (const l of this.lines) if (l.method && l.requestId) byId.set(l.requestId, l.method);
    return [...audited, ...this.lines.filter((l) => l.responseTime !== undefined && l.requestId && byId.get(l.requestId) === method).map((l) => l.responseTime!)];
  }

  /** The audit records of the changes it answered, in the order it logged them. */
  audits(): AuditRecord[] {
    return this.lines.flatMap((l) => (l.audit ? [l.audit] : []));
  }

  /** Waits up to ms for the daemon to exit; resolves with how it exited, or undefined. */
  async exitWithin(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
    return this.exitInfo;
  }

  /** The daemon's log lines that carry this request id. */
  linesFor(requestId: string): string[] {
    return this.lines.filter((l) => l.requestId === requestId).map((l) => l.raw);
  }

  /** With `unixSocket`: the path of the daemon's second listener, a Unix socket (no token needed). */
  socketPath: string | undefined;

  /**
   * Starts the daemon and resolves once it listens; rejects with its output if it does not.
   * `config` is written as the daemon's config file (`--config`), for settings without a flag;
   * `nodeArgs` go to node before the entry (e.g. `--cpu-prof`); `unixSocket` adds a second
   * listener on a Unix socket in the daemon's directory.
   */
  static async start(opts: { signal?: AbortSignal; timeoutMs?: number; config?: Record<string, unknown>; nodeArgs?: readonly string[]; unixSocket?: boolean } = {}): Promise<Daemon> {
    const dir = await mkdtemp(join(tmpdir(), 'netnsd-bench-'));
    const token = randomBytes(16).toString('hex');
    const tokensFile = join(dir, 'tokens.json');
    await writeFile(tokensFile, JSON.stringify({ tokens: [{ name: 'bench', token, scopes: ['admin'] }] }), { mode: 0o600 });
    const configArgs: string[] = [];
    if (opts.config) {
      const configFile = join(dir, 'config.json');
      await writeFile(configFile, JSON.stringify(opts.config));
      configArgs.push('--config', configFile);
    }
    const socketPath = opts.unixSocket ? join(dir, 'netnsd.sock') : undefined;
    if (socketPath) configArgs.push('--listen', `unix://${socketPath}`);
    const dataDir = join(dir, 'data');
    const logFile = join(dir, 'daemon.log');
    const entry = daemonEntry();

    const t0 = performance.now();
    // BENCH_DAEMON_NODE_ARGS: node options for the daemon only (`--cpu-prof --cpu-prof-dir=DIR`;
    // node refuses --cpu-prof in NODE_OPTIONS).
    const nodeArgs = (process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const out = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(
        process.execPath,
        [...(opts.nodeArgs ?? []), ...nodeArgs, ...entry.args, ...configArgs, '--listen', 'tcp://127.0.0.1:0', '--tokens', tokensFile, '--data-dir', dataDir, '--log-level', 'info'],
        { cwd: REPO, stdio: ['ignore', out, out], env: { ...process.env, LC_ALL: 'C' } },
      );
    } finally {
      closeSync(out); // the child has its own
    }
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal })),
    );
    const log = new LogReader(openSync(logFile, 'r'));

    const timeoutMs = opts.timeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    let poll: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const tail = () => {
          log.read();
          return log.raws.slice(-25).map((s) => `    ${s}`).join('\n');
        };
        let seen = 0;
        poll = setInterval(() => {
          log.read();
          for (; seen < log.raws.length; seen++) {
            const line = parseLine(log.raws[seen]!);
            if (line.msg === 'listening' && line.url?.startsWith('tcp://')) resolve(line.url);
          }
        }, 10);
        void exited.then(({ code, signal }) =>
          reject(new Error(`the daemon (${entry.label}) exited (${signal ?? code}) before listening:\n${tail()}`)),
        );
        child.on('error', reject);
        timer = setTimeout(() => reject(new Error(`the daemon did not log "listening" within ${timeoutMs} ms:\n${tail()}`)), timeoutMs);
        onAbort = () => reject(new AbortedError());
        opts.signal?.addEventListener('abort', onAbort, { once: true });
      });
      const d = new Daemon(child, log, url, token, dir, logFile, performance.now() - t0, entry.label, exited);
      d.socketPath = socketPath;
      return d;
    } catch (e) {
      child.kill('SIGTERM');
      await exited;
      log.close();
      // The log stays for a look; the admin token of a daemon that is gone does not.
      await rm(tokensFile, { force: true });
      throw e;
    } finally {
      clearTimeout(timer);
      clearInterval(poll);
      if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Stops the daemon as an operator would (SIGTERM: it closes listeners and drains started work)
   * and waits for it to exit; SIGKILL after timeoutMs. Resolves with how it exited, and `died`
   * when it had exited on its own before.
   */
  async stop(timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number; killed: boolean; died: boolean }> {
    const t0 = performance.now();
    let killed = false;
    const died = this.exitInfo !== undefined;
    if (!died) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => {
        killed = true;
        this.child.kill('SIGKILL');
      }, timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.log.close();
    return { ...this.exitInfo!, ms: performance.now() - t0, killed, died };
  }
}
