/**
 * The composition root: builds the services once, and a fastify server per listener over them
 * (a fastify instance listens once, and each listener has its own trust: the Unix socket is
 * trusted by file mode, TCP needs tokens). Only this file and main.ts choose implementations.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import type { Logger } from 'pino';
import { randomUUID } from 'node:crypto';
import type { Config } from './config.js';
import { parseDuration } from './duration.js';
import { AppError } from './errors/app-error.js';
import type { Executor } from './executor/executor.js';
import { ExecutorPool } from './executor/pool.js';
import { Iproute2Executor } from './executor/iproute2-executor.js';
import { CapabilitiesService } from './capabilities/capabilities-service.js';
import { NamespaceService } from './namespaces/namespace-service.js';
import { namespaceApi } from './namespaces/namespace-api.js';
import { LinkService } from './links/link-service.js';
import { linkApi } from './links/link-api.js';
import { SysctlService } from './sysctls/sysctl-service.js';
import { sysctlApi } from './sysctls/sysctl-api.js';
import { GraphService } from './graph/graph-service.js';
import { graphApi } from './graph/graph-api.js';
import { AddressService } from './addresses/address-service.js';
import { addressApi } from './addresses/address-api.js';
import { RouteService } from './routes/route-service.js';
import { routeApi } from './routes/route-api.js';
import { RuleService } from './rules/rule-service.js';
import { ruleApi } from './rules/rule-api.js';
import { NeighborService } from './neighbors/neighbor-service.js';
import { FirewallService } from './firewall/firewall-service.js';
import { firewallApi } from './firewall/firewall-api.js';
import { neighborApi } from './neighbors/neighbor-api.js';
import { QdiscService } from './qdisc/qdisc-service.js';
import { qdiscApi } from './qdisc/qdisc-api.js';
import { QdiscRecords } from './store/qdisc-records.js';
import { DiagnosticsService } from './diagnostics/diagnostics-service.js';
import { diagnosticsApi } from './diagnostics/diagnostics-api.js';
import { LinkRecords, hostNamespaceKey } from './store/link-records.js';
import { KernelNetnsDirectory, type NetnsDirectory } from './namespaces/netns-dir.js';
import { openDb, type Db } from './store/db.js';
import { AuditLog } from './store/audit-log.js';
import { IdempotencyStore } from './store/idempotency-store.js';
import { NamespaceRecords } from './store/namespace-records.js';
import { installAuth, type Trust } from './http/auth-hooks.js';
import { installAudit, isAudited } from './http/audit-hooks.js';
import { installErrorHandlers } from './http/error-handler.js';
import { installIdempotency } from './http/idempotency-hooks.js';
import { installOpenApi } from './http/openapi.js';
import { installRateLimit } from './http/rate-limit.js';
import { systemApi } from './http/system-api.js';
import { installValidators } from './http/validation.js';
import { ProblemSchema } from './http/problem.js';
import websocket from '@fastify/websocket';
import { dbReserve, EventLog } from './store/event-log.js';
import { EventInventory } from './store/event-inventory.js';
import { openLogStore } from './store/log-sink.js';
import { EventBus } from './events/event-bus.js';
import { startCheckpointer } from './store/checkpointer.js';
import { ChangeGate } from './inventory/change-gate.js';
import { InventoryReads } from './inventory/inventory-reads.js';
import { Monitor } from './inventory/monitor.js';
import { loadNetlinkAddon, type NetlinkAddon } from './netlink/netlink.js';
import { eventApi } from './events/event-api.js';
import { NamespaceWatcher } from './events/namespace-watcher.js';
import { TicketStore } from './events/tickets.js';
import { DEFAULT_NETNS_DIR } from './namespaces/netns-dir.js';
import { type CounterSource, TrafficSampler } from './traffic/traffic-sampler.js';
import { netlinkCounterReader } from './netlink/stats.js';
import { HOST } from './executor/ops.js';

export interface Services {
  readonly config: Config;
  readonly log: Logger;
  readonly db: Db;
  readonly executor: Executor;
  readonly capabilities: CapabilitiesService;
  readonly namespaces: NamespaceService;
  readonly links: LinkService;
  readonly addresses: AddressService;
  readonly routes: RouteService;
  readonly rules: RuleService;
  readonly neighbors: NeighborService;
  readonly qdiscs: QdiscService;
  readonly firewall: FirewallService;
  readonly diagnostics: DiagnosticsService;
  readonly sysctls: SysctlService;
  readonly audit: AuditLog;
  readonly idempotency: IdempotencyStore;
  readonly events: EventBus;
  readonly tickets: TicketStore;
  readonly namespaceWatcher: NamespaceWatcher;
  /** The kernel monitor (undefined without the native addon's netlink, or with a fake executor). */
  readonly monitor: Monitor | undefined;
  readonly traffic: TrafficSampler;
  /** Drains the executor and closes the store. Call after the servers are closed. */
  close(): Promise<void>;
}

