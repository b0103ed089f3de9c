import { EventEmitter } from 'node:events';
import type { CloseCause } from '../streams/close-cause.js';

// Gateway events, for webhooks and the live feeds (/api/events, WebSocket). One shape for
// all: a type, a time, the stream, and what the event is about. Each event has a number
// that only grows, and the last ones are kept, so an SSE client that reconnects with
// Last-Event-ID gets what it missed.

export const EVENT_TYPES = ['stream.started', 'stream.stopped', 'output.started', 'output.stopped', 'output.failed', 'recording.finished'] as const;
export type GatewayEventType = (typeof EVENT_TYPES)[number];

export interface GatewayEvent {
  /** Increases by one per event within a gateway run. */
  id: number;
  type: GatewayEventType;
  at: string;
  stream: string;
  session?: string;
  output?: { id: string; type: string; error?: string };
  recording?: { file: string; url: string; bytes: number; startedAt: string; endedAt: string | null; durationSeconds: number | null };
  reason?: string;
  /** stream.stopped: why, as a typed cause (streams/close-cause.ts). */
  cause?: CloseCause;
}

/** Events kept for clients that resume. */
const KEPT = 1000;

export class EventBus extends EventEmitter<{ event: [GatewayEvent] }> {
  private lastId = 0;
  private readonly kept: GatewayEvent[] = [];

  publish(e: Omit<GatewayEvent, 'at' | 'id'>): void {
    const event = { ...e, id: ++this.lastId, at: new Date().toISOString() } as GatewayEvent;
    this.kept.push(event);
    if (this.kept.length > KEPT) this.kept.splice(0, this.kept.length - KEPT);
    this.emit('event', event);
  }

  /** Kept events after `id` (oldest first). */
  since(id: number): GatewayEvent[] {
    return this.kept.filter((e) => e.id > id);
  }
}
