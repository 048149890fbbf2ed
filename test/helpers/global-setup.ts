/**
 * Integration runs: sweep namespaces our tests make (prefixes below) before and after the run,
 * so a crashed earlier run leaves nothing behind. Only names with our prefixes are touched;
 * never `ip -all netns del`, which would delete every namespace on the machine.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

export const TEST_PREFIXES = ['nnt-', 'nnx-'] as const;

export function sweepTestNamespaces(): string[] {
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return [];
  }
  const ours = names.filter((n) => (TEST_PREFIXES.some((p) => n.startsWith(p)) && !ownerAlive(n)) || isOrphanProbe(n));
  for (const n of ours) {
    try {
      execFileSync('/usr/sbin/ip', ['netns', 'del', n], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
  return ours;
}

/**
 * Whether the test process that made this name (`nnt-<pid in base 36>-...`, see kernel.ts nsName)
 * still runs: another test run on the machine at the same time keeps its namespaces.
 */
function ownerAlive(name: string): boolean {
  const m = /^nnt-([0-9a-z]+)-/.exec(name);
  return m !== null && alive(parseInt(m[1]!, 36));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A capability-probe namespace whose daemon (pid in its name) is gone. */
function isOrphanProbe(name: string): boolean {
  const m = /^netnsd-probe-([0-9]+)-/.exec(name);
  return m !== null && !alive(Number(m[1]));
}

export function setup(): void {
  const swept = sweepTestNamespaces();
  if (swept.length) console.warn(`global-setup: removed ${swept.length} namespaces left by an earlier run`);
}

export function teardown(): void {
  const swept = sweepTestNamespaces();
  if (swept.length) console.warn(`global-teardown: removed ${swept.length} namespaces the tests left behind: ${swept.join(' ')}`);
}
