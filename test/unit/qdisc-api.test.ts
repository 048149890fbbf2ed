/** /v1/namespaces/{ns}/links/{name}/qdisc[/ingress] over the fake kernel: validation, plans, restore on failure, host safety, events. */
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/app-error.js';
import { FakeExecutor } from '../../src/executor/fake-executor.js';
import type { Op } from '../../src/executor/ops.js';
import type { LoggedEvent } from '../../src/store/event-log.js';
import { ifbName } from '../../src/qdisc/qdisc-service.js';
import { buildTestApp, expectProblem, type TestApp } from '../helpers/test-app.js';

const json = { 'content-type': 'application/json' };
const Q = '/v1/namespaces/a/links/va/qdisc';
const TBF = { kind: 'tbf', rate: '1mbit', burst: '32kb', latency: '50ms' };
const HTB = {
  kind: 'htb',
  default: '1:20',
  classes: [{ id: '1:10', rate: '1mbit', ceil: '2mbit' }, { id: '1:20', rate: '100mbit' }],
  filters: [{ class: '1:10', protocol: 'tcp', dport: 5001, destination: '198.51.100.2' }, { class: '1:10', protocol: 'udp', sport: 53 }],
};

async function setup(o: Parameters<typeof buildTestApp>[0] = {}): Promise<TestApp & { events: LoggedEvent[] }> {
  const t = await buildTestApp(o);
  for (const name of ['a', 'b']) expect((await t.app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name } })).statusCode).toBe(201);
  const res = await t.app.inject({ method: 'POST', url: '/v1/namespaces/a/links', headers: json, payload: { name: 'va', kind: 'veth', peer: { name: 'vb', namespace: 'b' }, up: true } });
  expect(res.statusCode).toBe(201);
  const events: LoggedEvent[] = [];
  t.services.events.onEvent((e) => {
    if (e.type === 'qdisc.changed') events.push(e);
  });
  return Object.assign(t, { events });
}

const put = (t: TestApp, payload: unknown, url = Q) => t.app.inject({ method: 'PUT', url, headers: json, payload: payload as object });
const get = (t: TestApp, url = Q) => t.app.inject({ url });
const del = (t: TestApp, url = Q) => t.app.inject({ method: 'DELETE', url });
const tcOps = (t: TestApp, from = 0): Op[] => t.kernel.calls.slice(from).filter((c) => c.kind.startsWith('qdisc.') && !['qdisc.show', 'qdisc.classes', 'qdisc.filters'].includes(c.kind));

/** A kernel whose probes say what this machine's say: no netem, fq_codel, sfq, fq, cake. */
function thisKernel() {
  const lacks = new Set(['netem', 'fq_codel', 'sfq', 'fq', 'cake']);
  return FakeExecutor.kernel().default('probe.qdisc', (op) => (lacks.has(op.qdisc) ? { supported: false, reason: 'Error: Specified qdisc kind is unknown.' } : { supported: true }));
}

describe('GET .../qdisc', () => {
  it("shows the kernel's default, unmanaged, when netnsd set nothing", async () => {
    const t = await setup();
    const res = await get(t);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      namespace: 'a', link: 'va', direction: 'egress', managed: false, kind: 'noqueue', handle: '0:', spec: null, ifb: null, options: {},
      stats: { bytes: 0, packets: 0, drops: 0, overlimits: 0, requeues: 0, backlog: 0, qlen: 0 }, classes: [], filters: [], setAt: null,
    });
  });

  it('answers 404 LINK_NOT_FOUND and NAMESPACE_NOT_FOUND', async () => {
    const t = await setup();
    expectProblem(await get(t, '/v1/namespaces/a/links/nope/qdisc'), 'LINK_NOT_FOUND', 404);
    expectProblem(await get(t, '/v1/namespaces/zz/links/va/qdisc'), 'NAMESPACE_NOT_FOUND', 404);
    expectProblem(await get(t, `${Q}/ingress`), 'QDISC_NOT_FOUND', 404);
  });
});

