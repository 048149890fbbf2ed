/**
 * Traffic shaping: one root qdisc per link and direction. Egress is the link's root qdisc;
 * ingress is an ifb link netnsd creates beside it (through LinkService: managed and labelled
 * like any link it makes), an `ingress` qdisc on the link, a u32 match-all filter with `mirred
 * egress redirect` to the ifb, and the shaping qdisc as the ifb's root.
 *
 * netnsd keeps what it set (QdiscRecords): the kernel cannot give a u32 filter's matches back
 * (tc 6.1's JSON folds them). A qdisc that is neither the kernel's default nor netnsd's is shown
 * (kind, handle, raw options, counters) but not replaced: QDISC_UNMANAGED, until it is deleted —
 * which is how a failed change can always put back what was there.
 *
 * A change is a sequence of tc one-shots. tbf, netem and the plain kinds are one `qdisc replace`
 * (atomic: on failure the previous qdisc is untouched). An htb tree is several steps; when one
 * fails, the tree is removed and the previous setup (netnsd's, from its record, or the default)
 * is set again, and the problem names the step and says whether that worked.
 */
import { createHash } from 'node:crypto';
import { AppError, isAppError } from '../errors/app-error.js';
import type { Executor, OpContext } from '../executor/executor.js';
import { HOST, type KernelQdisc, type Op } from '../executor/ops.js';
import type { Capabilities } from '../capabilities/capabilities-schema.js';
import { existingNamespace, type NetnsDirectory, type NetnsEntry } from '../namespaces/netns-dir.js';
import type { LinkRecords } from '../store/link-records.js';
import type { QdiscDirection, QdiscRecord, QdiscRecords } from '../store/qdisc-records.js';
import type { NewEvent } from '../store/event-log.js';
import type { Link } from '../links/link-schema.js';
import type { LinkCreate } from '../links/link-schema.js';
import { planOf, type QdiscPlan } from './qdisc-spec.js';
import type { Qdisc, QdiscBody } from './qdisc-schema.js';

/** The part of LinkService the ingress setup uses (its ifb). */
export interface IfbLinks {
  get(ns: string, name: string): Promise<Link>;
  create(ns: string, body: LinkCreate, ctx: OpContext): Promise<Link>;
  delete(ns: string, name: string, ctx: OpContext): Promise<void>;
}

export interface QdiscServiceOptions {
  readonly executor: Executor;
  readonly dir: NetnsDirectory;
  readonly records: QdiscRecords;
  readonly linkRecords: LinkRecords;
  readonly links: IfbLinks;
  readonly capabilities: () => Capabilities;
  readonly hostAllowChanges: boolean;
  readonly hostKey: string;
  readonly publish: (e: NewEvent) => void;
  readonly now?: () => Date;
}

/** The label on the ifb netnsd makes for a link's ingress shaping: the link's name. */
export const IFB_LABEL = 'netnsd.io/ifb-for';

/**
 * The ifb's name: `LINK-ifb` when that fits in 15 characters, else the first 6 of the link's
 * name, 4 hex of a hash of the whole name, and `-ifb` (distinct links get distinct names).
 */
export function ifbName(link: string): string {
  if (link.length <= 11) return `${link}-ifb`;
  return `${link.slice(0, 6)}-${createHash('sha256').update(link).digest('hex').slice(0, 4)}-ifb`;
}

const isDefault = (q: KernelQdisc | undefined): boolean => q === undefined || q.handle === '0:';
const ZERO = { bytes: 0, packets: 0, drops: 0, overlimits: 0, requeues: 0, backlog: 0, qlen: 0 };

export class QdiscService {
  private readonly o: QdiscServiceOptions;
  private readonly now: () => Date;
  /** The change under way per namespace (ns\0link): a change's steps (and its restore) never interleave with another's. */
  private readonly busy = new Map<string, Promise<unknown>>();

  constructor(o: QdiscServiceOptions) {
    this.o = o;
    this.now = o.now ?? (() => new Date());
  }

  /** At start: forgets what netnsd set in namespaces that are gone (and the host of an earlier boot). */
  async reconcile(): Promise<void> {
    this.o.records.pruneNamespaces(new Set([this.o.hostKey, ...(await this.o.dir.list()).map((e) => e.id)]));
  }

  // ------------------------------------------------------------------------------------------
  // Reads
  // ------------------------------------------------------------------------------------------

