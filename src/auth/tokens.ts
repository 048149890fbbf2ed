/**
 * Bearer tokens for the TCP listeners, and the principals they authenticate as.
 *
 * The tokens file is JSON: `{ "tokens": [ { "name", "token" | "sha256", "scopes", "namespaces"? } ] }`.
 * A `sha256` entry (the hex SHA-256 of the token) lets the file hold no secret at all. Plaintext
 * tokens are hashed as the file is loaded and no reference to them is kept: the store holds only
 * digests, so neither a heap dump nor a stray log line of the store can reveal a token.
 *
 * Presented tokens are hashed and compared with `timingSafeEqual` against every entry, without
 * stopping at a match, so the time taken says nothing about which bytes or which entry matched.
 *
 * Scopes imply one another: `admin` > `write` > `read`. `namespaces` limits a token to the
 * namespaces whose names match one of its glob patterns (`*` any run of characters, `?` one).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import { AppError } from '../errors/app-error.js';

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

export const ScopeSchema = Type.Union([Type.Literal('read'), Type.Literal('write'), Type.Literal('admin')], {
  $id: 'Scope',
  description: 'A token scope: `read`; `write` (implies read); `admin` (implies write).',
});

export type Scope = Static<typeof ScopeSchema>;

/**
 * Bearer tokens travel as an RFC 6750 `b64token`; a token outside that alphabet could never be
 * presented, so the file may not contain one. 16 characters is a floor against guessable tokens.
 */
const TOKEN_PATTERN = '^[A-Za-z0-9._~+/-]+=*$';
/** Namespace-name characters plus the two wildcards: a pattern cannot smuggle in anything else. */
const NAMESPACE_GLOB_PATTERN = '^[A-Za-z0-9_.*?-]{1,64}$';

export const TokenEntrySchema = Type.Object(
  {
    name: Type.String({
      pattern: '^[A-Za-z0-9_.@-]{1,64}$',
      description: 'Who the token belongs to; recorded in the audit log. Unique in the file; `unix` is reserved.',
    }),
    token: Type.Optional(
      Type.String({ minLength: 16, maxLength: 4096, pattern: TOKEN_PATTERN, description: 'The token itself (plaintext).' }),
    ),
    sha256: Type.Optional(
      Type.String({ pattern: '^[0-9A-Fa-f]{64}$', description: 'The SHA-256 of the token, 64 hex characters, instead of `token`.' }),
    ),
    scopes: Type.Array(ScopeSchema, { minItems: 1, description: 'What the token may do.' }),
    namespaces: Type.Optional(
      Type.Array(Type.String({ pattern: NAMESPACE_GLOB_PATTERN }), {
        minItems: 1,
        description: 'Glob patterns of the namespaces the token may use (`*`, `?`). Absent: every namespace, `host` included.',
        examples: [['lab-*', 'ci-??']],
      }),
    ),
  },
  { additionalProperties: false },
);

export const TokenFileSchema = Type.Object(
  { tokens: Type.Array(TokenEntrySchema, { description: 'The tokens; an empty list admits no one over TCP.' }) },
  { additionalProperties: false },
);

export type TokenEntry = Static<typeof TokenEntrySchema>;

// ---------------------------------------------------------------------------------------------
// Principals
// ---------------------------------------------------------------------------------------------

/** Who a request acts as. `scopes` is already expanded (`admin` includes `write` and `read`). */
export interface Principal {
  readonly name: string;
  readonly scopes: ReadonlySet<Scope>;
  /** Glob patterns of the namespaces it may use; null: no limit. */
  readonly namespaces: readonly string[] | null;
  readonly via: 'tcp' | 'unix';
}

const IMPLIED: Readonly<Record<Scope, readonly Scope[]>> = {
  read: ['read'],
  write: ['write', 'read'],
  admin: ['admin', 'write', 'read'],
};

/**
 * The principal of every request on a Unix socket: whoever can open the socket (its mode and group
 * decide who) has full control, as with Docker's socket.
 */
