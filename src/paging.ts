/**
 * Paging, the same for every list in the API: `?limit=` (default 1000, max 10000) and
 * `?cursor=` (opaque: taken from the `next` of the previous page). Items are ordered by a key;
 * the cursor holds the last key a page returned, so a page never repeats or skips an item that
 * stayed in place while the client paged.
 */
import { Type } from '@sinclair/typebox';
import { AppError } from './errors/app-error.js';

export const DEFAULT_LIMIT = 1000;
export const MAX_LIMIT = 10000;

export const PageQuerySchema = {
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT, description: 'Items per page (1-10000).' }),
  ),
  cursor: Type.Optional(
    Type.String({ minLength: 1, maxLength: 512, pattern: '^[A-Za-z0-9_-]+$', description: 'The `next` value of the previous page.' }),
  ),
};

export const NextSchema = Type.Optional(
  Type.String({ description: 'Present when there are more items: pass it as `cursor` to get them.' }),
);

/** On the lists of what events describe: the seq the list reflects (subscribe with `since` = it: no gap). */
export const SeqSchema = Type.Integer({
  minimum: 0,
  description: 'The newest event seq when this list was read (also the `X-Netnsd-Seq` header): `GET /v1/events?since=` it misses nothing that changed after.',
});

/** A list with the seq the request was given (by the list-seq hook in app.ts, before the list was read). */
export function withSeq<P extends object>(req: object, page: P): P & { seq: number } {
  return { ...page, seq: (req as { listSeq?: number }).listSeq ?? 0 };
}

export type PageKey = string | number;

export function encodeCursor(key: PageKey): string {
  return Buffer.from(JSON.stringify({ k: key }), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): PageKey {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { k?: unknown };
    if (typeof v.k === 'string' || typeof v.k === 'number') return v.k;
  } catch {
    // fall through to the error below
  }
  throw new AppError('CURSOR_INVALID', 'The cursor was not made by this API; start again without one', {
    meta: { errors: [{ field: 'querystring.cursor', message: 'not a cursor from a previous page' }] },
  });
}

export interface Page<T> {
  readonly items: T[];
  readonly next?: string;
}

/** Returns one page of `items` (which must be sorted ascending by `key`). */
export function paginate<T>(items: readonly T[], key: (t: T) => PageKey, limit = DEFAULT_LIMIT, cursor?: string): Page<T> {
  let start = 0;
  if (cursor !== undefined) {
    const after = decodeCursor(cursor);
    start = items.findIndex((t) => key(t) > after);
    if (start < 0) start = items.length;
  }
  const page = items.slice(start, start + limit);
  const last = page[page.length - 1];
  if (start + limit < items.length && last !== undefined) return { items: page, next: encodeCursor(key(last)) };
  return { items: page };
}
