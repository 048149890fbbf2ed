/**
 * A worker thread of events-fanout: opens its share of the WebSocket subscribers and records, for
 * each, when every change's event arrived (on the process-wide monotonic clock, so the main
 * thread can subtract the time it issued the change). Messages from the main thread: `finish`
 * (close every socket and send the results). To the main thread: `ready` (all subscribed),
 * `complete` (every subscriber has every change), `result`, `error`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type WebSocket from 'ws';
import { closeWs, type Endpoint, subscribe } from './event-stream.js';
import { mapLimit } from './proc.js';

export interface FanoutWorkerData {
  readonly ep: Endpoint;
  readonly query: Record<string, string>;
  /** Subscriber ids of this worker (for reporting). */
  readonly ids: readonly number[];
  /** Changes of the run; change i sets the MTU mtuBase + i. */
  readonly changes: number;
  readonly mtuBase: number;
  readonly link: string;
  /** Connections opened at once. */
  readonly connectConcurrency: number;
}

export interface SubscriberResult {
  readonly id: number;
  /** Arrival time of change i's event (ms, monotonic), NaN when it did not arrive. */
  readonly arrivals: Float64Array;
  readonly events: number;
  readonly duplicates: number;
  readonly gaps: number;
  /** Seqs reported lost by gap messages. */
  readonly gapSeqs: number;
  /** Events whose seq was not above the previous one. */
  readonly outOfOrder: number;
  /** Messages that were no event of a change (other types, other links, error messages). */
  readonly other: number;
  readonly closed?: string;
}

export type FromWorker =
  | { readonly type: 'ready'; readonly connectMs: number }
  | { readonly type: 'complete' }
  | { readonly type: 'result'; readonly subscribers: SubscriberResult[]; readonly publishedAt: Float64Array }
  | { readonly type: 'error'; readonly message: string };

interface Sub {
  readonly id: number;
  readonly arrivals: Float64Array;
  received: number;
  events: number;
  duplicates: number;
  gaps: number;
  gapSeqs: number;
  outOfOrder: number;
  other: number;
  lastSeq: number;
  closed?: string;
  ws?: WebSocket;
}

const d = workerData as FanoutWorkerData;
const port = parentPort!;
const subs: Sub[] = d.ids.map((id) => ({ id, arrivals: new Float64Array(d.changes).fill(NaN), received: 0, events: 0, duplicates: 0, gaps: 0, gapSeqs: 0, outOfOrder: 0, other: 0, lastSeq: 0 }));
let incomplete = subs.length;
/** Change i's event `time` (when the daemon published it: wall clock, ms), NaN until seen. */
const publishedAt = new Float64Array(d.changes).fill(NaN);

function onMessage(s: Sub, text: string, at: number): void {
  // Every message is parsed in full, as a real client would.
  const m = JSON.parse(text) as { type: string; seq?: number; time?: string; from?: number; to?: number; object?: { name?: string; mtu?: number } };
  if (m.type === 'gap') {
    s.gaps++;
    s.gapSeqs += (m.to ?? 0) - (m.from ?? 0) + 1;
    return;
  }
  if (typeof m.seq !== 'number') return void s.other++;
  if (m.seq <= s.lastSeq) s.outOfOrder++;
  s.lastSeq = m.seq;
  s.events++;
  const i = m.type === 'link.changed' && m.object?.name === d.link && typeof m.object.mtu === 'number' ? m.object.mtu - d.mtuBase : -1;
  if (i < 0 || i >= d.changes) return void s.other++;
  if (!Number.isNaN(s.arrivals[i]!)) return void s.duplicates++;
  s.arrivals[i] = at;
  if (Number.isNaN(publishedAt[i]!) && m.time) publishedAt[i] = Date.parse(m.time);
  if (++s.received === d.changes && --incomplete === 0) port.postMessage({ type: 'complete' } satisfies FromWorker);
}

async function main(): Promise<void> {
  const t0 = performance.now();
  await mapLimit(subs, d.connectConcurrency, async (s) => {
    s.ws = await subscribe(d.ep, d.query, (text, at) => onMessage(s, text, at), {
      timeoutMs: 60_000,
      onClose: (code, reason) => (s.closed = `${code} ${reason}`),
    });
  });
  port.postMessage({ type: 'ready', connectMs: performance.now() - t0 } satisfies FromWorker);
  port.on('message', (m: { type: string }) => {
    if (m.type !== 'finish') return;
    void (async () => {
      const closedBefore = subs.map((s) => s.closed);
      await mapLimit(subs, 64, async (s) => (s.ws ? closeWs(s.ws) : undefined));
      const subscribers: SubscriberResult[] = subs.map((s, k) => ({
        id: s.id, arrivals: s.arrivals, events: s.events, duplicates: s.duplicates, gaps: s.gaps, gapSeqs: s.gapSeqs,
        outOfOrder: s.outOfOrder, other: s.other, ...(closedBefore[k] ? { closed: closedBefore[k] } : {}),
      }));
      // The main thread terminates this thread once it has the results.
      port.postMessage({ type: 'result', subscribers, publishedAt } satisfies FromWorker, [publishedAt.buffer as ArrayBuffer, ...subscribers.map((s) => s.arrivals.buffer as ArrayBuffer)]);
    })();
  });
}

main().catch((e: unknown) => {
  port.postMessage({ type: 'error', message: e instanceof Error ? e.message : String(e) } satisfies FromWorker);
  for (const s of subs) s.ws?.terminate();
});
