/**
 * Where a benchmark binds its namespaces (bench/netns-dir.ts): which runs stay in this process
 * and which re-run under unshare. Only the choice is tested here: the re-run itself needs root and
 * a mount namespace, and is what `npm run bench` does.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { chooseNetnsDir, MACHINE_DIR_OPTION } from '../../bench/netns-dir.js';

afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

describe('the benchmarks\' namespace directory', () => {
  it('runs here, without the option, when --machine-netns-dir is given', () => {
    expect(chooseNetnsDir(['units', MACHINE_DIR_OPTION, '--n', '5'])).toEqual({ argv: ['units', '--n', '5'] });
  });

  it('runs here once inside its own mount namespace (the re-run), with the argv unchanged', () => {
    vi.stubEnv('NETNSD_BENCH_PRIVATE_NETNS_DIR', '1');
    expect(chooseNetnsDir(['units', '--n', '5'])).toEqual({ argv: ['units', '--n', '5'] });
  });

  it('runs here for --help and when not root (the benchmark then says it needs root)', () => {
    expect(chooseNetnsDir(['units', '-h'])).toEqual({ argv: ['units', '-h'] });
    vi.spyOn(process, 'getuid').mockReturnValue(1000);
    expect(chooseNetnsDir(['units'])).toEqual({ argv: ['units'] });
  });
});
