import { mkdir, readFile, rm } from 'node:fs/promises';
import { unwatchFile, watchFile } from 'node:fs';
import type { Express } from 'express';
import http from 'node:http';
import https from 'node:https';
import { createSecureContext } from 'node:tls';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Authorizer } from './auth/authorizer.js';
import { authProblem } from './auth/policy.js';
import { Tickets } from './auth/tickets.js';
import { ConfigError } from './config/load.js';
import type { Config } from './config/schema.js';
import { Access } from './http/access.js';
import { corsOrigins, createApp } from './http/app.js';
import { ConnectionLimits } from './http/limits.js';
import { MediaWorkers } from './media/workers.js';
import { GatewayMetrics } from './metrics/metrics.js';
import type { Logger } from './log.js';
import { loadDefinitions, type PipelineDefinition } from './pipelines/definition.js';
import { warmUpFfmpeg } from './pipelines/ffmpeg-runner.js';
import { stopOrphanedFfmpegs } from './pipelines/orphans.js';
import { StreamRegistry } from './streams/registry.js';
import { EventBus } from './events/bus.js';
import { authEnabled } from './auth/policy.js';
import { autostartOutputs } from './outputs/autostart.js';
import { Composites } from './composites/composites.js';
import { OutputCatalog } from './outputs/catalog.js';
import { ResumeOutputs } from './outputs/resume.js';
import { PushTargets } from './egress/allowed-targets.js';
import { Recordings } from './recordings/recordings.js';
import { PortAllocator } from './rtp/ports.js';
import { Webhooks } from './events/webhooks.js';
import { attachSignalling } from './signalling/ws.js';
import { Viewers } from './whep/viewers.js';
import type { WebSocketServer } from 'ws';
import { createRequire } from 'node:module';
import { LocalDirectory, type StreamDirectory } from './cluster/directory.js';
import { RedisDirectory } from './cluster/redis-directory.js';
import { bridgeEvents } from './cluster/cluster-events.js';
import type { ResumeStore } from './outputs/resume.js';

const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

// Builds every service once and hands each part only what it uses: the stream registry,
// the outputs (catalog, autostart, resume), recordings, access control, metrics, the HTTP
// server and WebSocket signalling. Tests start a Gateway in-process; the CLI wraps it with
// signal handling.

export class Gateway {
  private constructor(
    readonly config: Config,
    readonly registry: StreamRegistry,
    private readonly server: http.Server | https.Server,
    readonly log: Logger,
    private readonly webhooks: Webhooks,
    /** The express app (tests read its routes). */
    readonly app: Express,
    private readonly wss: WebSocketServer,
    /** Every route and the right it needs (tests walk it). */
    readonly access: Access,
    private readonly outputs: { catalog: OutputCatalog; resume: ResumeOutputs; composites: Composites },
    /** The gateway's events (tests read the kept ones). */
    readonly events: EventBus,
    /** The media worker threads. */
    readonly media: MediaWorkers,
    /** Alone, or a node of a cluster. */
    readonly directory: StreamDirectory,
    private readonly stopBridge: () => void,
  ) {}

