import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

// Players cannot send headers, so an HLS viewer's token comes in the playlist's query
// string. The playlist the gateway serves then names its segments with a short-lived
// ticket for that stream instead of repeating the token: a segment URL seen in a log or a
// proxy gives access to that stream's segments until the ticket expires, not to the
// account. A ticket is an HMAC of the stream name and its expiry (milliseconds) under a
// key that is random per gateway process, so it opens only that stream's files and only
// until then. What it opens is the HTTP layer's rule (http/hls.ts): segments, never a
// playlist, since a playlist hands out fresh tickets and a ticket must not renew itself.

/** How long a ticket is valid unless configured (auth.hlsTicketSeconds). */
export const DEFAULT_TICKET_TTL_MS = 10 * 60 * 1000;
/**
 * Expiries are rounded up to a grid of this (or a tenth of the lifetime, if shorter):
 * every playlist a stream serves within the same 10 s names its media with the same
 * ticket, so the media URLs of all its viewers (and of each Low-Latency HLS playlist
 * reload, several a second) are the same, and a cache in front can answer them all from
 * one copy.
 */
const EXPIRY_GRID_MS = 10_000;

export class Tickets {
  private readonly key = randomBytes(32);

  constructor(readonly ttlMs = DEFAULT_TICKET_TTL_MS) {}

  issue(stream: string, now = Date.now()): string {
    const grid = Math.min(EXPIRY_GRID_MS, this.ttlMs / 10);
    const expires = (Math.ceil((now + this.ttlMs) / grid) * grid).toString(36);
    return `${expires}.${this.sign(stream, expires)}`;
  }

  /** When the ticket expires (ms), if it is one this gateway issued for `stream`; expired ones included. */
  expiryOf(stream: string, ticket: string): number | undefined {
    const [expires, mac, extra] = ticket.split('.');
    if (!expires || !mac || extra !== undefined || !/^[0-9a-z]{1,12}$/.test(expires)) return undefined;
    const want = Buffer.from(this.sign(stream, expires));
    const got = Buffer.from(mac);
    return want.length === got.length && timingSafeEqual(want, got) ? parseInt(expires, 36) : undefined;
  }

  valid(stream: string, ticket: string, now = Date.now()): boolean {
    const expires = this.expiryOf(stream, ticket);
    return expires !== undefined && now < expires;
  }

  private sign(stream: string, expires: string): string {
    return createHmac('sha256', this.key).update(`${stream}\n${expires}`).digest('base64url');
  }
}
