import { describe, expect, it } from 'vitest';
import { DEFAULT_TICKET_TTL_MS, Tickets } from '../../src/auth/tickets.js';

// HLS tickets: an HMAC of the stream name and the expiry, valid for that stream only and
// only until the expiry, under a key of this gateway process.

describe('HLS tickets', () => {
  const now = 1_700_000_000_000;

  it('are valid for their stream until they expire, ten minutes by default', () => {
    const tickets = new Tickets();
    const ticket = tickets.issue('cam1', now);
    expect(tickets.expiryOf('cam1', ticket)).toBe(now + DEFAULT_TICKET_TTL_MS);
    expect(tickets.valid('cam1', ticket, now + DEFAULT_TICKET_TTL_MS - 1)).toBe(true);
    expect(tickets.valid('cam1', ticket, now + DEFAULT_TICKET_TTL_MS)).toBe(false);
  });

  it('take their lifetime from the constructor (auth.hlsTicketSeconds)', () => {
    const tickets = new Tickets(2000);
    const ticket = tickets.issue('cam1', now);
    expect(tickets.valid('cam1', ticket, now + 1999)).toBe(true);
    expect(tickets.valid('cam1', ticket, now + 2000)).toBe(false);
    expect(tickets.expiryOf('cam1', ticket)).toBe(now + 2000); // expired, but still recognised (the 401 says "expired")
  });

  it('are the same for every playlist served within 10 s (a cache in front shares the media URLs), never valid for less than the lifetime', () => {
    const tickets = new Tickets();
    const first = tickets.issue('cam1', now + 1);
    expect(tickets.issue('cam1', now + 9_999)).toBe(first);
    expect(tickets.issue('cam1', now + 10_001)).not.toBe(first);
    expect(tickets.expiryOf('cam1', first)).toBe(now + DEFAULT_TICKET_TTL_MS + 10_000);
  });

  it('are bound to the stream name: another stream, even a prefix or an extension of it, does not take them', () => {
    const tickets = new Tickets();
    const ticket = tickets.issue('cam1', now);
    for (const other of ['cam2', 'cam', 'cam10', 'CAM1', 'cam1\n']) {
      expect(tickets.valid(other, ticket, now), other).toBe(false);
      expect(tickets.expiryOf(other, ticket), other).toBeUndefined();
    }
  });

  it('cannot be altered: a later expiry, a changed or missing MAC, extra parts, another gateway’s key', () => {
    const tickets = new Tickets();
    const ticket = tickets.issue('cam1', now);
    const [expires, mac] = ticket.split('.');
    const later = (parseInt(expires, 36) + 3_600_000).toString(36);
    for (const forged of [`${later}.${mac}`, `${expires}.AAAA`, `${expires}.`, expires, `${ticket}.x`, `${expires.toUpperCase()}.${mac}`, `-1.${mac}`, '']) {
      expect(tickets.valid('cam1', forged, now), forged).toBe(false);
    }
    expect(new Tickets().valid('cam1', ticket, now)).toBe(false);
  });
});
