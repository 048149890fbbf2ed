/**
 * Many requests through the HTTP API: `clients` async workers pull items from one shared queue
 * and each keeps one request in flight, like that many independent callers. Node 20's global
 * `fetch` (undici) keeps connections alive and opens at most one per in-flight request, so after
 * the first round no request pays for a TCP handshake. Every body is read to its end, which is
 * what lets undici reuse the connection.
 */
import { AbortedError } from './proc.js';

/** A request that did not get the expected answer, with what is needed to report it. */
export class RequestError extends Error {
  constructor(
    readonly request: string,
    readonly status: number | undefined,
    readonly body: string,
    readonly requestId: string | undefined,
    cause?: unknown,
  ) {
    super(
      status === undefined
        ? `${request}: no response (${cause instanceof Error ? `${cause.message}${cause.cause instanceof Error ? `: ${cause.cause.message}` : ''}` : String(cause)})`
        : `${request}: HTTP ${status} ${body.slice(0, 600)}`,
      { cause },
    );
  }
}

export interface Client {
  readonly base: string;
  readonly token: string;
  /** How long one request may take before it counts as failed. */
  readonly timeoutMs: number;
}

/** Sends one request and checks its status; the body is always read (connection reuse). */
export async function call(c: Client, method: string, path: string, body: unknown, expect: number, signal: AbortSignal): Promise<string> {
  const request = `${method} ${path}${body === undefined ? '' : ` ${JSON.stringify(body)}`}`;
  let res: Response;
  try {
    res = await fetch(`${c.base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${c.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.any([signal, AbortSignal.timeout(c.timeoutMs)]),
    });
  } catch (e) {
    if (signal.aborted) throw new AbortedError();
    throw new RequestError(request, undefined, '', undefined, e);
  }
  const text = await res.text();
  if (res.status !== expect) {
    let requestId: string | undefined;
    try {
      requestId = (JSON.parse(text) as { requestId?: string }).requestId;
    } catch {
      // not JSON
    }
    requestId ??= res.headers.get('request-id') ?? res.headers.get('x-request-id') ?? undefined;
    throw new RequestError(request, res.status, text, requestId);
  }
  return text;
}

/**
 * Runs fn for every item (a name, a unit) with `clients` workers sharing one queue. The first failure stops the
 * workers from taking new items (requests in flight finish) and is rethrown once all have
 * stopped, so nothing is still running when the caller cleans up. Resolves with the wall time.
 */
export async function drive<T>(items: readonly T[], clients: number, signal: AbortSignal, fn: (item: T) => Promise<void>): Promise<number> {
  let next = 0;
  let failure: { e: unknown } | undefined;
  const worker = async () => {
    while (!failure && !signal.aborted && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (e) {
        failure ??= { e };
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.max(1, Math.min(clients, items.length)) }, worker));
  const ms = performance.now() - t0;
  if (signal.aborted) throw new AbortedError();
  if (failure) throw failure.e;
  return ms;
}
