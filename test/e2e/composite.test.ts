import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { placements, type Rect } from '../../src/composites/layout.js';
import { KEEP_LOOPBACK_CANDIDATES_JS, launchChromium } from '../helpers/chromium.js';
import { WhepViewer } from '../helpers/whep-viewer.js';
import { ffprobe } from '../helpers/ffprobe.js';
import { fetchSegment, segmentsOf, type HlsSegment } from '../helpers/hls-media.js';
import { playerDir, vlcRecord } from '../helpers/players.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { rtmpServerAvailable, startRtmpServer, type RtmpServer } from '../helpers/rtmp-server.js';

// A call broadcast as one programme (issue 22): Chromium publishers, each a canvas of one
// colour with a tone (canvas.captureStream + a WebAudio oscillator, published over WHIP
// with a default RTCPeerConnection), go into one composite. What a viewer gets is checked
// in the composite's own HLS: the colours at the tiles' centres of a decoded frame, the
// sound's level; then a leave, a join, the speaker layout and a VP8 participant. One
// gateway and one browser for every case.

const run = promisify(execFile);

const SIZE = { width: 640, height: 360 };
type Rgb = [number, number, number];
const COLOURS: Record<string, Rgb> = { red: [230, 30, 30], green: [30, 200, 30], blue: [30, 30, 230], yellow: [230, 220, 30], magenta: [220, 30, 220] };

// The participant's page: plain browser APIs, as a user's page would have.
const PAGE = String.raw`<!doctype html><html><body><canvas id="c" width="320" height="240"></canvas><script>
${KEEP_LOOPBACK_CANDIDATES_JS}
let pc, gain, resource;
window.call = {
  async publish(endpoint, colour, frequency, onlyVideo, noVideo) {
    const canvas = document.getElementById('c');
    const g = canvas.getContext('2d');
    // Redrawn every frame: a canvas that does not change sends no frames.
    setInterval(() => { g.fillStyle = colour; g.fillRect(0, 0, canvas.width, canvas.height); }, 33);
    const video = canvas.captureStream(30).getVideoTracks()[0];
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    osc.frequency.value = frequency;
    gain = ctx.createGain();
    gain.gain.value = 0.3;
    const dest = ctx.createMediaStreamDestination();
    osc.connect(gain).connect(dest);
    osc.start();
    pc = new RTCPeerConnection();
    const vt = noVideo ? undefined : pc.addTransceiver(video, { direction: 'sendonly' });
    pc.addTransceiver(dest.stream.getAudioTracks()[0], { direction: 'sendonly' });
    if (onlyVideo) {
      const caps = RTCRtpSender.getCapabilities('video').codecs;
      vt.setCodecPreferences(caps.filter((c) => c.mimeType === 'video/' + onlyVideo || c.mimeType === 'video/rtx'));
    }
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((r) => { if (pc.iceGatheringState === 'complete') r(); pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); setTimeout(r, 3000); });
    // Candidates kept on loopback (test/helpers/chromium.ts says why).
    const offer = keepLoopbackCandidates(pc.localDescription.sdp);
    const res = await fetch(endpoint, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer });
    if (res.status !== 201) throw new Error('WHIP ' + res.status + ' ' + await res.text());
    resource = new URL(res.headers.get('Location'), endpoint).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  },
  loud(on) { gain.gain.value = on ? 0.3 : 0; },
  async stop() { await fetch(resource, { method: 'DELETE' }); pc.close(); },
};
</script></body></html>`;

interface Participant {
  name: string;
  colour: string;
  page: Page;
}

