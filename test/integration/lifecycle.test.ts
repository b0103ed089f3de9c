import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { segmentsOf } from '../helpers/hls-media.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher } from '../helpers/werift-publisher.js';

// What happens after a publisher leaves: without a word (tab closed, network gone) the
// session is cleaned up within 10 s; the HLS files stay for the grace period, then go.

describe('stream lifecycle', () => {
  let t: TestGateway;

  beforeAll(async () => {
    t = await startTestGateway({ hls: { cleanupAfterSeconds: 1 } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('cleans up a publisher that vanishes without DELETE: its silence timeout, then its outputs finish', async () => {
    const pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/gone`, width: 320, height: 180, gop: 30 });
    expect(pub.status).toBe(201);
    // Once viewers have something (a stream that ends before its first segment has nothing to list: 404).
    await waitFor('a segment listed', async () => (segmentsOf(await (await fetch(`${t.url}/hls/gone/index.m3u8`)).text()).length > 0 ? true : undefined), 15_000, 200);
    const vanishedAt = Date.now();
    await pub.stop({ delete: false }); // media stops, no DELETE is sent
    await waitFor('stream removed', async () => ((await fetch(`${t.url}/api/streams/gone`)).status === 404 ? true : undefined), 12_000, 100);
    const took = Date.now() - vanishedAt;
    console.log(`[lifecycle] removed ${took} ms after the publisher vanished`);
    // The silence timeout, then its outputs finish (ffmpeg gets at most ffmpeg.stopTimeoutMs);
    // about 6 s here, 10 s once on a loaded machine.
    expect(took).toBeLessThan(t.gw.config.ice.mediaTimeoutMs + t.gw.config.ffmpeg.stopTimeoutMs + 2000);
    expect(t.gw.registry.ffmpegPids()).toEqual([]);
    const playlist = await (await fetch(`${t.url}/hls/gone/index.m3u8`)).text();
    expect(playlist).toContain('#EXT-X-ENDLIST');
  });

  it('removes the HLS files after the grace period', async () => {
    const dir = path.join(t.dataDir, 'hls', 'gone');
    // Low-Latency HLS keeps its media in memory: the playlist goes too.
    await waitFor('HLS folder and playlist removed', async () => (!existsSync(dir) && (await fetch(`${t.url}/hls/gone/index.m3u8`)).status === 404 ? true : undefined), 5000, 100);
  });

  it('lets the same name be published again afterwards', async () => {
    const pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/gone`, width: 320, height: 180, gop: 30, audio: false });
    expect(pub.status).toBe(201);
    await waitFor('new HLS', async () => ((await fetch(`${t.url}/hls/gone/index.m3u8`)).ok ? true : undefined));
    await pub.stop();
  });
});
