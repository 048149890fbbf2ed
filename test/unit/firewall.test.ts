import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { commandsFor, parseNftRuleset, spawnArgv } from '../../src/executor/argv.js';
import { classify, parseNftErrors } from '../../src/executor/classify.js';
import { matchExprs, natExpr, parseComment, readFields, readRuleset, ruleText, verdictExpr } from '../../src/firewall/firewall-nft.js';
import { buildTestApp, expectProblem, type TestApp } from '../helpers/test-app.js';

const json = { 'content-type': 'application/json' };
const stderr = (name: string) => readFileSync(new URL(`../fixtures/stderr/${name}`, import.meta.url), 'utf8');
const apply = { kind: 'nft.apply', ns: 'a', commands: [{ flush: { ruleset: null } }], check: true } as const;

async function setup(o: Parameters<typeof buildTestApp>[0] = {}): Promise<TestApp> {
  const t = await buildTestApp(o);
  expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'a' } })).statusCode).toBe(201);
  return t;
}
const req = (t: TestApp, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, payload?: unknown) =>
  t.app.inject({ method, url: `/v1/namespaces/${path}`, ...(payload === undefined ? {} : { headers: json, payload: payload as object }) });

describe('nft argv and output', () => {
  it('runs nft under ip netns exec, the document on stdin, -c for a check', () => {
    const [cmd] = commandsFor(apply);
    expect(cmd!.args).toEqual(['-j', '-c', '-f', '-']);
    expect(JSON.parse(cmd!.stdin!)).toEqual({ nftables: [{ flush: { ruleset: null } }] });
    expect(spawnArgv(cmd!).slice(1, 4)).toEqual(['netns', 'exec', 'a']);
    expect(commandsFor({ kind: 'nft.list', ns: 'host' })[0]).toEqual({ tool: 'nft', args: ['-j', 'list', 'ruleset'] });
    expect(() => commandsFor({ kind: 'nft.apply', ns: 'a', commands: [] })).toThrow(/empty nft transaction/);
  });

  it('reads a recorded ruleset: chains with policies, rules with handles, counters and managed ids', () => {
    const { chains, rules } = readRuleset(parseNftRuleset(readFileSync(new URL('../fixtures/stdout/nft-ruleset.json', import.meta.url), 'utf8')));
    expect(chains).toContainEqual({ family: 'ip', table: 'other', name: 'fchain', hook: 'forward', type: 'filter', prio: 10, policy: 'drop' });
    const managed = rules.find((r) => parseComment(r.comment)?.id === 'fw-abc');
    expect(managed).toBeUndefined(); // `fw-abc` is not an id of ours (8 characters)
    const a = rules.find((r) => r.comment === 'a')!;
    expect(readFields(a)).toEqual({ protocol: 'tcp', dport: '1000-2000', action: 'reject' });
    expect(ruleText(a)).toBe('tcp dport 1000-2000 reject with tcp reset');
    const e = rules.find((r) => r.comment === 'e')!;
    expect(readFields(e)).toEqual({ protocol: 'tcp', dport: 53, nat: { type: 'dnat', to: '[2001:db8::2]:80' } });
    expect(() => parseNftRuleset('nope')).toThrow(/unexpected nft output/);
  });
});

describe('nft refusals', () => {
  it.each([
    ['nft-chain-missing.txt', [{ message: 'Could not process rule: No such file or directory' }]],
    ['nft-statement-unknown.txt', [{ message: "Unknown statement object 'bogus'.", expr: 0, command: 1 }]],
    ['nft-family-unknown.txt', [{ message: "Unknown family 'foo'.", command: 0 }]],
    ['nft-nftables-missing.txt', [{ message: 'Object item not found: nftables', line: 1, column: 4 }]],
  ])('classifies %s as FIREWALL_RULESET_INVALID with its errors', (file, errors) => {
    const e = classify(stderr(file), 1, apply);
    expect(e.code).toBe('FIREWALL_RULESET_INVALID');
    expect(e.meta?.errors).toEqual(errors);
    expect(parseNftErrors(stderr(file))).toEqual(errors);
  });

  it('classifies a missing namespace and missing privilege', () => {
    expect(classify(stderr('nft-netns-missing.txt'), 255, { kind: 'nft.list', ns: 'a' }).code).toBe('NAMESPACE_NOT_FOUND');
    expect(classify('internal:0:0-0: Error: Could not process rule: Operation not permitted', 1, apply).code).toBe('PRIVILEGE_REQUIRED');
    expect(classify('Error: cache initialization failed: Protocol not supported', 1, apply).code).toBe('FIREWALL_UNAVAILABLE');
  });
});

