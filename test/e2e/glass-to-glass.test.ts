import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, type PageServer } from '../helpers/chromium.js';
import { ffmpegViewer } from '../helpers/clock-ffmpeg.js';
import { ClockPublisher, startClockServer } from '../helpers/clock-publisher.js';
import { figures, type ViewerRun } from '../helpers/clock-samples.js';
import { watchVideoPage } from '../helpers/clock-video-probe.js';
import { waitLive, waitPlaylist } from '../helpers/e2e-api.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

// The glass-to-glass tools end to end (bench/glass-to-glass.ts measures with them): a
// Chromium canvas clock published over WHIP is read back from the pictures of an ffmpeg
// player on HLS and of the watch page. Behaviour only: codes are read from most pictures,
// each says a time before it was shown and not absurdly long before. No timing goals: the
// bench measures those.

/** What every run must show, whatever the machine's load. */
function expectReadable(run: ViewerRun): void {
  const f = figures(run);
  expect(run.error, run.error).toBeUndefined();
  expect(run.pictures, f.viewer).toBeGreaterThan(10);
  expect(f.decoded / run.pictures, `${f.viewer}: share of pictures whose code was read`).toBeGreaterThan(0.8);
  expect(f.implausible, `${f.viewer}: codes that were not a possible time`).toBe(0);
  for (const s of run.samples) expect(s.shownAtMs - s.captureMs).toBeGreaterThan(0);
  expect(f.firstPictureMs).toBeGreaterThan(0);
}

describe('glass-to-glass clock', () => {
  let t: TestGateway;
  let site: PageServer;
  let browser: Browser;
  let pub: ClockPublisher;

  beforeAll(async () => {
    [t, site, browser] = await Promise.all([startTestGateway(), startClockServer(), launchChromium()]);
    pub = await ClockPublisher.open(browser, site.url);
    const res = await pub.publish(`${t.url}/whip/clock1`);
    expect(res.status, res.body).toBe(201);
    await pub.connected();
    await waitLive(t.url, 'clock1');
    await waitPlaylist(t.url, 'clock1', 3);
  });

  afterAll(async () => {
    await pub?.stop().catch(() => undefined);
    await browser?.close();
    await site?.close();
    await t?.close();
  });

  it('publishes the clock from a canvas with default sender settings', async () => {
    const s = await pub.stats();
    expect(s.state).toBe('connected');
    expect(s.drawn).toBeGreaterThan(30);
    expect(s.framesEncoded).toBeGreaterThan(10);
    expect(pub.errors).toEqual([]);
  });

  it('an ffmpeg player on HLS reads the clock from its pictures', async () => {
    expectReadable(await ffmpegViewer({ viewer: 'hls', input: `${t.url}/hls/clock1/index.m3u8`, seconds: 4 }));
  });

  it('the watch page (hls.js) reads the clock from the pictures it presents', async () => {
    expectReadable(await watchVideoPage(browser, { viewer: 'watch', url: `${t.url}/watch/clock1`, seconds: 4 }));
  });
});
