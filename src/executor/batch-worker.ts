/**
 * A long-lived `ip|tc [-n NS] -force -batch -` process that runs many requests, one line each,
 * and tells every request its own result. Protocol (measured, iproute2 6.1):
 *
 * - With `-force`, a good line prints nothing; a bad line prints its message(s), then
 *   `Command failed -:LINE` on stderr, and the process goes on with the next line.
 * - The unknown word `xyzzy` (the sentinel) answers `Object "xyzzy" is unknown, try "ip help".`
 *   and `Command failed -:N` without a syscall. Lines run in order, so its answer proves every
 *   earlier line finished: those without a message of their own succeeded.
 * - stderr is unbuffered, so a message always arrives before the `Command failed` line after it.
 * - Some argument errors (`1.2.3.4/33`, `via 999.1.1.1`) make ip exit even with `-force`. Pending
 *   requests are then failed on `close` (after stderr is drained, unlike `exit`).
 * - The process keeps an fd to every namespace that a line names with `netns set` or
 *   `link ... netns NS` until it exits, pinning deleted namespaces; `netns add` keeps none. A
 *   process is therefore retired after a number of requests and a new one started.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { basename } from 'node:path';
import { AppError } from '../errors/app-error.js';
import { batchLine, toolPath } from './argv.js';
import { classifySpawnError } from './classify.js';

/** Pino-compatible logger: `(obj, msg)`. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export interface BatchWorkerOptions {
  readonly tool: 'ip' | 'tc';
  /** Run inside this named namespace (`-n NS`); absent = the root namespace. */
  readonly netns?: string;
  /** Per request, from submit to answer; on expiry the process is killed. Default 10 s. */
  readonly timeoutMs?: number;
  /**
   * Start a fresh process after this many requests (see the pinning note above). Every request
   * counts, not only those naming a namespace: simpler, and a spawn per 100 lines costs nothing.
   * Default 100.
   */
  readonly recycleAfter?: number;
  /** Stderr kept per request. Default 16 KiB. */
  readonly maxStderrBytes?: number;
  readonly log?: Logger;
}

export type BatchResult = { readonly ok: true } | { readonly ok: false; readonly stderr: string };

/** The environment of every tool process: fixed locale (classify reads English), fixed PATH. */
export const TOOL_ENV = { LC_ALL: 'C', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } as const;

const SENTINEL = 'xyzzy';
const FAILED_LINE = /^Command failed -:(\d+)$/;

export interface Waiter<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (e: AppError) => void;
}

type Entry = ({ readonly kind: 'request' } & Waiter<BatchResult>) | { readonly kind: 'sentinel'; readonly waiters: ReadonlyArray<Waiter<void>> };

/**
 * The bookkeeping of one batch process, apart from the process so it can be tested on recorded
 * stderr: which line belongs to whom, and which stderr belongs to which line. Line numbers count
 * from 1, as ip's do; every line written must be reserved here, in the order it is written.
 */
export class BatchLedger {
  private nextLine = 1;
  /** Lines awaiting an answer, by line number; a Map iterates in insertion (= line) order. */
  private readonly waiting = new Map<number, Entry>();
  /** Message lines since the last `Command failed`: they belong to the next failing line. */
  private messages = '';
  private partial = '';

  constructor(private readonly maxStderrBytes: number) {}

  /** Reserves the next line for a request. */
  request(waiter: Waiter<BatchResult>): number {
    const n = this.nextLine++;
    this.waiting.set(n, { kind: 'request', ...waiter });
    return n;
  }

  /** Reserves the next line for a sentinel; its waiters resolve once it is answered. */
  sentinel(waiters: ReadonlyArray<Waiter<void>>): number {
    const n = this.nextLine++;
    this.waiting.set(n, { kind: 'sentinel', waiters });
    return n;
  }

  /** Rejects request `n` now if it still waits (a timeout); true when it did. */
  abandon(n: number, err: AppError): boolean {
    const entry = this.waiting.get(n);
    if (entry?.kind !== 'request') return false;
    this.waiting.delete(n);
    entry.reject(err);
    return true;
  }

  get pendingRequests(): number {
    let n = 0;
    for (const e of this.waiting.values()) if (e.kind === 'request') n++;
    return n;
  }

