import os from 'node:os';
import { Router } from 'express';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { PortAllocator } from '../rtp/ports.js';
import type { StreamRegistry } from '../streams/registry.js';
import { iceServers } from '../webrtc/ice-servers.js';
import { grantOf, param, type Access } from './access.js';
import { sendError } from './errors.js';
import { streamFor } from './stream-view.js';

// REST API: what is live, with per-track counters and outputs; and a health check.

/** GET /healthz; /api/openapi.json is generated from it. */
export const health = z.strictObject({
  status: z.literal('ok'),
  auth: z.boolean().describe('whether credentials are needed (the built-in pages then ask for a token)'),
  uptimeSeconds: z.number().int().min(0),
  streams: z.number().int().min(0),
  ffmpegProcesses: z.number().int().min(0),
  rtpPortsInUse: z.number().int().min(0),
  memoryMB: z.number().int().min(0).describe("the gateway process's resident memory (not its ffmpeg children)"),
  cpuPercent: z.number().min(0).describe('CPU of the gateway process (not its ffmpeg children) since the previous health check, in % of one core'),
  load: z.number().min(0).describe("the machine's 1-minute load average"),
});
export type Health = z.infer<typeof health>;

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
    const body: Health = {
      status: 'ok',
      auth: access.enabled,
      uptimeSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
      streams: registry.all().length,
      ffmpegProcesses: registry.ffmpegPids().length,
      rtpPortsInUse: ports.used,
      memoryMB: Math.round(mem.rss / 1e6),
      cpuPercent,
      load: os.loadavg()[0],
    };
    res.json(body);
  });

  return router;
}
