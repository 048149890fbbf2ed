import { type ErrorCode, codeInfo, statusOf } from './codes.js';

/** Extra members of a problem document (e.g. `pids`, `errors`), merged into the response. */
export type ProblemMeta = Record<string, unknown>;

/**
 * The one error type of netnsd. `detail` is for the client; `cause` (kernel stderr, stack) goes to
 * the log only. `meta` adds members to the problem document.
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly detail: string;
  readonly meta: ProblemMeta | undefined;
  /** Extra HTTP headers to send with the problem (e.g. Retry-After). */
  readonly headers: Record<string, string> | undefined;

  constructor(
    code: ErrorCode,
    detail: string,
    opts: { cause?: unknown; meta?: ProblemMeta; headers?: Record<string, string> } = {},
  ) {
    super(`${code}: ${detail}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.detail = detail;
    this.meta = opts.meta;
    this.headers = opts.headers;
  }

  get status(): number {
    return statusOf(this.code);
  }

  get retryable(): boolean {
    return codeInfo(this.code).retryable === true;
  }
}

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}

/** REQUEST_INVALID listing every field that does not fit (`meta.errors`, as schema failures do). */
export function invalidFields(errors: ReadonlyArray<{ readonly field: string; readonly message: string }>): AppError {
  return new AppError('REQUEST_INVALID', `The request is not valid: ${errors.map((e) => `${e.field} ${e.message}`).join('; ')}`, { meta: { errors } });
}
