import express, { type Express } from 'express';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { StreamRegistry } from '../streams/registry.js';
import { apiRouter } from './api.js';
import { cors } from './cors.js';
import { errorHandler, sendError } from './errors.js';
import { hlsRouter } from './hls.js';
import { whipRouter } from './whip.js';
import { outputsRouter } from './outputs.js';
import { recordingsRouter } from './recordings.js';
import { eventsRouter } from './events.js';
import { liveRouter } from './live.js';
import { openApiDocument } from './openapi.js';

// The express app: WHIP, REST API (streams, outputs, recordings, events), HLS and MPEG-TS
// for players, and the built-in pages (web/ at the package root).

export const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

export function createApp(config: Config, registry: StreamRegistry, log: Logger, startedAt = new Date()): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(cors(config.http.corsOrigins));
  app.use(whipRouter(registry, config, log));
  app.use(apiRouter(registry, startedAt, config.ice));
  app.use(outputsRouter(registry, config.http.maxBodyBytes));
  app.use(recordingsRouter(registry.outputs.recordings));
  app.use(eventsRouter(registry.events));
  app.get('/api/openapi.json', (_req, res) => res.json(openApiDocument(registry.outputs.types)));
  app.use(hlsRouter(registry));
  app.use(liveRouter(registry));
  const hlsJs = path.dirname(createRequire(import.meta.url).resolve('hls.js/dist/hls.min.js'));
  app.get('/vendor/hls.min.js', (_req, res) => res.sendFile('hls.min.js', { root: hlsJs }));
  app.use('/assets', express.static(WEB_DIR, { index: false, extensions: [], maxAge: '5m' }));
  app.get('/', (_req, res) => res.sendFile('index.html', { root: WEB_DIR }));
  app.get(['/publish', '/publish/:name'], (_req, res) => res.sendFile('publish.html', { root: WEB_DIR }));
  app.get('/watch/:name', (_req, res) => res.sendFile('watch.html', { root: WEB_DIR }));
  app.use((req, res) => sendError(res, 404, `no route for ${req.method} ${req.path}`));
  app.use(errorHandler(log));
  return app;
}
