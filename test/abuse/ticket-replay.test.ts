import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { segmentsOf } from '../helpers/hls-media.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { startWeriftPublisher, type Publisher } from '../helpers/werift-publisher.js';

// HLS tickets end to end, with auth on and tickets that live 2 s: a ticket taken from a
// segment URL opens segments of its stream until it expires, and nothing else: not the
// playlist (which would hand out fresh tickets, renewing it for ever), not another
// stream's files, not a segment after its expiry. Players keep working with ?token=.

const READ = 'hls-read-token-01';
const PUBLISH = 'hls-publish-token';
const TICKET_SECONDS = 2;

describe('HLS tickets expire', () => {
  let t: TestGateway;
  let pub: Publisher;
  const get = (path: string) => fetch(`${t.url}${path}`);
  const ticketOf = (uri: string) => decodeURIComponent(/[?&]ticket=([^&]+)/.exec(uri)![1]);
  /** A playlist fetched with the token that names at least one segment, and that segment's URI. */
  const playlist = () =>
    waitFor('a playlist with segments', async () => {
      const res = await get(`/hls/cam1/index.m3u8?token=${READ}`);
      const text = res.ok ? await res.text() : '';
      const segment = segmentsOf(text).at(-1)?.uri;
      return segment?.includes('?ticket=') ? { text, segment } : undefined;
    }, 20_000);

  beforeAll(async () => {
    t = await startTestGateway({
      auth: {
        tokens: [
          { token: READ, permissions: [{ action: 'read', streams: '*' }] },
          { token: PUBLISH, permissions: [{ action: 'publish', streams: '*' }] },
        ],
        hlsTicketSeconds: TICKET_SECONDS,
      },
      log: { level: 'error' },
    });
    pub = await startWeriftPublisher({ whipUrl: `${t.url}/whip/cam1`, token: PUBLISH, width: 320, height: 240, gop: 30 });
    await pub.connected();
  });

  afterAll(async () => {
    await pub?.stop();
    await t?.close();
  });

  it('a ticket opens its segments, but not the playlist: it cannot be renewed', async () => {
    const { text, segment } = await playlist();
    expect(text).not.toContain(READ);
    const ticket = ticketOf(segment);
    const expires = t.gw.access.tickets.expiryOf('cam1', ticket)!;
    expect(expires - Date.now()).toBeLessThanOrEqual(TICKET_SECONDS * 1000);

    const ok = await get(`/hls/cam1/${segment}`);
    expect(ok.status).toBe(200);
    expect((await ok.arrayBuffer()).byteLength).toBeGreaterThan(1000);

    // The playlist fetched with the ticket is refused, so it yields no ticket that outlives this one.
    const renewed = await get(`/hls/cam1/index.m3u8?ticket=${encodeURIComponent(ticket)}`);
    expect(renewed.status).toBe(401);
    const body = await renewed.text();
    expect(body.trim()).toBe('a ticket opens the segments its playlist names, not a playlist: open the playlist with ?token=');
    expect(body).not.toMatch(/ticket=/);

    // A ticket is for its stream only.
    const other = await get(`/hls/cam2/${segment}`);
    expect(other.status).toBe(401);
    expect((await other.text()).trim()).toBe('invalid ticket for stream cam2');
  });

  it('after its lifetime a ticket opens nothing, while the ?token= playlist goes on handing out new ones', async () => {
    const { segment } = await playlist();
    const ticket = ticketOf(segment);
    const expires = t.gw.access.tickets.expiryOf('cam1', ticket)!;
    await new Promise((r) => setTimeout(r, Math.max(0, expires - Date.now()) + 200));

    // A segment that is listed now, with the old ticket: refused, saying why.
    const fresh = await playlist();
    const file = fresh.segment.split('?')[0];
    const old = await get(`/hls/cam1/${file}?ticket=${encodeURIComponent(ticket)}`);
    expect(old.status).toBe(401);
    expect((await old.text()).trim()).toMatch(/ticket has expired/);

    // The player's way still works: the playlist with the token, its segments with its tickets.
    expect(ticketOf(fresh.segment)).not.toBe(ticket);
    const played = await get(`/hls/cam1/${fresh.segment}`);
    expect(played.status).toBe(200);
  });
});
