/**
 * What this kernel and these tools can do, probed once at start in a scratch namespace that is
 * removed again. Later features answer "the kernel lacks X" from here instead of guessing.
 */
import { randomBytes } from 'node:crypto';
import { release } from 'node:os';
import type { Executor } from '../executor/executor.js';
import {
  PROBE_CLASSIFIERS,
  PROBE_LINK_FEATURES,
  PROBE_LINK_KINDS,
  PROBE_QDISCS,
  type ProbeResult,
  type ToolVersions,
} from '../executor/ops.js';
import type { Capabilities } from './capabilities-schema.js';
import type { NetnsDirectory } from '../namespaces/netns-dir.js';

export interface ProbeLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

type Support = Capabilities['linkKinds'];

const PROBE_PREFIX = 'netnsd-probe-';
const PROBE_NAME_RE = /^netnsd-probe-([0-9]+)-[0-9a-f]+$/;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function split(results: ReadonlyArray<readonly [string, ProbeResult]>): Support {
  return {
    supported: results.filter(([, r]) => r.supported).map(([k]) => k),
    unsupported: results.filter(([, r]) => !r.supported).map(([k]) => k),
  };
}

export class CapabilitiesService {
  private current: Capabilities | undefined;

  constructor(
    private readonly executor: Executor,
    private readonly log: ProbeLogger,
    private readonly nativeHelper: boolean,
    private readonly dir: NetnsDirectory,
  ) {}

  /** Removes scratch namespaces of probes whose daemon died mid-probe (its pid is in the name). */
  private async sweepOrphans(): Promise<void> {
    for (const { name } of await this.dir.list()) {
      const m = PROBE_NAME_RE.exec(name);
      if (!m || isAlive(Number(m[1]))) continue;
      this.log.warn({ namespace: name }, 'removing a probe namespace left by a daemon that died');
      await this.executor.run({ kind: 'netns.delete', ns: name }).catch(() => undefined);
    }
  }

  /** Runs every probe; safe to call again (each run uses a fresh scratch namespace). */
  async probe(): Promise<Capabilities> {
    const started = Date.now();
    await this.sweepOrphans();
    const tools = await this.executor.run({ kind: 'probe.tools' });
    const caps = tools.ip ? await this.probeIn(tools) : this.nothing(tools);
    this.current = caps;
    this.log.info({ capabilities: caps, durationMs: Date.now() - started }, 'probed kernel capabilities');
    return caps;
  }

  private nothing(tools: ToolVersions): Capabilities {
    this.log.warn({}, 'iproute2 (ip) is not installed: nothing can be done until it is');
    const none = { supported: [], unsupported: [] };
    return {
      probedAt: new Date().toISOString(),
      kernel: release(),
      tools,
      nativeHelper: this.nativeHelper,
      linkKinds: none,
      linkFeatures: {},
      qdiscs: none,
      classifiers: none,
      nftables: false,
    };
  }

  private async probeIn(tools: ToolVersions): Promise<Capabilities> {
    const ns = `${PROBE_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`;
    const ex = this.executor;
    await ex.run({ kind: 'netns.add', ns });
    try {
      // In order: veth first, as the parent of the kinds that need one and the qdiscs' device.
      const kinds: Array<[string, ProbeResult]> = [];
      for (const linkKind of PROBE_LINK_KINDS) kinds.push([linkKind, await ex.run({ kind: 'probe.linkKind', ns, linkKind })]);
      const features: Record<string, boolean> = {};
      for (const feature of PROBE_LINK_FEATURES) features[feature] = (await ex.run({ kind: 'probe.linkFeature', ns, feature })).supported;
      const qdiscs: Array<[string, ProbeResult]> = [];
      for (const qdisc of PROBE_QDISCS) qdiscs.push([qdisc, await ex.run({ kind: 'probe.qdisc', ns, qdisc })]);
      const classifiers: Array<[string, ProbeResult]> = [];
      for (const classifier of PROBE_CLASSIFIERS) classifiers.push([classifier, await ex.run({ kind: 'probe.classifier', ns, classifier })]);
      const nftables = tools.nft ? (await ex.run({ kind: 'probe.nftables', ns })).supported : false;
      for (const [what, list] of [['link kind', kinds], ['qdisc', qdiscs], ['classifier', classifiers]] as const) {
        for (const [name, r] of list) if (!r.supported) this.log.debug({ [what]: name, reason: r.reason }, `${what} unsupported`);
      }
      return {
        probedAt: new Date().toISOString(),
        kernel: release(),
        tools,
        nativeHelper: this.nativeHelper,
        linkKinds: split(kinds),
        linkFeatures: features,
        qdiscs: split(qdiscs),
        classifiers: split(classifiers),
        nftables,
      };
    } finally {
      await ex.run({ kind: 'netns.delete', ns }).catch((e: unknown) => {
        this.log.warn({ namespace: ns, err: e }, 'could not remove the probe namespace');
      });
    }
  }

  /** The last probe's result (probe() runs before the daemon listens). */
  get(): Capabilities {
    if (!this.current) throw new Error('capabilities were not probed yet');
    return this.current;
  }
}
