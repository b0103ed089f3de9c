import { Router, type Request } from 'express';
import type { MpegtsHttpKind } from '../outputs/kinds/mpegts-http.js';
import type { StreamRegistry } from '../streams/registry.js';
import type { Access } from './access.js';
import { NAME_PATTERN } from '../streams/names.js';
import { sendError } from './errors.js';

// GET /live/<stream>.ts: MPEG-TS over plain HTTP for VLC and TV players. The first viewer
// starts the stream's mpegts-http output; it stops some seconds after the last one leaves.

const FILE = new RegExp(`^(${NAME_PATTERN})\\.ts$`);

export function liveRouter(registry: StreamRegistry, viewers: MpegtsHttpKind, access: Access): Router {
  const router = Router();
  const stream = { stream: (req: Request) => FILE.exec(String(req.params.file))?.[1] };
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
      await viewers.addViewer(stream, viewer);
    } catch (e) {
      res.destroy(e as Error);
    }
  });
  return router;
}
