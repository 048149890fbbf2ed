/** POST /v1/namespaces/{ns}/diagnostics/{ping,tcp-connect}, GET .../sockets, .../conntrack, POST .../exec, POST /v1/diagnostics/path. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { namespaceParam, opContext } from '../http/auth-hooks.js';
import { problemResponses } from '../http/problem.js';
import { NamespaceNameSchema } from '../names.js';
import { DURATION_PATTERN } from '../duration.js';
import { CAPS, MAX_PATH_TARGETS, type DiagnosticsService } from './diagnostics-service.js';
import { MAX_HOPS, PATH_CHECKS, PATH_REASONS } from './path.js';
import { requireNamespace } from '../auth/tokens.js';
import { parseIp } from '../ip-address.js';

const Params = Type.Object({ ns: NamespaceNameSchema }, { additionalProperties: false });
const byNs = namespaceParam('ns');
const dur = (description: string) => Type.String({ pattern: DURATION_PATTERN, description, examples: ['500ms', '2s'] });
const addr = (description: string) => Type.String({ minLength: 2, maxLength: 45, description, examples: ['198.51.100.2', '2001:db8::2'] });
const obj = <T extends Parameters<typeof Type.Object>[0]>(p: T, description?: string) => Type.Object(p, { additionalProperties: false, ...(description ? { description } : {}) });
const Num = Type.Number();

const PingBody = obj({
  target: addr('The address to ping.'),
  count: Type.Optional(Type.Integer({ minimum: CAPS.count.min, maximum: CAPS.count.max, default: 3, description: `Echo requests to send (1-${CAPS.count.max}).` })),
  interval: Type.Optional(dur(`Between requests (${CAPS.intervalMs.min}ms-${CAPS.intervalMs.max / 1000}s, default 200ms).`)),
  size: Type.Optional(Type.Integer({ minimum: CAPS.size.min, maximum: CAPS.size.max, default: 56, description: 'ICMP payload bytes.' })),
  timeout: Type.Optional(dur(`How long to wait for each reply (at most ${CAPS.replyTimeoutMs.max / 1000}s, default 1s); (count - 1) * interval + timeout is at most ${CAPS.deadlineMs / 1000}s.`)),
});
const PingResultSchema = Type.Object(
  {
    target: Type.String(),
    sent: Type.Integer(),
    received: Type.Integer(),
    lossPercent: Num,
    rtt: Type.Union([obj({ minMs: Num, avgMs: Num, maxMs: Num, mdevMs: Num }), Type.Null()], { description: 'null when nothing answered.' }),
    replies: Type.Array(obj({ seq: Type.Integer(), from: Type.String(), ttl: Type.Union([Type.Integer(), Type.Null()]), timeMs: Num })),
    errors: Type.Array(Type.String(), { description: 'ICMP errors as ping prints them (`From 198.51.100.1 icmp_seq=1 Destination Host Unreachable`).' }),
    failure: Type.Union([Type.String(), Type.Null()], { description: 'Why nothing could be sent (`connect: Network is unreachable`), else null.' }),
  },
  { $id: 'PingResult', additionalProperties: false },
);
const TcpBody = obj({
  address: addr('The address to connect to.'),
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
  timeout: Type.Optional(dur(`Give up after (at most ${CAPS.tcpTimeoutMs.max / 1000}s, default 2s).`)),
});
const TcpResultSchema = Type.Object(
  {
    connected: Type.Boolean(),
    outcome: Type.Union(['connected', 'refused', 'timeout', 'unreachable', 'error'].map((o) => Type.Literal(o)), { description: 'refused: RST; timeout: no answer (a drop rule); unreachable: an ICMP error or no route.' }),
    errno: Type.Union([Type.String(), Type.Null()]),
    elapsedMs: Num,
  },
  { $id: 'TcpConnectResult', additionalProperties: false },
);
const End = obj({ address: Type.String({ description: '`*` for any.' }), port: Type.Union([Type.Integer(), Type.Null()]), link: Type.Union([Type.String(), Type.Null()]) });
const SocketListSchema = Type.Object(
  {
    items: Type.Array(
      obj({
        protocol: Type.Union([Type.Literal('tcp'), Type.Literal('udp')]),
        state: Type.String({ description: "ss's state: LISTEN, ESTAB, UNCONN, TIME-WAIT, ..." }),
        recvQ: Type.Integer(),
        sendQ: Type.Integer(),
        local: End,
        peer: End,
        processes: Type.Array(obj({ name: Type.String(), pid: Type.Integer(), fd: Type.Integer() })),
      }),
    ),
  },
  { $id: 'SocketList', additionalProperties: false },
);
const Tuple = obj({ src: Type.String(), dst: Type.String(), sport: Type.Union([Type.Integer(), Type.Null()]), dport: Type.Union([Type.Integer(), Type.Null()]) });
const ConntrackListSchema = Type.Object(
  {
    items: Type.Array(
      obj({
        family: Type.Integer(),
        protocol: Type.String(),
        timeoutSeconds: Type.Union([Type.Integer(), Type.Null()]),
        state: Type.Union([Type.String(), Type.Null()]),
        original: Tuple,
        reply: Tuple,
        flags: Type.Array(Type.String()),
        mark: Type.Union([Type.Integer(), Type.Null()]),
      }),
    ),
  },
  { $id: 'ConntrackList', additionalProperties: false },
);
const ExecBody = obj({
  argv: Type.Array(Type.String({ maxLength: 4096, pattern: '^[^\\u0000]*$' }), { minItems: 1, maxItems: 256, description: 'The program (an absolute path) and its arguments; never a shell string.' }),
  timeout: Type.Optional(dur('Kill it after this (at most, and by default, exec.timeout).')),
  stdin: Type.Optional(Type.String({ maxLength: 65536, description: 'Given on standard input (not audited).' })),
});
const ExecResultSchema = Type.Object(
  {
    exitCode: Type.Union([Type.Integer(), Type.Null()]),
    signal: Type.Union([Type.String(), Type.Null()]),
    stdout: Type.String(),
    stderr: Type.String(),
    truncated: Type.Boolean({ description: 'Output reached exec.maxOutputBytes and the program was killed.' }),
    timedOut: Type.Boolean(),
    durationMs: Num,
  },
  { $id: 'ExecResult', additionalProperties: false },
);

const lit = (values: readonly string[], description?: string) => Type.Union(values.map((v) => Type.Literal(v)), description ? { description } : {});
const PathBody = obj({
  from: NamespaceNameSchema,
  to: Type.String({ minLength: 1, maxLength: 45, description: 'An IPv4/IPv6 address, or a namespace name: each of its global addresses (at most ' + MAX_PATH_TARGETS + ').', examples: ['198.51.100.2', 'blue'] }),
  family: Type.Optional(Type.Union([Type.Literal(4), Type.Literal(6)], { description: 'With a namespace `to`: only its addresses of this family.' })),
});
const RuleHit = obj({
  family: Type.String(), table: Type.String(), chain: Type.String(), handle: Type.Integer(),
  id: Type.Optional(Type.String({ description: 'The id of a rule netnsd manages (…/firewall/rules/{id}).' })),
  verdict: Type.Optional(Type.String()), text: Type.String(), packets: Type.Integer({ description: "How many of the probe's packets it counted." }),
});
const PathStepSchema = obj({
  direction: lit(['forward', 'return']),
  namespace: Type.String(),
  check: lit(PATH_CHECKS, 'route: the kernel\'s route lookup there (with `from`/`iif` after the first hop: forwarding and rp_filter included); link: the egress link\'s state; peer: where the link leads and who owns the next hop; delivery: the address is local there; firewall: a rule or chain policy that dropped the probe; probe: the ping.'),
  ok: Type.Boolean(),
  detail: Type.String(),
  reason: Type.Optional(lit(PATH_REASONS)),
  link: Type.Optional(Type.String()),
  via: Type.Optional(Type.String()),
  source: Type.Optional(Type.String()),
  rule: Type.Optional(RuleHit),
});
const PathAnswerSchema = obj({
  from: Type.String(),
  to: Type.String({ description: 'The destination address this answer is about.' }),
  reachable: Type.Boolean({ description: 'The probe got a reply.' }),
  reason: lit(PATH_REASONS, '`reachable`, or why not: the first failing step (the walk), else a firewall rule whose counter moved during the probe, else a chain with policy drop, else `no-reply`.'),
  verdict: Type.String({ description: 'One sentence for a human.' }),
  steps: Type.Array(PathStepSchema),
  probe: PingResultSchema,
});
const PathResultSchema = Type.Object({ items: Type.Array(PathAnswerSchema) }, { $id: 'PathResult', additionalProperties: false });

export function diagnosticsApi(service: DiagnosticsService) {
  return async function register(fastify: FastifyInstance): Promise<void> {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
    const tags = ['diagnostics'];
    app.post(
      '/v1/namespaces/:ns/diagnostics/ping',
      { config: { action: 'diagnostics.ping', namespaceOf: byNs }, schema: { tags, summary: 'Ping from inside the namespace', description: 'Sends echo requests (capped: see the fields) and answers what came back. `write` scope; `admin` in `host`.', params: Params, body: PingBody, response: { 200: PingResultSchema, ...problemResponses(404, 413, 415, 503) } } },
      async (req) => (await service.ping(req.params.ns, req.body, opContext(req))) as Static<typeof PingResultSchema>,
    );
    app.post(
      '/v1/namespaces/:ns/diagnostics/tcp-connect',
      { config: { action: 'diagnostics.tcpConnect', namespaceOf: byNs }, schema: { tags, summary: 'Open a TCP connection from inside the namespace', description: 'One connect, closed at once: connected, or refused / timeout / unreachable, with the time taken.', params: Params, body: TcpBody, response: { 200: TcpResultSchema, ...problemResponses(404, 413, 415, 503) } } },
      async (req) => (await service.tcpConnect(req.params.ns, req.body, opContext(req))) as Static<typeof TcpResultSchema>,
    );
    app.get(
      '/v1/namespaces/:ns/sockets',
      {
        config: { namespaceOf: byNs },
        schema: {
          tags, summary: 'TCP and UDP sockets of the namespace (ss)', params: Params,
          querystring: obj({ state: Type.Optional(Type.Union([Type.Literal('listening'), Type.Literal('connected')])), protocol: Type.Optional(Type.Union([Type.Literal('tcp'), Type.Literal('udp')])) }),
          response: { 200: SocketListSchema, ...problemResponses(404, 503) },
        },
      },
      async (req) => ({ items: await service.sockets(req.params.ns, req.query) }) as Static<typeof SocketListSchema>,
    );
    app.get(
      '/v1/namespaces/:ns/conntrack',
      { config: { namespaceOf: byNs }, schema: { tags, summary: 'Connection tracking entries of the namespace', description: '503 CONNTRACK_UNAVAILABLE when the kernel has none; 503 TOOL_MISSING without the conntrack tool.', params: Params, response: { 200: ConntrackListSchema, ...problemResponses(404, 503) } } },
      async (req) => ({ items: await service.conntrack(req.params.ns) }) as Static<typeof ConntrackListSchema>,
    );
    app.post(
      '/v1/diagnostics/path',
      {
        config: { action: 'diagnostics.path', namespaceOf: (req) => (req.body as { from?: string } | undefined)?.from },
        schema: {
          tags,
          summary: "Why can (or can't) a namespace reach an address",
          description:
            `Follows the packet from live state, hop by hop (at most ${MAX_HOPS} namespaces, over veths and bridges): the route lookup in each namespace, the egress link and its state, where it leads and who owns the next hop, forwarding and rp_filter where it arrives; then the way back; then a ping (3 requests, ~1.4 s) with the firewall counters of every namespace on the way compared before and after it. One answer per destination address. \`write\` scope (\`admin\` from \`host\`); a token limited to namespace patterns needs \`from\` and a namespace \`to\` to match them.`,
          body: PathBody,
          response: { 200: PathResultSchema, ...problemResponses(403, 404, 413, 415, 422, 503) },
        },
      },
      async (req) => {
        if (!parseIp(req.body.to)) requireNamespace(req.principal, req.body.to);
        return { items: await service.path(req.body, opContext(req)) } as Static<typeof PathResultSchema>;
      },
    );
    app.post(
      '/v1/namespaces/:ns/exec',
      { config: { action: 'diagnostics.exec', auth: 'admin', namespaceOf: byNs }, schema: { tags, summary: 'Run a program inside the namespace (off by default)', description: '403 EXEC_DISABLED unless exec.enabled. Needs `admin`. argv only, never a shell; time- and output-bounded; audited with its full argv.', params: Params, body: ExecBody, response: { 200: ExecResultSchema, ...problemResponses(404, 413, 415, 422, 503) } } },
      async (req) => service.execute(req.params.ns, req.body, opContext(req)),
    );
  };
}
