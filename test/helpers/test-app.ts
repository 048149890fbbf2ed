/**
 * Unit-test harness: the whole app over a FakeKernel (no root, no processes) and an in-memory
 * store, driven with fastify's inject. `close()` is registered with vitest automatically.
 */
import { pino } from 'pino';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterEach, expect } from 'vitest';
import { buildServer, buildServices, type Services } from '../../src/app.js';
import { TokenStore } from '../../src/auth/tokens.js';
import { type Config, loadConfig } from '../../src/config.js';
import type { ErrorCode } from '../../src/errors/codes.js';
import { FakeExecutor, type FakeKernel } from '../../src/executor/fake-executor.js';
import { FakeKernelDirectory } from '../../src/namespaces/netns-dir.js';
import type { Trust } from '../../src/http/auth-hooks.js';
import { isAppError } from '../../src/errors/app-error.js';
import type { CounterSource } from '../../src/traffic/traffic-sampler.js';

export function testConfig(over: Partial<Config> = {}): Config {
  const loaded = loadConfig({ argv: [], env: {} });
  if (loaded.kind !== 'run') throw new Error('unexpected');
  return { ...loaded.config, dataDir: ':memory:', logLevel: 'silent', ...over };
}

export interface TestApp {
  readonly app: FastifyInstance;
  readonly services: Services;
  readonly kernel: FakeKernel;
  close(): Promise<void>;
}

const open: TestApp[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

export interface TestAppOptions {
  readonly config?: Partial<Config>;
  /** `unix` (default: trusted) or a tokens file path (TCP semantics). */
  readonly tokensFile?: string;
  readonly kernel?: FakeKernel;
  /** Traffic counters (default: the fake kernel's, see fakeCounters); null: none (like a daemon without the native helper). */
  readonly counters?: CounterSource | null;
}

/**
 * The fake kernel's link counters as a traffic counter source: tests change them through
 * `kernel.link(ns, name).counters`. A namespace that is gone fails with ENOENT, as the netlink read does.
 */
export function fakeCounters(kernel: FakeKernel): CounterSource {
  return async (ns) => {
    try {
      const { links } = await kernel.run({ kind: 'link.list', ns });
      return links.map((l) => ({ index: l.index, name: l.name, counters: { ...kernel.link(ns, l.name)!.counters } }));
    } catch (e) {
      if (isAppError(e) && e.code === 'NAMESPACE_NOT_FOUND') throw Object.assign(new Error(e.detail), { code: 'ENOENT' });
      throw e;
    }
  };
}

export async function buildTestApp(o: TestAppOptions = {}): Promise<TestApp> {
  const kernel = o.kernel ?? FakeExecutor.kernel();
  const config = testConfig(o.config);
  const services = await buildServices(config, pino({ level: 'silent' }), {
    executor: kernel,
    nativeHelper: true,
    dir: new FakeKernelDirectory(kernel),
    ...(o.counters === null ? {} : { counters: o.counters ?? fakeCounters(kernel) }),
  });
  let trust: Trust = { kind: 'unix' };
  if (o.tokensFile) {
    const store = new TokenStore(o.tokensFile);
    trust = { kind: 'tokens', tokens: () => store };
  }
  const app = await buildServer(services, { trust });
  const t: TestApp = {
    app,
    services,
    kernel,
    async close() {
      await app.close();
      await services.close();
    },
  };
  open.push(t);
  return t;
}

/** Asserts a problem+json answer with this code and status, and returns its body. */
export function expectProblem(res: LightMyRequestResponse, code: ErrorCode, status: number): Record<string, unknown> {
  const body = res.json() as Record<string, unknown>;
  expect({ status: res.statusCode, code: body.code }).toEqual({ status, code });
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(body).toMatchObject({ status, code, type: expect.stringContaining('problems/'), title: expect.any(String), detail: expect.any(String) });
  expect(body.requestId).toBe(res.headers['x-request-id']);
  return body;
}
