/**
 * The per-namespace firewall (nftables). netnsd keeps the rules it manages in its own table,
 * `inet netnsd`, made on the first managed change, so it never fights other software's tables.
 * Every managed rule carries a counter and a comment holding its id (`netnsd:fw-k3j9x2ab`): the
 * kernel is the only record, so ids survive restarts and an expert PUT that keeps a rule.
 *
 * Each change is one nft transaction (all or nothing in the kernel). Changes of one namespace
 * run one at a time (a per-namespace lock): each reads the ruleset (handles, positions) and then
 * writes, and two such pairs must not interleave.
 */
import { randomBytes } from 'node:crypto';
import { AppError, invalidFields, isAppError } from '../errors/app-error.js';
import type { NftError } from '../executor/classify.js';
import type { Executor, OpContext } from '../executor/executor.js';
import { HOST, type NftCommand } from '../executor/ops.js';
import { type Family, formatPrefix, networkOf, parseIp, parsePrefix } from '../ip-address.js';
import { existingNamespace, type NetnsDirectory } from '../namespaces/netns-dir.js';
import {
  type CtState,
  FILTER_CHAINS,
  type FilterChain,
  type ListedRule,
  type Matches,
  type NatSpec,
  type Protocol,
  commentOf,
  counterOf,
  deleteRuleCommand,
  ensureCommands,
  isManagedTable,
  matchExprs,
  natChainOf,
  natExpr,
  parseComment,
  policyCommand,
  readFields,
  readRuleset,
  ruleCommand,
  ruleText,
  verdictExpr,
  verdictOf,
} from './firewall-nft.js';
import {
  type Firewall,
  type FirewallPolicy,
  type FirewallPolicyUpdate,
  type FirewallRule,
  type FirewallRuleCreate,
  MAX_COMMENT_BYTES,
  type NatRule,
  type NatRuleCreate,
  type NftRuleset,
} from './firewall-schema.js';

/** What changed, in a `firewall.changed` event. */
export type FirewallChange = 'rule.added' | 'rule.removed' | 'nat.added' | 'nat.removed' | 'policy' | 'ruleset';

export interface FirewallServiceOptions {
  readonly executor: Executor;
  readonly dir: NetnsDirectory;
  readonly hostAllowChanges: boolean;
  /** Whether nftables works here (capabilities' probe); answered FIREWALL_UNAVAILABLE when not. */
  readonly available: () => { readonly ok: boolean; readonly reason?: string };
  /** Called after every managed change that took effect (the event bus). */
  readonly changed?: (ns: string, change: FirewallChange, id?: string) => void;
}

/** One counter of any rule of the namespace (see ruleCounters). */
export interface RuleCounter {
  readonly family: string;
  readonly table: string;
  readonly chain: string;
  readonly handle: number;
  readonly id?: string;
  readonly verdict?: string;
  readonly text: string;
  readonly packets: number;
  readonly bytes: number;
}

/** The policy of one base chain of any table of the namespace. */
export interface ChainPolicy {
  readonly family: string;
  readonly table: string;
  readonly chain: string;
  readonly hook: string;
  readonly policy: string;
}

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** `fw-` or `nat-`, then 8 random characters of [a-z0-9] (41 bits: a clash is retried). */
function newId(prefix: 'fw' | 'nat'): string {
  const bytes = randomBytes(8);
  return `${prefix}-${[...bytes].map((b) => ID_ALPHABET[b % ID_ALPHABET.length]).join('')}`;
}

export class FirewallService {
  private readonly ex: Executor;
  private readonly dir: NetnsDirectory;
  private readonly hostAllowChanges: boolean;
  private readonly available: FirewallServiceOptions['available'];
  private readonly changed: NonNullable<FirewallServiceOptions['changed']>;
  /** The tail of each namespace's queue of changes (see locked). */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(o: FirewallServiceOptions) {
    this.ex = o.executor;
    this.dir = o.dir;
    this.hostAllowChanges = o.hostAllowChanges;
    this.available = o.available;
    this.changed = o.changed ?? (() => {});
  }

  /** The whole ruleset, the managed policies and rules. */
  async get(ns: string, ctx?: OpContext): Promise<Firewall> {
    await this.entry(ns);
    return this.view(ns, await this.list(ns, ctx));
  }

  async listRules(ns: string): Promise<FirewallRule[]> {
    return (await this.get(ns)).rules;
  }

  async getRule(ns: string, id: string): Promise<FirewallRule> {
    return byId(await this.listRules(ns), ns, id);
  }

