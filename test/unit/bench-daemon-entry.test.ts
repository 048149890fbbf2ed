/**
 * The benchmarks run the daemon as its bin runs: with the node options of its `#!` line
 * (bench/daemon.ts nodeFlagsOf), which `npm start` and the Dockerfile must give node too.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeFlagsOf } from '../../bench/daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'nnt-entry-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const entry = (first: string): string => {
  const f = join(dir, `e${Math.random().toString(36).slice(2)}.js`);
  writeFileSync(f, `${first}\nconsole.log(1);\n`);
  return f;
};

describe("the daemon entry's node options", () => {
  it('reads the options of an `env -S node` line, and none from a plain `env node` line or no line', () => {
    expect(nodeFlagsOf(entry('#!/usr/bin/env -S node --single-threaded-gc --max-semi-space-size=16'))).toEqual(['--single-threaded-gc', '--max-semi-space-size=16']);
    expect(nodeFlagsOf(entry('#!/usr/bin/env node'))).toEqual([]);
    expect(nodeFlagsOf(entry('console.log(0);'))).toEqual([]);
  });

  it('are the same in src/main.ts, `npm start` and the Dockerfile', () => {
    const flags = nodeFlagsOf(new URL('../../src/main.ts', import.meta.url).pathname);
    expect(flags).toContain('--single-threaded-gc');
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`node ${flags.join(' ')} dist/main.js`);
    const docker = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
    expect(docker).toContain(`ENTRYPOINT ["node", ${flags.map((f) => JSON.stringify(f)).join(', ')}, "/opt/netnsd/dist/main.js"]`);
  });
});
