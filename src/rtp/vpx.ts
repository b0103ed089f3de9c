// VP8 (RFC 7741) and VP9 (RFC 9628) payload descriptors: enough to tell where a keyframe
// starts, so a transcoder's input starts at one (as H.264 starts at SPS/IDR, rtp/h264.ts).

/** The first packet of a VP8 keyframe: start of partition 0 (S=1, PID=0) and P=0 in the payload header. */
export function vp8StartsKeyframe(payload: Buffer): boolean {
  if (payload.length < 2) return false;
  const b0 = payload[0];
  if ((b0 & 0x10) === 0 || (b0 & 0x07) !== 0) return false;
  let off = 1;
  if (b0 & 0x80) {
    const x = payload[off++];
    if (x & 0x80) off += payload[off] & 0x80 ? 2 : 1; // PictureID, 7 or 15 bits
    if (x & 0x40) off += 1; // TL0PICIDX
    if (x & 0x30) off += 1; // TID/KEYIDX
  }
  return off < payload.length && (payload[off] & 0x01) === 0;
}

/** The first packet of a VP9 picture that uses no other (B=1, P=0): a keyframe. */
export function vp9StartsKeyframe(payload: Buffer): boolean {
  if (payload.length < 1) return false;
  const b0 = payload[0];
  return (b0 & 0x08) !== 0 && (b0 & 0x40) === 0;
}