  async listNat(ns: string): Promise<NatRule[]> {
    return (await this.get(ns)).nat;
  }

  async getNat(ns: string, id: string): Promise<NatRule> {
    return byId(await this.listNat(ns), ns, id);
  }

  async addRule(ns: string, body: FirewallRuleCreate, ctx: OpContext): Promise<FirewallRule> {
    await this.entry(ns);
    this.guardHost(ns);
    const m = checkMatches(body, 'filter');
    return this.locked(ns, async () => {
      const ruleset = await this.list(ns, ctx);
      const { rules } = readRuleset(ruleset);
      const inChain = rules.filter((r) => isManagedTable(r) && r.chain === body.chain);
      if (body.position !== undefined && body.position > inChain.length) {
        throw new AppError('FIREWALL_POSITION_INVALID', `Chain '${body.chain}' has ${inChain.length} rule(s): position must be from 0 to ${inChain.length}`, {
          meta: { errors: [{ field: 'body.position', message: `must be at most ${inChain.length}` }] },
        });
      }
      const id = this.freshId('fw', rules);
      const before = body.position === undefined || body.position === inChain.length ? undefined : inChain[body.position]!.handle;
      const expr = [...matchExprs(m), { counter: null }, verdictExpr(body.action, m.protocol)];
      await this.apply(ns, [...ensureCommands([body.chain]), ruleCommand(body.chain, expr, commentOf(id, body.comment), before)], ctx);
      this.changed(ns, 'rule.added', id);
      return this.findAfter(ns, id, ctx, (fw) => fw.rules);
    });
  }

  async deleteRule(ns: string, id: string, ctx: OpContext): Promise<void> {
    await this.deleteManaged(ns, id, ctx, 'rule.removed');
  }

  async addNat(ns: string, body: NatRuleCreate, ctx: OpContext): Promise<NatRule> {
    await this.entry(ns);
    this.guardHost(ns);
    const spec = checkNat(body);
    const chain = natChainOf(spec.type);
    return this.locked(ns, async () => {
      const { rules } = readRuleset(await this.list(ns, ctx));
      const id = this.freshId('nat', rules);
      const expr = [...matchExprs(spec), { counter: null }, natExpr(spec)];
      await this.apply(ns, [...ensureCommands([chain]), ruleCommand(chain, expr, commentOf(id, body.comment))], ctx);
      this.changed(ns, 'nat.added', id);
      return this.findAfter(ns, id, ctx, (fw) => fw.nat);
    });
  }

  async deleteNat(ns: string, id: string, ctx: OpContext): Promise<void> {
    await this.deleteManaged(ns, id, ctx, 'nat.removed');
  }

  async setPolicy(ns: string, body: FirewallPolicyUpdate, ctx: OpContext): Promise<FirewallPolicy> {
    await this.entry(ns);
    this.guardHost(ns);
    const chains = FILTER_CHAINS.filter((c) => body[c] !== undefined);
    if (chains.length === 0) throw invalidFields([{ field: 'body', message: 'must set at least one of input, forward, output' }]);
    return this.locked(ns, async () => {
      await this.apply(ns, [...ensureCommands(chains), ...chains.map((c) => policyCommand(c, body[c]!))], ctx);
      this.changed(ns, 'policy');
      return policyOf(readRuleset(await this.list(ns, { ...ctx, continues: true })).chains);
    });
  }

  /**
   * Replaces the whole ruleset: `flush ruleset`, then the document, checked first (`nft -c`) and
   * then applied, each one transaction. A document nft refuses is FIREWALL_RULESET_INVALID with
   * nft's complaints in `errors`, and the ruleset before it stays.
   */
  async replace(ns: string, body: NftRuleset, ctx: OpContext): Promise<Firewall> {
    await this.entry(ns);
    this.guardHost(ns);
    // The body as it is (a listed ruleset's metainfo is taken by nft), so element N is command N + 1.
    const commands: NftCommand[] = [{ flush: { ruleset: null } }, ...body.nftables];
    return this.locked(ns, async () => {
      await this.apply(ns, commands, ctx, true);
      await this.apply(ns, commands, { ...ctx, continues: true }, true, false);
      this.changed(ns, 'ruleset');
      return this.view(ns, await this.list(ns, { ...ctx, continues: true }));
    });
  }

