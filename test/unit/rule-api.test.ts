import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/app-error.js';
import { buildTestApp, expectProblem, testConfig, type TestApp } from '../helpers/test-app.js';

const json = { 'content-type': 'application/json' };

async function setup(o: Parameters<typeof buildTestApp>[0] = {}): Promise<TestApp> {
  const t = await buildTestApp(o);
  expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'a' } })).statusCode).toBe(201);
  return t;
}

const post = (t: TestApp, ns: string, payload: unknown) => t.app.inject({ method: 'POST', url: `/v1/namespaces/${ns}/rules`, headers: json, payload: payload as object });
const get = (t: TestApp, path: string) => t.app.inject({ url: path });
const del = (t: TestApp, path: string) => t.app.inject({ method: 'DELETE', url: path });
const ruleOps = (t: TestApp, from = 0) => t.kernel.calls.slice(from).filter((c) => c.kind === 'rule.add' || c.kind === 'rule.delete');
const listed = async (t: TestApp, q = '') => (await get(t, `/v1/namespaces/a/rules${q}`)).json().items as Array<Record<string, unknown>>;

const builtIn = { not: false, from: null, to: null, iif: null, oif: null, fwmark: null, fwmask: null, ipproto: null, sport: null, dport: null, goto: null,
  suppressPrefixLength: null, tos: null, uidrange: null, l3mdev: false, realms: null, suppressIfgroup: null, protocol: null, flags: [] };

describe('GET /v1/namespaces/{ns}/rules', () => {
  it('lists the built-in rules of both families in the kernel\'s order', async () => {
    const t = await setup();
    const items = await listed(t);
    expect(items.map((r) => [r.family, r.priority, r.action, r.table])).toEqual([
      [4, 0, 'lookup', 255], [4, 32766, 'lookup', 254], [4, 32767, 'lookup', 253], [6, 0, 'lookup', 255], [6, 32766, 'lookup', 254],
    ]);
    expect(items[1]).toEqual({ id: expect.stringMatching(/^[A-Za-z0-9_-]+$/), namespace: 'a', family: 4, priority: 32766, action: 'lookup', table: 254, ...builtIn });
    expect((await listed(t, '?family=6')).map((r) => r.priority)).toEqual([0, 32766]);
    expect((await listed(t, '?table=main')).map((r) => [r.family, r.priority])).toEqual([[4, 32766], [6, 32766]]);
  });

  it('pages through the rules with limit and cursor', async () => {
    const t = await setup();
    const first = (await get(t, '/v1/namespaces/a/rules?limit=2')).json();
    expect(first.items).toHaveLength(2);
    const rest = (await get(t, `/v1/namespaces/a/rules?limit=10&cursor=${encodeURIComponent(first.next)}`)).json();
    expect([...first.items, ...rest.items].map((r: { id: string }) => r.id)).toEqual((await listed(t)).map((r) => r.id));
  });

  it('answers 404 NAMESPACE_NOT_FOUND for a missing namespace and 400 for a bad table filter', async () => {
    const t = await setup();
    expectProblem(await get(t, '/v1/namespaces/zz/rules'), 'NAMESPACE_NOT_FOUND', 404);
    expectProblem(await get(t, '/v1/namespaces/a/rules?table=x'), 'REQUEST_INVALID', 400);
  });
});

