/**
 * netnsd's configuration: one TypeBox schema with defaults (the single source of the settings, of
 * the `Config` type and of the config part of `--help`), and `loadConfig`, which merges command
 * line flags > environment > config file > defaults and checks the result as a whole.
 *
 * Every problem is collected and reported at once (a `ConfigError` listing each by setting path),
 * so an operator fixes a bad config in one round instead of one restart per typo.
 *
 * Durations stay strings in `Config` (`'15s'`, as written, which is also how `/capabilities` or a
 * startup log line should show them). Convert one where it is used with `parseDuration` from
 * `duration.ts`; `loadConfig` has already checked that every duration parses and lies in
 * (0, 24d], so that call cannot throw on a loaded config.
 */
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { Type, type Static, type TProperties, type TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value';
import { parseDocument } from 'yaml';
import { DURATION_PATTERN, DurationSchema, parseDuration } from './duration.js';

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

const LISTEN_EXAMPLES = ['unix:///run/netnsd/netnsd.sock', 'tcp://127.0.0.1:8080', 'tcp://[::1]:8080'];

/** A setting group: unknown keys refused, and present (filled with defaults) even when omitted. */
function group<P extends TProperties>(description: string, properties: P) {
  return Type.Object(properties, { additionalProperties: false, default: {}, description });
}

/**
 * A duration setting: the syntax of `DurationSchema`, without its `$id` (an `$id` names one schema,
 * and each setting has its own default and description).
 */
function duration(defaultValue: string, description: string) {
  return Type.String({ pattern: DURATION_PATTERN, examples: DurationSchema.examples as string[], default: defaultValue, description });
}

/** An octal permission string; setuid/setgid/sticky bits mean nothing on a socket, so three digits. */
const SOCKET_MODE_PATTERN = '^0?[0-7]{3}$';
const SOCKET_MODE_RE = new RegExp(SOCKET_MODE_PATTERN);

function count(defaultValue: number, minimum: number, description: string) {
  return Type.Integer({ minimum, default: defaultValue, description });
}

export const LogLevelSchema = Type.Union(
  [
    Type.Literal('fatal'),
    Type.Literal('error'),
    Type.Literal('warn'),
    Type.Literal('info'),
    Type.Literal('debug'),
    Type.Literal('trace'),
    Type.Literal('silent'),
  ],
  { default: 'info', description: 'Log level (pino): fatal, error, warn, info, debug, trace or silent.' },
);

export type LogLevel = Static<typeof LogLevelSchema>;

export const ConfigSchema = Type.Object(
  {
    listen: Type.Array(
      Type.String({
        minLength: 1,
        description: 'unix:///ABS/PATH or tcp://HOST:PORT (HOST an IPv4 address, [IPv6] or localhost; PORT 0-65535).',
        examples: LISTEN_EXAMPLES,
      }),
      {
        minItems: 1,
        default: ['unix:///run/netnsd/netnsd.sock'],
        description:
          'Where to listen: unix:///ABS/PATH or tcp://HOST:PORT (HOST an IPv4 address, [IPv6] or localhost; ' +
          'PORT 0-65535, 0 picks a free port). tcp:// listeners need tokensFile and serve HTTPS when tls is set; ' +
          'use tcp://0.0.0.0:PORT or tcp://[::]:PORT to listen beyond this machine.',
      },
    ),
    socketMode: Type.String({
      pattern: SOCKET_MODE_PATTERN,
      default: '0660',
      description:
        'Permissions of the Unix sockets, as an octal string (quote it in YAML, where 0660 is a number). ' +
        'Whoever can connect has full control, so write access for every user (o+w) is refused.',
      examples: ['0660', '0600'],
    }),
    socketGroup: Type.Optional(
      Type.String({
        // A name as useradd allows it, or a gid in digits. One string type for both, so users of
        // the setting handle one type; in YAML a bare 1000 is a number and gets "must be a string".
        pattern: '^(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]{1,10})$',
        description: 'Group that owns the Unix sockets: a group name or a numeric gid, as a string. Unset: the group of the netnsd process.',
        examples: ['netnsd', '1000'],
      }),
    ),
    dataDir: Type.String({
      minLength: 1,
      default: '/var/lib/netnsd',
      description: 'Directory of the SQLite store (labels, audit, idempotency keys, event log).',
    }),
    tokensFile: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'The bearer tokens file (JSON), required by tcp:// listeners; re-read on SIGHUP. Unset: no tokens.',
      }),
    ),
    logLevel: LogLevelSchema,
    tls: Type.Optional(
      Type.Object(
        {
          cert: Type.String({ minLength: 1, description: 'Certificate chain, a PEM file.' }),
          key: Type.String({ minLength: 1, description: 'Private key, a PEM file.' }),
        },
        { additionalProperties: false, description: 'When set, tcp:// listeners serve HTTPS with this certificate. Unset: plain HTTP.' },
      ),
    ),
    host: group('The root namespace (`host`).', {
      allowChanges: Type.Boolean({
        default: false,
        description: 'Allow changes to what pre-existed in the root namespace (its links, addresses, routes).',
      }),
    }),
    events: group('The event log and event subscriptions.', {
      retentionCount: count(100000, 1, 'Events kept in the log, at most.'),
      retentionAge: duration('24h', 'Events older than this are dropped from the log.'),
      subscriberQueue: count(1024, 1, 'Events queued for one slow subscriber before it is sent a gap or closed.'),
      heartbeat: duration('15s', 'Interval of keep-alive messages on event streams.'),
      maxSubscribers: count(1000, 1, 'Concurrent event subscribers, at most.'),
    }),
    exec: group('Running commands inside namespaces.', {
      enabled: Type.Boolean({ default: false, description: 'Offer the exec endpoint at all.' }),
      timeout: duration('10s', 'A command running longer than this is killed.'),
      maxOutputBytes: count(1048576, 1, 'Output kept per stream (stdout, stderr) of one command.'),
    }),
    limits: group('Limits that keep one client from exhausting the daemon.', {
      bodyBytes: count(1048576, 1, 'Largest request body, in bytes.'),
      namespaces: count(4096, 1, 'Managed namespaces, at most.'),
      executorConcurrency: count(8, 1, 'System operations running at once.'),
      executorQueue: count(2048, 1, 'System operations waiting; beyond this requests get EXECUTOR_BUSY (503).'),
      opTimeout: duration('30s', 'One system operation taking longer than this fails with EXECUTOR_TIMEOUT.'),
      requestsPerSecond: count(0, 0, 'Requests per second per client; 0 means unlimited.'),
    }),
    idempotency: group('Idempotency-Key handling.', {
      ttl: duration('24h', 'How long a key and its response are remembered.'),
    }),
    audit: group('The audit log.', {
      retentionCount: count(100000, 1, 'Audit records kept, at most.'),
    }),
  },
  { additionalProperties: false },
);

