import { EventEmitter } from 'node:events';
import { startsKeyframe } from '../rtp/h264.js';
import { RtpForwarder } from '../rtp/forwarder.js';
import type { SdpMedia } from '../sdp/render.js';
import type { Track } from '../streams/track.js';

// The RTP an output receives: one forwarder per track, to ffmpeg on loopback or to a
// remote player. open() starts video at a keyframe (replaying the cached one at once when
// there is one, else asking the publisher with PLIs until it comes) and audio from the
// same moment, so both start together.
//
// Keyframes can also be asked for at a cadence (HLS segments are cut at keyframes), on a
// grid that starts at the first keyframe that went out: at first + n * interval. That is
// where ffmpeg's HLS muxer cuts (at the first keyframe at or after n * hls_time), so the
// first segment closes one interval after the first keyframe, and every segment lasts
// exactly one interval. Keyframes the publisher sends by itself (a resolution change)
// do not move the grid: one that came early would not make ffmpeg cut.

export interface FeedTarget {
  track: Track;
  host: string;
  port: number;
}

export interface FeedEvents {
  /** The first video keyframe went out (or, without video, audio started). */
  flowing: [];
}

const PLI_UNTIL_KEYFRAME_MS = 300;

/**
 * Asks for a keyframe (now, unless `now` is false) and again every PLI_UNTIL_KEYFRAME_MS,
 * since a PLI can be lost or rate-limited, until `done()`: the one loop every output uses
 * while it waits for a keyframe. Clear the timer to stop it early.
 */
export function askForKeyframe(request: () => void, done: () => boolean, now = true): NodeJS.Timeout {
  if (now) request();
  const timer = setInterval(() => (done() ? clearInterval(timer) : request()), PLI_UNTIL_KEYFRAME_MS);
  return timer;
}
/** A requested keyframe that has not come after this long is asked for again (lost PLI). */
const KEYFRAME_RETRY_MS = 500;
/** H.264 NAL type 9 with primary_pic_type 7 (any): marks an access unit, carries no picture. */
const ACCESS_UNIT_DELIMITER = Buffer.from([0x09, 0xf0]);

interface Attached extends FeedTarget {
  forwarder: RtpForwarder;
  unsubscribe: () => void;
}

export class Feed extends EventEmitter<FeedEvents> {
  private readonly attached: Attached[];
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;
  private keyframeIntervalMs = 0;
  private cadence: NodeJS.Timeout | undefined;
  /** The keyframe grid: when the first keyframe went out, the next slot, and whether it was asked for. */
  private grid: { start: number; next: number; asked: boolean } | undefined;

  constructor(
    targets: FeedTarget[],
    private readonly requestKeyframe: () => void,
  ) {
    super();
    this.attached = targets.map((t) => this.attach(t));
  }

  get ports(): number[] {
    return this.attached.map((a) => a.port);
  }

  /** Starts sending. `keyframeIntervalSeconds`: also ask for a keyframe at this cadence. */
  open(keyframeIntervalSeconds?: number): void {
    const video = this.attached.find((a) => a.track.kind === 'video');
    if (!video) return this.startAudio(performance.now());
    this.keyframeIntervalMs = (keyframeIntervalSeconds ?? 0) * 1000;
    const since = video.track.cachedKeyframeAt;
    video.forwarder.open();
    for (const p of video.track.cached()) video.forwarder.send(p);
    if (video.forwarder.started) {
      this.startAudio(since);
      if (since !== undefined) this.keyframeSent(since);
    } else {
      this.timers.push(askForKeyframe(this.requestKeyframe, () => video.forwarder.started || this.closed));
    }
  }

