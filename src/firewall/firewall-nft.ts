/**
 * netnsd's firewall in nftables JSON (libnftables-json(5), nftables 1.0.6): the commands that
 * build the managed table `inet netnsd` and its rules, and the readers that find those rules (by
 * the id in their comment) and every rule's counter in a listed ruleset. Pure: no I/O.
 *
 * The kernel is the truth: a managed rule is one whose comment starts with `netnsd:ID`, so ids
 * survive a daemon restart, and an expert PUT that keeps a rule keeps its id.
 */
import type { NftCommand } from '../executor/ops.js';

/** The managed table: `inet`, so one rule covers IPv4 and IPv6. */
export const TABLE = { family: 'inet', name: 'netnsd' } as const;

export const FILTER_CHAINS = ['input', 'forward', 'output'] as const;
export type FilterChain = (typeof FILTER_CHAINS)[number];
export const NAT_CHAINS = ['prerouting', 'postrouting'] as const;
export type NatChain = (typeof NAT_CHAINS)[number];
export type ManagedChain = FilterChain | NatChain;

/**
 * The base chains. Filter chains at priority `filter` (0) on the hooks of their name; NAT at
 * `dstnat` (-100) and `srcnat` (100), as nft's own names for them. A new base chain's policy is
 * accept; `add chain` without a policy leaves an existing chain's policy alone (checked, 1.0.6),
 * so ensuring the chains never resets a policy set before.
 */
export const BASE_CHAINS: Record<ManagedChain, { readonly type: 'filter' | 'nat'; readonly prio: number }> = {
  input: { type: 'filter', prio: 0 },
  forward: { type: 'filter', prio: 0 },
  output: { type: 'filter', prio: 0 },
  prerouting: { type: 'nat', prio: -100 },
  postrouting: { type: 'nat', prio: 100 },
};

export const ACTIONS = ['accept', 'drop', 'reject'] as const;
export type Action = (typeof ACTIONS)[number];
export const PROTOCOLS = ['tcp', 'udp', 'icmp', 'icmpv6'] as const;
export type Protocol = (typeof PROTOCOLS)[number];
export const CT_STATES = ['new', 'established', 'related', 'invalid', 'untracked'] as const;
export type CtState = (typeof CT_STATES)[number];
export const NAT_TYPES = ['masquerade', 'snat', 'dnat'] as const;
export type NatType = (typeof NAT_TYPES)[number];

/** A port (`22`) or an inclusive range (`"1000-2000"`), as the client gave it. */
export type PortSpec = number | string;

/** Matches of a rule, already checked by the service (canonical addresses, ports in range). */
export interface Matches {
  readonly protocol?: Protocol;
  /** An address or a CIDR with host bits clear. */
  readonly source?: string;
  readonly destination?: string;
  /** 4 or 6 when source/destination say (they agree). */
  readonly family?: 4 | 6;
  readonly sport?: PortSpec;
  readonly dport?: PortSpec;
  readonly iif?: string;
  readonly oif?: string;
  readonly state?: readonly CtState[];
}

export interface FilterSpec extends Matches {
  readonly chain: FilterChain;
  readonly action: Action;
}

export interface NatSpec extends Matches {
  readonly type: NatType;
  /** snat/dnat: the new address, and port when given. */
  readonly to?: { readonly address: string; readonly family: 4 | 6; readonly port?: number };
}

/** The comment of a managed rule: `netnsd:ID`, then the client's comment after one space. */
export const commentOf = (id: string, comment: string | undefined): string => `netnsd:${id}${comment === undefined || comment === '' ? '' : ` ${comment}`}`;

const MANAGED_COMMENT = /^netnsd:((?:fw|nat)-[a-z0-9]{8})(?: ([\s\S]*))?$/;

/** The id and the client's comment of a managed rule's comment, or undefined for any other. */
export function parseComment(comment: unknown): { id: string; comment: string | null } | undefined {
  if (typeof comment !== 'string') return undefined;
  const m = MANAGED_COMMENT.exec(comment);
  return m ? { id: m[1]!, comment: m[2] ?? null } : undefined;
}

/** nft's name of the IPv6 ICMP protocol. */
const l4Name = (p: Protocol): string => (p === 'icmpv6' ? 'ipv6-icmp' : p);

