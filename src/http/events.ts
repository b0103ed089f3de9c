import { Router } from 'express';
import type { EventBus, GatewayEvent } from '../events/bus.js';

// GET /api/events: the gateway's events as server-sent events, for dashboards.

export function eventsRouter(bus: EventBus): Router {
  const router = Router();
  router.get('/api/events', (req, res) => {
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream');
    res.setHeader('Cache-Control', 'no-cache, no-store');
    res.flushHeaders();
    res.write(': connected\n\n');
    const send = (e: GatewayEvent) => res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    bus.on('event', send);
    req.on('close', () => {
      clearInterval(ping);
      bus.off('event', send);
    });
  });
  return router;
}
