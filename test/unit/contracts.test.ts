import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, statusOf, type ErrorCode } from '../../src/errors/codes.js';
import { renderEventsSchema, renderOpenApi } from '../../scripts/gen-openapi.js';
import { buildTestApp } from '../helpers/test-app.js';

const root = new URL('../../', import.meta.url);

describe('contracts', () => {
  it('serves the committed openapi/openapi.json (run `npm run gen:openapi` after changing a schema)', async () => {
    const committed = readFileSync(new URL('openapi/openapi.json', root), 'utf8');
    expect(await renderOpenApi()).toBe(committed);
    const { app } = await buildTestApp();
    expect((await app.inject({ url: '/openapi.json' })).json()).toEqual(JSON.parse(committed));
  });

  it('has the committed openapi/events.schema.json, the JSON Schema of event messages', () => {
    expect(renderEventsSchema()).toBe(readFileSync(new URL('openapi/events.schema.json', root), 'utf8'));
  });

  it('lists every error code in the README with its status, and no other', () => {
    const readme = readFileSync(new URL('README.md', root), 'utf8');
    const rows = [...readme.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]);
    const table = (Object.keys(ERROR_CODES) as ErrorCode[]).map((c) => [c, statusOf(c)]);
    expect(new Map(rows as [string, number][])).toEqual(new Map(table as [string, number][]));
  });
});