describe('POST /v1/namespaces/{ns}/rules', () => {
  it('creates a lookup rule from a source: 201, Location, the kernel\'s view', async () => {
    const t = await setup();
    const res = await post(t, 'a', { priority: 1000, from: '203.0.113.5', table: 100 });
    expect(res.statusCode).toBe(201);
    const r = res.json();
    expect(r).toEqual({ ...builtIn, id: expect.any(String), namespace: 'a', family: 4, priority: 1000, from: '203.0.113.5/32', action: 'lookup', table: 100 });
    expect(res.headers.location).toBe(`/v1/namespaces/a/rules/${r.id}`);
    expect((await get(t, res.headers.location as string)).json()).toEqual(r);
    expect(ruleOps(t)).toEqual([{ kind: 'rule.add', ns: 'a', spec: { family: 4, priority: 1000, action: 'lookup', from: '203.0.113.5/32', table: 100 } }]);
  });

  it('creates rules with every selector and action; the family follows the prefixes', async () => {
    const t = await setup();
    const full = (await post(t, 'a', {
      priority: 1100, not: true, from: '198.18.0.0/16', to: '198.51.100.0/24', iif: 'veth0', oif: 'lo', fwmark: '0x10', fwmask: 255, ipproto: 'tcp', sport: '1000-2000', dport: 443,
      table: 'main', suppressPrefixLength: 0,
    })).json();
    expect(full).toMatchObject({ not: true, from: '198.18.0.0/16', to: '198.51.100.0/24', iif: 'veth0', oif: 'lo', fwmark: 16, fwmask: 255, ipproto: 'tcp',
      sport: { start: 1000, end: 2000 }, dport: { start: 443, end: 443 }, table: 254, suppressPrefixLength: 0, flags: ['iif_detached'] });
    expect((await post(t, 'a', { to: '2001:db8:1::/48', action: 'unreachable', priority: 1200 })).json()).toMatchObject({ family: 6, action: 'unreachable', table: null });
    expect((await post(t, 'a', { family: 6, fwmark: 7, action: 'blackhole', priority: 1201 })).json()).toMatchObject({ family: 6, fwmark: 7, fwmask: null });
    expect((await post(t, 'a', { priority: 1300, action: 'goto', goto: 1400 })).json()).toMatchObject({ action: 'goto', goto: 1400, flags: ['unresolved'] });
    expect((await post(t, 'a', { priority: 1400, action: 'nop' })).json()).toMatchObject({ action: 'nop' });
    expect((await listed(t, '?family=4')).find((r) => r.priority === 1300)?.flags).toEqual([]);
    expect((await post(t, 'a', { priority: 1500, fwmark: 1, fwmask: '0xffffffff', table: 'default' })).json()).toMatchObject({ fwmark: 1, fwmask: null, table: 253 });
  });

  it('picks the priority `ip rule add` would: just below the first rule after local, so the newest comes first', async () => {
    const t = await setup();
    expect((await post(t, 'a', { from: '198.18.1.0/24', table: 10 })).json().priority).toBe(32765);
    expect((await post(t, 'a', { from: '198.18.1.0/24', table: 10 })).json().priority).toBe(32764);
    const ops = ruleOps(t);
    expect(ops.map((o) => (o.kind === 'rule.add' ? o.spec.priority : -1))).toEqual([32765, 32764]);
  });

  it.each([
    [{ from: '203.0.113.5/24', table: 1 }, 'body.from', /host bits set: did you mean 203\.0\.113\.0\/24/],
    [{ to: 'nowhere', table: 1 }, 'body.to', /not a prefix or an address/],
    [{ from: '203.0.113.0/33', table: 1 }, 'body.from', /range/],
    [{ from: '203.0.113.0/24', to: '2001:db8::/32', table: 1 }, 'body.to', /IPv4/],
    [{ family: 6, from: '203.0.113.0/24', table: 1 }, 'body.from', /IPv6/],
    [{ from: '203.0.113.0/24' }, 'body.table', /required/],
    [{ action: 'lookup' }, 'body.table', /required by a lookup rule/],
    [{ action: 'blackhole', table: 5 }, 'body.table', /not taken by a blackhole/],
    [{ action: 'goto' }, 'body.goto', /required by a goto rule/],
    [{ goto: 5, table: 5 }, 'body.goto', /set action to goto/],
    [{ priority: 100, action: 'goto', goto: 100 }, 'body.goto', /after the rule's priority 100/],
    [{ fwmask: 255, table: 5 }, 'body.fwmask', /needs fwmark/],
    [{ fwmark: 0, table: 5 }, 'body.fwmark', /every packet/],
    [{ dport: '2000-1000', table: 5 }, 'body.dport', /START <= END/],
    [{ sport: '1-70000', table: 5 }, 'body.sport', /0-65535/],
    [{ action: 'nop', suppressPrefixLength: 0 }, 'body.suppressPrefixLength', /not taken by a nop/],
    [{ from: '198.18.0.0/16', table: 5, suppressPrefixLength: 40 }, 'body.suppressPrefixLength', /at most 32/],
  ])('answers 400 REQUEST_INVALID naming the field for %j', async (body, field, message) => {
    const t = await setup();
    const p = expectProblem(await post(t, 'a', body), 'REQUEST_INVALID', 400);
    const e = (p.errors as Array<{ field: string; message: string }>).find((x) => x.field === field);
    expect(e?.message, JSON.stringify(p.errors)).toMatch(message);
    expect(ruleOps(t)).toEqual([]);
  });

  it.each([
    [{ table: 0 }], [{ priority: -1, table: 1 }], [{ table: 'nat' }], [{ iif: 'a name too long!' , table: 1 }], [{ ipproto: 'gre', table: 1 }], [{ fwmark: '0xZZ', table: 1 }], [{ table: 1, color: 'red' }],
  ])('answers 400 by schema for %j', async (body) => {
    const t = await setup();
    expectProblem(await post(t, 'a', body), 'REQUEST_INVALID', 400);
  });

  it('a goto with the default priority must still go forward', async () => {
    const t = await setup();
    const p = expectProblem(await post(t, 'a', { action: 'goto', goto: 100 }), 'REQUEST_INVALID', 400);
    expect(p.detail).toMatch(/after the rule's priority 32765 \(the default: give priority\)/);
  });

  it('answers 409 RULE_EXISTS, as the kernel does, for a rule without from/to where one with them exists', async () => {
    const t = await setup();
    await post(t, 'a', { priority: 100, from: '198.18.0.0/16', table: 10 });
    expectProblem(await post(t, 'a', { priority: 100, table: 10 }), 'RULE_EXISTS', 409);
  });

  it('answers 409 RULE_EXISTS for an identical rule; one that differs may share the priority', async () => {
    const t = await setup();
    await post(t, 'a', { priority: 1000, from: '203.0.113.5', table: 100 });
    expectProblem(await post(t, 'a', { priority: 1000, from: '203.0.113.5', table: 100 }), 'RULE_EXISTS', 409);
    expect((await post(t, 'a', { priority: 1000, from: '203.0.113.6', table: 100 })).statusCode).toBe(201);
    expect((await listed(t, '?family=4')).filter((r) => r.priority === 1000).map((r) => r.from)).toEqual(['203.0.113.5/32', '203.0.113.6/32']);
  });

  it('answers 404 NAMESPACE_NOT_FOUND for a missing namespace', async () => {
    const t = await setup();
    expectProblem(await post(t, 'zz', { table: 1 }), 'NAMESPACE_NOT_FOUND', 404);
  });
});

describe('DELETE /v1/namespaces/{ns}/rules/{id}', () => {
  it('deletes exactly that rule, naming every attribute, then 404 RULE_NOT_FOUND', async () => {
    const t = await setup();
    const r = (await post(t, 'a', { priority: 1000, from: '203.0.113.5', table: 100 })).json();
    const other = (await post(t, 'a', { priority: 1000, from: '203.0.113.6', table: 100 })).json();
    const from = t.kernel.calls.length;
    expect((await del(t, `/v1/namespaces/a/rules/${r.id}`)).statusCode).toBe(204);
    expect(ruleOps(t, from)).toEqual([{ kind: 'rule.delete', ns: 'a', rule: expect.objectContaining({ priority: 1000, from: '203.0.113.5/32', table: 100, action: 'lookup' }) }]);
    expect((await listed(t)).map((x) => x.id)).toContain(other.id);
    expectProblem(await del(t, `/v1/namespaces/a/rules/${r.id}`), 'RULE_NOT_FOUND', 404);
    expectProblem(await get(t, `/v1/namespaces/a/rules/${r.id}`), 'RULE_NOT_FOUND', 404);
    expectProblem(await get(t, '/v1/namespaces/a/rules/bm9wZQ'), 'RULE_NOT_FOUND', 404);
    expectProblem(await get(t, '/v1/namespaces/a/rules/not%20an%20id'), 'REQUEST_INVALID', 400);
  });

  it('answers 409 RULE_AMBIGUOUS, deleting nothing, when an earlier rule at the priority has every attribute of this one', async () => {
    const t = await setup();
    const specific = (await post(t, 'a', { priority: 100, iif: 'lo', table: 10 })).json();
    const loose = (await post(t, 'a', { priority: 100, table: 10 })).json();
    const from = t.kernel.calls.length;
    const p = expectProblem(await del(t, `/v1/namespaces/a/rules/${loose.id}`), 'RULE_AMBIGUOUS', 409);
    expect(p).toMatchObject({ shadowedBy: specific.id });
    expect(ruleOps(t, from)).toEqual([]);
    expect((await del(t, `/v1/namespaces/a/rules/${specific.id}`)).statusCode).toBe(204);
    expect((await del(t, `/v1/namespaces/a/rules/${loose.id}`)).statusCode).toBe(204);
    expect((await listed(t, '?family=4')).map((r) => r.priority)).toEqual([0, 32766, 32767]);
  });

  it('passes a kernel refusal of the delete on', async () => {
    const t = await setup();
    const r = (await post(t, 'a', { priority: 1000, from: '203.0.113.5', table: 100 })).json();
    t.kernel.expect('rule.delete', new AppError('RULE_NOT_FOUND', 'gone meanwhile'));
    expectProblem(await del(t, `/v1/namespaces/a/rules/${r.id}`), 'RULE_NOT_FOUND', 404);
  });
});

describe('rules in host', () => {
  it('lists host rules but answers 403 HOST_PROTECTED to creating or deleting one, changing nothing', async () => {
    const t = await setup();
    const main = (await get(t, '/v1/namespaces/host/rules?family=4&table=main')).json().items[0];
    expect(main).toMatchObject({ namespace: 'host', priority: 32766 });
    expectProblem(await post(t, 'host', { priority: 10, from: '198.18.0.0/16', table: 100 }), 'HOST_PROTECTED', 403);
    expectProblem(await del(t, `/v1/namespaces/host/rules/${main.id}`), 'HOST_PROTECTED', 403);
    expect(ruleOps(t)).toEqual([]);
  });

  it('allows host rules with host.allowChanges', async () => {
    const t = await setup({ config: { host: { ...testConfig().host, allowChanges: true } } });
    const r = await post(t, 'host', { priority: 10, from: '198.18.0.0/16', table: 100 });
    expect(r.statusCode).toBe(201);
    expect((await del(t, r.headers.location as string)).statusCode).toBe(204);
  });
});
