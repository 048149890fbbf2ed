import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/app-error.js';
import { buildTestApp, expectProblem } from '../helpers/test-app.js';

const json = { 'content-type': 'application/json' };

describe('POST /v1/namespaces', () => {
  it('creates a namespace with loopback up and an nsid, and answers 201 with Location', async () => {
    const { app, kernel } = await buildTestApp();
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'blue', labels: { lab: 'a' } } });
    expect(res.statusCode).toBe(201);
    expect(res.headers.location).toBe('/v1/namespaces/blue');
    expect(res.json()).toMatchObject({ name: 'blue', managed: true, labels: { lab: 'a' }, nsid: 0, linkCount: 1 });
    expect(res.json().createdAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(kernel.namespace('blue')).toMatchObject({ loopbackUp: true, nsid: 0 });
  });

  it('returns 409 NAMESPACE_EXISTS when the name is taken', async () => {
    const { app, kernel } = await buildTestApp();
    kernel.addNamespace('blue');
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'blue' } });
    expectProblem(res, 'NAMESPACE_EXISTS', 409);
  });

  it('returns 409 NAMESPACE_RESERVED for host', async () => {
    const { app } = await buildTestApp();
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'host' } });
    expectProblem(res, 'NAMESPACE_RESERVED', 409);
  });

  it.each([
    ['a;b'], ['../x'], ['$(id)'], ['-n'], ['.'], ['..'], [''], ['x'.repeat(300)], ['blé'], ['a/b'], ['a b'], [5], [null],
  ])('returns 400 REQUEST_INVALID naming body.name for %j and changes nothing', async (name) => {
    const { app, kernel } = await buildTestApp();
    const before = kernel.calls.length;
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name } });
    const body = expectProblem(res, 'REQUEST_INVALID', 400);
    expect(body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'body.name' })]));
    expect(kernel.calls.slice(before).filter((c) => !c.kind.startsWith('probe.'))).toEqual([]);
  });

  it('returns 400 naming an unknown field instead of dropping it', async () => {
    const { app } = await buildTestApp();
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'blue', lables: {} } });
    const body = expectProblem(res, 'REQUEST_INVALID', 400);
    expect(body.errors).toEqual([{ field: 'body.lables', message: 'is not a known field' }]);
  });

  it('returns 400 for bad labels, naming each', async () => {
    const { app } = await buildTestApp();
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'b', labels: { 'a,b': 'x', ok: 'x=y' } } });
    const body = expectProblem(res, 'REQUEST_INVALID', 400);
    expect((body.errors as unknown[]).length).toBeGreaterThanOrEqual(2);
  });

  it('returns 400 REQUEST_INVALID for a body that is not JSON', async () => {
    const { app } = await buildTestApp();
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: '{"name":' });
    expectProblem(res, 'REQUEST_INVALID', 400);
  });

  it('returns 400 REQUEST_INVALID for a missing body', async () => {
    const { app } = await buildTestApp();
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces' });
    expectProblem(res, 'REQUEST_INVALID', 400);
  });

  it('returns 415 MEDIA_TYPE_UNSUPPORTED for a form body', async () => {
    const { app } = await buildTestApp();
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'name=x' });
    expectProblem(res, 'MEDIA_TYPE_UNSUPPORTED', 415);
  });

  it('returns 413 REQUEST_TOO_LARGE for a 10 MB body', async () => {
    const { app } = await buildTestApp();
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: JSON.stringify({ name: 'x', pad: 'a'.repeat(10 * 1024 * 1024) }) });
    expectProblem(res, 'REQUEST_TOO_LARGE', 413);
  });

  it('returns 409 NAMESPACE_LIMIT_REACHED at limits.namespaces', async () => {
    const { app, kernel } = await buildTestApp({ config: { limits: { ...(await import('../helpers/test-app.js')).testConfig().limits, namespaces: 1 } } });
    kernel.addNamespace('one');
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'two' } });
    expectProblem(res, 'NAMESPACE_LIMIT_REACHED', 409);
  });

  it('counts its own creations against limits.namespaces between counts, and refuses only on a fresh count', async () => {
    const { app, kernel } = await buildTestApp({ config: { limits: { ...(await import('../helpers/test-app.js')).testConfig().limits, namespaces: 3 } } });
    kernel.addNamespace('one');
    const create = (name: string) => app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name } });
    expect((await create('two')).statusCode).toBe(201); // counted: one
    kernel.addNamespace('other'); // made by someone else right after the count
    expect((await create('three')).statusCode).toBe(201); // one + two, under the limit
    const res = await create('four'); // one + two + three reach it: counted again, four there are
    expectProblem(res, 'NAMESPACE_LIMIT_REACHED', 409);
    expect(res.json().detail).toBe('There are 4 namespaces; the configured limit is 3');
  });

  it('takes the nsid and link count from what the add read, without reading them again', async () => {
    const { app, kernel } = await buildTestApp();
    // As the addon's netnsAdd answers: it gave the namespace an nsid and read its links' names.
    kernel.expect('netns.add', (op) => {
      kernel.addNamespace(op.ns, { nsid: 7 });
      return { nsid: 7, linkNames: ['lo', 'tunl0'] };
    });
    const before = kernel.calls.length;
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'blue' } });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ name: 'blue', nsid: 7, linkCount: 2 });
    const kinds = kernel.calls.slice(before).map((c) => c.kind);
    expect(kinds).toContain('netns.add');
    expect(kinds).not.toContain('netns.assignNsid');
    expect(kinds).not.toContain('netns.linkNames');
    kernel.assertDone();
  });

  it('removes the namespace again and names the step when loopback fails', async () => {
    const { app, kernel } = await buildTestApp();
    kernel.expect('netns.loopbackUp', new AppError('PRIVILEGE_REQUIRED', 'Operation not permitted'));
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'blue' } });
    const body = expectProblem(res, 'PRIVILEGE_REQUIRED', 503);
    expect(body.step).toBe('loopbackUp');
    expect(kernel.namespace('blue')).toBeUndefined();
    kernel.assertDone();
  });
});

