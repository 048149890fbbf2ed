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
        Type.Object(
          {
            field: Type.String(),
            message: Type.String(),
            command: Type.Optional(Type.Integer({ description: 'FIREWALL_*: the index in `nftables` of the command nft complained about, when it says.' })),
            expr: Type.Optional(Type.Integer({ description: "FIREWALL_*: the index in that rule's `expr`, when nft says." })),
            line: Type.Optional(Type.Integer({ description: 'FIREWALL_*: where nft says the problem is, when it gives a real place.' })),
            column: Type.Optional(Type.Integer()),
          },
          { additionalProperties: false },
        ),
        { description: "Each bad field of an invalid request; for FIREWALL_RULESET_INVALID and FIREWALL_CHANGE_REFUSED each complaint of nft (the message is nft's own)." },
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

const STATUS_TEXT: Record<number, string> = {
  400: 'The request is not valid',
  401: 'No valid bearer token',
  403: 'Not allowed for this token, or protected',
  404: 'Not found',
  406: 'The Accept header asks for nothing this endpoint gives',
  409: 'Conflicts with the current state',
  413: 'Body too large',
  415: 'Unsupported body media type',
  422: 'Valid, but cannot be done',
  429: 'Too many requests',
  500: 'Unexpected error',
  503: 'Unavailable or busy; see retryable',
  504: 'A system operation timed out',
};

/** A reference to the Problem schema, which the app registers once (app.addSchema). */
export const ProblemRef = Type.Unsafe<Problem>({ $ref: 'Problem#' });

export interface ProblemResponse {
  readonly description: string;
  readonly content: { readonly 'application/problem+json': { readonly schema: typeof ProblemRef } };
}

/** The error responses an endpoint may answer (always 400, 401, 403, 429, 500, 503), for validation and OpenAPI. */
export function problemResponses(...statuses: number[]): Record<number, ProblemResponse> {
  const out: Record<number, ProblemResponse> = {};
  for (const s of [400, 401, 403, 429, 500, 503, ...statuses].sort()) {
    out[s] = { description: STATUS_TEXT[s] ?? 'Error', content: { 'application/problem+json': { schema: ProblemRef } } };
  }
  return out;
}
