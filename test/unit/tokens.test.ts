import { createHash } from 'node:crypto';
import * as crypto from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AppError } from '../../src/errors/app-error.js';
import {
  TokenFileError,
  UNIX_PRINCIPAL,
  canUseNamespace,
  hasScope,
  loadTokenFile,
  requireNamespace,
  requireScope,
  type Principal,
  type Scope,
} from '../../src/auth/tokens.js';

// Wrap timingSafeEqual in a spy to see that every entry is compared.
vi.mock('node:crypto', async (importOriginal) => {
  const orig = await importOriginal<typeof import('node:crypto')>();
  return { ...orig, timingSafeEqual: vi.fn(orig.timingSafeEqual) };
});

const CI_TOKEN = 'ci-token-0123456789abcdef';
const OPS_TOKEN = 'ops-token-fedcba9876543210';
const sha = (t: string): string => createHash('sha256').update(t).digest('hex');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'netnsd-tokens-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  vi.mocked(crypto.timingSafeEqual).mockClear();
});

function writeTokens(content: unknown, name = 'tokens.json', mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  chmodSync(path, mode);
  return path;
}

const GOOD = {
  tokens: [
    { name: 'ci', token: CI_TOKEN, scopes: ['write'], namespaces: ['lab-*', 'ci-??'] },
    { name: 'ops', sha256: sha(OPS_TOKEN).toUpperCase(), scopes: ['admin'] },
    { name: 'viewer', token: 'viewer-token-000000', scopes: ['read'] },
  ],
};

function problemsOf(content: unknown): string[] {
  try {
    loadTokenFile(writeTokens(content));
  } catch (e) {
    if (e instanceof TokenFileError) return e.problems;
    throw e;
  }
  throw new Error('expected a TokenFileError');
}

function appErrorOf(f: () => unknown): AppError {
  try {
    f();
  } catch (e) {
    if (e instanceof AppError) return e;
    throw e;
  }
  throw new Error('expected an AppError');
}

function principal(scopes: Scope[], namespaces: string[] | null = null): Principal {
  return { name: 't', scopes: new Set(scopes), namespaces, via: 'tcp' };
}

describe('TokenStore.authenticate', () => {
  it('authenticates a plaintext token entry', () => {
    const store = loadTokenFile(writeTokens(GOOD));
    const p = store.authenticate(`Bearer ${CI_TOKEN}`);
    expect(p).toMatchObject({ name: 'ci', namespaces: ['lab-*', 'ci-??'], via: 'tcp' });
    expect([...p.scopes].sort()).toEqual(['read', 'write']);
  });

  it('authenticates a sha256 entry by the token whose hash it holds (hex in either case)', () => {
    const p = loadTokenFile(writeTokens(GOOD)).authenticate(`Bearer ${OPS_TOKEN}`);
    expect(p.name).toBe('ops');
    expect(p.namespaces).toBeNull();
    expect([...p.scopes].sort()).toEqual(['admin', 'read', 'write']);
  });

  it('takes the scheme in any case and more than one space before the token', () => {
    expect(loadTokenFile(writeTokens(GOOD)).authenticate(`bearer   ${CI_TOKEN}`).name).toBe('ci');
  });

  it.each([undefined, '', 'Bearer', 'Bearer ', `Basic ${CI_TOKEN}`, CI_TOKEN, `Bearer ${CI_TOKEN} extra`])(
    'answers AUTH_REQUIRED (401) to %j',
    (header) => {
      const err = appErrorOf(() => loadTokenFile(writeTokens(GOOD)).authenticate(header));
      expect(err.code).toBe('AUTH_REQUIRED');
      expect(err.status).toBe(401);
      expect(err.headers).toEqual({ 'WWW-Authenticate': 'Bearer realm="netnsd"' });
    },
  );

  it('answers AUTH_INVALID (401) to a token not in the file', () => {
    const err = appErrorOf(() => loadTokenFile(writeTokens(GOOD)).authenticate('Bearer not-a-known-token-at-all'));
    expect(err.code).toBe('AUTH_INVALID');
    expect(err.status).toBe(401);
    expect(err.headers).toEqual({ 'WWW-Authenticate': 'Bearer realm="netnsd", error="invalid_token"' });
    expect(err.message).not.toContain('not-a-known-token');
  });

  it('refuses the hash of a sha256 entry presented as if it were the token', () => {
    const err = appErrorOf(() => loadTokenFile(writeTokens(GOOD)).authenticate(`Bearer ${sha(OPS_TOKEN)}`));
    expect(err.code).toBe('AUTH_INVALID');
  });

  it('compares the presented token with every entry, even after a match (constant time)', () => {
    const store = loadTokenFile(writeTokens(GOOD));
    const spy = vi.mocked(crypto.timingSafeEqual);
    spy.mockClear();
    expect(store.authenticate(`Bearer ${CI_TOKEN}`).name).toBe('ci'); // the first entry
    expect(spy).toHaveBeenCalledTimes(3);
    spy.mockClear();
    expect(() => store.authenticate('Bearer some-unknown-token-1234')).toThrow(AppError);
    expect(spy).toHaveBeenCalledTimes(3);
    // What is compared is a 32-byte digest, never the token itself.
    for (const [a, b] of spy.mock.calls) {
      expect((a as Buffer).length).toBe(32);
      expect((b as Buffer).length).toBe(32);
    }
  });

  it("takes a connection's repeated header without hashing it again, compared once in constant time", () => {
    const store = loadTokenFile(writeTokens(GOOD));
    const conn = {};
    const spy = vi.mocked(crypto.timingSafeEqual);
    expect(store.authenticate(`Bearer ${CI_TOKEN}`, conn).name).toBe('ci');
    spy.mockClear();
    expect(store.authenticate(`Bearer ${CI_TOKEN}`, conn).name).toBe('ci');
    expect(spy).toHaveBeenCalledTimes(1);
    // Another connection with the same header is authenticated on its own.
    spy.mockClear();
    expect(store.authenticate(`Bearer ${CI_TOKEN}`, {}).name).toBe('ci');
    expect(spy).toHaveBeenCalledTimes(3);
  });

  it('answers AUTH_INVALID to an unknown token on a connection that authenticated before', () => {
    const store = loadTokenFile(writeTokens(GOOD));
    const conn = {};
    expect(store.authenticate(`Bearer ${CI_TOKEN}`, conn).name).toBe('ci');
    // Same length as the header that worked: compared, and refused.
    const other = `Bearer ${'x'.repeat(CI_TOKEN.length)}`;
    expect(() => store.authenticate(other, conn)).toThrow(/AUTH_INVALID/);
    expect(() => store.authenticate(undefined, conn)).toThrow(/AUTH_REQUIRED/);
    expect(store.authenticate(`Bearer ${OPS_TOKEN}`, conn).name).toBe('ops');
  });

  it('lists the names it loaded', () => {
    expect(loadTokenFile(writeTokens(GOOD)).names).toEqual(['ci', 'ops', 'viewer']);
  });
});

