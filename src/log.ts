import { pino, type Logger } from 'pino';

// Structured logs (one JSON line per event) on stdout. Session events carry `stream` and
// `session` fields so one publisher's story can be grepped out of a busy gateway.

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'webrtc-rtp-gateway' } });
}
