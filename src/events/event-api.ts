/**
 * GET /v1/events as a WebSocket or, with `Accept: text/event-stream`, as Server-Sent Events;
 * POST /v1/events/tickets; GET /v1/events/status. Parameters are checked (schema, then the
 * filter) before anything is upgraded or streamed, so a bad one is a 400 problem.
 *
 * Backpressure: a stream takes the next event from its subscription only while the socket has
 * room (WebSocket: fewer than MAX_INFLIGHT sends not yet flushed; SSE: `write` did not return
 * false), so a client that does not read makes its own queue overflow (gap or close), never
 * netnsd's memory grow.
 *
 * Traffic: `types=traffic`, `interval` and `alerts` are checked with the rest; the subscription is
 * then handed to the shared TrafficSampler, whose samples reach it through the same queue.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { canUseNamespace, type Principal } from '../auth/tokens.js';
import { AppError } from '../errors/app-error.js';
import { problemResponses } from '../http/problem.js';
import type { LoggedEvent } from '../store/event-log.js';
import type { TrafficSampler } from '../traffic/traffic-sampler.js';
import { alertsFromQuery, parseTrafficSpec, type TrafficSpec } from '../traffic/traffic-spec.js';
import { TRAFFIC_ALERT } from '../traffic/traffic-alerts.js';
import type { Delivery, EventBus, Subscription } from './event-bus.js';
import { type EventFilter, type FilterInput, parseFilter, TRAFFIC, withTypes } from './event-filter.js';
import { EventsQuerySchema, type EventsQuery, EventsStatusSchema, type EventsStatus, SubscribeMessageSchema, TicketSchema } from './event-schema.js';
import type { TicketStore } from './tickets.js';

export interface EventApiDeps {
  readonly bus: EventBus;
  readonly tickets: TicketStore;
  readonly queueSize: number;
  readonly heartbeatMs: number;
  readonly monitorStatus: () => EventsStatus['monitor'];
  readonly traffic: TrafficSampler;
}

/** Sends not yet flushed to the kernel, per WebSocket, before the stream stops taking events. */
const MAX_INFLIGHT = 64;

/** The subscribe message as checked before its alerts, which parseTrafficSpec checks field by field. */
const SubscribeEnvelopeSchema = Type.Object({ ...SubscribeMessageSchema.properties, alerts: Type.Optional(Type.Unknown()) }, { additionalProperties: false });

/** The wire form of a delivery (the log's fields in the documented order; samples are made in it). */
export function wire(d: Delivery): Record<string, unknown> {
  if (d.type === 'gap' || d.type === TRAFFIC) return { ...d };
  const { seq, time, type, namespace, ...rest } = d as LoggedEvent;
  return { seq, time, type, namespace, ...rest };
}

/**
 * The wire form as JSON text, and as its UTF-8 bytes. An event goes to every subscriber in turn
 * right after it is published, so the last event's text and bytes are kept and reused: one
 * JSON.stringify and one encoding per event instead of one per subscriber. Gaps and resyncs are
 * shaped per subscriber, and traffic samples (branch traffic) made per subscriber: not kept, so
 * they do not push out the event the other subscribers are being sent.
 */
let lastWire: { readonly event: Delivery; readonly text: string; bytes?: Buffer } | undefined;
function wireCached(d: Delivery): { readonly text: string; bytes?: Buffer } {
  if (d.type === 'gap' || d.type === 'resync' || d.type === 'traffic') return { text: JSON.stringify(wire(d)) };
  if (lastWire?.event !== d) lastWire = { event: d, text: JSON.stringify(wire(d)) };
  return lastWire;
}

export function wireText(d: Delivery): string {
  return wireCached(d).text;
}

/** What a WebSocket text frame of the delivery carries (ws sends a Buffer as it is, uncopied). */
export function wireBytes(d: Delivery): Buffer {
  const w = wireCached(d);
  return (w.bytes ??= Buffer.from(w.text, 'utf8'));
}