describe('scopes', () => {
  it.each([
    ['read', ['read']],
    ['write', ['read', 'write']],
    ['admin', ['admin', 'read', 'write']],
  ] as const)('expands %s to %j', (scope, expanded) => {
    const store = loadTokenFile(writeTokens({ tokens: [{ name: 'x', token: CI_TOKEN, scopes: [scope] }] }));
    const p = store.authenticate(`Bearer ${CI_TOKEN}`);
    expect([...p.scopes].sort()).toEqual(expanded);
    for (const s of ['read', 'write', 'admin'] as const) expect(hasScope(p, s)).toBe((expanded as readonly string[]).includes(s));
  });

  it('requireScope answers SCOPE_INSUFFICIENT (403) naming the scope needed', () => {
    const p = loadTokenFile(writeTokens(GOOD)).authenticate('Bearer viewer-token-000000');
    expect(() => requireScope(p, 'read')).not.toThrow();
    const err = appErrorOf(() => requireScope(p, 'write'));
    expect(err.code).toBe('SCOPE_INSUFFICIENT');
    expect(err.status).toBe(403);
    expect(err.detail).toContain("'write'");
    expect(err.meta).toEqual({ requiredScope: 'write' });
  });

  it('gives the Unix socket principal every scope and every namespace', () => {
    expect(UNIX_PRINCIPAL).toMatchObject({ name: 'unix', namespaces: null, via: 'unix' });
    for (const s of ['read', 'write', 'admin'] as const) expect(hasScope(UNIX_PRINCIPAL, s)).toBe(true);
    expect(canUseNamespace(UNIX_PRINCIPAL, 'host')).toBe(true);
    expect(canUseNamespace(UNIX_PRINCIPAL, 'anything')).toBe(true);
  });
});

