import { z } from 'zod';
import type { ViewerHandle } from '../media/viewer-handle.js';

// What the API shows of a stream's WHEP viewers (GET /api/streams: `viewers`), from what
// their media worker reports every second. `keepingUp` is false while a viewer's own
// reports (receiver reports, transport-cc) say its link does not carry the stream.

export const viewerInfo = z.strictObject({
  id: z.string(),
  state: z.string().describe("the viewer's connection: new, connecting, connected, disconnected"),
  startedAt: z.iso.datetime(),
  tracks: z.array(z.strictObject({ kind: z.enum(['audio', 'video']), codec: z.string() })).describe('what it gets'),
  bitrateKbps: z.number().min(0).describe('sent to it over the last 2 s'),
  packetsSent: z.number().int().min(0),
  nacked: z.number().int().min(0).describe('packets it asked for again (NACK)'),
  retransmitted: z.number().int().min(0).describe('of those, sent again from the packet cache'),
  keyframeRequests: z.number().int().min(0).describe('its PLIs and FIRs (passed on to the publisher merged and at most once a second per stream)'),
  lossPercent: z.number().min(0).max(100).optional().describe('packets lost on its path lately (its transport-cc feedback, else its receiver reports)'),
  rttMs: z.number().int().min(0).optional().describe('round trip, from its receiver reports'),
  queueDelayMs: z.number().int().min(0).optional().describe('how much later than at their best its packets arrive (a queue on its path), from its transport-cc feedback'),
  keepingUp: z.boolean().describe('false while its loss (10 % or more) or queue (400 ms or more) says its link does not carry the stream'),
  iceRestarts: z.number().int().min(0),
});
export type ViewerInfo = z.infer<typeof viewerInfo>;

export function viewerInfoOf(v: ViewerHandle): ViewerInfo {
  const s = v.stats;
  return {
    id: v.id,
    state: v.state,
    startedAt: v.startedAt.toISOString(),
    tracks: v.tracks.map(({ kind, codec }) => ({ kind, codec })),
    bitrateKbps: s?.kbps ?? 0,
    packetsSent: s?.packetsSent ?? 0,
    nacked: s?.nacked ?? 0,
    retransmitted: s?.retransmitted ?? 0,
    keyframeRequests: s?.keyframeRequests ?? 0,
    ...(s?.lossPercent !== undefined ? { lossPercent: s.lossPercent } : {}),
    ...(s?.rttMs !== undefined ? { rttMs: s.rttMs } : {}),
    ...(s?.queueDelayMs !== undefined ? { queueDelayMs: s.queueDelayMs } : {}),
    keepingUp: s?.keepingUp ?? true,
    iceRestarts: v.iceGeneration,
  };
}
