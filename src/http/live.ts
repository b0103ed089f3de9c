import { Router, type Request } from 'express';
import type { MpegtsHttpKind } from '../outputs/kinds/mpegts-http.js';
import type { StreamRegistry } from '../streams/registry.js';
import type { Access } from './access.js';
import { NAME_PATTERN } from '../streams/names.js';
import { sendError } from './errors.js';

// GET /live/<stream>.ts: MPEG-TS over plain HTTP for VLC and TV players. The first viewer
// starts the stream's mpegts-http output; it stops some seconds after the last one leaves.
//
// A viewer starts at the latest keyframe, except ffmpeg's own tools. ffmpeg, ffplay and
// ffprobe open every input with `scan_all_pmts` on, so their MPEG-TS demuxer never says that
// it has found all streams, and they read until one stream holds 5 s of packets (the
// default analyzeduration) or 5 MB: started at the latest keyframe, they showed a picture
// 4.5-5.2 s after the request, whatever the stream carried. They get `probeBacklogSeconds`
// of the stream at once instead (their User-Agent is libavformat's, "Lavf/<version>"), and
// a picture within 0.3 s. ffplay plays what it read while probing either way, so it stays
// about as far behind as before (the backlog, up to a keyframe interval more than its 5 s
// window); ffmpeg reads the backlog faster than real time and is at the edge after it.

const FILE = new RegExp(`^(${NAME_PATTERN})\\.ts$`);
const LAVF_AGENT = /^Lavf\//;

/** How far back a /live viewer starts (seconds of stream before the newest data). */
export function liveBacklogSeconds(userAgent: string | undefined, probeBacklogSeconds: number): number {
  return userAgent !== undefined && LAVF_AGENT.test(userAgent) ? probeBacklogSeconds : 0;
}

/** The stream a /live/:file request is about. */
export const liveStream = (req: Request): string | undefined => FILE.exec(String(req.params.file))?.[1];

export function liveRouter(registry: StreamRegistry, viewers: MpegtsHttpKind, access: Access): Router {
  const router = Router();
  const stream = { stream: liveStream };
  access.route(router, 'get', '/live/:file', 'read', stream, async (req, res) => {
    const m = FILE.exec(req.params.file as string);
    const stream = m ? registry.get(m[1]) : undefined;
    if (!stream) return sendError(res, 404, `no live stream ${m?.[1] ?? req.params.file}`);
    res.status(200);
    res.setHeader('Content-Type', 'video/mp2t');
    res.setHeader('Cache-Control', 'no-cache, no-store');
    res.flushHeaders();
    req.socket.setNoDelay(true);
    const viewer = res;
    res.on('close', () => viewers.removeViewer(stream, viewer));
    try {
      await viewers.addViewer(stream, viewer, { backlogSeconds: liveBacklogSeconds(req.get('user-agent'), viewers.probeBacklogSeconds) });
    } catch (e) {
      res.destroy(e as Error);
    }
  });
  return router;
}
