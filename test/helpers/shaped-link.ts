import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import { CHROMIUM_PATH, launchChromium, type LaunchOptions } from './chromium.js';
import { netnsSupport } from './netns.js';

// A publisher behind a slow, lossy uplink. Two network namespaces made by the test: the
// publisher's host and a router, joined to the root namespace by veth pairs. The gateway
// listens on the root side's address (ours, not a machine interface); Chromium runs in
// the publisher's namespace, so every packet it sends the gateway crosses the router.
//
//   [pub: Chromium] 10.77.N.6 ── 10.77.N.5 [router: tbf rate, iptables loss] 10.77.N.2 ── 10.77.N.1 [root: gateway]
//
// The router shapes what it forwards to the gateway, as an uplink does: a token bucket at
// the rate with a queue of `queueMs` (this machine's kernel has no netem), and an iptables
// rule that drops a share of the publisher's UDP packets at random. The sender never
// learns of either (a drop on its own host would fail its send() with EPERM, which
// Chromium notices and does not count as loss).

const run = promisify(execFile);

export interface LinkShape {
  rateKbit: number;
  /** Share of the publisher's UDP packets dropped at random. */
  lossPercent?: number;
  /** Longest a packet waits in the uplink's queue (default 300 ms); later ones are dropped. */
  queueMs?: number;
  /** Share of the UDP packets to the namespace's host (its downlink: a WHEP viewer's media) dropped at random. */
  downLossPercent?: number;
}

export interface ShapedLink {
  /** The publisher's namespace. */
  ns: string;
  /** The gateway's side (root namespace): listen here. */
  gatewayAddress: string;
  /** The publisher's address (in its namespace). */
  publisherAddress: string;
  shape(s: LinkShape): Promise<void>;
  /** Chromium started inside the publisher's namespace. */
  launchChromium(opts?: LaunchOptions): Promise<Browser>;
  /** Packets the router dropped on purpose so far (loss rules, both ways). */
  dropped(): Promise<number>;
  destroy(): Promise<void>;
}

export { netnsSupport };

export async function createShapedLink(initial: LinkShape): Promise<ShapedLink> {
  const n = (process.pid % 200) + 20;
  const pub = `shp${process.pid}p`;
  const router = `shp${process.pid}r`;
  const dev = { root: `shp${n}a`, routerUp: `shp${n}b`, routerDown: `shp${n}c`, pub: `shp${n}d` };
  const net = `10.77.${n}`;
  const gatewayAddress = `${net}.1`;
  const publisherAddress = `${net}.6`;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shaped-'));
  const inNs = (ns: string, ...args: string[]) => run('ip', ['netns', 'exec', ns, ...args]);
  const destroy = async () => {
    for (const ns of [pub, router]) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    await run('ip', ['link', 'del', dev.root]).catch(() => undefined);
    await run('ip', ['route', 'del', `${net}.4/30`]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  const shape = async (s: LinkShape) => {
    await inNs(router, 'tc', 'qdisc', 'replace', 'dev', dev.routerUp, 'root', 'tbf', 'rate', `${s.rateKbit}kbit`, 'burst', '4kb', 'latency', `${s.queueMs ?? 300}ms`);
    await inNs(router, 'iptables', '-F', 'FORWARD');
    await inNs(router, 'iptables', '-A', 'FORWARD', '-i', dev.routerDown, '-p', 'udp', '-m', 'statistic', '--mode', 'random', '--probability', String((s.lossPercent ?? 0) / 100), '-j', 'DROP');
    if (s.downLossPercent) await inNs(router, 'iptables', '-A', 'FORWARD', '-o', dev.routerDown, '-p', 'udp', '-m', 'statistic', '--mode', 'random', '--probability', String(s.downLossPercent / 100), '-j', 'DROP');
  };
  try {
    for (const ns of [pub, router]) {
      await run('ip', ['netns', 'add', ns]);
      await inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
    }
    await run('ip', ['link', 'add', dev.root, 'type', 'veth', 'peer', 'name', dev.routerUp]);
    await run('ip', ['link', 'set', dev.routerUp, 'netns', router]);
    await run('ip', ['addr', 'add', `${gatewayAddress}/30`, 'dev', dev.root]);
    await run('ip', ['link', 'set', dev.root, 'up']);
    await inNs(router, 'ip', 'addr', 'add', `${net}.2/30`, 'dev', dev.routerUp);
    await inNs(router, 'ip', 'link', 'set', dev.routerUp, 'up');
    await inNs(router, 'ip', 'link', 'add', dev.routerDown, 'type', 'veth', 'peer', 'name', dev.pub);
    await inNs(router, 'ip', 'link', 'set', dev.pub, 'netns', pub);
    await inNs(router, 'ip', 'addr', 'add', `${net}.5/30`, 'dev', dev.routerDown);
    await inNs(router, 'ip', 'link', 'set', dev.routerDown, 'up');
    await inNs(router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    await inNs(pub, 'ip', 'addr', 'add', `${publisherAddress}/30`, 'dev', dev.pub);
    await inNs(pub, 'ip', 'link', 'set', dev.pub, 'up');
    // Chromium gathers on the default route's interface.
    await inNs(pub, 'ip', 'route', 'add', 'default', 'via', `${net}.5`);
    // The way back to the publisher's /30 from the gateway's side.
    await run('ip', ['route', 'add', `${net}.4/30`, 'via', `${net}.2`, 'dev', dev.root]);
    await shape(initial);
    // Playwright starts the browser through this script, which enters the namespace first.
    const wrapper = path.join(dir, 'chromium-in-ns.sh');
    await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${pub} ${CHROMIUM_PATH} "$@"\n`);
    await chmod(wrapper, 0o755);
    return {
      ns: pub,
      gatewayAddress,
      publisherAddress,
      shape,
      launchChromium: (opts = {}) => launchChromium({ ...opts, executablePath: wrapper }),
      dropped: async () => {
        const { stdout } = await inNs(router, 'iptables', '-L', 'FORWARD', '-v', '-x', '-n');
        return stdout.split('\n').filter((l) => l.includes('statistic')).reduce((n, l) => n + Number(l.trim().split(/\s+/)[0] ?? 0), 0);
      },
      destroy,
    };
  } catch (e) {
    await destroy();
    throw e;
  }
}
