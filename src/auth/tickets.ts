import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

// Players cannot send headers, so an HLS viewer's token comes in the playlist's query
// string. The playlist the gateway serves then names its segments with a short-lived
// ticket for that stream instead of repeating the token: a segment URL seen in a log or a
// proxy gives access to that stream's segments until the ticket expires, not to the
// account. A ticket is an HMAC of the stream name and its expiry (milliseconds) under a
// key that is random per gateway process, so it opens only that stream's files and only
// until then. What it opens is the HTTP layer's rule (http/hls.ts): segments, never a
// playlist, since a playlist hands out fresh tickets and a ticket must not renew itself.
//
// Behind an HTTP cache (deploy/nginx-edge.conf) a ticket must not make every viewer's
// segment URLs unique, or the cache keeps one copy per viewer. So a playlist's ticket is
// issued as of the start of its step, a quarter of the lifetime: every playlist served
// within one step (Low-Latency HLS reloads included, several a second) names the same
// ticket, valid between three quarters of the lifetime and all of it. In a cluster the
// key is shared (cluster/redis-directory.ts keeps it in Redis), so every node
// issues and accepts the same tickets.

/** How long a ticket is valid unless configured (auth.hlsTicketSeconds). */
export const DEFAULT_TICKET_TTL_MS = 10 * 60 * 1000;
export class Tickets {
  private readonly step: number;

  constructor(
    readonly ttlMs = DEFAULT_TICKET_TTL_MS,
    /** The HMAC key: random per process alone, the cluster's own in a cluster. */
    private readonly key: Buffer = randomBytes(32),
  ) {
    this.step = Math.max(1, Math.floor(ttlMs / 4));
  }

  issue(stream: string, now = Date.now()): string {
    const expires = (now + this.ttlMs).toString(36);
    return `${expires}.${this.sign(stream, expires)}`;
  }

  /**
   * The ticket every viewer of `stream` gets within one step (a quarter of the lifetime):
   * issued as of the step's start, so it is valid for at least three quarters of it.
   */
  issueShared(stream: string, now = Date.now()): string {
    return this.issue(stream, Math.floor(now / this.step) * this.step);
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
