/**
 * The change requests of src/netlink/changes.ts against the requests iproute2 6.1 sent for the
 * same ops (the commands argv.ts writes for them), recorded by scripts/record-netlink-changes.ts
 * with the ifindexes of the recording namespace.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandsFor } from '../../src/executor/argv.js';
import { changeRequest, ifindexOf, ipBytes, linkGetRequest, linkNamesOf, type NetlinkChangeOp } from '../../src/netlink/changes.js';
import * as M from '../../src/netlink/messages.js';

interface Recorded {
  readonly links: Readonly<Record<string, number>>;
  readonly cases: ReadonlyArray<{ readonly name: string; readonly op: NetlinkChangeOp; readonly argv: readonly string[]; readonly request: string }>;
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
    const op = { ...c.op, ns: 'a' } as NetlinkChangeOp;
    // The fixture's op still maps to the command that was recorded.
    expect(['ip', ...(commandsFor(op)[0]?.args ?? [])]).toEqual(c.argv);
    expect(unsequenced(changeRequest(op, 77, ifindex))).toBe(unsequenced(Buffer.from(c.request, 'hex')));
  });

  it('puts the sequence number in the header', () => {
    const c = recorded.cases[0];
    expect(changeRequest({ ...c!.op, ns: 'a' } as NetlinkChangeOp, 0x01020304, ifindex).readUInt32LE(8)).toBe(0x01020304);
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
