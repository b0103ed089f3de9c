import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeNewestSegment, segmentsOf } from '../helpers/hls-media.js';
import { launchChromium, PublisherPage, startPageServer, type PageServer } from '../helpers/chromium.js';
import { ffprobe } from '../helpers/ffprobe.js';
import { ffplayStreams, playerDir } from '../helpers/players.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

// A publisher that sends no H.264 (Chromium forced to VP8 or VP9 with setCodecPreferences,
// as Firefox without OpenH264 does) still reaches every viewer: its video is transcoded
// to H.264 once per stream, and HLS carries H.264 + AAC at the camera's size (scaled down
// to transcode.maxHeight when taller), and at the new size when the browser changes it (as
// it does when its bandwidth estimate moves). One more than transcode.maxConcurrent gets a
// 503 that says why.

describe('VP8 and VP9 publishers are transcoded to H.264', () => {
  let t: TestGateway;
  let site: PageServer;
  let browser: Browser;
  const pages: PublisherPage[] = [];

  beforeAll(async () => {
    [t, site, browser] = await Promise.all([startTestGateway({ transcode: { maxConcurrent: 2, maxHeight: 360 } }), startPageServer(), launchChromium()]);
  });

  afterAll(async () => {
    for (const p of pages) await p.stop().catch(() => undefined);
    await browser?.close();
    await site?.close();
    await t?.close();
  });

  // transcode.maxHeight is 360 here: the VP8 camera (640x480) is scaled down to 480x360,
  // the VP9 one (640x360) is not; halved, both are below the cap.
  const cases = [
    { codec: 'VP8', camera: [640, 480], hls: [480, 360], halved: [320, 240] },
    { codec: 'VP9', camera: [640, 360], hls: [640, 360], halved: [320, 180] },
  ] as const;
  for (const { codec, camera, hls, halved } of cases) {
    it(`${codec} ${camera.join('x')}: HLS with H.264 Constrained Baseline and AAC at ${hls.join('x')}, following the browser's size`, async () => {
      const name = `${codec.toLowerCase()}cam`;
      const page = await PublisherPage.open(browser, site.url);
      pages.push(page);
      const res = await page.publish(`${t.url}/whip/${name}`, { video: { width: camera[0], height: camera[1] }, audio: true, onlyVideo: [codec] });
      expect(res.offer).not.toMatch(/H264/);
      expect(res.status, res.body).toBe(201);
      expect(res.body).toMatch(new RegExp(`a=rtpmap:\\d+ ${codec}/90000`));
      await page.connected();
      const playlist = `${t.url}/hls/${name}/index.m3u8`;
      await waitFor('playlist with 2 segments', async () => {
        const r = await fetch(playlist);
        return r.ok && segmentsOf(await r.text()).length >= 2 ? true : undefined;
      }, 30_000);
      const probe = await ffprobe(playlist);
      const v = probe.streams.find((s) => s.codec_type === 'video');
      expect(v).toMatchObject({ codec_name: 'h264', width: hls[0], height: hls[1] });
      expect(v?.profile).toMatch(/Baseline/);
      expect(probe.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac' });
      // The API shows what the browser sends.
      expect(await videoTrack(name)).toMatchObject({ codec, transcoded: true, width: camera[0], height: camera[1] });

      // The browser halves its picture: the newest segments follow (the transcoder is started
      // again at the first keyframe of the new size).
      await page.scaleVideoDown(2);
      const latest = await waitFor(`a segment at ${halved.join('x')}`, async () => {
        const s = (await probeNewestSegment(playlist))?.streams.find((x) => x.codec_type === 'video');
        return s?.width === halved[0] ? s : undefined;
      }, 20_000);
      expect(latest).toMatchObject({ codec_name: 'h264', width: halved[0], height: halved[1] });
      expect(await videoTrack(name)).toMatchObject({ width: halved[0], height: halved[1] });

      // The API shows the transcoder at work: its CPU, and that it was started again for the new size.
      const encoder = await waitFor('the transcoder CPU in the API', async () => {
        const e = (await videoTrack(name))?.encoder as { cpuPercent?: number; resizes: number } | undefined;
        return e?.cpuPercent !== undefined && e.cpuPercent > 0 ? e : undefined;
      }, 10_000, 500);
      expect(encoder).toMatchObject({ pipeline: 'h264', state: 'running', restarts: 0 });
      expect(encoder.resizes).toBeGreaterThanOrEqual(1);
      expect(await (await fetch(`${t.url}/metrics`)).text()).toMatch(new RegExp(`gateway_shared_encoder_cpu_percent\\{stream="${name}",pipeline="h264"\\} [1-9]`));

      // Plain RTP to a player: the H.264 too, or the original when asked.
      const dir = await playerDir();
      for (const [videoCodec, shown] of [['h264', /Video: h264 \(Constrained Baseline\)/], ['original', new RegExp(`Video: ${codec.toLowerCase()}`)]] as const) {
        const port = 45200 + (codec === 'VP8' ? 0 : 20) + (videoCodec === 'h264' ? 0 : 10);
        const res = await fetch(`${t.url}/api/streams/${name}/outputs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'rtp', host: '127.0.0.1', videoPort: port, videoCodec }) });
        expect(res.status).toBe(201);
        const { id, urls } = (await res.json()) as { id: string; urls: { sdp: string } };
        const sdpFile = path.join(dir, `${name}-${videoCodec}.sdp`);
        await writeFile(sdpFile, await (await fetch(`${t.url}${urls.sdp}`)).text());
        expect(await ffplayStreams(sdpFile, 1)).toMatch(shown);
        await fetch(`${t.url}/api/streams/${name}/outputs/${id}`, { method: 'DELETE' });
      }
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
