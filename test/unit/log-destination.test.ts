import { describe, expect, it } from 'vitest';
import { TurnBufferedDestination } from '../../src/log-destination.js';

const turn = () => new Promise<void>((r) => setImmediate(r));

function recorder(fail?: (call: number) => NodeJS.ErrnoException | undefined) {
  const writes: string[] = [];
  let calls = 0;
  const write = (_fd: number, data: Buffer, offset: number): number => {
    const err = fail?.(++calls);
    if (err) throw err;
    // Writes at most 10 bytes at a time, as a pipe may take part of a write.
    const n = Math.min(10, data.length - offset);
    writes.push(data.subarray(offset, offset + n).toString());
    return n;
  };
  return { writes, write, calls: () => calls };
}

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });

describe('TurnBufferedDestination', () => {
  it("writes a turn's lines together, in order, at the end of the turn", async () => {
    const r = recorder();
    const d = new TurnBufferedDestination(1, r.write);
    d.write('{"a":1}\n');
    d.write('{"b":2}\n');
    expect(r.writes).toEqual([]);
    await turn();
    expect(r.writes.join('')).toBe('{"a":1}\n{"b":2}\n');
  });

  it('writes at once when 64 KiB are waiting, and everything left on flushSync', () => {
    const r = recorder();
    const d = new TurnBufferedDestination(1, r.write);
    const line = `${'x'.repeat(1023)}\n`;
    for (let i = 0; i < 64; i++) d.write(line);
    expect(r.writes.join('').length).toBe(64 * 1024);
    d.write('last\n');
    d.flushSync();
    expect(r.writes.join('').endsWith('last\n')).toBe(true);
  });

  it('retries a full non-blocking pipe (EAGAIN) until the line is written', async () => {
    const r = recorder((n) => (n <= 2 ? errno('EAGAIN') : undefined));
    const d = new TurnBufferedDestination(1, r.write);
    d.write('after a full pipe\n');
    await turn();
    expect(r.writes.join('')).toBe('after a full pipe\n');
  });

  it('stops logging when nobody reads its output any more (EPIPE), without throwing', async () => {
    const r = recorder(() => errno('EPIPE'));
    const d = new TurnBufferedDestination(1, r.write);
    d.write('lost\n');
    await turn();
    const calls = r.calls();
    d.write('not tried\n');
    d.flushSync();
    expect(r.calls()).toBe(calls);
  });
});
