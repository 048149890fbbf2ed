/**
 * Policy routing rules of every namespace, `host` included (read-only there unless
 * `host.allowChanges`: host rules decide how the whole machine routes). What exists comes from the
 * kernel (`rule.list`, one read per family per request until issue 4's inventory). The kernel has
 * no key for a rule but the whole rule, so a rule's id is made from all of its attributes.
 */
import { createHash } from 'node:crypto';
import { AppError, invalidFields } from '../errors/app-error.js';
import type { Executor, OpContext } from '../executor/executor.js';
import { HOST, TABLE_LOCAL, TABLE_MAIN, type KernelRule, type PortRange, type RuleSpec, kernelDeleteMatches, ruleKeyText, ruleOfSpec } from '../executor/ops.js';
import { type Family, type IpPrefix, formatPrefix, networkOf, parseIp, parsePrefix } from '../ip-address.js';
import { existingNamespace, type NetnsDirectory } from '../namespaces/netns-dir.js';
import { type Page, paginate } from '../paging.js';
import type { Rule, RuleCreate } from './rule-schema.js';

export interface RuleServiceOptions {
  readonly executor: Executor;
  readonly dir: NetnsDirectory;
  readonly hostAllowChanges: boolean;
}

export interface RuleListFilter {
  readonly family?: Family | undefined;
  readonly table?: string | undefined;
  readonly limit?: number | undefined;
  readonly cursor?: string | undefined;
}

const TABLE_DEFAULT = 253;
const TABLES: Record<string, number> = { main: TABLE_MAIN, local: TABLE_LOCAL, default: TABLE_DEFAULT };

/**
 * The id of a rule: its family, then 22 base64url characters of the SHA-256 of ruleKeyText (every
 * attribute of the rule: the kernel has no shorter key). Short enough for any URL, the same for
 * the same rule across restarts, and it says which family to read.
 */
export const ruleId = (r: KernelRule): string => {
  const text = ruleKeyText(r);
  let id = ruleIds.get(text);
  if (id === undefined) {
    if (ruleIds.size >= RULE_IDS_KEPT) ruleIds.clear();
    id = `${r.family}${createHash('sha256').update(text).digest('base64url').slice(0, 22)}`;
    ruleIds.set(text, id);
  }
  return id;
};

/**
 * Ids of rules seen lately, by their key text: every namespace has the same default rules, and
 * the inventory asks for an id at each event and dump (a hash each, ~10 µs). Emptied when full.
 */
const ruleIds = new Map<string, string>();
const RULE_IDS_KEPT = 4096;

function familyOfId(id: string): Family | undefined {
  return /^[46][A-Za-z0-9_-]{22}$/.test(id) ? (Number(id[0]) as Family) : undefined;
}

export class RuleService {
  private readonly ex: Executor;
  private readonly dir: NetnsDirectory;
  private readonly hostAllowChanges: boolean;

  constructor(o: RuleServiceOptions) {
    this.ex = o.executor;
    this.dir = o.dir;
    this.hostAllowChanges = o.hostAllowChanges;
  }

  async list(ns: string, f: RuleListFilter): Promise<Page<Rule>> {
    await this.entry(ns);
    const families: Family[] = f.family === undefined ? [4, 6] : [f.family];
    const table = f.table === undefined ? undefined : (TABLES[f.table] ?? Number(f.table));
    const items = (await Promise.all(families.map((family) => this.kernelRules(ns, family))))
      .flatMap((rules) => rules.map((r, i) => ({ key: sortKey(r, rules.slice(0, i).filter((x) => x.priority === r.priority).length), r })))
      .filter((x) => table === undefined || (x.r.action === 'lookup' && x.r.table === table));
    const page = paginate(items, (x) => x.key, f.limit, f.cursor);
    return { ...page, items: page.items.map((x) => ruleView(ns, x.r)) };
  }

  async get(ns: string, id: string): Promise<Rule> {
    await this.entry(ns);
    return ruleView(ns, await this.find(ns, id));
  }

