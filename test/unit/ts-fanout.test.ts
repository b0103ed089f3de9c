import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packetInfo, patPmtPids, pesPayload, pesPts, pmtStreams, TS_PACKET } from '../../src/mpegts/packets.js';
import { TsFanout, type Viewer } from '../../src/outputs/kinds/ts-fanout.js';

// A real MPEG-TS made by ffmpeg at test time (muxed as pipelines/mpegts-http.json muxes it),
// fed in odd-sized chunks to the fan-out that serves /live/<stream>.ts, with viewers that
// read fast, join late, ask for a backlog, or never read.

class FakeViewer implements Viewer {
  chunks: Buffer[] = [];
  writableLength = 0;
  ended = false;
  destroyed = false;
  constructor(private readonly stalled = false) {}
  write(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    if (this.stalled) this.writableLength += chunk.length;
    return !this.stalled;
  }
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function feed(f: TsFanout, data: Buffer, from: number, to: number): Promise<void> {
  return new Promise((resolve) => {
    let off = from;
    const next = () => {
      if (off >= to) return resolve();
      const size = Math.min(1000 + (off % 777), to - off); // odd sizes: packets cut across writes
      f.write(data.subarray(off, off + size), next);
      off += size;
    };
    next();
  });
}

/** The mpegts-http pipeline's muxer options. */
const MUX = ['-f', 'mpegts', '-mpegts_flags', '+resend_headers', '-muxdelay', '0', '-muxpreload', '0', '-flush_packets', '1'];

function makeTs(seconds: number, av: ('video' | 'audio')[] = ['video', 'audio']): Buffer {
  const args = ['-hide_banner', '-loglevel', 'error'];
  if (av.includes('video')) args.push('-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30');
  if (av.includes('audio')) args.push('-f', 'lavfi', '-i', 'sine=sample_rate=48000');
  args.push('-t', String(seconds));
  if (av.includes('video')) args.push('-c:v', 'libx264', '-g', '30', '-bf', '0', '-pix_fmt', 'yuv420p');
  if (av.includes('audio')) args.push('-c:a', 'aac', '-ac', '2');
  return execFileSync('ffmpeg', [...args, ...MUX, '-'], { maxBuffer: 64 * 1024 * 1024 });
}

interface Parsed {
  pids: number[];
  /** Per PID: the first packet's index, whether it begins a PES/section, its continuity counter. */
  first: Map<number, { index: number; payloadStart: boolean }>;
  /** Continuity counters of PAT and PMT packets, in order. */
  cc: Map<number, number[]>;
  videoPid: number;
  audioPid: number;
  /** PES starts per PID: PTS and the first payload bytes. */
  pes: Map<number, { pts: number | undefined; payload: Buffer | undefined }[]>;
}

function parse(data: Buffer): Parsed {
  const pids: number[] = [];
  const first = new Map<number, { index: number; payloadStart: boolean }>();
  const cc = new Map<number, number[]>();
  const pes = new Map<number, { pts: number | undefined; payload: Buffer | undefined }[]>();
  let pmtPid = -1;
  let videoPid = -1;
  let audioPid = -1;
  for (let off = 0, i = 0; off + TS_PACKET <= data.length; off += TS_PACKET, i++) {
    const info = packetInfo(data, off)!;
    pids.push(info.pid);
    if (!first.has(info.pid)) first.set(info.pid, { index: i, payloadStart: info.payloadStart });
    if (info.pid === 0 && info.payloadStart) pmtPid = patPmtPids(data, off)[0];
    if (info.pid === pmtPid && info.payloadStart) {
      const streams = pmtStreams(data, off);
      videoPid = streams.find((s) => s.streamType === 0x1b)?.pid ?? -1;
      audioPid = streams.find((s) => s.streamType === 0x0f)?.pid ?? -1;
    }
    if (info.pid === 0 || info.pid === pmtPid) cc.set(info.pid, [...(cc.get(info.pid) ?? []), data[off + 3] & 0x0f]);
    if ((info.pid === videoPid || info.pid === audioPid) && info.payloadStart) {
      pes.set(info.pid, [...(pes.get(info.pid) ?? []), { pts: pesPts(data, off), payload: pesPayload(data, off) }]);
    }
  }
  return { pids, first, cc, videoPid, audioPid, pes };
}

describe('MPEG-TS fan-out', () => {
  let ts: Buffer;
  let long: Buffer;
  let dir: string;
  beforeAll(() => {
    ts = makeTs(3);
    long = makeTs(9);
    dir = mkdtempSync(path.join(os.tmpdir(), 'ts-fanout-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('starts a late viewer with PAT, PMT and then a keyframe', async () => {
    const f = new TsFanout();
    await feed(f, ts, 0, Math.floor(ts.length / 2));
    const late = new FakeViewer();
    f.add(late);
    await feed(f, ts, Math.floor(ts.length / 2), ts.length);
    const data = late.data;
    expect(data.length % TS_PACKET).toBe(0);
    expect(packetInfo(data, 0)?.pid).toBe(0); // PAT first
    const third = packetInfo(data, 2 * TS_PACKET)!;
    expect(third.randomAccess && third.payloadStart).toBe(true); // the cached keyframe
    expect(data.length).toBeGreaterThan(ts.length / 4);
  });

  it('starts a late viewer clean for a prober: PAT/PMT without a counter break, no PES cut in the middle, audio in whole ADTS frames next to the keyframe', async () => {
    for (const at of [0.31, 0.5, 0.77]) {
      const f = new TsFanout();
      await feed(f, ts, 0, Math.floor((ts.length * at) / TS_PACKET) * TS_PACKET + 100);
      const late = new FakeViewer();
      f.add(late);
      await feed(f, ts, Math.floor((ts.length * at) / TS_PACKET) * TS_PACKET + 100, ts.length);
      const p = parse(late.data);
      expect(p.pids.slice(0, 2)).toEqual([0, p.pids[1]]); // PAT, PMT
      expect(p.pids[2]).toBe(p.videoPid);
      // The PAT and PMT given first are the ones before the keyframe: their counters go on.
      for (const pid of [0, p.pids[1]]) {
        const counters = p.cc.get(pid)!;
        expect(counters.length).toBeGreaterThan(1);
        expect(counters[1]).toBe((counters[0] + 1) % 16);
      }
      // Every elementary stream begins with the start of a PES.
      expect(p.first.get(p.videoPid)).toMatchObject({ payloadStart: true });
      expect(p.first.get(p.audioPid)).toMatchObject({ payloadStart: true });
      const audio = p.pes.get(p.audioPid)!;
      const video = p.pes.get(p.videoPid)!;
      for (const a of audio.slice(0, 5)) {
        expect(a.pts).toBeDefined();
        expect(a.payload![0]).toBe(0xff); // ADTS syncword
        expect(a.payload![1] & 0xf0).toBe(0xf0);
      }
      expect(Math.abs(audio[0].pts! - video[0].pts!)).toBeLessThan(0.1 * 90_000);
    }
  });

  it('gives a viewer that asks for a backlog the stream from a keyframe that far back, and others the latest keyframe', async () => {
    const f = new TsFanout({ historySeconds: 5.5 });
    const cut = Math.floor((long.length * 0.9) / TS_PACKET) * TS_PACKET;
    await feed(f, long, 0, cut);
    const edge = parse(long.subarray(0, cut)).pes;
    const lastVideoPts = edge.get(parse(long.subarray(0, cut)).videoPid)!.at(-1)!.pts!;
    const backlog = new FakeViewer();
    const latest = new FakeViewer();
    f.add(backlog, { backlogSeconds: 5.5 });
    f.add(latest);
    expect(f.historySeconds).toBeGreaterThanOrEqual(5.5);
    expect(f.historySeconds).toBeLessThan(5.5 + 1.1); // one keyframe interval more at most
    const burst = parse(backlog.data);
    const videoPts = burst.pes.get(burst.videoPid)!.map((x) => x.pts!);
    const audioPts = burst.pes.get(burst.audioPid)!.map((x) => x.pts!);
    expect((lastVideoPts - videoPts[0]) / 90_000).toBeGreaterThanOrEqual(5.5);
    expect((lastVideoPts - videoPts[0]) / 90_000).toBeLessThan(6.6);
    expect((audioPts.at(-1)! - audioPts[0]) / 90_000).toBeGreaterThan(5.2); // ffmpeg's 5 s probe is answered from the burst
    expect(burst.first.get(burst.audioPid)).toMatchObject({ payloadStart: true });
    const now = parse(latest.data);
    expect((lastVideoPts - now.pes.get(now.videoPid)![0].pts!) / 90_000).toBeLessThan(1.05); // the latest keyframe (1 s GOP)
    // What ffprobe reads from the burst alone: both streams' parameters.
    const file = path.join(dir, 'backlog.ts');
    writeFileSync(file, backlog.data);
    const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_streams', file]).toString()) as { streams: Record<string, unknown>[] };
    expect(probe.streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac', sample_rate: '48000', channels: 2 });
    expect(probe.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 320, height: 240 });
  });

  it('an ffmpeg that starts with a backlog: the viewer that asked for it gets all of it, one that joins during the burst starts at the live keyframe after it', async () => {
    const f = new TsFanout({ historySeconds: 5.5 });
    f.startsWithBacklog();
    const backlog = new FakeViewer();
    f.add(backlog, { backlogSeconds: 5.5 }); // the viewer whose request started the ffmpeg
    // The backlog: 6.5 s of stream at once.
    const burstEnd = Math.floor((long.length * 6.5) / 9 / TS_PACKET) * TS_PACKET;
    await feed(f, long, 0, Math.floor(burstEnd / 2));
    expect(f.catchingUp).toBe(true);
    const joiner = new FakeViewer();
    f.add(joiner);
    await feed(f, long, Math.floor(burstEnd / 2), burstEnd);
    expect(joiner.data.length).toBe(0); // not the old keyframes of the burst
    // Then live: the rest at the stream's own pace, 100 ms at a time.
    const step = Math.floor(long.length / 90 / TS_PACKET) * TS_PACKET;
    for (let off = burstEnd; off < long.length; off += step) {
      await feed(f, long, off, Math.min(off + step, long.length));
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(f.catchingUp).toBe(false);
    const all = parse(backlog.data);
    const videoPts = (x: Parsed) => x.pes.get(x.videoPid)!.map((p) => p.pts!);
    expect(videoPts(all)[0]).toBe(videoPts(parse(long))[0]); // the backlog from its start
    const joined = parse(joiner.data);
    expect(packetInfo(joiner.data, 2 * TS_PACKET)?.randomAccess).toBe(true);
    // It started at a keyframe at most about a second before the burst ended (the live edge then), not seconds before.
    expect((videoPts(joined)[0] - videoPts(parse(long.subarray(0, burstEnd))).at(-1)!) / 90_000).toBeGreaterThan(-1.1);
  });

  it('keeps no more history than asked, and no more than its byte cap', async () => {
    const none = new TsFanout();
    await feed(none, long, 0, long.length);
    expect(none.historySeconds).toBeLessThan(1.05);
    const capped = new TsFanout({ historySeconds: 30, maxCacheBytes: 200_000 });
    await feed(capped, long, 0, long.length);
    const v = new FakeViewer();
    capped.add(v, { backlogSeconds: 30 });
    expect(v.data.length).toBeLessThanOrEqual(200_000 + 2 * TS_PACKET);
    expect(v.data.length).toBeGreaterThan(0);
    expect(packetInfo(v.data, 2 * TS_PACKET)?.randomAccess).toBe(true);
  });

  it('starts a viewer of a stream without video at the start of an audio PES', async () => {
    const audioOnly = makeTs(3, ['audio']);
    const f = new TsFanout();
    await feed(f, audioOnly, 0, Math.floor(audioOnly.length / 2));
    const v = new FakeViewer();
    f.add(v);
    await feed(f, audioOnly, Math.floor(audioOnly.length / 2), audioOnly.length);
    const p = parse(v.data);
    expect(p.pids[0]).toBe(0);
    expect(p.first.get(p.audioPid)).toMatchObject({ index: 2, payloadStart: true });
    expect(p.pes.get(p.audioPid)![0].payload![0]).toBe(0xff);
  });

  it('drops a viewer that stops reading, and keeps serving the others', async () => {
    const f = new TsFanout({ maxBufferedBytes: 64 * 1024 });
    const stalled = new FakeViewer(true);
    const good = new FakeViewer();
    f.add(stalled);
    f.add(good);
    await feed(f, ts, 0, ts.length);
    expect(stalled.destroyed).toBe(true);
    expect(stalled.writableLength).toBeLessThan(64 * 1024 + 4096);
    expect(f.dropped).toBe(1);
    expect(f.viewerCount).toBe(1);
    expect(good.data.length).toBeGreaterThan(ts.length * 0.9);
  });

  it('ends every viewer when the stream is over', () => {
    const f = new TsFanout();
    const v = new FakeViewer();
    f.add(v);
    f.closeViewers();
    expect(v.ended).toBe(true);
    expect(f.viewerCount).toBe(0);
  });
});
