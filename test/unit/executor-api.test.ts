import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { FakeExecutor } from '../../src/executor/fake-executor.js';
import { buildTestApp, expectProblem, testConfig } from '../helpers/test-app.js';

const json = { 'content-type': 'application/json' };

describe('the executor behind the API', () => {
  it('answers 503 EXECUTOR_BUSY with Retry-After when the queue is full', async () => {
    const kernel = FakeExecutor.kernel({ delayMs: (op) => (op.kind === 'netns.add' ? 100 : 0) });
    const { app } = await buildTestApp({ kernel, config: { limits: { ...testConfig().limits, executorConcurrency: 1, executorQueue: 1 } } });
    const results = await Promise.all(
      ['q1', 'q2', 'q3', 'q4'].map((name) => app.inject({ method: 'POST', url: '/v1/namespaces', headers: json, payload: { name } })),
    );
    const busy = results.filter((r) => r.statusCode === 503);
    expect(busy.length).toBeGreaterThan(0);
    const body = expectProblem(busy[0]!, 'EXECUTOR_BUSY', 503);
    expect(body.retryable).toBe(true);
    expect(busy[0]!.headers['retry-after']).toBe('1');
    expect(results.some((r) => r.statusCode === 201)).toBe(true);
  });

  it('finishes a started change when the client hangs up', async () => {
    const kernel = FakeExecutor.kernel({ delayMs: (op) => (op.kind === 'netns.add' ? 150 : 0) });
    const { app } = await buildTestApp({ kernel });
    const url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
    await new Promise<void>((resolve) => {
      const req = request({ host: url.hostname, port: url.port, method: 'POST', path: '/v1/namespaces', headers: json });
      req.on('error', () => resolve());
      req.end(JSON.stringify({ name: 'abandoned' }));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 40);
    });
    expect(kernel.namespace('abandoned')).toBeUndefined();
    for (let i = 0; i < 50 && !kernel.namespace('abandoned')?.loopbackUp; i++) await new Promise((r) => setTimeout(r, 20));
    expect(kernel.namespace('abandoned')).toMatchObject({ loopbackUp: true, nsid: 0 });
    const ns = (await app.inject({ url: '/v1/namespaces/abandoned' })).json();
    expect(ns.managed).toBe(true);
    // ...and audited, though nobody was there to read the answer.
    const audit = (await app.inject({ url: '/v1/audit' })).json().items;
    expect(audit).toEqual([expect.objectContaining({ action: 'namespace.create', namespace: 'abandoned', status: 201, outcome: 'success' })]);
  });
});
