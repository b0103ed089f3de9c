import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, PublisherPage, startPageServer, type PageServer } from '../helpers/chromium.js';
import { ffprobe } from '../helpers/ffprobe.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

// HLS with audio copy: a Chromium tab's Opus kept as sent in fMP4 segments (no AAC
// encode: the cheaper HLS), and the gateway's own watch page (hls.js in Chromium) plays
// both its picture and its sound.

describe('HLS with the publisher\'s Opus kept (audio copy)', () => {
  let t: TestGateway;
  let site: PageServer;
  let browser: Browser;
  let publisher: PublisherPage | undefined;

  beforeAll(async () => {
    [t, site, browser] = await Promise.all([startTestGateway({ hls: { auto: false } }), startPageServer(), launchChromium()]);
  });

  afterAll(async () => {
    await publisher?.stop().catch(() => undefined);
    await browser?.close();
    await site?.close();
    await t?.close();
  });

  const post = async (body: object): Promise<{ status: number; text: string }> => {
    const res = await fetch(`${t.url}/api/streams/opus1/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, text: await res.text() };
  };

  it('refuses audio copy into MPEG-TS segments, which no player would play', async () => {
    publisher = await PublisherPage.open(browser, site.url);
    const res = await publisher.publish(`${t.url}/whip/opus1`, { video: { width: 640, height: 360 }, audio: true });
    expect(res.status, res.body).toBe(201);
    await publisher.connected();
    await waitFor('stream live', async () => ((await (await fetch(`${t.url}/api/streams/opus1`)).json()) as { state: string }).state === 'live' || undefined);
    const refused = await post({ type: 'hls', audio: 'copy', lowLatency: false, segmentFormat: 'mpegts' });
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.text)).toMatchObject({ message: 'audio copy needs segmentFormat fmp4: players do not take Opus in MPEG-TS segments' });
  });

  it('writes H.264 and Opus in fMP4 segments (Low-Latency HLS, the default), played with sound by the watch page', async () => {
    const started = await post({ type: 'hls', audio: 'copy' });
    expect(started.status, started.text).toBe(201);
    const playlist = `${t.url}/hls/opus1/index.m3u8`;
    const text = await waitFor('playlist with 2 fMP4 segments', async () => {
      const res = await fetch(playlist);
      const body = res.ok ? await res.text() : '';
      return (body.match(/\.m4s/g) ?? []).length >= 2 ? body : undefined;
    }, 20_000);
    expect(text).toMatch(/#EXT-X-MAP:URI="[^"]+\.mp4"/);
    expect(text).toContain('#EXT-X-PART:');
    const probe = await ffprobe(playlist);
    expect(probe.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264' });
    expect(probe.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'opus', sample_rate: '48000' });

    const watch = await browser.newPage();
    const pageErrors: string[] = [];
    watch.on('pageerror', (e) => pageErrors.push(e.message));
    await watch.goto(`${t.url}/watch/opus1`);
    const media = () =>
      watch.evaluate(() => {
        const v = document.querySelector('video') as HTMLVideoElement & { webkitAudioDecodedByteCount?: number };
        return { time: v.currentTime, width: v.videoWidth, audioBytes: v.webkitAudioDecodedByteCount ?? -1 };
      });
    const first = await waitFor('video playing', async () => {
      const m = await media();
      return m.width > 0 && m.time > 0 ? m : undefined;
    }, 45_000, 250);
    // Playback goes on, and Chromium keeps decoding the Opus track (muted or not, it is decoded).
    const later = await waitFor('2 s more played, with audio decoded', async () => {
      const m = await media();
      return m.time > first.time + 2 && m.audioBytes > first.audioBytes ? m : undefined;
    }, 20_000, 250);
    expect(later.audioBytes).toBeGreaterThan(0);
    expect(pageErrors).toEqual([]);
  });
});
