import { appendFile, mkdir, readFile, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { EventBus } from '../events/bus.js';
import { renderSessionSdp } from '../sdp/render.js';
import { ParamError, resolveParams, type PipelineDefinition, type Values } from '../pipelines/definition.js';
import { PushTargetError } from '../pipelines/push-url.js';
import { PushTargetRefused, PushTargets } from '../pipelines/push-targets.js';
import { authEnabled } from '../auth/policy.js';
import { newOutputId, type Output } from './output.js';
import { Recordings } from './recordings.js';
import { RtpOutput } from './rtp-output.js';
import type { Stream } from './stream.js';
import { TsFanout, type Viewer } from './ts-fanout.js';

// The output types a stream can have, and how each is set up: its folder, the values its
// pipeline needs, its links, and what happens around it (HLS folder tidy-up, recording
// bookkeeping, the shared MPEG-TS feed, on-demand snapshots). Pipelines come from
// pipelines/*.json; "rtp" is a plain forward with no ffmpeg.

/**
 * Makes sure an ended stream's playlist says so. ffmpeg writes #EXT-X-ENDLIST when it can
 * stop cleanly; when it had to be killed (its input went silent), the last playlist it
 * wrote is complete (temp_file) but open-ended, and players would wait forever.
 */
export async function endPlaylist(file: string): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => '');
  if (text.startsWith('#EXTM3U') && !text.includes('#EXT-X-ENDLIST')) await appendFile(file, '#EXT-X-ENDLIST\n');
}

export class OutputRequestError extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 409 | 507,
    message: string,
  ) {
    super(message);
  }
}

const rtpParams = z
  .object({
    host: z.string().min(1).max(253).refine((h) => isIP(h) !== 0 || /^[A-Za-z0-9.-]+$/.test(h), 'must be an IP address or host name'),
    videoPort: z.number().int().min(1024).max(65534).refine((p) => p % 2 === 0, 'must be even (RTCP uses the port above)').optional(),
    audioPort: z.number().int().min(1024).max(65534).refine((p) => p % 2 === 0, 'must be even (RTCP uses the port above)').optional(),
  })
  .strict()
  .refine((p) => p.videoPort !== undefined || p.audioPort !== undefined, 'give videoPort, audioPort or both');

/**
 * Where an output sends media away from this machine: its URL parameters (pushes), or
 * rtp://host:port for an output with host and port parameters (rtp-mpegts).
 */
function targetUrls(def: PipelineDefinition, params: Values): string[] {
  const urls = Object.entries(def.params).filter(([name, p]) => p.type === 'url' && params[name] !== undefined).map(([name]) => String(params[name]));
  if (def.params.host && params.host !== undefined && params.port !== undefined) urls.push(rtpUrl(String(params.host), Number(params.port)));
  return urls;
}