  /** Stderr not yet attributed to a line (for the log when the process dies). */
  get unattributed(): string {
    return `${this.messages}${this.partial}`.trim();
  }

  /** Reads stderr text, in chunks of any size. */
  feed(chunk: string): void {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    // A line that never ends is not iproute2's; keep the buffer bounded anyway.
    if (this.partial.length > this.maxStderrBytes) {
      lines.push(this.partial);
      this.partial = '';
    }
    for (const line of lines) {
      const m = FAILED_LINE.exec(line);
      if (m) this.answer(Number(m[1]));
      else if (this.messages.length < this.maxStderrBytes) this.messages += `${line.slice(0, this.maxStderrBytes - this.messages.length)}\n`;
    }
  }

  /** Rejects everything still waiting (the process is gone). */
  failAll(err: AppError): void {
    for (const entry of this.waiting.values()) {
      if (entry.kind === 'sentinel') for (const w of entry.waiters) w.reject(err);
      else entry.reject(err);
    }
    this.waiting.clear();
  }

  /** Line `failed` printed `Command failed`: every earlier line has finished, and it failed. */
  private answer(failed: number): void {
    const stderr = this.messages.trimEnd();
    this.messages = '';
    for (const [n, entry] of this.waiting) {
      if (n > failed) break;
      this.waiting.delete(n);
      if (entry.kind === 'sentinel') for (const w of entry.waiters) w.resolve();
      else entry.resolve(n === failed ? { ok: false, stderr } : { ok: true });
    }
  }
}

/** One child process and its ledger. */
class BatchProcess {
  readonly child: ChildProcess;
  readonly closed: Promise<void>;
  /** Requests written (or queued to be) so far, for recycling. */
  requests = 0;
  /** No new lines: stdin is (or will be) ended and the process runs out. */
  retiring = false;
  private alive = true;
  private readonly ledger: BatchLedger;
  private outbox: string[] = [];
  private pings: Array<Waiter<void>> = [];
  private flushScheduled = false;
  private spawnError: unknown;

  constructor(
    private readonly file: string,
    args: readonly string[],
    private readonly opts: Required<Omit<BatchWorkerOptions, 'netns'>>,
  ) {
    this.ledger = new BatchLedger(opts.maxStderrBytes);
    // stdout is not read: change commands print nothing there, and an unread pipe could fill.
    // A process group of its own: a Ctrl-C meant for the daemon (SIGINT to the terminal's group)
    // must not kill the worker under work in flight; the daemon drains, then closes its stdin.
    this.child = spawn(file, args, { stdio: ['pipe', 'ignore', 'pipe'], env: TOOL_ENV, detached: true });
    this.child.on('error', (e) => {
      this.spawnError ??= e;
    });
    // Writing to a process that died fails with EPIPE; the close handler fails what was pending.
    this.child.stdin?.on('error', () => {});
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (chunk: string) => this.ledger.feed(chunk));
    this.closed = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.onClose(code, signal);
        resolve();
      });
    });
  }

  get usable(): boolean {
    return this.alive && !this.retiring;
  }

  submit(line: string): Promise<BatchResult> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const n = this.ledger.request({
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      timer = setTimeout(() => this.onTimeout(n), this.opts.timeoutMs);
      this.requests++;
      this.outbox.push(line);
      this.scheduleFlush();
    });
  }

  /** Resolves when the process has answered everything written before. */
  ping(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pings.push({ resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Let the process finish what it has and exit (stdin EOF) after the next flush. */
  retire(): void {
    this.retiring = true;
    this.scheduleFlush();
  }

  kill(): void {
    this.retiring = true;
    this.child.kill('SIGKILL');
  }

  /**
   * Writes every line queued in this turn of the event loop plus one sentinel, in one write:
   * concurrent requests share a sentinel (setImmediate runs after the turn's I/O callbacks, so
   * requests started by the answers of earlier ones are still caught).
   */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (!this.alive) return;
      if (this.outbox.length > 0 || this.pings.length > 0) {
        this.ledger.sentinel(this.pings);
        this.outbox.push(SENTINEL);
        this.child.stdin?.write(`${this.outbox.join('\n')}\n`);
        this.outbox = [];
        this.pings = [];
      }
      if (this.retiring) this.child.stdin?.end();
    });
  }

  private onTimeout(n: number): void {
    const err = new AppError('EXECUTOR_TIMEOUT', `${basename(this.file)} did not answer within ${this.opts.timeoutMs} ms`);
    if (!this.ledger.abandon(n, err)) return;
    this.opts.log.warn({ pid: this.child.pid, line: n }, 'batch worker timed out: killing it');
    this.kill();
  }

  private onClose(code: number | null, signal: NodeJS.Signals | null): void {
    this.alive = false;
    const stderr = this.ledger.unattributed;
    const err =
      this.spawnError !== undefined
        ? classifySpawnError(this.spawnError, this.file)
        : new AppError('EXECUTOR_UNAVAILABLE', `the ${basename(this.file)} worker exited before answering; the request may or may not have run`, {
            cause: { code, signal, stderr },
          });
    const pending = this.ledger.pendingRequests;
    if (pending > 0) this.opts.log.warn({ pid: this.child.pid, code, signal, stderr, pending }, 'batch worker exited with requests pending');
    else this.opts.log.debug({ pid: this.child.pid, code, signal }, 'batch worker exited');
    this.ledger.failAll(err);
    for (const w of this.pings) w.reject(err);
    this.pings = [];
    this.outbox = [];
  }
}

