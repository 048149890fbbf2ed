/**
 * Many requests through the HTTP API: `clients` async workers pull items from one shared queue
 * and each keeps one request in flight, like that many independent callers.
 *
 * The clients share the machine's two CPUs with the daemon they measure, so they are made to cost
 * as little as possible: each request goes as HTTP/1.1 text over a kept-alive TCP connection of
 * its own (at most one per request in flight, reused after the first round: no handshake) and
 * the answer is parsed here (status, headers, a content-length or chunked body). Node's `fetch`
 * cost ~1.3 ms of the benchmark's own CPU per request, node:http with a keep-alive agent about a
 * quarter of that; this a fraction again (measured: (c) of the units benchmark 6% faster than
 * with node:http, the daemon unchanged).
 */
import net from 'node:net';

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
  /** Connect to this Unix socket instead of base's host and port (no token is sent: the daemon trusts the socket's permissions). */
  readonly socketPath?: string | undefined;
  /** How long one request may take before it counts as failed. */
  readonly timeoutMs: number;
}

/**
 * A kept-alive HTTP/1.1 connection: requests are written as text and
 * answers parsed here (status line, content-length or chunked body). The daemon's answers to
 * these calls are small JSON documents; anything unexpected fails the request loudly.
 */
class Connection {
  private buf: Buffer = Buffer.alloc(0);
  private pending: { resolve: (a: Answer) => void; reject: (e: Error) => void } | undefined;
  closed = false;

  constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (b: Buffer) => {
      if (!this.pending) {
        // Nothing was asked (a 408 before closing, say): not an answer to the next request.
        this.closed = true;
        socket.destroy();
        return;
      }
      this.buf = this.buf.length === 0 ? b : Buffer.concat([this.buf, b]);
      this.parse();
    });
    const gone = (e?: Error) => {
      this.closed = true;
      const p = this.pending;
      this.pending = undefined;
      p?.reject(e ?? new Error('the connection closed'));
    };
    socket.on('error', gone);
    socket.on('close', () => gone());
  }

  request(text: string): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.write(text);
    });
  }

  private parse(): void {
    const p = this.pending;
    if (!p) return;
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buf.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head[0] ?? '')?.[1]);
    const headers = new Map<string, string>();
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
    }
    let body: Buffer;
    let used: number;
    if (headers.get('transfer-encoding') === 'chunked') {
      const parts: Buffer[] = [];
      let at = end + 4;
      for (;;) {
        const eol = this.buf.indexOf('\r\n', at);
        if (eol < 0) return;
        const size = Number.parseInt(this.buf.subarray(at, eol).toString('latin1'), 16);
        if (!Number.isFinite(size) || size < 0) {
          this.pending = undefined;
          this.closed = true;
          this.socket.destroy();
          p.reject(new Error('a chunked answer with a chunk size that is not one'));
          return;
        }
        if (this.buf.length < eol + 2 + size + 2) return;
        if (size === 0) {
          used = eol + 4;
          break;
        }
        parts.push(this.buf.subarray(eol + 2, eol + 2 + size));
        at = eol + 2 + size + 2;
      }
      body = Buffer.concat(parts);
    } else {
      const length = Number(headers.get('content-length') ?? 0);
      if (this.buf.length < end + 4 + length) return;
      body = this.buf.subarray(end + 4, end + 4 + length);
      used = end + 4 + length;
    }
    this.buf = this.buf.subarray(used);
    this.pending = undefined;
    if (headers.get('connection') === 'close') {
      this.closed = true;
      this.socket.end();
    }
    const id = headers.get('x-request-id');
    p.resolve({ status: Number.isFinite(status) ? status : 0, text: body.toString('utf8'), requestId: id });
  }
}

/** Idle kept-alive connections by base URL: at most one per request in flight, reused after. */
const idle = new Map<string, Connection[]>();

export async function send(c: Client, method: string, path: string, body: string | undefined, signal: AbortSignal): Promise<Answer> {
  const url = new URL(path, c.base);
  const key = c.socketPath ?? c.base;
  let conn = idle.get(key)?.pop();
  while (conn?.closed) conn = idle.get(key)?.pop();
  if (!conn) {
    const socket = c.socketPath ? net.connect({ path: c.socketPath }) : net.connect({ host: url.hostname, port: Number(url.port) });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    conn = new Connection(socket);
  }
  const text =
    `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${c.socketPath ? 'localhost' : url.host}\r\n${c.socketPath ? '' : `authorization: Bearer ${c.token}\r\n`}` +
    (body === undefined ? '\r\n' : `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  const used = conn;
  let timer: NodeJS.Timeout | undefined;
  const onAbort = () => used.socket.destroy(new Error('aborted'));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const answer = await Promise.race([
      used.request(text),
      new Promise<never>((_, reject) => (timer = setTimeout(() => (used.socket.destroy(), reject(new Error(`no answer within ${c.timeoutMs} ms`))), c.timeoutMs))),
    ]);
    if (!used.closed) {
      let list = idle.get(key);
      if (!list) idle.set(key, (list = []));
      list.push(used);
    }
    return answer;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

/** Closes the kept-alive sockets (the daemon stops cleanly without waiting for them). */
export function closeClients(): void {
  for (const list of idle.values()) for (const conn of list) conn.socket.destroy();
  idle.clear();
}

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly requestId: string | undefined;
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
