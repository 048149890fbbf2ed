/**
 * Network namespaces: what exists comes from the kernel (the /run/netns directory and the daemon's
 * own namespace as `host`); ownership and labels come from the store. Privileged work goes through
 * the executor only.
 */
import { AppError } from '../errors/app-error.js';
import type { Executor, OpContext } from '../executor/executor.js';
import { HOST, type NamespaceSnapshot, type OpResults } from '../executor/ops.js';
import { type LabelSelector, type Labels, MAX_LABELS, matchesSelector, mergeLabels } from '../labels.js';
import { type Page, paginate } from '../paging.js';
import type { NamespaceRecord, NamespaceRecords } from '../store/namespace-records.js';
import { existingNamespace, type NetnsDirectory, type NetnsEntry } from './netns-dir.js';
import type { Namespace } from './namespace-schema.js';

/** Kill-and-rescan rounds of a forced delete before it gives up. */
const KILL_ROUNDS = 5;

export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface NamespaceServiceOptions {
  readonly executor: Executor;
  readonly records: NamespaceRecords;
  readonly dir: NetnsDirectory;
  readonly log: Logger;
  /** Most named namespaces netnsd will create (those found on the machine count too). */
  readonly maxNamespaces: number;
  readonly now?: () => Date;
}

export interface ListFilter {
  readonly selector: LabelSelector;
  readonly managed?: boolean | undefined;
  /** The caller's namespace visibility (token patterns). */
  readonly visible: (name: string) => boolean;
  readonly limit?: number | undefined;
  readonly cursor?: string | undefined;
}

/**
 * A listener to the end of a creation: the namespace as made, or undefined when it failed, and
 * the dumps its add took of it (for the monitor's seed), when it took them.
 */
export type CreateSettled = (name: string, made: Namespace | undefined, snapshot?: NamespaceSnapshot) => void | Promise<void>;

/** How long a count of /run/netns is trusted (see NamespaceService.namespaceCount). */
const COUNT_FRESH_MS = 1000;

export class NamespaceService {
  private readonly ex: Executor;
  private readonly records: NamespaceRecords;
  private readonly dir: NetnsDirectory;
  private readonly log: Logger;
  private readonly maxNamespaces: number;
  private readonly now: () => Date;
  /** The change running on each name: changes of one name run one after another. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Creations under way, counted against maxNamespaces before they exist. */
  private creating = 0;
  /** The last count of /run/netns (see namespaceCount) and the creations that ended well since. */
  private counted: { readonly n: number; readonly at: number } | undefined;
  private madeSinceCount = 0;

  constructor(o: NamespaceServiceOptions) {
    this.ex = o.executor;
    this.records = o.records;
    this.dir = o.dir;
    this.log = o.log;
    this.maxNamespaces = o.maxNamespaces;
    this.now = o.now ?? (() => new Date());
  }

  /**
   * Runs `change` after every earlier change of the same name has ended. The pool orders ops, not
   * changes: without this a delete's final step could remove a namespace a concurrent create
   * just made, after checking a different one.
   */
  private serialize<T>(name: string, change: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    const run = prev.then(change, change);
    const tail = run.catch(() => undefined);
    this.locks.set(name, tail);
    void tail.then(() => {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    });
    return run;
  }

  /** Resolves when every change under way has ended (before the executor and store close). */
  async drain(): Promise<void> {
    while (this.locks.size > 0) await Promise.allSettled([...this.locks.values()]);
  }

  /**
   * Drops records of namespaces that disappeared while netnsd was down, or whose name now holds
   * another namespace (that one is listed as unmanaged). Called once at start.
   */
  async reconcile(): Promise<{ dropped: string[] }> {
    const dropped: string[] = [];
    for (const rec of this.records.all()) {
      const entry = await this.dir.stat(rec.name);
      if (rec.name === HOST) {
        // The root namespace gets a new identity at every boot; its labels are kept.
        if (entry && entry.id !== rec.id) this.records.put({ ...rec, id: entry.id });
        continue;
      }
      if (!entry || entry.id !== rec.id) {
        this.records.delete(rec.name);
        dropped.push(rec.name);
        this.log.warn(
          { namespace: rec.name, managed: rec.managed, reason: entry ? 'replaced' : 'gone' },
          entry
            ? 'namespace was replaced by another of the same name while netnsd was down; it is now unmanaged'
            : 'namespace disappeared while netnsd was down; its record is dropped',
        );
      }
    }
    return { dropped };
  }

