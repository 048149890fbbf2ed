/**
 * `POST /v1/diagnostics/path`: why can (or can't) namespace A reach an address? The packet is
 * followed from live state, hop by hop (at most MAX_HOPS namespaces): the kernel's own route
 * lookup in each namespace (`ip route get`, with `from SRC iif LINK` after the first hop, so the
 * kernel itself applies forwarding and rp_filter), the egress link and its state, where that link
 * leads (a veth's peer, or the veth ports of a bridge) and which namespace there owns the next
 * hop. Once the destination is reached the reply's way back is followed the same way. Then a real
 * probe (ping) runs, and the firewall rule counters of every namespace on the way are compared
 * before and after it: a drop or reject rule whose counter moved is named.
 *
 * Only what netnsd can see is followed: veths and bridges between namespaces on this machine. A
 * hop over another kind of link (vxlan, macvlan, tun) ends the walk with `unknown-link`; the
 * probe still says whether the destination answered.
 */
import { AppError } from '../errors/app-error.js';
import type { Executor, OpContext } from '../executor/executor.js';
import type { KernelAddress, PingResult, RouteLookup } from '../executor/ops.js';
import { formatIp, parseIp, sameIp, type IpAddress } from '../ip-address.js';
import type { ChainPolicy, RuleCounter } from '../firewall/firewall-service.js';
import type { Link } from '../links/link-schema.js';
import { parseLabelSelector } from '../labels.js';
import { existingNamespace, type NetnsDirectory } from '../namespaces/netns-dir.js';
import { isNamespaceName } from '../names.js';

export const MAX_HOPS = 8;
/** The probe: three echo requests 200 ms apart, each given 1 s (about 1.4 s in all). */
const PROBE = { count: 3, intervalMs: 200, timeoutMs: 1000, size: 56 } as const;

/** Why a path fails (or `reachable`); stable values, documented in the README. */
export const PATH_REASONS = [
  'reachable',
  'no-route',
  'prohibited',
  'link-down',
  'no-carrier',
  'next-hop-not-found',
  'peer-down',
  'forwarding-disabled',
  'rp-filter',
  'no-return-route',
  'firewall-drop',
  'firewall-policy',
  'unknown-link',
  'hop-limit',
  'no-reply',
] as const;
export type PathReason = (typeof PATH_REASONS)[number];

export const PATH_CHECKS = ['route', 'link', 'peer', 'delivery', 'firewall', 'probe'] as const;
export type PathCheck = (typeof PATH_CHECKS)[number];

export interface PathStep {
  readonly direction: 'forward' | 'return';
  readonly namespace: string;
  readonly check: PathCheck;
  readonly ok: boolean;
  readonly detail: string;
  /** The reason when the step failed. */
  readonly reason?: PathReason;
  readonly link?: string;
  readonly via?: string;
  readonly source?: string;
  readonly rule?: FirewallRuleHit;
}

/** A rule that counted the probe's packets: the firewall's counter of it, `packets` the probe's share. */
export type FirewallRuleHit = Omit<RuleCounter, 'bytes'>;

export interface PathAnswer {
  readonly from: string;
  readonly to: string;
  readonly reachable: boolean;
  readonly reason: PathReason;
  readonly verdict: string;
  readonly steps: readonly PathStep[];
  readonly probe: PingResult & { readonly target: string };
}

/** The firewall's counters (FirewallService). */
export interface FirewallCounters {
  ruleCounters(ns: string): Promise<readonly RuleCounter[]>;
  chainPolicies(ns: string): Promise<readonly ChainPolicy[]>;
}

/** Link views of a namespace (LinkService.list). */
export interface LinkLister {
  list(ns: string, f: { selector: ReturnType<typeof parseLabelSelector>; limit?: number }): Promise<{ items: readonly Link[] }>;
}

export interface PathDeps {
  readonly executor: Executor;
  readonly dir: NetnsDirectory;
  readonly links: LinkLister;
  readonly firewall?: FirewallCounters;
}

