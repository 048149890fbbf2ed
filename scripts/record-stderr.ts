/**
 * Regenerates test/fixtures/stderr/*.txt (and the few stdout samples in test/fixtures/stdout/)
 * from this machine's iproute2 and nft, in a scratch namespace that is always removed.
 * classify.test.ts and argv.test.ts read them. Run as root: `npx tsx scripts/record-stderr.ts`.
 * The privilege cases run the tool as uid/gid 65534 (nobody).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', 'test', 'fixtures');
const IP = '/usr/sbin/ip';
const TC = '/usr/sbin/tc';
const NFT = '/usr/sbin/nft';
const NS = `nnx-rec-${process.pid}`;
const MISSING = `nnx-rec-missing-${process.pid}`;
const NO_NSID = `nnx-rec-noid-${process.pid}`;
const NOBODY = 65534;

interface Case {
  readonly file: string;
  readonly argv: readonly string[];
  readonly input?: string;
  readonly asNobody?: boolean;
  /** Record stdout instead of stderr. */
  readonly stdout?: boolean;
}

const cases: readonly Case[] = [
  { file: 'stderr/netns-add-exists.txt', argv: [IP, 'netns', 'add', NS] },
  { file: 'stderr/netns-del-missing.txt', argv: [IP, 'netns', 'del', MISSING] },
  { file: 'stderr/netns-open-missing.txt', argv: [IP, '-n', MISSING, 'link', 'set', 'lo', 'up'] },
  { file: 'stderr/netns-set-missing.txt', argv: [IP, 'netns', 'set', MISSING, 'auto'] },
  { file: 'stderr/netns-exec-missing.txt', argv: [IP, 'netns', 'exec', MISSING, NFT, '--version'] },
  { file: 'stderr/tc-open-missing.txt', argv: [TC, '-n', MISSING, 'qdisc', 'show'] },
  // The form `ip netns exec NS /usr/sbin/nft` takes when nft is not installed.
  { file: 'stderr/netns-exec-tool-missing.txt', argv: [IP, 'netns', 'exec', NS, '/usr/sbin/nnx-no-such-tool'] },
  { file: 'stderr/netns-set-has-nsid.txt', argv: [IP, 'netns', 'set', NS, 'auto'] },
  { file: 'stderr/eperm-netns-add.txt', argv: [IP, 'netns', 'add', MISSING], asNobody: true },
  { file: 'stderr/eacces-netns-del.txt', argv: [IP, 'netns', 'del', NS], asNobody: true },
  { file: 'stderr/eperm-setns.txt', argv: [IP, '-n', NS, 'link', 'set', 'lo', 'up'], asNobody: true },
  { file: 'stderr/eperm-netns-set.txt', argv: [IP, 'netns', 'set', NS, 'auto'], asNobody: true },
  { file: 'stderr/link-exists.txt', argv: [IP, '-n', NS, 'link', 'add', 'nnp0', 'type', 'veth', 'peer', 'name', 'nnp1'] },
  { file: 'stderr/link-not-found.txt', argv: [IP, '-n', NS, 'link', 'set', 'nnx-nosuch', 'up'] },
  { file: 'stderr/link-kind-unknown.txt', argv: [IP, '-n', NS, 'link', 'add', 'name', 'nnpk', 'type', 'nnxnosuch'] },
  { file: 'stderr/qdisc-kind-unknown.txt', argv: [TC, '-n', NS, 'qdisc', 'add', 'dev', 'nnp1', 'root', 'nnxnosuch'] },
  {
    file: 'stderr/batch-force.txt',
    argv: [IP, '-force', '-batch', '-'],
    input: `netns add ${NS}\nxyzzy\nnetns del ${MISSING}\nnetns add ${MISSING}\nnetns del ${MISSING}\nxyzzy\n`,
  },
  // An argument error that ends the batch even with -force (nothing after it runs).
  { file: 'stderr/batch-exit.txt', argv: [IP, '-n', NS, '-force', '-batch', '-'], input: 'address add 1.2.3.4/33 dev lo\nxyzzy\n' },
  { file: 'stdout/ip-version.txt', argv: [IP, '-V'], stdout: true },
  { file: 'stdout/tc-version.txt', argv: [TC, '-V'], stdout: true },
  { file: 'stdout/nft-version.txt', argv: [NFT, '--version'], stdout: true },
  { file: 'stdout/link-show.json', argv: [IP, '-n', NS, '-j', 'link', 'show'], stdout: true },
];

function run(argv: readonly string[], opts: { input?: string; asNobody?: boolean } = {}): { status: number | null; stdout: string; stderr: string } {
  const [file, ...args] = argv;
  const r = spawnSync(file as string, args, {
    encoding: 'utf8',
    input: opts.input ?? '',
    env: { LC_ALL: 'C', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    ...(opts.asNobody ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function must(argv: readonly string[]): void {
  const r = run(argv);
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
}

mkdirSync(join(ROOT, 'stderr'), { recursive: true });
mkdirSync(join(ROOT, 'stdout'), { recursive: true });
must([IP, 'netns', 'add', NS]);
must([IP, 'netns', 'add', NO_NSID]);
try {
  must([IP, 'netns', 'set', NS, 'auto']);
  must([IP, '-n', NS, 'link', 'add', 'nnp0', 'type', 'veth', 'peer', 'name', 'nnp1']);
  for (const c of cases) {
    const r = run(c.argv, c);
    const text = (c.stdout ? r.stdout : r.stderr).replaceAll(String(process.pid), 'PID');
    writeFileSync(join(ROOT, c.file), text);
    console.log(`${c.file}: exit ${r.status}, ${text.length} bytes`);
  }
  // `ip -j netns list` lists every namespace on the machine: keep only our two entries (one
  // with an nsid, one without), as printed.
  const list = JSON.parse(run([IP, '-j', 'netns', 'list']).stdout) as Array<{ name: string }>;
  const ours = list.filter((e) => e.name === NS || e.name === NO_NSID);
  writeFileSync(join(ROOT, 'stdout/netns-list.json'), JSON.stringify(ours).replaceAll(String(process.pid), 'PID'));
} finally {
  run([IP, 'netns', 'del', NO_NSID]);
  run([IP, 'netns', 'del', NS]);
  run([IP, 'netns', 'del', MISSING]);
}
