/**
 * Runs the real daemon (`node dist/main.js`, built by `npm run build`, which `npm test` does
 * first) as a child process, reads its JSON log, and stops it with a signal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';

export const MAIN = new URL('../../dist/main.js', import.meta.url).pathname;

export interface Daemon {
  readonly child: ChildProcess;
  /** Every log line so far, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  /** The URLs of its `listening` lines, in order. */
  readonly urls: string[];
  /** Sends the signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  waitForLog(pred: (l: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
}

const running = new Set<ChildProcess>();

/** Runs netnsd to completion (for --help, bad configuration). */
export function runOnce(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts netnsd and waits until it has logged `expectListeners` listening lines. */
export async function startDaemon(args: string[], expectListeners: number, env: Record<string, string> = {}): Promise<Daemon> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build first`);
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  const logs: Array<Record<string, unknown>> = [];
  const urls: string[] = [];
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let l: Record<string, unknown>;
    try {
      l = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    logs.push(l);
    if (l.msg === 'listening' && typeof l.url === 'string') urls.push(l.url);
    for (const w of waiters.splice(0)) {
      if (w.pred(l)) w.resolve(l);
      else waiters.push(w);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => {
    running.delete(child);
    resolve(code);
  }));
  const d: Daemon = {
    child,
    logs,
    urls,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    waitForLog(pred, ms = 10_000) {
      const hit = logs.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no such log line within ${ms} ms; stderr: ${stderr}`)), ms);
        waiters.push({ pred, resolve: (l) => (clearTimeout(t), resolve(l)) });
      });
    },
  };
  const start = Date.now();
  while (urls.length < expectListeners) {
    if (child.exitCode !== null) throw new Error(`netnsd exited with ${child.exitCode}: ${stderr}`);
    if (Date.now() - start > 20_000) throw new Error(`netnsd did not listen within 20 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return d;
}

/** Kills daemons a failed test left running. */
export function killAll(): void {
  for (const c of running) c.kill('SIGKILL');
}