describe('JSON builders', () => {
  it.each([
    [{ protocol: 'tcp', dport: 22 }, [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 22 } }]],
    [{ protocol: 'udp', sport: '1000-2000' }, [{ match: { op: '==', left: { payload: { protocol: 'udp', field: 'sport' } }, right: { range: [1000, 2000] } } }]],
    [{ protocol: 'icmpv6' }, [{ match: { op: '==', left: { meta: { key: 'l4proto' } }, right: 'ipv6-icmp' } }]],
    [{ source: '2001:db8::/32', family: 6 }, [{ match: { op: '==', left: { payload: { protocol: 'ip6', field: 'saddr' } }, right: { prefix: { addr: '2001:db8::', len: 32 } } } }]],
    [{ iif: 'veth0', state: ['established', 'related'] }, [
      { match: { op: '==', left: { meta: { key: 'iifname' } }, right: 'veth0' } },
      { match: { op: 'in', left: { ct: { key: 'state' } }, right: ['established', 'related'] } },
    ]],
  ] as const)('matches %j as %j', (m, expr) => {
    expect(matchExprs(m as never)).toEqual(expr);
  });

  it('rejects TCP with a reset and anything else with ICMP(x) port unreachable; NAT says the family', () => {
    expect(verdictExpr('reject', 'tcp')).toEqual({ reject: { type: 'tcp reset' } });
    expect(verdictExpr('reject', undefined)).toEqual({ reject: null });
    expect(verdictExpr('drop', 'udp')).toEqual({ drop: null });
    expect(natExpr({ type: 'dnat', to: { address: '198.51.100.2', family: 4, port: 80 } })).toEqual({ dnat: { family: 'ip', addr: '198.51.100.2', port: 80 } });
    expect(natExpr({ type: 'masquerade' })).toEqual({ masquerade: null });
  });
});