const match = (left: unknown, right: unknown, op = '=='): NftCommand => ({ match: { op, left, right } });

function portRight(p: PortSpec): unknown {
  if (typeof p === 'number') return p;
  const [a, b] = p.split('-').map(Number);
  return a === b ? a : { range: [a, b] };
}

function addrRight(a: string): unknown {
  const slash = a.indexOf('/');
  if (slash < 0) return a;
  return { prefix: { addr: a.slice(0, slash), len: Number(a.slice(slash + 1)) } };
}

/**
 * The match expressions, in a fixed order. A protocol with ports is said by the port match alone
 * (`tcp dport 22` implies `meta l4proto tcp`: nft would drop the redundant match when listing
 * anyway); links by name (`iifname`), so a rule may name a link that comes later or goes and
 * comes back.
 */
export function matchExprs(m: Matches): NftCommand[] {
  const out: NftCommand[] = [];
  if (m.iif !== undefined) out.push(match({ meta: { key: 'iifname' } }, m.iif));
  if (m.oif !== undefined) out.push(match({ meta: { key: 'oifname' } }, m.oif));
  const ipProto = m.family === 6 ? 'ip6' : 'ip';
  if (m.source !== undefined) out.push(match({ payload: { protocol: ipProto, field: 'saddr' } }, addrRight(m.source)));
  if (m.destination !== undefined) out.push(match({ payload: { protocol: ipProto, field: 'daddr' } }, addrRight(m.destination)));
  if (m.protocol !== undefined && m.sport === undefined && m.dport === undefined) out.push(match({ meta: { key: 'l4proto' } }, l4Name(m.protocol)));
  if (m.sport !== undefined) out.push(match({ payload: { protocol: m.protocol, field: 'sport' } }, portRight(m.sport)));
  if (m.dport !== undefined) out.push(match({ payload: { protocol: m.protocol, field: 'dport' } }, portRight(m.dport)));
  if (m.state !== undefined) out.push(match({ ct: { key: 'state' } }, m.state.length === 1 ? m.state[0] : [...m.state], 'in'));
  return out;
}

/**
 * The verdict statement. `reject` in an inet chain: a TCP rule answers with a TCP reset (what a
 * closed port does); anything else with nft's default for inet, ICMP(v6) port unreachable
 * (`icmpx port-unreachable`, each family its own).
 */
export function verdictExpr(action: Action, protocol: Protocol | undefined): NftCommand {
  if (action === 'reject') return { reject: protocol === 'tcp' ? { type: 'tcp reset' } : null };
  return { [action]: null };
}

/** The NAT statement. In an inet table snat/dnat must say the family of the address (`dnat ip to`). */
export function natExpr(s: NatSpec): NftCommand {
  if (s.type === 'masquerade') return { masquerade: null };
  const to = s.to!;
  return { [s.type]: { family: to.family === 6 ? 'ip6' : 'ip', addr: to.address, ...(to.port === undefined ? {} : { port: to.port }) } };
}

export const natChainOf = (type: NatType): NatChain => (type === 'dnat' ? 'prerouting' : 'postrouting');

/** `add table` and `add chain` of each chain named: idempotent, so every change can start with them. */
export function ensureCommands(chains: readonly ManagedChain[]): NftCommand[] {
  return [
    { add: { table: { family: TABLE.family, name: TABLE.name } } },
    ...chains.map((name) => ({
      add: { chain: { family: TABLE.family, table: TABLE.name, name, type: BASE_CHAINS[name].type, hook: name, prio: BASE_CHAINS[name].prio } },
    })),
  ];
}

/** The rule object of an `add`/`insert` command. `before`: insert before the rule of that handle. */
export function ruleCommand(chain: ManagedChain, expr: readonly NftCommand[], comment: string, before?: number): NftCommand {
  const rule = { family: TABLE.family, table: TABLE.name, chain, ...(before === undefined ? {} : { handle: before }), comment, expr: [...expr] };
  return before === undefined ? { add: { rule } } : { insert: { rule } };
}

export function deleteRuleCommand(chain: string, handle: number): NftCommand {
  return { delete: { rule: { family: TABLE.family, table: TABLE.name, chain, handle } } };
}

export function policyCommand(chain: FilterChain, policy: 'accept' | 'drop'): NftCommand {
  return { add: { chain: { family: TABLE.family, table: TABLE.name, name: chain, type: 'filter', hook: chain, prio: 0, policy } } };
}

