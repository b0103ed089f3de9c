import express, { Router } from 'express';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { SdpError } from '../sdp/offer.js';
import { STREAM_NAME, STREAM_NAME_RULE } from '../streams/names.js';
import { GatewayStopping, StreamBusy, TooManyConnecting, TranscodeCapacity, type StreamRegistry } from '../streams/registry.js';
import { sendError } from './errors.js';
import { param, type Access } from './access.js';
import { iceServers, type IceServer } from '../webrtc/ice-servers.js';
import { AnswerUnavailable, OfferNotAnswerable } from '../webrtc/publisher-peer.js';

// WHIP (RFC 9725): POST an SDP offer to /whip/:stream, get 201 + answer + Location of the
// session resource; DELETE that resource to stop. The answer already holds every gateway
// candidate, and trickle ICE from the client (PATCH) is not taken: 405, as the RFC allows.

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

  access.route(router, 'post', '/whip/:stream', 'publish', { stream: param('stream') }, (req, res, next) => {
    if (!STREAM_NAME.test(req.params.stream)) {
      return sendError(res, 400, STREAM_NAME_RULE);
    }
    if (!req.is('application/sdp')) {
      return sendError(res, 415, `Content-Type must be application/sdp (got ${req.headers['content-type'] ?? 'none'})`);
    }
    next();
  }, sdpBody, async (req, res) => {
    const name = req.params.stream as string;
    const offer = typeof req.body === 'string' ? req.body : '';
    if (!offer.trim()) return sendError(res, 400, 'empty body: POST an SDP offer');
    try {
      const { stream, answer } = await registry.publish(name, offer, { from: req.socket.remoteAddress });
      const location = `/whip/${encodeURIComponent(name)}/${stream.sessionId}`;
      res.status(201);
      res.setHeader('Location', location);
      res.setHeader('ETag', `"${stream.sessionId}"`);
      const links = linkHeaders(iceServers(config.ice, `whip-${name}`));
      if (links.length) res.setHeader('Link', links);
      res.type('application/sdp').send(answer);
    } catch (e) {
      if (e instanceof SdpError) return sendError(res, e.status, e.message);
      if (e instanceof StreamBusy) return sendError(res, 409, e.message);
      if (e instanceof TranscodeCapacity) return sendError(res, 503, e.message);
      if (e instanceof TooManyConnecting) return sendError(res, 429, e.message);
      if (e instanceof GatewayStopping || e instanceof AnswerUnavailable) return sendError(res, 503, e.message);
      if (e instanceof OfferNotAnswerable) {
        log.warn({ event: 'offer-refused', stream: name, detail: e.detail, from: req.socket.remoteAddress }, 'werift could not answer an offer');
        return sendError(res, 400, e.message);
      }
      throw e;
    }
  });

  access.route(router, 'delete', '/whip/:stream/:session', 'publish', { stream: param('stream') }, async (req, res) => {
    const ok = await registry.unpublish(req.params.stream, req.params.session);
    if (!ok) return sendError(res, 404, `no WHIP session ${req.params.session} on stream ${req.params.stream}`);
    res.status(200).end();
  });

  access.route(router, 'patch', '/whip/:stream/:session', 'publish', { stream: param('stream') }, (_req, res) => {
    res.setHeader('Allow', 'DELETE, OPTIONS');
    sendError(res, 405, 'trickle ICE is not supported: send the offer with all candidates (wait for ICE gathering to complete)');
  });

  access.route(router, 'all', '/whip/:stream', 'public', {}, (_req, res) => {
    res.setHeader('Allow', 'POST, OPTIONS');
    sendError(res, 405, 'use POST with an SDP offer');
  });

  return router;
}
