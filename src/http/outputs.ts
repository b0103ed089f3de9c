import express, { Router } from 'express';
import { OutputRequestError, type OutputCatalog } from '../outputs/catalog.js';
import type { ResumeOutputs } from '../outputs/resume.js';
import type { StreamRegistry } from '../streams/registry.js';
import { param, type Access } from './access.js';
import { sendError } from './errors.js';

// REST control of a stream's outputs: start one with {type, ...params}, list them, look at
// one, stop one; the SDP of an "rtp" output; a snapshot of the current picture.

export interface OutputServices {
  registry: StreamRegistry;
  catalog: OutputCatalog;
  resume: ResumeOutputs;
}

export function outputsRouter({ registry, catalog, resume }: OutputServices, maxBodyBytes: number, access: Access): Router {
  const router = Router();
  const json = express.json({ limit: maxBodyBytes, type: () => true });
  const isJson: express.RequestHandler = (req, res, next) => (req.is('application/json') ? next() : sendError(res, 415, `Content-Type must be application/json (got ${req.headers['content-type'] ?? 'none'})`));
  const stream = { stream: param('name') };

  access.route(router, 'post', '/api/streams/:name/outputs', 'control', stream, isJson, json, async (req, res) => {
    const stream = registry.get(req.params.name);
    if (!stream) return sendError(res, 404, `no stream named ${req.params.name}`);
    const body: unknown = req.body;
    if (!body || typeof body !== 'object' || Array.isArray(body)) return sendError(res, 400, 'body must be a JSON object like {"type": "record"}');
    const { type, ...params } = body as Record<string, unknown>;
    if (typeof type !== 'string') return sendError(res, 400, `type: required, one of ${catalog.types.join(', ')}`);
    try {
      const output = await resume.start(stream, type, params);
      res.status(201).location(`/api/streams/${stream.name}/outputs/${output.id}`).json(output.info());
    } catch (e) {
      if (e instanceof OutputRequestError) return sendError(res, e.status, e.message);
      throw e;
    }
  });

  // While a publisher is away, outputs waiting for its return (streams.resumeOutputsSeconds)
  // are listed as 'waiting' and can be stopped; otherwise an unknown stream is a 404.
  access.route(router, 'get', '/api/streams/:name/outputs', 'read', stream, (req, res) => {
    const stream = registry.get(req.params.name);
    const waiting = resume.list(req.params.name);
    if (!stream && !waiting.length) return sendError(res, 404, `no stream named ${req.params.name}`);
    res.json(stream ? [...stream.outputs.values()].map((o) => o.info()) : waiting);
  });

  access.route(router, 'get', '/api/streams/:name/outputs/:id', 'read', stream, (req, res) => {
    const info = registry.get(req.params.name)?.outputs.get(req.params.id)?.info() ?? resume.list(req.params.name).find((o) => o.id === req.params.id);
    if (!info) return sendError(res, 404, `no output ${req.params.id} on stream ${req.params.name}`);
    res.json(info);
  });

  access.route(router, 'delete', '/api/streams/:name/outputs/:id', 'control', stream, async (req, res) => {
    const stopped = await resume.stop(req.params.name, registry.get(req.params.name), req.params.id);
    if (!stopped) return sendError(res, 404, `no output ${req.params.id} on stream ${req.params.name}`);
    res.status(204).end();
  });

  access.route(router, 'get', '/api/streams/:name/outputs/:id/sdp', 'read', stream, (req, res) => {
    const output = registry.get(req.params.name)?.outputs.get(req.params.id);
    const sdp = output?.sdp?.();
    if (!sdp) return sendError(res, 404, `no rtp or rtp-mpegts output ${req.params.id} on stream ${req.params.name}`);
    res.type('application/sdp').setHeader('Content-Disposition', `inline; filename="${req.params.name}.sdp"`);
    res.send(sdp);
  });

  access.route(router, 'get', '/api/streams/:name/snapshot.jpg', 'read', stream, async (req, res) => {
    const stream = registry.get(req.params.name);
    if (!stream) return sendError(res, 404, `no stream named ${req.params.name}`);
    try {
      const jpeg = await catalog.snapshots.take(stream);
      res.type('image/jpeg').setHeader('Cache-Control', 'no-store');
      res.send(jpeg);
    } catch (e) {
      if (e instanceof OutputRequestError) return sendError(res, e.status, e.message);
      sendError(res, 503, `no snapshot: ${(e as Error).message}`);
    }
  });

  return router;
}
