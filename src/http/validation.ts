/**
 * Request validation. Two Ajv instances: bodies are validated without type coercion (a string
 * where a number belongs is a 400, not a silent conversion), querystrings and params with it
 * (everything arrives as text there). Neither removes unknown fields: `additionalProperties: false`
 * makes a typo a 400 (fastify's default Ajv would silently drop it).
 */
import AjvModule, { type ErrorObject } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance } from 'fastify';

// Both are CommonJS modules with a default export.
const Ajv = AjvModule.default;
const addFormats = addFormatsModule.default;

function makeAjv(coerceTypes: false | 'array'): InstanceType<typeof Ajv> {
  const ajv = new Ajv({ allErrors: true, removeAdditional: false, useDefaults: true, coerceTypes, strict: false });
  addFormats(ajv);
  return ajv;
}

/**
 * Returns a copy without nested `$id`s: TypeBox schemas carry `$id`s (so the OpenAPI document can
 * name them), and the same one appears in many routes, which Ajv would refuse as a duplicate id.
 */
export function stripIds<T>(schema: T): T {
  if (Array.isArray(schema)) return schema.map(stripIds) as T;
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) if (k !== '$id') out[k] = stripIds(v);
  return out as T;
}

/**
 * One pair for the process, and each schema compiled once: the schemas are module constants, and
 * every server built over them (one per listener, one per test) would otherwise compile them all
 * again, which is most of the cost of building a server.
 */
const strict = makeAjv(false);
const coercing = makeAjv('array');
const compiled = { strict: new WeakMap<object, ReturnType<typeof strict.compile>>(), coercing: new WeakMap<object, ReturnType<typeof strict.compile>>() };

export function installValidators(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const kind = httpPart === 'body' ? 'strict' : 'coercing';
    let v = compiled[kind].get(schema as object);
    if (v === undefined) {
      // Fastify reads a failed validation from the function's `errors` (Ajv's own convention).
      v = (kind === 'strict' ? strict : coercing).compile(stripIds(schema as object));
      compiled[kind].set(schema as object, v);
    }
    return v;
  });
}

export interface FieldError {
  readonly field: string;
  readonly message: string;
}

/** Turns Ajv's errors into one entry per bad field: `body.labels.lab`, `querystring.limit`. */
export function fieldErrors(context: string, errors: readonly ErrorObject[]): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    // A union's failing branches repeat the same complaint; the `anyOf` summary says it once.
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf') continue;
    let field = context + e.instancePath.replaceAll('/', '.');
    let message = e.message ?? 'is not valid';
    if (e.keyword === 'additionalProperties') {
      field += `.${String(e.params.additionalProperty)}`;
      message = 'is not a known field';
    } else if (e.keyword === 'required') {
      field += `.${String(e.params.missingProperty)}`;
      message = 'is required';
    } else if (e.keyword === 'pattern' || e.keyword === 'format') {
      message = `${message} (see the schema's description)`;
    } else if (e.keyword === 'enum') {
      message = `must be one of ${(e.params.allowedValues as unknown[]).join(', ')}`;
    }
    const k = `${field}\0${message}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push({ field, message });
    }
  }
  return out;
}
