import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packetInfo, pesPts, TS_PACKET } from '../../src/mpegts/packets.js';
import { ffprobe } from '../helpers/ffprobe.js';
import { freeUdpPort } from '../helpers/free-port.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { ffmpegFirstFrame, ffplayStreams, playerDir, vlcRecord } from '../helpers/players.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// Outputs that players open: MPEG-TS over HTTP (VLC), RTP + SDP (ffplay) and MPEG-TS over
// RTP (VLC), recordings (ffprobe) and snapshots (decoded as JPEG).

interface OutputJson {
  id: string;
  type: string;
  state: string;
  bytesOut: number;
  urls?: Record<string, string>;
  error?: string;
}

describe('outputs for players', () => {
  let t: TestGateway;
  let pub: Publisher;
  let dir: string;
  const api = (p: string) => `${t.url}/api/streams/pl${p}`;
  const post = async (body: object) => {
    const res = await fetch(api('/outputs'), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, json: res.status === 201 ? ((await res.json()) as OutputJson) : undefined, text: res.status === 201 ? '' : await res.text() };
  };
  const output = async (id: string) => (await (await fetch(api(`/outputs/${id}`))).json()) as OutputJson;

  beforeAll(async () => {
    t = await startTestGateway({ mpegtsHttp: { idleStopSeconds: 1 } });
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/pl`, width: 640, height: 360, gop: 30 });
    await pub.connected();
    dir = await playerDir();
    await waitFor('HLS running', async () => ((await output('hls')).state === 'running' ? true : undefined));
  });

  afterAll(async () => {
    await pub?.stop();
    await t?.close();
  });

  it('serves MPEG-TS over HTTP that VLC plays, started on demand and stopped after the last viewer', async () => {
    const file = await vlcRecord(`${t.url}/live/pl.ts`, dir, 4);
    const probe = await ffprobe(file);
    expect(probe.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 640, height: 360 });
    expect(probe.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac' });
    await waitFor('mpegts-http stopped after its viewer left', async () => ((await fetch(api('/outputs/mpegts-http'))).status === 404 ? true : undefined), 10_000);
  });

  it('starts each HTTP viewer with PAT/PMT and a keyframe, shared by one ffmpeg', async () => {
    const [a, b] = await Promise.all([readTs(`${t.url}/live/pl.ts`, 200_000), readTs(`${t.url}/live/pl.ts`, 200_000)]);
    for (const buf of [a, b]) {
      expect(buf[0]).toBe(0x47);
      expect(((buf[1] & 0x1f) << 8) | buf[2]).toBe(0); // first packet: PAT
    }
    const probe = await ffprobe(await save(a, 'a.ts'));
    expect(probe.streams.map((s) => s.codec_name).sort()).toEqual(['aac', 'h264']);
    const outputs = (await (await fetch(api('/outputs'))).json()) as OutputJson[];
    expect(outputs.filter((o) => o.type === 'mpegts-http')).toHaveLength(1);
  });

  it("starts ffmpeg's tools on /live at once, with their default probing: both streams' parameters, a picture well before their 5 s probe window", async () => {
    // ffmpeg, ffplay and ffprobe read 5 s of an MPEG-TS before they show anything (their
    // scan_all_pmts); from the latest keyframe of a running /live that took them 3.4-5.1 s.
    // With a viewer holding the output for a while, they now get those seconds at once.
    const live = `${t.url}/live/pl.ts`;
    const release = holdOpen(live);
    try {
      await new Promise((r) => setTimeout(r, 6500));
      const first = await ffmpegFirstFrame(live);
      expect(first.ms).toBeLessThan(2000);
      expect(first.log).toMatch(/Stream #0:\d.*Video: h264/);
      const started = performance.now();
      const probe = await ffprobe(live);
      expect(performance.now() - started).toBeLessThan(2000);
      expect(probe.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 640, height: 360 });
      expect(probe.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac', sample_rate: '48000', channels: 2 });
      // A player on libavformat's own defaults (scan_all_pmts off, as apps on the library
      // have) settles every stream from what it gets first, without waiting out the window.
      const library = await ffmpegFirstFrame(live, ['-scan_all_pmts', '0']);
      expect(library.log).toContain('All info found');
      expect(library.log).not.toContain('max_analyze_duration');
      expect(library.log).toMatch(/Audio: aac \(LC\).*48000 Hz, stereo/);
      expect(library.ms).toBeLessThan(2000);
    } finally {
      release();
    }
  });

  it("starts ffmpeg's tools at once on a /live that nobody watches yet: its ffmpeg starts with the seconds the media worker kept, other players at the live keyframe", async () => {
    const live = `${t.url}/live/pl.ts`;
    const stopped = async () => ((await fetch(api('/outputs/mpegts-http'))).status === 404 ? true : undefined);
    // Cold: the request starts /live's ffmpeg. Before, it began at the cached keyframe and
    // ffmpeg's tools waited out their 5 s probe window (5.3 s to the first picture).
    await waitFor('/live stopped', stopped, 10_000);
    const first = await ffmpegFirstFrame(live);
    expect(first.ms).toBeLessThan(2000);
    expect(first.log).toMatch(/Stream #0:\d.*Video: h264/);
    expect(first.log).toMatch(/Stream #0:\d.*Audio: aac/);
    expect(first.log).not.toMatch(/corrupt|error while decoding|missed \d+ packets/i);
    // Another player starting /live cold (any User-Agent but libavformat's) gets the live
    // keyframe: the first second it reads spans about a keyframe interval, not a backlog.
    await waitFor('/live stopped', stopped, 10_000);
    const data = await readTs(live, 600_000, 1500);
    const span = videoPtsSpan(data);
    expect(span).toBeGreaterThan(0);
    expect(span).toBeLessThan(2.5);
  });

  it('forwards plain RTP with an SDP that ffplay plays', async () => {
    const [videoPort, audioPort] = [await freeUdpPort(), await freeUdpPort()];
    const { status, json } = await post({ type: 'rtp', host: '127.0.0.1', videoPort, audioPort });
    expect(status).toBe(201);
    const res = await fetch(`${t.url}${json!.urls!.sdp}`);
    expect(res.headers.get('content-type')).toContain('application/sdp');
    const sdp = await res.text();
    expect(sdp).toMatch(new RegExp(`m=video ${videoPort} RTP/AVP 102`));
    expect(sdp).toMatch(/sprop-parameter-sets=/);
    const printed = await ffplayStreams(await save(sdp, 'rtp.sdp'), 2);
    expect(printed).toMatch(/Video: h264 \(Constrained Baseline\).* 640x360/);
    expect(printed).toMatch(/Audio: opus, 48000 Hz/);
    expect((await fetch(`${t.url}/api/streams/pl/outputs/${json!.id}`, { method: 'DELETE' })).status).toBe(204);
  });

  it('sends MPEG-TS over RTP that VLC plays (rtp://@host:port) and ffplay opens from its SDP', async () => {
    const port = await freeUdpPort();
    const { status, json } = await post({ type: 'rtp-mpegts', host: '127.0.0.1', port });
    expect(status).toBe(201);
    expect(json!.urls!.vlc).toBe(`rtp://@127.0.0.1:${port}`);
    const file = await vlcRecord(json!.urls!.vlc, dir, 4);
    const probe = await ffprobe(file);
    expect(probe.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 640, height: 360 });
    const sdp = await (await fetch(`${t.url}${json!.urls!.sdp}`)).text();
    expect(sdp).toContain('a=rtpmap:33 MP2T/90000');
    expect(await ffplayStreams(await save(sdp, 'ts.sdp'), 2)).toMatch(/Video: h264/);
    await fetch(`${t.url}/api/streams/pl/outputs/${json!.id}`, { method: 'DELETE' });
  });

  it('records to fragmented MP4 with the Opus audio kept, duration matching the time recorded', async () => {
    const { status, json } = await post({ type: 'record' });
    expect(status).toBe(201);
    await waitFor('recording running', async () => ((await output(json!.id)).state === 'running' ? true : undefined));
    const started = Date.now();
    await new Promise((r) => setTimeout(r, 4000));
    const stop = await fetch(api(`/outputs/${json!.id}`), { method: 'DELETE' });
    const recorded = (Date.now() - started) / 1000;
    expect(stop.status).toBe(204);
    const list = await waitFor('recording listed with a duration', async () => {
      const all = (await (await fetch(`${t.url}/api/recordings`)).json()) as { url: string; durationSeconds: number | null; bytes: number; stream: string }[];
      return all.find((r) => r.url === json!.urls!.file && r.durationSeconds !== null);
    });
    expect(list.stream).toBe('pl');
    expect(Math.abs(list.durationSeconds! - recorded)).toBeLessThan(1.5);
    const probe = await ffprobe(`${t.url}${list.url}`);
    expect(probe.streams.map((s) => s.codec_name).sort()).toEqual(['h264', 'opus']);
    expect(Math.abs(Number(probe.format.duration) - recorded)).toBeLessThan(1.5);
    const partial = await fetch(`${t.url}${list.url}`, { headers: { Range: 'bytes=100-199' } });
    expect(partial.status).toBe(206);
    expect((await partial.arrayBuffer()).byteLength).toBe(100);
    expect((await fetch(`${t.url}/api/recordings/pl/${path.basename(list.url)}`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(`${t.url}${list.url}`)).status).toBe(404);
  });

  it('records to MKV on request', async () => {
    const { json } = await post({ type: 'record', format: 'mkv', maxDurationSeconds: 2 });
    expect(json!.urls!.file).toMatch(/\.mkv$/);
    await waitFor('recording stopped by max duration', async () => ((await fetch(api(`/outputs/${json!.id}`))).status === 404 ? true : undefined), 15_000);
    const probe = await ffprobe(`${t.url}${json!.urls!.file}`);
    expect(probe.format.format_name).toContain('matroska');
    expect(Number(probe.format.duration)).toBeGreaterThan(1);
  });

  it('returns a JPEG snapshot of the current picture', async () => {
    const res = await fetch(api('/snapshot.jpg'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    const probe = await ffprobe(await save(Buffer.from(await res.arrayBuffer()), 'snap.jpg'));
    expect(probe.streams[0]).toMatchObject({ codec_name: 'mjpeg', width: 640, height: 360 });
  });

  async function save(data: string | Buffer, name: string): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, data);
    return file;
  }
});

