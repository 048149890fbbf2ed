/**
 * The per-namespace firewall against the real kernel and nft, through the API only; real traffic
 * (ping, TCP through node itself) proves what the rules do. Namespaces come from nsName() and are
 * removed after each test; listeners are killed after each test. Addresses: 198.51.100.0/24 and
 * 203.0.113.0/24, inside test namespaces only.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ping, until } from '../helpers/kernel.js';
import { adminClient, type RealApp, createNamespaces, startRealApp } from '../helpers/real-app.js';

let r: RealApp;
beforeAll(async () => {
  r = await startRealApp();
});
afterAll(async () => {
  await r?.close();
});

const { api, ok } = adminClient(() => r);
const IP = '/usr/sbin/ip';

const listeners = new Set<ChildProcess>();
afterEach(() => {
  for (const c of listeners) c.kill('SIGKILL');
  listeners.clear();
});

/** A TCP server inside ns (node itself) that answers every connection with `reply` and closes it. */
async function listen(ns: string, port: number, reply: string): Promise<void> {
  const code = `require('net').createServer((s) => s.end(${JSON.stringify(reply)})).listen(${port}, () => console.log('up'))`;
  const child = spawn(IP, ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  listeners.add(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`listener exited (${c})`)));
  });
}

/** What a TCP connection from ns to addr:port reads before the peer closes; null when it fails within 3 s. */
function fetchTcp(ns: string, addr: string, port: number): string | null {
  const code = `const s=require('net').connect(${port},${JSON.stringify(addr)});let d='';s.setTimeout(3000,()=>process.exit(2));s.on('data',(b)=>d+=b);s.on('end',()=>{process.stdout.write(d);process.exit(0)});s.on('error',()=>process.exit(1))`;
  try {
    return execFileSync(IP, ['netns', 'exec', ns, process.execPath, '-e', code], { encoding: 'utf8', timeout: 10_000 });
  } catch {
    return null;
  }
}

/** Two namespaces on one veth: a (198.51.100.1/30) and b (198.51.100.2/30). */
async function pair(): Promise<[string, string]> {
  const [a, b] = (await createNamespaces(r, 'fa', 'fb')) as [string, string];
  await ok('POST', `/v1/namespaces/${a}/links`, { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: b }, up: true });
  await ok('POST', `/v1/namespaces/${a}/addresses`, { link: 'va', address: '198.51.100.1/30' });
  await ok('POST', `/v1/namespaces/${b}/addresses`, { link: 'vb', address: '198.51.100.2/30' });
  return [a, b];
}

/**
 * left --(198.51.100.4/30: .5 | .6)-- router --(198.51.100.8/30: .9 | .10)-- right. The router
 * forwards; left's default route goes through it; right's goes through it only when `rightRoute`.
 */
async function routed(rightRoute: boolean): Promise<[string, string, string]> {
  const [left, router, right] = (await createNamespaces(r, 'fl', 'fr', 'fo')) as [string, string, string];
  await ok('POST', `/v1/namespaces/${left}/links`, { name: 'vl', kind: 'veth', peer: { name: 'rl', namespace: router }, up: true });
  await ok('POST', `/v1/namespaces/${right}/links`, { name: 'vo', kind: 'veth', peer: { name: 'ro', namespace: router }, up: true });
  await ok('POST', `/v1/namespaces/${left}/addresses`, { link: 'vl', address: '198.51.100.5/30' });
  await ok('POST', `/v1/namespaces/${router}/addresses`, { link: 'rl', address: '198.51.100.6/30' });
  await ok('POST', `/v1/namespaces/${router}/addresses`, { link: 'ro', address: '198.51.100.9/30' });
  await ok('POST', `/v1/namespaces/${right}/addresses`, { link: 'vo', address: '198.51.100.10/30' });
  await ok('PATCH', `/v1/namespaces/${router}/sysctls`, { 'net.ipv4.ip_forward': 1 }, 200);
  await ok('POST', `/v1/namespaces/${left}/routes`, { dst: 'default', via: '198.51.100.6' });
  if (rightRoute) await ok('POST', `/v1/namespaces/${right}/routes`, { dst: 'default', via: '198.51.100.9' });
  return [left, router, right];
}