/**
 * The loaded configuration, defaults applied (so only `socketGroup`, `tokensFile` and `tls` may be
 * absent). Paths are absolute. Durations are strings: see the note at the top of this file.
 */
export type Config = Static<typeof ConfigSchema>;

/** The longest duration accepted: Node's timers hold at most 2^31-1 ms (24.8 days) and fire at once beyond that. */
const MAX_DURATION_MS = 24 * 86_400_000;

// ---------------------------------------------------------------------------------------------
// Listen URLs
// ---------------------------------------------------------------------------------------------

/** A parsed `listen` entry. `host` is bare (no brackets), ready for `server.listen({ host, port })`. */
export type ListenAddress =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** sun_path holds 108 bytes including the terminating NUL (Linux `struct sockaddr_un`). */
const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Parses `unix:///abs/path` or `tcp://HOST:PORT` (HOST an IPv4 address, `[IPv6]` or `localhost`,
 * PORT 0-65535). Throws a plain Error saying what is wrong. Host names other than `localhost` are
 * refused: resolving them at startup would make the bound address depend on DNS.
 */
export function parseListenUrl(url: string): ListenAddress {
  if (url.startsWith('unix://')) {
    const path = url.slice('unix://'.length);
    if (!path.startsWith('/')) throw new Error(`'${url}': a unix:// listener needs an absolute path, as in unix:///run/netnsd/netnsd.sock`);
    if (path.endsWith('/')) throw new Error(`'${url}': the socket path names a directory`);
    if (path.includes('\0')) throw new Error(`'${url}': the socket path contains a NUL byte`);
    const bytes = Buffer.byteLength(path);
    if (bytes > MAX_SOCKET_PATH_BYTES) {
      throw new Error(`'${url}': the socket path is ${bytes} bytes; Unix sockets allow at most ${MAX_SOCKET_PATH_BYTES}`);
    }
    return { kind: 'unix', path };
  }
  if (url.startsWith('tcp://')) {
    const m = /^(\[[^\]]*\]|[^:/[\]]*):([0-9]+)$/.exec(url.slice('tcp://'.length));
    if (!m) throw new Error(`'${url}': a tcp:// listener is tcp://HOST:PORT, as in tcp://127.0.0.1:8080 or tcp://[::1]:8080`);
    const [, hostPart, portText] = m as unknown as [string, string, string];
    let host: string;
    if (hostPart.startsWith('[')) {
      host = hostPart.slice(1, -1);
      if (!isIPv6(host)) throw new Error(`'${url}': '${host}' is not an IPv6 address`);
    } else if (hostPart === 'localhost' || isIPv4(hostPart)) {
      host = hostPart;
    } else {
      throw new Error(`'${url}': HOST must be an IPv4 address, [IPv6] or localhost`);
    }
    const port = Number(portText);
    if (port > 65535) throw new Error(`'${url}': port ${portText} is not in 0-65535`);
    return { kind: 'tcp', host, port };
  }
  throw new Error(`'${url}' is not a listen URL: use unix:///ABS/PATH or tcp://HOST:PORT (HTTPS when tls is set)`);
}