  /** Throws ConfigError for a configuration that must not run (e.g. open on a public address). */
  static async start(config: Config, log: Logger): Promise<Gateway> {
    const problem = authProblem(config);
    if (problem) throw new ConfigError(problem);
    const tls = config.http.tls ? await readTls(config.http.tls) : undefined;
    await mkdir(path.resolve(config.dataDir), { recursive: true });
    const orphans = await stopOrphanedFfmpegs(config.dataDir);
    if (orphans) log.warn({ event: 'orphans-stopped', count: orphans }, `${orphans} ffmpeg process(es) left by an earlier run were still writing into the data folder: stopped`);
    // What a previous run left: HLS folders of streams that ended long ago (served as if
    // live otherwise) and outputs' session SDPs. Recordings stay, and the ones it left
    // open are measured and marked interrupted.
    for (const dir of ['hls', 'outputs']) await rm(path.resolve(config.dataDir, dir), { recursive: true, force: true });
    let definitions;
    try {
      definitions = loadDefinitions(config.pipelines.extraDir);
    } catch (e) {
      throw new ConfigError((e as Error).message); // a pipeline file of the user's own that does not load
    }
    for (const o of config.outputs) {
      if (o.type !== 'rtp' && !definitions.has(o.type)) throw new ConfigError(`outputs: unknown output type "${o.type}" for streams "${o.streams}"`);
    }
    const directory = await Gateway.directory(config, log);
    const media = await MediaWorkers.start({ count: config.media.workers, logLevel: config.log.level, log, historySeconds: config.mpegtsHttp.probeBacklogSeconds }).catch(async (e: unknown) => {
      await directory.close();
      throw e;
    });
    media.on('crashed', (index, sessions, reason) => log.error({ event: 'media-worker-crashed', worker: index, sessions }, `${reason}: its ${sessions} session(s) ended; starting it again`));
    try {
      return await Gateway.build(config, log, definitions, tls, media, directory);
    } catch (e) {
      await media.stop(); // running workers would keep the process alive
      await directory.close();
      throw e;
    }
  }