describe('GET /v1/namespaces', () => {
  it('lists host, managed and found namespaces ordered by name', async () => {
    const { app, kernel } = await buildTestApp();
    kernel.addNamespace('found');
    await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'made' } });
    const res = await app.inject({ url: '/v1/namespaces' });
    expect(res.statusCode).toBe(200);
    const items = res.json().items as Array<{ name: string; managed: boolean; nsid: number | null }>;
    expect(items.map((i) => [i.name, i.managed])).toEqual([
      ['found', false],
      ['host', false],
      ['made', true],
    ]);
    expect(items.find((i) => i.name === 'host')?.nsid).toBeNull();
    expect(items.find((i) => i.name === 'found')?.nsid).toBeNull();
  });

  it('filters by labelSelector and managed', async () => {
    const { app, kernel } = await buildTestApp();
    kernel.addNamespace('found');
    for (const [name, lab] of [['a1', 'a'], ['a2', 'a'], ['b1', 'b']]) {
      await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name, labels: { lab } } });
    }
    const names = async (q: string) => ((await app.inject({ url: `/v1/namespaces?${q}` })).json().items as Array<{ name: string }>).map((i) => i.name);
    expect(await names('labelSelector=lab=a')).toEqual(['a1', 'a2']);
    expect(await names('labelSelector=lab!=a')).toEqual(['b1', 'found', 'host']);
    expect(await names('managed=false')).toEqual(['found', 'host']);
    expect(await names('managed=true&labelSelector=lab')).toEqual(['a1', 'a2', 'b1']);
  });

  it('pages with limit and cursor', async () => {
    const { app, kernel } = await buildTestApp();
    for (let i = 0; i < 5; i++) kernel.addNamespace(`n${i}`);
    const p1 = (await app.inject({ url: '/v1/namespaces?limit=4' })).json();
    expect(p1.items).toHaveLength(4);
    const p2 = (await app.inject({ url: `/v1/namespaces?limit=4&cursor=${p1.next}` })).json();
    expect([...p1.items, ...p2.items].map((i: { name: string }) => i.name)).toEqual(['host', 'n0', 'n1', 'n2', 'n3', 'n4']);
    expect(p2.next).toBeUndefined();
  });

  it.each([
    ['limit=0', 'querystring.limit'],
    ['limit=10001', 'querystring.limit'],
    ['managed=maybe', 'querystring.managed'],
    ['labelSelector=a=b=c', 'querystring.labelSelector'],
    ['bogus=1', 'querystring.bogus'],
  ])('returns 400 for %s naming %s', async (q, field) => {
    const { app } = await buildTestApp();
    const body = expectProblem(await app.inject({ url: `/v1/namespaces?${q}` }), 'REQUEST_INVALID', 400);
    expect(body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field })]));
  });

  it('returns 400 CURSOR_INVALID for a cursor it did not make', async () => {
    const { app } = await buildTestApp();
    expectProblem(await app.inject({ url: '/v1/namespaces?cursor=bm9wZQ' }), 'CURSOR_INVALID', 400);
  });
});