// ---------------------------------------------------------------------------------------------
// Command line and environment
// ---------------------------------------------------------------------------------------------

/** The settings a flag or an environment variable can set, besides the config file itself. */
type OverridableKey = 'listen' | 'dataDir' | 'tokensFile' | 'logLevel';

interface FlagSpec {
  readonly flag: string;
  /** The value's placeholder in help; absent for switches (`--help`). */
  readonly arg?: string;
  readonly env?: string;
  /** The setting it overrides; `config` is the config file path. */
  readonly key?: OverridableKey | 'config';
  readonly help: string;
}

/** One table drives the parser and the help text, so they cannot disagree. */
const FLAGS: readonly FlagSpec[] = [
  {
    flag: '--config',
    arg: 'FILE',
    env: 'NETNSD_CONFIG',
    key: 'config',
    help:
      'Read settings from FILE: JSON (.json) or YAML (.yaml, .yml); any other name is tried as JSON, then YAML. ' +
      'Relative paths inside it are taken from its directory. Default: no file.',
  },
  {
    flag: '--listen',
    arg: 'URL',
    env: 'NETNSD_LISTEN',
    key: 'listen',
    help:
      'Listen on URL: unix:///ABS/PATH or tcp://HOST:PORT. Repeat the flag for several listeners ' +
      '(NETNSD_LISTEN: a comma-separated list); they replace the listen setting of the file.',
  },
  { flag: '--data-dir', arg: 'DIR', env: 'NETNSD_DATA_DIR', key: 'dataDir', help: 'Directory of the store (setting dataDir).' },
  {
    flag: '--tokens',
    arg: 'FILE',
    env: 'NETNSD_TOKENS',
    key: 'tokensFile',
    help: 'The bearer tokens file (setting tokensFile); tcp:// listeners need one.',
  },
  { flag: '--log-level', arg: 'LEVEL', env: 'NETNSD_LOG_LEVEL', key: 'logLevel', help: 'fatal, error, warn, info, debug, trace or silent (setting logLevel).' },
  { flag: '--help', help: 'Print this help and exit.' },
  { flag: '--version', help: 'Print the version and exit.' },
];

interface ParsedArgs {
  readonly values: Partial<Record<OverridableKey | 'config', string[]>>;
  readonly help: boolean;
  readonly version: boolean;
  readonly problems: string[];
}

