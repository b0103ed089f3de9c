import { EventEmitter } from 'node:events';
import type { GatewayEvent } from './event-schema.js';

// Gateway events, for webhooks and the live feeds (/api/events, WebSocket). One shape for
// all: a type, a time, the stream, and what the event is about. Each event has a number
// that only grows, and the last ones are kept, so an SSE client that reconnects with
// Last-Event-ID gets what it missed. What an event holds: event-schema.ts.
//
// In a cluster every event names its node, and the other nodes' events are relayed into
// this bus (cluster/cluster-events.ts) with numbers of this bus, so a feed resumes the
// same way; isLocal() tells this node's own (webhooks deliver only those).

export type { GatewayEvent } from './event-schema.js';
export { EVENT_TYPES, type GatewayEventType } from './event-types.js';

/** Events kept for clients that resume. */
const KEPT = 1000;

export class EventBus extends EventEmitter<{ event: [GatewayEvent] }> {
  private lastId = 0;
  private readonly kept: GatewayEvent[] = [];

  /** `node`: this node's id in a cluster (stamped on its events); alone, events name none. */
  constructor(readonly node?: string) {
    super();
  }

  publish(e: Omit<GatewayEvent, 'at' | 'id' | 'node'>): void {
    this.add({ ...e, id: 0, at: new Date().toISOString(), ...(this.node ? { node: this.node } : {}) });
  }

  /** Another node's event (it keeps its node and time, and gets a number of this bus). */
  relay(e: GatewayEvent): void {
    this.add(e);
  }

  /** Whether an event happened on this node. */
  isLocal(e: GatewayEvent): boolean {
    return e.node === this.node;
  }

  private add(e: GatewayEvent): void {
    const event: GatewayEvent = { ...e, id: ++this.lastId };
    this.kept.push(event);
    if (this.kept.length > KEPT) this.kept.splice(0, this.kept.length - KEPT);
    this.emit('event', event);
  }

  /** Kept events after `id` (oldest first). */
  since(id: number): GatewayEvent[] {
    return this.kept.filter((e) => e.id > id);
  }
}
