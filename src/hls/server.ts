import type { IncomingMessage, ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import { MEDIA_NAME, namesFor, renderPlaylist } from './playlist.js';
import type { Segmenter } from './segmenter.js';

// Serves one stream's LL-HLS (RFC 8216bis) from its segmenter: the playlist, with
// blocking reload (_HLS_msn / _HLS_part, 6.2.5.2); the init sections; the parts, the
// preload-hinted one held until it exists; the segments, the open one streamed part by
// part. Framework-free (node's request and response), so the HTTP layer (http/hls.ts)
// checks access first and hands the request over.
//
// Each part goes out whole, at once: 8216bis 6.2.2 forbids sending any byte of a part
// before all of it can be sent at full speed (players measure bandwidth from parts), and
// ffmpeg writes a fragment only once it is complete. A request for the hinted part is
// therefore held until the part exists and then answered in one piece; a request for the
// open segment gets its parts as they come (chunked), each whole.
//
// Cache-Control, for an HTTP cache in front (a CDN, the cluster's nginx edge), as Apple
// advises for LL-HLS: a playlist asked for without directives is the live edge of the
// moment, which players must not keep and a shared cache keeps for 1 s at most (the least
// it can count: public, max-age=0, s-maxage=1, as for plain HLS, so 500 plain players
// behind nginx cost the gateway about one request a second); one answered to a blocking
// request has a URL of its own that always gets the same answer, so a cache may keep it a
// little while (blockingMaxAge) and answer every viewer that asks for the same part from
// it; parts, segments and init sections
// never change under their names (which carry the session's epoch): public, mediaMaxAge.
// With access control on, playlists are private (they carry tickets, and a shared cache
// must not answer for the gateway's token check); media keep theirs (their URLs carry
// the ticket that opens them).

export interface ServeOptions {
  /** Write the LL tags and answer blocking requests (false: a plain live playlist of the same segments). */
  lowLatency: boolean;
  /** Cache-Control max-age of parts, segments and init sections, s. */
  mediaMaxAge?: number;
  /** Cache-Control max-age of a playlist answered to a blocking request, s (default: the target duration). */
  blockingMaxAge?: number;
}

export interface RequestOptions {
  /** What the gateway does to a playlist before sending it (tickets: http/hls.ts withTicket), at the moment it is sent. */
  rewritePlaylist?: (text: string) => string;
  /** Playlists may be kept by the client only (access control is on). */
  privatePlaylists?: boolean;
}

export const CONTENT_TYPES = { m3u8: 'application/vnd.apple.mpegurl', m4s: 'video/iso.segment', mp4: 'video/mp4' } as const;

interface Waiter {
  ready: () => boolean;
  answer: () => void;
  timer: NodeJS.Timeout;
}

interface SegmentStream {
  msn: number;
  res: ServerResponse;
  sent: number;
}

/** The first playlist waits this long at most for the first segment. */
const FIRST_PLAYLIST_WAIT_MS = 10_000;
/** Responses to requests that were held are at most this many in all (a held request costs a socket). */
const MAX_HELD = 5000;

export class LlHlsServer {
  private readonly waiters = new Set<Waiter>();
  /** Responses streaming the open segment. */
  private readonly segmentStreams = new Set<SegmentStream>();
  private readonly names;

  constructor(
    private readonly s: Segmenter,
    private readonly options: ServeOptions,
  ) {
    this.names = namesFor(s.epoch);
    s.on('part', () => this.wake());
    s.on('segment', () => this.wake());
    s.on('ended', () => this.wake());
  }

  get epoch(): string {
    return this.s.epoch;
  }

  /** Requests being held (blocking reloads, hinted parts, open segments). */
  get held(): number {
    return this.waiters.size + this.segmentStreams.size;
  }

  /** Whether `file` is a name this server answers (index.m3u8 or one of its media names). */
  static serves(file: string): boolean {
    return file === 'index.m3u8' || MEDIA_NAME.test(file);
  }

  handle(file: string, query: URLSearchParams, req: IncomingMessage, res: ServerResponse, request: RequestOptions = {}): void {
    if (file === 'index.m3u8') return this.playlist(query, req, res, request);
    const m = MEDIA_NAME.exec(file);
    if (!m || m[1] !== this.s.epoch) return this.fail(res, 404, `${file} is not part of this stream's current playlist`);
    const n = Number(m[3]);
    if (m[2] === 'i') {
      const init = this.s.initById(n);
      return init ? this.send(res, CONTENT_TYPES.mp4, [init.bytes], this.mediaCache()) : this.fail(res, 404, `no init section ${file}`);
    }
    if (m[2] === 'p') return this.part(n, res);
    return this.segment(n, res);
  }

  /** Answers every held request (the output ended or is being replaced). */
  close(): void {
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.answer();
    }
    this.waiters.clear();
    for (const st of this.segmentStreams) st.res.end();
    this.segmentStreams.clear();
  }

  // ---- playlist -------------------------------------------------------------------

  private playlist(query: URLSearchParams, req: IncomingMessage, res: ServerResponse, request: RequestOptions): void {
    const msnText = query.get('_HLS_msn');
    const partText = query.get('_HLS_part');
    const hasFirst = () => this.s.targets !== undefined && this.s.completeSegments.length > 0;
    const directives = this.options.lowLatency && (msnText !== null || partText !== null);
    if (!directives || this.s.ended) {
      // 6.2.5.2: directives are ignored once the playlist has EXT-X-ENDLIST (and a plain
      // playlist takes none). Until one segment is complete (ffmpeg starting), the request
      // waits for it: hls.js gives up for good (levelEmptyError) on a playlist with parts
      // and no EXTINF, and a plain player has nothing to start with.
      return this.hold(() => hasFirst() || this.s.ended, () => this.sendPlaylist(req, res, request, false), res);
    }
    if (msnText === null) return this.fail(res, 400, '_HLS_part needs _HLS_msn');
    const msn = decimalInteger(msnText);
    const part = partText === null ? undefined : decimalInteger(partText);
    if (msn === undefined || (partText !== null && part === undefined)) return this.fail(res, 400, '_HLS_msn and _HLS_part are decimal integers');
    if (hasFirst()) {
      const problem = this.tooFar(msn, part);
      if (problem) return this.fail(res, 400, problem);
    }
    this.hold(() => hasFirst() && this.satisfied(msn, part), () => this.sendPlaylist(req, res, request, true), res);
  }

  /** Whether the playlist now holds what _HLS_msn / _HLS_part ask for (6.2.5.2). */
  satisfied(msn: number, part: number | undefined): boolean {
    const s = this.s;
    if (s.ended) return true;
    const first = s.segments[0]?.msn ?? s.nextMsn;
    if (msn < first) return true; // gone from the window already: the current playlist is the answer
    if (part === undefined) return s.lastCompleteMsn >= msn;
    const seg = s.segments.find((x) => x.msn === msn);
    if (!seg) return false; // not begun yet
    if (part < seg.parts.length) return true;
    // A part index past a finished segment's last part means part 0 of the next segment.
    return seg.complete && this.satisfied(msn + 1, 0);
  }

  /** 6.2.5.2: a request too far ahead is answered 400 at once, not held. */
  private tooFar(msn: number, part: number | undefined): string | undefined {
    const last = this.s.lastCompleteMsn;
    if (msn > last + 2) return `_HLS_msn ${msn} is more than two segments past the last one (${last})`;
    if (part === undefined) return undefined;
    // The Advance Part Limit: three target durations' worth of parts (PART-TARGET < 1 s).
    const partTarget = this.s.targets!.part;
    const limit = partTarget < 1 ? Math.floor(3 / partTarget) : 3;
    const open = this.s.open;
    // Parts known of segment `msn` so far (the last one's index).
    const known = open && open.msn === msn ? open.parts.length - 1 : msn > (open?.msn ?? last) ? -1 : Infinity;
    if (part - known > limit) return `_HLS_part ${part} is more than ${limit} parts past the last one`;
    return undefined;
  }

  private sendPlaylist(req: IncomingMessage, res: ServerResponse, request: RequestOptions, blocking: boolean): void {
    // Ended (or replaced) before its first segment was complete: there is nothing to list.
    if (!this.s.targets) return this.fail(res, 404, 'no segment yet: the stream ended before its first one was complete');
    let text = renderPlaylist(this.s, this.options.lowLatency);
    if (request.rewritePlaylist) text = request.rewritePlaylist(text);
    const scope = request.privatePlaylists ? 'private' : 'public';
    const maxAge = this.options.blockingMaxAge ?? this.s.targets?.duration ?? 1;
    // A blocking answer is the same for every request of its URL (once the part exists it
    // never changes, and its directives make the URL unique); without directives: the
    // live edge of the moment, kept by a shared cache for a second at most.
    const cache = blocking && !this.s.ended ? `${scope}, max-age=${maxAge}` : request.privatePlaylists ? 'private, no-cache' : 'public, max-age=0, s-maxage=1';
    let body = Buffer.from(text);
    const headers: Record<string, string> = { 'Cache-Control': cache, Vary: 'Accept-Encoding' };
    // 8216bis 6.2.1 advises compressing playlists: they are sent several times a second.
    if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
      body = gzipSync(body, { level: 1 });
      headers['Content-Encoding'] = 'gzip';
    }
    this.send(res, CONTENT_TYPES.m3u8, [body], headers);
  }

  // ---- parts and segments ---------------------------------------------------------

  private part(id: number, res: ServerResponse): void {
    const p = this.s.part(id);
    if (p) return this.send(res, CONTENT_TYPES.m4s, [p.bytes], this.mediaCache());
    // The hinted part (the next one): held until ffmpeg has written it, then sent whole.
    if (id === this.s.nextPartId && !this.s.ended) {
      return this.hold(
        () => this.s.nextPartId > id || this.s.ended,
        () => {
          const q = this.s.part(id);
          if (q) this.send(res, CONTENT_TYPES.m4s, [q.bytes], this.mediaCache());
          else this.fail(res, 404, `part ${id} was never made: the stream ended`);
        },
        res,
      );
    }
    this.fail(res, 404, id > this.s.nextPartId ? `part ${id} is not there yet (only the one the playlist hints at can be asked for ahead)` : `part ${id} is no longer kept`);
  }

  private segment(msn: number, res: ServerResponse): void {
    const seg = this.s.segment(msn);
    if (seg?.complete) return this.send(res, CONTENT_TYPES.m4s, seg.parts.map((p) => p.bytes), this.mediaCache());
    if (seg && this.held < MAX_HELD) {
      // The open segment: its parts so far at once, then each part as it is made
      // (chunked), each whole. Not listed yet; for caches and players that want whole
      // segments as early as they can have them.
      res.writeHead(200, { 'Content-Type': CONTENT_TYPES.m4s, 'Cache-Control': 'no-cache' });
      const st: SegmentStream = { msn, res, sent: 0 };
      this.segmentStreams.add(st);
      res.on('close', () => this.segmentStreams.delete(st));
      this.pump(st);
      return;
    }
    this.fail(res, 404, msn >= this.s.nextMsn ? `segment ${msn} is not there yet` : `segment ${msn} is no longer kept`);
  }

  private pump(st: SegmentStream): void {
    const seg = this.s.segment(st.msn);
    if (!seg) {
      st.res.end();
      this.segmentStreams.delete(st);
      return;
    }
    while (st.sent < seg.parts.length) st.res.write(seg.parts[st.sent++].bytes);
    if (seg.complete || this.s.ended) {
      st.res.end();
      this.segmentStreams.delete(st);
    }
  }

  // ---- holding requests -----------------------------------------------------------

  /**
   * Answers at once when `ready`, else when it becomes so (on every new part), or 503
   * after three target durations (6.2.5.2), or never when the client has gone.
   */
  private hold(ready: () => boolean, answer: () => void, res: ServerResponse): void {
    if (ready()) return answer();
    if (this.held >= MAX_HELD) return this.fail(res, 503, 'too many requests waiting for this stream: try again');
    // Before the first segment is complete (ffmpeg starting, a publisher's first GOP) the
    // target duration is not known yet: its longest possible wait then.
    const holdMs = this.s.targets ? 3 * this.s.targets.duration * 1000 : FIRST_PLAYLIST_WAIT_MS;
    const waiter: Waiter = {
      ready,
      answer,
      timer: setTimeout(() => {
        this.waiters.delete(waiter);
        this.fail(res, 503, 'not available in time: ask again', { 'Retry-After': '1' });
      }, holdMs),
    };
    this.waiters.add(waiter);
    res.on('close', () => {
      clearTimeout(waiter.timer);
      this.waiters.delete(waiter);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) {
      if (!w.ready()) continue;
      clearTimeout(w.timer);
      this.waiters.delete(w);
      w.answer();
    }
    for (const st of [...this.segmentStreams]) this.pump(st);
  }

  // ---- responses ------------------------------------------------------------------

  private mediaCache(): Record<string, string> {
    return { 'Cache-Control': `public, max-age=${this.options.mediaMaxAge ?? 60}` };
  }

  private send(res: ServerResponse, type: string, chunks: Buffer[], headers: Record<string, string>): void {
    if (res.headersSent || res.destroyed) return;
    const length = chunks.reduce((n, c) => n + c.length, 0);
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': String(length), ...headers });
    for (const c of chunks) res.write(c);
    res.end();
  }

  private fail(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    // A 404 for a part that exists a moment later must not stick in a cache.
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache', ...headers });
    res.end(`${message}\n`);
  }
}

/** A decimal-integer (RFC 8216bis 4.2), within the range a number holds exactly. */
function decimalInteger(text: string): number | undefined {
  return /^\d{1,15}$/.test(text) ? Number(text) : undefined;
}
