/**
 * The nftables rulesets of FakeKernel's namespaces: enough of nft's JSON commands (nftables
 * 1.0.6) for the firewall service — add/create/insert/delete/flush of tables, chains and rules,
 * bare objects read as `add`, `flush ruleset` — applied as one transaction (all or nothing), with
 * the kernel's refusals as nft words them (`Could not process rule: No such file or directory`
 * for a missing table, chain or handle). Handles count per table, as the kernel's do; counters
 * start at zero and move only when a test says so (`count`).
 */
import { AppError } from '../errors/app-error.js';
import type { NftCommand } from './ops.js';

type Obj = Record<string, unknown>;

interface FakeChain {
  readonly spec: Obj;
  rules: Obj[];
}

interface FakeTable {
  readonly family: string;
  readonly name: string;
  readonly handle: number;
  nextHandle: number;
  chains: Map<string, FakeChain>;
}

interface Ruleset {
  tables: FakeTable[];
  nextTableHandle: number;
}

const COMMANDS = new Set(['add', 'create', 'insert', 'replace', 'delete', 'destroy', 'flush']);
const clone = <T>(v: T): T => structuredClone(v);

function refused(message: string, command?: number): AppError {
  const line = `internal:0:0-0: Error: ${message}`;
  const stderr = command === undefined ? line : `${line}\n\ninternal:0:0-0: Error: Parsing command array at index ${command} failed.`;
  return new AppError('FIREWALL_RULESET_INVALID', 'nft refused the ruleset; nothing was changed', {
    cause: stderr,
    meta: { errors: [{ message, ...(command === undefined ? {} : { command }) }] },
  });
}

export class FakeNftTable<Space> {
  private readonly bySpace = new Map<Space, Ruleset>();

  /** What `nft -j list ruleset` prints: metainfo, then each table, its chains, their rules. */
  list(space: Space): NftCommand[] {
    const rs = this.ruleset(space);
    const out: NftCommand[] = [{ metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } }];
    for (const t of rs.tables) {
      out.push({ table: { family: t.family, name: t.name, handle: t.handle } });
      for (const c of t.chains.values()) out.push({ chain: clone(c.spec) });
      for (const c of t.chains.values()) for (const r of c.rules) out.push({ rule: clone(r) });
    }
    return out;
  }

  /** Applies the commands as one transaction; `check` applies them to a copy only. */
  apply(space: Space, commands: readonly NftCommand[], check: boolean): void {
    const work = clone(this.ruleset(space));
    commands.forEach((cmd, i) => this.one(work, cmd, i));
    if (!check) this.bySpace.set(space, work);
  }

  /** Adds to the counter of the rule with this handle (in any table), as traffic would. */
  count(space: Space, handle: number, packets: number, bytes: number): void {
    for (const t of this.ruleset(space).tables) {
      for (const c of t.chains.values()) {
        for (const r of c.rules) {
          if (r.handle !== handle) continue;
          for (const e of r.expr as Obj[]) {
            const counter = e.counter as { packets: number; bytes: number } | undefined;
            if (counter) {
              counter.packets += packets;
              counter.bytes += bytes;
            }
          }
        }
      }
    }
  }

  removeSpace(space: Space): void {
    this.bySpace.delete(space);
  }

  private ruleset(space: Space): Ruleset {
    let rs = this.bySpace.get(space);
    if (!rs) this.bySpace.set(space, (rs = { tables: [], nextTableHandle: 1 }));
    return rs;
  }

  private one(rs: Ruleset, cmd: NftCommand, index: number): void {
    const [key, value] = Object.entries(cmd)[0] ?? [];
    if (key === 'metainfo') return;
    const verb = key !== undefined && COMMANDS.has(key) ? key : 'add';
    const bare = verb !== key;
    const body = (bare ? cmd : value) as Obj | null;
    const [what, spec] = Object.entries(body ?? {})[0] ?? [];
    if (what === undefined) throw refused(`Unknown object passed to ${verb} command.`, index);
    if (what === 'ruleset' && verb === 'flush') {
      rs.tables = [];
      return;
    }
    const s = (spec ?? {}) as Obj;
    const table = (family: unknown, name: unknown): FakeTable | undefined => rs.tables.find((t) => t.family === family && t.name === name);
    switch (what) {
      case 'table': {
        const t = table(s.family, s.name);
        if (verb === 'delete' || verb === 'destroy') {
          if (!t) { if (verb === 'delete') throw refused('Could not process rule: No such file or directory'); return; }
          rs.tables = rs.tables.filter((x) => x !== t);
        } else if (verb === 'flush') {
          if (!t) throw refused('Could not process rule: No such file or directory');
          for (const c of t.chains.values()) c.rules = [];
        } else if (!t) {
          rs.tables.push({ family: String(s.family), name: String(s.name), handle: rs.nextTableHandle++, nextHandle: 1, chains: new Map() });
        } else if (verb === 'create') {
          throw refused('Could not process rule: File exists');
        }
        return;
      }
      case 'chain': {
        const t = table(s.family, s.table);
        if (!t) throw refused('Could not process rule: No such file or directory');
        const c = t.chains.get(String(s.name));
        if (verb === 'delete' || verb === 'destroy') {
          if (!c) { if (verb === 'delete') throw refused('Could not process rule: No such file or directory'); return; }
          t.chains.delete(String(s.name));
        } else if (verb === 'flush') {
          if (!c) throw refused('Could not process rule: No such file or directory');
          c.rules = [];
        } else if (!c) {
          const { handle: _h, ...rest } = s;
          t.chains.set(String(s.name), { spec: { ...rest, handle: t.nextHandle++, ...(rest.hook !== undefined && rest.policy === undefined ? { policy: 'accept' } : {}) }, rules: [] });
        } else if (verb === 'create') {
          throw refused('Could not process rule: File exists');
        } else if (s.policy !== undefined) {
          // `add chain` of an existing base chain with a policy changes the policy only.
          (c.spec as Obj).policy = s.policy;
        }
        return;
      }
      case 'rule': {
        const t = table(s.family, s.table);
        const c = t?.chains.get(String(s.chain));
        if (!t || !c) throw refused('Could not process rule: No such file or directory');
        if (verb === 'delete' || verb === 'destroy') {
          const i = c.rules.findIndex((r) => r.handle === s.handle);
          if (i < 0) { if (verb === 'delete') throw refused('Could not process rule: No such file or directory'); return; }
          c.rules.splice(i, 1);
          return;
        }
        if (!Array.isArray(s.expr)) throw refused('Object item not found: expr', index);
        const expr = (s.expr as Obj[]).map((e) => ('counter' in e ? { counter: { packets: 0, bytes: 0, ...(e.counter as Obj | null) } } : clone(e)));
        const { handle: at, index: _i, ...rest } = s;
        const rule: Obj = { ...rest, expr, handle: t.nextHandle++ };
        // A listed rule sent back (a bare object) carries its old handle, which places nothing.
        if (typeof at === 'number' && !bare) {
          const i = c.rules.findIndex((r) => r.handle === at);
          if (i < 0) throw refused('Could not process rule: No such file or directory');
          c.rules.splice(verb === 'insert' ? i : i + 1, 0, rule);
        } else if (verb === 'insert') c.rules.unshift(rule);
        else c.rules.push(rule);
        return;
      }
      default:
        throw refused(`Unknown object passed to ${verb} command.`, index);
    }
  }
}
