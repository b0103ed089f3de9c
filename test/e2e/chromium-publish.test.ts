import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastSequence, probeSegment, segmentsOf } from '../helpers/hls-media.js';
import { launchChromium, PublisherPage, startPageServer, type PageServer, type SenderStats } from '../helpers/chromium.js';
import { getStream, waitEndlist, waitGone, waitLive, waitPlaylist } from '../helpers/e2e-api.js';
import { ffprobe } from '../helpers/ffprobe.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { describeSegments, durationProblems, FRAME_30, measurePlaylist } from '../helpers/hls-durations.js';

// Headless Chromium (fake camera and microphone) publishes over WHIP from a page on
// another origin, with the built-in publish page's settings (test/helpers/chromium.ts:
// default bundle policy, H.264 first, no sender settings); the gateway makes HLS of it.
// Checked the way a user would: Chromium's own getStats (what it sends, and what limits
// it), the API, the playlist over HTTP and ffprobe on it.

/** The offer without its candidates and connection lines: what the helper's loopback rewrite may touch. */
const withoutAddresses = (sdp: string) => sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate:') && !l.startsWith('c=')).join('\r\n');

const describeStats = (xs: SenderStats[]) => xs.map((s) => `${s.frameWidth}x${s.frameHeight} ${s.framesPerSecond} fps ${s.qualityLimitationReason} target ${Math.round((s.targetBitrate ?? 0) / 1000)} kbit/s`).join('; ');

