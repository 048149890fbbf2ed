/**
 * Many requests through the HTTP API: `clients` async workers pull items from one shared queue
 * and each keeps one request in flight, like that many independent callers. Requests go through
 * node:http with a keep-alive agent, which opens at most one connection per request in flight,
 * so after the first round no request pays for a TCP handshake; every body is read to its end so
 * the connection is reused. (Node's global `fetch` did the same for about 1.3 ms of the
 * benchmark's own CPU per request, on the same two cores as the daemon: node:http costs a
 * fraction of that, so the figures say more about netnsd.)
 */
import http from 'node:http';

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

/** One keep-alive agent per base URL: at most one socket per request in flight, reused after. */
const agents = new Map<string, http.Agent>();
function agentFor(base: string): http.Agent {
  let a = agents.get(base);
  if (!a) {
    a = new http.Agent({ keepAlive: true, maxSockets: 256 });
    agents.set(base, a);
  }
  return a;
}

/** Closes the kept-alive sockets (the daemon stops cleanly without waiting for them). */
export function closeClients(): void {
  for (const a of agents.values()) a.destroy();
  agents.clear();
}

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly requestId: string | undefined;
}

function send(c: Client, method: string, path: string, body: string | undefined, signal: AbortSignal): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const url = new URL(path, c.base);
    const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${c.token}` };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers, agent: agentFor(c.base), timeout: c.timeoutMs, signal },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () => {
          const id = res.headers['request-id'] ?? res.headers['x-request-id'];
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), requestId: typeof id === 'string' ? id : undefined });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${c.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends one request and checks its status; the body is always read (connection reuse). */
export async function call(c: Client, method: string, path: string, body: unknown, expect: number, signal: AbortSignal): Promise<string> {
  const json = body === undefined ? undefined : JSON.stringify(body);
  const request = `${method} ${path}${json === undefined ? '' : ` ${json}`}`;
  let res: Answer;
  try {
    res = await send(c, method, path, json, signal);
  } catch (e) {
    if (signal.aborted) throw new AbortedError();
    throw new RequestError(request, undefined, '', undefined, e);
  }
  if (res.status !== expect) {
    let requestId: string | undefined;
    try {
      requestId = (JSON.parse(res.text) as { requestId?: string }).requestId;
    } catch {
      // not JSON
    }
    throw new RequestError(request, res.status, res.text, requestId ?? res.requestId);
  }
  return res.text;
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
