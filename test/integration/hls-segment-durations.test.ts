import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitPlaylist } from '../helpers/e2e-api.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { describeSegments, durationProblems, measurePlaylist } from '../helpers/hls-durations.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// What the playlist says each segment lasts (#EXTINF, #EXT-X-TARGETDURATION) against what
// the segments hold, measured from their video packets' timestamps (hls-durations.ts).
// These publishers are encoders with a GOP of their own (ffmpeg's libx264 at -g), which
// ignore keyframe requests, as OBS and FFmpeg's WHIP muxer do: HLS cuts at the keyframes
// they send, so a 1 s GOP gives the 1.000 s segments the README promises for
// hls.segmentSeconds 1, and a 2 s GOP 2 s segments with #EXT-X-TARGETDURATION:2. (A
// publisher that answers keyframe requests, Chromium, gets its keyframes on the gateway's
// 1 s grid instead: test/e2e/chromium-publish.test.ts.)

describe('HLS segment durations against the playlist', () => {
  let t: TestGateway;
  const pubs: Publisher[] = [];

  beforeAll(async () => {
    t = await startTestGateway();
    for (const [name, gop] of [['gop1s', 30], ['gop2s', 60]] as const) {
      pubs.push(await startWeriftPublisher({ whipUrl: `${t.url}/whip/${name}`, width: 320, height: 180, fps: 30, gop, videoKbps: 300 }));
    }
    await Promise.all(pubs.map((p) => p.connected()));
  });

  afterAll(async () => {
    for (const p of pubs) await p.stop();
    await t?.close();
  });

  it('1 s GOP: every listed segment lasts 1.000 s, as its #EXTINF says; #EXT-X-TARGETDURATION:1', async () => {
    await waitPlaylist(t.url, 'gop1s', 6, 30_000);
    const p = await measurePlaylist(`${t.url}/hls/gop1s/index.m3u8`);
    console.log(`[gop1s]\n${describeSegments(p)}`);
    expect(p.segments.length).toBeGreaterThanOrEqual(6);
    expect(durationProblems(p, 1), describeSegments(p)).toEqual([]);
    expect(p.target).toBe(1);
  });

  it('2 s GOP, keyframe requests ignored: segments last 2 s, as #EXTINF says; #EXT-X-TARGETDURATION:2', async () => {
    await waitPlaylist(t.url, 'gop2s', 6, 40_000);
    const p = await measurePlaylist(`${t.url}/hls/gop2s/index.m3u8`);
    console.log(`[gop2s]\n${describeSegments(p)}`);
    expect(p.segments.length).toBeGreaterThanOrEqual(6);
    expect(durationProblems(p, 2), describeSegments(p)).toEqual([]);
    expect(p.target).toBe(2);
    // It was asked for keyframes (the 1 s cadence) and did not answer: the segments follow its GOP.
    expect(pubs[1].plis()).toBeGreaterThan(0);
  });
});
