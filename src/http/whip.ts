import express, { Router } from 'express';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { PublishRefused } from '../streams/publish-refused.js';
import type { StreamRegistry } from '../streams/registry.js';
import { sendError } from './errors.js';
import { param, type Access } from './access.js';
import { iceServers } from '../webrtc/ice-servers.js';
import { patchIce } from './ice-patch.js';
import { sendAnswer, sendRefusal } from './sdp-exchange.js';

// WHIP (RFC 9725): POST an SDP offer to /whip/:stream, get 201 + answer + Location of the
// session resource; DELETE that resource to stop. The answer holds every gateway
// candidate (the gateway does not trickle its own). A refused offer gets the status its
// reason has (streams/publish-refused.ts), with Retry-After where trying again later can work.
//
// PATCH on the session (RFC 9725 §4.3, http/ice-patch.ts): trickled candidates, or an ICE
// restart: the session, its stream, outputs and HLS playlist go on.
//
// In a cluster (RFC 9725 §4.5) a node that is full answers a POST 307 with Location on
// the least-loaded node that has room (clients repeat the POST there), and the session's
// Location is absolute, on the node that has it, so PATCH and DELETE go straight there.

export function whipRouter(registry: StreamRegistry, config: Config, log: Logger, access: Access): Router {
  const router = Router();
  const sdpBody = express.text({ type: () => true, limit: config.http.maxBodyBytes });
  const sessionBase = registry.directory.clustered && config.cluster.nodeUrl ? config.cluster.nodeUrl.replace(/\/+$/, '') : '';

  access.route(router, 'post', '/whip/:stream', 'publish', { stream: param('stream') }, (req, res, next) => {
    if (!req.is('application/sdp')) {
      return sendError(res, 415, `Content-Type must be application/sdp (got ${req.headers['content-type'] ?? 'none'})`);
    }
    next();
  }, sdpBody, async (req, res) => {
    const name = req.params.stream as string;
    const offer = typeof req.body === 'string' ? req.body : '';
    if (!offer.trim()) return sendError(res, 400, 'empty body: POST an SDP offer');
    try {
      const elsewhere = await registry.placement(name);
      if (elsewhere) {
        const target = `${elsewhere}${req.originalUrl}`;
        res.status(307).setHeader('Location', target);
        return res.type('text/plain').send(`this node has no room: publish at ${target}\n`);
      }
      const { stream, answer } = await registry.publish(name, offer, { from: req.socket.remoteAddress });
      const location = `${sessionBase}/whip/${encodeURIComponent(name)}/${stream.sessionId}`;
      sendAnswer(res, { location, etag: stream.etag, answer, servers: iceServers(config.ice, `whip-${name}`) });
    } catch (e) {
      if (!(e instanceof PublishRefused)) throw e;
      sendRefusal(res, e);
    }
  });

  access.route(router, 'delete', '/whip/:stream/:session', 'publish', { stream: param('stream') }, async (req, res) => {
    const ok = await registry.unpublish(req.params.stream, req.params.session);
    if (!ok) return sendError(res, 404, `no WHIP session ${req.params.session} on stream ${req.params.stream}`);
    res.status(200).end();
  });

  access.route(router, 'patch', '/whip/:stream/:session', 'publish', { stream: param('stream') }, sdpBody, async (req, res) => {
    const stream = registry.get(req.params.stream as string);
    if (!stream || stream.sessionId !== req.params.session || stream.closed) return sendError(res, 404, `no WHIP session ${req.params.session} on stream ${req.params.stream}`);
    await patchIce(req, res, { etag: () => stream.etag, update: (u) => stream.updateIce(u, { trickle: false }), logFields: { stream: stream.name, session: stream.sessionId } }, log);
  });

  access.route(router, 'all', '/whip/:stream', 'public', {}, (_req, res) => {
    res.setHeader('Allow', 'POST, OPTIONS');
    sendError(res, 405, 'use POST with an SDP offer');
  });

  return router;
}
