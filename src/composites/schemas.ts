import { z } from 'zod';
import { compositeSpec } from '../config/schema.js';
import { encoderInfo } from '../streams/track-view.js';

// What the composites API takes and answers (zod: requests are checked with these, and
// /api/openapi.json is generated from them).

/** POST /api/composites: a composite as the configuration declares one. */
export const compositeRequest = compositeSpec;

/** PATCH /api/composites/:name: what may change while it runs. */
export const compositePatch = z
  .strictObject({
    streams: compositeSpec.shape.streams.optional(),
    layout: compositeSpec.shape.layout.unwrap().optional(),
    width: compositeSpec.shape.width.unwrap().optional(),
    height: compositeSpec.shape.height.unwrap().optional(),
    fps: compositeSpec.shape.fps.unwrap().optional(),
  })
  .describe('what to change; what is left out stays');
export type CompositePatch = z.infer<typeof compositePatch>;

/** GET /api/composites(/:name). */
export const compositeInfo = z.strictObject({
  name: z.string().describe('its stream name: /hls/<name>/index.m3u8, /live/<name>.ts, /watch/<name>, outputs'),
  streams: z.array(z.string()).describe('the names and patterns asked for'),
  layout: z.enum(['grid', 'speaker']),
  width: z.number().int(),
  height: z.number().int(),
  fps: z.number().int(),
  participants: z.array(z.string()).describe('the live streams in it, in the order they joined'),
  speaker: z.string().optional().describe('speaker layout: the participant in the main area'),
  state: z.enum(['waiting', 'live']).describe('waiting: no participant yet (no stream); live: its stream exists'),
  compositor: encoderInfo.optional().describe('its compositor ffmpeg: CPU, restarts, and resizes = the times the layout changed (a new compositor replaced the running one)'),
});
export type CompositeInfo = z.infer<typeof compositeInfo>;