describe('namespace limits', () => {
  it.each([
    [['lab-*'], 'lab-a', true],
    [['lab-*'], 'lab-', true],
    [['lab-*'], 'xlab-a', false],
    [['lab-*'], 'lab', false],
    [['ci-??'], 'ci-01', true],
    [['ci-??'], 'ci-1', false],
    [['ci-??'], 'ci-001', false],
    [['a.b'], 'a.b', true],
    [['a.b'], 'aXb', false],
    [['*-r?'], 'lab-a-r1', true],
    [['*a*b*c'], 'xaxbxbxc', true],
    [['*a*b*c'], 'xaxcxb', false],
    [['blue', 'green'], 'green', true],
    [['Blue'], 'blue', false],
  ])('%j %s -> %s', (patterns, name, allowed) => {
    expect(canUseNamespace(principal(['read'], patterns), name)).toBe(allowed);
  });

  it('lets a limited token reach host only when a pattern names host literally', () => {
    expect(canUseNamespace(principal(['read'], ['lab-*']), 'host')).toBe(false);
    expect(canUseNamespace(principal(['read'], ['host']), 'host')).toBe(true);
    expect(canUseNamespace(principal(['read'], ['h?st']), 'host')).toBe(false);
    expect(canUseNamespace(principal(['read'], ['*']), 'host')).toBe(false);
    expect(canUseNamespace(principal(['read'], ['*', 'host']), 'host')).toBe(true);
    expect(canUseNamespace(principal(['read'], ['*']), 'hostile')).toBe(true);
    expect(canUseNamespace(principal(['read'], null), 'host')).toBe(true);
  });

  it('requireNamespace answers NAMESPACE_FORBIDDEN (403)', () => {
    const p = loadTokenFile(writeTokens(GOOD)).authenticate(`Bearer ${CI_TOKEN}`);
    expect(() => requireNamespace(p, 'lab-1')).not.toThrow();
    const err = appErrorOf(() => requireNamespace(p, 'prod'));
    expect(err.code).toBe('NAMESPACE_FORBIDDEN');
    expect(err.status).toBe(403);
    expect(err.meta).toEqual({ namespace: 'prod' });
  });
});

describe('loadTokenFile validation', () => {
  it('names each bad entry and field, all at once', () => {
    expect(
      problemsOf({
        tokens: [
          { name: 'ok', token: CI_TOKEN, scopes: ['read'] },
          { name: 'short', token: 'tiny', scopes: ['read'] },
          { name: 'hash', sha256: 'abc', scopes: ['read'] },
          { name: 'noscope', token: OPS_TOKEN, scopes: [] },
          { name: 'badscope', token: 'badscope-token-0000', scopes: ['root'] },
          { name: 'extra', token: 'extra-token-00000000', scopes: ['read'], note: 'x' },
          { name: 'glob', token: 'glob-token-000000000', scopes: ['read'], namespaces: ['lab/*', 'ok-*'] },
          { name: 'empty', token: 'empty-token-00000000', scopes: ['read'], namespaces: [] },
          { token: 'nameless-token-0000', scopes: ['read'] },
          { name: 'bad name!', token: 'badname-token-00000', scopes: ['read'] },
        ],
      }),
    ).toEqual([
      'tokens[1].token: must be 16-4096 characters of A-Z a-z 0-9 - . _ ~ + / (a bearer token, = padding allowed at the end)',
      'tokens[2].sha256: must be 64 hex characters',
      'tokens[3].scopes: must list at least one of read, write, admin',
      'tokens[4].scopes[0]: must be read, write or admin',
      'tokens[5].note: unknown key',
      'tokens[6].namespaces[0]: must be 1-64 characters of A-Z a-z 0-9 _ . - and the wildcards * ?',
      'tokens[7].namespaces: must list at least one pattern (leave the key out for every namespace)',
      'tokens[8].name: is required',
      'tokens[9].name: must be 1-64 characters of A-Z a-z 0-9 _ . @ -',
    ]);
  });

  it('applies the rules across entries together with the schema', () => {
    expect(
      problemsOf({
        tokens: [
          { name: 'a', token: CI_TOKEN, scopes: ['read'] },
          { name: 'a', token: OPS_TOKEN, scopes: ['read'] },
          { name: 'b', sha256: sha(CI_TOKEN), scopes: ['read'] },
          { name: 'both', token: 'both-token-000000000', sha256: sha('x'), scopes: ['read'] },
          { name: 'neither', scopes: ['read'] },
          { name: 'unix', token: 'unix-token-000000000', scopes: ['read'] },
          { name: 'bad', sha256: 'nothex', scopes: ['read'] },
        ],
      }),
    ).toEqual([
      'tokens[6].sha256: must be 64 hex characters',
      "tokens[1].name: 'a' is also the name of tokens[0]",
      'tokens[2]: has the same token as tokens[0]',
      'tokens[3]: needs exactly one of token or sha256',
      'tokens[4]: needs exactly one of token or sha256',
      "tokens[5].name: 'unix' is reserved for the Unix socket's principal",
    ]);
  });

  it('refuses a file that is not { tokens: [...] }', () => {
    expect(problemsOf([])).toEqual(['the file must hold an object: { "tokens": [ ... ] }']);
    expect(problemsOf({})).toEqual(['tokens: is required']);
    expect(problemsOf({ tokens: {} })).toEqual(['tokens: must be a list of token entries']);
    expect(problemsOf({ tokens: [], version: 2 })).toEqual(['version: unknown key']);
    expect(problemsOf({ tokens: ['x'] })).toEqual(['tokens[0]: must be an object with name, token or sha256, and scopes']);
  });

  it('accepts an empty list (no one gets in over TCP)', () => {
    const store = loadTokenFile(writeTokens({ tokens: [] }));
    expect(store.names).toEqual([]);
    expect(() => store.authenticate(`Bearer ${CI_TOKEN}`)).toThrow(/AUTH_INVALID/);
  });

  it('reports bad JSON by position without quoting the file, which may hold a token', () => {
    const problems = problemsOf(`{"tokens": [{"name": "ci", "token": "${CI_TOKEN}" "scopes": ["read"]}]}`);
    expect(problems).toEqual([expect.stringMatching(/^not valid JSON/)]);
    expect(problems.join()).not.toContain(CI_TOKEN);
  });

  it('never puts a token into a problem', () => {
    const problems = problemsOf({ tokens: [{ name: 'a', token: CI_TOKEN, scopes: ['read'] }, { name: 'b', token: CI_TOKEN, scopes: [] }] });
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join()).not.toContain(CI_TOKEN);
  });

  it('reports a file that cannot be read', () => {
    const err = (() => {
      try {
        loadTokenFile(join(dir, 'missing.json'));
      } catch (e) {
        return e as TokenFileError;
      }
      throw new Error('expected a TokenFileError');
    })();
    expect(err).toBeInstanceOf(TokenFileError);
    expect(err.problems).toEqual([expect.stringMatching(/^cannot read it: ENOENT/)]);
    expect(err.message).toContain(join(dir, 'missing.json'));
  });

  it('warns when every user can read plaintext tokens, not when the file holds hashes only', () => {
    expect(loadTokenFile(writeTokens(GOOD, 'private.json', 0o600)).warnings).toEqual([]);
    expect(loadTokenFile(writeTokens(GOOD, 'open.json', 0o644)).warnings).toEqual([expect.stringMatching(/every user can read it: chmod 600/)]);
    const hashed = { tokens: [{ name: 'ops', sha256: sha(OPS_TOKEN), scopes: ['admin'] }] };
    expect(loadTokenFile(writeTokens(hashed, 'hashed.json', 0o644)).warnings).toEqual([]);
  });
});

