import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

// Players cannot send headers, so an HLS viewer's token comes in the playlist's query
// string. The playlist the gateway serves then names its segments with a short-lived
// ticket for that stream instead of repeating the token: a segment URL seen in a log or a
// proxy gives access to that stream's segments for minutes, not to the account. The key
// is random per gateway process.

const TTL_MS = 10 * 60 * 1000;

export class Tickets {
  private readonly key = randomBytes(32);

  issue(stream: string, now = Date.now()): string {
    const expires = Math.floor((now + TTL_MS) / 1000).toString(36);
    return `${expires}.${this.sign(stream, expires)}`;
  }

  valid(stream: string, ticket: string, now = Date.now()): boolean {
    const [expires, mac] = ticket.split('.');
    if (!expires || !mac || parseInt(expires, 36) * 1000 < now) return false;
    const want = Buffer.from(this.sign(stream, expires));
    const got = Buffer.from(mac);
    return want.length === got.length && timingSafeEqual(want, got);
  }

  private sign(stream: string, expires: string): string {
    return createHmac('sha256', this.key).update(`${stream}\n${expires}`).digest('base64url');
  }
}
