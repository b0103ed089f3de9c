import { startsKeyframe } from './h264.js';
import { vp8KeyframeSize, vp8StartsKeyframe, vp9KeyframeSize, vp9StartsKeyframe, type PictureSize } from './vpx.js';

/** How to tell, for a video codec, that a packet starts a picture a decoder can start at. */
export function keyframeStartFor(codec: string): ((payload: Buffer) => boolean) | undefined {
  if (codec === 'H264') return startsKeyframe;
  if (codec === 'VP8') return vp8StartsKeyframe;
  if (codec === 'VP9') return vp9StartsKeyframe;
  return undefined;
}

/** The picture size a keyframe's first packet carries (VP8, VP9; H.264 has it in its SPS, rtp/h264.ts). */
export function keyframeSizeFor(codec: string): ((payload: Buffer) => PictureSize | undefined) | undefined {
  if (codec === 'VP8') return vp8KeyframeSize;
  if (codec === 'VP9') return vp9KeyframeSize;
  return undefined;
}
