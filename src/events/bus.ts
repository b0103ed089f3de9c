import { EventEmitter } from 'node:events';
import { z } from 'zod';
import { recordingInfo } from '../recordings/recordings.js';
import { CLOSE_CAUSES, type CloseCause } from '../streams/close-cause.js';

// Gateway events, for webhooks and the live feeds (/api/events, WebSocket). One shape for
// all: a type, a time, the stream, and what the event is about. Each event has a number
// that only grows, and the last ones are kept, so an SSE client that reconnects with
// Last-Event-ID gets what it missed.

export const EVENT_TYPES = ['stream.started', 'stream.stopped', 'output.started', 'output.stopped', 'output.failed', 'recording.finished'] as const;
export type GatewayEventType = (typeof EVENT_TYPES)[number];
const CLOSE_CAUSE_NAMES = Object.keys(CLOSE_CAUSES) as CloseCause[];

/** Every event, as webhooks, /api/events and the WebSocket carry it; /api/openapi.json is generated from it. */
export const gatewayEvent = z.strictObject({
  id: z.number().int().min(1).describe('increases by one per event within a gateway run (the SSE id)'),
  type: z.enum(EVENT_TYPES),
  at: z.iso.datetime(),
  stream: z.string(),
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

/** Events kept for clients that resume. */
const KEPT = 1000;

export class EventBus extends EventEmitter<{ event: [GatewayEvent] }> {
  private lastId = 0;
  private readonly kept: GatewayEvent[] = [];

  publish(e: Omit<GatewayEvent, 'at' | 'id'>): void {
    const event: GatewayEvent = { ...e, id: ++this.lastId, at: new Date().toISOString() };
    this.kept.push(event);
    if (this.kept.length > KEPT) this.kept.splice(0, this.kept.length - KEPT);
    this.emit('event', event);
  }

  /** Kept events after `id` (oldest first). */
  since(id: number): GatewayEvent[] {
    return this.kept.filter((e) => e.id > id);
  }
}
