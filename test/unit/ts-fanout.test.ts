import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { packetInfo, TS_PACKET } from '../../src/outputs/kinds/ts-packets.js';
import { TsFanout, type Viewer } from '../../src/outputs/kinds/ts-fanout.js';

// A real MPEG-TS made by ffmpeg at test time, fed in odd-sized chunks to the fan-out that
// serves /live/<stream>.ts, with viewers that read fast, join late, or never read.

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

describe('MPEG-TS fan-out', () => {
  let ts: Buffer;
  beforeAll(() => {
    ts = execFileSync('ffmpeg', [
      '-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30', '-f', 'lavfi', '-i', 'sine=sample_rate=48000',
      '-t', '3', '-c:v', 'libx264', '-g', '30', '-bf', '0', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-f', 'mpegts', '-',
    ]);
  });

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
