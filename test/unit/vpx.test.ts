import { describe, expect, it } from 'vitest';
import { vp8StartsKeyframe, vp9StartsKeyframe } from '../../src/rtp/vpx.js';

// Where a transcoder's input may start: the first packet of a VP8/VP9 keyframe, as
// browsers packetise them (descriptors with and without PictureID and the other options).

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
});
