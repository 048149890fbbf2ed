/**
 * A qdisc body -> the ops that set it: units parsed, ranges and cross-field rules checked, every
 * failing field listed (REQUEST_INVALID), nothing run. Pure, so the API's validation table and
 * the restore of a previous setup use the same code.
 */
import { invalidFields } from '../errors/app-error.js';
import type { HtbClassSpec, RootQdiscSpec, U32FilterSpec } from '../executor/ops.js';
import { formatPrefix, networkOf, parseIp, parsePrefix, type IpPrefix } from '../ip-address.js';
import type { QdiscBody } from './qdisc-schema.js';

/** Bits per second of each rate unit (tc's: `bps` is bytes per second, SI prefixes). */
const RATE_UNITS: Record<string, number> = {
  bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9, tbit: 1e12, bps: 8, kbps: 8e3, mbps: 8e6, gbps: 8e9,
};
/** Bytes of each size unit (tc's: `kb` is 1024 bytes, like `kib`). */
const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, kib: 1024, mb: 1048576, mib: 1048576 };
const TIME_US: Record<string, number> = { ms: 1e3, s: 1e6, m: 6e7, h: 3.6e9, d: 8.64e10 };

export const MIN_RATE_BITS = 8;
export const MAX_RATE_BITS = 100e9;
/** One full Ethernet frame: a smaller bucket never lets a 1500-byte packet through. */
export const MIN_BURST = 1514;
export const MAX_BURST = 256 * 1048576;
/** The kernel keeps tbf's bucket as the time to send it, in a u32 of 64 ns ticks (~274 s): 60 s stays clear of it. */
const MAX_BURST_SECONDS = 60;
const MAX_DELAY_US = 60e6;

/** Bits per second, or undefined when the text is not a rate. */
export function parseRate(text: string): number | undefined {
  const m = /^([0-9]+(?:\.[0-9]+)?)([a-z]+)$/.exec(text);
  const unit = m ? RATE_UNITS[m[2]!] : undefined;
  return m && unit !== undefined ? Math.round(Number(m[1]) * unit) : undefined;
}

export function parseSize(text: string): number | undefined {
  const m = /^([0-9]+(?:\.[0-9]+)?)([a-z]+)$/.exec(text);
  const unit = m ? SIZE_UNITS[m[2]!] : undefined;
  return m && unit !== undefined ? Math.round(Number(m[1]) * unit) : undefined;
}

/** Microseconds of a duration (`500ms`, `1.5s`), kept to the microsecond (parseDuration rounds to ms). */
export function parseMicros(text: string): number | undefined {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$/.exec(text);
  return m ? Math.round(Number(m[1]) * TIME_US[m[2]!]!) : undefined;
}

/** The minor of `1:MINOR` (hex). */
export const minorOf = (id: string): number => parseInt(id.slice(2), 16);

export interface QdiscPlan {
  readonly root: RootQdiscSpec;
  readonly classes: readonly HtbClassSpec[];
  /** In order; `prio` is what tc orders them by. */
  readonly filters: ReadonlyArray<{ readonly prio: number; readonly filter: U32FilterSpec }>;
}

const FIELDS: Record<string, readonly string[]> = {
  tbf: ['rate', 'burst', 'latency'],
  htb: ['default', 'classes', 'filters'],
  netem: ['delay', 'jitter', 'loss', 'duplicate', 'reorder', 'corrupt', 'rate'],
};
const ALL_FIELDS = ['rate', 'burst', 'latency', 'default', 'classes', 'filters', 'delay', 'jitter', 'loss', 'duplicate', 'reorder', 'corrupt'] as const;