  /** Every rule with a counter, in every table of the namespace (not only netnsd's). */
  async ruleCounters(ns: string): Promise<readonly RuleCounter[]> {
    await this.entry(ns);
    const { rules } = readRuleset(await this.list(ns));
    return rules.flatMap((r): RuleCounter[] => {
      const c = counterOf(r);
      if (!c) return [];
      const managed = isManagedTable(r) ? parseComment(r.comment) : undefined;
      const verdict = verdictOf(r);
      return [
        {
          family: r.family, table: r.table, chain: r.chain, handle: r.handle,
          ...(managed ? { id: managed.id } : {}), ...(verdict ? { verdict } : {}),
          text: ruleText(r), packets: c.packets, bytes: c.bytes,
        },
      ];
    });
  }

  /** The policy of every base chain (a chain with a hook), in every table of the namespace. */
  async chainPolicies(ns: string): Promise<readonly ChainPolicy[]> {
    await this.entry(ns);
    return readRuleset(await this.list(ns)).chains.flatMap((c) =>
      c.hook === null ? [] : [{ family: c.family, table: c.table, chain: c.name, hook: c.hook, policy: c.policy ?? 'accept' }],
    );
  }

  // ------------------------------------------------------------------------------------------

  private async deleteManaged(ns: string, id: string, ctx: OpContext, change: 'rule.removed' | 'nat.removed'): Promise<void> {
    await this.entry(ns);
    this.guardHost(ns);
    await this.locked(ns, async () => {
      const { rules } = readRuleset(await this.list(ns, ctx));
      const r = rules.find((x) => isManagedTable(x) && parseComment(x.comment)?.id === id);
      if (!r) throw notFound(ns, id);
      await this.apply(ns, [deleteRuleCommand(r.chain, r.handle)], ctx);
      this.changed(ns, change, id);
    });
  }

  /** The rule just made, from a fresh listing (its handle, position, counters). */
  private async findAfter<T extends { id: string }>(ns: string, id: string, ctx: OpContext, pick: (fw: Firewall) => T[]): Promise<T> {
    const made = pick(this.view(ns, await this.list(ns, { ...ctx, continues: true }))).find((x) => x.id === id);
    if (!made) throw new AppError('INTERNAL', `firewall rule ${id} was added but is not listed`);
    return made;
  }

  private freshId(prefix: 'fw' | 'nat', rules: readonly ListedRule[]): string {
    const taken = new Set(rules.map((r) => parseComment(r.comment)?.id));
    for (;;) {
      const id = newId(prefix);
      if (!taken.has(id)) return id;
    }
  }

  private async list(ns: string, ctx?: OpContext): Promise<readonly NftCommand[]> {
    this.guardAvailable();
    return (await this.ex.run({ kind: 'nft.list', ns }, ctx)).ruleset;
  }

  /**
   * One transaction. A managed change nft refuses is FIREWALL_CHANGE_REFUSED (422: the request
   * was valid, the namespace's ruleset did not take it — e.g. an expert PUT made `input` a
   * regular chain); an expert document refused stays FIREWALL_RULESET_INVALID (400).
   */
  private async apply(ns: string, commands: NftCommand[], ctx: OpContext, expert = false, check = expert): Promise<void> {
    this.guardAvailable();
    try {
      await this.ex.run({ kind: 'nft.apply', ns, commands, ...(check ? { check: true } : {}) }, ctx);
    } catch (e) {
      if (!isAppError(e) || e.code !== 'FIREWALL_RULESET_INVALID') throw e;
      // nft's complaints as problem `errors`: the field is the command nft names, in the body of
      // an expert PUT (whose element N is command N + 1, after our `flush ruleset`).
      const errors = ((e.meta?.errors ?? []) as NftError[]).map((x) => {
        const { command, ...rest } = x;
        const index = command === undefined ? undefined : command - 1;
        return { field: expert && index !== undefined && index >= 0 ? `body.nftables[${index}]` : 'body', ...rest, ...(expert && index !== undefined && index >= 0 ? { command: index } : {}) };
      });
      if (!expert) throw new AppError('FIREWALL_CHANGE_REFUSED', `nft refused the change in namespace '${ns}'; nothing was changed`, { cause: e, meta: { errors } });
      throw new AppError('FIREWALL_RULESET_INVALID', `nft refused the ruleset; nothing was changed: ${errors.map((x) => x.message).join('; ')}`, { cause: e, meta: { errors } });
    }
  }

  /** Runs fn after every earlier change of ns has settled. */
  private locked<T>(ns: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(ns) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(ns, tail);
    void tail.then(() => {
      if (this.locks.get(ns) === tail) this.locks.delete(ns);
    });
    return run;
  }

