import { describe, expect, it } from 'vitest';
import { vp8KeyframeSize, vp8StartsKeyframe, vp9KeyframeSize, vp9StartsKeyframe } from '../../src/rtp/vpx.js';

// Where a transcoder's input may start: the first packet of a VP8/VP9 keyframe, as
// browsers packetise them (descriptors with and without PictureID and the other options),
// and the picture size it carries (the transcoder is started again when it changes).
// The frame headers below are the first bytes of keyframes libvpx wrote (ffmpeg -c:v libvpx, libvpx-vp9).

describe('VP8 and VP9 keyframe starts', () => {
  it('VP8: start of partition 0 with P=0 in the payload header, after any descriptor extensions', () => {
    expect(vp8StartsKeyframe(Buffer.from([0x10, 0x00, 0x9d, 0x01, 0x2a]))).toBe(true); // S=1, PID=0, key frame
    expect(vp8StartsKeyframe(Buffer.from([0x10, 0x01, 0x9d]))).toBe(false); // interframe (P=1)
    expect(vp8StartsKeyframe(Buffer.from([0x00, 0x00, 0x9d]))).toBe(false); // not the start of a partition
    expect(vp8StartsKeyframe(Buffer.from([0x11, 0x00, 0x9d]))).toBe(false); // partition 1
    // X=1, I=1 with a 15-bit PictureID (M=1), L=1 (TL0PICIDX), T=1 (TID/KEYIDX): Chromium's shape
    expect(vp8StartsKeyframe(Buffer.from([0x90, 0xe0, 0x80 | 0x12, 0x34, 0x05, 0x20, 0x00, 0x9d]))).toBe(true);
    expect(vp8StartsKeyframe(Buffer.from([0x90, 0xe0, 0x80 | 0x12, 0x34, 0x05, 0x20, 0x01, 0x9d]))).toBe(false);
    // X=1, I=1 with a 7-bit PictureID only
    expect(vp8StartsKeyframe(Buffer.from([0x90, 0x80, 0x12, 0x00]))).toBe(true);
    expect(vp8StartsKeyframe(Buffer.from([0x90]))).toBe(false); // truncated
  });

  it('VP9: the beginning of a frame that is not inter-predicted', () => {
    expect(vp9StartsKeyframe(Buffer.from([0x88]))).toBe(true); // I=1, P=0, B=1
    expect(vp9StartsKeyframe(Buffer.from([0xc8]))).toBe(false); // P=1: predicted from another frame
    expect(vp9StartsKeyframe(Buffer.from([0x84]))).toBe(false); // not the beginning (E only)
    expect(vp9StartsKeyframe(Buffer.alloc(0))).toBe(false);
  });

  it('VP8 size: 14 bits of width and height after the start code, scaling bits ignored', () => {
    const frame = [0x30, 0x51, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00]; // libvpx, 320x180
    expect(vp8KeyframeSize(Buffer.from([0x10, ...frame]))).toEqual({ width: 320, height: 180 });
    expect(vp8KeyframeSize(Buffer.from([0x90, 0xe0, 0x80 | 0x12, 0x34, 0x05, 0x20, ...frame]))).toEqual({ width: 320, height: 180 });
    expect(vp8KeyframeSize(Buffer.from([0x10, 0x30, 0x51, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x42, 0xe0, 0xc1]))).toEqual({ width: 640, height: 480 }); // scaling bits set
    expect(vp8KeyframeSize(Buffer.from([0x10, 0x31, 0x51, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00]))).toBeUndefined(); // interframe
    expect(vp8KeyframeSize(Buffer.from([0x10, 0x30, 0x51, 0x00, 0x9d, 0x01, 0x2b, 0x40, 0x01, 0xb4, 0x00]))).toBeUndefined(); // no start code
    expect(vp8KeyframeSize(Buffer.from([0x10, 0x30, 0x51, 0x00, 0x9d, 0x01, 0x2a, 0x40]))).toBeUndefined(); // truncated
  });

  it('VP9 size: from the scalability structure (largest layer) or the uncompressed header', () => {
    // I=1 (7-bit PictureID), B=1, V=1; SS: one layer, Y=1, 640x480
    expect(vp9KeyframeSize(Buffer.from([0x8a, 0x12, 0x10, 0x02, 0x80, 0x01, 0xe0]))).toEqual({ width: 640, height: 480 });
    // L=1 in non-flexible mode (layer byte + TL0PICIDX), three spatial layers
    const ss = [0x50, 0x00, 0xa0, 0x00, 0x78, 0x01, 0x40, 0x00, 0xf0, 0x02, 0x80, 0x01, 0xe0];
    expect(vp9KeyframeSize(Buffer.from([0xaa, 0x12, 0x00, 0x07, ...ss]))).toEqual({ width: 640, height: 480 });
    expect(vp9KeyframeSize(Buffer.from([0x8a, 0x12, 0x10, 0x02, 0x80]))).toBeUndefined(); // truncated
    // No SS: the frame header. Profile 0 (4:2:0) 640x360, and profile 1 RGB 320x180
    expect(vp9KeyframeSize(Buffer.from([0x08, 0x82, 0x49, 0x83, 0x42, 0x00, 0x27, 0xf0, 0x16, 0x76]))).toEqual({ width: 640, height: 360 });
    expect(vp9KeyframeSize(Buffer.from([0x08, 0xa2, 0x49, 0x83, 0x42, 0xe0, 0x13, 0xf0, 0x0b, 0x36]))).toEqual({ width: 320, height: 180 });
    expect(vp9KeyframeSize(Buffer.from([0x08, 0x82, 0x49, 0x83, 0x43, 0x00, 0x27, 0xf0, 0x16]))).toBeUndefined(); // bad sync code
    expect(vp9KeyframeSize(Buffer.from([0x08, 0x82, 0x49, 0x83, 0x42, 0x00]))).toBeUndefined(); // truncated
    expect(vp9KeyframeSize(Buffer.from([0xc8, 0x82, 0x49, 0x83, 0x42, 0x00, 0x27, 0xf0, 0x16]))).toBeUndefined(); // inter-predicted
  });
});
