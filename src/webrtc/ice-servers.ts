import { createHmac } from 'node:crypto';
import type { z } from 'zod';
import type { Config, iceServerSchema } from '../config/schema.js';

// ICE servers as handed to werift, WHIP clients (Link headers) and the built-in pages.
// TURN URLs with a shared secret get time-limited credentials (the "TURN REST API" that
// coturn implements with use-auth-secret): username = "<expiry>:<user>", credential =
// base64(HMAC-SHA1(secret, username)).

/**
 * One STUN or TURN server, as the configuration gives it (config/schema.ts's
 * iceServerSchema, which also describes GET /api/ice-servers in /api/openapi.json).
 */
export type IceServer = z.infer<typeof iceServerSchema>;

export function turnRestCredentials(secret: string, user: string, ttlSeconds: number, now = Date.now()): { username: string; credential: string } {
  const username = `${Math.floor(now / 1000) + ttlSeconds}:${user}`;
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64') };
}

/** Configured servers, plus the secret-based TURN URLs with fresh credentials. */
export function iceServers(ice: Config['ice'], user = 'webrtc-rtp-gateway', now = Date.now()): IceServer[] {
  const out: IceServer[] = [...ice.servers];
  if (ice.turnUrls.length && ice.turnSecret) {
    out.push({ urls: ice.turnUrls, ...turnRestCredentials(ice.turnSecret, user, ice.turnCredentialTtlSeconds, now) });
  }
  return out;
}
