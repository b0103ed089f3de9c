import { z } from 'zod';
import type { ParameterSetInfo, TrackStats } from '../media/worker-messages.js';
import { isTranscoded, type ChosenCodec } from '../webrtc/codec-policy.js';

// A publisher's track as the main thread sees it: the negotiated codec, the H.264
// parameter sets (for session SDPs) or VP8/VP9 picture size, and the counters its media
// worker reports every second (media/media-track.ts holds the packets themselves).

const count = z.number().int().min(0);

/** What GET /api/streams shows of a shared encoder (outputs/shared-encoder.ts), on the track it encodes. */
export const encoderInfo = z
  .strictObject({
    pipeline: z.string().describe('pipelines/shared/<pipeline>.json: h264 or aac'),
    state: z.enum(['running', 'starting', 'stopped']),
    cpuPercent: z.number().min(0).optional().describe("its ffmpeg's share of one core over the last 2 s"),
    restarts: count.describe('started again after its ffmpeg died'),
    resizes: count.describe('started again for a new picture size from the publisher'),
  })
  .describe("the ffmpeg that makes the stream's H.264 (VP8/VP9 video) or AAC from this track, once for all outputs, while an output needs it");
export type EncoderInfo = z.infer<typeof encoderInfo>;

/** A publisher's track as GET /api/streams shows it: counters as of the worker's last report (every second). */
export const trackInfo = z.strictObject({
  kind: z.enum(['audio', 'video']),
  codec: z.enum(['H264', 'VP8', 'VP9', 'opus', 'PCMU', 'PCMA', 'AAC']).describe('as negotiated (AAC is only the gateway\'s own encode, never a publisher\'s track)'),
  payloadType: z.number().int().min(0).max(127),
  clockRate: z.number().int().min(1),
  channels: z.number().int().min(1),
  packets: count,
  bytes: count.describe('RTP received: payloads and their 12-byte headers'),
  bitrateKbps: count.describe('over the last 2 s'),
  keyframes: count,
  width: count.optional(),
  height: count.optional(),
  fps: count.optional().describe('video: frames per second arriving at the gateway (RTP marker bits, last 2 s)'),
  transcoded: z.literal(true).optional().describe('VP8/VP9 video: outputs get it transcoded to H.264, once for the stream'),
  encoder: encoderInfo.optional(),
  lost: count.describe('packets given up on (never arrived, not repaired by retransmission)'),
  nacked: count.describe('packets the gateway asked the publisher to send again (NACK entries; one packet may be asked for more than once)'),
  keyframeIntervalSeconds: z
    .number()
    .min(0)
    .optional()
    .describe("video: the publisher's own keyframe spacing, learned from the keyframes it sent unasked (absent until known; browsers have none: they send keyframes when asked)"),
  answersKeyframeRequests: z
    .boolean()
    .optional()
    .describe('video: whether the publisher answers keyframe requests (PLI), absent until asked; one that does not (a fixed GOP: OBS, ffmpeg, hardware encoders) is asked at most once per its interval, and HLS segments follow its GOP'),
});
export type TrackInfo = z.infer<typeof trackInfo>;

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
