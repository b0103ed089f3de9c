import path from 'node:path';
import { Router } from 'express';
import { RECORDING_TYPES, RecordingBusy, type Recordings } from '../recordings/recordings.js';
import { grantOf, param, type Access } from './access.js';
import { sendError } from './errors.js';

// Recordings: list, download (with Range, so a browser can seek), delete. File names are
// checked against the gateway's own naming pattern, so no path can leave the folder.

export function recordingsRouter(recordings: Recordings, access: Access): Router {
  const router = Router();
  const stream = { stream: param('stream') };

  access.route(router, 'get', '/api/recordings', 'read', {}, async (_req, res) => {
    const grant = grantOf(res);
    res.json((await recordings.list()).filter((r) => grant.allows('read', r.stream)));
  });

  access.route(router, 'get', '/recordings/:stream/:file', 'read', stream, (req, res) => {
    const full = recordings.resolve(req.params.stream as string, req.params.file as string);
    if (!full) return sendError(res, 404, 'no such recording');
    res.sendFile(full, { acceptRanges: true, dotfiles: 'deny', headers: { 'Content-Type': RECORDING_TYPES[path.extname(full).slice(1)] ?? 'application/octet-stream' } }, (err) => {
      if (err && !res.headersSent) sendError(res, 404, 'no such recording');
    });
  });

  access.route(router, 'delete', '/api/recordings/:stream/:file', 'control', stream, async (req, res) => {
    try {
      if (!(await recordings.remove(req.params.stream as string, req.params.file as string))) return sendError(res, 404, 'no such recording');
    } catch (e) {
      if (e instanceof RecordingBusy) return sendError(res, 409, e.message);
      throw e;
    }
    res.status(204).end();
  });

  return router;
}
