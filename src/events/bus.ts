import { EventEmitter } from 'node:events';
import type { GatewayEvent } from './event-schema.js';

// Gateway events, for webhooks and the live feeds (/api/events, WebSocket). One shape for
// all: a type, a time, the stream, and what the event is about. Each event has a number
// that only grows, and the last ones are kept, so an SSE client that reconnects with
// Last-Event-ID gets what it missed. What an event holds: event-schema.ts.

export type { GatewayEvent } from './event-schema.js';
export { EVENT_TYPES, type GatewayEventType } from './event-types.js';

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
