import express, { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { ClusterUnavailable, type NodeEntry, type StreamDirectory } from '../cluster/directory.js';
import type { Logger } from '../log.js';
import type { ResumeOutputs } from '../outputs/resume.js';
import type { StreamRegistry } from '../streams/registry.js';
import { streamInfo, type StreamInfo } from '../streams/stream.js';
import { grantOf, param, type Access, type RouteOptions } from './access.js';
import type { RouteAction } from './access.js';
import { sendError } from './errors.js';
import { hlsRights } from './hls.js';
import { liveStream } from './live.js';
import { streamFor } from './stream-view.js';

// The cluster as the HTTP layer sees it. GET /api/cluster/nodes lists the nodes (alone:
// this one). In a cluster, routes for a stream this node does not have are sent to the
// node that has it, and checked here first with the right they need (so a bad credential
// is counted against its client, not against the node that forwards it):
//
// - Viewers (/hls, /live, /watch, WHEP) are redirected (307): players and browsers follow a
//   redirect with the ?token= or ticket in its URL, and media then flows from the node that
//   has it instead of through two gateways. (Tickets are the cluster's, so a segment URL
//   is good on any node; behind deploy/nginx-edge.conf the cache follows the redirect.)
// - The REST API is proxied: API clients send their token in a header, which a client
//   drops on a redirect to another origin, and a page's fetch would meet CORS; answers
//   are small. GET /api/streams lists every node's streams, each with its `node`.
//
// Redis down: what needs the cluster is answered 503 with the reason; this node's own
// streams are served as always (they never reach these routes' cluster lookups).

/** GET /api/cluster/nodes; /api/openapi.json is generated from it. */
export const nodeInfo = z.strictObject({
  id: z.string().describe('host:port of its URL'),
  url: z.string().describe('where clients and other nodes reach it (cluster.nodeUrl)'),
  state: z.enum(['up', 'gone']).describe('gone: its entry expired (it stopped refreshing it), listed for 10 minutes'),
  self: z.boolean().describe('the node that answered'),
  seenAt: z.iso.datetime().describe('when it last refreshed its entry'),
  version: z.string(),
  startedAt: z.string(),
  sessions: z.number().int().min(0).describe('publishers'),
  maxSessions: z.number().int().min(0).describe('cluster.maxSessions (0: no cap)'),
  cpuPercent: z.number().min(0).describe("its machine's CPU, % of all cores"),
  maxCpuPercent: z.number().min(0).describe('cluster.maxCpuPercent (0: no ceiling)'),
  streams: z.array(streamInfo).describe('its streams as of its last heartbeat (the ones the token may read)'),
});
export type NodeInfo = z.infer<typeof nodeInfo>;

/** Marks a request one node forwarded to another: it is not forwarded again. */
const FORWARDED = 'x-gateway-forwarded-by';
/** Headers passed on to the owning node and back. */
const REQUEST_HEADERS = ['authorization', 'content-type', 'accept', 'user-agent'];
const RESPONSE_HEADERS = ['content-type', 'location', 'cache-control', 'retry-after', 'www-authenticate', 'content-disposition', 'etag'];

export function nodesRouter(directory: StreamDirectory, access: Access): Router {
  const router = Router();
  access.route(router, 'get', '/api/cluster/nodes', 'read', {}, async (_req, res) => {
    const grant = grantOf(res);
    try {
      const nodes = await directory.nodes();
      res.json(
        nodes.map(({ id, url, state, self, seenAt, version, startedAt, sessions, maxSessions, cpuPercent, maxCpuPercent, streams }): NodeInfo => ({
          ...{ id, url, state, self, seenAt, version, startedAt, sessions, maxSessions, cpuPercent, maxCpuPercent },
          streams: (streams as StreamInfo[]).filter((s) => grant.allows('read', s.name)).map((s) => streamFor({ ...s, node: id }, grant)),
        })),
      );
    } catch (e) {
      unavailable(res, e);
    }
  });
  return router;
}

export interface ClusterServices {
  directory: StreamDirectory;
  registry: StreamRegistry;
  resume: ResumeOutputs;
  access: Access;
  maxBodyBytes: number;
  log: Logger;
}

export function clusterRouter({ directory, registry, resume, access, maxBodyBytes, log }: ClusterServices): Router {
  const router = Router();
  const self = directory.nodeId ?? '';
  const raw = express.raw({ type: () => true, limit: maxBodyBytes });
  const here = (name: string | undefined) => name === undefined || registry.get(name) !== undefined || resume.list(name).length > 0;

  access.route(router, 'get', '/api/streams', 'read', {}, async (_req, res) => {
    const grant = grantOf(res);
    try {
      const others = (await directory.nodes()).filter((n) => n.state === 'up' && !n.self);
      const all = [...registry.list().map((s) => ({ ...s, node: self })), ...others.flatMap((n) => (n.streams as StreamInfo[]).map((s) => ({ ...s, node: n.id })))];
      res.json(all.filter((s) => grant.allows('read', s.name)).map((s) => streamFor(s, grant)));
    } catch (e) {
      unavailable(res, e);
    }
  });

  /** Routes for a stream: handled here when it is here, else sent to its node by `send`. */
  const elsewhere = (method: 'get' | 'post' | 'delete', path: string, action: RouteAction, options: RouteOptions, send: (req: Request, res: Response, owner: NodeEntry) => Promise<void> | void) => {
    access.route(router, method, path, action, options, async (req, res, next) => {
      const name = options.stream?.(req);
      if (here(name) || req.headers[FORWARDED]) return next();
      try {
        const owner = await directory.ownerOf(name!);
        if (!owner) return next();
        await send(req, res, owner);
      } catch (e) {
        unavailable(res, e);
      }
    });
  };

  const proxy = async (req: Request, res: Response, owner: NodeEntry) => {
    // The body is read only to be forwarded: a request for a stream here goes on unread to its route.
    if (req.method === 'POST') await new Promise<void>((resolve, reject) => raw(req, res, (e?: unknown) => (e ? reject(e as Error) : resolve())));
    const headers: Record<string, string> = { [FORWARDED]: self, 'x-forwarded-for': req.socket.remoteAddress ?? '' };
    for (const h of REQUEST_HEADERS) if (typeof req.headers[h] === 'string') headers[h] = req.headers[h];
    let r: globalThis.Response;
    try {
      r = await fetch(`${owner.url}${req.originalUrl}`, {
        method: req.method,
        headers,
        body: req.method === 'POST' && Buffer.isBuffer(req.body) ? new Uint8Array(req.body) : undefined,
        redirect: 'manual',
        signal: AbortSignal.timeout(15_000),
      });
    } catch (e) {
      log.warn({ event: 'cluster-forward-failed', node: owner.id, path: req.path, error: (e as Error).message }, 'a request could not be forwarded to the node that has its stream');
      return sendError(res, 502, `the stream is on node ${owner.id}, which did not answer: ${(e as Error).message}`);
    }
    res.status(r.status);
    for (const h of RESPONSE_HEADERS) {
      const v = r.headers.get(h);
      if (v !== null) res.setHeader(h, v);
    }
    res.send(Buffer.from(await r.arrayBuffer()));
  };
  const redirect = (req: Request, res: Response, owner: NodeEntry) => {
    res.status(307).setHeader('Location', `${owner.url}${req.originalUrl}`);
    res.type('text/plain').send(`stream is on node ${owner.id}\n`);
  };

  const stream = { stream: param('name') };
  elsewhere('get', '/api/streams/:name', 'read', stream, proxy);
  elsewhere('delete', '/api/streams/:name', 'control', stream, proxy);
  elsewhere('post', '/api/streams/:name/outputs', 'control', stream, proxy);
  elsewhere('get', '/api/streams/:name/outputs', 'read', stream, proxy);
  elsewhere('get', '/api/streams/:name/outputs/:id', 'read', stream, proxy);
  elsewhere('delete', '/api/streams/:name/outputs/:id', 'control', stream, proxy);
  elsewhere('get', '/api/streams/:name/outputs/:id/sdp', 'read', stream, proxy);
  elsewhere('get', '/api/streams/:name/snapshot.jpg', 'read', stream, proxy);
  elsewhere('get', '/hls/:stream/:file', 'read', hlsRights, redirect);
  elsewhere('get', '/live/:file', 'read', { stream: liveStream }, redirect);
  elsewhere('get', '/watch/:name', 'public', stream, redirect);
  // WHEP too: its media must come from the publisher's node (fetch repeats the POST there,
  // and the viewer's Location, relative, is then on that node).
  elsewhere('post', '/whep/:name', 'read', stream, redirect);
  return router;
}

/** 503 naming what is missing, for a cluster that cannot be asked (or rethrows what is not that). */
function unavailable(res: Response, e: unknown): void {
  if (!(e instanceof ClusterUnavailable)) throw e;
  res.setHeader('Retry-After', '5');
  sendError(res, 503, `${e.message}: cluster-wide answers need it; this node's own streams are still served`);
}