export interface ServiceDeps {
  /** The backend the pool wraps; default: the real iproute2 + native executor. */
  readonly executor?: Executor;
  /** Whether the backend has the in-process helper (reported in capabilities). */
  readonly nativeHelper?: boolean;
  readonly dir?: NetnsDirectory;
  /** The directory whose changes are namespace events; default /run/netns with the real directory, none with a given one. */
  readonly watchNetns?: string;
  /** Run the kernel monitor (events of links, addresses, ...; reads from the inventory). Default: with the real executor when the addon has netlink. */
  readonly monitor?: boolean;
  /** The monitor's socket receive buffer (tests make it tiny to provoke overflows). */
  readonly monitorRcvbuf?: number;
  /** Where traffic counters come from; default: netlink with the real executor, none with a given one. */
  readonly counters?: CounterSource;
}

/** Builds and starts everything behind the endpoints: store, executor pool, probes, reconcile. */
export async function buildServices(config: Config, log: Logger, deps: ServiceDeps = {}): Promise<Services> {
  const db = openDb(config.dataDir);
  const checkpointer = startCheckpointer(db);
  // The event log and the event sources' inventory: written by a thread of their own (log-sink.ts).
  const logStore = openLogStore(
    db,
    (e) => log.error({ err: e }, 'writing the event log store failed'),
    (tid) => void netlinkAddon()?.background?.(tid),
  );
  let backend = deps.executor;
  let nativeHelper = deps.nativeHelper ?? false;
  if (!backend) {
    const real = new Iproute2Executor({ log: log.child({ component: 'executor' }), opTimeoutMs: parseDuration(config.limits.opTimeout) });
    nativeHelper = real.nativeAvailable;
    backend = real;
  }
  const pool = new ExecutorPool(backend, {
    concurrency: config.limits.executorConcurrency,
    queueLimit: config.limits.executorQueue,
  });
  // Listings of watched namespaces are answered from the monitor's inventory (set below).
  let monitor: Monitor | undefined;
  const executor = new InventoryReads(pool, () => monitor);
  const dir = deps.dir ?? new KernelNetnsDirectory();
  const namespaceRecords = new NamespaceRecords(db);
  const capabilities = new CapabilitiesService(executor, log.child({ component: 'capabilities' }), nativeHelper, dir);
  const namespaces = new NamespaceService({
    executor,
    records: namespaceRecords,
    dir,
    log: log.child({ component: 'namespaces' }),
    maxNamespaces: config.limits.namespaces,
  });
  const linkRecords = new LinkRecords(db);
  const gate = new ChangeGate();
  const sysctls = new SysctlService(executor, dir, config.host.allowChanges);
  const links = new LinkService({
    executor,
    records: linkRecords,
    dir,
    capabilities: () => capabilities.get(),
    hostAllowChanges: config.host.allowChanges,
    hostKey: hostNamespaceKey(),
    log: log.child({ component: 'links' }),
    gate,
  });
  const addresses = new AddressService({ executor, records: linkRecords, dir, hostAllowChanges: config.host.allowChanges, hostKey: hostNamespaceKey() });
  const routes = new RouteService({ executor, records: linkRecords, dir, hostAllowChanges: config.host.allowChanges, hostKey: hostNamespaceKey() });
  const rules = new RuleService({ executor, dir, hostAllowChanges: config.host.allowChanges });
  const neighbors = new NeighborService({ executor, records: linkRecords, dir, hostAllowChanges: config.host.allowChanges, hostKey: hostNamespaceKey() });
  const firewall = new FirewallService({
    executor,
    dir,
    hostAllowChanges: config.host.allowChanges,
    available: () => {
      const c = capabilities.get();
      if (c.nftables) return { ok: true };
      return { ok: false, reason: c.tools.nft === null ? 'nft is not installed' : 'the nftables probe failed (GET /v1/capabilities)' };
    },
    // `events` is made below; a change can only happen once the services are built.
    changed: (ns, change, id) => void events.publish([{ type: 'firewall.changed', namespace: ns, change, ...(id === undefined ? {} : { id }) }]),
  });
  const diagnostics = new DiagnosticsService(executor, dir, config.exec, { links, firewall });
  const audit = new AuditLog(db, config.audit.retentionCount);
  const idempotency = new IdempotencyStore(db, parseDuration(config.idempotency.ttl));
  const events = new EventBus({
    log: new EventLog(logStore.db, {
      retentionCount: config.events.retentionCount,
      retentionAgeMs: parseDuration(config.events.retentionAge),
      sink: logStore.sink,
      reserve: dbReserve(db, 'events'),
    }),
    labelsOf: (ns) => namespaceRecords.get(ns)?.labels ?? {},
    maxSubscribers: config.events.maxSubscribers,
  });
  const qdiscs = new QdiscService({
    executor, dir, records: new QdiscRecords(db), linkRecords, links, capabilities: () => capabilities.get(),
    hostAllowChanges: config.host.allowChanges, hostKey: hostNamespaceKey(), publish: (e) => void events.publish([e]),
  });
  const namespaceWatcher = new NamespaceWatcher({
    dir,
    bus: events,
    inventory: new EventInventory(logStore.db, logStore.sink),
    view: (name) => namespaces.get(name).catch(() => undefined),
    log: log.child({ component: 'events' }),
    busy: (name) => namespaces.isCreating(name),
    ...(deps.watchNetns !== undefined ? { watchPath: deps.watchNetns } : deps.dir === undefined ? { watchPath: DEFAULT_NETNS_DIR } : {}),
  });
  // A POST /v1/namespaces answers once the namespace is announced and the monitor watches it, so
  // what the client does next (through the API or by hand) is seen.
  // What the creation answered is what namespace.added shows, and its nsid is the one the
  // monitor's socket hears it by: neither is read again.
  namespaces.onCreateSettled(async (name, made, snapshot) => {
    // The dumps the add took of it seed the monitor (before namespace.added makes it track it).
    if (made && snapshot) monitor?.expect(name, made.id, snapshot);
    await namespaceWatcher.rescan([name], made && [made]);
    await monitor?.track(name, made && made.nsid !== null ? { id: made.id, nsid: made.nsid } : undefined);
  });
  const addon = (deps.monitor ?? deps.executor === undefined) ? netlinkAddon() : undefined;
  const kernelMonitor = addon
    ? new Monitor({
        addon, executor: pool, dir, bus: events, store: new EventInventory(logStore.db, logStore.sink), links, gate, log: log.child({ component: 'monitor' }),
        ...(deps.monitorRcvbuf !== undefined ? { rcvbuf: deps.monitorRcvbuf } : {}),
      })
    : undefined;
  // The monitor follows the namespaces the watcher sees come and go.
  events.onEvent((e) => {
    if (!kernelMonitor) return;
    const each = e.type === 'resync' ? ((e.differences as Array<{ type: string; namespace: string }> | undefined) ?? []) : [e as { type: string; namespace: string }];
    for (const d of each) {
      // The namespace's view carries its identity and nsid: the seed need not give or read one.
      if (d.type === 'namespace.added') void kernelMonitor.track(d.namespace, madeOf((d as { object?: unknown }).object));
      else if (d.type === 'namespace.removed') kernelMonitor.untrack(d.namespace);
    }
  });
  const traffic = new TrafficSampler({
    source: deps.counters ?? (deps.executor ? undefined : netlinkCounterReader()),
    namespaces: async () => [HOST, ...(await dir.list()).map((e) => e.name)],
    bus: events,
    log: log.child({ component: 'traffic' }),
  });
  try {
    await capabilities.probe();
    await namespaces.reconcile();
    await links.reconcile();
    await qdiscs.reconcile();
    idempotency.releaseAllPending();
    idempotency.expire();
    if (kernelMonitor) {
      await kernelMonitor.start();
      monitor = kernelMonitor;
      // Netlink changes look their links up in the inventory (caught up first: the kernel
      // announces a change before it acks it), not with one RTM_GETLINK per name.
      if (backend instanceof Iproute2Executor) backend.useLinkIndexes((ns, name) => kernelMonitor.linkIndex(ns, name));
      links.useInventory(kernelMonitor);
    }
    await namespaceWatcher.start();
  } catch (e) {
    kernelMonitor?.stop();
    namespaceWatcher.stop();
    await executor.close();
    await logStore.close();
    await checkpointer.stop();
    db.close();
    throw e;
  }
  const expiry = setInterval(() => idempotency.expire(), 3_600_000);
  expiry.unref();
  // The log prunes as it grows; this keeps `events.retentionAge` on a daemon that is quiet.
  const eventPrune = setInterval(() => events.log.prune(), 60_000);
  eventPrune.unref();
  let closed = false;
  return {
    config,
    log,
    db,
    executor,
    capabilities,
    namespaces,
    links,
    addresses,
    routes,
    rules,
    neighbors,
    qdiscs,
    firewall,
    diagnostics,
    sysctls,
    audit,
    idempotency,
    events,
    tickets: new TicketStore(),
    namespaceWatcher,
    monitor: kernelMonitor,
    traffic,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(expiry);
      clearInterval(eventPrune);
      namespaceWatcher.stop();
      kernelMonitor?.stop();
      events.closeAll(1001, 'netnsd is stopping');
      await traffic.close();
      // Changes still under way (their clients may have hung up) finish before the executor goes.
      await namespaces.drain();
      await executor.close();
      // Every event row written, the seq reservation set back to the last seq given.
      await events.log.close();
      await logStore.close();
      await checkpointer.stop();
      audit.flush();
      db.close();
    },
  };
}

