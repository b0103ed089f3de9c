import { Router } from 'express';
import type { StreamRegistry } from '../streams/registry.js';
import { STREAM_NAME } from '../streams/registry.js';
import { sendError } from './errors.js';

// HLS files written by ffmpeg into data/hls/<stream>/. Only playlist and segment names
// are served (never the session SDP beside them); playlists must not be cached.

const FILE = /^[A-Za-z0-9_-]{1,64}\.(m3u8|ts|m4s|mp4)$/;
const TYPES: Record<string, string> = {
  m3u8: 'application/vnd.apple.mpegurl',
  ts: 'video/mp2t',
  m4s: 'video/iso.segment',
  mp4: 'video/mp4',
};

export function hlsRouter(registry: StreamRegistry): Router {
  const router = Router();
  router.get('/hls/:stream/:file', (req, res) => {
    const { stream, file } = req.params;
    if (!STREAM_NAME.test(stream) || !FILE.test(file)) return sendError(res, 404, 'not found');
    const ext = file.split('.').pop() as string;
    res.sendFile(file, {
      root: registry.hlsDir(stream),
      headers: {
        'Content-Type': TYPES[ext],
        'Cache-Control': ext === 'm3u8' ? 'no-cache, no-store' : 'public, max-age=60',
      },
      dotfiles: 'deny',
    }, (err) => {
      if (err && !res.headersSent) sendError(res, 404, `${file} not found for stream ${stream}`);
    });
  });
  return router;
}
