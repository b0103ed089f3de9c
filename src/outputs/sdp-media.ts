import type { SdpMedia } from '../sdp/render.js';
import type { TrackView } from '../streams/track-view.js';

/** The SDP m-section that describes what a feed sends for one track. */
export function sdpMedia(track: TrackView, port: number): SdpMedia {
  const c = track.codec;
  if (c.name === 'H264') {
    const ps = track.parameterSets;
    // SPS/PPS seen in the stream; else those the publisher's offer declared (a sender that
    // does not repeat them in-band); else none, and ffmpeg reads them in-band.
    const sprop = ps.sprop ?? c.fmtp['sprop-parameter-sets'];
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
  if (c.name === 'AAC') return { codec: 'aac', port, payloadType: c.payloadType, clockRate: c.clockRate, channels: c.channels, fmtp: c.fmtp };
  return { codec: c.name.toLowerCase(), port, payloadType: c.payloadType, clockRate: c.clockRate, channels: 1 };
}