describe('GET/PATCH/DELETE /v1/namespaces/{name}', () => {
  it('returns 404 NAMESPACE_NOT_FOUND for a missing namespace', async () => {
    const { app } = await buildTestApp();
    expectProblem(await app.inject({ url: '/v1/namespaces/nope' }), 'NAMESPACE_NOT_FOUND', 404);
  });

  it('returns host with its links', async () => {
    const { app } = await buildTestApp();
    const res = await app.inject({ url: '/v1/namespaces/host' });
    expect(res.json()).toMatchObject({ name: 'host', managed: false, nsid: null, linkCount: 2, createdAt: null });
  });

  it('merges a labels patch (RFC 7396) as merge-patch+json or json', async () => {
    const { app } = await buildTestApp();
    await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'blue', labels: { a: '1', b: '2' } } });
    let res = await app.inject({ method: 'PATCH', url: '/v1/namespaces/blue', headers: { 'content-type': 'application/merge-patch+json' }, payload: { labels: { a: '9', b: null, c: '3' } } });
    expect(res.statusCode).toBe(200);
    expect(res.json().labels).toEqual({ a: '9', c: '3' });
    res = await app.inject({ method: 'PATCH', url: '/v1/namespaces/blue', headers: json, payload: { labels: { d: '4' } } });
    expect(res.json().labels).toEqual({ a: '9', c: '3', d: '4' });
  });

  it('labels an unmanaged namespace without making it managed', async () => {
    const { app, kernel } = await buildTestApp();
    kernel.addNamespace('found');
    const res = await app.inject({ method: 'PATCH', url: '/v1/namespaces/found', headers: json, payload: { labels: { seen: 'yes' } } });
    expect(res.json()).toMatchObject({ managed: false, labels: { seen: 'yes' } });
  });

  it('returns 415 for a PATCH as text/plain and for merge-patch on POST', async () => {
    const { app } = await buildTestApp();
    expectProblem(await app.inject({ method: 'PATCH', url: '/v1/namespaces/host', headers: { 'content-type': 'text/plain' }, payload: 'x' }), 'MEDIA_TYPE_UNSUPPORTED', 415);
    expectProblem(
      await app.inject({ method: 'POST', url: '/v1/namespaces', headers: { 'content-type': 'application/merge-patch+json' }, payload: { name: 'x' } }),
      'MEDIA_TYPE_UNSUPPORTED',
      415,
    );
  });

  it('deletes a managed namespace with 204', async () => {
    const { app, kernel } = await buildTestApp();
    await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'blue' } });
    const res = await app.inject({ method: 'DELETE', url: '/v1/namespaces/blue' });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    expect(kernel.namespace('blue')).toBeUndefined();
    expectProblem(await app.inject({ url: '/v1/namespaces/blue' }), 'NAMESPACE_NOT_FOUND', 404);
  });

  it('returns 409 NAMESPACE_BUSY with the pids, and force kills them first', async () => {
    const { app, kernel } = await buildTestApp();
    await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'blue' } });
    kernel.setPids('blue', [4242, 4343]);
    const body = expectProblem(await app.inject({ method: 'DELETE', url: '/v1/namespaces/blue' }), 'NAMESPACE_BUSY', 409);
    expect(body.pids).toEqual([4242, 4343]);
    expect(kernel.namespace('blue')).toBeDefined();
    expect((await app.inject({ method: 'DELETE', url: '/v1/namespaces/blue?force=true' })).statusCode).toBe(204);
    expect(kernel.calls.some((c) => c.kind === 'netns.killPids')).toBe(true);
    expect(kernel.namespace('blue')).toBeUndefined();
  });

  it('returns 409 NAMESPACE_UNMANAGED for a found namespace unless forced', async () => {
    const { app, kernel } = await buildTestApp();
    kernel.addNamespace('found');
    expectProblem(await app.inject({ method: 'DELETE', url: '/v1/namespaces/found' }), 'NAMESPACE_UNMANAGED', 409);
    expect((await app.inject({ method: 'DELETE', url: '/v1/namespaces/found?force=true' })).statusCode).toBe(204);
  });

  it('returns 403 HOST_PROTECTED for deleting host, even forced', async () => {
    const { app } = await buildTestApp();
    expectProblem(await app.inject({ method: 'DELETE', url: '/v1/namespaces/host?force=true' }), 'HOST_PROTECTED', 403);
  });

  it('returns 404 for deleting a missing namespace', async () => {
    const { app } = await buildTestApp();
    expectProblem(await app.inject({ method: 'DELETE', url: '/v1/namespaces/nope' }), 'NAMESPACE_NOT_FOUND', 404);
  });

  it('lists a namespace replaced behind its back as unmanaged, with a new id', async () => {
    const { app, kernel } = await buildTestApp();
    const made = (await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'blue', labels: { a: 'b' } } })).json();
    // Someone deletes it and makes another of the same name with ip.
    await kernel.run({ kind: 'netns.delete', ns: 'blue' });
    kernel.addNamespace('blue');
    const now = (await app.inject({ url: '/v1/namespaces/blue' })).json();
    expect(now.id).not.toBe(made.id);
    expect(now).toMatchObject({ managed: false, labels: {}, createdAt: null });
  });
});