interface Walk {
  readonly steps: PathStep[];
  readonly namespaces: Set<string>;
  /** Where it ended: the namespace that owns the destination, or the failure. */
  readonly end: { readonly ok: true; readonly namespace: string; readonly source: string | null } | { readonly ok: false; readonly reason: PathReason };
}

export class PathTracer {
  constructor(private readonly d: PathDeps) {}

  /** The destinations `to` stands for: an address, or each global address of a namespace. */
  async targets(to: string, family?: 4 | 6): Promise<IpAddress[]> {
    const ip = parseIp(to);
    if (ip) return [ip];
    if (!isNamespaceName(to)) {
      throw new AppError('REQUEST_INVALID', `'to' must be an address or a namespace name`, { meta: { errors: [{ field: 'body.to', message: 'must be an IPv4 or IPv6 address or a namespace name' }] } });
    }
    await existingNamespace(this.d.dir, to).catch((e: unknown) => {
      if (e instanceof AppError && e.code === 'NAMESPACE_NOT_FOUND') throw new AppError('TARGET_NAMESPACE_NOT_FOUND', `There is no namespace '${to}'`);
      throw e;
    });
    const all = (await this.d.executor.run({ kind: 'addr.list', ns: to })).addresses;
    const out = all.filter((a) => a.scope === 'global' && (family === undefined || a.family === family)).flatMap((a) => parseIp(a.local) ?? []);
    if (out.length === 0) throw new AppError('PATH_TARGET_UNADDRESSED', `Namespace '${to}' has no global address${family ? ` of IPv${family}` : ''} to reach`);
    return out;
  }

  async trace(from: string, target: IpAddress, ctx: OpContext): Promise<PathAnswer> {
    const to = formatIp(target);
    const forward = await this.walk('forward', from, target);
    const steps = [...forward.steps];
    const seen = new Set(forward.namespaces);
    let failure: PathReason | undefined = forward.end.ok ? undefined : forward.end.reason;
    if (forward.end.ok && forward.end.source !== null) {
      const src = parseIp(forward.end.source)!;
      const back = await this.walk('return', forward.end.namespace, src);
      steps.push(...back.steps);
      for (const n of back.namespaces) seen.add(n);
      if (!back.end.ok) failure = back.end.reason === 'no-route' ? 'no-return-route' : back.end.reason;
      else if (back.end.namespace !== from) {
        steps.push({ direction: 'return', namespace: back.end.namespace, check: 'delivery', ok: false, reason: 'no-return-route', detail: `the reply to ${forward.end.source} is delivered in '${back.end.namespace}', not in '${from}'` });
        failure = 'no-return-route';
      }
    }
    const before = await this.counters(seen);
    const probe = await this.d.executor.run({ kind: 'diag.ping', ns: from, spec: { family: target.family, target: to, ...PROBE, deadlineMs: (PROBE.count - 1) * PROBE.intervalMs + PROBE.timeoutMs } }, ctx);
    const after = await this.counters(seen);
    const reachable = probe.received > 0;
    steps.push({
      direction: 'forward',
      namespace: from,
      check: 'probe',
      ok: reachable,
      detail: `ping ${to}: ${probe.sent} sent, ${probe.received} received${probe.failure ? ` (${probe.failure})` : ''}`,
      ...(reachable ? {} : { reason: 'no-reply' as const }),
    });
    const hits = moved(before, after);
    for (const h of hits) {
      steps.push({ direction: 'forward', namespace: h.namespace, check: 'firewall', ok: false, reason: 'firewall-drop', detail: `${h.rule.family} ${h.rule.table} ${h.rule.chain}: "${h.rule.text}" counted ${h.rule.packets} of the probe's packets`, rule: h.rule });
    }
    let reason: PathReason;
    if (reachable) reason = 'reachable';
    else if (failure !== undefined) reason = failure;
    else if (hits.length > 0) reason = 'firewall-drop';
    else {
      const policies = await this.dropPolicies(seen);
      for (const p of policies) steps.push({ direction: 'forward', namespace: p.namespace, check: 'firewall', ok: false, reason: 'firewall-policy', detail: `chain ${p.family} ${p.table} ${p.chain} (hook ${p.hook}) has policy drop: a packet no rule accepts is dropped, uncounted` });
      reason = policies.length > 0 ? 'firewall-policy' : 'no-reply';
    }
    return { from, to, reachable, reason, verdict: verdictOf(reason, from, to, steps), steps, probe: { target: to, ...probe } };
  }

