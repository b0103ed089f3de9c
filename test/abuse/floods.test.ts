import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { segmentsOf } from '../helpers/hls-media.js';
import { waitFor } from '../helpers/gateway.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { makeOffer } from '../helpers/offer.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// Floods an attacker can send without any right, or with one token: idle WebSockets,
// event streams, slow request bodies, offers that never connect. The gateway runs as its
// own process (its own file descriptors, as in production) with credentials on and small
// caps, and while each flood runs, a viewer's /healthz, HLS playlist and a WHIP POST must
// keep being answered within 1 s. Attackers come from other loopback addresses
// (127.0.1.x) than the viewer (127.0.0.1), as they would from other machines.

const TOKENS = { publish: 'abuse-publish-token', read: 'abuse-read-token-1', control: 'abuse-control-token' };
const CAPS = { websockets: { total: 300, perAddress: 20 }, sse: { total: 50, perAddress: 10 }, requests: { total: 1000, perAddress: 100 } };

/** Loopback addresses an attacker uses (the whole of 127/8 is this machine). */
const attackers = (from: number, n: number) => Array.from({ length: n }, (_, i) => `127.0.1.${from + i}`);

interface Probe {
  worst: { healthz: number; hls: number; whip: number };
  /** The most connections of each kind the gateway held at once, from its /metrics. */
  maxOpen: Record<string, number>;
  failures: string[];
}

/**
 * Asks what a viewer and a publisher ask, every 200 ms until stopped: records the slowest
 * answers, and the gateway's own count of open connections.
 */