/**
 * The owner-facing worker: starts a process on first use, starts a new one after the last died
 * or was retired, and retires each after `recycleAfter` requests.
 */
export class BatchWorker {
  private readonly opts: Required<Omit<BatchWorkerOptions, 'netns'>>;
  private readonly args: readonly string[];
  private current: BatchProcess | undefined;
  /** Every process not yet closed, the current one included. */
  private readonly live = new Set<BatchProcess>();
  private closed = false;

  constructor(options: BatchWorkerOptions) {
    this.opts = {
      tool: options.tool,
      timeoutMs: options.timeoutMs ?? 10_000,
      recycleAfter: options.recycleAfter ?? 100,
      maxStderrBytes: options.maxStderrBytes ?? 16 * 1024,
      log: options.log ?? silentLogger,
    };
    this.args = [...(options.netns === undefined ? [] : ['-n', options.netns]), '-force', '-batch', '-'];
  }

  /** Pids of every process still running (retiring ones included). */
  get pids(): number[] {
    return [...this.live].flatMap((p) => (p.child.pid === undefined ? [] : [p.child.pid]));
  }

  /**
   * Runs one command line (args without the tool and without `-n`). Resolves with its own result;
   * rejects with EXECUTOR_TIMEOUT, EXECUTOR_UNAVAILABLE (the process died: the line may or may
   * not have run), TOOL_MISSING, or INTERNAL for args that cannot be a batch line.
   */
  async submit(args: readonly string[]): Promise<BatchResult> {
    const line = batchLine(args);
    const proc = this.process();
    const result = proc.submit(line);
    if (proc.requests >= this.opts.recycleAfter) {
      this.opts.log.debug({ pid: proc.child.pid, requests: proc.requests }, 'recycling batch worker');
      proc.retire();
    }
    return await result;
  }

  /** Resolves when a process answers a sentinel (starting one if none runs). */
  async ping(): Promise<void> {
    const proc = this.process();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new AppError('EXECUTOR_TIMEOUT', `the ${this.opts.tool} worker did not answer a ping`)), this.opts.timeoutMs);
    });
    try {
      await Promise.race([proc.ping(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Lets every process finish the lines it was given, then waits for all to exit. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.live) p.retire();
    await Promise.all([...this.live].map((p) => p.closed));
  }

  private process(): BatchProcess {
    if (this.closed) throw new AppError('EXECUTOR_UNAVAILABLE', `the ${this.opts.tool} worker is closed`);
    if (this.current?.usable) return this.current;
    const proc = new BatchProcess(toolPath(this.opts.tool), this.args, this.opts);
    this.live.add(proc);
    void proc.closed.then(() => this.live.delete(proc));
    this.opts.log.debug({ pid: proc.child.pid, tool: this.opts.tool, args: this.args }, 'started batch worker');
    this.current = proc;
    return proc;
  }
}
