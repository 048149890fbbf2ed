/**
 * The change requests of src/netlink/changes.ts against the requests iproute2 6.1 sent for the
 * same ops (the commands argv.ts writes for them), recorded by scripts/record-netlink-changes.ts
 * with the ifindexes of the recording namespace.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandsFor } from '../../src/executor/argv.js';
import { classify, classifyMissingLink, classifyNetlink, ipStderrOf } from '../../src/executor/classify.js';
import type { Op } from '../../src/executor/ops.js';
import { changeRequest, ifindexOf, ipBytes, linkGetRequest, linkNamesOf, type NetlinkChangeOp } from '../../src/netlink/changes.js';
import * as M from '../../src/netlink/messages.js';
import { NetlinkError } from '../../src/netlink/parse.js';

type NetlinkAnswer = { readonly missingLink: string } | { readonly code: string; readonly errno: number; readonly extack: string | null };
interface Recorded {
  readonly links: Readonly<Record<string, number>>;
  readonly cases: ReadonlyArray<{ readonly name: string; readonly op: NetlinkChangeOp; readonly argv: readonly string[]; readonly request: string; readonly peerNsFd?: number }>;
  readonly refusals: ReadonlyArray<{ readonly name: string; readonly op: NetlinkChangeOp; readonly stderr: string; readonly netlink: NetlinkAnswer }>;
}
const recorded = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'netlink', 'changes.json'), 'utf8')) as Recorded;
const ifindex = (name: string): number => {
  const i = recorded.links[name];
  if (i === undefined) throw new Error(`no link ${name}`);
  return i;
};
/** The sequence number zeroed (ip's is the time). */
const unsequenced = (b: Buffer): string => {
  const c = Buffer.from(b);
  c.writeUInt32LE(0, 8);
  return c.toString('hex');
};

describe('change requests', () => {
  it.each(recorded.cases.map((c) => [c.name, c] as const))('%s: the bytes ip sends', (_name, c) => {
    const op = c.op;
    // The fixture's op still maps to the command that was recorded.
    expect(['ip', ...(commandsFor(op)[0]?.args ?? [])]).toEqual(c.argv);
    // ip's fd for the peer's namespace file stands in for ours.
    const nsFd = (ns: string): number => {
      if (ns !== 'PEER' || c.peerNsFd === undefined) throw new Error(`no fd for ${ns}`);
      return c.peerNsFd;
    };
    expect(unsequenced(changeRequest(op, 77, { ifindex, nsFd }))).toBe(unsequenced(Buffer.from(c.request, 'hex')));
  });

  it('puts the sequence number in the header', () => {
    const c = recorded.cases[0];
    expect(changeRequest({ ...c!.op, ns: 'a' } as NetlinkChangeOp, 0x01020304, { ifindex, nsFd: () => 9 }).readUInt32LE(8)).toBe(0x01020304);
  });

  it('looks up every link an op names, in ip\'s order', () => {
    expect(linkNamesOf({ kind: 'addr.add', ns: 'a', spec: { link: 'va', family: 4, local: '203.0.113.1', prefixLength: 24 } })).toEqual(['va']);
    expect(linkNamesOf({ kind: 'route.add', ns: 'a', spec: { family: 4, type: 'unicast', dst: '198.19.0.0/16', table: 254, dev: 'va', nexthops: [{ dev: 'vb' }, { via: '203.0.113.9' }] } })).toEqual(['va', 'vb']);
    expect(linkNamesOf({ kind: 'route.delete', ns: 'a', key: { family: 6, table: 254, dst: '::/0', metric: 1, tos: null, dev: null } })).toEqual([]);
    expect(linkNamesOf({ kind: 'link.set', ns: 'a', name: 'vb', change: { master: 'br0' } })).toEqual(['vb', 'br0']);
    expect(linkNamesOf({ kind: 'link.set', ns: 'a', name: 'vb', change: { master: null } })).toEqual(['vb']);
  });

  it('asks for one link by name as ip does (acked, no counters), and reads the ifindex of the answer', () => {
    const req = linkGetRequest(5, 'va');
    expect(req.toString('hex')).toBe('30000000120005000500000000000000' + '00000000000000000000000000000000' + '08001d0009000000' + '0700030076610000');
    const reply = Buffer.alloc(M.IFINFOMSG_LEN);
    reply.writeInt32LE(42, 4);
    expect(ifindexOf(reply)).toBe(42);
  });

  it('refuses an address of the wrong family (INTERNAL)', () => {
    expect(() => ipBytes('2001:db8::1', 4)).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(ipBytes('198.51.100.7', 4).toString('hex')).toBe('c6336407');
    expect(ipBytes('2001:db8::1', 6).toString('hex')).toBe('20010db8000000000000000000000001');
  });
});

