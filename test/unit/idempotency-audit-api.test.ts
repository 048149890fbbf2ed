import { describe, expect, it } from 'vitest';
import { buildTestApp, expectProblem } from '../helpers/test-app.js';

const json = { 'content-type': 'application/json' };

describe('Idempotency-Key', () => {
  it('replays the stored response for a retry with the same key and body', async () => {
    const { app, kernel } = await buildTestApp();
    const req = { method: 'POST' as const, url: '/v1/namespaces', headers: { ...json, 'idempotency-key': 'job-1' }, payload: { name: 'blue' } };
    const first = await app.inject(req);
    expect(first.statusCode).toBe(201);
    const adds = kernel.calls.filter((c) => c.kind === 'netns.add').length;
    const again = await app.inject(req);
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotency-replayed']).toBe('true');
    expect(again.headers.location).toBe('/v1/namespaces/blue');
    expect(again.json()).toEqual(first.json());
    expect(kernel.calls.filter((c) => c.kind === 'netns.add').length).toBe(adds);
  });

  it('returns 422 IDEMPOTENCY_KEY_REUSED for the same key with another body', async () => {
    const { app } = await buildTestApp();
    const headers = { ...json, 'idempotency-key': 'job-2' };
    await app.inject({ method: 'POST', url: '/v1/namespaces', headers, payload: { name: 'blue' } });
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers, payload: { name: 'green' } });
    expectProblem(res, 'IDEMPOTENCY_KEY_REUSED', 422);
  });

  it('replays a 204 delete and a stored 4xx as they were', async () => {
    const { app } = await buildTestApp();
    await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'blue' } });
    const del = { method: 'DELETE' as const, url: '/v1/namespaces/blue', headers: { 'idempotency-key': 'del-1' } };
    expect((await app.inject(del)).statusCode).toBe(204);
    const again = await app.inject(del);
    expect(again.statusCode).toBe(204);
    expect(again.headers['idempotency-replayed']).toBe('true');
    const dup = { method: 'POST' as const, url: '/v1/namespaces', headers: { ...json, 'idempotency-key': 'dup' }, payload: { name: 'host' } };
    expectProblem(await app.inject(dup), 'NAMESPACE_RESERVED', 409);
    const replay = await app.inject(dup);
    expect(replay.headers['idempotency-replayed']).toBe('true');
    expect(replay.statusCode).toBe(409);
  });

  it('returns 409 IDEMPOTENCY_KEY_IN_PROGRESS with Retry-After while the first request runs', async () => {
    const { FakeExecutor } = await import('../../src/executor/fake-executor.js');
    const kernel = FakeExecutor.kernel({ delayMs: (op) => (op.kind === 'netns.add' ? 100 : 0) });
    const { app } = await buildTestApp({ kernel });
    const req = { method: 'POST' as const, url: '/v1/namespaces', headers: { ...json, 'idempotency-key': 'slow' }, payload: { name: 'slow' } };
    const first = app.inject(req);
    await new Promise((r) => setTimeout(r, 30));
    const second = await app.inject(req);
    const body = expectProblem(second, 'IDEMPOTENCY_KEY_IN_PROGRESS', 409);
    expect(body.retryable).toBe(true);
    expect(second.headers['retry-after']).toBe('1');
    expect((await first).statusCode).toBe(201);
    expect((await app.inject(req)).headers['idempotency-replayed']).toBe('true');
  });

  it('returns 400 IDEMPOTENCY_KEY_INVALID for a key with spaces', async () => {
    const { app } = await buildTestApp();
    const res = await app.inject({ method: 'POST', url: '/v1/namespaces', headers: { ...json, 'idempotency-key': 'a b' }, payload: { name: 'x' } });
    expectProblem(res, 'IDEMPOTENCY_KEY_INVALID', 400);
  });
});

describe('audit', () => {
  it('records who changed what, with the ops it ran and the outcome, and pages them', async () => {
    const { app } = await buildTestApp();
    await app.inject({ method: 'POST', url: '/v1/namespaces', headers: { ...json, 'x-request-id': 'req-1' }, payload: { name: 'blue' } });
    await app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name: 'blue' } });
    await app.inject({ method: 'DELETE', url: '/v1/namespaces/blue' });
    const res = await app.inject({ url: '/v1/audit?limit=2' });
    expect(res.statusCode).toBe(200);
    const page = res.json();
    expect(page.items).toHaveLength(2);
    expect(page.items[0]).toMatchObject({
      requestId: 'req-1', actor: 'unix', action: 'namespace.create', method: 'POST', namespace: 'blue', status: 201, outcome: 'success', code: null,
    });
    expect(page.items[0].ops.map((o: { kind: string }) => o.kind)).toEqual(
      expect.arrayContaining(['netns.add', 'netns.loopbackUp', 'netns.assignNsid']),
    );
    expect(page.items[0].ops.find((o: { kind: string }) => o.kind === 'netns.add').argv).toEqual([[expect.stringMatching(/\/ip$/), 'netns', 'add', 'blue']]);
    expect(page.items[1]).toMatchObject({ status: 409, outcome: 'failure', code: 'NAMESPACE_EXISTS' });
    const rest = (await app.inject({ url: `/v1/audit?cursor=${page.next}` })).json();
    expect(rest.items).toHaveLength(1);
    expect(rest.items[0]).toMatchObject({ action: 'namespace.delete', status: 204 });
    expect(rest.next).toBeUndefined();
  });

  it('does not audit reads', async () => {
    const { app } = await buildTestApp();
    await app.inject({ url: '/v1/namespaces' });
    expect((await app.inject({ url: '/v1/audit' })).json().items).toEqual([]);
  });
});

describe('system endpoints', () => {
  it('reports capabilities from the probe', async () => {
    const { app } = await buildTestApp();
    const caps = (await app.inject({ url: '/v1/capabilities' })).json();
    expect(caps.tools).toEqual({ ip: '6.1.0', tc: '6.1.0', nft: '1.0.6', conntrack: '1.4.7' });
    expect(caps.linkKinds.supported).toContain('veth');
    expect(caps.nativeHelper).toBe(true);
  });

  it('answers /readyz 503 NOT_READY when the store does not answer', async () => {
    const { app, services } = await buildTestApp();
    services.db.close();
    const body = expectProblem(await app.inject({ url: '/readyz' }), 'NOT_READY', 503);
    expect(body.checks).toEqual({ store: 'failed' });
  });

  it('answers /readyz 503 NOT_READY when the executor does not answer', async () => {
    const { app, kernel } = await buildTestApp();
    expect((await app.inject({ url: '/readyz' })).json()).toEqual({ status: 'ready', checks: { store: 'ok', executor: 'ok' } });
    const { AppError } = await import('../../src/errors/app-error.js');
    kernel.pingError = new AppError('EXECUTOR_UNAVAILABLE', 'down');
    const body = expectProblem(await app.inject({ url: '/readyz' }), 'NOT_READY', 503);
    expect(body.checks).toEqual({ store: 'ok', executor: 'failed' });
    expect(body.retryable).toBe(true);
  });
});
