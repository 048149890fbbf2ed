/**
 * Running child processes for the benchmark: argv only (no shell), `LC_ALL=C` so that iproute2's
 * messages are the ones the daemon's classifier knows, and an AbortSignal that stops the child and
 * waits for it to be gone — the namespace sweep after Ctrl-C must not race a script that is still
 * creating namespaces.
 */
import { spawn } from 'node:child_process';

/** iproute2 by full path, as the daemon runs it (no PATH search, no surprise binary). */
export const IP = '/usr/sbin/ip';

export interface ProcResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time from spawn to `close` (every stdio stream drained), in milliseconds. */
  readonly ms: number;
}

export class ProcError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: ProcResult,
  ) {
    const why = result.signal ? `was killed by ${result.signal}` : `exited with ${result.code}`;
    const err = result.stderr.trim().split('\n').slice(-5).join('\n    ');
    super(`${argv.join(' ')} ${why}${err ? `:\n    ${err}` : ''}`);
  }
}

export class AbortedError extends Error {
  constructor() {
    super('aborted');
  }
}

/** Runs argv to its end and resolves with what it printed; never rejects on a non-zero exit. */
export function run(argv: readonly string[], opts: { signal?: AbortSignal; input?: string } = {}): Promise<ProcResult> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('run: empty argv');
  if (opts.signal?.aborted) return Promise.reject(new AbortedError());
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const onAbort = () => child.kill('SIGTERM');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => {
      opts.signal?.removeEventListener('abort', onAbort);
      reject(e);
    });
    // `close`, not `exit`: only then has everything the child wrote been read.
    child.on('close', (code, signal) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (opts.signal?.aborted) return reject(new AbortedError());
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ms: performance.now() - t0,
      });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like run, but a non-zero exit (or a signal) is a ProcError. */
export async function runOk(argv: readonly string[], opts: { signal?: AbortSignal; input?: string } = {}): Promise<ProcResult> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new ProcError(argv, r);
  return r;
}

/** Runs fn over items with at most `limit` in flight; the first error rejects once all settled. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { e: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i] as T);
      } catch (e) {
        failure ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.e;
  return results;
}
