/**
 * The links of FakeKernel's namespaces: enough of the kernel's behaviour for service tests to be
 * meaningful — veth pairs across namespaces (deleting one end removes both; nsids allocated per
 * viewing namespace as the kernel does), bridges and their ports, lower devices, moves with
 * rename, and the real executor's error codes (LINK_EXISTS, LINK_NOT_FOUND, LINK_MTU_INVALID, ...).
 */
import { AppError } from '../errors/app-error.js';
import type { KernelLink, LinkAddSpec, LinkChange, LinkCounters } from './ops.js';

/** A namespace as the link table sees it: any object, compared by identity. */
export interface FakeLinkSpace {
  readonly label: string;
  /** The nsid the root namespace has for it (-1: none); only for named namespaces. */
  nsid: number;
}

export interface FakeLink {
  index: number;
  name: string;
  kind: string;
  up: boolean;
  mtu: number;
  maxMtu: number | null;
  mac: string;
  txqlen: number;
  alias: string | null;
  masterIndex: number | null;
  /** IFLA_LINK: a veth's peer, a macvlan's or vlan's lower device. */
  lower: { space: FakeLinkSpace; index: number } | null;
  bridge?: { stp: boolean; vlanFiltering: boolean };
  macvlan?: { mode: string };
  vxlan?: NonNullable<KernelLink['vxlan']>;
  counters: { -readonly [K in keyof LinkCounters]: LinkCounters[K] };
}

const ZERO: LinkCounters = {
  rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0, rxErrors: 0, txErrors: 0, rxDropped: 0, txDropped: 0, multicast: 0, collisions: 0,
};

interface SpaceState {
  readonly links: FakeLink[];
  nextIndex: number;
  /** The nsids this namespace has for others (what its links' link-netnsid say). */
  readonly nsids: Map<FakeLinkSpace, number>;
  nextNsid: number;
}

export class FakeLinkTable {
  private readonly spaces = new Map<FakeLinkSpace, SpaceState>();
  private macSeq = 1;

  constructor(
    private readonly host: FakeLinkSpace,
    /** Gives `space` an nsid in the root namespace when it has none (the kernel does so for a veth into host). */
    private readonly rootNsid: (space: FakeLinkSpace) => number,
  ) {}

  /** Registers a namespace with plain links of these names (`lo` is the loopback). */
  addSpace(space: FakeLinkSpace, names: readonly string[]): void {
    const st: SpaceState = { links: [], nextIndex: 1, nsids: new Map(), nextNsid: 0 };
    this.spaces.set(space, st);
    for (const name of names) {
      const lo = name === 'lo';
      st.links.push(this.make(st, name, lo ? 'loopback' : 'device', { mtu: lo ? 65536 : 1500, up: !lo && space === this.host }));
    }
  }

  /** Removes a namespace: its links go, and with them the other ends of veths. */
  removeSpace(space: FakeLinkSpace): void {
    const st = this.spaces.get(space);
    if (!st) return;
    for (const l of [...st.links]) if (l.kind === 'veth' && l.lower) this.drop(l.lower.space, l.lower.index);
    this.spaces.delete(space);
    for (const other of this.spaces.values()) other.nsids.delete(space);
  }

  names(space: FakeLinkSpace): string[] {
    return this.state(space).links.map((l) => l.name);
  }

  /** The simulated link (tests may change its counters), or undefined. */
  find(space: FakeLinkSpace, name: string): FakeLink | undefined {
    return this.spaces.get(space)?.links.find((l) => l.name === name);
  }

  list(space: FakeLinkSpace, name?: string): KernelLink[] {
    const st = this.state(space);
    const links = name === undefined ? st.links : [this.mustFind(space, name)];
    return links.map((l) => this.view(space, st, l));
  }

  nsids(space: FakeLinkSpace, named: ReadonlyMap<string, FakeLinkSpace>): Array<{ nsid: number; name: string }> {
    const st = this.state(space);
    const out: Array<{ nsid: number; name: string }> = [];
    for (const [name, sp] of named) {
      const id = space === this.host ? (sp.nsid >= 0 ? sp.nsid : undefined) : st.nsids.get(sp);
      if (id !== undefined) out.push({ nsid: id, name });
    }
    return out;
  }

  stats(space: FakeLinkSpace, name: string): LinkCounters {
    return { ...this.mustFind(space, name).counters };
  }

