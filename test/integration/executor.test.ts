/**
 * The real executor against this machine's kernel and iproute2 (root). Every namespace is named
 * `nnx-<pid>-...` and removed in afterEach, whatever happened.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BatchWorker } from '../../src/executor/batch-worker.js';
import type { OpRecord } from '../../src/executor/executor.js';
import { Iproute2Executor } from '../../src/executor/iproute2-executor.js';
import { PROBE_CLASSIFIERS, PROBE_LINK_FEATURES, PROBE_LINK_KINDS, PROBE_QDISCS, type ProbeResult } from '../../src/executor/ops.js';
import { snapshotRequests } from '../../src/netlink/netlink.js';

const IP = '/usr/sbin/ip';
let seq = 0;
const made = new Set<string>();
const children = new Set<ChildProcess>();

/** A fresh unique name, removed after the test. */
function name(tag = 'n'): string {
  const n = `nnx-${process.pid}-${tag}${seq++}`;
  made.add(n);
  return n;
}

function ipSync(...args: string[]): string {
  return execFileSync(IP, args, { encoding: 'utf8' });
}

afterEach(() => {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
  for (const n of made) {
    try {
      execFileSync(IP, ['netns', 'del', n], { stdio: 'ignore' });
    } catch {
      // never made, or already deleted by the test
    }
  }
  made.clear();
});

