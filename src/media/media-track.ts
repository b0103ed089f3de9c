import { H264ParameterSets, containsIdr, spsDimensions } from '../rtp/h264.js';
import { keyframeSizeFor, keyframeStartFor } from '../rtp/keyframes.js';
import type { PictureSize } from '../rtp/vpx.js';
import { ReorderBuffer } from '../rtp/reorder.js';
import type { RtpPacketLite } from '../rtp/packet.js';
import type { ChosenCodec } from '../webrtc/codec-policy.js';
import type { ParameterSetInfo, TrackStats } from './worker-messages.js';
import { RateWindow } from './rate-window.js';

// One track of a publisher, in its media worker: counters (sent to the main thread as
// TrackStats), the H.264 parameter-set cache and the VP8/VP9 keyframes' picture size (sent
// when they change), and the fan-out of (reordered) packets to every running output's feed.
//
// It also keeps the packets since the last keyframe (video) and the last seconds (audio),
// so a new output starts at once from that keyframe instead of waiting for the publisher
// to answer a PLI (a "GOP cache", as RTMP servers have). The gateway asks for keyframes
// at the HLS segment cadence, so the cache stays around one segment long. With a history
// (`historyMs`: mpegtsHttp.probeBacklogSeconds) it keeps whole GOPs back to the newest
// keyframe at least that old, and the audio to go with them: an output that starts with
// a backlog (the /live ffmpeg that ffmpeg's own tools open) gets those seconds at once.

export type PacketSink = (p: RtpPacketLite) => void;

/**
 * How long a gap in the sequence is waited for before it is given up as lost. Video gaps
 * are asked for again (NACK) and the retransmission comes one round trip later, behind
 * whatever fills the publisher's uplink queue: on a 1.5 Mbit/s uplink with 2 % loss, a
 * 50 ms wait gave up on more packets than were lost (late retransmissions), each a broken
 * picture until the next keyframe. 400 ms costs nothing while packets arrive in order,
 * and delays the output by at most that when a packet is lost for good. Audio is not
 * retransmitted: only reordering is waited for.
 */
const VIDEO_REORDER = { maxDelayMs: 400, maxPackets: 1024 };
const AUDIO_REORDER = { maxDelayMs: 50, maxPackets: 64 };
/** Upper bounds of the start-up cache; a longer GOP is simply not cached. */
const GOP_MAX_PACKETS = 4000;
/** Kept in all, with a history: older GOPs go first (about 14 MB of 1200-byte packets). */
const HISTORY_MAX_PACKETS = 12_000;
const AUDIO_CACHE_MS = 5000;
/** Audio kept beyond the history, for the GOP that begins before it. */
const AUDIO_HISTORY_EXTRA_MS = 2500;

interface Cached {
  at: number;
  packet: RtpPacketLite;
}

export class MediaTrack {
  readonly parameterSets = new H264ParameterSets();
  packets = 0;
  bytes = 0;
  keyframes = 0;
  nacked = 0;
  lastPacketAt = 0;
  private readonly sinks = new Set<PacketSink>();
  /** Packets as they arrive (see subscribeArrivals). */
  private readonly arrivalSinks = new Set<PacketSink>();
  private readonly reorder: ReorderBuffer;
  /** Packets as they arrived (retransmissions too). */
  private readonly window = new RateWindow();
  /** Video frames completed (in order, once each). */
  private readonly frames = new RateWindow();
  private lastKeyframeTs: number | undefined;
  private ssrc: number | undefined;
  /** Local tracks: SSRCs of encoders since replaced. */
  private readonly replacedSsrcs = new Set<number>();
  /** Audio: the last audioCacheMs, from `cacheStart` on. */
  private cache: Cached[] = [];
  private cacheStart = 0;
  /** Video: GOPs (packets from a keyframe start on), oldest first; the last one is growing. */
  private gops: Cached[][] = [];
  private gopPackets = 0;
  private cacheKeyframeTs: number | undefined;
  private readonly audioCacheMs: number;
  /** When the first packet was cached (audio). */
  private firstCachedAt: number | undefined;
  /**
   * A local track made by a shared encoder whose first input started at this moment of
   * the publisher's media (Feed's prime): its first packets, which come in a burst, hold
   * the sound from then on.
   */
  coversFrom: number | undefined;
  /** Whether a packet starts a keyframe (by codec; never for audio). */
  private readonly startsKeyframe: (payload: Buffer) => boolean;
  /** VP8/VP9: the picture size in a keyframe's first packet. */
  private readonly keyframeSize: ((payload: Buffer) => PictureSize | undefined) | undefined;
  private size = '';
  /** Called for each keyframe of the publisher's (the keyframe-request policy hears of it). */
  onKeyframe: () => void = () => undefined;

