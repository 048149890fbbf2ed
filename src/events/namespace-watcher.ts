/**
 * The source of `namespace.added` / `namespace.removed`: whoever makes or removes a named
 * namespace (netnsd, `ip netns`, a container runtime), /run/netns changes. The watcher rescans on
 * every change of the directory and diffs the names and identities (a namespace removed and made
 * again under the same name is a removal and an addition). `ip netns add` creates the file before
 * it mounts the namespace on it, and the mount changes nothing in the directory, so while a name
 * is not yet a namespace the watcher looks again shortly.
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
  private again = false;
  private retries = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly o: NamespaceWatcherOptions) {}

  /** Compares what exists with what was persisted (one resync event for the differences), then watches. */
  async start(): Promise<void> {
    this.seen = this.o.inventory.all<Seen>(KIND);
    // Watch first, then compare: a change in between is then seen twice at worst, never missed.
    if (this.o.watchPath !== undefined) {
      mkdirSync(this.o.watchPath, { recursive: true, mode: 0o755 });
      this.watcher = watch(this.o.watchPath, { persistent: false }, () => {
        this.retries = 0; // a new change: the names it makes get their own retries
        void this.rescan();
      });
      this.watcher.on('error', (e) => this.o.log.error({ err: e }, 'watching the namespace directory failed'));
    }
    const differences = await this.diff();
    if (differences.length > 0) {
      this.o.bus.publish([{ type: 'resync', namespace: null, reason: 'start', namespaces: [...new Set(differences.map((d) => d.namespace as string))].sort(), differences }]);
    }
  }

  /** Re-reads the directory and publishes what changed. Concurrent calls coalesce. */
  async rescan(): Promise<void> {
    if (this.stopped) return;
    if (this.scanning) {
      this.again = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      try {
        do {
          this.again = false;
          const events = await this.diff();
          if (events.length > 0) this.o.bus.publish(events);
        } while (this.again && !this.stopped);
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

  /** The events that turn what was seen into what exists now; updates seen and the store. */
  private async diff(): Promise<NewEvent[]> {
    const entries = await this.o.dir.list();
    const pending = (await this.o.dir.count()) > entries.length;
    const now = new Map<string, NetnsEntry>(entries.filter((e) => e.name !== HOST).map((e) => [e.name, e]));
    const events: NewEvent[] = [];
    const puts: Array<[string, Seen]> = [];
    const deletes: string[] = [];
    for (const [name, s] of this.seen) {
      const e = now.get(name);
      if (e === undefined || e.id !== s.id) {
        events.push({ type: 'namespace.removed', namespace: name, object: s.object });
        this.seen.delete(name);
        deletes.push(name);
      }
    }
    for (const [name, e] of now) {
      if (this.seen.has(name) || this.o.busy?.(name)) continue;
      const object = (await this.o.view(name).catch(() => undefined)) ?? { name, id: e.id };
      const s: Seen = { id: e.id, object };
      this.seen.set(name, s);
      puts.push([name, s]);
      events.push({ type: 'namespace.added', namespace: name, object });
    }
    this.o.inventory.apply(KIND, puts, deletes.filter((d) => !puts.some(([p]) => p === d)));
    // A name that is not a namespace yet (created, not yet mounted): look again soon.
    clearTimeout(this.retryTimer);
    if (pending && this.retries < PENDING_RETRIES && !this.stopped) {
      this.retries++;
      this.retryTimer = setTimeout(() => void this.rescan(), PENDING_RETRY_MS);
    } else if (!pending) this.retries = 0;
    return events;
  }
}