  async get(ns: string, link: string, direction: QdiscDirection, ctx?: OpContext): Promise<Qdisc> {
    const entry = await existingNamespace(this.o.dir, ns);
    const l = await this.link(ns, link, ctx);
    const rec = this.o.records.get(this.keyOf(entry), l.index, direction);
    if (direction === 'egress') return this.view(ns, link, direction, link, rec, ctx);
    const onLink = (await this.run({ kind: 'qdisc.show', ns, dev: link }, ctx)).qdiscs;
    const ingress = onLink.find((q) => q.kind === 'ingress' || q.kind === 'clsact');
    if (!ingress) throw new AppError('QDISC_NOT_FOUND', `Link '${link}' in namespace '${ns}' has no ingress shaping`);
    const redirect = (await this.run({ kind: 'qdisc.filters', ns, dev: link, parent: 'ingress' }, ctx)).filters.find((f) => f.redirectTo !== null)?.redirectTo ?? null;
    const ifb = rec?.ifb ?? redirect;
    if (ifb === null) {
      return { namespace: ns, link, direction, managed: false, kind: ingress.kind, handle: ingress.handle, spec: null, ifb: null, options: { ...ingress.options }, stats: { ...ingress.counters }, classes: [], filters: [], setAt: null };
    }
    return this.view(ns, link, direction, ifb, rec && rec.ifb === redirect ? rec : undefined, ctx);
  }

  /** The shaping on `dev` (the link, or the ifb for ingress) as the API shows it. */
  private async view(ns: string, link: string, direction: QdiscDirection, dev: string, rec: QdiscRecord | undefined, ctx?: OpContext): Promise<Qdisc> {
    const root = (await this.run({ kind: 'qdisc.show', ns, dev }, ctx)).qdiscs.find((q) => q.root);
    const managed = rec !== undefined && this.matches(rec, root);
    const htb = root?.kind === 'htb';
    const classes = htb ? (await this.run({ kind: 'qdisc.classes', ns, dev }, ctx)).classes : [];
    const filters = htb && root ? (await this.run({ kind: 'qdisc.filters', ns, dev, parent: root.handle }, ctx)).filters : [];
    return {
      namespace: ns,
      link,
      direction,
      managed,
      kind: root?.kind ?? 'noqueue',
      handle: root?.handle ?? null,
      spec: managed ? (rec.spec as QdiscBody) : null,
      ifb: direction === 'ingress' ? dev : null,
      options: { ...(root?.options ?? {}) },
      stats: { ...(root?.counters ?? ZERO) },
      classes: classes.map((c) => ({ id: c.id, rate: c.rate, ceil: c.ceil, stats: { ...c.counters } })),
      filters: filters.map((f) => ({ protocol: f.protocol, pref: f.pref, class: f.flowid })),
      setAt: managed ? rec.setAt : null,
    };
  }

  /** Whether the root is still what netnsd set (not replaced by hand since). */
  private matches(rec: QdiscRecord, root: KernelQdisc | undefined): boolean {
    return root !== undefined && !isDefault(root) && root.kind === rec.rootKind && (rec.rootKind !== 'htb' || root.handle === '1:');
  }

  // ------------------------------------------------------------------------------------------
  // Changes
  // ------------------------------------------------------------------------------------------

  set(ns: string, link: string, direction: QdiscDirection, body: QdiscBody, ctx: OpContext): Promise<Qdisc> {
    return this.serial(ns, link, () => this.setNow(ns, link, direction, body, ctx));
  }

  delete(ns: string, link: string, direction: QdiscDirection, ctx: OpContext): Promise<void> {
    return this.serial(ns, link, () => this.deleteNow(ns, link, direction, ctx));
  }

  /**
   * Runs changes of one link one after the other. The pool keeps one namespace's ops in order,
   * but not whole changes: two PUTs could otherwise interleave their steps, and one's restore
   * would undo the other's tree.
   */
  private serial<T>(ns: string, link: string, work: () => Promise<T>): Promise<T> {
    const key = `${ns}\0${link}`;
    const before = this.busy.get(key) ?? Promise.resolve();
    const run = before.catch(() => undefined).then(work);
    const tail = run.catch(() => undefined);
    this.busy.set(key, tail);
    void tail.then(() => {
      if (this.busy.get(key) === tail) this.busy.delete(key);
    });
    return run;
  }

