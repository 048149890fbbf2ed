/**
 * The names iproute2 prints for numbers (lib/rt_names.c, iproute2 6.1): route protocols, scopes,
 * DS fields, realms, interface groups, and IP protocols (getprotobynumber). iproute2 reads them
 * from /etc/iproute2 (and /etc/protocols) over built-in defaults; netnsd does the same, so that a
 * netlink dump names things exactly as `ip -j` does on the same machine.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface IpNames {
  /** rtnl_rtprot_n2a: `kernel`, `boot`, `static`, ... or the number. */
  protocol(id: number): string;
  /** rtnl_rtscope_n2a: `global`, `link`, `host`, ... or the number. */
  scope(id: number): string;
  /** rtnl_dsfield_n2a: a name from rt_dsfield, else `0x%02x`. */
  dsfield(id: number): string;
  /** rtnl_rtrealm_n2a: a name from rt_realms, else the number. */
  realm(id: number): string;
  /** rtnl_group_n2a: a name from `group`, else the (signed) number. */
  group(id: number): string;
  /** inet_proto_n2a: the /etc/protocols name, else `ipproto-N`. */
  ipproto(id: number): string;
}

const BUILTIN_PROTOCOLS: Record<number, string> = {
  0: 'unspec', 1: 'redirect', 2: 'kernel', 3: 'boot', 4: 'static', 8: 'gated', 9: 'ra', 10: 'mrt', 11: 'zebra', 12: 'bird', 13: 'dnrouted',
  14: 'xorp', 15: 'ntk', 16: 'dhcp', 18: 'keepalived', 42: 'babel', 186: 'bgp', 187: 'isis', 188: 'ospf', 189: 'rip', 192: 'eigrp',
};
const BUILTIN_SCOPES: Record<number, string> = { 0: 'global', 255: 'nowhere', 254: 'host', 253: 'link', 200: 'site' };
const BUILTIN_REALMS: Record<number, string> = { 0: 'unknown' };
const BUILTIN_GROUPS: Record<number, string> = { 0: 'default' };
/** What getprotobynumber answers from a stock /etc/protocols, for the protocols rules use. */
const BUILTIN_IPPROTOS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'ipv6-icmp', 132: 'sctp' };

/** Tables of the built-in names only (no files): for tests and machines without /etc/iproute2. */
export interface NameTables {
  readonly protocols: ReadonlyMap<number, string>;
  readonly scopes: ReadonlyMap<number, string>;
  readonly dsfields: ReadonlyMap<number, string>;
  readonly realms: ReadonlyMap<number, string>;
  readonly groups: ReadonlyMap<number, string>;
  readonly ipprotos: ReadonlyMap<number, string>;
}

const mapOf = (r: Record<number, string>): Map<number, string> => new Map(Object.entries(r).map(([k, v]) => [Number(k), v]));

export function namesFrom(t: NameTables): IpNames {
  const num = (id: number): string => String(id);
  return {
    protocol: (id) => t.protocols.get(id) ?? num(id),
    scope: (id) => t.scopes.get(id) ?? num(id),
    dsfield: (id) => t.dsfields.get(id) ?? `0x${id.toString(16).padStart(2, '0')}`,
    realm: (id) => t.realms.get(id) ?? num(id),
    group: (id) => t.groups.get(id) ?? String(id | 0),
    ipproto: (id) => t.ipprotos.get(id) ?? `ipproto-${id}`,
  };
}

/** iproute2's built-in names, as if /etc/iproute2 and /etc/protocols were empty. */
export const BUILTIN_NAMES: IpNames = namesFrom({
  protocols: mapOf(BUILTIN_PROTOCOLS), scopes: mapOf(BUILTIN_SCOPES), dsfields: new Map(), realms: mapOf(BUILTIN_REALMS),
  groups: mapOf(BUILTIN_GROUPS), ipprotos: mapOf(BUILTIN_IPPROTOS),
});

/**
 * One iproute2 table file (`ID NAME` per line, `#` comments, ID decimal or 0x hex) read over
 * `into`, as rtnl_tab_initialize does: a later line for an id replaces an earlier one.
 */
export function readTable(text: string, into: Map<number, string>, max = 255): void {
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^(0x[0-9a-fA-F]+|\d+)\s+(\S+)/.exec(line);
    if (!m?.[1] || !m[2]) continue;
    const id = m[1].startsWith('0x') ? parseInt(m[1], 16) : Number(m[1]);
    if (id >= 0 && id <= max) into.set(id, m[2]);
  }
}

function readIf(path: string, into: Map<number, string>, max?: number): void {
  try {
    readTable(readFileSync(path, 'utf8'), into, max);
  } catch {
    // missing file: the built-in names stand, as in iproute2
  }
}

/** `NAME NUMBER ...` lines of /etc/protocols; the first name of a number wins, as in getprotobynumber. */
export function readProtocols(text: string, into: Map<number, string>): void {
  const seen = new Set<number>();
  for (const raw of text.split('\n')) {
    const m = /^([A-Za-z0-9._+-]+)\s+(\d+)/.exec(raw.replace(/#.*/, '').trim());
    if (!m?.[1] || !m[2]) continue;
    const id = Number(m[2]);
    if (seen.has(id)) continue;
    seen.add(id);
    into.set(id, m[1]);
  }
}

/** The names iproute2 6.1 would print on this machine (files under `etc`, default /etc). */
export function systemNames(etc = '/etc'): IpNames {
  const dir = join(etc, 'iproute2');
  const protocols = mapOf(BUILTIN_PROTOCOLS);
  readIf(join(dir, 'rt_protos'), protocols);
  try {
    for (const f of readdirSync(join(dir, 'rt_protos.d')).filter((n) => n.endsWith('.conf')).sort()) readIf(join(dir, 'rt_protos.d', f), protocols);
  } catch {
    // no rt_protos.d
  }
  const scopes = mapOf(BUILTIN_SCOPES);
  readIf(join(dir, 'rt_scopes'), scopes);
  const dsfields = new Map<number, string>();
  readIf(join(dir, 'rt_dsfield'), dsfields);
  const realms = mapOf(BUILTIN_REALMS);
  readIf(join(dir, 'rt_realms'), realms);
  const groups = mapOf(BUILTIN_GROUPS);
  readIf(join(dir, 'group'), groups, 0x7fffffff);
  const ipprotos = new Map<number, string>();
  try {
    readProtocols(readFileSync(join(etc, 'protocols'), 'utf8'), ipprotos);
  } catch {
    for (const [k, v] of mapOf(BUILTIN_IPPROTOS)) ipprotos.set(k, v);
  }
  return namesFrom({ protocols, scopes, dsfields, realms, groups, ipprotos });
}

let system: IpNames | undefined;
/** systemNames(), read once. */
export function defaultNames(): IpNames {
  system ??= systemNames();
  return system;
}