describe('TokenStore.reload', () => {
  it('picks up tokens added and drops tokens removed', () => {
    const path = writeTokens(GOOD);
    const store = loadTokenFile(path);
    writeTokens({ tokens: [{ name: 'new', token: 'new-token-0000000000', scopes: ['read'] }] });
    store.reload();
    expect(store.names).toEqual(['new']);
    expect(store.authenticate('Bearer new-token-0000000000').name).toBe('new');
    expect(() => store.authenticate(`Bearer ${CI_TOKEN}`)).toThrow(/AUTH_INVALID/);
  });

  it('refuses, after a reload, a token a connection authenticated with before it was removed', () => {
    const path = writeTokens(GOOD);
    const store = loadTokenFile(path);
    const conn = {};
    expect(store.authenticate(`Bearer ${CI_TOKEN}`, conn).name).toBe('ci');
    writeTokens({ tokens: [{ name: 'new', token: 'new-token-0000000000', scopes: ['read'] }] });
    store.reload();
    expect(() => store.authenticate(`Bearer ${CI_TOKEN}`, conn)).toThrow(/AUTH_INVALID/);
  });

  it('keeps the old set when the new file is bad, and throws its problems', () => {
    const path = writeTokens(GOOD);
    const store = loadTokenFile(path);
    writeTokens({ tokens: [{ name: 'ci', token: 'short', scopes: ['read'] }] });
    expect(() => store.reload()).toThrow(TokenFileError);
    try {
      store.reload();
    } catch (e) {
      expect((e as TokenFileError).problems).toEqual([expect.stringMatching(/^tokens\[0\]\.token: /)]);
    }
    expect(store.authenticate(`Bearer ${CI_TOKEN}`).name).toBe('ci');
    expect(store.names).toEqual(['ci', 'ops', 'viewer']);

    rmSync(path);
    expect(() => store.reload()).toThrow(/cannot read it/);
    expect(store.authenticate(`Bearer ${OPS_TOKEN}`).name).toBe('ops');
  });
});
