/**
 * Integration-test helpers for the real kernel: unique namespace names with our prefix, `ip` run
 * directly (to make changes "behind the daemon's back" and to check what the daemon did), and a
 * registry that removes every namespace a test made, even when the test fails.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach } from 'vitest';

const IP = existsSync('/usr/sbin/ip') ? '/usr/sbin/ip' : '/sbin/ip';
let counter = 0;
const made = new Set<string>();
const children = new Set<ChildProcess>();

/** A fresh namespace name with the test prefix, removed after the test whatever happens. */
export function nsName(tag = 'ns'): string {
  const name = `nnt-${process.pid.toString(36)}-${(counter++).toString(36)}-${tag}`.slice(0, 64);
  made.add(name);
  return name;
}

export function ip(...args: string[]): string {
  return execFileSync(IP, args, { encoding: 'utf8', env: { LC_ALL: 'C', PATH: process.env.PATH ?? '' } });
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

export function namedNetns(): string[] {
  return ip('netns', 'list')
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean)
    .sort();
}

/**
 * The nsid of a named namespace as `ip netns list` reports it (`NAME (id: N)`), or undefined.
 * Not `ip netns list-id`: iproute2 6.1 stops its dump after ~134 nsids, so on a machine with many
 * namespaces it may leave ours out.
 */
export function nsidOf(name: string): number | undefined {
  const m = ip('netns', 'list').match(new RegExp(`^${name.replaceAll('.', '\\.')} \\(id: (\\d+)\\)$`, 'm'));
  return m ? Number(m[1]) : undefined;
}

/** Starts `sleep` inside the namespace; it is killed after the test. */
export function sleepIn(name: string): ChildProcess {
  const child = spawn(IP, ['netns', 'exec', name, 'sleep', '60'], { stdio: 'ignore' });
  children.add(child);
  return child;
}

/** Waits until `pred` holds (polling), or throws after `ms`. */
export async function until(pred: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Whether one ping from inside the namespace gets an answer within a second. */
export function ping(ns: string, addr: string): boolean {
  try {
    execFileSync(IP, ['netns', 'exec', ns, 'ping', '-c1', '-W1', addr], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const hostLinks = new Set<string>();
/** Marks a host-side link a test made, to be removed after the test (if its peer did not take it). */
export function trackHostLink(name: string): string {
  hostLinks.add(name);
  return name;
}

afterEach(() => {
  for (const name of hostLinks) {
    try {
      ip('link', 'del', 'dev', name);
    } catch {
      // gone already (deleted by the test, or with its peer's namespace)
    }
  }
  hostLinks.clear();
  for (const c of children) c.kill('SIGKILL');
  children.clear();
  for (const name of made) {
    if (netnsExists(name)) {
      try {
        ip('netns', 'del', name);
      } catch {
        // gone meanwhile
      }
    }
  }
  made.clear();
});
