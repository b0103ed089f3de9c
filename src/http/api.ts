import os from 'node:os';
import { Router } from 'express';
import type { Config } from '../config/schema.js';
import type { PortAllocator } from '../rtp/ports.js';
import type { StreamRegistry } from '../streams/registry.js';
import { iceServers } from '../webrtc/ice-servers.js';
import { grantOf, param, type Access } from './access.js';
import { sendError } from './errors.js';
import { streamFor } from './stream-view.js';

// REST API: what is live, with per-track counters and outputs; and a health check.

export function apiRouter(registry: StreamRegistry, ports: PortAllocator, startedAt: Date, ice: Config['ice'], access: Access): Router {
  const router = Router();

  // ICE servers for browser clients (the built-in pages), with fresh TURN credentials.
  access.route(router, 'get', '/api/ice-servers', 'publish', {}, (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json(iceServers(ice, 'browser'));
  });

  access.route(router, 'get', '/api/streams', 'read', {}, (_req, res) => {
    const grant = grantOf(res);
    res.json(registry.list().filter((s) => grant.allows('read', s.name)).map((s) => streamFor(s, grant)));
  });

  access.route(router, 'get', '/api/streams/:name', 'read', { stream: param('name') }, (req, res) => {
    const stream = registry.get(req.params.name as string);
    if (!stream) return sendError(res, 404, `no stream named ${req.params.name}`);
    res.json(streamFor(stream.info(), grantOf(res)));
  });

  access.route(router, 'delete', '/api/streams/:name', 'control', { stream: param('name') }, async (req, res) => {
    const ok = await registry.remove(req.params.name as string);
    if (!ok) return sendError(res, 404, `no stream named ${req.params.name}`);
    res.status(204).end();
  });

  // CPU of the gateway process (not its ffmpeg children) since the previous health check.
  let lastCpu = { usage: process.cpuUsage(), at: performance.now() };
  access.route(router, 'get', '/healthz', 'public', {}, (_req, res) => {
    const mem = process.memoryUsage();
    const now = { usage: process.cpuUsage(), at: performance.now() };
    const used = now.usage.user + now.usage.system - lastCpu.usage.user - lastCpu.usage.system;
    const cpuPercent = Math.round((used / 1000 / Math.max(1, now.at - lastCpu.at)) * 1000) / 10;
    lastCpu = now;
    res.json({
      status: 'ok',
      /** Whether credentials are needed (the built-in pages then ask for a token). */
      auth: access.enabled,
      uptimeSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
      streams: registry.all().length,
      ffmpegProcesses: registry.ffmpegPids().length,
      rtpPortsInUse: ports.used,
      memoryMB: Math.round(mem.rss / 1e6),
      cpuPercent,
      load: os.loadavg()[0],
    });
  });

  return router;
}
