/**
 * Checks around the timed phases, kept out of the timings: that every method left the same state
 * (each namespace exists, has loopback UP and an nsid), that deletion removed every name, that the
 * kernel finished freeing the stacks before the next method starts, and the sweep that removes
 * what this run made. Only names with this run's prefix are ever touched — never
 * `ip -all netns del`, which deletes every named namespace on the machine.
 */
import { readdir } from 'node:fs/promises';
import { IP, mapLimit, ProcError, run, runOk } from './proc.js';

/** `ip netns` keeps a named namespace as a bind mount at /run/netns/NAME. */
export const NETNS_DIR = '/run/netns';

/** Every named namespace on the machine (what `ip netns list` reads, without spawning it). */
export async function listNamespaces(): Promise<string[]> {
  try {
    return await readdir(NETNS_DIR);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Names of this run: `nnb-<pid>-<method><index>`, so a sweep by `nnb-<pid>-` finds all of them. */
export function runPrefix(pid = process.pid): string {
  return `nnb-${pid}-`;
}

export function namesFor(method: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${runPrefix()}${method}${i}`);
}

/** name -> nsid as the root namespace sees it (`ip -j netns list`; no `id` means none is set). */
async function nsidsByName(): Promise<Map<string, number>> {
  const r = await runOk([IP, '-j', 'netns', 'list']);
  const rows = (r.stdout.trim() ? JSON.parse(r.stdout) : []) as { name: string; id?: number }[];
  return new Map(rows.filter((x) => typeof x.id === 'number').map((x) => [x.name, x.id as number]));
}

export class VerifyError extends Error {}

/**
 * Every name exists, has an nsid, and has loopback UP — checked for all of them, not a sample, so
 * a method that skipped a step on some namespaces cannot look faster than it is. Returns the nsids
 * (to watch the kernel free them later).
 */
export async function verifyCreated(names: readonly string[]): Promise<number[]> {
  const present = new Set(await listNamespaces());
  const missing = names.filter((n) => !present.has(n));
  if (missing.length) throw new VerifyError(`${missing.length} namespaces missing after creation, e.g. ${missing.slice(0, 3).join(' ')}`);

  const ids = await nsidsByName();
  const noNsid = names.filter((n) => !ids.has(n));
  if (noNsid.length) throw new VerifyError(`${noNsid.length} namespaces have no nsid, e.g. ${noNsid.slice(0, 3).join(' ')}`);

  // One `ip -n NS` per namespace: slow-ish (~3 ms each) but untimed, and the plainest check.
  const notUp: string[] = [];
  await mapLimit(names, 4, async (n) => {
    const r = await runOk([IP, '-n', n, '-j', 'link', 'show', 'dev', 'lo']);
    const [lo] = JSON.parse(r.stdout) as { flags?: string[] }[];
    if (!lo?.flags?.includes('UP')) notUp.push(n);
  });
  if (notUp.length) throw new VerifyError(`${notUp.length} namespaces have loopback down, e.g. ${notUp.slice(0, 3).join(' ')}`);
  return names.map((n) => ids.get(n) as number);
}

/** No name of the list is left in /run/netns. */
export async function verifyDeleted(names: readonly string[]): Promise<void> {
  const want = new Set(names);
  const left = (await listNamespaces()).filter((n) => want.has(n));
  if (left.length) throw new VerifyError(`${left.length} namespaces still exist after deletion, e.g. ${left.slice(0, 3).join(' ')}`);
}

/**
 * Which of these nsids the root namespace still holds, with the name each has now (undefined for
 * none). Not from `ip netns list-id`: it lists at most 134 nsids (measured, iproute2 6.1, kernel
 * 6.18), so with more the rest would look freed. Each is asked on a line of its own of one
 * `ip -j -force -batch -` instead: a held one prints its JSON line, a free one fails with "Peer
 * netns reference is invalid".
 */
async function heldNsids(nsids: readonly number[]): Promise<Map<number, string | undefined>> {
  const held = new Map<number, string | undefined>();
  if (nsids.length === 0) return held;
  const argv = [IP, '-j', '-force', '-batch', '-'];
  const r = await run(argv, { input: nsids.map((id) => `netns list-id nsid ${id}\n`).join('') });
  const unexpected = r.stderr.split('\n').filter((l) => l && !/^(Error: Peer netns reference is invalid\.|Command failed -:\d+)$/.test(l));
  if (r.signal || unexpected.length) throw new ProcError(argv, r);
  for (const line of r.stdout.split('\n')) {
    if (!line.trim()) continue;
    for (const x of JSON.parse(line) as { nsid: number; name?: string }[]) held.set(x.nsid, x.name);
  }
  return held;
}

/**
 * Waits until the kernel has freed the deleted namespaces. Deletion only drops the name; the
 * kernel's cleanup runs afterwards (50-450 ms for 100 on this machine) and would otherwise slow
 * the next method down. A freed namespace's nsid is no longer held by the root namespace; until
 * then it is held without a name. (A freed nsid may be reused by someone else's new namespace,
 * which then has its name: that counts as freed too.)
 */
export async function waitFreed(nsids: readonly number[], names: readonly string[], timeoutMs = 30_000): Promise<{ ms: number; pending: number }> {
  const ours = new Set(names);
  const t0 = performance.now();
  let pending = [...nsids];
  for (;;) {
    const held = await heldNsids(pending);
    pending = pending.filter((id) => held.has(id) && (held.get(id) === undefined || ours.has(held.get(id) as string)));
    const ms = performance.now() - t0;
    if (pending.length === 0 || ms > timeoutMs) return { ms, pending: pending.length };
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Deletes every namespace of this run, one `ip netns del NAME` each. Returns the names removed. */
export async function sweep(prefix = runPrefix()): Promise<{ removed: string[]; failed: string[] }> {
  const ours = (await listNamespaces()).filter((n) => n.startsWith(prefix));
  const removed: string[] = [];
  const failed: string[] = [];
  for (const n of ours) {
    const r = await run([IP, 'netns', 'del', n]);
    if (r.code === 0) removed.push(n);
    else failed.push(`${n}: ${r.stderr.trim()}`);
  }
  return { removed, failed };
}
