import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { turnRestCredentials } from '../../src/webrtc/ice-servers.js';
import { ensureBuilt } from '../helpers/build.js';
import { coturnAvailable, startCoturn, type Coturn } from '../helpers/coturn.js';
import { waitFor } from '../helpers/gateway.js';
import { buildLab, netnsSupport, type Lab, type NatKind } from '../helpers/netns.js';

// Publishers and the gateway on their own hosts (network namespaces) behind real NATs
// (iptables): a cone NAT connects directly, a symmetric NAT needs TURN (coturn on the
// "public" network) on the publisher's side or, for a gateway behind one, its own, and a
// gateway behind a 1:1 NAT is reached through its public address.

const unsupported = (await netnsSupport()) ?? (coturnAvailable ? undefined : 'coturn is not installed');
const LAB_TOKEN = 'nat-lab-token-01';

async function stopProcess(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
}

interface Pair {
  local: { address: string; type: string };
  remote: { address: string; type: string };
}

describe.skipIf(unsupported !== undefined)(`NAT traversal in network namespaces${unsupported ? ` (skipped: ${unsupported})` : ''}`, () => {
  let lab: Lab | undefined;
  let turn: Coturn | undefined;
  const procs: ChildProcess[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    await ensureBuilt();
  }, 120_000);

  afterEach(async () => {
    // SIGTERM first: the gateway stops its ffmpeg outputs and the publisher its encoder,
    // which a SIGKILL would leave running after the namespaces are gone.
    await Promise.all(procs.splice(0).map((p) => stopProcess(p)));
    await turn?.stop();
    turn = undefined;
    await lab?.destroy();
    lab = undefined;
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  /** withTurn: coturn runs on the "internet"; 'gateway-only': the publisher gets just its STUN. */
  async function scenario(publisherNat: NatKind, gatewayNat: NatKind, gatewayIce: (l: Lab) => Record<string, string>, withTurn: boolean | 'gateway-only') {
    lab = await buildLab(publisherNat, gatewayNat);
    const secret = 'lab-secret';
    if (withTurn) turn = await startCoturn(3478, { listenIp: lab.addr.turn, netns: lab.ns.net, extra: ['--static-auth-secret=' + secret] });
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gw-nat-'));
    dirs.push(dataDir);
    const gw = lab.spawnIn(lab.ns.gw, process.execPath, ['dist/cli.js'], {
      ...process.env,
      HOST: '0.0.0.0',
      PORT: '8080',
      // Not on loopback, so the gateway needs credentials: the publisher gets a token.
      // control too: the test reads the selected ICE pair, which only control shows.
      AUTH_TOKENS: JSON.stringify([{ token: LAB_TOKEN, permissions: [{ action: 'publish' }, { action: 'read' }, { action: 'control' }] }]),
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      ICE_ADDRESSES: lab.addr.gw,
      ...gatewayIce(lab),
    });
    procs.push(gw);
    const api = `http://${lab.addr.gwApi}:8080`;
    await waitFor('gateway up', async () => ((await fetch(`${api}/healthz`).catch(() => undefined))?.ok ? true : undefined), 20_000);
    const creds = turnRestCredentials(turn?.secret ?? secret, 'publisher', 3600);
    const publisherOptions = {
      whipUrl: `http://${lab.addr.ngPublic}:8080/whip/natcam`,
      token: LAB_TOKEN,
      iceAddress: lab.addr.pub,
      width: 320,
      height: 180,
      gop: 30,
      iceServers: !withTurn ? [] : [{ urls: `stun:${lab.addr.turn}:3478` }, ...(withTurn === true ? [{ urls: `turn:${lab.addr.turn}:3478`, ...creds }] : [])],
    };
    const pub = lab.spawnIn(lab.ns.pub, process.execPath, ['--import', 'tsx', 'test/helpers/netns-publisher.ts'], { ...process.env, PUBLISHER_OPTIONS: JSON.stringify(publisherOptions) });
    procs.push(pub);
    let out = '';
    pub.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    pub.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('publisher connected', () => (/"type":"connected"/.test(out) ? true : /"type":"(failed|posted","status":[^2])/.test(out) ? Promise.reject(new Error(out)) : undefined), 30_000, 100);
    const stream = await waitFor('media through the NAT', async () => {
      const s = (await (await fetch(`${api}/api/streams/natcam`, { headers: { Authorization: `Bearer ${LAB_TOKEN}` } })).json()) as { state: string; ice?: Pair; tracks: { kind: string; packets: number }[] };
      return s.ice && s.tracks.some((t) => t.kind === 'video' && t.packets > 50) ? s : undefined;
    }, 20_000);
    return { pair: stream.ice!, lab };
  }

  it('cone NAT: the publisher connects directly (server- or peer-reflexive)', async () => {
    const { pair, lab: l } = await scenario('cone', 'cone', (x) => ({ ICE_SERVERS: `stun:${x.addr.turn}:3478` }), true);
    expect(['srflx', 'prflx']).toContain(pair.remote.type);
    expect(pair.remote.address).toBe(l.addr.npPublic); // the publisher's NAT, not its private address
    expect(pair.local.type).not.toBe('relay');
  }, 90_000);

  it('nat-check tells a cone NAT from a symmetric one (RFC 5780, coturn with two addresses)', async () => {
    const results: Record<string, { mapping?: string; filtering?: string; natPresent?: boolean; problems: string[] }> = {};
    for (const kind of ['cone', 'symmetric'] as const) {
      lab = await buildLab(kind, 'cone');
      turn = await startCoturn(3478, { listenIp: lab.addr.turn, netns: lab.ns.net, extra: [`--listening-ip=${lab.addr.turn2}`] });
      const check = lab.spawnIn(lab.ns.pub, process.execPath, ['dist/nat-check.js', `stun:${lab.addr.turn}:3478`, '--json']);
      let out = '';
      check.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise((r) => check.on('exit', r));
      results[kind] = JSON.parse(out);
      await turn.stop();
      turn = undefined;
      await lab.destroy();
      lab = undefined;
    }
    expect(results.cone).toMatchObject({ natPresent: true, mapping: 'endpoint-independent', filtering: 'address-and-port-dependent', problems: [] });
    expect(results.symmetric).toMatchObject({ natPresent: true, mapping: 'address-and-port-dependent', problems: [] });
  }, 120_000);

  it('symmetric NAT: the publisher gets through via TURN (relay candidate)', async () => {
    // Both ends are behind NATs that filter by address and port, and the publisher's NAT
    // maps every destination to a new port: neither host nor reflexive candidates can
    // work, so ICE must pick the publisher's relay on coturn.
    const { pair, lab: l } = await scenario('symmetric', 'cone', (x) => ({ ICE_SERVERS: `stun:${x.addr.turn}:3478` }), true);
    expect(pair.remote.type).toBe('relay');
    expect(pair.remote.address).toBe(l.addr.turn);
  }, 90_000);

  it('a gateway behind a symmetric NAT gets through with its own TURN relay (TURN_URLS, TURN_SECRET)', async () => {
    const { pair, lab: l } = await scenario('cone', 'symmetric', (x) => ({ ICE_SERVERS: `stun:${x.addr.turn}:3478`, TURN_URLS: `turn:${x.addr.turn}:3478`, TURN_SECRET: 'lab-secret' }), 'gateway-only');
    expect(pair.local.type).toBe('relay');
    expect(pair.local.address).toBe(l.addr.turn);
  }, 90_000);

  it('a gateway behind a 1:1 NAT is reached through its public address (publicAddresses)', async () => {
    const { pair, lab: l } = await scenario('cone', 'one-to-one', (x) => ({ PUBLIC_ADDRESSES: x.addr.ngPublic }), false);
    expect(pair.local.type).toBe('host');
    expect(pair.local.address).toBe(l.addr.ngPublic);
    // With no STUN server configured, nothing went to a public one (werift's default is
    // stun.l.google.com; not even its DNS lookup left the lab).
    expect(await l.packetsToInternet('gateway')).toBe(0);
  }, 90_000);
});