  /** The record that belongs to this very namespace, or undefined (a stale record is dropped). */
  private recordFor(entry: NetnsEntry): NamespaceRecord | undefined {
    const rec = this.records.get(entry.name);
    if (!rec) return undefined;
    if (rec.id === entry.id) return rec;
    if (entry.name === HOST) return { ...rec, id: entry.id };
    this.records.delete(rec.name);
    this.log.warn({ namespace: rec.name }, 'namespace was replaced behind netnsd; it is now unmanaged');
    return undefined;
  }

  /** `knownNsid`, `knownLinkCount`: what a creation has just given it and read (not read again). */
  private async view(entry: NetnsEntry, ctx?: OpContext, knownNsid?: number, knownLinkCount?: number): Promise<Namespace> {
    const rec = this.recordFor(entry);
    const isHost = entry.name === HOST;
    const [nsid, linkCount] = await Promise.all([
      isHost
        ? Promise.resolve(null)
        : knownNsid !== undefined
          ? Promise.resolve(knownNsid < 0 ? null : knownNsid)
          : this.ex.run({ kind: 'netns.getNsid', ns: entry.name }, ctx).then((r) => (r.nsid < 0 ? null : r.nsid)),
      knownLinkCount !== undefined ? knownLinkCount : this.ex.run({ kind: 'netns.linkNames', ns: entry.name }, ctx).then((r) => r.names.length),
    ]);
    return {
      name: entry.name,
      id: entry.id,
      managed: rec?.managed ?? false,
      labels: { ...(rec?.labels ?? {}) },
      nsid,
      createdAt: rec?.createdAt ?? null,
      linkCount,
    };
  }

  private entry(name: string): Promise<NetnsEntry> {
    return existingNamespace(this.dir, name);
  }

  /** Every namespace the caller may see, `host` included, ordered by name. */
  async list(f: ListFilter): Promise<Page<Namespace>> {
    const named = await this.dir.list();
    const host = await this.dir.stat(HOST);
    const entries = (host ? [host, ...named] : named)
      .filter((e) => f.visible(e.name))
      .filter((e) => {
        if (f.managed === undefined && f.selector.requirements.length === 0) return true;
        const rec = this.recordFor(e);
        if (f.managed !== undefined && (rec?.managed ?? false) !== f.managed) return false;
        return matchesSelector(rec?.labels ?? {}, f.selector);
      })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const page = paginate(entries, (e) => e.name, f.limit, f.cursor);
    // A namespace deleted between the scan and its view is left out of the page.
    const items = await Promise.all(page.items.map((e) => this.view(e).catch(notFoundToNull)));
    return { items: items.filter((i): i is Namespace => i !== null), ...(page.next ? { next: page.next } : {}) };
  }

  async get(name: string): Promise<Namespace> {
    return this.view(await this.entry(name)).catch((e: unknown) => {
      throw notFoundAs(e, name);
    });
  }

  /**
   * Creates a namespace with loopback up and an nsid (the event monitor needs nsids). A failure
   * after the namespace exists removes it again, so a failed request leaves nothing behind.
   */
  private readonly creatingNames = new Set<string>();
  private readonly settledListeners: Array<CreateSettled> = [];

  async create(name: string, labels: Labels, ctx: OpContext): Promise<Namespace> {
    if (name === HOST) {
      throw new AppError('NAMESPACE_RESERVED', "'host' is the reserved name of the root namespace");
    }
    const count = (await this.namespaceCount()) + this.creating;
    if (count >= this.maxNamespaces) {
      throw new AppError('NAMESPACE_LIMIT_REACHED', `There are ${count} namespaces; the configured limit is ${this.maxNamespaces}`);
    }
    this.creating++;
    this.creatingNames.add(name);
    let made: Namespace | undefined;
    let snapshot: NamespaceSnapshot | undefined;
    try {
      ({ made, snapshot } = await this.serialize(name, () => this.createNow(name, labels, ctx)));
      this.madeSinceCount++;
      return made;
    } finally {
      this.creating--;
      this.creatingNames.delete(name);
      // The answer waits for them (the namespace announced and watched), never fails for them.
      const view = made;
      const taken = snapshot;
      await Promise.allSettled(this.settledListeners.map(async (l) => l(name, view, taken)));
    }
  }

