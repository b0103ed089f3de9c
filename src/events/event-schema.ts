import { z } from 'zod';
import { recordingInfo } from '../recordings/recordings.js';
import { CLOSE_CAUSES, type CloseCause } from '../streams/close-cause.js';
import { EVENT_TYPES } from './event-types.js';

// What a gateway event holds, as webhooks, /api/events and the WebSocket carry it
// (/api/openapi.json is generated from it).

const CLOSE_CAUSE_NAMES = Object.keys(CLOSE_CAUSES) as CloseCause[];

/** Every event, as webhooks, /api/events and the WebSocket carry it; /api/openapi.json is generated from it. */
export const gatewayEvent = z.strictObject({
  id: z.number().int().min(1).describe('increases by one per event within a gateway run (the SSE id)'),
  type: z.enum(EVENT_TYPES),
  at: z.iso.datetime(),
  stream: z.string(),
  node: z.string().optional().describe('in a cluster: the node the event happened on (host:port of its URL)'),
  session: z.string().optional(),
  output: z
    .strictObject({ id: z.string(), type: z.string(), error: z.string().optional().describe('output.failed: why') })
    .optional()
    .describe('output.* and recording.finished: the output'),
  recording: recordingInfo.optional().describe('recording.finished: the recording'),
  reason: z.string().optional().describe('stream.stopped: why, in words'),
  cause: z.enum(CLOSE_CAUSE_NAMES).optional().describe('stream.stopped: why, as a typed cause'),
});
export type GatewayEvent = z.infer<typeof gatewayEvent>;
