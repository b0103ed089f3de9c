// The kinds of gateway event (events/bus.ts): what the configuration's webhook filter
// names (config/schema.ts), kept apart from the event's shape, which names recordings and
// streams, so the configuration needs nothing above it.

export const EVENT_TYPES = ['stream.started', 'stream.stopped', 'output.started', 'output.stopped', 'output.failed', 'recording.finished'] as const;
export type GatewayEventType = (typeof EVENT_TYPES)[number];
