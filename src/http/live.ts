import { Router, type Request } from 'express';
import type { StreamRegistry } from '../streams/registry.js';
import type { Access } from './access.js';
import { sendError } from './errors.js';

// GET /live/<stream>.ts: MPEG-TS over plain HTTP for VLC and TV players. The first viewer
// starts the stream's mpegts-http output; it stops some seconds after the last one leaves.

const FILE = /^([A-Za-z0-9_-]{1,64})\.ts$/;

export function liveRouter(registry: StreamRegistry, access: Access): Router {
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
    res.on('close', () => registry.outputs.removeViewer(stream, viewer));
    try {
      await registry.outputs.addViewer(stream, viewer);
    } catch (e) {
      res.destroy(e as Error);
    }
  });
  return router;
}
