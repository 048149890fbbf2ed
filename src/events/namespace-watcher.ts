/**
 * The source of `namespace.added` / `namespace.removed`: whoever makes or removes a named
 * namespace (netnsd, `ip netns`, a container runtime), /run/netns changes. The watcher looks at
 * the names each change of the directory names (inotify says which) and compares their identities
 * with what it saw (a namespace removed and made again under the same name is a removal and an
 * addition); a change that names nothing makes it rescan the whole directory. Looking at the named
 * entries only keeps N creations O(N), where a rescan of every entry per change was O(N²).
 * `ip netns add` creates the file before it mounts the namespace on it, and the mount changes
 * nothing in the directory, so while a name is not yet a namespace the watcher looks again
 * shortly.
 *
 * What it saw is persisted; at start the differences to what exists now (changes made while
 * netnsd was down) are published as one `resync` event.
 */
import { mkdirSync, watch, type FSWatcher } from 'node:fs';
import type { Logger } from 'pino';
import { HOST } from '../executor/ops.js';
import type { NetnsDirectory, NetnsEntry } from '../namespaces/netns-dir.js';
import type { Namespace } from '../namespaces/namespace-schema.js';
import type { EventInventory } from '../store/event-inventory.js';
import type { NewEvent } from '../store/event-log.js';
import type { EventBus } from './event-bus.js';

/** What the watcher keeps of a namespace: its identity and its last view. */
interface Seen {
  readonly id: string;
  readonly object: Namespace | { readonly name: string; readonly id: string };
}

export interface NamespaceWatcherOptions {
  readonly dir: NetnsDirectory;
  readonly bus: EventBus;
  readonly inventory: EventInventory;
  /** The view of a namespace (what GET /v1/namespaces/{name} answers), or undefined when it is gone. */
  readonly view: (name: string) => Promise<Namespace | undefined>;
  readonly log: Logger;
  /** Watch this directory for changes; undefined: do not watch (tests call rescan()). */
  readonly watchPath?: string;
  /**
   * Names netnsd is creating right now: left for the rescan after the creation (its record, with
   * `managed` and labels, is written only at the end), so the event shows the finished namespace.
   */
  readonly busy?: (name: string) => boolean;
}

const KIND = 'namespace';
const PENDING_RETRY_MS = 20;
const PENDING_RETRIES = 50;