  /** Follows a packet to `dst` from `start`; the first hop's lookup chooses the source address. */
  private async walk(direction: 'forward' | 'return', start: string, dst: IpAddress): Promise<Walk> {
    const steps: PathStep[] = [];
    const namespaces = new Set<string>([start]);
    const step = (s: Omit<PathStep, 'direction'>) => steps.push({ direction, ...s });
    const fail = (reason: PathReason): Walk => ({ steps, namespaces, end: { ok: false, reason } });
    const to = formatIp(dst);
    let ns = start;
    let iif: string | undefined;
    let from: string | null = null;
    for (let hop = 0; hop < MAX_HOPS; hop++) {
      const viaIif: boolean = iif !== undefined && from !== null;
      const r: RouteLookup = await this.d.executor.run({ kind: 'route.get', ns, family: dst.family, dst: to, ...(viaIif ? { from: from!, iif: iif! } : {}) });
      if (!r.ok) {
        const reason = await this.refusal(ns, r.errno, viaIif ? iif : undefined, dst.family);
        step({ namespace: ns, check: 'route', ok: false, reason: reason.reason, detail: `route lookup for ${to}${viaIif ? ` from ${from} arriving on ${iif}` : ''}: ${r.message}${reason.detail ? `; ${reason.detail}` : ''}`, ...(iif ? { link: iif } : {}) });
        return fail(reason.reason);
      }
      from ??= r.prefsrc;
      if (r.type === 'local') {
        step({ namespace: ns, check: 'delivery', ok: true, detail: `${to} is an address of '${ns}'${iif ? ` (arrives on ${iif})` : ''}`, ...(from ? { source: from } : {}) });
        return { steps, namespaces, end: { ok: true, namespace: ns, source: from } };
      }
      const gw = r.gateway;
      step({ namespace: ns, check: 'route', ok: true, detail: `${to} ${gw ? `via ${gw} ` : ''}dev ${r.dev ?? '?'}${r.prefsrc ? ` src ${r.prefsrc}` : ''}${r.table !== null && r.table !== 254 ? ` table ${r.table}` : ''}`, ...(r.dev ? { link: r.dev } : {}), ...(gw ? { via: gw } : {}) });
      if (r.dev === null) return fail('no-route');
      const links = (await this.d.links.list(ns, { selector: parseLabelSelector(undefined), limit: 10_000 })).items;
      const out = links.find((l) => l.name === r.dev);
      if (!out) {
        step({ namespace: ns, check: 'link', ok: false, reason: 'link-down', detail: `link ${r.dev} is gone`, link: r.dev });
        return fail('link-down');
      }
      if (out.state !== 'up') {
        step({ namespace: ns, check: 'link', ok: false, reason: 'link-down', detail: `link ${out.name} is down (set it up: PATCH .../links/${out.name} {"up":true})`, link: out.name });
        return fail('link-down');
      }
      const oper = out.operstate.toLowerCase();
      if (oper === 'lowerlayerdown' || oper === 'down') {
        const peer = out.kind === 'veth' && out.peer?.name ? ` (its peer ${out.peer.name}${out.peer.namespace ? ` in '${out.peer.namespace}'` : ''} is down)` : '';
        step({ namespace: ns, check: 'link', ok: false, reason: 'no-carrier', detail: `link ${out.name} is up but has no carrier, operstate ${out.operstate}${peer}`, link: out.name });
        return fail('no-carrier');
      }
      step({ namespace: ns, check: 'link', ok: true, detail: `link ${out.name} (${out.kind}) is up, operstate ${out.operstate}`, link: out.name });
      const nextHop = parseIp(gw ?? to)!;
      const ends = out.kind === 'veth' ? [out.peer] : out.kind === 'bridge' ? links.filter((l) => l.master === out.name && l.kind === 'veth').map((l) => l.peer) : undefined;
      // A peer whose namespace netnsd cannot name (an unnamed one, a container's) is not followed.
      const candidates = ends?.flatMap((p) => (p && p.namespace !== null && p.name !== null ? [{ namespace: p.namespace, name: p.name }] : []));
      if (candidates === undefined) {
        step({ namespace: ns, check: 'peer', ok: false, reason: 'unknown-link', detail: `netnsd does not follow packets over a ${out.kind} link; the probe below tells whether ${to} answers`, link: out.name });
        return fail('unknown-link');
      }
      const owner = await this.ownerOf(nextHop, candidates);
      if (!owner) {
        step({ namespace: ns, check: 'peer', ok: false, reason: 'next-hop-not-found', detail: `no namespace behind ${out.name} (${candidates.map((c) => `${c.namespace}/${c.name}`).join(', ') || 'nothing attached'}) has the address ${formatIp(nextHop)}`, link: out.name });
        return fail('next-hop-not-found');
      }
      namespaces.add(owner.namespace);
      if (!owner.up) {
        step({ namespace: owner.namespace, check: 'peer', ok: false, reason: 'peer-down', detail: `${formatIp(nextHop)} is on ${owner.link} in '${owner.namespace}', which is down`, link: owner.link });
        return fail('peer-down');
      }
      step({ namespace: ns, check: 'peer', ok: true, detail: `${out.name} leads to '${owner.namespace}', whose ${owner.link} has ${formatIp(nextHop)}`, link: out.name });
      ns = owner.namespace;
      iif = owner.link;
    }
    step({ namespace: ns, check: 'route', ok: false, reason: 'hop-limit', detail: `followed ${MAX_HOPS} namespaces without reaching ${to} (a loop?)` });
    return fail('hop-limit');
  }

