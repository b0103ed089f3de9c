import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';

// Test hosts in network namespaces made by the test itself (root only): a publisher behind
// its NAT, a "public" network with a STUN/TURN server, and the gateway behind its NAT,
// joined by veth pairs, with iptables doing the NAT:
//
//   pub 10.N.1.2 ── 10.N.1.1 [np: NAT] 10.N.10.2 ── 10.N.10.1 [net: coturn] 10.N.20.1 ── 10.N.20.2 [ng: NAT] 10.N.2.1 ── 10.N.2.2 gw
//                                                                                                   root 10.N.99.1 ── 10.N.99.2 gw (API only)
//                                                     (net's default route leads into a sink veth)
//
// cone: MASQUERADE (port kept: endpoint-independent mapping; conntrack lets in only replies
// from the address and port written to: address-and-port-dependent filtering).
// symmetric: MASQUERADE --random-fully (a new port per destination).
// one-to-one: static DNAT/SNAT of the NAT's public address to the gateway.
// Nothing here touches an interface the test did not create.

const run = promisify(execFile);

export type NatKind = 'cone' | 'symmetric' | 'one-to-one' | 'none';

export interface Lab {
  name: string;
  ns: { pub: string; np: string; net: string; ng: string; gw: string };
  /** turn2: a second address of the STUN/TURN server (RFC 5780 needs two). */
  addr: { pub: string; npPublic: string; turn: string; turn2: string; ngPublic: string; gw: string; gwApi: string };
  /** Runs a command in a namespace. */
  spawnIn(ns: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess;
  /** Packets that left the lab for the rest of the internet (DNS, public STUN...) from behind one NAT. */
  packetsToInternet(from: 'gateway' | 'publisher'): Promise<number>;
  destroy(): Promise<void>;
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

async function inNs(ns: string, cmd: string, ...args: string[]): Promise<void> {
  await run('ip', ['netns', 'exec', ns, cmd, ...args]);
}

/** Whether this machine lets the test make namespaces (root, iproute2, iptables). */
export async function netnsSupport(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    await run('iptables', ['-V']);
  } catch {
    return 'iptables is not installed (apt-get install iptables)';
  }
  const probe = `gwprobe${process.pid % 10000}`;
  try {
    await ip('netns', 'add', probe);
    await ip('netns', 'del', probe);
  } catch (e) {
    return `the kernel refuses network namespaces here: ${(e as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

async function link(name: string, a: { ns: string; dev: string; addr: string }, b: { ns: string | null; dev: string; addr: string }): Promise<void> {
  await ip('link', 'add', a.dev, 'type', 'veth', 'peer', 'name', b.dev);
  await ip('link', 'set', a.dev, 'netns', a.ns);
  if (b.ns) await ip('link', 'set', b.dev, 'netns', b.ns);
  await inNs(a.ns, 'ip', 'addr', 'add', a.addr, 'dev', a.dev);
  await inNs(a.ns, 'ip', 'link', 'set', a.dev, 'up');
  if (b.ns) {
    await inNs(b.ns, 'ip', 'addr', 'add', b.addr, 'dev', b.dev);
    await inNs(b.ns, 'ip', 'link', 'set', b.dev, 'up');
  } else {
    await ip('addr', 'add', b.addr, 'dev', b.dev);
    await ip('link', 'set', b.dev, 'up');
  }
  void name;
}

export async function buildLab(publisherNat: NatKind, gatewayNat: NatKind): Promise<Lab> {
  const id = (process.pid % 90) + 10;
  const p = `gw${id}${Math.floor(Math.random() * 900 + 100)}`;
  const n = `10.${100 + (id % 100)}`;
  const ns = { pub: `${p}-pub`, np: `${p}-np`, net: `${p}-net`, ng: `${p}-ng`, gw: `${p}-gw` };
  const addr = { pub: `${n}.1.2`, npPublic: `${n}.10.2`, turn: `${n}.10.1`, turn2: `${n}.10.3`, ngPublic: `${n}.20.2`, gw: `${n}.2.2`, gwApi: `${n}.99.2` };
  const lab: Lab = {
    name: p,
    ns,
    addr,
    spawnIn: (space, cmd, args, env) => spawn('ip', ['netns', 'exec', space, cmd, ...args], { env: env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] }),
    packetsToInternet: async (from) => {
      const source = from === 'gateway' ? addr.ngPublic : addr.npPublic;
      const { stdout } = await run('ip', ['netns', 'exec', ns.net, 'iptables', '-L', 'FORWARD', '-v', '-x', '-n']);
      const row = stdout.split('\n').find((l) => l.includes(` ${source} `));
      return Number(row?.trim().split(/\s+/)[0] ?? NaN);
    },
    destroy: async () => {
      for (const space of Object.values(ns)) await ip('netns', 'del', space).catch(() => undefined);
      await ip('link', 'del', `${p}r`).catch(() => undefined);
    },
  };
  try {
    for (const space of Object.values(ns)) {
      await ip('netns', 'add', space);
      await inNs(space, 'ip', 'link', 'set', 'lo', 'up');
    }
    await link('pub-np', { ns: ns.pub, dev: `${p}a`, addr: `${addr.pub}/24` }, { ns: ns.np, dev: `${p}b`, addr: `${n}.1.1/24` });
    await link('np-net', { ns: ns.np, dev: `${p}c`, addr: `${addr.npPublic}/24` }, { ns: ns.net, dev: `${p}d`, addr: `${addr.turn}/24` });
    await link('net-ng', { ns: ns.net, dev: `${p}e`, addr: `${n}.20.1/24` }, { ns: ns.ng, dev: `${p}f`, addr: `${addr.ngPublic}/24` });
    await link('ng-gw', { ns: ns.ng, dev: `${p}g`, addr: `${n}.2.1/24` }, { ns: ns.gw, dev: `${p}h`, addr: `${addr.gw}/24` });
    await link('gw-root', { ns: ns.gw, dev: `${p}i`, addr: `${addr.gwApi}/30` }, { ns: null, dev: `${p}r`, addr: `${n}.99.1/30` });
    await inNs(ns.net, 'ip', 'addr', 'add', `${addr.turn2}/24`, 'dev', `${p}d`);
    await inNs(ns.pub, 'ip', 'route', 'add', 'default', 'via', `${n}.1.1`);
    await inNs(ns.np, 'ip', 'route', 'add', 'default', 'via', addr.turn);
    await inNs(ns.ng, 'ip', 'route', 'add', 'default', 'via', `${n}.20.1`);
    await inNs(ns.gw, 'ip', 'route', 'add', 'default', 'via', `${n}.2.1`);
    // The "internet" has a default route, as the real one does: packets for private
    // addresses (a gateway's host candidate) leave and vanish instead of failing at once
    // with "network unreachable". coturn stops relaying for an allocation after such a
    // send error, which would break TURN in the lab only.
    await inNs(ns.net, 'ip', 'link', 'add', `${p}s`, 'type', 'veth', 'peer', 'name', `${p}t`);
    await inNs(ns.net, 'ip', 'addr', 'add', '192.0.2.1/30', 'dev', `${p}s`);
    for (const dev of [`${p}s`, `${p}t`]) await inNs(ns.net, 'ip', 'link', 'set', dev, 'up');
    await inNs(ns.net, 'ip', 'neigh', 'add', '192.0.2.2', 'lladdr', '02:00:00:00:00:01', 'dev', `${p}s`);
    await inNs(ns.net, 'ip', 'route', 'add', 'default', 'via', '192.0.2.2', 'dev', `${p}s`);
    // Counted per NAT: what goes beyond the lab (packetsToInternet).
    for (const source of [addr.ngPublic, addr.npPublic]) {
      await inNs(ns.net, 'iptables', '-A', 'FORWARD', '-s', source, '!', '-d', `${n}.0.0/16`, '-o', `${p}s`, '-j', 'ACCEPT');
    }
    for (const space of [ns.np, ns.net, ns.ng]) await inNs(space, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    await nat(ns.np, `${p}c`, addr.npPublic, addr.pub, publisherNat);
    await nat(ns.ng, `${p}f`, addr.ngPublic, addr.gw, gatewayNat);
    // The gateway's HTTP port is forwarded by its NAT (as a home router forwards 8080), UDP is not.
    if (gatewayNat === 'cone' || gatewayNat === 'symmetric') {
      await inNs(ns.ng, 'iptables', '-t', 'nat', '-A', 'PREROUTING', '-d', addr.ngPublic, '-p', 'tcp', '--dport', '8080', '-j', 'DNAT', '--to-destination', `${addr.gw}:8080`);
    }
    return lab;
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}

async function nat(space: string, outDev: string, publicAddr: string, inside: string, kind: NatKind): Promise<void> {
  const t = (...args: string[]) => inNs(space, 'iptables', '-t', 'nat', ...args);
  if (kind === 'cone' || kind === 'symmetric') {
    await t('-A', 'POSTROUTING', '-o', outDev, '-j', 'MASQUERADE', ...(kind === 'symmetric' ? ['--random-fully'] : []));
    // Unsolicited packets are dropped before conntrack confirms them, as a home router
    // does. Otherwise the entry such a packet leaves behind takes the very port the next
    // outgoing packet should keep, and the NAT picks another one (breaking hole punching).
    await inNs(space, 'iptables', '-A', 'INPUT', '-i', outDev, '-p', 'udp', '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP');
  }
  else if (kind === 'one-to-one') {
    await t('-A', 'PREROUTING', '-d', publicAddr, '-j', 'DNAT', '--to-destination', inside);
    await t('-A', 'POSTROUTING', '-s', inside, '-o', outDev, '-j', 'SNAT', '--to-source', publicAddr);
  }
  // 'none': plain routing. Unsolicited packets to a NAT's own address find no socket there.
}
