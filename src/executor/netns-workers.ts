/**
 * One long-lived `ip [-n NS] -force -batch -` worker per busy namespace, for changes inside it
 * (links now; addresses, routes and rules later): `ip -batch` lines take no `-n`, so each
 * namespace needs a process of its own (DESIGN.md 7). `host` has one too (`ip -force -batch -`),
 * apart from the root worker that adds and deletes namespaces, so that the root worker never
 * names a namespace and never pins one.
 *
 * Lifecycle:
 * - started on the first change in a namespace, closed after `idleMs` without work;
 * - a worker is a process inside its namespace, and keeps an fd to every namespace one of its
 *   lines named (`link add ... netns B`, `link set ... netns B`): both pin a deleted namespace.
 *   `release(ns)` closes the namespace's own worker and every worker that named it, and waits for
 *   them to exit; the executor calls it before `ip netns del`.
 * - `pids` lists every worker process still running, so that a namespace's "processes inside"
 *   never include netnsd's own workers.
 */
import { BatchWorker, type BatchResult, type Logger, silentLogger } from './batch-worker.js';
import { HOST } from './ops.js';

export interface NetnsWorkersOptions {
  /** Per request (BatchWorker timeoutMs). */
  readonly timeoutMs: number;
  /** Close a worker after this long without requests. Default 30 s. */
  readonly idleMs?: number;
  /** BatchWorker recycleAfter. Default 100. */
  readonly recycleAfter?: number;
  readonly log?: Logger;
}

interface Entry {
  readonly worker: BatchWorker;
  /** Namespaces its lines named (so it may hold an fd to them). */
  readonly named: Set<string>;
  busy: number;
  timer: NodeJS.Timeout | undefined;
}

export class NetnsWorkers {
  private readonly entries = new Map<string, Entry>();
  /** Workers being closed: their processes still run and are still ours. */
  private readonly closing = new Set<BatchWorker>();
  private readonly idleMs: number;
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly opts: NetnsWorkersOptions) {
    this.idleMs = opts.idleMs ?? 30_000;
    this.log = opts.log ?? silentLogger;
  }

  /** Pids of every worker process still running. */
  get pids(): number[] {
    return [...[...this.entries.values()].map((e) => e.worker), ...this.closing].flatMap((w) => w.pids);
  }

  /** Namespaces that have a worker now (for tests and the log). */
  get namespaces(): string[] {
    return [...this.entries.keys()].sort();
  }

  /**
   * Runs one line in the worker of `ns`, starting it when needed. `names` are the other
   * namespaces the line names (it will hold an fd to each until it exits).
   */
  async submit(ns: string, args: readonly string[], names: readonly string[] = []): Promise<BatchResult> {
    const entry = this.entry(ns);
    for (const n of names) if (n !== ns && n !== HOST) entry.named.add(n);
    entry.busy++;
    clearTimeout(entry.timer);
    try {
      return await entry.worker.submit(args);
    } finally {
      entry.busy--;
      if (entry.busy === 0 && this.entries.get(ns) === entry) {
        entry.timer = setTimeout(() => {
          if (entry.busy === 0 && this.entries.get(ns) === entry) void this.closeEntries([ns]);
        }, this.idleMs);
        entry.timer.unref();
      }
    }
  }

  /**
   * Closes the worker inside `ns` and every worker that named `ns`, and waits until their
   * processes have exited; lines already written finish first. Later submits start new workers.
   */
  async release(ns: string): Promise<void> {
    const keys = [...this.entries].filter(([k, e]) => k === ns || e.named.has(ns)).map(([k]) => k);
    await this.closeEntries(keys);
  }

  /** Closes every worker and refuses new work. */
  async close(): Promise<void> {
    this.closed = true;
    await this.closeEntries([...this.entries.keys()]);
    await Promise.all([...this.closing].map((w) => w.close()));
  }

  private entry(ns: string): Entry {
    let e = this.entries.get(ns);
    if (!e) {
      const worker = new BatchWorker({
        tool: 'ip',
        ...(ns === HOST ? {} : { netns: ns }),
        timeoutMs: this.opts.timeoutMs,
        recycleAfter: this.opts.recycleAfter ?? 100,
        log: this.log,
      });
      if (this.closed) void worker.close();
      e = { worker, named: new Set(), busy: 0, timer: undefined };
      this.entries.set(ns, e);
    }
    return e;
  }

  private async closeEntries(keys: readonly string[]): Promise<void> {
    const workers: BatchWorker[] = [];
    for (const k of keys) {
      const e = this.entries.get(k);
      if (!e) continue;
      clearTimeout(e.timer);
      this.entries.delete(k);
      this.closing.add(e.worker);
      workers.push(e.worker);
      this.log.debug({ namespace: k, named: [...e.named] }, 'closing namespace worker');
    }
    await Promise.all(
      workers.map(async (w) => {
        await w.close();
        this.closing.delete(w);
      }),
    );
  }
}