  /** Which of these links' namespaces holds `ip` (and whether that end is up). */
  private async ownerOf(ip: IpAddress, ends: ReadonlyArray<{ namespace: string; name: string }>): Promise<{ namespace: string; link: string; up: boolean } | undefined> {
    for (const end of ends) {
      let addrs: readonly KernelAddress[];
      try {
        addrs = (await this.d.executor.run({ kind: 'addr.list', ns: end.namespace })).addresses;
      } catch {
        continue; // gone meanwhile, or not readable (host without rights)
      }
      const has = addrs.some((a) => sameIp(parseIp(a.local) ?? { family: 4, value: -1n }, ip));
      if (!has) continue;
      const link = (await this.d.links.list(end.namespace, { selector: parseLabelSelector(undefined), limit: 10_000 })).items.find((l) => l.name === end.name);
      return { namespace: end.namespace, link: end.name, up: link?.state === 'up' };
    }
    return undefined;
  }

  /** What a refused route lookup means (ip route get's errno; with iif, forwarding and rp_filter were checked by the kernel). */
  private async refusal(ns: string, errno: string, iif: string | undefined, family: 4 | 6): Promise<{ reason: PathReason; detail?: string }> {
    if (errno === 'EACCES' || errno === 'EPERM') return { reason: 'prohibited', detail: 'a prohibit route or rule refuses it' };
    if (iif !== undefined && errno === 'EINVAL') {
      const v = await this.sysctls(ns, family === 4 ? ['ipv4/conf/all/rp_filter', `ipv4/conf/${iif.replaceAll('.', '/')}/rp_filter`] : []);
      return { reason: 'rp-filter', detail: `reverse path filtering drops it: the source is not reached back through ${iif}${v.length ? ` (rp_filter all=${v[0] ?? '?'}, ${iif}=${v[1] ?? '?'}; 2 is loose, 0 off)` : ''}` };
    }
    if (iif !== undefined && (errno === 'EHOSTUNREACH' || errno === 'ENETUNREACH')) {
      const [fwd] = await this.sysctls(ns, [family === 4 ? 'ipv4/ip_forward' : 'ipv6/conf/all/forwarding']);
      if (fwd === '0') return { reason: 'forwarding-disabled', detail: `'${ns}' does not forward (${family === 4 ? 'net.ipv4.ip_forward' : 'net.ipv6.conf.all.forwarding'} = 0)` };
    }
    return { reason: 'no-route', detail: `'${ns}' has no route to it` };
  }