  /** Alone (no cluster.redis): the local directory, nothing to connect to. In a cluster: Redis. */
  private static async directory(config: Config, log: Logger): Promise<StreamDirectory> {
    const { cluster } = config;
    if (cluster.redis === undefined || cluster.nodeUrl === undefined) {
      return new LocalDirectory(cluster, { version: VERSION, startedAt: new Date().toISOString() }, cluster.heartbeatMs);
    }
    try {
      const dir = await RedisDirectory.connect({ cluster: { ...cluster, redis: cluster.redis, nodeUrl: cluster.nodeUrl }, version: VERSION, log });
      log.info({ event: 'cluster-joined', node: dir.nodeId }, `joined the cluster as node ${dir.nodeId}`);
      return dir;
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
  }

  /** Every service around the running media workers, then the HTTP server. */
  private static async build(config: Config, log: Logger, definitions: Map<string, PipelineDefinition>, tls: { cert: Buffer; key: Buffer } | undefined, media: MediaWorkers, directory: StreamDirectory): Promise<Gateway> {
    const events = new EventBus(directory.nodeId);
    const redis = directory instanceof RedisDirectory ? directory : undefined;
    const stopBridge = redis ? bridgeEvents(events, redis.redis, redis.sub, redis.nodeId, log) : () => undefined;
    const registry = new StreamRegistry(config, log, events, media, directory);
    const ports = new PortAllocator(config.rtp.portMin, config.rtp.portMax);
    const recordings = new Recordings(config.dataDir, config.ffmpeg.ffprobePath);
    const targets = new PushTargets(config.push.allowedTargets, authEnabled(config) || config.push.allowedTargets.length > 0);
    const catalog = new OutputCatalog(config, definitions, { ports, events, recordings, targets });
    const resumeSeconds = config.streams.resumeOutputsSeconds;
    const store: ResumeStore | undefined =
      redis && resumeSeconds > 0
        ? { save: (name, outputs) => redis.saveOutputs(name, outputs, resumeSeconds), take: (name) => redis.takeOutputs(name), forget: (name, drop) => redis.forgetOutputs(name, drop) }
        : undefined;
    const resume = new ResumeOutputs(registry, catalog, resumeSeconds, store);
    autostartOutputs(registry, catalog, resume, config);
    const composites = new Composites({ registry, ports, log, config });
    const recovered = await recordings.recover();
    if (recovered) log.warn({ event: 'recordings-recovered', count: recovered }, `${recovered} recording(s) left open by an earlier run were measured and marked interrupted`);
    const webhooks = new Webhooks(config.webhooks, events, log);
    const authorizer = new Authorizer(config, log);
    const access = new Access(authorizer, new Tickets(config.auth.hlsTicketSeconds * 1000, redis ? await redis.ticketKey() : undefined));
    let wss: WebSocketServer | undefined;
    const limits = new ConnectionLimits(config.limits);
    const metrics = new GatewayMetrics(registry, { websocketClients: () => wss?.clients.size ?? 0, workers: () => media.info(), connections: () => limits.stats() });
    const viewers = new Viewers(registry, config, log);
    const app = createApp(config, { registry, events, catalog, resume, recordings, ports, access, metrics, limits, directory, viewers, composites }, log);
    // Slow clients hold a socket each: headers and whole requests have deadlines, checked
    // every second (Node's default check runs every 30 s).
    const timeouts = { headersTimeout: config.limits.headersTimeoutMs, requestTimeout: config.limits.requestTimeoutMs, connectionsCheckingInterval: 1000 };
    const server = tls ? https.createServer({ ...tls, ...timeouts }, app) : http.createServer(timeouts, app);
    limits.watch(server, tls !== undefined);
    wss = attachSignalling(server, { registry, events, authorizer, limits, origins: corsOrigins(config, access.enabled), authTimeoutMs: config.limits.wsAuthTimeoutMs }, log);
    await Promise.all([
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.http.port, config.http.host, () => resolve());
      }),
      warmUpFfmpeg(config.ffmpeg.path),
    ]);
    const gw = new Gateway(config, registry, server, log, webhooks, app, wss, access, { catalog, resume, composites }, events, media, directory, stopBridge);
    composites.startDeclared();
    if (server instanceof https.Server) gw.reloadTlsOnChange(server);
    if (directory instanceof LocalDirectory) directory.url = gw.url;
    log.info({ event: 'listening', url: gw.url, dataDir: path.resolve(config.dataDir), auth: access.enabled }, `gateway listening on ${gw.url}${access.enabled ? ' (credentials required)' : ''}`);
    return gw;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Base URL, with "localhost" for a wildcard bind so it can be opened as printed. */
  get url(): string {
    const host = ['0.0.0.0', '::'].includes(this.config.http.host) ? 'localhost' : this.config.http.host;
    return `${this.config.http.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${this.port}`;
  }

  /**
   * Leaves the cluster at once (no one is sent here any more), ends every stream (ffmpeg
   * finalises playlists and recordings), then closes the HTTP server.
   */
  async stop(): Promise<void> {
    if (this.config.http.tls) for (const f of [this.config.http.tls.cert, this.config.http.tls.key]) unwatchFile(f);
    await this.directory.leave();
    this.outputs.resume.close();
    await this.outputs.composites.close();
    await this.registry.shutdown();
    this.stopBridge();
    await this.directory.close();
    await this.media.stop();
    this.outputs.catalog.close();
    await this.webhooks.stop();
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Certificate renewals (certbot replaces the files) are picked up without a restart: new
   * connections get the new certificate. A pair that does not load keeps the old one.
   */
  private reloadTlsOnChange(server: https.Server): void {
    const tls = this.config.http.tls!;
    const reload = () => {
      readTls(tls).then(
        (pair) => {
          server.setSecureContext(pair);
          this.log.info({ event: 'tls-reloaded', cert: tls.cert }, 'TLS certificate reloaded');
        },
        (e: unknown) => this.log.warn({ event: 'tls-reload-failed', error: (e as Error).message }, 'TLS certificate changed but could not be loaded: keeping the previous one'),
      );
    };
    // Certificate and key are written one after the other: wait until both have settled.
    let settle: NodeJS.Timeout | undefined;
    const changed = () => {
      clearTimeout(settle);
      settle = setTimeout(reload, 1000).unref();
    };
    for (const f of [tls.cert, tls.key]) watchFile(f, { interval: 1000, persistent: false }, (cur, prev) => cur.mtimeMs !== prev.mtimeMs && changed());
  }
}

/** Reads and checks a certificate and key (a mismatched pair fails here, not at the first client). */
async function readTls(files: { cert: string; key: string }): Promise<{ cert: Buffer; key: Buffer }> {
  let pair: { cert: Buffer; key: Buffer };
  try {
    pair = { cert: await readFile(files.cert), key: await readFile(files.key) };
  } catch (e) {
    throw new ConfigError(`http.tls: ${(e as Error).message}`);
  }
  try {
    createSecureContext(pair);
  } catch (e) {
    throw new ConfigError(`http.tls: the certificate and key do not load: ${(e as Error).message}`);
  }
  return pair;
}
