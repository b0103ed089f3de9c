import express, { type Express } from 'express';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { EventBus } from '../events/bus.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { OutputCatalog } from '../outputs/catalog.js';
import type { ResumeOutputs } from '../outputs/resume.js';
import type { Recordings } from '../recordings/recordings.js';
import type { PortAllocator } from '../rtp/ports.js';
import type { StreamRegistry } from '../streams/registry.js';
import type { StreamDirectory } from '../cluster/directory.js';
import { clusterRouter, nodesRouter } from './cluster.js';
import type { Composites } from '../composites/composites.js';
import { compositesRouter } from './composites.js';
import { grantOf, type Access } from './access.js';
import type { ConnectionLimits } from './limits.js';
import { apiRouter } from './api.js';
import { cors } from './cors.js';
import { errorHandler, sendError } from './errors.js';
import { hlsRouter } from './hls.js';
import { whipRouter } from './whip.js';
import { whepRouter } from './whep.js';
import type { Viewers } from '../whep/viewers.js';
import { outputsRouter } from './outputs.js';
import { recordingsRouter } from './recordings.js';
import { eventsRouter } from './events.js';
import { liveRouter } from './live.js';
import { openApiDocument } from './openapi.js';

// The express app: WHIP, WHEP, REST API (streams, outputs, recordings, events), HLS and MPEG-TS
// for players, metrics, and the built-in pages (web/ at the package root). Every route
// goes through `access`, which knows the right each one needs.

export const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

/** Origins allowed by CORS: as configured; unset = any while auth is off, none while it is on. */
export function corsOrigins(config: Config, authOn: boolean): string[] {
  return config.http.corsOrigins ?? (authOn ? [] : ['*']);
}

/** The services the routes use (each router gets only its own). */
export interface AppServices {
  registry: StreamRegistry;
  events: EventBus;
  catalog: OutputCatalog;
  resume: ResumeOutputs;
  recordings: Recordings;
  ports: PortAllocator;
  access: Access;
  metrics: GatewayMetrics;
  limits: ConnectionLimits;
  /** Alone, or a node of a cluster (then routes for other nodes' streams go there). */
  directory: StreamDirectory;
  viewers: Viewers;
  composites: Composites;
}

export function createApp(config: Config, { registry, events, catalog, resume, recordings, ports, access, metrics, limits, directory, viewers, composites }: AppServices, log: Logger, startedAt = new Date()): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(limits.requests());
  app.use(cors(corsOrigins(config, access.enabled)));
  if (directory.clustered) app.use(clusterRouter({ directory, registry, resume, access, maxBodyBytes: config.http.maxBodyBytes, log }));
  app.use(nodesRouter(directory, access));
  app.use(whipRouter(registry, config, log, access));
  app.use(whepRouter(viewers, config, log, access));
  app.use(apiRouter(registry, ports, startedAt, config.ice, access));
  app.use(outputsRouter({ registry, catalog, resume }, config.http.maxBodyBytes, access));
  app.use(compositesRouter(composites, config.http.maxBodyBytes, access));
  app.use(recordingsRouter(recordings, access));
  app.use(eventsRouter(events, access, limits));
  app.use(hlsRouter(catalog.hls, access, config.hls));
  app.use(liveRouter(registry, catalog.mpegtsHttp, access));

  const pages = express.Router();
  access.route(pages, 'get', '/api/openapi.json', 'public', {}, (_req, res) => res.json(openApiDocument(catalog.definitions, access.rules)));
  access.route(pages, 'get', '/metrics', 'metrics', {}, (_req, res, next) => {
    metrics.text(grantOf(res)).then((text) => res.type(metrics.contentType).send(text), next);
  });
  // The pages themselves are public: they hold no data, and ask for a token when the
  // gateway needs one (every call they make is checked).
  const hlsJs = path.dirname(createRequire(import.meta.url).resolve('hls.js/dist/hls.min.js'));
  access.route(pages, 'get', '/vendor/hls.min.js', 'public', {}, (_req, res) => res.sendFile('hls.min.js', { root: hlsJs }));
  access.route(pages, 'get', '/assets/:file', 'public', {}, (req, res) =>
    res.sendFile(req.params.file as string, { root: WEB_DIR, maxAge: '5m', dotfiles: 'deny' }, (err) => {
      if (err && !res.headersSent) sendError(res, 404, `no asset ${req.params.file}`);
    }),
  );
  // The dashboard and the publish page act with the viewer's token and camera: no other
  // site may frame them (clickjacking). The watch page may be embedded by the origins the
  // operator lists (any while auth is off).
  const noFraming = { 'Content-Security-Policy': "frame-ancestors 'none'", 'X-Frame-Options': 'DENY' };
  const embedders = corsOrigins(config, access.enabled);
  const watchFraming = { 'Content-Security-Policy': `frame-ancestors 'self'${embedders.length ? ` ${embedders.join(' ')}` : ''}` };
  access.route(pages, 'get', '/', 'public', {}, (_req, res) => res.sendFile('index.html', { root: WEB_DIR, headers: noFraming }));
  access.route(pages, 'get', ['/publish', '/publish/:name'], 'public', {}, (_req, res) => res.sendFile('publish.html', { root: WEB_DIR, headers: noFraming }));
  access.route(pages, 'get', '/watch/:name', 'public', {}, (_req, res) => res.sendFile('watch.html', { root: WEB_DIR, headers: watchFraming }));
  app.use(pages);
  app.use((req, res) => sendError(res, 404, `no route for ${req.method} ${req.path}`));
  app.use(errorHandler(log));
  return app;
}