describe('Iproute2Executor', () => {
  let ex: Iproute2Executor;
  beforeAll(() => {
    ex = new Iproute2Executor({ native: true });
  });
  afterAll(async () => {
    await ex.close();
  });

  it('runs 100 concurrent adds (in-process) and deletes (root batch worker), each with its own result', async () => {
    const names = Array.from({ length: 100 }, () => name('p'));
    const taken = names[37] as string;
    ipSync('netns', 'add', taken);
    const adds = await Promise.allSettled(names.map((ns) => ex.run({ kind: 'netns.add', ns })));
    adds.forEach((r, i) => {
      if (names[i] === taken) expect(r).toMatchObject({ status: 'rejected', reason: { code: 'NAMESPACE_EXISTS', detail: `namespace "${taken}" already exists` } });
      else expect(r.status, names[i]).toBe('fulfilled');
    });
    for (const ns of names) expect(existsSync(`/run/netns/${ns}`)).toBe(true);

    const missing = name('missing');
    const dels = await Promise.allSettled([...names, missing].map((ns) => ex.run({ kind: 'netns.delete', ns })));
    expect(dels.slice(0, -1).every((r) => r.status === 'fulfilled')).toBe(true);
    expect(dels.at(-1)).toMatchObject({ status: 'rejected', reason: { code: 'NAMESPACE_NOT_FOUND' } });
    for (const ns of names) expect(existsSync(`/run/netns/${ns}`)).toBe(false);
  });

  it('records the command line an op stands for', async () => {
    const ns = name();
    const records: OpRecord[] = [];
    await ex.run({ kind: 'netns.add', ns }, { record: (r) => records.push(r) });
    await ex.run({ kind: 'netns.loopbackUp', ns }, { record: (r) => records.push(r) });
    await ex.run({ kind: 'netns.delete', ns }, { record: (r) => records.push(r) });
    expect(records).toEqual([
      // served in-process by the native addon: nothing was spawned
      expect.objectContaining({ kind: 'netns.add', ns, ok: true, argv: [] }),
      expect.objectContaining({ kind: 'netns.loopbackUp', ns, ok: true, argv: [] }),
      expect.objectContaining({ kind: 'netns.delete', ns, ok: true, argv: [[IP, 'netns', 'del', ns]] }),
    ]);
  });

  describe.each([
    ['native addon', true],
    ['one-shot ip', false],
  ] as const)('namespace ops through the %s', (_label, native) => {
    let exe: Iproute2Executor;
    beforeAll(() => {
      exe = new Iproute2Executor({ native });
    });
    afterAll(async () => {
      await exe.close();
    });

    it('reports which path is in use', () => {
      expect(exe.nativeAvailable).toBe(native);
    });

    it('brings lo up, assigns an nsid once, reads it back, and lists links', async () => {
      const ns = name();
      const added = await exe.run({ kind: 'netns.add', ns });
      if (native) {
        // The addon's add gives the nsid and reads the links' names itself, off the event loop.
        expect(added).toMatchObject({ nsid: expect.any(Number), linkNames: ['lo'] });
        // Its dumps for the monitor's seed, taken inside it: one answer per snapshot request.
        expect(added!.snapshot!.dumps.size).toBe(snapshotRequests().length);
        expect([...added!.snapshot!.dumps.values()].every((d) => d.datagrams.length > 0 && !d.interrupted)).toBe(true);
        expect(await exe.run({ kind: 'netns.getNsid', ns })).toEqual({ nsid: added!.nsid });
      } else {
        expect(added).toBeUndefined();
        expect(await exe.run({ kind: 'netns.getNsid', ns })).toEqual({ nsid: -1 });
      }
      await exe.run({ kind: 'netns.loopbackUp', ns });
      const lo = JSON.parse(ipSync('-n', ns, '-j', 'link', 'show', 'lo')) as Array<{ flags: string[] }>;
      expect(lo[0]?.flags).toContain('UP');
      const { nsid } = await exe.run({ kind: 'netns.assignNsid', ns });
      expect(nsid).toBeGreaterThanOrEqual(0);
      expect(await exe.run({ kind: 'netns.assignNsid', ns })).toEqual({ nsid });
      expect(await exe.run({ kind: 'netns.getNsid', ns })).toEqual({ nsid });
      expect(ipSync('-j', 'netns', 'list')).toContain(`{"name":"${ns}","id":${nsid}}`);
      expect(await exe.run({ kind: 'netns.linkNames', ns })).toEqual({ names: ['lo'] });
      expect((await exe.run({ kind: 'netns.linkNames', ns: 'host' })).names).toContain('lo');
    });

    it('answers NAMESPACE_NOT_FOUND for a namespace that does not exist', async () => {
      const ns = name('gone');
      for (const kind of ['netns.getNsid', 'netns.assignNsid', 'netns.loopbackUp', 'netns.linkNames', 'netns.pids'] as const) {
        await expect(exe.run({ kind, ns }), kind).rejects.toMatchObject({ code: 'NAMESPACE_NOT_FOUND' });
      }
    });
  });

  it('finds the processes inside a namespace and kills them', async () => {
    const ns = name();
    await ex.run({ kind: 'netns.add', ns });
    expect(await ex.run({ kind: 'netns.pids', ns })).toEqual({ pids: [] });
    // `ip netns exec` (not in batch mode) setns()es and execs: the pid is sleep's.
    const sleeper = spawn(IP, ['netns', 'exec', ns, '/usr/bin/sleep', '30'], { stdio: 'ignore' });
    children.add(sleeper);
    const exited = new Promise((r) => sleeper.once('exit', r));
    let pids: readonly number[] = [];
    for (let i = 0; i < 100 && !pids.includes(sleeper.pid as number); i++) {
      await new Promise((r) => setTimeout(r, 10));
      pids = (await ex.run({ kind: 'netns.pids', ns })).pids;
    }
    expect(pids).toEqual([sleeper.pid]);
    await ex.run({ kind: 'netns.killPids', ns, pids });
    await exited;
    expect(await ex.run({ kind: 'netns.pids', ns })).toEqual({ pids: [] });
  });

  it('gives concurrent pid lookups of different namespaces each their own processes', async () => {
    const [a, b, c] = [name('pa'), name('pb'), name('pc')];
    for (const ns of [a, b, c]) await ex.run({ kind: 'netns.add', ns });
    const sa = spawn(IP, ['netns', 'exec', a, '/usr/bin/sleep', '30'], { stdio: 'ignore' });
    const sb = spawn(IP, ['netns', 'exec', b, '/usr/bin/sleep', '30'], { stdio: 'ignore' });
    children.add(sa).add(sb);
    const ready = async () => (await ex.run({ kind: 'netns.pids', ns: a })).pids.length > 0 && (await ex.run({ kind: 'netns.pids', ns: b })).pids.length > 0;
    for (let i = 0; i < 100 && !(await ready()); i++) await new Promise((r) => setTimeout(r, 10));
    // Issued together: they share one /proc scan, yet each answers for its own namespace.
    const [pa, pb, pc] = await Promise.all([a, b, c].map((ns) => ex.run({ kind: 'netns.pids', ns })));
    expect([pa?.pids, pb?.pids, pc?.pids]).toEqual([[sa.pid], [sb.pid], []]);
  });

  it('refuses to kill its own process, and ignores a pid that is not inside', async () => {
    const ns = name();
    await ex.run({ kind: 'netns.add', ns });
    await expect(ex.run({ kind: 'netns.killPids', ns, pids: [process.pid] })).rejects.toMatchObject({ code: 'INTERNAL' });
    // pid 2 (kthreadd) lives in the root namespace: it is not inside, so it is left alone.
    await ex.run({ kind: 'netns.killPids', ns, pids: [2] });
  });

  it('probes tools, link kinds, features, qdiscs, classifiers and nftables without throwing for refusals', async () => {
    const tools = await ex.run({ kind: 'probe.tools' });
    expect(tools.ip).toMatch(/^\d+\.\d+/);
    expect(tools.tc).toMatch(/^\d+\.\d+/);
    expect(tools.conntrack).toMatch(/^\d+\.\d+/); // scripts/setup.sh installs conntrack
    const ns = name('probe');
    await ex.run({ kind: 'netns.add', ns });
    const results: Record<string, ProbeResult> = {};
    for (const linkKind of PROBE_LINK_KINDS) results[linkKind] = await ex.run({ kind: 'probe.linkKind', ns, linkKind });
    for (const feature of PROBE_LINK_FEATURES) results[feature] = await ex.run({ kind: 'probe.linkFeature', ns, feature });
    for (const qdisc of PROBE_QDISCS) results[`qdisc ${qdisc}`] = await ex.run({ kind: 'probe.qdisc', ns, qdisc });
    for (const classifier of PROBE_CLASSIFIERS) results[`filter ${classifier}`] = await ex.run({ kind: 'probe.classifier', ns, classifier });
    if (tools.nft) results.nftables = await ex.run({ kind: 'probe.nftables', ns });
    // Repeating probes in the same namespace gives the same answers (they clean up after themselves).
    expect(await ex.run({ kind: 'probe.linkKind', ns, linkKind: 'bridge' })).toEqual(results.bridge);
    expect(await ex.run({ kind: 'probe.qdisc', ns, qdisc: 'htb' })).toEqual(results['qdisc htb']);
    expect(await ex.run({ kind: 'probe.classifier', ns, classifier: 'u32' })).toEqual(results['filter u32']);
    // The kernel of any machine that runs netnsd has these.
    for (const k of ['veth', 'bridge', 'qdisc pfifo', 'qdisc htb', 'qdisc ingress', 'filter u32']) expect(results[k]?.supported, k).toBe(true);
    for (const r of Object.values(results)) if (!r.supported) expect(r.reason).toMatch(/\S/);
    if (tools.nft) expect(results.nftables?.supported).toBe(true);
  });

  it('fails a probe in a namespace that does not exist with NAMESPACE_NOT_FOUND', async () => {
    await expect(ex.run({ kind: 'probe.linkKind', ns: name('gone'), linkKind: 'veth' })).rejects.toMatchObject({ code: 'NAMESPACE_NOT_FOUND' });
  });

  it('answers ping, then refuses work once closed', async () => {
    const e = new Iproute2Executor();
    await e.ping();
    await e.close();
    await expect(e.run({ kind: 'netns.add', ns: name() })).rejects.toMatchObject({ code: 'EXECUTOR_UNAVAILABLE' });
  });

  it('finishes ops in flight before close resolves', async () => {
    const e = new Iproute2Executor();
    const ns = name();
    const add = e.run({ kind: 'netns.add', ns });
    await e.close();
    await add;
    expect(existsSync(`/run/netns/${ns}`)).toBe(true);
  });
});

