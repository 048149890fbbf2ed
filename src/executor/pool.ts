/**
 * The pool in front of any executor: a global concurrency cap, strict FIFO per namespace for
 * changes (changes of one namespace never interleave: the next starts when one has run, or once
 * the backend has queued it where changes run in the order they came, see OpContext.sequenced;
 * the backend then keeps anything of the namespace that goes another way, or that needs what a
 * queued change makes, behind it; different namespaces run in parallel;
 * reads run beside them, so one busy namespace is not a serial lane for its readers), a bounded queue that
 * answers EXECUTOR_BUSY, and a drain on close. An op handed to the pool runs to its end whatever
 * its caller does meanwhile: a client that hangs up must not leave a half-done change.
 */
import { AppError, isAppError } from '../errors/app-error.js';
import { commandsFor, spawnArgv } from './argv.js';
import type { Executor, OpContext, OpRecord } from './executor.js';
import { type Op, type ResultOf, isReadOp, opNamespace } from './ops.js';

export interface ExecutorPoolOptions {
  /** Ops running at once, over all namespaces. Default 8. */
  readonly concurrency?: number;
  /** Ops waiting (not running) at most; one more is refused with EXECUTOR_BUSY. Default 2048. */
  readonly queueLimit?: number;
}

export interface PoolStats {
  readonly running: number;
  readonly queued: number;
}

interface Task {
  readonly key: string;
  /** Reads take no turn in their namespace's FIFO. */
  readonly read: boolean;
  readonly start: () => void;
}

export class ExecutorPool implements Executor {
  private readonly concurrency: number;
  private readonly queueLimit: number;
  /** Waiting tasks in arrival order. */
  private readonly queue: Task[] = [];
  /** Namespaces with an op running. */
  private readonly busy = new Set<string>();
  private running = 0;
  private closing: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  constructor(
    private readonly inner: Executor,
    options: ExecutorPoolOptions = {},
  ) {
    this.concurrency = options.concurrency ?? 8;
    this.queueLimit = options.queueLimit ?? 2048;
  }

  /**
   * Queues op behind earlier ops on its namespace and runs it when a slot is free. Rejects at once
   * with EXECUTOR_BUSY (Retry-After: 1) when the queue is full and EXECUTOR_UNAVAILABLE once
   * closing, unless `ctx.continues`. Records the op in ctx once it ran: the inner executor's record when it made one
   * (it knows what it really ran), else one built from argv.ts.
   */
  run<O extends Op>(op: O, ctx: OpContext = {}): Promise<ResultOf<O>> {
    // The next step (or the undo) of a change already under way is never refused: a refusal
    // there would leave the change half done.
    if (this.closing && !ctx.continues) return Promise.reject(new AppError('EXECUTOR_UNAVAILABLE', 'netnsd is shutting down'));
    if (this.queue.length >= this.queueLimit && !ctx.continues && !isReadOp(op)) {
      return Promise.reject(
        new AppError('EXECUTOR_BUSY', `${this.queueLimit} system operations are already waiting`, { headers: { 'Retry-After': '1' } }),
      );
    }
    return new Promise<ResultOf<O>>((resolve, reject) => {
      const key = opNamespace(op);
      const read = isReadOp(op);
      this.queue.push({
        key,
        read,
        start: () => {
          // The namespace's turn ends when the op has run, or earlier once the backend says its
          // effect is ordered (ctx.sequenced): the next change is started then, behind it.
          let ended = read;
          const endTurn = (): void => {
            if (ended) return;
            ended = true;
            this.busy.delete(key);
          };
          const sequenced = (): void => {
            if (ended) return;
            endTurn();
            queueMicrotask(() => this.dispatch());
          };
          this.execute(op, ctx, sequenced)
            .then(resolve, reject)
            .finally(() => {
              this.running--;
              endTurn();
              this.dispatch();
            });
        },
      });
      this.dispatch();
    });
  }

  ping(): Promise<void> {
    if (this.closing) return Promise.reject(new AppError('EXECUTOR_UNAVAILABLE', 'netnsd is shutting down'));
    return this.inner.ping();
  }

  /** Refuses new ops, lets queued and running ones finish, then closes the inner executor. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.running > 0 || this.queue.length > 0) await new Promise<void>((r) => (this.drained = r));
      await this.inner.close();
    })();
    return this.closing;
  }

  stats(): PoolStats {
    return { running: this.running, queued: this.queue.length };
  }

  /** Starts, in arrival order, every waiting read and every change whose namespace is idle, while slots are free. */
  private dispatch(): void {
    for (let i = 0; i < this.queue.length && this.running < this.concurrency; ) {
      const task = this.queue[i] as Task;
      if (!task.read && this.busy.has(task.key)) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      if (!task.read) this.busy.add(task.key);
      this.running++;
      task.start();
    }
    if (this.running === 0 && this.queue.length === 0) this.drained?.();
  }

  private async execute<O extends Op>(op: O, ctx: OpContext, sequenced: () => void): Promise<ResultOf<O>> {
    let innerRecord: OpRecord | undefined;
    const started = performance.now();
    const record = (ok: boolean, code?: AppError['code']): void => {
      ctx.record?.(
        innerRecord ?? { kind: op.kind, ns: opNamespace(op), argv: plannedArgv(op), ok, ...(code ? { code } : {}), durationMs: performance.now() - started },
      );
    };
    try {
      const result = await this.inner.run(op, { record: (r) => (innerRecord = r), sequenced });
      record(true);
      return result;
    } catch (e) {
      const err = isAppError(e) ? e : new AppError('INTERNAL', `${op.kind} failed`, { cause: e });
      record(false, err.code);
      throw err;
    }
  }
}

/** The commands op stands for, for the record of an executor that keeps none itself. */
function plannedArgv(op: Op): string[][] {
  try {
    return commandsFor(op).map((c) => [...spawnArgv(c)]);
  } catch {
    return [];
  }
}
