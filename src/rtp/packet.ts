// The part of an RTP packet the gateway forwards. Header extensions, CSRCs and padding
// are dropped: ffmpeg does not use them, and a plain 12-byte header is what every RTP
// demuxer reads without surprises.

export interface RtpPacketLite {
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  marker: boolean;
  payload: Buffer;
}

/** Writes a 12-byte RTP header (version 2) followed by the payload. */
export function serializeRtp(p: RtpPacketLite): Buffer {
  const out = Buffer.allocUnsafe(12 + p.payload.length);
  out[0] = 0x80;
  out[1] = (p.marker ? 0x80 : 0) | (p.payloadType & 0x7f);
  out.writeUInt16BE(p.sequenceNumber & 0xffff, 2);
  out.writeUInt32BE(p.timestamp >>> 0, 4);
  out.writeUInt32BE(p.ssrc >>> 0, 8);
  p.payload.copy(out, 12);
  return out;
}

/** Parses a plain RTP packet (what the gateway's own encoders send back on loopback, media/worker-session.ts; tests read outputs with it too). */
export function parseRtp(buf: Buffer): RtpPacketLite {
  if (buf.length < 12 || buf[0] >> 6 !== 2) throw new Error('not an RTP packet');
  const csrcCount = buf[0] & 0x0f;
  let offset = 12 + csrcCount * 4;
  if (buf[0] & 0x10) {
    const words = buf.readUInt16BE(offset + 2);
    offset += 4 + words * 4;
  }
  let end = buf.length;
  if (buf[0] & 0x20) end -= buf[buf.length - 1];
  return {
    marker: (buf[1] & 0x80) !== 0,
    payloadType: buf[1] & 0x7f,
    sequenceNumber: buf.readUInt16BE(2),
    timestamp: buf.readUInt32BE(4),
    ssrc: buf.readUInt32BE(8),
    payload: buf.subarray(offset, end),
  };
}

/** Signed distance from sequence number a to b, modulo 2^16 (positive when b is newer). */
export function seqDelta(a: number, b: number): number {
  return ((b - a + 0x8000) & 0xffff) - 0x8000;
}