  private view(ns: string, ruleset: readonly NftCommand[]): Firewall {
    const { chains, rules } = readRuleset(ruleset);
    const managed = rules.filter(isManagedTable);
    const out: Firewall = { namespace: ns, ruleset: { nftables: ruleset as NftRuleset['nftables'] }, policy: policyOf(chains), rules: [], nat: [] };
    const positions = new Map<string, number>();
    for (const r of managed) {
      const position = positions.get(r.chain) ?? 0;
      positions.set(r.chain, position + 1);
      const tag = parseComment(r.comment);
      if (!tag) continue;
      const f = readFields(r);
      const counters = counterOf(r) ?? { packets: 0, bytes: 0 };
      const common = {
        id: tag.id, namespace: ns, chain: r.chain, protocol: f.protocol ?? null, source: f.source ?? null, destination: f.destination ?? null,
        dport: f.dport ?? null, iif: f.iif ?? null, oif: f.oif ?? null, comment: tag.comment, counters, handle: r.handle,
      };
      if (tag.id.startsWith('fw-')) {
        out.rules.push({ ...common, action: f.action ?? null, sport: f.sport ?? null, state: f.state ?? null, position });
      } else {
        out.nat.push({ ...common, type: f.nat?.type ?? null, to: f.nat?.to ?? null });
      }
    }
    return out;
  }

  private guardHost(ns: string): void {
    if (ns === HOST && !this.hostAllowChanges) {
      throw new AppError('HOST_PROTECTED', "The firewall of host guards the whole machine: netnsd does not change it (set host.allowChanges to allow it)");
    }
  }

  private guardAvailable(): void {
    const a = this.available();
    if (!a.ok) throw new AppError('FIREWALL_UNAVAILABLE', `nftables does not work on this machine: ${a.reason ?? 'see GET /v1/capabilities'}`);
  }

  private async entry(ns: string): Promise<void> {
    await existingNamespace(this.dir, ns);
  }
}

/** The managed rule (filter or NAT) with this id, or FIREWALL_RULE_NOT_FOUND. */
function byId<T extends { readonly id: string }>(rules: readonly T[], ns: string, id: string): T {
  const r = rules.find((x) => x.id === id);
  if (!r) throw notFound(ns, id);
  return r;
}

function notFound(ns: string, id: string): AppError {
  return new AppError('FIREWALL_RULE_NOT_FOUND', `There is no managed firewall rule '${id}' in namespace '${ns}'`);
}

/** The policies of netnsd's filter chains; a chain that does not exist lets everything through. */
function policyOf(chains: ReturnType<typeof readRuleset>['chains']): FirewallPolicy {
  const of = (c: FilterChain): 'accept' | 'drop' => (chains.find((x) => isManagedTable(x) && x.name === c)?.policy === 'drop' ? 'drop' : 'accept');
  return { input: of('input'), forward: of('forward'), output: of('output') };
}

type Errors = Array<{ field: string; message: string }>;

interface MatchBody {
  readonly protocol?: Protocol | undefined;
  readonly source?: string | undefined;
  readonly destination?: string | undefined;
  readonly sport?: number | string | undefined;
  readonly dport?: number | string | undefined;
  readonly iif?: string | undefined;
  readonly oif?: string | undefined;
  readonly state?: readonly CtState[] | undefined;
  readonly comment?: string | undefined;
}

/** An address or a CIDR with host bits clear, canonical (a /32 or /128 becomes the address). */
function address(v: string, field: string, errors: Errors): { text: string; family: Family } | undefined {
  const p = v.includes('/') ? parsePrefix(v) : parsePrefix(`${v}/${parseIp(v)?.family === 6 ? 128 : 32}`);
  if (typeof p === 'string') {
    errors.push({ field, message: p === 'is not an IPv4 or IPv6 address' ? 'is not an address or a CIDR' : p });
    return undefined;
  }
  if (networkOf(p).value !== p.value) {
    errors.push({ field, message: `has host bits set: did you mean ${formatPrefix(networkOf(p))}?` });
    return undefined;
  }
  const full = p.prefixLength === (p.family === 4 ? 32 : 128);
  const text = formatPrefix(p);
  return { text: full ? text.slice(0, text.indexOf('/')) : text, family: p.family };
}