describe('PUT .../qdisc', () => {
  it('sets a tbf with one atomic replace and shows it as set, raising qdisc.changed', async () => {
    const t = await setup();
    const from = t.kernel.calls.length;
    const res = await put(t, TBF);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ managed: true, kind: 'tbf', spec: TBF, options: { rate: 125000, burst: 32768, lat: 50000 }, setAt: expect.any(String) });
    expect(tcOps(t, from)).toEqual([{ kind: 'qdisc.replaceRoot', ns: 'a', dev: 'va', spec: { kind: 'tbf', rateBits: 1_000_000, burstBytes: 32768, latencyUs: 50_000 } }]);
    expect(t.events.map((e) => [e.namespace, e.link, e.direction, e.spec])).toEqual([['a', 'va', 'egress', TBF]]);
    expect((await get(t)).json()).toMatchObject({ managed: true, spec: TBF });
  });

  it('sets an htb tree: root, classes, then filters (both families for a filter without an address)', async () => {
    const t = await setup();
    const from = t.kernel.calls.length;
    const res = await put(t, HTB);
    expect(res.statusCode, res.body).toBe(200);
    expect(tcOps(t, from).map((o) => o.kind === 'qdisc.addFilter' ? `filter ${o.prio} v${o.filter.family}` : o.kind === 'qdisc.addClass' ? `class ${o.cls.minor.toString(16)}` : o.kind)).toEqual([
      'qdisc.replaceRoot', 'class 10', 'class 20', 'filter 1 v4', 'filter 3 v4', 'filter 4 v6',
    ]);
    expect(res.json()).toMatchObject({ kind: 'htb', handle: '1:', classes: [{ id: '1:10' }, { id: '1:20' }], filters: [{ class: '1:10' }, { class: '1:10' }, { class: '1:10' }] });
    // A second tree: the old htb 1: is removed first (the kernel cannot replace it by another).
    const again = t.kernel.calls.length;
    expect((await put(t, { ...HTB, filters: [] })).statusCode).toBe(200);
    expect(tcOps(t, again).map((o) => o.kind)).toEqual(['qdisc.deleteRoot', 'qdisc.replaceRoot', 'qdisc.addClass', 'qdisc.addClass']);
  });

  it('puts the previous tbf back when a step of a new htb tree fails, naming the step', async () => {
    const t = await setup();
    expect((await put(t, TBF)).statusCode).toBe(200);
    t.kernel.expect('qdisc.addFilter', (op) => op.prio === 3, new AppError('QDISC_REFUSED', 'adding filter 3 on link "va" in namespace "a": the kernel refused it (Invalid argument)'));
    const from = t.kernel.calls.length;
    const p = expectProblem(await put(t, HTB), 'QDISC_REFUSED', 422);
    expect(p).toMatchObject({ step: 'filter 3', restored: true, detail: expect.stringContaining('the previous setup was put back') });
    expect(tcOps(t, from).map((o) => o.kind)).toEqual([
      'qdisc.replaceRoot', 'qdisc.addClass', 'qdisc.addClass', 'qdisc.addFilter', 'qdisc.addFilter',
      'qdisc.deleteRoot', 'qdisc.replaceRoot',
    ]);
    expect((await get(t)).json()).toMatchObject({ managed: true, kind: 'tbf', spec: TBF });
    expect(t.events).toHaveLength(1);
  });

  it("puts the kernel's default back when an htb tree fails on a link that had none", async () => {
    const t = await setup();
    t.kernel.expect('qdisc.addClass', new AppError('QDISC_REFUSED', 'refused'));
    expectProblem(await put(t, HTB), 'QDISC_REFUSED', 422);
    expect((await get(t)).json()).toMatchObject({ managed: false, kind: 'noqueue', handle: '0:' });
  });

  it('leaves the previous qdisc alone when a single replace fails (the kernel swaps atomically)', async () => {
    const t = await setup();
    expect((await put(t, HTB)).statusCode).toBe(200);
    t.kernel.expect('qdisc.replaceRoot', new AppError('QDISC_REFUSED', 'refused'));
    const from = t.kernel.calls.length;
    expect(expectProblem(await put(t, TBF), 'QDISC_REFUSED', 422)).toMatchObject({ step: 'root tbf', restored: true });
    expect(tcOps(t, from).map((o) => o.kind)).toEqual(['qdisc.replaceRoot']);
    expect((await get(t)).json()).toMatchObject({ kind: 'htb', spec: HTB });
  });

  it('answers 422 QDISC_UNSUPPORTED for a kind this kernel lacks, before running anything', async () => {
    const t = await setup({ kernel: thisKernel() });
    const from = t.kernel.calls.length;
    for (const kind of ['netem', 'fq_codel', 'sfq', 'fq', 'cake']) {
      const body = kind === 'netem' ? { kind, delay: '100ms', jitter: '10ms', loss: 1 } : { kind };
      expect(expectProblem(await put(t, body), 'QDISC_UNSUPPORTED', 422)).toMatchObject({ kind });
    }
    expect(tcOps(t, from)).toEqual([]);
    expect((await put(t, { kind: 'pfifo' })).statusCode).toBe(200);
  });

  it('answers 409 QDISC_UNMANAGED for a qdisc netnsd did not set, and DELETE then removes it', async () => {
    const t = await setup();
    await t.kernel.run({ kind: 'qdisc.replaceRoot', ns: 'a', dev: 'va', spec: { kind: 'prio' } });
    expect((await get(t)).json()).toMatchObject({ managed: false, kind: 'prio', spec: null });
    expect(expectProblem(await put(t, TBF), 'QDISC_UNMANAGED', 409)).toMatchObject({ kind: 'prio' });
    expect((await del(t)).statusCode).toBe(204);
    expect((await put(t, TBF)).statusCode).toBe(200);
  });

  const invalid: Array<[string, unknown, string[]]> = [
    ['tbf without its fields', { kind: 'tbf' }, ['body.rate', 'body.burst', 'body.latency']],
    ['a rate without a unit', { ...TBF, rate: '1000' }, ['body.rate']],
    ['a rate below 8bit', { ...TBF, rate: '1bit' }, ['body.rate']],
    ['a rate above 100gbit', { ...TBF, rate: '101gbit' }, ['body.rate']],
    ['a burst smaller than a frame', { ...TBF, burst: '1000b' }, ['body.burst']],
    ['a burst that takes over 60s at the rate', { ...TBF, rate: '8kbit', burst: '1mb' }, ['body.burst']],
    ['a latency of 0', { ...TBF, latency: '0ms' }, ['body.latency']],
    ['a latency without a unit', { ...TBF, latency: '50' }, ['body.latency']],
    ['fields of another kind', { ...TBF, loss: 1, classes: [{ id: '1:10', rate: '1mbit' }] }, ['body.loss', 'body.classes']],
    ['an unknown kind', { kind: 'red' }, ['body.kind']],
    ['an unknown field', { ...TBF, ratee: '1mbit' }, ['body.ratee']],
    ['htb without default and classes', { kind: 'htb' }, ['body.default', 'body.classes']],
    ['a default that is no class', { ...HTB, default: '1:30' }, ['body.default']],
    ['a class id 1:0', { ...HTB, classes: [...HTB.classes, { id: '1:0', rate: '1mbit' }] }, ['body.classes.2.id']],
    ['a class id not in tc form', { ...HTB, classes: [{ id: '10', rate: '1mbit' }] }, ['body.classes.0.id']],
    ['a repeated class', { ...HTB, classes: [...HTB.classes, { id: '1:10', rate: '1mbit' }] }, ['body.classes.2.id']],
    ['a ceil below the rate', { ...HTB, classes: [{ id: '1:10', rate: '2mbit', ceil: '1mbit' }, { id: '1:20', rate: '1mbit' }] }, ['body.classes.0.ceil']],
    ['a filter to a missing class', { ...HTB, filters: [{ class: '1:30' }] }, ['body.filters.0.class']],
    ['a port without a protocol', { ...HTB, filters: [{ class: '1:10', dport: 80 }] }, ['body.filters.0.protocol']],
    ['port 0', { ...HTB, filters: [{ class: '1:10', protocol: 'tcp', dport: 0 }] }, ['body.filters.0.dport']],
    ['port 65536', { ...HTB, filters: [{ class: '1:10', protocol: 'tcp', sport: 65536 }] }, ['body.filters.0.sport']],
    ['a protocol u32 filters here do not match', { ...HTB, filters: [{ class: '1:10', protocol: 'icmp' }] }, ['body.filters.0.protocol']],
    ['an address that is not one', { ...HTB, filters: [{ class: '1:10', source: '999.1.1.1' }] }, ['body.filters.0.source']],
    ['host bits set', { ...HTB, filters: [{ class: '1:10', destination: '198.51.100.1/24' }] }, ['body.filters.0.destination']],
    ['two families in one filter', { ...HTB, filters: [{ class: '1:10', source: '198.51.100.1', destination: '2001:db8::1' }] }, ['body.filters.0.destination']],
    ['netem loss above 100', { kind: 'netem', loss: 101 }, ['body.loss']],
    ['netem negative duplicate', { kind: 'netem', duplicate: -1 }, ['body.duplicate']],
    ['netem jitter without delay', { kind: 'netem', jitter: '10ms' }, ['body.jitter']],
    ['netem reorder without delay', { kind: 'netem', reorder: 25 }, ['body.reorder']],
    ['netem delay above 60s', { kind: 'netem', delay: '61s' }, ['body.delay']],
    ['netem corrupt as text', { kind: 'netem', corrupt: '1%' }, ['body.corrupt']],
  ];
  it.each(invalid)('answers 400 for %s, naming the fields, and changes nothing', async (_name, body, fields) => {
    const t = await setup();
    expect((await put(t, TBF)).statusCode).toBe(200);
    const from = t.kernel.calls.length;
    const p = expectProblem(await put(t, body), 'REQUEST_INVALID', 400);
    expect((p.errors as Array<{ field: string }>).map((e) => e.field).sort()).toEqual([...fields].sort());
    expect(tcOps(t, from)).toEqual([]);
    expect((await get(t)).json()).toMatchObject({ spec: TBF });
  });

  it('takes rates and sizes in every unit, and netem with all its fields where the kernel has it', async () => {
    const t = await setup();
    for (const [rate, bits] of [['8bit', 8], ['1.5mbit', 1_500_000], ['10mbps', 80_000_000], ['1gbit', 1e9], ['100gbit', 1e11]] as const) {
      const from = t.kernel.calls.length;
      expect((await put(t, { ...TBF, rate, burst: '1mib' })).statusCode === 200 || rate === '8bit').toBe(true);
      if (rate !== '8bit') expect(tcOps(t, from)).toEqual([expect.objectContaining({ spec: expect.objectContaining({ rateBits: bits, burstBytes: 1048576 }) })]);
    }
    const from = t.kernel.calls.length;
    expect((await put(t, { kind: 'netem', delay: '100ms', jitter: '0.5ms', loss: 0.5, duplicate: 1, reorder: 25, corrupt: 0.1, rate: '10mbit' })).statusCode).toBe(200);
    expect(tcOps(t, from)).toEqual([expect.objectContaining({ spec: { kind: 'netem', delayUs: 100_000, jitterUs: 500, lossPct: 0.5, duplicatePct: 1, reorderPct: 25, corruptPct: 0.1, rateBits: 10_000_000 } })]);
  });
});