  /**
   * The namespaces that count against maxNamespaces, creations under way aside. Reading /run/netns
   * costs ~0.25 ms with a few hundred names, and a busy client creates many a second: the
   * directory is read again when the last count is older than COUNT_FRESH_MS, or when it and the
   * creations netnsd finished since reach the limit (a refusal always rests on a fresh count).
   * Deletions since are not subtracted (an overestimate, corrected by the next count); what
   * others created within the last second may go uncounted.
   */
  private async namespaceCount(): Promise<number> {
    const now = performance.now();
    const c = this.counted;
    if (c && now - c.at < COUNT_FRESH_MS && c.n + this.madeSinceCount + this.creating < this.maxNamespaces) return c.n + this.madeSinceCount;
    const n = await this.dir.count();
    this.counted = { n, at: performance.now() };
    this.madeSinceCount = 0;
    return n;
  }

  /** Whether netnsd is creating this namespace right now (its record is not written yet). */
  isCreating(name: string): boolean {
    return this.creatingNames.has(name);
  }

  /**
   * Calls `l` with the name whenever a creation ends, made (with the namespace as the creation
   * answers it) or failed; the creation answers once `l` has settled.
   */
  onCreateSettled(l: CreateSettled): void {
    this.settledListeners.push(l);
  }

  /** The namespace made, and the dumps its add took of it (when it took them). */
  private async createNow(name: string, labels: Labels, ctx: OpContext): Promise<{ made: Namespace; snapshot?: NamespaceSnapshot }> {
    const rest: OpContext = { ...ctx, continues: true };
    let added: OpResults['netns.add'];
    try {
      added = await this.ex.run({ kind: 'netns.add', ns: name }, ctx);
    } catch (e) {
      // A worker that died or timed out may have run the add: remove what it may have left.
      if (e instanceof AppError && (e.code === 'EXECUTOR_TIMEOUT' || e.code === 'EXECUTOR_UNAVAILABLE') && (await this.dir.stat(name))) {
        await this.undoCreate(name, rest);
      }
      throw e;
    }
    let step = 'loopbackUp';
    try {
      await this.ex.run({ kind: 'netns.loopbackUp', ns: name }, rest);
      step = 'assignNsid';
      // The addon's add gives the nsid and reads the links' names on its own threads.
      const nsid = added?.nsid ?? (await this.ex.run({ kind: 'netns.assignNsid', ns: name }, rest)).nsid;
      step = 'stat';
      const entry = await this.dir.stat(name);
      if (!entry) throw new AppError('NAMESPACE_BUSY', 'The namespace was removed by someone else while it was being created', { meta: { step } });
      this.records.put({ name, id: entry.id, managed: true, createdAt: this.now().toISOString(), labels });
      const made = await this.view(entry, rest, nsid, added?.linkNames?.length);
      return { made, ...(added?.snapshot ? { snapshot: added.snapshot } : {}) };
    } catch (e) {
      await this.undoCreate(name, rest);
      if (e instanceof AppError) {
        // NAMESPACE_NOT_FOUND here means it vanished under us: a conflict, not a missing resource.
        const code = e.code === 'NAMESPACE_NOT_FOUND' ? 'NAMESPACE_BUSY' : e.code;
        throw new AppError(code, `Creating namespace '${name}' failed at step ${step}: ${e.detail}; it was removed again`, {
          cause: e,
          meta: { ...e.meta, step },
          ...(e.headers ? { headers: e.headers } : {}),
        });
      }
      throw e;
    }
  }