/** Checks a body and turns it into the ops' specs; REQUEST_INVALID listing every bad field. */
export function planOf(body: QdiscBody): QdiscPlan {
  const errors: Array<{ field: string; message: string }> = [];
  const err = (field: string, message: string): void => void errors.push({ field: `body.${field}`, message });
  const allowed = FIELDS[body.kind] ?? [];
  for (const f of ALL_FIELDS) if (body[f] !== undefined && !allowed.includes(f)) err(f, `is not taken by a ${body.kind} qdisc`);
  const need = (f: (typeof ALL_FIELDS)[number]): void => {
    if (body[f] === undefined) err(f, `is required by a ${body.kind} qdisc`);
  };
  const rate = (field: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const r = parseRate(text);
    if (r === undefined) err(field, 'is not a rate');
    else if (r < MIN_RATE_BITS || r > MAX_RATE_BITS) err(field, 'must be between 8bit and 100gbit');
    else return r;
    return undefined;
  };
  const micros = (field: string, text: string | undefined, min: number, max: number, range: string): number | undefined => {
    if (text === undefined) return undefined;
    const us = parseMicros(text);
    if (us === undefined || us < min || us > max) err(field, `must be ${range}`);
    else return us;
    return undefined;
  };
  let root: RootQdiscSpec = { kind: body.kind as Exclude<QdiscBody['kind'], 'tbf' | 'htb' | 'netem'> };
  const classes: HtbClassSpec[] = [];
  const filters: Array<{ prio: number; filter: U32FilterSpec }> = [];

  if (body.kind === 'tbf') {
    need('rate');
    need('burst');
    need('latency');
    const rateBits = rate('rate', body.rate);
    const burst = body.burst === undefined ? undefined : parseSize(body.burst);
    if (body.burst !== undefined && (burst === undefined || burst < MIN_BURST || burst > MAX_BURST)) err('burst', 'must be between 1514b and 256mb');
    else if (burst !== undefined && rateBits !== undefined && (burst * 8) / rateBits > MAX_BURST_SECONDS) err('burst', `takes more than ${MAX_BURST_SECONDS}s to send at this rate: give a smaller burst or a higher rate`);
    const latencyUs = micros('latency', body.latency, 1000, 60e6, 'between 1ms and 60s');
    if (rateBits !== undefined && burst !== undefined && latencyUs !== undefined) root = { kind: 'tbf', rateBits, burstBytes: burst, latencyUs };
  } else if (body.kind === 'netem') {
    const delayUs = micros('delay', body.delay, 0, MAX_DELAY_US, 'at most 60s');
    const jitterUs = micros('jitter', body.jitter, 0, MAX_DELAY_US, 'at most 60s');
    if (body.jitter !== undefined && body.delay === undefined) err('jitter', 'needs delay');
    if (body.reorder !== undefined && body.delay === undefined) err('reorder', 'needs delay (reordered packets are the ones sent without it)');
    const rateBits = rate('rate', body.rate);
    root = {
      kind: 'netem',
      ...(delayUs === undefined ? {} : { delayUs }),
      ...(jitterUs === undefined ? {} : { jitterUs }),
      ...(body.loss === undefined ? {} : { lossPct: body.loss }),
      ...(body.duplicate === undefined ? {} : { duplicatePct: body.duplicate }),
      ...(body.reorder === undefined ? {} : { reorderPct: body.reorder }),
      ...(body.corrupt === undefined ? {} : { corruptPct: body.corrupt }),
      ...(rateBits === undefined ? {} : { rateBits }),
    };
  } else if (body.kind === 'htb') {
    need('default');
    need('classes');
    const ids = new Set<string>();
    (body.classes ?? []).forEach((c, i) => {
      const f = `classes.${i}`;
      if (minorOf(c.id) === 0) err(`${f}.id`, 'must not be 1:0 (the qdisc itself)');
      if (ids.has(c.id)) err(`${f}.id`, `repeats ${c.id}`);
      ids.add(c.id);
      const r = rate(`${f}.rate`, c.rate);
      const ceil = c.ceil === undefined ? r : rate(`${f}.ceil`, c.ceil);
      if (r !== undefined && ceil !== undefined && ceil < r) err(`${f}.ceil`, 'must be at least the rate');
      if (r !== undefined && ceil !== undefined) classes.push({ minor: minorOf(c.id), rateBits: r, ceilBits: ceil });
    });
    if (body.default !== undefined && !ids.has(body.default)) err('default', 'must be one of the classes');
    (body.filters ?? []).forEach((flt, i) => {
      const f = `filters.${i}`;
      if (!ids.has(flt.class)) err(`${f}.class`, 'must be one of the classes');
      if ((flt.sport !== undefined || flt.dport !== undefined) && flt.protocol === undefined) err(`${f}.protocol`, 'is required with sport or dport (tcp or udp)');
      const prefixes: Partial<Record<'source' | 'destination', IpPrefix>> = {};
      for (const k of ['source', 'destination'] as const) {
        const v = flt[k];
        if (v === undefined) continue;
        const p = v.includes('/') ? parsePrefix(v) : parsePrefix(`${v}/${parseIp(v)?.family === 6 ? 128 : 32}`);
        if (typeof p === 'string') err(`${f}.${k}`, 'is not an address or a prefix');
        else if (networkOf(p).value !== p.value) err(`${f}.${k}`, `has host bits set: did you mean ${formatPrefix(networkOf(p))}?`);
        else prefixes[k] = p;
      }
      if (prefixes.source && prefixes.destination && prefixes.source.family !== prefixes.destination.family) err(`${f}.destination`, 'must be of the same family as source');
      const family = prefixes.source?.family ?? prefixes.destination?.family;
      const base = {
        classMinor: minorOf(flt.class),
        ...(prefixes.source ? { source: formatPrefix(prefixes.source) } : {}),
        ...(prefixes.destination ? { destination: formatPrefix(prefixes.destination) } : {}),
        ...(flt.protocol === undefined ? {} : { protocol: flt.protocol }),
        ...(flt.sport === undefined ? {} : { sport: flt.sport }),
        ...(flt.dport === undefined ? {} : { dport: flt.dport }),
      };
      // Two prios per filter (IPv4, IPv6): the kernel keeps one protocol per prio.
      for (const fam of family === undefined ? ([4, 6] as const) : [family]) filters.push({ prio: 2 * i + (fam === 4 ? 1 : 2), filter: { ...base, family: fam } });
    });
    if (body.default !== undefined) root = { kind: 'htb', defaultMinor: minorOf(body.default) };
  }
  if (errors.length > 0) throw invalidFields(errors);
  return { root, classes, filters };
}