  /** A keyframe went out at `at` (performance.now()). */
  private keyframeSent(at = performance.now()): void {
    const interval = this.keyframeIntervalMs;
    if (!interval || this.closed) return;
    if (!this.grid) this.grid = { start: at, next: 1, asked: false };
    else if (this.grid.asked) {
      // The answer to our request: on to the next slot (skipping any this one came too late for).
      const g = this.grid;
      g.next = Math.max(g.next + 1, Math.floor((at - g.start) / interval) + 1);
      g.asked = false;
    } else return; // not asked for: the grid stays
    clearTimeout(this.cadence);
    const grid = this.grid;
    const ask = (): void => {
      if (this.closed) return;
      grid.asked = true;
      this.requestKeyframe();
      this.cadence = setTimeout(ask, KEYFRAME_RETRY_MS); // until it comes (a PLI can be lost)
    };
    this.cadence = setTimeout(ask, Math.max(0, grid.start + grid.next * interval - performance.now()));
  }

  private attach(target: FeedTarget): Attached {
    const { track } = target;
    const forwarder = new RtpForwarder({
      host: target.host,
      port: target.port,
      payloadType: track.codec.payloadType,
      clockRate: track.codec.clockRate,
      isKeyframeStart: track.kind === 'video' ? startsKeyframe : undefined,
    });
    const unsubscribe = track.subscribe((p) => {
      const wasStarted = forwarder.started;
      forwarder.send(p);
      if (track.kind !== 'video' || !forwarder.started) return;
      if (!wasStarted) this.startAudio(undefined);
      if (startsKeyframe(p.payload)) this.keyframeSent();
    });
    return { ...target, forwarder, unsubscribe };
  }

  /** Audio joins from the moment the first forwarded keyframe arrived (`since`). */
  private startAudio(since: number | undefined): void {
    for (const a of this.attached) {
      if (a.track.kind !== 'audio') continue;
      a.forwarder.open();
      if (since !== undefined) for (const p of a.track.cached(since)) a.forwarder.send(p);
    }
    this.emit('flowing');
  }

  /**
   * Sends one harmless packet so that an ffmpeg waiting on a silent input reads once more:
   * a repeat of the last audio frame, or, without audio, an H.264 access unit delimiter.
   */
  nudge(): void {
    const audio = this.attached.find((a) => a.track.kind === 'audio' && a.forwarder.started);
    if (audio) return audio.forwarder.sendNext();
    this.attached.find((a) => a.track.kind === 'video')?.forwarder.sendNext(ACCESS_UNIT_DELIMITER);
  }

  /** Milliseconds since the last packet went out (Infinity before the first). */
  idleMs(): number {
    const last = Math.max(...this.attached.map((a) => a.forwarder.lastSentAt), 0);
    return last === 0 ? Infinity : performance.now() - last;
  }

  get bytes(): number {
    return this.attached.reduce((s, a) => s + a.forwarder.bytes, 0);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.cadence);
    for (const t of this.timers) clearInterval(t);
    for (const a of this.attached) {
      a.unsubscribe();
      a.forwarder.close();
    }
  }
}

/** The SDP m-section that describes what a feed sends for one track. */
export function sdpMedia(track: Track, port: number): SdpMedia {
  const c = track.codec;
  if (c.name === 'H264') {
    const ps = track.parameterSets;
    // SPS/PPS seen in the stream; else those the publisher's offer declared (a sender that
    // does not repeat them in-band); else none, and ffmpeg reads them in-band.
    const sprop = ps.spropParameterSets ?? c.fmtp['sprop-parameter-sets'];
    return {
      codec: 'h264',
      port,
      payloadType: c.payloadType,
      clockRate: c.clockRate,
      fmtp: {
        'packetization-mode': 1,
        'profile-level-id': ps.profileLevelId ?? c.fmtp['profile-level-id'] ?? '42e01f',
        ...(sprop ? { 'sprop-parameter-sets': sprop } : {}),
      },
    };
  }
  if (c.name === 'opus') {
    return { codec: 'opus', port, payloadType: c.payloadType, clockRate: 48000, channels: 2, fmtp: { 'sprop-stereo': c.channels === 2 ? 1 : 0 } };
  }
  return { codec: c.name.toLowerCase(), port, payloadType: c.payloadType, clockRate: c.clockRate, channels: 1 };
}