describe('a call broadcast as one composite (real Chromium publishers)', () => {
  let gw: TestGateway;
  let browser: Browser;
  let dir: string;
  const people = new Map<string, Participant>();
  let recordingId = '';

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'composite-test-'));
    gw = await startTestGateway({ composites: { speakerHoldSeconds: 1, maxParticipants: 4 }, hls: { cleanupAfterSeconds: 600 }, streams: { resumeOutputsSeconds: 60 } });
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const api = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(`${gw.url}${url}`, { method, headers: body ? { 'Content-Type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };

  async function join(name: string, colour: string, frequency: number, onlyVideo?: string, noVideo = false): Promise<void> {
    const page = await browser.newPage();
    await page.route('http://localhost:9/call.html', (route) => route.fulfill({ status: 200, contentType: 'text/html', body: PAGE }));
    await page.goto('http://localhost:9/call.html');
    const rgb = COLOURS[colour];
    await page.evaluate(([e, c, f, v, n]) => (window as unknown as { call: { publish: (...a: unknown[]) => Promise<void> } }).call.publish(e, c, f, v, n), [`${gw.url}/whip/${name}`, `rgb(${rgb.join(',')})`, frequency, onlyVideo, noVideo] as const);
    people.set(name, { name, colour, page });
  }

  async function leave(name: string): Promise<void> {
    const p = people.get(name)!;
    await p.page.evaluate(() => (window as unknown as { call: { stop: () => Promise<void> } }).call.stop());
    await p.page.close();
    people.delete(name);
  }

  const playlistUrl = () => `${gw.url}/hls/call/index.m3u8`;
  async function playlist(): Promise<{ text: string; sequence: number; newest?: HlsSegment }> {
    const text = await (await fetch(playlistUrl())).text();
    return { text, sequence: Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? -1), newest: segmentsOf(text).at(-1) };
  }

  /** The newest segment of the composite's HLS, saved; its first picture's RGB pixels. */
  async function newestFrame(): Promise<{ file: string; pixel: (x: number, y: number) => Rgb }> {
    const { newest } = await playlist();
    if (!newest) throw new Error('no segment listed yet');
    const { bytes, ext } = await fetchSegment(playlistUrl(), newest);
    const file = path.join(dir, `seg-${Date.now()}.${ext}`);
    await writeFile(file, bytes);
    const { stdout } = await run('ffmpeg', ['-v', 'error', '-i', file, '-frames:v', '1', '-vf', `scale=${SIZE.width}:${SIZE.height}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { encoding: 'buffer', maxBuffer: 16 << 20 });
    return { file, pixel: (x, y) => [...stdout.subarray((y * SIZE.width + x) * 3, (y * SIZE.width + x) * 3 + 3)] as Rgb };
  }

  const near = (a: Rgb, b: Rgb) => a.every((v, i) => Math.abs(v - b[i]) < 50);
  const centre = (r: Rect) => [r.x + Math.floor(r.width / 2), r.y + Math.floor(r.height / 2)] as const;

  /** The colours at the tile centres of the newest segment, for `count` participants in `layout`. */
  async function tileColours(count: number, layout: 'grid' | 'speaker' = 'grid'): Promise<(string | undefined)[]> {
    const frame = await newestFrame();
    return placements(layout, SIZE, Array.from({ length: count }, () => undefined)).map(({ tile }) => {
      const rgb = frame.pixel(...centre(tile));
      return Object.entries(COLOURS).find(([, c]) => near(rgb, c))?.[0];
    });
  }

  async function participants(): Promise<string[]> {
    return ((await api('GET', '/api/composites/call')).body.participants as string[] | undefined) ?? [];
  }

  it('composes three publishers into one picture with their sound, as a stream every output can carry', async () => {
    const created = await api('POST', '/api/composites', { name: 'call', streams: ['call-*'], layout: 'grid', ...SIZE, fps: 15 });
    expect(created.status).toBe(201);
    expect(created.body.state).toBe('waiting');
    expect((await api('POST', '/api/composites', { name: 'call', streams: ['x'] })).status).toBe(409);
    await join('call-a', 'red', 440);
    await join('call-b', 'green', 660);
    await join('call-c', 'blue', 880);
    await waitFor('three participants', async () => ((await participants()).length === 3 ? true : undefined), 20_000);
    // The composite is a stream: marked as one, with its participants in join order.
    const stream = await waitFor('the composite stream live', async () => {
      const s = await api('GET', '/api/streams/call');
      return s.status === 200 && s.body.state === 'live' ? s.body : undefined;
    });
    expect((stream.composite as { participants: string[] }).participants).toEqual(['call-a', 'call-b', 'call-c']);
    // A publisher cannot take its name.
    const taken = await fetch(`${gw.url}/whip/call`, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: 'v=0\r\n' });
    expect([400, 409]).toContain(taken.status);

    const colours = await waitFor('red, green and blue in three tiles of the HLS', async () => {
      const c = await tileColours(3).catch(() => undefined);
      return c && new Set(c).size === 3 && c.every((x) => x && ['red', 'green', 'blue'].includes(x)) ? c : undefined;
    }, 30_000, 1000);
    expect(colours).toEqual(['red', 'green', 'blue']);

    // Its sound: the three tones mixed.
    const { file } = await newestFrame();
    const { stderr } = await run('ffmpeg', ['-hide_banner', '-i', file, '-map', '0:a', '-af', 'volumedetect', '-f', 'null', '-']);
    const mean = Number(/mean_volume: (-?[\d.]+) dB/.exec(stderr)?.[1]);
    expect(mean).toBeGreaterThan(-40);

    // The compositor's CPU, in the API and /metrics, as the transcoder's.
    const info = await waitFor('compositor CPU', async () => {
      const c = (await api('GET', '/api/composites/call')).body.compositor as { cpuPercent?: number } | undefined;
      return c?.cpuPercent !== undefined ? c : undefined;
    });
    expect(info.cpuPercent).toBeGreaterThan(0);
    expect(await (await fetch(`${gw.url}/metrics`)).text()).toMatch(/gateway_shared_encoder_cpu_percent\{stream="call",pipeline="composite"\}/);
  }, 120_000);

  it('is watched in real time over WHEP, and goes on playing across a re-layout (a new compositor)', async () => {
    const v = await WhepViewer.open(browser);
    try {
      const res = await v.watch(`${gw.url}/whep/call`);
      expect(res.status, res.body).toBe(201);
      const first = await waitFor('the composite decoded over WHEP, with its sound', async () => {
        const s = await v.stats();
        return (s.framesDecoded ?? 0) > 30 && (s.totalSamplesReceived ?? 0) > 48_000 ? s : undefined;
      }, 20_000, 250);
      expect({ width: first.frameWidth, height: first.frameHeight }).toEqual(SIZE);
      // The new compositor's RTP is another source: the viewer's stream goes on, from its first keyframe.
      await api('PATCH', '/api/composites/call', { layout: 'speaker' });
      const after = await waitFor('pictures of the new compositor decoded', async () => {
        const s = await v.stats();
        return (s.keyFramesDecoded ?? 0) > (first.keyFramesDecoded ?? 0) && (s.framesDecoded ?? 0) > (first.framesDecoded ?? 0) + 60 ? s : undefined;
      }, 20_000, 250);
      expect(after.state).toBe('connected');
      expect({ width: after.frameWidth, height: after.frameHeight }).toEqual(SIZE);
    } finally {
      await api('PATCH', '/api/composites/call', { layout: 'grid' });
      await v.close();
    }
  }, 60_000);

  it('is watched in VLC (/live) and hls.js (/watch), recorded and pushed over RTMP like any stream', async () => {
    // VLC, as a viewer runs it, on /live/call.ts: what it got holds the composite's picture and sound.
    const vlcDir = await playerDir();
    const got = await ffprobe(await vlcRecord(`${gw.url}/live/call.ts`, vlcDir, 4));
    await rm(vlcDir, { recursive: true, force: true });
    expect(got.streams.map((s) => s.codec_name).sort()).toEqual(['aac', 'h264']);
    expect(got.streams.find((s) => s.codec_name === 'h264')).toMatchObject(SIZE);
    // The watch page (hls.js) plays it like any stream.
    const watch = await browser.newPage();
    await watch.goto(`${gw.url}/watch/call`);
    const video = () => watch.evaluate(() => {
      const v = document.querySelector('video') as HTMLVideoElement;
      return { time: v.currentTime, width: v.videoWidth, paused: v.paused };
    });
    const first = await waitFor('the watch page playing', async () => {
      const v = await video();
      return v.width > 0 && v.time > 0 && !v.paused ? v : undefined;
    }, 30_000, 250);
    expect(first.width).toBe(SIZE.width);
    await waitFor('playback going on', async () => ((await video()).time > first.time + 1.5 ? true : undefined), 15_000, 250);
    await watch.close();
    const rec = await api('POST', '/api/streams/call/outputs', { type: 'record', format: 'mp4' });
    expect(rec.status).toBe(201);
    let rtmp: RtmpServer | undefined;
    if (rtmpServerAvailable) {
      rtmp = await startRtmpServer();
      const push = await api('POST', '/api/streams/call/outputs', { type: 'rtmp', url: `rtmp://127.0.0.1:${rtmp.port}/live/call` });
      expect(push.status).toBe(201);
      const probe = await waitFor('the RTMP push', () => ffprobe(`rtmp://127.0.0.1:${rtmp!.port}/live/call`).catch(() => undefined), 20_000, 1000);
      expect(probe.streams.map((s) => s.codec_name).sort()).toEqual(['aac', 'h264']);
      await api('DELETE', `/api/streams/call/outputs/${String(push.body.id)}`);
      await rtmp.stop();
    }
    recordingId = String(rec.body.id);
  }, 60_000);

  it('goes on in the same playlist when one leaves and another joins', async () => {
    const before = await playlist();
    await leave('call-c');
    const t0 = Date.now();
    await waitFor('blue gone from the newest segment', async () => {
      const c = await tileColours(2).catch(() => undefined);
      return c && c[0] === 'red' && c[1] === 'green' ? true : undefined;
    }, 15_000, 500);
    const leftAfter = Date.now() - t0;
    const after = await playlist();
    expect(after.sequence).toBeGreaterThan(before.sequence);
    expect(after.text).not.toMatch(/#EXT-X-ENDLIST/);
    expect(after.text.match(/#EXT-X-DISCONTINUITY/g)?.length ?? 0).toBeLessThanOrEqual(1);
    console.log(`leave: the newest segment without the participant after ${leftAfter} ms`);

    await join('call-d', 'yellow', 550);
    await waitFor('yellow appears', async () => {
      const c = await tileColours(3).catch(() => undefined);
      return c && c.join() === 'red,green,yellow' ? true : undefined;
    }, 20_000, 500);
    expect((await participants()).join()).toBe('call-a,call-b,call-d');
    const later = await playlist();
    expect(later.sequence).toBeGreaterThan(after.sequence);

    // The recording went on through both changes: one file, its ffmpeg never restarted.
    const rec = await api('GET', `/api/streams/call/outputs/${recordingId}`);
    expect(rec.body.state).toBe('running');
    expect(rec.body.restarts).toBe(0);
    const recs = (await (await fetch(`${gw.url}/api/recordings`)).json()) as { stream: string; parts: unknown[] }[];
    expect(recs.filter((r) => r.stream === 'call').map((r) => r.parts.length)).toEqual([1]);
  }, 60_000);

  it('puts the participant who speaks in the main area (speaker layout)', async () => {
    for (const p of people.values()) await p.page.evaluate((on) => (window as unknown as { call: { loud: (o: boolean) => void } }).call.loud(on), p.name === 'call-b');
    const patched = await api('PATCH', '/api/composites/call', { layout: 'speaker' });
    expect(patched.status).toBe(200);
    await waitFor('green in the main area', async () => {
      const frame = await newestFrame().catch(() => undefined);
      if (!frame) return undefined;
      const main = placements('speaker', SIZE, [undefined, undefined, undefined], 0)[0].tile;
      return near(frame.pixel(...centre(main)), COLOURS.green) ? true : undefined;
    }, 20_000, 500);
    expect((await api('GET', '/api/composites/call')).body.speaker).toBe('call-b');
    // Another speaks: after the hold time, the main area is theirs.
    for (const p of people.values()) await p.page.evaluate((on) => (window as unknown as { call: { loud: (o: boolean) => void } }).call.loud(on), p.name === 'call-d');
    await waitFor('yellow in the main area', async () => {
      const frame = await newestFrame().catch(() => undefined);
      if (!frame) return undefined;
      const main = placements('speaker', SIZE, [undefined, undefined, undefined], 0)[0].tile;
      return near(frame.pixel(...centre(main)), COLOURS.yellow) ? true : undefined;
    }, 20_000, 500);
    await api('PATCH', '/api/composites/call', { layout: 'grid' });
  }, 60_000);

  it('is made, switched and deleted from the dashboard', async () => {
    const dash = await browser.newPage({ viewport: { width: 1100, height: 1200 } });
    await dash.goto(`${gw.url}/`);
    await dash.check('article[aria-label="stream call-a"] input[type=checkbox]');
    await dash.check('article[aria-label="stream call-b"] input[type=checkbox]');
    await dash.fill('#call-name', 'duo');
    await dash.selectOption('#call-layout', 'speaker');
    await dash.click('#new-call button');
    const card = dash.locator('article[aria-label="composite duo"]');
    await card.waitFor({ timeout: 10_000 });
    const duo = await api('GET', '/api/composites/duo');
    expect(duo.body).toMatchObject({ streams: ['call-a', 'call-b'], participants: ['call-a', 'call-b'], layout: 'speaker' });
    await card.locator('select').selectOption('grid');
    await waitFor('layout grid', async () => ((await api('GET', '/api/composites/duo')).body.layout === 'grid' ? true : undefined), 5000);
    await card.getByRole('button', { name: 'Delete composite' }).click();
    await waitFor('duo deleted', async () => ((await api('GET', '/api/composites/duo')).status === 404 ? true : undefined), 10_000);
    await dash.close();
  }, 60_000);

  // Firefox publishes VP8 too, but only from a network namespace here (root, and a
  // gateway off loopback: test/helpers/firefox.ts); Chromium told to offer only VP8 sends
  // the same kind of RTP, which the compositor decodes as it is (no transcode first).
  it('composes a VP8 participant with H.264 ones', async () => {
    await join('call-e', 'magenta', 330, 'VP8');
    const e = await waitFor('call-e live', async () => {
      const s = await api('GET', '/api/streams/call-e');
      return s.body.state === 'live' ? s.body : undefined;
    });
    expect((e.tracks as { kind: string; codec: string }[]).find((t) => t.kind === 'video')?.codec).toBe('VP8');
    await waitFor('magenta appears next to the others', async () => {
      const c = await tileColours(4).catch(() => undefined);
      if (process.env.DEBUG_COMPOSITE) console.log(c, await participants());
      return c && c.join() === 'red,green,yellow,magenta' ? true : undefined;
    }, 25_000, 500);
  }, 60_000);

  it('keeps to composites.maxParticipants and maxConcurrent, saying why', async () => {
    await join('call-f', 'red', 770, undefined, true); // a fifth live stream matching call-*, audio only
    await waitFor('call-f live', async () => ((await api('GET', '/api/streams/call-f')).body.state === 'live' ? true : undefined));
    await new Promise((r) => setTimeout(r, 500));
    expect(await participants()).toEqual(['call-a', 'call-b', 'call-d', 'call-e']); // full: it waits
    const tooMany = await api('POST', '/api/composites', { name: 'call2', streams: ['call-*'] });
    expect(tooMany.status).toBe(409);
    expect(String(tooMany.body.message)).toMatch(/5 live streams match .*composites\.maxParticipants \(4\)/);
    expect((await api('POST', '/api/composites', { name: 'call2', streams: ['nobody-*'] })).status).toBe(201);
    const busy = await api('POST', '/api/composites', { name: 'call3', streams: ['nobody-*'] });
    expect(busy.status).toBe(503);
    expect(String(busy.body.message)).toMatch(/composites\.maxConcurrent/);
    expect((await api('POST', '/api/composites', { name: 'bad name', streams: [] })).status).toBe(400);
    expect((await api('PATCH', '/api/composites/nope', { layout: 'grid' })).status).toBe(404);
    expect((await api('DELETE', '/api/composites/call2')).status).toBe(204);
  }, 60_000);

  it('takes in a waiting stream when a place comes free, a participant without video as a tile with its name', async () => {
    await leave('call-e');
    await waitFor('call-f joins', async () => ((await participants()).join() === 'call-a,call-b,call-d,call-f' ? true : undefined), 10_000);
    const tileRgb: Rgb = [0x3a, 0x3f, 0x4b];
    await waitFor('a name tile in the fourth place', async () => {
      const frame = await newestFrame().catch(() => undefined);
      if (!frame) return undefined;
      const grid = placements('grid', SIZE, Array.from({ length: 4 }, () => undefined));
      const t = grid[3].tile;
      if (!near(frame.pixel(t.x + 6, t.y + 6), tileRgb)) return undefined;
      // The name, in white, across the tile's middle.
      let white = 0;
      for (let x = t.x; x < t.x + t.width; x++) for (let y = t.y + Math.floor(t.height / 3); y < t.y + Math.floor((2 * t.height) / 3); y++) if (frame.pixel(x, y).every((v) => v > 200)) white++;
      return white > 20 && near(frame.pixel(...centre(grid[2].tile)), COLOURS.yellow) ? true : undefined;
    }, 25_000, 500);
  }, 60_000);

  it('ends when every participant has left, its outputs waiting; goes on when one returns', async () => {
    for (const name of [...people.keys()]) await leave(name);
    await waitFor('the composite waiting', async () => ((await api('GET', '/api/composites/call')).body.state === 'waiting' ? true : undefined), 15_000);
    await waitFor('its stream ended (outputs finished)', async () => ((await api('GET', '/api/streams/call')).status === 404 ? true : undefined), 15_000);
    const waiting = (await (await fetch(`${gw.url}/api/streams/call/outputs`)).json()) as { id: string; state: string }[];
    expect(waiting.find((o) => o.id === recordingId)?.state).toBe('waiting');
    await join('call-g', 'green', 440);
    await waitFor('the recording running again', async () => ((await api('GET', `/api/streams/call/outputs/${recordingId}`)).body.state === 'running' ? true : undefined), 20_000);
    await waitFor('green fills the picture', async () => {
      const c = await tileColours(1).catch(() => undefined);
      return c?.[0] === 'green' ? true : undefined;
    }, 20_000, 500);
    // The recording went on in a file of its own, which grows.
    await waitFor('the resumed recording written', async () => {
      const all = (await (await fetch(`${gw.url}/api/recordings`)).json()) as { stream: string; parts: { bytes: number }[] }[];
      const mine = all.filter((r) => r.stream === 'call');
      return mine.length === 2 && mine.every((r) => (r.parts[0]?.bytes ?? 0) > 10_000) ? true : undefined;
    }, 20_000, 500);
  }, 60_000);

  it('ends its stream when deleted; its recordings are finished', async () => {
    expect((await api('DELETE', '/api/composites/call')).status).toBe(204);
    expect((await api('GET', '/api/streams/call')).status).toBe(404);
    expect((await api('GET', '/api/composites/call')).status).toBe(404);
    const recs = await waitFor('the recording finished', async () => {
      const all = (await (await fetch(`${gw.url}/api/recordings`)).json()) as { stream: string; state: string; parts: { bytes: number }[] }[];
      const mine = all.filter((r) => r.stream === 'call');
      return mine.every((r) => r.state === 'finished') ? mine : undefined;
    });
    // One through every join and leave; another once a participant came back to the empty
    // composite (its outputs started again, as for a returning publisher).
    expect(recs.map((r) => r.parts.length)).toEqual([1, 1]);
    expect(recs[0].parts[0].bytes).toBeGreaterThan(200_000); // the call so far
    expect(recs[1].parts[0].bytes).toBeGreaterThan(10_000); // a few seconds of the returning participant
  }, 30_000);
});
