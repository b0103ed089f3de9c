import { Writable } from 'node:stream';
import { TS_PACKET, isH264, packetInfo, patPmtPids, pesPts, pmtStreams, ptsDiff } from '../../mpegts/packets.js';

// One ffmpeg's MPEG-TS output shared by every HTTP viewer of /live/<stream>.ts. A new
// viewer gets the PAT and PMT, then the packets from a video keyframe on, so a player has
// a picture at once. A viewer that cannot keep up (more than `maxBufferedBytes` waiting in
// its socket) is dropped, never buffered without bound.
//
// The fan-out keeps the stream cut at its keyframes ("start points"), as far back as
// `historySeconds` asks. Most viewers start at the latest keyframe (the lowest latency a
// player can have); a viewer may ask for more (`backlogSeconds`): ffmpeg's own tools
// (ffmpeg, ffplay, ffprobe) read 5 s of an MPEG-TS before they show anything (see
// http/live.ts), and get those seconds at once instead of waiting for them.
//
// The ffmpeg may itself start with a backlog (a cold /live whose first viewer asked for
// one: the media worker sends the seconds it kept at once, feed.ts), so the stream comes
// faster than real time for a moment. A viewer that did not ask for a backlog and joins
// then waits until the stream is live again and starts at the latest keyframe.
//
// Every start is clean for a prober: PAT and PMT as they stood just before the keyframe
// (so their continuity counters go on without a break in what follows), the keyframe's
// packet (PCR, SPS/PPS, IDR), and of every other elementary stream (the AAC) nothing before
// the first packet that begins one of its PES packets: no PES cut in the middle, so the
// first audio a player sees begins with a whole ADTS frame and carries a PTS.

export interface Viewer {
  write(chunk: Buffer): boolean;
  readonly writableLength: number;
  end(): void;
  destroy(): void;
}

export interface TsFanoutOptions {
  maxBufferedBytes?: number;
  /** Largest cache kept for new viewers: older start points go first, then all of it. */
  maxCacheBytes?: number;
  /** Keep start points this far behind the newest data (stream time), for viewers that ask for a backlog. */
  historySeconds?: number;
}

export interface ViewerStart {
  /** Start at the latest keyframe at least this much (stream time) behind the newest data, or the oldest kept. */
  backlogSeconds?: number;
}

/** The stream from one keyframe to the next. */
interface StartPoint {
  /** The PAT and PMT last seen before the keyframe. */
  head: Buffer;
  /** The keyframe's PTS (90 kHz), when it has one. */
  pts: number | undefined;
  chunks: Buffer[];
  bytes: number;
}

/** Without video, a start point at an audio PES this often. */
const AUDIO_START_TICKS = 0.5 * 90_000;
/** The first packets of a start are searched this far for each elementary stream's first PES start. */
const CLEAN_START_PACKETS = 4096;
/** Over this much wall-clock time, the stream is caught up with when it has not come faster than real time. */
const CATCH_UP_WINDOW_MS = 300;

export class TsFanout extends Writable {
  private readonly viewers = new Set<Viewer>();
  /** Viewers that joined before the first start point (or PAT/PMT) was seen, with what they asked. */
  private readonly pending = new Map<Viewer, ViewerStart>();
  /** Viewers without a backlog that joined while the stream was catching up. */
  private readonly waitingLive = new Set<Viewer>();
  /** (Date.now(), pts) of the start PID's recent PES starts, over CATCH_UP_WINDOW_MS. */
  private recent: { wall: number; pts: number }[] = [];
  /** The ffmpeg starts with a backlog, and the stream has not come at its own pace since. */
  private replaying = false;
  private rest: Buffer = Buffer.alloc(0);
  private pat: Buffer | undefined;
  private pmt: Buffer | undefined;
  private pmtPids = new Set<number>();
  private videoPid: number | undefined;
  /** PIDs of the elementary streams in the PMT. */
  private esPids = new Set<number>();
  /** The PID start points are cut on: the video's, or without video the first stream's. */
  private startPid: number | undefined;
  private hasVideo: boolean | undefined;
  /** Start points, oldest first; the last one is growing. */
  private points: StartPoint[] = [];
  private cacheBytes = 0;
  /** Newest PTS seen on the start PID. */
  private edgePts: number | undefined;
  private readonly maxBufferedBytes: number;
  private readonly maxCacheBytes: number;
  private readonly historyTicks: number;
  bytesIn = 0;
  dropped = 0;

