/**
 * Where a benchmark's namespaces are bound: by default a fresh tmpfs on /run/netns that only this
 * run sees, in a mount namespace of its own; with --machine-netns-dir, the machine's /run/netns.
 *
 * Why: `ip netns add` and netnsd alike create the file /run/netns/NAME for every namespace, and
 * what that costs depends on the file system under it and on what happened there lately. On a
 * machine whose /run is ext4 without a journal (this project's test VMs; systemd machines have
 * /run on tmpfs), ext4 passes over every inode freed in the last 60-360 s when it allocates a
 * new one (fs/ext4/ialloc.c recently_deleted(), no-journal mode only), reading each one's dtime:
 * measured here, a create took ~0.05 ms on a quiet directory and ~1 ms a few seconds after 2400
 * files in it were deleted. Every method deletes its namespaces before the next one starts, and
 * (c) and (d) make and delete 2000 more in their warm-up, so the later a method ran, the more it
 * paid (a perf profile of (c): 84-240 ms of its ~0.8 s in ext4_create), and a run paid for the
 * runs of the five minutes before it. A tmpfs of its own gives every method the same directory;
 * it also hides other users' namespaces, which the daemon would watch and `ip` would list.
 *
 * How: the bench re-runs itself under `unshare --mount --propagation private` (util-linux), so
 * nothing it mounts reaches the machine's mount namespace, and mounts the tmpfs first thing.
 * When the run ends, however it ends, the mount namespace goes with its last process, and with it
 * every namespace file mounted in it: nothing of the run can stay bound on the machine.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, statfsSync } from 'node:fs';
import { NETNS_DIR } from './netns.js';
import { runOk } from './proc.js';

/** The option that keeps the machine's /run/netns (taken off argv before the benchmarks parse it). */
export const MACHINE_DIR_OPTION = '--machine-netns-dir';
/** Set in the re-run process: it is inside the mount namespace and mounts the tmpfs. */
const INSIDE = 'NETNSD_BENCH_PRIVATE_NETNS_DIR';

export type NetnsDirChoice = { readonly rerun: Promise<number> } | { readonly argv: string[] };

/**
 * Called first: argv without MACHINE_DIR_OPTION when the benchmark is to run in this process
 * (the option was given, or this is the re-run inside its mount namespace, or we are not root and
 * the benchmark will say it needs root), or the re-run's exit status when it ran in a child.
 */
export function chooseNetnsDir(args: readonly string[]): NetnsDirChoice {
  const argv = args.filter((a) => a !== MACHINE_DIR_OPTION);
  if (argv.length !== args.length || process.env[INSIDE] || process.getuid?.() !== 0 || argv.includes('-h') || argv.includes('--help')) return { argv };
  return { rerun: rerunInMountNamespace(argv) };
}

function rerunInMountNamespace(argv: readonly string[]): Promise<number> {
  const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', process.execPath, ...process.execArgv, process.argv[1]!, ...argv], {
    stdio: 'inherit',
    env: { ...process.env, [INSIDE]: '1' },
  });
  // Ctrl-C reaches the child from the terminal too; a signal sent to us alone is passed on.
  const relay = (sig: NodeJS.Signals) => child.kill(sig);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, relay);
  return new Promise((resolve) => {
    child.on('error', (e) => {
      process.stderr.write(`bench: could not run unshare (util-linux) for a private ${NETNS_DIR}: ${e.message}; ${MACHINE_DIR_OPTION} runs on the machine's\n`);
      resolve(1);
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal === 'SIGINT' ? 130 : 1)));
  });
}

/** Inside the re-run: mounts the tmpfs (before anything looks at /run/netns). */
export async function mountPrivateNetnsDir(): Promise<void> {
  if (!process.env[INSIDE]) return;
  // The directory under the mount: made on the machine if it is missing, as `ip netns add` makes it.
  mkdirSync(NETNS_DIR, { recursive: true, mode: 0o755 });
  await runOk(['mount', '-t', 'tmpfs', '-o', 'mode=0755,size=16m', 'netnsd-bench', NETNS_DIR]);
}

const FS_NAMES: Record<number, string> = { 0x01021994: 'tmpfs', 0xef53: 'ext4', 0x58465342: 'xfs', 0x9123683e: 'btrfs', 0x794c7630: 'overlayfs' };

/** For the report: which /run/netns this run used, and on what file system. */
export function netnsDirLabel(): string {
  let fs = 'unknown file system';
  try {
    const type = statfsSync(NETNS_DIR).type;
    fs = FS_NAMES[type] ?? `file system 0x${type.toString(16)}`;
  } catch {
    // Not there yet: the first namespace makes it.
  }
  return process.env[INSIDE] ? `a ${fs} of this run's own on ${NETNS_DIR} (in a mount namespace of its own)` : `the machine's ${NETNS_DIR} (${fs}; ${MACHINE_DIR_OPTION})`;
}
