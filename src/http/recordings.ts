import { Router } from 'express';
import { RecordingBusy, type Recordings } from '../streams/recordings.js';
import { sendError } from './errors.js';

// Recordings: list, download (with Range, so a browser can seek), delete. File names are
// checked against the gateway's own naming pattern, so no path can leave the folder.

export function recordingsRouter(recordings: Recordings): Router {
  const router = Router();

  router.get('/api/recordings', async (_req, res) => {
    res.json(await recordings.list());
  });

  router.get('/recordings/:stream/:file', (req, res) => {
    const full = recordings.resolve(req.params.stream, req.params.file);
    if (!full) return sendError(res, 404, 'no such recording');
    res.sendFile(full, { acceptRanges: true, dotfiles: 'deny', headers: { 'Content-Type': req.params.file.endsWith('.mkv') ? 'video/x-matroska' : 'video/mp4' } }, (err) => {
      if (err && !res.headersSent) sendError(res, 404, 'no such recording');
    });
  });

  router.delete('/api/recordings/:stream/:file', async (req, res) => {
    try {
      if (!(await recordings.remove(req.params.stream, req.params.file))) return sendError(res, 404, 'no such recording');
    } catch (e) {
      if (e instanceof RecordingBusy) return sendError(res, 409, e.message);
      throw e;
    }
    res.status(204).end();
  });

  return router;
}