  constructor(
    readonly codec: ChosenCodec,
    /** Called when the H.264 parameter sets (rendered into session SDPs) or a VP8/VP9 picture size changed. */
    private readonly onParameterSets: (sets: ParameterSetInfo) => void = () => undefined,
    /** How much later than the publisher's media its packets arrive (a track the gateway encodes itself). */
    readonly latencyMs = 0,
    /** Fed by the gateway's own encoder on loopback, not by the publisher. */
    readonly local = false,
    /** How far back (ms) whole GOPs are kept for outputs that start with a backlog (0: the latest only). */
    private readonly historyMs = 0,
  ) {
    this.audioCacheMs = historyMs > 0 ? Math.max(AUDIO_CACHE_MS, historyMs + AUDIO_HISTORY_EXTRA_MS) : AUDIO_CACHE_MS;
    this.reorder = new ReorderBuffer((p) => this.deliver(p), codec.kind === 'video' ? VIDEO_REORDER : AUDIO_REORDER);
    this.startsKeyframe = keyframeStartFor(codec.name) ?? (() => false);
    this.keyframeSize = keyframeSizeFor(codec.name);
  }

  get kind(): 'audio' | 'video' {
    return this.codec.kind;
  }

  /** A packet from the peer, in arrival order. */
  receive(p: RtpPacketLite): void {
    const now = performance.now();
    if (this.ssrc !== undefined && p.ssrc !== this.ssrc) {
      // A local track's encoder replaced by a new one (outputs/shared-encoder.ts): the new
      // one's packets from its first on, none of the old one's, which runs until stopped.
      if (this.local && this.replacedSsrcs.has(p.ssrc)) return;
      if (this.local) this.replacedSsrcs.add(this.ssrc);
      // Another source: its sequence numbers start elsewhere.
      this.reorder.flush();
    }
    this.ssrc = p.ssrc;
    this.packets++;
    this.bytes += p.payload.length + 12;
    this.lastPacketAt = now;
    this.window.add(now, p.payload.length + 12);
    for (const sink of this.arrivalSinks) sink(p);
    this.reorder.push(p);
  }

  private deliver(p: RtpPacketLite): void {
    this.remember(p);
    if (p.marker && this.kind === 'video') this.frames.add(performance.now());
    if (this.codec.name === 'H264') {
      if (this.parameterSets.update(p.payload) && this.parameterSets.complete) this.onParameterSets(this.parameterSetInfo());
      if (containsIdr(p.payload) && p.timestamp !== this.lastKeyframeTs) {
        this.lastKeyframeTs = p.timestamp;
        this.keyframes++;
        this.onKeyframe();
      }
    } else if (this.kind === 'video' && this.startsKeyframe(p.payload) && p.timestamp !== this.lastKeyframeTs) {
      this.lastKeyframeTs = p.timestamp;
      this.keyframes++;
      this.onKeyframe();
      const size = this.keyframeSize?.(p.payload);
      if (size && `${size.width}x${size.height}` !== this.size) {
        this.size = `${size.width}x${size.height}`;
        this.onParameterSets(size);
      }
    }
    for (const sink of this.sinks) sink(p);
  }

  private remember(p: RtpPacketLite): void {
    const at = performance.now();
    if (this.kind === 'audio') {
      this.firstCachedAt ??= at;
      this.cache.push({ at, packet: p });
      while (this.cacheStart < this.cache.length && this.cache[this.cacheStart].at < at - this.audioCacheMs) this.cacheStart++;
      // Drop the expired head now and then, not one shift() per packet.
      if (this.cacheStart > 256) {
        this.cache = this.cache.slice(this.cacheStart);
        this.cacheStart = 0;
      }
      return;
    }
    if (this.startsKeyframe(p.payload) && p.timestamp !== this.cacheKeyframeTs) {
      this.gops.push([]);
      this.cacheKeyframeTs = p.timestamp;
    }
    const gop = this.gops.at(-1);
    if (!gop) return;
    if (gop.length >= GOP_MAX_PACKETS) {
      // GOP too long to keep: wait for the next keyframe
      this.gops = [];
      this.gopPackets = 0;
      this.cacheKeyframeTs = undefined;
      return;
    }
    gop.push({ at, packet: p });
    this.gopPackets++;
    // The oldest GOP goes once the next one is old enough for the history (at once without one).
    while (this.gops.length > 1 && this.gops[1][0].at <= at - this.historyMs) this.dropOldestGop();
    while (this.gopPackets > HISTORY_MAX_PACKETS && this.gops.length > 1) this.dropOldestGop();
  }

