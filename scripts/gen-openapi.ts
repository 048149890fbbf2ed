/**
 * Writes openapi/openapi.json: the OpenAPI document of the app built over the fake kernel (no
 * root needed), and openapi/events.schema.json: the JSON Schema of what event streams carry.
 * Unit tests fail when a committed file differs from what the code makes.
 * Run: npm run gen:openapi
 */
import { writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { buildServer, buildServices } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { FakeExecutor } from '../src/executor/fake-executor.js';
import { FakeKernelDirectory } from '../src/namespaces/netns-dir.js';
import { EventSchema, GapSchema, StreamErrorSchema, SubscribedSchema, SubscribeMessageSchema } from '../src/events/event-schema.js';
import { TrafficAlertEventSchema, TrafficAlertSchema, TrafficSampleSchema } from '../src/traffic/traffic-schema.js';

/** The JSON Schema of the messages on GET /v1/events, serialized the way the committed file is. */
export function renderEventsSchema(): string {
  const strip = (s: object): object => JSON.parse(JSON.stringify(s, (k, v) => (k === '$id' ? undefined : v))) as object;
  const doc = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://netnsd.dev/schemas/events.json',
    title: 'netnsd event stream messages',
    description: 'What GET /v1/events sends (as WebSocket text messages, or as SSE data lines), and what a WebSocket client may send.',
    oneOf: [{ $ref: '#/$defs/Event' }, { $ref: '#/$defs/Gap' }, { $ref: '#/$defs/TrafficSample' }, { $ref: '#/$defs/Subscribed' }, { $ref: '#/$defs/StreamError' }],
    $defs: {
      Event: strip(EventSchema),
      Gap: strip(GapSchema),
      TrafficSample: strip(TrafficSampleSchema),
      TrafficAlertEvent: strip(TrafficAlertEventSchema),
      Subscribed: strip(SubscribedSchema),
      StreamError: strip(StreamErrorSchema),
      SubscribeMessage: strip(SubscribeMessageSchema),
      TrafficAlert: strip(TrafficAlertSchema),
    },
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

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
  const events = new URL('../openapi/events.schema.json', import.meta.url);
  writeFileSync(events, renderEventsSchema());
  console.log(`wrote ${events.pathname}`);
}