  private async sysctls(ns: string, keys: string[]): Promise<(string | null)[]> {
    if (keys.length === 0) return [];
    try {
      return (await this.d.executor.run({ kind: 'sysctl.read', ns, keys })).values.map((v) => v?.trim() ?? null);
    } catch {
      return [];
    }
  }

  private async counters(namespaces: ReadonlySet<string>): Promise<Map<string, Map<string, RuleCounter>>> {
    const out = new Map<string, Map<string, RuleCounter>>();
    if (!this.d.firewall) return out;
    for (const ns of namespaces) {
      try {
        const rules = await this.d.firewall.ruleCounters(ns);
        out.set(ns, new Map(rules.map((r) => [`${r.family}|${r.table}|${r.chain}|${r.handle}`, { ...r }])));
      } catch {
        // nftables not usable there: nothing to compare
      }
    }
    return out;
  }

  private async dropPolicies(namespaces: ReadonlySet<string>): Promise<Array<{ namespace: string; family: string; table: string; chain: string; hook: string }>> {
    if (!this.d.firewall) return [];
    const out: Array<{ namespace: string; family: string; table: string; chain: string; hook: string }> = [];
    for (const ns of namespaces) {
      try {
        for (const p of await this.d.firewall.chainPolicies(ns)) {
          if (p.policy === 'drop' && (p.hook === 'input' || p.hook === 'forward' || p.hook === 'output' || p.hook === 'prerouting' || p.hook === 'postrouting')) out.push({ namespace: ns, family: p.family, table: p.table, chain: p.chain, hook: p.hook });
        }
      } catch {
        // nftables not usable there
      }
    }
    return out;
  }
}

/** Drop/reject rules whose packet counters moved between the two snapshots. */
function moved(before: Map<string, Map<string, RuleCounter>>, after: Map<string, Map<string, RuleCounter>>): Array<{ namespace: string; rule: FirewallRuleHit }> {
  const out: Array<{ namespace: string; rule: FirewallRuleHit }> = [];
  for (const [ns, rules] of after) {
    for (const [key, r] of rules) {
      const was = before.get(ns)?.get(key)?.packets ?? 0;
      const verdict = r.verdict ?? '';
      if (r.packets > was && (verdict === 'drop' || verdict.startsWith('reject'))) {
        const { bytes: _b, ...rest } = r;
        out.push({ namespace: ns, rule: { ...rest, packets: r.packets - was } });
      }
    }
  }
  return out;
}

function verdictOf(reason: PathReason, from: string, to: string, steps: readonly PathStep[]): string {
  const failed = steps.find((s) => !s.ok && s.reason === reason);
  const where = failed ? ` in '${failed.namespace}'${failed.direction === 'return' ? ' (on the way back)' : ''}` : '';
  switch (reason) {
    case 'reachable':
      return `'${from}' reaches ${to}`;
    case 'firewall-drop':
      return `a firewall rule drops the packets${where}: ${failed?.rule?.text ?? ''}`.trim();
    case 'no-reply':
      return `the path looks right but ${to} does not answer (nothing on the way explains it: a host firewall, or no one at that address)`;
    default:
      return `'${from}' cannot reach ${to}: ${reason}${where}${failed ? ` — ${failed.detail}` : ''}`;
  }
}
