// VP8 (RFC 7741) and VP9 (RFC 9628) payload descriptors: enough to tell where a keyframe
// starts, so a transcoder's input starts at one (as H.264 starts at SPS/IDR, rtp/h264.ts),
// and the picture size a keyframe carries (the API shows it; the transcoder follows it).

export interface PictureSize {
  width: number;
  height: number;
}

/** Where the VP8 payload starts after the payload descriptor, or -1 when truncated. */
function vp8PayloadOffset(payload: Buffer): number {
  if (payload.length < 2) return -1;
  let off = 1;
  if (payload[0] & 0x80) {
    const x = payload[off++];
    if (x & 0x80) off += payload[off] & 0x80 ? 2 : 1; // PictureID, 7 or 15 bits
    if (x & 0x40) off += 1; // TL0PICIDX
    if (x & 0x30) off += 1; // TID/KEYIDX
  }
  return off < payload.length ? off : -1;
}

/** The first packet of a VP8 keyframe: start of partition 0 (S=1, PID=0) and P=0 in the payload header. */
export function vp8StartsKeyframe(payload: Buffer): boolean {
  if (payload.length < 2 || (payload[0] & 0x10) === 0 || (payload[0] & 0x07) !== 0) return false;
  const off = vp8PayloadOffset(payload);
  return off >= 0 && (payload[off] & 0x01) === 0;
}

/**
 * The size in a VP8 keyframe's first packet: after the 3-byte frame tag, the start code
 * 9d 01 2a and two 16-bit little-endian fields, 14 bits of size and 2 of scaling (RFC 6386 §9.1).
 */
export function vp8KeyframeSize(payload: Buffer): PictureSize | undefined {
  if (!vp8StartsKeyframe(payload)) return undefined;
  const off = vp8PayloadOffset(payload);
  if (payload.length < off + 10 || payload[off + 3] !== 0x9d || payload[off + 4] !== 0x01 || payload[off + 5] !== 0x2a) return undefined;
  const width = payload.readUInt16LE(off + 6) & 0x3fff;
  const height = payload.readUInt16LE(off + 8) & 0x3fff;
  return width && height ? { width, height } : undefined;
}

/** The first packet of a VP9 picture that uses no other (B=1, P=0): a keyframe. */
export function vp9StartsKeyframe(payload: Buffer): boolean {
  if (payload.length < 1) return false;
  const b0 = payload[0];
  return (b0 & 0x08) !== 0 && (b0 & 0x40) === 0;
}

/**
 * The size of a VP9 keyframe, from its first packet: the scalability structure when the
 * descriptor has one (V=1; browsers send it with keyframes; the largest spatial layer),
 * else the frame's uncompressed header (VP9 bitstream spec §6.2).
 */
export function vp9KeyframeSize(payload: Buffer): PictureSize | undefined {
  if (!vp9StartsKeyframe(payload)) return undefined;
  const b0 = payload[0];
  let off = 1;
  if (b0 & 0x80) off += payload[off] & 0x80 ? 2 : 1; // I: PictureID, 7 or 15 bits
  if (b0 & 0x20) off += b0 & 0x10 ? 1 : 2; // L: layer indices (+ TL0PICIDX in non-flexible mode)
  if (off >= payload.length) return undefined;
  if (b0 & 0x02) {
    // V: N_S (3 bits) | Y | G | reserved, then N_S + 1 sizes when Y
    const ss = payload[off++];
    const layers = (ss >> 5) + 1;
    if (!(ss & 0x10) || payload.length < off + layers * 4) return undefined;
    let size: PictureSize | undefined;
    for (let i = 0; i < layers; i++, off += 4) {
      const width = payload.readUInt16BE(off);
      const height = payload.readUInt16BE(off + 2);
      if (width && height && (!size || width * height > size.width * size.height)) size = { width, height };
    }
    return size;
  }
  return vp9HeaderSize(payload.subarray(off));
}

/** frame_width_minus_1 and frame_height_minus_1 of a keyframe's uncompressed header. */
function vp9HeaderSize(frame: Buffer): PictureSize | undefined {
  let bit = 0;
  const read = (n: number): number => {
    let v = 0;
    for (let i = 0; i < n; i++, bit++) {
      if (bit >> 3 >= frame.length) throw new RangeError('truncated');
      v = (v << 1) | ((frame[bit >> 3] >> (7 - (bit & 7))) & 1);
    }
    return v >>> 0;
  };
  try {
    if (read(2) !== 2) return undefined; // frame_marker
    const low = read(1);
    const profile = (read(1) << 1) | low;
    if (profile === 3) read(1);
    if (read(1)) return undefined; // show_existing_frame
    if (read(1) !== 0) return undefined; // frame_type: not a keyframe
    read(2); // show_frame, error_resilient_mode
    if (read(24) !== 0x498342) return undefined; // frame_sync_code
    if (profile >= 2) read(1); // ten_or_twelve_bit
    const colorSpace = read(3);
    if (colorSpace !== 7) read(1 + (profile & 1 ? 3 : 0)); // color_range (+ subsampling_x/y, reserved)
    else if (profile & 1) read(1);
    return { width: read(16) + 1, height: read(16) + 1 };
  } catch {
    return undefined;
  }
}
