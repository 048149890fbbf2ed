/**
 * What a subscriber receives: event types (with `*` wildcards), a namespace and a link (names or
 * globs), a label selector on the event's namespace, and what the subscriber's token may see.
 */
import { AppError } from '../errors/app-error.js';
import { type LabelSelector, type Labels, MATCH_ALL, matchesSelector, parseLabelSelector } from '../labels.js';

/**
 * Every event type a subscriber may ask for (`gap` is always delivered). `traffic` is the
 * unsequenced sample stream: it costs a counter read per namespace per tick, so only a pattern
 * that is exactly `traffic` selects it (`*` and `traffic.*` do not); `traffic.alert` is an event
 * like the others.
 */
export const EVENT_TYPES = [
  'namespace.added', 'namespace.removed',
  'link.added', 'link.changed', 'link.removed',
  'address.added', 'address.removed',
  'route.added', 'route.changed', 'route.removed',
  'rule.added', 'rule.removed',
  'neighbor.added', 'neighbor.changed', 'neighbor.removed',
  'qdisc.changed',
  'firewall.changed',
  'resync',
  'traffic', 'traffic.alert',
] as const;
/** The unsequenced type: samples, never logged. */
export const TRAFFIC = 'traffic';
export type EventType = (typeof EVENT_TYPES)[number];

/** The selection fields, as query parameters or a WebSocket `subscribe` message give them. */
export interface FilterInput {
  readonly types?: string | undefined;
  readonly namespace?: string | undefined;
  readonly link?: string | undefined;
  readonly labelSelector?: string | undefined;
}

export interface EventFilter {
  readonly types: ReadonlySet<EventType>;
  readonly namespace: RegExp | undefined;
  readonly link: RegExp | undefined;
  readonly labels: LabelSelector;
  /** The input it was made from, for status. */
  readonly input: FilterInput;
}

/** The link an event is about, if any (link name, an address's or neighbour's link, a route's dev). */
export function linkOf(e: { readonly type: string; readonly object?: unknown; readonly link?: unknown }): string | undefined {
  if (typeof e.link === 'string') return e.link;
  const o = e.object as Record<string, unknown> | undefined;
  if (!o) return undefined;
  const v = e.type.startsWith('link.') ? o.name : e.type.startsWith('route.') ? o.dev : o.link;
  return typeof v === 'string' ? v : undefined;
}

/** `*` any run of characters, `?` one; everything else literal. */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
}

function bad(field: string, message: string): AppError {
  return new AppError('REQUEST_INVALID', `${field} ${message}`, { meta: { errors: [{ field: `querystring.${field}`, message }] } });
}

const GLOB_RE = /^[A-Za-z0-9_.*?-]{1,64}$/;

/** Parses the selection; REQUEST_INVALID naming the field for an unknown type or a bad glob. */
export function parseFilter(input: FilterInput): EventFilter {
  const types = new Set<EventType>();
  const list = input.types === undefined || input.types === '' ? ['*'] : input.types.split(',').map((t) => t.trim());
  for (const t of list) {
    if (!/^[a-z*.]{1,40}$/.test(t)) throw bad('types', `'${t}' is not an event type (known: ${EVENT_TYPES.join(', ')})`);
    const re = globToRegExp(t);
    const hit = EVENT_TYPES.filter((k) => (k === TRAFFIC ? t === TRAFFIC : re.test(k) || (t.endsWith('.*') && k === t.slice(0, -2))));
    if (hit.length === 0) throw bad('types', `'${t}' matches no event type (known: ${EVENT_TYPES.join(', ')})`);
    for (const k of hit) types.add(k);
  }
  for (const f of ['namespace', 'link'] as const) {
    const v = input[f];
    if (v !== undefined && !GLOB_RE.test(v)) throw bad(f, 'must be a name or a glob (* and ?) of 1-64 characters of [A-Za-z0-9_.-]');
  }
  return {
    types,
    namespace: input.namespace === undefined ? undefined : globToRegExp(input.namespace),
    link: input.link === undefined ? undefined : globToRegExp(input.link),
    labels: input.labelSelector === undefined ? MATCH_ALL : parseLabelSelector(input.labelSelector),
    // Only the selection itself (a query may also hold a ticket, which is echoed nowhere).
    input: Object.fromEntries((['types', 'namespace', 'link', 'labelSelector'] as const).filter((k) => input[k] !== undefined).map((k) => [k, input[k]])),
  };
}

/** The same filter taking these types too. */
export function withTypes(f: EventFilter, ...types: EventType[]): EventFilter {
  return { ...f, types: new Set([...f.types, ...types]) };
}

export interface Filterable {
  readonly type: string;
  readonly namespace: string | null;
  readonly namespaces?: readonly string[];
  readonly object?: unknown;
  readonly link?: unknown;
}

/**
 * Whether the filter's namespace part takes `ns`: the token may see it, its name matches, and its
 * labels (`own`, else its record's) match the selector.
 */
export function namespacePasses(f: EventFilter, ns: string, visible: (ns: string) => boolean, labelsOf: (ns: string) => Labels, own?: Labels): boolean {
  return visible(ns) && (f.namespace === undefined || f.namespace.test(ns)) && (f.labels.requirements.length === 0 || matchesSelector(own ?? labelsOf(ns), f.labels));
}

/**
 * Whether a subscriber with this filter, who may see namespaces `visible` accepts, receives the
 * event. `resync` names several namespaces: it is delivered when any of them passes.
 */
export function matches(f: EventFilter, e: Filterable, visible: (ns: string) => boolean, labelsOf: (ns: string) => Labels): boolean {
  if (!f.types.has(e.type as EventType)) return false;
  const namespaces = e.type === 'resync' ? (e.namespaces ?? []) : e.namespace === null ? [] : [e.namespace];
  // A namespace event carries the labels the namespace had (it may be gone, or not labelled yet).
  const own = e.type.startsWith('namespace.') ? ((e.object as { labels?: Labels } | undefined)?.labels ?? undefined) : undefined;
  const nsOk = (ns: string): boolean => namespacePasses(f, ns, visible, labelsOf, own);
  if (e.type === 'resync') return namespaces.length === 0 ? f.namespace === undefined && f.labels.requirements.length === 0 : namespaces.some(nsOk);
  if (e.namespace === null || !nsOk(e.namespace)) return false;
  if (f.link !== undefined) {
    const l = linkOf(e);
    if (l === undefined || !f.link.test(l)) return false;
  }
  return true;
}