/** The code each recorded refusal gets, by the errno (and extended-ACK text) the kernel gave. */
const EXPECTED: Readonly<Record<string, string>> = {
  'addr exists v4': 'ADDRESS_EXISTS', // EEXIST
  'addr exists v6': 'ADDRESS_EXISTS', // EEXIST
  'addr link missing': 'LINK_NOT_FOUND', // ENODEV from the name lookup
  'addr scope mismatch': 'ADDRESS_SCOPE_INVALID', // EINVAL "ipv4: Invalid scope value"
  'addr multicast v6': 'REQUEST_INVALID', // EADDRNOTAVAIL "ipv6: Cannot assign multicast address ..."
  'addr delete missing v4': 'ADDRESS_NOT_FOUND', // EADDRNOTAVAIL
  'addr delete missing v6': 'ADDRESS_NOT_FOUND', // EADDRNOTAVAIL
  'route exists': 'ROUTE_EXISTS', // EEXIST
  'route gateway on no link': 'NEXTHOP_UNREACHABLE', // ENETUNREACH "Nexthop has invalid gateway"
  'route gateway on no link v6': 'NEXTHOP_UNREACHABLE', // EHOSTUNREACH
  'route link down': 'NEXTHOP_UNREACHABLE', // ENETDOWN "Device for nexthop is not up"
  'route link missing': 'LINK_NOT_FOUND', // ENODEV from the name lookup
  'route prefsrc invalid': 'ROUTE_SOURCE_INVALID', // EINVAL "Invalid prefsrc address"
  'route host bits': 'REQUEST_INVALID', // EINVAL "Invalid prefix for given prefix length"
  'route delete missing': 'ROUTE_NOT_FOUND', // ESRCH
  'route delete missing v6': 'ROUTE_NOT_FOUND', // ESRCH
  'route delete table missing': 'INTERNAL', // ESRCH "FIB table does not exist": no rule, as for ip
  'link missing': 'LINK_NOT_FOUND', // ENODEV from the name lookup
  'link mtu too big': 'LINK_MTU_INVALID', // EINVAL "mtu greater than device maximum"
  'link mtu too small': 'LINK_MTU_INVALID', // EINVAL "mtu less than device minimum"
  'link mtu above parent': 'LINK_MTU_INVALID', // EINVAL on an mtu change
  'link mac multicast': 'LINK_MAC_INVALID', // EADDRNOTAVAIL on a mac change
  'link mac unsupported': 'LINK_CHANGE_UNSUPPORTED', // EOPNOTSUPP
  'link master not a bridge': 'LINK_MASTER_INVALID', // EOPNOTSUPP on a master change
  'link master itself': 'LINK_MASTER_INVALID', // ELOOP "Can not enslave a bridge to a bridge"
  'link add exists': 'LINK_EXISTS', // EEXIST
  'link add veth peer exists': 'LINK_EXISTS', // EEXIST (the peer's name, in the peer's namespace)
  'link add veth mtu too big': 'LINK_MTU_INVALID', // EINVAL on an add with an mtu
  'link add veth mac multicast': 'LINK_MAC_INVALID', // EADDRNOTAVAIL on an add with a mac
  'link add bridge vlan filtering unsupported': 'LINK_KIND_UNSUPPORTED', // EOPNOTSUPP on an add
};