describe('firewall endpoints (fake kernel)', () => {
  it('adds, lists, counts and deletes a rule, publishing firewall.changed', async () => {
    const t = await setup();
    const res = await req(t, 'POST', 'a/firewall/rules', { chain: 'input', action: 'drop', protocol: 'icmp', source: '198.51.100.0/24', comment: 'x' });
    expect(res.statusCode, res.body).toBe(201);
    const rule = res.json();
    expect(res.headers.location).toBe(`/v1/namespaces/a/firewall/rules/${rule.id}`);
    expect(rule).toMatchObject({ chain: 'input', action: 'drop', protocol: 'icmp', source: '198.51.100.0/24', comment: 'x', position: 0, counters: { packets: 0, bytes: 0 } });
    t.kernel.countNft('a', rule.handle, 3, 252);
    expect((await req(t, 'GET', `a/firewall/rules/${rule.id}`)).json().counters).toEqual({ packets: 3, bytes: 252 });
    expect(await t.services.firewall.ruleCounters('a')).toEqual([{ family: 'inet', table: 'netnsd', chain: 'input', handle: rule.handle, id: rule.id, verdict: 'drop', text: 'ip saddr 198.51.100.0/24 meta l4proto icmp drop', packets: 3, bytes: 252 }]);
    expect(await t.services.firewall.chainPolicies('a')).toEqual([{ family: 'inet', table: 'netnsd', chain: 'input', hook: 'input', policy: 'accept' }]);
    expect((await req(t, 'DELETE', `a/firewall/rules/${rule.id}`)).statusCode).toBe(204);
    expectProblem(await req(t, 'DELETE', `a/firewall/rules/${rule.id}`), 'FIREWALL_RULE_NOT_FOUND', 404);
    const types = t.services.events.log.read(0, t.services.events.log.lastSeq, 1000).map((e) => [e.type, e.change, e.id]).filter(([type]) => type === 'firewall.changed');
    expect(types).toEqual([['firewall.changed', 'rule.added', rule.id], ['firewall.changed', 'rule.removed', rule.id]]);
  });

  it.each([
    [{ chain: 'input', action: 'drop', dport: 22 }, 'body.dport', /needs protocol tcp or udp/],
    [{ chain: 'input', action: 'drop', protocol: 'icmp', source: '2001:db8::1' }, 'body.protocol', /icmp is IPv4/],
    [{ chain: 'input', action: 'drop', protocol: 'icmpv6', destination: '198.51.100.1' }, 'body.protocol', /icmpv6 is IPv6/],
    [{ chain: 'input', action: 'drop', source: '198.51.100.1/24' }, 'body.source', /host bits set: did you mean 198\.51\.100\.0\/24/],
    [{ chain: 'input', action: 'drop', source: '198.51.100.1', destination: '2001:db8::1' }, 'body.destination', /IPv4/],
    [{ chain: 'input', action: 'drop', source: 'nope' }, 'body.source', /not an address or a CIDR/],
    [{ chain: 'input', action: 'drop', protocol: 'tcp', dport: '30-20' }, 'body.dport', /START <= END/],
    [{ chain: 'input', action: 'drop', comment: 'é'.repeat(60) }, 'body.comment', /at most 100 bytes/],
  ])('refuses %j naming %s', async (body, field, message) => {
    const t = await setup();
    const res = await req(t, 'POST', 'a/firewall/rules', body);
    expectProblem(res, 'REQUEST_INVALID', 400);
    expect(res.json().errors).toContainEqual({ field, message: expect.stringMatching(message) });
    expect(t.kernel.calls.some((c) => c.kind === 'nft.apply')).toBe(false);
  });

  it.each([
    [{ chain: 'input', action: 'drop', protocol: 'tcp', dport: 0 }, 'port 0'],
    [{ chain: 'input', action: 'drop', protocol: 'tcp', dport: 65536 }, 'port 65536'],
    [{ chain: 'nat', action: 'drop' }, 'an unknown chain'],
    [{ chain: 'input', action: 'drop', state: ['weird'] }, 'an unknown state'],
    [{ chain: 'input', action: 'drop', extra: 1 }, 'an unknown field'],
  ])('the schema refuses %j (%s)', async (body, _why) => {
    const t = await setup();
    expectProblem(await req(t, 'POST', 'a/firewall/rules', body), 'REQUEST_INVALID', 400);
  });

  it.each([
    [{ type: 'masquerade' }, 'body.oif', /required by masquerade/],
    [{ type: 'snat', source: '198.51.100.0/24' }, 'body.to', /required by snat/],
    [{ type: 'dnat', to: '198.51.100.2:80' }, 'body.dport', /required by dnat/],
    [{ type: 'dnat', protocol: 'tcp', dport: 80, to: '198.51.100.2:99999' }, 'body.to', /port outside/],
    [{ type: 'snat', source: '2001:db8::/32', to: '198.51.100.1' }, 'body.to', /IPv6/],
    [{ type: 'snat', to: 'nope' }, 'body.to', /ADDRESS:PORT/],
  ])('refuses NAT %j naming %s', async (body, field, message) => {
    const t = await setup();
    const res = await req(t, 'POST', 'a/firewall/nat', body);
    expectProblem(res, 'REQUEST_INVALID', 400);
    expect(res.json().errors).toContainEqual({ field, message: expect.stringMatching(message) });
  });

  it('adds NAT rules to prerouting and postrouting and reads them back', async () => {
    const t = await setup();
    const d = (await req(t, 'POST', 'a/firewall/nat', { type: 'dnat', protocol: 'tcp', dport: 8080, to: '[2001:db8::2]:80' })).json();
    expect(d).toMatchObject({ type: 'dnat', chain: 'prerouting', dport: 8080, to: '[2001:db8::2]:80' });
    const made = await req(t, 'POST', 'a/firewall/nat', { type: 'masquerade', oif: 'wan0' });
    const m = made.json();
    expect(m).toMatchObject({ type: 'masquerade', chain: 'postrouting', oif: 'wan0', to: null });
    // Its Location answers it.
    expect(made.headers.location).toBe(`/v1/namespaces/a/firewall/nat/${m.id}`);
    expect((await req(t, 'GET', `a/firewall/nat/${m.id}`)).json()).toEqual(m);
    // Chain by chain as listed: prerouting was made first.
    expect((await req(t, 'GET', 'a/firewall/nat')).json().items.map((x: { id: string }) => x.id)).toEqual([d.id, m.id]);
    expect((await req(t, 'DELETE', `a/firewall/nat/${d.id}`)).statusCode).toBe(204);
    expectProblem(await req(t, 'DELETE', `a/firewall/nat/${d.id}`), 'FIREWALL_RULE_NOT_FOUND', 404);
    expectProblem(await req(t, 'GET', `a/firewall/nat/${d.id}`), 'FIREWALL_RULE_NOT_FOUND', 404);
  });

  it('inserts at a position and answers 422 FIREWALL_POSITION_INVALID past the end', async () => {
    const t = await setup();
    const a = (await req(t, 'POST', 'a/firewall/rules', { chain: 'forward', action: 'drop' })).json();
    const b = (await req(t, 'POST', 'a/firewall/rules', { chain: 'forward', action: 'accept', position: 0 })).json();
    expect((await req(t, 'GET', 'a/firewall/rules')).json().items.map((x: { id: string; position: number }) => [x.id, x.position])).toEqual([[b.id, 0], [a.id, 1]]);
    const res = await req(t, 'POST', 'a/firewall/rules', { chain: 'forward', action: 'accept', position: 3 });
    expectProblem(res, 'FIREWALL_POSITION_INVALID', 422);
  });

  it('sets policies without touching chains left out', async () => {
    const t = await setup();
    expect((await req(t, 'PUT', 'a/firewall/policy', { input: 'drop' })).json()).toEqual({ input: 'drop', forward: 'accept', output: 'accept' });
    expect((await req(t, 'PUT', 'a/firewall/policy', { output: 'drop' })).json()).toEqual({ input: 'drop', forward: 'accept', output: 'drop' });
    expectProblem(await req(t, 'PUT', 'a/firewall/policy', {}), 'REQUEST_INVALID', 400);
  });

  it('replaces the ruleset: kept ids stay, others answer 404; a refused document changes nothing', async () => {
    const t = await setup();
    const keep = (await req(t, 'POST', 'a/firewall/rules', { chain: 'input', action: 'drop' })).json();
    const lose = (await req(t, 'POST', 'a/firewall/rules', { chain: 'input', action: 'accept' })).json();
    const doc = (await req(t, 'GET', 'a/firewall')).json().ruleset.nftables.filter((o: { rule?: { handle: number } }) => o.rule?.handle !== lose.handle);
    const res = await req(t, 'PUT', 'a/firewall', { nftables: doc });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().rules.map((x: { id: string }) => x.id)).toEqual([keep.id]);
    expectProblem(await req(t, 'GET', `a/firewall/rules/${lose.id}`), 'FIREWALL_RULE_NOT_FOUND', 404);
    const before = (await req(t, 'GET', 'a/firewall')).json().ruleset;
    const bad = await req(t, 'PUT', 'a/firewall', { nftables: [{ add: { rule: { family: 'inet', table: 'none', chain: 'x', expr: [] } } }] });
    expectProblem(bad, 'FIREWALL_RULESET_INVALID', 400);
    expect(bad.json().errors).toEqual([{ field: 'body', message: 'Could not process rule: No such file or directory' }]);
    expect((await req(t, 'GET', 'a/firewall')).json().ruleset).toEqual(before);
    expectProblem(await req(t, 'PUT', 'a/firewall', { nftables: [{ list: { ruleset: null } }] }), 'REQUEST_INVALID', 400);
  });

  it('answers 403 HOST_PROTECTED to every change in host, and reads it', async () => {
    const t = await setup();
    expect((await req(t, 'GET', 'host/firewall')).statusCode).toBe(200);
    expectProblem(await req(t, 'POST', 'host/firewall/rules', { chain: 'input', action: 'drop' }), 'HOST_PROTECTED', 403);
    expectProblem(await req(t, 'POST', 'host/firewall/nat', { type: 'masquerade', oif: 'eth0' }), 'HOST_PROTECTED', 403);
    expectProblem(await req(t, 'PUT', 'host/firewall/policy', { input: 'drop' }), 'HOST_PROTECTED', 403);
    expectProblem(await req(t, 'PUT', 'host/firewall', { nftables: [] }), 'HOST_PROTECTED', 403);
    expectProblem(await req(t, 'DELETE', 'host/firewall/rules/fw-aaaaaaaa'), 'HOST_PROTECTED', 403);
    expect(t.kernel.calls.some((c) => c.kind === 'nft.apply')).toBe(false);
  });

  it('answers 404 NAMESPACE_NOT_FOUND, and 422 FIREWALL_CHANGE_REFUSED when nft refuses a managed change', async () => {
    const t = await setup();
    expectProblem(await req(t, 'GET', 'nope/firewall'), 'NAMESPACE_NOT_FOUND', 404);
    t.kernel.expect('nft.apply', classify(stderr('nft-chain-missing.txt'), 1, apply));
    const res = await req(t, 'POST', 'a/firewall/rules', { chain: 'input', action: 'drop' });
    expectProblem(res, 'FIREWALL_CHANGE_REFUSED', 422);
    expect(res.json().errors).toEqual([{ field: 'body', message: 'Could not process rule: No such file or directory' }]);
  });
});
