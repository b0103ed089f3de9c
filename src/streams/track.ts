import { H264ParameterSets, containsIdr, spsDimensions, startsKeyframe } from '../rtp/h264.js';
import { ReorderBuffer } from '../rtp/reorder.js';
import type { RtpPacketLite } from '../rtp/packet.js';
import type { ChosenCodec } from '../webrtc/codec-policy.js';

// Per-track state of a live stream: the negotiated codec, counters for the API, the H.264
// parameter-set cache, and the fan-out of (reordered) packets to every running output.
//
// It also keeps the packets since the last keyframe (video) and the last seconds (audio),
// so a new output starts at once from that keyframe instead of waiting for the publisher
// to answer a PLI (a "GOP cache", as RTMP servers have). The gateway asks for keyframes
// at the HLS segment cadence, so the cache stays around one segment long.

export interface TrackInfo {
  kind: 'audio' | 'video';
  codec: string;
  payloadType: number;
  clockRate: number;
  channels: number;
  packets: number;
  bytes: number;
  bitrateKbps: number;
  keyframes: number;
  width?: number;
  height?: number;
  /** Video: frames per second arriving at the gateway (RTP marker bits, last 2 s). */
  fps?: number;
  lost: number;
  /** Packets the gateway asked the publisher to send again (NACK entries; one packet may be asked for more than once). */
  nacked: number;
}

export type PacketSink = (p: RtpPacketLite) => void;

const BITRATE_WINDOW_MS = 2000;
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
const AUDIO_CACHE_MS = 5000;

interface Cached {
  at: number;
  packet: RtpPacketLite;
}

export class Track {
  readonly parameterSets = new H264ParameterSets();
  packets = 0;
  bytes = 0;
  keyframes = 0;
  nacked = 0;
  lastPacketAt = 0;
  private readonly sinks = new Set<PacketSink>();
  private readonly reorder: ReorderBuffer;
  /** The last BITRATE_WINDOW_MS of packets as they arrived (retransmissions too): time and size. */
  private readonly window: { t: number; bytes: number }[] = [];
  /** When each of the last BITRATE_WINDOW_MS of video frames was complete (in order, once each). */
  private readonly frames: number[] = [];
  private lastKeyframeTs: number | undefined;
  private ssrc: number | undefined;
  private readonly keyframeWaiters = new Set<() => void>();
  /** Video: packets from the latest keyframe start on. Audio: the last AUDIO_CACHE_MS. */
  private cache: Cached[] = [];
  private cacheKeyframeTs: number | undefined;

  constructor(readonly codec: ChosenCodec) {
    this.reorder = new ReorderBuffer((p) => this.deliver(p), codec.kind === 'video' ? VIDEO_REORDER : AUDIO_REORDER);
  }

  get kind(): 'audio' | 'video' {
    return this.codec.kind;
  }

  /** A packet from the peer, in arrival order. */
  receive(p: RtpPacketLite): void {
    const now = performance.now();
    // Another source (the publisher changed SSRC): its sequence numbers start elsewhere.
    if (this.ssrc !== undefined && p.ssrc !== this.ssrc) this.reorder.flush();
    this.ssrc = p.ssrc;
    this.packets++;
    this.bytes += p.payload.length + 12;
    this.lastPacketAt = now;
    this.window.push({ t: now, bytes: p.payload.length + 12 });
    while (this.window.length && this.window[0].t < now - BITRATE_WINDOW_MS) this.window.shift();
    this.reorder.push(p);
  }

  private deliver(p: RtpPacketLite): void {
    this.remember(p);
    if (p.marker && this.kind === 'video') {
      const now = performance.now();
      this.frames.push(now);
      while (this.frames[0] < now - BITRATE_WINDOW_MS) this.frames.shift();
    }
    if (this.codec.name === 'H264') {
      this.parameterSets.update(p.payload);
      if (containsIdr(p.payload) && p.timestamp !== this.lastKeyframeTs) {
        this.lastKeyframeTs = p.timestamp;
        this.keyframes++;
      }
      if (this.keyframeWaiters.size && this.parameterSets.complete) {
        for (const w of this.keyframeWaiters) w();
        this.keyframeWaiters.clear();
      }
    }
    for (const sink of this.sinks) sink(p);
  }

  private remember(p: RtpPacketLite): void {
    const at = performance.now();
    if (this.kind === 'audio') {
      this.cache.push({ at, packet: p });
      while (this.cache.length && this.cache[0].at < at - AUDIO_CACHE_MS) this.cache.shift();
      return;
    }
    if (startsKeyframe(p.payload) && p.timestamp !== this.cacheKeyframeTs) {
      this.cache = [];
      this.cacheKeyframeTs = p.timestamp;
    }
    if (this.cacheKeyframeTs === undefined) return;
    if (this.cache.length >= GOP_MAX_PACKETS) {
      this.cache = []; // GOP too long to keep: wait for the next keyframe
      this.cacheKeyframeTs = undefined;
      return;
    }
    this.cache.push({ at, packet: p });
  }

  /** When the cached keyframe arrived (performance.now()), if one is cached. */
  get cachedKeyframeAt(): number | undefined {
    return this.kind === 'video' && this.cache.length ? this.cache[0].at : undefined;
  }

  /** Cached packets that arrived at or after `since` (all of them when undefined). */
  cached(since?: number): RtpPacketLite[] {
    return this.cache.filter((c) => since === undefined || c.at >= since).map((c) => c.packet);
  }

  /** Resolves once SPS and PPS are known (H.264), at once for other codecs. */
  parameterSetsReady(timeoutMs: number): Promise<boolean> {
    if (this.codec.name !== 'H264' || this.parameterSets.complete) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.keyframeWaiters.delete(done);
        resolve(false);
      }, timeoutMs);
      this.keyframeWaiters.add(done);
    });
  }

  subscribe(sink: PacketSink): () => void {
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  /** Packets given up as lost (never arrived, even after NACKs). */
  get lost(): number {
    return this.reorder.skipped;
  }

  info(): TrackInfo {
    const windowBytes = this.window.reduce((s, w) => s + w.bytes, 0);
    const span = this.window.length > 1 ? Math.max(this.window[this.window.length - 1].t - this.window[0].t, 1) : BITRATE_WINDOW_MS;
    const dims = this.parameterSets.sps ? spsDimensions(this.parameterSets.sps) : undefined;
    return {
      kind: this.kind,
      codec: this.codec.name,
      payloadType: this.codec.payloadType,
      clockRate: this.codec.clockRate,
      channels: this.codec.channels,
      packets: this.packets,
      bytes: this.bytes,
      bitrateKbps: Math.round((windowBytes * 8) / span),
      keyframes: this.keyframes,
      ...(dims ?? {}),
      ...(this.kind === 'video' ? { fps: Math.round((this.frames.filter((t) => t >= performance.now() - BITRATE_WINDOW_MS).length * 1000) / BITRATE_WINDOW_MS) } : {}),
      lost: this.lost,
      nacked: this.nacked,
    };
  }

  close(): void {
    this.cache = [];
    this.reorder.close();
    this.sinks.clear();
    for (const w of this.keyframeWaiters) w();
    this.keyframeWaiters.clear();
  }
}