  private async undoCreate(name: string, ctx: OpContext): Promise<void> {
    await this.ex.run({ kind: 'netns.delete', ns: name }, ctx).catch((undoErr: unknown) => {
      if (undoErr instanceof AppError && undoErr.code === 'NAMESPACE_NOT_FOUND') return;
      this.log.warn({ namespace: name, err: undoErr }, 'could not remove a half-created namespace');
    });
    this.records.delete(name);
  }

  /** Merges a labels patch (RFC 7396). Works on unmanaged namespaces and `host` too: labels are netnsd's. */
  async updateLabels(name: string, patch: Readonly<Record<string, string | null>> | null, ctx: OpContext): Promise<Namespace> {
    return this.serialize(name, async () => {
      const entry = await this.entry(name);
      const rec = this.recordFor(entry);
      // RFC 7396: `"labels": null` removes every label.
      const labels = patch === null ? {} : mergeLabels(rec?.labels ?? {}, patch);
      const count = Object.keys(labels).length;
      if (count > MAX_LABELS) {
        throw new AppError('REQUEST_INVALID', `The patch would leave ${count} labels; at most ${MAX_LABELS} are allowed`, {
          meta: { errors: [{ field: 'body.labels', message: `would leave more than ${MAX_LABELS} labels` }] },
        });
      }
      this.records.put({ name, id: entry.id, managed: rec?.managed ?? false, createdAt: rec?.createdAt ?? null, labels });
      return this.view(entry, ctx);
    });
  }

  /**
   * Deletes a namespace. Refuses `host`; an unmanaged one, or one with processes inside, needs
   * `force` (which kills those processes first). Answers once the name is gone and nothing runs
   * inside; the kernel frees the stack asynchronously after that, and the name can be reused at once.
   */
  async delete(name: string, opts: { force: boolean }, ctx: OpContext): Promise<void> {
    if (name === HOST) throw new AppError('HOST_PROTECTED', 'The host namespace can never be deleted');
    return this.serialize(name, () => this.deleteNow(name, opts, ctx));
  }

  private async deleteNow(name: string, opts: { force: boolean }, ctx: OpContext): Promise<void> {
    const entry = await this.entry(name);
    const rec = this.recordFor(entry);
    if (!rec?.managed && !opts.force) {
      throw new AppError(
        'NAMESPACE_UNMANAGED',
        `Namespace '${name}' was not created by netnsd; deleting it needs ?force=true (admin scope)`,
      );
    }
    let { pids } = await this.ex.run({ kind: 'netns.pids', ns: name }, ctx);
    let last = ctx;
    if (pids.length > 0) {
      if (!opts.force) {
        throw new AppError(
          'NAMESPACE_BUSY',
          `${pids.length} process(es) run in namespace '${name}'; stop them, or delete with ?force=true (admin scope) to kill them`,
          { meta: { pids: [...pids] } },
        );
      }
      this.log.info({ namespace: name, pids }, 'killing processes in namespace before deleting it');
      // Once processes are killed the change is under way: its last step must not be refused.
      last = { ...ctx, continues: true };
      // Processes may fork or enter while we kill: kill until a scan finds none, a few rounds at most.
      for (let round = 1; pids.length > 0; round++) {
        if (round > KILL_ROUNDS) {
          throw new AppError('NAMESPACE_BUSY', `Processes keep appearing in namespace '${name}'; it was not deleted`, {
            meta: { pids: [...pids] },
          });
        }
        await this.ex.run({ kind: 'netns.killPids', ns: name, pids }, last);
        ({ pids } = await this.ex.run({ kind: 'netns.pids', ns: name }, last));
      }
    }
    await this.ex.run({ kind: 'netns.delete', ns: name }, last);
    this.records.delete(name);
  }
}

function notFoundToNull(e: unknown): null {
  if (e instanceof AppError && e.code === 'NAMESPACE_NOT_FOUND') return null;
  throw e;
}

function notFoundAs(e: unknown, name: string): unknown {
  if (e instanceof AppError && e.code === 'NAMESPACE_NOT_FOUND') {
    return new AppError('NAMESPACE_NOT_FOUND', `There is no namespace '${name}'`, { cause: e });
  }
  return e;
}
