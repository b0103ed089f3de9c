import { EventEmitter } from 'node:events';

// Gateway events, for webhooks and the live feed (/api/events). One shape for all:
// a type, a time, the stream, and what the event is about.

export type GatewayEventType = 'stream.started' | 'stream.stopped' | 'output.started' | 'output.stopped' | 'output.failed' | 'recording.finished';

export const EVENT_TYPES: GatewayEventType[] = ['stream.started', 'stream.stopped', 'output.started', 'output.stopped', 'output.failed', 'recording.finished'];

export interface GatewayEvent {
  type: GatewayEventType;
  at: string;
  stream: string;
  session?: string;
  output?: { id: string; type: string; error?: string };
  recording?: { file: string; url: string; bytes: number; startedAt: string; endedAt: string | null; durationSeconds: number | null };
  reason?: string;
}

export class EventBus extends EventEmitter<{ event: [GatewayEvent] }> {
  publish(e: Omit<GatewayEvent, 'at'>): void {
    this.emit('event', { ...e, at: new Date().toISOString() } as GatewayEvent);
  }
}