describe('netns.add in-process (native netnsAdd)', () => {
  let ex: Iproute2Executor;
  beforeAll(() => {
    ex = new Iproute2Executor({ native: true });
  });
  afterAll(async () => {
    await ex.close();
  });

  /** The nsfs inode bound at /run/netns/NAME (`stat -L` of a namespace file is its namespace). */
  const inode = (ns: string): string => execFileSync('stat', ['-L', '-c', '%d:%i', `/run/netns/${ns}`], { encoding: 'utf8' }).trim();
  const own = (): string => execFileSync('stat', ['-L', '-c', '%d:%i', '/proc/self/ns/net'], { encoding: 'utf8' }).trim();

  it('makes a real namespace: an nsfs mount that ip lists and enters, with lo and nothing else', async () => {
    const ns = name('real');
    await ex.run({ kind: 'netns.add', ns });
    expect(ipSync('netns', 'list').split('\n').map((l) => l.split(' ')[0])).toContain(ns);
    expect(execFileSync('stat', ['-f', '-c', '%T', `/run/netns/${ns}`], { encoding: 'utf8' }).trim()).toBe('nsfs');
    expect(execFileSync('findmnt', ['-n', '-o', 'TARGET', `/run/netns/${ns}`], { encoding: 'utf8' }).trim()).toBe(`/run/netns/${ns}`);
    const links = JSON.parse(ipSync('-n', ns, '-j', 'link', 'show')) as Array<{ ifname: string; operstate: string }>;
    expect(links.map((l) => l.ifname)).toEqual(['lo']);
    expect(inode(ns)).not.toBe(own());
  });

  it('answers NAMESPACE_EXISTS for a name taken by hand and leaves that namespace as it was', async () => {
    const ns = name('taken');
    ipSync('netns', 'add', ns);
    ipSync('-n', ns, 'link', 'set', 'lo', 'up');
    const before = inode(ns);
    await expect(ex.run({ kind: 'netns.add', ns })).rejects.toMatchObject({ code: 'NAMESPACE_EXISTS', detail: `namespace "${ns}" already exists` });
    expect(inode(ns)).toBe(before);
    expect(ipSync('-n', ns, 'link', 'show', 'lo')).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
  });

  it('makes 50 namespaces at once, all distinct, and `ip netns del` frees every one', async () => {
    const names = Array.from({ length: 50 }, () => name('many'));
    const adds = await Promise.allSettled(names.map((ns) => ex.run({ kind: 'netns.add', ns })));
    adds.forEach((r, i) => expect(r.status, names[i]).toBe('fulfilled'));
    const inodes = names.map(inode);
    expect(new Set(inodes).size).toBe(50);
    expect(inodes).not.toContain(own());
    for (const ns of names) expect(ipSync('-n', ns, 'link', 'show', 'lo')).toMatch(/^1: lo:/);
    for (const ns of names) ipSync('netns', 'del', ns);
    for (const ns of names) expect(existsSync(`/run/netns/${ns}`)).toBe(false);
    // No namespace is left mounted where they were.
    const mounts = execFileSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' }).split('\n');
    for (const ns of names) expect(mounts).not.toContain(`/run/netns/${ns}`);
  });

  it('keeps no thread of the daemon in a namespace it made', async () => {
    const names = Array.from({ length: 8 }, () => name('tid'));
    await Promise.all(names.map((ns) => ex.run({ kind: 'netns.add', ns })));
    const mine = own();
    const tids = execFileSync('ls', [`/proc/${process.pid}/task`], { encoding: 'utf8' }).trim().split('\n');
    const threadNs = tids.flatMap((tid) => {
      try {
        return [execFileSync('stat', ['-L', '-c', '%d:%i', `/proc/${process.pid}/task/${tid}/ns/net`], { encoding: 'utf8' }).trim()];
      } catch {
        return []; // exited meanwhile
      }
    });
    expect(threadNs.every((k) => k === mine)).toBe(true);
  });

  it('uses the root batch worker without netnsAdd (nativeNetnsAdd: false), with the same answers', async () => {
    const batch = new Iproute2Executor({ native: true, nativeNetnsAdd: false });
    try {
      const ns = name('batch');
      const records: OpRecord[] = [];
      await batch.run({ kind: 'netns.add', ns }, { record: (r) => records.push(r) });
      expect(records[0]).toMatchObject({ kind: 'netns.add', ok: true, argv: [[IP, 'netns', 'add', ns]] });
      expect(execFileSync('stat', ['-f', '-c', '%T', `/run/netns/${ns}`], { encoding: 'utf8' }).trim()).toBe('nsfs');
      await expect(batch.run({ kind: 'netns.add', ns })).rejects.toMatchObject({ code: 'NAMESPACE_EXISTS' });
      await expect(ex.run({ kind: 'netns.add', ns })).rejects.toMatchObject({ code: 'NAMESPACE_EXISTS' });
    } finally {
      await batch.close();
    }
  });
});