export const UNIX_PRINCIPAL: Principal = Object.freeze({
  name: 'unix',
  scopes: new Set<Scope>(['read', 'write', 'admin']),
  namespaces: null,
  via: 'unix',
});

/** Whether the principal has `scope` (directly or by implication). */
export function hasScope(p: Principal, scope: Scope): boolean {
  return p.scopes.has(scope);
}

/** Throws SCOPE_INSUFFICIENT, naming the scope needed, unless the principal has `scope`. */
export function requireScope(p: Principal, scope: Scope): void {
  if (!hasScope(p, scope)) {
    throw new AppError('SCOPE_INSUFFICIENT', `Token '${p.name}' needs the '${scope}' scope for this`, {
      meta: { requiredScope: scope },
    });
  }
}

/**
 * `*` matches any run of characters (also none), `?` exactly one; all else is literal. Iterative
 * with one backtrack point (the last `*`), so it is linear-ish and cannot blow up like a regex.
 */
function globMatch(pattern: string, name: string): boolean {
  let pi = 0;
  let ni = 0;
  let star = -1;
  let resume = 0;
  while (ni < name.length) {
    const pc = pattern[pi];
    if (pc === '?' || (pc !== undefined && pc !== '*' && pc === name[ni])) {
      pi++;
      ni++;
    } else if (pc === '*') {
      star = pi++;
      resume = ni;
    } else if (star !== -1) {
      // Let the last `*` swallow one more character and retry from there.
      pi = star + 1;
      ni = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[pi] === '*') pi++;
  return pi === pattern.length;
}

/**
 * Whether the principal may use namespace `name`. No limit: every namespace. Otherwise a pattern
 * must match the name; a limited token reaches `host` (the root namespace) only when one of its
 * patterns is `host` itself.
 */
export function canUseNamespace(p: Principal, name: string): boolean {
  if (p.namespaces === null) return true;
  // `host` (the machine's own stack) only when a pattern names it: `*` or `h*` do not grant it.
  if (name === HOST_NAME) return p.namespaces.includes(HOST_NAME);
  return p.namespaces.some((pattern) => globMatch(pattern, name));
}

const HOST_NAME = 'host';

/** Throws NAMESPACE_FORBIDDEN unless the principal may use namespace `name`. */
export function requireNamespace(p: Principal, name: string): void {
  if (!canUseNamespace(p, name)) {
    throw new AppError('NAMESPACE_FORBIDDEN', `Token '${p.name}' may not use namespace '${name}'`, { meta: { namespace: name } });
  }
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/** Thrown when a tokens file cannot be read or is not valid; `problems` names each entry at fault. */
export class TokenFileError extends Error {
  readonly problems: string[];

  constructor(path: string, problems: string[]) {
    super(`tokens file ${path} is not valid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'TokenFileError';
    this.problems = problems;
  }
}

interface Entry {
  readonly principal: Principal;
  readonly digest: Buffer;
}

interface Loaded {
  readonly entries: readonly Entry[];
  readonly warnings: readonly string[];
}

/** The rule each field breaks, in words; the schema says the same in patterns. */
const FIELD_RULES: Readonly<Record<string, string>> = {
  tokens: 'must be a list of token entries',
  entry: 'must be an object with name, token or sha256, and scopes',
  name: 'must be 1-64 characters of A-Z a-z 0-9 _ . @ -',
  token: 'must be 16-4096 characters of A-Z a-z 0-9 - . _ ~ + / (a bearer token, = padding allowed at the end)',
  sha256: 'must be 64 hex characters',
  scopes: 'must list at least one of read, write, admin',
  scope: 'must be read, write or admin',
  namespaces: 'must list at least one pattern (leave the key out for every namespace)',
  pattern: 'must be 1-64 characters of A-Z a-z 0-9 _ . - and the wildcards * ?',
};

/** `/tokens/2/sha256` -> [`tokens[2].sha256`, `sha256`]; `/tokens/0/scopes/1` -> [..., `scope`]. */
function describePath(pointer: string): [string, string] {
  const parts = pointer.split('/').slice(1);
  const [, index, field, item] = parts;
  let path = parts[0] ?? '';
  if (index !== undefined) path += `[${index}]`;
  if (field !== undefined) path += `.${field}`;
  if (item !== undefined) path += `[${item}]`;
  const rule = item !== undefined ? (field === 'scopes' ? 'scope' : 'pattern') : (field ?? (index !== undefined ? 'entry' : 'tokens'));
  return [path, rule];
}

/**
 * V8's JSON.parse messages quote the text around the error, which here may be a token: report
 * only where the error is.
 */
function jsonProblem(text: string, err: unknown): string {
  const pos = /at position (\d+)/.exec(err instanceof Error ? err.message : '')?.[1];
  if (pos === undefined) return 'not valid JSON';
  const before = text.slice(0, Number(pos));
  const line = before.split('\n').length;
  const column = Number(pos) - before.lastIndexOf('\n');
  return `not valid JSON (line ${line}, column ${column})`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function readTokenFile(path: string): Loaded {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TokenFileError(path, [`cannot read it: ${e instanceof Error ? e.message : String(e)}`]);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new TokenFileError(path, [jsonProblem(text, e)]);
  }

  const problems: string[] = [];
  const byPath = new Map<string, string>();
  for (const e of Value.Errors(TokenFileSchema, doc)) {
    if (e.path === '') {
      problems.push('the file must hold an object: { "tokens": [ ... ] }');
      break;
    }
    const [path, rule] = describePath(e.path);
    const message =
      e.type === ValueErrorType.ObjectAdditionalProperties
        ? 'unknown key'
        : e.type === ValueErrorType.ObjectRequiredProperty
          ? 'is required'
          : (FIELD_RULES[rule] ?? e.message);
    // TypeBox may report one path several times (a missing key is also the wrong type); "required" wins.
    if (!byPath.has(path) || e.type === ValueErrorType.ObjectRequiredProperty) byPath.set(path, message);
  }
  for (const [path, message] of byPath) problems.push(`${path}: ${message}`);

  // The rules across entries run on every entry the schema accepted, so that one bad entry does
  // not hide the problems of the others: the operator sees them all in one go.
  const raw = isRecord(doc) && Array.isArray(doc.tokens) ? (doc.tokens as unknown[]) : [];
  const entries: Entry[] = [];
  const firstByName = new Map<string, number>();
  const firstByDigest = new Map<string, number>();
  let plaintext = false;
  raw.forEach((candidate, i) => {
    if (!Value.Check(TokenEntrySchema, candidate)) return;
    const t: TokenEntry = candidate;
    const at = `tokens[${i}]`;
    if (t.name === UNIX_PRINCIPAL.name) problems.push(`${at}.name: 'unix' is reserved for the Unix socket's principal`);
    if (t.name === 'anonymous') problems.push(`${at}.name: 'anonymous' is reserved for requests without a token`);
    const sameName = firstByName.get(t.name);
    if (sameName !== undefined) problems.push(`${at}.name: '${t.name}' is also the name of tokens[${sameName}]`);
    else firstByName.set(t.name, i);
    if ((t.token === undefined) === (t.sha256 === undefined)) {
      problems.push(`${at}: needs exactly one of token or sha256`);
      return;
    }
    plaintext ||= t.token !== undefined;
    const digest = t.token !== undefined ? sha256(t.token) : Buffer.from(t.sha256 as string, 'hex');
    // Two entries with one token would make the principal depend on file order.
    const hex = digest.toString('hex');
    const sameToken = firstByDigest.get(hex);
    if (sameToken !== undefined) problems.push(`${at}: has the same token as tokens[${sameToken}]`);
    else firstByDigest.set(hex, i);
    entries.push({
      digest,
      principal: Object.freeze({
        name: t.name,
        scopes: new Set(t.scopes.flatMap((s) => IMPLIED[s])),
        namespaces: t.namespaces === undefined ? null : Object.freeze([...t.namespaces]),
        via: 'tcp',
      }),
    });
  });
  if (problems.length > 0) throw new TokenFileError(path, problems);

  const warnings: string[] = [];
  if (plaintext && (statSync(path).mode & 0o004) !== 0) {
    warnings.push(`tokens file ${path} holds plaintext tokens and every user can read it: chmod 600 it, or use sha256 entries`);
  }
  return { entries, warnings };
}

const REALM = 'Bearer realm="netnsd"';

/** The loaded tokens: authenticates `Authorization` headers, and re-reads its file on `reload()`. */
export class TokenStore {
  /** The tokens file this store reads. */
  readonly path: string;
  #loaded: Loaded;
  /** The last header each connection authenticated with, and as whom (see authenticate). */
  readonly #lastOn = new WeakMap<object, { readonly loaded: Loaded; readonly header: Buffer; readonly principal: Principal }>();

  /** Reads `path`; throws TokenFileError when it is unreadable or not valid. */
  constructor(path: string) {
    this.path = path;
    this.#loaded = readTokenFile(path);
  }

  /** The token names, in file order (no secrets), for logging what is loaded. */
  get names(): readonly string[] {
    return this.#loaded.entries.map((e) => e.principal.name);
  }

  /** Things worth logging about the loaded file that do not stop it from loading. */
  get warnings(): readonly string[] {
    return this.#loaded.warnings;
  }

  /**
   * Authenticates an `Authorization` header value. Throws AUTH_REQUIRED when there is none or it is
   * not `Bearer <token>`, and AUTH_INVALID when the token is not in the file; both carry a
   * `WWW-Authenticate` header, as RFC 6750 asks of a 401. `connection` (the request's socket):
   * the header that last authenticated on it is not hashed again.
   */
  authenticate(authorization: string | undefined, connection?: object): Principal {
    // A keep-alive connection sends the same header on every request: its last success stands,
    // compared in constant time (a proxy may carry several clients on one connection), while
    // the same file is loaded. A SHA-256 per request was ~3% of the daemon's work in `units`.
    if (connection === undefined || authorization === undefined) return this.authenticateNow(authorization);
    const header = Buffer.from(authorization);
    const last = this.#lastOn.get(connection);
    if (last && last.loaded === this.#loaded && header.length === last.header.length && timingSafeEqual(header, last.header)) return last.principal;
    const principal = this.authenticateNow(authorization);
    this.#lastOn.set(connection, { loaded: this.#loaded, header, principal });
    return principal;
  }

  private authenticateNow(authorization: string | undefined): Principal {
    // RFC 7235: the scheme is case-insensitive; one or more spaces separate it from the token.
    const token = authorization === undefined ? undefined : /^Bearer +(\S+) *$/i.exec(authorization)?.[1];
    if (token === undefined) {
      throw new AppError('AUTH_REQUIRED', 'Send an Authorization: Bearer <token> header', { headers: { 'WWW-Authenticate': REALM } });
    }
    const digest = sha256(token);
    let found: Principal | undefined;
    // No early exit: every entry is compared, so timing does not tell which one matched.
    for (const entry of this.#loaded.entries) {
      if (timingSafeEqual(digest, entry.digest)) found = entry.principal;
    }
    if (found === undefined) {
      throw new AppError('AUTH_INVALID', 'The bearer token is not known', {
        headers: { 'WWW-Authenticate': `${REALM}, error="invalid_token"` },
      });
    }
    return found;
  }

  /**
   * Re-reads the file (on SIGHUP). When the new file is bad this throws TokenFileError with its
   * problems and the store keeps serving the tokens it had, so a typo cannot lock everyone out.
   */
  reload(): void {
    this.#loaded = readTokenFile(this.path);
  }
}

/** Loads a tokens file; throws TokenFileError listing every problem, each naming its entry. */
export function loadTokenFile(path: string): TokenStore {
  return new TokenStore(path);
}
