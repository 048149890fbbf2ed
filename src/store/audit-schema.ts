import { Type, type Static } from '@sinclair/typebox';

const OpRecordSchema = Type.Object(
  {
    kind: Type.String(),
    ns: Type.String(),
    argv: Type.Array(Type.Array(Type.String())),
    ok: Type.Boolean(),
    code: Type.Optional(Type.String()),
    durationMs: Type.Number(),
  },
  { additionalProperties: false },
);

/** One audited change: who, what, the ops it ran, the outcome. */
export const AuditEntrySchema = Type.Object(
  {
    seq: Type.Integer(),
    time: Type.String({ format: 'date-time' }),
    requestId: Type.String(),
    actor: Type.String({ description: 'The token name, or `unix` for the Unix socket.' }),
    action: Type.String({ examples: ['namespace.create'] }),
    method: Type.String(),
    path: Type.String(),
    namespace: Type.Union([Type.String(), Type.Null()]),
    status: Type.Integer(),
    code: Type.Union([Type.String(), Type.Null()], { description: 'The error code when it failed.' }),
    outcome: Type.Union([Type.Literal('success'), Type.Literal('failure'), Type.Literal('replayed')]),
    ops: Type.Array(OpRecordSchema, { description: 'The executor ops it ran, with their command lines.' }),
    durationMs: Type.Number(),
  },
  { $id: 'AuditEntry', additionalProperties: false },
);

export type AuditEntry = Static<typeof AuditEntrySchema>;
