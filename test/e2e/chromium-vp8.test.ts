import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, PublisherPage, startPageServer, type PageServer } from '../helpers/chromium.js';
import { ffprobe } from '../helpers/ffprobe.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

// A publisher that sends no H.264 (Chromium forced to VP8 or VP9 with setCodecPreferences,
// as Firefox without OpenH264 does) still reaches every viewer: its video is transcoded
// to H.264 once per stream, and HLS carries H.264 + AAC at the camera's size, and at the
// new size when the browser changes it (as it does when its bandwidth estimate moves). One
// more than transcode.maxConcurrent gets a 503 that says why.

describe('VP8 and VP9 publishers are transcoded to H.264', () => {
  let t: TestGateway;
  let site: PageServer;
  let browser: Browser;
  const pages: PublisherPage[] = [];

  beforeAll(async () => {
    [t, site, browser] = await Promise.all([startTestGateway({ transcode: { maxConcurrent: 2 } }), startPageServer(), launchChromium()]);
  });

  afterAll(async () => {
    for (const p of pages) await p.stop().catch(() => undefined);
    await browser?.close();
    await site?.close();
    await t?.close();
  });

  for (const codec of ['VP8', 'VP9'] as const) {
    it(`${codec}: HLS with H.264 Constrained Baseline and AAC at the camera size`, async () => {
      const name = `${codec.toLowerCase()}cam`;
      const page = await PublisherPage.open(browser, site.url);
      pages.push(page);
      const res = await page.publish(`${t.url}/whip/${name}`, { video: { width: 640, height: 480 }, audio: true, onlyVideo: [codec] });
      expect(res.offer).not.toMatch(/H264/);
      expect(res.status, res.body).toBe(201);
      expect(res.body).toMatch(new RegExp(`a=rtpmap:\\d+ ${codec}/90000`));
      await page.connected();
      const playlist = `${t.url}/hls/${name}/index.m3u8`;
      await waitFor('playlist with 2 segments', async () => {
        const r = await fetch(playlist);
        return r.ok && ((await r.text()).match(/\.ts/g) ?? []).length >= 2 ? true : undefined;
      }, 30_000);
      const probe = await ffprobe(playlist);
      const v = probe.streams.find((s) => s.codec_type === 'video');
      expect(v).toMatchObject({ codec_name: 'h264', width: 640, height: 480 });
      expect(v?.profile).toMatch(/Baseline/);
      expect(probe.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac' });
      expect(await videoTrack(name)).toMatchObject({ codec, transcoded: true, width: 640, height: 480 });

      // The browser halves its picture: the newest segments follow (the transcoder is started
      // again at the first keyframe of the new size), and the API shows the size sent.
      await page.scaleVideoDown(2);
      const latest = await waitFor('a segment at 320x240', async () => {
        const text = await (await fetch(playlist)).text();
        const segment = new URL(text.trim().split('\n').filter((l) => l.endsWith('.ts')).at(-1) ?? '', playlist).href;
        const s = (await ffprobe(segment)).streams.find((x) => x.codec_type === 'video');
        return s?.width === 320 ? s : undefined;
      }, 20_000);
      expect(latest).toMatchObject({ codec_name: 'h264', width: 320, height: 240 });
      expect(await videoTrack(name)).toMatchObject({ width: 320, height: 240 });
    });
  }

  async function videoTrack(name: string): Promise<Record<string, unknown> | undefined> {
    const info = (await (await fetch(`${t.url}/api/streams/${name}`)).json()) as { tracks: Record<string, unknown>[] };
    return info.tracks.find((x) => x.kind === 'video');
  }

  it('refuses one VP8 publisher more than transcode.maxConcurrent with a 503 that says why; H.264 still gets in', async () => {
    const page = await PublisherPage.open(browser, site.url);
    pages.push(page);
    const refused = await page.publish(`${t.url}/whip/vp8third`, { video: { width: 320, height: 240 }, audio: true, onlyVideo: ['VP8'] });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatch(/no transcoding capacity: 2 VP8\/VP9 publisher\(s\) are already being transcoded/);
    const h264 = await page.publish(`${t.url}/whip/h264cam`, { video: { width: 320, height: 240 }, audio: true });
    expect(h264.status, h264.body).toBe(201);
  });
});
