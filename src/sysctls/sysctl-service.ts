/**
 * Per-namespace sysctls, from the allowlist (sysctl-allowlist.ts). Values are read and written
 * inside the namespace (never the host's when {ns} is another namespace). A PATCH is all or
 * nothing: everything is validated first, and when the kernel refuses a value part-way the keys
 * already written get their old values back.
 */
import { AppError } from '../errors/app-error.js';
import type { Executor, OpContext } from '../executor/executor.js';
import { HOST } from '../executor/ops.js';
import { existingNamespace, type NetnsDirectory } from '../namespaces/netns-dir.js';
import { allKeys, type ResolvedKey, resolveSysctl } from './sysctl-allowlist.js';

export type SysctlValues = Record<string, number>;

export class SysctlService {
  constructor(
    private readonly ex: Executor,
    private readonly dir: NetnsDirectory,
    private readonly hostAllowChanges: boolean,
  ) {}

  private async ensure(ns: string): Promise<void> {
    await existingNamespace(this.dir, ns);
  }

  /** The allowed keys of the namespace (or only `keys`), with their values; keys it lacks are left out. */
  async get(ns: string, keys?: readonly string[], ctx?: OpContext): Promise<SysctlValues> {
    await this.ensure(ns);
    const wanted = keys ? resolveAll(keys, 'querystring.keys') : (await this.keysOf(ns, ctx)).map((k) => resolveSysctl(k)).filter((r): r is ResolvedKey => r !== null);
    return this.read(ns, wanted, ctx);
  }

  async update(ns: string, patch: Readonly<Record<string, number>>, ctx: OpContext): Promise<SysctlValues> {
    await this.ensure(ns);
    if (ns === HOST && !this.hostAllowChanges) {
      throw new AppError('HOST_PROTECTED', "The host namespace's sysctls are protected (configuration host.allowChanges)");
    }
    const resolved = resolveAll(Object.keys(patch), 'body');
    const errors = resolved
      .filter((r) => !Number.isInteger(patch[r.key]) || patch[r.key]! < r.rule.min || patch[r.key]! > r.rule.max)
      .map((r) => ({ field: `body.${r.key}`, message: `must be an integer from ${r.rule.min} to ${r.rule.max}` }));
    if (errors.length) throw new AppError('REQUEST_INVALID', `Values out of range: ${errors.map((e) => e.field).join(', ')}`, { meta: { errors } });
    const before = await this.read(ns, resolved, ctx, true);
    const entries = resolved.map((r) => [r.path, String(patch[r.key])] as const);
    try {
      await this.ex.run({ kind: 'sysctl.write', ns, entries }, ctx);
    } catch (e) {
      // Put back what was written before the refused key (writes stop at the first failure).
      const failed = e instanceof AppError && typeof e.meta?.key === 'string' ? entries.findIndex(([p]) => p === e.meta!.key) : entries.length;
      const undo = resolved.slice(0, Math.max(failed, 0)).map((r) => [r.path, String(before[r.key])] as const);
      if (undo.length) await this.ex.run({ kind: 'sysctl.write', ns, entries: undo }, { ...ctx, continues: true }).catch(() => undefined);
      if (e instanceof AppError && e.code === 'SYSCTL_REFUSED') {
        const key = resolved[failed]?.key ?? String(e.meta?.key);
        throw new AppError('SYSCTL_REFUSED', `The kernel refused ${key} = ${patch[key]}; nothing was changed`, { cause: e, meta: { key } });
      }
      throw e;
    }
    return this.get(ns, undefined, ctx);
  }

  /** Every allowed key of the namespace (links whose names a sysctl key cannot carry are skipped). */
  private async keysOf(ns: string, ctx?: OpContext): Promise<string[]> {
    const { names } = await this.ex.run({ kind: 'netns.linkNames', ns }, ctx);
    return allKeys(names);
  }

  /** Values of these keys; with `mustExist`, a key the namespace lacks is 404 (a missing link). */
  private async read(ns: string, keys: readonly ResolvedKey[], ctx?: OpContext, mustExist = false): Promise<SysctlValues> {
    const { values } = await this.ex.run({ kind: 'sysctl.read', ns, keys: keys.map((k) => k.path) }, ctx);
    const out: SysctlValues = {};
    keys.forEach((k, i) => {
      const v = values[i];
      if (v === null || v === undefined) {
        if (mustExist) {
          throw k.link
            ? new AppError('LINK_NOT_FOUND', `There is no link '${k.link}' in namespace '${ns}' (key ${k.key})`)
            : new AppError('REQUEST_INVALID', `This kernel has no ${k.key} in namespace '${ns}'`, { meta: { errors: [{ field: `body.${k.key}`, message: 'not on this kernel' }] } });
        }
        return;
      }
      out[k.key] = Number.parseInt(v.trim(), 10);
    });
    return out;
  }
}

function resolveAll(keys: readonly string[], where: string): ResolvedKey[] {
  const resolved = keys.map((k) => [k, resolveSysctl(k)] as const);
  const bad = resolved.filter(([, r]) => r === null).map(([k]) => k);
  if (bad.length) {
    throw new AppError('REQUEST_INVALID', `Not an allowed sysctl: ${bad.join(', ')} (the README lists the allowed ones)`, {
      meta: { errors: bad.map((k) => ({ field: where === 'body' ? `body.${k}` : where, message: `${k} is not an allowed sysctl` })) },
    });
  }
  return resolved.map(([, r]) => r!);
}