  private async setNow(ns: string, link: string, direction: QdiscDirection, body: QdiscBody, ctx: OpContext): Promise<Qdisc> {
    const entry = await existingNamespace(this.o.dir, ns);
    const l = await this.link(ns, link, ctx);
    this.guardHost(ns, entry, l, link);
    const plan = planOf(body);
    this.checkSupported(body, plan, direction);
    const key = this.keyOf(entry);
    const rec = this.o.records.get(key, l.index, direction);
    const rest: OpContext = { ...ctx, continues: true };
    let dev = link;
    let ifb: string | null = null;
    if (direction === 'ingress') {
      ifb = await this.ingressSetup(ns, link, rec, ctx);
      dev = ifb;
    }
    const fresh = direction === 'ingress' && rec?.ifb !== ifb;
    const previous = await this.previousOf(ns, dev, fresh ? undefined : rec, direction === 'ingress' ? rest : ctx);
    // Ingress: the first step continues the change the ifb began.
    await this.apply(ns, dev, plan, previous, direction === 'ingress' ? rest : ctx, async () => {
      if (fresh) await this.ingressTeardown(ns, link, ifb, rest);
    });
    this.o.records.put({ nsKey: key, ifindex: l.index, direction, rootKind: plan.root.kind, spec: body, ifb, setAt: this.now().toISOString() });
    const view = await this.view(ns, link, direction, dev, this.o.records.get(key, l.index, direction), rest);
    this.o.publish({ type: 'qdisc.changed', namespace: ns, link, direction, spec: body });
    return view;
  }

  private async deleteNow(ns: string, link: string, direction: QdiscDirection, ctx: OpContext): Promise<void> {
    const entry = await existingNamespace(this.o.dir, ns);
    const l = await this.link(ns, link, ctx);
    this.guardHost(ns, entry, l, link);
    const key = this.keyOf(entry);
    const rec = this.o.records.get(key, l.index, direction);
    let changed = false;
    if (direction === 'egress') {
      const root = (await this.run({ kind: 'qdisc.show', ns, dev: link }, ctx)).qdiscs.find((q) => q.root);
      if (!isDefault(root)) {
        await this.ignoreMissing(this.run({ kind: 'qdisc.deleteRoot', ns, dev: link }, ctx));
        changed = true;
      }
    } else {
      const onLink = (await this.run({ kind: 'qdisc.show', ns, dev: link }, ctx)).qdiscs;
      if (onLink.some((q) => q.kind === 'ingress')) {
        await this.ignoreMissing(this.run({ kind: 'qdisc.deleteIngress', ns, dev: link }, ctx));
        changed = true;
      }
      if (rec?.ifb) changed = (await this.removeIfb(ns, link, rec.ifb, { ...ctx, continues: true })) || changed;
    }
    if (rec) this.o.records.delete(key, l.index, direction);
    if (changed || rec) this.o.publish({ type: 'qdisc.changed', namespace: ns, link, direction, spec: null });
  }

  /**
   * Sets `plan` on `dev`. `previous` is what to put back when a step fails: a plan netnsd set
   * (from its record), null for the kernel's default. `onFail` runs after the restore (ingress:
   * removing what a first setup made).
   */
  private async apply(ns: string, dev: string, plan: QdiscPlan, previous: QdiscPlan | null, ctx: OpContext, onFail: () => Promise<void>): Promise<void> {
    const steps = await this.stepsOf(ns, dev, plan, ctx);
    const rest: OpContext = { ...ctx, continues: true };
    let done = 0;
    try {
      for (const op of steps) {
        await this.run(op, done === 0 ? ctx : rest);
        done++;
      }
    } catch (e) {
      const err = isAppError(e) ? e : new AppError('INTERNAL', 'a qdisc step failed', { cause: e });
      const step = steps[done]!;
      // A single replace that failed changed nothing (the kernel swaps a root atomically).
      let restored = true;
      if (done > 0 || steps.length > 1) restored = await this.restore(ns, dev, previous, rest);
      await onFail().catch(() => undefined);
      throw new AppError(err.code, `${err.detail}; ${restored ? 'the previous setup was put back' : 'the previous setup could not be put back'}`, {
        cause: err,
        meta: { step: stepName(step), restored },
      });
    }
  }

  /** The ops that set `plan` on `dev`, given what is there now. */
  private async stepsOf(ns: string, dev: string, plan: QdiscPlan, ctx: OpContext): Promise<Op[]> {
    const steps: Op[] = [];
    if (plan.root.kind === 'htb') {
      // Another htb 1: cannot be replaced by one ("Change operation not supported", kernel 6.18): remove it first.
      const root = (await this.run({ kind: 'qdisc.show', ns, dev }, ctx)).qdiscs.find((q) => q.root);
      if (root?.handle === '1:') steps.push({ kind: 'qdisc.deleteRoot', ns, dev });
    }
    steps.push({ kind: 'qdisc.replaceRoot', ns, dev, spec: plan.root });
    for (const cls of plan.classes) steps.push({ kind: 'qdisc.addClass', ns, dev, cls });
    for (const f of plan.filters) steps.push({ kind: 'qdisc.addFilter', ns, dev, prio: f.prio, filter: f.filter });
    return steps;
  }

