import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors/app-error.js';
import { toProblem } from './problem.js';
import { fieldErrors } from './validation.js';

/** The request path without its query (which may hold secrets such as tickets). */
export function pathOf(req: FastifyRequest): string {
  const q = req.url.indexOf('?');
  return q < 0 ? req.url : req.url.slice(0, q);
}

/** Maps anything thrown to an AppError: fastify's own errors get precise codes, the rest is INTERNAL. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const fe = err as Partial<FastifyError> & { validation?: unknown; validationContext?: string };
  if (Array.isArray(fe.validation)) {
    const errors = fieldErrors(fe.validationContext ?? 'request', fe.validation);
    const summary = errors.map((e) => `${e.field} ${e.message}`).join('; ');
    return new AppError('REQUEST_INVALID', `The request is not valid: ${summary}`, { meta: { errors } });
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('REQUEST_TOO_LARGE', 'The request body is larger than the configured limit (limits.bodyBytes)');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('MEDIA_TYPE_UNSUPPORTED', 'Send the body as application/json (PATCH also takes application/merge-patch+json)');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('REQUEST_INVALID', 'The body is empty; send a JSON object', {
        meta: { errors: [{ field: 'body', message: 'is required' }] },
      });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new AppError('REQUEST_INVALID', 'The body is not valid JSON', { meta: { errors: [{ field: 'body', message: 'is not valid JSON' }] } });
  }
  if (err instanceof SyntaxError && fe.statusCode === 400) {
    return new AppError('REQUEST_INVALID', 'The body is not valid JSON', { meta: { errors: [{ field: 'body', message: 'is not valid JSON' }] } });
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new AppError('REQUEST_INVALID', fe.message ?? 'The request is not valid', { cause: err });
  }
  return new AppError('INTERNAL', 'Something unexpected went wrong; the log has the details under this request id', { cause: err });
}

export function sendProblem(req: FastifyRequest, reply: FastifyReply, appErr: AppError): FastifyReply {
  req.errorCode = appErr.code;
  if (appErr.status >= 500) req.log.error({ err: appErr.cause ?? appErr, code: appErr.code }, appErr.detail);
  else req.log.info({ code: appErr.code, detail: appErr.detail }, 'request refused');
  if (appErr.status === 401) reply.header('www-authenticate', 'Bearer realm="netnsd"');
  if (appErr.headers) reply.headers(appErr.headers);
  return reply.code(appErr.status).type('application/problem+json').send(toProblem(appErr, pathOf(req), req.id));
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => sendProblem(req, reply, toAppError(err)));
  app.setNotFoundHandler((req, reply) =>
    sendProblem(req, reply, new AppError('ENDPOINT_NOT_FOUND', `There is no endpoint ${req.method} ${pathOf(req)}`)),
  );
}
