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
  const ours = names.filter((n) => TEST_PREFIXES.some((p) => n.startsWith(p)) || isOrphanProbe(n));
  for (const n of ours) {
    try {
      execFileSync('/usr/sbin/ip', ['netns', 'del', n], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
  return ours;
}

/** A capability-probe namespace whose daemon (pid in its name) is gone. */
function isOrphanProbe(name: string): boolean {
  const m = /^netnsd-probe-([0-9]+)-/.exec(name);
  if (!m) return false;
  try {
    process.kill(Number(m[1]), 0);
    return false;
  } catch {
    return true;
  }
}

export function setup(): void {
  const swept = sweepTestNamespaces();
  if (swept.length) console.warn(`global-setup: removed ${swept.length} namespaces left by an earlier run`);
}

export function teardown(): void {
  const swept = sweepTestNamespaces();
  if (swept.length) console.warn(`global-teardown: removed ${swept.length} namespaces the tests left behind: ${swept.join(' ')}`);
}