// --- reading a listed ruleset -----------------------------------------------------------------

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined);

export interface ListedRule {
  readonly family: string;
  readonly table: string;
  readonly chain: string;
  readonly handle: number;
  readonly comment: string | null;
  readonly expr: readonly Obj[];
}

export interface ListedChain {
  readonly family: string;
  readonly table: string;
  readonly name: string;
  readonly hook: string | null;
  readonly type: string | null;
  readonly prio: number | null;
  readonly policy: string | null;
}

/** The chains and rules of a listed ruleset (`nft -j list ruleset`), in listing order. */
export function readRuleset(ruleset: readonly NftCommand[]): { chains: ListedChain[]; rules: ListedRule[]; tables: Array<{ family: string; name: string }> } {
  const chains: ListedChain[] = [];
  const rules: ListedRule[] = [];
  const tables: Array<{ family: string; name: string }> = [];
  const s = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  for (const item of ruleset) {
    const t = obj(item.table);
    if (t && typeof t.family === 'string' && typeof t.name === 'string') tables.push({ family: t.family, name: t.name });
    const c = obj(item.chain);
    if (c && typeof c.family === 'string' && typeof c.table === 'string' && typeof c.name === 'string') {
      chains.push({ family: c.family, table: c.table, name: c.name, hook: s(c.hook), type: s(c.type), prio: typeof c.prio === 'number' ? c.prio : null, policy: s(c.policy) });
    }
    const r = obj(item.rule);
    if (r && typeof r.family === 'string' && typeof r.table === 'string' && typeof r.chain === 'string' && typeof r.handle === 'number') {
      rules.push({
        family: r.family, table: r.table, chain: r.chain, handle: r.handle, comment: s(r.comment),
        expr: Array.isArray(r.expr) ? (r.expr as unknown[]).map((e) => obj(e) ?? {}) : [],
      });
    }
  }
  return { chains, rules, tables };
}

export const isManagedTable = (x: { family: string; table: string }): boolean => x.family === TABLE.family && x.table === TABLE.name;

/** The counter of a rule (the first counter statement), or null without one. */
export function counterOf(r: ListedRule): { packets: number; bytes: number } | null {
  for (const e of r.expr) {
    if (!('counter' in e)) continue;
    const c = obj(e.counter);
    return { packets: typeof c?.packets === 'number' ? c.packets : 0, bytes: typeof c?.bytes === 'number' ? c.bytes : 0 };
  }
  return null;
}

const VERDICTS = ['accept', 'drop', 'reject', 'queue', 'continue', 'return', 'jump', 'goto', 'masquerade', 'snat', 'dnat', 'redirect'];

/** The statement that decides a packet's fate, when the rule ends in one. */
export function verdictOf(r: ListedRule): string | undefined {
  const last = r.expr[r.expr.length - 1];
  return last === undefined ? undefined : VERDICTS.find((v) => v in last);
}

/** What a managed rule's expressions say, as the API's fields (unknown expressions are skipped). */
export interface ReadFields {
  protocol?: Protocol;
  source?: string;
  destination?: string;
  sport?: PortSpec;
  dport?: PortSpec;
  iif?: string;
  oif?: string;
  state?: CtState[];
  action?: Action;
  nat?: { type: NatType; to?: string };
}

function leftKey(left: unknown): string | undefined {
  const l = obj(left);
  const meta = obj(l?.meta);
  if (meta) return `meta.${String(meta.key)}`;
  const p = obj(l?.payload);
  if (p) return `${String(p.protocol)}.${String(p.field)}`;
  const ct = obj(l?.ct);
  if (ct) return `ct.${String(ct.key)}`;
  return undefined;
}

function addrText(right: unknown): string | undefined {
  if (typeof right === 'string') return right;
  const p = obj(obj(right)?.prefix);
  return p ? `${String(p.addr)}/${String(p.len)}` : undefined;
}

function portText(right: unknown): PortSpec | undefined {
  if (typeof right === 'number') return right;
  const r = obj(right)?.range;
  return Array.isArray(r) && r.length === 2 ? `${String(r[0])}-${String(r[1])}` : undefined;
}

