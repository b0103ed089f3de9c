import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { segmentsOf } from '../helpers/hls-media.js';
import { launchChromium, loopbackOnly } from '../helpers/chromium.js';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { waitFor } from '../helpers/gateway.js';
import { makeOffer } from '../helpers/offer.js';
import { redisServerAvailable, startRedis, type RedisServer } from '../helpers/redis-server.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// Three gateway processes sharing one redis-server form a cluster: WHIP lands where there
// is room (307) or gets 503, a name is unique across nodes (409, and of two nodes racing
// for it exactly one wins), any node plays, lists and controls any stream, a SIGKILLed
// node leaves every listing within 15 s and its publisher and outputs come back on
// another, a Redis outage is survived, and a SIGTERMed node leaves at once.

interface Listed {
  name: string;
  node?: string;
  state: string;
  outputs: { id: string; type: string; state: string }[];
}
interface NodeJson {
  id: string;
  url: string;
  state: string;
  sessions: number;
  streams: { name: string }[];
}

const idOf = (gw: GatewayProcess) => new URL(gw.url).host;
const list = async (gw: GatewayProcess) => (await (await fetch(`${gw.url}/api/streams`)).json()) as Listed[];
const nodes = async (gw: GatewayProcess) => (await (await fetch(`${gw.url}/api/cluster/nodes`)).json()) as NodeJson[];
const post = (url: string, sdp: string) => fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: sdp, redirect: 'manual' });