/**
 * Response serializers, compiled once per response schema for the process: every server (one per
 * listener, one per test) is built over the same module-constant schemas, and compiling them
 * (fast-json-stringify) is most of what building a server costs. The external schemas (Problem)
 * are the same for every server.
 */
const serializers = new WeakMap<object, (data: unknown) => string>();
const buildSerializer = (externalSchemas: unknown, options: unknown) => {
  const compile = (SerializerSelector() as (e: unknown, o: unknown) => (route: { schema: object }) => (data: unknown) => string)(externalSchemas, options);
  return (route: { schema: object }) => {
    let s = serializers.get(route.schema);
    if (s === undefined) serializers.set(route.schema, (s = compile(route)));
    return s;
  };
};

/**
 * fastify's request logging with one line per request, when it is answered: what its "incoming
 * request" and "request completed" lines said together (a log line is a write of its own to
 * stdout). A change's `audit` line says it all and more (method, path, status, duration, request
 * id) and stands for it. Its other lines (stream, serializer and header errors) are kept.
 */
class OneLineLogController extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    const line = { req: { method: req.method, url: req.url }, res: { statusCode: reply.statusCode }, responseTime: reply.elapsedTime };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else if (!isAudited(req)) reply.log.info(line, 'request completed');
  }
}

/** Request ids: the client's `x-request-id` when it is sane, else a new UUID. */
const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