function parseArgs(argv: readonly string[]): ParsedArgs {
  const values: Partial<Record<OverridableKey | 'config', string[]>> = {};
  const problems: string[] = [];
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('-') || arg === '-') {
      problems.push(`unexpected argument '${arg}' (see --help)`);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const spec = FLAGS.find((f) => f.flag === name);
    if (spec === undefined) {
      problems.push(`unknown flag ${name} (see --help)`);
      continue;
    }
    if (spec.key === undefined) {
      if (eq !== -1) problems.push(`${name} takes no value`);
      else if (name === '--help') help = true;
      else version = true;
      continue;
    }
    let value: string;
    if (eq !== -1) {
      value = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      // `--tokens --listen x` is a forgotten value, not a file called `--listen`; a value that
      // really starts with `--` can still be given as `--tokens=--odd`.
      if (next === undefined || next.startsWith('--')) {
        problems.push(`${name} needs a value (${spec.arg})`);
        continue;
      }
      value = next;
      i++;
    }
    const list = (values[spec.key] ??= []);
    if (list.length > 0 && spec.key !== 'listen') problems.push(`${name} was given more than once`);
    list.push(value);
  }
  return { values, help, version, problems };
}

/** An empty variable counts as unset, as shells make `NETNSD_TOKENS=` easy to write by accident. */
function envValue(env: Readonly<Record<string, string | undefined>>, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

// ---------------------------------------------------------------------------------------------
// Config file
// ---------------------------------------------------------------------------------------------

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function firstLine(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/:$/, '');
}

type Parsed = { ok: true; value: unknown } | { ok: false; reason: string };

function parseJson(text: string): Parsed {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}

function parseYaml(text: string): Parsed {
  const doc = parseDocument(text);
  const [err] = doc.errors;
  if (err !== undefined) return { ok: false, reason: firstLine(err.message) };
  return { ok: true, value: doc.toJS() as unknown };
}

function parseConfigText(text: string, path: string): Parsed {
  const ext = extname(path).toLowerCase();
  if (ext === '.json') return parseJson(text);
  if (ext === '.yaml' || ext === '.yml') return parseYaml(text);
  const json = parseJson(text);
  if (json.ok) return json;
  const yaml = parseYaml(text);
  return yaml.ok ? yaml : { ok: false, reason: `neither JSON nor YAML: ${yaml.reason}` };
}

// ---------------------------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------------------------

/** `/limits/executorConcurrency` -> `limits.executorConcurrency`; `/listen/1` -> `listen[1]`. */
function settingPath(pointer: string, root: unknown): string {
  let out = '';
  let node = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += Array.isArray(node) ? `[${key}]` : out === '' ? key : `.${key}`;
    node = isRecord(node) || Array.isArray(node) ? (node as Record<string, unknown>)[key] : undefined;
  }
  return out;
}

function listOf(values: readonly unknown[]): string {
  const quoted = values.map((v) => JSON.stringify(v));
  return quoted.length < 2 ? quoted.join('') : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;
}

/** Our wording of a schema error: short, and in the vocabulary of the config file rather than JSON Schema. */
function schemaMessage(e: ValueError): string {
  const s = e.schema as TSchema & Record<string, unknown>;
  if (e.type === ValueErrorType.ObjectAdditionalProperties) return 'unknown setting';
  if (e.type === ValueErrorType.ObjectRequiredProperty) return 'is required';
  if (s.pattern === DURATION_PATTERN) return 'must be a duration: a number and one unit of ms, s, m, h or d, like 500ms, 15s or 2h';
  const examples = Array.isArray(s.examples) ? (s.examples as unknown[]) : undefined;
  switch (e.type) {
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      return `must be >= ${String(s.minimum)}`;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      return `must be <= ${String(s.maximum)}`;
    case ValueErrorType.Integer:
      return 'must be a whole number';
    case ValueErrorType.Boolean:
      return 'must be true or false';
    case ValueErrorType.Object:
      return 'must be a mapping of settings';
    case ValueErrorType.Array:
      return 'must be a list';
    case ValueErrorType.ArrayMinItems:
      return `must have at least ${String(s.minItems)} ${s.minItems === 1 ? 'entry' : 'entries'}`;
    case ValueErrorType.StringMinLength:
      return 'must not be empty';
    case ValueErrorType.String:
      return examples ? `must be a string like ${listOf(examples)}` : 'must be a string';
    case ValueErrorType.StringPattern:
      return examples ? `must be like ${listOf(examples)}` : `must match ${String(s.pattern)}`;
    case ValueErrorType.Union: {
      const options = (s.anyOf as Record<string, unknown>[]).map((o) => o.const);
      return options.every((o) => typeof o === 'string') ? `must be one of ${options.join(', ')}` : e.message;
    }
    default:
      return e.message;
  }
}