  async create(ns: string, body: RuleCreate, ctx: OpContext): Promise<Rule> {
    await this.entry(ns);
    this.guardHost(ns);
    const draft = toSpec(body);
    const existing = await this.kernelRules(ns, draft.family, ctx);
    const spec: RuleSpec = { ...draft, priority: draft.priority ?? defaultPriority(existing) };
    if (spec.goto !== undefined && spec.goto <= spec.priority) {
      throw invalidFields([{ field: 'body.goto', message: `must be after the rule's priority ${spec.priority}${draft.priority === undefined ? ' (the default: give priority)' : ''}` }]);
    }
    await this.ex.run({ kind: 'rule.add', ns, spec }, ctx);
    const key = ruleKeyText(ruleOfSpec(spec));
    const made = (await this.kernelRules(ns, spec.family, { ...ctx, continues: true })).find((r) => ruleKeyText(r) === key);
    if (!made) throw new AppError('INTERNAL', `the rule at priority ${spec.priority} was added but is not listed`);
    return ruleView(ns, made);
  }

  async delete(ns: string, id: string, ctx: OpContext): Promise<void> {
    await this.entry(ns);
    const r = await this.find(ns, id, ctx);
    this.guardHost(ns);
    // The kernel deletes the first rule that has every attribute of this one: one before it at the
    // same priority with more attributes would go instead.
    const rules = await this.kernelRules(ns, r.family, ctx);
    const shadow = rules.slice(0, rules.findIndex((x) => ruleId(x) === id)).find((x) => kernelDeleteMatches(x, r));
    if (shadow) {
      throw new AppError('RULE_AMBIGUOUS', `The kernel cannot delete this rule alone: rule '${ruleId(shadow)}' at the same priority ${r.priority}, listed before it, has every attribute this one has and would be deleted instead; delete that one first (and make it again after)`, {
        meta: { shadowedBy: ruleId(shadow) },
      });
    }
    await this.ex.run({ kind: 'rule.delete', ns, rule: r }, ctx);
  }

  // ------------------------------------------------------------------------------------------

  private async find(ns: string, id: string, ctx?: OpContext): Promise<KernelRule> {
    const family = familyOfId(id);
    const r = family && (await this.kernelRules(ns, family, ctx)).find((x) => ruleId(x) === id);
    if (!r) throw new AppError('RULE_NOT_FOUND', `There is no rule '${id}' in namespace '${ns}'`);
    return r;
  }

  private guardHost(ns: string): void {
    if (ns === HOST && !this.hostAllowChanges) {
      throw new AppError('HOST_PROTECTED', "The policy rules of host decide how the whole machine routes: netnsd does not change them (set host.allowChanges to allow it)");
    }
  }

  private async entry(ns: string): Promise<void> {
    await existingNamespace(this.dir, ns);
  }

  private async kernelRules(ns: string, family: Family, ctx?: OpContext): Promise<readonly KernelRule[]> {
    return (await this.ex.run({ kind: 'rule.list', ns, family }, ctx)).rules;
  }
}

/** What `ip rule add` without `pref` picks (the kernel's fib_default_rule_pref): just below the second rule, or 0. */
function defaultPriority(rules: readonly KernelRule[]): number {
  const second = rules[1];
  return second !== undefined && second.priority > 0 ? second.priority - 1 : 0;
}

/** Family, priority, then the rule's place among rules of that priority (the kernel's order). */
const sortKey = (r: KernelRule, nth: number): string => `${r.family}|${String(r.priority).padStart(10, '0')}|${String(nth).padStart(6, '0')}`;

/** As the API shows it. */
export function ruleView(ns: string, r: KernelRule): Rule {
  const range = (p: PortRange | null) => (p === null ? null : { start: p.start, end: p.end });
  return {
    id: ruleId(r),
    namespace: ns,
    family: r.family,
    priority: r.priority,
    not: r.not,
    from: r.from,
    to: r.to,
    iif: r.iif,
    oif: r.oif,
    fwmark: r.fwmark,
    fwmask: r.fwmask,
    ipproto: r.ipproto,
    sport: range(r.sport),
    dport: range(r.dport),
    action: r.action,
    table: r.table,
    goto: r.goto,
    suppressPrefixLength: r.suppressPrefixLength,
    tos: r.tos,
    uidrange: range(r.uidrange),
    l3mdev: r.l3mdev,
    realms: r.realms,
    suppressIfgroup: r.suppressIfgroup,
    protocol: r.protocol,
    flags: [...r.flags],
  };
}

type Draft = Omit<RuleSpec, 'priority'> & { readonly priority?: number };