export interface ServerOptions {
  readonly trust: Trust;
  readonly https?: { readonly cert: Buffer; readonly key: Buffer };
}

/** One fastify server over the services, for one listener (or for `inject` in tests). */
export async function buildServer(s: Services, opts: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: s.log,
    bodyLimit: s.config.limits.bodyBytes,
    // Ids in paths (routes, addresses) are up to 256 characters; fastify's default is 100 (then 414).
    routerOptions: { maxParamLength: 512 },
    schemaController: { compilersFactory: { buildSerializer: buildSerializer as never } },
    requestIdHeader: false,
    // The same name as in problem documents and audit records.
    // One access line per request (OneLineLogController), not fastify's two.
    logController: new OneLineLogController({ requestIdLogLabel: 'requestId' }),
    genReqId: (req) => {
      const h = req.headers['x-request-id'];
      return typeof h === 'string' && REQUEST_ID_RE.test(h) ? h : randomUUID();
    },
    // While closing, requests on open connections are still served (idle ones are closed by
    // main.ts), rather than answered with fastify's own non-problem 503.
    return503OnClosing: false,
    forceCloseConnections: false,
    ...(opts.https ? { https: { cert: opts.https.cert, key: opts.https.key } } : {}),
  }) as unknown as FastifyInstance;

  installValidators(app);
  app.addSchema(ProblemSchema);
  installErrorHandlers(app);
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  // Bodies are JSON only (fastify would also take text/plain, which then fails as a schema error).
  app.removeContentTypeParser('text/plain');
  // RFC 7396 merge patches are JSON; only PATCH takes them.
  app.addContentTypeParser('application/merge-patch+json', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));
  app.addHook('preValidation', async (req) => {
    const ct = req.headers['content-type'] ?? '';
    if (req.method !== 'PATCH' && ct.startsWith('application/merge-patch+json')) {
      throw new AppError('MEDIA_TYPE_UNSUPPORTED', 'application/merge-patch+json is for PATCH; send application/json');
    }
  });
  // Before the auth hooks: its onRequest hook must see an upgrade first, so that an upgrade
  // refused by them (401, 403) still has its connection closed after the problem is sent.
  await app.register(websocket, { options: { maxPayload: 65536 } });
  // Streams end before the server waits for its connections to close.
  app.addHook('preClose', async () => s.events.closeAll(1001, 'netnsd is stopping'));
  installListSeq(app, s);
  installAuth(app, opts.trust, s.tickets);
  installRateLimit(app, s.config.limits.requestsPerSecond);
  installIdempotency(app, s.idempotency);
  installAudit(app, s.audit);
  await installOpenApi(app);
  await app.register(systemApi({ db: s.db, executor: s.executor, capabilities: s.capabilities, audit: s.audit }));
  await app.register(namespaceApi(s.namespaces));
  await app.register(linkApi(s.links));
  await app.register(sysctlApi(s.sysctls));
  await app.register(graphApi(new GraphService(s.namespaces, s.links)));
  await app.register(addressApi(s.addresses));
  await app.register(routeApi(s.routes));
  await app.register(ruleApi(s.rules));
  await app.register(neighborApi(s.neighbors));
  await app.register(qdiscApi(s.qdiscs));
  await app.register(firewallApi(s.firewall));
  await app.register(diagnosticsApi(s.diagnostics));
  await app.register(
    eventApi({
      bus: s.events,
      tickets: s.tickets,
      queueSize: s.config.events.subscriberQueue,
      heartbeatMs: parseDuration(s.config.events.heartbeat),
      monitorStatus: () => ({ ...(s.monitor?.status() ?? { running: false, restarts: 0, overflows: 0, namespaces: 0 }), resyncs: s.events.resyncs }),
      traffic: s.traffic,
    }),
  );
  await app.ready();
  return app;
}

