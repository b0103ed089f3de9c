import express, { Router } from 'express';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { answerFragment, parseIceFragment } from '../sdp/ice-fragment.js';
import { SdpError } from '../sdp/offer.js';
import { PublishRefused } from '../streams/publish-refused.js';
import type { StreamRegistry } from '../streams/registry.js';
import { sendError } from './errors.js';
import { param, type Access } from './access.js';
import { IceUpdateRefused } from '../webrtc/ice-update-refused.js';
import { iceServers, type IceServer } from '../webrtc/ice-servers.js';
import { OfferNotAnswerable } from '../webrtc/publisher-peer.js';

// WHIP (RFC 9725): POST an SDP offer to /whip/:stream, get 201 + answer + Location of the
// session resource; DELETE that resource to stop. The answer holds every gateway
// candidate (the gateway does not trickle its own). A refused offer gets the status its
// reason has (streams/publish-refused.ts), with Retry-After where trying again later can work.
//
// PATCH on the session (RFC 9725 §4.3) takes an application/trickle-ice-sdpfrag body:
// candidates the client gathered after its offer (204), or new ICE credentials, an ICE
// restart (200 with the gateway's new credentials and candidates, and a new ETag): the
// session, its stream, outputs and HLS playlist go on. The ETag names the current ICE
// session. If-Match with another one is 412 (the candidates were for an ICE session that
// has been restarted since); If-Match is required (428) only when the fragment carries no
// ice-ufrag either, since then nothing tells which ICE session its candidates are for.
//
// In a cluster (RFC 9725 §4.5) a node that is full answers a POST 307 with Location on
// the least-loaded node that has room (clients repeat the POST there), and the session's
// Location is absolute, on the node that has it, so PATCH and DELETE go straight there.

export const ICE_FRAGMENT = 'application/trickle-ice-sdpfrag';

/** Whether an If-Match header names `etag` (a list of entity tags; strong comparison, RFC 9110 §13.1.1). */
function ifMatches(header: string, etag: string): boolean {
  return header.split(',').some((t) => t.trim() === etag);
}

export function linkHeaders(servers: IceServer[]): string[] {
  return servers.flatMap((s) =>
    (Array.isArray(s.urls) ? s.urls : [s.urls]).map((url) => {
      let link = `<${url}>; rel="ice-server"`;
      // RFC 9725 §4.6: TURN credentials go in the Link header as quoted parameters.
      if (s.username) link += `; username="${s.username}"; credential="${s.credential ?? ''}"; credential-type="password"`;
      return link;
    }),
  );
}

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
      res.status(201);
      res.setHeader('Location', location);
      res.setHeader('ETag', stream.etag);
      res.setHeader('Accept-Patch', ICE_FRAGMENT);
      const links = linkHeaders(iceServers(config.ice, `whip-${name}`));
      if (links.length) res.setHeader('Link', links);
      res.type('application/sdp').send(answer);
    } catch (e) {
      if (!(e instanceof PublishRefused)) throw e;
      if (e.retryAfterSeconds) res.setHeader('Retry-After', String(e.retryAfterSeconds));
      sendError(res, e.status, e.message);
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
    res.setHeader('Accept-Patch', ICE_FRAGMENT);
    if (!req.is(ICE_FRAGMENT)) return sendError(res, 415, `Content-Type must be ${ICE_FRAGMENT} (got ${req.headers['content-type'] ?? 'none'})`);
    let update;
    try {
      update = parseIceFragment(typeof req.body === 'string' ? req.body : '');
    } catch (e) {
      if (e instanceof SdpError) return sendError(res, 400, e.message);
      throw e;
    }
    const ifMatch = req.headers['if-match'];
    if (ifMatch !== undefined && ifMatch.trim() !== '*' && !ifMatches(ifMatch, stream.etag)) {
      res.setHeader('ETag', stream.etag);
      return sendError(res, 412, `If-Match ${ifMatch} is not the session's entity tag ${stream.etag}: its ICE session has been restarted since`);
    }
    if (ifMatch === undefined && update.ufrag === undefined) {
      return sendError(res, 428, 'send If-Match with the session\'s ETag (or a=ice-ufrag in the fragment): without either, nothing tells which ICE session the candidates are for');
    }
    try {
      const result = await stream.updateIce(update, { trickle: false });
      res.setHeader('ETag', stream.etag);
      if (!result.restarted || !result.answer) return res.status(204).end();
      res.status(200).type(ICE_FRAGMENT).send(answerFragment(result.answer));
    } catch (e) {
      if (e instanceof IceUpdateRefused) {
        if (e.status === 412) res.setHeader('ETag', stream.etag);
        return sendError(res, e.status, e.message);
      }
      if (e instanceof OfferNotAnswerable) {
        log.warn({ event: 'ice-restart-failed', stream: stream.name, session: stream.sessionId, detail: e.detail }, 'werift could not restart ICE');
        return sendError(res, 400, `the ICE restart could not be answered (${e.message}); the session has ended: publish again`);
      }
      throw e;
    }
  });

  access.route(router, 'all', '/whip/:stream', 'public', {}, (_req, res) => {
    res.setHeader('Allow', 'POST, OPTIONS');
    sendError(res, 405, 'use POST with an SDP offer');
  });

  return router;
}