function probe(base: string, stream: string, offer: string): { stop: () => Promise<Probe> } {
  const result: Probe = { worst: { healthz: 0, hls: 0, whip: 0 }, maxOpen: {}, failures: [] };
  let running = true;
  let n = 0;
  const timed = async (what: keyof Probe['worst'], f: () => Promise<Response>, ok: (r: Response) => boolean) => {
    const t0 = performance.now();
    try {
      const res = await f();
      const took = performance.now() - t0;
      result.worst[what] = Math.max(result.worst[what], took);
      if (!ok(res)) result.failures.push(`${what}: ${res.status} ${await res.text()}`);
      else if (what === 'whip') await fetch(new URL(res.headers.get('location')!, base), { method: 'DELETE', headers: { Authorization: `Bearer ${TOKENS.publish}` } });
      else await res.body?.cancel();
    } catch (e) {
      result.failures.push(`${what}: ${(e as Error).message}`);
      result.worst[what] = Math.max(result.worst[what], performance.now() - t0);
    }
  };
  const metrics = async () => {
    const text = await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${TOKENS.control}` } }).then((r) => r.text(), () => '');
    for (const m of text.matchAll(/^gateway_connections\{kind="(\w+)"\} (\d+)/gm)) result.maxOpen[m[1]] = Math.max(result.maxOpen[m[1]] ?? 0, Number(m[2]));
  };
  const loop = (async () => {
    while (running) {
      const signal = AbortSignal.timeout(5000);
      await Promise.all([
        timed('healthz', () => fetch(`${base}/healthz`, { signal }), (r) => r.ok),
        timed('hls', () => fetch(`${base}/hls/${stream}/index.m3u8?token=${TOKENS.read}`, { signal }), (r) => r.ok),
        // every second round: a new publisher's offer (it never connects; it is deleted at once)
        ...(n++ % 2 === 0 ? [timed('whip', () => fetch(`${base}/whip/probe-${n}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${TOKENS.publish}` }, body: offer, signal }), (r) => r.status === 201)] : []),
        metrics(),
      ]);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return result;
    },
  };
}

interface FloodResult {
  attempts: number;
  opened: number;
  maxOpen: number;
  refused: Record<string, number>;
  withRetryAfter: number;
  errors: Record<string, number>;
  closedByServer: Record<string, number>;
  slowestAnswerMs: number;
  stillOpen: number;
}

/** One flooding process (test/abuse/flood-client.ts). */
function flood(mode: 'ws' | 'http', url: string, count: number, addresses: string[], holdMs: number, token?: string): Promise<FloodResult> {
  return new Promise((resolve, reject) => {
    const args = ['--import', 'tsx', path.join(import.meta.dirname, 'flood-client.ts'), mode, url, String(count), '200', String(holdMs), addresses.join(','), ...(token ? [token] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => {
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as FloodResult);
      } catch {
        reject(new Error(`flood client exited ${code}: ${err.slice(-1000)}`));
      }
    });
  });
}

const sum = (rs: FloodResult[], f: (r: FloodResult) => number) => rs.reduce((s, r) => s + f(r), 0);
const merged = (rs: FloodResult[], f: (r: FloodResult) => Record<string, number>) => {
  const out: Record<string, number> = {};
  for (const r of rs) for (const [k, v] of Object.entries(f(r))) out[k] = (out[k] ?? 0) + v;
  return out;
};

describe('abuse: connection floods', () => {
  let g: GatewayProcess;
  let publisher: Publisher;
  let offer: string;

  beforeAll(async () => {
    const config = path.join(os.tmpdir(), `abuse-floods-${process.pid}.yaml`);
    await writeFile(
      config,
      JSON.stringify({
        auth: { tokens: [{ token: TOKENS.publish, permissions: [{ action: 'publish' }] }, { token: TOKENS.read, permissions: [{ action: 'read' }] }, { token: TOKENS.control, permissions: [{ action: 'control' }, { action: 'read' }] }] },
        limits: { ...CAPS, requestTimeoutMs: 3000, headersTimeoutMs: 2000 },
        streams: { maxConnecting: 8 },
        ice: { connectTimeoutMs: 3000 },
      }),
    );
    // CONFIG_FILE is parsed as YAML, of which JSON is a part.
    g = await startGatewayProcess({ CONFIG_FILE: config, MEDIA_WORKERS: '2' });
    publisher = await startWeriftPublisher({ whipUrl: `${g.url}/whip/viewed`, token: TOKENS.publish, width: 320, height: 240, gop: 30 });
    expect(publisher.status, publisher.errorText).toBe(201);
    await fetchPlaylist();
    offer = await makeOffer();
  }, 120_000);

  afterAll(async () => {
    await publisher?.stop({ delete: false }).catch(() => undefined);
    await g?.close();
  });

  const fetchPlaylist = () =>
    waitFor('the viewed stream\'s playlist', async () => {
      const res = await fetch(`${g.url}/hls/viewed/index.m3u8?token=${TOKENS.read}`);
      return res.ok && segmentsOf(await res.text()).length > 0 ? true : undefined;
    }, 30_000, 250);

  it('20,000 idle anonymous WebSockets: past the caps refused at once with Retry-After; /healthz, HLS and WHIP answer within 1 s throughout; the accepted ones are closed for want of credentials', async () => {
    const watch = probe(g.url, 'viewed', offer);
    const url = `${g.url.replace('http', 'ws')}/ws`;
    // 4 processes x 5000 sockets, from 20 attacker addresses
    const results = await Promise.all([0, 1, 2, 3].map((k) => flood('ws', url, 5000, attackers(10 + k * 5, 5), 8000)));
    const seen = await watch.stop();
    const refused = merged(results, (r) => r.refused);
    const summary = { attempts: sum(results, (r) => r.attempts), opened: sum(results, (r) => r.opened), refused, errors: merged(results, (r) => r.errors), closedByServer: merged(results, (r) => r.closedByServer), withRetryAfter: sum(results, (r) => r.withRetryAfter), slowestMs: Math.round(Math.max(...results.map((r) => r.slowestAnswerMs))), probe: seen };
    console.log('ws flood:', JSON.stringify(summary));
    expect(summary.attempts).toBe(20_000);
    expect(summary.opened).toBeGreaterThan(0);
    // 20 addresses x 20 per address would be 400 at once: the total cap (300) holds.
    expect(seen.maxOpen.websockets).toBeLessThanOrEqual(CAPS.websockets.total);
    expect((refused['429'] ?? 0) + (refused['503'] ?? 0)).toBe(summary.attempts - summary.opened);
    expect(refused['503'] ?? 0).toBeGreaterThan(0); // the total cap
    expect(refused['429'] ?? 0).toBeGreaterThan(0); // the per-address cap
    expect(summary.withRetryAfter).toBe(summary.attempts - summary.opened);
    expect(summary.errors).toEqual({});
    // Anonymous sockets go after the auth deadline (5 s), with the gateway's own close code.
    expect(summary.closedByServer).toEqual({ 4401: summary.opened });
    expect(seen.failures).toEqual([]);
    expect(seen.worst.healthz).toBeLessThan(1000);
    expect(seen.worst.hls).toBeLessThan(1000);
    expect(seen.worst.whip).toBeLessThan(1000);
  }, 120_000);

  it('2,000 event streams with one read token: past the caps 429/503 with Retry-After, answered at once', async () => {
    const watch = probe(g.url, 'viewed', offer);
    const r = await flood('http', `${g.url}/api/events`, 2000, attackers(40, 10), 1000, TOKENS.read);
    const seen = await watch.stop();
    console.log('sse flood:', JSON.stringify({ ...r, probe: seen }));
    // 10 addresses x 10 would be 100 at once: the total cap (50) holds.
    expect(r.opened).toBe(CAPS.sse.total);
    expect(seen.maxOpen.sse).toBeLessThanOrEqual(CAPS.sse.total);
    expect((r.refused['429'] ?? 0) + (r.refused['503'] ?? 0)).toBe(2000 - CAPS.sse.total);
    expect(r.withRetryAfter).toBe(2000 - CAPS.sse.total);
    expect(r.errors).toEqual({});
    expect(seen.failures).toEqual([]);
    expect(seen.worst.healthz).toBeLessThan(1000);
    expect(seen.worst.hls).toBeLessThan(1000);
  }, 60_000);

  it('slow WHIP bodies: cut with 408 at the request deadline; past the per-address cap 429 at once', async () => {
    const watch = probe(g.url, 'viewed', offer);
    const n = CAPS.requests.perAddress + 50;
    const t0 = performance.now();
    const answers = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        new Promise<{ status: number; ms: number }>((resolve) => {
          const socket = net.connect({ host: '127.0.0.1', port: g.port, localAddress: '127.0.1.60' });
          let text = '';
          let answeredMs = 0;
          socket.on('data', (d) => {
            text += d.toString();
            answeredMs ||= performance.now() - t0;
          });
          socket.on('error', () => undefined);
          socket.on('close', () => {
            clearInterval(drip);
            resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), ms: answeredMs || performance.now() - t0 });
          });
          socket.write(`POST /whip/slow${i} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKENS.publish}\r\nContent-Type: application/sdp\r\nContent-Length: 5000\r\n\r\n`);
          const drip = setInterval(() => socket.write('v'), 500); // a byte every half second: never done
        }),
      ),
    );
    const seen = await watch.stop();
    const cut = answers.filter((a) => a.status === 408);
    const refused = answers.filter((a) => a.status === 429);
    console.log('slow bodies:', JSON.stringify({ cut: cut.length, refused: refused.length, slowestCutMs: Math.round(Math.max(...cut.map((a) => a.ms))), slowestRefusedMs: Math.round(Math.max(...refused.map((a) => a.ms))), probe: seen }));
    expect(cut.length).toBe(CAPS.requests.perAddress);
    expect(refused.length).toBe(50);
    expect(Math.max(...refused.map((a) => a.ms))).toBeLessThan(1000);
    // requestTimeoutMs 3000, checked every second
    expect(Math.max(...cut.map((a) => a.ms))).toBeLessThan(5000);
    expect(seen.failures).toEqual([]);
    expect(seen.worst.healthz).toBeLessThan(1000);
  }, 60_000);

  it('offers that never connect, from 5 addresses: past streams.maxConnecting 503 with Retry-After; /healthz stays fast', async () => {
    const from = attackers(70, 5);
    const t0 = performance.now();
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        new Promise<{ status: number; retryAfter?: string; body: string }>((resolve, reject) => {
          const req = http.request(`${g.url}/whip/never${i}`, { method: 'POST', localAddress: from[i % 5], agent: false, headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${TOKENS.publish}` } }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }));
          });
          req.on('error', reject);
          req.end(offer);
        }),
      ),
    );
    const took = performance.now() - t0;
    const healthz = performance.now();
    expect((await fetch(`${g.url}/healthz`)).ok).toBe(true);
    const healthzMs = performance.now() - healthz;
    const busy = answers.filter((a) => a.status === 503);
    console.log('never-connecting offers:', JSON.stringify({ statuses: answers.map((a) => a.status), tookMs: Math.round(took), healthzMs: Math.round(healthzMs), message: busy[0]?.body.trim() }));
    expect(answers.filter((a) => a.status === 201).length).toBe(8);
    expect(busy.length).toBe(12);
    expect(busy.every((a) => a.retryAfter === '5' && /streams\.maxConnecting/.test(a.body))).toBe(true);
    expect(healthzMs).toBeLessThan(1000);
  }, 60_000);
});
