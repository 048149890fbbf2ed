/**
 * IP addresses and prefixes, parsed rather than pattern-matched: an address is its family and its
 * value (a bigint of 32 or 128 bits), so that two spellings of one IPv6 address compare equal and
 * prefix arithmetic (network, broadcast, overlap) is exact. No zone ids (`%eth0`), no IPv4 forms
 * other than dotted quad (Node's isIP refuses leading zeros and short forms).
 */
import { isIP } from 'node:net';

export type Family = 4 | 6;

export interface IpAddress {
  readonly family: Family;
  readonly value: bigint;
}

export interface IpPrefix extends IpAddress {
  readonly prefixLength: number;
}

export const bitsOf = (family: Family): number => (family === 4 ? 32 : 128);

/** The address, or undefined when `s` is not a plain IPv4 or IPv6 address. */
export function parseIp(s: string): IpAddress | undefined {
  if (s.includes('%')) return undefined;
  const family = isIP(s);
  if (family === 4) {
    // In a number first, one BigInt at the end: BigInt arithmetic allocates at every step.
    const o = s.split('.');
    return { family: 4, value: BigInt(Number(o[0]) * 0x1000000 + Number(o[1]) * 0x10000 + Number(o[2]) * 0x100 + Number(o[3])) };
  }
  if (family !== 6) return undefined;
  let text = s.toLowerCase();
  // An embedded IPv4 tail (`::ffff:1.2.3.4`) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const n = parseIp(v4[1]);
    if (!n) return undefined;
    text = text.slice(0, -v4[1].length) + `${(n.value >> 16n).toString(16)}:${(n.value & 0xffffn).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) return undefined;
  return { family: 6, value: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

/** The text form: dotted quad, or RFC 5952 (lowercase, longest zero run compressed) as iproute2 prints it. */
export function formatIp(a: IpAddress): string {
  if (a.family === 4) {
    const n = Number(a.value);
    return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
  }
  const groups = [...Array(8).keys()].map((i) => Number((a.value >> BigInt((7 - i) * 16)) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** `ADDR/LEN` with an explicit length in range, else a reason (for a field-level 400). */
export function parsePrefix(s: string): IpPrefix | string {
  const slash = s.indexOf('/');
  if (slash < 0) return 'must be an address with a prefix length, e.g. 203.0.113.1/24 or 2001:db8::1/64';
  const addr = parseIp(s.slice(0, slash));
  if (!addr) return 'is not an IPv4 or IPv6 address';
  const len = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(len)) return 'has a prefix length that is not a number';
  const prefixLength = Number(len);
  if (prefixLength > bitsOf(addr.family)) return `has a prefix length out of range (0-${bitsOf(addr.family)} for IPv${addr.family})`;
  return { ...addr, prefixLength };
}

const mask = (family: Family, len: number): bigint => {
  const bits = BigInt(bitsOf(family));
  return ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(len))) - 1n);
};

/** The prefix's network address (host bits cleared). */
export function networkOf(p: IpPrefix): IpPrefix {
  return { family: p.family, value: p.value & mask(p.family, p.prefixLength), prefixLength: p.prefixLength };
}

/** The IPv4 broadcast address of the prefix. */
export function broadcastOf(p: IpPrefix): bigint {
  return p.value | (((1n << 32n) - 1n) ^ mask(4, p.prefixLength));
}

/** Whether two prefixes share any address (one contains the other). */
export function overlaps(a: IpPrefix, b: IpPrefix): boolean {
  if (a.family !== b.family) return false;
  const len = Math.min(a.prefixLength, b.prefixLength);
  return (a.value & mask(a.family, len)) === (b.value & mask(b.family, len));
}

export function formatPrefix(p: IpPrefix): string {
  return `${formatIp(p)}/${p.prefixLength}`;
}

export function sameIp(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.value === b.value;
}

export function isMulticast(a: IpAddress): boolean {
  return a.family === 4 ? a.value >> 28n === 0xen : a.value >> 120n === 0xffn;
}
