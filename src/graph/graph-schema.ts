import { Type, type Static } from '@sinclair/typebox';

const NodeIdDescription = 'A node id: `NAMESPACE/LINK` (`host/eth0`), or `?NSID/INDEX`-style ids for ends in namespaces without a name.';

export const GraphSchema = Type.Object(
  {
    namespaces: Type.Array(
      Type.Object(
        {
          name: Type.String(),
          managed: Type.Boolean(),
          links: Type.Array(Type.String({ description: NodeIdDescription }), { description: 'The ids of the link nodes inside.' }),
        },
        { additionalProperties: false },
      ),
      { description: 'Every namespace the caller may see: the node groups.' },
    ),
    nodes: Type.Array(
      Type.Object(
        {
          id: Type.String({ description: NodeIdDescription }),
          namespace: Type.Union([Type.String(), Type.Null()], { description: 'Null for an end in a namespace without a name.' }),
          name: Type.Union([Type.String(), Type.Null()]),
          kind: Type.String(),
          state: Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('unknown')]),
          managed: Type.Boolean(),
        },
        { additionalProperties: false },
      ),
      { description: 'Every link as a node (plus the far ends of veths in namespaces the caller cannot see or that have no name).' },
    ),
    edges: Type.Array(
      Type.Object(
        {
          type: Type.Union([Type.Literal('veth'), Type.Literal('bridge-port'), Type.Literal('lower')], {
            description: '`veth`: the two ends of a pair (once per pair); `bridge-port`: from a port to its bridge; `lower`: from a macvlan/vxlan to its parent device.',
          }),
          from: Type.String(),
          to: Type.String(),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { $id: 'Graph', additionalProperties: false },
);
export type Graph = Static<typeof GraphSchema>;

export const GraphQuerySchema = Type.Object(
  {
    format: Type.Optional(
      Type.Union([Type.Literal('json'), Type.Literal('dot')], { description: '`dot` answers Graphviz text (text/vnd.graphviz).' }),
    ),
  },
  { additionalProperties: false },
);
