import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fmp4Reader, type Fragment, type Init } from '../../src/hls/fmp4.js';
import { renderPlaylist } from '../../src/hls/playlist.js';
import { Segmenter } from '../../src/hls/segmenter.js';
import { LlHlsServer } from '../../src/hls/server.js';

// Low-Latency HLS from ffmpeg's fragmented MP4 (src/hls/): ffmpeg 5.1 writes the fMP4 the
// gateway's hls-ll pipeline asks for (a fragment at the first frame 195 ms in and at
// every keyframe) from a test source, and the reader, segmenter, playlist and server are
// checked on it: parts of 200 ms, segments cut at keyframes, PART-TARGET and
// TARGETDURATION, a forced cut for a publisher whose keyframes stop, a restarted ffmpeg,
// and the server's blocking reload, preload hint and cache headers (RFC 8216bis).

const run = promisify(execFile);

/** ffmpeg's fMP4 for `seconds` of 30 fps video (keyframes where `keyframes` says) and AAC. */
async function fmp4(seconds: number, keyframes: string): Promise<Buffer> {
  const { stdout } = await run('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-nostdin',
    '-f', 'lavfi', '-i', `testsrc2=size=160x90:rate=30:duration=${seconds}`,
    '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-bf', '0', '-sc_threshold', '0', '-g', '1000', '-keyint_min', '1000', '-force_key_frames', keyframes,
    '-c:a', 'aac', '-b:a', '64k',
    '-f', 'mp4', '-movflags', '+empty_moov+default_base_moof+frag_keyframe', '-frag_duration', '195000', '-flush_packets', '1', 'pipe:1',
  ], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024, timeout: 30_000 });
  return stdout;
}

/** Splits `bytes` into chunks of awkward sizes, as a pipe delivers them. */
function chunks(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0, n = 0; i < bytes.length; n++) {
    const size = [7, 1000, 65536, 3, 20000][n % 5];
    out.push(bytes.subarray(i, i + size));
    i += size;
  }
  return out;
}

interface Fed {
  segmenter: Segmenter;
  fragments: Fragment[];
  inits: Init[];
  reader: Fmp4Reader;
}

/** A segmenter fed by a reader; the clock follows the media, as if live. */
function segmenterFor(bytes?: Buffer): Fed {
  let clock = 1_800_000_000_000;
  const segmenter = new Segmenter({ fragmentSeconds: 0.195, segmentTarget: 1, listSize: 6, now: () => clock, epoch: 'test1', firstMsn: 100 });
  const fed: Fed = { segmenter, fragments: [], inits: [], reader: undefined as unknown as Fmp4Reader };
  fed.reader = new Fmp4Reader(
    (init) => {
      fed.inits.push(init);
      segmenter.onInit(init);
    },
    (f) => {
      fed.fragments.push(f);
      const v = f.runs.find((r) => r.trackId === 1);
      if (v) clock = 1_800_000_000_000 + ((v.decodeTime + v.duration) / 15360) * 1000 + 80;
      segmenter.onFragment(f);
    },
  );
  if (bytes) for (const c of chunks(bytes)) fed.reader.write(c);
  return fed;
}