function sinceOf(req: FastifyRequest, q: EventsQuery): number | undefined {
  if (q.since !== undefined) return q.since;
  const h = req.headers['last-event-id'];
  if (typeof h === 'string' && /^\d{1,15}$/.test(h)) return Number(h);
  return undefined;
}

export function eventApi(d: EventApiDeps) {
  return async function register(fastify: FastifyInstance): Promise<void> {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['events'];

    /**
     * The filter and traffic selection of a query or a subscribe message (`prefix` goes before
     * field names). Alerts add `traffic.alert` to the types: whoever sets an alert wants to hear it.
     */
    const selection = (input: FilterInput & { interval?: string | undefined }, alerts: unknown, prefix: string): { filter: EventFilter; traffic: TrafficSpec | undefined } => {
      const parsed = parseFilter(input);
      const traffic = parseTrafficSpec({ samples: parsed.types.has(TRAFFIC), interval: input.interval, alerts }, prefix);
      if (traffic && !d.traffic.available) throw new AppError('NATIVE_HELPER_REQUIRED', 'Traffic sampling reads counters over netlink, which needs the native helper (npm run build:native)');
      return { filter: traffic && traffic.alerts.length > 0 ? withTypes(parsed, TRAFFIC_ALERT) : parsed, traffic };
    };
    /** What `subscribed` echoes: the selection as given (never a ticket), the interval in effect. */
    const echo = (filter: EventFilter, traffic: TrafficSpec | undefined, since: number | undefined) => ({
      type: 'subscribed',
      ...filter.input,
      ...(traffic ? { interval: traffic.interval, ...(traffic.alerts.length > 0 ? { alerts: traffic.alerts.map((a) => a.input) } : {}) } : {}),
      ...(since === undefined ? {} : { since }),
      seq: d.bus.log.lastSeq,
    });

    /** Checks everything a subscription needs; throws the 4xx a client gets before any upgrade. */
    const prepare = (req: FastifyRequest, q: EventsQuery) => {
      const { filter, traffic } = selection(q, alertsFromQuery(q.alerts), 'querystring.');
      const since = sinceOf(req, q);
      if (since !== undefined && since > d.bus.log.lastSeq) {
        throw new AppError('REQUEST_INVALID', `since ${since} is after the newest event (${d.bus.log.lastSeq})`, {
          meta: { errors: [{ field: 'querystring.since', message: `must be at most ${d.bus.log.lastSeq}, the newest seq` }] },
        });
      }
      if (d.bus.full) throw new AppError('EVENT_SUBSCRIBERS_LIMIT', 'The configured number of event subscribers is reached (events.maxSubscribers)');
      return { filter, traffic, since, onOverflow: q.onOverflow ?? 'gap' };
    };
    const subscribe = (req: FastifyRequest, p: ReturnType<typeof prepare>, transport: 'websocket' | 'sse'): Subscription => {
      const principal: Principal = req.principal;
      // Checked again: connections accepted at the same time all passed prepare().
      if (d.bus.full) throw new AppError('EVENT_SUBSCRIBERS_LIMIT', 'The configured number of event subscribers is reached (events.maxSubscribers)');
      const sub = d.bus.subscribe({
        filter: p.filter, since: p.since, onOverflow: p.onOverflow, queueSize: d.queueSize, actor: principal.name, transport,
        visible: (ns) => canUseNamespace(principal, ns),
      });
      d.traffic.attach(sub, p.traffic);
      return sub;
    };

    app.route({
      method: 'GET',
      url: '/v1/events',
      config: { ticketAuth: true },
      schema: {
        tags,
        summary: 'Subscribe to events (WebSocket, or SSE with Accept: text/event-stream)',
        description:
          'Every change on the machine as one ordered stream: see the README, "Events", for the wire format. A WebSocket client may send `{"op":"subscribe", ...}` to change its selection. SSE frames carry `id:` = seq and `event:` = type; `Last-Event-ID` resumes. Answers 200 with `text/event-stream` for SSE; without an upgrade or that Accept header, 406.',
        querystring: EventsQuerySchema,
        response: { ...problemResponses(406) },
      },
      // After validation and auth, before the upgrade: a bad filter or `since` is a 400 problem.
      preHandler: async (req: FastifyRequest) => {
        (req as FastifyRequest & { events?: ReturnType<typeof prepare> }).events = prepare(req, req.query as EventsQuery);
      },
      handler: async (req: FastifyRequest, reply: FastifyReply) => {
        const accept = req.headers.accept ?? '';
        if (!accept.includes('text/event-stream')) {
          throw new AppError('NOT_ACCEPTABLE', 'GET /v1/events is a WebSocket (send an upgrade) or Server-Sent Events (send Accept: text/event-stream)');
        }
        const p = (req as FastifyRequest & { events?: ReturnType<typeof prepare> }).events!;
        const sub = subscribe(req, p, 'sse');
        reply.hijack();
        const raw = reply.raw;
        raw.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache',
          connection: 'keep-alive',
          'x-netnsd-seq': String(d.bus.log.lastSeq),
          'x-request-id': req.id,
        });
        raw.write(': netnsd events\n\n');
        const beat = setInterval(() => raw.write(': ping\n\n'), d.heartbeatMs);
        let open = true;
        const finish = (): void => {
          if (!open) return;
          open = false;
          clearInterval(beat);
          sub.close();
          raw.end();
        };
        req.raw.on('close', finish);
        raw.on('error', finish);
        void (async () => {
          while (open) {
            const next = sub.take();
            if (next === undefined) {
              if (sub.closed) {
                if (open) raw.write(`event: close\ndata: ${JSON.stringify({ type: 'close', code: sub.closed.code, reason: sub.closed.reason })}\n\n`);
                finish();
                return;
              }
              await sub.ready();
              continue;
            }
            const frame = `${'seq' in next ? `id: ${next.seq}\n` : ''}event: ${next.type}\ndata: ${wireText(next)}\n\n`;
            if (!raw.write(frame)) {
              await new Promise<void>((resolve) => {
                const done = (): void => {
                  raw.off('drain', done).off('close', done);
                  resolve();
                };
                raw.on('drain', done).on('close', done);
              });
            }
          }
        })();
      },
      wsHandler: (socket: WebSocket, req: FastifyRequest) => {
        const p = (req as FastifyRequest & { events?: ReturnType<typeof prepare> }).events!;
        let sub: Subscription;
        try {
          sub = subscribe(req, p, 'websocket');
        } catch {
          socket.close(1013, 'too many event subscribers (events.maxSubscribers); try again later');
          return;
        }
        let inflight = 0;
        let roomWaiter: (() => void) | undefined;
        let alive = true;
        const room = (): void => {
          inflight--;
          const w = roomWaiter;
          roomWaiter = undefined;
          w?.();
        };
        const sendFrame = (data: string | Buffer): void => {
          inflight++;
          socket.send(data, { binary: false }, room);
        };
        const send = (msg: Record<string, unknown>): void => sendFrame(JSON.stringify(msg));
        const beat = setInterval(() => {
          if (!alive) {
            socket.terminate();
            return;
          }
          alive = false;
          socket.ping();
        }, d.heartbeatMs);
        socket.on('pong', () => {
          alive = true;
        });
        socket.on('close', () => {
          clearInterval(beat);
          sub.close();
          roomWaiter?.();
        });
        socket.on('message', (data, isBinary) => {
          let msg: unknown;
          try {
            msg = JSON.parse(isBinary ? '' : String(data));
          } catch {
            send({ type: 'error', code: 'REQUEST_INVALID', detail: 'a message must be JSON: {"op":"subscribe", ...}' });
            return;
          }
          if (!Value.Check(SubscribeEnvelopeSchema, msg)) {
            const first = [...Value.Errors(SubscribeEnvelopeSchema, msg)][0];
            send({ type: 'error', code: 'REQUEST_INVALID', detail: `a message must be {"op":"subscribe", types?, namespace?, link?, labelSelector?, since?, interval?, alerts?}${first ? `: ${first.path || '/'} ${first.message}` : ''}` });
            return;
          }
          try {
            const { op: _op, since, alerts, ...fields } = msg;
            // Everything is checked before anything changes: a refused message leaves the old selection.
            const { filter, traffic } = selection(fields, alerts, '');
            if (since !== undefined && since > d.bus.log.lastSeq) throw new AppError('REQUEST_INVALID', `since ${since} is after the newest event (${d.bus.log.lastSeq})`);
            sub.refilter(filter, since);
            d.traffic.attach(sub, traffic);
            send(echo(filter, traffic, since));
          } catch (e) {
            const errors = e instanceof AppError ? e.meta?.errors : undefined;
            send({ type: 'error', code: e instanceof AppError ? e.code : 'INTERNAL', detail: e instanceof AppError ? e.detail : e instanceof Error ? e.message : String(e), ...(errors ? { errors } : {}) });
          }
        });
        void (async () => {
          send(echo(p.filter, p.traffic, p.since));
          while (socket.readyState === socket.OPEN) {
            if (inflight >= MAX_INFLIGHT) {
              // Room, or the subscription closed meanwhile (overflow, shutdown): whichever first.
              await Promise.race([new Promise<void>((resolve) => (roomWaiter = resolve)), sub.whenClosed()]);
              if (sub.closed && socket.readyState === socket.OPEN) {
                socket.close(sub.closed.code, sub.closed.reason.slice(0, 120));
                return;
              }
              continue;
            }
            const next = sub.take();
            if (next === undefined) {
              if (sub.closed) {
                if (socket.readyState === socket.OPEN) socket.close(sub.closed.code, sub.closed.reason.slice(0, 120));
                return;
              }
              await sub.ready();
              continue;
            }
            sendFrame(wireBytes(next));
          }
        })();
      },
    } as never);

    app.post(
      '/v1/events/tickets',
      {
        config: { auth: 'read', action: 'events.ticket' },
        schema: {
          tags,
          summary: 'Get a single-use ticket for an event stream',
          description: 'For browsers, which cannot set Authorization on a WebSocket or EventSource: pass the ticket as `?ticket=` to GET /v1/events within 30 s. It carries this token\'s scopes and namespaces, and works once.',
          response: { 201: TicketSchema, ...problemResponses() },
        },
      },
      async (req, reply) => {
        // Over the Unix socket no ticket is needed, and one made there would carry its unlimited trust to TCP.
        if (req.principal.via === 'unix') throw new AppError('REQUEST_INVALID', 'Tickets are for TCP clients with a token; over the Unix socket, connect to GET /v1/events directly');
        return reply.code(201).send(d.tickets.issue(req.principal));
      },
    );

    app.get(
      '/v1/events/status',
      {
        config: { auth: 'admin' },
        schema: { tags, summary: 'Event subscribers, the retained range, the monitor, traffic sampling', response: { 200: EventsStatusSchema, ...problemResponses() } },
      },
      async () => ({
        retained: { first: d.bus.log.firstSeq, last: d.bus.log.lastSeq },
        subscribers: d.bus.subscribers.map((s) => ({
          id: s.id, actor: s.actor, transport: s.transport, connectedAt: s.connectedAt, filter: { ...s.filter.input }, queueDepth: s.queueDepth,
          delivered: s.delivered, dropped: s.dropped, gaps: s.gaps, replaying: s.replaying, traffic: d.traffic.subscriberStatus(s),
        })),
        monitor: d.monitorStatus(),
        traffic: d.traffic.status(),
      }),
    );
  };
}