  constructor(options: TsFanoutOptions = {}) {
    super();
    this.maxBufferedBytes = options.maxBufferedBytes ?? 4 * 1024 * 1024;
    this.maxCacheBytes = options.maxCacheBytes ?? 16 * 1024 * 1024;
    this.historyTicks = Math.max(0, options.historySeconds ?? 0) * 90_000;
  }

  get viewerCount(): number {
    return this.viewers.size;
  }

  /** Seconds of stream kept: from the oldest start point to the newest data. */
  get historySeconds(): number {
    const oldest = this.points[0]?.pts;
    return oldest === undefined || this.edgePts === undefined ? 0 : ptsDiff(this.edgePts, oldest) / 90_000;
  }

  /** The ffmpeg about to write starts with a backlog (see catchingUp). */
  startsWithBacklog(): void {
    this.replaying = true;
  }

  /**
   * True while the ffmpeg sends the backlog it started with: its stream comes much faster
   * than real time, and its latest keyframe is not the live edge yet. Over once the last
   * CATCH_UP_WINDOW_MS brought no more stream than about that much time.
   */
  get catchingUp(): boolean {
    if (!this.replaying) return false;
    const first = this.recent[0];
    const last = this.recent.at(-1);
    if (!first || !last || last.wall - first.wall < CATCH_UP_WINDOW_MS / 2) return true;
    if (ptsDiff(last.pts, first.pts) / 90 > 2 * (last.wall - first.wall) + 100) return true;
    this.replaying = false;
    return false;
  }

  /** Adds a viewer; it gets PAT/PMT and a keyframe onward (see ViewerStart), or waits for one. */
  add(viewer: Viewer, start: ViewerStart = {}): void {
    this.viewers.add(viewer);
    if (!this.pat || !this.pmt || !this.points.length) this.pending.set(viewer, start);
    else if (!start.backlogSeconds && this.catchingUp) this.waitingLive.add(viewer);
    else this.send(viewer, this.startFrom(this.pick(start.backlogSeconds ?? 0)));
  }

  remove(viewer: Viewer): void {
    this.viewers.delete(viewer);
    this.pending.delete(viewer);
    this.waitingLive.delete(viewer);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    this.bytesIn += chunk.length;
    let data = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    const whole = data.length - (data.length % TS_PACKET);
    this.rest = Buffer.from(data.subarray(whole));
    data = data.subarray(0, whole);
    const cuts: { at: number; head: Buffer; pts: number | undefined }[] = [];
    for (let off = 0; off < data.length; off += TS_PACKET) {
      const info = packetInfo(data, off);
      if (!info) continue;
      if (info.pid === 0 && info.payloadStart) {
        this.pat = Buffer.from(data.subarray(off, off + TS_PACKET));
        this.pmtPids = new Set(patPmtPids(this.pat));
      } else if (this.pmtPids.has(info.pid) && info.payloadStart) {
        this.pmt = Buffer.from(data.subarray(off, off + TS_PACKET));
        const streams = pmtStreams(this.pmt);
        this.videoPid = streams.find((s) => isH264(s.streamType))?.pid;
        this.hasVideo = this.videoPid !== undefined;
        this.esPids = new Set(streams.map((s) => s.pid));
        this.startPid = this.videoPid ?? streams[0]?.pid;
      } else if (info.pid === this.startPid && info.payloadStart) {
        const pts = pesPts(data, off);
        const last = cuts.at(-1)?.pts ?? this.points.at(-1)?.pts;
        const cut = this.hasVideo
          ? info.randomAccess
          : !this.points.length || pts === undefined || last === undefined || ptsDiff(pts, last) >= AUDIO_START_TICKS;
        if (cut && this.pat && this.pmt) cuts.push({ at: off, head: Buffer.concat([this.pat, this.pmt]), pts });
        if (pts !== undefined) {
          this.edgePts = pts;
          const wall = Date.now();
          this.recent.push({ wall, pts });
          while (this.recent.length > 2 && this.recent[1].wall < wall - CATCH_UP_WINDOW_MS) this.recent.shift();
        }
      }
    }
    this.cache(data, cuts);
    const catchingUp = this.catchingUp;
    for (const v of this.viewers) {
      const pending = this.pending.get(v);
      if (pending) {
        if (!cuts.length) continue;
        this.pending.delete(v);
        if (!pending.backlogSeconds && catchingUp) this.waitingLive.add(v);
        else this.send(v, this.startFrom(this.pick(pending.backlogSeconds ?? 0)));
      } else if (this.waitingLive.has(v)) {
        if (catchingUp || !this.points.length) continue;
        this.waitingLive.delete(v);
        this.send(v, this.startFrom(this.points.length - 1));
      } else {
        this.send(v, data);
      }
    }
    done();
  }