export class NamespaceWatcher {
  private seen = new Map<string, Seen>();
  private watcher: FSWatcher | undefined;
  private scanning: Promise<void> | undefined;
  /** What the next pass looks at: every entry, and/or these names. */
  private wantAll = false;
  private readonly wanted = new Set<string>();
  /** Names that are files but not namespaces yet (created, not yet mounted), and their retries. */
  private readonly pending = new Map<string, number>();
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Views a creation has just made (rescan's `known`), used once instead of asking for them. */
  private readonly known = new Map<string, Namespace>();

  constructor(private readonly o: NamespaceWatcherOptions) {}

  /** Compares what exists with what was persisted (one resync event for the differences), then watches. */
  async start(): Promise<void> {
    this.seen = this.o.inventory.all<Seen>(KIND);
    // Watch first, then compare: a change in between is then seen twice at worst, never missed.
    if (this.o.watchPath !== undefined) {
      mkdirSync(this.o.watchPath, { recursive: true, mode: 0o755 });
      this.watcher = watch(this.o.watchPath, { persistent: false }, (_type, filename) => {
        // A new change: the name it makes gets its own retries.
        if (typeof filename === 'string' && filename !== '') {
          this.pending.delete(filename);
          void this.rescan([filename]);
        } else {
          this.pending.clear();
          void this.rescan();
        }
      });
      this.watcher.on('error', (e) => this.o.log.error({ err: e }, 'watching the namespace directory failed'));
    }
    const differences = await this.diff(await this.o.dir.list(), true);
    if (differences.length > 0) {
      this.o.bus.publish([{ type: 'resync', namespace: null, reason: 'start', namespaces: [...new Set(differences.map((d) => d.namespace as string))].sort(), differences }]);
    }
  }

  /**
   * Looks at these names (default: the whole directory) and publishes what changed. Calls during
   * a pass are merged into one more pass.
   */
  async rescan(names?: readonly string[], known?: readonly Namespace[]): Promise<void> {
    if (this.stopped) return;
    for (const v of known ?? []) this.known.set(v.name, v);
    if (names === undefined) this.wantAll = true;
    else for (const n of names) this.wanted.add(n);
    if (this.scanning) return this.scanning;
    this.scanning = (async () => {
      try {
        while ((this.wantAll || this.wanted.size > 0) && !this.stopped) {
          const all = this.wantAll;
          const only = [...this.wanted];
          this.wantAll = false;
          this.wanted.clear();
          const events = all ? await this.diff(await this.o.dir.list(), true) : await this.diff(await this.entriesOf(only), false, only);
          // Used or not (the name was announced already), a creation's view is good once only.
          if (all) this.known.clear();
          else for (const n of only) this.known.delete(n);
          if (events.length > 0) this.o.bus.publish(events);
        }
      } catch (e) {
        this.o.log.error({ err: e }, 'rescanning the namespace directory failed');
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    clearTimeout(this.retryTimer);
  }

  private async entriesOf(names: readonly string[]): Promise<NetnsEntry[]> {
    const entries = await Promise.all(names.filter((n) => n !== HOST).map((n) => this.o.dir.stat(n)));
    return entries.filter((e): e is NetnsEntry => e !== null);
  }

  /**
   * The events that turn what was seen into what exists now, for every name (`all`) or for the
   * names looked at; updates seen and the store.
   */
  private async diff(entries: readonly NetnsEntry[], all: boolean, looked: readonly string[] = []): Promise<NewEvent[]> {
    const now = new Map<string, NetnsEntry>(entries.filter((e) => e.name !== HOST).map((e) => [e.name, e]));
    const events: NewEvent[] = [];
    const puts: Array<[string, Seen]> = [];
    const deletes: string[] = [];
    const candidates = all ? [...this.seen.keys()] : looked.filter((n) => this.seen.has(n));
    for (const name of candidates) {
      const s = this.seen.get(name)!;
      const e = now.get(name);
      if (e === undefined || e.id !== s.id) {
        events.push({ type: 'namespace.removed', namespace: name, object: s.object });
        this.seen.delete(name);
        deletes.push(name);
      }
    }
    for (const [name, e] of now) {
      this.pending.delete(name);
      if (this.seen.has(name) || this.o.busy?.(name)) continue;
      const made = this.known.get(name);
      this.known.delete(name);
      const object = (made?.id === e.id ? made : await this.o.view(name).catch(() => undefined)) ?? { name, id: e.id };
      const s: Seen = { id: e.id, object };
      this.seen.set(name, s);
      puts.push([name, s]);
      events.push({ type: 'namespace.added', namespace: name, object });
    }
    this.o.inventory.apply(KIND, puts, deletes.filter((d) => !puts.some(([p]) => p === d)));
    // A name that is a file but not a namespace yet (created, not yet mounted): look again soon.
    const names = all ? await this.o.dir.names() : looked;
    for (const name of names) {
      if (now.has(name) || name === HOST || !(await this.o.dir.present(name))) {
        this.pending.delete(name);
        continue;
      }
      const tries = this.pending.get(name) ?? 0;
      if (tries < PENDING_RETRIES) this.pending.set(name, tries + 1);
      else this.pending.delete(name);
    }
    clearTimeout(this.retryTimer);
    if (this.pending.size > 0 && !this.stopped) {
      this.retryTimer = setTimeout(() => void this.rescan([...this.pending.keys()]), PENDING_RETRY_MS);
    }
    return events;
  }
}