function rtpUrl(host: string, port: number): string {
  return `rtp://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/** How often a running recording checks the free disk space. */
const DISK_CHECK_MS = 2000;

/** Ids of outputs a stream has at most one of. */
const SINGLETON: Record<string, string> = { hls: 'hls', 'mpegts-http': 'mpegts-http' };

export class OutputCatalog {
  readonly recordings: Recordings;
  private readonly cleanups = new Map<string, NodeJS.Timeout>();
  private readonly fanouts = new Map<Stream, TsFanout>();
  private readonly idleTimers = new Map<Stream, NodeJS.Timeout>();
  private readonly snapshots = new Map<Stream, Promise<Buffer>>();
  /** Session SDPs of rtp-mpegts outputs (plain rtp outputs render their own). */
  private readonly sdps = new WeakMap<Output, string>();
  readonly targets: PushTargets;

  constructor(
    private readonly config: Config,
    readonly definitions: Map<string, PipelineDefinition>,
    private readonly events: EventBus,
  ) {
    this.recordings = new Recordings(config.dataDir, config.ffmpeg.ffprobePath);
    this.targets = new PushTargets(config.push.allowedTargets, authEnabled(config) || config.push.allowedTargets.length > 0);
  }

  get types(): string[] {
    return [...this.definitions.keys(), 'rtp'].sort();
  }

  hlsDir(name: string): string {
    return path.resolve(this.config.dataDir, 'hls', name);
  }

  /**
   * Starts an output of `type` on a live stream. Throws OutputRequestError for bad requests.
   * `id` keeps the id of an output started again for a returning publisher.
   */
  async start(stream: Stream, type: string, body: Record<string, unknown> = {}, options: { id?: string } = {}): Promise<Output> {
    if (stream.closed) throw new OutputRequestError(404, `stream ${stream.name} is not live`);
    if (type === 'rtp') return this.startRtp(stream, body, options.id);
    const def = this.definitions.get(type);
    if (!def) throw new OutputRequestError(400, `type: unknown output type "${type}" (one of ${this.types.join(', ')})`);
    let params: Values;
    try {
      params = resolveParams(def, body, { allowListeners: this.config.push.allowListeners });
      for (const url of targetUrls(def, params)) await this.targets.check(url);
    } catch (e) {
      if (e instanceof ParamError) throw new OutputRequestError(400, e.message);
      if (e instanceof PushTargetError) throw new OutputRequestError(e instanceof PushTargetRefused ? 403 : 400, `${def.params.host ? 'host' : 'url'}: ${e.message}`);
      throw e;
    }
    for (const kind of def.requires) {
      if (!stream.tracks.some((t) => t.kind === kind)) throw new OutputRequestError(400, `type: ${type} needs a ${kind} track and stream ${stream.name} has none`);
    }
    const id = SINGLETON[type];
    if (id && stream.outputs.has(id)) throw new OutputRequestError(409, `stream ${stream.name} already has a ${type} output`);
    const audio = stream.tracks.find((t) => t.kind === 'audio');
    const values: Values = {
      ...params,
      audioChannels: audio?.codec.channels ?? 2,
      audioBitrate: audio?.codec.channels === 2 ? '128k' : '96k',
      file: '',
      recordAudioCodec: 'aac',
    };
    const outputsDir = path.resolve(this.config.dataDir, 'outputs', stream.name);
    switch (type) {
      case 'hls': {
        const dir = this.hlsDir(stream.name);
        this.cancelCleanup(dir);
        await rm(dir, { recursive: true, force: true }); // an earlier session's segments must not mix in
        await mkdir(dir, { recursive: true });
        const output = stream.addOutput(def, dir, values, { id, urls: { playlist: `/hls/${stream.name}/index.m3u8` } });
        output.on('state', (s) => {
          if (s !== 'stopped' && s !== 'failed') return;
          void endPlaylist(path.join(dir, 'index.m3u8'));
          this.scheduleCleanup(dir);
        });
        return this.announce(stream, output);
      }
      case 'mpegts-http': {
        const fanout = new TsFanout({ maxBufferedBytes: this.config.mpegtsHttp.maxViewerBufferBytes });
        this.fanouts.set(stream, fanout);
        const output = stream.addOutput(def, path.join(outputsDir, 'mpegts-http'), values, { id, stdout: fanout, urls: { stream: `/live/${stream.name}.ts` }, removeDirWhenDone: true });
        output.on('state', (s) => {
          if (s !== 'stopped' && s !== 'failed') return;
          fanout.closeViewers();
          if (this.fanouts.get(stream) === fanout) this.fanouts.delete(stream);
        });
        return this.announce(stream, output);
      }
      case 'record':
        return this.startRecording(stream, def, values, outputsDir, options.id);
      case 'rtp-mpegts': {
        if (Number(params.port) % 2 !== 0) throw new OutputRequestError(400, 'port: must be even (RTCP uses the port above)');
        const outputId = options.id ?? newOutputId();
        // Checked again before every (re)start, and ffmpeg is given the address that was
        // checked, so a name cannot be re-pointed between the check and the send.
        const target = rtpUrl(String(params.host), Number(params.port));
        const launchValues = async () => {
          const [address] = await this.targets.check(target);
          return { host: isIP(address) === 6 ? `[${address}]` : address };
        };
        const output = stream.addOutput(def, path.join(outputsDir, outputId), values, {
          id: outputId,
          launchValues,
          urls: { sdp: `/api/streams/${stream.name}/outputs/${outputId}/sdp`, vlc: `rtp://@${String(params.host)}:${Number(params.port)}` },
          removeDirWhenDone: true,
        });
        this.sdps.set(output, renderSessionSdp({ name: stream.name, address: String(params.host), media: [{ codec: 'mp2t', port: Number(params.port), payloadType: 33, clockRate: 90000 }] }));
        return this.announce(stream, output);
      }
      default: {
        // Each output keeps its session SDP in its own folder. A push looks its host up
        // again before every (re)connect.
        const outputId = options.id ?? newOutputId();
        const urls = targetUrls(def, params);
        const launchValues = urls.length === 0 ? undefined : async () => {
          for (const url of urls) await this.targets.check(url);
          return {};
        };
        return this.announce(stream, stream.addOutput(def, path.join(outputsDir, outputId), values, { id: outputId, removeDirWhenDone: type !== 'snapshot', launchValues }));
      }
    }
  }

  /**
   * A recording: refused when the disk is nearly full, stopped (finished, kept, marked
   * failed) when free space falls below recordings.minFreeMB while it runs, and each run
   * of its ffmpeg writes its own part, so a restart never truncates what was written.
   */
  private async startRecording(stream: Stream, def: PipelineDefinition, values: Values, outputsDir: string, id = newOutputId()): Promise<Output> {
    const minFree = this.config.recordings.minFreeMB;
    const tooFull = async () => {
      const free = await this.recordings.freeMB();
      return free !== undefined && free < minFree ? `disk full: ${Math.round(free)} MB free where recordings are written, below recordings.minFreeMB (${minFree})` : undefined;
    };
    const full = await tooFull();
    if (full) throw new OutputRequestError(507, `no room for a recording (${full})`);
    const format = String(values.format);
    const dir = this.recordings.dir(stream.name);
    await mkdir(dir, { recursive: true });
    const file = this.recordings.reserve(stream.name, format);
    const audio = stream.tracks.find((t) => t.kind === 'audio')?.codec.name;
    // Keep the publisher's audio where the container takes it; AAC otherwise.
    const copy = (audio === 'opus' && (format === 'mp4' || format === 'mkv')) || ((audio === 'PCMU' || audio === 'PCMA') && format === 'mkv');
    await this.recordings.started(stream.name, file, new Date());
    let part = 0;
    // The file goes to the recordings folder; the session SDP to the output's own folder,
    // since two recordings of one stream may run at once.
    const output = stream.addOutput(def, path.join(outputsDir, id), { ...values, file: path.join(dir, file), recordAudioCodec: copy ? 'copy' : 'aac' }, {
      id,
      urls: { file: this.recordings.url(stream.name, file) },
      removeDirWhenDone: true,
      launchValues: async () => {
        if (++part > 1) await this.recordings.partStarted(stream.name, file, part);
        return { file: path.join(dir, this.recordings.partFile(file, part)) };
      },
    });
    const max = Number(values.maxDurationSeconds);
    const timer = max > 0 ? setTimeout(() => void stream.removeOutput(output.id), max * 1000) : undefined;
    const watch = setInterval(() => {
      void tooFull().then((reason) => {
        if (reason) void output.stop(reason);
      });
    }, DISK_CHECK_MS);
    output.on('state', (s) => {
      if (s !== 'stopped' && s !== 'failed') return;
      if (timer) clearTimeout(timer);
      clearInterval(watch);
      void this.recordings.finished(stream.name, file, s === 'failed' ? output.error : undefined).then((recording) => {
        if (recording) this.events.publish({ type: 'recording.finished', stream: stream.name, session: stream.sessionId, output: { id: output.id, type: 'record' }, recording });
      });
    });
    return this.announce(stream, output);
  }

  private async startRtp(stream: Stream, body: Record<string, unknown>, id?: string): Promise<Output> {
    const parsed = rtpParams.safeParse(body);
    if (!parsed.success) throw new OutputRequestError(400, parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    const p = parsed.data;
    let address: string;
    try {
      [address] = await this.targets.check(rtpUrl(p.host, p.videoPort ?? p.audioPort ?? 0));
    } catch (e) {
      if (e instanceof PushTargetError) throw new OutputRequestError(e instanceof PushTargetRefused ? 403 : 400, `host: ${e.message}`);
      throw e;
    }
    // Sent to the address that was checked (a host name is not looked up again per packet).
    const output = new RtpOutput(stream.name, stream.tracks, { ...p, host: address }, () => stream.requestKeyframe(), id);
    output.urls = { sdp: `/api/streams/${stream.name}/outputs/${output.id}/sdp` };
    return this.announce(stream, stream.attachOutput(output));
  }

  /** The SDP a player opens to receive an rtp or rtp-mpegts output. */
  sdp(output: Output): string | undefined {
    return output instanceof RtpOutput ? output.sdp() : this.sdps.get(output);
  }

  /** Turns output state changes into gateway events. */
  private announce(stream: Stream, output: Output): Output {
    if (output.type === 'snapshot') return output; // a few hundred ms each: not worth an event
    output.on('state', (s) => {
      const base = { stream: stream.name, session: stream.sessionId };
      if (s === 'running') this.events.publish({ ...base, type: 'output.started', output: { id: output.id, type: output.type } });
      if (s === 'stopped') this.events.publish({ ...base, type: 'output.stopped', output: { id: output.id, type: output.type } });
      if (s === 'failed') this.events.publish({ ...base, type: 'output.failed', output: { id: output.id, type: output.type, error: output.error } });
    });
    return output;
  }

  // --- MPEG-TS over HTTP: started by the first viewer, stopped after the last one leaves.

  async addViewer(stream: Stream, viewer: Viewer): Promise<void> {
    const idle = this.idleTimers.get(stream);
    if (idle) clearTimeout(idle);
    this.idleTimers.delete(stream);
    if (!stream.outputs.has('mpegts-http')) await this.start(stream, 'mpegts-http');
    this.fanouts.get(stream)?.add(viewer);
  }

  removeViewer(stream: Stream, viewer: Viewer): void {
    const fanout = this.fanouts.get(stream);
    if (!fanout) return;
    fanout.remove(viewer);
    if (fanout.viewerCount > 0 || this.idleTimers.has(stream)) return;
    const timer = setTimeout(() => {
      this.idleTimers.delete(stream);
      if (this.fanouts.get(stream)?.viewerCount === 0) void stream.removeOutput('mpegts-http');
    }, this.config.mpegtsHttp.idleStopSeconds * 1000);
    timer.unref();
    this.idleTimers.set(stream, timer);
  }

  viewerCount(stream: Stream): number {
    return this.fanouts.get(stream)?.viewerCount ?? 0;
  }

  // --- Snapshots: one short ffmpeg per request (shared by concurrent requests).

  snapshot(stream: Stream, timeoutMs = 10_000): Promise<Buffer> {
    let pending = this.snapshots.get(stream);
    if (!pending) {
      pending = this.takeSnapshot(stream, timeoutMs).finally(() => this.snapshots.delete(stream));
      this.snapshots.set(stream, pending);
    }
    return pending;
  }

  private async takeSnapshot(stream: Stream, timeoutMs: number): Promise<Buffer> {
    const output = await this.start(stream, 'snapshot');
    const dir = path.resolve(this.config.dataDir, 'outputs', stream.name, output.id);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no picture from the publisher in time')), timeoutMs);
        const done = (s: string) => {
          if (s === 'stopped' || s === 'failed') {
            clearTimeout(timer);
            if (s === 'stopped') resolve();
            else reject(new Error(output.error ?? 'snapshot failed'));
          }
        };
        output.on('state', done);
      });
      return await readFile(path.join(dir, 'snapshot.jpg'));
    } finally {
      await stream.removeOutput(output.id);
      await rm(dir, { recursive: true, force: true });
    }
  }

  // --- HLS folders of ended streams are removed after the grace period.

  private cancelCleanup(dir: string): void {
    const t = this.cleanups.get(dir);
    if (t) clearTimeout(t);
    this.cleanups.delete(dir);
  }

  private scheduleCleanup(dir: string): void {
    this.cancelCleanup(dir);
    const timer = setTimeout(() => {
      this.cleanups.delete(dir);
      void rm(dir, { recursive: true, force: true });
    }, this.config.hls.cleanupAfterSeconds * 1000);
    timer.unref();
    this.cleanups.set(dir, timer);
  }

  close(): void {
    for (const t of this.cleanups.values()) clearTimeout(t);
    for (const t of this.idleTimers.values()) clearTimeout(t);
  }
}
