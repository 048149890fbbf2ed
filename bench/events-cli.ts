/**
 * The command line of the event benchmarks (issue 4), which run.ts hands over to when the first
 * argument names one of them. They take options of their own (the four-method benchmarks'
 * --clients and --methods mean nothing here), so run.ts keeps its parser as it is.
 *
 *   npm run bench -- events-latency [--n 1000] [--warmup 100] [--pause 10] [--raw FILE] [--transport tcp|unix] [--cpu-prof] [--json]
 *   npm run bench -- events-fanout [--subscribers 500] [--rate 100] [--seconds 10] [--workers 1] [--transport tcp|unix] [--cpu-prof] [--json]
 *
 * As run.ts: progress on stderr, the Markdown report (or --json) on stdout; exit status 0 passed,
 * 1 failed, 2 bad usage, 130 interrupted; the first SIGINT/SIGTERM stops the run and every
 * `nnb-<pid>-*` namespace is removed whatever happened.
 */
import { intOption, runBench, UsageError } from './cli-run.js';
import { parseArgs } from 'node:util';
import * as eventsFanout from './events-fanout.js';
import * as eventsLatency from './events-latency.js';

export const EVENTS_BENCHES = ['events-latency', 'events-fanout'] as const;

export const EVENTS_USAGE = `Usage: npm run bench -- events-latency|events-fanout [options]

  events-latency  N link changes (one ip process each) in a namespace of the run: latency from
                  the ip exiting to the event at a WebSocket client, next to ip monitor's
  events-fanout   --subscribers WebSocket clients, --rate changes a second for --seconds: every
                  subscriber gets every event? delivery latency, the daemon's memory and CPU

events-latency options:
  --n N            measured changes (default 1000)
  --warmup W       changes before them, not counted (default 100; 0 for none)
  --pause MS       idle time between changes (default 10; 0 for none)
  --raw FILE       write every measured change's times to FILE (CSV)
events-fanout options:
  --subscribers S  WebSocket subscribers (default 500)
  --rate R         changes a second (default 100)
  --seconds T      for this long (default 10)
  --workers K      threads of the bench process the subscribers run in (default 1)
both:
  --transport T    tcp (default: 127.0.0.1 with a bearer token) or unix (the daemon's Unix socket)
  --cpu-prof       run the daemon with node's --cpu-prof and summarize the profile in the notes
  --json           print the report as JSON instead of Markdown
  --machine-netns-dir
                   bind namespaces in the machine's /run/netns, not in a private tmpfs (bench/netns-dir.ts)
  -h, --help       this text
`;

/** Whether argv (without node and the script) asks for an event benchmark. */
export function isEventsBench(argv: readonly string[]): boolean {
  const first = argv.find((a) => !a.startsWith('-'));
  return (EVENTS_BENCHES as readonly string[]).includes(first ?? '');
}

function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      n: { type: 'string' },
      warmup: { type: 'string' },
      pause: { type: 'string' },
      raw: { type: 'string' },
      subscribers: { type: 'string' },
      rate: { type: 'string' },
      seconds: { type: 'string' },
      workers: { type: 'string' },
      transport: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return { help: true as const };
  const [bench, ...rest] = positionals;
  if (bench !== 'events-latency' && bench !== 'events-fanout') throw new UsageError(`unknown benchmark '${bench}'`);
  if (rest.length) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`);
  const transport = values.transport ?? 'tcp';
  if (transport !== 'tcp' && transport !== 'unix') throw new UsageError(`--transport is tcp or unix, not '${transport}'`);
  const o = {
    n: intOption('n', values.n, 1000, 1, eventsLatency.MAX_CHANGES),
    warmup: intOption('warmup', values.warmup, 100, 0, 10_000),
    pauseMs: intOption('pause', values.pause, 10, 0, 10_000),
    raw: values.raw,
    subscribers: intOption('subscribers', values.subscribers, 500, 1, 20_000),
    rate: intOption('rate', values.rate, 100, 1, 1000),
    seconds: intOption('seconds', values.seconds, 10, 1, 3600),
    workers: intOption('workers', values.workers, 1, 1, 64),
    transport: transport as 'tcp' | 'unix',
    profile: values['cpu-prof'],
  };
  // One MTU per change (a bridge takes up to 65535).
  if (bench === 'events-latency' && o.n + o.warmup > eventsLatency.MAX_CHANGES) throw new UsageError(`--n + --warmup must be at most ${eventsLatency.MAX_CHANGES}`);
  if (bench === 'events-fanout' && o.rate * (o.seconds + 1) > eventsFanout.MAX_CHANGES) throw new UsageError(`--rate × (--seconds + 1) must be at most ${eventsFanout.MAX_CHANGES}`);
  return { help: false as const, bench, o, json: values.json };
}

/** Runs the event benchmark argv names; resolves with the exit status. */
export async function eventsMain(argv: string[]): Promise<number> {
  let args;
  try {
    args = parse(argv);
  } catch (e) {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n\n${EVENTS_USAGE}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(EVENTS_USAGE);
    return 0;
  }
  return runBench(args.json, async (signal, progress) => {
    const o = { ...args.o, signal, progress };
    const [report, markdown] =
      args.bench === 'events-latency'
        ? await eventsLatency.benchEventsLatency(o).then((r) => [r, eventsLatency.toMarkdown(r)] as const)
        : await eventsFanout.benchEventsFanout(o).then((r) => [r, eventsFanout.toMarkdown(r)] as const);
    return { report, markdown, ok: report.ok };
  });
}
