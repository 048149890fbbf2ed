/**
 * Where the daemon's log lines go: a file descriptor (stdout), written synchronously once per
 * turn of the event loop with every line of that turn. pino's own choices cost more in the
 * `units` benchmark: a synchronous write per line is a syscall per line (~4% of the daemon's
 * work), and sonic-boom's asynchronous mode hands each write to a libuv pool thread, whose wake-up
 * takes the CPU from the event loop on a small machine. Lines reach the file in order, at the end
 * of the turn that logged them (or sooner, when MAX_BYTES are waiting), and at exit whatever is
 * left is written. Only a kill (SIGKILL) in the middle of a turn loses that turn's lines.
 */
import { writeSync } from 'node:fs';

/** Bytes that are written at once rather than at the end of the turn. */
const MAX_BYTES = 64 * 1024;

/** How long to wait before retrying a write to a full non-blocking pipe (ms). */
const RETRY_MS = 5;
/** Then give up on the lines (a reader that never reads must not stop the daemon). */
const RETRY_FOR_MS = 5000;

export class TurnBufferedDestination {
  private lines: string[] = [];
  private bytes = 0;
  private scheduled: NodeJS.Immediate | undefined;
  private broken = false;
  private readonly sleeper = new Int32Array(new SharedArrayBuffer(4));

  constructor(
    private readonly fd: number,
    private readonly write_ = (fd: number, data: Buffer, offset: number): number => writeSync(fd, data, offset),
  ) {}

  /** pino's destination interface: one line (with its newline). */
  write(line: string): void {
    if (this.broken) return;
    this.lines.push(line);
    this.bytes += line.length;
    if (this.bytes >= MAX_BYTES) this.flushSync();
    else this.scheduled ??= setImmediate(() => this.flushSync());
  }

  /** Writes every waiting line now (at exit, and at the end of each turn). */
  flushSync(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    if (this.lines.length === 0) return;
    const data = Buffer.from(this.lines.join(''));
    this.lines = [];
    this.bytes = 0;
    let offset = 0;
    let waited = 0;
    while (offset < data.length && !this.broken) {
      try {
        offset += this.write_(this.fd, data, offset);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if ((code === 'EAGAIN' || code === 'EBUSY') && waited < RETRY_FOR_MS) {
          Atomics.wait(this.sleeper, 0, 0, RETRY_MS);
          waited += RETRY_MS;
          continue;
        }
        // EPIPE (nobody reads our stdout any more), or a reader stuck for seconds: logging stops
        // rather than the daemon. Anything else is dropped with this batch.
        if (code === 'EPIPE') this.broken = true;
        return;
      }
    }
  }
}
