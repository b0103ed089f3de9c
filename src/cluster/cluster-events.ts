import type { Redis } from 'ioredis';
import type { EventBus, GatewayEvent } from '../events/bus.js';
import type { Logger } from '../log.js';
import { EVENTS } from './keys.js';

// Every node's gateway events reach every node: a node publishes its own on a Redis
// pub/sub channel and relays the others' into its bus, so /api/events and the WebSocket
// feed carry the whole cluster's (each with its `node`). Webhooks stay with the node where
// an event happened (events/webhooks.ts sends local ones only), so each is delivered once.
// Pub/sub keeps nothing: events while Redis is down are not replayed to other nodes.

interface Envelope {
  node: string;
  event: GatewayEvent;
}

/** Starts relaying; returns what stops it. */
export function bridgeEvents(bus: EventBus, pub: Redis, sub: Redis, nodeId: string, log: Logger): () => void {
  const onLocal = (e: GatewayEvent) => {
    if (!bus.isLocal(e)) return;
    pub.publish(EVENTS, JSON.stringify({ node: nodeId, event: e } satisfies Envelope)).catch(() => undefined); // Redis down: logged once by the directory
  };
  const onMessage = (channel: string, text: string) => {
    if (channel !== EVENTS) return;
    try {
      const m = JSON.parse(text) as Envelope;
      if (m.node !== nodeId && m.event && typeof m.event.type === 'string') bus.relay({ ...m.event, node: m.node });
    } catch {
      log.warn({ event: 'cluster-event-unreadable' }, 'an event from another node could not be read');
    }
  };
  bus.on('event', onLocal);
  sub.on('message', onMessage);
  void sub.subscribe(EVENTS).catch(() => undefined); // ioredis subscribes again by itself after a reconnect
  return () => {
    bus.off('event', onLocal);
    sub.off('message', onMessage);
  };
}
