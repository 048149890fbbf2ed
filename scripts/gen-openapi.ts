/**
 * Writes openapi/openapi.json: the OpenAPI document of the app built over the fake kernel (no
 * root needed). A unit test fails when the committed file differs from what the app serves.
 * Run: npm run gen:openapi
 */
import { writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { buildServer, buildServices } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { FakeExecutor } from '../src/executor/fake-executor.js';
import { FakeKernelDirectory } from '../src/namespaces/netns-dir.js';

/** The document as the app serves it, serialized the way the committed file is. */
export async function renderOpenApi(): Promise<string> {
  const loaded = loadConfig({ argv: [], env: {} });
  if (loaded.kind !== 'run') throw new Error('unexpected');
  const kernel = FakeExecutor.kernel();
  const services = await buildServices({ ...loaded.config, dataDir: ':memory:' }, pino({ level: 'silent' }), {
    executor: kernel,
    dir: new FakeKernelDirectory(kernel),
  });
  const app = await buildServer(services, { trust: { kind: 'unix' } });
  try {
    return `${JSON.stringify(app.swagger(), null, 2)}\n`;
  } finally {
    await app.close();
    await services.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = new URL('../openapi/openapi.json', import.meta.url);
  writeFileSync(out, await renderOpenApi());
  console.log(`wrote ${out.pathname}`);
}
