/**
 * The topology graph: every namespace the caller may see as a node group, every link as a node,
 * and edges for veth peers, bridge ports and lower devices across namespaces. It answers the
 * question every user of these tools asks: which namespace is the other end of this veth?
 */
import type { Link } from '../links/link-schema.js';
import type { LinkService } from '../links/link-service.js';
import { MATCH_ALL } from '../labels.js';
import { MAX_LIMIT } from '../paging.js';
import type { NamespaceService } from '../namespaces/namespace-service.js';
import type { Graph } from './graph-schema.js';

type Ref = NonNullable<Link['peer']>;
type GraphNode = Graph['nodes'][number];

/** The node id of a link end: `ns/name`, or a stable stand-in when its namespace has no name. */
export function nodeId(ns: string | null, name: string | null, index: number, seenFrom: string): string {
  if (ns !== null && name !== null) return `${ns}/${name}`;
  return `?${seenFrom}:${index}`;
}

export class GraphService {
  constructor(
    private readonly namespaces: NamespaceService,
    private readonly links: LinkService,
  ) {}

  async graph(visible: (name: string) => boolean): Promise<Graph> {
    const groups: Graph['namespaces'] = [];
    const nodes = new Map<string, GraphNode>();
    const edges: Graph['edges'] = [];
    const veths = new Set<string>();
    const list = await this.namespaces.list({ selector: MATCH_ALL, visible, limit: MAX_LIMIT });
    const perNs = await Promise.all(
      list.items.map(async (ns) => ({ ns, links: (await this.links.list(ns.name, { selector: MATCH_ALL, limit: MAX_LIMIT }).catch(() => ({ items: [] }))).items })),
    );
    for (const { ns, links } of perNs) {
      groups.push({ name: ns.name, managed: ns.managed, links: links.map((l) => nodeId(ns.name, l.name, l.index, ns.name)) });
      for (const l of links) {
        nodes.set(nodeId(ns.name, l.name, l.index, ns.name), { id: nodeId(ns.name, l.name, l.index, ns.name), namespace: ns.name, name: l.name, kind: l.kind, state: l.state, managed: l.managed });
      }
    }
    // A far end the caller may not see (or with no name) is still an end: shown without details.
    const farEnd = (ref: Ref, seenFrom: string, kind: string): string => {
      const shown = ref.namespace !== null && visible(ref.namespace);
      const id = shown ? nodeId(ref.namespace, ref.name, ref.index, seenFrom) : nodeId(null, null, ref.index, seenFrom);
      if (!nodes.has(id)) nodes.set(id, { id, namespace: shown ? ref.namespace : null, name: shown ? ref.name : null, kind, state: 'unknown', managed: false });
      return id;
    };
    for (const { ns, links } of perNs) {
      for (const l of links) {
        const self = nodeId(ns.name, l.name, l.index, ns.name);
        if (l.peer) {
          const other = farEnd(l.peer, ns.name, 'veth');
          const key = [self, other].sort().join('\0');
          if (!veths.has(key)) {
            veths.add(key);
            edges.push({ type: 'veth', from: self, to: other });
          }
        }
        if (l.master) edges.push({ type: 'bridge-port', from: self, to: `${ns.name}/${l.master}` });
        if (l.parent) edges.push({ type: 'lower', from: self, to: farEnd(l.parent, ns.name, 'unknown') });
      }
    }
    return { namespaces: groups, nodes: [...nodes.values()], edges };
  }
}

/** Graphviz text: one cluster per namespace, veth pairs undirected-looking, ports dashed. */
export function toDot(g: Graph): string {
  const q = (s: string) => `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
  const lines = ['graph netnsd {', '  compound=true;', '  node [shape=box, fontsize=10];'];
  const grouped = new Set<string>();
  g.namespaces.forEach((ns, i) => {
    lines.push(`  subgraph cluster_${i} {`, `    label=${q(ns.name)};`);
    for (const id of ns.links) {
      const n = g.nodes.find((x) => x.id === id);
      grouped.add(id);
      lines.push(`    ${q(id)} [label=${q(`${n?.name ?? id}\n${n?.kind ?? ''}`)}${n?.state === 'down' ? ', style=dashed' : ''}];`);
    }
    lines.push('  }');
  });
  for (const n of g.nodes) if (!grouped.has(n.id)) lines.push(`  ${q(n.id)} [label=${q(n.name ?? 'unnamed namespace')}, style=dotted];`);
  for (const e of g.edges) {
    const style = e.type === 'veth' ? '' : e.type === 'bridge-port' ? ' [style=dashed, label="port"]' : ' [style=dotted, label="lower"]';
    lines.push(`  ${q(e.from)} -- ${q(e.to)}${style};`);
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