describe('BatchWorker', () => {
  it('fails every pending request when ip exits, and the next request gets a new process', async () => {
    const ns = name();
    ipSync('netns', 'add', ns);
    const w = new BatchWorker({ tool: 'ip', netns: ns });
    // `1.2.3.4/33` makes ip exit even with -force (iproute2 6.1): nothing after it runs.
    const results = await Promise.allSettled([
      w.submit(['address', 'add', '1.2.3.4/33', 'dev', 'lo']),
      w.submit(['link', 'set', 'lo', 'up']),
      w.submit(['link', 'set', 'lo', 'down']),
    ]);
    for (const r of results) expect(r).toMatchObject({ status: 'rejected', reason: { code: 'EXECUTOR_UNAVAILABLE', retryable: true } });
    expect(await w.submit(['link', 'set', 'lo', 'up'])).toEqual({ ok: true });
    await w.close();
  });

  it('attributes each failure to its own line among good ones', async () => {
    const ns = name();
    ipSync('netns', 'add', ns);
    const w = new BatchWorker({ tool: 'ip', netns: ns });
    const results = await Promise.all([
      w.submit(['link', 'set', 'lo', 'up']),
      w.submit(['link', 'set', 'nnx-nosuch', 'up']),
      w.submit(['address', 'add', '10.9.9.9/32', 'dev', 'lo']),
      w.submit(['address', 'add', '10.9.9.9/32', 'dev', 'lo']),
      w.submit(['link', 'set', 'lo', 'down']),
    ]);
    expect(results).toEqual([
      { ok: true },
      { ok: false, stderr: 'Cannot find device "nnx-nosuch"' },
      { ok: true },
      { ok: false, stderr: 'Error: ipv4: Address already assigned.' }, // kernel 6.18's extack message
      { ok: true },
    ]);
    await w.close();
  });

  it('speaks tc batches too', async () => {
    const ns = name();
    ipSync('netns', 'add', ns);
    const w = new BatchWorker({ tool: 'tc', netns: ns });
    expect(await w.submit(['qdisc', 'add', 'dev', 'lo', 'root', 'pfifo'])).toEqual({ ok: true });
    expect(await w.submit(['qdisc', 'add', 'dev', 'lo', 'root', 'pfifo'])).toMatchObject({ ok: false, stderr: expect.stringMatching(/\S/) });
    await w.close();
  });

  it('times out a request that hangs, kills the process, and recovers', async () => {
    const ns = name();
    ipSync('netns', 'add', ns);
    const w = new BatchWorker({ tool: 'ip', timeoutMs: 300 });
    // In batch mode `netns exec` forks and waits for the command: a line that takes 1 s.
    await expect(w.submit(['netns', 'exec', ns, '/usr/bin/sleep', '1'])).rejects.toMatchObject({ code: 'EXECUTOR_TIMEOUT' });
    await w.ping();
    expect(await w.submit(['netns', 'exec', ns, '/usr/bin/true'])).toEqual({ ok: true });
    await w.close();
  });

  it('recycles its process after the configured number of requests', async () => {
    const w = new BatchWorker({ tool: 'ip', recycleAfter: 3 });
    const seen = new Set<number>();
    for (let i = 0; i < 7; i++) {
      const submitted = w.submit(['link', 'show', 'lo']);
      for (const pid of w.pids) seen.add(pid);
      expect(await submitted).toEqual({ ok: true });
    }
    expect(seen.size).toBe(3);
    await w.close();
    expect(w.pids).toEqual([]);
  });

  it('answers pings, and refuses work after close', async () => {
    const w = new BatchWorker({ tool: 'ip' });
    await w.ping();
    await w.close();
    await expect(w.submit(['link', 'show'])).rejects.toMatchObject({ code: 'EXECUTOR_UNAVAILABLE' });
  });
});
