import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, PublisherPage, startPageServer, type PageServer } from '../helpers/chromium.js';
import { getStream, waitEndlist, waitGone, waitLive, waitPlaylist } from '../helpers/e2e-api.js';
import { ffprobe } from '../helpers/ffprobe.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

// Headless Chromium (fake camera and microphone) publishes over WHIP from a page on
// another origin; the gateway makes HLS of it. Checked the way a user would: the API,
// the playlist over HTTP and ffprobe on it.

/** Plumbing tests check that the camera size reaches HLS untouched, so Chromium is told to keep it. */
const KEEP_SIZE = { contentHint: 'detail', degradationPreference: 'maintain-resolution' } as const;

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

  it('camera + microphone: live on loopback, H.264 at the camera size and AAC in HLS, DELETE ends it', async () => {
    expect(new URL(site.origin).origin).not.toBe(new URL(t.url).origin);
    const pub = await openPublisher();
    // (A default sender starts lower and climbs: see test/e2e/chromium-quality.test.ts.)
    const res = await pub.publish(`${t.url}/whip/cam1`, { video: { width: 1280, height: 720 }, audio: true, ...KEEP_SIZE });
    expect(res.status, res.body).toBe(201);
    // The page could read Location only because the gateway exposes it to other origins.
    expect(res.location).toMatch(new RegExp(`^${t.url}/whip/cam1/[0-9a-f-]{36}$`));
    expect(res.offer).toMatch(/a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 /);
    await pub.connected();

    const info = await waitLive(t.url, 'cam1');
    expect(info.ice?.local.address).toBe('127.0.0.1');
    expect(info.ice?.remote.address).toBe('127.0.0.1');
    expect(info.tracks.find((x) => x.kind === 'video')?.codec).toBe('H264');
    expect(info.tracks.find((x) => x.kind === 'audio')?.codec).toBe('opus');

    const playlistUrl = `${t.url}/hls/cam1/index.m3u8`;
    await waitPlaylist(t.url, 'cam1', 2);
    const probe = await ffprobe(playlistUrl);
    const v = probe.streams.find((s) => s.codec_type === 'video');
    const a = probe.streams.find((s) => s.codec_type === 'audio');
    expect(v).toMatchObject({ codec_name: 'h264', width: 1280, height: 720 });
    expect(a).toMatchObject({ codec_name: 'aac' });
    // The API reads the same size from the SPS.
    const again = (await getStream(t.url, 'cam1')).info;
    expect(again?.tracks.find((x) => x.kind === 'video')).toMatchObject({ width: 1280, height: 720 });

    // DELETE from the page (cross-origin, preflighted).
    expect(await pub.stop()).toBe(200);
    expect((await getStream(t.url, 'cam1')).status).toBe(404);
    const ended = await waitEndlist(t.url, 'cam1');
    expect(segmentLines(ended).length).toBeGreaterThan(0);
  });

  it('PCMU preferred by the page: the API shows PCMU, HLS still carries AAC', async () => {
    const pub = await openPublisher();
    const res = await pub.publish(`${t.url}/whip/pcmu1`, { video: { width: 640, height: 480 }, audio: true, preferAudio: 'PCMU', ...KEEP_SIZE });
    expect(res.status, res.body).toBe(201);
    expect(res.offer).toMatch(/m=audio \d+ UDP\/TLS\/RTP\/SAVPF 0 /); // PCMU really is first in the offer
    await pub.connected();
    const info = await waitLive(t.url, 'pcmu1');
    expect(info.tracks.find((x) => x.kind === 'audio')?.codec).toBe('PCMU');
    expect(info.tracks.find((x) => x.kind === 'video')?.codec).toBe('H264');
    await waitPlaylist(t.url, 'pcmu1', 2);
    const probe = await ffprobe(`${t.url}/hls/pcmu1/index.m3u8`);
    expect(probe.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac' });
    expect(probe.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 640, height: 480 });
    expect(await pub.stop()).toBe(200);
    await waitGone(t.url, 'pcmu1', 5000);
  });

  it('camera only (no microphone): HLS has video and no audio', async () => {
    const pub = await openPublisher();
    const res = await pub.publish(`${t.url}/whip/vonly1`, { video: { width: 640, height: 480 }, audio: false, ...KEEP_SIZE });
    expect(res.status, res.body).toBe(201);
    expect(res.offer).not.toContain('m=audio');
    await pub.connected();
    const info = await waitLive(t.url, 'vonly1');
    expect(info.tracks.map((x) => x.kind)).toEqual(['video']);
    await waitPlaylist(t.url, 'vonly1', 2);
    const probe = await ffprobe(`${t.url}/hls/vonly1/index.m3u8`);
    expect(probe.streams.filter((s) => s.codec_type === 'video')).toEqual([expect.objectContaining({ codec_name: 'h264', width: 640, height: 480 })]);
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
  return playlist.split('\n').filter((l) => l.trim().endsWith('.ts'));
}
