import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { TSchema } from '@sinclair/typebox';
import {
  ConfigError,
  ConfigSchema,
  HELP_TEXT,
  loadConfig,
  parseListenUrl,
  type Config,
  type ConfigSources,
  type LoadConfigOptions,
} from '../../src/config.js';

/** An in-memory file system for readFile: path -> text; anything else is ENOENT. */
function files(map: Record<string, string>): (path: string) => string {
  return (path) => {
    const text = map[path];
    if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
    return text;
  };
}

function run(opts: Partial<LoadConfigOptions>): { config: Config; sources: ConfigSources } {
  const r = loadConfig({ argv: [], env: {}, cwd: '/srv', readFile: files({}), ...opts });
  if (r.kind !== 'run') throw new Error(`expected a run result, got ${r.kind}`);
  return r;
}

function problemsOf(opts: Partial<LoadConfigOptions>): string[] {
  try {
    run(opts);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

const TOKENS = { NETNSD_TOKENS: '/etc/netnsd/tokens.json' };

describe('loadConfig defaults', () => {
  it('gives every default when nothing is set', () => {
    const { config, sources } = run({});
    expect(config).toEqual({
      listen: ['unix:///run/netnsd/netnsd.sock'],
      socketMode: '0660',
      dataDir: '/var/lib/netnsd',
      logLevel: 'info',
      host: { allowChanges: false },
      events: { retentionCount: 100000, retentionAge: '24h', subscriberQueue: 1024, heartbeat: '15s', maxSubscribers: 1000 },
      exec: { enabled: false, timeout: '10s', maxOutputBytes: 1048576 },
      limits: {
        bodyBytes: 1048576,
        namespaces: 4096,
        executorConcurrency: 8,
        executorQueue: 2048,
        opTimeout: '30s',
        requestsPerSecond: 0,
      },
      idempotency: { ttl: '24h' },
      audit: { retentionCount: 100000 },
    });
    expect(sources).toEqual({ configFile: null, listen: 'default', dataDir: 'default', tokensFile: 'default', logLevel: 'default' });
  });

  it('fills the defaults of a group the file gives only in part', () => {
    const { config } = run({ argv: ['--config', '/c.json'], readFile: files({ '/c.json': '{"events":{"heartbeat":"5s"}}' }) });
    expect(config.events).toEqual({ retentionCount: 100000, retentionAge: '24h', subscriberQueue: 1024, heartbeat: '5s', maxSubscribers: 1000 });
  });
});

describe('loadConfig config files', () => {
  const settings = {
    listen: ['unix:///tmp/a.sock', 'tcp://127.0.0.1:8080'],
    tokensFile: '/etc/netnsd/tokens.json',
    socketGroup: 'netnsd',
    limits: { executorConcurrency: 4 },
    host: { allowChanges: true },
  };
  const yaml = [
    'listen:',
    '  - unix:///tmp/a.sock',
    '  - tcp://127.0.0.1:8080',
    'tokensFile: /etc/netnsd/tokens.json',
    'socketGroup: netnsd',
    '# comments are fine',
    'limits:',
    '  executorConcurrency: 4',
    'host: { allowChanges: true }',
  ].join('\n');

  it.each([
    ['/etc/netnsd/config.json', JSON.stringify(settings)],
    ['/etc/netnsd/config.yaml', yaml],
    ['/etc/netnsd/config.yml', yaml],
    ['/etc/netnsd/config', JSON.stringify(settings)],
    ['/etc/netnsd/config.conf', yaml],
  ])('reads %s', (path, text) => {
    const { config, sources } = run({ argv: ['--config', path], readFile: files({ [path]: text }) });
    expect(config.listen).toEqual(settings.listen);
    expect(config.tokensFile).toBe('/etc/netnsd/tokens.json');
    expect(config.socketGroup).toBe('netnsd');
    expect(config.limits.executorConcurrency).toBe(4);
    expect(config.limits.executorQueue).toBe(2048);
    expect(config.host.allowChanges).toBe(true);
    expect(sources).toMatchObject({ configFile: path, listen: 'file', tokensFile: 'file', dataDir: 'default' });
  });

  it('takes the config file from NETNSD_CONFIG', () => {
    const { config } = run({ env: { NETNSD_CONFIG: '/c.yaml' }, readFile: files({ '/c.yaml': 'logLevel: debug' }) });
    expect(config.logLevel).toBe('debug');
  });

  it('treats an empty YAML file as no settings', () => {
    expect(run({ argv: ['--config=/c.yaml'], readFile: files({ '/c.yaml': '# nothing yet\n' }) }).config.logLevel).toBe('info');
  });

  it('accepts a group name or a gid in digits as socketGroup, both as strings', () => {
    const readFile = files({ '/a.yaml': 'socketGroup: netnsd', '/b.yaml': 'socketGroup: "1000"', '/c.yaml': 'socketGroup: 1000' });
    expect(run({ argv: ['--config=/a.yaml'], readFile }).config.socketGroup).toBe('netnsd');
    expect(run({ argv: ['--config=/b.yaml'], readFile }).config.socketGroup).toBe('1000');
    expect(problemsOf({ argv: ['--config=/c.yaml'], readFile })).toEqual(['socketGroup: must be a string like "netnsd" or "1000"']);
  });

  describe('on disk', () => {
    let dir: string | undefined;
    afterEach(() => {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    });

    it('reads real files and takes relative paths in the file from its directory', () => {
      dir = mkdtempSync(join(tmpdir(), 'netnsd-config-'));
      writeFileSync(join(dir, 'cert.pem'), 'CERT');
      writeFileSync(join(dir, 'key.pem'), 'KEY');
      writeFileSync(
        join(dir, 'netnsd.yaml'),
        ['listen: ["tcp://[::1]:0"]', 'tokensFile: tokens.json', 'dataDir: data', 'tls:', '  cert: cert.pem', `  key: ${join(dir, 'key.pem')}`].join('\n'),
      );
      const r = loadConfig({ argv: ['--config', join(dir, 'netnsd.yaml')], env: {} });
      if (r.kind !== 'run') throw new Error(r.kind);
      expect(r.config.tokensFile).toBe(join(dir, 'tokens.json'));
      expect(r.config.dataDir).toBe(join(dir, 'data'));
      expect(r.config.tls).toEqual({ cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') });
    });
  });

  it('reports a config file that cannot be read', () => {
    expect(problemsOf({ argv: ['--config', '/nope.yaml'] })).toEqual([
      "cannot read config file /nope.yaml: ENOENT: no such file or directory, open '/nope.yaml'",
    ]);
  });

  it('reports a config file that does not parse', () => {
    const readFile = files({ '/c.json': '{"logLevel": ', '/c.yaml': 'a: [1\nb: 2', '/c.txt': 'a: [1\nb: 2' });
    expect(problemsOf({ argv: ['--config=/c.json'], readFile })[0]).toMatch(/^config file \/c\.json is not valid: /);
    expect(problemsOf({ argv: ['--config=/c.yaml'], readFile })[0]).toMatch(/^config file \/c\.yaml is not valid: .*line 2/);
    expect(problemsOf({ argv: ['--config=/c.txt'], readFile })[0]).toMatch(/^config file \/c\.txt is not valid: neither JSON nor YAML: /);
  });

  it('refuses a config file that is not a mapping', () => {
    expect(problemsOf({ argv: ['--config=/c.yaml'], readFile: files({ '/c.yaml': '- a\n- b' }) })).toEqual([
      'config file /c.yaml must hold a mapping of settings',
    ]);
  });

  it('refuses unknown keys, at the top and inside groups', () => {
    const readFile = files({ '/c.yaml': 'listn: []\nlimits:\n  bodyByte: 5\ntls: {cert: /a, key: /b, ca: /c}' });
    expect(problemsOf({ argv: ['--config=/c.yaml'], readFile: (p) => (p === '/c.yaml' ? readFile(p) : '') })).toEqual([
      'listn: unknown setting',
      'tls.ca: unknown setting',
      'limits.bodyByte: unknown setting',
    ]);
  });
});

describe('loadConfig precedence', () => {
  const file = files({
    '/c.yaml': ['logLevel: debug', 'dataDir: /file/data', 'tokensFile: /file/tokens.json', 'listen: ["unix:///file.sock"]'].join('\n'),
  });
  const env = {
    NETNSD_CONFIG: '/c.yaml',
    NETNSD_LOG_LEVEL: 'warn',
    NETNSD_DATA_DIR: '/env/data',
    NETNSD_TOKENS: '/env/tokens.json',
    NETNSD_LISTEN: 'unix:///env1.sock, unix:///env2.sock,',
  };
  const argv = ['--log-level', 'error', '--data-dir=/flag/data', '--tokens', '/flag/tokens.json', '--listen', 'unix:///flag.sock'];

  it('prefers flags over the environment', () => {
    const { config, sources } = run({ argv, env, readFile: file });
    expect(config).toMatchObject({ logLevel: 'error', dataDir: '/flag/data', tokensFile: '/flag/tokens.json', listen: ['unix:///flag.sock'] });
    expect(sources).toEqual({ configFile: '/c.yaml', logLevel: 'flag', dataDir: 'flag', tokensFile: 'flag', listen: 'flag' });
  });

  it('prefers the environment over the config file', () => {
    const { config, sources } = run({ env, readFile: file });
    expect(config).toMatchObject({
      logLevel: 'warn',
      dataDir: '/env/data',
      tokensFile: '/env/tokens.json',
      listen: ['unix:///env1.sock', 'unix:///env2.sock'],
    });
    expect(sources).toMatchObject({ logLevel: 'env', dataDir: 'env', tokensFile: 'env', listen: 'env' });
  });

  it('prefers the config file over defaults', () => {
    const { config, sources } = run({ env: { NETNSD_CONFIG: '/c.yaml' }, readFile: file });
    expect(config).toMatchObject({ logLevel: 'debug', dataDir: '/file/data', tokensFile: '/file/tokens.json', listen: ['unix:///file.sock'] });
    expect(sources).toMatchObject({ logLevel: 'file', dataDir: 'file', tokensFile: 'file', listen: 'file' });
  });

  it('takes --config over NETNSD_CONFIG', () => {
    const readFile = files({ '/a.yaml': 'logLevel: trace', '/b.yaml': 'logLevel: fatal' });
    expect(run({ argv: ['--config', '/a.yaml'], env: { NETNSD_CONFIG: '/b.yaml' }, readFile }).config.logLevel).toBe('trace');
  });

  it('counts an empty environment variable as unset', () => {
    expect(run({ env: { NETNSD_LOG_LEVEL: '', NETNSD_LISTEN: '' } }).config).toMatchObject({
      logLevel: 'info',
      listen: ['unix:///run/netnsd/netnsd.sock'],
    });
  });

  it('collects a repeated --listen, replacing the listeners of the environment and the file', () => {
    const { config } = run({
      argv: ['--listen', 'unix:///a.sock', '--listen=tcp://127.0.0.1:1', '--listen', 'tcp://[::1]:2'],
      env: { ...TOKENS, NETNSD_LISTEN: 'unix:///env.sock' },
    });
    expect(config.listen).toEqual(['unix:///a.sock', 'tcp://127.0.0.1:1', 'tcp://[::1]:2']);
  });

  it('takes relative paths from flags and the environment from the working directory', () => {
    const { config } = run({ argv: ['--data-dir', 'data'], env: { NETNSD_TOKENS: 'etc/tokens.json' }, cwd: '/home/me' });
    expect(config.dataDir).toBe('/home/me/data');
    expect(config.tokensFile).toBe('/home/me/etc/tokens.json');
  });
});

describe('loadConfig problems', () => {
  it('names every bad setting at once, by path', () => {
    const yaml = [
      'socketMode: 0660', // a YAML number, not the string '0660'
      'socketGroup: "9lives"',
      'logLevel: loud',
      'host: { allowChanges: "yes" }',
      'events: { retentionCount: 0, heartbeat: 15, retentionAge: 0s }',
      'exec: { timeout: 30d, maxOutputBytes: 1.5 }',
      'limits: { executorConcurrency: 0, requestsPerSecond: -1 }',
      'idempotency: { ttl: forever }',
      'audit: []',
      'listen: []',
      'dataDir: ""',
    ].join('\n');
    const problems = problemsOf({ argv: ['--config=/c.yaml'], readFile: files({ '/c.yaml': yaml }) });
    expect(problems.sort()).toEqual(
      [
        'listen: must have at least 1 entry',
        'socketMode: must be a string like "0660" or "0600"',
        'socketGroup: must be like "netnsd" or "1000"',
        'dataDir: must not be empty',
        'logLevel: must be one of fatal, error, warn, info, debug, trace, silent',
        'host.allowChanges: must be true or false',
        'events.retentionCount: must be >= 1',
        'events.heartbeat: must be a duration: a number and one unit of ms, s, m, h or d, like 500ms, 15s or 2h',
        'events.retentionAge: must be longer than 0',
        'exec.timeout: must be at most 24d (the longest timer Node.js can set)',
        'exec.maxOutputBytes: must be a whole number',
        'limits.executorConcurrency: must be >= 1',
        'limits.requestsPerSecond: must be >= 0',
        'idempotency.ttl: must be a duration: a number and one unit of ms, s, m, h or d, like 500ms, 15s or 2h',
        'audit: must be a mapping of settings',
      ].sort(),
    );
  });

  it('reports flag problems together with the settings they lead to, naming the flag', () => {
    const err = (() => {
      try {
        loadConfig({ argv: ['--bogus', 'stray', '--log-level', 'loud', '--listen', 'tcp://1.2.3.4:80', '--data-dir'], env: {} });
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('expected a ConfigError');
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.problems).toEqual([
      'unknown flag --bogus (see --help)',
      "unexpected argument 'stray' (see --help)",
      '--data-dir needs a value (DIR)',
      'logLevel: must be one of fatal, error, warn, info, debug, trace, silent (from --log-level)',
      'listen[0]: tcp:// listeners need a tokens file (--tokens) (from --listen)',
    ]);
    // The message lists every problem, one a line, for the operator reading stderr.
    for (const p of err.problems) expect(err.message).toContain(`  - ${p}`);
  });

  it('names the environment variable a bad value came from', () => {
    expect(problemsOf({ env: { NETNSD_LISTEN: 'unix:///ok.sock,http://x' } })).toEqual([
      "listen[1]: 'http://x' is not a listen URL: use unix:///ABS/PATH or tcp://HOST:PORT (HTTPS when tls is set) (from NETNSD_LISTEN)",
    ]);
  });

  it('refuses a tcp:// listener without a tokens file', () => {
    expect(problemsOf({ argv: ['--listen', 'unix:///a.sock', '--listen', 'tcp://127.0.0.1:8080'] })).toEqual([
      'listen[1]: tcp:// listeners need a tokens file (--tokens) (from --listen)',
    ]);
  });

  it('accepts a tcp:// listener with a tokens file', () => {
    expect(run({ argv: ['--listen', 'tcp://127.0.0.1:8080'], env: TOKENS }).config.listen).toEqual(['tcp://127.0.0.1:8080']);
  });

  it('refuses a listener given twice', () => {
    expect(problemsOf({ argv: ['--listen', 'unix:///a.sock', '--listen', 'unix:///a.sock'] })).toEqual([
      'listen[1]: repeats listen[0] (from --listen)',
    ]);
  });

  it('refuses a flag that takes one value given twice, and a value given to a switch', () => {
    expect(problemsOf({ argv: ['--data-dir', '/a', '--data-dir', '/b', '--version=2'] })).toEqual([
      '--data-dir was given more than once',
      '--version takes no value',
    ]);
  });

  it('reads a value that starts with -- only in the --flag=value form', () => {
    expect(problemsOf({ argv: ['--tokens', '--listen', 'unix:///a.sock'] })).toContain('--tokens needs a value (FILE)');
    expect(run({ argv: ['--tokens=--odd'] }).config.tokensFile).toBe('/srv/--odd');
  });

  it('refuses a socket mode that lets every user write', () => {
    expect(problemsOf({ argv: ['--config=/c.json'], readFile: files({ '/c.json': '{"socketMode":"0666"}' }) })).toEqual([
      'socketMode: must not give every user write access (o+w): whoever can connect to the socket has full control',
    ]);
  });

  it('checks that the TLS files can be read', () => {
    const readFile = files({ '/c.json': '{"tls":{"cert":"/pki/cert.pem","key":"/pki/key.pem"}}', '/pki/cert.pem': 'CERT' });
    expect(problemsOf({ argv: ['--config=/c.json'], readFile })).toEqual([
      "tls.key: cannot read /pki/key.pem: ENOENT: no such file or directory, open '/pki/key.pem'",
    ]);
    const both = files({ '/c.json': '{"tls":{"cert":"/pki/cert.pem","key":"/pki/key.pem"}}', '/pki/cert.pem': 'C', '/pki/key.pem': 'K' });
    expect(run({ argv: ['--config=/c.json'], readFile: both }).config.tls).toEqual({ cert: '/pki/cert.pem', key: '/pki/key.pem' });
  });

  it('requires both tls files once tls is set', () => {
    expect(problemsOf({ argv: ['--config=/c.json'], readFile: files({ '/c.json': '{"tls":{"cert":"/c.pem"}}', '/c.pem': 'C' }) })).toEqual([
      'tls.key: is required',
    ]);
  });
});

describe('loadConfig --help and --version', () => {
  it('returns the help text instead of exiting, even beside other flags', () => {
    expect(loadConfig({ argv: ['--bogus', '--help'], env: {} })).toEqual({ kind: 'help', text: HELP_TEXT });
  });

  it('returns the version of the package', async () => {
    const pkg = (await import('../../package.json', { with: { type: 'json' } })).default;
    expect(loadConfig({ argv: ['--version'], env: {} })).toEqual({ kind: 'version', text: `netnsd ${pkg.version}` });
  });

  it('lists every flag and environment variable in the help text', () => {
    for (const word of [
      '--config FILE',
      '--listen URL',
      '--data-dir DIR',
      '--tokens FILE',
      '--log-level LEVEL',
      '--help',
      '--version',
      'NETNSD_CONFIG',
      'NETNSD_LISTEN',
      'NETNSD_DATA_DIR',
      'NETNSD_TOKENS',
      'NETNSD_LOG_LEVEL',
    ]) {
      expect(HELP_TEXT).toContain(word);
    }
  });

  it('lists every config file setting with its default in the help text', () => {
    const leaves: [string, unknown][] = [];
    const walk = (schema: TSchema, path: string): void => {
      if (schema.type === 'object' && schema.properties) {
        for (const [k, sub] of Object.entries(schema.properties as Record<string, TSchema>)) walk(sub, path ? `${path}.${k}` : k);
      } else {
        leaves.push([path, schema.default]);
      }
    };
    walk(ConfigSchema, '');
    expect(leaves.length).toBeGreaterThan(20);
    for (const [path, def] of leaves) {
      expect(HELP_TEXT).toContain(`  ${path}: ${def === undefined ? '' : JSON.stringify(def)}`);
    }
  });
});

describe('parseListenUrl', () => {
  it.each([
    ['unix:///run/netnsd/netnsd.sock', { kind: 'unix', path: '/run/netnsd/netnsd.sock' }],
    ['tcp://127.0.0.1:8080', { kind: 'tcp', host: '127.0.0.1', port: 8080 }],
    ['tcp://0.0.0.0:0', { kind: 'tcp', host: '0.0.0.0', port: 0 }],
    ['tcp://[::1]:65535', { kind: 'tcp', host: '::1', port: 65535 }],
    ['tcp://[::]:80', { kind: 'tcp', host: '::', port: 80 }],
    ['tcp://localhost:8080', { kind: 'tcp', host: 'localhost', port: 8080 }],
  ])('parses %s', (url, expected) => {
    expect(parseListenUrl(url)).toEqual(expected);
  });

  it.each([
    ['unix://run/netnsd.sock', /absolute path/],
    ['unix:///run/netnsd/', /directory/],
    [`unix:///${'a'.repeat(107)}`, /108 bytes; Unix sockets allow at most 107/],
    ['tcp://127.0.0.1', /tcp:\/\/HOST:PORT/],
    ['tcp://127.0.0.1:80/', /tcp:\/\/HOST:PORT/],
    ['tcp://::1:80', /tcp:\/\/HOST:PORT/],
    ['tcp://example.com:80', /HOST must be an IPv4 address, \[IPv6\] or localhost/],
    ['tcp://127.1:80', /HOST must be/],
    ['tcp://[1.2.3.4]:80', /not an IPv6 address/],
    ['tcp://127.0.0.1:65536', /port 65536 is not in 0-65535/],
    ['tcp://127.0.0.1:-1', /tcp:\/\/HOST:PORT/],
    ['http://127.0.0.1:80', /is not a listen URL/],
    ['/run/netnsd.sock', /is not a listen URL/],
  ])('refuses %s', (url, message) => {
    expect(() => parseListenUrl(url)).toThrow(message);
  });
});
