import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Router, type Request } from 'express';
import { LlHlsServer } from '../hls/server.js';
import type { HlsKind } from '../outputs/kinds/hls.js';
import { STREAM_NAME } from '../streams/names.js';
import { param, type Access } from './access.js';
import { sendError } from './errors.js';

// HLS at /hls/<stream>/<file>: a Low-Latency HLS stream's playlist, parts and segments
// from memory (hls/server.ts, which holds blocking requests), or the files plain HLS's
// ffmpeg writes into data/hls/<stream>/. Only playlist and media names are served (never
// the session SDP beside them).
//
// Caching of plain HLS (for an HTTP cache in front, deploy/nginx-edge.conf): a playlist
// changes every segment, so players must not keep it (max-age=0) and a shared cache keeps
// it for half a segment, at least the 1 s an HTTP cache can count (s-maxage). A segment
// never changes while it is listed: it is kept for twice the playlist's length (a stream
// published again under the same name starts its numbering anew, so not for ever), and
// never longer than the ticket in its URL is valid. (Low-Latency HLS: hls/server.ts.)
//
// With auth on, a player opens index.m3u8?token=...; the playlist it gets names every
// segment, part and init section with a short-lived ticket for the stream instead, since
// players cannot add headers and should not carry the token in every URL. A blocking
// playlist request (?_HLS_msn=...&token=...) is checked before it is held, and its
// tickets are issued when it is answered.
//
// A ticket opens segments, parts and init sections, never a playlist. A playlist hands
// out fresh tickets, so one served for a ticket would renew it: a single leaked segment
// URL would have given access for ever, each playlist fetched with the last ticket
// bringing one that expires later. Players lose nothing: they fetch the playlist again
// (every part with LL-HLS) with the URL they were given, which carries ?token=, and this
// gateway's playlists are media playlists that name no other playlist.

const FILE = /^[A-Za-z0-9_-]{1,64}\.(m3u8|ts|m4s|mp4)$/; // index, segments, parts, init sections; not stream names
/** What a ticket opens: segments, parts and fMP4 init sections. */
const SEGMENT = /\.(ts|m4s|mp4)$/;
const TYPES: Record<string, string> = {
  m3u8: 'application/vnd.apple.mpegurl',
  ts: 'video/mp2t',
  m4s: 'video/iso.segment',
  mp4: 'video/mp4',
};

/** The playlist with `?ticket=` added to every URI it names (segments, parts, the preload hint, EXT-X-MAP). */
export function withTicket(playlist: string, ticket: string): string {
  const q = `ticket=${encodeURIComponent(ticket)}`;
  const add = (uri: string) => `${uri}${uri.includes('?') ? '&' : '?'}${q}`;
  return playlist
    .split('\n')
    .map((line) => {
      if (line.startsWith('#')) return line.replace(/URI="([^"]+)"/g, (_m, uri: string) => `URI="${add(uri)}"`);
      return line.trim() ? add(line.trim()) : line;
    })
    .join('\n');
}

/** The segment length and playlist length the Cache-Control headers are sized for (the hls config). */
export interface HlsTiming {
  segmentSeconds: number;
  listSize: number;
}

/** Cache-Control of a playlist. */
export function playlistCaching({ segmentSeconds }: HlsTiming): string {
  return `public, max-age=0, s-maxage=${Math.max(1, Math.floor(segmentSeconds / 2))}`;
}

/** Cache-Control of a segment; `ticketExpires`: when the ticket in its URL expires (ms). */
export function segmentCaching({ segmentSeconds, listSize }: HlsTiming, ticketExpires?: number, now = Date.now()): string {
  let seconds = Math.max(2, Math.ceil(2 * listSize * segmentSeconds));
  if (ticketExpires !== undefined) seconds = Math.max(0, Math.min(seconds, Math.floor((ticketExpires - now) / 1000)));
  return `public, max-age=${seconds}`;
}

/** Who may read an HLS file: the read right on its stream, or (segments, parts, init sections) a ticket for it. */
export const hlsRights = { stream: param('stream'), ticket: (req: Request) => SEGMENT.test(String(req.params.file)) };

export function hlsRouter(hls: Pick<HlsKind, 'dir' | 'lowLatency'>, access: Access, timing: HlsTiming): Router {
  const router = Router();
  access.route(router, 'get', '/hls/:stream/:file', 'read', hlsRights, (req, res) => {
    const { stream: name, file } = req.params as { stream: string; file: string };
    if (!STREAM_NAME.test(name) || !FILE.test(file)) return sendError(res, 404, 'not found');
    const ll = hls.lowLatency(name);
    if (ll && LlHlsServer.serves(file)) {
      const query = new URL(req.originalUrl, 'http://gateway').searchParams;
      const rewritePlaylist = access.enabled ? (text: string) => withTicket(text, access.tickets.issueShared(name)) : undefined;
      return ll.handle(file, query, req, res, { rewritePlaylist, privatePlaylists: access.enabled });
    }
    const ext = file.split('.').pop() as string;
    if (ext === 'm3u8' && access.enabled) {
      void readFile(path.join(hls.dir(name), file), 'utf8').then(
        (text) => res.type(TYPES.m3u8).setHeader('Cache-Control', playlistCaching(timing)).send(withTicket(text, access.tickets.issueShared(name))),
        () => sendError(res, 404, `${file} not found for stream ${name}`),
      );
      return;
    }
    const ticket = typeof req.query.ticket === 'string' ? req.query.ticket : undefined;
    res.sendFile(file, {
      root: hls.dir(name),
      headers: {
        'Content-Type': TYPES[ext],
        'Cache-Control': ext === 'm3u8' ? playlistCaching(timing) : segmentCaching(timing, ticket && access.enabled ? access.tickets.expiryOf(name, ticket) : undefined),
      },
      // A playlist has no validator: Last-Modified counts whole seconds, and a player's
      // browser asking again within the second would be told "304, unchanged" and miss
      // the newest segment (or the end of the stream).
      lastModified: ext !== 'm3u8',
      dotfiles: 'deny',
    }, (err) => {
      if (err && !res.headersSent) sendError(res, 404, `${file} not found for stream ${name}`);
    });
  });
  return router;
}