describe('refusals over netlink, as the kernel gave them (recorded beside ip\'s stderr)', () => {
  it('has an expected code for every recorded refusal', () => {
    expect(recorded.refusals.map((r) => r.name).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(recorded.refusals.map((r) => [r.name, r] as const))('%s: the code ip\'s stderr gets', (name, r) => {
    const op = r.op;
    const viaIp = classify(r.stderr, null, op);
    let viaNetlink;
    if ('missingLink' in r.netlink) {
      expect(r.stderr).toBe(`Cannot find device "${r.netlink.missingLink}"`);
      viaNetlink = classifyMissingLink(r.netlink.missingLink, op, undefined);
    } else {
      const err = new NetlinkError('netlink', r.netlink.code, r.netlink.errno, r.netlink.extack ?? undefined);
      expect(ipStderrOf(err)).toBe(r.stderr);
      viaNetlink = classifyNetlink(err, op);
    }
    expect([viaNetlink.code, viaIp.code]).toEqual([EXPECTED[name], EXPECTED[name]]);
    expect(viaNetlink.detail.startsWith(viaIp.detail)).toBe(true);
  });
});

describe('classifyNetlink', () => {
  const addrAdd: Op = { kind: 'addr.add', ns: 'a', spec: { link: 'va', family: 4, local: '203.0.113.1', prefixLength: 24 } };
  const nlErr = (code: string, errno: number, extack?: string): NetlinkError => new NetlinkError('netlink', code, errno, extack);

  it('renders the extended ACK as ip does, adding the full stop only when it is missing', () => {
    expect(ipStderrOf({ code: 'EINVAL', extack: 'Invalid prefsrc address' })).toBe('Error: Invalid prefsrc address.');
    expect(ipStderrOf({ code: 'EINVAL', extack: 'ends here.' })).toBe('Error: ends here.');
    expect(ipStderrOf({ code: 'EEXIST' })).toBe('RTNETLINK answers: File exists');
    expect(ipStderrOf({ code: 'ENOTSUP' })).toBe(ipStderrOf({ code: 'EOPNOTSUPP' }));
  });

  it('adds the kernel\'s words to the detail, keeps the error as the cause', () => {
    const err = nlErr('EEXIST', 17, 'ipv4: Address already assigned');
    const e = classifyNetlink(err, addrAdd);
    expect(e).toMatchObject({ code: 'ADDRESS_EXISTS', detail: '203.0.113.1/24 on link "va" in namespace "a" exists (the kernel: "ipv4: Address already assigned")' });
    expect(e.cause).toBe(err);
    expect(classifyNetlink(nlErr('EEXIST', 17), addrAdd).detail).toBe('203.0.113.1/24 on link "va" in namespace "a" exists');
  });

  it.each([
    ['EPERM', 1, 'PRIVILEGE_REQUIRED'],
    ['EACCES', 13, 'PRIVILEGE_REQUIRED'],
    ['EBUSY', 16, 'LINK_BUSY'],
    ['EHWPOISON', 133, 'INTERNAL'],
  ])('maps %s on a link change to %s', (code, errno, expected) => {
    expect(classifyNetlink(nlErr(code, errno), { kind: 'link.set', ns: 'a', name: 'va', change: { up: true } }).code).toBe(expected);
  });

  it('names an errno it has no text for, which no rule matches (INTERNAL with the kernel\'s words)', () => {
    expect(ipStderrOf({ code: 'EHWPOISON' })).toBe('RTNETLINK answers: EHWPOISON');
    expect(classifyNetlink(nlErr('EHWPOISON', 133, 'odd'), addrAdd)).toMatchObject({ code: 'INTERNAL', detail: 'addr.add failed (the kernel: "odd")' });
  });

  it('leaves errors that are not the kernel\'s answer to classifyNative (the namespace is gone, a timeout)', () => {
    const errno = (code: string): Error => Object.assign(new Error(code), { code });
    expect(classifyNetlink(errno('ENOENT'), addrAdd).code).toBe('NAMESPACE_NOT_FOUND');
    expect(classifyNetlink(errno('ETIMEDOUT'), addrAdd).code).toBe('EXECUTOR_TIMEOUT');
  });

  it('answers a missing master LINK_MASTER_NOT_FOUND, any other missing link as ip\'s "Cannot find device"', () => {
    expect(classifyMissingLink('br9', { kind: 'link.set', ns: 'a', name: 'va', change: { master: 'br9' } }, undefined).code).toBe('LINK_MASTER_NOT_FOUND');
    expect(classifyMissingLink('va', { kind: 'link.set', ns: 'a', name: 'va', change: { master: 'br9' } }, undefined)).toMatchObject({ code: 'LINK_NOT_FOUND', detail: 'there is no link "va" in namespace "a"' });
    expect(classifyMissingLink('x', { kind: 'route.add', ns: 'a', spec: { family: 4, type: 'unicast', dst: '198.18.0.0/16', table: 254, dev: 'x' } }, undefined).code).toBe('LINK_NOT_FOUND');
  });
});