  add(space: FakeLinkSpace, spec: LinkAddSpec, peerSpace?: FakeLinkSpace): void {
    const st = this.state(space);
    if (this.find(space, spec.name)) throw exists(spec.name);
    if (spec.mtu !== undefined && (spec.mtu < 68 || spec.mtu > 65535)) throw mtuInvalid(spec.name);
    if (spec.mac !== undefined) checkMac(spec.name, spec.mac);
    const opts = { ...(spec.mtu === undefined ? {} : { mtu: spec.mtu }), ...(spec.mac === undefined ? {} : { mac: spec.mac.toLowerCase() }) };
    switch (spec.linkKind) {
      case 'veth': {
        const ps = peerSpace ?? space;
        const pst = this.state(ps);
        if (this.find(ps, spec.peer.name) || spec.peer.name === spec.name && ps === space) throw exists(spec.peer.name);
        const a = this.make(st, spec.name, 'veth', opts);
        if (spec.up) a.up = true;
        st.links.push(a);
        const b = this.make(pst, spec.peer.name, 'veth', spec.mtu === undefined ? {} : { mtu: spec.mtu });
        pst.links.push(b);
        a.lower = { space: ps, index: b.index };
        b.lower = { space, index: a.index };
        if (ps !== space) {
          this.nsidIn(space, ps);
          this.nsidIn(ps, space);
        }
        return;
      }
      case 'bridge':
        if (spec.vlanFiltering) throw new AppError('LINK_KIND_UNSUPPORTED', 'vlan_filtering: Operation not supported');
        st.links.push({ ...this.make(st, spec.name, 'bridge', opts), ...(spec.up ? { up: true } : {}), bridge: { stp: spec.stp ?? false, vlanFiltering: false } });
        return;
      case 'macvlan':
      case 'vlan': {
        const parent = this.mustFind(space, spec.parent);
        if (spec.linkKind === 'macvlan' && parent.masterIndex !== null) throw new AppError('LINK_BUSY', 'Device or resource busy');
        const l = this.make(st, spec.name, spec.linkKind, { mtu: parent.mtu, ...opts });
        l.lower = { space, index: parent.index };
        if (spec.linkKind === 'macvlan') l.macvlan = { mode: spec.mode };
        st.links.push(l);
        return;
      }
      case 'vxlan': {
        if (spec.parent !== undefined) this.mustFind(space, spec.parent);
        if (st.links.some((l) => l.vxlan?.vni === spec.vni && l.vxlan.dstport === spec.dstport)) {
          throw new AppError('LINK_VNI_IN_USE', 'A VXLAN device with the specified VNI already exists.');
        }
        st.links.push({
          ...this.make(st, spec.name, 'vxlan', { mtu: 1450, ...opts }),
          vxlan: { vni: spec.vni, local: spec.local ?? null, remote: spec.remote ?? null, group: spec.group ?? null, dstport: spec.dstport, parent: spec.parent ?? null },
        });
        return;
      }
      case 'tun':
      case 'tap':
        st.links.push(this.make(st, spec.name, spec.linkKind, { txqlen: 500 }));
        return;
      default:
        st.links.push(this.make(st, spec.name, spec.linkKind, opts));
    }
  }

  set(space: FakeLinkSpace, name: string, change: LinkChange): void {
    const l = this.mustFind(space, name);
    if ('up' in change) l.up = change.up;
    else if ('mtu' in change) {
      if (change.mtu < 68 || (l.maxMtu !== null && change.mtu > l.maxMtu)) throw mtuInvalid(name);
      l.mtu = change.mtu;
    } else if ('mac' in change) {
      if (l.kind === 'loopback') throw new AppError('LINK_CHANGE_UNSUPPORTED', 'Operation not supported');
      checkMac(name, change.mac);
      l.mac = change.mac.toLowerCase();
    } else if ('alias' in change) l.alias = change.alias;
    else if ('txqlen' in change) l.txqlen = change.txqlen;
    else if ('master' in change) {
      if (change.master === null) l.masterIndex = null;
      else {
        const m = this.mustFind(space, change.master);
        if (m.kind !== 'bridge') throw new AppError('LINK_MASTER_INVALID', `"${change.master}" is not a bridge`);
        if (m === l) throw new AppError('LINK_MASTER_INVALID', 'a bridge cannot be its own port');
        l.masterIndex = m.index;
      }
    }
  }

  move(space: FakeLinkSpace, name: string, to: FakeLinkSpace, newName?: string): void {
    const l = this.mustFind(space, name);
    const tst = this.state(to);
    if (l.kind === 'loopback' || l.kind === 'bridge') throw new AppError('LINK_CHANGE_UNSUPPORTED', 'The interface netns is immutable.');
    const target = newName ?? name;
    if (this.find(to, target)) throw exists(target);
    const st = this.state(space);
    st.links.splice(st.links.indexOf(l), 1);
    for (const port of st.links) if (port.masterIndex === l.index) port.masterIndex = null;
    const oldIndex = l.index;
    // The kernel keeps the ifindex when it is free in the target.
    if (tst.links.some((x) => x.index === l.index)) l.index = tst.nextIndex++;
    else tst.nextIndex = Math.max(tst.nextIndex, l.index + 1);
    l.name = target;
    l.up = false;
    l.masterIndex = null;
    tst.links.push(l);
    // Whatever pointed at the link (its veth peer) now points into the target.
    for (const [sp, s] of this.spaces) {
      for (const x of s.links) {
        if (x.lower?.space === space && x.lower.index === oldIndex && x !== l) {
          x.lower = { space: to, index: l.index };
          if (sp !== to) {
            this.nsidIn(sp, to);
            this.nsidIn(to, sp);
          }
        }
      }
    }
    if (l.lower && l.lower.space !== to) this.nsidIn(to, l.lower.space);
  }