/** Parses and checks a rule body (every failing field listed); the priority may still be missing. */
function toSpec(body: RuleCreate): Draft {
  const errors: Array<{ field: string; message: string }> = [];
  const err = (field: string, message: string): void => void errors.push({ field: `body.${field}`, message });

  const prefixes: Partial<Record<'from' | 'to', IpPrefix>> = {};
  for (const f of ['from', 'to'] as const) {
    const v = body[f];
    if (v === undefined) continue;
    const p = v.includes('/') ? parsePrefix(v) : parsePrefix(`${v}/${parseIp(v)?.family === 6 ? 128 : 32}`);
    if (typeof p === 'string') err(f, p === 'is not an IPv4 or IPv6 address' ? 'is not a prefix or an address' : p);
    else if (networkOf(p).value !== p.value) err(f, `has host bits set: did you mean ${formatPrefix(networkOf(p))}?`);
    else prefixes[f] = p;
  }
  const seen = [prefixes.from, prefixes.to].filter((p): p is IpPrefix => p !== undefined);
  const family: Family = body.family ?? seen[0]?.family ?? 4;
  for (const f of ['from', 'to'] as const) {
    const p = prefixes[f];
    if (p && p.family !== family) err(f, body.family === undefined ? `must be an IPv${family} prefix like the other one` : `must be an IPv${family} prefix (family ${family})`);
  }

  const mark = (v: number | string | undefined): number | undefined => (v === undefined ? undefined : typeof v === 'number' ? v : parseInt(v.slice(2), 16));
  const fwmark = mark(body.fwmark);
  let fwmask = mark(body.fwmask);
  if (fwmask !== undefined && fwmark === undefined) err('fwmask', 'needs fwmark');
  if (fwmask === 0xffffffff) fwmask = undefined; // the whole mark: the kernel lists it without a mask
  if (fwmark === 0 && fwmask === undefined) err('fwmark', '0 without a mask would match every packet: give fwmask');

  const ports = (f: 'sport' | 'dport'): PortRange | undefined => {
    const v = body[f];
    if (v === undefined) return undefined;
    if (typeof v === 'number') return { start: v, end: v };
    const [start, end] = v.split('-').map(Number) as [number, number];
    if (start > 65535 || end > 65535 || start > end) err(f, 'must be a range START-END of ports 0-65535 with START <= END');
    return { start, end };
  };
  const sport = ports('sport');
  const dport = ports('dport');

  const action = body.action ?? 'lookup';
  const table = body.table === undefined ? undefined : typeof body.table === 'number' ? body.table : TABLES[body.table]!;
  if (action === 'lookup' && table === undefined) err('table', body.action === undefined ? 'is required (or give an action: goto, nop, blackhole, unreachable, prohibit)' : 'is required by a lookup rule');
  if (action !== 'lookup') {
    if (table !== undefined) err('table', `is not taken by a ${action} rule`);
    if (body.suppressPrefixLength !== undefined) err('suppressPrefixLength', `is not taken by a ${action} rule`);
  }
  if (action === 'goto' && body.goto === undefined) err('goto', 'is required by a goto rule');
  if (action !== 'goto' && body.goto !== undefined) err('goto', `is not taken by a ${action} rule (set action to goto)`);
  if (body.suppressPrefixLength !== undefined && body.suppressPrefixLength > (family === 4 ? 32 : 128)) err('suppressPrefixLength', `must be at most ${family === 4 ? 32 : 128} for IPv${family}`);
  if (body.goto !== undefined && body.priority !== undefined && body.goto <= body.priority) err('goto', `must be after the rule's priority ${body.priority}`);
  if (errors.length > 0) throw invalidFields(errors);

  return {
    family,
    action,
    ...(body.priority === undefined ? {} : { priority: body.priority }),
    ...(prefixes.from === undefined ? {} : { from: formatPrefix(prefixes.from) }),
    ...(prefixes.to === undefined ? {} : { to: formatPrefix(prefixes.to) }),
    ...(body.not === true ? { not: true } : {}),
    ...(body.iif === undefined ? {} : { iif: body.iif }),
    ...(body.oif === undefined ? {} : { oif: body.oif }),
    ...(fwmark === undefined ? {} : { fwmark }),
    ...(fwmask === undefined ? {} : { fwmask }),
    ...(body.ipproto === undefined ? {} : { ipproto: body.ipproto }),
    ...(sport === undefined ? {} : { sport }),
    ...(dport === undefined ? {} : { dport }),
    ...(table === undefined ? {} : { table }),
    ...(body.goto === undefined ? {} : { goto: body.goto }),
    ...(body.suppressPrefixLength === undefined ? {} : { suppressPrefixLength: body.suppressPrefixLength }),
  };
}
