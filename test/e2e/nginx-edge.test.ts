import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.js';
import { waitFor } from '../helpers/gateway.js';
import { nginxAvailable, startNginxEdge, type NginxEdge } from '../helpers/nginx-edge.js';
import { redisServerAvailable, startRedis, type RedisServer } from '../helpers/redis-server.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';
import { segmentsOf } from '../helpers/hls-media.js';

// 500 HLS viewers read one stream through deploy/nginx-edge.conf in front of a cluster of
// two gateways (the stream on one; the cache also asks the other, which redirects): the
// gateways see about one request per segment and per playlist update, not 500. Each
// viewer is a bounded loop (playlist, then the segments it has not fetched, then a pause
// of about a second) that stops by itself after VIEW_MS: a plain player, which reads the
// Low-Latency playlist's complete segments (fMP4) and none of its parts.

/** A segment (fMP4: it has a movie fragment) rather than an error page. */
const isSegment = (b?: Buffer) => b !== undefined && b.includes('moof');
/** A segment's URI in nginx's log (LL-HLS names: <epoch>-s<n>.m4s). */
const SEGMENT_LOGGED = /-s\d+\.m4s /;

const VIEWERS = 500;
const VIEW_MS = 20_000;

describe.skipIf(!redisServerAvailable || !nginxAvailable)('nginx edge cache in front of the cluster', () => {
  let redis: RedisServer;
  let a: GatewayProcess;
  let b: GatewayProcess;
  let edge: NginxEdge;
  let pub: Publisher;

  beforeAll(async () => {
    redis = await startRedis();
    [a, b] = await Promise.all([startGatewayProcess({}, { redis: redis.url }), startGatewayProcess({}, { redis: redis.url })]);
    edge = await startNginxEdge([a.url, b.url]);
    pub = await startWeriftPublisher({ whipUrl: `${a.url}/whip/edge1`, width: 320, height: 240, fps: 15, gop: 15, videoKbps: 300 });
    expect(pub.status, pub.errorText).toBe(201);
    await pub.connected();
    await waitFor('a playlist with 3 segments through the edge', async () => {
      const res = await fetch(`${edge.url}/hls/edge1/index.m3u8`);
      const text = await res.text();
      return res.ok && segmentsOf(text).length >= 3 ? true : undefined;
    }, 30_000, 300);
  }, 120_000);

  afterAll(async () => {
    await pub?.stop().catch(() => undefined);
    await edge?.stop();
    await Promise.all([a?.close(), b?.close()]);
    await redis?.close();
  });

  it(`${VIEWERS} viewers cost the origin about one request per segment and per playlist update`, async () => {
    const before = (await edge.log()).length;
    const t0 = Date.now();
    const stats = { playlists: 0, segments: 0, bad: 0, bytes: 0 };
    const viewer = async (i: number) => {
      await new Promise((r) => setTimeout(r, (i * 997) % 1000)); // viewers do not all start in the same millisecond
      const fetched = new Set<string>();
      while (Date.now() - t0 < VIEW_MS) {
        const res = await fetch(`${edge.url}/hls/edge1/index.m3u8`).catch(() => undefined);
        const text = res?.ok ? await res.text() : undefined;
        stats.playlists++;
        if (!text?.startsWith('#EXTM3U')) stats.bad++;
        for (const { uri: seg } of segmentsOf(text ?? '').slice(-2)) {
          if (fetched.has(seg)) continue;
          fetched.add(seg);
          const s = await fetch(`${edge.url}/hls/edge1/${seg}`).catch(() => undefined);
          const body = s?.ok ? Buffer.from(await s.arrayBuffer()) : undefined;
          stats.segments++;
          if (!isSegment(body)) stats.bad++;
          else stats.bytes += body!.length;
        }
        await new Promise((r) => setTimeout(r, 800 + ((i * 37) % 400)));
      }
    };
    await Promise.all(Array.from({ length: VIEWERS }, (_, i) => viewer(i)));
    const seconds = (Date.now() - t0) / 1000;
    const lines = (await edge.log()).slice(before);
    // A request that went to a gateway names its address(es); one served from the cache "-".
    const toOrigin = (l: string) => !/"-"/.test(l);
    const origin = (re: RegExp) => lines.filter((l) => re.test(l) && toOrigin(l));
    const originPlaylists = origin(/\/index\.m3u8 /);
    const originSegments = origin(SEGMENT_LOGGED);
    const distinctSegments = new Set(lines.filter((l) => SEGMENT_LOGGED.test(l)).map((l) => l.split(' ')[0])).size;
    // A request the cache followed through a redirect names two gateways: count both.
    const upstreams = (ls: string[]) => ls.reduce((n, l) => n + (/"(.*)"/.exec(l)?.[1].split(/[,:] /).length ?? 1), 0);
    const perSegment = upstreams(originSegments) / distinctSegments;
    const playlistPerSecond = upstreams(originPlaylists) / seconds;
    console.log(
      `[edge] ${VIEWERS} viewers for ${seconds.toFixed(1)} s: ${stats.playlists} playlist and ${stats.segments} segment requests to nginx (${(stats.bytes / 1e6).toFixed(0)} MB), ${stats.bad} bad; ` +
        `the gateways saw ${upstreams(originSegments)} segment requests for ${distinctSegments} segments (${perSegment.toFixed(2)} per segment) and ${upstreams(originPlaylists)} playlist requests (${playlistPerSecond.toFixed(2)} per second, one update per second)`,
    );
    expect(stats.bad).toBe(0);
    expect(stats.segments).toBeGreaterThan(VIEWERS * 5); // the viewers did watch
    expect(perSegment).toBeLessThanOrEqual(3); // about one (a redirect from the other node counts as a second)
    expect(playlistPerSecond).toBeLessThanOrEqual(4); // about one per segment, not 500
  });
});

