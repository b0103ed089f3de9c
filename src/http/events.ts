import { Router } from 'express';
import type { EventBus, GatewayEvent } from '../events/bus.js';
import { grantOf, type Access } from './access.js';
import { refuseResponse, type ConnectionLimits } from './limits.js';

// GET /api/events: the gateway's events as server-sent events, for dashboards. Each has an
// `id:`, so a client that reconnects (EventSource does so by itself, with Last-Event-ID)
// first gets the events it missed. A token limited to some streams sees only theirs. Each
// feed holds a connection for as long as the client stays: they are capped (limits.sse).

export function eventsRouter(bus: EventBus, access: Access, limits: ConnectionLimits): Router {
  const router = Router();
  access.route(router, 'get', '/api/events', 'read', {}, (req, res) => {
    const admitted = limits.admit('sse', req.socket.remoteAddress);
    if (!admitted.ok) return refuseResponse(res, admitted);
    const grant = grantOf(res);
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream');
    res.setHeader('Cache-Control', 'no-cache, no-store');
    res.flushHeaders();
    res.write(': connected\n\n');
    const send = (e: GatewayEvent) => {
      if (grant.allows('read', e.stream)) res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    };
    const last = Number(req.headers['last-event-id'] ?? req.query.lastEventId);
    if (Number.isInteger(last) && last >= 0) for (const e of bus.since(last)) send(e);
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    bus.on('event', send);
    res.on('close', () => {
      admitted.release();
      clearInterval(ping);
      bus.off('event', send);
    });
  });
  return router;
}