describe('DELETE .../qdisc', () => {
  it("restores the kernel's default and raises qdisc.changed with spec null; again it is 204 with no event", async () => {
    const t = await setup();
    expect((await put(t, HTB)).statusCode).toBe(200);
    expect((await del(t)).statusCode).toBe(204);
    expect((await get(t)).json()).toMatchObject({ managed: false, kind: 'noqueue' });
    expect((await del(t)).statusCode).toBe(204);
    expect(t.events.map((e) => e.spec)).toEqual([HTB, null]);
  });
});

describe('ingress shaping', () => {
  it('creates a managed ifb, the ingress qdisc and the redirect, and shapes on the ifb', async () => {
    const t = await setup();
    const from = t.kernel.calls.length;
    const res = await put(t, TBF, `${Q}/ingress`);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ direction: 'ingress', managed: true, kind: 'tbf', ifb: 'va-ifb', spec: TBF });
    expect(tcOps(t, from)).toEqual([
      { kind: 'qdisc.addIngress', ns: 'a', dev: 'va' },
      { kind: 'qdisc.addRedirect', ns: 'a', dev: 'va', to: 'va-ifb' },
      { kind: 'qdisc.replaceRoot', ns: 'a', dev: 'va-ifb', spec: expect.objectContaining({ kind: 'tbf' }) },
    ]);
    const ifb = (await get(t, '/v1/namespaces/a/links/va-ifb')).json();
    expect(ifb).toMatchObject({ kind: 'ifb', managed: true, state: 'up', labels: { 'netnsd.io/ifb-for': 'va' } });
    expect((await get(t, `${Q}/ingress`)).json()).toMatchObject({ managed: true, ifb: 'va-ifb', spec: TBF });
    // A second PUT only changes the ifb's qdisc.
    const again = t.kernel.calls.length;
    expect((await put(t, { ...TBF, rate: '2mbit' }, `${Q}/ingress`)).statusCode).toBe(200);
    expect(tcOps(t, again).map((o) => [o.kind, 'dev' in o ? o.dev : ''])).toEqual([['qdisc.replaceRoot', 'va-ifb']]);
    expect(t.events.map((e) => e.direction)).toEqual(['ingress', 'ingress']);

    expect((await del(t, `${Q}/ingress`)).statusCode).toBe(204);
    expect((await get(t, '/v1/namespaces/a/links/va-ifb')).statusCode).toBe(404);
    expectProblem(await get(t, `${Q}/ingress`), 'QDISC_NOT_FOUND', 404);
    expect(t.events.at(-1)).toMatchObject({ direction: 'ingress', spec: null });
  });

  it('removes the ifb and the ingress qdisc again when the shaping step fails', async () => {
    const t = await setup();
    t.kernel.expect('qdisc.addClass', new AppError('QDISC_REFUSED', 'refused'));
    expect(expectProblem(await put(t, HTB, `${Q}/ingress`), 'QDISC_REFUSED', 422)).toMatchObject({ step: 'class 1:10' });
    expect((await get(t, '/v1/namespaces/a/links/va-ifb')).statusCode).toBe(404);
    expectProblem(await get(t, `${Q}/ingress`), 'QDISC_NOT_FOUND', 404);
    expect(t.events).toEqual([]);
  });

  it('answers 409 QDISC_UNMANAGED when the link has an ingress qdisc netnsd did not set', async () => {
    const t = await setup();
    await t.kernel.run({ kind: 'qdisc.addIngress', ns: 'a', dev: 'va' });
    expectProblem(await put(t, TBF, `${Q}/ingress`), 'QDISC_UNMANAGED', 409);
    expect((await get(t, '/v1/namespaces/a/links/va-ifb')).statusCode).toBe(404);
  });

  it('names the ifb LINK-ifb when it fits in 15 characters, else by a hash', () => {
    expect(ifbName('va')).toBe('va-ifb');
    expect(ifbName('abcdefghijk')).toBe('abcdefghijk-ifb');
    const long = ifbName('abcdefghijkl');
    expect(long).toMatch(/^abcdef-[0-9a-f]{4}-ifb$/);
    expect(long).not.toBe(ifbName('abcdefghijkm'));
  });
});