describe.skipIf(!redisServerAvailable)('cluster through Redis (3 gateway processes)', () => {
  let redis: RedisServer;
  let a: GatewayProcess; // room for 1 publisher
  let b: GatewayProcess; // 2
  let c: GatewayProcess; // 2
  let offer: string;
  const publishers: Publisher[] = [];
  const events: { type: string; stream: string; node?: string }[] = [];
  const sse = new AbortController();

  const publish = async (url: string, name: string): Promise<Publisher> => {
    const p = await startWeriftPublisher({ whipUrl: `${url}/whip/${name}`, width: 320, height: 240, fps: 15, gop: 15 });
    publishers.push(p);
    return p;
  };
  const byUrl = (url: string) => [a, b, c].find((g) => url.startsWith(g.url))!;

  beforeAll(async () => {
    redis = await startRedis();
    const env = { RESUME_OUTPUTS_SECONDS: '60', HLS_LIST_SIZE: '4' };
    [a, b, c] = await Promise.all([
      startGatewayProcess({ ...env, MAX_SESSIONS: '1' }, { redis: redis.url }),
      startGatewayProcess({ ...env, MAX_SESSIONS: '2' }, { redis: redis.url }),
      startGatewayProcess({ ...env, MAX_SESSIONS: '2' }, { redis: redis.url }),
    ]);
    offer = await makeOffer();
    // C's event feed, for the whole cluster's events.
    void fetch(`${c.url}/api/events`, { signal: sse.signal }).then(async (res) => {
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        for (const m of decoder.decode(chunk).matchAll(/^data: (.*)$/gm)) events.push(JSON.parse(m[1]) as (typeof events)[number]);
      }
    }).catch(() => undefined);
    await waitFor('3 nodes up', async () => ((await nodes(a)).filter((n) => n.state === 'up').length === 3 ? true : undefined), 10_000);
  }, 120_000);

  afterAll(async () => {
    sse.abort();
    for (const p of publishers) await p.stop({ delete: false }).catch(() => undefined);
    await Promise.all([a, b, c].map((g) => g?.close()));
    await redis?.close();
  });

  it('two nodes racing for one name: exactly one wins, the other answers 409', async () => {
    for (let i = 0; i < 5; i++) {
      const answers = await Promise.all([post(`${b.url}/whip/race-${i}`, offer), post(`${c.url}/whip/race-${i}`, offer)]);
      expect(answers.map((r) => r.status).sort(), `round ${i}`).toEqual([201, 409]);
      const won = answers.find((r) => r.status === 201)!;
      const lost = answers.find((r) => r.status === 409)!;
      expect(await lost.text()).toMatch(/already being published on node/);
      // The session's Location is absolute, on the node that has it: DELETE goes there.
      const location = won.headers.get('location')!;
      expect(location).toMatch(new RegExp(`^(${b.url}|${c.url})/whip/race-${i}/`));
      expect((await fetch(location, { method: 'DELETE' })).status).toBe(200);
    }
  });

  it('WHIP lands where there is room: 201 on a node with room, 307 from a full one, 409 for a name live on another node', async () => {
    const pa = await publish(a.url, 'cl-a');
    expect(pa.status, pa.errorText).toBe(201);
    expect(pa.location).toMatch(new RegExp(`^${a.url}/whip/cl-a/`));
    await pa.connected();
    // A is full (MAX_SESSIONS=1): it sends the offer on to the least-loaded node with room.
    const r = await post(`${a.url}/whip/cl-b`, offer);
    expect(r.status).toBe(307);
    const target = r.headers.get('location')!;
    expect([`${b.url}/whip/cl-b`, `${c.url}/whip/cl-b`]).toContain(target);
    await r.body?.cancel();
    // A real client follows it (fetch repeats the POST at the Location).
    const pb = await publish(a.url, 'cl-b');
    expect(pb.status, pb.errorText).toBe(201);
    expect(pb.location).toMatch(new RegExp(`^(${b.url}|${c.url})/whip/cl-b/`));
    await pb.connected();
    // A name live on another node: 409, asked of any node.
    for (const gw of [b, c]) {
      const busy = await post(`${gw.url}/whip/cl-a`, offer);
      expect(busy.status).toBe(409);
      expect(await busy.text()).toMatch(new RegExp(`on node ${idOf(a)}`));
    }
  });

  it('a browser on the built-in page of a full node lands on another and publishes there', async () => {
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const page: Page = await browser.newPage();
      await loopbackOnly(page); // its candidates moved to loopback, on whichever node's /ws it talks to
      await page.goto(`${a.url.replace('127.0.0.1', 'localhost')}/publish/cl-page`); // A is full (cl-a)
      await page.getByRole('button', { name: 'Start publishing' }).click();
      await page.waitForFunction(() => document.getElementById('state')?.textContent === 'connected', undefined, { timeout: 20_000 }).catch(async (e) => {
        throw new Error(`${(e as Error).message}; state=${await page.textContent('#state')} message=${await page.textContent('#message')}`);
      });
      const listed = await waitFor('cl-page live, listed by A', async () => (await list(a)).find((s) => s.name === 'cl-page' && s.state === 'live'), 10_000);
      expect([idOf(b), idOf(c)]).toContain(listed.node);
      await page.getByRole('button', { name: 'Stop' }).click();
      await waitFor('cl-page gone', async () => (!(await list(a)).some((s) => s.name === 'cl-page') ? true : undefined), 10_000);
    } finally {
      await browser?.close();
    }
  });

  it('503 with Retry-After when no node has room', async () => {
    // 3 of the 5 places are taken by offers that never connect; cl-a and cl-b hold the others.
    const fills: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${a.url}/whip/fill-${i}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer });
      expect(res.status, await res.text()).toBe(201);
      fills.push(res.headers.get('location')!);
    }
    // A client that follows redirects ends at a 503 (a node's view of the others may be a
    // moment old: a node it sends the offer to that has filled up meanwhile answers itself).
    const full = await fetch(`${a.url}/whip/fill-3`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer });
    expect(full.status).toBe(503);
    expect(full.headers.get('retry-after')).toBe('5');
    expect(await full.text()).toMatch(/every other node of its cluster/);
    for (const f of fills) expect((await fetch(f, { method: 'DELETE' })).status).toBe(200);
  });

  it('any node lists every stream with its node, plays its HLS and /live (307 to the node), and carries its events', async () => {
    const owner = byUrl(publishers[1].location!);
    for (const gw of [a, b, c]) {
      const streams = await waitFor(`cl-a and cl-b listed on ${gw.url}`, async () => {
        const l = await list(gw);
        return l.some((s) => s.name === 'cl-a') && l.some((s) => s.name === 'cl-b') ? l : undefined;
      }, 10_000);
      expect(streams.find((s) => s.name === 'cl-a')?.node).toBe(idOf(a));
      expect(streams.find((s) => s.name === 'cl-b')?.node).toBe(idOf(owner));
    }
    const wrong = owner === b ? c : b;
    // HLS through a node that does not have the stream.
    const playlist = await waitFor('cl-a playlist through another node', async () => {
      const res = await fetch(`${wrong.url}/hls/cl-a/index.m3u8`);
      const text = await res.text();
      return res.ok && res.redirected && res.url.startsWith(a.url) && segmentsOf(text).length > 0 ? text : undefined;
    }, 20_000, 300);
    // What a cache in front may keep (players: nothing, and no validator to be told "304" with).
    const again = await fetch(`${a.url}/hls/cl-a/index.m3u8`);
    expect(again.headers.get('cache-control')).toBe('public, max-age=0, s-maxage=1');
    expect(again.headers.get('last-modified')).toBeNull();
    await again.body?.cancel();
    const segment = segmentsOf(playlist).at(-1)!.uri;
    const seg = await fetch(`${wrong.url}/hls/cl-a/${segment}`);
    expect(seg.status).toBe(200);
    expect(seg.headers.get('content-type')).toBe('video/iso.segment'); // a fragmented-MP4 segment (Low-Latency HLS)
    expect(Buffer.from(await seg.arrayBuffer()).includes('moof')).toBe(true);
    // /live through another node: MPEG-TS from the node that has it.
    const ac = new AbortController();
    const live = await fetch(`${a.url}/live/cl-b.ts`, { signal: ac.signal });
    expect(live.status).toBe(200);
    expect(live.url.startsWith(owner.url)).toBe(true);
    const reader = live.body!.getReader();
    const first = await reader.read();
    expect(first.value?.[0]).toBe(0x47);
    ac.abort();
    // A WHEP viewer asking a node that does not have the stream is sent to the one that has
    // its media (fetch repeats the POST there).
    const whep = await fetch(`${a.url}/whep/cl-b`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: 'v=0\r\n', redirect: 'manual' });
    expect(whep.status).toBe(307);
    expect(whep.headers.get('location')).toBe(`${owner.url}/whep/cl-b`);
    await whep.body?.cancel();
    // C's event feed saw the streams that started on A and on the other node, each with its node.
    expect(events.some((e) => e.type === 'stream.started' && e.stream === 'cl-a' && e.node === idOf(a))).toBe(true);
    expect(events.some((e) => e.type === 'stream.started' && e.stream === 'cl-b' && e.node === idOf(owner))).toBe(true);
  });

  it('an output started, listed and stopped through a node that does not have the stream', async () => {
    const owner = byUrl(publishers[1].location!);
    // Through A (cl-b is elsewhere): a recording, kept for a returning publisher (RESUME_OUTPUTS_SECONDS).
    const res = await fetch(`${a.url}/api/streams/cl-b/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'record', format: 'mkv' }) });
    const out = (await res.json()) as { id: string; type: string };
    expect(res.status).toBe(201);
    const onOwner = (await (await fetch(`${owner.url}/api/streams/cl-b/outputs`)).json()) as { id: string }[];
    expect(onOwner.map((o) => o.id)).toContain(out.id);
    // And an mpegts output on cl-a through B, stopped through C.
    const ts = await fetch(`${b.url}/api/streams/cl-a/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'rtp-mpegts', host: '127.0.0.1', port: 5004 }) });
    const tsOut = (await ts.json()) as { id: string };
    expect(ts.status).toBe(201);
    expect((await fetch(`${c.url}/api/streams/cl-a/outputs/${tsOut.id}`, { method: 'DELETE' })).status).toBe(204);
    const left = (await (await fetch(`${a.url}/api/streams/cl-a/outputs`)).json()) as { id: string }[];
    expect(left.map((o) => o.id)).not.toContain(tsOut.id);
    // A snapshot through a node that does not have the stream (proxied).
    const snap = await fetch(`${c.url}/api/streams/cl-a/snapshot.jpg`);
    expect(snap.status).toBe(200);
    expect(snap.headers.get('content-type')).toBe('image/jpeg');
  });

  it('a SIGKILLed node leaves every listing within 15 s; its publisher publishes again through any node, and its outputs resume', async () => {
    const owner = byUrl(publishers[1].location!);
    const others = [a, b, c].filter((g) => g !== owner);
    // Another node's outputs are listed as of its last heartbeat (within 2 s).
    const recordId = await waitFor('the record output listed by A', async () => (await list(a)).find((s) => s.name === 'cl-b')?.outputs.find((o) => o.type === 'record')?.id, 5000);
    const t0 = Date.now();
    owner.proc.kill('SIGKILL');
    for (const gw of others) {
      await waitFor(`cl-b gone from ${gw.url}`, async () => (!(await list(gw)).some((s) => s.name === 'cl-b') ? true : undefined), 15_000, 200);
      await waitFor(`${idOf(owner)} gone on ${gw.url}`, async () => ((await nodes(gw)).find((n) => n.id === idOf(owner))?.state === 'gone' ? true : undefined), 15_000, 200);
    }
    const tookMs = Date.now() - t0;
    console.log(`[cluster] a SIGKILLed node left every listing after ${(tookMs / 1000).toFixed(1)} s`);
    expect(tookMs).toBeLessThan(15_000);
    await publishers[1].stop({ delete: false });
    // Its publisher again, through A (full: 307 to the node left with room).
    const again = await waitFor('cl-b published again', async () => {
      const p = await publish(a.url, 'cl-b');
      if (p.status === 201) return p;
      await p.stop({ delete: false });
      return undefined;
    }, 15_000, 500);
    const now = byUrl(again.location!);
    expect(now).not.toBe(owner);
    await again.connected();
    // The recording started through A on the dead node comes back on the new one, under its id.
    await waitFor('the record output resumed', async () => {
      const outs = (await (await fetch(`${now.url}/api/streams/cl-b/outputs`)).json()) as { id: string; state: string }[];
      return outs.some((o) => o.id === recordId && o.state !== 'waiting') ? true : undefined;
    }, 20_000, 300);
  });

  it('the dashboard shows every node with its load, streams and state, and the other nodes\' streams', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      await page.goto(`${b.proc.exitCode === null && b.proc.signalCode === null ? b.url : c.url}/`);
      const table = page.getByRole('table').filter({ hasText: 'Publishers' });
      await expect.poll(() => table.textContent(), { timeout: 10_000 }).toMatch(/gone/);
      const rows = await table.locator('tbody tr').allTextContents();
      expect(rows).toHaveLength(3);
      expect(rows.find((r) => r.includes(idOf(a)))).toMatch(/up.*1 \/ 1.*cl-a/);
      expect(rows.filter((r) => /gone/.test(r))).toHaveLength(1);
      // cl-a (on A) has its card here too, saying where it is.
      await expect.poll(() => page.getByRole('article', { name: 'stream cl-a' }).textContent(), { timeout: 10_000 }).toMatch(new RegExp(`on node ${idOf(a)}`));
      const shots = path.resolve('test-artifacts', 'cluster');
      await mkdir(shots, { recursive: true });
      await page.screenshot({ path: path.join(shots, 'dashboard.png'), fullPage: true });
    } finally {
      await browser.close();
    }
  });

  it('Redis stopped and started again: nodes keep serving their own streams, answer cluster-wide requests 503, log once, and rejoin by themselves', async () => {
    await redis.stop();
    await new Promise((r) => setTimeout(r, 3000)); // several reconnect attempts and heartbeats
    // A's own stream is served as before.
    const pl = await fetch(`${a.url}/hls/cl-a/index.m3u8`);
    expect(pl.status).toBe(200);
    expect((await fetch(`${a.url}/api/streams/cl-a`)).status).toBe(200);
    // What needs the cluster: 503 with the reason.
    const all = await fetch(`${a.url}/api/streams`);
    expect(all.status).toBe(503);
    expect(((await all.json()) as { message: string }).message).toMatch(/Redis/);
    const pub = await post(`${a.url}/whip/cl-new`, offer);
    expect(pub.status).toBe(503);
    expect(await pub.text()).toMatch(/Redis/);
    await new Promise((r) => setTimeout(r, 1000));
    expect(a.output().match(/cluster-redis-down/g)?.length).toBe(1);
    await redis.start(); // empty: the nodes write their entries and names again
    await waitFor('the cluster listed again', async () => {
      const res = await fetch(`${a.url}/api/streams`);
      if (!res.ok) return undefined;
      const l = (await res.json()) as Listed[];
      return l.some((s) => s.name === 'cl-a') && l.some((s) => s.name === 'cl-b') ? true : undefined;
    }, 15_000, 300);
    expect(a.output()).toMatch(/cluster-redis-up/);
    const other = [b, c].find((g) => g.proc.exitCode === null && g.proc.signalCode === null)!;
    const busy = await post(`${other.url}/whip/cl-a`, offer);
    expect(busy.status).toBe(409); // A owns its name again
  });

  it('a node stopped with SIGTERM leaves the cluster at once and finishes its recordings', async () => {
    const live = [b, c].find((g) => g.proc.exitCode === null && g.proc.signalCode === null)!;
    const t0 = Date.now();
    live.proc.kill('SIGTERM');
    await waitFor(`${idOf(live)} gone`, async () => ((await nodes(a)).find((n) => n.id === idOf(live))?.state === 'gone' ? true : undefined), 5000, 100);
    expect(Date.now() - t0).toBeLessThan(2000); // not the 8 s of an expiring entry
    expect((await live.exited).code).toBe(0);
    // It finished the recording it had (cl-b's, resumed there after the SIGKILL).
    const dir = path.join(live.dataDir, 'recordings', 'cl-b');
    const sidecars = (await readdir(dir)).filter((f) => f.endsWith('.json'));
    expect(sidecars.length).toBeGreaterThan(0);
    for (const f of sidecars) expect(JSON.parse(await readFile(path.join(dir, f), 'utf8'))).toMatchObject({ state: 'finished', durationSeconds: expect.any(Number) });
  });
});