  /** Puts back `previous` (null: the kernel's default) after a failed change; false when that failed too. */
  private async restore(ns: string, dev: string, previous: QdiscPlan | null, ctx: OpContext): Promise<boolean> {
    try {
      const root = (await this.run({ kind: 'qdisc.show', ns, dev }, ctx)).qdiscs.find((q) => q.root);
      if (!isDefault(root)) await this.ignoreMissing(this.run({ kind: 'qdisc.deleteRoot', ns, dev }, ctx));
      if (previous) for (const op of await this.stepsOf(ns, dev, previous, ctx)) await this.run(op, ctx);
      return true;
    } catch {
      return false;
    }
  }

  /** What is on `dev` now, as a plan to restore: netnsd's record, null for the default; QDISC_UNMANAGED otherwise. */
  private async previousOf(ns: string, dev: string, rec: QdiscRecord | undefined, ctx: OpContext): Promise<QdiscPlan | null> {
    const root = (await this.run({ kind: 'qdisc.show', ns, dev }, ctx)).qdiscs.find((q) => q.root);
    if (isDefault(root)) return null;
    if (rec && this.matches(rec, root)) return planOf(rec.spec as QdiscBody);
    throw new AppError('QDISC_UNMANAGED', `Link '${dev}' in namespace '${ns}' has a ${root!.kind} qdisc (handle ${root!.handle}) that netnsd did not set: DELETE it first (that restores the kernel's default), then set yours`, {
      meta: { kind: root!.kind, handle: root!.handle },
    });
  }

  /**
   * The ingress half: the ifb (made up, or netnsd's from before), the ingress qdisc, the redirect.
   * Answers the ifb's name. Already in place (netnsd's record, the redirect still there): nothing to do.
   */
  private async ingressSetup(ns: string, link: string, rec: QdiscRecord | undefined, ctx: OpContext): Promise<string> {
    const onLink = (await this.run({ kind: 'qdisc.show', ns, dev: link }, ctx)).qdiscs;
    const ingress = onLink.find((q) => q.kind === 'ingress' || q.kind === 'clsact');
    if (ingress) {
      const redirect = (await this.run({ kind: 'qdisc.filters', ns, dev: link, parent: 'ingress' }, ctx)).filters.find((f) => f.redirectTo !== null)?.redirectTo ?? null;
      if (rec?.ifb && redirect === rec.ifb) return rec.ifb;
      throw new AppError('QDISC_UNMANAGED', `Link '${link}' in namespace '${ns}' has an ${ingress.kind} qdisc that netnsd did not set: DELETE .../qdisc/ingress first`, { meta: { kind: ingress.kind } });
    }
    const name = ifbName(link);
    const rest: OpContext = { ...ctx, continues: true };
    let made = false;
    const existing = await this.o.links.get(ns, name).catch((e: unknown) => {
      if (isAppError(e) && e.code === 'LINK_NOT_FOUND') return undefined;
      throw e;
    });
    if (existing) {
      // netnsd's ifb for this link from before (the link was deleted and made again): reuse it.
      if (!(existing.kind === 'ifb' && existing.managed && existing.labels[IFB_LABEL] === link)) {
        throw new AppError('LINK_EXISTS', `Ingress shaping of '${link}' needs the ifb '${name}', and a link of that name that netnsd did not make for it exists`, { meta: { step: 'ifb' } });
      }
    } else {
      await this.o.links.create(ns, { name, kind: 'ifb', up: true, labels: { [IFB_LABEL]: link } }, ctx).catch((e: unknown) => {
        throw isAppError(e) ? new AppError(e.code, `creating the ifb '${name}': ${e.detail}`, { cause: e, meta: { step: 'ifb' } }) : e;
      });
      made = true;
    }
    let step: Op = { kind: 'qdisc.addIngress', ns, dev: link };
    try {
      await this.run(step, rest);
      step = { kind: 'qdisc.addRedirect', ns, dev: link, to: name };
      await this.run(step, rest);
    } catch (e) {
      await this.ignoreMissing(this.run({ kind: 'qdisc.deleteIngress', ns, dev: link }, rest)).catch(() => undefined);
      if (made) await this.o.links.delete(ns, name, rest).catch(() => undefined);
      const err = isAppError(e) ? e : new AppError('INTERNAL', 'an ingress step failed', { cause: e });
      throw new AppError(err.code, `${err.detail}; nothing was left behind`, { cause: err, meta: { step: stepName(step), restored: true } });
    }
    return name;
  }