describe('host safety', () => {
  it('answers 403 HOST_PROTECTED for a host link netnsd did not create, reads it freely, and allows a managed one', async () => {
    const t = await setup();
    expect((await get(t, '/v1/namespaces/host/links/eth0/qdisc')).statusCode).toBe(200);
    const from = t.kernel.calls.length;
    expectProblem(await put(t, TBF, '/v1/namespaces/host/links/eth0/qdisc'), 'HOST_PROTECTED', 403);
    expectProblem(await put(t, TBF, '/v1/namespaces/host/links/eth0/qdisc/ingress'), 'HOST_PROTECTED', 403);
    expectProblem(await del(t, '/v1/namespaces/host/links/eth0/qdisc'), 'HOST_PROTECTED', 403);
    expect(tcOps(t, from)).toEqual([]);
    const made = await t.app.inject({ method: 'POST', url: '/v1/namespaces/a/links', headers: json, payload: { name: 'vh', kind: 'veth', peer: { name: 'nnh0', namespace: 'host' } } });
    expect(made.statusCode).toBe(201);
    expect((await put(t, TBF, '/v1/namespaces/host/links/nnh0/qdisc')).statusCode).toBe(200);
  });

  it('allows any host link with host.allowChanges', async () => {
    const t = await setup({ config: { host: { allowChanges: true } } as never });
    expect((await put(t, TBF, '/v1/namespaces/host/links/eth0/qdisc')).statusCode).toBe(200);
  });
});