describe.skipIf(!nginxAvailable)('nginx edge cache with credentials', () => {
  const TOKENS = { pub: 'edge-publisher-token', a: 'edge-viewer-token-a', b: 'edge-viewer-token-b' };
  let gw: GatewayProcess;
  let edge: NginxEdge;
  let pub: Publisher;

  beforeAll(async () => {
    gw = await startGatewayProcess({
      AUTH_TOKENS: JSON.stringify([
        { token: TOKENS.pub, permissions: [{ action: 'publish' }] },
        { token: TOKENS.a, permissions: [{ action: 'read' }] },
        { token: TOKENS.b, permissions: [{ action: 'read' }] },
      ]),
    });
    edge = await startNginxEdge([gw.url]);
    pub = await startWeriftPublisher({ whipUrl: `${gw.url}/whip/auth1`, token: TOKENS.pub, width: 320, height: 240, fps: 15, gop: 15, videoKbps: 300 });
    expect(pub.status, pub.errorText).toBe(201);
    await pub.connected();
  }, 120_000);

  afterAll(async () => {
    await pub?.stop().catch(() => undefined);
    await edge?.stop();
    await gw?.close();
  });

  it('tokens stay checked behind the cache, and the tickets viewers get do not split it', async () => {
    const playlistOf = async (token?: string) => fetch(`${edge.url}/hls/auth1/index.m3u8${token ? `?token=${token}` : ''}`);
    const listA = await waitFor('a playlist with segments through the edge', async () => {
      const res = await playlistOf(TOKENS.a);
      const text = await res.text();
      return res.ok && segmentsOf(text).some((x) => x.uri.includes('?ticket=')) ? text : undefined;
    }, 30_000, 300);
    // Another viewer with another token gets the same segment URLs (one ticket per stream and step).
    const listB = await (await playlistOf(TOKENS.b)).text();
    const uris = (text: string) => segmentsOf(text).map((x) => x.uri);
    const shared = uris(listA).filter((s) => uris(listB).includes(s));
    expect(shared.length).toBeGreaterThan(0);
    // No token, or a wrong one, is refused however much the cache holds.
    expect((await playlistOf()).status).toBe(401);
    expect((await playlistOf('not-a-token-at-all')).status).toBe(401);
    const bad = await fetch(`${edge.url}/hls/auth1/${shared[0].replace(/ticket=[^&]+/, 'ticket=0.forged')}`);
    expect(bad.status).toBe(401);
    // 20 fetches of one segment by both viewers: one request reached the gateway.
    const before = (await edge.log()).length;
    const bodies = await Promise.all(Array.from({ length: 20 }, () => fetch(`${edge.url}/hls/auth1/${shared[0]}`).then(async (r) => (r.ok ? Buffer.from(await r.arrayBuffer()) : undefined))));
    expect(bodies.every(isSegment)).toBe(true);
    const lines = (await edge.log()).slice(before).filter((l) => l.startsWith(`/hls/auth1/${shared[0].split('?')[0]}`));
    expect(lines.length).toBe(20);
    expect(lines.filter((l) => !/"-"/.test(l)).length).toBeLessThanOrEqual(1);
  });
});
