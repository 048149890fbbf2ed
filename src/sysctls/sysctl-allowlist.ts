/**
 * The per-namespace `net.*` settings netnsd reads and writes, and the values each takes. Keys are
 * sysctl(8) names; a per-link key names the link as sysctl(8) does, with a `.` in the link name
 * written as `/` (`net.ipv4.conf.eth0/100.rp_filter`). Everything else is refused: a namespace's
 * sysctls are its security boundary too.
 */

export interface SysctlRule {
  readonly min: number;
  readonly max: number;
  readonly description: string;
}

/** Namespace-wide keys. */
export const GLOBAL_SYSCTLS: Readonly<Record<string, SysctlRule>> = {
  'net.ipv4.ip_forward': { min: 0, max: 1, description: 'Forward IPv4 between links (a router).' },
  'net.ipv4.ip_nonlocal_bind': { min: 0, max: 1, description: 'Allow binding to addresses not on any link.' },
  'net.ipv4.icmp_echo_ignore_all': { min: 0, max: 1, description: 'Ignore every ICMP echo request.' },
  'net.ipv4.icmp_echo_ignore_broadcasts': { min: 0, max: 1, description: 'Ignore broadcast ICMP echo requests.' },
  'net.ipv6.ip_nonlocal_bind': { min: 0, max: 1, description: 'Allow binding to IPv6 addresses not on any link.' },
};

/** Keys of `net.ipv4.conf.X.` with X = `all`, `default` or a link. */
export const IPV4_CONF_SYSCTLS: Readonly<Record<string, SysctlRule>> = {
  forwarding: { min: 0, max: 1, description: 'Forward IPv4 on this link.' },
  rp_filter: { min: 0, max: 2, description: 'Reverse-path filter: 0 off, 1 strict, 2 loose.' },
  proxy_arp: { min: 0, max: 1, description: 'Answer ARP for addresses routed elsewhere.' },
  arp_ignore: { min: 0, max: 8, description: 'Which ARP requests to answer (see ip-sysctl.rst).' },
  arp_announce: { min: 0, max: 2, description: 'Which source address ARP requests use.' },
  arp_filter: { min: 0, max: 1, description: 'Answer ARP only on the link the route points to.' },
  accept_redirects: { min: 0, max: 1, description: 'Accept ICMP redirects.' },
  send_redirects: { min: 0, max: 1, description: 'Send ICMP redirects.' },
  accept_local: { min: 0, max: 1, description: 'Accept packets with a local source address.' },
  route_localnet: { min: 0, max: 1, description: 'Route 127.0.0.0/8 on this link.' },
  log_martians: { min: 0, max: 1, description: 'Log packets with impossible addresses.' },
};

/** Keys of `net.ipv6.conf.X.` with X = `all`, `default` or a link. */
export const IPV6_CONF_SYSCTLS: Readonly<Record<string, SysctlRule>> = {
  forwarding: { min: 0, max: 1, description: 'Forward IPv6 (on `all`: be a router).' },
  accept_ra: { min: 0, max: 2, description: 'Accept router advertisements: 0 no, 1 unless forwarding, 2 always.' },
  autoconf: { min: 0, max: 1, description: 'Make addresses from router advertisements (SLAAC).' },
  accept_dad: { min: 0, max: 2, description: 'Duplicate address detection: 0 off, 1 on, 2 on and disable IPv6 on a duplicate.' },
  disable_ipv6: { min: 0, max: 1, description: 'Turn IPv6 off.' },
  proxy_ndp: { min: 0, max: 1, description: 'Answer neighbour solicitations for proxied addresses.' },
  accept_redirects: { min: 0, max: 1, description: 'Accept ICMPv6 redirects.' },
};

export interface ResolvedKey {
  /** The sysctl(8) name as given. */
  readonly key: string;
  /** The path under /proc/sys/net. */
  readonly path: string;
  readonly rule: SysctlRule;
  /** The link a per-link key names (`all`/`default` are not links), or null. */
  readonly link: string | null;
}

const CONF_RE = /^net\.(ipv4|ipv6)\.conf\.([A-Za-z0-9_/-]{1,15})\.([a-z0-9_]+)$/;

/** Resolves a sysctl name against the allowlist; null when it is not allowed. */
export function resolveSysctl(key: string): ResolvedKey | null {
  const global = GLOBAL_SYSCTLS[key];
  if (global) return { key, path: key.slice('net.'.length).replaceAll('.', '/'), rule: global, link: null };
  const m = CONF_RE.exec(key);
  if (!m) return null;
  const [, family, slashed, param] = m as unknown as [string, 'ipv4' | 'ipv6', string, string];
  const rule = (family === 'ipv4' ? IPV4_CONF_SYSCTLS : IPV6_CONF_SYSCTLS)[param];
  if (!rule) return null;
  const dev = slashed.replaceAll('/', '.');
  if (dev === '.' || dev === '..' || dev.startsWith('-')) return null;
  return { key, path: `${family}/conf/${dev}/${param}`, rule, link: dev === 'all' || dev === 'default' ? null : dev };
}

/** Every allowed key of a namespace whose links are `links`. */
export function allKeys(links: readonly string[]): string[] {
  const conf = (family: string, params: Readonly<Record<string, SysctlRule>>) =>
    ['all', 'default', ...links.map((l) => l.replaceAll('.', '/'))].flatMap((dev) => Object.keys(params).map((p) => `net.${family}.conf.${dev}.${p}`));
  return [...Object.keys(GLOBAL_SYSCTLS), ...conf('ipv4', IPV4_CONF_SYSCTLS), ...conf('ipv6', IPV6_CONF_SYSCTLS)];
}
