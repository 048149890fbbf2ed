/**
 * Network namespaces: what exists comes from the kernel (the /run/netns directory and the daemon's
 * own namespace as `host`); ownership and labels come from the store. Privileged work goes through
 * the executor only.
 */
import { AppError } from '../errors/app-error.js';
import type { Executor, OpContext } from '../executor/executor.js';
import { HOST } from '../executor/ops.js';
import { type LabelSelector, type Labels, matchesSelector, mergeLabels } from '../labels.js';
import { type Page, paginate } from '../paging.js';
import type { NamespaceRecord, NamespaceRecords } from '../store/namespace-records.js';
import type { NetnsDirectory, NetnsEntry } from './netns-dir.js';
import type { Namespace } from './namespace-schema.js';

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

export class NamespaceService {
  private readonly ex: Executor;
  private readonly records: NamespaceRecords;
  private readonly dir: NetnsDirectory;
  private readonly log: Logger;
  private readonly maxNamespaces: number;
  private readonly now: () => Date;

  constructor(o: NamespaceServiceOptions) {
    this.ex = o.executor;
    this.records = o.records;
    this.dir = o.dir;
    this.log = o.log;
    this.maxNamespaces = o.maxNamespaces;
    this.now = o.now ?? (() => new Date());
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

  private async view(entry: NetnsEntry, ctx?: OpContext): Promise<Namespace> {
    const rec = this.recordFor(entry);
    const isHost = entry.name === HOST;
    const [nsid, links] = await Promise.all([
      isHost ? Promise.resolve(null) : this.ex.run({ kind: 'netns.getNsid', ns: entry.name }, ctx).then((r) => (r.nsid < 0 ? null : r.nsid)),
      this.ex.run({ kind: 'netns.linkNames', ns: entry.name }, ctx),
    ]);
    return {
      name: entry.name,
      id: entry.id,
      managed: rec?.managed ?? false,
      labels: { ...(rec?.labels ?? {}) },
      nsid,
      createdAt: rec?.createdAt ?? null,
      linkCount: links.names.length,
    };
  }

  private async entry(name: string): Promise<NetnsEntry> {
    const entry = await this.dir.stat(name);
    if (!entry) throw new AppError('NAMESPACE_NOT_FOUND', `There is no namespace '${name}'`);
    return entry;
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
  async create(name: string, labels: Labels, ctx: OpContext): Promise<Namespace> {
    if (name === HOST) {
      throw new AppError('NAMESPACE_RESERVED', "'host' is the reserved name of the root namespace");
    }
    const count = await this.dir.count();
    if (count >= this.maxNamespaces) {
      throw new AppError('NAMESPACE_LIMIT_REACHED', `There are ${count} namespaces; the configured limit is ${this.maxNamespaces}`);
    }
    await this.ex.run({ kind: 'netns.add', ns: name }, ctx);
    const rest: OpContext = { ...ctx, continues: true };
    let step = 'loopbackUp';
    try {
      await this.ex.run({ kind: 'netns.loopbackUp', ns: name }, rest);
      step = 'assignNsid';
      await this.ex.run({ kind: 'netns.assignNsid', ns: name }, rest);
      step = 'stat';
      const entry = await this.entry(name);
      this.records.put({ name, id: entry.id, managed: true, createdAt: this.now().toISOString(), labels });
      return await this.view(entry, rest);
    } catch (e) {
      await this.ex.run({ kind: 'netns.delete', ns: name }, rest).catch((undoErr: unknown) => {
        this.log.warn({ namespace: name, err: undoErr }, 'could not remove a half-created namespace');
      });
      this.records.delete(name);
      if (e instanceof AppError) {
        throw new AppError(e.code, `Creating namespace '${name}' failed at step ${step}: ${e.detail}; it was removed again`, {
          cause: e,
          meta: { ...e.meta, step },
          ...(e.headers ? { headers: e.headers } : {}),
        });
      }
      throw e;
    }
  }

  /** Merges a labels patch (RFC 7396). Works on unmanaged namespaces and `host` too: labels are netnsd's. */
  async updateLabels(name: string, patch: Readonly<Record<string, string | null>>, ctx: OpContext): Promise<Namespace> {
    const entry = await this.entry(name);
    const rec = this.recordFor(entry);
    const labels = mergeLabels(rec?.labels ?? {}, patch);
    this.records.put({ name, id: entry.id, managed: rec?.managed ?? false, createdAt: rec?.createdAt ?? null, labels });
    return this.view(entry, ctx);
  }

  /**
   * Deletes a namespace. Refuses `host`; an unmanaged one, or one with processes inside, needs
   * `force` (which kills those processes first). Answers once the name is gone and nothing runs
   * inside; the kernel frees the stack asynchronously after that, and the name can be reused at once.
   */
  async delete(name: string, opts: { force: boolean }, ctx: OpContext): Promise<void> {
    if (name === HOST) throw new AppError('HOST_PROTECTED', 'The host namespace can never be deleted');
    const entry = await this.entry(name);
    const rec = this.recordFor(entry);
    if (!rec?.managed && !opts.force) {
      throw new AppError(
        'NAMESPACE_UNMANAGED',
        `Namespace '${name}' was not created by netnsd; deleting it needs ?force=true (admin scope)`,
      );
    }
    const { pids } = await this.ex.run({ kind: 'netns.pids', ns: name }, ctx);
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
      await this.ex.run({ kind: 'netns.killPids', ns: name, pids }, last);
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