  /** Adds a chunk to the start points, cut at `cuts`, and drops what is no longer needed. */
  private cache(data: Buffer, cuts: { at: number; head: Buffer; pts: number | undefined }[]): void {
    let from = 0;
    for (const cut of cuts) {
      this.append(data.subarray(from, cut.at));
      this.points.push({ head: cut.head, pts: cut.pts, chunks: [], bytes: 0 });
      from = cut.at;
    }
    this.append(data.subarray(from));
    // The oldest start point goes once the next one is old enough for any backlog asked.
    const age = (p: StartPoint) => (p.pts === undefined || this.edgePts === undefined ? 0 : ptsDiff(this.edgePts, p.pts));
    while (this.points.length > 1 && (age(this.points[1]) >= this.historyTicks || this.cacheBytes > this.maxCacheBytes)) {
      this.cacheBytes -= this.points.shift()!.bytes;
    }
    if (this.cacheBytes > this.maxCacheBytes) {
      // One keyframe interval larger than the cache: nothing to start at until the next keyframe.
      this.points = [];
      this.cacheBytes = 0;
    }
  }

  private append(part: Buffer): void {
    const point = this.points.at(-1);
    if (!point || part.length === 0) return;
    point.chunks.push(Buffer.from(part));
    point.bytes += part.length;
    this.cacheBytes += part.length;
  }

  /** The newest start point at least `backlogSeconds` behind the newest data, else the oldest. */
  private pick(backlogSeconds: number): number {
    const ticks = backlogSeconds * 90_000;
    if (ticks <= 0 || this.edgePts === undefined) return this.points.length - 1;
    for (let i = this.points.length - 1; i > 0; i--) {
      const pts = this.points[i].pts;
      if (pts !== undefined && ptsDiff(this.edgePts, pts) >= ticks) return i;
    }
    return 0;
  }

  /**
   * What a viewer starting at start point `index` is sent: its PAT and PMT, then everything
   * kept from there on, less the packets of each elementary stream before its first PES
   * start (the rest of a PES begun before the keyframe).
   */
  private startFrom(index: number): Buffer {
    const point = this.points[index];
    const chunks = this.points.slice(index).flatMap((p) => p.chunks);
    const parts: Buffer[] = [point.head];
    const waiting = new Set(this.esPids);
    let scanned = 0;
    let c = 0;
    for (; c < chunks.length && waiting.size > 0 && scanned < CLEAN_START_PACKETS; c++) {
      const chunk = chunks[c];
      let keptFrom = 0;
      let off = 0;
      for (; off < chunk.length && waiting.size > 0 && scanned < CLEAN_START_PACKETS; off += TS_PACKET, scanned++) {
        const info = packetInfo(chunk, off);
        if (!info || !waiting.has(info.pid)) continue;
        if (info.payloadStart) {
          waiting.delete(info.pid);
          continue;
        }
        if (off > keptFrom) parts.push(chunk.subarray(keptFrom, off)); // drop this packet
        keptFrom = off + TS_PACKET;
      }
      if (keptFrom < chunk.length) parts.push(chunk.subarray(keptFrom));
    }
    for (; c < chunks.length; c++) parts.push(chunks[c]);
    return Buffer.concat(parts);
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
    this.waitingLive.clear();
  }
}