describe('firewall against the real kernel', () => {
  it('a drop rule on input stops ping between two namespaces, its counter moves, and deleting it restores ping', async () => {
    const [a, b] = await pair();
    expect(ping(a, '198.51.100.2')).toBe(true);

    const rule = await ok('POST', `/v1/namespaces/${b}/firewall/rules`, { chain: 'input', action: 'drop', protocol: 'icmp', source: '198.51.100.1', comment: 'no ping from a' });
    expect(rule).toMatchObject({ namespace: b, chain: 'input', action: 'drop', protocol: 'icmp', source: '198.51.100.1', comment: 'no ping from a', position: 0, counters: { packets: 0, bytes: 0 } });
    expect(rule.id).toMatch(/^fw-[a-z0-9]{8}$/);
    // The kernel has it, with the id in its comment.
    expect(execFileSync(IP, ['netns', 'exec', b, '/usr/sbin/nft', 'list', 'table', 'inet', 'netnsd'], { encoding: 'utf8' })).toContain(`comment "netnsd:${rule.id} no ping from a"`);

    expect(ping(a, '198.51.100.2')).toBe(false);
    const fw = await ok('GET', `/v1/namespaces/${b}/firewall`, undefined, 200);
    const listed = fw.rules.find((x: { id: string }) => x.id === rule.id);
    expect(listed.counters.packets).toBeGreaterThanOrEqual(1);
    expect(listed.counters.bytes).toBeGreaterThan(0);
    expect(fw.ruleset.nftables.some((o: Record<string, unknown>) => 'table' in o)).toBe(true);
    const counters = await r.services.firewall.ruleCounters(b);
    expect(counters.find((c) => c.id === rule.id)).toMatchObject({ family: 'inet', table: 'netnsd', chain: 'input', verdict: 'drop', text: 'ip saddr 198.51.100.1 meta l4proto icmp drop' });

    expect((await api('DELETE', `/v1/namespaces/${b}/firewall/rules/${rule.id}`)).status).toBe(204);
    expect(ping(a, '198.51.100.2')).toBe(true);
    expect((await api('DELETE', `/v1/namespaces/${b}/firewall/rules/${rule.id}`)).status).toBe(404);
  });

  it('a drop policy on input stops ping until an accept rule lets it through', async () => {
    const [a, b] = await pair();
    expect(await ok('PUT', `/v1/namespaces/${b}/firewall/policy`, { input: 'drop' }, 200)).toEqual({ input: 'drop', forward: 'accept', output: 'accept' });
    expect(ping(a, '198.51.100.2')).toBe(false);
    await ok('POST', `/v1/namespaces/${b}/firewall/rules`, { chain: 'input', action: 'accept', protocol: 'icmp' });
    expect(ping(a, '198.51.100.2')).toBe(true);
    const policies = await r.services.firewall.chainPolicies(b);
    expect(policies).toContainEqual({ family: 'inet', table: 'netnsd', chain: 'input', hook: 'input', policy: 'drop' });
  });

  it('inserts a rule at a position, and answers 422 FIREWALL_POSITION_INVALID past the end', async () => {
    const [, b] = await pair();
    const first = await ok('POST', `/v1/namespaces/${b}/firewall/rules`, { chain: 'input', action: 'drop', protocol: 'tcp', dport: 22 });
    const top = await ok('POST', `/v1/namespaces/${b}/firewall/rules`, { chain: 'input', action: 'accept', state: ['established', 'related'], position: 0 });
    expect(top.position).toBe(0);
    const rules = (await ok('GET', `/v1/namespaces/${b}/firewall/rules`, undefined, 200)).items;
    expect(rules.map((x: { id: string }) => x.id)).toEqual([top.id, first.id]);
    expect(rules[0].state).toEqual(['established', 'related']);
    expect(rules[1]).toMatchObject({ protocol: 'tcp', dport: 22, position: 1 });
    const res = await api('POST', `/v1/namespaces/${b}/firewall/rules`, { chain: 'input', action: 'drop', position: 3 });
    expect(res.status).toBe(422);
    expect(res.json().code).toBe('FIREWALL_POSITION_INVALID');
  });

  it('a DNAT port forward reaches a TCP listener in another namespace', async () => {
    const [left, router, right] = await routed(true);
    await listen(right, 80, 'hello from right');
    expect(fetchTcp(left, '198.51.100.10', 80)).toBe('hello from right'); // routed, no NAT
    expect(fetchTcp(left, '198.51.100.6', 8080)).toBeNull(); // nothing listens on the router

    const nat = await ok('POST', `/v1/namespaces/${router}/firewall/nat`, { type: 'dnat', protocol: 'tcp', dport: 8080, to: '198.51.100.10:80' });
    expect(nat).toMatchObject({ type: 'dnat', chain: 'prerouting', protocol: 'tcp', dport: 8080, to: '198.51.100.10:80' });
    expect(fetchTcp(left, '198.51.100.6', 8080)).toBe('hello from right');
    const listed = (await ok('GET', `/v1/namespaces/${router}/firewall/nat`, undefined, 200)).items;
    // NAT chains see the first packet of a connection only.
    expect(listed.find((x: { id: string }) => x.id === nat.id).counters.packets).toBe(1);
    expect((await ok('GET', `/v1/namespaces/${router}/firewall/nat/${nat.id}`, undefined, 200)).counters.packets).toBe(1);

    expect((await api('DELETE', `/v1/namespaces/${router}/firewall/nat/${nat.id}`)).status).toBe(204);
    expect(fetchTcp(left, '198.51.100.6', 8080)).toBeNull();
  });

  it('masquerade lets a namespace behind a router namespace reach a third one', async () => {
    const [left, router, right] = await routed(false);
    // right has no route back to 198.51.100.4/30: left's pings get no answer.
    expect(ping(left, '198.51.100.10')).toBe(false);
    const nat = await ok('POST', `/v1/namespaces/${router}/firewall/nat`, { type: 'masquerade', oif: 'ro' });
    expect(nat).toMatchObject({ type: 'masquerade', chain: 'postrouting', oif: 'ro', to: null });
    await until(() => ping(left, '198.51.100.10'), 5000, 'ping through masquerade');
    const listed = (await ok('GET', `/v1/namespaces/${router}/firewall/nat`, undefined, 200)).items;
    expect(listed[0].counters.packets).toBeGreaterThanOrEqual(1);
  });

  it('PUT replaces the whole ruleset: a kept managed rule keeps its id, a dropped one answers 404', async () => {
    const [, b] = await pair();
    const keep = await ok('POST', `/v1/namespaces/${b}/firewall/rules`, { chain: 'input', action: 'drop', protocol: 'udp', dport: 53 });
    const lose = await ok('POST', `/v1/namespaces/${b}/firewall/rules`, { chain: 'input', action: 'drop', protocol: 'tcp', dport: 23 });
    const fw = await ok('GET', `/v1/namespaces/${b}/firewall`, undefined, 200);
    // Everything back but the second rule, plus a table of the client's own.
    const doc = fw.ruleset.nftables.filter((o: { rule?: { comment?: string } }) => !o.rule?.comment?.startsWith(`netnsd:${lose.id}`));
    doc.push({ table: { family: 'ip', name: 'mine' } });
    const replaced = await ok('PUT', `/v1/namespaces/${b}/firewall`, { nftables: doc }, 200);
    expect(replaced.rules.map((x: { id: string }) => x.id)).toEqual([keep.id]);
    expect(replaced.ruleset.nftables.some((o: { table?: { name: string } }) => o.table?.name === 'mine')).toBe(true);
    expect((await api('DELETE', `/v1/namespaces/${b}/firewall/rules/${lose.id}`)).status).toBe(404);
    expect((await api('GET', `/v1/namespaces/${b}/firewall/rules/${keep.id}`)).status).toBe(200);
  });

  it('a bad PUT is 400 FIREWALL_RULESET_INVALID with nft\'s errors, and the ruleset before it stays', async () => {
    const [, b] = await pair();
    const rule = await ok('POST', `/v1/namespaces/${b}/firewall/rules`, { chain: 'input', action: 'drop', protocol: 'icmp' });
    const before = (await ok('GET', `/v1/namespaces/${b}/firewall`, undefined, 200)).ruleset;
    const res = await api('PUT', `/v1/namespaces/${b}/firewall`, {
      nftables: [
        { add: { table: { family: 'inet', name: 'x' } } },
        { add: { rule: { family: 'inet', table: 'x', chain: 'missing', expr: [{ accept: null }] } } },
      ],
    });
    expect(res.status).toBe(400);
    const p = res.json();
    expect(p.code).toBe('FIREWALL_RULESET_INVALID');
    expect(p.errors).toEqual([{ field: 'body', message: 'Could not process rule: No such file or directory' }]);
    const bad = await api('PUT', `/v1/namespaces/${b}/firewall`, { nftables: [{ add: { rule: { family: 'inet', table: 'x', chain: 'c', expr: [{ bogus: null }] } } }] });
    expect(bad.status).toBe(400);
    expect(bad.json().errors).toEqual([{ field: 'body.nftables[0]', message: "Unknown statement object 'bogus'.", command: 0, expr: 0 }]);
    const after = (await ok('GET', `/v1/namespaces/${b}/firewall`, undefined, 200)).ruleset;
    expect(after).toEqual(before);
    expect((await api('GET', `/v1/namespaces/${b}/firewall/rules/${rule.id}`)).status).toBe(200);
  });
});