/** Keeps an HTTP stream open (reading and dropping it) until the returned function is called. */
function holdOpen(url: string): () => void {
  const u = new URL(url);
  const socket = net.connect(Number(u.port), u.hostname, () => socket.write(`GET ${u.pathname} HTTP/1.0\r\nHost: x\r\n\r\n`));
  socket.on('data', () => undefined);
  socket.on('error', () => undefined);
  return () => socket.destroy();
}

/** Seconds between the first and the last video PTS in a TS (the stream's first video PID). */
function videoPtsSpan(ts: Buffer): number {
  const pts: number[] = [];
  for (let off = 0; off + TS_PACKET <= ts.length; off += TS_PACKET) {
    const info = packetInfo(ts, off);
    if (!info?.payloadStart || info.pid !== 0x100) continue; // ffmpeg's first stream (the video)
    const p = pesPts(ts, off);
    if (p !== undefined) pts.push(p);
  }
  return pts.length < 2 ? 0 : (Math.max(...pts) - Math.min(...pts)) / 90_000;
}

/** Reads the first `bytes` of an HTTP stream with a raw socket (or what came within `withinMs`), then closes it. */
function readTs(url: string, bytes: number, withinMs?: number): Promise<Buffer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let headerDone = false;
    const socket = net.connect(Number(u.port), u.hostname, () => socket.write(`GET ${u.pathname} HTTP/1.0\r\nHost: x\r\n\r\n`));
    const timer = setTimeout(() => (socket.destroy(), reject(new Error('no TS data'))), 15_000);
    const cut = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).subarray(0, Math.floor(Math.min(bytes, size) / TS_PACKET) * TS_PACKET));
    };
    socket.on('data', (d: Buffer) => {
      if (withinMs !== undefined && size === 0 && !headerDone) setTimeout(cut, withinMs);
      chunks.push(d);
      size += d.length;
      let all = Buffer.concat(chunks);
      if (!headerDone) {
        const end = all.indexOf('\r\n\r\n');
        if (end < 0) return;
        headerDone = true;
        all = all.subarray(end + 4);
        chunks.length = 0;
        chunks.push(all);
        size = all.length;
      }
      if (size >= bytes) {
        clearTimeout(timer);
        socket.destroy();
        resolve(Buffer.concat(chunks).subarray(0, bytes));
      }
    });
    socket.on('error', reject);
  });
}
