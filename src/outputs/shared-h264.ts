import type { ChosenCodec } from '../webrtc/codec-policy.js';
import type { Stream, StreamEncoder } from '../streams/stream.js';
import type { PipelineServices } from './pipeline-output.js';
import { SharedEncoder } from './shared-encoder.js';

// A VP8 or VP9 publisher (Firefox without OpenH264, some Android devices) gets its video
// encoded to H.264 once per stream (pipelines/shared/h264.json); every output then copies
// that H.264 as it would a publisher's (shared-encoder.ts). Its keyframes come at the HLS
// segment cadence, so segments are cut on time. Its input probes up to 4 MB (the
// pipelines' default is 64 KB): fewer than a handful of 1080p frames fit in 64 KB, ffmpeg
// then could not tell the frame rate and duplicated frames by the thousand (measured).
//
// Its bitrate follows the source's picture size (each new size gets a new encoder,
// shared-encoder.ts): 0.09 bit per pixel at 30 fps, 2.5 Mbit/s at 720p, 830 kbit/s at
// 640x480, 210 kbit/s at 320x240, at most transcode.videoKbps. A fixed 2.5 Mbit/s spent
// ten times what Firefox's 320x240 start needs.

/**
 * The codec of the transcoded track: what the encoder's RTP muxer sends. Its payload type
 * and level go to the encoder ({{payloadType}}, {{level}}): Constrained Baseline, level 4.0.
 */
export const TRANSCODED_H264: ChosenCodec = {
  kind: 'video',
  index: -1,
  name: 'H264',
  payloadType: 102,
  clockRate: 90000,
  channels: 1,
  fmtp: { 'packetization-mode': '1', 'profile-level-id': '42e028' },
};

/**
 * How much later a picture arrives through the transcoder than the VP8/VP9 it came from
 * (RTP demuxer, decoder, x264 zerolatency, RTP muxer): measured here 69-80 ms at 360p and
 * 720p. Outputs take their audio from that much earlier, so sound and picture start together.
 */
export const TRANSCODER_LATENCY_MS = 75;

export interface TranscodeSettings {
  keyframeSeconds: number;
  /** The most a transcoded stream gets (transcode.videoKbps). */
  videoKbps: number;
  /** Taller pictures are scaled down to this height. */
  maxHeight: number;
  /** x264 preset (pipelines/shared/h264.json lists them). */
  preset: string;
}

/** The stream's shared H.264 (made on first use). */
export function sharedH264(stream: Stream, services: PipelineServices & { dataDir: string }, settings: TranscodeSettings): StreamEncoder {
  return stream.encoder('video', () => new SharedEncoder(stream, services, {
    pipeline: 'h264',
    kind: 'video',
    codec: () => TRANSCODED_H264,
    values: (source) => ({ ...settings, videoKbps: transcodeKbps(source.parameterSets, settings), payloadType: TRANSCODED_H264.payloadType, level: levelOf(TRANSCODED_H264) }),
    latencyMs: TRANSCODER_LATENCY_MS,
    followPictureSize: true,
  }));
}

/** x264's -level for a profile-level-id (its last byte is level_idc: 0x28 = 40 = level 4.0). */
export function levelOf(codec: ChosenCodec): string {
  const idc = parseInt((codec.fmtp['profile-level-id'] ?? '42e01f').slice(4), 16);
  return (idc / 10).toFixed(1);
}

const BITS_PER_PIXEL = 0.09;
const FPS = 30;
const MIN_KBPS = 150;

/** The H.264 bitrate for a source of this size once scaled to maxHeight (the most, while the size is unknown). */
export function transcodeKbps(size: { width?: number; height?: number }, settings: Pick<TranscodeSettings, 'videoKbps' | 'maxHeight'>): number {
  if (!size.width || !size.height) return settings.videoKbps;
  const height = Math.min(size.height, settings.maxHeight);
  const width = (size.width * height) / size.height;
  const kbps = Math.round((width * height * FPS * BITS_PER_PIXEL) / 1000);
  return Math.min(settings.videoKbps, Math.max(MIN_KBPS, kbps));
}
