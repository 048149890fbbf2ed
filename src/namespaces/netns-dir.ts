/**
 * Where named network namespaces live: `ip netns` bind-mounts each one on /run/netns/NAME.
 * Reading the directory and stat-ing its entries answers "which namespaces exist" without a
 * process. A namespace's identity is its nsfs inode plus the inode's ctime: the kernel reuses
 * inode numbers at once, but the ctime of an nsfs inode is set when the inode is made and stays
 * while a bind mount holds it (checked on kernel 6.18), so the pair is unique over time.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { AppError } from '../errors/app-error.js';
import { join } from 'node:path';
import { isNamespaceName } from '../names.js';
import { HOST } from '../executor/ops.js';
import type { FakeKernel } from '../executor/fake-executor.js';

export interface NetnsEntry {
  readonly name: string;
  /** `${inode}-${ctime in ns}`: unique over time. */
  readonly id: string;
}

export interface NetnsDirectory {
  /** Every live named namespace (entries that are not nsfs mounts are left out). */
  list(): Promise<NetnsEntry[]>;
  /** One namespace (`host` for the daemon's own), or null when there is none of that name. */
  stat(name: string): Promise<NetnsEntry | null>;
  /** How many names there are (cheap: no stat of each). */
  count(): Promise<number>;
  /** The names in the directory (`host` left out), namespaces or not (yet). */
  names(): Promise<string[]>;
  /** Whether the name is in the directory, a namespace or not (yet: `ip netns add` mounts it after making the file). */
  present(name: string): Promise<boolean>;
}

export const DEFAULT_NETNS_DIR = '/run/netns';

/** The namespace of this name (`host` allowed), or NAMESPACE_NOT_FOUND: what every endpoint under /v1/namespaces/{ns} checks first. */
export async function existingNamespace(dir: NetnsDirectory, name: string): Promise<NetnsEntry> {
  const entry = await dir.stat(name);
  if (!entry) throw new AppError('NAMESPACE_NOT_FOUND', `There is no namespace '${name}'`);
  return entry;
}

/** The real directory. `hostPath` is the daemon's own namespace. */
export class KernelNetnsDirectory implements NetnsDirectory {
  private nsfsDev: bigint | undefined;

  constructor(
    private readonly dir = DEFAULT_NETNS_DIR,
    private readonly hostPath = '/proc/self/ns/net',
  ) {}

  /**
   * Synchronous: a stat of a /run/netns entry is a few µs, less than the thread-pool round trip
   * of an async one (and every request under /v1/namespaces/{ns} makes one).
   */
  private statPath(name: string, path: string): NetnsEntry | null {
    try {
      const st = statSync(path, { bigint: true });
      this.nsfsDev ??= statSync(this.hostPath, { bigint: true }).dev;
      // A file left behind by a failed `ip netns add` (no mount on it) is not a namespace.
      if (st.dev !== this.nsfsDev) return null;
      return { name, id: `${st.ino}-${st.ctimeNs}` };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  /** The names in the directory that we can address (`host`, which we reserve, is skipped). */
  private namesNow(): string[] {
    try {
      return readdirSync(this.dir).filter((n) => isNamespaceName(n) && n !== HOST);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  async names(): Promise<string[]> {
    return this.namesNow();
  }

  async present(name: string): Promise<boolean> {
    return isNamespaceName(name) && name !== HOST && existsSync(join(this.dir, name));
  }

  async list(): Promise<NetnsEntry[]> {
    return this.namesNow().flatMap((n) => this.statPath(n, join(this.dir, n)) ?? []);
  }

  async count(): Promise<number> {
    return this.namesNow().length;
  }

  async stat(name: string): Promise<NetnsEntry | null> {
    if (name === HOST) return this.statPath(HOST, this.hostPath);
    if (!isNamespaceName(name)) return null;
    return this.statPath(name, join(this.dir, name));
  }
}

/**
 * The directory of a FakeKernel (unit tests, the OpenAPI generator): its namespaces, each with an
 * id that changes when a name is made again, as the kernel's does.
 */
export class FakeKernelDirectory implements NetnsDirectory {
  private readonly ids = new WeakMap<object, NetnsEntry>();
  private next = 4026532000;

  constructor(private readonly kernel: FakeKernel) {}

  private entryOf(name: string): NetnsEntry | null {
    const ns = name === HOST ? this.kernel : this.kernel.namespace(name);
    if (!ns) return null;
    let e = this.ids.get(ns);
    if (!e) {
      const inode = String(this.next++);
      e = { name, id: `${inode}-${1764600000000000000n + BigInt(this.next)}` };
      this.ids.set(ns, e);
    }
    return e;
  }

  async list(): Promise<NetnsEntry[]> {
    return this.kernel.namespaceNames().map((n) => this.entryOf(n)!);
  }

  async stat(name: string): Promise<NetnsEntry | null> {
    return this.entryOf(name);
  }

  async count(): Promise<number> {
    return this.kernel.namespaceNames().length;
  }

  async names(): Promise<string[]> {
    return this.kernel.namespaceNames();
  }

  async present(name: string): Promise<boolean> {
    return name !== HOST && Boolean(this.kernel.namespace(name));
  }
}
