import type { ParameterSetInfo, TrackStats } from '../media/worker-messages.js';
import { isTranscoded, type ChosenCodec } from '../webrtc/codec-policy.js';

// A publisher's track as the main thread sees it: the negotiated codec, the H.264
// parameter sets (for session SDPs) or VP8/VP9 picture size, and the counters its media
// worker reports every second (media/media-track.ts holds the packets themselves).

/** What GET /api/streams shows of a shared encoder (outputs/shared-encoder.ts), on the track it encodes. */
export interface EncoderInfo {
  /** pipelines/shared/<pipeline>.json */
  pipeline: string;
  state: 'running' | 'starting' | 'stopped';
  /** Its ffmpeg's share of one core over the last 2 s. */
  cpuPercent?: number;
  /** Started again after its ffmpeg died. */
  restarts: number;
  /** Started again for a new picture size. */
  resizes: number;
}

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
  /** VP8/VP9: every output gets it transcoded to H.264, once for the stream. */
  transcoded?: boolean;
  /** The encoder that makes the stream's H.264 (VP8/VP9) or AAC from this track, while there is one. */
  encoder?: EncoderInfo;
  lost: number;
  /** Packets the gateway asked the publisher to send again (NACK entries; one packet may be asked for more than once). */
  nacked: number;
  /** Video: the publisher's own keyframe spacing in seconds (learned from keyframes it sent unasked), once known. */
  keyframeIntervalSeconds?: number;
  /** Video: whether the publisher answers keyframe requests (PLI); a publisher that does not is asked at most once per its interval. */
  answersKeyframeRequests?: boolean;
}

const NO_STATS: TrackStats = { packets: 0, bytes: 0, bitrateKbps: 0, keyframes: 0, lost: 0, nacked: 0, idleMs: Infinity };

export class TrackView {
  private stats = NO_STATS;
  private statsAt = 0;
  private sets: ParameterSetInfo = {};
  private readonly waiters = new Set<() => void>();
  private readonly watchers = new Set<(sets: ParameterSetInfo) => void>();

  constructor(
    readonly codec: ChosenCodec,
    /** Its index in the session (how feeds name it to the worker). */
    readonly index: number,
  ) {}

  get kind(): 'audio' | 'video' {
    return this.codec.kind;
  }

  /** The latest H.264 parameter sets (empty until SPS and PPS were seen), or VP8/VP9 picture size. */
  get parameterSets(): ParameterSetInfo {
    return this.sets;
  }

  get packets(): number {
    return this.stats.packets;
  }

  get bytes(): number {
    return this.stats.bytes;
  }

  /** Packets given up as lost (never arrived, even after NACKs). */
  get lost(): number {
    return this.stats.lost;
  }

  get nacked(): number {
    return this.stats.nacked;
  }

  /** When the last packet arrived (performance.now(), as of the last report; 0 before the first). */
  get lastPacketAt(): number {
    return this.stats.idleMs === Infinity ? 0 : this.statsAt - this.stats.idleMs;
  }

  /** From the worker. */
  updateStats(stats: TrackStats): void {
    this.stats = stats;
    this.statsAt = performance.now();
  }

  /** From the worker: SPS and PPS are known (or changed), or a VP8/VP9 keyframe came with a new size. */
  updateParameterSets(sets: ParameterSetInfo): void {
    this.sets = sets;
    for (const w of this.waiters) w();
    this.waiters.clear();
    for (const w of this.watchers) w(sets);
  }

  /** Calls `watcher` on every change of parameter sets or picture size; returns how to stop. */
  watchParameterSets(watcher: (sets: ParameterSetInfo) => void): () => void {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  /** Resolves once SPS and PPS are known (H.264), at once for other codecs. */
  parameterSetsReady(timeoutMs: number): Promise<boolean> {
    if (this.codec.name !== 'H264' || this.sets.sprop) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        resolve(false);
      }, timeoutMs);
      this.waiters.add(done);
    });
  }

  info(): TrackInfo {
    const { packets, bytes, bitrateKbps, keyframes, fps, lost, nacked, keyframeIntervalSeconds, answersKeyframeRequests } = this.stats;
    const { width, height } = this.sets;
    return {
      kind: this.kind,
      codec: this.codec.name,
      payloadType: this.codec.payloadType,
      clockRate: this.codec.clockRate,
      channels: this.codec.channels,
      packets,
      bytes,
      bitrateKbps,
      keyframes,
      ...(width !== undefined && height !== undefined ? { width, height } : {}),
      ...(this.kind === 'video' ? { fps: fps ?? 0 } : {}),
      ...(isTranscoded(this.codec) ? { transcoded: true } : {}),
      lost,
      nacked,
      ...(keyframeIntervalSeconds !== undefined ? { keyframeIntervalSeconds } : {}),
      ...(answersKeyframeRequests !== undefined ? { answersKeyframeRequests } : {}),
    };
  }

  close(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }
}
