import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors/app-error.js';
import { type BatchResult, BatchLedger } from '../../src/executor/batch-worker.js';

/**
 * Recorded by scripts/record-stderr.ts from `ip -force -batch -` reading:
 * 1 `netns add EXISTING`, 2 `xyzzy`, 3 `netns del MISSING`, 4 `netns add MISSING`, 5 `netns del MISSING`, 6 `xyzzy`.
 */
const transcript = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'stderr', 'batch-force.txt'), 'utf8');

function setup() {
  const ledger = new BatchLedger(16 * 1024);
  const results = new Map<number, BatchResult | AppError | 'sentinel'>();
  const request = (): number => {
    const n: number = ledger.request({ resolve: (r) => results.set(n, r), reject: (e) => results.set(n, e) });
    return n;
  };
  const sentinel = (): number => {
    const n: number = ledger.sentinel([{ resolve: () => results.set(n, 'sentinel'), reject: (e) => results.set(n, e) }]);
    return n;
  };
  return { ledger, results, request, sentinel };
}

describe('BatchLedger', () => {
  it.each([1, 3, 7, 64, transcript.length])('gives each line of a recorded batch its own result, read in chunks of %i', (size) => {
    const { ledger, results, request, sentinel } = setup();
    expect([request(), sentinel(), request(), request(), request(), sentinel()]).toEqual([1, 2, 3, 4, 5, 6]);
    for (let i = 0; i < transcript.length; i += size) ledger.feed(transcript.slice(i, i + size));
    expect(Object.fromEntries(results)).toEqual({
      1: { ok: false, stderr: 'Cannot create namespace file "/run/netns/nnx-rec-PID": File exists' },
      2: 'sentinel',
      3: { ok: false, stderr: 'Cannot remove namespace file "/run/netns/nnx-rec-missing-PID": No such file or directory' },
      4: { ok: true },
      5: { ok: true },
      6: 'sentinel',
    });
    expect(ledger.pendingRequests).toBe(0);
  });

  it('leaves lines after the last answer waiting', () => {
    const { ledger, results, request, sentinel } = setup();
    request();
    sentinel();
    request();
    ledger.feed('Object "xyzzy" is unknown, try "ip help".\nCommand failed -:2\n');
    expect(results.get(1)).toEqual({ ok: true });
    expect(results.has(3)).toBe(false);
    expect(ledger.pendingRequests).toBe(1);
  });

  it('rejects everything still waiting when the process is gone, and keeps its last words', () => {
    const { ledger, results, request, sentinel } = setup();
    request();
    sentinel();
    ledger.feed('Error: any valid prefix is expected rather than "1.2.3.4/33".\n');
    expect(ledger.unattributed).toBe('Error: any valid prefix is expected rather than "1.2.3.4/33".');
    ledger.failAll(new AppError('EXECUTOR_UNAVAILABLE', 'gone'));
    expect(results.get(1)).toMatchObject({ code: 'EXECUTOR_UNAVAILABLE' });
    expect(results.get(2)).toMatchObject({ code: 'EXECUTOR_UNAVAILABLE' });
  });

  it('abandons a timed-out request, and a later answer for its line settles nothing twice', () => {
    const { ledger, results, request } = setup();
    const n = request();
    expect(ledger.abandon(n, new AppError('EXECUTOR_TIMEOUT', 'slow'))).toBe(true);
    expect(ledger.abandon(n, new AppError('EXECUTOR_TIMEOUT', 'slow'))).toBe(false);
    ledger.feed('boom\nCommand failed -:1\n');
    expect(results.get(n)).toMatchObject({ code: 'EXECUTOR_TIMEOUT' });
  });

  it('bounds the stderr it keeps for a line', () => {
    const ledger = new BatchLedger(100);
    let result: BatchResult | undefined;
    ledger.request({ resolve: (r) => (result = r), reject: () => {} });
    ledger.feed(`${'x'.repeat(1000)}\n${'y'.repeat(1000)}\nCommand failed -:1\n`);
    expect(result).toMatchObject({ ok: false });
    expect(result?.ok === false && result.stderr.length).toBeLessThanOrEqual(100);
  });
});