/** Schema problems, one per setting path (TypeBox may report a path several times). */
function schemaProblems(value: unknown, suffix: (path: string) => string): string[] {
  const seen = new Map<string, string>();
  for (const e of Value.Errors(ConfigSchema, value)) {
    const path = settingPath(e.path, value);
    // For a missing required key TypeBox yields both a type error and "required"; keep the latter.
    if (!seen.has(path) || e.type === ValueErrorType.ObjectRequiredProperty) seen.set(path, schemaMessage(e));
  }
  return [...seen].map(([path, message]) => `${path || '(top level)'}: ${message}${suffix(path)}`);
}

/**
 * Fills in defaults where a setting is absent. Not TypeBox's Value.Default: that one merges a group's
 * default object into whatever was given, so `audit: []` would silently become `audit: {}`; here a
 * present value stays as written and a wrong type is reported by the schema.
 */
function withDefaults(schema: TSchema, value: unknown): unknown {
  const v = value === undefined && 'default' in schema ? structuredClone(schema.default as unknown) : value;
  if (schema.type !== 'object' || !isRecord(schema.properties) || !isRecord(v)) return v;
  const out: Record<string, unknown> = { ...v };
  for (const [key, sub] of Object.entries(schema.properties as Record<string, TSchema>)) {
    const filled = withDefaults(sub, out[key]);
    if (filled !== undefined) out[key] = filled;
  }
  return out;
}

/** Every duration setting (found by its schema, so a new one cannot be missed) with its value. */
function* durationSettings(schema: TSchema, value: unknown, path: string): Generator<[string, unknown]> {
  if (schema.pattern === DURATION_PATTERN) {
    yield [path, value];
  } else if (schema.type === 'object' && isRecord(schema.properties) && isRecord(value)) {
    for (const [key, sub] of Object.entries(schema.properties as Record<string, TSchema>)) {
      yield* durationSettings(sub, value[key], path === '' ? key : `${path}.${key}`);
    }
  }
}

function reasonOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The rules a schema cannot say. They run even when the schema found problems elsewhere (so all
 * problems are reported together), and so look only at values of the right type: a wrong type is
 * already reported by the schema.
 */
