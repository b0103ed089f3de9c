import { mkdir, rm } from 'node:fs/promises';
import type { Express } from 'express';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Config } from './config/schema.js';
import { createApp } from './http/app.js';
import type { Logger } from './log.js';
import { loadDefinitions } from './pipelines/definition.js';
import { warmUpFfmpeg } from './pipelines/ffmpeg-process.js';
import { StreamRegistry } from './streams/registry.js';
import { Webhooks } from './events/webhooks.js';
import { attachSignalling } from './signalling/ws.js';
import type { WebSocketServer } from 'ws';

// Wires configuration, the stream registry, the HTTP server and WebSocket signalling together. Tests start a
// Gateway in-process; the CLI wraps it with signal handling.

export class Gateway {
  private constructor(
    readonly config: Config,
    readonly registry: StreamRegistry,
    private readonly server: http.Server,
    readonly log: Logger,
    private readonly webhooks: Webhooks,
    /** The express app (tests read its routes). */
    readonly app: Express,
    private readonly wss: WebSocketServer,
  ) {}

  static async start(config: Config, log: Logger): Promise<Gateway> {
    await mkdir(path.resolve(config.dataDir), { recursive: true });
    // What a previous run left: HLS folders of streams that ended long ago (served as if
    // live otherwise) and outputs' session SDPs. Recordings stay, and the ones it left
    // open are measured and marked interrupted.
    for (const dir of ['hls', 'outputs']) await rm(path.resolve(config.dataDir, dir), { recursive: true, force: true });
    const definitions = loadDefinitions();
    for (const o of config.outputs) {
      if (o.type !== 'rtp' && !definitions.has(o.type)) throw new Error(`outputs: unknown output type "${o.type}" for streams "${o.streams}"`);
    }
    const registry = new StreamRegistry(config, definitions, log);
    const recovered = await registry.outputs.recordings.recover();
    if (recovered) log.warn({ event: 'recordings-recovered', count: recovered }, `${recovered} recording(s) left open by an earlier run were measured and marked interrupted`);
    const webhooks = new Webhooks(config.webhooks, registry.events, log);
    const app = createApp(config, registry, log);
    const server = http.createServer(app);
    const wss = attachSignalling(server, registry, log);
    await Promise.all([
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.http.port, config.http.host, () => resolve());
      }),
      warmUpFfmpeg(config.ffmpeg.path),
    ]);
    const gw = new Gateway(config, registry, server, log, webhooks, app, wss);
    log.info({ event: 'listening', url: gw.url, dataDir: path.resolve(config.dataDir) }, `gateway listening on ${gw.url}`);
    return gw;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Base URL, with "localhost" for a wildcard bind so it can be opened as printed. */
  get url(): string {
    const host = ['0.0.0.0', '::'].includes(this.config.http.host) ? 'localhost' : this.config.http.host;
    return `http://${host.includes(':') ? `[${host}]` : host}:${this.port}`;
  }

  /** Ends every stream (ffmpeg finalises playlists and files), then closes the HTTP server. */
  async stop(): Promise<void> {
    await this.registry.shutdown();
    await this.webhooks.stop();
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
