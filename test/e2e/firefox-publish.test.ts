import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeNewestSegment } from '../helpers/hls-media.js';
import { getStream } from '../helpers/e2e-api.js';
import { ffprobe } from '../helpers/ffprobe.js';
import { firefoxMissing, publishWithFirefox, type FirefoxPublisher } from '../helpers/firefox.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { createShapedLink, netnsSupport, type ShapedLink } from '../helpers/shaped-link.js';

// A real Firefox without OpenH264 (Debian's firefox-esr as shipped: it offers VP8, VP9
// and AV1) publishes from its page over WHIP with default settings, as a user's would.
// Every output gets H.264 + AAC at the camera's size: HLS (once Firefox's bandwidth
// estimate has let it send its full camera size; it starts at 320x240), /live MPEG-TS,
// and a recording. Firefox runs in a network namespace of the test's own (firefox.ts says why).
// A Firefox whose host candidates are mDNS names (a page without a camera grant) connects too.

const unsupported = (await netnsSupport()) ?? firefoxMissing();

describe.skipIf(unsupported)(`Firefox publishes VP8 ${unsupported ? `(skipped: ${unsupported})` : ''}`, () => {
  let link: ShapedLink;
  let t: TestGateway;
  let ff: FirefoxPublisher;
  const name = 'foxcam';
  const api = (p: string) => `${t.url}/api/streams/${name}${p}`;

  beforeAll(async () => {
    link = await createShapedLink({ rateKbit: 100_000, queueMs: 50 });
    t = await startTestGateway({ http: { host: link.gatewayAddress }, ice: { addresses: [link.gatewayAddress] }, auth: { mode: 'none' } });
    ff = await publishWithFirefox({ ns: link.ns, host: link.gatewayAddress, whipUrl: `${t.url}/whip/${name}` });
  }, 60_000);

  afterAll(async () => {
    await ff?.close();
    await t?.close();
    await link?.destroy();
  });

  it('offers no H.264, gets VP8 accepted, connects over the namespace link', async () => {
    const offer = await ff.next('offer', 45_000);
    expect(offer.sdp).toMatch(/VP8\/90000/);
    expect(offer.sdp).not.toMatch(/H264/);
    const answer = await ff.next('answer');
    expect(answer.status, answer.sdp).toBe(201);
    expect(answer.sdp).toMatch(/a=rtpmap:\d+ VP8\/90000/);
    await ff.next('connected', 20_000, (r) => r.state === 'connected');
    const { info } = await getStream(t.url, name);
    expect(info?.ice?.remote.address).toBe(link.publisherAddress);
    expect(info?.tracks.find((x) => x.kind === 'video')).toMatchObject({ codec: 'VP8', transcoded: true });
  }, 90_000);

  it('HLS carries H.264 + AAC at the camera size once Firefox sends it', async () => {
    // Firefox's own ramp: 2-24 s here, longer on a busy machine.
    const full = await ff.next('stats', 60_000, (r) => r.frameWidth === 640);
    const first = ff.reports.find((r) => r.step === 'stats' && r.frameWidth);
    console.log(`Firefox: first ${first?.frameWidth}x${first?.frameHeight}, 640x480 after ${(((full.at ?? 0) - (first?.at ?? 0)) / 1000).toFixed(1)} s`);
    const playlist = `${t.url}/hls/${name}/index.m3u8`;
    const video = await waitFor('an HLS segment at 640x480', async () => {
      const probe = await probeNewestSegment(playlist);
      const v = probe?.streams.find((s) => s.codec_type === 'video');
      return v?.width === 640 && probe!.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'aac') ? v : undefined;
    }, 30_000, 500);
    expect(video).toMatchObject({ codec_name: 'h264', width: 640, height: 480 });
    expect(video.profile).toMatch(/Baseline/);
    expect((await getStream(t.url, name)).info?.tracks.find((x) => x.kind === 'video')).toMatchObject({ width: 640, height: 480 });
  }, 120_000);

  it('/live MPEG-TS and recordings: H.264 + AAC / Opus at the camera size, or the VP8 as sent in MKV and WebM (videoCodec original)', async () => {
    // ffprobe (User-Agent Lavf/) gets /live from a keyframe mpegtsHttp.probeBacklogSeconds
    // back, so that it decodes at once: maybe from before Firefox reached its full size.
    const live = await ffprobe(`${t.url}/live/${name}.ts`);
    const liveVideo = live.streams.find((s) => s.codec_type === 'video');
    expect(liveVideo).toMatchObject({ codec_name: 'h264' });
    expect(liveVideo!.width! * 3).toBe(liveVideo!.height! * 4); // one of Firefox's 4:3 camera sizes
    expect(live.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac' });

    const record = async (body: object) => {
      const res = await fetch(api('/outputs'), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'record', ...body }) });
      return { status: res.status, text: await res.text() };
    };
    for (const [body, why] of [
      [{ videoCodec: 'original' }, /videoCodec: original keeps the publisher's VP8, which needs format mkv or webm/],
      [{ format: 'webm' }, /format: webm holds only VP8\/VP9 and Opus.*sends VP8 \+ opus \(add videoCodec: original\)/],
    ] as const) {
      const refused = await record(body);
      expect(refused.status).toBe(400);
      expect(refused.text).toMatch(why);
    }
    const started = await Promise.all([record({ format: 'mkv' }), record({ format: 'mkv', videoCodec: 'original' }), record({ format: 'webm', videoCodec: 'original' })]);
    const outputs = started.map((r) => {
      expect(r.status, r.text).toBe(201);
      return JSON.parse(r.text) as { id: string; urls: { file: string } };
    });
    await new Promise((r) => setTimeout(r, 4000));
    for (const o of outputs) expect((await fetch(api(`/outputs/${o.id}`), { method: 'DELETE' })).status).toBe(204);
    const [h264, mkv, webm] = await Promise.all(outputs.map((o) => ffprobe(`${t.url}${o.urls.file}`)));
    expect(h264.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 640, height: 480 });
    for (const original of [mkv, webm]) expect(original.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'vp8', width: 640, height: 480 });
    // The EBML header's DocType says which it is (ffprobe names both "matroska,webm").
    const head = await fetch(`${t.url}${outputs[2].urls.file}`, { headers: { Range: 'bytes=0-63' } });
    expect(head.headers.get('content-type')).toBe('video/webm');
    expect(Buffer.from(await head.arrayBuffer()).toString('latin1')).toContain('webm');
    for (const rec of [h264, mkv, webm]) {
      expect(rec.streams.find((s) => s.codec_type === 'audio')?.codec_name).toBe('opus');
      expect(Number(rec.format.duration)).toBeGreaterThan(2.5);
    }
  }, 60_000);

  it('connects a Firefox that sends only mDNS host candidates, by its checks (peer-reflexive)', async () => {
    const hidden = await publishWithFirefox({ ns: link.ns, host: link.gatewayAddress, whipUrl: `${t.url}/whip/foxmdns`, mdnsCandidates: true });
    try {
      const offer = await hidden.next('offer', 45_000);
      expect(offer.sdp).toMatch(/a=candidate:\S+ 1 UDP \d+ [0-9a-f-]+\.local \d+ typ host/i);
      expect(offer.sdp).not.toMatch(new RegExp(`a=candidate:.* ${link.publisherAddress.replace(/\./g, '\\.')} `));
      expect((await hidden.next('answer')).status).toBe(201);
      await hidden.next('connected', 20_000, (r) => r.state === 'connected');
      const live = await waitFor('video from the mDNS publisher', async () => {
        const { info } = await getStream(t.url, 'foxmdns');
        return (info?.tracks.find((x) => x.kind === 'video')?.packets ?? 0) > 50 ? info : undefined;
      });
      expect(live.ice?.remote.address).toBe(link.publisherAddress);
    } finally {
      await hidden.close();
    }
  }, 90_000);
});