function ruleProblems(v: Record<string, unknown>, readFile: (path: string) => string, suffix: (path: string) => string): string[] {
  const problems: string[] = [];
  if (Array.isArray(v.listen)) {
    const seen = new Map<string, number>();
    v.listen.forEach((url: unknown, i) => {
      if (typeof url !== 'string' || url === '') return;
      const path = `listen[${i}]`;
      let addr: ListenAddress;
      try {
        addr = parseListenUrl(url);
      } catch (e) {
        problems.push(`${path}: ${reasonOf(e)}${suffix(path)}`);
        return;
      }
      const key = addr.kind === 'unix' ? `unix:${addr.path}` : `tcp:${addr.host}:${addr.port}`;
      const first = seen.get(key);
      if (first !== undefined) problems.push(`${path}: repeats listen[${first}]${suffix(path)}`);
      else seen.set(key, i);
      // Without tokens a TCP listener would either be open to anyone who can reach the port or
      // refuse everything; both are mistakes, so refuse to start.
      if (addr.kind === 'tcp' && v.tokensFile === undefined) {
        problems.push(`${path}: tcp:// listeners need a tokens file (--tokens)${suffix(path)}`);
      }
    });
  }
  if (typeof v.socketMode === 'string' && SOCKET_MODE_RE.test(v.socketMode) && (parseInt(v.socketMode, 8) & 0o002) !== 0) {
    problems.push('socketMode: must not give every user write access (o+w): whoever can connect to the socket has full control');
  }
  for (const [path, text] of durationSettings(ConfigSchema, v, '')) {
    if (typeof text !== 'string') continue;
    let ms: number;
    try {
      ms = parseDuration(text);
    } catch {
      continue; // the schema reported it
    }
    if (ms <= 0) problems.push(`${path}: must be longer than 0`);
    else if (ms > MAX_DURATION_MS) problems.push(`${path}: must be at most 24d (the longest timer Node.js can set)`);
  }
  if (isRecord(v.tls)) {
    for (const part of ['cert', 'key'] as const) {
      const file = v.tls[part];
      if (typeof file !== 'string' || file === '') continue;
      try {
        readFile(file);
      } catch (e) {
        problems.push(`tls.${part}: cannot read ${file}: ${reasonOf(e)}`);
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// loadConfig
// ---------------------------------------------------------------------------------------------

/** Thrown by `loadConfig` with every problem found; `message` lists them one a line. */
export class ConfigError extends Error {
  readonly problems: string[];

  constructor(problems: string[], configFile: string | null = null) {
    const where = configFile === null ? '' : ` (config file ${configFile})`;
    super(`invalid configuration${where}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Where a setting's value came from. */
export type ConfigOrigin = 'flag' | 'env' | 'file' | 'default';

/** Where the config file and each overridable setting came from, for the startup log. */
export interface ConfigSources {
  /** The config file read (absolute), or null when none was given. */
  readonly configFile: string | null;
  readonly listen: ConfigOrigin;
  readonly dataDir: ConfigOrigin;
  readonly tokensFile: ConfigOrigin;
  readonly logLevel: ConfigOrigin;
}

export interface LoadConfigOptions {
  /** The arguments after the program name, i.e. `process.argv.slice(2)`. */
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * Reads a file as UTF-8 text, throwing when it cannot; used for the config file and to check that
   * the TLS files are readable. Default: `fs.readFileSync`. Tests inject an in-memory one.
   */
  readonly readFile?: (path: string) => string;
  /** The directory relative flag and environment paths are taken from. Default: `process.cwd()`. */
  readonly cwd?: string;
}

export type LoadConfigResult =
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'version'; readonly text: string }
  | { readonly kind: 'run'; readonly config: Config; readonly sources: ConfigSources };

const OVERRIDABLE: readonly OverridableKey[] = ['listen', 'dataDir', 'tokensFile', 'logLevel'];
const PATH_KEYS = ['dataDir', 'tokensFile'] as const;

function readVersion(): string {
  // ../package.json from both src/config.ts (tsx, vitest) and dist/config.js (the build).
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return `netnsd ${pkg.version}`;
}

/**
 * Loads the configuration from flags > environment > config file > defaults and checks it.
 * Returns `{ kind: 'help' | 'version', text }` for `--help` / `--version` (the caller prints and
 * exits) and `{ kind: 'run', config, sources }` otherwise. Throws `ConfigError` listing every
 * problem: unknown flags or keys, schema errors by setting path, bad listen URLs, tcp:// without
 * tokens, unreadable TLS files, durations out of range.
 */
export function loadConfig(opts: LoadConfigOptions): LoadConfigResult {
  const readFile = opts.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const cwd = opts.cwd ?? process.cwd();
  const args = parseArgs(opts.argv);
  if (args.help) return { kind: 'help', text: HELP_TEXT };
  if (args.version) return { kind: 'version', text: readVersion() };

  const problems = [...args.problems];
  const fromFlag = (key: OverridableKey | 'config'): string[] | undefined => args.values[key];
  const flagOf = (key: OverridableKey | 'config'): FlagSpec => FLAGS.find((f) => f.key === key) as FlagSpec;

  const configArg = fromFlag('config')?.[0] ?? envValue(opts.env, 'NETNSD_CONFIG');
  const configFile = configArg === undefined ? null : resolve(cwd, configArg);
  let settings: Record<string, unknown> = {};
  if (configFile !== null) {
    let text: string | undefined;
    try {
      text = readFile(configFile);
    } catch (e) {
      problems.push(`cannot read config file ${configFile}: ${reasonOf(e)}`);
    }
    if (text !== undefined) {
      const parsed = parseConfigText(text, configFile);
      if (!parsed.ok) problems.push(`config file ${configFile} is not valid: ${parsed.reason}`);
      // An empty YAML file (or one of comments only) is null: no settings, not an error.
      else if (isRecord(parsed.value)) settings = parsed.value;
      else if (parsed.value !== null) problems.push(`config file ${configFile} must hold a mapping of settings`);
    }
  }

  // Paths written in the file are relative to the file, as in kubeconfig or compose files; paths
  // from flags and the environment are relative to where the command was typed.
  const fileDir = configFile === null ? cwd : dirname(configFile);
  const anchor = (base: string, p: unknown): unknown => (typeof p === 'string' && p !== '' && !isAbsolute(p) ? resolve(base, p) : p);
  for (const key of PATH_KEYS) if (key in settings) settings[key] = anchor(fileDir, settings[key]);
  if (isRecord(settings.tls)) {
    const tls: Record<string, unknown> = { ...settings.tls };
    for (const part of ['cert', 'key']) if (part in tls) tls[part] = anchor(fileDir, tls[part]);
    settings.tls = tls;
  }

  const origin: Record<OverridableKey, ConfigOrigin> = { listen: 'default', dataDir: 'default', tokensFile: 'default', logLevel: 'default' };
  for (const key of OVERRIDABLE) {
    if (key in settings) origin[key] = 'file';
    const spec = flagOf(key);
    const envText = envValue(opts.env, spec.env as string);
    let value: string | string[] | undefined;
    const flagged = fromFlag(key);
    if (flagged !== undefined) {
      origin[key] = 'flag';
      value = key === 'listen' ? flagged : flagged[0];
    } else if (envText !== undefined) {
      origin[key] = 'env';
      value = key === 'listen' ? envText.split(',').map((s) => s.trim()).filter((s) => s !== '') : envText;
    }
    if (value !== undefined) settings[key] = key === 'dataDir' || key === 'tokensFile' ? anchor(cwd, value) : value;
  }

  /** Names the flag or variable a bad value came from, since the operator may look in the file first. */
  const suffix = (path: string): string => {
    const top = /^[A-Za-z]+/.exec(path)?.[0] as OverridableKey | undefined;
    if (top === undefined || !OVERRIDABLE.includes(top)) return '';
    const spec = flagOf(top);
    if (origin[top] === 'flag') return ` (from ${spec.flag})`;
    if (origin[top] === 'env') return ` (from ${spec.env as string})`;
    return '';
  };

  const value = withDefaults(ConfigSchema, settings) as Record<string, unknown>;
  problems.push(...schemaProblems(value, suffix), ...ruleProblems(value, readFile, suffix));
  if (problems.length > 0) throw new ConfigError(problems, configFile);
  return { kind: 'run', config: value as Config, sources: { configFile, ...origin } };
}

// ---------------------------------------------------------------------------------------------
// Help
// ---------------------------------------------------------------------------------------------

function wrap(text: string, indent: string, width = 100): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(indent + line);
  return lines.join('\n');
}

/** One entry per setting: `key: default` and its description, walking the schema. */
function settingsHelp(schema: TSchema, path: string, optional: boolean): string[] {
  const s = schema as TSchema & Record<string, unknown>;
  if (s.type === 'object' && isRecord(s.properties)) {
    const required = new Set(Array.isArray(s.required) ? (s.required as string[]) : []);
    const head = path === '' ? [] : [`  ${path}:`, wrap(String(s.description), '      ')];
    return [
      ...head,
      ...Object.entries(s.properties as Record<string, TSchema>).flatMap(([key, sub]) =>
        settingsHelp(sub, path === '' ? key : `${path}.${key}`, !required.has(key)),
      ),
    ];
  }
  const shown = 'default' in s ? JSON.stringify(s.default) : optional ? '(unset)' : '(required)';
  return [`  ${path}: ${shown}`, wrap(String(s.description), '      ')];
}

/** The `--help` text: every flag with its environment variable, precedence, and every config file setting with its default. */
export const HELP_TEXT = [
  'Usage: netnsd [--config FILE] [--listen URL]... [--data-dir DIR] [--tokens FILE] [--log-level LEVEL]',
  '       netnsd --help | --version',
  '',
  'netnsd manages Linux network namespaces over HTTP.',
  '',
  'Options (--flag VALUE or --flag=VALUE):',
  ...FLAGS.flatMap((f) => [
    `  ${f.flag}${f.arg === undefined ? '' : ` ${f.arg}`}${f.env === undefined ? '' : `   (env ${f.env})`}`,
    wrap(f.help, '      '),
  ]),
  '',
  'Environment:',
  ...FLAGS.filter((f) => f.env !== undefined).map((f) => `  ${f.env as string}   like ${f.flag}`),
  '',
  'Precedence: flags, then environment, then the config file, then defaults. An empty variable counts as unset.',
  '',
  'Config file settings (camelCase keys; unknown keys are refused), with defaults:',
  ...settingsHelp(ConfigSchema, '', false),
  '',
].join('\n');