  delete(space: FakeLinkSpace, name: string): void {
    const l = this.mustFind(space, name);
    if (l.kind === 'loopback') throw new AppError('LINK_CHANGE_UNSUPPORTED', 'Operation not supported');
    this.drop(space, l.index);
  }

  private drop(space: FakeLinkSpace, index: number): void {
    const st = this.spaces.get(space);
    const l = st?.links.find((x) => x.index === index);
    if (!st || !l) return;
    st.links.splice(st.links.indexOf(l), 1);
    for (const x of st.links) if (x.masterIndex === index) x.masterIndex = null;
    if (l.kind === 'veth' && l.lower) this.drop(l.lower.space, l.lower.index);
    // Upper devices (macvlan, vlan) go with their lower device.
    for (const [sp, s] of this.spaces) {
      for (const x of [...s.links]) if (x.kind !== 'veth' && x.lower?.space === space && x.lower.index === index) this.drop(sp, x.index);
    }
  }

  private nsidIn(viewer: FakeLinkSpace, target: FakeLinkSpace): number {
    if (viewer === this.host) return this.rootNsid(target);
    const st = this.state(viewer);
    let id = st.nsids.get(target);
    if (id === undefined) {
      id = st.nextNsid++;
      st.nsids.set(target, id);
    }
    return id;
  }

  private view(space: FakeLinkSpace, st: SpaceState, l: FakeLink): KernelLink {
    const master = l.masterIndex === null ? null : (st.links.find((x) => x.index === l.masterIndex)?.name ?? null);
    let lower: KernelLink['lower'] = null;
    if (l.lower) {
      lower =
        l.lower.space === space
          ? { index: l.lower.index, name: st.links.find((x) => x.index === l.lower?.index)?.name ?? null, netnsid: null }
          : { index: l.lower.index, name: null, netnsid: this.nsidIn(space, l.lower.space) };
    }
    let operstate = l.up ? 'UP' : 'DOWN';
    if (l.kind === 'loopback') operstate = l.up ? 'UNKNOWN' : 'DOWN';
    else if (l.kind === 'tun' || l.kind === 'tap') operstate = 'DOWN';
    else if (l.kind === 'veth' && l.up && l.lower) {
      const peer = this.spaces.get(l.lower.space)?.links.find((x) => x.index === l.lower?.index);
      if (!peer?.up) operstate = 'LOWERLAYERDOWN';
    }
    return {
      index: l.index,
      name: l.name,
      kind: l.kind,
      up: l.up,
      operstate,
      mtu: l.mtu,
      minMtu: l.kind === 'loopback' ? null : 68,
      maxMtu: l.maxMtu,
      mac: l.mac,
      txqlen: l.txqlen,
      alias: l.alias,
      master,
      lower,
      ...(l.bridge ? { bridge: { ...l.bridge } } : {}),
      ...(l.macvlan ? { macvlan: { ...l.macvlan } } : {}),
      ...(l.vxlan ? { vxlan: { ...l.vxlan } } : {}),
      ...(l.kind === 'tun' || l.kind === 'tap' ? { tun: { persist: true, multiQueue: false, vnetHdr: false, pi: false } } : {}),
    };
  }

  private make(st: SpaceState, name: string, kind: string, o: { mtu?: number; mac?: string; up?: boolean; txqlen?: number }): FakeLink {
    const seq = this.macSeq++;
    return {
      index: st.nextIndex++,
      name,
      kind,
      up: o.up ?? false,
      mtu: o.mtu ?? 1500,
      maxMtu: kind === 'loopback' ? null : 65535,
      mac: o.mac ?? (kind === 'loopback' ? '00:00:00:00:00:00' : `02:00:00:00:${((seq >> 8) & 0xff).toString(16).padStart(2, '0')}:${(seq & 0xff).toString(16).padStart(2, '0')}`),
      txqlen: o.txqlen ?? 1000,
      alias: null,
      masterIndex: null,
      lower: null,
      counters: { ...ZERO },
    };
  }

  private state(space: FakeLinkSpace): SpaceState {
    const st = this.spaces.get(space);
    if (!st) throw new AppError('NAMESPACE_NOT_FOUND', `namespace "${space.label}" does not exist`);
    return st;
  }

  private mustFind(space: FakeLinkSpace, name: string): FakeLink {
    const l = this.find(space, name);
    if (!l) throw new AppError('LINK_NOT_FOUND', `there is no link "${name}" in namespace "${space.label}"`);
    return l;
  }
}

function exists(name: string): AppError {
  return new AppError('LINK_EXISTS', `a link "${name}" exists`);
}

function mtuInvalid(name: string): AppError {
  return new AppError('LINK_MTU_INVALID', `link "${name}": mtu out of the device's range`);
}

function checkMac(name: string, mac: string): void {
  const first = parseInt(mac.slice(0, 2), 16);
  if ((first & 1) === 1 || /^(00:){5}00$/.test(mac)) throw new AppError('LINK_MAC_INVALID', `link "${name}": Cannot assign requested address`);
}
