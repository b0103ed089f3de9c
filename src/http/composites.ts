import express, { Router } from 'express';
import { CompositeError, type Composites } from '../composites/composites.js';
import { compositePatch, compositeRequest } from '../composites/schemas.js';
import { grantOf, param, type Access } from './access.js';
import { sendError } from './errors.js';

// REST control of composites (calls broadcast as one programme): create one from stream
// names and patterns, list them, change layout, streams or size, delete one. The composite
// itself is a stream: /api/streams/<name>, its outputs, /hls, /live and /watch are the
// stream routes'.

export function compositesRouter(composites: Composites, maxBodyBytes: number, access: Access): Router {
  const router = Router();
  const json = express.json({ limit: maxBodyBytes, type: () => true });
  const isJson: express.RequestHandler = (req, res, next) => (req.is('application/json') ? next() : sendError(res, 415, `Content-Type must be application/json (got ${req.headers['content-type'] ?? 'none'})`));
  const named = { stream: param('name') };
  const refused = (res: express.Response, e: unknown) => {
    if (e instanceof CompositeError) return sendError(res, e.status, e.message);
    throw e;
  };
  const problem = (issues: { path: PropertyKey[]; message: string }[]) => issues.map((i) => `${i.path.map(String).join('.') || 'body'}: ${i.message}`).join('; ');

  // The name is in the body: the control right is checked for it once the body is read.
  access.route(router, 'post', '/api/composites', 'control', {}, isJson, json, (req, res) => {
    const parsed = compositeRequest.safeParse(req.body);
    if (!parsed.success) return sendError(res, 400, problem(parsed.error.issues));
    if (!grantOf(res).allows('control', parsed.data.name)) return sendError(res, 403, `the credentials do not carry the control right for stream ${parsed.data.name}`);
    try {
      res.status(201).location(`/api/composites/${parsed.data.name}`).json(composites.create(parsed.data));
    } catch (e) {
      refused(res, e);
    }
  });

  access.route(router, 'get', '/api/composites', 'read', {}, (_req, res) => {
    const grant = grantOf(res);
    res.json(composites.list().filter((c) => grant.allows('read', c.name)));
  });

  access.route(router, 'get', '/api/composites/:name', 'read', named, (req, res) => {
    const info = composites.get(req.params.name);
    if (!info) return sendError(res, 404, `no composite named ${req.params.name}`);
    res.json(info);
  });

  access.route(router, 'patch', '/api/composites/:name', 'control', named, isJson, json, (req, res) => {
    const parsed = compositePatch.safeParse(req.body);
    if (!parsed.success) return sendError(res, 400, problem(parsed.error.issues));
    try {
      res.json(composites.patch(req.params.name, parsed.data));
    } catch (e) {
      refused(res, e);
    }
  });

  access.route(router, 'delete', '/api/composites/:name', 'control', named, async (req, res) => {
    if (!(await composites.remove(req.params.name))) return sendError(res, 404, `no composite named ${req.params.name}`);
    res.status(204).end();
  });

  return router;
}
