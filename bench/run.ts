/**
 * Benchmarks of netnsd against iproute2, run in the same process on the same machine so the
 * figures compare. Needs root (it creates network namespaces).
 *
 *   npm run bench -- namespaces [--n 200] [--clients 16] [--rounds R] [--methods a,b,c,d] [--json]
 *   npm run bench -- units [--n 200] [--clients 16] [--warmup N] [--rounds R] [--methods a,b,c,d] [--json]
 *   npm run bench -- events-traffic [--n 200] [--seconds 20] [--interval 1s] [--json]
 *   npm run bench -- events-latency|events-fanout [options]   (bench/events-cli.ts)
 *
 * Progress goes to stderr; the Markdown table (or, with --json, the JSON report) to stdout.
 * Exit status: 0 all methods passed, 1 a method failed, 2 bad usage, 130 interrupted.
 * Ctrl-C (or SIGTERM) stops the running method, waits for its processes to exit, and removes
 * every `nnb-<pid>-*` namespace this run made.
 */
import { intOption, runBench, UsageError } from './cli-run.js';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/duration.js';
import { eventsMain, isEventsBench } from './events-cli.js';
import { METHOD_IDS, type MethodId, type Transport } from './harness.js';
import { chooseNetnsDir, MACHINE_DIR_OPTION, mountPrivateNetnsDir } from './netns-dir.js';
import * as eventsTraffic from './events-traffic.js';
import * as namespaces from './namespaces.js';
import * as units from './units.js';

const USAGE = `Usage: npm run bench -- namespaces|units|events-traffic|events-latency|events-fanout [options]

Does the same work four ways and prints the times:
  (a) a bash script, one ip process per step   (b) one ip -batch file
  (c) netnsd over HTTP, --clients callers      (d) netnsd over HTTP, one caller

  namespaces  creates and deletes N network namespaces (loopback up, nsid set)
  units       makes N units: a namespace (loopback up, nsid set), a veth pair into it from one
              shared hub namespace, an address on each end (198.18.0.0/15), a route inside

  events-traffic  the daemon's CPU while one WebSocket receives traffic samples of N namespaces
              x 2 links (lo and a veth end; veth pairs join them two by two), against idle
  events-latency, events-fanout: the event stream's latency next to ip monitor's, and many
              subscribers at a steady rate of changes; options: npm run bench -- events-latency -h

Options:
  --n N            namespaces or units per method (default 200; even for events-traffic)
  --clients C      concurrent HTTP clients of (c) (default 16)
  --transport T    namespaces, units: how (c) and (d) reach the daemon: tcp (127.0.0.1 with a
                   bearer token, the default) or unix (the Unix socket, the daemon's default listener)
  --warmup W       units: (c) and (d) first make and delete W units (rounds of N), untimed, so
                   that the daemon is warm as one that has been serving is (default 10 x N; 0 = cold)
  --methods LIST   which methods to run, e.g. a,b (default a,b,c,d)
  --rounds R       namespaces, units: run the methods R times, in rounds of each method once,
                   and report each method's median (default 1): one run on a busy machine can be
                   off by a fifth
  --seconds S      events-traffic: how long each phase is measured (default 20)
  --interval I     events-traffic: the subscription's interval (default 1s)
  --json           print the report as JSON instead of Markdown
  ${MACHINE_DIR_OPTION}
                   bind the namespaces in the machine's /run/netns; by default every benchmark
                   runs in a mount namespace of its own with a fresh tmpfs there (bench/netns-dir.ts)
  -h, --help       this text
`;


function interval(v: string | undefined): string {
  if (v === undefined) return '1s';
  if (!/^[0-9]+(ms|s|m)$/.test(v) || parseDuration(v) < 500) throw new UsageError(`--interval must be a duration of at least 500ms (500ms, 1s, 5m), not '${v}'`);
  return v;
}

function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      n: { type: 'string' },
      clients: { type: 'string' },
      transport: { type: 'string' },
      warmup: { type: 'string' },
      methods: { type: 'string' },
      rounds: { type: 'string' },
      seconds: { type: 'string' },
      interval: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return { help: true as const };
  const [bench, ...rest] = positionals;
  if (bench !== 'namespaces' && bench !== 'units' && bench !== 'events-traffic') {
    throw new UsageError(bench ? `unknown benchmark '${bench}'` : 'name a benchmark: namespaces, units or events-traffic');
  }
  if (rest.length) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`);
  if (values.warmup !== undefined && bench !== 'units') throw new UsageError('--warmup is an option of the units benchmark');
  if (values.rounds !== undefined && bench === 'events-traffic') throw new UsageError('--rounds is an option of the namespaces and units benchmarks');
  const transport = values.transport ?? 'tcp';
  if (transport !== 'tcp' && transport !== 'unix') throw new UsageError(`--transport is tcp or unix, not '${transport}'`);
  if (values.transport !== undefined && bench === 'events-traffic') throw new UsageError('--transport is an option of the namespaces and units benchmarks');
  const ids: readonly string[] = METHOD_IDS;
  const methods = (values.methods ?? ids.join(',')).split(',').map((m) => m.trim());
  const bad = methods.filter((m) => !ids.includes(m));
  if (bad.length || methods.length === 0) throw new UsageError(`--methods takes a comma-separated subset of ${ids.join(',')}`);
  return {
    help: false as const,
    bench,
    // Names are `nnb-<pid>-<method><index>`: well under the daemon's 64-character limit.
    n: intOption('n', values.n, 200, 1, bench === 'units' ? units.MAX_UNITS : bench === 'events-traffic' ? eventsTraffic.MAX_NAMESPACES : 100_000),
    seconds: intOption('seconds', values.seconds, 20, 1, 3600),
    interval: interval(values.interval),
    clients: intOption('clients', values.clients, 16, 1, 1024),
    rounds: intOption('rounds', values.rounds, 1, 1, 50),
    transport: transport as Transport,
    warmup: values.warmup === undefined ? undefined : intOption('warmup', values.warmup, 0, 0, 1_000_000),
    methods: [...new Set(methods)] as MethodId[],
    json: values.json,
  };
}

async function main(): Promise<number> {
  // In a mount namespace of its own with a tmpfs on /run/netns, unless told otherwise (netns-dir.ts).
  const where = chooseNetnsDir(process.argv.slice(2));
  if ('rerun' in where) return where.rerun;
  const argv = where.argv;
  await mountPrivateNetnsDir();
  // The event benchmarks take options of their own.
  if (isEventsBench(argv)) return eventsMain(argv);
  let args;
  try {
    args = parse(argv);
  } catch (e) {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  return runBench(args.json, async (signal, progress) => {
    const o = {
      n: args.n,
      clients: args.clients,
      transport: args.transport,
      methods: args.methods,
      rounds: args.rounds,
      signal,
      progress,
    };
    const [report, markdown] =
      args.bench === 'units'
        ? await units.benchUnits({ ...o, ...(args.warmup === undefined ? {} : { warmup: args.warmup }) }).then((r) => [r, units.toMarkdown(r)] as const)
        : args.bench === 'events-traffic'
          ? await eventsTraffic.benchTraffic({ ...o, seconds: args.seconds, interval: args.interval }).then((r) => [r, eventsTraffic.toMarkdown(r)] as const)
          : await namespaces.benchNamespaces(o).then((r) => [r, namespaces.toMarkdown(r)] as const);
    return { report, markdown, ok: report.results.every((r) => r.ok) };
  });
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
