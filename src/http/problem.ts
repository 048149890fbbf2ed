/**
 * RFC 9457 problem documents: every error netnsd sends is `application/problem+json` with
 * `type`, `title`, `status`, `detail`, `instance`, plus `code`, `requestId`, and `retryable`.
 */
import { Type, type Static } from '@sinclair/typebox';
import { AppError } from '../errors/app-error.js';
import { ERROR_CODES, type ErrorCode } from '../errors/codes.js';

export const PROBLEM_TYPE_BASE = 'https://netnsd.dev/problems/';

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'A URI naming the problem type: the base plus the code in kebab-case.' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    instance: Type.String({ description: 'The request path.' }),
    code: Type.Union(
      (Object.keys(ERROR_CODES) as ErrorCode[]).map((c) => Type.Literal(c)),
      { description: 'The stable error code; the README lists them all.' },
    ),
    requestId: Type.String(),
    retryable: Type.Optional(Type.Boolean({ description: 'Present and true when the same request may succeed later.' })),
    errors: Type.Optional(
      Type.Array(
        Type.Object({ field: Type.String(), message: Type.String() }, { additionalProperties: false }),
        { description: 'Each bad field of an invalid request.' },
      ),
    ),
  },
  {
    $id: 'Problem',
    // Some codes carry members of their own (e.g. `pids` for NAMESPACE_BUSY).
    additionalProperties: true,
    description: 'An RFC 9457 problem document.',
  },
);
export type Problem = Static<typeof ProblemSchema>;

export function problemType(code: ErrorCode): string {
  return PROBLEM_TYPE_BASE + code.toLowerCase().replaceAll('_', '-');
}

export function toProblem(err: AppError, instance: string, requestId: string): Problem & Record<string, unknown> {
  return {
    ...(err.meta ?? {}),
    type: problemType(err.code),
    title: ERROR_CODES[err.code].title,
    status: err.status,
    detail: err.detail,
    instance,
    code: err.code,
    requestId,
    ...(err.retryable ? { retryable: true } : {}),
  };
}

/** The error responses every endpoint may answer, for the OpenAPI document. */
export function problemResponses(...statuses: number[]): Record<number, typeof ProblemSchema> {
  const out: Record<number, typeof ProblemSchema> = {};
  for (const s of [400, 401, 403, 500, 503, ...statuses]) out[s] = ProblemSchema;
  return out;
}
