import { Writable } from 'node:stream';
import { TS_PACKET, isH264, packetInfo, patPmtPids, pmtStreams } from './ts-packets.js';

// One ffmpeg's MPEG-TS output shared by every HTTP viewer of /live/<stream>.ts. A new
// viewer gets the latest PAT and PMT, then the packets since the last video keyframe, so
// VLC starts with a picture at once. A viewer that cannot keep up (more than
// `maxBufferedBytes` waiting in its socket) is dropped, never buffered without bound.

export interface Viewer {
  write(chunk: Buffer): boolean;
  readonly writableLength: number;
  end(): void;
  destroy(): void;
}

export interface TsFanoutOptions {
  maxBufferedBytes?: number;
  /** Largest keyframe cache kept for new viewers. */
  maxCacheBytes?: number;
}

export class TsFanout extends Writable {
  private readonly viewers = new Set<Viewer>();
  /** Viewers that joined before the first keyframe (or PAT/PMT) was seen. */
  private readonly pending = new Set<Viewer>();
  private rest: Buffer = Buffer.alloc(0);
  private pat: Buffer | undefined;
  private pmt: Buffer | undefined;
  private pmtPids = new Set<number>();
  private videoPid: number | undefined;
  private hasVideo: boolean | undefined;
  private gop: Buffer[] = [];
  private gopBytes = 0;
  private gopValid = false;
  private readonly maxBufferedBytes: number;
  private readonly maxCacheBytes: number;
  bytesIn = 0;
  dropped = 0;

  constructor(options: TsFanoutOptions = {}) {
    super();
    this.maxBufferedBytes = options.maxBufferedBytes ?? 4 * 1024 * 1024;
    this.maxCacheBytes = options.maxCacheBytes ?? 16 * 1024 * 1024;
  }

  get viewerCount(): number {
    return this.viewers.size;
  }

  /** Adds a viewer; it gets PAT/PMT and the cached keyframe onward, or waits for one. */
  add(viewer: Viewer): void {
    this.viewers.add(viewer);
    if (this.pat && this.pmt && (this.gopValid || this.hasVideo === false)) {
      this.send(viewer, Buffer.concat([this.pat, this.pmt, ...this.gop]));
    } else {
      this.pending.add(viewer);
    }
  }

  remove(viewer: Viewer): void {
    this.viewers.delete(viewer);
    this.pending.delete(viewer);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    this.bytesIn += chunk.length;
    let data = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    const whole = data.length - (data.length % TS_PACKET);
    this.rest = Buffer.from(data.subarray(whole));
    data = data.subarray(0, whole);
    let keyframeAt = -1;
    for (let off = 0; off < data.length; off += TS_PACKET) {
      const info = packetInfo(data, off);
      if (!info) continue;
      const packet = data.subarray(off, off + TS_PACKET);
      if (info.pid === 0 && info.payloadStart) {
        this.pat = Buffer.from(packet);
        this.pmtPids = new Set(patPmtPids(packet));
      } else if (this.pmtPids.has(info.pid) && info.payloadStart) {
        this.pmt = Buffer.from(packet);
        const streams = pmtStreams(packet);
        this.videoPid = streams.find((s) => isH264(s.streamType))?.pid;
        this.hasVideo = this.videoPid !== undefined;
      } else if (info.pid === this.videoPid && info.payloadStart && info.randomAccess) {
        keyframeAt = off;
      }
    }
    if (keyframeAt >= 0) {
      this.cache(data.subarray(0, keyframeAt));
      this.gop = [];
      this.gopBytes = 0;
      this.gopValid = true;
      this.cache(data.subarray(keyframeAt));
    } else {
      this.cache(data);
    }
    for (const v of this.viewers) {
      if (this.pending.has(v)) {
        if (!this.pat || !this.pmt) continue;
        if (keyframeAt >= 0) this.send(v, Buffer.concat([this.pat, this.pmt, data.subarray(keyframeAt)]));
        else if (this.hasVideo === false) this.send(v, Buffer.concat([this.pat, this.pmt, data]));
        else continue;
        this.pending.delete(v);
      } else {
        this.send(v, data);
      }
    }
    done();
  }

  private cache(part: Buffer): void {
    if (!this.gopValid || part.length === 0) return;
    if (this.gopBytes + part.length > this.maxCacheBytes) {
      this.gop = [];
      this.gopBytes = 0;
      this.gopValid = false;
      return;
    }
    this.gop.push(Buffer.from(part));
    this.gopBytes += part.length;
  }

  private send(v: Viewer, data: Buffer): void {
    if (v.writableLength > this.maxBufferedBytes) {
      this.dropped++;
      this.remove(v);
      v.destroy();
      return;
    }
    v.write(data);
  }

  /** Ends every viewer's response (stream over). */
  closeViewers(): void {
    for (const v of this.viewers) v.end();
    this.viewers.clear();
    this.pending.clear();
  }
}
