import { Type, type Static } from '@sinclair/typebox';
import { LabelsSchema, NamespaceNameSchema, LABEL_PATTERN } from '../names.js';
import { NextSchema, PageQuerySchema, SeqSchema } from '../paging.js';
import { MAX_LABELS } from '../labels.js';

export const NamespaceSchema = Type.Object(
  {
    name: NamespaceNameSchema,
    id: Type.String({
      description:
        'Identity of this namespace, unique over time: `INODE-CTIME`. A namespace deleted and made again under the same name gets another id.',
      examples: ['4026532281-1764619922816636273'],
    }),
    managed: Type.Boolean({ description: 'true when netnsd created it; false for namespaces it found, and for `host`.' }),
    labels: LabelsSchema,
    nsid: Type.Union([Type.Integer(), Type.Null()], {
      description: "The namespace's id in the root namespace (`ip netns list-id`); null when it has none, and for `host`.",
    }),
    createdAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
      description: 'When netnsd created it; null for unmanaged namespaces.',
    }),
    linkCount: Type.Integer({ minimum: 0, description: 'Number of links (interfaces) inside, loopback included.' }),
  },
  { $id: 'Namespace', additionalProperties: false, description: 'A network namespace.' },
);
export type Namespace = Static<typeof NamespaceSchema>;

export const NamespaceListSchema = Type.Object(
  { items: Type.Array(NamespaceSchema), next: NextSchema, seq: SeqSchema },
  { $id: 'NamespaceList', additionalProperties: false },
);

export const NamespaceListQuerySchema = Type.Object(
  {
    labelSelector: Type.Optional(
      Type.String({
        maxLength: 4096,
        description: 'Comma-separated requirements, all of which must hold: `k=v`, `k!=v`, `k` (has key), `!k` (lacks key).',
        examples: ['lab=a,tier!=edge'],
      }),
    ),
    managed: Type.Optional(Type.Boolean({ description: 'Only namespaces netnsd created (true) or found (false).' })),
    ...PageQuerySchema,
  },
  { additionalProperties: false },
);
export type NamespaceListQuery = Static<typeof NamespaceListQuerySchema>;

export const NamespaceParamsSchema = Type.Object({ name: NamespaceNameSchema }, { additionalProperties: false });

export const NamespaceCreateSchema = Type.Object(
  {
    name: NamespaceNameSchema,
    labels: Type.Optional(LabelsSchema),
  },
  { $id: 'NamespaceCreate', additionalProperties: false, examples: [{ name: 'blue', labels: { lab: 'a' } }] },
);
export type NamespaceCreate = Static<typeof NamespaceCreateSchema>;

export const NamespacePatchSchema = Type.Object(
  {
    labels: Type.Optional(
      Type.Union(
        [
          Type.Record(Type.String({ pattern: LABEL_PATTERN }), Type.Union([Type.String({ pattern: LABEL_PATTERN }), Type.Null()]), {
            additionalProperties: false,
            maxProperties: MAX_LABELS,
          }),
          Type.Null(),
        ],
        {
          description:
            'JSON merge patch (RFC 7396) of the labels: keys given are set, `null` removes a key, keys not given stay; `"labels": null` removes them all.',
        },
      ),
    ),
  },
  { $id: 'NamespacePatch', additionalProperties: false, examples: [{ labels: { lab: 'b', owner: null } }] },
);
export type NamespacePatch = Static<typeof NamespacePatchSchema>;

export const NamespaceDeleteQuerySchema = Type.Object(
  {
    force: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Needs the admin scope. Kills the processes inside first, and allows deleting a namespace netnsd did not create.',
      }),
    ),
  },
  { additionalProperties: false },
);
