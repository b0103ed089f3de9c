import { startsKeyframe } from './h264.js';
import { vp8StartsKeyframe, vp9StartsKeyframe } from './vpx.js';

/** How to tell, for a video codec, that a packet starts a picture a decoder can start at. */
export function keyframeStartFor(codec: string): ((payload: Buffer) => boolean) | undefined {
  if (codec === 'H264') return startsKeyframe;
  if (codec === 'VP8') return vp8StartsKeyframe;
  if (codec === 'VP9') return vp9StartsKeyframe;
  return undefined;
}
