import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, PublisherPage, startPageServer, type PageServer } from '../helpers/chromium.js';
import { waitLive } from '../helpers/e2e-api.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

// The gateway's own watch page (/watch/:name, hls.js from /vendor/hls.min.js) plays what a
// Chromium tab publishes, in Chromium: the viewer opens the page first and playback starts
// by itself once the stream is live. It plays Low-Latency HLS as such: blocking playlist
// reloads and parts, not whole segments polled; the delay it shows comes from the
// playlist's EXT-X-PROGRAM-DATE-TIME.

const ARTIFACTS = path.resolve('test-artifacts/e2e');

describe('watch page plays a Chromium publisher with hls.js', () => {
  let t: TestGateway;
  let site: PageServer;
  let browser: Browser;
  let publisher: PublisherPage | undefined;

  beforeAll(async () => {
    [t, site, browser] = await Promise.all([startTestGateway(), startPageServer(), launchChromium()]);
  });

  afterAll(async () => {
    await publisher?.stop().catch(() => undefined);
    await browser?.close();
    await site?.close();
    await t?.close();
  });

  it('shows moving video at the camera size', async () => {
    const watch = await browser.newPage({ viewport: { width: 900, height: 800 } });
    const pageErrors: string[] = [];
    watch.on('pageerror', (e) => pageErrors.push(e.message));
    const requests: string[] = [];
    watch.on('request', (r) => requests.push(r.url()));
    const hlsJs = watch.waitForResponse((r) => r.url().endsWith('/vendor/hls.min.js'));
    await watch.goto(`${t.url}/watch/watch1`);
    expect((await hlsJs).status()).toBe(200);
    expect(await watch.evaluate(() => typeof (window as unknown as { Hls?: unknown }).Hls)).toBe('function');
    await expect.poll(() => watch.textContent('#status')).toContain('waiting for the publisher');

    publisher = await PublisherPage.open(browser, site.url);
    const res = await publisher.publish(`${t.url}/whip/watch1`, { video: { width: 640, height: 480 }, audio: true });
    expect(res.status, res.body).toBe(201);
    await publisher.connected();
    await waitLive(t.url, 'watch1');

    const video = () =>
      watch.evaluate(() => {
        const v = document.querySelector('video') as HTMLVideoElement;
        return { time: v.currentTime, width: v.videoWidth, height: v.videoHeight, paused: v.paused, muted: v.muted };
      });
    const first = await waitFor('video element playing', async () => {
      const v = await video();
      return v.width > 0 && v.time > 0 && !v.paused ? v : undefined;
    }, 45_000, 250);
    expect(first).toMatchObject({ width: 640, height: 480, muted: true });
    // Playback goes on: currentTime keeps advancing.
    await waitFor('currentTime advancing by 2 s', async () => ((await video()).time > first.time + 2 ? true : undefined), 20_000, 250);
    expect(await watch.textContent('#status')).toBe('playing');
    expect(pageErrors).toEqual([]);
    // Low-Latency HLS: hls.js asked for playlists with blocking-reload directives and fetched
    // parts; the page shows the delay read from the picture's program date-time.
    const hls = requests.filter((u) => u.includes('/hls/watch1/'));
    expect(hls.filter((u) => /index\.m3u8\?.*_HLS_msn=\d+/.test(u)).length, hls.slice(-10).join('\n')).toBeGreaterThan(3);
    expect(hls.filter((u) => /-p\d+\.m4s/.test(u)).length).toBeGreaterThan(3);
    await expect.poll(() => watch.textContent('#delay'), { timeout: 5000 }).toMatch(/^(\d+ ms|\d+\.\d s)$/);

    await mkdir(ARTIFACTS, { recursive: true });
    const shot = path.join(ARTIFACTS, 'watch-page.png');
    await watch.screenshot({ path: shot });
    // The picture is not a black frame: the fake camera's pattern has bright pixels.
    const brightness = await watch.evaluate(() => {
      const v = document.querySelector('video') as HTMLVideoElement;
      const c = document.createElement('canvas');
      c.width = 64;
      c.height = 48;
      const ctx = c.getContext('2d')!;
      ctx.drawImage(v, 0, 0, c.width, c.height);
      const px = ctx.getImageData(0, 0, c.width, c.height).data;
      let sum = 0;
      for (let i = 0; i < px.length; i += 4) sum += px[i] + px[i + 1] + px[i + 2];
      return sum / (px.length / 4) / 3;
    });
    expect(brightness).toBeGreaterThan(20);
  });
});