/** Checks the match fields every rule shares (every failing field listed). */
function checkMatches(body: MatchBody, what: 'filter' | 'nat', errors: Errors = [], done = true): Matches {
  const err = (field: string, message: string): void => void errors.push({ field: `body.${field}`, message });
  const src = body.source === undefined ? undefined : address(body.source, 'body.source', errors);
  const dst = body.destination === undefined ? undefined : address(body.destination, 'body.destination', errors);
  if (src && dst && src.family !== dst.family) err('destination', `must be an IPv${src.family} address or CIDR like source`);
  const family = src?.family ?? dst?.family;
  if (body.protocol === 'icmp' && family === 6) err('protocol', 'icmp is IPv4: use icmpv6 with IPv6 addresses');
  if (body.protocol === 'icmpv6' && family === 4) err('protocol', 'icmpv6 is IPv6: use icmp with IPv4 addresses');
  for (const f of ['sport', 'dport'] as const) {
    const v = body[f];
    if (v === undefined) continue;
    if (body.protocol !== 'tcp' && body.protocol !== 'udp') err(f, 'needs protocol tcp or udp');
    if (typeof v === 'string') {
      const [a, b] = v.split('-').map(Number) as [number, number];
      if (a < 1 || b > 65535 || a > b) err(f, 'must be a range START-END of ports 1-65535 with START <= END');
    }
  }
  if (body.comment !== undefined && Buffer.byteLength(body.comment, 'utf8') > MAX_COMMENT_BYTES) err('comment', `must be at most ${MAX_COMMENT_BYTES} bytes in UTF-8`);
  if (what === 'filter' && done && errors.length > 0) throw invalidFields(errors);
  return {
    ...(body.protocol === undefined ? {} : { protocol: body.protocol }),
    ...(src ? { source: src.text } : {}),
    ...(dst ? { destination: dst.text } : {}),
    ...(family === undefined ? {} : { family }),
    ...(body.sport === undefined ? {} : { sport: body.sport }),
    ...(body.dport === undefined ? {} : { dport: body.dport }),
    ...(body.iif === undefined ? {} : { iif: body.iif }),
    ...(body.oif === undefined ? {} : { oif: body.oif }),
    ...(body.state === undefined ? {} : { state: body.state }),
  };
}

/** `ADDR`, `ADDR:PORT` or `[V6]:PORT`. */
function parseTo(v: string): { address: string; family: 4 | 6; port?: number } | string {
  const bracket = /^\[([^\]]+)\]:(\d{1,5})$/.exec(v);
  const v4port = /^([0-9.]+):(\d{1,5})$/.exec(v);
  const [host, port] = bracket ? [bracket[1]!, bracket[2]] : v4port ? [v4port[1]!, v4port[2]] : [v, undefined];
  const ip = parseIp(host);
  if (!ip) return 'must be an address, ADDRESS:PORT or [IPV6]:PORT';
  const n = port === undefined ? undefined : Number(port);
  if (n !== undefined && (n < 1 || n > 65535)) return 'has a port outside 1-65535';
  return { address: host, family: ip.family, ...(n === undefined ? {} : { port: n }) };
}

/** Checks a NAT body: what each type needs and takes (every failing field listed). */
function checkNat(body: NatRuleCreate): NatSpec {
  const errors: Errors = [];
  const err = (field: string, message: string): void => void errors.push({ field: `body.${field}`, message });
  const m = checkMatches(body, 'nat', errors, false);
  const to = body.to === undefined ? undefined : parseTo(body.to);
  if (typeof to === 'string') err('to', to);
  const target = typeof to === 'object' ? to : undefined;
  switch (body.type) {
    case 'masquerade':
      if (body.oif === undefined) err('oif', 'is required by masquerade (the link whose address packets leaving by it get)');
      if (body.to !== undefined) err('to', 'is not taken by masquerade (it uses the address of the outgoing link)');
      if (body.iif !== undefined) err('iif', 'is not taken by masquerade (postrouting knows no input link)');
      break;
    case 'snat':
      if (body.to === undefined) err('to', 'is required by snat');
      if (body.iif !== undefined) err('iif', 'is not taken by snat (postrouting knows no input link)');
      break;
    case 'dnat':
      if (body.protocol === undefined) err('protocol', 'is required by dnat');
      if (body.dport === undefined) err('dport', 'is required by dnat');
      if (body.to === undefined) err('to', 'is required by dnat');
      if (body.oif !== undefined) err('oif', 'is not taken by dnat (prerouting comes before the route is chosen)');
      break;
  }
  if (target?.port !== undefined && body.protocol === undefined) err('to', 'a port needs protocol tcp or udp');
  if (target && m.family !== undefined && target.family !== m.family) err('to', `must be an IPv${m.family} address like source/destination`);
  if (errors.length > 0) throw invalidFields(errors);
  return { ...m, type: body.type, ...(target ? { to: target } : {}) };
}