  /** Undoes a first ingress setup whose shaping failed. */
  private async ingressTeardown(ns: string, link: string, ifb: string | null, ctx: OpContext): Promise<void> {
    await this.ignoreMissing(this.run({ kind: 'qdisc.deleteIngress', ns, dev: link }, ctx)).catch(() => undefined);
    if (ifb) await this.removeIfb(ns, link, ifb, ctx).catch(() => undefined);
  }

  /** Deletes the ifb netnsd made for `link` (only when it still is that: managed, labelled). */
  private async removeIfb(ns: string, link: string, ifb: string, ctx: OpContext): Promise<boolean> {
    const l = await this.o.links.get(ns, ifb).catch(() => undefined);
    if (!l || l.kind !== 'ifb' || !l.managed || l.labels[IFB_LABEL] !== link) return false;
    await this.o.links.delete(ns, ifb, ctx);
    return true;
  }

  private checkSupported(body: QdiscBody, plan: QdiscPlan, direction: QdiscDirection): void {
    const caps = this.o.capabilities();
    const lacks = (kind: string): boolean => caps.qdiscs.unsupported.includes(kind);
    if (lacks(body.kind)) {
      throw new AppError('QDISC_UNSUPPORTED', `This kernel does not have the ${body.kind} qdisc (see /v1/capabilities: qdiscs)`, { meta: { kind: body.kind } });
    }
    if (plan.filters.length > 0 && caps.classifiers.unsupported.includes('u32')) {
      throw new AppError('QDISC_UNSUPPORTED', 'This kernel does not have the u32 classifier the filters need', { meta: { classifier: 'u32' } });
    }
    if (direction === 'ingress') {
      if (lacks('ingress')) throw new AppError('QDISC_UNSUPPORTED', 'This kernel does not have the ingress qdisc', { meta: { kind: 'ingress' } });
      if (caps.linkKinds.unsupported.includes('ifb')) throw new AppError('QDISC_UNSUPPORTED', 'Ingress shaping needs ifb links, which this kernel does not have', { meta: { linkKind: 'ifb' } });
      if (caps.classifiers.unsupported.includes('u32')) throw new AppError('QDISC_UNSUPPORTED', 'Ingress shaping needs the u32 classifier, which this kernel does not have', { meta: { classifier: 'u32' } });
    }
  }

  /** HOST_PROTECTED for a link in `host` that netnsd did not create (unless host.allowChanges). */
  private guardHost(ns: string, entry: NetnsEntry, l: { index: number; kind: string }, name: string): void {
    if (ns !== HOST || this.o.hostAllowChanges) return;
    if (this.o.linkRecords.get(this.keyOf(entry), l.index, l.kind)?.managed) return;
    throw new AppError('HOST_PROTECTED', `Link '${name}' in host was not created by netnsd: its qdiscs may not be changed (set host.allowChanges to allow it)`, { meta: { link: name } });
  }

  private async link(ns: string, name: string, ctx?: OpContext): Promise<{ index: number; kind: string }> {
    const links = (await this.o.executor.run({ kind: 'link.list', ns, name }, ctx)).links;
    const l = links.find((x) => x.name === name);
    if (!l) throw new AppError('LINK_NOT_FOUND', `There is no link '${name}' in namespace '${ns}'`);
    return l;
  }

  private keyOf(entry: NetnsEntry): string {
    return entry.name === HOST ? this.o.hostKey : entry.id;
  }

  private run<O extends Op>(op: O, ctx?: OpContext) {
    return this.o.executor.run(op, ctx);
  }

  /** QDISC_NOT_FOUND from a delete means it is gone already: that is what was wanted. */
  private async ignoreMissing(p: Promise<unknown>): Promise<void> {
    try {
      await p;
    } catch (e) {
      if (!(isAppError(e) && e.code === 'QDISC_NOT_FOUND')) throw e;
    }
  }
}

/** A step's name for the problem's `meta.step`. */
function stepName(op: Op): string {
  switch (op.kind) {
    case 'qdisc.replaceRoot': return `root ${op.spec.kind}`;
    case 'qdisc.deleteRoot': return 'remove root';
    case 'qdisc.addClass': return `class 1:${op.cls.minor.toString(16)}`;
    case 'qdisc.addFilter': return `filter ${op.prio}`;
    case 'qdisc.addIngress': return 'ingress qdisc';
    case 'qdisc.addRedirect': return 'ingress redirect';
    default: return op.kind;
  }
}
