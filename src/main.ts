#!/usr/bin/env -S node --single-threaded-gc
/**
 * The daemon's entry: load the configuration, build the services, start one server per
 * listener, and close everything in order on SIGTERM/SIGINT (listeners first, then started work
 * drains, then the store). SIGHUP re-reads the tokens file.
 *
 * Node runs it with --single-threaded-gc (the line above, `npm start`, the Dockerfile): V8's
 * parallel and concurrent GC threads took more CPU than they saved on a 2-CPU machine, where they
 * compete with the event loop and the addon's threads (the `units` benchmark: 7 of 7 interleaved
 * runs faster without them, 9-11% on average, the daemon's CPU as much lower). V8 refuses the
 * flag once started (v8.setFlagsFromString aborts at the next GC), so it must be given to node.
 */
import { chmod, chown, lstat, mkdir, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { connect } from 'node:net';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildServer, buildServices } from './app.js';
import { TokenFileError, loadTokenFile, type TokenStore } from './auth/tokens.js';
import { ConfigError, loadConfig, parseListenUrl } from './config.js';
import type { Trust } from './http/auth-hooks.js';
import { groupId } from './os-groups.js';
import { TurnBufferedDestination } from './log-destination.js';

async function main(): Promise<number> {
  let loaded;
  try {
    loaded = loadConfig({ argv: process.argv.slice(2), env: process.env });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`netnsd: bad configuration:\n${e.problems.map((p) => `  - ${p}`).join('\n')}\n`);
      return 2;
    }
    throw e;
  }
  if (loaded.kind !== 'run') {
    process.stdout.write(loaded.text.endsWith('\n') ? loaded.text : `${loaded.text}\n`);
    return 0;
  }
  const config = loaded.config;
  // Every line of a turn of the event loop in one write, at its end (log-destination.ts).
  const out = new TurnBufferedDestination(1);
  process.on('exit', () => out.flushSync());
  const log = pino({ level: config.logLevel, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, out);

  let tokens: TokenStore | undefined;
  if (config.tokensFile) {
    try {
      tokens = loadTokenFile(config.tokensFile);
    } catch (e) {
      if (!(e instanceof TokenFileError)) throw e;
      process.stderr.write(`netnsd: bad tokens file ${config.tokensFile}:\n${e.problems.map((p) => `  - ${p}`).join('\n')}\n`);
      return 2;
    }
    for (const w of tokens.warnings) log.warn({ file: config.tokensFile }, w);
  }
  // Before anything else touches the store: a live daemon on a socket we would take means stop.
  for (const url of config.listen) {
    const l = parseListenUrl(url);
    if (l.kind !== 'unix') continue;
    const problem = await socketInTheWay(l.path);
    if (problem) {
      log.fatal({ url }, problem);
      return 1;
    }
  }
  // Signal handlers come first: a SIGTERM that arrives while we start (a supervisor that gave up,
  // a test that saw the `listening` line) must stop the daemon cleanly, not kill it outright.
  let signalled: string | undefined;
  let onSignal: (signal: string) => void = (signal) => {
    signalled ??= signal;
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  const services = await buildServices(config, log);
  const tls = config.tls ? { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) } : undefined;

  const servers: FastifyInstance[] = [];
  try {
    for (const url of config.listen) {
      const l = parseListenUrl(url);
      if (l.kind === 'unix') {
        const app = await buildServer(services, { trust: { kind: 'unix' } });
        servers.push(app);
        await mkdir(dirname(l.path), { recursive: true, mode: 0o755 });
        // A socket left by a daemon that died (checked above: nothing answers on it).
        await rm(l.path, { force: true });
        // Made owner-only, so nobody can connect before it has its configured mode.
        const umask = process.umask(0o177);
        try {
          await app.listen({ path: l.path });
        } finally {
          process.umask(umask);
        }
        await chmod(l.path, parseInt(config.socketMode, 8));
        if (config.socketGroup !== undefined) await chown(l.path, process.getuid?.() ?? 0, groupId(config.socketGroup));
        log.info({ url: `unix://${l.path}` }, 'listening');
      } else {
        const store = tokens!; // loadConfig refuses tcp:// listeners without a tokens file
        const trust: Trust = { kind: 'tokens', tokens: () => store };
        const app = await buildServer(services, { trust, ...(tls ? { https: tls } : {}) });
        servers.push(app);
        await app.listen({ host: l.host, port: l.port });
        const addr = app.server.address();
        const port = typeof addr === 'object' && addr ? addr.port : l.port;
        const host = l.host.includes(':') ? `[${l.host}]` : l.host;
        log.info({ url: `${tls ? 'https' : 'tcp'}://${host}:${port}` }, 'listening');
      }
    }
  } catch (e) {
    log.fatal({ err: e }, 'could not start a listener');
    await Promise.allSettled(servers.map((s) => s.close()));
    await services.close();
    return 1;
  }

  process.on('SIGHUP', () => {
    if (!tokens) return;
    try {
      tokens.reload();
      log.info({ file: config.tokensFile, tokens: tokens.names.length }, 'tokens reloaded');
    } catch (e) {
      log.error({ err: e, file: config.tokensFile }, 'tokens file is bad; keeping the tokens loaded before');
    }
  });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down: closing listeners, draining started work');
      // Keep-alive connections would hold close() for the keep-alive timeout (72 s): close each
      // one as soon as it is idle, so started requests finish and nothing waits for nothing.
      const idle = setInterval(() => servers.forEach((s) => s.server.closeIdleConnections()), 50);
      void (async () => {
        await Promise.allSettled(servers.map((s) => s.close()));
        clearInterval(idle);
        await services.close();
        log.info({}, 'stopped');
        resolve(0);
      })();
    };
    onSignal = stop;
    if (signalled) stop(signalled);
  });
}

/**
 * Why we must not replace what is at a Unix listener's path, or null when it is free or a stale
 * socket: a regular file is never removed, and a socket that still answers belongs to a live process.
 */
async function socketInTheWay(path: string): Promise<string | null> {
  let st;
  try {
    st = await lstat(path);
  } catch {
    return null;
  }
  if (!st.isSocket()) return `${path} exists and is not a socket; refusing to replace it`;
  const live = await new Promise<boolean>((resolve) => {
    const sock = connect(path);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
  return live ? `another process listens on ${path}` : null;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`netnsd: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