/** The identity and nsid a namespace.added event's view gives, when it gives both. */
function madeOf(view: unknown): { id: string; nsid: number } | undefined {
  const v = view as { id?: unknown; nsid?: unknown } | undefined;
  return typeof v?.id === 'string' && typeof v.nsid === 'number' && v.nsid >= 0 ? { id: v.id, nsid: v.nsid } : undefined;
}

/** The addon's netlink functions, or undefined when the addon is not built (the monitor then does not run). */
function netlinkAddon(): NetlinkAddon | undefined {
  try {
    const a = loadNetlinkAddon();
    return typeof a.nlRead === 'function' ? a : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Lists of what events describe (their 200 schema has `seq`) carry the seq they reflect, in the
 * body and the X-Netnsd-Seq header. It is taken before the list is read, after the monitor has
 * published what it has read: a change after it is in the list or in the events after it, so a
 * client that lists, then subscribes `since` it, misses nothing (it may see a change twice).
 */
function installListSeq(app: FastifyInstance, s: Services): void {
  app.addHook('preHandler', async (req) => {
    const ok = (req.routeOptions.schema?.response as Record<string, { properties?: Record<string, unknown> }> | undefined)?.[200];
    if (req.method !== 'GET' || ok?.properties?.seq === undefined) return;
    await s.monitor?.settled();
    (req as { listSeq?: number }).listSeq = s.events.log.lastSeq;
  });
  app.addHook('onSend', async (req, reply) => {
    const seq = (req as { listSeq?: number }).listSeq;
    if (seq !== undefined && reply.statusCode === 200) reply.header('x-netnsd-seq', String(seq));
  });
}
