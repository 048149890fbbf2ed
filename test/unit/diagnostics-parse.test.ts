import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { commandsFor, spawnArgv } from '../../src/executor/argv.js';
import { parseConntrack, parsePing, parseRouteGet, parseRouteGetError, parseSockets } from '../../src/executor/diagnostics-parse.js';

const out = (f: string): string => readFileSync(new URL(`../fixtures/stdout/${f}`, import.meta.url), 'utf8');
const err = (f: string): string => readFileSync(new URL(`../fixtures/stderr/${f}`, import.meta.url), 'utf8');

describe('parsePing (iputils 20221126)', () => {
  it('reads every IPv4 reply, the loss and the rtt summary', () => {
    const r = parsePing(out('ping-v4-ok.txt'), '');
    expect(r).toMatchObject({ sent: 3, received: 3, lossPercent: 0, failure: null, rtt: { minMs: 0.053, avgMs: 0.117, maxMs: 0.163, mdevMs: 0.046 } });
    expect(r.replies).toEqual([
      { from: '198.51.100.2', seq: 1, ttl: 64, timeMs: 0.136 },
      { from: '198.51.100.2', seq: 2, ttl: 64, timeMs: 0.163 },
      { from: '198.51.100.2', seq: 3, ttl: 64, timeMs: 0.053 },
    ]);
  });
  it('reads IPv6 replies', () => {
    const r = parsePing(out('ping-v6-ok.txt'), '');
    expect(r.replies.map((x) => x.from)).toEqual(['2001:db8::2', '2001:db8::2', '2001:db8::2']);
    expect(r.rtt?.avgMs).toBe(0.08);
  });
  it('reports 100% loss and no rtt when nothing answers', () => {
    expect(parsePing(out('ping-v4-unreachable-host.txt'), '')).toMatchObject({ sent: 3, received: 0, lossPercent: 100, rtt: null, replies: [], failure: null });
  });
  it('reports why ping could not send when there is no route', () => {
    expect(parsePing('', out('ping-v4-no-route.txt'))).toMatchObject({ sent: 0, received: 0, lossPercent: 100, failure: 'connect: Network is unreachable' });
    // Run by full path (as the executor does), ping names itself by that path.
    expect(parsePing('', '/usr/bin/ping: connect: Network is unreachable\n').failure).toBe('connect: Network is unreachable');
  });
});

describe('route get (iproute2 6.1)', () => {
  it('reads a connected, a gateway and a local lookup', () => {
    expect(parseRouteGet(out('route-get-v4-connected.json'))).toEqual({ ok: true, type: 'unicast', dst: '198.51.100.2', dev: 'va', gateway: null, prefsrc: '198.51.100.1', table: null });
    expect(parseRouteGet(out('route-get-v4-gateway.json'))).toMatchObject({ gateway: '198.51.100.2', dev: 'va' });
    expect(parseRouteGet(out('route-get-v4-local.json'))).toMatchObject({ type: 'local', dev: 'lo' });
    expect(parseRouteGet(out('route-get-v6.json'))).toMatchObject({ dst: '2001:db8::2', dev: 'va', prefsrc: '2001:db8::1' });
  });
  it('turns the kernel refusals into errno names', () => {
    expect(parseRouteGetError(err('route-get-unreachable.txt'))).toEqual({ ok: false, errno: 'ENETUNREACH', message: 'Network is unreachable' });
    expect(parseRouteGetError(err('route-get-no-route-to-host.txt'))).toMatchObject({ errno: 'EHOSTUNREACH' });
    expect(parseRouteGetError(err('route-get-rp-filter.txt'))).toMatchObject({ errno: 'EINVAL' });
    expect(parseRouteGetError('Cannot open network namespace "x": No such file or directory')).toBeUndefined();
  });
});

describe('parseSockets (ss, iproute2 6.1)', () => {
  it('reads UDP, a wildcard listener and an IPv4-mapped connection with their processes', () => {
    const s = parseSockets(out('ss-tcp-udp.txt'));
    expect(s).toHaveLength(3);
    expect(s[0]).toEqual({ protocol: 'udp', state: 'UNCONN', recvQ: 0, sendQ: 0, local: { address: '198.51.100.2', port: 5353, link: null }, peer: { address: '0.0.0.0', port: null, link: null }, processes: [{ name: 'node', pid: 21443, fd: 20 }] });
    expect(s[1]).toMatchObject({ protocol: 'tcp', state: 'LISTEN', local: { address: '*', port: 8080 }, peer: { address: '*', port: null } });
    expect(s[2]).toMatchObject({ state: 'ESTAB', local: { address: '::ffff:198.51.100.2', port: 8080 }, peer: { address: '::ffff:198.51.100.1', port: 48864 } });
  });
  it('reads a link-scoped IPv6 address', () => {
    expect(parseSockets('udp UNCONN 0 0 [fe80::1%va]:123 [::]:*\n')[0]?.local).toEqual({ address: 'fe80::1', port: 123, link: 'va' });
  });
});

describe('parseConntrack (conntrack-tools 1.4.7)', () => {
  it('reads both tuples, the state, flags and mark', () => {
    expect(parseConntrack(out('conntrack-list.txt'))).toEqual([
      {
        family: 4, protocol: 'tcp', timeoutSeconds: 105, state: 'TIME_WAIT', flags: ['ASSURED'], mark: 0,
        original: { src: '198.51.100.1', dst: '198.51.100.2', sport: 53260, dport: 8080 },
        reply: { src: '198.51.100.2', dst: '198.51.100.1', sport: 8080, dport: 53260 },
      },
    ]);
  });
});

describe('diagnostic argv', () => {
  it('runs ping under ip netns exec with every cap as an argument', () => {
    const [cmd] = commandsFor({ kind: 'diag.ping', ns: 'a', spec: { family: 4, target: '198.51.100.2', count: 3, intervalMs: 200, size: 56, timeoutMs: 1000, deadlineMs: 1400 } });
    expect(spawnArgv(cmd!).slice(1)).toEqual(['netns', 'exec', 'a', expect.stringMatching(/\/ping$/), '-n', '-4', '-c', '3', '-i', '0.200', '-s', '56', '-W', '1.000', '198.51.100.2']);
  });
  it('gives ss its own -N and runs the TCP probe after -- so values are never node options', () => {
    expect(spawnArgv(commandsFor({ kind: 'diag.sockets', ns: 'a' })[0]!).slice(1, 3)).toEqual(['-N', 'a']);
    const probe = spawnArgv(commandsFor({ kind: 'diag.tcpConnect', ns: 'a', address: '198.51.100.2', port: 80, timeoutMs: 500 })[0]!);
    expect(probe.slice(-4)).toEqual(['--', '198.51.100.2', '80', '500']);
  });
  it('runs exec argv as given, and refuses a relative program or a bad port in an op', () => {
    expect(spawnArgv(commandsFor({ kind: 'diag.exec', ns: 'a', argv: ['/usr/sbin/ip', '-br', 'addr'], timeoutMs: 1000, maxOutputBytes: 10 })[0]!).slice(1)).toEqual(['netns', 'exec', 'a', '/usr/sbin/ip', '-br', 'addr']);
    expect(() => commandsFor({ kind: 'diag.exec', ns: 'a', argv: ['ip'], timeoutMs: 1000, maxOutputBytes: 10 })).toThrow();
    expect(() => commandsFor({ kind: 'diag.tcpConnect', ns: 'a', address: '198.51.100.2', port: 0, timeoutMs: 500 })).toThrow();
    expect(() => commandsFor({ kind: 'route.get', ns: 'a', family: 4, dst: '2001:db8::1' })).toThrow();
  });
});
