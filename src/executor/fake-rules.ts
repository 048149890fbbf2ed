/**
 * The policy rules of FakeKernel's namespaces, with the kernel's rules that matter to the
 * service: each family starts with local (0), main (32766) and, for IPv4, default (32767); rules
 * are kept by priority, then age; a rule identical to one that exists is RULE_EXISTS; a delete
 * takes the first rule that has every attribute given, as the kernel does (RULE_NOT_FOUND when none); a goto must go forward (REQUEST_INVALID)
 * and is `unresolved` while no rule has its target priority; an iif/oif that names no link is
 * `iif_detached`/`oif_detached`.
 */
import { AppError } from '../errors/app-error.js';
import { type KernelLink, type KernelRule, type RuleSpec, TABLE_LOCAL, TABLE_MAIN, kernelDeleteMatches, ruleKeyText, ruleOfSpec } from './ops.js';

function base(family: 4 | 6, priority: number, table: number): KernelRule {
  return {
    family, priority, not: false, from: null, to: null, iif: null, oif: null, fwmark: null, fwmask: null, tos: null, ipproto: null, sport: null, dport: null,
    uidrange: null, l3mdev: false, action: 'lookup', table, goto: null, suppressPrefixLength: null, suppressIfgroup: null, realms: null, protocol: null, flags: [],
  };
}

const defaults = (family: 4 | 6): KernelRule[] => [
  base(family, 0, TABLE_LOCAL),
  base(family, 32766, TABLE_MAIN),
  ...(family === 4 ? [base(4, 32767, 253)] : []),
];

export class FakeRuleTable<Space> {
  private readonly bySpace = new Map<Space, { 4: KernelRule[]; 6: KernelRule[] }>();

  list(space: Space, links: readonly KernelLink[], family: 4 | 6): KernelRule[] {
    const rules = this.rules(space)[family];
    const has = (name: string | null): boolean => name === null || links.some((l) => l.name === name);
    return rules.map((r) => ({
      ...r,
      flags: [
        ...(r.action === 'goto' && !rules.some((x) => x.priority === r.goto) ? ['unresolved'] : []),
        ...(has(r.iif) ? [] : ['iif_detached']),
        ...(has(r.oif) ? [] : ['oif_detached']),
      ],
    }));
  }

  add(space: Space, spec: RuleSpec): void {
    const rules = this.rules(space)[spec.family];
    const rule = ruleOfSpec(spec);
    if (rule.goto !== null && rule.goto <= rule.priority) throw new AppError('REQUEST_INVALID', 'a goto must go to a later priority');
    // The kernel's rule_exists: every attribute equal, except that a new rule without from/to/tos
    // matches one with them.
    const loose = (r: KernelRule): KernelRule => ({ ...r, from: rule.from === null ? null : r.from, to: rule.to === null ? null : r.to, tos: rule.tos === null ? null : r.tos });
    if (rules.some((r) => ruleKeyText(loose(r)) === ruleKeyText(rule))) throw new AppError('RULE_EXISTS', `the rule at priority ${spec.priority} exists`);
    const at = rules.findIndex((r) => r.priority > rule.priority);
    rules.splice(at < 0 ? rules.length : at, 0, rule);
  }

  delete(space: Space, rule: KernelRule): void {
    const rules = this.rules(space)[rule.family];
    // The kernel deletes the first rule that has every attribute given (kernelDeleteMatches).
    const i = rules.findIndex((r) => kernelDeleteMatches(r, rule));
    if (i < 0) throw new AppError('RULE_NOT_FOUND', `there is no such rule at priority ${rule.priority}`);
    rules.splice(i, 1);
  }

  removeSpace(space: Space): void {
    this.bySpace.delete(space);
  }

  private rules(space: Space): { 4: KernelRule[]; 6: KernelRule[] } {
    let r = this.bySpace.get(space);
    if (!r) this.bySpace.set(space, (r = { 4: defaults(4), 6: defaults(6) }));
    return r;
  }
}