/** Reads back the fields matchExprs/verdictExpr/natExpr wrote (nft lists them in the same shapes). */
export function readFields(r: ListedRule): ReadFields {
  const f: ReadFields = {};
  for (const e of r.expr) {
    const m = obj(e.match);
    if (m) {
      const key = leftKey(m.left);
      const right = m.right;
      if (key === 'meta.iifname' && typeof right === 'string') f.iif = right;
      else if (key === 'meta.oifname' && typeof right === 'string') f.oif = right;
      else if (key === 'meta.l4proto' && typeof right === 'string') f.protocol = (right === 'ipv6-icmp' ? 'icmpv6' : right) as Protocol;
      else if (key === 'ip.saddr' || key === 'ip6.saddr') f.source = addrText(right);
      else if (key === 'ip.daddr' || key === 'ip6.daddr') f.destination = addrText(right);
      else if (key !== undefined && /^(tcp|udp)\.(sport|dport)$/.test(key)) {
        const [proto, field] = key.split('.') as ['tcp' | 'udp', 'sport' | 'dport'];
        f.protocol = proto;
        f[field] = portText(right);
      } else if (key === 'ct.state') f.state = (Array.isArray(right) ? right : [right]).filter((x): x is CtState => typeof x === 'string') as CtState[];
      continue;
    }
    if ('accept' in e) f.action = 'accept';
    else if ('drop' in e) f.action = 'drop';
    else if ('reject' in e) f.action = 'reject';
    else if ('masquerade' in e) f.nat = { type: 'masquerade' };
    else if ('snat' in e || 'dnat' in e) {
      const type = 'snat' in e ? 'snat' : 'dnat';
      const n = obj(e[type]);
      const addr = typeof n?.addr === 'string' ? n.addr : undefined;
      const port = typeof n?.port === 'number' ? n.port : undefined;
      const to = addr === undefined ? undefined : port === undefined ? addr : addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
      f.nat = { type, ...(to === undefined ? {} : { to }) };
    }
  }
  return f;
}

// --- a short human form ---------------------------------------------------------------------

function valueText(v: unknown): string {
  if (typeof v === 'string' || typeof v === 'number') return typeof v === 'string' && /[\s"]/.test(v) ? JSON.stringify(v) : String(v);
  if (Array.isArray(v)) return `{ ${v.map(valueText).join(', ')} }`;
  const o = obj(v);
  if (o?.prefix) return addrText(o) ?? '?';
  if (o?.range && Array.isArray(o.range)) return `${valueText(o.range[0])}-${valueText(o.range[1])}`;
  if (o?.set && Array.isArray(o.set)) return `{ ${o.set.map(valueText).join(', ')} }`;
  return JSON.stringify(v);
}

function leftText(left: unknown): string {
  const l = obj(left);
  const meta = obj(l?.meta);
  if (meta) {
    // nft prints these meta keys bare (`iifname "veth0"`), the others as `meta KEY`.
    const k = String(meta.key);
    return ['iifname', 'oifname', 'iif', 'oif', 'mark'].includes(k) ? k : `meta ${k}`;
  }
  const p = obj(l?.payload);
  if (p) return `${String(p.protocol)} ${String(p.field)}`;
  const ct = obj(l?.ct);
  if (ct) return `ct ${String(ct.key)}`;
  return JSON.stringify(left);
}

/** Roughly what `nft list ruleset` prints for the rule (counter left out), for people reading a diagnosis. */
export function ruleText(r: ListedRule): string {
  const parts = r.expr.flatMap((e): string[] => {
    const m = obj(e.match);
    if (m) return [`${leftText(m.left)}${m.op === '==' || m.op === 'in' ? '' : ` ${String(m.op)}`} ${valueText(m.right)}`];
    if ('counter' in e) return [];
    const [k, v] = Object.entries(e)[0] ?? ['?', null];
    if (v === null) return [k];
    const o = obj(v);
    if ((k === 'snat' || k === 'dnat') && o) return [`${k} to ${String(o.addr ?? '')}${o.port === undefined ? '' : `:${String(o.port)}`}`];
    if ((k === 'jump' || k === 'goto') && o) return [`${k} ${String(o.target)}`];
    if (k === 'reject' && o) return [`reject with ${String(o.type)}${o.expr === undefined ? '' : ` ${String(o.expr)}`}`];
    return [`${k} ${JSON.stringify(v)}`];
  });
  const text = parts.join(' ');
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}
