import type { Op, ResultOf } from './ops.js';
import type { ErrorCode } from '../errors/codes.js';

/** One op as it ran, for the audit record of the request that caused it. */
export interface OpRecord {
  readonly kind: Op['kind'];
  readonly ns: string;
  /** The command line(s) it ran, when it ran a tool (empty for in-process work). */
  readonly argv: readonly (readonly string[])[];
  readonly ok: boolean;
  /** The error code when it failed. */
  readonly code?: ErrorCode;
  readonly durationMs: number;
}

/** Per-call context: where to record what ran (the request's audit trail). */
export interface OpContext {
  readonly record?: (rec: OpRecord) => void;
  /**
   * This op continues (or undoes) a change whose first op already ran: the pool must not refuse
   * it for a full queue or a drain, or the change would be left half done.
   */
  readonly continues?: boolean;
  /**
   * Told by a backend once the op's effect is ordered behind every earlier op and before every
   * later one (handed to a FIFO that runs it: the addon's request thread), before it has run:
   * the pool may then start the namespace's next change, which that FIFO still runs after it.
   */
  readonly sequenced?: () => void;
}

/**
 * Runs typed ops. Implementations: the real backend (iproute2 batch workers plus the native
 * addon), the pool that wraps any executor, and FakeExecutor for unit tests.
 *
 * `run` rejects only with AppError (codes such as NAMESPACE_EXISTS, NAMESPACE_NOT_FOUND,
 * EXECUTOR_BUSY, EXECUTOR_TIMEOUT, TOOL_MISSING, PRIVILEGE_REQUIRED, INTERNAL).
 */
export interface Executor {
  run<O extends Op>(op: O, ctx?: OpContext): Promise<ResultOf<O>>;
  /** Answers when the executor can do work (used by /readyz). */
  ping(): Promise<void>;
  /** Stop taking work, finish what was started, release workers. Idempotent. */
  close(): Promise<void>;
}