describe('request ids and unknown endpoints', () => {
  it('honours a sane x-request-id and makes one otherwise', async () => {
    const { app } = await buildTestApp();
    expect((await app.inject({ url: '/healthz', headers: { 'x-request-id': 'abc-123' } })).headers['x-request-id']).toBe('abc-123');
    expect((await app.inject({ url: '/healthz', headers: { 'x-request-id': 'bad id\u00e9' } })).headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers 404 ENDPOINT_NOT_FOUND as problem+json', async () => {
    const { app } = await buildTestApp();
    expectProblem(await app.inject({ url: '/v1/nothing' }), 'ENDPOINT_NOT_FOUND', 404);
  });
});

describe('concurrent changes of one name', () => {
  it('runs delete, delete, create of one name one after another, so the create survives', async () => {
    const { FakeExecutor } = await import('../../src/executor/fake-executor.js');
    const kernel = FakeExecutor.kernel({ delayMs: 20 });
    const { app } = await buildTestApp({ kernel });
    await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'x' } });
    const [d1, d2, c] = await Promise.all([
      app.inject({ method: 'DELETE', url: '/v1/namespaces/x' }),
      app.inject({ method: 'DELETE', url: '/v1/namespaces/x' }),
      app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'x' } }),
    ]);
    expect([d1.statusCode, d2.statusCode, c.statusCode]).toEqual([204, 404, 201]);
    expect(kernel.namespace('x')).toBeDefined();
    expect((await app.inject({ url: '/v1/namespaces/x' })).json().managed).toBe(true);
  });

  it('does not overshoot limits.namespaces with concurrent creations', async () => {
    const { FakeExecutor } = await import('../../src/executor/fake-executor.js');
    const { testConfig } = await import('../helpers/test-app.js');
    const kernel = FakeExecutor.kernel({ delayMs: 10 });
    const { app } = await buildTestApp({ kernel, config: { limits: { ...testConfig().limits, namespaces: 3 } } });
    const res = await Promise.all(
      Array.from({ length: 10 }, (_, i) => app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: `l${i}` } })),
    );
    expect(res.filter((r) => r.statusCode === 201)).toHaveLength(3);
    expect(res.filter((r) => r.statusCode === 409).every((r) => r.json().code === 'NAMESPACE_LIMIT_REACHED')).toBe(true);
    expect(kernel.namespaceNames()).toHaveLength(3);
  });

  it('clears every label with "labels": null', async () => {
    const { app } = await buildTestApp();
    await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'blue', labels: { a: '1', b: '2' } } });
    const res = await app.inject({ method: 'PATCH', url: '/v1/namespaces/blue', headers: json, payload: { labels: null } });
    expect(res.json().labels).toEqual({});
  });

  it('refuses a patch that would leave more than 64 labels', async () => {
    const { app } = await buildTestApp();
    const many = (from: number) => Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${from + i}`, 'v']));
    await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'blue', labels: many(0) } });
    const body = expectProblem(await app.inject({ method: 'PATCH', url: '/v1/namespaces/blue', headers: json, payload: { labels: many(100) } }), 'REQUEST_INVALID', 400);
    expect(body.errors).toEqual([{ field: 'body.labels', message: 'would leave more than 64 labels' }]);
  });

  it('removes a namespace a timed-out add may have made', async () => {
    const { app, kernel } = await buildTestApp();
    const { AppError } = await import('../../src/errors/app-error.js');
    kernel.expect('netns.add', () => {
      kernel.addNamespace('late');
      return new AppError('EXECUTOR_TIMEOUT', 'ip took too long');
    });
    expectProblem(await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'late' } }), 'EXECUTOR_TIMEOUT', 504);
    expect(kernel.namespace('late')).toBeUndefined();
  });
});