describe('Chromium publishes over WHIP from another origin', () => {
  let t: TestGateway;
  let site: PageServer;
  let browser: Browser;
  const pages: PublisherPage[] = [];

  async function openPublisher(): Promise<PublisherPage> {
    const p = await PublisherPage.open(browser, site.url);
    pages.push(p);
    return p;
  }

  beforeAll(async () => {
    [t, site, browser] = await Promise.all([startTestGateway(), startPageServer(), launchChromium()]);
  });

  afterAll(async () => {
    for (const p of pages) await p.close().catch(() => undefined);
    await browser?.close();
    await site?.close();
    await t?.close();
  });

  it('camera + microphone, default settings: Chromium grows to the camera size at ~30 fps with nothing limiting it, HLS follows in 1 s segments, each as long as its EXTINF says; DELETE ends it', async () => {
    expect(new URL(site.origin).origin).not.toBe(new URL(t.url).origin);
    const pub = await openPublisher();
    const res = await pub.publish(`${t.url}/whip/cam1`, { video: { width: 1280, height: 720 }, audio: true });
    expect(res.status, res.body).toBe(201);
    // The page could read Location only because the gateway exposes it to other origins.
    expect(res.location).toMatch(new RegExp(`^${t.url}/whip/cam1/[0-9a-f-]{36}$`));
    expect(res.offer).toMatch(/a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 /);
    // The helper moved the candidates to loopback and changed nothing else of Chromium's offer.
    expect(withoutAddresses(res.offer)).toBe(withoutAddresses(res.generated));
    // As the built-in page: H.264 first in the video section.
    const firstVideoPt = /^m=video \d+ \S+ (\d+)/m.exec(res.offer)?.[1];
    expect(res.offer).toMatch(new RegExp(`^a=rtpmap:${firstVideoPt} H264/90000`, 'm'));
    await pub.connected();

    const info = await waitLive(t.url, 'cam1');
    expect(info.ice?.local.address).toBe('127.0.0.1');
    expect(info.ice?.remote.address).toBe('127.0.0.1');
    expect(info.tracks.find((x) => x.kind === 'video')?.codec).toBe('H264');
    expect(info.tracks.find((x) => x.kind === 'audio')?.codec).toBe('opus');

    // What a user gets: a default sender starts below the camera size (here 640x360) and
    // grows as its bandwidth estimate does (1280x720 after ~7 s here; see
    // chromium-quality.test.ts for a picture that needs megabits). Loosely timed.
    const seen: SenderStats[] = [];
    const full = await waitFor('Chromium sending the camera size', async () => {
      const s = await pub.senderStats();
      seen.push(s);
      return s.frameWidth === 1280 && s.frameHeight === 720 ? s : undefined;
    }, 30_000, 1000).catch((e: Error) => {
      throw new Error(`${e.message}; Chromium sent: ${describeStats(seen)}`);
    });
    // Settled at that size: a couple of seconds of 30 fps pictures with nothing limiting them.
    const settled: SenderStats[] = [full];
    for (let i = 0; i < 2; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      settled.push(await pub.senderStats());
    }
    const story = `Chromium sent: ${describeStats([...seen, ...settled.slice(1)])}`;
    for (const s of settled) expect({ width: s.frameWidth, height: s.frameHeight }, story).toEqual({ width: 1280, height: 720 });
    expect(Math.max(...settled.map((s) => s.framesPerSecond ?? 0)), story).toBeGreaterThanOrEqual(25);
    expect(settled.at(-1)?.qualityLimitationReason, story).toBe('none');

    // The gateway sees that size (from the SPS), and HLS carries it: a segment cut after now.
    await waitFor('the API showing 1280x720', async () => {
      const v = (await getStream(t.url, 'cam1')).info?.tracks.find((x) => x.kind === 'video');
      return v?.width === 1280 && v.height === 720 ? v : undefined;
    }, 5000, 250);
    const playlistUrl = `${t.url}/hls/cam1/index.m3u8`;
    const lastNow = lastSequence(await waitPlaylist(t.url, 'cam1', 1));
    const later = await waitFor('a segment cut after Chromium reached 1280x720', async () => {
      const text = await (await fetch(playlistUrl)).text();
      return lastSequence(text) > lastNow + 1 ? segmentsOf(text).at(-1) : undefined;
    }, 10_000, 250);
    const probe = await probeSegment(playlistUrl, later);
    expect(probe.streams.find((x) => x.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 1280, height: 720 });
    expect(probe.streams.find((x) => x.codec_type === 'audio')).toMatchObject({ codec_name: 'aac' });

    // Chromium answers keyframe requests: the gateway asks on its 1 s grid and every
    // segment lasts 1.000 s (README, HLS), within a frame, as its #EXTINF says.
    const video = (await getStream(t.url, 'cam1')).info?.tracks.find((x) => x.kind === 'video');
    expect(video?.answersKeyframeRequests).toBe(true);
    const durations = await measurePlaylist(playlistUrl);
    console.log(`[cam1] ${story}\n${describeSegments(durations)}`);
    expect(durations.segments.length).toBeGreaterThanOrEqual(6);
    // Each segment holds what its EXTINF says and starts at a keyframe. Its length is the
    // keyframe grid's, give or take the 0.1 s a keyframe may come early (a browser answers
    // the cadence's request at once; src/hls/segmenter.ts cuts at it): 0.9 + 1.1 s seen once.
    expect(durationProblems(durations, 1, FRAME_30, 0.1 + FRAME_30), describeSegments(durations)).toEqual([]);

    // DELETE from the page (cross-origin, preflighted).
    expect(await pub.stop()).toBe(200);
    expect((await getStream(t.url, 'cam1')).status).toBe(404);
    const ended = await waitEndlist(t.url, 'cam1');
    expect(segmentLines(ended).length).toBeGreaterThan(0);
  });

  it('PCMU preferred by the page: the API shows PCMU, HLS still carries AAC', async () => {
    const pub = await openPublisher();
    const res = await pub.publish(`${t.url}/whip/pcmu1`, { video: { width: 640, height: 480 }, audio: true, preferAudio: 'PCMU' });
    expect(res.status, res.body).toBe(201);
    expect(res.offer).toMatch(/m=audio \d+ UDP\/TLS\/RTP\/SAVPF 0 /); // PCMU really is first in the offer
    await pub.connected();
    const info = await waitLive(t.url, 'pcmu1');
    expect(info.tracks.find((x) => x.kind === 'audio')?.codec).toBe('PCMU');
    expect(info.tracks.find((x) => x.kind === 'video')?.codec).toBe('H264');
    await waitPlaylist(t.url, 'pcmu1', 2);
    const probe = await ffprobe(`${t.url}/hls/pcmu1/index.m3u8`);
    expect(probe.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac' });
    // A default sender keeps a 640x480 camera's size here (nothing limits it on loopback).
    const sent = await pub.senderStats();
    expect(probe.streams.find((s) => s.codec_type === 'video'), describeStats([sent])).toMatchObject({ codec_name: 'h264', width: 640, height: 480 });
    expect(await pub.stop()).toBe(200);
    await waitGone(t.url, 'pcmu1', 5000);
  });

  it('camera only (no microphone): HLS has video and no audio', async () => {
    const pub = await openPublisher();
    const res = await pub.publish(`${t.url}/whip/vonly1`, { video: { width: 640, height: 480 }, audio: false });
    expect(res.status, res.body).toBe(201);
    expect(res.offer).not.toContain('m=audio');
    await pub.connected();
    const info = await waitLive(t.url, 'vonly1');
    expect(info.tracks.map((x) => x.kind)).toEqual(['video']);
    await waitPlaylist(t.url, 'vonly1', 2);
    const probe = await ffprobe(`${t.url}/hls/vonly1/index.m3u8`);
    const sent = await pub.senderStats();
    expect(probe.streams.filter((s) => s.codec_type === 'video'), describeStats([sent])).toEqual([expect.objectContaining({ codec_name: 'h264', width: 640, height: 480 })]);
    expect(probe.streams.filter((s) => s.codec_type === 'audio')).toEqual([]);
    expect(await pub.stop()).toBe(200);
    await waitGone(t.url, 'vonly1', 5000);
  });

  it('a tab closed without DELETE is cleaned up within 10 s and the name can be published again', async () => {
    const pub = await openPublisher();
    const res = await pub.publish(`${t.url}/whip/gone1`, { video: { width: 640, height: 480 }, audio: true });
    expect(res.status, res.body).toBe(201);
    await pub.connected();
    await waitLive(t.url, 'gone1');
    await waitPlaylist(t.url, 'gone1', 1);
    await pub.close();
    const took = await waitGone(t.url, 'gone1', 15_000);
    expect(took).toBeLessThan(10_000);
    expect((await (await fetch(`${t.url}/healthz`)).json()) as { ffmpegProcesses: number }).toMatchObject({ ffmpegProcesses: 0 });
    const next = await openPublisher();
    const again = await next.publish(`${t.url}/whip/gone1`, { video: { width: 640, height: 480 }, audio: false });
    expect(again.status, again.body).toBe(201);
    await next.connected();
    await waitLive(t.url, 'gone1');
    await waitPlaylist(t.url, 'gone1', 1);
    expect(await next.stop()).toBe(200);
  });

  // A silent input cannot wake ffmpeg for its clean stop; a second SIGINT (as the gateway
  // once sent) made ffmpeg 5.1 leave a 0-byte playlist. Now it is killed after a short grace
  // and the gateway closes the playlist itself.
  it('a tab closed without DELETE leaves a playlist that ends with #EXT-X-ENDLIST', async () => {
    const pub = await openPublisher();
    const res = await pub.publish(`${t.url}/whip/gone2`, { video: { width: 640, height: 480 }, audio: true });
    expect(res.status, res.body).toBe(201);
    await pub.connected();
    await waitLive(t.url, 'gone2');
    await waitPlaylist(t.url, 'gone2', 2);
    await pub.close();
    await waitGone(t.url, 'gone2', 15_000);
    const ended = await waitEndlist(t.url, 'gone2', 5000);
    expect(segmentLines(ended).length).toBeGreaterThan(0);
  });
});

function segmentLines(playlist: string): string[] {
  return segmentsOf(playlist).map((x) => x.uri);
}


