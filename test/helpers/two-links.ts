import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import { CHROMIUM_PATH, launchChromium, type LaunchOptions } from './chromium.js';
import { netnsSupport } from './netns.js';

// A publisher host with two networks, as a laptop with Wi-Fi and LTE: a network namespace
// joined to the root namespace (the gateway's side) by two veth pairs. The gateway listens
// on an address of its own in the root namespace (on a veth pair of its own there: this
// kernel has no dummy interfaces) that both links reach. Only the first link is up at the start; move() brings the second one up (with
// the default route) and takes the first one down, as when Wi-Fi is lost and LTE takes
// over: the publisher's address changes and its sockets on the first one go dead.
//
//   [pub] 10.79.N.2 ══ link A ══ 10.79.N.1 ┐
//                                          [root] gateway 10.79.N.9 (its own veth pair)
//   [pub] 10.79.N.6 ── link B ── 10.79.N.5 ┘      (one link up at a time)
//
// Nothing here touches an interface the test did not create.

const run = promisify(execFile);

export interface TwoLinks {
  ns: string;
  /** The gateway's address (root namespace): listen here. */
  gatewayAddress: string;
  /** The publisher's address on each link. */
  publisherAddress: { a: string; b: string };
  /** The link in use. */
  current(): 'a' | 'b';
  /** The other link up with the default route, then the current one down and its address gone. */
  move(): Promise<void>;
  /** Chromium started inside the publisher's namespace. */
  launchChromium(opts?: LaunchOptions): Promise<Browser>;
  destroy(): Promise<void>;
}

export { netnsSupport };

export async function createTwoLinks(): Promise<TwoLinks> {
  const n = (process.pid % 200) + 20;
  const ns = `two${process.pid}`;
  const dev = { aRoot: `twl${n}a`, aPub: `twl${n}b`, bRoot: `twl${n}c`, bPub: `twl${n}d`, gw: `twl${n}g`, gwPeer: `twl${n}h` };
  const net = `10.79.${n}`;
  const addr = { aRoot: `${net}.1`, aPub: `${net}.2`, bRoot: `${net}.5`, bPub: `${net}.6`, gw: `${net}.9` };
  const dir = await mkdtemp(path.join(os.tmpdir(), 'two-links-'));
  const ip = (...args: string[]) => run('ip', args);
  const inNs = (...args: string[]) => run('ip', ['netns', 'exec', ns, ...args]);
  const destroy = async () => {
    await ip('netns', 'del', ns).catch(() => undefined);
    for (const d of [dev.aRoot, dev.bRoot, dev.gw]) await ip('link', 'del', d).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await ip('netns', 'add', ns);
    await inNs('ip', 'link', 'set', 'lo', 'up');
    await ip('link', 'add', dev.gw, 'type', 'veth', 'peer', 'name', dev.gwPeer);
    await ip('addr', 'add', `${addr.gw}/32`, 'dev', dev.gw);
    await ip('link', 'set', dev.gwPeer, 'up');
    await ip('link', 'set', dev.gw, 'up');
    for (const [root, pub, rootAddr] of [[dev.aRoot, dev.aPub, addr.aRoot], [dev.bRoot, dev.bPub, addr.bRoot]]) {
      await ip('link', 'add', root, 'type', 'veth', 'peer', 'name', pub);
      await ip('link', 'set', pub, 'netns', ns);
      await ip('addr', 'add', `${rootAddr}/30`, 'dev', root);
      await ip('link', 'set', root, 'up');
    }
    await inNs('ip', 'addr', 'add', `${addr.aPub}/30`, 'dev', dev.aPub);
    await inNs('ip', 'link', 'set', dev.aPub, 'up');
    await inNs('ip', 'route', 'add', 'default', 'via', addr.aRoot);
    // Playwright starts the browser through this script, which enters the namespace first.
    const wrapper = path.join(dir, 'chromium-in-ns.sh');
    await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${ns} ${CHROMIUM_PATH} "$@"\n`);
    await chmod(wrapper, 0o755);
    let current: 'a' | 'b' = 'a';
    const side = { a: { dev: dev.aPub, addr: addr.aPub, via: addr.aRoot }, b: { dev: dev.bPub, addr: addr.bPub, via: addr.bRoot } };
    return {
      ns,
      gatewayAddress: addr.gw,
      publisherAddress: { a: addr.aPub, b: addr.bPub },
      current: () => current,
      move: async () => {
        const from = side[current];
        const to = side[current === 'a' ? 'b' : 'a'];
        await inNs('ip', 'addr', 'add', `${to.addr}/30`, 'dev', to.dev);
        await inNs('ip', 'link', 'set', to.dev, 'up');
        await inNs('ip', 'route', 'replace', 'default', 'via', to.via);
        // The old address goes with its link (as a Wi-Fi lease does): sockets bound to it
        // are dead, not merely rerouted through the new link.
        await inNs('ip', 'addr', 'flush', 'dev', from.dev);
        await inNs('ip', 'link', 'set', from.dev, 'down');
        current = current === 'a' ? 'b' : 'a';
      },
      launchChromium: (opts = {}) => launchChromium({ ...opts, executablePath: wrapper }),
      destroy,
    };
  } catch (e) {
    await destroy();
    throw e;
  }
}