  private dropOldestGop(): void {
    this.gopPackets -= this.gops.shift()?.length ?? 0;
  }

  /** When the oldest cached packet arrived (performance.now()), if any is cached. */
  get oldestCachedAt(): number | undefined {
    return this.kind === 'audio' ? this.cache[this.cacheStart]?.at : this.gops[0]?.[0]?.at;
  }

  /**
   * Audio: the earliest moment of the publisher's media whose sound the cache holds (its
   * oldest packet's arrival less the track's latency; for a primed shared encoder's track,
   * while its first packet is cached, the moment its input started).
   */
  get heardFrom(): number | undefined {
    const oldest = this.oldestCachedAt;
    if (oldest === undefined) return undefined;
    if (this.coversFrom !== undefined && oldest === this.firstCachedAt) return this.coversFrom;
    return oldest - this.latencyMs;
  }

  /** When the latest cached keyframe arrived (performance.now()), if one is cached. */
  get cachedKeyframeAt(): number | undefined {
    return this.kind === 'video' ? this.gops.at(-1)?.[0]?.at : undefined;
  }

  /** Video: when each cached keyframe arrived, oldest first (the history, then the latest). */
  get keyframesAt(): number[] {
    return this.gops.flatMap((g) => (g[0] ? [g[0].at] : []));
  }

  /**
   * Video: the packets from the latest keyframe on, or from the keyframe that arrived at
   * `from` (one of keyframesAt) on. Audio: the packets that arrived at or after `since`
   * (all of them when undefined).
   */
  cached(since?: number): RtpPacketLite[] {
    if (this.kind === 'video') {
      const first = since === undefined ? this.gops.length - 1 : this.gops.findIndex((g) => g[0] !== undefined && g[0].at >= since);
      return first < 0 ? [] : this.gops.slice(first).flatMap((g) => g.map((c) => c.packet));
    }
    return this.cache.slice(this.cacheStart).filter((c) => since === undefined || c.at >= since).map((c) => c.packet);
  }

  /** Like cached(), with each packet's arrival time (performance.now()). */
  cachedWithArrival(since?: number): { at: number; packet: RtpPacketLite }[] {
    if (this.kind === 'video') {
      const first = since === undefined ? this.gops.length - 1 : this.gops.findIndex((g) => g[0] !== undefined && g[0].at >= since);
      return first < 0 ? [] : this.gops.slice(first).flat();
    }
    return this.cache.slice(this.cacheStart).filter((c) => since === undefined || c.at >= since);
  }

  parameterSetInfo(): ParameterSetInfo {
    const ps = this.parameterSets;
    return { sprop: ps.spropParameterSets, profileLevelId: ps.profileLevelId, ...(ps.sps ? spsDimensions(ps.sps) : {}) };
  }

  subscribe(sink: PacketSink): () => void {
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  /**
   * Every packet as it arrives, before the reorder buffer (retransmissions too): for WebRTC
   * viewers (media/viewer-session.ts), whose own receivers reorder and ask again for what
   * is missing, and must not wait up to 400 ms behind a gap the way ffmpeg's input does.
   */
  subscribeArrivals(sink: PacketSink): () => void {
    this.arrivalSinks.add(sink);
    return () => this.arrivalSinks.delete(sink);
  }

  /** Packets given up as lost (never arrived, even after NACKs). */
  get lost(): number {
    return this.reorder.skipped;
  }

  stats(): TrackStats {
    const now = performance.now();
    return {
      packets: this.packets,
      bytes: this.bytes,
      bitrateKbps: this.window.kbps(now),
      keyframes: this.keyframes,
      ...(this.kind === 'video' ? { fps: this.frames.perSecond(now) } : {}),
      lost: this.lost,
      nacked: this.nacked,
      idleMs: this.lastPacketAt ? now - this.lastPacketAt : Infinity,
    };
  }

  close(): void {
    this.cache = [];
    this.gops = [];
    this.reorder.close();
    this.sinks.clear();
    this.arrivalSinks.clear();
  }
}