describe('concurrent changes', () => {
  it('runs two PUTs of one link one after the other: the second tree is what stays', async () => {
    const t = await setup();
    const second = { ...HTB, classes: [{ id: '1:10', rate: '5mbit' }, { id: '1:20', rate: '50mbit' }] };
    const [r1, r2] = await Promise.all([put(t, HTB), put(t, second)]);
    expect([r1.statusCode, r2.statusCode]).toEqual([200, 200]);
    expect((await get(t)).json()).toMatchObject({ managed: true, spec: second, classes: [{ id: '1:10' }, { id: '1:20' }] });
    const kinds = tcOps(t).map((o) => o.kind);
    // The second change began with removing the first tree, after all of the first one's steps.
    const tree = ['qdisc.replaceRoot', 'qdisc.addClass', 'qdisc.addClass', 'qdisc.addFilter', 'qdisc.addFilter', 'qdisc.addFilter'];
    expect(kinds).toEqual([...tree, 'qdisc.deleteRoot', ...tree]);
  });
});

describe('records', () => {
  it('forgets what was set in namespaces that are gone, at reconcile', async () => {
    const t = await setup();
    expect((await put(t, TBF)).statusCode).toBe(200);
    const records = (t.services.qdiscs as unknown as { o: { records: { pruneNamespaces(l: Set<string>): string[] } } }).o.records;
    expect((await t.app.inject({ method: 'DELETE', url: '/v1/namespaces/a' })).statusCode).toBe(204);
    await t.services.qdiscs.reconcile();
    // Nothing left to prune: reconcile dropped the record of `a`.
    expect(records.pruneNamespaces(new Set())).toEqual([]);
  });
});
