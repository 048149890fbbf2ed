/**
 * What every benchmark command does around its work: needs root; the first SIGINT/SIGTERM stops
 * the run cleanly (children stopped and waited for), later ones do not cut the clean-up short;
 * prints the report (Markdown, or JSON with --json); whatever happened, removes every namespace
 * of this run. Resolves with the exit status: 0 ok, 1 a failure, 130 interrupted.
 */
import { setMaxListeners } from 'node:events';
import { runPrefix, sweep } from './netns.js';

/** A bad command line: its message is printed with the usage text (exit status 2). */
export class UsageError extends Error {}

/** An integer option `--name` between min and max (default when absent). */
export function intOption(name: string, v: string | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${name} must be an integer ${min}-${max}, not '${v}'`);
  return Number(v);
}

export interface BenchOutcome {
  readonly report: { readonly aborted?: boolean };
  readonly markdown: string;
  readonly ok: boolean;
}

export async function runBench(json: boolean, run: (signal: AbortSignal, progress: (line: string) => void) => Promise<BenchOutcome>): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: needs root (it creates network namespaces)\n');
    return 2;
  }
  const ac = new AbortController();
  // Every request in flight listens for the interrupt: up to --clients (1024) at once.
  setMaxListeners(2048, ac.signal);
  let firstSignalAt = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) {
      // Ctrl-C reaches us twice at once under tsx (from the terminal and relayed by tsx): quiet.
      if (Date.now() - firstSignalAt > 500) process.stderr.write(`bench: ${sig} again; still cleaning up\n`);
      return;
    }
    firstSignalAt = Date.now();
    process.stderr.write(`bench: ${sig}: stopping and removing this run's namespaces\n`);
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let code: number;
  try {
    const out = await run(ac.signal, (line) => process.stderr.write(`bench: ${line}\n`));
    process.stdout.write(json ? `${JSON.stringify(out.report, null, 2)}\n` : out.markdown);
    code = out.report.aborted ? 130 : out.ok ? 0 : 1;
  } catch (e) {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
    code = ac.signal.aborted ? 130 : 1;
  }
  // Whatever happened above, nothing of this run stays behind.
  const s = await sweep(runPrefix());
  if (s.removed.length) process.stderr.write(`bench: removed ${s.removed.length} namespaces of this run\n`);
  if (s.failed.length) {
    process.stderr.write(`bench: could not remove: ${s.failed.join('; ')}\n`);
    return code === 0 ? 1 : code;
  }
  return code;
}
