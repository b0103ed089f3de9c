import express, { Router } from 'express';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { iceServers } from '../webrtc/ice-servers.js';
import type { Viewers } from '../whep/viewers.js';
import { WatchRefused } from '../whep/watch-refused.js';
import { param, type Access } from './access.js';
import { sendError } from './errors.js';
import { patchIce } from './ice-patch.js';
import { sendAnswer, sendRefusal } from './sdp-exchange.js';

// WHEP (draft-ietf-wish-whep: WHIP's shape, RFC 9725, for playback): POST a recvonly SDP
// offer to /whep/:stream, get 201 + the answer + the Location of the viewer's session;
// PATCH that resource to trickle candidates or restart ICE (http/ice-patch.ts), DELETE it
// to stop watching. The read right on the stream is needed, as for HLS. A refused offer
// gets the status its reason has (whep/watch-refused.ts), with Retry-After where trying
// again later can work.

export function whepRouter(viewers: Viewers, config: Config, log: Logger, access: Access): Router {
  const router = Router();
  const sdpBody = express.text({ type: () => true, limit: config.http.maxBodyBytes });
  const etagOf = (id: string, generation: number) => `"${id}.${generation}"`;

  access.route(router, 'post', '/whep/:stream', 'read', { stream: param('stream') }, (req, res, next) => {
    if (!req.is('application/sdp')) return sendError(res, 415, `Content-Type must be application/sdp (got ${req.headers['content-type'] ?? 'none'})`);
    next();
  }, sdpBody, async (req, res) => {
    const name = req.params.stream as string;
    const offer = typeof req.body === 'string' ? req.body : '';
    if (!offer.trim()) return sendError(res, 400, 'empty body: POST an SDP offer');
    try {
      const { viewer, answer } = await viewers.watch(name, offer, req.socket.remoteAddress);
      sendAnswer(res, { location: `/whep/${encodeURIComponent(name)}/${viewer.id}`, etag: etagOf(viewer.id, viewer.iceGeneration), answer, servers: iceServers(config.ice, `whep-${name}`) });
    } catch (e) {
      if (!(e instanceof WatchRefused)) throw e;
      sendRefusal(res, e);
    }
  });

  access.route(router, 'delete', '/whep/:stream/:viewer', 'read', { stream: param('stream') }, async (req, res) => {
    const found = viewers.find(req.params.stream as string, req.params.viewer as string);
    if (!found) return sendError(res, 404, `no WHEP session ${req.params.viewer} on stream ${req.params.stream}`);
    await found.viewer.close('the viewer left (DELETE)');
    res.status(200).end();
  });

  access.route(router, 'patch', '/whep/:stream/:viewer', 'read', { stream: param('stream') }, sdpBody, async (req, res) => {
    const found = viewers.find(req.params.stream as string, req.params.viewer as string);
    if (!found) return sendError(res, 404, `no WHEP session ${req.params.viewer} on stream ${req.params.stream}`);
    const { stream, viewer } = found;
    await patchIce(req, res, { etag: () => etagOf(viewer.id, viewer.iceGeneration), update: (u) => viewer.updateIce(u), logFields: { stream: stream.name, viewer: viewer.id } }, log);
  });

  access.route(router, 'all', '/whep/:stream', 'public', {}, (_req, res) => {
    res.setHeader('Allow', 'POST, OPTIONS');
    sendError(res, 405, 'use POST with an SDP offer (recvonly audio and video)');
  });

  return router;
}
