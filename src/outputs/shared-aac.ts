import type { ChosenCodec } from '../webrtc/codec-policy.js';
import type { Stream, StreamEncoder } from '../streams/stream.js';
import type { PipelineServices } from './pipeline-output.js';
import { SharedEncoder } from './shared-encoder.js';

// One AAC encode per stream (pipelines/shared/aac.json). Every output that needs AAC (HLS,
// /live, pushes, rtp-mpegts, recordings whose container cannot take the publisher's audio)
// used to encode the Opus itself: a stream with HLS, /live and an RTMP push encoded the
// same audio three times. Now they copy the stream's one AAC (shared-encoder.ts).

/** AAC-LC AudioSpecificConfig for 48 kHz (RFC 3640 `config`): object type 2, frequency index 3, channels. */
export function aacConfig(channels: number): string {
  return ((2 << 11) | (3 << 7) | (channels << 3)).toString(16).padStart(4, '0');
}

/** How the stream's AAC is made from audio of `channels` (1 or 2): what every pipeline that encodes AAC is given. */
export function aacSettings(channels: number): { audioChannels: number; audioBitrate: string } {
  return channels === 1 ? { audioChannels: 1, audioBitrate: '96k' } : { audioChannels: 2, audioBitrate: '128k' };
}

/** The codec of the shared AAC track, as the encoder's RTP muxer sends it (AAC-hbr; its payload type goes to the encoder as {{payloadType}}). */
export function aacCodec(channels: number): ChosenCodec {
  return {
    kind: 'audio',
    index: -1,
    name: 'AAC',
    payloadType: 97,
    clockRate: 48000,
    channels,
    fmtp: { streamtype: '5', 'profile-level-id': '1', mode: 'AAC-hbr', sizelength: '13', indexlength: '3', indexdeltalength: '3', config: aacConfig(channels) },
  };
}

/**
 * How much later the AAC of a moment arrives than the Opus it was encoded from (ffmpeg's
 * RTP demuxer, decoder, one 1024-sample AAC frame, RTP muxer): measured here 45-65 ms,
 * median 55. Outputs start the AAC that much after their first picture, so sound and
 * picture start together (otherwise the sound would lead by about this much).
 */
const ENCODER_LATENCY_MS = 55;

/** The stream's shared AAC (made on first use). */
export function sharedAac(stream: Stream, services: PipelineServices & { dataDir: string }): StreamEncoder {
  return stream.encoder('audio', () => new SharedEncoder(stream, services, {
    pipeline: 'aac',
    kind: 'audio',
    codec: (source) => aacCodec(source.codec.channels === 1 ? 1 : 2),
    values: (source) => ({ ...aacSettings(source.codec.channels), payloadType: aacCodec(1).payloadType }),
    latencyMs: ENCODER_LATENCY_MS,
  }));
}