describe('LL-HLS from ffmpeg fMP4', () => {
  let steady: Buffer;
  beforeAll(async () => {
    steady = await fmp4(6, 'expr:eq(mod(n,30),0)');
  });

  it('reads the init section and fragments of 200 ms, a keyframe every 30 frames', () => {
    const { inits, fragments } = segmenterFor(steady);
    expect(inits).toHaveLength(1);
    expect(inits[0].tracks.map((t) => [t.handler, t.codec])).toEqual([['vide', 'avc1'], ['soun', 'mp4a']]);
    const video = inits[0].tracks[0];
    const runs = fragments.map((f) => f.runs.find((r) => r.trackId === video.id)!).filter(Boolean);
    // All but the first (ffmpeg lengthens the first picture by the AAC's priming, 21 ms)
    // and the last (the end of the stream) are 6 frames; every fifth starts at a keyframe.
    for (const r of runs.slice(1, -1)) expect(r.duration / video.timescale).toBeCloseTo(0.2, 3);
    expect(runs.map((r) => r.firstIsSync)).toEqual(runs.map((_r, i) => i % 5 === 0));
  });

  it('cuts 1 s segments of five 200 ms parts at keyframes; PART-TARGET a frame over the fragment length, TARGETDURATION 1', () => {
    const { segmenter } = segmenterFor(steady);
    segmenter.end();
    expect(segmenter.targets).toEqual({ duration: 1, part: 0.229 });
    const segments = [...segmenter.segments];
    expect(segments.length).toBeGreaterThanOrEqual(6);
    for (const s of segments.slice(1, -1)) {
      expect(s.duration).toBeCloseTo(1, 3);
      expect(s.parts.map((p) => p.independent)).toEqual([true, false, false, false, false]);
      expect(s.parts.reduce((a, p) => a + p.duration, 0)).toBeCloseTo(s.duration, 6);
    }
    expect(segmenter.stats).toMatchObject({ overlong: 0, forcedCuts: 0 });
    expect(segments[0].msn).toBe(100);
  });

  it('renders an LL playlist: server control, part info, parts of the last three target durations, a preload hint; a plain one without', () => {
    const { segmenter } = segmenterFor(steady);
    const text = renderPlaylist(segmenter);
    const lines = text.trim().split('\n');
    expect(lines.slice(0, 5)).toEqual(['#EXTM3U', '#EXT-X-VERSION:6', '#EXT-X-TARGETDURATION:1', '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.687', '#EXT-X-PART-INF:PART-TARGET=0.229']);
    expect(lines).toContain(`#EXT-X-MEDIA-SEQUENCE:${segmenter.segments[0].msn}`);
    expect(lines).toContain('#EXT-X-MAP:URI="test1-i0.mp4"');
    expect(lines.at(-1)).toBe(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="test1-p${segmenter.nextPartId}.m4s"`);
    // Every segment has its PROGRAM-DATE-TIME; parts only within 3 target durations of the end.
    expect(lines.filter((l) => l.startsWith('#EXT-X-PROGRAM-DATE-TIME:'))).toHaveLength(segmenter.segments.length);
    const parts = lines.filter((l) => l.startsWith('#EXT-X-PART:'));
    expect(parts.length).toBeGreaterThan(10);
    expect(parts.length).toBeLessThanOrEqual(20);
    expect(parts[0]).toMatch(/^#EXT-X-PART:DURATION=0\.20000,URI="test1-p\d+\.m4s",INDEPENDENT=YES$/);
    const plain = renderPlaylist(segmenter, false);
    expect(plain).not.toMatch(/EXT-X-PART|PRELOAD-HINT|SERVER-CONTROL/);
    expect(plain.trim().split('\n').at(-1)).toMatch(/^test1-s\d+\.m4s$/);
  });

  it('a 2 s GOP sets TARGETDURATION 2; keyframes that stop get a cut before a segment passes it', async () => {
    const gop2 = segmenterFor(await fmp4(7, '0,2,4,6'));
    gop2.segmenter.end();
    expect(gop2.segmenter.targets?.duration).toBe(2);
    expect(gop2.segmenter.segments.slice(1, -1).map((s) => s.duration.toFixed(3))).toEqual(['2.000', '2.000']);
    expect(gop2.segmenter.stats.forcedCuts).toBe(0);

    const stops = segmenterFor(await fmp4(5, '0,1,2'));
    stops.segmenter.end();
    const segments = stops.segmenter.segments;
    expect(stops.segmenter.targets?.duration).toBe(1);
    expect(stops.segmenter.stats.forcedCuts).toBeGreaterThan(0);
    for (const s of segments) expect(Math.round(s.duration)).toBeLessThanOrEqual(1);
    expect(segments.filter((s) => !s.independent).length).toBe(stops.segmenter.stats.forcedCuts);
  });

  it('a restarted ffmpeg (a box left half written, then a new init section) goes on after a discontinuity', () => {
    const fed = segmenterFor(steady.subarray(0, Math.floor(steady.length * 0.6)));
    const before = fed.segmenter.nextMsn;
    fed.reader.reset(); // what the hls kind does when the output restarts
    for (const c of chunks(steady)) fed.reader.write(c);
    fed.segmenter.end();
    expect(fed.inits).toHaveLength(2);
    const after = fed.segmenter.segments.find((s) => s.msn === before);
    expect(after?.discontinuity).toBe(true);
    expect(after?.initId).toBe(1);
    const text = renderPlaylist(fed.segmenter);
    expect(text).toContain('#EXT-X-DISCONTINUITY');
    expect(text).toContain('#EXT-X-MAP:URI="test1-i1.mp4"');
  });

  it('bytes that are not a box are skipped up to the next init section', () => {
    const fed = segmenterFor(Buffer.concat([Buffer.from('not an mp4 box at all, ffmpeg said something odd'), steady]));
    expect(fed.reader.skipped).toBe(48);
    expect(fed.inits).toHaveLength(1);
    expect(fed.segmenter.completeSegments.length).toBeGreaterThanOrEqual(5);
  });
});

describe('LL-HLS server', () => {
  let bytes: Buffer;
  let fed: Fed;
  let pending: Fragment[];
  let server: http.Server;
  let base: string;
  let ll: LlHlsServer;

  beforeAll(async () => {
    bytes = await fmp4(6, 'expr:eq(mod(n,30),0)');
    // All fragments first, then the segmenter is fed up to the middle; the test hands it the rest one by one.
    const all: { init?: Init; fragment?: Fragment }[] = [];
    const reader = new Fmp4Reader((init) => all.push({ init }), (fragment) => all.push({ fragment }));
    reader.write(bytes);
    fed = segmenterFor();
    fed.segmenter.onInit(all[0].init!);
    pending = all.slice(1).map((x) => x.fragment!);
    for (const f of pending.splice(0, 12)) fed.segmenter.onFragment(f);
    ll = new LlHlsServer(fed.segmenter, { lowLatency: true });
    server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      ll.handle(url.pathname.slice(1), url.searchParams, req, res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });

  afterAll(async () => {
    ll?.close();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  });

  const feed = (n = 1) => {
    for (const f of pending.splice(0, n)) fed.segmenter.onFragment(f);
  };

  it('answers a blocking reload for a part that exists at once, and holds one for the next part until it is made', async () => {
    const s = fed.segmenter;
    const open = s.open!;
    const now = await fetch(`${base}index.m3u8?_HLS_msn=${open.msn}&_HLS_part=${open.parts.length - 1}`);
    expect(now.status).toBe(200);
    expect(now.headers.get('cache-control')).toBe('public, max-age=1');
    const next = `index.m3u8?_HLS_msn=${open.msn}&_HLS_part=${open.parts.length}`;
    let answered = false;
    const held = fetch(base + next).then(async (r) => ((answered = true), { status: r.status, text: await r.text() }));
    await new Promise((r) => setTimeout(r, 300));
    expect(answered).toBe(false);
    feed();
    const r = await held;
    expect(r.status).toBe(200);
    expect(r.text).toContain(`-p${s.nextPartId - 1}.m4s`);
    // The plain request is the live edge of the moment: players keep none, a shared cache 1 s at most.
    expect((await fetch(`${base}index.m3u8`)).headers.get('cache-control')).toBe('public, max-age=0, s-maxage=1');
  });

  it('holds the preload-hinted part and sends it whole once made; a part beyond the hint is 404 at once', async () => {
    const hint = /PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/.exec(await (await fetch(`${base}index.m3u8`)).text())![1];
    const beyond = hint.replace(/p(\d+)\.m4s$/, (_m, n: string) => `p${Number(n) + 3}.m4s`);
    expect((await fetch(base + beyond)).status).toBe(404);
    const held = fetch(base + hint);
    setTimeout(() => feed(), 200);
    const r = await held;
    expect(r.status).toBe(200);
    const body = Buffer.from(await r.arrayBuffer());
    expect(Number(r.headers.get('content-length'))).toBe(body.length);
    expect(body.equals(fed.segmenter.part(Number(/p(\d+)/.exec(hint)![1]))!.bytes)).toBe(true);
    expect(r.headers.get('cache-control')).toBe('public, max-age=60');
  });

  it('answers 400 at once for requests too far ahead or malformed', async () => {
    const s = fed.segmenter;
    for (const q of [`_HLS_msn=${s.lastCompleteMsn + 3}`, `_HLS_msn=${s.open!.msn}&_HLS_part=${s.open!.parts.length + 20}`, '_HLS_part=1', '_HLS_msn=-1', '_HLS_msn=1e3']) {
      const r = await fetch(`${base}index.m3u8?${q}`);
      expect(r.status, q).toBe(400);
    }
  });

  it('serves complete segments and parts with their bytes; the open segment grows part by part', async () => {
    const s = fed.segmenter;
    const seg = s.completeSegments.at(-1)!;
    const r = await fetch(`${base}test1-s${seg.msn}.m4s`);
    expect(Buffer.from(await r.arrayBuffer()).equals(Buffer.concat(seg.parts.map((p) => p.bytes)))).toBe(true);
    const open = s.open!;
    const streaming = fetch(`${base}test1-s${open.msn}.m4s`).then(async (x) => Buffer.from(await x.arrayBuffer()));
    await new Promise((r) => setTimeout(r, 100));
    feed(6);
    const got = await streaming;
    expect(open.complete).toBe(true);
    expect(got.equals(Buffer.concat(open.parts.map((p) => p.bytes)))).toBe(true);
    expect((await fetch(`${base}other-s1.m4s`)).status).toBe(404);
  });

  it('after the end: EXT-X-ENDLIST, directives ignored, held requests answered', async () => {
    const s = fed.segmenter;
    const held = fetch(`${base}index.m3u8?_HLS_msn=${s.lastCompleteMsn + 2}`);
    await new Promise((r) => setTimeout(r, 100));
    s.end();
    const r = await held;
    expect(r.status).toBe(200);
    expect((await r.text()).trim().endsWith('#EXT-X-ENDLIST')).toBe(true);
  });
});
